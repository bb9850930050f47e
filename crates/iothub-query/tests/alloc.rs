use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use crate::fleet::{compile, devices};

/// Counts allocations made by the current thread (tests run on several threads).
struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

// SAFETY: defers to the system allocator; only adds a thread-local counter, which needs no
// allocation itself (const-initialised `Cell`).
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocations_during(f: impl FnOnce()) -> usize {
    let before = ALLOCATIONS.with(Cell::get);
    f();
    ALLOCATIONS.with(Cell::get) - before
}

#[test]
fn matching_allocates_nothing_per_row() {
    let fleet = devices();
    for cond in [
        "tags.location.plant = 'Redmond43' AND properties.reported.connectivity.type = 'cellular'",
        "DeviceId IN ['a', 'testSensor01'] OR NOT (version + 1 > 3 AND STARTSWITH(deviceId, 'test'))",
        "IS_DEFINED(tags.[[group]].name) OR properties.reported.telemetryConfig.sendFrequencyInSecs % 60 = 0",
        "Tags.location.region NIN ['EU'] AND capabilities.iotEdge != true",
    ] {
        let q = compile(&format!("SELECT * FROM devices WHERE {cond}"));
        let mut selected = 0;
        let n = allocations_during(|| {
            for _ in 0..10 {
                selected += fleet.iter().filter(|t| q.matches(t)).count();
            }
        });
        assert!(selected > 0, "{cond} should select something");
        assert_eq!(n, 0, "{cond}: {n} allocations while matching");
        // The counter does count: projecting a row copies it.
        assert!(allocations_during(|| drop(q.project(&fleet[0]))) > 0);
    }
}
