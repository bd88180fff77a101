//! Prometheus metrics. Labels are topics, partitions, kinds and statuses, never customers.

use prometheus::{
    Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
};

use crate::model::ActionStatus;

#[derive(Clone)]
pub struct Metrics {
    pub registry: Registry,
    pub records_in: IntCounterVec,
    pub records_out: IntCounterVec,
    pub records_committed: IntCounterVec,
    pub outcomes: IntCounterVec,
    pub dead_letters: IntCounterVec,
    pub processing_seconds: Histogram,
    pub record_e2e_latency: Histogram,
    pub timer_lateness: Histogram,
    pub batches_committed: IntCounter,
    pub produce_retries: IntCounter,
    pub external_retries: IntCounter,
    pub records_rerouted: IntCounterVec,
    pub restore_records: IntCounter,
    pub changelog_intrusions: IntCounter,
    pub outputs_not_resent: IntCounter,
    pub outputs_suppressed: IntCounterVec,
    pub restore_remaining: IntGauge,
    pub partitions_restoring: IntGauge,
    pub store_reads: IntCounterVec,
    pub store_cache_hits: IntCounterVec,
    pub store_writes: IntCounterVec,
    pub store_written_bytes: IntCounterVec,
    pub timers_fired: IntCounter,
    pub timers_pending: IntGauge,
    pub actions: IntGaugeVec,
    pub violations: IntGaugeVec,
    pub customers_flagged: IntGauge,
    pub consumer_lag: IntGaugeVec,
    pub assigned_partitions: IntGauge,
    pub rules_version: IntGauge,
    pub state_block_cache_bytes: IntGauge,
    pub state_memtable_bytes: IntGauge,
}

impl Metrics {
    pub fn new() -> Self {
        let registry = Registry::new_custom(Some("condmon".into()), None).expect("valid prefix");
        let counter_vec = |name: &str, help: &str, labels: &[&str]| {
            let m = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric");
            registry
                .register(Box::new(m.clone()))
                .expect("unique metric");
            m
        };
        let gauge_vec = |name: &str, help: &str, labels: &[&str]| {
            let m = IntGaugeVec::new(Opts::new(name, help), labels).expect("valid metric");
            registry
                .register(Box::new(m.clone()))
                .expect("unique metric");
            m
        };
        let counter = |name: &str, help: &str| {
            let m = IntCounter::new(name, help).expect("valid metric");
            registry
                .register(Box::new(m.clone()))
                .expect("unique metric");
            m
        };
        let gauge = |name: &str, help: &str| {
            let m = IntGauge::new(name, help).expect("valid metric");
            registry
                .register(Box::new(m.clone()))
                .expect("unique metric");
            m
        };
        let processing_seconds = Histogram::with_opts(
            HistogramOpts::new(
                "processing_seconds",
                "Time to process one input record, from decode to state update.",
            )
            .buckets(prometheus::exponential_buckets(0.000_01, 4.0, 10).expect("valid buckets")),
        )
        .expect("valid metric");
        registry
            .register(Box::new(processing_seconds.clone()))
            .expect("unique metric");
        let histogram = |name: &str, help: &str, buckets: Vec<f64>| {
            let m = Histogram::with_opts(HistogramOpts::new(name, help).buckets(buckets))
                .expect("valid metric");
            registry
                .register(Box::new(m.clone()))
                .expect("unique metric");
            m
        };
        let record_e2e_latency = histogram(
            "record_e2e_latency_seconds",
            "From an input record's Kafka timestamp to the acknowledgement of the outputs it \
             caused (its batch's).",
            prometheus::exponential_buckets(0.001, 2.0, 17).expect("valid buckets"),
        );
        let timer_lateness = histogram(
            "timer_lateness_seconds",
            "From a timer's due instant (the start of its business day) to the acknowledgement \
             of the outputs its firing caused.",
            prometheus::exponential_buckets(0.05, 3.0, 14).expect("valid buckets"),
        );
        Metrics {
            record_e2e_latency,
            timer_lateness,
            records_in: counter_vec(
                "records_in_total",
                "Input records read, by topic.",
                &["topic"],
            ),
            records_out: counter_vec(
                "records_out_total",
                "Records produced and acknowledged, by topic.",
                &["topic"],
            ),
            records_committed: counter_vec(
                "records_committed_total",
                "Input records whose batch is done: outputs acknowledged, state and offsets committed, by topic.",
                &["topic"],
            ),
            outcomes: counter_vec(
                "outcomes_total",
                "Outcomes of working actions, as delivered: commands accepted or rejected, notifications without an e-mail address, letters suppressed (customer excluded from dunning) or standing for earlier ones.",
                &["outcome"],
            ),
            dead_letters: counter_vec(
                "dead_letters_total",
                "Input records sent to the dead-letter topic, by source topic and reason kind.",
                &["topic", "kind"],
            ),
            processing_seconds,
            batches_committed: counter(
                "batches_committed_total",
                "Batches whose state and offsets were committed.",
            ),
            produce_retries: counter(
                "produce_retries_total",
                "Output batches re-sent after a broker error.",
            ),
            external_retries: counter(
                "external_retries_total",
                "Input batches redone because an external dependency (the schema registry) was unavailable.",
            ),
            records_rerouted: counter_vec(
                "records_rerouted_total",
                "Input records that arrived on another partition than murmur2 of their key gives, \
                 sent on to the right one through the repartition topic, by the topic they arrived on.",
                &["topic"],
            ),
            restore_records: counter(
                "restore_records_total",
                "Changelog records read to restore or catch up a partition's state.",
            ),
            changelog_intrusions: counter(
                "changelog_intrusions_total",
                "Times records of a writer that had lost a partition (a zombie) were found in \
                 its changelogs (their keys are written again).",
            ),
            outputs_not_resent: counter(
                "outputs_not_resent_total",
                "Outputs of a redone batch that its first, uncommitted run had sent already \
                 (found on the output topics when the partition was taken up): not sent again.",
            ),
            outputs_suppressed: counter_vec(
                "outputs_suppressed_total",
                "Notifications, letters and ERP requests not sent because they are of records \
                 that were on the inputs before condmon first ran, by topic.",
                &["topic"],
            ),
            restore_remaining: gauge(
                "restore_remaining_records",
                "Changelog records still to read by the restores under way.",
            ),
            partitions_restoring: gauge(
                "partitions_restoring",
                "Partitions whose state is being restored from their changelogs.",
            ),
            store_reads: counter_vec(
                "store_reads_total",
                "Values read from RocksDB, by store.",
                &["store"],
            ),
            store_cache_hits: counter_vec(
                "store_cache_hits_total",
                "Reads answered by the batch's cache or write buffer, by store.",
                &["store"],
            ),
            store_writes: counter_vec(
                "store_writes_total",
                "Values written or deleted at commit (only those that changed), by store.",
                &["store"],
            ),
            store_written_bytes: counter_vec(
                "store_written_bytes_total",
                "Bytes of the values written at commit, by store.",
                &["store"],
            ),
            timers_fired: counter(
                "timers_fired_total",
                "Customers re-evaluated because a timer came due.",
            ),
            timers_pending: gauge(
                "timers_pending",
                "Durable timers waiting, over the partitions held here.",
            ),
            actions: gauge_vec(
                "actions",
                "Actions by status, over the partitions held here.",
                &["status"],
            ),
            violations: gauge_vec(
                "violations",
                "Active violations by condition code, over the partitions held here.",
                &["condition"],
            ),
            customers_flagged: gauge(
                "customers_flagged",
                "Customers with a rule that cannot be evaluated (e.g. a missing exchange rate), over the partitions held here.",
            ),
            consumer_lag: gauge_vec(
                "consumer_lag",
                "Records between the committed position and the end of the partition.",
                &["topic", "partition"],
            ),
            assigned_partitions: gauge(
                "assigned_partitions",
                "Input partitions held by this instance.",
            ),
            rules_version: gauge(
                "rules_version",
                "Version of the rule set in force (the topology file's, or a newer one from the rules topic).",
            ),
            state_block_cache_bytes: gauge(
                "state_block_cache_bytes",
                "RocksDB's shared block cache in use (`[state] block_cache_mb` bounds it).",
            ),
            state_memtable_bytes: gauge(
                "state_memtable_bytes",
                "RocksDB's memtables, all stores together (`[state] write_buffer_mb` bounds them).",
            ),
            registry,
        }
    }

    pub fn set_memory_gauges(&self, usage: crate::state::MemoryUsage) {
        self.state_block_cache_bytes
            .set(usage.block_cache_bytes as i64);
        self.state_memtable_bytes
            .set(usage.write_buffer_bytes as i64);
    }

    /// Counts a committed batch's reads and writes per store (the stores' metrics layer).
    pub fn count_store_use(&self, changes: &crate::state::Changes) {
        for store in crate::state::StoreName::ALL {
            let stats = changes.stats[store as usize];
            let label = [store.as_str()];
            self.store_reads
                .with_label_values(&label)
                .inc_by(stats.reads);
            self.store_cache_hits
                .with_label_values(&label)
                .inc_by(stats.hits);
            self.store_writes
                .with_label_values(&label)
                .inc_by(stats.writes);
            self.store_written_bytes
                .with_label_values(&label)
                .inc_by(stats.written_bytes);
        }
    }

    /// Sets the state gauges from the durable per-partition counters of the partitions held.
    pub fn set_state_gauges(&self, counters: &[std::collections::HashMap<String, i64>]) {
        let sum = |name: &str| counters.iter().filter_map(|c| c.get(name)).sum::<i64>();
        self.timers_pending.set(sum(crate::timer::TIMERS_PENDING));
        for status in ActionStatus::ALL {
            self.actions
                .with_label_values(&[status.as_str()])
                .set(sum(&crate::pipeline::action_counter(status)));
        }
        let conditions: std::collections::BTreeSet<&str> = counters
            .iter()
            .flat_map(|c| c.keys())
            .filter_map(|name| name.strip_prefix(crate::pipeline::VIOLATIONS_PREFIX))
            .collect();
        for condition in conditions {
            self.violations
                .with_label_values(&[condition])
                .set(sum(&crate::pipeline::violation_counter(condition)));
        }
        self.customers_flagged
            .set(sum(crate::pipeline::CUSTOMERS_FLAGGED));
    }

    /// The text exposition format served on `/metrics`.
    pub fn render(&self) -> String {
        use prometheus::Encoder;
        let mut buf = Vec::new();
        prometheus::TextEncoder::new()
            .encode(&self.registry.gather(), &mut buf)
            .expect("text encoding cannot fail");
        String::from_utf8(buf).expect("metrics are UTF-8")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
