//! Throughput of the hot path, without a broker:
//! - `codec`: Avro wire-format decode of one item change: condmon's direct decoder, the Avro
//!   value and JSON detour it replaced, and serde_avro_fast (measured, not used);
//! - `reconcile`: the pure decision for a customer with 50 open items, under the whole sample
//!   rule set (every condition of the catalog and its risk score), and for a corporate parent
//!   with 50 items and 200 children's lines (its corporate rule sees them all);
//! - `operator`: decode + validate + state read/write in RocksDB + timers, per record,
//!   committed in batches of 1000 like the run loop;
//! - `restore`: applying a partition's changelog records to empty local stores, as a restore
//!   does once they are read (bulk writes without the WAL, the flush, `timers-by-due` rebuilt);
//!   and the state size per customer, split and as the one JSON value of before.
//!
//! Figures are in the README ("Performance").

use std::sync::Arc;

use chrono::NaiveDate;
use condmon::codec::SchemaCatalog;
use condmon::engine::{CustomerState, FxTable, evaluate, reconcile};
use condmon::model::{
    ChildFigures, ChildLine, CustomerKey, InputEvent, ItemChange, ItemType, MonitorRole,
};
use condmon::pipeline::{Operator, Payload};
use condmon::rules::RuleSet;
use condmon::state::Store;
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};

fn item(customer: u32, n: u32) -> InputEvent {
    let due: NaiveDate =
        "2026-01-01".parse::<NaiveDate>().unwrap() + chrono::Duration::days(i64::from(n % 60));
    InputEvent::Item(ItemChange {
        set_id: "SHARE".into(),
        business_unit: "US001".into(),
        customer_id: format!("C{customer:06}"),
        item_id: format!("INV-{n}"),
        item_line: 0,
        item_type: ItemType::Invoice,
        original_amount: "1250.40".parse().unwrap(),
        open_amount: "1250.40".parse().unwrap(),
        currency: "USD".into(),
        accounting_date: due - chrono::Duration::days(30),
        due_date: due,
        entry_type: "IN".into(),
        entry_reason: None,
        disputed_amount: "0".parse().unwrap(),
        ar_specialist: Some("SPEC".into()),
        collector: Some("COLL".into()),
        origin_item_id: None,
        origin_item_line: None,
        origin_payment_id: None,
    })
}

/// What child `n` of C000001 sends its corporate parent: three lines, one of them past due.
fn child_figures(n: u32) -> InputEvent {
    let line = |due: &str, item: &str| ChildLine {
        business_unit: "US001".into(),
        currency: "USD".into(),
        due_date: due.parse().unwrap(),
        credit: false,
        open_amount: "310.00".parse().unwrap(),
        disputed_amount: "0".parse().unwrap(),
        item_id: item.into(),
    };
    InputEvent::ChildFigures(ChildFigures {
        set_id: "SHARE".into(),
        customer_id: "C000001".into(),
        child_id: format!("K{n:05}"),
        role: MonitorRole::Corporate,
        lines: vec![
            line("2026-01-20", "A-1"),
            line("2026-03-20", "A-2"),
            line("2026-04-20", "A-3"),
        ],
        cash: Vec::new(),
    })
}

/// `item_change_v3.avsc` as serde_avro_fast reads it.
#[derive(serde::Deserialize)]
struct ItemChangeDatum {
    set_id: String,
    business_unit: String,
    customer_id: String,
    item_id: String,
    item_line: i32,
    item_type: ItemType,
    original_amount: rust_decimal::Decimal,
    open_amount: rust_decimal::Decimal,
    currency: String,
    accounting_date: i32,
    due_date: i32,
    entry_type: String,
    entry_reason: Option<String>,
    disputed_amount: rust_decimal::Decimal,
    ar_specialist: Option<String>,
    collector: Option<String>,
    origin_item_id: Option<String>,
    origin_item_line: Option<i32>,
    origin_payment_id: Option<String>,
}

fn fast_item_change(datum: &[u8], schema: &serde_avro_fast::Schema) -> ItemChange {
    let d: ItemChangeDatum = serde_avro_fast::from_datum_slice(datum, schema).unwrap();
    let date = |days: i32| {
        NaiveDate::from_ymd_opt(1970, 1, 1).unwrap() + chrono::Duration::days(i64::from(days))
    };
    ItemChange {
        set_id: d.set_id,
        business_unit: d.business_unit,
        customer_id: d.customer_id,
        item_id: d.item_id,
        item_line: d.item_line,
        item_type: d.item_type,
        original_amount: d.original_amount,
        open_amount: d.open_amount,
        currency: d.currency,
        accounting_date: date(d.accounting_date),
        due_date: date(d.due_date),
        entry_type: d.entry_type,
        entry_reason: d.entry_reason,
        disputed_amount: d.disputed_amount,
        ar_specialist: d.ar_specialist,
        collector: d.collector,
        origin_item_id: d.origin_item_id,
        origin_item_line: d.origin_item_line,
        origin_payment_id: d.origin_payment_id,
    }
}

fn rules() -> RuleSet {
    RuleSet::load(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("topology/rules.toml"))
        .unwrap()
}

fn benches(c: &mut Criterion) {
    let catalog = SchemaCatalog::bundled().unwrap();
    let today: NaiveDate = "2026-03-15".parse().unwrap();

    let bytes = catalog.encode_input(&item(1, 1)).unwrap();
    let mut group = c.benchmark_group("codec");
    group.throughput(Throughput::Elements(1));
    group.bench_function("decode_item_change", |b| {
        b.iter(|| {
            catalog
                .decode_input(condmon::model::Stream::Items, &bytes)
                .unwrap()
        })
    });
    // The detour the direct decoder replaced: an Avro value, its JSON form, then the model.
    group.bench_function("decode_item_change_through_json", |b| {
        b.iter(|| {
            let json = catalog
                .decode_json(condmon::model::Stream::Items, &bytes)
                .unwrap();
            condmon::codec::input_from_json(condmon::model::Stream::Items, json).unwrap()
        })
    });
    // The crate built for speed, measured as the issue asks: it reads dates as day numbers,
    // where the model's serde form has strings, so it decodes into a mirror of the schema
    // that is then turned into the model (and it has no bounds walk before it).
    let schema_text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/schemas/item_change_v3.avsc"
    ))
    .unwrap();
    let fast_schema: serde_avro_fast::Schema = schema_text.parse().unwrap();
    assert_eq!(
        InputEvent::Item(fast_item_change(&bytes[5..], &fast_schema)),
        catalog
            .decode_input(condmon::model::Stream::Items, &bytes)
            .unwrap(),
        "the item change of schema id {:?}",
        &bytes[1..5]
    );
    // The part of condmon's decode that serde_avro_fast has no counterpart for.
    let avro_schema = apache_avro::Schema::parse_str(&schema_text).unwrap();
    let resolved = apache_avro::schema::ResolvedSchema::try_from(&avro_schema).unwrap();
    group.bench_function("bounds_walk_item_change", |b| {
        b.iter(|| {
            condmon::codec::limits::check(&avro_schema, resolved.get_names(), &bytes[5..]).unwrap()
        })
    });
    group.bench_function("decode_item_change_serde_avro_fast", |b| {
        b.iter(|| fast_item_change(&bytes[5..], &fast_schema))
    });
    group.finish();

    let rules = rules();
    let mut state = CustomerState::default();
    for n in 0..50 {
        state.apply(item(1, n), today);
    }
    let key = CustomerKey::new("SHARE", "C000001");
    let fx = FxTable::default();
    let mut group = c.benchmark_group("reconcile");
    group.throughput(Throughput::Elements(1));
    group.bench_function("customer_with_50_items", |b| {
        b.iter_batched(
            || state.clone(),
            |mut s| reconcile(&mut s, &key, &rules, &fx, today),
            BatchSize::SmallInput,
        )
    });
    // A corporate parent (the sample rules monitor one) with its own 50 items and 200
    // children of 3 lines each: the rule sees 650 lines.
    let mut parent = state.clone();
    for child in 0..200u32 {
        parent.apply(child_figures(child), today);
    }
    group.bench_function("corporate_parent_with_50_items_and_200_children", |b| {
        b.iter_batched(
            || parent.clone(),
            // As the operator does: the decision and the timers it wants.
            |mut s| evaluate(&mut s, &key, &rules, &fx, today),
            BatchSize::SmallInput,
        )
    });
    group.finish();

    let operator = Operator::new(Arc::new(rules), Arc::new(catalog.clone()));
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    store.ensure_partition(0).unwrap();
    // 10,000 customers with 5 items each: records spread over customers like a real ledger.
    let records: Vec<(String, Vec<u8>)> = (0..50_000u32)
        .map(|n| {
            let event = item(n % 10_000, n / 10_000);
            (event.record_key(), catalog.encode_input(&event).unwrap())
        })
        .collect();
    let mut group = c.benchmark_group("operator");
    const BATCH: usize = 1000;
    group.throughput(Throughput::Elements(BATCH as u64));
    let mut next = 0;
    group.bench_function("batch_of_1000_records_rocksdb", |b| {
        b.iter(|| {
            let mut txn = store.txn();
            for _ in 0..BATCH {
                let (key, bytes) = &records[next % records.len()];
                next += 1;
                operator
                    .process(
                        &mut txn,
                        &[0],
                        condmon::model::Stream::Items,
                        Some(key),
                        Payload::Avro(bytes),
                        today,
                    )
                    .unwrap();
            }
            store
                .commit(txn, &[(0, "ar.items".into(), next as i64)])
                .unwrap();
        })
    });
    group.finish();

    // The changelog of the partition the operator bench filled: every record of every
    // changelogged store, as a restore reads it.
    let records: Vec<(condmon::state::StoreName, condmon::kafka::LogRecord)> =
        condmon::pipeline::changelog::changelogged()
            .flat_map(|s| {
                store
                    .entries(0, s)
                    .unwrap()
                    .into_iter()
                    .map(move |(key, value)| (s, key, value))
            })
            .enumerate()
            .map(|(offset, (s, key, value))| {
                (
                    s,
                    condmon::kafka::LogRecord {
                        offset: offset as i64,
                        key,
                        value: Some(value),
                        headers: vec![("condmon.writer".into(), "1.1".into())],
                    },
                )
            })
            .collect();
    state_sizes(&store);
    let committed = std::collections::BTreeMap::from([(1u64, 1u64)]);
    let mut group = c.benchmark_group("restore");
    group.throughput(Throughput::Elements(records.len() as u64));
    let mut partition = 100;
    group.bench_function(format!("apply_{}_changelog_records", records.len()), |b| {
        b.iter_batched(
            || {
                partition += 1;
                store.ensure_partition(partition).unwrap();
                (partition, records.clone())
            },
            |(partition, records)| {
                let mut repairs = std::collections::BTreeSet::new();
                let mut applier = condmon::pipeline::changelog::Applier::new(
                    &store,
                    partition,
                    &committed,
                    &mut repairs,
                );
                for (s, record) in records {
                    applier.apply(s, record).unwrap();
                }
                applier.finish().unwrap()
            },
            BatchSize::PerIteration,
        )
    });
    group.finish();
}

/// The state size per customer of partition 0: its records split over the stores, against
/// the one JSON value the layout before the split kept.
fn state_sizes(store: &Store) {
    use condmon::state::{StoreName, split_customer_key};
    let mut split = std::collections::BTreeMap::<String, (usize, usize)>::new();
    for s in [
        StoreName::Ledger,
        StoreName::Actions,
        StoreName::Conversations,
    ] {
        for (key, value) in store.entries(0, s).unwrap() {
            let customer = match s {
                StoreName::Ledger => String::from_utf8(key.clone()).unwrap(),
                _ => split_customer_key(&key).unwrap().0.to_string(),
            };
            let entry = split.entry(customer).or_default();
            entry.0 += key.len() + value.len();
            entry.1 += 1;
        }
    }
    let mut txn = store.txn();
    let mut json = 0;
    for customer in split.keys() {
        let key = CustomerKey::decode(customer).unwrap();
        let state = condmon::pipeline::customer_state(&mut txn, 0, &key)
            .unwrap()
            .unwrap();
        let mut whole = serde_json::to_value(&state).unwrap();
        whole["actions"] = serde_json::to_value(&state.actions).unwrap();
        json += serde_json::to_vec(&whole).unwrap().len();
    }
    let n = split.len().max(1);
    let bytes: usize = split.values().map(|(b, _)| b).sum();
    let records: usize = split.values().map(|(_, r)| r).sum();
    eprintln!(
        "state per customer ({n} customers, 5 items and a plan each): split {} bytes in {:.1} \
         records; as one JSON value {} bytes",
        bytes / n,
        records as f64 / n as f64,
        json / n
    );
}

criterion_group! {
    name = engine;
    config = Criterion::default().sample_size(20).measurement_time(std::time::Duration::from_secs(5));
    targets = benches
}
criterion_main!(engine);
