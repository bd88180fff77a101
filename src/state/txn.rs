//! One batch of work on the stores: the per-batch cache and write buffer between the operator
//! and RocksDB.
//!
//! Two kinds of access, one per store (see [`StoreName::is_typed`]):
//! - typed stores (a customer's ledger, its actions, conversations, history) are read and
//!   decoded once per batch, kept decoded here, and encoded once when the batch is finished —
//!   written only if the bytes differ from what was read;
//! - byte stores (timers, indexes, meta) are read and written as bytes, reads seeing the
//!   batch's own writes first.
//!
//! Dropping a `Txn` discards everything; [`Txn::finish`] turns it into the [`Changes`] that go
//! to the changelog and then, in one write batch, to RocksDB.

use std::any::Any;
use std::collections::BTreeMap;
use std::collections::hash_map::Entry;

use rustc_hash::FxHashMap;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{Changes, StateError, Store, StoreName, meta_key, value};

type WriteKey = (i32, StoreName, Vec<u8>);

/// A value of a typed store.
pub trait Stored: Serialize + DeserializeOwned + Send + 'static {}
impl<T: Serialize + DeserializeOwned + Send + 'static> Stored for T {}

/// A typed value as this batch has it.
struct Cached {
    /// The bytes the store had when it was first read (`None`: absent).
    original: Option<Vec<u8>>,
    /// The value now (`None`: absent, deleted or taken out and not put back).
    value: Option<Box<dyn Any + Send>>,
    /// How to encode `value` again at the end of the batch.
    encode: fn(&(dyn Any + Send), usize) -> Vec<u8>,
    /// Put back changed (or possibly so) in this batch: encoded and compared at its end.
    /// A value only read, or put back with [`Txn::put_unchanged`], is neither.
    changed: bool,
}

fn encode_as<V: Stored>(value: &(dyn Any + Send), capacity: usize) -> Vec<u8> {
    let value = value
        .downcast_ref::<V>()
        .expect("a store's values all have its type");
    value::encode_sized(value, capacity)
}

/// Reads and writes of one batch, per store: the metrics layer's figures.
#[derive(Debug, Clone, Copy, Default)]
pub struct StoreStats {
    /// Values read from RocksDB.
    pub reads: u64,
    /// Reads answered by the batch (cache or write buffer).
    pub hits: u64,
    /// Values written (or deleted) when the batch finished.
    pub writes: u64,
    pub written_bytes: u64,
}

/// What [`Txn::scan_limited`] found, and where to go on from.
#[derive(Debug)]
pub struct Bounded {
    pub entries: super::KeyValues,
    /// The last key the scan covered when entries may remain beyond it (`None`: none do).
    pub resume_after: Option<Vec<u8>>,
}

pub struct Txn<'s> {
    store: &'s Store,
    writes: BTreeMap<WriteKey, Option<Vec<u8>>>,
    counters: BTreeMap<(i32, String), i64>,
    /// Hashed, not ordered: a record looks its customer's values up about ten times, and
    /// the B-tree's key comparisons were 3 % of a record; the few readers that need key
    /// order ([`Txn::value_keys`]) filter and sort.
    values: FxHashMap<WriteKey, Cached>,
    stats: [StoreStats; StoreName::ALL.len()],
}

impl<'s> Txn<'s> {
    pub(super) fn new(store: &'s Store) -> Self {
        Txn {
            store,
            writes: BTreeMap::new(),
            counters: BTreeMap::new(),
            values: FxHashMap::default(),
            stats: Default::default(),
        }
    }

    fn stats(&mut self, store: StoreName) -> &mut StoreStats {
        &mut self.stats[store as usize]
    }

    // ---- byte stores ----

    pub fn get(
        &mut self,
        partition: i32,
        store: StoreName,
        key: &[u8],
    ) -> Result<Option<Vec<u8>>, StateError> {
        debug_assert!(!store.is_typed(), "{} is typed", store.as_str());
        if let Some(pending) = self.writes.get(&(partition, store, key.to_vec())) {
            let pending = pending.clone();
            self.stats(store).hits += 1;
            return Ok(pending);
        }
        self.stats(store).reads += 1;
        self.store.get(partition, store, key)
    }

    pub fn put(&mut self, partition: i32, store: StoreName, key: &[u8], value: Vec<u8>) {
        debug_assert!(!store.is_typed(), "{} is typed", store.as_str());
        self.writes
            .insert((partition, store, key.to_vec()), Some(value));
    }

    pub fn delete(&mut self, partition: i32, store: StoreName, key: &[u8]) {
        debug_assert!(!store.is_typed(), "{} is typed", store.as_str());
        self.writes.insert((partition, store, key.to_vec()), None);
    }

    /// Entries of a byte store from `from` on while `keep(key)` holds, committed and pending
    /// merged, in key order.
    pub fn scan(
        &self,
        partition: i32,
        store: StoreName,
        from: &[u8],
        keep: impl Fn(&[u8]) -> bool,
    ) -> Result<super::KeyValues, StateError> {
        Ok(self
            .scan_limited(partition, store, from, keep, usize::MAX)?
            .entries)
    }

    /// [`Txn::scan`] of at most `limit` entries: the committed scan stops after `limit`, and
    /// the batch's own writes are merged over the key range it covered (exact there; nothing
    /// beyond it is returned). [`Bounded::resume_after`] says where to go on from: it can be
    /// set with fewer than `limit` entries returned, when the batch deleted some of those the
    /// committed scan found.
    pub fn scan_limited(
        &self,
        partition: i32,
        store: StoreName,
        from: &[u8],
        keep: impl Fn(&[u8]) -> bool,
        limit: usize,
    ) -> Result<Bounded, StateError> {
        debug_assert!(!store.is_typed(), "{} is typed", store.as_str());
        let mut taken = 0;
        let committed = self.store.scan(partition, store, from, |k| {
            taken += 1;
            taken <= limit && keep(k)
        })?;
        let bound = (committed.len() >= limit)
            .then(|| committed.last().map(|(k, _)| k.clone()))
            .flatten();
        let mut merged: BTreeMap<Vec<u8>, Option<Vec<u8>>> =
            committed.into_iter().map(|(k, v)| (k, Some(v))).collect();
        let start = (partition, store, from.to_vec());
        for ((p, s, k), v) in self.writes.range(start..) {
            if *p != partition || *s != store || !keep(k) || bound.as_ref().is_some_and(|b| k > b) {
                break;
            }
            merged.insert(k.clone(), v.clone());
        }
        let mut entries: super::KeyValues = merged
            .into_iter()
            .filter_map(|(k, v)| Some((k, v?)))
            .take(limit.saturating_add(1))
            .collect();
        let resume_after = if entries.len() > limit {
            entries.truncate(limit);
            entries.last().map(|(k, _)| k.clone())
        } else {
            bound
        };
        Ok(Bounded {
            entries,
            resume_after,
        })
    }

    /// The first live key of a byte store, committed and pending merged.
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

    /// Adds `delta` to a durable per-partition counter (kept in the partition's meta store).
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

    // ---- typed stores ----

    /// Makes sure `key` of a typed store is in the batch's cache, reading and decoding it once.
    fn cache<V: Stored>(
        &mut self,
        partition: i32,
        store: StoreName,
        key: &[u8],
    ) -> Result<&mut Cached, StateError> {
        debug_assert!(store.is_typed(), "{} is a byte store", store.as_str());
        let stats = &mut self.stats[store as usize];
        match self.values.entry((partition, store, key.to_vec())) {
            Entry::Occupied(cached) => {
                stats.hits += 1;
                Ok(cached.into_mut())
            }
            Entry::Vacant(vacant) => {
                stats.reads += 1;
                let original = self.store.get(partition, store, key)?;
                let value = match &original {
                    Some(bytes) => Some(Box::new(value::decode::<V>(bytes).map_err(|message| {
                        StateError::Corrupt {
                            store: store.as_str().into(),
                            message: format!("{}: {message}", String::from_utf8_lossy(key)),
                        }
                    })?) as Box<dyn Any + Send>),
                    None => None,
                };
                Ok(vacant.insert(Cached {
                    original,
                    value,
                    encode: encode_as::<V>,
                    changed: false,
                }))
            }
        }
    }

    /// Takes the value of `key` out of the batch (to be put back, changed or not, with
    /// [`Txn::put_value`]; one not put back is deleted when the batch finishes).
    pub fn take_value<V: Stored>(
        &mut self,
        partition: i32,
        store: StoreName,
        key: &[u8],
    ) -> Result<Option<V>, StateError> {
        Ok(self
            .cache::<V>(partition, store, key)?
            .value
            .take()
            .map(|v| {
                *v.downcast::<V>()
                    .expect("a store's values all have its type")
            }))
    }

    pub fn put_value<V: Stored>(
        &mut self,
        partition: i32,
        store: StoreName,
        key: &[u8],
        value: V,
    ) -> Result<(), StateError> {
        let cached = self.cache::<V>(partition, store, key)?;
        cached.value = Some(Box::new(value));
        cached.encode = encode_as::<V>;
        cached.changed = true;
        Ok(())
    }

    /// Puts back a value taken out with [`Txn::take_value`] and not changed since: it is not
    /// encoded again (unless the batch changed it before). Debug builds check that it equals
    /// what was read.
    pub fn put_unchanged<V: Stored>(
        &mut self,
        partition: i32,
        store: StoreName,
        key: &[u8],
        value: V,
    ) -> Result<(), StateError> {
        let cached = self.cache::<V>(partition, store, key)?;
        debug_assert!(
            cached.changed || cached.original.is_some(),
            "{}: a value put back unchanged was never read",
            String::from_utf8_lossy(key)
        );
        cached.value = Some(Box::new(value));
        Ok(())
    }

    pub fn delete_value<V: Stored>(
        &mut self,
        partition: i32,
        store: StoreName,
        key: &[u8],
    ) -> Result<(), StateError> {
        self.cache::<V>(partition, store, key)?.value = None;
        Ok(())
    }

    /// Writes bytes already encoded into any store (a migration, a restore).
    pub fn put_raw(&mut self, partition: i32, store: StoreName, key: &[u8], bytes: Vec<u8>) {
        self.writes
            .insert((partition, store, key.to_vec()), Some(bytes));
    }

    /// The keys of a typed store under `prefix` that have a value, committed and this batch's
    /// merged, in key order.
    pub fn value_keys(
        &self,
        partition: i32,
        store: StoreName,
        prefix: &[u8],
    ) -> Result<Vec<Vec<u8>>, StateError> {
        debug_assert!(store.is_typed(), "{} is a byte store", store.as_str());
        let mut keys: BTreeMap<Vec<u8>, bool> = self
            .store
            .scan(partition, store, prefix, |k| k.starts_with(prefix))?
            .into_iter()
            .map(|(k, _)| (k, true))
            .collect();
        for ((p, s, k), cached) in &self.values {
            if *p == partition && *s == store && k.starts_with(prefix) {
                keys.insert(k.clone(), cached.value.is_some());
            }
        }
        Ok(keys
            .into_iter()
            .filter_map(|(k, live)| live.then_some(k))
            .collect())
    }

    pub fn is_empty(&self) -> bool {
        self.writes.is_empty() && self.counters.is_empty() && self.values.is_empty()
    }

    /// The batch's changes: typed values encoded (only those whose bytes changed), counters
    /// and the input offsets it covers (`(partition, topic, next offset)`) as meta records.
    pub fn finish(mut self, offsets: &[(i32, String, i64)]) -> Changes {
        for ((partition, store, key), cached) in std::mem::take(&mut self.values) {
            if !cached.changed && cached.value.is_some() {
                debug_assert_eq!(
                    cached.value.as_deref().map(|v| (cached.encode)(v, 0)),
                    cached.original,
                    "{}: a value put back unchanged differs from what was read",
                    String::from_utf8_lossy(&key)
                );
                continue;
            }
            let capacity = cached.original.as_ref().map_or(256, |o| o.len() + 64);
            let now = cached
                .value
                .as_deref()
                .map(|v| (cached.encode)(v, capacity));
            if now != cached.original {
                self.writes.insert((partition, store, key), now);
            }
        }
        for ((partition, name), value) in std::mem::take(&mut self.counters) {
            self.writes.insert(
                (partition, StoreName::Meta, meta_key::counter(&name)),
                Some(value.to_be_bytes().to_vec()),
            );
        }
        for (partition, topic, next) in offsets {
            self.writes.insert(
                (*partition, StoreName::Meta, meta_key::offset(topic)),
                Some(next.to_be_bytes().to_vec()),
            );
        }
        for ((_, store, _), value) in &self.writes {
            let stats = &mut self.stats[*store as usize];
            stats.writes += 1;
            stats.written_bytes += value.as_ref().map_or(0, |v| v.len() as u64);
        }
        Changes {
            writes: self.writes,
            stats: self.stats,
        }
    }
}
