//! Local state in RocksDB: a column family per store and input partition (`customers.3`,
//! `timers-by-due.3`, ...) plus a `meta` family for input offsets and counters.
//!
//! Operators never touch RocksDB: they read and write through a [`Txn`], an overlay of
//! uncommitted writes. [`Store::commit`] turns a `Txn` and the input offsets it covers into one
//! `WriteBatch`, so state and offsets can never disagree after a crash.

mod txn;

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use rocksdb::{
    ColumnFamilyDescriptor, DBWithThreadMode, MultiThreaded, Options, WriteBatch, WriteOptions,
};
use thiserror::Error;

pub use txn::Txn;

type Db = DBWithThreadMode<MultiThreaded>;

/// The stores each input partition has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum StoreName {
    /// Customer key → the customer's ledger, violations and actions.
    Customers,
    /// Due date + key + timer name → nothing: the timers in firing order.
    TimersByDue,
    /// Key + timer name → due date: the timers of one key.
    TimersByKey,
    /// Currency + customer key → nothing: who to re-evaluate when an exchange rate changes.
    CurrencyIndex,
    /// Owner + customer key → nothing: whose open actions an owner's list reads.
    OwnerIndex,
}

impl StoreName {
    pub const ALL: [StoreName; 5] = [
        StoreName::Customers,
        StoreName::TimersByDue,
        StoreName::TimersByKey,
        StoreName::CurrencyIndex,
        StoreName::OwnerIndex,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            StoreName::Customers => "customers",
            StoreName::TimersByDue => "timers-by-due",
            StoreName::TimersByKey => "timers-by-key",
            StoreName::CurrencyIndex => "customers-by-currency",
            StoreName::OwnerIndex => "customers-by-owner",
        }
    }

    fn cf_name(self, partition: i32) -> String {
        format!("{}.{partition}", self.as_str())
    }
}

const META_CF: &str = "meta";

/// Keys and values read by a scan, in key order.
pub type KeyValues = Vec<(Vec<u8>, Vec<u8>)>;

/// State failures are internal: the process cannot go on without its state, so it stops loudly.
#[derive(Debug, Error)]
pub enum StateError {
    #[error("rocksdb: {0}")]
    Rocks(#[from] rocksdb::Error),
    #[error("corrupt value in {store}: {message}")]
    Corrupt { store: String, message: String },
}

#[derive(Clone)]
pub struct Store {
    db: Arc<Db>,
}

impl Store {
    /// Opens (or creates) the state directory with every column family it already has.
    pub fn open(path: &Path) -> Result<Store, StateError> {
        let mut options = Options::default();
        options.create_if_missing(true);
        options.create_missing_column_families(true);
        let existing = Db::list_cf(&options, path).unwrap_or_default();
        let mut names: Vec<String> = existing;
        for required in ["default", META_CF] {
            if !names.iter().any(|n| n == required) {
                names.push(required.to_string());
            }
        }
        let descriptors = names
            .into_iter()
            .map(|name| ColumnFamilyDescriptor::new(name, Options::default()));
        let db = Db::open_cf_descriptors(&options, path, descriptors)?;
        Ok(Store { db: Arc::new(db) })
    }

    /// Creates the column families of `partition` if this node has never held it.
    pub fn ensure_partition(&self, partition: i32) -> Result<(), StateError> {
        for store in StoreName::ALL {
            let name = store.cf_name(partition);
            if self.db.cf_handle(&name).is_none() {
                self.db.create_cf(&name, &Options::default())?;
            }
        }
        Ok(())
    }

    /// The partitions that have state on this node.
    pub fn partitions(&self) -> Vec<i32> {
        let mut found: Vec<i32> = Db::list_cf(&Options::default(), self.db.path())
            .unwrap_or_default()
            .iter()
            .filter_map(|n| n.strip_prefix("customers.")?.parse().ok())
            .collect();
        found.sort_unstable();
        found
    }

    pub fn txn(&self) -> Txn<'_> {
        Txn::new(self)
    }

    fn get(
        &self,
        partition: i32,
        store: StoreName,
        key: &[u8],
    ) -> Result<Option<Vec<u8>>, StateError> {
        let cf = self.cf(partition, store)?;
        Ok(self.db.get_cf(&cf, key)?)
    }

    /// Keys and values of `store` from `from` (inclusive) while `keep` says so, in key order.
    fn scan(
        &self,
        partition: i32,
        store: StoreName,
        from: &[u8],
        mut keep: impl FnMut(&[u8]) -> bool,
    ) -> Result<KeyValues, StateError> {
        let cf = self.cf(partition, store)?;
        let mut out = Vec::new();
        let iter = self.db.iterator_cf(
            &cf,
            rocksdb::IteratorMode::From(from, rocksdb::Direction::Forward),
        );
        for entry in iter {
            let (k, v) = entry?;
            if !keep(&k) {
                break;
            }
            out.push((k.to_vec(), v.to_vec()));
        }
        Ok(out)
    }

    fn cf(
        &self,
        partition: i32,
        store: StoreName,
    ) -> Result<Arc<rocksdb::BoundColumnFamily<'_>>, StateError> {
        let name = store.cf_name(partition);
        self.db.cf_handle(&name).ok_or_else(|| StateError::Corrupt {
            store: name,
            message: "column family missing: partition not initialised".into(),
        })
    }

    fn meta(&self) -> Arc<rocksdb::BoundColumnFamily<'_>> {
        self.db
            .cf_handle(META_CF)
            .expect("meta column family is created on open")
    }

    /// The next offset to read for each input topic of `partition`, as last committed.
    pub fn offsets(&self, partition: i32) -> Result<HashMap<String, i64>, StateError> {
        let prefix = format!("offset/{partition}/");
        self.meta_prefix(&prefix, |v| Ok(i64::from_be_bytes(fixed8(v, "offset")?)))
    }

    /// The durable counters of `partition`.
    pub fn counters(&self, partition: i32) -> Result<HashMap<String, i64>, StateError> {
        let prefix = format!("counter/{partition}/");
        self.meta_prefix(&prefix, |v| Ok(i64::from_be_bytes(fixed8(v, "counter")?)))
    }

    fn counter(&self, partition: i32, name: &str) -> Result<i64, StateError> {
        let key = counter_key(partition, name);
        match self.db.get_cf(&self.meta(), key)? {
            Some(v) => Ok(i64::from_be_bytes(fixed8(&v, "counter")?)),
            None => Ok(0),
        }
    }

    fn meta_prefix<T>(
        &self,
        prefix: &str,
        parse: impl Fn(&[u8]) -> Result<T, StateError>,
    ) -> Result<HashMap<String, T>, StateError> {
        let mut out = HashMap::new();
        let iter = self.db.iterator_cf(
            &self.meta(),
            rocksdb::IteratorMode::From(prefix.as_bytes(), rocksdb::Direction::Forward),
        );
        for entry in iter {
            let (k, v) = entry?;
            let Some(rest) = k.strip_prefix(prefix.as_bytes()) else {
                break;
            };
            out.insert(String::from_utf8_lossy(rest).into_owned(), parse(&v)?);
        }
        Ok(out)
    }

    /// Writes the transaction's state changes and the input offsets it covers atomically.
    /// Call only after the outputs the transaction produced have been acknowledged.
    pub fn commit(&self, txn: Txn<'_>, offsets: &[(i32, String, i64)]) -> Result<(), StateError> {
        let mut batch = WriteBatch::default();
        for ((partition, store, key), value) in txn.writes {
            let cf = self.cf(partition, store)?;
            match value {
                Some(v) => batch.put_cf(&cf, key, v),
                None => batch.delete_cf(&cf, key),
            }
        }
        let meta = self.meta();
        for ((partition, name), value) in txn.counters {
            batch.put_cf(&meta, counter_key(partition, &name), value.to_be_bytes());
        }
        for (partition, topic, next) in offsets {
            batch.put_cf(
                &meta,
                format!("offset/{partition}/{topic}"),
                next.to_be_bytes(),
            );
        }
        // The WAL makes the batch survive a process crash; after a machine crash the last
        // batches may be missing, together with their offsets, and are read again from Kafka.
        let mut options = WriteOptions::default();
        options.set_sync(false);
        self.db.write_opt(batch, &options)?;
        Ok(())
    }

    /// Flushes memtables so that a clean shutdown needs no WAL replay.
    pub fn flush(&self) -> Result<(), StateError> {
        self.db.flush_wal(true)?;
        Ok(())
    }
}

fn counter_key(partition: i32, name: &str) -> String {
    format!("counter/{partition}/{name}")
}

fn fixed8(v: &[u8], what: &str) -> Result<[u8; 8], StateError> {
    v.try_into().map_err(|_| StateError::Corrupt {
        store: META_CF.into(),
        message: format!("{what} of {} bytes", v.len()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_counters_and_offsets_commit_together_and_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = Store::open(dir.path()).unwrap();
            store.ensure_partition(3).unwrap();
            let mut txn = store.txn();
            txn.put(3, StoreName::Customers, b"SHARE|C1", b"state".to_vec());
            txn.add_to_counter(3, "actions.new", 2).unwrap();
            store.commit(txn, &[(3, "ar.items".into(), 42)]).unwrap();
        }
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(store.partitions(), vec![3]);
        assert_eq!(store.offsets(3).unwrap()["ar.items"], 42);
        assert_eq!(store.counters(3).unwrap()["actions.new"], 2);
        assert_eq!(
            store
                .txn()
                .get(3, StoreName::Customers, b"SHARE|C1")
                .unwrap(),
            Some(b"state".to_vec())
        );
    }

    #[test]
    fn an_uncommitted_txn_leaves_no_trace() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        store.ensure_partition(0).unwrap();
        let mut txn = store.txn();
        txn.put(0, StoreName::Customers, b"k", b"v".to_vec());
        assert_eq!(
            txn.get(0, StoreName::Customers, b"k").unwrap(),
            Some(b"v".to_vec())
        );
        drop(txn);
        assert_eq!(
            store.txn().get(0, StoreName::Customers, b"k").unwrap(),
            None
        );
        assert!(store.offsets(0).unwrap().is_empty());
    }
}
