//! rdkafka at the edge: the consumer ([`Source`]), the producer ([`Sink`]) and topic admin.
//! Nothing outside this module sees an rdkafka type.
//!
//! Offsets: the input offsets committed with the state in RocksDB are the truth. On assignment
//! the consumer is positioned at them (or at the beginning of a partition this node has no
//! state for, so state is rebuilt from the input). Offsets are also committed to the group,
//! after the state, only so that lag tools see progress.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, StreamConsumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::types::RDKafkaRespErr;
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use thiserror::Error;
use tracing::{info, warn};

use crate::config::{Assignment, Config, TopicSpec};
use crate::state::Store;

mod partitioner;
pub use partitioner::{murmur2, partition_for};

/// Broker trouble is external: the caller retries with back-off, unless it is permanent
/// (retrying cannot help: see [`BrokerError::is_permanent`]).
#[derive(Debug, Error)]
#[error("kafka: {0}")]
pub struct BrokerError(String, bool);

impl BrokerError {
    fn transient(message: String) -> Self {
        BrokerError(message, false)
    }

    /// A record too large for the broker, a topic that does not exist or may not be written,
    /// failed authentication, a fatal error of the idempotent producer: the same send fails
    /// the same way however often it is retried.
    pub fn is_permanent(&self) -> bool {
        self.1
    }
}

/// The error codes no retry recovers from.
fn is_permanent(code: RDKafkaErrorCode) -> bool {
    matches!(
        code,
        RDKafkaErrorCode::MessageSizeTooLarge
            | RDKafkaErrorCode::InvalidMessageSize
            | RDKafkaErrorCode::TopicAuthorizationFailed
            | RDKafkaErrorCode::ClusterAuthorizationFailed
            | RDKafkaErrorCode::UnknownTopic
            | RDKafkaErrorCode::UnknownTopicOrPartition
            | RDKafkaErrorCode::InvalidTopic
            | RDKafkaErrorCode::SaslAuthenticationFailed
            | RDKafkaErrorCode::Authentication
            | RDKafkaErrorCode::Fatal
    )
}

impl From<KafkaError> for BrokerError {
    fn from(e: KafkaError) -> Self {
        let permanent = e.rdkafka_error_code().is_some_and(is_permanent);
        BrokerError(e.to_string(), permanent)
    }
}

/// librdkafka's statistics every `kafka.statistics_interval_ms` (0: none).
fn set_statistics_interval(client: &mut ClientConfig, config: &Config) {
    if config.kafka.statistics_interval_ms > 0 {
        client.set(
            "statistics.interval.ms",
            config.kafka.statistics_interval_ms.to_string(),
        );
    }
}

/// The settings every client of `config` shares (brokers, security): `[kafka.client]`, then
/// the environment's `CONDMON_KAFKA_CLIENT_*` (credentials from a secret store, never in the
/// file).
pub fn client_config(config: &Config) -> ClientConfig {
    let mut client = ClientConfig::new();
    client.set("bootstrap.servers", &config.kafka.brokers);
    for (k, v) in &config.kafka.client {
        client.set(k, v);
    }
    for (k, v) in properties_from_env(std::env::vars()) {
        client.set(k, v);
    }
    client
}

/// librdkafka properties given as `CONDMON_KAFKA_CLIENT_<NAME>=value`: `<name>` in lower
/// case with `_` for `.` (`CONDMON_KAFKA_CLIENT_SASL_PASSWORD` sets `sasl.password`).
pub fn properties_from_env(vars: impl Iterator<Item = (String, String)>) -> Vec<(String, String)> {
    const PREFIX: &str = "CONDMON_KAFKA_CLIENT_";
    let mut out: Vec<(String, String)> = vars
        .filter_map(|(name, value)| {
            let property = name.strip_prefix(PREFIX)?;
            (!property.is_empty()).then(|| (property.to_lowercase().replace('_', "."), value))
        })
        .collect();
    out.sort();
    out
}

/// The producer's settings: condmon's defaults, then `[kafka.producer]`, then what correctness
/// needs whatever the file says. Public for the broker benchmark's passthrough, which must
/// produce exactly as condmon does.
pub fn producer_config(config: &Config) -> ClientConfig {
    let mut client = client_config(config);
    // condmon sends a batch's records together and waits for them: lingering only delays the
    // last partial batch.
    client
        .set("linger.ms", "1")
        .set("message.timeout.ms", "30000");
    for (k, v) in &config.kafka.producer {
        client.set(k, v);
    }
    client
        .set(
            "message.max.bytes",
            config.pipeline.max_message_bytes.to_string(),
        )
        // Durable and in order: a customer's events never overtake each other.
        .set("enable.idempotence", "true")
        .set("acks", "all")
        // The Java clients' partitioner, so our outputs for a customer land on the same
        // partition number as the ERP's inputs for it.
        .set("partitioner", "murmur2_random");
    client
}

/// Creates the topics of `specs`; topics that exist already are left alone.
/// Returns (topic, "created" | "exists").
pub async fn create_topics(
    config: &Config,
    specs: &[TopicSpec],
) -> Result<Vec<(String, &'static str)>, BrokerError> {
    let admin: AdminClient<DefaultClientContext> = client_config(config).create()?;
    let properties: Vec<Vec<(&str, String)>> =
        specs.iter().map(|s| s.cleanup.properties()).collect();
    let new_topics: Vec<NewTopic<'_>> = specs
        .iter()
        .zip(&properties)
        .map(|(spec, properties)| {
            properties.iter().fold(
                NewTopic::new(
                    &spec.name,
                    config.topics.partitions,
                    TopicReplication::Fixed(config.topics.replication_factor),
                ),
                |topic, (name, value)| topic.set(name, value),
            )
        })
        .collect();
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    let mut out = Vec::new();
    for result in admin.create_topics(&new_topics, &options).await? {
        match result {
            Ok(topic) => out.push((topic, "created")),
            Err((topic, RDKafkaErrorCode::TopicAlreadyExists)) => out.push((topic, "exists")),
            Err((topic, code)) => {
                return Err(BrokerError::transient(format!("creating {topic}: {code}")));
            }
        }
    }
    Ok(out)
}

/// The partition counts of `topics`, as the broker reports them.
/// The first call a process makes to the cluster, so when it fails it says why: librdkafka's
/// own reasons (an untrusted certificate, failed authentication) are only reported through
/// its error callback, which a metadata request alone never serves.
pub fn partition_counts(
    config: &Config,
    topics: &[&str],
) -> Result<Vec<(String, usize)>, BrokerError> {
    let consumer: BaseConsumer<ReasonsContext> =
        client_config(config).create_with_context(ReasonsContext::default())?;
    topics
        .iter()
        .map(|topic| {
            let metadata = consumer
                .fetch_metadata(Some(topic), Duration::from_secs(10))
                .map_err(|e| {
                    // Serves the queued error callbacks.
                    let _ = consumer.poll(Duration::from_millis(100));
                    let reasons = consumer.context().reasons.lock().expect("reasons").clone();
                    let mut error = BrokerError::from(e);
                    if !reasons.is_empty() {
                        error.0 = format!("{} ({})", error.0, reasons.join("; "));
                    }
                    error
                })?;
            let count = metadata
                .topics()
                .first()
                .map_or(0, |t| t.partitions().len());
            Ok((topic.to_string(), count))
        })
        .collect()
}

/// Keeps the distinct reasons librdkafka reported through its error callback, and logs them.
#[derive(Default)]
struct ReasonsContext {
    reasons: Mutex<Vec<String>>,
}

impl ClientContext for ReasonsContext {
    fn error(&self, error: KafkaError, reason: &str) {
        warn!(error = %error, reason, "Kafka client error.");
        let mut reasons = self.reasons.lock().expect("reasons");
        if !reasons.iter().any(|r| r == reason) {
            reasons.push(reason.to_string());
        }
    }
}

impl ConsumerContext for ReasonsContext {}

/// One input record, detached from the consumer.
#[derive(Debug, Clone)]
pub struct InputMessage {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub key: Option<Vec<u8>>,
    pub payload: Option<Vec<u8>>,
    pub headers: Vec<(String, String)>,
    /// The record's Kafka timestamp (milliseconds since the epoch), if it has one.
    pub timestamp_ms: Option<i64>,
}

impl InputMessage {
    pub fn header(&self, name: &str) -> Option<&str> {
        header(&self.headers, name)
    }
}

fn header<'h>(headers: &'h [(String, String)], name: &str) -> Option<&'h str> {
    headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// Called when a partition is assigned, before it is positioned: brings its state up to
/// date (restores it from its changelogs). An error stops the process.
pub type OnAssign = Arc<dyn Fn(i32) -> Result<(), String> + Send + Sync>;

/// What librdkafka's statistics (every `statistics_interval_ms`) say about a client, in
/// condmon's terms (no rdkafka type leaves this module).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ClientStats {
    /// `consumer` or `producer`.
    pub client: &'static str,
    /// The consumer's lag per fetched partition: (topic, partition, records behind the end).
    pub partition_lag: Vec<(String, i32, i64)>,
    /// Average round trip per broker (`host:port/id`), over the last interval.
    pub broker_rtt_seconds: Vec<(String, f64)>,
    /// Messages and bytes waiting in the client's queues (the producer's sends in flight).
    pub queue_messages: u64,
    pub queue_bytes: u64,
}

/// Receives each client's statistics.
pub type OnStats = Arc<dyn Fn(ClientStats) + Send + Sync>;

fn client_stats(client: &'static str, statistics: &rdkafka::Statistics) -> ClientStats {
    let mut partition_lag: Vec<(String, i32, i64)> = statistics
        .topics
        .iter()
        .flat_map(|(topic, t)| {
            t.partitions
                .iter()
                // -1 is librdkafka's unassigned partition; a lag of -1 is unknown.
                .filter(|(p, partition)| **p >= 0 && partition.consumer_lag >= 0)
                .map(move |(p, partition)| (topic.clone(), *p, partition.consumer_lag))
        })
        .collect();
    partition_lag.sort();
    let mut broker_rtt_seconds: Vec<(String, f64)> = statistics
        .brokers
        .values()
        .filter_map(|b| {
            let rtt = b.rtt.as_ref()?;
            (rtt.cnt > 0).then(|| (b.name.clone(), rtt.avg as f64 / 1_000_000.0))
        })
        .collect();
    broker_rtt_seconds.sort_by(|a, b| a.0.cmp(&b.0));
    ClientStats {
        client,
        partition_lag,
        broker_rtt_seconds,
        queue_messages: statistics.msg_cnt,
        queue_bytes: statistics.msg_size,
    }
}

/// A client context that hands librdkafka's statistics on.
#[derive(Clone, Default)]
pub struct StatsContext {
    on_stats: Option<OnStats>,
}

impl ClientContext for StatsContext {
    fn stats(&self, statistics: rdkafka::Statistics) {
        if let Some(on_stats) = &self.on_stats {
            on_stats(client_stats("producer", &statistics));
        }
    }
}

pub struct SourceContext {
    store: Store,
    on_assign: OnAssign,
    assigned: Arc<Mutex<BTreeSet<i32>>>,
    /// The offset each partition was positioned at: anything a broker returns below it was
    /// processed already and is dropped (a broker may return a whole batch around the offset).
    floors: Arc<Mutex<HashMap<(String, i32), i64>>>,
    /// What makes reading unsafe; the run loop stops on the first.
    problems: Arc<Mutex<Vec<String>>>,
    on_stats: Option<OnStats>,
}

impl ClientContext for SourceContext {
    fn stats(&self, statistics: rdkafka::Statistics) {
        if let Some(on_stats) = &self.on_stats {
            on_stats(client_stats("consumer", &statistics));
        }
    }
}

impl SourceContext {
    fn problem(&self, message: String) {
        tracing::error!(problem = message, "Cannot read this partition safely.");
        self.problems.lock().expect("problems lock").push(message);
    }

    /// Takes up each partition of `tpl` (see [`OnAssign`]) and positions it at the offset kept
    /// with its state, or at the beginning of a partition that has none, and records it as
    /// held. A kept offset outside what the partition holds (`watermarks`: its first and next
    /// offset) is a problem, not a position: beyond its end, the topic was recreated or lost
    /// data; below its start, retention deleted records never processed. Reading on would skip
    /// records silently.
    fn position(
        &self,
        tpl: &mut TopicPartitionList,
        watermarks: impl Fn(&str, i32) -> Option<(i64, i64)>,
    ) {
        let elements: Vec<(String, i32)> = tpl
            .elements()
            .iter()
            .map(|e| (e.topic().to_string(), e.partition()))
            .collect();
        let partitions: BTreeSet<i32> = elements.iter().map(|(_, p)| *p).collect();
        let mut ready = BTreeSet::new();
        for partition in partitions {
            match (self.on_assign)(partition) {
                Ok(()) => {
                    ready.insert(partition);
                }
                Err(e) => self.problem(format!("taking up partition {partition}: {e}")),
            }
        }
        let mut assigned = self.assigned.lock().expect("assigned lock");
        for (topic, partition) in elements {
            if !ready.contains(&partition) {
                continue;
            }
            let offsets = match self.store.offsets(partition) {
                Ok(offsets) => offsets,
                Err(e) => {
                    self.problem(format!("state of partition {partition}: {e}"));
                    continue;
                }
            };
            let stored = offsets.get(&topic).copied();
            if let Some(watermarks) = watermarks(&topic, partition)
                && let Err(problem) = check_position(&topic, partition, stored, watermarks)
            {
                self.problem(problem);
            }
            let offset = stored.map_or(Offset::Beginning, Offset::Offset);
            self.floors
                .lock()
                .expect("floors lock")
                .insert((topic.clone(), partition), stored.unwrap_or(0));
            if let Err(e) = tpl.set_partition_offset(&topic, partition, offset) {
                warn!(topic, partition, error = %e, "Could not position the partition.");
            }
            info!(topic, partition, ?offset, "Partition assigned.");
            assigned.insert(partition);
        }
    }
}

/// Whether a partition can be read on from the offset kept with its state (`stored`), given
/// its first and next offsets: not if records were lost below it or the topic ends before it.
fn check_position(
    topic: &str,
    partition: i32,
    stored: Option<i64>,
    (low, high): (i64, i64),
) -> Result<(), String> {
    match stored {
        Some(stored) if stored > high => Err(format!(
            "{topic}/{partition}: the state has read up to offset {stored} but the partition \
             ends at {high}: the topic was recreated or lost data. Restore it, or clear the \
             state directory to rebuild from what the topic holds."
        )),
        Some(stored) if stored < low => Err(format!(
            "{topic}/{partition}: the next offset to process is {stored} but the partition now \
             starts at {low} (its log start offset): retention deleted records that were never \
             processed. condmon stays stopped rather than skip them: give the topic the \
             retention the README asks for (\"Retention\") and have the records sent again."
        )),
        // Never read: from the beginning, wherever retention has moved it.
        _ => Ok(()),
    }
}

impl ConsumerContext for SourceContext {
    /// Positions newly assigned partitions at the offsets kept with their state.
    fn rebalance(
        &self,
        consumer: &BaseConsumer<Self>,
        err: RDKafkaRespErr,
        tpl: &mut TopicPartitionList,
    ) {
        match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => {
                self.position(tpl, |topic, partition| {
                    watermarks(consumer, topic, partition)
                });
                if let Err(e) = consumer.assign(tpl) {
                    warn!(error = %e, "Assign failed.");
                }
            }
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => {
                info!(partitions = tpl.count(), "Partitions revoked.");
                self.assigned.lock().expect("assigned lock").clear();
                if let Err(e) = consumer.unassign() {
                    warn!(error = %e, "Unassign failed.");
                }
            }
            other => warn!(error = ?other, "Rebalance error."),
        }
    }
}

fn watermarks<C: Consumer<SourceContext>>(
    consumer: &C,
    topic: &str,
    partition: i32,
) -> Option<(i64, i64)> {
    consumer
        .fetch_watermarks(topic, partition, Duration::from_secs(10))
        .ok()
}

pub struct Source {
    consumer: StreamConsumer<SourceContext>,
    assigned: Arc<Mutex<BTreeSet<i32>>>,
    floors: Arc<Mutex<HashMap<(String, i32), i64>>>,
    problems: Arc<Mutex<Vec<String>>>,
}

/// The consumer group member reading the input topics.
impl Source {
    pub fn new(
        config: &Config,
        store: Store,
        on_assign: OnAssign,
        on_stats: Option<OnStats>,
    ) -> Result<Source, BrokerError> {
        let assigned = Arc::new(Mutex::new(BTreeSet::new()));
        let floors = Arc::new(Mutex::new(HashMap::new()));
        let problems = Arc::new(Mutex::new(Vec::new()));
        let context = SourceContext {
            store,
            on_assign,
            assigned: assigned.clone(),
            floors: floors.clone(),
            problems: problems.clone(),
            on_stats,
        };
        let mut client = client_config(config);
        set_statistics_interval(&mut client, config);
        if let Some(instance) = config
            .kafka
            .instance_name()
            .filter(|_| config.kafka.static_membership)
        {
            // Static membership: a restarted instance gets its partitions back, no rebalance.
            client.set("group.instance.id", instance);
        }
        // A fetch returns as soon as it has data on Kafka, but Tansu holds it for the whole
        // wait: 500 ms (librdkafka's default) was the median input → action latency there.
        // On an idle cluster this is the poll interval.
        client.set("fetch.wait.max.ms", "10");
        for (k, v) in &config.kafka.consumer {
            client.set(k, v);
        }
        let consumer: StreamConsumer<SourceContext> = client
            .set("group.id", &config.kafka.group_id)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "earliest")
            // Range assignment gives one member the same partition number of every input
            // topic: the co-partitioning the per-partition state relies on.
            .set("partition.assignment.strategy", "range")
            .create_with_context(context)?;
        let topics = config.topics.partitioned_inputs();
        match config.kafka.assignment {
            Assignment::Group => consumer.subscribe(&topics)?,
            Assignment::Manual => {
                let partitions = if config.kafka.partitions.is_empty() {
                    let (_, count) = partition_counts(config, &topics[..1])?.remove(0);
                    (0..count as i32).collect()
                } else {
                    config.kafka.partitions.clone()
                };
                let mut tpl = TopicPartitionList::new();
                for topic in &topics {
                    for partition in &partitions {
                        tpl.add_partition(topic, *partition);
                    }
                }
                consumer.context().position(&mut tpl, |topic, partition| {
                    watermarks(&consumer, topic, partition)
                });
                consumer.assign(&tpl)?;
            }
        }
        Ok(Source {
            consumer,
            assigned,
            floors,
            problems,
        })
    }

    /// Waits up to `wait` for a first record, then up to `linger` for up to `max` in all.
    /// Records of partitions revoked meanwhile are dropped: they will be read again.
    pub async fn next_batch(
        &self,
        max: usize,
        wait: Duration,
        linger: Duration,
    ) -> Result<Vec<InputMessage>, BrokerError> {
        let mut batch = Vec::new();
        let first = match tokio::time::timeout(wait, self.consumer.recv()).await {
            Err(_) => return Ok(batch),
            Ok(message) => message?,
        };
        batch.push(detach(&first));
        let deadline = tokio::time::Instant::now() + linger;
        while batch.len() < max {
            match tokio::time::timeout_at(deadline, self.consumer.recv()).await {
                Err(_) => break,
                Ok(Ok(message)) => batch.push(detach(&message)),
                // Keep what was read: dropping it would let the next commit skip it.
                Ok(Err(e)) => {
                    warn!(error = %e, "Consumer error; processing the records read so far.");
                    break;
                }
            }
        }
        let assigned = self.assigned();
        let floors = self.floors.lock().expect("floors lock");
        batch.retain(|m| {
            assigned.contains(&m.partition)
                && floors
                    .get(&(m.topic.clone(), m.partition))
                    .is_none_or(|floor| m.offset >= *floor)
        });
        Ok(batch)
    }

    /// The first reason reading cannot go on safely, if any (see `SourceContext::position`).
    pub fn problem(&self) -> Option<String> {
        self.problems
            .lock()
            .expect("problems lock")
            .first()
            .cloned()
    }

    pub fn assigned(&self) -> Vec<i32> {
        self.assigned
            .lock()
            .expect("assigned lock")
            .iter()
            .copied()
            .collect()
    }

    /// Tells the group how far we are (informational: RocksDB holds the real offsets).
    pub fn commit_progress(&self, offsets: &[(i32, String, i64)]) {
        let mut tpl = TopicPartitionList::new();
        for (partition, topic, next) in offsets {
            let _ = tpl.add_partition_offset(topic, *partition, Offset::Offset(*next));
        }
        if tpl.count() > 0
            && let Err(e) = self.consumer.commit(&tpl, CommitMode::Async)
        {
            warn!(error = %e, "Could not commit progress to the group.");
        }
    }

    /// Leaves the consumer group (a static member too: unsubscribing sends the LeaveGroup that
    /// closing alone would not), waiting up to `wait` for the revocation, so that the group
    /// hands the partitions to the other members at once.
    pub async fn leave(&self, wait: Duration) {
        self.consumer.unsubscribe();
        let deadline = tokio::time::Instant::now() + wait;
        // The revocation is served while receiving; a slice at a time, to see it at once.
        while !self.assigned().is_empty() && tokio::time::Instant::now() < deadline {
            let _ = tokio::time::timeout(Duration::from_millis(50), self.consumer.recv()).await;
        }
        info!("Left the consumer group.");
    }

    /// The partitions held, shared (for the lag probe's thread).
    pub fn assigned_handle(&self) -> Arc<Mutex<BTreeSet<i32>>> {
        self.assigned.clone()
    }
}

/// Reads a compacted topic whole and then as it grows, on its own thread and client, handing
/// each record's key and value to `each` (reference data every instance needs, such as the
/// partition directory). Ends when `stop` is set.
pub fn spawn_tail(
    config: &Config,
    topic: &str,
    stop: Arc<std::sync::atomic::AtomicBool>,
    each: impl Fn(&[u8], Option<&[u8]>) + Send + 'static,
) -> Result<std::thread::JoinHandle<()>, BrokerError> {
    let consumer: BaseConsumer = client_config(config)
        .set("group.id", format!("{}-tail", config.kafka.group_id))
        .set("enable.auto.commit", "false")
        .create()?;
    let metadata = consumer.fetch_metadata(Some(topic), Duration::from_secs(10))?;
    let mut tpl = TopicPartitionList::new();
    for partition in metadata.topics().iter().flat_map(|t| t.partitions()) {
        tpl.add_partition_offset(topic, partition.id(), Offset::Beginning)?;
    }
    consumer.assign(&tpl)?;
    let topic = topic.to_string();
    Ok(std::thread::spawn(move || {
        while !stop.load(std::sync::atomic::Ordering::Relaxed) {
            match consumer.poll(Duration::from_millis(200)) {
                Some(Ok(m)) => each(m.key().unwrap_or_default(), m.payload()),
                Some(Err(e)) => warn!(topic, error = %e, "Reading the topic failed; retrying."),
                None => {}
            }
        }
    }))
}

/// Measures consumer lag on its own thread and client, every `interval`: a slow answer from
/// the broker never holds up records. `positions` gives (partition, topic, next offset) of
/// what is held; `report` receives (topic, partition, lag). Ends when `stop` is set.
pub fn spawn_lag_probe(
    config: &Config,
    interval: Duration,
    stop: Arc<std::sync::atomic::AtomicBool>,
    positions: impl Fn() -> Vec<(i32, String, i64)> + Send + 'static,
    report: impl Fn(&str, i32, i64) + Send + 'static,
) -> Result<std::thread::JoinHandle<()>, BrokerError> {
    let consumer: BaseConsumer = client_config(config)
        .set("group.id", format!("{}-lag", config.kafka.group_id))
        .create()?;
    Ok(std::thread::spawn(move || {
        while !stop.load(std::sync::atomic::Ordering::Relaxed) {
            for (partition, topic, next) in positions() {
                if let Ok((_, high)) =
                    consumer.fetch_watermarks(&topic, partition, Duration::from_secs(2))
                {
                    report(&topic, partition, (high - next).max(0));
                }
            }
            let deadline = std::time::Instant::now() + interval;
            while std::time::Instant::now() < deadline
                && !stop.load(std::sync::atomic::Ordering::Relaxed)
            {
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }))
}

fn detach<M: Message>(m: &M) -> InputMessage {
    InputMessage {
        topic: m.topic().to_string(),
        partition: m.partition(),
        offset: m.offset(),
        key: m.key().map(<[u8]>::to_vec),
        payload: m.payload().map(<[u8]>::to_vec),
        headers: headers_of(m),
        timestamp_ms: m.timestamp().to_millis(),
    }
}

fn headers_of<M: Message>(m: &M) -> Vec<(String, String)> {
    m.headers()
        .map(|hs| {
            hs.iter()
                .map(|h| {
                    (
                        h.key.to_string(),
                        String::from_utf8_lossy(h.value.unwrap_or_default()).into_owned(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Reads whole topics, every partition from the beginning and without a group: reference
/// data (exchange rates, rule documents) that every instance needs whatever it holds.
pub struct GlobalReader {
    consumer: BaseConsumer,
}

impl GlobalReader {
    pub fn new(config: &Config, topics: &[&str]) -> Result<GlobalReader, BrokerError> {
        let consumer: BaseConsumer = client_config(config)
            .set("group.id", format!("{}-global", config.kafka.group_id))
            .set("enable.auto.commit", "false")
            .set("auto.offset.reset", "earliest")
            .create()?;
        let mut tpl = TopicPartitionList::new();
        for topic in topics {
            let metadata = consumer.fetch_metadata(Some(topic), Duration::from_secs(10))?;
            let partitions: Vec<i32> = metadata
                .topics()
                .iter()
                .flat_map(|t| t.partitions())
                .map(|p| p.id())
                .collect();
            if partitions.is_empty() {
                warn!(
                    topic,
                    "Reference topic missing: nothing read from it (create it with `condmon topics create`)."
                );
            }
            for partition in partitions {
                tpl.add_partition_offset(topic, partition, Offset::Beginning)?;
            }
        }
        consumer.assign(&tpl)?;
        Ok(GlobalReader { consumer })
    }

    /// Everything up to the end of every partition as it is now: the tables as they stand.
    /// Blocks on the broker; fails if the end is not reached within `timeout`.
    pub fn catch_up(&self, timeout: Duration) -> Result<Vec<InputMessage>, BrokerError> {
        let assignment = self.consumer.assignment()?;
        let mut remaining: HashMap<(String, i32), i64> = HashMap::new();
        for e in assignment.elements() {
            let (low, high) = self.consumer.fetch_watermarks(
                e.topic(),
                e.partition(),
                Duration::from_secs(10),
            )?;
            if high > low {
                remaining.insert((e.topic().to_string(), e.partition()), high);
            }
        }
        let deadline = std::time::Instant::now() + timeout;
        let mut out = Vec::new();
        while !remaining.is_empty() {
            if std::time::Instant::now() > deadline {
                return Err(BrokerError::transient(format!(
                    "reference topics not read to their end within {timeout:?}: {remaining:?}"
                )));
            }
            if let Some(message) = self.consumer.poll(Duration::from_millis(100)) {
                let message = detach(&message?);
                let tp = (message.topic.clone(), message.partition);
                if remaining
                    .get(&tp)
                    .is_some_and(|end| message.offset + 1 >= *end)
                {
                    remaining.remove(&tp);
                }
                out.push(message);
            }
        }
        Ok(out)
    }

    /// What has arrived since, without waiting.
    pub fn poll(&self) -> Vec<InputMessage> {
        let mut out = Vec::new();
        while let Some(message) = self.consumer.poll(Duration::ZERO) {
            match message {
                Ok(m) => out.push(detach(&m)),
                Err(e) => {
                    warn!(error = %e, "Reference topic read error; retrying on the next tick.");
                    break;
                }
            }
        }
        out
    }
}

/// One record to produce.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct OutRecord {
    pub topic: String,
    /// Where it goes; `None`: the Java clients' partitioner (murmur2 of the key).
    pub partition: Option<i32>,
    pub key: Option<Vec<u8>>,
    /// `None`: a tombstone (on a compacted topic, the key's deletion).
    pub payload: Option<Vec<u8>>,
    pub headers: Vec<(String, String)>,
}

impl OutRecord {
    /// The bytes the record counts for against `message.max.bytes`: key, value and headers,
    /// with a margin for the record and batch framing.
    pub fn size(&self) -> usize {
        const FRAMING: usize = 128;
        const PER_HEADER: usize = 10;
        self.key.as_ref().map_or(0, Vec::len)
            + self.payload.as_ref().map_or(0, Vec::len)
            + self
                .headers
                .iter()
                .map(|(k, v)| k.len() + v.len() + PER_HEADER)
                .sum::<usize>()
            + FRAMING
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        header(&self.headers, name)
    }
}

/// The idempotent producer for outputs and dead letters.
#[derive(Clone)]
pub struct Sink {
    /// Replaced whole by [`Sink::recreate`] after a fatal error (for every clone).
    producer: Arc<std::sync::RwLock<Arc<FutureProducer<StatsContext>>>>,
    client: ClientConfig,
    on_stats: Option<OnStats>,
}

impl Sink {
    pub fn new(config: &Config) -> Result<Sink, BrokerError> {
        Self::with_stats(config, None)
    }

    /// A sink whose producer reports librdkafka's statistics to `on_stats`.
    pub fn with_stats(config: &Config, on_stats: Option<OnStats>) -> Result<Sink, BrokerError> {
        let mut client = producer_config(config);
        if on_stats.is_some() {
            set_statistics_interval(&mut client, config);
        }
        let producer = client.create_with_context(StatsContext {
            on_stats: on_stats.clone(),
        })?;
        Ok(Sink {
            producer: Arc::new(std::sync::RwLock::new(Arc::new(producer))),
            client,
            on_stats,
        })
    }

    fn producer(&self) -> Arc<FutureProducer<StatsContext>> {
        self.producer.read().expect("producer lock").clone()
    }

    /// The fatal error the producer raised, if it did (an idempotent producer that lost track
    /// of its sequence numbers): it refuses every send from then on, and only a new producer
    /// recovers.
    pub fn fatal_error(&self) -> Option<String> {
        self.producer()
            .client()
            .fatal_error()
            .map(|(code, reason)| format!("{code}: {reason}"))
    }

    /// Replaces the producer by a new one with the same settings (a new producer id: the
    /// records sent again keep their order and event ids, so nothing is lost or doubled).
    pub fn recreate(&self) -> Result<(), BrokerError> {
        let producer = self.client.create_with_context(StatsContext {
            on_stats: self.on_stats.clone(),
        })?;
        *self.producer.write().expect("producer lock") = Arc::new(producer);
        Ok(())
    }

    /// Fault injection for the tests: librdkafka's own test hook raises a fatal error in the
    /// producer, as a broker losing its sequence numbers would.
    pub fn inject_fatal_error(&self) {
        let producer = self.producer();
        let reason = std::ffi::CString::new("injected by CONDMON_FAULT_PRODUCER_FATAL_AT_BATCH")
            .expect("no NUL");
        // SAFETY: the client pointer is valid while `producer` is held; the hook copies the
        // reason.
        unsafe {
            rdkafka::bindings::rd_kafka_test_fatal_error(
                producer.client().native_ptr(),
                RDKafkaRespErr::RD_KAFKA_RESP_ERR_OUT_OF_ORDER_SEQUENCE_NUMBER,
                reason.as_ptr(),
            );
        }
    }

    /// Produces every record and waits for the broker's acknowledgements: where each landed,
    /// and the records that failed (to be sent again after a back-off).
    pub async fn send_all(&self, records: Vec<OutRecord>) -> Sent {
        let producer = self.producer();
        let mut in_flight = Vec::with_capacity(records.len());
        let mut failed = Vec::new();
        let mut delivered = Vec::with_capacity(records.len());
        let (mut failed_at, mut delivered_at) = (Vec::new(), Vec::new());
        for (index, record) in records.into_iter().enumerate() {
            loop {
                let mut headers = OwnedHeaders::new_with_capacity(record.headers.len());
                for (k, v) in &record.headers {
                    headers = headers.insert(Header {
                        key: k,
                        value: Some(v),
                    });
                }
                let mut future_record = FutureRecord::to(&record.topic).headers(headers);
                if let Some(payload) = &record.payload {
                    future_record = future_record.payload(payload);
                }
                if let Some(partition) = record.partition {
                    future_record = future_record.partition(partition);
                }
                if let Some(key) = &record.key {
                    future_record = future_record.key(key);
                }
                match producer.send_result(future_record) {
                    Ok(delivery) => {
                        in_flight.push((index, record, delivery));
                        break;
                    }
                    // The local queue is full: let librdkafka drain it, then try again.
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                    Err((e, _)) => {
                        failed.push((record, BrokerError::from(e)));
                        failed_at.push(index);
                        break;
                    }
                }
            }
        }
        for (index, record, delivery) in in_flight {
            match delivery.await {
                Ok(Ok(at)) => {
                    delivered.push((record, at.partition, at.offset));
                    delivered_at.push(index);
                }
                Ok(Err((e, _))) => {
                    failed.push((record, BrokerError::from(e)));
                    failed_at.push(index);
                }
                Err(_) => {
                    failed.push((
                        record,
                        BrokerError::transient("producer dropped the delivery".into()),
                    ));
                    failed_at.push(index);
                }
            }
        }
        Sent {
            delivered,
            failed,
            delivered_at,
            failed_at,
        }
    }
}

/// What [`Sink::send_all`] did.
#[derive(Debug, Default)]
pub struct Sent {
    /// Acknowledged records with the partition and offset each was written at.
    pub delivered: Vec<(OutRecord, i32, i64)>,
    pub failed: Vec<(OutRecord, BrokerError)>,
    /// Where each of `delivered` and of `failed` was in the records sent.
    pub delivered_at: Vec<usize>,
    pub failed_at: Vec<usize>,
}

impl Sent {
    /// What to send again after a failure, in the original order: for each topic and key, its
    /// first failed record and every record of that key after it, acknowledged or not — so a
    /// customer's events (and a changelog key's values) never overtake each other. The rest of
    /// what was acknowledged stands. (Re-sent outputs keep their event ids: a consumer keeps
    /// one of each.)
    pub fn split_for_resend(self) -> (Vec<(OutRecord, i32, i64)>, Vec<OutRecord>) {
        let mut first_failure: HashMap<(String, Option<Vec<u8>>), usize> = HashMap::new();
        for ((record, _), index) in self.failed.iter().zip(&self.failed_at) {
            let entry = first_failure
                .entry((record.topic.clone(), record.key.clone()))
                .or_insert(*index);
            *entry = (*entry).min(*index);
        }
        let again = |record: &OutRecord, index: usize| {
            first_failure
                .get(&(record.topic.clone(), record.key.clone()))
                .is_some_and(|first| index >= *first)
        };
        let mut kept = Vec::new();
        let mut resend: Vec<(usize, OutRecord)> = Vec::new();
        for ((record, partition, offset), index) in
            self.delivered.into_iter().zip(self.delivered_at)
        {
            if again(&record, index) {
                resend.push((index, record));
            } else {
                kept.push((record, partition, offset));
            }
        }
        resend.extend(
            self.failed_at
                .into_iter()
                .zip(self.failed.into_iter().map(|(r, _)| r)),
        );
        resend.sort_by_key(|(index, _)| *index);
        (kept, resend.into_iter().map(|(_, r)| r).collect())
    }
}

/// One record of a log read back (a changelog).
#[derive(Debug, Clone)]
pub struct LogRecord {
    pub offset: i64,
    pub key: Vec<u8>,
    /// `None`: a tombstone.
    pub value: Option<Vec<u8>>,
    pub headers: Vec<(String, String)>,
}

impl LogRecord {
    pub fn header(&self, name: &str) -> Option<&str> {
        header(&self.headers, name)
    }
}

/// Reads topic partitions from an offset to an end, without a group: how state is restored
/// from its changelogs.
pub struct LogReader {
    consumer: BaseConsumer<ReaderContext>,
}

/// The log reader's client context: reaching the end of a partition is how it knows it is
/// done, not an error to log.
pub struct ReaderContext;

impl ClientContext for ReaderContext {
    fn error(&self, error: KafkaError, reason: &str) {
        let end = matches!(
            error,
            KafkaError::PartitionEOF(_) | KafkaError::Global(RDKafkaErrorCode::PartitionEOF)
        );
        if !end {
            tracing::error!(error = %error, reason, "Changelog reader error.");
        }
    }
}

impl ConsumerContext for ReaderContext {}

impl LogReader {
    pub fn new(config: &Config) -> Result<LogReader, BrokerError> {
        let consumer: BaseConsumer<ReaderContext> = client_config(config)
            .set("group.id", format!("{}-restore", config.kafka.group_id))
            .set("enable.auto.commit", "false")
            .set("enable.partition.eof", "true")
            // Reading to a known end: no reason to wait for more data on a fetch.
            .set("fetch.wait.max.ms", "10")
            .create_with_context(ReaderContext)?;
        Ok(LogReader { consumer })
    }

    /// The low and high watermarks (first offset, next offset) of a topic partition.
    pub fn watermarks(&self, topic: &str, partition: i32) -> Result<(i64, i64), BrokerError> {
        Ok(self
            .consumer
            .fetch_watermarks(topic, partition, Duration::from_secs(10))?)
    }

    /// Hands every record of each range of `logs` (a topic's partition `partition`, from its
    /// first offset up to, not including, its second) to `each` with the range's index in
    /// `logs`: all read at once, each topic in offset order. A topic may have several ranges
    /// (a writer's gaps in one changelog); it is read once, from the first. Fails if the broker
    /// stops answering for `idle`.
    pub fn read<E: From<BrokerError>>(
        &self,
        partition: i32,
        logs: &[(&str, i64, i64)],
        idle: Duration,
        mut each: impl FnMut(usize, LogRecord) -> Result<(), E>,
    ) -> Result<(), E> {
        // Topic → its ranges (index, from, to); and where each topic is read up to.
        let mut ranges: HashMap<&str, Vec<(usize, i64, i64)>> = HashMap::new();
        for (index, (topic, from, to)) in logs.iter().enumerate() {
            if from < to {
                ranges.entry(topic).or_default().push((index, *from, *to));
            }
        }
        let mut open: HashMap<&str, i64> = ranges
            .iter()
            .map(|(topic, r)| (*topic, r.iter().map(|(_, _, to)| *to).max().unwrap_or(0)))
            .collect();
        if open.is_empty() {
            return Ok(());
        }
        let mut tpl = TopicPartitionList::new();
        for (topic, r) in &ranges {
            let from = r.iter().map(|(_, from, _)| *from).min().unwrap_or(0);
            tpl.add_partition_offset(topic, partition, Offset::Offset(from))
                .map_err(BrokerError::from)?;
        }
        self.consumer.assign(&tpl).map_err(BrokerError::from)?;
        let mut last = std::time::Instant::now();
        while !open.is_empty() {
            match self.consumer.poll(Duration::from_millis(100)) {
                Some(Ok(m)) => {
                    last = std::time::Instant::now();
                    let Some(&to) = open.get(m.topic()) else {
                        continue;
                    };
                    let at = m.offset();
                    for (index, from, until) in &ranges[m.topic()] {
                        if (*from..*until).contains(&at) {
                            each(
                                *index,
                                LogRecord {
                                    offset: at,
                                    key: m.key().unwrap_or_default().to_vec(),
                                    value: m.payload().map(<[u8]>::to_vec),
                                    headers: headers_of(&m),
                                },
                            )?;
                        }
                    }
                    if at + 1 >= to {
                        open.remove(m.topic());
                    }
                }
                Some(Err(KafkaError::PartitionEOF(_))) => {
                    // A topic is at its end (which one is not said: ask for the positions). Its
                    // last records may have been compacted away, so its end offset never came.
                    last = std::time::Instant::now();
                    let positions = self.consumer.position().map_err(BrokerError::from)?;
                    for e in positions.elements() {
                        if let (Offset::Offset(at), Some(&to)) = (e.offset(), open.get(e.topic()))
                            && at >= to
                        {
                            open.remove(e.topic());
                        }
                    }
                }
                Some(Err(e)) => return Err(BrokerError::from(e).into()),
                None if last.elapsed() > idle => {
                    return Err(BrokerError::transient(format!(
                        "reading partition {partition} of {:?}: no record for {idle:?}",
                        open.keys().collect::<Vec<_>>()
                    ))
                    .into());
                }
                None => {}
            }
        }
        Ok(())
    }
}

/// A record read back from a topic, by tools (`condmon tail`) and tests.
#[derive(Debug, Clone)]
pub struct ReadRecord {
    pub partition: i32,
    pub offset: i64,
    /// The record's Kafka timestamp (milliseconds since the epoch), if it has one.
    pub timestamp: Option<i64>,
    pub key: Option<Vec<u8>>,
    pub payload: Option<Vec<u8>>,
    pub headers: Vec<(String, String)>,
}

impl ReadRecord {
    fn of(m: &rdkafka::message::BorrowedMessage<'_>) -> ReadRecord {
        ReadRecord {
            partition: m.partition(),
            offset: m.offset(),
            timestamp: m.timestamp().to_millis(),
            key: m.key().map(<[u8]>::to_vec),
            payload: m.payload().map(<[u8]>::to_vec),
            headers: headers_of(m),
        }
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        header(&self.headers, name)
    }
}

/// Reads `topic` from the beginning of every partition, without joining a group, to the end
/// each partition has when called (its high watermark), or until `max` records, or until
/// nothing arrives for `idle` (a fallback: a broker may not answer).
pub fn read_topic(
    config: &Config,
    topic: &str,
    max: usize,
    idle: Duration,
) -> Result<Vec<ReadRecord>, BrokerError> {
    let consumer: BaseConsumer = client_config(config)
        .set("group.id", "condmon-reader")
        .set("enable.auto.commit", "false")
        .create()?;
    let metadata = consumer.fetch_metadata(Some(topic), Duration::from_secs(10))?;
    let mut tpl = TopicPartitionList::new();
    let mut remaining: HashMap<i32, i64> = HashMap::new();
    for partition in metadata.topics().iter().flat_map(|t| t.partitions()) {
        tpl.add_partition_offset(topic, partition.id(), Offset::Beginning)?;
        let (low, high) =
            consumer.fetch_watermarks(topic, partition.id(), Duration::from_secs(10))?;
        if high > low {
            remaining.insert(partition.id(), high);
        }
    }
    consumer.assign(&tpl)?;
    let mut out = Vec::new();
    let mut last = std::time::Instant::now();
    while !remaining.is_empty() && out.len() < max && last.elapsed() < idle {
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => {
                last = std::time::Instant::now();
                if remaining
                    .get(&m.partition())
                    .is_some_and(|end| m.offset() + 1 >= *end)
                {
                    remaining.remove(&m.partition());
                }
                out.push(ReadRecord::of(&m));
            }
            Some(Err(e)) => return Err(e.into()),
            None => {}
        }
    }
    Ok(out)
}

/// The records of every partition of `topic` whose timestamp is in `from..to` (milliseconds;
/// open ends when `None`), as they stand now: each partition is read from the first offset at
/// or after `from` (the broker's time index; from the beginning if it has none) up to its end
/// when the read started, or to its first record at or after `to`. Only the records kept are
/// held in memory.
pub fn read_range(
    config: &Config,
    topic: &str,
    from: Option<i64>,
    to: Option<i64>,
) -> Result<Vec<ReadRecord>, BrokerError> {
    let consumer: BaseConsumer = client_config(config)
        .set("group.id", "condmon-export")
        .set("enable.auto.commit", "false")
        .create()?;
    let metadata = consumer.fetch_metadata(Some(topic), Duration::from_secs(10))?;
    let mut tpl = TopicPartitionList::new();
    let mut ends: HashMap<i32, i64> = HashMap::new();
    for partition in metadata.topics().iter().flat_map(|t| t.partitions()) {
        let (low, high) =
            consumer.fetch_watermarks(topic, partition.id(), Duration::from_secs(10))?;
        if high > low {
            ends.insert(partition.id(), high);
            tpl.add_partition_offset(topic, partition.id(), Offset::Beginning)?;
        }
    }
    if let Some(from) = from {
        let mut times = TopicPartitionList::new();
        for partition in ends.keys() {
            times.add_partition_offset(topic, *partition, Offset::Offset(from))?;
        }
        // A broker without a time index (or an answer past the end) reads from the
        // beginning: the timestamps below filter what it returns.
        if let Ok(found) = consumer.offsets_for_times(times, Duration::from_secs(10)) {
            for element in found.elements() {
                if let Offset::Offset(offset) = element.offset() {
                    tpl.set_partition_offset(topic, element.partition(), Offset::Offset(offset))?;
                }
            }
        }
    }
    consumer.assign(&tpl)?;
    let mut out = Vec::new();
    let mut last = std::time::Instant::now();
    let in_range =
        |t: Option<i64>| t.is_none_or(|t| from.is_none_or(|f| t >= f) && to.is_none_or(|e| t < e));
    while !ends.is_empty() && last.elapsed() < Duration::from_secs(10) {
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => {
                last = std::time::Instant::now();
                let timestamp = m.timestamp().to_millis();
                let past_end = ends
                    .get(&m.partition())
                    .is_none_or(|end| m.offset() + 1 >= *end);
                let past_to = matches!((timestamp, to), (Some(t), Some(e)) if t >= e);
                if past_end || past_to {
                    ends.remove(&m.partition());
                    if let Err(e) = consumer.pause(&{
                        let mut done = TopicPartitionList::new();
                        done.add_partition(topic, m.partition());
                        done
                    }) {
                        warn!(topic, error = %e, "Could not pause a partition read to its end.");
                    }
                }
                if in_range(timestamp) && !past_to {
                    out.push(ReadRecord::of(&m));
                }
            }
            Some(Err(e)) => return Err(e.into()),
            None => {}
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::{BrokerError, OutRecord, Sent, check_position, properties_from_env};

    /// A failed send goes again with every later record of its key, in the original order: a
    /// customer's events never overtake each other; other keys' acknowledgements stand.
    #[test]
    fn a_failure_is_sent_again_with_what_followed_it_for_its_key_in_order() {
        let record = |key: &str, n: u8| OutRecord {
            topic: "cm.actions".into(),
            partition: None,
            key: Some(key.as_bytes().to_vec()),
            payload: Some(vec![n]),
            headers: vec![],
        };
        // Sent in this order: A1 B1 A2 B2 A3; A2 failed, the rest was acknowledged.
        let sent = Sent {
            delivered: vec![
                (record("A", 1), 0, 10),
                (record("B", 1), 1, 20),
                (record("B", 2), 1, 21),
                (record("A", 3), 0, 12),
            ],
            delivered_at: vec![0, 1, 3, 4],
            failed: vec![(record("A", 2), BrokerError::transient("timed out".into()))],
            failed_at: vec![2],
        };
        let (kept, again) = sent.split_for_resend();
        let payloads = |records: Vec<&OutRecord>| -> Vec<(String, u8)> {
            records
                .into_iter()
                .map(|r| {
                    (
                        String::from_utf8(r.key.clone().unwrap()).unwrap(),
                        r.payload.as_ref().unwrap()[0],
                    )
                })
                .collect()
        };
        assert_eq!(
            payloads(again.iter().collect()),
            [("A".to_string(), 2), ("A".to_string(), 3)],
            "A2 again, and A3 after it although it was acknowledged"
        );
        assert_eq!(
            payloads(kept.iter().map(|(r, _, _)| r).collect()),
            [
                ("A".to_string(), 1),
                ("B".to_string(), 1),
                ("B".to_string(), 2)
            ]
        );
    }

    #[test]
    fn errors_no_retry_recovers_from_are_told_apart() {
        use rdkafka::error::{KafkaError, RDKafkaErrorCode};
        let too_large = BrokerError::from(KafkaError::MessageProduction(
            RDKafkaErrorCode::MessageSizeTooLarge,
        ));
        let unknown = BrokerError::from(KafkaError::MessageProduction(
            RDKafkaErrorCode::UnknownTopicOrPartition,
        ));
        let timed_out = BrokerError::from(KafkaError::MessageProduction(
            RDKafkaErrorCode::MessageTimedOut,
        ));
        assert!(too_large.is_permanent() && unknown.is_permanent());
        assert!(!timed_out.is_permanent(), "a timeout is worth another try");
    }

    /// Credentials come from the environment (a Kubernetes Secret), never only the file.
    #[test]
    fn kafka_properties_are_taken_from_the_environment() {
        let vars = [
            ("CONDMON_KAFKA_CLIENT_SASL_PASSWORD", "s3cret"),
            ("CONDMON_KAFKA_CLIENT_SECURITY_PROTOCOL", "SASL_SSL"),
            ("CONDMON_KAFKA_CLIENT_", "ignored: no name"),
            ("CONDMON_CONFIG", "not a property"),
        ]
        .map(|(k, v)| (k.to_string(), v.to_string()));
        assert_eq!(
            properties_from_env(vars.into_iter()),
            [
                ("sasl.password".to_string(), "s3cret".to_string()),
                ("security.protocol".to_string(), "SASL_SSL".to_string()),
            ]
        );
    }

    #[test]
    fn a_stored_offset_outside_what_the_partition_holds_stops_it_with_both_offsets_named() {
        assert_eq!(check_position("ar.items", 2, Some(40), (10, 90)), Ok(()));
        assert_eq!(check_position("ar.items", 2, Some(10), (10, 90)), Ok(()));
        assert_eq!(check_position("ar.items", 2, Some(90), (10, 90)), Ok(()));
        assert_eq!(check_position("ar.items", 2, None, (10, 90)), Ok(()));
        let below = check_position("ar.items", 2, Some(7), (10, 90)).unwrap_err();
        assert!(
            below.starts_with("ar.items/2: the next offset to process is 7 but the partition now starts at 10 (its log start offset)"),
            "{below}"
        );
        let beyond = check_position("ar.items", 2, Some(91), (10, 90)).unwrap_err();
        assert!(
            beyond.contains("read up to offset 91 but the partition ends at 90"),
            "{beyond}"
        );
    }
}
