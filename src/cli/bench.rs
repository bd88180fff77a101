//! `condmon bench`: the hot path in-process, as the run loop drives it (no broker): Avro records
//! decoded, validated and applied by the operator with the whole rule set in force, state in
//! RocksDB, outputs encoded, committed in batches. First the state is loaded (a customer master
//! and `--items` open invoices for each of `--customers` customers), then a mixed stream of
//! `--records` records in the proportions an ERP produces them (60 % item changes, 25 %
//! payments, 10 % aging snapshots, 5 % customer master changes) is timed.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use chrono::NaiveDate;
use rust_decimal::Decimal;

use crate::codec::SchemaCatalog;
use crate::model::{
    AgingBucket, AgingSnapshot, CustomerChange, CustomerKey, InputEvent, ItemChange,
    PaymentApplication, PaymentChange, PaymentStatus,
};
use crate::pipeline::{Operator, Outcome, Payload};
use crate::rules::RuleSet;
use crate::state::Store;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[arg(long, default_value_t = 100_000)]
    customers: u32,
    /// Open items per customer.
    #[arg(long, default_value_t = 10)]
    items: u32,
    /// Records of the timed mixed stream.
    #[arg(long, default_value_t = 200_000)]
    records: u32,
    /// Records per commit, as `pipeline.max_batch`.
    #[arg(long, default_value_t = 1000)]
    batch: usize,
    #[arg(long, default_value = "topology/rules.toml")]
    rules: PathBuf,
    /// State directory (default: a temporary one).
    #[arg(long)]
    state_dir: Option<PathBuf>,
    /// Skip the load: the state directory holds a previous run's customers (same
    /// `--customers` and `--items`).
    #[arg(long, requires = "state_dir")]
    reuse_state: bool,
    /// RocksDB's shared block cache, as `[state] block_cache_mb`.
    #[arg(long)]
    block_cache_mb: Option<usize>,
    /// RocksDB's memtables together, as `[state] write_buffer_mb`.
    #[arg(long)]
    write_buffer_mb: Option<usize>,
    /// After the load, time an ERP's full extract: every loaded item sent again as it stands.
    #[arg(long)]
    full_extract: bool,
}

/// A small deterministic generator: the same stream on every run.
struct Stream(u64);

impl Stream {
    fn next(&mut self, below: u32) -> u32 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % u64::from(below)) as u32
    }
}

const TODAY: &str = "2026-03-15";

fn key(customer: u32) -> CustomerKey {
    CustomerKey::new("SHARE", format!("C{customer:07}"))
}

/// Item `n` of a customer: 1,000.00 to 1,990.00, due every 9 days back from the business
/// date, so most are past due and every customer is in collection.
fn invoice(customer: u32, n: u32, open: Decimal) -> InputEvent {
    let today: NaiveDate = TODAY.parse().expect("a date");
    let amount = Decimal::from(1000 + 110 * (n % 10));
    let mut item = ItemChange::invoice(
        &key(customer),
        "US001",
        &format!("INV-{n}"),
        amount,
        "USD",
        today - chrono::Duration::days(9 * i64::from(n) - 20),
    );
    item.open_amount = open.min(amount);
    item.collector = Some("JDOE".into());
    InputEvent::Item(item)
}

fn master(customer: u32, limit: u32) -> InputEvent {
    let mut master = CustomerChange::new(&key(customer), "Customer", "USD");
    master.collector = Some("JDOE".into());
    master.credit_analyst = Some("MROE".into());
    master.credit_limit = Some(Decimal::from(limit));
    InputEvent::Customer(master)
}

fn mixed(stream: &mut Stream, customers: u32, items: u32, seq: u32) -> InputEvent {
    let customer = stream.next(customers);
    let n = stream.next(items);
    match stream.next(100) {
        0..60 => invoice(customer, n, Decimal::from(100 * stream.next(20))),
        60..85 => {
            let amount = Decimal::from(50 + stream.next(500));
            InputEvent::Payment(PaymentChange {
                set_id: "SHARE".into(),
                business_unit: "US001".into(),
                customer_id: key(customer).customer_id,
                payment_id: format!("P-{seq}"),
                status: PaymentStatus::Applied,
                amount,
                currency: "USD".into(),
                payment_date: TODAY.parse().expect("a date"),
                applications: vec![PaymentApplication {
                    item_id: format!("INV-{n}"),
                    item_line: 0,
                    amount,
                }],
            })
        }
        85..95 => InputEvent::Aging(AgingSnapshot {
            set_id: "SHARE".into(),
            business_unit: "US001".into(),
            customer_id: key(customer).customer_id,
            aging_id: "STD".into(),
            as_of_date: TODAY.parse().expect("a date"),
            currency: "USD".into(),
            buckets: ["01 1-30", "02 31-60", "03 61+"]
                .iter()
                .map(|category| AgingBucket {
                    category: (*category).into(),
                    amount: Decimal::from(1000 * stream.next(10)),
                })
                .collect(),
        }),
        _ => master(customer, 5000 + 1000 * stream.next(20)),
    }
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let rules = RuleSet::load(&args.rules)?;
    let catalog = Arc::new(SchemaCatalog::bundled()?);
    let operator = Operator::new(Arc::new(rules), catalog.clone());
    let temp = tempfile::tempdir()?;
    let dir = args.state_dir.clone().unwrap_or(temp.path().to_path_buf());
    let defaults = crate::config::StateConfig::default();
    let budget = crate::config::StateConfig {
        block_cache_mb: args.block_cache_mb.unwrap_or(defaults.block_cache_mb),
        write_buffer_mb: args.write_buffer_mb.unwrap_or(defaults.write_buffer_mb),
    }
    .budget();
    let store = crate::pipeline::open_store(&dir, budget)?;
    store.ensure_partition(0)?;
    let today: NaiveDate = TODAY.parse()?;
    let encoded = |event: &InputEvent| -> anyhow::Result<(String, Vec<u8>)> {
        Ok((event.record_key(), catalog.encode_input(event)?))
    };

    // The load is encoded batch by batch (a million customers' records held at once would
    // distort the memory figure), so its rate includes the encoding.
    let to_load = if args.reuse_state { 0 } else { args.customers };
    let items = args.items;
    let loaded_item = move |c: u32, n: u32| invoice(c, n, Decimal::from(1_000_000));
    let load = (0..to_load).flat_map(|c| {
        std::iter::once(master(c, 20_000)).chain((0..items).map(move |n| loaded_item(c, n)))
    });
    let mut offset = 0;
    let started = Instant::now();
    let (loaded, outputs) = in_chunks(
        load,
        &operator,
        &store,
        args.batch,
        today,
        &mut offset,
        &catalog,
    )?;
    let took = started.elapsed().as_secs_f64();
    println!(
        "load:  {loaded} records ({} customers × (master + {} items)) in {took:.1} s: {:.0} \
         records/s, {outputs} outputs",
        args.customers,
        args.items,
        loaded as f64 / took
    );
    store.flush()?;
    println!("state: {}", footprint(&store, &dir));

    if args.full_extract {
        // Nothing in it changes a customer: each is read and put back, nothing decided.
        // Every master and open item again, as loaded (an ERP's nightly full extract).
        let extract = (0..args.customers).flat_map(|c| {
            std::iter::once(master(c, 20_000)).chain((0..items).map(move |n| loaded_item(c, n)))
        });
        let started = Instant::now();
        let (sent, outputs) = in_chunks(
            extract,
            &operator,
            &store,
            args.batch,
            today,
            &mut offset,
            &catalog,
        )?;
        let took = started.elapsed().as_secs_f64();
        println!(
            "extract: {sent} masters and items sent again as they stand in {took:.1} s: {:.0} \
             records/s, {outputs} outputs",
            sent as f64 / took
        );
    }

    let mut stream = Stream(0x2545_f491_4f6c_dd1d);
    let records: Vec<(String, Vec<u8>)> = (0..args.records)
        .map(|seq| encoded(&mixed(&mut stream, args.customers, args.items, seq)))
        .collect::<anyhow::Result<_>>()?;
    let started = Instant::now();
    let (refused, outputs) =
        mixed_phase(&operator, &store, &records, args.batch, today, &mut offset)?;
    let took = started.elapsed().as_secs_f64();
    println!(
        "mixed: {} records (60 % items, 25 % payments, 10 % aging, 5 % masters) in {took:.2} s: \
         {:.0} records/s on one core, {:.1} µs a record, {outputs} outputs, {refused} refused",
        records.len(),
        records.len() as f64 / took,
        took * 1e6 / records.len() as f64
    );
    drop(records);
    println!("state: {}", footprint(&store, &dir));
    Ok(())
}

/// Resident memory of the process, RocksDB's share of it and the state directory's size.
fn footprint(store: &Store, dir: &std::path::Path) -> String {
    let rss_kb = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            let line = status.lines().find(|l| l.starts_with("VmRSS:"))?.to_owned();
            line.split_whitespace().nth(1)?.parse::<u64>().ok()
        })
        .unwrap_or(0);
    let disk: u64 = walk_size(dir);
    let usage = store.memory_usage();
    format!(
        "resident {} MiB (block cache {} MiB, memtables {} MiB), on disk {} MiB",
        rss_kb >> 10,
        usage.block_cache_bytes >> 20,
        usage.write_buffer_bytes >> 20,
        disk >> 20
    )
}

fn walk_size(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|entry| match entry.metadata() {
            Ok(m) if m.is_dir() => walk_size(&entry.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

/// The timed phase, a function of its own so that a profiler can collect it alone
/// (`valgrind --tool=callgrind --toggle-collect='*mixed_phase*'`).
#[inline(never)]
fn mixed_phase(
    operator: &Operator,
    store: &Store,
    records: &[(String, Vec<u8>)],
    batch: usize,
    today: NaiveDate,
    offset: &mut i64,
) -> anyhow::Result<(usize, usize)> {
    // Not a tail call: a profiler must see this frame to collect what runs under it.
    let result = process(operator, store, records, batch, today, offset);
    std::hint::black_box(&result);
    result
}

/// Encodes `events` a batch at a time and runs each batch through [`process`]: (records,
/// outputs).
fn in_chunks(
    mut events: impl Iterator<Item = InputEvent>,
    operator: &Operator,
    store: &Store,
    batch: usize,
    today: NaiveDate,
    offset: &mut i64,
    catalog: &SchemaCatalog,
) -> anyhow::Result<(usize, usize)> {
    let (mut records, mut outputs) = (0, 0);
    loop {
        let chunk: Vec<(String, Vec<u8>)> = events
            .by_ref()
            .take(batch)
            .map(|event| Ok((event.record_key(), catalog.encode_input(&event)?)))
            .collect::<anyhow::Result<_>>()?;
        if chunk.is_empty() {
            return Ok((records, outputs));
        }
        records += chunk.len();
        outputs += process(operator, store, &chunk, batch, today, offset)?.1;
    }
}

/// Runs `records` through the operator in batches, as the run loop does without Kafka: each
/// output encoded, each batch finished and written in one RocksDB batch with its offsets.
/// (records refused, outputs).
fn process(
    operator: &Operator,
    store: &Store,
    records: &[(String, Vec<u8>)],
    batch: usize,
    today: NaiveDate,
    offset: &mut i64,
) -> anyhow::Result<(usize, usize)> {
    let (mut refused, mut outputs) = (0, 0);
    for chunk in records.chunks(batch) {
        let mut txn = store.txn();
        for (key, bytes) in chunk {
            let stream = stream_of(bytes, operator)?;
            match operator
                .process(
                    &mut txn,
                    &[0],
                    stream,
                    Some(key),
                    Payload::Avro(bytes),
                    today,
                )
                .map_err(|e| anyhow::anyhow!("{e}"))?
            {
                Outcome::Processed(events) => {
                    for event in &events {
                        operator.catalog().encode_output(event)?;
                    }
                    outputs += events.len();
                }
                Outcome::AlreadyHeld => {}
                Outcome::Rejected(_) => refused += 1,
            }
        }
        *offset += chunk.len() as i64;
        store.apply(&txn.finish(&[(0, "bench".into(), *offset)]))?;
    }
    Ok((refused, outputs))
}

/// The stream a record's schema id belongs to (the topic would say in the run loop).
fn stream_of(bytes: &[u8], operator: &Operator) -> anyhow::Result<crate::model::Stream> {
    let id = u32::from_be_bytes(bytes[1..5].try_into()?);
    crate::model::Stream::INPUTS
        .into_iter()
        .find(|s| operator.catalog().current_id(*s) == Some(id))
        .ok_or_else(|| anyhow::anyhow!("schema id {id}"))
}
