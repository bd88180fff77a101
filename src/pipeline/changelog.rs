//! State that lives in Kafka. Every change of a changelogged store is also a record of its
//! compacted topic `<group id>-<store>-changelog`, partitioned like the inputs; the local
//! RocksDB is a cache of those topics and records (in `checkpoint`) the offsets it reflects.
//!
//! **Writing a batch** (see `run`), per partition it touches:
//! 1. every changelog record of the batch, each stamped with its writer
//!    (`condmon.writer: <epoch>.<seq>`), acknowledged; a newer claim's mark before them fences
//!    the writer here, before it sent any output of the batch;
//! 2. the outputs, acknowledged;
//! 3. one commit record (`commit/<epoch>` = seq) in the partition's `meta` changelog,
//!    acknowledged;
//! 4. the RocksDB write batch, with the changelog offsets it now reflects.
//!
//! Kafka cannot make 1–2 and 3 atomic without transactions, so a crash may leave records of a
//! batch without its commit. They are the **uncommitted tail**: never applied when the
//! partition is restored, and rewritten (with the committed value, or a tombstone) by the
//! first batch of whoever takes the partition next, so that the latest record of every key
//! is a committed one again before compaction keeps it.
//!
//! **Taking a partition** (on assignment, before its first record is read): catch up from the
//! checkpoint to the end of each changelog (or, without local state, wipe and restore from the
//! beginning) applying only committed records, in bulk without the write-ahead log, then one
//! durable flush; then claim the partition with a new epoch (`claim` in `meta`: the epoch, the
//! owner, and the last committed seq of every earlier epoch) with a mark of it in every other
//! changelog, acknowledged before any batch. A writer that lost the partition (a zombie: on
//! Tansu, whose group coordinator does not wait for members to give partitions up, a member
//! busy in a batch) finds the mark before its next batch's changelog records and stops before
//! sending that batch's outputs. A batch it had begun before the claim may still send them:
//! the new holder waits for that batch's commit (at most `pipeline.takeover_wait_ms`) and then
//! reads what it sent, so that its redo does not send it again.
//! A record is committed if its epoch is the claim's and its seq at most that epoch's latest
//! `commit/<epoch>`, or its epoch is an earlier one and its seq at most what the claim
//! recorded for it. Records of a writer that lost the partition (a zombie) carry an older
//! epoch and a seq the claim does not cover: they are never applied.
//!
//! Only the customers' own records and `meta` are logged. What the stores derive from the
//! customers (their timers, which each ledger lists, and the currency, owner and parent
//! indexes) would be most of a batch's changelog records for nothing a restore cannot work
//! out: the restore rebuilds it for every customer it applied a record of.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use thiserror::Error;
use tracing::info;

use super::STORES;
use crate::config::{Cleanup, Config, TopicSpec};
use crate::kafka::{BrokerError, LogReader, LogRecord, OutRecord};
use crate::metrics::Metrics;
use crate::state::{Changes, StateError, Store, StoreName, split_customer_key, value};

/// The header naming a changelog record's writer: `<epoch>.<seq>`.
pub const WRITER: &str = "condmon.writer";
/// Meta keys of the changelog's own bookkeeping.
const CLAIM: &[u8] = b"claim";
/// The key of a claim's mark in every other changelog of the partition: no store key starts
/// with a NUL (they are ids and dates).
const MARK: &[u8] = b"\0condmon\0claim";
const COMMIT: &str = "commit/";
/// `out/<topic>`: the next offset of the partition's outputs on that topic once its last batch
/// was committed. What lies beyond was sent by a batch that never committed.
const OUT: &str = "out/";
/// `quiet/<topic>`: where the inputs ended when condmon first took the partition up (see
/// `pipeline.first_start_quiet`).
pub const QUIET: &str = "quiet/";
/// `rerouted/<topic>/<partition>`: the last offset of that input partition whose record, sent
/// on through the repartition topic, this partition applied.
pub const REROUTED: &str = "rerouted/";

/// The changelog topic of a store.
pub fn topic(config: &Config, store: StoreName) -> String {
    format!("{}-{}-changelog", config.kafka.group_id, store.as_str())
}

/// The stores that have a changelog, in declaration order (`meta` last).
pub fn changelogged() -> impl Iterator<Item = StoreName> {
    STORES.iter().filter(|s| s.changelogged).map(|s| s.name)
}

/// Every topic condmon needs: the configuration's and the changelogs.
pub fn topic_specs(config: &Config) -> Vec<TopicSpec> {
    let mut specs = config.topics.all();
    specs.extend(changelogged().map(|store| TopicSpec {
        name: topic(config, store),
        stream: None,
        role: "changelog",
        cleanup: Cleanup::Compact,
    }));
    specs.push(TopicSpec {
        name: crate::api::directory::topic(config),
        stream: None,
        role: "internal",
        cleanup: Cleanup::Compact,
    });
    specs
}

/// Who holds a partition's changelog and what of the earlier epochs is committed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claim {
    pub epoch: u64,
    pub owner: String,
    /// The last committed seq of each earlier epoch.
    pub committed: BTreeMap<u64, u64>,
}

/// A partition's writer while held: its epoch, the last seq committed in it, and the offset
/// at which it expects its next record of each changelog — it is the only writer, so a record
/// landing further on means someone else wrote in between (see [`Writer::check`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Writer {
    pub epoch: u64,
    pub seq: u64,
    pub next: BTreeMap<StoreName, i64>,
}

impl Writer {
    fn header(&self) -> (String, String) {
        (WRITER.into(), format!("{}.{}", self.epoch, self.seq))
    }
}

/// Records another writer put into a changelog between two of ours: `[from, to)` of a
/// store's changelog of a partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gap {
    pub partition: i32,
    pub store: StoreName,
    pub from: i64,
    pub to: i64,
}

/// Moves each writer's expected offsets past what was delivered; the gaps where another
/// writer's records landed first.
pub fn check_delivered(
    config: &Config,
    writers: &mut BTreeMap<i32, Writer>,
    delivered: &[(OutRecord, i32, i64)],
) -> Vec<Gap> {
    let topics: BTreeMap<String, StoreName> =
        changelogged().map(|s| (topic(config, s), s)).collect();
    let mut landed: BTreeMap<(i32, StoreName), Vec<i64>> = BTreeMap::new();
    for (record, partition, offset) in delivered {
        if let Some(store) = topics.get(&record.topic) {
            landed
                .entry((*partition, *store))
                .or_default()
                .push(*offset);
        }
    }
    let mut gaps = Vec::new();
    for ((partition, store), mut offsets) in landed {
        let Some(writer) = writers.get_mut(&partition) else {
            continue;
        };
        offsets.sort_unstable();
        let mut expected = writer.next.get(&store).copied().unwrap_or(offsets[0]);
        for offset in offsets {
            if offset > expected {
                gaps.push(Gap {
                    partition,
                    store,
                    from: expected,
                    to: offset,
                });
            }
            expected = offset + 1;
        }
        writer.next.insert(store, expected);
    }
    gaps
}

/// What another writer did in a writer's changelogs.
#[derive(Debug)]
pub enum Intrusion {
    /// A newer claim: this instance lost the partition and must not commit for it again.
    Fenced {
        partition: i32,
        epoch: u64,
        owner: String,
    },
    /// Records of a writer that lost the partition (an older epoch): their keys must be
    /// rewritten so that compaction keeps this writer's records; the batches they belong to
    /// may still be sending outputs.
    Stale {
        keys: BTreeSet<(StoreName, Vec<u8>)>,
        writers: Unfinished,
    },
}

/// Reads what landed in `gaps` of `partition` (written by another writer) and says whether it
/// fences `epoch` or is a zombie's to repair.
pub fn investigate(
    config: &Config,
    partition: i32,
    epoch: u64,
    gaps: &[Gap],
) -> Result<Intrusion, RestoreError> {
    const IDLE: Duration = Duration::from_secs(30);
    let reader = LogReader::new(config)?;
    let stores: Vec<StoreName> = gaps.iter().map(|g| g.store).collect();
    let topics: Vec<String> = stores.iter().map(|s| topic(config, *s)).collect();
    let logs: Vec<(&str, i64, i64)> = gaps
        .iter()
        .zip(&topics)
        .map(|(g, t)| (t.as_str(), g.from, g.to))
        .collect();
    let mut fenced = None;
    let mut keys = BTreeSet::new();
    let mut writers = Unfinished::new();
    reader.read(partition, &logs, IDLE, |index, record: LogRecord| {
        let store = stores[index];
        if is_claim(store, &record.key) {
            if let Some(bytes) = &record.value {
                let claim: Claim = value::decode(bytes).map_err(corrupt_claim)?;
                if claim.epoch > epoch {
                    fenced = Some(claim);
                }
            }
        } else if !(store == StoreName::Meta && record.key.starts_with(COMMIT.as_bytes())) {
            if let Some((epoch, seq)) = parse_writer(&record) {
                keep_highest_seq(&mut writers, epoch, seq);
            }
            keys.insert((store, record.key));
        }
        Ok::<(), RestoreError>(())
    })?;
    Ok(match fenced {
        Some(claim) => Intrusion::Fenced {
            partition,
            epoch: claim.epoch,
            owner: claim.owner,
        },
        None => Intrusion::Stale { keys, writers },
    })
}

/// The key of a claim in `store`'s changelog: the claim itself in `meta`, its mark elsewhere.
fn claim_key(store: StoreName) -> &'static [u8] {
    if store == StoreName::Meta {
        CLAIM
    } else {
        MARK
    }
}

fn is_claim(store: StoreName, key: &[u8]) -> bool {
    key == claim_key(store)
}

/// Batches begun and not known to be committed: the highest seq each epoch wrote.
pub type Unfinished = BTreeMap<u64, u64>;

/// Keeps the highest seq of each epoch (of batches begun, or committed).
pub fn keep_highest_seq(seqs: &mut BTreeMap<u64, u64>, epoch: u64, seq: u64) {
    let highest = seqs.entry(epoch).or_default();
    *highest = (*highest).max(seq);
}

/// Waits until every batch of `unfinished` has its commit in the meta changelog of
/// `partition` (read from `from`), or `patience` passed: a writer that lost the partition
/// sends a batch's outputs before its commit, so once the commit is there, every output it
/// sent is too. False if it gave up waiting (the writer died, or is stuck retrying).
pub fn await_commits(
    config: &Config,
    partition: i32,
    from: i64,
    mut unfinished: Unfinished,
    patience: Duration,
) -> Result<bool, RestoreError> {
    const IDLE: Duration = Duration::from_secs(30);
    let reader = LogReader::new(config)?;
    let meta = topic(config, StoreName::Meta);
    let deadline = Instant::now() + patience;
    let mut at = from;
    loop {
        let (_, high) = reader.watermarks(&meta, partition)?;
        reader.read(
            partition,
            &[(meta.as_str(), at, high)],
            IDLE,
            |_, record: LogRecord| {
                if let (Some(epoch), Some(bytes)) = (commit_epoch(&record.key), &record.value)
                    && unfinished
                        .get(&epoch)
                        .is_some_and(|seq| seq_of(bytes).is_ok_and(|s| s >= *seq))
                {
                    unfinished.remove(&epoch);
                }
                Ok::<(), RestoreError>(())
            },
        )?;
        at = at.max(high);
        if unfinished.is_empty() {
            return Ok(true);
        }
        if Instant::now() >= deadline {
            return Ok(false);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn commit_epoch(key: &[u8]) -> Option<u64> {
    std::str::from_utf8(key.strip_prefix(COMMIT.as_bytes())?)
        .ok()?
        .parse()
        .ok()
}

fn parse_writer(record: &LogRecord) -> Option<(u64, u64)> {
    let (epoch, seq) = record.header(WRITER)?.split_once('.')?;
    Some((epoch.parse().ok()?, seq.parse().ok()?))
}

fn commit_key(epoch: u64) -> Vec<u8> {
    format!("{COMMIT}{epoch}").into_bytes()
}

#[derive(Debug, Error)]
pub enum RestoreError {
    #[error(transparent)]
    State(#[from] StateError),
    #[error(transparent)]
    Broker(#[from] BrokerError),
    #[error("{0}")]
    Inconsistent(String),
}

/// What taking a partition found and decided.
#[derive(Debug)]
pub struct TakenOver {
    pub partition: i32,
    /// The claim to write (and to hold the partition under) before its first batch.
    pub claim: Claim,
    /// Changelog keys whose latest record is not committed: rewritten by the first batch.
    pub repairs: BTreeSet<(StoreName, Vec<u8>)>,
    pub records_applied: u64,
    pub records_read: u64,
    pub from_scratch: bool,
    /// Where each changelog ended when it was read (the writer's first expected offsets).
    pub ends: BTreeMap<StoreName, i64>,
    /// The business date the batch that never committed was decided on (from its records in
    /// the changelogs' uncommitted tail): its redo decides on it, so that the state it keeps
    /// says what the outputs it had sent said.
    pub decided_on: Option<chrono::NaiveDate>,
    /// Where the batch to redo had read its inputs up to (by topic): it is decided on
    /// `decided_on` until the partition's committed input offsets reach these.
    pub redo_until: BTreeMap<String, i64>,
    /// Outputs already sent by batches that never committed, as (topic, event id): when those
    /// batches are redone, these are not sent again.
    pub sent: BTreeSet<(String, String)>,
    /// Output topics with no committed position yet, and where they end now.
    pub unpositioned: BTreeMap<String, i64>,
    /// A batch of another instance found without its commit: it may still be sending outputs
    /// (see [`await_commits`]).
    pub unfinished: Unfinished,
    /// A partition new to condmon (no state, no changelog) on inputs that hold records
    /// already: where each input ends now. Up to there its side effects are not sent (see
    /// `pipeline.first_start_quiet`).
    pub quiet: BTreeMap<String, i64>,
}

/// Brings `partition`'s local state up to what its changelogs have committed (catching up
/// from the checkpoint, or wiping and restoring from the beginning), and prepares the claim of
/// its next epoch. Blocks on the broker; nothing is emitted.
pub fn take_over(
    config: &Config,
    store: &Store,
    metrics: &Metrics,
    partition: i32,
    owner: &str,
) -> Result<TakenOver, RestoreError> {
    let started = Instant::now();
    store.ensure_partition(partition)?;
    let reader = LogReader::new(config)?;
    let mut ends = BTreeMap::new();
    for store_name in changelogged() {
        let t = topic(config, store_name);
        ends.insert(store_name, reader.watermarks(&t, partition)?);
    }
    let checkpoint = store.checkpoint(partition)?;
    // The epoch this state directory last claimed the partition under (read before a wipe):
    // its writer was the process that ran on this directory before, which RocksDB's lock
    // says is gone, so a batch of it found unfinished is not waited for.
    let own_epoch = match store.meta_value(partition, CLAIM)? {
        Some(bytes) => value::decode::<Claim>(&bytes).map_err(corrupt_claim)?.epoch,
        None => 0,
    };
    let changelog_empty = ends.values().all(|(low, high)| high <= low);
    let stores: Vec<StoreName> = changelogged().collect();
    let mut repairs = BTreeSet::new();
    let mut from_scratch = false;
    let fresh = checkpoint.is_empty() && changelog_empty && !store.has_data(partition, &stores)?;
    let mut quiet = BTreeMap::new();
    if fresh && config.pipeline.first_start_quiet {
        for input in config.topics.partitioned_inputs() {
            let (_, high) = reader.watermarks(input, partition)?;
            if high > 0 {
                quiet.insert(input.to_string(), high);
            }
        }
        if !quiet.is_empty() {
            info!(
                partition,
                "First start on inputs that hold records: no notification, letter or ERP \
                 request is sent for them."
            );
        }
    }
    let mut starts: BTreeMap<StoreName, i64> = BTreeMap::new();
    if checkpoint.is_empty() && changelog_empty && store.has_data(partition, &stores)? {
        // State written before there were changelogs: it becomes the changelog, every key
        // written by the first batch.
        info!(
            partition,
            "Local state without a changelog: its first batch writes it to the changelog."
        );
        for store_name in &stores {
            for (key, _) in store.entries(partition, *store_name)? {
                repairs.insert((*store_name, key));
            }
        }
        starts = ends.iter().map(|(s, (_, high))| (*s, *high)).collect();
    } else {
        for (store_name, (low, high)) in &ends {
            match checkpoint.get(store_name) {
                Some(at) if *at > *high => {
                    return Err(RestoreError::Inconsistent(format!(
                        "{}/{partition}: the local state reflects the changelog up to offset {at} \
                         but it ends at {high}: the changelog was recreated or lost data",
                        topic(config, *store_name)
                    )));
                }
                Some(at) if *at >= *low => {
                    starts.insert(*store_name, *at);
                }
                _ => from_scratch = true,
            }
        }
        if from_scratch {
            store.wipe_partition(partition)?;
            starts = ends.iter().map(|(s, (low, _))| (*s, *low)).collect();
        }
    }
    let remaining: i64 = ends
        .iter()
        .map(|(s, (_, high))| (high - starts[s]).max(0))
        .sum();
    metrics.partitions_restoring.inc();
    metrics.restore_remaining.add(remaining);
    let result = restore(
        config,
        store,
        metrics,
        &reader,
        partition,
        &starts,
        &ends,
        &mut repairs,
        own_epoch,
    );
    metrics.partitions_restoring.dec();
    metrics.restore_remaining.sub(remaining);
    let Restored {
        claim,
        read: records_read,
        applied: records_applied,
        decided_on,
        redo_until,
        unfinished,
    } = result?;
    let (sent, unpositioned) =
        sent_uncommitted(config, store, &reader, partition, &BTreeMap::new())?;
    let elapsed = started.elapsed();
    info!(
        partition,
        from_scratch,
        records_read,
        records_applied,
        uncommitted = repairs.len(),
        outputs_sent_uncommitted = sent.len(),
        redo_decided_on = ?decided_on,
        ?redo_until,
        seconds = elapsed.as_secs_f64(),
        records_per_second = (records_read as f64 / elapsed.as_secs_f64().max(1e-9)) as u64,
        epoch = claim.epoch,
        "Partition restored from its changelogs."
    );
    Ok(TakenOver {
        partition,
        claim: Claim {
            owner: owner.to_string(),
            ..claim
        },
        repairs,
        records_applied,
        records_read,
        from_scratch,
        ends: ends.iter().map(|(s, (_, high))| (*s, *high)).collect(),
        decided_on,
        redo_until,
        sent,
        unpositioned,
        quiet,
        unfinished,
    })
}

/// The outputs of `partition` sent past its committed positions (by batches that never
/// committed: their redo must not send them again), and the output topics without a position.
/// Outputs are keyed by customer and co-partitioned with the inputs, so a partition's outputs
/// are on the same partition number of each output topic, and written only by its owner.
/// A topic without a position is read from where `unpositioned` says it ended before (none
/// when the partition is first taken: it is where it ends now).
fn sent_uncommitted(
    config: &Config,
    store: &Store,
    reader: &LogReader,
    partition: i32,
    unpositioned_before: &BTreeMap<String, i64>,
) -> Result<(BTreeSet<(String, String)>, BTreeMap<String, i64>), RestoreError> {
    let mut logs = Vec::new();
    let mut unpositioned = BTreeMap::new();
    let topics: Vec<String> = crate::model::Stream::OUTPUTS
        .iter()
        .map(|s| config.topics.topic(*s).to_string())
        .collect();
    for t in &topics {
        let (_, high) = reader.watermarks(t, partition)?;
        match store.meta_value(partition, &out_key(t))? {
            Some(bytes) => logs.push((t.as_str(), i64_of(&bytes)?, high)),
            None => {
                let from = unpositioned_before.get(t).copied().unwrap_or(high);
                logs.push((t.as_str(), from, high));
                unpositioned.insert(t.clone(), from);
            }
        }
    }
    let mut sent = BTreeSet::new();
    reader.read(
        partition,
        &logs,
        Duration::from_secs(30),
        |index, record| {
            if let Some(id) = record.header(super::EVENT_ID_HEADER) {
                sent.insert((logs[index].0.to_string(), id.to_string()));
            }
            Ok::<(), RestoreError>(())
        },
    )?;
    Ok((sent, unpositioned))
}

/// The outputs of a partition taken up with `unpositioned` sent past its committed positions
/// by now (a batch of its last holder may have sent more since it was restored).
pub fn sent_since_taken(
    config: &Config,
    store: &Store,
    partition: i32,
    unpositioned: &BTreeMap<String, i64>,
) -> Result<BTreeSet<(String, String)>, RestoreError> {
    let reader = LogReader::new(config)?;
    Ok(sent_uncommitted(config, store, &reader, partition, unpositioned)?.0)
}

fn out_key(topic: &str) -> Vec<u8> {
    format!("{OUT}{topic}").into_bytes()
}

fn i64_of(bytes: &[u8]) -> Result<i64, RestoreError> {
    bytes
        .try_into()
        .map(i64::from_be_bytes)
        .map_err(|_| RestoreError::Inconsistent(format!("a position of {} bytes", bytes.len())))
}

/// Reads the changelogs from `starts` to `ends`, applies what is committed and returns the
/// next claim with the records read and applied.
#[allow(clippy::too_many_arguments)]
fn restore(
    config: &Config,
    store: &Store,
    metrics: &Metrics,
    reader: &LogReader,
    partition: i32,
    starts: &BTreeMap<StoreName, i64>,
    ends: &BTreeMap<StoreName, (i64, i64)>,
    repairs: &mut BTreeSet<(StoreName, Vec<u8>)>,
    own_epoch: u64,
) -> Result<Restored, RestoreError> {
    const IDLE: Duration = Duration::from_secs(30);
    // Pass 1: the bookkeeping in `meta` says what is committed.
    let mut claim: Claim = match store.meta_value(partition, CLAIM)? {
        Some(bytes) => value::decode(&bytes).map_err(corrupt_claim)?,
        None => Claim::default(),
    };
    let mut commits: BTreeMap<u64, u64> = BTreeMap::new();
    if let Some(bytes) = store.meta_value(partition, &commit_key(claim.epoch))? {
        commits.insert(claim.epoch, seq_of(&bytes)?);
    }
    let mut highest_epoch = claim.epoch;
    let meta_topic = topic(config, StoreName::Meta);
    reader.read(
        partition,
        &[(
            &meta_topic,
            starts[&StoreName::Meta],
            ends[&StoreName::Meta].1,
        )],
        IDLE,
        |_, record: LogRecord| -> Result<(), RestoreError> {
            if let Some((epoch, _)) = parse_writer(&record) {
                highest_epoch = highest_epoch.max(epoch);
            }
            if record.key == CLAIM {
                if let Some(bytes) = &record.value {
                    claim = value::decode(bytes).map_err(corrupt_claim)?;
                    highest_epoch = highest_epoch.max(claim.epoch);
                }
            } else if let Some(epoch) = commit_epoch(&record.key)
                && epoch == claim.epoch
                && let Some(bytes) = &record.value
            {
                keep_highest_seq(&mut commits, epoch, seq_of(bytes)?);
            }
            Ok(())
        },
    )?;
    let mut committed = claim.committed.clone();
    if let Some(seq) = commits.get(&claim.epoch) {
        committed.insert(claim.epoch, *seq);
    }
    // Pass 2: every changelog, committed records applied.
    let stores: Vec<StoreName> = changelogged().collect();
    let topics: Vec<String> = stores.iter().map(|s| topic(config, *s)).collect();
    let logs: Vec<(&str, i64, i64)> = stores
        .iter()
        .zip(&topics)
        .map(|(s, t)| (t.as_str(), starts[s], ends[s].1))
        .collect();
    // Keys found uncommitted by an earlier restore of this directory and not rewritten since
    // (none after a wipe).
    repairs.extend(marked_repairs(store, partition)?);
    let mut applier = Applier::new(store, partition, &committed, repairs);
    let mut read = 0u64;
    reader.read(
        partition,
        &logs,
        IDLE,
        |index, record: LogRecord| -> Result<(), RestoreError> {
            read += 1;
            metrics.restore_records.inc();
            metrics.restore_remaining.dec();
            Ok(applier.apply(stores[index], record)?)
        },
    )?;
    let mut decided_on = applier.decided_on();
    // Of the input topics only (`offset/` also holds the reference data's fingerprint).
    let inputs = config.topics.partitioned_inputs();
    let of_inputs = |offsets: BTreeMap<String, i64>| -> BTreeMap<String, i64> {
        offsets
            .into_iter()
            .filter(|(topic_name, _)| inputs.contains(&topic_name.as_str()))
            .collect()
    };
    let mut redo_until = of_inputs(applier.tail_offsets().clone());
    // Only the last holder's batch can still be under way (an earlier one's writer was
    // fenced, or its batch is long over), and not if the last holder was this directory's.
    let unfinished: Unfinished = applier
        .unfinished()
        .iter()
        .filter(|(epoch, _)| **epoch == claim.epoch && **epoch != own_epoch)
        .map(|(e, s)| (*e, *s))
        .collect();
    let applied = applier.finish()?;
    // The checkpoint: everything up to the ends is reflected (applied, or to be repaired: the
    // marks of what is).
    let mut checkpoint = store.bulk_writer();
    mark_repairs(store, &mut checkpoint, partition, repairs)?;
    // A redo an earlier restore of this directory found, not finished since, is still to do:
    // its inputs are not all committed past where its batch had read them, or, for a batch
    // that read none (it fired timers), keys it wrote are still to be written again (a holder
    // that redid it since would have written them all).
    let (earlier_date, earlier_until) = marked_redo(store, partition)?;
    for key in redo_keys(earlier_until.keys()) {
        checkpoint.put(partition, StoreName::Checkpoint, &key, None)?;
    }
    let earlier_until = of_inputs(earlier_until);
    let stored = store.offsets(partition)?;
    let pending = if earlier_until.is_empty() {
        !repairs.is_empty()
    } else {
        !reached(&earlier_until, &BTreeMap::new(), &stored)
    };
    if earlier_date.is_some() && pending {
        decided_on = decided_on.max(earlier_date);
        for (topic_name, next) in earlier_until {
            let at = redo_until.entry(topic_name).or_insert(next);
            *at = (*at).max(next);
        }
    }
    mark_redo(&mut checkpoint, partition, decided_on, &redo_until)?;
    for (store_name, (_, high)) in ends {
        checkpoint.put(
            partition,
            StoreName::Checkpoint,
            store_name.as_str().as_bytes(),
            Some(&high.to_be_bytes()),
        )?;
    }
    checkpoint.finish()?;
    // The next epoch: after every epoch seen, covering what each committed.
    let next = Claim {
        epoch: highest_epoch + 1,
        owner: String::new(),
        committed,
    };
    Ok(Restored {
        claim: next,
        read,
        applied,
        decided_on,
        redo_until,
        unfinished,
    })
}

/// What [`restore`] found.
struct Restored {
    /// The next claim.
    claim: Claim,
    read: u64,
    applied: u64,
    decided_on: Option<chrono::NaiveDate>,
    redo_until: BTreeMap<String, i64>,
    /// The last holder's batch read without its commit (if another instance held it).
    unfinished: Unfinished,
}

/// Applies a partition's changelog records to its local stores, each changelog in offset
/// order: a committed record is written (in bulk, see [`Store::bulk_writer`]), any other's key
/// is remembered to be rewritten (and forgotten again if a committed record of it follows).
pub struct Applier<'s, 'r> {
    writer: crate::state::BulkWriter<'s>,
    store: &'s Store,
    partition: i32,
    /// The last committed seq of each epoch.
    committed: &'r BTreeMap<u64, u64>,
    repairs: &'r mut BTreeSet<(StoreName, Vec<u8>)>,
    /// The customers (encoded keys) whose ledger or actions were written: what the stores
    /// derive from them is rebuilt ([`crate::pipeline::customers::rebuild_derived`]).
    customers: BTreeSet<String>,
    /// The business date of the batch that wrote each key's record not committed (and not
    /// written again by a committed batch since).
    pending: BTreeMap<(StoreName, Vec<u8>), chrono::NaiveDate>,
    /// Where the records not committed had read their inputs up to (their `offset/<topic>`
    /// records in `meta`), by topic.
    tail_offsets: BTreeMap<String, i64>,
    unfinished: Unfinished,
}

impl<'s, 'r> Applier<'s, 'r> {
    pub fn new(
        store: &'s Store,
        partition: i32,
        committed: &'r BTreeMap<u64, u64>,
        repairs: &'r mut BTreeSet<(StoreName, Vec<u8>)>,
    ) -> Self {
        Applier {
            writer: store.bulk_writer(),
            store,
            partition,
            committed,
            repairs,
            customers: BTreeSet::new(),
            pending: BTreeMap::new(),
            tail_offsets: BTreeMap::new(),
            unfinished: Unfinished::new(),
        }
    }

    pub fn apply(&mut self, store: StoreName, record: LogRecord) -> Result<(), StateError> {
        if store != StoreName::Meta && is_claim(store, &record.key) {
            return Ok(()); // the changelog's bookkeeping, not state
        }
        let bookkeeping = store == StoreName::Meta
            && (is_claim(store, &record.key) || record.key.starts_with(COMMIT.as_bytes()));
        let committed = parse_writer(&record).is_some_and(|(epoch, seq)| {
            self.committed.get(&epoch).is_some_and(|last| seq <= *last)
        });
        if bookkeeping || committed {
            self.writer
                .put(self.partition, store, &record.key, record.value.as_deref())?;
            self.pending.remove(&(store, record.key.clone()));
            let customer = match store {
                StoreName::Ledger => std::str::from_utf8(&record.key).ok(),
                StoreName::Actions => split_customer_key(&record.key).map(|(c, _)| c),
                _ => None,
            };
            if let Some(customer) = customer {
                self.customers.insert(customer.to_string());
            }
            self.repairs.remove(&(store, record.key));
        } else {
            if let Some(date) = record
                .header(DECIDED_ON)
                .and_then(|d| d.parse::<chrono::NaiveDate>().ok())
            {
                self.pending.insert((store, record.key.clone()), date);
            }
            if let Some((epoch, seq)) = parse_writer(&record) {
                keep_highest_seq(&mut self.unfinished, epoch, seq);
            }
            if store == StoreName::Meta
                && let Some(topic_name) = crate::state::offset_topic(&record.key)
                && let Some(next) = record.value.as_deref().and_then(|v| v.try_into().ok())
            {
                let next = i64::from_be_bytes(next);
                let at = self
                    .tail_offsets
                    .entry(topic_name.to_string())
                    .or_insert(next);
                *at = (*at).max(next);
            }
            self.repairs.insert((store, record.key));
        }
        Ok(())
    }

    /// The business date of the batch the records not committed were written by (the latest,
    /// if several): its redo decides on it.
    pub fn decided_on(&self) -> Option<chrono::NaiveDate> {
        self.pending.values().max().copied()
    }

    /// Where the records not committed had read their inputs up to, by topic.
    pub fn tail_offsets(&self) -> &BTreeMap<String, i64> {
        &self.tail_offsets
    }

    /// The batches whose records were read without their commit.
    pub fn unfinished(&self) -> &Unfinished {
        &self.unfinished
    }

    /// Makes what was applied durable, then rebuilds what the stores derive from the customers
    /// written (timers, `timers-by-due`, indexes), or from every customer where the derived
    /// stores are of an older layout; the records applied.
    pub fn finish(mut self) -> Result<u64, StateError> {
        let applied = self.writer.finish()?;
        let current = super::customers::derived_current(self.store, self.partition)?;
        if !current {
            let all = super::customers::all_customers(self.store, self.partition)?;
            self.customers.extend(all);
        }
        // Also for no customer where the layout is older (an empty partition): it is marked.
        if !current || !self.customers.is_empty() {
            super::customers::rebuild_derived(self.store, self.partition, &self.customers)?;
            crate::timer::rebuild_due_index(self.store, self.partition)?;
        }
        Ok(applied)
    }
}

/// The prefix of the local marks (in `checkpoint`, never logged) of keys a restore found
/// uncommitted: `repair/<store> NUL <key>`. The checkpoint a restore writes lies past them, so
/// a process that stopped before its first batch rewrote them (a crash, a partition revoked
/// again at once) would not find them again by catching up; the marks keep them until the
/// batch that rewrites them commits. Otherwise compaction could keep an uncommitted record
/// as a key's last, and a later restore from scratch would lose the key's committed value.
const REPAIR: &[u8] = b"repair/";

fn repair_mark(store_name: StoreName, key: &[u8]) -> Vec<u8> {
    let mut mark = REPAIR.to_vec();
    mark.extend_from_slice(store_name.as_str().as_bytes());
    mark.push(0);
    mark.extend_from_slice(key);
    mark
}

fn repair_of(mark: &[u8]) -> Option<(StoreName, Vec<u8>)> {
    let rest = mark.strip_prefix(REPAIR)?;
    let nul = rest.iter().position(|b| *b == 0)?;
    let name = std::str::from_utf8(&rest[..nul]).ok()?;
    let store_name = StoreName::ALL.into_iter().find(|s| s.as_str() == name)?;
    Some((store_name, rest[nul + 1..].to_vec()))
}

/// The keys of `partition` a restore found uncommitted and no batch has rewritten since.
fn marked_repairs(
    store: &Store,
    partition: i32,
) -> Result<BTreeSet<(StoreName, Vec<u8>)>, StateError> {
    Ok(store
        .keys_where(partition, StoreName::Checkpoint, |k| k.starts_with(REPAIR))?
        .iter()
        .filter_map(|mark| repair_of(mark))
        .collect())
}

/// Marks exactly `repairs` as the keys of `partition` to rewrite (in `writer`, with the
/// checkpoint they belong to): the earlier marks deleted, these put (a later write of the
/// same key wins).
fn mark_repairs(
    store: &Store,
    writer: &mut crate::state::BulkWriter<'_>,
    partition: i32,
    repairs: &BTreeSet<(StoreName, Vec<u8>)>,
) -> Result<(), StateError> {
    for mark in store.keys_where(partition, StoreName::Checkpoint, |k| k.starts_with(REPAIR))? {
        writer.put(partition, StoreName::Checkpoint, &mark, None)?;
    }
    for (store_name, key) in repairs {
        writer.put(
            partition,
            StoreName::Checkpoint,
            &repair_mark(*store_name, key),
            Some(&[]),
        )?;
    }
    Ok(())
}

/// The local keys (in `checkpoint`, never logged) of a redo found by a restore: the date its
/// batch was decided on, and where that batch had read each input up to. Like the repair
/// marks they outlive a process that stops before the redo; the batch that reaches those
/// offsets deletes them ([`finish_redo`]).
const REDO_DATE: &[u8] = b"redo-date";
const REDO_UNTIL: &[u8] = b"redo-until/";

fn marked_redo(
    store: &Store,
    partition: i32,
) -> Result<(Option<chrono::NaiveDate>, BTreeMap<String, i64>), StateError> {
    let mut date = None;
    let mut until = BTreeMap::new();
    for (key, value) in store.entries(partition, StoreName::Checkpoint)? {
        if key == REDO_DATE {
            date = std::str::from_utf8(&value)
                .ok()
                .and_then(|d| d.parse().ok());
        } else if let Some(topic_name) = key.strip_prefix(REDO_UNTIL)
            && let (Ok(topic_name), Ok(next)) = (
                std::str::from_utf8(topic_name),
                <[u8; 8]>::try_from(value.as_slice()),
            )
        {
            until.insert(topic_name.to_string(), i64::from_be_bytes(next));
        }
    }
    Ok((date, until))
}

fn mark_redo(
    writer: &mut crate::state::BulkWriter<'_>,
    partition: i32,
    date: Option<chrono::NaiveDate>,
    until: &BTreeMap<String, i64>,
) -> Result<(), StateError> {
    let Some(date) = date else {
        return Ok(());
    };
    writer.put(
        partition,
        StoreName::Checkpoint,
        REDO_DATE,
        Some(date.to_string().as_bytes()),
    )?;
    for (topic_name, next) in until {
        writer.put(
            partition,
            StoreName::Checkpoint,
            &redo_until_key(topic_name),
            Some(&next.to_be_bytes()),
        )?;
    }
    Ok(())
}

fn redo_until_key(topic_name: &str) -> Vec<u8> {
    let mut key = REDO_UNTIL.to_vec();
    key.extend_from_slice(topic_name.as_bytes());
    key
}

/// The local keys of a redo whose batch had read `topics`.
fn redo_keys<'t>(topics: impl Iterator<Item = &'t String>) -> Vec<Vec<u8>> {
    std::iter::once(REDO_DATE.to_vec())
        .chain(topics.map(|t| redo_until_key(t)))
        .collect()
}

/// Whether every input in `until` is committed up to there, by this batch (`committed`) or
/// before it (`stored`).
fn reached(
    until: &BTreeMap<String, i64>,
    committed: &BTreeMap<&str, i64>,
    stored: &std::collections::HashMap<String, i64>,
) -> bool {
    until.iter().all(|(topic_name, next)| {
        committed
            .get(topic_name.as_str())
            .or(stored.get(topic_name))
            .is_some_and(|at| at >= next)
    })
}

/// Whether the redo of `partition` is over once `committed` (this batch's input offsets, by
/// topic) is: every input the batch to redo had read reached. If so, its local keys are
/// deleted with this batch (in `changes`).
pub fn finish_redo(
    store: &Store,
    changes: &mut Changes,
    partition: i32,
    until: &BTreeMap<String, i64>,
    committed: &BTreeMap<&str, i64>,
) -> Result<bool, StateError> {
    let done = reached(until, committed, &store.offsets(partition)?);
    if done {
        for key in redo_keys(until.keys()) {
            changes
                .writes
                .insert((partition, StoreName::Checkpoint, key), None);
        }
    }
    Ok(done)
}

fn corrupt_claim(message: String) -> RestoreError {
    RestoreError::State(StateError::Corrupt {
        store: StoreName::Meta.as_str().into(),
        message: format!("claim: {message}"),
    })
}

fn seq_of(bytes: &[u8]) -> Result<u64, RestoreError> {
    bytes
        .try_into()
        .map(u64::from_be_bytes)
        .map_err(|_| RestoreError::Inconsistent(format!("a commit of {} bytes", bytes.len())))
}

/// The claim of a taken partition as a meta changelog record and a mark in every other
/// changelog (delivered before its first batch): a writer that lost the partition finds the
/// mark before its next records in whichever changelog it writes.
pub fn claim_records(config: &Config, partition: i32, claim: &Claim) -> Vec<OutRecord> {
    let payload = value::encode(claim);
    changelogged()
        .map(|store| OutRecord {
            topic: topic(config, store),
            partition: Some(partition),
            key: Some(claim_key(store).to_vec()),
            payload: Some(payload.clone()),
            headers: vec![(WRITER.into(), format!("{}.0", claim.epoch))],
        })
        .collect()
}

/// The quiet marks of a partition new to condmon, as meta changelog records (with its claim).
pub fn quiet_records(
    config: &Config,
    partition: i32,
    epoch: u64,
    quiet: &BTreeMap<String, i64>,
) -> Vec<OutRecord> {
    quiet
        .iter()
        .map(|(topic_name, end)| OutRecord {
            topic: topic(config, StoreName::Meta),
            partition: Some(partition),
            key: Some(format!("{QUIET}{topic_name}").into_bytes()),
            payload: Some(end.to_be_bytes().to_vec()),
            headers: vec![(WRITER.into(), format!("{epoch}.0"))],
        })
        .collect()
}

/// The claim as a local write (with the checkpoint of the meta changelog past `meta_offset`,
/// where the claim's records ended).
pub fn claim_writes(
    partition: i32,
    claim: &Claim,
    meta_offset: i64,
) -> Vec<(i32, StoreName, Vec<u8>, Option<Vec<u8>>)> {
    vec![
        (
            partition,
            StoreName::Meta,
            CLAIM.to_vec(),
            Some(value::encode(claim)),
        ),
        (
            partition,
            StoreName::Checkpoint,
            StoreName::Meta.as_str().as_bytes().to_vec(),
            Some((meta_offset + 1).to_be_bytes().to_vec()),
        ),
    ]
}

/// The header on a batch's changelog records with the business date it was decided on.
pub const DECIDED_ON: &str = "condmon.business-date";

/// The changelog records of a finished batch (phase 1), the repairs of the partitions it
/// writes first. Partitions written are those with changes in a changelogged store or a
/// repair pending; each gets its writer's next seq.
pub fn batch_records(
    config: &Config,
    store: &Store,
    changes: &mut Changes,
    writers: &mut BTreeMap<i32, Writer>,
    repairs: &mut BTreeMap<i32, BTreeSet<(StoreName, Vec<u8>)>>,
    decided_on: chrono::NaiveDate,
) -> Result<(Vec<OutRecord>, Vec<i32>), StateError> {
    // Every record says the business date the batch was decided on: if the batch never
    // commits, the restore finds it in the uncommitted tail and the redo decides on it.
    let date = (DECIDED_ON.to_string(), decided_on.to_string());
    let changelogged: BTreeSet<StoreName> = changelogged().collect();
    let mut touched: BTreeSet<i32> = changes
        .writes
        .keys()
        .filter(|(_, s, _)| changelogged.contains(s))
        .map(|(p, _, _)| *p)
        .collect();
    // A change without its changelog would be lost by the next restore: a defect, not a case.
    if let Some(p) = touched.iter().find(|p| !writers.contains_key(p)) {
        return Err(StateError::Corrupt {
            store: StoreName::Meta.as_str().into(),
            message: format!("partition {p} changed but is not claimed by this instance"),
        });
    }
    touched.extend(repairs.keys().copied().filter(|p| writers.contains_key(p)));
    let mut records = Vec::new();
    let mut marks_done = Vec::new();
    for partition in &touched {
        let writer = writers.get_mut(partition).expect("retained above");
        writer.seq += 1;
        let stamp = writer.header();
        for (store_name, key) in repairs.remove(partition).unwrap_or_default() {
            marks_done.push((*partition, repair_mark(store_name, &key)));
            records.push(OutRecord {
                topic: topic(config, store_name),
                partition: Some(*partition),
                payload: store.committed_value(*partition, store_name, &key)?,
                key: Some(key),
                headers: vec![stamp.clone(), date.clone()],
            });
        }
    }
    for ((partition, store_name, key), value) in &changes.writes {
        if !changelogged.contains(store_name) || !touched.contains(partition) {
            continue;
        }
        records.push(OutRecord {
            topic: topic(config, *store_name),
            partition: Some(*partition),
            key: Some(key.clone()),
            payload: value.clone(),
            headers: vec![writers[partition].header(), date.clone()],
        });
    }
    // Rewritten once this batch commits, locally with it.
    for (partition, mark) in marks_done {
        changes
            .writes
            .insert((partition, StoreName::Checkpoint, mark), None);
    }
    Ok((records, touched.into_iter().collect()))
}

/// The records of phase 2 for the partitions a batch wrote: the positions its outputs
/// reached (for partitions taken up just now, every output topic's position), then each
/// partition's commit, last.
pub fn commit_records(
    config: &Config,
    writers: &BTreeMap<i32, Writer>,
    partitions: &[i32],
    positions: &BTreeMap<(i32, String), i64>,
) -> Vec<OutRecord> {
    let mut out = Vec::new();
    for p in partitions {
        let writer = &writers[p];
        let meta = |key: Vec<u8>, value: Vec<u8>| OutRecord {
            topic: topic(config, StoreName::Meta),
            partition: Some(*p),
            key: Some(key),
            payload: Some(value),
            headers: vec![writer.header()],
        };
        for ((_, t), next) in positions
            .range((*p, String::new())..)
            .take_while(|((q, _), _)| q == p)
        {
            out.push(meta(out_key(t), next.to_be_bytes().to_vec()));
        }
        out.push(meta(
            commit_key(writer.epoch),
            writer.seq.to_be_bytes().to_vec(),
        ));
    }
    out
}

/// The next offset each (partition, output topic) reached in `delivered`.
pub fn output_positions(
    config: &Config,
    delivered: &[(OutRecord, i32, i64)],
) -> BTreeMap<(i32, String), i64> {
    let outputs: BTreeSet<&str> = crate::model::Stream::OUTPUTS
        .iter()
        .map(|s| config.topics.topic(*s))
        .collect();
    let mut out: BTreeMap<(i32, String), i64> = BTreeMap::new();
    for (record, partition, offset) in delivered {
        if outputs.contains(record.topic.as_str()) {
            let at = out.entry((*partition, record.topic.clone())).or_default();
            *at = (*at).max(offset + 1);
        }
    }
    out
}

/// The local writes that go with a delivered batch: each partition's commit, and the
/// checkpoint past every changelog record delivered.
pub fn committed_writes(
    config: &Config,
    writers: &BTreeMap<i32, Writer>,
    partitions: &[i32],
    positions: &BTreeMap<(i32, String), i64>,
    delivered: &[(OutRecord, i32, i64)],
) -> Vec<(i32, StoreName, Vec<u8>, Option<Vec<u8>>)> {
    let mut out: Vec<(i32, StoreName, Vec<u8>, Option<Vec<u8>>)> = partitions
        .iter()
        .map(|p| {
            let writer = &writers[p];
            (
                *p,
                StoreName::Meta,
                commit_key(writer.epoch),
                Some(writer.seq.to_be_bytes().to_vec()),
            )
        })
        .collect();
    out.extend(
        positions
            .iter()
            .filter(|((p, _), _)| partitions.contains(p))
            .map(|((p, t), next)| {
                (
                    *p,
                    StoreName::Meta,
                    out_key(t),
                    Some(next.to_be_bytes().to_vec()),
                )
            }),
    );
    let topics: BTreeMap<String, StoreName> =
        changelogged().map(|s| (topic(config, s), s)).collect();
    let mut next: BTreeMap<(i32, StoreName), i64> = BTreeMap::new();
    for (record, partition, offset) in delivered {
        if let Some(store_name) = topics.get(&record.topic) {
            let at = next.entry((*partition, *store_name)).or_default();
            *at = (*at).max(offset + 1);
        }
    }
    out.extend(next.into_iter().map(|((p, s), offset)| {
        (
            p,
            StoreName::Checkpoint,
            s.as_str().as_bytes().to_vec(),
            Some(offset.to_be_bytes().to_vec()),
        )
    }));
    out
}
