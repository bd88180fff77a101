//! The Kafka run loop: batches in, outputs acknowledged, state and offsets committed.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use thiserror::Error;
use tokio::sync::watch;
use tracing::{debug, error, info, warn};

use super::{
    HEADER_OFFSET, HEADER_PARTITION, HEADER_TOPIC, Operator, Outcome, Payload, ProcessError,
    Rejection, RejectionKind, RulesChange, SourceRef, dead_letter_record, output_record,
};
use crate::codec::CodecError;
use crate::config::Config;
use crate::kafka::{BrokerError, GlobalReader, InputMessage, OutRecord, Sink, Source};
use crate::metrics::Metrics;
use crate::model::{OutputEvent, Stream};
use crate::state::{StateError, Store, StoreName, Txn};

use super::changelog::{self, TakenOver, Writer};
use crate::timer::{BusinessDate, Clock};

/// What stops the run loop. Broker trouble alone never does: it is retried.
#[derive(Debug, Error)]
pub enum PipelineError {
    #[error(transparent)]
    State(#[from] StateError),
    #[error("encoding an output: {0}")]
    Encode(#[from] CodecError),
    #[error("starting the Kafka clients: {0}")]
    Broker(#[from] BrokerError),
    #[error("{0}")]
    Partition(String),
    #[error("restoring or checking a changelog: {0}")]
    Changelog(#[from] changelog::RestoreError),
    /// Another instance claimed a partition this one was writing: it must not write it again.
    #[error(
        "partition {partition} was claimed by {owner} (epoch {epoch}) while this instance was \
         still writing it: stopping so that it does not write it again"
    )]
    Fenced {
        partition: i32,
        epoch: u64,
        owner: String,
    },
    /// A send failed the same way every time: retrying cannot help.
    #[error(
        "sending to {topic} fails with an error no retry recovers from ({error}); stopping \
         instead of retrying forever (check the topic exists and may be written, and that \
         pipeline.max_message_bytes is within the broker's limit)"
    )]
    SendRefused { topic: String, error: String },
    #[error("{0}")]
    Configuration(String),
}

/// Liveness for `/healthz`: the loop beats after every batch or idle wait.
pub struct Health {
    started: Instant,
    /// The last sign of life of the loop: progress, or an attempt of a retried send or batch.
    last_alive_ms: AtomicU64,
    ready: AtomicBool,
    /// Partitions held and up to date (restored and claimed): the only ones served.
    held: std::sync::Mutex<Vec<i32>>,
    /// The latest consumer lag by (input topic, partition), from the lag probe.
    lag: std::sync::Mutex<BTreeMap<(String, i32), i64>>,
}

/// What the probes compare with (`[pipeline]` in the configuration).
#[derive(Debug, Clone, Copy)]
pub struct ProbeLimits {
    /// `/livez` fails when the loop has shown no sign of life for this long.
    pub liveness_timeout: Duration,
    /// `/readyz` fails while a held partition lags more records than this behind its inputs.
    pub ready_max_lag: i64,
}

impl Health {
    pub fn new() -> Arc<Health> {
        Arc::new(Health {
            started: Instant::now(),
            last_alive_ms: AtomicU64::new(0),
            ready: AtomicBool::new(false),
            held: std::sync::Mutex::default(),
            lag: std::sync::Mutex::default(),
        })
    }

    fn hold(&self, partitions: Vec<i32>) {
        *self.held.lock().expect("held lock") = partitions;
    }

    /// The partitions held and up to date: what queries may read.
    pub fn held(&self) -> Vec<i32> {
        self.held.lock().expect("held lock").clone()
    }

    fn now_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    fn beat(&self) {
        self.ready.store(true, Ordering::Relaxed);
        self.last_alive_ms.store(self.now_ms(), Ordering::Relaxed);
    }

    /// The loop is working, if not progressing: a send or a batch being retried.
    fn alive(&self) {
        self.last_alive_ms.store(self.now_ms(), Ordering::Relaxed);
    }

    /// A partition's lag as the lag probe last measured it.
    pub fn record_lag(&self, topic: &str, partition: i32, lag: i64) {
        self.lag
            .lock()
            .expect("lag lock")
            .insert((topic.to_string(), partition), lag);
    }

    /// Live: the loop has run and has shown a sign of life within the timeout. A retried send
    /// or batch (a broker or registry outage) is life: restarting would not help it.
    pub fn is_live(&self, limits: ProbeLimits) -> bool {
        let since = self.now_ms() - self.last_alive_ms.load(Ordering::Relaxed);
        self.ready.load(Ordering::Relaxed) && since <= limits.liveness_timeout.as_millis() as u64
    }

    /// Ready to serve: live, holding at least one partition restored and claimed, and no held
    /// partition measured more than `ready_max_lag` records behind (an instance with no
    /// partitions, still restoring, or catching up a backlog is not). Inputs are measured from
    /// the positions committed with the state, so an input not read yet is not measured.
    /// `Err` says why not, for the probe's body.
    pub fn readiness(&self, limits: ProbeLimits) -> Result<(), &'static str> {
        if !self.is_live(limits) {
            return Err("not ready: the processing loop is not running");
        }
        let held = self.held();
        if held.is_empty() {
            return Err("not ready: no partition held and restored yet");
        }
        let lag = self.lag.lock().expect("lag lock");
        let behind = lag
            .iter()
            .any(|((_, p), l)| held.contains(p) && *l > limits.ready_max_lag);
        match behind {
            true => Err(
                "not ready: a held partition is more than pipeline.ready_max_lag records behind",
            ),
            false => Ok(()),
        }
    }
}

/// Waits `backoff` before a retry, showing the loop alive meanwhile. False on shutdown.
async fn wait_alive(rt: &Runtime, backoff: Duration, shutdown: &mut watch::Receiver<bool>) -> bool {
    let deadline = Instant::now() + backoff;
    loop {
        rt.health.alive();
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return true;
        }
        tokio::select! {
            _ = tokio::time::sleep(left.min(Duration::from_secs(1))) => {}
            _ = shutdown.changed() => return false,
        }
    }
}

/// Everything the loop needs, built by `condmon run`.
pub struct Runtime {
    pub config: Config,
    pub store: Store,
    pub operator: Operator,
    pub metrics: Metrics,
    pub clock: Arc<dyn Clock>,
    pub health: Arc<Health>,
    /// The partition count of the co-partitioned input topics (records are checked against
    /// murmur2 of their key modulo this).
    pub partitions: i32,
    /// This instance's name in the changelogs' claims.
    pub owner: String,
    pub faults: Faults,
}

/// Fault injection for the crash and poison-record tests, from the environment of
/// `condmon run`; all off in production.
#[derive(Debug, Clone, Default)]
pub struct Faults {
    /// `CONDMON_CRASH_AFTER_BATCHES=N`: abort right after the N-th batch's outputs and
    /// changelog records (its commits included) are acknowledged and before RocksDB commits.
    pub crash_after_batches: Option<u64>,
    /// `CONDMON_CRASH_UNCOMMITTED_AFTER_BATCHES=N`: abort after the N-th batch's outputs and
    /// changelog records are acknowledged and before its commit records are written: the
    /// changelog keeps an uncommitted tail.
    pub crash_uncommitted_after_batches: Option<u64>,
    /// `CONDMON_FAULT_PANIC_ON_KEY=K`: processing a record with key K panics.
    pub panic_on_key: Option<String>,
    /// `CONDMON_FAULT_PRODUCER_FATAL_AT_BATCH=N`: the producer raises a fatal error (through
    /// librdkafka's test hook) right before the N-th batch's changelog records and outputs are
    /// sent.
    pub producer_fatal_at_batch: Option<u64>,
    /// `CONDMON_FAULT_PAUSE_BEFORE_OUTPUTS_MS=N`: every batch with outputs stops this long
    /// between its acknowledged changelog records and its outputs (a member busy in a batch
    /// while its partitions are handed to another).
    pub pause_before_outputs: Option<Duration>,
    /// `CONDMON_FAULT_ABORT_AFTER_CLAIM=1`: abort right after partitions are restored and
    /// claimed, before any batch (keys the restore found to rewrite are not rewritten yet).
    pub abort_after_claim: bool,
}

impl Faults {
    pub fn from_env() -> Faults {
        Faults {
            crash_after_batches: std::env::var("CONDMON_CRASH_AFTER_BATCHES")
                .ok()
                .and_then(|v| v.parse().ok()),
            crash_uncommitted_after_batches: std::env::var(
                "CONDMON_CRASH_UNCOMMITTED_AFTER_BATCHES",
            )
            .ok()
            .and_then(|v| v.parse().ok()),
            panic_on_key: std::env::var("CONDMON_FAULT_PANIC_ON_KEY").ok(),
            producer_fatal_at_batch: std::env::var("CONDMON_FAULT_PRODUCER_FATAL_AT_BATCH")
                .ok()
                .and_then(|v| v.parse().ok()),
            pause_before_outputs: std::env::var("CONDMON_FAULT_PAUSE_BEFORE_OUTPUTS_MS")
                .ok()
                .and_then(|v| v.parse().ok())
                .map(Duration::from_millis),
            abort_after_claim: std::env::var("CONDMON_FAULT_ABORT_AFTER_CLAIM")
                .is_ok_and(|v| v == "1"),
        }
    }
}

/// Runs until `shutdown` turns true. Returns only on shutdown or an internal error.
pub async fn run(rt: Runtime, mut shutdown: watch::Receiver<bool>) -> Result<(), PipelineError> {
    // Partitions taken up by the consumer (restored in its rebalance callback), waiting for
    // their claim to be written before their first batch.
    let taken: Arc<std::sync::Mutex<Vec<TakenOver>>> = Arc::default();
    let on_assign: crate::kafka::OnAssign = {
        let (config, store, metrics, owner, taken) = (
            rt.config.clone(),
            rt.store.clone(),
            rt.metrics.clone(),
            rt.owner.clone(),
            taken.clone(),
        );
        Arc::new(move |partition| {
            let done = changelog::take_over(&config, &store, &metrics, partition, &owner)
                .map_err(|e| e.to_string())?;
            taken.lock().expect("taken lock").push(done);
            Ok(())
        })
    };
    rt.metrics.init_series(
        &rt.config
            .topics
            .partitioned_inputs()
            .into_iter()
            .map(String::from)
            .collect::<Vec<_>>(),
    );
    let on_stats: crate::kafka::OnStats = {
        let metrics = rt.metrics.clone();
        Arc::new(move |stats| metrics.set_client_stats(&stats))
    };
    let source = Source::new(
        &rt.config,
        rt.store.clone(),
        on_assign,
        Some(on_stats.clone()),
    )?;
    // The writer of each partition held (its epoch and last committed seq), and the changelog
    // keys each must rewrite (see `changelog`).
    let mut writers: BTreeMap<i32, Writer> = BTreeMap::new();
    let mut repairs: BTreeMap<i32, BTreeSet<(StoreName, Vec<u8>)>> = BTreeMap::new();
    // Outputs sent by batches that never committed, per partition: not sent again by the redo.
    let mut sent: BTreeMap<i32, BTreeSet<(String, String)>> = BTreeMap::new();
    // Output positions of partitions taken up, committed with their first batch.
    let mut positions: BTreeMap<(i32, String), i64> = BTreeMap::new();
    // Partitions new to condmon, built quietly from what their inputs held (see
    // `first_start_quiet`): input topic -> where the quiet part ends.
    let mut quiet: Quiet = BTreeMap::new();
    let sink = Sink::with_stats(&rt.config, Some(on_stats))?;
    let topics = &rt.config.topics;
    let reference = GlobalReader::new(&rt.config, &[&topics.fx_rates, &topics.rules])?;
    load_reference(&rt, &reference)?;
    let mut fingerprint = rt.operator.fingerprint();
    // Partitions whose state is known to be reconciled under `fingerprint`.
    let mut reconciled: BTreeMap<i32, i64> = BTreeMap::new();
    let pipeline = &rt.config.pipeline;
    let tick = Duration::from_millis(pipeline.tick_ms);
    let mut last_tick = Instant::now() - tick;
    // The partitions whose due timers are being fired, a bounded batch at a time, with the
    // position to go on from: each tick starts a sweep over every assigned partition, and a
    // sweep goes on batch after batch, without waiting for records, until no due timer is left.
    let mut sweep: BTreeMap<i32, Option<Vec<u8>>> = BTreeMap::new();
    // The business date the last sweep started on: a new date starts one at once, not at the
    // next tick (and an idle loop wakes when the clock may show one, see
    // `Clock::until_next_day`).
    let mut swept_on: Option<chrono::NaiveDate> = None;
    let mut business_date = BusinessDate::new(pipeline.max_clock_jump_days);
    let mut last_reading = None;
    // The business date and the moment this loop accepted it: timer lateness counts from
    // then when the clock stands at the start of the day (a file clock moved by a rehearsal).
    let mut day_began: Option<(chrono::NaiveDate, Instant)> = None;
    // The clock as read after the last batch, and when: the next wait is measured from that
    // reading less the time since, so a loop reads a file clock once per iteration, not twice.
    let (mut clock_now, mut clock_read_at) = (rt.clock.now(), Instant::now());
    // Partitions whose previous holder left a batch uncommitted, with the date it decided it
    // on and where it had read its inputs up to: the redo decides on that date until those
    // inputs are committed again (the clock's from then on).
    let mut redo_dates: BTreeMap<i32, chrono::NaiveDate> = BTreeMap::new();
    let mut redo_until: BTreeMap<i32, BTreeMap<String, i64>> = BTreeMap::new();
    let stop_lag = Arc::new(AtomicBool::new(false));
    // Stops the probe however the loop ends (shutdown or error).
    let _stop_probe = StopOnDrop(stop_lag.clone());
    let _lag_probe = {
        let (assigned, store, metrics, health) = (
            source.assigned_handle(),
            rt.store.clone(),
            rt.metrics.clone(),
            rt.health.clone(),
        );
        crate::kafka::spawn_lag_probe(
            &rt.config,
            LAG_INTERVAL,
            stop_lag.clone(),
            move || {
                let partitions: Vec<i32> = assigned
                    .lock()
                    .expect("assigned lock")
                    .iter()
                    .copied()
                    .collect();
                partitions
                    .into_iter()
                    .filter_map(|p| Some((p, store.offsets(p).ok()?)))
                    .flat_map(|(p, offsets)| offsets.into_iter().map(move |(t, o)| (p, t, o)))
                    .filter(|(_, topic, _)| topic != FINGERPRINT)
                    .collect()
            },
            move |topic, partition, lag| {
                health.record_lag(topic, partition, lag);
                metrics.set_partition_lag(topic, partition, lag)
            },
        )?
    };
    let mut batches_delivered = 0u64;
    info!(
        brokers = rt.config.kafka.brokers,
        group = rt.config.kafka.group_id,
        "condmon is running."
    );
    while !*shutdown.borrow() {
        let batch = tokio::select! {
            batch = source.next_batch(
                pipeline.max_batch,
                if sweep.is_empty() {
                    tick.min(rt.clock.until_next_day(clock_now).saturating_sub(clock_read_at.elapsed()))
                } else {
                    Duration::ZERO
                },
                Duration::from_millis(pipeline.linger_ms),
            ) => batch,
            _ = shutdown.changed() => break,
        };
        if let Some(problem) = source.problem() {
            return Err(PipelineError::Partition(problem));
        }
        let mut messages = match batch {
            Ok(messages) => messages,
            Err(e) => {
                warn!(error = %e, "Consumer error; retrying.");
                rt.health.alive();
                tokio::time::sleep(Duration::from_millis(pipeline.retry_backoff_ms)).await;
                continue;
            }
        };
        // Reference data (exchange rates, rule documents) is applied in the batch it arrives
        // in, re-evaluating the customers it concerns in every partition held.
        let reference_changed = {
            let arrived = reference.poll();
            let any = !arrived.is_empty();
            messages.extend(arrived);
            any
        };
        let assigned = source.assigned();
        let claimed = std::mem::take(&mut *taken.lock().expect("taken lock"));
        for t in &claimed {
            sent.insert(t.partition, t.sent.clone());
            if let Some(date) = t.decided_on {
                redo_dates.insert(t.partition, date);
                redo_until.insert(t.partition, t.redo_until.clone());
            }
            for (topic, next) in &t.unpositioned {
                positions.insert((t.partition, topic.clone()), *next);
            }
        }
        let claimed_partitions: Vec<i32> = claimed.iter().map(|t| t.partition).collect();
        if !claimed.is_empty()
            && !claim(
                &rt,
                &sink,
                claimed,
                &mut writers,
                &mut repairs,
                &mut sent,
                &mut shutdown,
            )
            .await?
        {
            break;
        }
        if rt.faults.abort_after_claim && !claimed_partitions.is_empty() {
            warn!("CONDMON_FAULT_ABORT_AFTER_CLAIM: aborting after the claim.");
            std::process::abort();
        }
        for partition in claimed_partitions {
            let marks = rt.store.meta_numbers(partition, changelog::QUIET)?;
            if !marks.is_empty() {
                quiet.insert(partition, marks.into_iter().collect());
            }
        }
        writers.retain(|p, _| assigned.contains(p));
        repairs.retain(|p, _| assigned.contains(p));
        sent.retain(|p, _| assigned.contains(p));
        positions.retain(|(p, _), _| assigned.contains(p));
        quiet.retain(|p, _| assigned.contains(p));
        rt.health.hold(writers.keys().copied().collect());
        (clock_now, clock_read_at) = (rt.clock.now(), Instant::now());
        let reading = business_date.read(clock_now.date_naive(), Instant::now());
        // Said once per change, not every loop.
        if (reading.held_days > 0 || reading.backwards) && Some(reading) != last_reading {
            warn!(
                clock = %clock_now.date_naive(),
                business_date = %reading.date,
                held_days = reading.held_days,
                backwards = reading.backwards,
                "The system clock disagrees with the time that passed: the business date is held \
                 and timers do not fire (restart condmon to accept the clock's date)."
            );
        }
        rt.metrics.set_clock_reading(&reading);
        last_reading = Some(reading);
        if day_began.map(|(date, _)| date) != Some(reading.date) {
            day_began = Some((reading.date, Instant::now()));
        }
        redo_dates.retain(|p, _| assigned.contains(p));
        redo_until.retain(|p, _| redo_dates.contains_key(p));
        let today = match redo_dates.values().max() {
            // A redo decides as its first attempt did, whatever the clock says now.
            Some(date) => *date,
            None => reading.date,
        };
        // A batch that needs something outside (the schema registry) is redone from scratch
        // until it can be: nothing of it is refused or committed meanwhile, and reference data
        // it changed is put back first, so the redo changes it again.
        let mut backoff = Duration::from_millis(pipeline.retry_backoff_ms);
        let snapshot = reference_changed.then(|| rt.operator.reference_snapshot());
        // Records whose outputs cannot be produced, or whose processing panicked: the batch is
        // redone without them and they are dead-lettered, so a poison record never stalls or
        // crash-loops a partition.
        let mut poisoned = BTreeMap::new();
        let (mut txn, mut records, mut offsets) = loop {
            let batch = Batch {
                messages: &messages,
                assigned: &assigned,
                today,
                poisoned: &poisoned,
                quiet: &quiet,
            };
            let failed = match process_batch(&rt, &batch) {
                Ok(done) => break done,
                Err(failed) => failed,
            };
            if let Some(snapshot) = &snapshot {
                rt.operator.restore_reference(snapshot.clone());
            }
            match failed {
                BatchError::External(e) => {
                    warn!(error = %e, retry_in = ?backoff, "External dependency unavailable; retrying the batch.");
                    rt.metrics.external_retries.inc();
                    if !wait_alive(&rt, backoff, &mut shutdown).await {
                        return Ok(());
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(30));
                }
                BatchError::Poison(index, rejection) => {
                    let message = &messages[index];
                    warn!(
                        topic = message.topic,
                        partition = message.partition,
                        offset = message.offset,
                        kind = rejection.kind.as_str(),
                        reason = rejection.reason,
                        "Record refused after processing; redoing the batch without it."
                    );
                    poisoned.insert(index, rejection);
                }
                BatchError::Fatal(e) => return Err(e),
            }
        };
        pass_quiet(&mut quiet, &offsets, &mut txn);
        if reference_changed {
            // The partitions that were up to date saw the change applied where it reached them;
            // the others still go through the stored fingerprint below.
            let before = fingerprint;
            fingerprint = rt.operator.fingerprint();
            for partition in &assigned {
                if reconciled.get(partition) == Some(&before) {
                    reconciled.insert(*partition, fingerprint);
                }
            }
        }
        reconciled.retain(|p, _| assigned.contains(p));
        for partition in &assigned {
            if reconciled.get(partition) == Some(&fingerprint) {
                continue;
            }
            let stored = rt.store.offsets(*partition)?.get(FINGERPRINT).copied();
            if stored != Some(fingerprint) {
                // Rules or rates changed while this partition's state was not held here.
                info!(
                    partition,
                    "Reference data changed since this state was reconciled: reconciling every customer."
                );
                let mut events = rt
                    .operator
                    .reconcile_partition(&mut txn, *partition, today)?;
                if quiet.contains_key(partition) {
                    suppress(&rt, &mut events);
                }
                records.extend(fit(&rt, encode(&rt, &events)?));
            }
            reconciled.insert(*partition, fingerprint);
        }
        for partition in &assigned {
            offsets.insert((*partition, FINGERPRINT.to_string()), fingerprint);
        }
        // While a clock jump is held no timer fires: no day of letters and holds sent early.
        let ticked = last_tick.elapsed() >= tick;
        if !reading.timers_allowed {
            sweep.clear();
        } else if (ticked || swept_on != Some(today)) && sweep.is_empty() {
            sweep = source.assigned().into_iter().map(|p| (p, None)).collect();
            swept_on = Some(today);
        }
        let timers_due = !sweep.is_empty();
        if ticked {
            last_tick = Instant::now();
        }
        let mut fired_due = Vec::new();
        if timers_due {
            let assigned = source.assigned();
            sweep.retain(|p, _| assigned.contains(p));
            for (partition, position) in std::mem::take(&mut sweep) {
                let fired = rt.operator.fire_timers_from(
                    &mut txn,
                    partition,
                    today,
                    position.as_deref(),
                    pipeline.max_batch,
                )?;
                let mut events = fired.events;
                if fired.next.is_some() {
                    sweep.insert(partition, fired.next);
                }
                fired_due.extend(fired.due);
                rt.metrics.timers_fired.inc_by(events.len() as u64);
                if quiet.contains_key(&partition) {
                    suppress(&rt, &mut events);
                }
                records.extend(fit(&rt, encode(&rt, &events)?));
            }
        }
        if records.is_empty() && txn.is_empty() && messages.is_empty() && repairs.is_empty() {
            rt.health.beat();
            if ticked {
                refresh_gauges(&rt, &source, today);
            }
            continue;
        }
        let committed: Vec<(i32, String, i64)> =
            offsets.into_iter().map(|((p, t), o)| (p, t, o)).collect();
        let commit_started = Instant::now();
        let mut changes = txn.finish(&committed);
        // 1. Outputs and changelog records, 2. the commits, 3. RocksDB (see `changelog`).
        let (logged, written) = changelog::batch_records(
            &rt.config,
            &rt.store,
            &mut changes,
            &mut writers,
            &mut repairs,
            today,
        )?;
        records.retain(|r| !already_sent(&rt, &mut sent, r));
        if rt.faults.producer_fatal_at_batch == Some(batches_delivered + 1) {
            warn!("CONDMON_FAULT_PRODUCER_FATAL_AT_BATCH reached: raising a fatal producer error.");
            sink.inject_fatal_error();
        }
        // The changelog first: if another instance claimed one of these partitions meanwhile,
        // its mark lies before them and this instance stops here, before sending any output
        // the new holder would send again.
        let Some(mut delivered) = deliver(&rt, &sink, logged, &mut shutdown).await? else {
            break; // shutting down mid-delivery: nothing committed, all will be redone.
        };
        guard(&rt, &mut writers, &mut repairs, &delivered)?;
        if let Some(pause) = rt.faults.pause_before_outputs
            && !records.is_empty()
        {
            warn!(
                ?pause,
                "CONDMON_FAULT_PAUSE_BEFORE_OUTPUTS_MS: pausing between the changelog records and the outputs."
            );
            tokio::time::sleep(pause).await;
        }
        let Some(outputs) = deliver(&rt, &sink, records, &mut shutdown).await? else {
            break;
        };
        delivered.extend(outputs);
        if rt.faults.crash_uncommitted_after_batches == Some(batches_delivered + 1) {
            warn!("CONDMON_CRASH_UNCOMMITTED_AFTER_BATCHES reached: aborting.");
            std::process::abort();
        }
        positions.extend(changelog::output_positions(&rt.config, &delivered));
        let commits = changelog::commit_records(&rt.config, &writers, &written, &positions);
        let Some(commits_delivered) = deliver(&rt, &sink, commits, &mut shutdown).await? else {
            break;
        };
        guard(&rt, &mut writers, &mut repairs, &commits_delivered)?;
        delivered.extend(commits_delivered);
        observe_latency(&rt, &messages, &fired_due, day_began);
        for (record, _, _) in &delivered {
            rt.metrics
                .records_out
                .with_label_values(&[&record.topic])
                .inc();
            if let Some(outcome) = record.header(super::OUTCOME_HEADER) {
                rt.metrics.outcomes.with_label_values(&[outcome]).inc();
            }
        }
        batches_delivered += 1;
        if rt.faults.crash_after_batches == Some(batches_delivered) {
            // Fault injection for the crash tests: the worst instant, outputs acknowledged and
            // state not committed. Nothing after this line runs.
            warn!(
                batch = batches_delivered,
                "CONDMON_CRASH_AFTER_BATCHES reached: aborting."
            );
            std::process::abort();
        }
        for (partition, store, key, value) in
            changelog::committed_writes(&rt.config, &writers, &written, &positions, &delivered)
        {
            changes.writes.insert((partition, store, key), value);
        }
        positions.retain(|(p, _), _| !written.contains(p));
        // A redo is over once this batch commits the inputs its batch had read (not merely
        // with the first batch: that one may only write the keys to repair, or fire timers).
        let mut redone = Vec::new();
        for (partition, until) in &redo_until {
            let here: BTreeMap<&str, i64> = committed
                .iter()
                .filter(|(p, _, _)| p == partition)
                .map(|(_, topic, next)| (topic.as_str(), *next))
                .collect();
            if changelog::finish_redo(&rt.store, &mut changes, *partition, until, &here)? {
                redone.push(*partition);
            }
        }
        rt.metrics.count_store_use(&changes);
        rt.store.apply(&changes)?;
        rt.metrics.committed(commit_started.elapsed());
        // From now on the clock decides for them.
        for partition in redone {
            redo_dates.remove(&partition);
            redo_until.remove(&partition);
        }
        rt.metrics.batches_committed.inc();
        for message in &messages {
            rt.metrics
                .records_committed
                .with_label_values(&[&message.topic])
                .inc();
        }
        let progress: Vec<(i32, String, i64)> = committed
            .into_iter()
            .filter(|(_, topic, _)| topic != FINGERPRINT)
            .collect();
        source.commit_progress(&progress);
        rt.health.beat();
        if ticked {
            refresh_gauges(&rt, &source, today);
        }
    }
    if rt.config.kafka.leave_group_on_shutdown
        && rt.config.kafka.assignment == crate::config::Assignment::Group
    {
        source.leave(Duration::from_secs(5)).await;
    }
    rt.store.flush()?;
    info!("condmon stopped cleanly.");
    Ok(())
}

enum BatchError {
    External(String),
    /// The record at this index cannot be taken in: redo the batch without it.
    Poison(usize, Rejection),
    Fatal(PipelineError),
}

impl From<PipelineError> for BatchError {
    fn from(e: PipelineError) -> Self {
        BatchError::Fatal(e)
    }
}

type Offsets = BTreeMap<(i32, String), i64>;

/// The pseudo-topic under which a partition's reference fingerprint is kept with its offsets.
const FINGERPRINT: &str = "reference.fingerprint";

/// Reads the reference topics to their end before any partition is processed.
fn load_reference(rt: &Runtime, reference: &GlobalReader) -> Result<(), PipelineError> {
    let messages = tokio::task::block_in_place(|| reference.catch_up(Duration::from_secs(60)))?;
    let mut scratch = rt.store.txn();
    for message in &messages {
        let key = message.key.as_deref().map(String::from_utf8_lossy);
        let problem = if message.topic == rt.config.topics.rules {
            let text = String::from_utf8_lossy(message.payload.as_deref().unwrap_or_default());
            let origin = format!("{}@{}/{}", message.topic, message.partition, message.offset);
            match rt
                .operator
                .replace_rules(&mut scratch, &[], &text, &origin, rt.clock.today())?
            {
                RulesChange::Rejected(rejection) => Some(rejection.reason),
                RulesChange::Applied { version, .. } => {
                    info!(version, "Rule set from the rules topic.");
                    None
                }
                RulesChange::Stale { .. } => None,
            }
        } else {
            let payload = match &message.payload {
                Some(bytes) => Payload::Avro(bytes),
                None => Payload::Tombstone,
            };
            rt.operator
                .load_reference(Stream::FxRates, key.as_deref(), payload)
                .map_err(|e| PipelineError::Partition(format!("loading exchange rates: {e}")))?
                .map(|r| r.reason)
        };
        rt.metrics
            .records_in
            .with_label_values(&[&message.topic])
            .inc();
        if let Some(reason) = problem {
            // Refused when it was first read live (and dead-lettered then): counted, not resent.
            warn!(
                topic = message.topic,
                offset = message.offset,
                reason,
                "Refused reference record skipped."
            );
        }
    }
    rt.metrics
        .rules_version
        .set(i64::from(rt.operator.rules().version));
    info!(records = messages.len(), "Reference data loaded.");
    Ok(())
}

/// Per partition new to condmon: input topic -> the offset up to which its records are
/// taken in quietly (see `first_start_quiet`).
type Quiet = BTreeMap<i32, BTreeMap<String, i64>>;

/// A batch's records and what they are processed against.
struct Batch<'a> {
    messages: &'a [InputMessage],
    assigned: &'a [i32],
    today: chrono::NaiveDate,
    /// Records the batch is being redone without (by index), and why: dead-lettered instead.
    poisoned: &'a BTreeMap<usize, Rejection>,
    quiet: &'a Quiet,
}

/// Takes the side effects (notifications, letters, ERP requests) out of `events`: they are of
/// what happened before condmon first ran.
fn suppress(rt: &Runtime, events: &mut Vec<OutputEvent>) {
    events.retain(|e| {
        let keep = !e.stream().is_side_effect();
        if !keep {
            rt.metrics
                .outputs_suppressed
                .with_label_values(&[rt.config.topics.topic(e.stream())])
                .inc();
        }
        keep
    });
}

/// Marks of quiet input topics the batch has read past are removed (in the batch's changes).
fn pass_quiet(quiet: &mut Quiet, offsets: &Offsets, txn: &mut Txn<'_>) {
    for ((partition, topic), next) in offsets {
        let Some(marks) = quiet.get_mut(partition) else {
            continue;
        };
        if marks.get(topic).is_some_and(|end| next >= end) {
            marks.remove(topic);
            let key = format!("{}{topic}", changelog::QUIET);
            txn.delete(*partition, StoreName::Meta, key.as_bytes());
            if marks.is_empty() {
                info!(
                    partition,
                    "Caught up with the records that were there at the first start: from now on \
                     everything is sent."
                );
            }
        }
    }
    quiet.retain(|_, marks| !marks.is_empty());
}

/// Runs every message of a batch through the operator in one transaction. Metrics are counted
/// only for a batch that went through, so a retried batch is not counted twice.
fn process_batch<'s>(
    rt: &'s Runtime,
    batch: &Batch<'_>,
) -> Result<(Txn<'s>, Vec<OutRecord>, Offsets), BatchError> {
    let mut txn = rt.store.txn();
    let mut records = Vec::new();
    let mut offsets = Offsets::new();
    let mut rejected = Vec::new();
    let mut rerouted = Vec::new();
    let mut rerouted_again = Vec::new();
    let mut already_held = Vec::new();
    // Each record's own processing time (decode to encoded outputs), observed if the batch
    // goes through.
    let mut timings = Vec::with_capacity(batch.messages.len());
    let partitioned = rt.config.topics.partitioned_inputs();
    for (index, message) in batch.messages.iter().enumerate() {
        let record_started = Instant::now();
        if partitioned.contains(&message.topic.as_str()) {
            offsets.insert(
                (message.partition, message.topic.clone()),
                message.offset + 1,
            );
        }
        let source = source_of(rt, message);
        if let Some(mark) = rerouted_mark(rt, message, &source) {
            let applied = txn
                .get(message.partition, StoreName::Meta, &mark)
                .map_err(|e| BatchError::Fatal(e.into()))?
                .and_then(|v| Some(i64::from_be_bytes(v.try_into().ok()?)));
            if applied.is_some_and(|last| source.offset <= last) {
                rerouted_again.push(source.topic);
                timings.push(record_started.elapsed());
                continue;
            }
            txn.put(
                message.partition,
                StoreName::Meta,
                &mark,
                source.offset.to_be_bytes().to_vec(),
            );
        }
        let outcome = if let Some(rejection) = batch.poisoned.get(&index) {
            Outcome::Rejected(rejection.clone())
        } else if let Some(route) = reroute(rt, message) {
            match route {
                Ok(record) => {
                    rerouted.push(message.topic.as_str());
                    records.push(record);
                    timings.push(record_started.elapsed());
                    continue;
                }
                Err(rejection) => Outcome::Rejected(rejection),
            }
        } else {
            let processed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                process_one(rt, &mut txn, message, batch)
            }));
            match processed {
                Ok(outcome) => outcome?,
                Err(panic) => {
                    let reason = format!("processing panicked: {}", panic_message(&panic));
                    error!(
                        topic = source.topic,
                        partition = source.partition,
                        offset = source.offset,
                        reason,
                        "A record made condmon panic: the batch is redone without it."
                    );
                    return Err(BatchError::Poison(
                        index,
                        Rejection {
                            kind: RejectionKind::Internal,
                            reason,
                        },
                    ));
                }
            }
        };
        match outcome {
            Outcome::Processed(mut events) => {
                let quiet_record = batch
                    .quiet
                    .get(&message.partition)
                    .and_then(|marks| marks.get(&message.topic))
                    .is_some_and(|end| message.offset < *end);
                if quiet_record {
                    suppress(rt, &mut events);
                }
                let encoded = encode(rt, &events)?;
                let max = rt.config.pipeline.max_message_bytes;
                let caused_by_customer = is_customer_record(rt, message);
                if caused_by_customer && let Some(big) = encoded.iter().find(|r| r.size() > max) {
                    return Err(BatchError::Poison(
                        index,
                        Rejection {
                            kind: RejectionKind::OutputTooLarge,
                            reason: format!(
                                "its output to {} would be {} bytes: over \
                                 pipeline.max_message_bytes ({max})",
                                big.topic,
                                big.size()
                            ),
                        },
                    ));
                }
                records.extend(fit(rt, encoded));
            }
            Outcome::AlreadyHeld => already_held.push(message.topic.as_str()),
            Outcome::Rejected(rejection) => {
                debug!(
                    topic = source.topic,
                    partition = source.partition,
                    offset = source.offset,
                    reason = rejection.reason,
                    "Dead letter."
                );
                rejected.push((message.topic.as_str(), rejection.kind));
                records.push(dead_letter_record(
                    &rt.config,
                    &source,
                    message.key.as_deref(),
                    message.payload.as_deref().unwrap_or_default(),
                    &rejection,
                ));
            }
        }
        timings.push(record_started.elapsed());
    }
    for took in timings {
        rt.metrics.processing_seconds.observe(took.as_secs_f64());
    }
    for message in batch.messages {
        rt.metrics
            .records_in
            .with_label_values(&[&message.topic])
            .inc();
    }
    for topic in already_held {
        rt.metrics
            .records_already_held
            .with_label_values(&[topic])
            .inc();
    }
    for (topic, kind) in rejected {
        rt.metrics
            .dead_letters
            .with_label_values(&[topic, kind.as_str()])
            .inc();
    }
    for topic in rerouted_again {
        rt.metrics
            .rerouted_duplicates
            .with_label_values(&[topic])
            .inc();
    }
    for topic in rerouted {
        let counter = rt.metrics.records_rerouted.with_label_values(&[topic]);
        if counter.get() == 0 {
            warn!(
                topic,
                repartition = rt.config.topics.repartition,
                "A record arrived on another partition than murmur2 of its key gives: its \
                 producer does not use the Java clients' partitioner (librdkafka clients: set \
                 `partitioner=murmur2_random`). Such records are sent on to the right \
                 partition through the repartition topic."
            );
        }
        counter.inc();
    }
    Ok((txn, records, offsets))
}

/// One record through the operator (or, from the rules topic, the rule set).
fn process_one(
    rt: &Runtime,
    txn: &mut Txn<'_>,
    message: &InputMessage,
    batch: &Batch<'_>,
) -> Result<Outcome, BatchError> {
    if let Some(key) = &rt.faults.panic_on_key
        && message.key.as_deref() == Some(key.as_bytes())
    {
        panic!("CONDMON_FAULT_PANIC_ON_KEY: injected panic for key {key}");
    }
    let payload = match &message.payload {
        Some(bytes) => Payload::Avro(bytes),
        None => Payload::Tombstone,
    };
    if message.topic == rt.config.topics.rules {
        let text = String::from_utf8_lossy(message.payload.as_deref().unwrap_or_default());
        let origin = format!("{}@{}/{}", message.topic, message.partition, message.offset);
        return Ok(
            match rt
                .operator
                .replace_rules(txn, batch.assigned, &text, &origin, batch.today)
                .map_err(|e| BatchError::Fatal(e.into()))?
            {
                RulesChange::Applied { version, events } => {
                    info!(version, "Rule set replaced live.");
                    rt.metrics.rules_version.set(i64::from(version));
                    Outcome::Processed(events)
                }
                RulesChange::Stale { offered, current } => {
                    info!(
                        offered,
                        current, "Rule document not newer than the rule set in force: ignored."
                    );
                    Outcome::Processed(Vec::new())
                }
                RulesChange::Rejected(rejection) => {
                    warn!(
                        reason = rejection.reason,
                        "Invalid rule document refused; the rule set in force stays."
                    );
                    Outcome::Rejected(rejection)
                }
            },
        );
    }
    let Some(stream) = stream_of(rt, message) else {
        return Ok(Outcome::Rejected(Rejection {
            kind: RejectionKind::Undecodable,
            reason: format!(
                "a record of the repartition topic must name the input topic it came from in \
                 `{HEADER_TOPIC}`"
            ),
        }));
    };
    let global = Stream::GLOBAL_INPUTS.contains(&stream);
    let partitions = if global {
        batch.assigned
    } else {
        std::slice::from_ref(&message.partition)
    };
    let key = message.key.as_deref().map(String::from_utf8_lossy);
    rt.operator
        .process(
            txn,
            partitions,
            stream,
            key.as_deref(),
            payload,
            batch.today,
        )
        .map_err(|e| match e {
            ProcessError::External(e) => BatchError::External(e),
            ProcessError::State(e) => BatchError::Fatal(e.into()),
            ProcessError::Configuration(e) => BatchError::Fatal(PipelineError::Configuration(e)),
        })
}

/// The stream a record is an event of: its topic's, or for a record sent on through the
/// repartition topic, the stream of the topic it first arrived on.
fn stream_of(rt: &Runtime, message: &InputMessage) -> Option<Stream> {
    let topics = &rt.config.topics;
    if message.topic == topics.repartition {
        let original = message.header(HEADER_TOPIC)?;
        topics
            .stream_of(original)
            .filter(|s| Stream::INPUTS.contains(s))
    } else {
        topics.stream_of(&message.topic)
    }
}

/// A record of a customer's (its outputs too large dead-letter it rather than being cut).
fn is_customer_record(rt: &Runtime, message: &InputMessage) -> bool {
    stream_of(rt, message).is_some_and(|s| Stream::INPUTS.contains(&s))
}

/// Where a record first arrived: a rerouted record names it in its headers.
fn source_of<'m>(rt: &Runtime, message: &'m InputMessage) -> SourceRef<'m> {
    let own = SourceRef {
        topic: &message.topic,
        partition: message.partition,
        offset: message.offset,
    };
    if message.topic != rt.config.topics.repartition {
        return own;
    }
    let parse = |name| message.header(name).and_then(|v| v.parse().ok());
    match (
        message.header(HEADER_TOPIC),
        parse(HEADER_PARTITION),
        parse(HEADER_OFFSET),
    ) {
        (Some(topic), Some(partition), Some(offset)) => SourceRef {
            topic,
            partition: partition as i32,
            offset,
        },
        _ => own,
    }
}

/// The meta key of the input partition a record of the repartition topic first arrived on,
/// which holds the last offset of it this partition applied. A batch of that partition that
/// is redone (a crash before its commit, a dead letter, a retry) sends its records on again:
/// applying one a second time could put an older version of an item over a newer one that
/// arrived on the right partition in between. `None` for any other record.
fn rerouted_mark(rt: &Runtime, message: &InputMessage, source: &SourceRef<'_>) -> Option<Vec<u8>> {
    (message.topic == rt.config.topics.repartition && source.topic != message.topic).then(|| {
        format!(
            "{}{}/{}",
            changelog::REROUTED,
            source.topic,
            source.partition
        )
        .into_bytes()
    })
}

/// A customer record on another partition than murmur2 of its key gives (a producer with
/// librdkafka's default CRC32 partitioner): sent on, bytes untouched, to the right partition of
/// the repartition topic, so that the customer's state is never split in two. `None` for a
/// record on its right partition; a rejection when it is too large to be sent on.
fn reroute(rt: &Runtime, message: &InputMessage) -> Option<Result<OutRecord, Rejection>> {
    let topics = &rt.config.topics;
    if message.topic == topics.repartition
        || !topics
            .stream_of(&message.topic)
            .is_some_and(|s| Stream::INPUTS.contains(&s))
    {
        return None;
    }
    let (key, payload) = (message.key.as_deref()?, message.payload.as_ref()?);
    let target = crate::kafka::partition_for(key, rt.partitions);
    if target == message.partition {
        return None;
    }
    let record = OutRecord {
        topic: topics.repartition.clone(),
        partition: Some(target),
        key: Some(key.to_vec()),
        payload: Some(payload.clone()),
        headers: vec![
            (HEADER_TOPIC.into(), message.topic.clone()),
            (HEADER_PARTITION.into(), message.partition.to_string()),
            (HEADER_OFFSET.into(), message.offset.to_string()),
        ],
    };
    if record.size() > rt.config.pipeline.max_message_bytes {
        return Some(Err(Rejection {
            kind: RejectionKind::WrongPartition,
            reason: format!(
                "on partition {} while murmur2 of its key gives {target} (its producer does not \
                 use the Java clients' partitioner), and too large ({} bytes) to be sent on",
                message.partition,
                record.size()
            ),
        }));
    }
    Some(Ok(record))
}

/// Outputs that time or reference data caused (no customer record to refuse): one too large to
/// be produced goes to the dead-letter topic itself, cut to fit, instead of stalling.
fn fit(rt: &Runtime, records: Vec<OutRecord>) -> Vec<OutRecord> {
    let max = rt.config.pipeline.max_message_bytes;
    records
        .into_iter()
        .map(|record| {
            if record.size() <= max {
                return record;
            }
            let rejection = Rejection {
                kind: RejectionKind::OutputTooLarge,
                reason: format!(
                    "an output of {} bytes (event {}) is over pipeline.max_message_bytes ({max})",
                    record.size(),
                    record.header("condmon.event-id").unwrap_or("-")
                ),
            };
            error!(
                topic = record.topic,
                reason = rejection.reason,
                "Output too large: dead-lettered."
            );
            rt.metrics
                .dead_letters
                .with_label_values(&[&record.topic, rejection.kind.as_str()])
                .inc();
            let source = SourceRef {
                topic: &record.topic,
                partition: -1,
                offset: -1,
            };
            dead_letter_record(
                &rt.config,
                &source,
                record.key.as_deref(),
                record.payload.as_deref().unwrap_or_default(),
                &rejection,
            )
        })
        .collect()
}

fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(no message)".into())
}

fn encode(rt: &Runtime, events: &[OutputEvent]) -> Result<Vec<OutRecord>, PipelineError> {
    events
        .iter()
        .map(|e| {
            output_record(&rt.config.topics, rt.operator.catalog(), e).map_err(PipelineError::from)
        })
        .collect()
}

/// The batch's outputs are acknowledged: how long after its input records were written, and
/// after the due instants of the timers that fired.
fn observe_latency(
    rt: &Runtime,
    messages: &[InputMessage],
    fired_due: &[chrono::NaiveDate],
    day_began: Option<(chrono::NaiveDate, Instant)>,
) {
    // Kafka timestamps are the producers' wall clocks, so this one is the wall clock too (the
    // injected business clock may be a file that tests move by days).
    let now_ms = chrono::Utc::now().timestamp_millis();
    for m in messages {
        if let Some(at) = m.timestamp_ms.filter(|at| *at > 0) {
            rt.metrics
                .record_e2e_latency
                .observe((now_ms - at).max(0) as f64 / 1000.0);
        }
    }
    let business_now = rt.clock.now();
    for due in fired_due {
        let seconds = timer_lateness(*due, business_now, day_began);
        rt.metrics.timer_lateness.observe(seconds);
    }
}

/// How late a timer due on `due` fired, in seconds: the longer of two measures, the time since
/// its day began on the business clock, and, for a timer of the day the loop is on, the wall
/// time since the loop took that day. A system clock's is the first (the loop takes the day
/// after midnight); a file clock stands at the start of the day all day, so only the second
/// moves.
fn timer_lateness(
    due: chrono::NaiveDate,
    business_now: chrono::DateTime<chrono::Utc>,
    day_began: Option<(chrono::NaiveDate, Instant)>,
) -> f64 {
    let due_instant = due.and_hms_opt(0, 0, 0).expect("midnight").and_utc();
    let by_clock = (business_now - due_instant).to_std().unwrap_or_default();
    let since_accepted = day_began
        .filter(|(date, _)| *date == due)
        .map(|(_, at)| at.elapsed())
        .unwrap_or_default();
    by_clock.max(since_accepted).as_secs_f64()
}

/// Whether `record` is an output that a batch which never committed sent already (it is then
/// not sent again: the redo gives it the same event id and bytes).
fn already_sent(
    rt: &Runtime,
    sent: &mut BTreeMap<i32, BTreeSet<(String, String)>>,
    record: &OutRecord,
) -> bool {
    let (Some(key), Some(id)) = (&record.key, record.header(super::EVENT_ID_HEADER)) else {
        return false;
    };
    let partition = crate::kafka::partition_for(key, rt.partitions);
    let Some(of) = sent.get_mut(&partition) else {
        return false;
    };
    let found = of.remove(&(record.topic.clone(), id.to_string()));
    if found {
        rt.metrics.outputs_not_resent.inc();
    }
    found
}

/// Sends `records` until the broker has acknowledged every one: a failure is sent again after
/// a back-off, with every later record of its key (in order: see `Sent::split_for_resend`).
/// A producer that raised a fatal error (an idempotent producer out of sequence) refuses
/// every send until it is replaced: it is recreated and the failed records sent again, at most
/// `RECREATIONS` times for one delivery. Any other failure no retry recovers from (see
/// `BrokerError::is_permanent`) that persists over `PERMANENT_ATTEMPTS` tries stops the
/// process with the reason. `Ok(None)` if shutdown interrupted it.
async fn deliver(
    rt: &Runtime,
    sink: &Sink,
    mut records: Vec<OutRecord>,
    shutdown: &mut watch::Receiver<bool>,
) -> Result<Option<Vec<(OutRecord, i32, i64)>>, PipelineError> {
    const PERMANENT_ATTEMPTS: u32 = 3;
    const RECREATIONS: u32 = 3;
    let mut backoff = Duration::from_millis(rt.config.pipeline.retry_backoff_ms);
    let mut delivered = Vec::with_capacity(records.len());
    let (mut permanent_attempts, mut recreations) = (0, 0);
    loop {
        let sent = sink.send_all(records).await;
        let Some((first, first_error)) = sent.failed.first() else {
            delivered.extend(sent.delivered);
            return Ok(Some(delivered));
        };
        if let Some(fatal) = sink.fatal_error() {
            recreations += 1;
            if recreations > RECREATIONS {
                return Err(PipelineError::SendRefused {
                    topic: first.topic.clone(),
                    error: format!("the producer failed fatally {RECREATIONS} times: {fatal}"),
                });
            }
            warn!(error = %fatal, "The producer failed fatally; replacing it and sending again.");
            sink.recreate()?;
            rt.metrics.producer_recreated.inc();
            permanent_attempts = 0;
        } else if sent.failed.iter().all(|(_, e)| e.is_permanent()) {
            permanent_attempts += 1;
            if permanent_attempts >= PERMANENT_ATTEMPTS {
                return Err(PipelineError::SendRefused {
                    topic: first.topic.clone(),
                    error: first_error.to_string(),
                });
            }
        } else {
            permanent_attempts = 0;
        }
        warn!(failed = sent.failed.len(), error = %first_error, retry_in = ?backoff, "Produce failed; retrying.");
        rt.metrics.produce_retries.inc();
        let (kept, again) = sent.split_for_resend();
        delivered.extend(kept);
        records = again;
        if !wait_alive(rt, backoff, shutdown).await {
            return Ok(None);
        }
        backoff = (backoff * 2).min(Duration::from_secs(30));
    }
}

/// Writes the claims of partitions just taken up (acknowledged before their first batch) and
/// starts their writers; the keys their restore found uncommitted are rewritten by the next
/// batch. False if shutdown interrupted it.
async fn claim(
    rt: &Runtime,
    sink: &Sink,
    taken: Vec<TakenOver>,
    writers: &mut BTreeMap<i32, Writer>,
    repairs: &mut BTreeMap<i32, BTreeSet<(StoreName, Vec<u8>)>>,
    sent: &mut BTreeMap<i32, BTreeSet<(String, String)>>,
    shutdown: &mut watch::Receiver<bool>,
) -> Result<bool, PipelineError> {
    let records = taken
        .iter()
        .flat_map(|t| {
            changelog::claim_records(&rt.config, t.partition, &t.claim)
                .into_iter()
                .chain(changelog::quiet_records(
                    &rt.config,
                    t.partition,
                    t.claim.epoch,
                    &t.quiet,
                ))
        })
        .collect();
    let Some(delivered) = deliver(rt, sink, records, shutdown).await? else {
        return Ok(false);
    };
    // Then the directory: queries for these partitions may now be sent here.
    let entries = taken
        .iter()
        .map(|t| directory_record(rt, t.partition, t.claim.epoch))
        .collect();
    if deliver(rt, sink, entries, shutdown).await?.is_none() {
        return Ok(false);
    }
    // Where each partition's last record (its claim, or a quiet mark after it) landed in the
    // meta changelog.
    let meta = changelog::topic(&rt.config, StoreName::Meta);
    let mut offsets: BTreeMap<i32, i64> = BTreeMap::new();
    for (_, p, o) in delivered.iter().filter(|(r, _, _)| r.topic == meta) {
        let last = offsets.entry(*p).or_insert(*o);
        *last = (*last).max(*o);
    }
    // Batches of the last holders that may still be sending outputs, and what is needed to
    // look at those outputs again once they are over.
    let mut unfinished: BTreeMap<i32, changelog::Unfinished> = BTreeMap::new();
    let mut looks: BTreeMap<i32, (i64, BTreeMap<String, i64>)> = BTreeMap::new();
    for t in &taken {
        if !t.unfinished.is_empty() {
            unfinished.insert(t.partition, t.unfinished.clone());
        }
        looks.insert(
            t.partition,
            (t.ends[&StoreName::Meta], t.unpositioned.clone()),
        );
    }
    let mut txn = rt.store.txn();
    for t in taken {
        for (topic, end) in &t.quiet {
            let key = format!("{}{topic}", changelog::QUIET);
            txn.put_raw(
                t.partition,
                StoreName::Meta,
                key.as_bytes(),
                end.to_be_bytes().to_vec(),
            );
        }
        for (partition, store, key, value) in
            changelog::claim_writes(t.partition, &t.claim, offsets[&t.partition])
        {
            match value {
                Some(v) => txn.put_raw(partition, store, &key, v),
                None => txn.delete(partition, store, &key),
            }
        }
        info!(
            partition = t.partition,
            epoch = t.claim.epoch,
            "Partition claimed."
        );
        writers.insert(
            t.partition,
            Writer {
                epoch: t.claim.epoch,
                seq: 0,
                next: t.ends,
            },
        );
        if !t.repairs.is_empty() {
            repairs.insert(t.partition, t.repairs);
        }
    }
    rt.store.apply(&txn.finish(&[]))?;
    // Anything written between the restore and the claim is another writer's.
    for (partition, stale) in guard(rt, writers, repairs, &delivered)? {
        let of = unfinished.entry(partition).or_default();
        for (epoch, seq) in stale {
            changelog::keep_highest_seq(of, epoch, seq);
        }
    }
    // A batch another instance began before the claim sends its outputs before its commit:
    // once that is there, what it sent is known, and the redo does not send it again.
    for (partition, batches) in unfinished {
        let (meta_end, unpositioned) = &looks[&partition];
        let patience = Duration::from_millis(rt.config.pipeline.takeover_wait_ms);
        let over = tokio::task::block_in_place(|| {
            changelog::await_commits(&rt.config, partition, *meta_end, batches.clone(), patience)
        })?;
        rt.metrics
            .takeover_waits
            .with_label_values(&[if over { "committed" } else { "gave_up" }])
            .inc();
        if !over {
            warn!(
                partition,
                unfinished = ?batches,
                waited = ?patience,
                "The last holder's batch did not commit in time (it stopped, or is stuck \
                 sending): outputs it sends from now on may be sent twice."
            );
        }
        let now = tokio::task::block_in_place(|| {
            changelog::sent_since_taken(&rt.config, &rt.store, partition, unpositioned)
        })?;
        info!(
            partition,
            committed = over,
            outputs_sent_uncommitted = now.len(),
            "Waited for the last holder's unfinished batch."
        );
        sent.insert(partition, now);
        rt.health.alive();
    }
    Ok(true)
}

/// This instance's directory entry for a partition it claimed.
fn directory_record(rt: &Runtime, partition: i32, epoch: u64) -> OutRecord {
    let entry = crate::api::directory::Entry {
        partition,
        owner: rt.owner.clone(),
        http: rt.config.http_address(),
        epoch,
    };
    OutRecord {
        topic: crate::api::directory::topic(&rt.config),
        partition: None,
        key: Some(partition.to_string().into_bytes()),
        payload: Some(serde_json::to_vec(&entry).expect("entries serialize")),
        headers: Vec::new(),
    }
}

/// Checks that a delivery's changelog records landed where their writer expected: a gap is
/// another writer's records. A newer claim among them fences this instance (it stops); records
/// of an older writer (a zombie) have their keys rewritten by the next batch. The zombies'
/// batches found, per partition.
fn guard(
    rt: &Runtime,
    writers: &mut BTreeMap<i32, Writer>,
    repairs: &mut BTreeMap<i32, BTreeSet<(StoreName, Vec<u8>)>>,
    delivered: &[(OutRecord, i32, i64)],
) -> Result<BTreeMap<i32, changelog::Unfinished>, PipelineError> {
    let mut zombies = BTreeMap::new();
    let gaps = changelog::check_delivered(&rt.config, writers, delivered);
    let partitions: BTreeSet<i32> = gaps.iter().map(|g| g.partition).collect();
    for partition in partitions {
        let of: Vec<changelog::Gap> = gaps
            .iter()
            .filter(|g| g.partition == partition)
            .cloned()
            .collect();
        let epoch = writers[&partition].epoch;
        match tokio::task::block_in_place(|| {
            changelog::investigate(&rt.config, partition, epoch, &of)
        })? {
            changelog::Intrusion::Fenced {
                partition,
                epoch,
                owner,
            } => {
                return Err(PipelineError::Fenced {
                    partition,
                    epoch,
                    owner,
                });
            }
            changelog::Intrusion::Stale {
                keys,
                writers: batches,
            } => {
                warn!(
                    partition,
                    keys = keys.len(),
                    ?batches,
                    "Another writer of an older epoch wrote this partition's changelog: its \
                     keys are written again."
                );
                rt.metrics.changelog_intrusions.inc();
                repairs.entry(partition).or_default().extend(keys);
                zombies.insert(partition, batches);
            }
        }
    }
    Ok(zombies)
}

/// Lag asks the broker once per partition and topic (on its own thread): not on every tick.
/// How often the lag is measured (the consumer-lag gauges and readiness follow it).
const LAG_INTERVAL: Duration = Duration::from_secs(10);

struct StopOnDrop(Arc<AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// Gauges from the durable counters of the partitions held.
fn refresh_gauges(rt: &Runtime, source: &Source, today: chrono::NaiveDate) {
    let assigned = source.assigned();
    rt.metrics.assigned_partitions.set(assigned.len() as i64);
    let counters: Vec<_> = assigned
        .iter()
        .filter_map(|p| rt.store.counters(*p).ok())
        .collect();
    rt.metrics.set_state_gauges(&counters);
    rt.metrics.set_memory_gauges(rt.store.memory_usage());
    rt.metrics.set_engine_stats(rt.store.engine_stats());
    rt.metrics.set_disk_space(rt.store.disk_space());
    rt.metrics.set_business_date(today);
    let unknown = rt.operator.catalog().unknown_symbols_read();
    let by_topic: Vec<(&str, u64)> = unknown
        .iter()
        .map(|(stream, n)| (rt.config.topics.topic(*stream), *n))
        .collect();
    rt.metrics.set_unknown_symbols(&by_topic);
    rt.metrics
        .retain_partitions(&assigned.iter().copied().collect());
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use rust_decimal::Decimal;

    use super::*;
    use crate::codec::SchemaCatalog;
    use crate::kafka::partition_for;
    use crate::model::{ActionCommand, CommandKind, CustomerKey, InputEvent, ItemChange};
    use crate::rules::RuleSet;

    /// A file clock stands at midnight all day: its timers' lateness counts from the moment the
    /// loop took the new date, not zero; a system clock's from midnight; an earlier day's timer
    /// by the business clock.
    #[test]
    fn timer_lateness_counts_from_when_the_day_began_for_the_loop() {
        let date = |s: &str| s.parse::<chrono::NaiveDate>().unwrap();
        let at = |s: &str| chrono::DateTime::parse_from_rfc3339(s).unwrap().to_utc();
        let took_day = Instant::now() - Duration::from_millis(2_500);
        let file_clock = timer_lateness(
            date("2026-03-11"),
            at("2026-03-11T00:00:00Z"),
            Some((date("2026-03-11"), took_day)),
        );
        assert!((2.5..60.0).contains(&file_clock), "{file_clock}");
        let system_clock = timer_lateness(
            date("2026-03-11"),
            at("2026-03-11T00:00:03Z"),
            Some((date("2026-03-11"), Instant::now())),
        );
        assert!((3.0..3.1).contains(&system_clock), "{system_clock}");
        let yesterdays = timer_lateness(
            date("2026-03-10"),
            at("2026-03-11T00:00:00Z"),
            Some((date("2026-03-11"), took_day)),
        );
        assert_eq!(yesterdays, 86_400.0);
    }

    #[test]
    fn probes_tell_a_wedged_loop_from_a_retrying_one_and_readiness_waits_for_the_lag() {
        let limits = ProbeLimits {
            liveness_timeout: Duration::from_millis(1000),
            ready_max_lag: 100,
        };
        let health = Health::new();
        assert!(!health.is_live(limits), "not before the loop has run");
        health.beat();
        assert!(health.is_live(limits));
        assert!(health.readiness(limits).is_err(), "no partition held");
        health.hold(vec![0, 1]);
        assert!(health.readiness(limits).is_ok(), "nothing measured behind");
        health.record_lag("ar.items", 0, 5);
        health.record_lag("ar.items", 1, 500);
        assert!(
            health.readiness(limits).is_err(),
            "partition 1 is catching up"
        );
        assert!(health.readiness(limits).unwrap_err().contains("lag"));
        health.record_lag("ar.items", 1, 100);
        assert!(health.readiness(limits).is_ok());
        health.record_lag("ar.items", 7, 1_000_000);
        assert!(
            health.readiness(limits).is_ok(),
            "a partition not held does not count"
        );
        // A send retried for longer than the timeout: alive at every attempt, so live.
        std::thread::sleep(Duration::from_millis(600));
        health.alive();
        std::thread::sleep(Duration::from_millis(600));
        assert!(health.is_live(limits), "retrying is not wedged");
        // Silence past the timeout: wedged.
        std::thread::sleep(Duration::from_millis(1200));
        assert!(!health.is_live(limits));
        assert!(health.readiness(limits).is_err());
    }

    fn runtime(dir: &Path, configure: impl FnOnce(&mut Config)) -> Runtime {
        let mut config = Config::default();
        configure(&mut config);
        let store = Store::open(dir).unwrap();
        for partition in 0..2 {
            store.ensure_partition(partition).unwrap();
        }
        let rules =
            RuleSet::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("topology/rules.toml"))
                .unwrap();
        Runtime {
            config,
            store,
            operator: Operator::new(Arc::new(rules), Arc::new(SchemaCatalog::bundled().unwrap())),
            metrics: Metrics::new(),
            clock: Arc::new(crate::timer::SystemClock),
            health: Health::new(),
            partitions: 2,
            owner: "test".into(),
            faults: Faults::default(),
        }
    }

    fn invoice(customer: &str) -> InputEvent {
        InputEvent::Item(ItemChange::invoice(
            &CustomerKey::new("SHARE", customer),
            "US001",
            "INV-1",
            Decimal::from(500),
            "USD",
            "2026-01-31".parse().unwrap(),
        ))
    }

    /// `event` as it arrives on its topic, on the partition murmur2 of its key gives unless
    /// `partition` says otherwise.
    fn message(rt: &Runtime, event: &InputEvent, partition: Option<i32>) -> InputMessage {
        let key = event.record_key().into_bytes();
        InputMessage {
            topic: rt.config.topics.topic(event.stream()).into(),
            partition: partition.unwrap_or_else(|| partition_for(&key, rt.partitions)),
            offset: 7,
            payload: Some(rt.operator.catalog().encode_input(event).unwrap()),
            key: Some(key),
            headers: Vec::new(),
            timestamp_ms: None,
        }
    }

    fn batch<'a>(
        messages: &'a [InputMessage],
        poisoned: &'a BTreeMap<usize, Rejection>,
    ) -> Batch<'a> {
        static NO_QUIET: Quiet = BTreeMap::new();
        Batch {
            messages,
            assigned: &[0, 1],
            today: "2026-03-31".parse().unwrap(),
            poisoned,
            quiet: &NO_QUIET,
        }
    }

    fn dead_letters(records: &[OutRecord]) -> Vec<&OutRecord> {
        records
            .iter()
            .filter(|r| r.topic == "cm.dead-letter")
            .collect()
    }

    fn customer_exists(rt: &Runtime, partition: i32, customer: &str) -> bool {
        let mut txn = rt.store.txn();
        super::super::customer_state(&mut txn, partition, &CustomerKey::new("SHARE", customer))
            .unwrap()
            .is_some()
    }

    #[test]
    fn a_record_on_another_partition_than_its_key_gives_is_sent_on_to_its_own() {
        let dir = tempfile::tempdir().unwrap();
        let rt = runtime(dir.path(), |_| {});
        let event = invoice("ACME");
        let right = partition_for(b"SHARE|ACME", 2);
        let wrong = message(&rt, &event, Some(1 - right));
        let none = BTreeMap::new();
        let (txn, records, offsets) =
            process_batch(&rt, &batch(std::slice::from_ref(&wrong), &none))
                .ok()
                .unwrap();
        assert!(
            txn.is_empty(),
            "nothing of the customer's state on the wrong partition"
        );
        let [sent] = records.as_slice() else {
            panic!("{records:?}")
        };
        assert_eq!(sent.topic, "condmon.repartition");
        assert_eq!(sent.partition, Some(right));
        assert_eq!(sent.payload, wrong.payload);
        assert_eq!(sent.header(HEADER_TOPIC), Some("ar.items"));
        assert_eq!(offsets[&(1 - right, "ar.items".to_string())], 8);
        assert_eq!(
            rt.metrics
                .records_rerouted
                .with_label_values(&["ar.items"])
                .get(),
            1
        );

        // Read back from the repartition topic on the right partition: an item of ACME there.
        let arrive = |sent: &OutRecord, offset: i64| InputMessage {
            topic: sent.topic.clone(),
            partition: right,
            offset,
            key: sent.key.clone(),
            payload: sent.payload.clone(),
            headers: sent.headers.clone(),
            timestamp_ms: None,
        };
        let arrived = arrive(sent, 0);
        let (txn, records, offsets) =
            process_batch(&rt, &batch(std::slice::from_ref(&arrived), &none))
                .ok()
                .unwrap();
        assert!(
            records.iter().all(|r| r.topic != "cm.dead-letter"),
            "{records:?}"
        );
        assert_eq!(offsets[&(right, "condmon.repartition".to_string())], 1);
        rt.store.commit(txn, &[]).unwrap();
        assert!(customer_exists(&rt, right, "ACME"));
        assert!(!customer_exists(&rt, 1 - right, "ACME"));

        // A newer version of the item arrives on the right partition; then the wrong
        // partition's batch, redone after a crash, sends the first version on again.
        let InputEvent::Item(mut paid) = invoice("ACME") else {
            unreachable!()
        };
        paid.open_amount = Decimal::from(120);
        let newer = message(&rt, &InputEvent::Item(paid), None);
        let again = InputMessage {
            offset: 1,
            ..arrived.clone()
        };
        let (txn, records, _) = process_batch(&rt, &batch(&[newer, again], &none))
            .ok()
            .unwrap();
        assert!(dead_letters(&records).is_empty(), "{records:?}");
        rt.store.commit(txn, &[]).unwrap();
        let acme = || {
            super::super::customer_state(
                &mut rt.store.txn(),
                right,
                &CustomerKey::new("SHARE", "ACME"),
            )
            .unwrap()
            .unwrap()
        };
        let open: Vec<Decimal> = acme().items.values().map(|i| i.open_amount).collect();
        assert_eq!(open, [Decimal::from(120)], "the newer version stays");
        assert_eq!(
            rt.metrics
                .rerouted_duplicates
                .with_label_values(&["ar.items"])
                .get(),
            1
        );
        // A record the wrong partition sends on later is applied as ever.
        let InputEvent::Item(mut later) = invoice("ACME") else {
            unreachable!()
        };
        later.item_id = "INV-2".into();
        let mut later = message(&rt, &InputEvent::Item(later), Some(1 - right));
        later.offset = 8;
        let (_, records, _) = process_batch(&rt, &batch(std::slice::from_ref(&later), &none))
            .ok()
            .unwrap();
        let [sent] = records.as_slice() else {
            panic!("{records:?}")
        };
        let arrived_later = arrive(sent, 2);
        let (txn, _, _) = process_batch(&rt, &batch(std::slice::from_ref(&arrived_later), &none))
            .ok()
            .unwrap();
        rt.store.commit(txn, &[]).unwrap();
        assert_eq!(acme().items.len(), 2, "INV-2 applied");
    }

    #[test]
    fn an_input_whose_output_is_too_large_is_dead_lettered_and_the_batch_redone_without_it() {
        let dir = tempfile::tempdir().unwrap();
        let rt = runtime(dir.path(), |c| c.pipeline.max_message_bytes = 4096);
        // A command naming 100 actions the customer does not have: its answer gives a reason
        // for each, far over 4,096 bytes.
        let ids: Vec<String> = (0..100).map(|i| format!("NO-SUCH-ACTION-{i:04}")).collect();
        let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
        let command = InputEvent::Command(ActionCommand::new(
            "CMD-1",
            &CustomerKey::new("SHARE", "BIGMOUTH"),
            "JDOE",
            CommandKind::Cancel,
            &ids,
        ));
        let messages = [
            message(&rt, &invoice("ACME"), None),
            message(&rt, &command, None),
            message(&rt, &invoice("STARK"), None),
        ];
        let mut poisoned = BTreeMap::new();
        let Err(BatchError::Poison(index, rejection)) =
            process_batch(&rt, &batch(&messages, &poisoned))
        else {
            panic!("the oversized answer must refuse its command");
        };
        assert_eq!(index, 1);
        assert_eq!(rejection.kind, RejectionKind::OutputTooLarge);
        assert!(
            rejection
                .reason
                .starts_with("its output to cm.command-results would be"),
            "{}",
            rejection.reason
        );
        poisoned.insert(index, rejection);
        let (txn, records, _) = process_batch(&rt, &batch(&messages, &poisoned))
            .ok()
            .unwrap();
        let dead = dead_letters(&records);
        assert_eq!(dead.len(), 1);
        assert_eq!(
            dead[0].header(super::super::HEADER_KIND),
            Some("output_too_large")
        );
        assert_eq!(dead[0].payload, messages[1].payload);
        assert!(records.iter().all(|r| r.size() <= 4096));
        rt.store.commit(txn, &[]).unwrap();
        for customer in ["ACME", "STARK"] {
            let p = partition_for(format!("SHARE|{customer}").as_bytes(), 2);
            assert!(customer_exists(&rt, p, customer), "{customer} processed");
        }
    }

    #[test]
    fn a_record_whose_processing_panics_is_dead_lettered_as_internal() {
        let dir = tempfile::tempdir().unwrap();
        let mut rt = runtime(dir.path(), |_| {});
        rt.faults.panic_on_key = Some("SHARE|POISON".into());
        let messages = [
            message(&rt, &invoice("POISON"), None),
            message(&rt, &invoice("ACME"), None),
        ];
        let mut poisoned = BTreeMap::new();
        let Err(BatchError::Poison(0, rejection)) =
            process_batch(&rt, &batch(&messages, &poisoned))
        else {
            panic!("the panic must be caught and name its record");
        };
        assert_eq!(rejection.kind, RejectionKind::Internal);
        assert!(
            rejection.reason.contains("injected panic"),
            "{}",
            rejection.reason
        );
        poisoned.insert(0, rejection);
        let (_, records, offsets) = process_batch(&rt, &batch(&messages, &poisoned))
            .ok()
            .unwrap();
        let dead = dead_letters(&records);
        assert_eq!(dead.len(), 1);
        assert_eq!(dead[0].header(super::super::HEADER_KIND), Some("internal"));
        let p = partition_for(b"SHARE|POISON", 2);
        assert_eq!(
            offsets[&(p, "ar.items".to_string())],
            8,
            "the poison record is passed"
        );
        assert_eq!(
            rt.metrics
                .dead_letters
                .with_label_values(&["ar.items", "internal"])
                .get(),
            1
        );
    }
}
