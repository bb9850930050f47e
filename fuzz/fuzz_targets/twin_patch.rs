#![cfg_attr(fuzzing, no_main)]

#[cfg(fuzzing)]
libfuzzer_sys::fuzz_target!(|data: &[u8]| iothub_twins_fuzz::twin_patch(data));

#[cfg(not(fuzzing))]
fn main() {
    iothub_twins_fuzz::replay::replay_main("twin_patch", iothub_twins_fuzz::twin_patch);
}
