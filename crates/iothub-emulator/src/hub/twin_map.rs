//! A table of twin entries (devices or modules) in key order, kept in a persistent ordered map so
//! that a query can take the whole table as it is now in O(1) and read it without the state
//! lock (ARCHITECTURE.md#lock-discipline).
//!
//! Entries sit behind `Arc`s in an `imbl::OrdMap`: cloning the map shares every node, and a
//! write copies only the nodes on its path, and the one entry it changes, if a snapshot still
//! shares them (`Arc::make_mut`); with no snapshot alive it changes them in place. A snapshot
//! therefore never changes under its reader, and a write never waits for one.

use std::ops::Bound;
use std::sync::Arc;

use imbl::OrdMap;

use super::Cached;

/// Twin entries by key (device id, or module client id `{deviceId}/{moduleId}`), in key order.
pub(super) struct TwinMap<R> {
    entries: OrdMap<Arc<str>, Arc<Cached<R>>>,
}

impl<R> Default for TwinMap<R> {
    fn default() -> Self {
        TwinMap {
            entries: OrdMap::new(),
        }
    }
}

impl<R> Clone for TwinMap<R> {
    /// O(1): the clone shares every node until one side writes.
    fn clone(&self) -> Self {
        TwinMap {
            entries: self.entries.clone(),
        }
    }
}

impl<R: Clone> TwinMap<R> {
    pub(super) fn get(&self, key: &str) -> Option<&Cached<R>> {
        self.entries.get(key).map(|entry| &**entry)
    }

    pub(super) fn contains_key(&self, key: &str) -> bool {
        self.entries.contains_key(key)
    }

    /// A mutable borrow of the entry, copied first if a snapshot shares it.
    pub(super) fn get_mut(&mut self, key: &str) -> Option<&mut Cached<R>> {
        self.entries.get_mut(key).map(Arc::make_mut)
    }

    /// Adds or replaces the entry for `key`; returns the one it replaced.
    pub(super) fn insert(&mut self, key: String, entry: Cached<R>) -> Option<Cached<R>> {
        self.entries
            .insert(Arc::from(key), Arc::new(entry))
            .map(Arc::unwrap_or_clone)
    }

    /// Removes the entry for `key`.
    pub(super) fn remove(&mut self, key: &str) -> Option<Cached<R>> {
        self.entries.remove(key).map(Arc::unwrap_or_clone)
    }

    pub(super) fn len(&self) -> usize {
        self.entries.len()
    }

    /// Every entry, in key order.
    pub(super) fn iter(&self) -> impl Iterator<Item = (&str, &Cached<R>)> + '_ {
        self.entries.iter().map(|(key, entry)| (&**key, &**entry))
    }

    /// Every entry, in key order.
    pub(super) fn values(&self) -> impl Iterator<Item = &Cached<R>> + '_ {
        self.entries.values().map(|entry| &**entry)
    }

    /// The entries from `lower` on, in key order.
    pub(super) fn range<'a>(
        &'a self,
        lower: Bound<&str>,
    ) -> impl Iterator<Item = (&'a str, &'a Cached<R>)> + 'a {
        self.entries
            .range::<_, str>((lower, Bound::Unbounded))
            .map(|(key, entry)| (&**key, &**entry))
    }
}

impl<R: Clone> FromIterator<(String, Cached<R>)> for TwinMap<R> {
    fn from_iter<I: IntoIterator<Item = (String, Cached<R>)>>(iter: I) -> Self {
        let mut map = TwinMap::default();
        for (key, entry) in iter {
            map.insert(key, entry);
        }
        map
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    #[derive(Clone, Debug, PartialEq)]
    struct Record(u32);

    impl super::super::TwinRecord for Record {
        fn twin_json(&self) -> Value {
            json!({ "n": self.0 })
        }
    }

    fn values(map: &TwinMap<Record>) -> Vec<(String, u32)> {
        map.iter()
            .map(|(k, e)| (k.to_string(), e.record.0))
            .collect()
    }

    #[test]
    fn a_snapshot_keeps_its_state_while_the_table_changes() {
        let mut table: TwinMap<Record> = (0..200)
            .map(|n| (format!("d{n:03}"), Cached::new(Record(n))))
            .collect();
        let before = values(&table);
        let snapshot = table.clone();
        table.get_mut("d007").unwrap().record.0 = 1_000;
        table.remove("d100");
        table.insert("d999".into(), Cached::new(Record(999)));
        assert_eq!(values(&snapshot), before);
        assert_eq!(table.get("d007").unwrap().record.0, 1_000);
        assert!(!table.contains_key("d100"));
        assert_eq!(table.len(), 200);
        let from: Vec<_> = snapshot
            .range(Bound::Excluded("d197"))
            .map(|(k, _)| k.to_string())
            .collect();
        assert_eq!(from, ["d198", "d199"]);
    }

    #[test]
    fn a_twin_document_rendered_through_a_snapshot_is_the_one_of_its_state() {
        use super::super::TwinRecord as _;
        let mut table: TwinMap<Record> = [("a".to_string(), Cached::new(Record(1)))]
            .into_iter()
            .collect();
        let snapshot = table.clone();
        let entry = table.get_mut("a").unwrap();
        entry.record.0 = 2;
        entry.invalidate();
        assert_eq!(**snapshot.get("a").unwrap().twin_doc(), json!({"n": 1}));
        assert_eq!(**table.get("a").unwrap().twin_doc(), json!({"n": 2}));
        assert_eq!(Record(2).twin_json(), json!({"n": 2}));
    }
}
