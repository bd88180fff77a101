//! Hostile and misrouted input through a real broker (Tansu) and the real `condmon run`
//! process: nothing stalls a partition, nothing is lost, no customer's state is split.

mod common;

use std::time::Duration;

use common::*;
use condmon::kafka::{OutRecord, partition_for};
use condmon::model::{
    ActionEvent, CustomerChange, CustomerKey, InputEvent, ItemChange, OutputEvent, Stream,
};
use rust_decimal::Decimal;
use sha2::Digest;

const WAIT: Duration = Duration::from_secs(60);

fn invoice(customer: &str, id: &str, amount: i64) -> ItemChange {
    // 45 days past due on 2026-03-01.
    ItemChange::invoice(
        &CustomerKey::new("SHARE", customer),
        "US001",
        id,
        Decimal::from(amount),
        "USD",
        "2026-01-15".parse().unwrap(),
    )
}

#[test]
fn oversized_poison_and_misrouted_records_neither_stall_nor_split_a_customer() {
    let (_broker, dir, config) = deployment(|_, _| {});
    let condmon = Condmon::start_with_env(
        &config,
        dir.path(),
        "2026-03-01",
        &[("CONDMON_FAULT_PANIC_ON_KEY", "SHARE|POISON")],
    );
    condmon.wait_healthy(WAIT);
    let items = config.topics.items.clone();

    // ACME's master goes where the Java partitioner puts it; its invoice comes from a producer
    // with librdkafka's default (CRC32) partitioner and lands on the other partition.
    let mut master = CustomerChange::new(&CustomerKey::new("SHARE", "ACME"), "Acme", "USD");
    master.collector = Some("JDOE".into());
    produce(
        &config,
        vec![record(&config, &InputEvent::Customer(master))],
    );
    condmon.wait_customer("ACME", WAIT);
    let right = partition_for(b"SHARE|ACME", config.topics.partitions);
    let mut misrouted = record(&config, &InputEvent::Item(invoice("ACME", "INV-1", 4200)));
    misrouted.partition = Some(1 - right);

    // A value just under the broker's 1,000,000-byte limit: refused, and its dead letter must
    // still fit.
    let mut just_under = vec![0u8, 0, 0, 0x03, 0xe9]; // the item schema's id, 1001
    just_under.resize(999_900, 0x07);
    let big = OutRecord {
        topic: items.clone(),
        partition: None,
        key: Some(b"SHARE|BIG".to_vec()),
        payload: Some(just_under.clone()),
        headers: vec![],
    };
    let mut chatty = invoice("CHATTY", "INV-C", 100);
    chatty.entry_reason = Some("r".repeat(1000));
    produce(
        &config,
        vec![
            misrouted,
            big,
            record(&config, &InputEvent::Item(chatty)),
            record(&config, &InputEvent::Item(invoice("POISON", "INV-P", 100))),
            record(&config, &InputEvent::Item(invoice("GLOBEX", "INV-G", 800))),
        ],
    );

    // Every bad record is in the dead-letter topic, each with its kind, and the dead letter of
    // the large one is cut with its original size and hash.
    let dead = wait_for(&config, &config.topics.dead_letter, WAIT, |r| r.len() >= 3);
    assert_eq!(dead.len(), 3);
    let of = |kind: &str| {
        dead.iter()
            .find(|r| r.header("condmon.error.kind") == Some(kind))
            .unwrap_or_else(|| panic!("no {kind} dead letter"))
    };
    let cut = of("undecodable");
    assert_eq!(cut.key.as_deref(), Some(b"SHARE|BIG".as_slice()));
    assert_eq!(cut.payload.as_ref().unwrap().len(), 512 * 1024);
    assert_eq!(cut.header("condmon.dead-letter.truncated"), Some("value"));
    assert_eq!(cut.header("condmon.source.size"), Some("999900"));
    assert_eq!(
        cut.header("condmon.source.sha256").unwrap(),
        format!("{:x}", sha2::Sha256::digest(&just_under))
    );
    assert_eq!(
        of("invalid").header("condmon.error.reason"),
        Some("field `entry_reason` is 1000 bytes long: at most 255")
    );
    let poison = of("internal");
    assert!(
        poison
            .header("condmon.error.reason")
            .unwrap()
            .contains("panicked"),
        "{:?}",
        poison.headers
    );

    // The records after them were processed, and the misrouted invoice met its master: one
    // state, so its collection plan has the master's collector as owner.
    condmon.wait_customer("GLOBEX", WAIT);
    let records = wait_for(&config, &config.topics.actions, WAIT, |r| {
        decode(&config, Stream::Actions, r).iter().any(
            |e| matches!(e, OutputEvent::Action(a) if a.customer_id == "ACME" && a.action_code == "CALL"),
        )
    });
    let call: Vec<ActionEvent> = decode(&config, Stream::Actions, &records)
        .into_iter()
        .filter_map(|e| match e {
            OutputEvent::Action(a) if a.customer_id == "ACME" && a.action_code == "CALL" => Some(a),
            _ => None,
        })
        .collect();
    assert_eq!(call[0].owner.as_deref(), Some("JDOE"), "{call:#?}");
    assert!(
        records.iter().all(|r| r.partition == right),
        "ACME's outputs on its own partition"
    );
    let (_, state) = condmon.get("/customers/SHARE/ACME");
    assert!(state.contains("INV-1"), "{state}");

    condmon.wait_metric(
        "condmon_records_rerouted_total{topic=\"ar.items\"}",
        1.0,
        WAIT,
    );
    condmon.wait_metric(
        "condmon_dead_letters_total{kind=\"internal\",topic=\"ar.items\"}",
        1.0,
        WAIT,
    );
    assert_eq!(condmon.get("/healthz").0, 200, "no partition stalled");
    assert_eq!(condmon.get("/livez").0, 200);
    // Ready once every held partition's lag is measured and within the limit: nothing stalled
    // behind the refused records.
    condmon.wait_found("/readyz", WAIT);
}
