//! The Kafka run loop: batches in, outputs acknowledged, state and offsets committed.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use thiserror::Error;
use tokio::sync::watch;
use tracing::{debug, info, warn};

use super::{
    Operator, Outcome, Payload, ProcessError, RulesChange, dead_letter_record, output_record,
};
use crate::codec::CodecError;
use crate::config::Config;
use crate::kafka::{BrokerError, GlobalReader, InputMessage, OutRecord, Sink, Source};
use crate::metrics::Metrics;
use crate::model::{OutputEvent, Stream};
use crate::state::{StateError, Store, Txn};
use crate::timer::Clock;

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
}

/// Liveness for `/healthz`: the loop beats after every batch or idle wait.
pub struct Health {
    started: Instant,
    last_beat_ms: AtomicU64,
    ready: AtomicBool,
}

impl Health {
    pub fn new() -> Arc<Health> {
        Arc::new(Health {
            started: Instant::now(),
            last_beat_ms: AtomicU64::new(0),
            ready: AtomicBool::new(false),
        })
    }

    fn beat(&self) {
        self.ready.store(true, Ordering::Relaxed);
        self.last_beat_ms
            .store(self.started.elapsed().as_millis() as u64, Ordering::Relaxed);
    }

    /// Healthy once the loop has run and while it keeps beating within `max_silence`.
    pub fn is_healthy(&self, max_silence: Duration) -> bool {
        let since =
            self.started.elapsed().as_millis() as u64 - self.last_beat_ms.load(Ordering::Relaxed);
        self.ready.load(Ordering::Relaxed) && since <= max_silence.as_millis() as u64
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
}

/// Runs until `shutdown` turns true. Returns only on shutdown or an internal error.
pub async fn run(rt: Runtime, mut shutdown: watch::Receiver<bool>) -> Result<(), PipelineError> {
    let source = Source::new(&rt.config, rt.store.clone())?;
    let sink = Sink::new(&rt.config)?;
    let topics = &rt.config.topics;
    let reference = GlobalReader::new(&rt.config, &[&topics.fx_rates, &topics.rules])?;
    load_reference(&rt, &reference)?;
    let mut fingerprint = rt.operator.fingerprint();
    // Partitions whose state is known to be reconciled under `fingerprint`.
    let mut reconciled: BTreeMap<i32, i64> = BTreeMap::new();
    let pipeline = &rt.config.pipeline;
    let tick = Duration::from_millis(pipeline.tick_ms);
    let mut last_tick = Instant::now() - tick;
    let stop_lag = Arc::new(AtomicBool::new(false));
    // Stops the probe however the loop ends (shutdown or error).
    let _stop_probe = StopOnDrop(stop_lag.clone());
    let _lag_probe = {
        let (assigned, store, metrics) = (
            source.assigned_handle(),
            rt.store.clone(),
            rt.metrics.clone(),
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
                metrics
                    .consumer_lag
                    .with_label_values(&[topic, &partition.to_string()])
                    .set(lag)
            },
        )?
    };
    let crash_after: Option<u64> = std::env::var("CONDMON_CRASH_AFTER_BATCHES")
        .ok()
        .and_then(|v| v.parse().ok());
    let mut batches_delivered = 0u64;
    info!(
        brokers = rt.config.kafka.brokers,
        group = rt.config.kafka.group_id,
        "condmon is running."
    );
    while !*shutdown.borrow() {
        let batch = tokio::select! {
            batch = source.next_batch(pipeline.max_batch, tick, Duration::from_millis(pipeline.linger_ms)) => batch,
            _ = shutdown.changed() => break,
        };
        if let Some(problem) = source.problem() {
            return Err(PipelineError::Partition(problem));
        }
        let mut messages = match batch {
            Ok(messages) => messages,
            Err(e) => {
                warn!(error = %e, "Consumer error; retrying.");
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
        let today = rt.clock.today();
        // A batch that needs something outside (the schema registry) is redone from scratch
        // until it can be: nothing of it is refused or committed meanwhile, and reference data
        // it changed is put back first, so the redo changes it again.
        let mut backoff = Duration::from_millis(pipeline.retry_backoff_ms);
        let snapshot = reference_changed.then(|| rt.operator.reference_snapshot());
        let (mut txn, mut records, mut offsets) = loop {
            match process_batch(&rt, &messages, &assigned, today) {
                Ok(done) => break done,
                Err(BatchError::External(e)) => {
                    if let Some(snapshot) = &snapshot {
                        rt.operator.restore_reference(snapshot.clone());
                    }
                    warn!(error = %e, retry_in = ?backoff, "External dependency unavailable; retrying the batch.");
                    rt.metrics.external_retries.inc();
                    tokio::select! {
                        _ = tokio::time::sleep(backoff) => {}
                        _ = shutdown.changed() => return Ok(()),
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(30));
                }
                Err(BatchError::Fatal(e)) => return Err(e),
            }
        };
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
                let events = rt
                    .operator
                    .reconcile_partition(&mut txn, *partition, today)?;
                records.extend(encode(&rt, &events)?);
            }
            reconciled.insert(*partition, fingerprint);
        }
        for partition in &assigned {
            offsets.insert((*partition, FINGERPRINT.to_string()), fingerprint);
        }
        let timers_due = last_tick.elapsed() >= tick;
        if timers_due {
            last_tick = Instant::now();
            for partition in source.assigned() {
                let events = rt.operator.fire_timers(&mut txn, partition, today)?;
                rt.metrics.timers_fired.inc_by(events.len() as u64);
                records.extend(encode(&rt, &events)?);
            }
        }
        if records.is_empty() && txn.is_empty() && messages.is_empty() {
            rt.health.beat();
            if timers_due {
                refresh_gauges(&rt, &source);
            }
            continue;
        }
        let counted: Vec<(String, Option<String>)> = records
            .iter()
            .map(|r| {
                let outcome = r.headers.iter().find(|(k, _)| k == super::OUTCOME_HEADER);
                (r.topic.clone(), outcome.map(|(_, v)| v.clone()))
            })
            .collect();
        if !deliver(&rt, &sink, records, &mut shutdown).await {
            break; // shutting down mid-delivery: nothing committed, all will be redone.
        }
        for (topic, outcome) in counted {
            rt.metrics.records_out.with_label_values(&[&topic]).inc();
            if let Some(outcome) = outcome {
                rt.metrics.outcomes.with_label_values(&[&outcome]).inc();
            }
        }
        batches_delivered += 1;
        if crash_after == Some(batches_delivered) {
            // Fault injection for the crash tests: the worst instant, outputs acknowledged and
            // state not committed. Nothing after this line runs.
            warn!(
                batch = batches_delivered,
                "CONDMON_CRASH_AFTER_BATCHES reached: aborting."
            );
            std::process::abort();
        }
        let committed: Vec<(i32, String, i64)> =
            offsets.into_iter().map(|((p, t), o)| (p, t, o)).collect();
        rt.store.commit(txn, &committed)?;
        rt.metrics.batches_committed.inc();
        let progress: Vec<(i32, String, i64)> = committed
            .into_iter()
            .filter(|(_, topic, _)| topic != FINGERPRINT)
            .collect();
        source.commit_progress(&progress);
        rt.health.beat();
        if timers_due {
            refresh_gauges(&rt, &source);
        }
    }
    rt.store.flush()?;
    info!("condmon stopped cleanly.");
    Ok(())
}

enum BatchError {
    External(String),
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

/// Runs every message of a batch through the operator in one transaction. Metrics are counted
/// only for a batch that went through, so a retried batch is not counted twice.
fn process_batch<'s>(
    rt: &'s Runtime,
    messages: &[InputMessage],
    assigned: &[i32],
    today: chrono::NaiveDate,
) -> Result<(Txn<'s>, Vec<OutRecord>, Offsets), BatchError> {
    let mut txn = rt.store.txn();
    let mut records = Vec::new();
    let mut offsets = Offsets::new();
    let mut rejected = Vec::new();
    let started = Instant::now();
    let failed = |e| match e {
        ProcessError::External(e) => BatchError::External(e),
        ProcessError::State(e) => BatchError::Fatal(e.into()),
    };
    for message in messages {
        let key = message.key.as_deref().map(String::from_utf8_lossy);
        let payload = match &message.payload {
            Some(bytes) => Payload::Avro(bytes),
            None => Payload::Tombstone,
        };
        let outcome = if message.topic == rt.config.topics.rules {
            let text = String::from_utf8_lossy(message.payload.as_deref().unwrap_or_default());
            let origin = format!("{}@{}/{}", message.topic, message.partition, message.offset);
            match rt
                .operator
                .replace_rules(&mut txn, assigned, &text, &origin, today)
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
            }
        } else {
            let Some(stream) = rt.config.topics.stream_of(&message.topic) else {
                unreachable!("subscribed only to input topics, got {}", message.topic);
            };
            let global = Stream::GLOBAL_INPUTS.contains(&stream);
            if !global {
                offsets.insert(
                    (message.partition, message.topic.clone()),
                    message.offset + 1,
                );
            }
            let partitions = if global {
                assigned
            } else {
                std::slice::from_ref(&message.partition)
            };
            rt.operator
                .process(&mut txn, partitions, stream, key.as_deref(), payload, today)
                .map_err(failed)?
        };
        match outcome {
            Outcome::Processed(events) => records.extend(encode(rt, &events)?),
            Outcome::Rejected(rejection) => {
                debug!(
                    topic = message.topic,
                    partition = message.partition,
                    offset = message.offset,
                    reason = rejection.reason,
                    "Dead letter."
                );
                rejected.push((message.topic.as_str(), rejection.kind));
                records.push(dead_letter_record(
                    &rt.config.topics,
                    &message.topic,
                    message.partition,
                    message.offset,
                    message.key.clone(),
                    message.payload.clone().unwrap_or_default(),
                    &rejection,
                ));
            }
        }
    }
    for message in messages {
        rt.metrics
            .records_in
            .with_label_values(&[&message.topic])
            .inc();
    }
    for (topic, kind) in rejected {
        rt.metrics
            .dead_letters
            .with_label_values(&[topic, kind.as_str()])
            .inc();
    }
    if !messages.is_empty() {
        let per_record = started.elapsed().as_secs_f64() / messages.len() as f64;
        for _ in messages {
            rt.metrics.processing_seconds.observe(per_record);
        }
    }
    Ok((txn, records, offsets))
}

fn encode(rt: &Runtime, events: &[OutputEvent]) -> Result<Vec<OutRecord>, PipelineError> {
    events
        .iter()
        .map(|e| {
            output_record(&rt.config.topics, rt.operator.catalog(), e).map_err(PipelineError::from)
        })
        .collect()
}

/// Sends until every record is acknowledged, backing off on broker errors. False if shutdown
/// interrupted it.
async fn deliver(
    rt: &Runtime,
    sink: &Sink,
    mut records: Vec<OutRecord>,
    shutdown: &mut watch::Receiver<bool>,
) -> bool {
    let mut backoff = Duration::from_millis(rt.config.pipeline.retry_backoff_ms);
    loop {
        let failed = sink.send_all(records).await;
        let Some((_, first_error)) = failed.first() else {
            return true;
        };
        warn!(failed = failed.len(), error = %first_error, retry_in = ?backoff, "Produce failed; retrying.");
        rt.metrics.produce_retries.inc();
        records = failed.into_iter().map(|(r, _)| r).collect();
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = shutdown.changed() => return false,
        }
        backoff = (backoff * 2).min(Duration::from_secs(30));
    }
}

/// Lag asks the broker once per partition and topic (on its own thread): not on every tick.
const LAG_INTERVAL: Duration = Duration::from_secs(10);

struct StopOnDrop(Arc<AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// Gauges from the durable counters of the partitions held.
fn refresh_gauges(rt: &Runtime, source: &Source) {
    let assigned = source.assigned();
    rt.metrics.assigned_partitions.set(assigned.len() as i64);
    let counters: Vec<_> = assigned
        .iter()
        .filter_map(|p| rt.store.counters(*p).ok())
        .collect();
    rt.metrics.set_state_gauges(&counters);
}
