//! Read-your-writes overlay over the store for one batch of work.

use std::collections::BTreeMap;

use super::{StateError, Store, StoreName};

type WriteKey = (i32, StoreName, Vec<u8>);

/// Uncommitted writes of one batch. Reads see them first; dropping the `Txn` discards them.
pub struct Txn<'s> {
    store: &'s Store,
    pub(super) writes: BTreeMap<WriteKey, Option<Vec<u8>>>,
    pub(super) counters: BTreeMap<(i32, String), i64>,
}

impl<'s> Txn<'s> {
    pub(super) fn new(store: &'s Store) -> Self {
        Txn {
            store,
            writes: BTreeMap::new(),
            counters: BTreeMap::new(),
        }
    }

    pub fn get(
        &self,
        partition: i32,
        store: StoreName,
        key: &[u8],
    ) -> Result<Option<Vec<u8>>, StateError> {
        match self.writes.get(&(partition, store, key.to_vec())) {
            Some(pending) => Ok(pending.clone()),
            None => self.store.get(partition, store, key),
        }
    }

    pub fn put(&mut self, partition: i32, store: StoreName, key: &[u8], value: Vec<u8>) {
        self.writes
            .insert((partition, store, key.to_vec()), Some(value));
    }

    pub fn delete(&mut self, partition: i32, store: StoreName, key: &[u8]) {
        self.writes.insert((partition, store, key.to_vec()), None);
    }

    /// Entries of `store` from `from` on while `keep(key)` holds, committed and pending merged.
    pub fn scan(
        &self,
        partition: i32,
        store: StoreName,
        from: &[u8],
        keep: impl Fn(&[u8]) -> bool,
    ) -> Result<super::KeyValues, StateError> {
        let mut merged: BTreeMap<Vec<u8>, Option<Vec<u8>>> = self
            .store
            .scan(partition, store, from, &keep)?
            .into_iter()
            .map(|(k, v)| (k, Some(v)))
            .collect();
        let start = (partition, store, from.to_vec());
        for ((p, s, k), v) in self.writes.range(start..) {
            if *p != partition || *s != store || !keep(k) {
                break;
            }
            merged.insert(k.clone(), v.clone());
        }
        Ok(merged
            .into_iter()
            .filter_map(|(k, v)| Some((k, v?)))
            .collect())
    }

    /// The first live key of `store`, committed and pending merged.
    pub fn first_key(
        &self,
        partition: i32,
        store: StoreName,
    ) -> Result<Option<Vec<u8>>, StateError> {
        let deleted =
            |k: &[u8]| matches!(self.writes.get(&(partition, store, k.to_vec())), Some(None));
        let found = std::cell::Cell::new(false);
        let committed = self
            .store
            .scan(partition, store, &[], |k| {
                if found.get() {
                    return false;
                }
                if !deleted(k) {
                    found.set(true);
                }
                true
            })?
            .into_iter()
            .map(|(k, _)| k)
            .find(|k| !deleted(k));
        let pending = self
            .writes
            .range((partition, store, Vec::new())..)
            .take_while(|((p, s, _), _)| *p == partition && *s == store)
            .find(|(_, v)| v.is_some())
            .map(|((_, _, k), _)| k.clone());
        Ok(match (committed, pending) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        })
    }

    /// Adds `delta` to a durable per-partition counter.
    pub fn add_to_counter(
        &mut self,
        partition: i32,
        name: &str,
        delta: i64,
    ) -> Result<(), StateError> {
        if delta == 0 {
            return Ok(());
        }
        let key = (partition, name.to_string());
        let current = match self.counters.get(&key) {
            Some(v) => *v,
            None => self.store.counter(partition, name)?,
        };
        self.counters.insert(key, current + delta);
        Ok(())
    }

    pub fn is_empty(&self) -> bool {
        self.writes.is_empty() && self.counters.is_empty()
    }
}
