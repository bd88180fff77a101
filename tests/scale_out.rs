//! Several instances over the same partitions, through a real broker (Tansu) and real
//! `condmon run` processes: partitions move between instances with nothing lost, nothing sent
//! twice, and a writer that lost its partitions (a zombie) never corrupts the changelogs.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::time::{Duration, Instant};

use common::*;
use condmon::config::{Assignment, Config};
use condmon::kafka::{ReadRecord, partition_for};
use condmon::model::{CustomerChange, CustomerKey, InputEvent, ItemChange};
use rust_decimal::Decimal;

const WAIT: Duration = Duration::from_secs(90);

fn master(customer: &str) -> InputEvent {
    let mut master = CustomerChange::new(&CustomerKey::new("SHARE", customer), customer, "USD");
    master.collector = Some("JDOE".into());
    master.credit_analyst = Some("MROE".into());
    InputEvent::Customer(master)
}

/// 800.00, 45 days past due on 2026-03-01: from two of them on, COLL-30's plan (a call now, a
/// letter on day 10, an automated hold on day 20); never 5,000 (COLL-61).
fn invoice(customer: &str, id: &str) -> InputEvent {
    InputEvent::Item(ItemChange::invoice(
        &CustomerKey::new("SHARE", customer),
        "US001",
        id,
        Decimal::from(800),
        "USD",
        "2026-01-15".parse().unwrap(),
    ))
}

/// An instance's own configuration: its state directory, HTTP port and static id.
fn instance(base: &Config, dir: &Path, id: &str) -> Config {
    let mut config = base.clone();
    config.state_dir = dir.join(id).join("state");
    config.http_listen = format!("127.0.0.1:{}", free_port());
    config.api_listen = config.http_listen.clone();
    config.kafka.instance_id = Some(id.into());
    std::fs::create_dir_all(dir.join(id)).unwrap();
    config
}

fn start(config: &Config, dir: &Path, id: &str, today: &str) -> Condmon {
    Condmon::start(config, &dir.join(id), today)
}

/// Every customer's state as an instance serves it (the JSON of `/customers/SHARE/{c}`).
fn states(condmon: &Condmon, customers: &[String]) -> BTreeMap<String, serde_json::Value> {
    customers
        .iter()
        .map(|c| {
            let (status, body) = condmon.get(&format!("/customers/SHARE/{c}"));
            assert_eq!(status, 200, "{c}: {body}");
            (c.clone(), serde_json::from_str(&body).unwrap())
        })
        .collect()
}

/// Sends every customer's master and waits until `condmon` holds them all.
fn known(base: &Config, condmon: &Condmon, customers: &[String]) {
    produce(
        base,
        customers.iter().map(|c| record(base, &master(c))).collect(),
    );
    for c in customers {
        condmon.wait_customer(c, WAIT);
    }
}

/// Sends INV-1 and INV-2 of every customer (from two on, COLL-30's plan).
fn two_invoices(base: &Config, customers: &[String]) {
    produce(
        base,
        customers
            .iter()
            .flat_map(|c| [invoice(c, "INV-1"), invoice(c, "INV-2")])
            .map(|e| record(base, &e))
            .collect(),
    );
}

/// Waits until `condmon` holds `items` items and an open plan for every customer; their states.
fn planned(
    condmon: &Condmon,
    customers: &[String],
    items: usize,
) -> BTreeMap<String, serde_json::Value> {
    let deadline = Instant::now() + WAIT;
    loop {
        let now = states(condmon, customers);
        let done = now.values().all(|s| {
            s["items"].as_object().map_or(0, |i| i.len()) == items
                && !s["actions"].as_object().unwrap().is_empty()
        });
        if done {
            return now;
        }
        assert!(Instant::now() < deadline, "the owner never caught up");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A group of dynamic members over 4 partitions. Tansu 0.6 rebalances without end when a
/// second static member joins (measured with plain librdkafka consumers too).
fn group(broker: &Broker, dir: &Path) -> Config {
    let mut base = config(broker, dir);
    base.topics.partitions = 4;
    base.kafka.static_membership = false;
    create_topics(&base);
    base
}

#[test]
fn a_writer_that_lost_its_partitions_is_fenced_and_never_corrupts_the_changelogs() {
    let broker = Broker::start();
    let dir = tempfile::tempdir().unwrap();
    let mut base = config(&broker, dir.path());
    // Fixed ownership, so that two instances hold the same partitions at once: the second
    // takes them over while the first still runs and writes — a zombie, as a paused instance
    // whose session expired would be on a Kafka cluster.
    base.kafka.assignment = Assignment::Manual;
    create_topics(&base);
    let customers: Vec<String> = (0..10).map(|i| format!("Z{i:02}")).collect();

    let a = instance(&base, dir.path(), "a");
    let mut zombie = start(&a, dir.path(), "a", "2026-03-01");
    known(&base, &zombie, &customers);

    // The new owner takes the partitions: it restores them and claims them (a new epoch).
    let b = instance(&base, dir.path(), "b");
    let owner = start(&b, dir.path(), "b", "2026-03-01");
    owner.wait_found("/readyz", WAIT);
    // Both read the next records; the zombie's first write finds the new claim and it stops.
    produce(
        &base,
        customers
            .iter()
            .map(|c| record(&base, &invoice(c, "INV-1")))
            .collect(),
    );
    let status = zombie.wait_exit(WAIT);
    assert!(!status.success(), "the zombie stopped");
    let log = std::fs::read_to_string(dir.path().join("a/condmon.log")).unwrap();
    assert!(log.contains("was claimed by b"), "{log}");
    // The new owner goes on (its next writes find the zombie's records and write their keys
    // again) and has every customer's plan.
    produce(
        &base,
        customers
            .iter()
            .map(|c| record(&base, &invoice(c, "INV-2")))
            .collect(),
    );
    let before = planned(&owner, &customers, 2);
    // The zombie found the claim's mark before its batch's changelog records and stopped
    // before sending that batch's outputs: every event once, as the owner decided it.
    let outputs = all_outputs(&base);
    assert_each_once(&outputs);

    // A third instance restores from the changelogs alone: exactly the owner's state.
    let mut owner = owner;
    assert!(owner.stop().success());
    let c = instance(&base, dir.path(), "c");
    let restored = start(&c, dir.path(), "c", "2026-03-01");
    for customer in &customers {
        restored.wait_customer(customer, WAIT);
    }
    assert_eq!(
        states(&restored, &customers),
        before,
        "the changelogs hold the owner's state, not the zombie's"
    );
}

/// A log line without its terminal colour escapes (`ESC [ … m`).
fn without_colours(line: &str) -> String {
    let mut plain = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            chars.by_ref().find(|d| *d == 'm');
        } else {
            plain.push(c);
        }
    }
    plain
}

/// Every output event sent once (so never two contents under one id); at least one sent.
fn assert_each_once(outputs: &[ReadRecord]) {
    let twice: Vec<String> = count_ids(outputs)
        .into_iter()
        .filter(|(_, n)| *n > 1)
        .map(|(id, n)| format!("{id} ×{n}"))
        .collect();
    assert!(twice.is_empty(), "sent more than once: {twice:?}");
    assert!(!outputs.is_empty());
}

#[test]
fn a_batch_the_last_holder_began_before_the_claim_is_waited_for_and_not_sent_again() {
    let broker = Broker::start();
    let dir = tempfile::tempdir().unwrap();
    let mut base = config(&broker, dir.path());
    base.kafka.assignment = Assignment::Manual;
    base.pipeline.takeover_wait_ms = 60_000;
    create_topics(&base);
    let customers: Vec<String> = (0..10).map(|i| format!("W{i:02}")).collect();

    // The first holder stops every batch between its changelog records and its outputs, as
    // a busy member whose partitions Tansu hands to another before it gives them up.
    let a = instance(&base, dir.path(), "a");
    let pause = "CONDMON_FAULT_PAUSE_BEFORE_OUTPUTS_MS";
    let mut first =
        Condmon::start_with_env(&a, &dir.path().join("a"), "2026-03-01", &[(pause, "12000")]);
    let log_a = dir.path().join("a/condmon.log");
    let pauses = || {
        std::fs::read_to_string(&log_a)
            .unwrap_or_default()
            .matches(pause)
            .count()
    };
    known(&base, &first, &customers);
    let before = pauses();
    two_invoices(&base, &customers);
    let deadline = Instant::now() + WAIT;
    while pauses() == before {
        assert!(
            Instant::now() < deadline,
            "the first holder never began the batch"
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    // The next holder restores while that batch is half written: it claims, waits for the
    // batch's commit (which comes after its outputs), and does not send those outputs again.
    let b = instance(&base, dir.path(), "b");
    let owner = start(&b, dir.path(), "b", "2026-03-01");
    let status = first.wait_exit(WAIT);
    assert!(!status.success(), "the first holder stopped");
    owner.wait_found("/readyz", WAIT);
    planned(&owner, &customers, 2);
    // Each partition's line says the batch committed.
    let log_b = std::fs::read_to_string(dir.path().join("b/condmon.log")).unwrap();
    let waited: Vec<String> = log_b
        .lines()
        .filter(|l| l.contains("Waited for the last holder's unfinished batch"))
        .map(without_colours)
        .collect();
    assert!(
        !waited.is_empty() && waited.iter().all(|l| l.contains("committed=true")),
        "the owner waited for the batch to commit: {waited:?}"
    );
    let (_, metrics) = owner.get("/metrics");
    assert_eq!(
        metric(
            &metrics,
            "condmon_takeover_waits_total{outcome=\"committed\"}"
        ),
        Some(waited.len() as f64),
        "one wait a partition, each ended by the commit"
    );
    assert_eq!(
        metric(
            &metrics,
            "condmon_takeover_waits_total{outcome=\"gave_up\"}"
        ),
        Some(0.0)
    );
    assert_each_once(&all_outputs(&base));
}

/// Waits until every id of `expected` is on the output topics; then every output must be the
/// oracle's, byte for byte, and none sent twice.
fn assert_outputs(config: &Config, expected: &HashMap<String, (condmon::model::Stream, Vec<u8>)>) {
    let deadline = Instant::now() + WAIT;
    let outputs = loop {
        let outputs = all_outputs(config);
        let seen = count_ids(&outputs);
        if expected.keys().all(|id| seen.contains_key(id)) {
            break outputs;
        }
        assert!(
            Instant::now() < deadline,
            "{} of {} expected events",
            expected.keys().filter(|id| seen.contains_key(*id)).count(),
            expected.len()
        );
        std::thread::sleep(Duration::from_millis(300));
    };
    assert_each_is_the_oracles(&outputs, expected);
    // With where each copy landed: a zombie's copies and a redo's tell apart by their offsets.
    let twice: Vec<(String, usize, String)> = count_ids(&outputs)
        .into_iter()
        .filter(|(_, n)| *n > 1)
        .map(|(id, n)| {
            let copies: Vec<String> = outputs
                .iter()
                .filter(|r| r.header("condmon.event-id") == Some(id.as_str()))
                .map(|r| format!("partition {} offset {}", r.partition, r.offset))
                .collect();
            let stream = expected[&id].0;
            (id, n, format!("{stream:?}: {}", copies.join(", ")))
        })
        .collect();
    assert!(twice.is_empty(), "sent more than once: {twice:?}");
}

#[test]
fn partitions_move_between_instances_under_load_and_the_outputs_are_the_oracles_each_once() {
    let broker = Broker::start();
    let dir = tempfile::tempdir().unwrap();
    let base = group(&broker, dir.path());
    let customers: Vec<String> = (0..60).map(|i| format!("K{i:02}")).collect();
    let masters: Vec<InputEvent> = customers.iter().map(|c| master(c)).collect();
    let load: Vec<InputEvent> = (1..=5)
        .flat_map(|k| {
            customers
                .iter()
                .map(move |c| invoice(c, &format!("INV-{k}")))
        })
        .collect();
    let all: Vec<InputEvent> = masters.iter().chain(&load).cloned().collect();
    let expected = oracle(&base, &all, "2026-03-01", Some("2026-03-21"));
    for stream in [
        condmon::model::Stream::Notifications,
        condmon::model::Stream::Requests,
    ] {
        assert!(
            expected.values().any(|(s, _)| *s == stream),
            "the oracle has {stream:?}: what must never be sent twice"
        );
    }
    let configs: BTreeMap<&str, Config> = ["a", "b", "c"]
        .into_iter()
        .map(|id| (id, instance(&base, dir.path(), id)))
        .collect();
    let mut running: BTreeMap<&str, Condmon> = BTreeMap::new();
    let a = start(&configs["a"], dir.path(), "a", "2026-03-01");
    a.wait_found("/readyz", WAIT);
    running.insert("a", a);
    produce(&base, masters.iter().map(|e| record(&base, e)).collect());
    assert_outputs(&base, &oracle(&base, &masters, "2026-03-01", None));

    // A steady load while partitions move.
    let loader = {
        let base = base.clone();
        let records: Vec<_> = load.iter().map(|e| record(&base, e)).collect();
        std::thread::spawn(move || {
            let rt = runtime();
            let sink = condmon::kafka::Sink::new(&base).unwrap();
            for r in records {
                let sent = rt.block_on(sink.send_all(vec![r]));
                assert!(sent.failed.is_empty(), "{:?}", sent.failed);
                std::thread::sleep(Duration::from_millis(150));
            }
        })
    };
    // The group: two more instances join (partitions move to them), two leave cleanly (their
    // partitions move back), one joins again.
    for id in ["b", "c"] {
        std::thread::sleep(Duration::from_secs(2));
        let joined = start(&configs[id], dir.path(), id, "2026-03-01");
        joined.wait_found("/readyz", WAIT);
        running.insert(id, joined);
    }
    for id in ["b", "c"] {
        std::thread::sleep(Duration::from_secs(2));
        assert!(running.remove(id).unwrap().stop().success(), "{id} stopped");
    }
    std::thread::sleep(Duration::from_secs(2));
    let b = start(&configs["b"], dir.path(), "b", "2026-03-01");
    b.wait_found("/readyz", WAIT);
    running.insert("b", b);
    // Tansu never expires a member killed in a group, so kills are tried on fixed ownership:
    // the instances stop, and three start with partitions of their own (moving partitions
    // again), each killed (SIGKILL) once and started again on its state directory.
    for (_, mut condmon) in std::mem::take(&mut running) {
        assert!(condmon.stop().success());
    }
    let owned: BTreeMap<&str, Config> = [("a", vec![0, 1]), ("b", vec![2]), ("c", vec![3])]
        .into_iter()
        .map(|(id, partitions)| {
            let mut config = configs[id].clone();
            config.kafka.assignment = Assignment::Manual;
            config.kafka.partitions = partitions;
            (id, config)
        })
        .collect();
    for (id, config) in &owned {
        let condmon = start(config, dir.path(), id, "2026-03-01");
        condmon.wait_found("/readyz", WAIT);
        running.insert(id, condmon);
    }
    for id in ["a", "b", "c"] {
        std::thread::sleep(Duration::from_secs(2));
        running.get_mut(id).unwrap().kill();
        let restarted = start(&owned[id], dir.path(), id, "2026-03-01");
        restarted.wait_found("/readyz", WAIT);
        running.insert(id, restarted);
    }
    loader.join().unwrap();
    assert_outputs(&base, &oracle(&base, &all, "2026-03-01", None));
    // Every invoice processed (not all of them change an output) before time moves.
    let deadline = Instant::now() + WAIT;
    for customer in &customers {
        let has_all = || {
            running.values().any(|condmon| {
                let (status, body) = condmon.get(&format!("/customers/SHARE/{customer}"));
                status == 200
                    && serde_json::from_str::<serde_json::Value>(&body).unwrap()["items"]
                        .as_object()
                        .is_some_and(|items| items.len() == 5)
            })
        };
        while !has_all() {
            assert!(
                Instant::now() < deadline,
                "{customer}'s invoices never all arrived"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    // Time moves on: every timer fires once, on whichever instance holds it.
    for condmon in running.values() {
        condmon.set_today("2026-03-21");
    }
    assert_outputs(&base, &expected);
}

#[test]
fn any_instance_answers_any_query_from_the_instance_that_holds_the_customer() {
    let broker = Broker::start();
    let dir = tempfile::tempdir().unwrap();
    let base = group(&broker, dir.path());
    let customers: Vec<String> = (0..16).map(|i| format!("Q{i:02}")).collect();
    let a = start(
        &instance(&base, dir.path(), "a"),
        dir.path(),
        "a",
        "2026-03-01",
    );
    a.wait_found("/readyz", WAIT);
    let b = start(
        &instance(&base, dir.path(), "b"),
        dir.path(),
        "b",
        "2026-03-01",
    );
    b.wait_found("/readyz", WAIT);
    // A corporate family whose members are on every partition (so on both instances): Q00
    // and three customers on the other partitions, each naming Q00 its corporate parent.
    // (4 × 1,600.00 past due stays under COLL-CORP's 10,000.00.)
    let partition =
        |c: &str| partition_for(format!("SHARE|{c}").as_bytes(), base.topics.partitions);
    let mut family = vec![customers[0].clone()];
    for c in &customers[1..] {
        if family.len() < base.topics.partitions as usize
            && family.iter().all(|f| partition(f) != partition(c))
        {
            family.push(c.clone());
        }
    }
    assert_eq!(family.len(), 4, "one member per partition");
    produce(
        &base,
        customers
            .iter()
            .map(|c| match master(c) {
                InputEvent::Customer(mut m) if family[1..].contains(c) => {
                    m.corporate_parent = Some(family[0].clone());
                    record(&base, &InputEvent::Customer(m))
                }
                other => record(&base, &other),
            })
            .collect(),
    );
    std::thread::sleep(Duration::from_secs(1));
    two_invoices(&base, &customers);
    // Each customer, asked of either instance, is answered by the one that holds it.
    let deadline = Instant::now() + WAIT;
    for customer in &customers {
        loop {
            let answers: Vec<(u16, String)> = [&a, &b]
                .iter()
                .map(|i| i.get(&format!("/customers/SHARE/{customer}/actions")))
                .collect();
            if answers
                .iter()
                .all(|(status, body)| *status == 200 && body.contains("CALL"))
            {
                assert_eq!(answers[0], answers[1], "{customer}");
                break;
            }
            assert!(Instant::now() < deadline, "{customer}: {answers:?}");
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    // A member's action list at level C (corporate) holds the whole family's actions, each
    // row naming its customer, whichever instance is asked and wherever the members are.
    let family_list = |i: &Condmon, customer: &str, level: &str| -> Vec<String> {
        let (status, body) = i.get(&format!(
            "/customers/SHARE/{customer}/actions?level={level}"
        ));
        assert_eq!(status, 200, "{body}");
        let mut whose: Vec<String> = serde_json::from_str::<Vec<serde_json::Value>>(&body)
            .unwrap()
            .iter()
            .map(|row| row["customer_id"].as_str().unwrap().to_string())
            .collect();
        whose.dedup();
        whose.sort();
        whose
    };
    for asked in [&a, &b] {
        assert_eq!(family_list(asked, &family[2], "C"), family, "from a child");
        assert_eq!(
            family_list(asked, &family[0], "C"),
            family,
            "from the parent"
        );
        assert_eq!(family_list(asked, &family[2], "N"), [family[2].clone()]);
        assert_eq!(
            family_list(asked, &family[2], "R"),
            [family[2].clone()],
            "no remit-from parent: only its own"
        );
        let (status, _) = asked.get(&format!("/customers/SHARE/{}/actions?level=X", family[2]));
        assert_eq!(status, 400);
    }
    // The owner's list and the reports cover both instances' customers, merged.
    let list = |i: &Condmon| -> Vec<String> {
        let (status, body) = i.get("/owners/JDOE/actions");
        assert_eq!(status, 200, "{body}");
        serde_json::from_str::<Vec<serde_json::Value>>(&body)
            .unwrap()
            .iter()
            .map(|row| row["customer_id"].as_str().unwrap().to_string())
            .collect()
    };
    let mut on_list = list(&a);
    assert_eq!(on_list, list(&b), "the same list from either instance");
    on_list.sort();
    on_list.dedup();
    assert_eq!(
        on_list, customers,
        "every customer's call, whoever holds it"
    );
    let (_, report_a) = a.get("/reports/condition-status?owner=JDOE");
    let (_, report_b) = b.get("/reports/condition-status?owner=JDOE");
    assert_eq!(report_a, report_b);
    let rows: Vec<serde_json::Value> = serde_json::from_str(&report_a).unwrap();
    assert_eq!(rows.len(), customers.len(), "{report_a}");
    // Neither instance holds everything: each answered for the other's partitions by asking.
    let held = |i: &Condmon| {
        let (_, metrics) = i.get("/metrics");
        metric(&metrics, "condmon_assigned_partitions").unwrap_or(0.0)
    };
    assert!(held(&a) < 4.0 && held(&b) < 4.0);
}
