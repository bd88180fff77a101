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

/// Runs condmon with a fault injected (`name=value`) until the fault stops it.
fn run_to_fault(
    config: &condmon::config::Config,
    dir: &std::path::Path,
    today: &str,
    fault: (&str, &str),
) {
    let mut condmon = Condmon::start_with_env(config, dir, today, &[fault]);
    assert!(
        !condmon.wait_exit(WAIT).success(),
        "{} did not stop it",
        fault.0
    );
}

/// A batch sent and not committed (the process crashes), then an instance that restores,
/// finds that batch unfinished, claims the partitions and stops before it redoes anything.
fn crash_uncommitted_then_stop_after_the_claim(
    config: &condmon::config::Config,
    dir: &std::path::Path,
    today: &str,
) {
    run_to_fault(
        config,
        dir,
        today,
        ("CONDMON_CRASH_UNCOMMITTED_AFTER_BATCHES", "1"),
    );
    run_to_fault(config, dir, today, ("CONDMON_FAULT_ABORT_AFTER_CLAIM", "1"));
}

/// Waits for the oracle's outputs, then finds every output the oracle's, byte for byte, and
/// none of them twice.
fn assert_outputs_are(
    config: &condmon::config::Config,
    expected: &HashMap<String, (Stream, Vec<u8>)>,
) {
    let outputs = outputs_with(config, expected.len());
    std::thread::sleep(Duration::from_secs(2));
    let outputs = outputs_with(config, outputs.len());
    assert_each_is_the_oracles(&outputs, expected);
    assert_eq!(outputs.len(), expected.len(), "an output went out twice");
}

/// SOLO's plan letter once it is on the action list (the redo and the timers after it
/// committed: the outputs the tests wait for were sent before the crash).
fn letter_on_list(condmon: &Condmon) -> serde_json::Value {
    let deadline = Instant::now() + WAIT;
    loop {
        let (status, body) = condmon.get("/customers/SHARE/SOLO/actions");
        if status == 200
            && let Some(letter) = serde_json::from_str::<Vec<serde_json::Value>>(&body)
                .unwrap()
                .into_iter()
                .find(|a| a["action_code"] == "DLTR")
        {
            return letter;
        }
        assert!(
            Instant::now() < deadline,
            "no letter on the list: {status} {body}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
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
    assert_each_is_the_oracles(&outputs, &expected);
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

/// A state directory of a condmon from before the changelogs (customers, no changelog) is
/// written to the changelogs by the first batch after its restore — also when the instance
/// that restored it stopped before that batch (a crash, a partition revoked again at once):
/// the keys still to write are kept in the directory, not only in memory. Otherwise the next
/// start would find a checkpoint at the changelogs' end and never write them, and an instance
/// taking the partitions over would restore nothing.
#[test]
fn state_without_a_changelog_reaches_it_even_when_the_first_run_stops_before_its_first_batch() {
    use std::sync::Arc;

    use condmon::pipeline::{Operator, Outcome, Payload};
    use condmon::state::{Store, StoreName};

    let (_broker, dir, config) = deployment(|_, _| {});
    let customers: Vec<String> = (0..20).map(|i| format!("C{i:02}")).collect();
    {
        let store = Store::open(&config.state_dir).unwrap();
        let rules = condmon::rules::RuleSet::load(&config.rules_file).unwrap();
        let operator = Operator::new(
            Arc::new(rules),
            Arc::new(condmon::codec::SchemaCatalog::bundled().unwrap()),
        );
        let mut txn = store.txn();
        for p in 0..config.topics.partitions {
            store.ensure_partition(p).unwrap();
        }
        for customer in &customers {
            let event = invoice(customer);
            let key = event.record_key();
            let partition = condmon::kafka::partition_for(key.as_bytes(), config.topics.partitions);
            let bytes = operator.catalog().encode_input(&event).unwrap();
            let outcome = operator
                .process(
                    &mut txn,
                    &[partition],
                    Stream::Items,
                    Some(&key),
                    Payload::Avro(&bytes),
                    "2026-03-01".parse().unwrap(),
                )
                .unwrap();
            assert!(matches!(outcome, Outcome::Processed(_)));
        }
        store.commit(txn, &[]).unwrap();
    }

    // Restored, claimed, then stopped before any batch.
    run_to_fault(
        &config,
        dir.path(),
        "2026-03-01",
        ("CONDMON_FAULT_ABORT_AFTER_CLAIM", "1"),
    );
    let ledger = condmon::pipeline::changelog::topic(&config, StoreName::Ledger);
    let logged = |wait: Duration| {
        condmon::kafka::read_topic(&config, &ledger, usize::MAX, wait)
            .unwrap()
            .into_iter()
            .filter_map(|r| r.key.map(|k| String::from_utf8_lossy(&k).into_owned()))
            .filter(|k| k.starts_with("SHARE|"))
            .collect::<std::collections::BTreeSet<_>>()
    };
    assert!(
        logged(Duration::from_secs(1)).is_empty(),
        "nothing written yet"
    );

    // The next start writes every customer to the changelogs.
    let mut condmon = Condmon::start(&config, dir.path(), "2026-03-01");
    condmon.wait_healthy(WAIT);
    let expected: std::collections::BTreeSet<String> =
        customers.iter().map(|c| format!("SHARE|{c}")).collect();
    let deadline = Instant::now() + WAIT;
    while logged(Duration::from_secs(1)) != expected {
        assert!(
            Instant::now() < deadline,
            "the ledger changelog holds {:?}",
            logged(Duration::from_secs(1))
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    let actions = |condmon: &Condmon| -> Vec<String> {
        let deadline = Instant::now() + WAIT;
        customers
            .iter()
            .map(|customer| {
                loop {
                    let (status, body) =
                        condmon.get(&format!("/customers/SHARE/{customer}/actions"));
                    if status == 200 {
                        break body;
                    }
                    assert!(Instant::now() < deadline, "{customer}: {status} {body}");
                    std::thread::sleep(Duration::from_millis(200));
                }
            })
            .collect()
    };
    let before = actions(&condmon);
    assert!(
        before.iter().all(|list| list.contains("COLL-30")),
        "each customer's collection plan: {before:?}"
    );
    condmon.stop();

    // So an instance without the directory restores every customer from them.
    std::fs::remove_dir_all(&config.state_dir).unwrap();
    let condmon = Condmon::start(&config, dir.path(), "2026-03-01");
    assert_eq!(actions(&condmon), before);
}

/// A batch left without its commit is redone on the business date it was first decided on,
/// until the inputs it had read are committed again — also when the instance that restored it
/// stopped before the redo and the clock has moved on since (the date is kept in the
/// directory), and although the first batch after the restore only writes the keys it found
/// uncommitted again. Decided on the later date, the plan would be kept with other dates than
/// the action events already sent announced.
#[test]
fn an_unfinished_batch_is_redone_on_its_date_after_a_stop_before_the_redo() {
    let (_broker, dir, config) = deployment(|_, _| {});
    let events = [master("SOLO"), invoice("SOLO")];
    // The master, committed on the first day.
    produce(&config, vec![record(&config, &events[0])]);
    let mut condmon = Condmon::start(&config, dir.path(), "2026-03-01");
    condmon.wait_metric(
        "condmon_records_committed_total{topic=\"ar.customers\"}",
        1.0,
        WAIT,
    );
    condmon.stop();

    // The invoice's batch: outputs and changelog records sent, no commit; then restored (the
    // batch found unfinished) and claimed, and stopped before the redo.
    produce(&config, vec![record(&config, &events[1])]);
    crash_uncommitted_then_stop_after_the_claim(&config, dir.path(), "2026-03-01");

    // Back nineteen days later: the redo decides on the 1st, then the timers due since fire.
    std::fs::write(dir.path().join("today"), "2026-03-20").unwrap();
    let expected = oracle(&config, &events, "2026-03-01", Some("2026-03-20"));
    let condmon = Condmon::start(&config, dir.path(), "2026-03-20");
    assert_outputs_are(&config, &expected);
    // The plan kept is the one the events sent announced: its letter due ten days after the
    // 1st, on the list once its timer fired on the 20th.
    let letter = letter_on_list(&condmon);
    assert_eq!(letter["action_date"], "2026-03-11", "{letter}");
}

/// The same for a batch that read no input, only fired timers: redone on the day it fired
/// them, not on the day of the restart.
#[test]
fn an_unfinished_timer_batch_is_redone_on_its_date_after_a_stop_before_the_redo() {
    let (_broker, dir, config) = deployment(|_, _| {});
    let events = [master("SOLO"), invoice("SOLO")];
    // The master, then the invoice (in that order, as the oracle takes them), on the 1st.
    let mut condmon = Condmon::start(&config, dir.path(), "2026-03-01");
    for (event, topic) in events.iter().zip(["ar.customers", "ar.items"]) {
        produce(&config, vec![record(&config, event)]);
        condmon.wait_metric(
            &format!("condmon_records_committed_total{{topic=\"{topic}\"}}"),
            1.0,
            WAIT,
        );
    }
    condmon.stop();

    // Ten days on, the plan's letter falls due: that batch goes out, its commit does not.
    std::fs::write(dir.path().join("today"), "2026-03-11").unwrap();
    crash_uncommitted_then_stop_after_the_claim(&config, dir.path(), "2026-03-11");

    // Back on the 20th: the timers are redone as fired on the 11th.
    std::fs::write(dir.path().join("today"), "2026-03-20").unwrap();
    let expected = oracle(&config, &events, "2026-03-01", Some("2026-03-11"));
    let condmon = Condmon::start(&config, dir.path(), "2026-03-20");
    assert_outputs_are(&config, &expected);
    // The letter is on the list since the 11th, as the events sent said.
    let letter = letter_on_list(&condmon);
    assert_eq!(letter["action_date"], "2026-03-11", "{letter}");
    assert_eq!(
        letter["days_on_list"], 9,
        "on the list since the 11th: {letter}"
    );
}
