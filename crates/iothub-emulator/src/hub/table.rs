//! The device table: entries by id, with the registry counts kept as they change, so
//! `GET /statistics/devices` costs the same at a million devices as at one.
//!
//! Every way to change an entry goes through this type: inserting, removing, a mutable borrow
//! for identity writes ([`EntryMut`]) that settles the enabled count when it is dropped, and a
//! plain mutable borrow for twin and connection writes, which leave `enabled` alone. Rolling
//! back an uncommitted write uses the same insert and remove, so the counts follow it too.
//!
//! The entries are a [`TwinMap`], so a query takes them in O(1) ([`DeviceTable::snapshot`])
//! and scans them without the state lock.

use std::ops::{Deref, DerefMut};

use super::twin_map::TwinMap;
use super::{DeviceRecord, Entry, RegistryStatistics};

/// Entries ordered by device id (query paging resumes after the last key returned).
#[derive(Default)]
pub(super) struct DeviceTable {
    entries: TwinMap<DeviceRecord>,
    /// How many entries have `record.enabled`.
    enabled: u64,
}

impl DeviceTable {
    /// Adds or replaces the entry for `id`; returns the one it replaced.
    pub(super) fn insert(&mut self, id: String, entry: Entry) -> Option<Entry> {
        self.count(&entry, true);
        let previous = self.entries.insert(id, entry);
        if let Some(previous) = &previous {
            self.count(previous, false);
        }
        previous
    }

    /// Removes the entry for `id`.
    pub(super) fn remove(&mut self, id: &str) -> Option<Entry> {
        let removed = self.entries.remove(id)?;
        self.count(&removed, false);
        Some(removed)
    }

    pub(super) fn get(&self, id: &str) -> Option<&Entry> {
        self.entries.get(id)
    }

    pub(super) fn contains_key(&self, id: &str) -> bool {
        self.entries.contains_key(id)
    }

    /// A mutable borrow of the entry for `id` for writes that do not change whether the device
    /// is enabled (twin and connection state); identity writes use
    /// [`DeviceTable::get_identity_mut`].
    pub(super) fn get_mut(&mut self, id: &str) -> Option<&mut Entry> {
        self.entries.get_mut(id)
    }

    /// A mutable borrow of the entry for `id`; the counts are settled when it is dropped.
    pub(super) fn get_identity_mut(&mut self, id: &str) -> Option<EntryMut<'_>> {
        let entry = self.entries.get_mut(id)?;
        let was_enabled = entry.record.enabled;
        Some(EntryMut {
            entry,
            enabled: &mut self.enabled,
            was_enabled,
        })
    }

    pub(super) fn values(&self) -> impl Iterator<Item = &Entry> + '_ {
        self.entries.values()
    }

    /// The entries as they are now, in O(1), for a query to read without the state lock.
    pub(super) fn snapshot(&self) -> TwinMap<DeviceRecord> {
        self.entries.clone()
    }

    /// The registry counts, without visiting an entry.
    pub(super) fn statistics(&self) -> RegistryStatistics {
        let total = self.entries.len() as u64;
        RegistryStatistics {
            total,
            enabled: self.enabled,
            disabled: total - self.enabled,
        }
    }

    fn count(&mut self, entry: &Entry, added: bool) {
        if entry.record.enabled {
            if added {
                self.enabled += 1;
            } else {
                self.enabled -= 1;
            }
        }
    }
}

impl FromIterator<(String, Entry)> for DeviceTable {
    fn from_iter<I: IntoIterator<Item = (String, Entry)>>(iter: I) -> Self {
        let mut table = DeviceTable::default();
        for (id, entry) in iter {
            table.insert(id, entry);
        }
        table
    }
}

/// A mutable borrow of one entry that keeps the enabled count right whatever the borrower
/// changes.
pub(super) struct EntryMut<'a> {
    entry: &'a mut Entry,
    enabled: &'a mut u64,
    was_enabled: bool,
}

impl Deref for EntryMut<'_> {
    type Target = Entry;

    fn deref(&self) -> &Entry {
        self.entry
    }
}

impl DerefMut for EntryMut<'_> {
    fn deref_mut(&mut self) -> &mut Entry {
        self.entry
    }
}

impl Drop for EntryMut<'_> {
    fn drop(&mut self) {
        match (self.was_enabled, self.entry.record.enabled) {
            (false, true) => *self.enabled += 1,
            (true, false) => *self.enabled -= 1,
            _ => {}
        }
    }
}
