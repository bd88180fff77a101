//! State that lives in Kafka, through a real broker (Tansu) and the real `condmon run`
//! process: an instance whose state directory is lost restores it from the changelogs and goes
//! on exactly as if nothing had happened — not one action, notification or letter sent twice.

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use common::*;
use condmon::kafka::ReadRecord;
use condmon::model::{
    ActionEventKind, CustomerChange, CustomerKey, InputEvent, ItemChange, OutputEvent, Stream,
};
use rust_decimal::Decimal;

const WAIT: Duration = Duration::from_secs(90);

fn master(customer: &str) -> InputEvent {
    let mut master = CustomerChange::new(&CustomerKey::new("SHARE", customer), customer, "USD");
    master.collector = Some("JDOE".into());
    master.credit_analyst = Some("MROE".into());
    InputEvent::Customer(master)
}

/// 45 days past due on 2026-03-01: COLL-30's plan (a call now, a letter and a hold later).
fn invoice(customer: &str) -> InputEvent {
    InputEvent::Item(ItemChange::invoice(
        &CustomerKey::new("SHARE", customer),
        "US001",
        &format!("INV-{customer}"),
        Decimal::from(2000),
        "USD",
        "2026-01-15".parse().unwrap(),
    ))
}

/// Every output record read so far, waiting until `expected` distinct event ids are there.
fn outputs_with(config: &condmon::config::Config, expected: usize) -> Vec<ReadRecord> {
    let deadline = Instant::now() + WAIT;
    loop {
        let outputs = all_outputs(config);
        let ids: std::collections::HashSet<&str> = outputs
            .iter()
            .map(|r| r.header("condmon.event-id").unwrap())
            .collect();
        if ids.len() >= expected {
            return outputs;
        }
        assert!(
            Instant::now() < deadline,
            "{} of {expected} output events",
            ids.len()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn an_instance_whose_state_directory_is_lost_restores_it_and_sends_nothing_twice() {
    let (_broker, dir, config) = deployment(|_, _| {});

    let first: Vec<String> = (0..12).map(|i| format!("C{i:02}")).collect();
    let later: Vec<String> = (12..18).map(|i| format!("C{i:02}")).collect();
    let masters: Vec<InputEvent> = first.iter().chain(&later).map(|c| master(c)).collect();
    let mut events = masters.clone();
    events.extend(first.iter().map(|c| invoice(c)));
    events.extend(later.iter().map(|c| invoice(c)));
    let expected = expected_outputs(&config, &events, "2026-03-01");
    let expected_first = expected_outputs(
        &config,
        &[
            &masters[..],
            &events[masters.len()..masters.len() + first.len()],
        ]
        .concat(),
        "2026-03-01",
    );

    // The first instance sees the masters and the first invoices.
    let mut condmon = Condmon::start(&config, dir.path(), "2026-03-01");
    produce(
        &config,
        masters.iter().map(|e| record(&config, e)).collect(),
    );
    for customer in &first {
        condmon.wait_customer(customer, WAIT);
    }
    produce(
        &config,
        first.iter().map(|c| record(&config, &invoice(c))).collect(),
    );
    assert!(
        expected_first
            .values()
            .any(|(stream, _)| *stream == Stream::Notifications),
        "the owners are e-mailed: what must not happen twice"
    );
    outputs_with(&config, expected_first.len());
    assert!(condmon.stop().success(), "clean shutdown");

    // Its disk is lost. The instance starts again on an empty state directory.
    std::fs::remove_dir_all(&config.state_dir).unwrap();
    let condmon = Condmon::start(&config, dir.path(), "2026-03-01");
    condmon.wait_healthy(WAIT);
    produce(
        &config,
        later.iter().map(|c| record(&config, &invoice(c))).collect(),
    );
    let outputs = outputs_with(&config, expected.len());
    let seen = count_ids(&outputs);
    assert_eq!(seen.len(), expected.len(), "exactly the oracle's events");
    for r in &outputs {
        let id = r.header("condmon.event-id").unwrap();
        assert_eq!(
            r.payload.as_ref(),
            expected.get(id).map(|(_, bytes)| bytes),
            "event {id} differs from the oracle"
        );
    }
    let twice: Vec<&String> = seen
        .iter()
        .filter(|(_, n)| **n > 1)
        .map(|(id, _)| id)
        .collect();
    assert!(twice.is_empty(), "sent twice after the restore: {twice:?}");
    // The restored customers still have their state: the owner's list has the first ones.
    let (_, list) = condmon.get("/owners/JDOE/actions");
    for customer in &first {
        assert!(
            list.contains(customer.as_str()),
            "{customer} missing: {list}"
        );
    }
    let (_, metrics) = condmon.get("/metrics");
    assert!(
        metric(&metrics, "condmon_restore_records_total").unwrap_or(0.0) > 0.0,
        "{metrics}"
    );

    // Time moves on: the restored timers put every customer's letter on the list once.
    condmon.set_today("2026-03-13");
    let all = first.len() + later.len();
    let deadline = Instant::now() + WAIT;
    let moved = loop {
        let records = kafka_actions(&config);
        let moved: Vec<String> = records
            .into_iter()
            .filter(|(kind, _)| *kind == ActionEventKind::MovedToList)
            .map(|(_, customer)| customer)
            .collect();
        if moved.len() >= all || Instant::now() > deadline {
            break moved;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let mut per_customer: HashMap<String, usize> = HashMap::new();
    for customer in moved {
        *per_customer.entry(customer).or_default() += 1;
    }
    assert_eq!(per_customer.len(), all, "{per_customer:?}");
    assert!(per_customer.values().all(|n| *n == 1), "{per_customer:?}");
}

fn kafka_actions(config: &condmon::config::Config) -> Vec<(ActionEventKind, String)> {
    let records = condmon::kafka::read_topic(
        config,
        &config.topics.actions,
        usize::MAX,
        Duration::from_secs(1),
    )
    .unwrap();
    decode(config, Stream::Actions, &records)
        .into_iter()
        .filter_map(|e| match e {
            OutputEvent::Action(a) => Some((a.kind, a.customer_id)),
            _ => None,
        })
        .collect()
}

#[test]
fn a_first_start_on_inputs_that_already_hold_records_sends_no_notification_for_them() {
    let (_broker, dir, config) = deployment(|_, _| {});
    // A year of the ERP's history is on the topics before condmon ever runs.
    let old: Vec<String> = (0..6).map(|i| format!("OLD{i}")).collect();
    produce(
        &config,
        old.iter().map(|c| record(&config, &master(c))).collect(),
    );
    produce(
        &config,
        old.iter().map(|c| record(&config, &invoice(c))).collect(),
    );
    let condmon = Condmon::start(&config, dir.path(), "2026-03-01");
    let actions = |r: &[ReadRecord]| {
        decode(&config, Stream::Actions, r)
            .into_iter()
            .filter(|e| matches!(e, OutputEvent::Action(a) if a.kind == ActionEventKind::Created))
            .count()
    };
    // Their state is built and their actions are on the lists...
    wait_for(&config, &config.topics.actions, WAIT, |r| {
        actions(r) >= old.len() * 3
    });
    condmon.wait_metric(
        "condmon_outputs_suppressed_total{topic=\"cm.notifications\"}",
        old.len() as f64,
        WAIT,
    );
    // ...but nobody is e-mailed about what happened before condmon ran. A new customer's
    // action, after the start, is e-mailed.
    produce(&config, vec![record(&config, &master("NEW"))]);
    condmon.wait_customer("NEW", WAIT);
    produce(&config, vec![record(&config, &invoice("NEW"))]);
    let records = wait_for(&config, &config.topics.notifications, WAIT, |r| {
        !r.is_empty()
    });
    let notified: Vec<String> = decode(&config, Stream::Notifications, &records)
        .into_iter()
        .filter_map(|e| match e {
            OutputEvent::Notification(n) => Some(n.customer_id),
            _ => None,
        })
        .collect();
    assert_eq!(notified, ["NEW"]);
}
