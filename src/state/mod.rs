//! Local state in RocksDB: a column family per store and input partition (`ledger.3`,
//! `actions.3`, `timers-by-due.3`, `meta.3`, ...).
//!
//! Operators never touch RocksDB: they read and write through a [`Txn`], the per-batch cache
//! and write buffer. A finished `Txn` is a set of [`Changes`]; [`Store::apply`] writes them in
//! one `WriteBatch` together with the input offsets they cover (kept in the partition's `meta`
//! store), so state and offsets can never disagree after a crash.
//!
//! Keys of a customer's records in the per-customer stores start with [`customer_prefix`], so
//! one prefix scan finds them all.

mod txn;
pub mod value;

use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::sync::Arc;

use rocksdb::{
    BlockBasedOptions, Cache, ColumnFamilyDescriptor, DBWithThreadMode, MultiThreaded, Options,
    WriteBatch, WriteBufferManager, WriteOptions,
};
use thiserror::Error;

pub use txn::{StoreStats, Stored, Txn};

type Db = DBWithThreadMode<MultiThreaded>;

/// The stores each input partition has. The operator declares which it uses and how
/// (`pipeline::STORES`); the discriminants index per-store figures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum StoreName {
    /// Customer key → the customer's ledger, figures, violations and decisions (typed).
    Ledger,
    /// Customer + action id → one action (typed).
    Actions,
    /// Customer + conversation id → the conversation as saved and its promise's status (typed).
    Conversations,
    /// Customer + kind + id → a closed action or finished conversation past the horizon
    /// (typed).
    History,
    /// Customer + timer name → due date.
    Timers,
    /// Due date + customer + timer name → nothing: `timers` in firing order.
    TimersByDue,
    /// Currency + customer key → nothing: who to re-evaluate when an exchange rate changes.
    CurrencyIndex,
    /// Owner + customer key → nothing: whose open actions an owner's list reads.
    OwnerIndex,
    /// Relationship + parent + customer key → nothing: the customers related to a parent
    /// (the customer action list's levels).
    ParentIndex,
    /// Input offsets, durable counters and the changelog's claim and commits of the
    /// partition.
    Meta,
    /// Store name → the next offset of its changelog this partition's local state reflects
    /// (local only: the position in the changelog itself).
    Checkpoint,
}

impl StoreName {
    pub const ALL: [StoreName; 11] = [
        StoreName::Ledger,
        StoreName::Actions,
        StoreName::Conversations,
        StoreName::History,
        StoreName::Timers,
        StoreName::TimersByDue,
        StoreName::CurrencyIndex,
        StoreName::OwnerIndex,
        StoreName::ParentIndex,
        StoreName::Meta,
        StoreName::Checkpoint,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            StoreName::Ledger => "ledger",
            StoreName::Actions => "actions",
            StoreName::Conversations => "conversations",
            StoreName::History => "history",
            StoreName::Timers => "timers",
            StoreName::TimersByDue => "timers-by-due",
            StoreName::CurrencyIndex => "customers-by-currency",
            StoreName::OwnerIndex => "customers-by-owner",
            StoreName::ParentIndex => "customers-by-parent",
            StoreName::Meta => "meta",
            StoreName::Checkpoint => "checkpoint",
        }
    }

    /// Typed stores hold encoded values read through the batch's cache; the others bytes.
    pub fn is_typed(self) -> bool {
        matches!(
            self,
            StoreName::Ledger | StoreName::Actions | StoreName::Conversations | StoreName::History
        )
    }

    fn cf_name(self, partition: i32) -> String {
        // Several times a record: `format!` was 0.8 % of the hot path's instructions.
        let store = self.as_str();
        let mut name = String::with_capacity(store.len() + 12);
        name.push_str(store);
        name.push('.');
        name.push_str(itoa::Buffer::new().format(partition));
        name
    }
}

/// How the operator uses a store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreSpec {
    pub name: StoreName,
    /// Written to its changelog topic; otherwise derived locally from another store.
    pub changelogged: bool,
    pub what: &'static str,
}

/// The key prefix of every record of `customer` in a per-customer store: the customer key
/// with a 16-bit length in front (ids are at most 255 bytes, validated on input).
pub fn customer_prefix(customer: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(2 + customer.len() + 16);
    out.extend_from_slice(&(customer.len() as u16).to_be_bytes());
    out.extend_from_slice(customer.as_bytes());
    out
}

/// `customer_prefix(customer)` followed by `rest`.
pub fn customer_key(customer: &str, rest: &str) -> Vec<u8> {
    let mut out = customer_prefix(customer);
    out.extend_from_slice(rest.as_bytes());
    out
}

/// The customer and the rest of a key made by [`customer_key`].
pub fn split_customer_key(bytes: &[u8]) -> Option<(&str, &str)> {
    let len = u16::from_be_bytes([*bytes.first()?, *bytes.get(1)?]) as usize;
    let customer = std::str::from_utf8(bytes.get(2..2 + len)?).ok()?;
    let rest = std::str::from_utf8(bytes.get(2 + len..)?).ok()?;
    Some((customer, rest))
}

/// Keys of the meta store.
mod meta_key {
    pub const OFFSET: &str = "offset/";
    pub const COUNTER: &str = "counter/";

    pub fn offset(topic: &str) -> Vec<u8> {
        format!("{OFFSET}{topic}").into_bytes()
    }

    pub fn counter(name: &str) -> Vec<u8> {
        format!("{COUNTER}{name}").into_bytes()
    }
}

/// The input topic of a meta key that holds where a partition's input is committed up to
/// (`offset/<topic>`, its value the next offset as 8 bytes big-endian).
pub fn offset_topic(meta_key: &[u8]) -> Option<&str> {
    std::str::from_utf8(meta_key.strip_prefix(meta_key::OFFSET.as_bytes())?).ok()
}

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

/// What a finished batch changes: every write (`None`: delete) by partition, store and key,
/// in that order, and the batch's per-store figures.
pub struct Changes {
    pub writes: std::collections::BTreeMap<(i32, StoreName, Vec<u8>), Option<Vec<u8>>>,
    pub stats: [StoreStats; StoreName::ALL.len()],
}

/// How much memory RocksDB may use, whatever the number of partitions and stores: every column
/// family shares one block cache (index and filter blocks included) and one write-buffer
/// budget, so a node holding many partitions does not multiply RocksDB's per-family defaults
/// (a 64 MiB memtable and an 8 MiB cache each).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemoryBudget {
    /// The block cache shared by every store: hot blocks of the customers' records.
    pub block_cache_bytes: usize,
    /// All memtables together; a family whose memtable would overrun it is flushed early.
    pub write_buffer_bytes: usize,
}

impl Default for MemoryBudget {
    fn default() -> Self {
        MemoryBudget {
            block_cache_bytes: 256 << 20,
            write_buffer_bytes: 128 << 20,
        }
    }
}

/// What RocksDB holds in memory now (for the gauges).
#[derive(Debug, Clone, Copy, Default)]
pub struct MemoryUsage {
    pub block_cache_bytes: usize,
    pub write_buffer_bytes: usize,
}

/// What RocksDB's own statistics and properties say, summed over every store (for the
/// gauges an SRE watches: how big the live data is, whether writes stall, whether compaction
/// falls behind, how well the block cache serves reads).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EngineStats {
    pub live_data_bytes: u64,
    pub pending_compaction_bytes: u64,
    /// 1 while RocksDB stops writes (too many memtables or level-0 files), else 0.
    pub write_stopped: u64,
    /// The write rate RocksDB slows writers to (0: writes are not delayed).
    pub delayed_write_rate: u64,
    /// Block cache hits and misses since the store was opened.
    pub block_cache_hits: u64,
    pub block_cache_misses: u64,
}

/// The state directory's file system.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DiskSpace {
    pub size_bytes: u64,
    /// What an unprivileged process may still write.
    pub available_bytes: u64,
}

/// The options every column family is opened with: the shared cache and write-buffer budget.
struct Tuning {
    cache: Cache,
    write_buffers: WriteBufferManager,
    family: Options,
    /// The database's options, whose statistics (tickers only) the engine figures read.
    statistics: Options,
}

impl Tuning {
    fn new(budget: MemoryBudget) -> Tuning {
        let cache = Cache::new_lru_cache(budget.block_cache_bytes);
        // The memtables' memory is charged to the cache, so the two together stay within the
        // block cache plus the write-buffer budget; writes are not stalled, a full budget
        // flushes the largest memtable instead.
        let write_buffers = WriteBufferManager::new_write_buffer_manager_with_cache(
            budget.write_buffer_bytes,
            false,
            cache.clone(),
        );
        let mut table = BlockBasedOptions::default();
        table.set_block_cache(&cache);
        table.set_cache_index_and_filter_blocks(true);
        table.set_pin_l0_filter_and_index_blocks_in_cache(true);
        table.set_bloom_filter(10.0, false);
        let mut family = Options::default();
        family.set_block_based_table_factory(&table);
        // A memtable per family is at most a quarter of the budget, so one busy store cannot
        // take it all before the manager flushes.
        family.set_write_buffer_size((budget.write_buffer_bytes / 4).max(1 << 20));
        family.set_max_write_buffer_number(2);
        Tuning {
            cache,
            write_buffers,
            family,
            statistics: Options::default(),
        }
    }
}

#[derive(Clone)]
pub struct Store {
    db: Arc<Db>,
    tuning: Arc<Tuning>,
}

impl Store {
    /// Opens (or creates) the state directory with every column family it already has. A
    /// directory written before the stores were split is refused: open it with
    /// [`Store::open_migrating`].
    pub fn open(path: &Path) -> Result<Store, StateError> {
        Self::open_migrating(path, MemoryBudget::default(), |customer, _| {
            Err(format!(
                "{customer}: a customer value of the layout before the stores were split"
            ))
        })
    }

    /// Opens the state directory, moving what the layout before the stores were split left
    /// into today's stores once: `split` turns a customer's value of that layout into its
    /// records (store, key, encoded value).
    pub fn open_migrating(
        path: &Path,
        budget: MemoryBudget,
        split: legacy::Split,
    ) -> Result<Store, StateError> {
        let mut tuning = Tuning::new(budget);
        let mut options = tuning.family.clone();
        options.create_if_missing(true);
        options.create_missing_column_families(true);
        options.set_write_buffer_manager(&tuning.write_buffers);
        // Counters only (no histograms, no timers): the cheapest level that has the block
        // cache's hits and misses.
        options.enable_statistics();
        options.set_statistics_level(rocksdb::statistics::StatsLevel::ExceptHistogramOrTimers);
        tuning.statistics = options.clone();
        let mut names = Db::list_cf(&options, path).unwrap_or_default();
        if !names.iter().any(|n| n == "default") {
            names.push("default".into());
        }
        let descriptors = names
            .into_iter()
            .map(|name| ColumnFamilyDescriptor::new(name, tuning.family.clone()));
        let db = Db::open_cf_descriptors(&options, path, descriptors)?;
        let store = Store {
            db: Arc::new(db),
            tuning: Arc::new(tuning),
        };
        legacy::migrate(&store, split)?;
        Ok(store)
    }

    /// Creates the column families of `partition` if this node has never held it.
    pub fn ensure_partition(&self, partition: i32) -> Result<(), StateError> {
        for store in StoreName::ALL {
            let name = store.cf_name(partition);
            if self.db.cf_handle(&name).is_none() {
                self.db.create_cf(&name, &self.tuning.family)?;
            }
        }
        Ok(())
    }

    /// The partitions that have state on this node.
    pub fn partitions(&self) -> Vec<i32> {
        let mut found: Vec<i32> = Db::list_cf(&Options::default(), self.db.path())
            .unwrap_or_default()
            .iter()
            .filter_map(|n| n.strip_prefix("meta.")?.parse().ok())
            .collect();
        found.sort_unstable();
        found
    }

    /// The block cache's and the memtables' memory now.
    pub fn memory_usage(&self) -> MemoryUsage {
        MemoryUsage {
            block_cache_bytes: self.tuning.cache.get_usage(),
            write_buffer_bytes: self.tuning.write_buffers.get_usage(),
        }
    }

    /// The size of the file system the state directory is on, and what is free on it (for
    /// the disk-filling alert); `None` if it cannot be asked.
    pub fn disk_space(&self) -> Option<DiskSpace> {
        use std::os::unix::ffi::OsStrExt;
        let path = std::ffi::CString::new(self.db.path().as_os_str().as_bytes()).ok()?;
        // SAFETY: `path` is a valid C string and `stats` a plain struct statvfs fills in.
        let mut stats: libc::statvfs = unsafe { std::mem::zeroed() };
        if unsafe { libc::statvfs(path.as_ptr(), &mut stats) } != 0 {
            return None;
        }
        let block = stats.f_frsize as u64;
        Some(DiskSpace {
            size_bytes: stats.f_blocks as u64 * block,
            available_bytes: stats.f_bavail as u64 * block,
        })
    }

    /// RocksDB's figures, summed over every column family.
    pub fn engine_stats(&self) -> EngineStats {
        let mut stats = EngineStats::default();
        let names = Db::list_cf(&Options::default(), self.db.path()).unwrap_or_default();
        for name in names {
            let Some(cf) = self.db.cf_handle(&name) else {
                continue;
            };
            let property = |p: &str| {
                self.db
                    .property_int_value_cf(&cf, p)
                    .ok()
                    .flatten()
                    .unwrap_or(0)
            };
            stats.live_data_bytes += property("rocksdb.estimate-live-data-size");
            stats.pending_compaction_bytes += property("rocksdb.estimate-pending-compaction-bytes");
            stats.write_stopped = stats
                .write_stopped
                .max(property("rocksdb.is-write-stopped"));
            stats.delayed_write_rate = stats
                .delayed_write_rate
                .max(property("rocksdb.actual-delayed-write-rate"));
        }
        let ticker = |t| self.tuning.statistics.get_ticker_count(t);
        stats.block_cache_hits = ticker(rocksdb::statistics::Ticker::BlockCacheHit);
        stats.block_cache_misses = ticker(rocksdb::statistics::Ticker::BlockCacheMiss);
        stats
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

    /// The next offset to read for each input topic of `partition`, as last committed.
    pub fn offsets(&self, partition: i32) -> Result<HashMap<String, i64>, StateError> {
        self.meta_prefix(partition, meta_key::OFFSET)
    }

    /// The meta entries of `partition` under `prefix`, as numbers, by the rest of the key.
    pub fn meta_numbers(
        &self,
        partition: i32,
        prefix: &str,
    ) -> Result<HashMap<String, i64>, StateError> {
        self.meta_prefix(partition, prefix)
    }

    /// The durable counters of `partition`.
    pub fn counters(&self, partition: i32) -> Result<HashMap<String, i64>, StateError> {
        self.meta_prefix(partition, meta_key::COUNTER)
    }

    fn counter(&self, partition: i32, name: &str) -> Result<i64, StateError> {
        match self.get(partition, StoreName::Meta, &meta_key::counter(name))? {
            Some(v) => Ok(i64::from_be_bytes(fixed8(&v, "counter")?)),
            None => Ok(0),
        }
    }

    fn meta_prefix(
        &self,
        partition: i32,
        prefix: &str,
    ) -> Result<HashMap<String, i64>, StateError> {
        if self
            .db
            .cf_handle(&StoreName::Meta.cf_name(partition))
            .is_none()
        {
            return Ok(HashMap::new());
        }
        self.scan(partition, StoreName::Meta, prefix.as_bytes(), |k| {
            k.starts_with(prefix.as_bytes())
        })?
        .into_iter()
        .map(|(k, v)| {
            let name = String::from_utf8_lossy(&k[prefix.len()..]).into_owned();
            Ok((name, i64::from_be_bytes(fixed8(&v, prefix)?)))
        })
        .collect()
    }

    /// Writes the transaction's state changes and the input offsets it covers atomically.
    /// Call only after the outputs the transaction produced have been acknowledged.
    pub fn commit(&self, txn: Txn<'_>, offsets: &[(i32, String, i64)]) -> Result<(), StateError> {
        self.apply(&txn.finish(offsets))
    }

    /// Writes a finished batch's changes in one `WriteBatch`.
    pub fn apply(&self, changes: &Changes) -> Result<(), StateError> {
        let mut batch = WriteBatch::default();
        // Writes come in (partition, store) order: one column family lookup per run of them.
        let mut family = None;
        for ((partition, store, key), value) in &changes.writes {
            let cf = match &family {
                Some((p, s, cf)) if p == partition && s == store => cf,
                _ => {
                    &family
                        .insert((*partition, *store, self.cf(*partition, *store)?))
                        .2
                }
            };
            match value {
                Some(v) => batch.put_cf(cf, key, v),
                None => batch.delete_cf(cf, key),
            }
        }
        // The WAL makes the batch survive a process crash; after a machine crash the last
        // batches may be missing, together with their offsets, and are read again from Kafka.
        let mut options = WriteOptions::default();
        options.set_sync(false);
        self.db.write_opt(batch, &options)?;
        Ok(())
    }

    /// A value of the partition's meta store (bytes), as committed.
    pub fn meta_value(&self, partition: i32, key: &[u8]) -> Result<Option<Vec<u8>>, StateError> {
        if self
            .db
            .cf_handle(&StoreName::Meta.cf_name(partition))
            .is_none()
        {
            return Ok(None);
        }
        self.get(partition, StoreName::Meta, key)
    }

    /// A value of any store as committed, as bytes (to write it to a changelog again).
    pub fn committed_value(
        &self,
        partition: i32,
        store: StoreName,
        key: &[u8],
    ) -> Result<Option<Vec<u8>>, StateError> {
        self.get(partition, store, key)
    }

    /// Every entry of a store of `partition`, in key order.
    pub fn entries(&self, partition: i32, store: StoreName) -> Result<KeyValues, StateError> {
        self.scan(partition, store, &[], |_| true)
    }

    /// The keys of a store of `partition` that `wanted` picks, in one pass over the store
    /// (values not copied).
    pub fn keys_where(
        &self,
        partition: i32,
        store: StoreName,
        mut wanted: impl FnMut(&[u8]) -> bool,
    ) -> Result<Vec<Vec<u8>>, StateError> {
        let cf = self.cf(partition, store)?;
        let mut out = Vec::new();
        for entry in self.db.iterator_cf(&cf, rocksdb::IteratorMode::Start) {
            let (k, _) = entry?;
            if wanted(&k) {
                out.push(k.to_vec());
            }
        }
        Ok(out)
    }

    /// Whether `partition` has anything in the stores `of`.
    pub fn has_data(&self, partition: i32, of: &[StoreName]) -> Result<bool, StateError> {
        for store in of {
            if self.db.cf_handle(&store.cf_name(partition)).is_none() {
                continue;
            }
            let cf = self.cf(partition, *store)?;
            if let Some(first) = self
                .db
                .iterator_cf(&cf, rocksdb::IteratorMode::Start)
                .next()
            {
                first?;
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// The changelog offsets `partition`'s local state reflects, by store.
    pub fn checkpoint(&self, partition: i32) -> Result<HashMap<StoreName, i64>, StateError> {
        if self
            .db
            .cf_handle(&StoreName::Checkpoint.cf_name(partition))
            .is_none()
        {
            return Ok(HashMap::new());
        }
        let mut out = HashMap::new();
        for (k, v) in self.entries(partition, StoreName::Checkpoint)? {
            let name = String::from_utf8_lossy(&k);
            if let Some(store) = StoreName::ALL.into_iter().find(|s| s.as_str() == name) {
                out.insert(store, i64::from_be_bytes(fixed8(&v, "checkpoint")?));
            }
        }
        Ok(out)
    }

    /// Drops everything `partition` has locally (before restoring it from its changelogs).
    pub fn wipe_partition(&self, partition: i32) -> Result<(), StateError> {
        for store in StoreName::ALL {
            let name = store.cf_name(partition);
            if self.db.cf_handle(&name).is_some() {
                self.db.drop_cf(&name)?;
            }
        }
        self.ensure_partition(partition)
    }

    /// Replaces every entry of a store of `partition` (rebuilding a derived store).
    pub fn rewrite(
        &self,
        partition: i32,
        store: StoreName,
        entries: impl IntoIterator<Item = (Vec<u8>, Vec<u8>)>,
    ) -> Result<(), StateError> {
        self.db.drop_cf(&store.cf_name(partition))?;
        self.db
            .create_cf(store.cf_name(partition), &self.tuning.family)?;
        let mut writer = self.bulk_writer();
        for (k, v) in entries {
            writer.put(partition, store, &k, Some(&v))?;
        }
        writer.finish().map(drop)
    }

    /// Writes for a restore: batched, without the write-ahead log, made durable by
    /// [`BulkWriter::finish`] (a crash before it leaves no checkpoint, so the restore starts
    /// again).
    pub fn bulk_writer(&self) -> BulkWriter<'_> {
        BulkWriter {
            store: self,
            batch: WriteBatch::default(),
            written: 0,
            families: BTreeSet::new(),
        }
    }

    /// Syncs the write-ahead log to disk (batches are written without a sync, see
    /// [`Store::commit`]): after a clean shutdown even a machine crash loses no batch. The
    /// memtables stay in the WAL, replayed at the next open.
    pub fn flush(&self) -> Result<(), StateError> {
        self.db.flush_wal(true)?;
        Ok(())
    }
}

/// See [`Store::bulk_writer`].
pub struct BulkWriter<'s> {
    store: &'s Store,
    batch: WriteBatch,
    written: u64,
    /// The column families written: each is flushed by `finish`.
    families: BTreeSet<(i32, StoreName)>,
}

impl BulkWriter<'_> {
    const BATCH: usize = 10_000;

    pub fn put(
        &mut self,
        partition: i32,
        store: StoreName,
        key: &[u8],
        value: Option<&[u8]>,
    ) -> Result<(), StateError> {
        let cf = self.store.cf(partition, store)?;
        match value {
            Some(v) => self.batch.put_cf(&cf, key, v),
            None => self.batch.delete_cf(&cf, key),
        }
        self.families.insert((partition, store));
        self.written += 1;
        if self.batch.len() >= Self::BATCH {
            self.write()?;
        }
        Ok(())
    }

    fn write(&mut self) -> Result<(), StateError> {
        let mut options = WriteOptions::default();
        options.disable_wal(true);
        self.store
            .db
            .write_opt(std::mem::take(&mut self.batch), &options)?;
        Ok(())
    }

    /// Writes what is left and flushes every column family written to disk (the writes
    /// skipped the WAL: `DB::flush` alone flushes only the default family, and a process
    /// killed afterwards lost what the others held in memory while the WAL's later batches
    /// survived). The records written.
    pub fn finish(mut self) -> Result<u64, StateError> {
        self.write()?;
        let families = self
            .families
            .iter()
            .map(|(partition, store)| self.store.cf(*partition, *store))
            .collect::<Result<Vec<_>, StateError>>()?;
        let refs: Vec<&Arc<rocksdb::BoundColumnFamily<'_>>> = families.iter().collect();
        if !refs.is_empty() {
            self.store
                .db
                .flush_cfs_opt(&refs, &rocksdb::FlushOptions::default())?;
        }
        Ok(self.written)
    }
}

fn fixed8(v: &[u8], what: &str) -> Result<[u8; 8], StateError> {
    v.try_into().map_err(|_| StateError::Corrupt {
        store: StoreName::Meta.as_str().into(),
        message: format!("{what} of {} bytes", v.len()),
    })
}

/// The layout before the stores were split: one JSON value per customer in `customers.N`,
/// timers by key in `timers-by-key.N`, and one `meta` family for every partition's offsets
/// (`offset/N/topic`) and counters (`counter/N/name`). Moved into today's stores when a
/// directory is opened, once.
pub mod legacy {
    use rocksdb::{Options, WriteBatch};

    use super::{Db, StateError, Store, StoreName, meta_key};

    /// Turns a customer's value of the previous layout into its records.
    pub type Split = fn(&str, &[u8]) -> Result<Vec<(StoreName, Vec<u8>, Vec<u8>)>, String>;

    pub(super) fn migrate(store: &Store, split: Split) -> Result<(), StateError> {
        let names = Db::list_cf(&Options::default(), store.db.path()).unwrap_or_default();
        for name in &names {
            if let Some(partition) = name.strip_prefix("customers.") {
                let partition: i32 = partition.parse().map_err(|_| corrupt(name))?;
                store.ensure_partition(partition)?;
                migrate_customers(store, name, partition, split)?;
            }
        }
        for name in &names {
            if let Some(partition) = name.strip_prefix("timers-by-key.") {
                let partition: i32 = partition.parse().map_err(|_| corrupt(name))?;
                store.ensure_partition(partition)?;
                copy(store, name, |k| {
                    Some((partition, StoreName::Timers, k.to_vec()))
                })?;
            }
        }
        if names.iter().any(|n| n == "meta") {
            copy(store, "meta", |k| {
                let text = std::str::from_utf8(k).ok()?;
                let (kind, rest) = text.split_once('/')?;
                let (partition, name) = rest.split_once('/')?;
                let partition: i32 = partition.parse().ok()?;
                let key = match kind {
                    "offset" => meta_key::offset(name),
                    "counter" => meta_key::counter(name),
                    _ => return None,
                };
                Some((partition, StoreName::Meta, key))
            })?;
        }
        Ok(())
    }

    fn corrupt(name: &str) -> StateError {
        StateError::Corrupt {
            store: name.into(),
            message: "not a partition's column family".into(),
        }
    }

    /// Splits each customer's JSON value into its records.
    fn migrate_customers(
        store: &Store,
        cf_name: &str,
        partition: i32,
        split: Split,
    ) -> Result<(), StateError> {
        let mut txn = store.txn();
        for (key, value) in read_all(store, cf_name)? {
            let customer = String::from_utf8_lossy(&key).into_owned();
            let records = split(&customer, &value).map_err(|message| StateError::Corrupt {
                store: cf_name.into(),
                message,
            })?;
            for (target, key, bytes) in records {
                txn.put_raw(partition, target, &key, bytes);
            }
        }
        store.apply(&txn.finish(&[]))?;
        store.db.drop_cf(cf_name)?;
        tracing::info!(
            column_family = cf_name,
            "Customer values of the previous layout split into ledger, actions and conversations."
        );
        Ok(())
    }

    fn read_all(store: &Store, cf_name: &str) -> Result<Vec<(Vec<u8>, Vec<u8>)>, StateError> {
        let cf = store
            .db
            .cf_handle(cf_name)
            .ok_or_else(|| corrupt(cf_name))?;
        store
            .db
            .iterator_cf(&cf, rocksdb::IteratorMode::Start)
            .map(|entry| {
                let (k, v) = entry?;
                Ok((k.to_vec(), v.to_vec()))
            })
            .collect()
    }

    /// Copies a family's entries where `to` says (partition, store, key), then drops it.
    fn copy(
        store: &Store,
        cf_name: &str,
        to: impl Fn(&[u8]) -> Option<(i32, StoreName, Vec<u8>)>,
    ) -> Result<(), StateError> {
        let mut batch = WriteBatch::default();
        for (k, v) in read_all(store, cf_name)? {
            if let Some((partition, target, key)) = to(&k) {
                store.ensure_partition(partition)?;
                batch.put_cf(&store.cf(partition, target)?, key, v);
            }
        }
        store.db.write(batch)?;
        store.db.drop_cf(cf_name)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The files of an open store, as a killed process leaves them (memtables lost).
    fn as_killed(from: &Path, to: &Path) {
        for entry in std::fs::read_dir(from).unwrap() {
            let entry = entry.unwrap();
            if entry.file_name() != "LOCK" {
                std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
            }
        }
    }

    /// A restore's bulk writes skip the WAL: once finished they are on disk in every family
    /// written, also when a batch with the WAL follows and the process is then killed.
    #[test]
    fn what_a_bulk_writer_finished_survives_a_kill() {
        let dir = tempfile::tempdir().unwrap();
        let killed = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        store.ensure_partition(2).unwrap();
        let mut writer = store.bulk_writer();
        for (s, key) in [
            (StoreName::Ledger, b"SHARE|C1"),
            (StoreName::Timers, b"SHARE|C2"),
        ] {
            writer.put(2, s, key, Some(b"restored")).unwrap();
        }
        writer.finish().unwrap();
        let mut txn = store.txn();
        txn.put(2, StoreName::Meta, b"after", b"logged".to_vec());
        store.commit(txn, &[]).unwrap();
        as_killed(dir.path(), killed.path());

        let reopened = Store::open(killed.path()).unwrap();
        assert_eq!(
            reopened.meta_value(2, b"after").unwrap(),
            Some(b"logged".to_vec())
        );
        for (s, key) in [
            (StoreName::Ledger, b"SHARE|C1"),
            (StoreName::Timers, b"SHARE|C2"),
        ] {
            assert_eq!(
                reopened.committed_value(2, s, key).unwrap(),
                Some(b"restored".to_vec()),
                "{} lost",
                s.as_str()
            );
        }
    }

    /// What tells a directory of before the changelogs (data, no checkpoint) from a new one:
    /// it once answered "no data" for every partition, and such a directory was wiped.
    #[test]
    fn has_data_sees_a_single_entry() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let stores = [StoreName::Ledger, StoreName::Actions];
        assert!(
            !store.has_data(3, &stores).unwrap(),
            "partition not initialised"
        );
        store.ensure_partition(3).unwrap();
        assert!(!store.has_data(3, &stores).unwrap(), "empty");
        let mut txn = store.txn();
        txn.put_raw(3, StoreName::Actions, b"SHARE|C1", b"x".to_vec());
        store.commit(txn, &[]).unwrap();
        assert!(store.has_data(3, &stores).unwrap());
        assert!(!store.has_data(3, &[StoreName::Ledger]).unwrap());
    }

    #[test]
    fn state_counters_and_offsets_commit_together_and_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = Store::open(dir.path()).unwrap();
            store.ensure_partition(3).unwrap();
            let mut txn = store.txn();
            txn.put(3, StoreName::Timers, b"k", b"state".to_vec());
            txn.put_value(3, StoreName::Ledger, b"SHARE|C1", "typed".to_string())
                .unwrap();
            txn.add_to_counter(3, "actions.new", 2).unwrap();
            store.commit(txn, &[(3, "ar.items".into(), 42)]).unwrap();
        }
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(store.partitions(), vec![3]);
        assert_eq!(store.offsets(3).unwrap()["ar.items"], 42);
        assert_eq!(store.counters(3).unwrap()["actions.new"], 2);
        let mut txn = store.txn();
        assert_eq!(
            txn.get(3, StoreName::Timers, b"k").unwrap(),
            Some(b"state".to_vec())
        );
        assert_eq!(
            txn.take_value::<String>(3, StoreName::Ledger, b"SHARE|C1")
                .unwrap(),
            Some("typed".to_string())
        );
    }

    /// A bounded scan merges the batch's own writes over the range its committed part covered
    /// and returns nothing beyond it, so one that goes on from its last key misses nothing.
    #[test]
    fn a_bounded_scan_merges_the_batchs_writes_and_goes_on_where_it_stopped() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        store.ensure_partition(0).unwrap();
        let mut txn = store.txn();
        for key in ["a", "b", "c", "d", "e"] {
            txn.put(0, StoreName::Timers, key.as_bytes(), Vec::new());
        }
        store.commit(txn, &[]).unwrap();
        let mut txn = store.txn();
        txn.delete(0, StoreName::Timers, b"b");
        txn.delete(0, StoreName::Timers, b"c");
        txn.put(0, StoreName::Timers, b"ab", Vec::new());
        txn.put(0, StoreName::Timers, b"z", Vec::new());
        let keys = |entries: KeyValues| -> Vec<String> {
            entries
                .into_iter()
                .map(|(k, _)| String::from_utf8(k).unwrap())
                .collect()
        };
        let scan = |from: &[u8]| {
            let scanned = txn
                .scan_limited(0, StoreName::Timers, from, |_| true, 3)
                .unwrap();
            let resume = scanned.resume_after.map(|k| String::from_utf8(k).unwrap());
            (keys(scanned.entries), resume)
        };
        // Committed a, b, c: b and c deleted by the batch, ab added inside that range. Not z:
        // it is beyond what was scanned, and returning it would skip the committed d and e.
        // Two entries of three, and still more to come: go on after c.
        assert_eq!(scan(b""), (vec!["a".into(), "ab".into()], Some("c".into())));
        // Going on: committed d, e (fewer than the limit), then the batch's z; nothing after.
        assert_eq!(
            scan(b"c\0"),
            (vec!["d".into(), "e".into(), "z".into()], None)
        );
        // From inside the range: committed b, c, d, the batch deleted two; go on after d.
        assert_eq!(scan(b"ab\0"), (vec!["d".into()], Some("d".into())));
        // Unbounded, it is the plain scan, the batch's deletes and adds merged.
        assert_eq!(
            keys(txn.scan(0, StoreName::Timers, b"", |_| true).unwrap()),
            ["a", "ab", "d", "e", "z"]
        );
        // More live entries than the limit: cut at the limit, go on after the last returned.
        let mut txn = store.txn();
        txn.put(0, StoreName::Timers, b"a1", Vec::new());
        let scanned = txn
            .scan_limited(0, StoreName::Timers, b"", |_| true, 3)
            .unwrap();
        assert_eq!(keys(scanned.entries), ["a", "a1", "b"]);
        assert_eq!(scanned.resume_after.as_deref(), Some(&b"b"[..]));
        assert_eq!(
            keys(txn.scan(0, StoreName::Timers, b"", |_| true).unwrap()),
            ["a", "a1", "b", "c", "d", "e"]
        );
    }

    #[test]
    fn memory_stays_within_the_budget_however_many_partitions_are_written() {
        let dir = tempfile::tempdir().unwrap();
        let budget = MemoryBudget {
            block_cache_bytes: 8 << 20,
            write_buffer_bytes: 4 << 20,
        };
        let store = Store::open_migrating(dir.path(), budget, |_, _| Err("none".into())).unwrap();
        // 8 partitions × 11 stores: RocksDB's defaults would allow 64 MiB of memtables each.
        let value = vec![7u8; 1000];
        for partition in 0..8 {
            store.ensure_partition(partition).unwrap();
            for round in 0..4 {
                let mut txn = store.txn();
                for n in 0..2000u32 {
                    let key = format!("SHARE|C{round}{n:06}");
                    txn.put(partition, StoreName::Timers, key.as_bytes(), value.clone());
                }
                store.commit(txn, &[]).unwrap();
                let usage = store.memory_usage();
                assert!(
                    usage.write_buffer_bytes <= 2 * budget.write_buffer_bytes,
                    "memtables {usage:?} over the budget"
                );
                assert!(usage.block_cache_bytes <= 2 * budget.block_cache_bytes);
            }
        }
        // Everything written is still there, flushed out of the bounded memtables.
        let mut txn = store.txn();
        for partition in 0..8 {
            assert_eq!(
                txn.get(partition, StoreName::Timers, b"SHARE|C3001999")
                    .unwrap(),
                Some(value.clone())
            );
        }
    }

    #[test]
    fn an_uncommitted_txn_leaves_no_trace() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        store.ensure_partition(0).unwrap();
        let mut txn = store.txn();
        txn.put(0, StoreName::Timers, b"k", b"v".to_vec());
        assert_eq!(
            txn.get(0, StoreName::Timers, b"k").unwrap(),
            Some(b"v".to_vec())
        );
        drop(txn);
        assert_eq!(store.txn().get(0, StoreName::Timers, b"k").unwrap(), None);
        assert!(store.offsets(0).unwrap().is_empty());
    }

    #[test]
    fn a_typed_value_is_decoded_once_per_batch_and_written_only_if_it_changed() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        store.ensure_partition(0).unwrap();
        let mut txn = store.txn();
        txn.put_value(0, StoreName::Actions, b"A", vec![1u32, 2])
            .unwrap();
        txn.put_value(0, StoreName::Actions, b"B", vec![3u32])
            .unwrap();
        store.commit(txn, &[]).unwrap();

        let mut txn = store.txn();
        for _ in 0..3 {
            let a: Vec<u32> = txn
                .take_value(0, StoreName::Actions, b"A")
                .unwrap()
                .unwrap();
            txn.put_value(0, StoreName::Actions, b"A", a).unwrap();
        }
        let mut b: Vec<u32> = txn
            .take_value(0, StoreName::Actions, b"B")
            .unwrap()
            .unwrap();
        b.push(4);
        txn.put_value(0, StoreName::Actions, b"B", b).unwrap();
        txn.put_value(0, StoreName::Actions, b"C", vec![5u32])
            .unwrap();
        txn.delete_value::<Vec<u32>>(0, StoreName::Actions, b"C")
            .unwrap();
        assert_eq!(
            txn.value_keys(0, StoreName::Actions, b"").unwrap(),
            vec![b"A".to_vec(), b"B".to_vec()]
        );
        let changes = txn.finish(&[]);
        let stats = changes.stats[StoreName::Actions as usize];
        assert_eq!((stats.reads, stats.hits), (3, 7), "{stats:?}");
        let written: Vec<&[u8]> = changes
            .writes
            .keys()
            .map(|(_, _, k)| k.as_slice())
            .collect();
        assert_eq!(
            written,
            [b"B".as_slice()],
            "A is unchanged, C never existed"
        );
        store.apply(&changes).unwrap();
        assert_eq!(
            store
                .txn()
                .take_value::<Vec<u32>>(0, StoreName::Actions, b"B")
                .unwrap(),
            Some(vec![3, 4])
        );
    }

    /// The build enables SSE4.2 and PCLMULQDQ (`.cargo/config.toml`) so that RocksDB checksums
    /// its write-ahead log and blocks with the CPU's instructions; a build without them (a
    /// `RUSTFLAGS` of its own, the config lost) checksums in software, 2 % of a record. RocksDB
    /// says which it has in its log when it opens.
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn rocksdb_computes_its_checksums_with_the_cpus_instructions() {
        let dir = tempfile::tempdir().unwrap();
        drop(Store::open(dir.path()).unwrap());
        let log = std::fs::read_to_string(dir.path().join("LOG")).unwrap();
        let line = log
            .lines()
            .find(|l| l.contains("Fast CRC32 supported"))
            .expect("RocksDB's log names its CRC32");
        assert!(
            line.ends_with("Fast CRC32 supported: Supported on x86"),
            "{line}"
        );
    }

    #[test]
    fn the_keys_under_a_prefix_are_the_committed_and_the_batchs_own_in_key_order() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        store.ensure_partition(0).unwrap();
        store.ensure_partition(1).unwrap();
        let mut txn = store.txn();
        for key in [&b"C/2"[..], b"C/5", b"D/1"] {
            txn.put_value(0, StoreName::Actions, key, 1u32).unwrap();
        }
        store.commit(txn, &[]).unwrap();
        let mut txn = store.txn();
        // The batch's own: a new key under the prefix, one deleted, and look-alikes elsewhere
        // (another partition, another store, outside the prefix) that must not show.
        txn.put_value(0, StoreName::Actions, b"C/3", 2u32).unwrap();
        txn.delete_value::<u32>(0, StoreName::Actions, b"C/5")
            .unwrap();
        txn.put_value(1, StoreName::Actions, b"C/4", 2u32).unwrap();
        txn.put_value(0, StoreName::History, b"C/6", 2u32).unwrap();
        txn.put_value(0, StoreName::Actions, b"CX", 2u32).unwrap();
        txn.put_value(0, StoreName::Actions, b"B/1", 2u32).unwrap();
        assert_eq!(
            txn.value_keys(0, StoreName::Actions, b"C/").unwrap(),
            vec![b"C/2".to_vec(), b"C/3".to_vec()]
        );
    }

    #[test]
    fn a_value_put_back_unchanged_is_not_rewritten_unless_the_batch_changed_it_before() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        store.ensure_partition(0).unwrap();
        let mut txn = store.txn();
        for key in [b"A", b"B"] {
            txn.put_value(0, StoreName::Actions, key, vec![1u32])
                .unwrap();
        }
        store.commit(txn, &[]).unwrap();

        let mut txn = store.txn();
        let take = |txn: &mut Txn<'_>, key: &[u8]| -> Vec<u32> {
            txn.take_value(0, StoreName::Actions, key).unwrap().unwrap()
        };
        // A: one record changes it, a later record of the batch leaves it as it found it.
        let mut a = take(&mut txn, b"A");
        a.push(2);
        txn.put_value(0, StoreName::Actions, b"A", a).unwrap();
        let a = take(&mut txn, b"A");
        txn.put_unchanged(0, StoreName::Actions, b"A", a).unwrap();
        // B: read and put back as read.
        let b = take(&mut txn, b"B");
        txn.put_unchanged(0, StoreName::Actions, b"B", b).unwrap();
        let changes = txn.finish(&[]);
        let written: Vec<(&[u8], Option<Vec<u32>>)> = changes
            .writes
            .iter()
            .map(|((_, _, k), v)| (k.as_slice(), v.as_ref().map(|v| value::decode(v).unwrap())))
            .collect();
        assert_eq!(written, [(b"A".as_slice(), Some(vec![1, 2]))]);
    }

    /// The claim "unchanged" is checked in debug builds (every test run): a caller that
    /// changed a value and said it did not is caught, not silently lost.
    #[test]
    #[cfg(debug_assertions)]
    #[should_panic(expected = "differs from what was read")]
    fn a_value_said_unchanged_that_changed_fails_loudly_in_debug_builds() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        store.ensure_partition(0).unwrap();
        let mut txn = store.txn();
        txn.put_value(0, StoreName::Actions, b"A", vec![1u32])
            .unwrap();
        store.commit(txn, &[]).unwrap();
        let mut txn = store.txn();
        let mut a: Vec<u32> = txn
            .take_value(0, StoreName::Actions, b"A")
            .unwrap()
            .unwrap();
        a.push(2);
        txn.put_unchanged(0, StoreName::Actions, b"A", a).unwrap();
        txn.finish(&[]);
    }

    #[test]
    fn customer_keys_keep_each_customers_records_under_one_prefix() {
        let key = customer_key("SHARE|AB", "COLL-1-1");
        assert!(key.starts_with(&customer_prefix("SHARE|AB")));
        assert!(!key.starts_with(&customer_prefix("SHARE|A")));
        assert_eq!(split_customer_key(&key), Some(("SHARE|AB", "COLL-1-1")));
    }
}
