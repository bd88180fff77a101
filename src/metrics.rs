//! Prometheus metrics. Labels are topics, partitions, kinds and statuses, never customers.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use prometheus::{
    Gauge, GaugeVec, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, IntGaugeVec,
    Opts, Registry,
};

use crate::model::ActionStatus;

#[derive(Clone)]
pub struct Metrics {
    pub registry: Registry,
    pub records_in: IntCounterVec,
    pub records_out: IntCounterVec,
    pub records_committed: IntCounterVec,
    pub records_already_held: IntCounterVec,
    pub outcomes: IntCounterVec,
    pub dead_letters: IntCounterVec,
    pub processing_seconds: Histogram,
    pub record_e2e_latency: Histogram,
    pub timer_lateness: Histogram,
    pub batches_committed: IntCounter,
    pub produce_retries: IntCounter,
    pub producer_recreated: IntCounter,
    pub external_retries: IntCounter,
    pub records_rerouted: IntCounterVec,
    pub rerouted_duplicates: IntCounterVec,
    pub unknown_symbols: IntCounterVec,
    pub restore_records: IntCounter,
    pub changelog_intrusions: IntCounter,
    pub takeover_waits: IntCounterVec,
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
    pub build_info: IntGaugeVec,
    pub commit_seconds: Histogram,
    pub last_commit_timestamp: Gauge,
    pub kafka_consumer_lag: IntGaugeVec,
    pub kafka_broker_rtt: GaugeVec,
    pub kafka_queue_messages: IntGaugeVec,
    pub kafka_queue_bytes: IntGaugeVec,
    pub state_live_data_bytes: IntGauge,
    pub state_pending_compaction_bytes: IntGauge,
    pub state_write_stopped: IntGauge,
    pub state_delayed_write_rate: IntGauge,
    pub state_block_cache_hits: IntCounter,
    pub state_block_cache_misses: IntCounter,
    pub state_disk_size: IntGauge,
    pub state_disk_available: IntGauge,
    pub business_date: IntGauge,
    pub clock_jump_held_days: IntGauge,
    pub clock_backwards: IntGauge,
    /// The (topic, partition) series of the lag gauges, to remove those of partitions that
    /// left (a revoked partition's lag would otherwise stay frozen).
    lag_series: Arc<Mutex<BTreeSet<(String, i32)>>>,
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
            "From a timer's due instant (the start of its business day) to the \
             acknowledgement of the outputs its firing caused; for a timer of the current day at \
             least the time since this process took that day (a file clock stands at midnight).",
            // 50 ms to 8 days: a timer held over a down process's days is measured, not +Inf.
            prometheus::exponential_buckets(0.05, 3.0, 16).expect("valid buckets"),
        );
        let build_info = gauge_vec(
            "build_info",
            "1, labelled with the version and the commit (`CONDMON_COMMIT` at build time) of this binary.",
            &["version", "commit"],
        );
        build_info
            .with_label_values(&[
                env!("CARGO_PKG_VERSION"),
                option_env!("CONDMON_COMMIT").unwrap_or("unknown"),
            ])
            .set(1);
        let commit_seconds = histogram(
            "commit_seconds",
            "From a batch's state change to its commit: outputs and changelog records \
             acknowledged, the changelog commits acknowledged, the RocksDB write.",
            prometheus::exponential_buckets(0.001, 2.0, 16).expect("valid buckets"),
        );
        let last_commit_timestamp = Gauge::new(
            "last_commit_timestamp_seconds",
            "Unix time of the last committed batch (`time() - …` is the age of the last commit).",
        )
        .expect("valid metric");
        registry
            .register(Box::new(last_commit_timestamp.clone()))
            .expect("unique metric");
        let kafka_broker_rtt = GaugeVec::new(
            Opts::new(
                "kafka_broker_rtt_seconds",
                "librdkafka's average round trip to each broker over its last statistics interval, by client.",
            ),
            &["client", "broker"],
        )
        .expect("valid metric");
        registry
            .register(Box::new(kafka_broker_rtt.clone()))
            .expect("unique metric");
        Metrics {
            build_info,
            commit_seconds,
            last_commit_timestamp,
            kafka_broker_rtt,
            kafka_consumer_lag: gauge_vec(
                "kafka_consumer_lag",
                "librdkafka's consumer lag per fetched partition: records between the position and the end.",
                &["topic", "partition"],
            ),
            kafka_queue_messages: gauge_vec(
                "kafka_queue_messages",
                "Messages waiting in librdkafka's queues (the producer's: sent, not yet acknowledged), by client.",
                &["client"],
            ),
            kafka_queue_bytes: gauge_vec(
                "kafka_queue_bytes",
                "Bytes waiting in librdkafka's queues, by client.",
                &["client"],
            ),
            state_live_data_bytes: gauge(
                "state_live_data_bytes",
                "RocksDB's estimate of the live data in every store.",
            ),
            state_pending_compaction_bytes: gauge(
                "state_pending_compaction_bytes",
                "Bytes RocksDB estimates compaction must rewrite to catch up (growing: it falls behind).",
            ),
            state_write_stopped: gauge(
                "state_write_stopped",
                "1 while RocksDB stops writes (too many memtables or level-0 files).",
            ),
            state_delayed_write_rate: gauge(
                "state_delayed_write_rate_bytes",
                "The rate RocksDB slows writes to, bytes a second (0: writes are not delayed).",
            ),
            state_block_cache_hits: counter(
                "state_block_cache_hits_total",
                "Reads RocksDB's block cache answered.",
            ),
            state_block_cache_misses: counter(
                "state_block_cache_misses_total",
                "Reads RocksDB's block cache did not answer (a disk read).",
            ),
            state_disk_size: gauge(
                "state_disk_size_bytes",
                "Size of the file system the state directory is on.",
            ),
            state_disk_available: gauge(
                "state_disk_available_bytes",
                "Bytes still free for condmon on the state directory's file system.",
            ),
            business_date: gauge(
                "business_date_timestamp_seconds",
                "The business date decisions are made on (its start, Unix time): it never moves \
                 backwards, and it follows the wall clock's date.",
            ),
            clock_jump_held_days: gauge(
                "clock_jump_held_days",
                "Days the system clock is ahead of the time that passed, while condmon holds the \
                 business date and fires no timer (0: the clock is followed).",
            ),
            clock_backwards: gauge(
                "clock_backwards",
                "1 while the system clock reads an earlier date than the business date (which never moves back).",
            ),
            lag_series: Arc::default(),
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
            records_already_held: counter_vec(
                "records_already_held_total",
                "Input records that said exactly what condmon already held (an ERP's extract sending them again): nothing applied or decided, by topic.",
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
            producer_recreated: counter(
                "producer_recreated_total",
                "Producers replaced after a fatal error (an idempotent producer out of sequence).",
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
            rerouted_duplicates: counter_vec(
                "rerouted_duplicates_total",
                "Records of the repartition topic skipped because the record they carry was \
                 applied already (sent on again by a redone batch), by the topic it first arrived on.",
                &["topic"],
            ),
            unknown_symbols: counter_vec(
                "unknown_symbols_total",
                "Input records read with enum symbols this version does not know (a newer \
                 producer's), read as documented rather than refused, by topic.",
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
            takeover_waits: counter_vec(
                "takeover_waits_total",
                "Partitions taken up while another instance's batch on them was unfinished, by \
                 how the wait for its commit ended: committed (its outputs are known and not \
                 sent again), gave_up (pipeline.takeover_wait_ms passed: a crashed holder, or \
                 one stuck sending).",
                &["outcome"],
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

    /// Creates the series of every input topic and outcome at 0: a rate or an increase over
    /// a series is only defined once it exists (Prometheus' "initialise your metrics").
    pub fn init_series(&self, input_topics: &[String]) {
        for topic in input_topics {
            for vec in [
                &self.records_in,
                &self.records_committed,
                &self.records_already_held,
                &self.records_rerouted,
                &self.rerouted_duplicates,
                &self.unknown_symbols,
            ] {
                vec.with_label_values(&[topic]).inc_by(0);
            }
        }
        for outcome in crate::model::OUTCOMES {
            self.outcomes.with_label_values(&[outcome]).inc_by(0);
        }
        for outcome in ["committed", "gave_up"] {
            self.takeover_waits.with_label_values(&[outcome]).inc_by(0);
        }
    }

    /// RocksDB's own figures (see [`crate::state::EngineStats`]).
    pub fn set_engine_stats(&self, stats: crate::state::EngineStats) {
        self.state_live_data_bytes.set(stats.live_data_bytes as i64);
        self.state_pending_compaction_bytes
            .set(stats.pending_compaction_bytes as i64);
        self.state_write_stopped.set(stats.write_stopped as i64);
        self.state_delayed_write_rate
            .set(stats.delayed_write_rate as i64);
        // The tickers count since the store opened; the counters follow them.
        for (counter, total) in [
            (&self.state_block_cache_hits, stats.block_cache_hits),
            (&self.state_block_cache_misses, stats.block_cache_misses),
        ] {
            counter.inc_by(total.saturating_sub(counter.get()));
        }
    }

    /// Follows the codec's counts of records read with unknown enum symbols (by topic).
    pub fn set_unknown_symbols(&self, by_topic: &[(&str, u64)]) {
        for (topic, total) in by_topic {
            let counter = self.unknown_symbols.with_label_values(&[topic]);
            counter.inc_by(total.saturating_sub(counter.get()));
        }
    }

    pub fn set_disk_space(&self, space: Option<crate::state::DiskSpace>) {
        if let Some(space) = space {
            self.state_disk_size.set(space.size_bytes as i64);
            self.state_disk_available.set(space.available_bytes as i64);
        }
    }

    pub fn set_clock_reading(&self, reading: &crate::timer::DateReading) {
        self.clock_jump_held_days.set(reading.held_days);
        self.clock_backwards.set(i64::from(reading.backwards));
    }

    pub fn set_business_date(&self, today: chrono::NaiveDate) {
        let start = today.and_hms_opt(0, 0, 0).expect("midnight exists");
        self.business_date.set(start.and_utc().timestamp());
    }

    /// A batch committed: how long its commit took, and when.
    pub fn committed(&self, took: std::time::Duration) {
        self.commit_seconds.observe(took.as_secs_f64());
        // Wall time, not the business clock: an SRE compares it with Prometheus' `time()`.
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        self.last_commit_timestamp.set(now);
    }

    /// One partition's lag as condmon's committed positions give it (`consumer_lag`).
    pub fn set_partition_lag(&self, topic: &str, partition: i32, lag: i64) {
        self.lag_series
            .lock()
            .expect("lag series lock")
            .insert((topic.to_string(), partition));
        self.consumer_lag
            .with_label_values(&[topic, &partition.to_string()])
            .set(lag);
    }

    /// What a librdkafka client's statistics say.
    pub fn set_client_stats(&self, stats: &crate::kafka::ClientStats) {
        let mut series = self.lag_series.lock().expect("lag series lock");
        for (topic, partition, lag) in &stats.partition_lag {
            series.insert((topic.clone(), *partition));
            self.kafka_consumer_lag
                .with_label_values(&[topic, &partition.to_string()])
                .set(*lag);
        }
        for (broker, rtt) in &stats.broker_rtt_seconds {
            self.kafka_broker_rtt
                .with_label_values(&[stats.client, broker])
                .set(*rtt);
        }
        self.kafka_queue_messages
            .with_label_values(&[stats.client])
            .set(stats.queue_messages as i64);
        self.kafka_queue_bytes
            .with_label_values(&[stats.client])
            .set(stats.queue_bytes as i64);
    }

    /// Removes the lag series of partitions no longer held here: a revoked partition's lag is
    /// another instance's to report.
    pub fn retain_partitions(&self, held: &BTreeSet<i32>) {
        let mut series = self.lag_series.lock().expect("lag series lock");
        series.retain(|(topic, partition)| {
            if held.contains(partition) {
                return true;
            }
            let labels = [topic.as_str(), &partition.to_string()];
            let _ = self.consumer_lag.remove_label_values(&labels);
            let _ = self.kafka_consumer_lag.remove_label_values(&labels);
            false
        });
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A revoked partition's lag is another instance's to report: its series go, the held
    /// partitions' stay.
    #[test]
    fn the_lag_series_of_a_partition_that_left_are_removed() {
        let metrics = Metrics::new();
        metrics.set_partition_lag("ar.items", 0, 5);
        metrics.set_partition_lag("ar.items", 1, 7);
        metrics.set_client_stats(&crate::kafka::ClientStats {
            client: "consumer",
            partition_lag: vec![("ar.items".into(), 0, 4), ("ar.items".into(), 1, 6)],
            broker_rtt_seconds: vec![("localhost:9092/1".into(), 0.002)],
            queue_messages: 3,
            queue_bytes: 300,
        });
        let text = metrics.render();
        assert!(text.contains("condmon_consumer_lag{partition=\"1\",topic=\"ar.items\"} 7"));
        assert!(text.contains("condmon_kafka_consumer_lag{partition=\"1\",topic=\"ar.items\"} 6"));
        assert!(text.contains("condmon_kafka_queue_messages{client=\"consumer\"} 3"));
        metrics.retain_partitions(&BTreeSet::from([0]));
        let text = metrics.render();
        assert!(!text.contains("partition=\"1\""), "{text}");
        assert!(text.contains("condmon_consumer_lag{partition=\"0\",topic=\"ar.items\"} 5"));
        assert!(text.contains("condmon_kafka_consumer_lag{partition=\"0\",topic=\"ar.items\"} 4"));
    }

    #[test]
    fn the_block_cache_counters_follow_rocksdbs_tickers() {
        let metrics = Metrics::new();
        let stats = |hits, misses| crate::state::EngineStats {
            block_cache_hits: hits,
            block_cache_misses: misses,
            ..Default::default()
        };
        metrics.set_engine_stats(stats(10, 2));
        metrics.set_engine_stats(stats(25, 3));
        assert_eq!(metrics.state_block_cache_hits.get(), 25);
        assert_eq!(metrics.state_block_cache_misses.get(), 3);
    }

    #[test]
    fn records_with_unknown_symbols_are_counted_by_topic_as_the_codec_counts_them() {
        let metrics = Metrics::new();
        metrics.set_unknown_symbols(&[("ar.items", 2)]);
        metrics.set_unknown_symbols(&[("ar.items", 5), ("cm.action-commands", 1)]);
        let text = metrics.render();
        assert!(
            text.contains("condmon_unknown_symbols_total{topic=\"ar.items\"} 5"),
            "{text}"
        );
        assert!(text.contains("condmon_unknown_symbols_total{topic=\"cm.action-commands\"} 1"));
    }
}
