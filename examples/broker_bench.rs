//! The client side of the broker benchmark (`deploy/bench/broker.sh` drives it): loads item
//! changes into the items topic, runs the plain consume → produce passthrough condmon is
//! compared with, times input → action event under a steady background load, and times a
//! business day's timers from the day's start to their action events.
//!
//! Every producer here is configured as condmon's own (`condmon::kafka::producer_config`:
//! condmon's defaults, the file's `[kafka.producer]`, idempotence and the Java partitioner),
//! so the passthrough and condmon differ only in what happens between consume and produce.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use chrono::NaiveDate;
use clap::{Parser, Subcommand};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::message::Message;
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};
use rust_decimal::Decimal;

use condmon::codec::SchemaCatalog;
use condmon::config::Config;
use condmon::model::{CustomerKey, InputEvent, ItemChange};

#[derive(Parser)]
struct Cli {
    /// condmon's configuration (brokers, topics, producer settings, schemas).
    #[arg(long)]
    config: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Produces `count` item changes for `customers` customers to the items topic, as fast as
    /// the producer goes.
    Load {
        #[arg(long)]
        count: u32,
        #[arg(long)]
        customers: u32,
    },
    /// Reads `count` records of the items topic from its beginning and produces each to `to`;
    /// prints records/s from the first record read to the last acknowledgement.
    Passthrough {
        #[arg(long)]
        count: u32,
        #[arg(long)]
        to: String,
    },
    /// For `seconds`, produces item changes for `customers` existing customers at `rate` a
    /// second and, `probes` times a second, an invoice of a new customer that opens a
    /// collection plan at once; times each probe from just before its send to its first action
    /// event read from the actions topic. Prints the percentiles.
    Latency {
        #[arg(long)]
        rate: u32,
        #[arg(long)]
        customers: u32,
        #[arg(long, default_value_t = 30)]
        seconds: u64,
        #[arg(long, default_value_t = 10)]
        probes: u32,
    },
    /// Moves condmon's file clock (`clock`) to `to`, the start of a business day on which
    /// timers are due, and times each action event from that instant until it is read from the
    /// actions topic; stops once none has come for `quiet_seconds` (the first may take up to two
    /// minutes). Prints the percentiles.
    Timers {
        #[arg(long)]
        clock: PathBuf,
        #[arg(long)]
        to: NaiveDate,
        #[arg(long, default_value_t = 5)]
        quiet_seconds: u64,
    },
}

/// Past due on the benchmark's business date (the script's file clock says 2026-03-01), so
/// an invoice of a new customer opens a collection plan at once.
fn due() -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 1, 15).expect("a date")
}

/// Change `n` of the stream: an invoice of customer `n % customers`, a new item or a new open
/// amount of an earlier one.
fn item_change(n: u32, customers: u32, prefix: &str) -> InputEvent {
    let key = CustomerKey::new("SHARE", format!("{prefix}{:07}", n % customers));
    let amount = Decimal::from(1000 + 100 * (n % 7));
    let mut item = ItemChange::invoice(
        &key,
        "US001",
        &format!("INV-{}", (n / customers) % 5),
        amount,
        "USD",
        due(),
    );
    item.open_amount = amount - Decimal::from(n % 3 * 100);
    InputEvent::Item(item)
}

struct Bench {
    config: Config,
    catalog: SchemaCatalog,
    producer: FutureProducer,
}

impl Bench {
    fn send(&self, topic: &str, event: &InputEvent) -> anyhow::Result<DeliveryFuture> {
        let key = event.record_key();
        let value = self.catalog.encode_input(event)?;
        self.producer
            .send_result(FutureRecord::to(topic).key(&key).payload(&value))
            .map_err(|(e, _)| anyhow::anyhow!("produce: {e}"))
    }

    /// A consumer with condmon's consumer settings (`[kafka.consumer]`), plus `extra`.
    fn consumer(&self, group: &str, extra: &[(&str, &str)]) -> anyhow::Result<StreamConsumer> {
        let mut client = condmon::kafka::client_config(&self.config);
        for (k, v) in &self.config.kafka.consumer {
            client.set(k, v);
        }
        for (k, v) in extra {
            client.set(*k, *v);
        }
        Ok(client
            .set("group.id", group)
            .set("enable.auto.commit", "false")
            .set("auto.offset.reset", "earliest")
            .create()?)
    }
}

/// Records sent and not yet acknowledged, at most: a sender waits for acknowledgements beyond
/// it. Without a bound the load queued all its records at once, and with one record per batch
/// a slow broker did not acknowledge the last within the producer's `message.timeout.ms`
/// (30 s): the load failed with `MessageTimedOut`.
const IN_FLIGHT: usize = 5_000;

/// Awaits acknowledgements in the order the records were sent, counting them; returns when
/// `count` have been acknowledged.
fn acknowledge(
    count: u32,
) -> (
    tokio::sync::mpsc::Sender<DeliveryFuture>,
    tokio::task::JoinHandle<anyhow::Result<Instant>>,
) {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<DeliveryFuture>(IN_FLIGHT);
    let acker = tokio::spawn(async move {
        let mut acked = 0;
        while let Some(delivery) = rx.recv().await {
            delivery
                .await?
                .map_err(|(e, _)| anyhow::anyhow!("delivery: {e}"))?;
            acked += 1;
            if acked == count {
                return Ok(Instant::now());
            }
        }
        anyhow::bail!("{acked} of {count} acknowledged")
    });
    (tx, acker)
}

async fn load(bench: &Bench, count: u32, customers: u32) -> anyhow::Result<()> {
    let started = Instant::now();
    let (tx, acker) = acknowledge(count);
    for n in 0..count {
        let delivery = bench.send(&bench.config.topics.items, &item_change(n, customers, "C"))?;
        tx.send(delivery).await?;
    }
    let done = acker.await??;
    let took = (done - started).as_secs_f64();
    println!(
        "load: {count} item changes in {took:.1} s ({:.0} records/s)",
        f64::from(count) / took
    );
    Ok(())
}

async fn passthrough(bench: &Bench, count: u32, to: &str) -> anyhow::Result<()> {
    // The target topic, as many partitions as the items topic.
    let admin: AdminClient<DefaultClientContext> =
        condmon::kafka::client_config(&bench.config).create()?;
    let topic = NewTopic::new(
        to,
        bench.config.topics.partitions,
        TopicReplication::Fixed(bench.config.topics.replication_factor),
    );
    for created in admin.create_topics([&topic], &AdminOptions::new()).await? {
        match created {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((topic, code)) => anyhow::bail!("creating {topic}: {code}"),
        }
    }
    let consumer = bench.consumer("bench-passthrough", &[])?;
    consumer.subscribe(&[&bench.config.topics.items])?;
    let (tx, acker) = acknowledge(count);
    let mut started = None;
    for _ in 0..count {
        let message = consumer.recv().await?;
        started.get_or_insert_with(Instant::now);
        let mut record = FutureRecord::to(to);
        if let Some(key) = message.key() {
            record = record.key(key);
        }
        if let Some(payload) = message.payload() {
            record = record.payload(payload);
        }
        let delivery = bench
            .producer
            .send_result(record)
            .map_err(|(e, _)| anyhow::anyhow!("produce: {e}"))?;
        tx.send(delivery).await?;
    }
    let done = acker.await??;
    consumer.commit_consumer_state(rdkafka::consumer::CommitMode::Sync)?;
    let took = (done - started.expect("a record")).as_secs_f64();
    println!(
        "passthrough: {count} records in {took:.2} s ({:.0} records/s)",
        f64::from(count) / took
    );
    Ok(())
}

async fn latency(
    bench: &Bench,
    rate: u32,
    customers: u32,
    seconds: u64,
    probes: u32,
) -> anyhow::Result<()> {
    let actions = actions_from_end(bench, "bench-latency").await?;

    let sent: std::sync::Arc<std::sync::Mutex<HashMap<Vec<u8>, Instant>>> = Default::default();
    let producing = {
        let sent = sent.clone();
        let period = Duration::from_millis(10);
        let background_per_tick = f64::from(rate) / 100.0;
        let probe_every = 100 / probes.max(1);
        let bench_items = bench.config.topics.items.clone();
        let catalog = bench.catalog.clone();
        let producer = bench.producer.clone();
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(period);
            let (mut background, mut owed, mut probe) = (0u32, 0f64, 0u32);
            for tick in 0..seconds * 100 {
                ticker.tick().await;
                owed += background_per_tick;
                while owed >= 1.0 {
                    let event = item_change(background, customers, "C");
                    let value = catalog.encode_input(&event)?;
                    let key = event.record_key();
                    let _ = producer
                        .send_result(FutureRecord::to(&bench_items).key(&key).payload(&value));
                    background += 1;
                    owed -= 1.0;
                }
                if tick % u64::from(probe_every) == 0 {
                    // A new customer's invoice of 2,000.00, past due: over every collection
                    // rule's threshold, so each probe opens a plan.
                    let mut event = item_change(probe, u32::MAX, "P");
                    if let InputEvent::Item(item) = &mut event {
                        item.original_amount = Decimal::from(2000);
                        item.open_amount = Decimal::from(2000);
                    }
                    let value = catalog.encode_input(&event)?;
                    let key = event.record_key();
                    sent.lock()
                        .expect("sent lock")
                        .insert(key.clone().into_bytes(), Instant::now());
                    let _ = producer
                        .send_result(FutureRecord::to(&bench_items).key(&key).payload(&value));
                    probe += 1;
                }
            }
            anyhow::Ok((background, probe))
        })
    };

    let mut seen: HashMap<Vec<u8>, Duration> = HashMap::new();
    let note = |message: &rdkafka::message::BorrowedMessage<'_>,
                seen: &mut HashMap<Vec<u8>, Duration>| {
        let arrived = Instant::now();
        if let Some(key) = message.key()
            && let Some(at) = sent.lock().expect("sent lock").get(key)
        {
            seen.entry(key.to_vec()).or_insert(arrived - *at);
        }
    };
    while !producing.is_finished() {
        if let Ok(Ok(message)) =
            tokio::time::timeout(Duration::from_millis(100), actions.recv()).await
        {
            note(&message, &mut seen);
        }
    }
    let (background, probes_sent) = producing.await??;
    // The last probes' actions may still be on their way.
    let drain_until = Instant::now() + Duration::from_secs(10);
    while seen.len() < probes_sent as usize && Instant::now() < drain_until {
        if let Ok(Ok(message)) =
            tokio::time::timeout(Duration::from_millis(100), actions.recv()).await
        {
            note(&message, &mut seen);
        }
    }
    let mut times: Vec<Duration> = seen.into_values().collect();
    times.sort();
    let at = |q: f64| quantile_ms(&times, q);
    println!(
        "latency: {background} background item changes at {rate}/s for {seconds} s; \
         {} of {probes_sent} probes answered with an action event: \
         p50 {:.0} ms, p90 {:.0} ms, p99 {:.0} ms, max {:.0} ms",
        times.len(),
        at(0.5),
        at(0.9),
        at(0.99),
        at(1.0)
    );
    Ok(())
}

/// A consumer of the actions topic from its end, assigned before anything is measured; it
/// must not add its own fetch wait to what it measures.
async fn actions_from_end(bench: &Bench, group: &str) -> anyhow::Result<StreamConsumer> {
    let actions = bench.consumer(group, &[("fetch.wait.max.ms", "1")])?;
    let topic = &bench.config.topics.actions;
    let metadata = actions.fetch_metadata(Some(topic), Duration::from_secs(10))?;
    let mut assignment = TopicPartitionList::new();
    for partition in metadata.topics()[0].partitions() {
        assignment.add_partition_offset(topic, partition.id(), Offset::End)?;
    }
    actions.assign(&assignment)?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    Ok(actions)
}

/// The `q` quantile of sorted durations, in milliseconds.
fn quantile_ms(sorted: &[Duration], q: f64) -> f64 {
    sorted
        .get(((sorted.len() as f64 * q).ceil() as usize).saturating_sub(1))
        .map_or(f64::NAN, |d| d.as_secs_f64() * 1000.0)
}

async fn timers(
    bench: &Bench,
    clock: &std::path::Path,
    to: NaiveDate,
    quiet_seconds: u64,
) -> anyhow::Result<()> {
    let actions = actions_from_end(bench, "bench-timers").await?;
    let metrics = format!("http://{}/metrics", bench.config.http_listen);
    let acknowledged = move || -> f64 {
        // condmon observes a timer's lateness once the batch that fired it is acknowledged.
        ureq::get(&metrics)
            .call()
            .ok()
            .and_then(|mut r| r.body_mut().read_to_string().ok())
            .and_then(|body| {
                body.lines()
                    .find_map(|l| l.strip_prefix("condmon_timer_lateness_seconds_count "))
                    .and_then(|n| n.trim().parse().ok())
            })
            .unwrap_or(0.0)
    };
    let before = acknowledged();
    // The due instant: the business day starts when the clock file says so.
    let due = Instant::now();
    std::fs::write(clock, format!("{to}\n"))?;
    let watch = tokio::task::spawn_blocking(move || {
        // (when the count last grew, the count) until it has not grown for 30 s: a batch
        // through one broker that writes one record per batch takes seconds.
        let (mut last, mut count) = (None, before);
        while last.is_none_or(|at: Duration| due.elapsed() < at + Duration::from_secs(30)) {
            let now = acknowledged();
            if now > count {
                (last, count) = (Some(due.elapsed()), now);
            }
            if last.is_none() && due.elapsed() > Duration::from_secs(300) {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        (last, count - before)
    });
    let mut times = Vec::new();
    let mut customers = std::collections::HashSet::new();
    // The first event may come late (a slow host working through the day's sweep, one record
    // per batch: 5 s and more here on 2026-12-02); after it, `quiet` without one ends the phase.
    let mut wait = Duration::from_secs(120);
    while let Ok(Ok(message)) = tokio::time::timeout(wait, actions.recv()).await {
        times.push(due.elapsed());
        customers.extend(message.key().map(<[u8]>::to_vec));
        wait = Duration::from_secs(quiet_seconds);
    }
    anyhow::ensure!(
        !times.is_empty(),
        "no action event came after the clock moved to {to}"
    );
    times.sort();
    println!(
        "timers: the clock moved to {to}; {} action events of {} customers read after it: \
         first {:.0} ms, p50 {:.0} ms, p99 {:.0} ms, last {:.0} ms",
        times.len(),
        customers.len(),
        quantile_ms(&times, 0.0),
        quantile_ms(&times, 0.5),
        quantile_ms(&times, 0.99),
        quantile_ms(&times, 1.0)
    );
    let (last_ack, fired) = watch.await?;
    println!(
        "timers: {fired:.0} timers fired, the last of them acknowledged (their batch's outputs, \
         changelog records and commits) {:.0} ms after the clock moved",
        last_ack.map_or(f64::NAN, |d| d.as_secs_f64() * 1000.0)
    );
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let config = Config::load(&cli.config)?;
    let catalog = config.schema_catalog().map_err(anyhow::Error::msg)?;
    let producer: FutureProducer = condmon::kafka::producer_config(&config).create()?;
    let bench = Bench {
        config,
        catalog,
        producer,
    };
    match cli.command {
        Command::Load { count, customers } => load(&bench, count, customers).await,
        Command::Passthrough { count, to } => passthrough(&bench, count, &to).await,
        Command::Latency {
            rate,
            customers,
            seconds,
            probes,
        } => latency(&bench, rate, customers, seconds, probes).await,
        Command::Timers {
            clock,
            to,
            quiet_seconds,
        } => timers(&bench, &clock, to, quiet_seconds).await,
    }
}
