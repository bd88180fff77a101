//! End to end through a real broker (Tansu) and the real `condmon run` process.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::NaiveDate;
use common::*;
use condmon::config::Config;
use condmon::kafka::{self, OutRecord, ReadRecord};
use condmon::model::{
    ActionEvent, ActionEventKind, ActionStatus, CustomerChange, InputEvent, ItemChange, ItemType,
    OutputEvent, Stream,
};

const WAIT: Duration = Duration::from_secs(60);

fn invoice(customer: &str, id: &str, open: &str, due: &str) -> InputEvent {
    InputEvent::Item(ItemChange {
        set_id: "SHARE".into(),
        business_unit: "US001".into(),
        customer_id: customer.into(),
        item_id: id.into(),
        item_line: 0,
        item_type: ItemType::Invoice,
        original_amount: open.parse().unwrap(),
        open_amount: open.parse().unwrap(),
        currency: "USD".into(),
        accounting_date: due.parse::<NaiveDate>().unwrap() - chrono::Duration::days(30),
        due_date: due.parse().unwrap(),
        entry_type: "IN".into(),
        entry_reason: None,
        disputed_amount: "0".parse().unwrap(),
        ar_specialist: None,
        collector: None,
        origin_item_id: None,
        origin_item_line: None,
        origin_payment_id: None,
    })
}

fn customer(id: &str, collector: &str) -> InputEvent {
    InputEvent::Customer(CustomerChange {
        set_id: "SHARE".into(),
        customer_id: id.into(),
        name: format!("{id} Inc"),
        customer_group: None,
        currency: "USD".into(),
        credit_limit: None,
        credit_limit_pct_over: None,
        profile_id: None,
        collector: Some(collector.into()),
        credit_analyst: Some("ANALYST".into()),
        sales_person: None,
        corporate_parent: None,
        remit_from_parent: None,
        correspondence_parent: None,
        credit_hold: false,
        country: None,
        state: None,
        exclude_from_dunning: false,
        sites: vec![],
    })
}

fn actions(config: &Config, records: &[ReadRecord]) -> Vec<ActionEvent> {
    let catalog = config.schema_catalog().unwrap();
    records
        .iter()
        .map(|r| {
            match catalog
                .decode_output(Stream::Actions, r.payload.as_deref().unwrap())
                .unwrap()
            {
                OutputEvent::Action(a) => a,
                other => panic!("not an action: {other:?}"),
            }
        })
        .collect()
}

fn count(actions: &[ActionEvent], customer: &str, kind: ActionEventKind) -> usize {
    actions
        .iter()
        .filter(|a| a.customer_id == customer && a.kind == kind)
        .count()
}

#[test]
fn ledger_changes_become_actions_time_moves_plans_and_bad_records_become_dead_letters() {
    let (_broker, dir, config) = deployment(|_, _| {});
    let condmon = Condmon::start(&config, dir.path(), "2026-03-01");
    condmon.wait_healthy(WAIT);

    let items = config.topics.items.clone();
    let garbage = OutRecord {
        topic: items.clone(),
        partition: None,
        key: Some(b"SHARE|ACME".to_vec()),
        payload: Some(b"not avro".to_vec()),
        headers: vec![],
    };
    let unknown_schema = OutRecord {
        topic: items.clone(),
        partition: None,
        key: Some(b"SHARE|ACME".to_vec()),
        payload: Some(vec![0, 0, 0, 0x30, 0x39, 2, 4]),
        headers: vec![],
    };
    let mut wrong_key = record(&config, &invoice("ACME", "INV-X", "5.00", "2026-02-01"));
    wrong_key.key = Some(b"SHARE|SOMEONE-ELSE".to_vec());
    // The master first: topics are not ordered with each other, and the owner comes from it.
    produce(&config, vec![record(&config, &customer("ACME", "JDOE"))]);
    condmon.wait_customer("ACME", WAIT);
    produce(
        &config,
        vec![
            garbage.clone(),
            unknown_schema,
            record(&config, &invoice("ACME", "INV-NEG", "-10.00", "2026-02-01")),
            wrong_key,
            // 45 days past due, 4,200.00: in violation of COLL-30 at once.
            record(&config, &invoice("ACME", "INV-1", "4200.00", "2026-01-15")),
            // 800.00: under the amount, no violation (yet).
            record(&config, &invoice("GLOBEX", "INV-2", "800.00", "2026-01-20")),
        ],
    );

    // The whole plan is created: the call on the list, the rest waiting as future actions.
    let records = wait_for(&config, &config.topics.actions, WAIT, |r| r.len() >= 3);
    let created = actions(&config, &records);
    let by_code: BTreeMap<&str, &ActionEvent> = created
        .iter()
        .map(|a| (a.action_code.as_str(), a))
        .collect();
    assert_eq!(created.len(), 3, "{created:#?}");
    assert_eq!(by_code["CALL"].status, ActionStatus::New);
    assert_eq!(by_code["CALL"].owner.as_deref(), Some("JDOE"));
    assert_eq!(by_code["DLTR"].status, ActionStatus::Future);
    assert_eq!(
        by_code["HOLD"].owner.as_deref(),
        Some("ANALYST"),
        "step owner type: credit analyst"
    );
    assert_eq!(
        by_code["CALL"].evidence.past_due_amount,
        "4200.00".parse().unwrap()
    );
    assert_eq!(by_code["CALL"].evidence.oldest_days_past_due, 45);
    assert!(
        records
            .iter()
            .all(|r| r.key.as_deref() == Some(b"SHARE|ACME".as_slice()))
    );

    // Every bad record is in the dead-letter topic with its reason and origin, bytes untouched.
    let dead = wait_for(&config, &config.topics.dead_letter, WAIT, |r| r.len() >= 4);
    assert_eq!(dead.len(), 4);
    let kinds: Vec<&str> = dead
        .iter()
        .map(|r| r.header("condmon.error.kind").unwrap())
        .collect();
    assert_eq!(
        kinds.iter().filter(|k| **k == "undecodable").count(),
        2,
        "{kinds:?}"
    );
    assert!(
        kinds.contains(&"invalid") && kinds.contains(&"wrong_key"),
        "{kinds:?}"
    );
    let garbage_dl = dead
        .iter()
        .find(|r| r.payload.as_deref() == Some(b"not avro".as_slice()))
        .unwrap();
    assert_eq!(
        garbage_dl.header("condmon.source.topic"),
        Some(items.as_str())
    );
    assert!(
        garbage_dl
            .header("condmon.source.offset")
            .unwrap()
            .parse::<i64>()
            .is_ok()
    );
    let invalid = dead
        .iter()
        .find(|r| r.header("condmon.error.kind") == Some("invalid"))
        .unwrap();
    assert!(
        invalid
            .header("condmon.error.reason")
            .unwrap()
            .contains("wrong side of zero")
    );
    let unknown = dead
        .iter()
        .find(|r| r.payload.as_deref().is_some_and(|p| p.len() == 7))
        .unwrap();
    assert_eq!(
        unknown.header("condmon.error.reason"),
        Some("unknown schema id 12345")
    );

    // Metrics: inputs, dead letters by kind, actions by status; no customer ids anywhere.
    let wait_metrics = |check: &dyn Fn(&str) -> bool| {
        let deadline = std::time::Instant::now() + WAIT;
        loop {
            let (_, body) = condmon.get("/metrics");
            if check(&body) {
                return body;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "metrics never matched:\n{body}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    };
    let body = wait_metrics(&|b| {
        metric(b, "condmon_actions{status=\"future\"}") == Some(2.0)
            && b.contains("condmon_consumer_lag{")
    });
    assert_eq!(
        metric(
            &body,
            "condmon_dead_letters_total{kind=\"undecodable\",topic=\"ar.items\"}"
        ),
        Some(2.0)
    );
    assert_eq!(
        metric(&body, "condmon_records_in_total{topic=\"ar.items\"}"),
        Some(6.0)
    );
    assert_eq!(metric(&body, "condmon_actions{status=\"new\"}"), Some(1.0));
    assert!(body.contains("condmon_processing_seconds_bucket"));
    assert!(body.contains("condmon_consumer_lag{"));
    assert!(
        !body.contains("ACME") && !body.contains("GLOBEX"),
        "customer ids leaked into metrics"
    );
    assert_eq!(
        metric(
            &body,
            "condmon_records_already_held_total{topic=\"ar.items\"}"
        ),
        Some(0.0)
    );

    // The invoice sent again exactly as it stands (an ERP's extract): taken and counted,
    // nothing decided (the counts of actions below are unchanged by it).
    produce(
        &config,
        vec![record(
            &config,
            &invoice("ACME", "INV-1", "4200.00", "2026-01-15"),
        )],
    );
    wait_metrics(&|b| {
        metric(b, "condmon_records_already_held_total{topic=\"ar.items\"}") == Some(1.0)
            && metric(b, "condmon_records_committed_total{topic=\"ar.items\"}") == Some(7.0)
    });

    // Ten days pass with no input: the letter moves to the list and the plan escalates.
    condmon.set_today("2026-03-11");
    let records = wait_for(&config, &config.topics.actions, WAIT, |r| r.len() >= 4);
    let moved = actions(&config, &records);
    assert_eq!(count(&moved, "ACME", ActionEventKind::MovedToList), 1);
    let escalations = wait_for(&config, &config.topics.escalations, WAIT, |r| !r.is_empty());
    assert_eq!(escalations.len(), 1);
    // Latency: every record's (Kafka timestamp to its outputs acknowledged), each record's
    // processing, and the timers' lateness.
    let body = wait_metrics(&|b| {
        metric(b, "condmon_timer_lateness_seconds_count").is_some_and(|n| n >= 1.0)
    });
    assert!(metric(&body, "condmon_record_e2e_latency_seconds_count").is_some_and(|n| n >= 6.0));
    assert!(
        metric(
            &body,
            "condmon_record_e2e_latency_seconds_bucket{le=\"65.536\"}"
        )
        .is_some_and(|n| n >= 6.0),
        "{body}"
    );
    assert!(metric(&body, "condmon_processing_seconds_count").is_some_and(|n| n >= 6.0));
    // The clock jumped ten days, so a timer is at most that late (measured on the injected
    // clock, not the wall clock).
    let fired = metric(&body, "condmon_timer_lateness_seconds_count").unwrap_or_default();
    let late = metric(&body, "condmon_timer_lateness_seconds_sum").unwrap_or(f64::MAX);
    assert!(late > 0.0 && late <= fired * 10.0 * 86_400.0, "{body}");

    // GLOBEX ages into violation? No: 800.00 stays under the amount. A second invoice does it.
    produce(
        &config,
        vec![record(
            &config,
            &invoice("GLOBEX", "INV-3", "300.00", "2026-02-01"),
        )],
    );
    let records = wait_for(&config, &config.topics.actions, WAIT, |r| {
        actions(&config, r)
            .iter()
            .any(|a| a.customer_id == "GLOBEX")
    });
    assert_eq!(
        count(
            &actions(&config, &records),
            "GLOBEX",
            ActionEventKind::Created
        ),
        3
    );

    // ACME pays (the ERP publishes the item with no open amount): open actions are cancelled.
    produce(
        &config,
        vec![record(
            &config,
            &invoice("ACME", "INV-1", "0", "2026-01-15"),
        )],
    );
    let records = wait_for(&config, &config.topics.actions, WAIT, |r| {
        count(&actions(&config, r), "ACME", ActionEventKind::Cancelled) >= 2
    });
    let all = actions(&config, &records);
    let cancelled: Vec<&ActionEvent> = all
        .iter()
        .filter(|a| a.kind == ActionEventKind::Cancelled)
        .collect();
    assert_eq!(
        cancelled.len(),
        3,
        "CALL and DLTR on the list and HOLD still future"
    );
    assert!(
        cancelled
            .iter()
            .all(|a| a.status == ActionStatus::SystemCancelled
                && a.cancel_reason == Some(condmon::model::CancelReason::NoLongerInViolation))
    );

    let (status, body) = condmon.get("/customers/SHARE/ACME");
    assert_eq!(status, 200);
    assert!(body.contains("\"violations\":{}"), "{body}");
}

/// A promise to pay later than the test's business date (judged OPEN whatever the order).
fn promise(customer: &str) -> InputEvent {
    let conversation: condmon::model::ConversationChange =
        serde_json::from_value(serde_json::json!({
            "set_id": "SHARE", "customer_id": customer, "conversation_id": format!("P-{customer}"),
            "business_unit": "US001", "user": "JDOE", "conversation_date": "2026-02-27",
            "promise": {"date": "2026-03-20", "amount": "500.00", "currency": "USD"}
        }))
        .unwrap();
    InputEvent::Conversation(conversation)
}

#[test]
fn a_killed_process_resumes_without_losing_or_changing_outputs_and_overdue_timers_fire_once() {
    let (_broker, dir, config) = deployment(|config, _| {
        config.pipeline.max_batch = 25; // many small commits, so the kill lands between some.
        // Tansu 0.6 does not move a crashed member's partitions to the group's other members, so
        // the restarts here own their partitions without a group (README: "Delivery guarantees").
        config.kafka.assignment = condmon::config::Assignment::Manual;
    });

    let customers = 150;
    let mut events: Vec<InputEvent> = (0..customers)
        .map(|i| {
            invoice(
                &format!("C{i:04}"),
                &format!("INV-{i}"),
                "2000.00",
                "2026-01-10",
            )
        })
        .collect();
    // Conversations too: their promise events must survive the crashes like the rest.
    events.extend(
        (0..customers)
            .step_by(10)
            .map(|i| promise(&format!("C{i:04}"))),
    );
    let expected = expected_outputs(&config, &events, "2026-03-01");
    let expected_actions = expected
        .values()
        .filter(|(stream, _)| *stream == Stream::Actions)
        .count();
    assert_eq!(expected_actions, customers * 3);

    // First run: crash (abort) right after the third batch's outputs and changelog records are
    // acknowledged and before its commit is written: the worst instant (the batch is in the
    // changelog, uncommitted, and must be redone, not restored).
    produce(&config, events.iter().map(|e| record(&config, e)).collect());
    let mut condmon = Condmon::start_with_env(
        &config,
        dir.path(),
        "2026-03-01",
        &[("CONDMON_CRASH_UNCOMMITTED_AFTER_BATCHES", "3")],
    );
    assert!(
        !condmon.wait_exit(WAIT).success(),
        "the injected crash happened"
    );
    let after_crash = kafka::read_topic(
        &config,
        &config.topics.actions,
        usize::MAX,
        Duration::from_secs(1),
    )
    .unwrap()
    .len();
    assert!(
        after_crash > 0 && after_crash < expected_actions,
        "crashed mid-stream: {after_crash}"
    );

    // Second run: SIGKILL at whatever point it has reached after a moment.
    let mut condmon = Condmon::start(&config, dir.path(), "2026-03-01");
    std::thread::sleep(Duration::from_millis(1500));
    condmon.kill();

    // Third run completes.
    let condmon = Condmon::start(&config, dir.path(), "2026-03-01");
    let ids = |r: &[ReadRecord]| {
        r.iter()
            .map(|r| r.header("condmon.event-id").unwrap().to_string())
            .collect::<std::collections::HashSet<_>>()
    };
    // Every output topic: actions, escalations, condition events, risk scores, promises...
    let deadline = std::time::Instant::now() + WAIT;
    let outputs = loop {
        let outputs = all_outputs(&config);
        if ids(&outputs).len() >= expected.len() {
            break outputs;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{} of {} output events",
            ids(&outputs).len(),
            expected.len()
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    // Nothing lost, nothing changed: every expected event, and any duplicate is byte-identical.
    assert_eq!(ids(&outputs).len(), expected.len());
    assert_each_is_the_oracles(&outputs, &expected);
    // The batch the first crash left uncommitted was redone, and what its first run had sent
    // already was found on the output topics and not sent again: not one output twice.
    assert_eq!(
        outputs.len(),
        expected.len(),
        "an output was sent twice across the crashes"
    );
    let records = kafka::read_topic(
        &config,
        &config.topics.actions,
        usize::MAX,
        Duration::from_secs(1),
    )
    .unwrap();
    condmon.wait_metric(
        "condmon_actions{status=\"future\"}",
        (customers * 2) as f64,
        WAIT,
    );
    condmon.wait_metric("condmon_actions{status=\"new\"}", customers as f64, WAIT);
    drop(condmon);

    // Down for ten days: on restart every overdue timer fires, once.
    std::fs::write(dir.path().join("today"), "2026-03-11").unwrap();
    let _condmon = Condmon::start(&config, dir.path(), "2026-03-11");
    let before = records.len();
    let records = wait_for(&config, &config.topics.actions, WAIT, |r| {
        r.len() >= before + customers
    });
    std::thread::sleep(Duration::from_secs(2));
    let records = wait_for(&config, &config.topics.actions, WAIT, |r| {
        r.len() >= records.len()
    });
    let moved = actions(&config, &records)
        .into_iter()
        .filter(|a| a.kind == ActionEventKind::MovedToList)
        .count();
    assert_eq!(
        moved, customers,
        "each future letter moved to the list exactly once"
    );
}

#[test]
fn a_schema_registry_outage_holds_records_back_and_refuses_none() {
    let rt = runtime();
    let mut registry = StandInRegistry::start(&rt);
    let (_broker, dir, config) = deployment(|config, _| {
        config.schema_registry_url = Some(registry.url.clone());
    });
    let condmon = Condmon::start(&config, dir.path(), "2026-03-01");
    condmon.wait_healthy(WAIT);

    // Another producer registers an older item schema (no `collector`) and writes with it.
    let old_id = condmon::codec::Registry::new(&registry.url)
        .register("ar.items-value", &item_schema_v1())
        .unwrap();
    let payload = item_written_with_v1(&invoice("ACME", "INV-1", "4200.00", "2026-01-15"), old_id);

    // The registry goes down before condmon has seen that schema id.
    registry.stop(&rt);
    let mut record = record_for_items(&config, "ACME");
    record.payload = Some(payload);
    produce(&config, vec![record]);
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let (_, body) = condmon.get("/metrics");
        if metric(&body, "condmon_external_retries_total").is_some_and(|n| n >= 2.0) {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "no retries:\n{body}");
        std::thread::sleep(Duration::from_millis(100));
    }
    let dead = dead_letters(&config);
    assert!(dead.is_empty(), "an outage is not bad data");
    let (_, body) = condmon.get("/metrics");
    assert_eq!(
        metric(&body, "condmon_records_in_total{topic=\"ar.items\"}"),
        Some(0.0),
        "not processed yet (the series exists from the start, at 0)"
    );

    // Back up: the record is processed, nothing was refused.
    registry.restart(&rt);
    let records = wait_for(&config, &config.topics.actions, WAIT, |r| r.len() >= 3);
    let created = actions(&config, &records);
    assert_eq!(count(&created, "ACME", ActionEventKind::Created), 3);
    assert!(dead_letters(&config).is_empty());
}

/// Credentials the registry refuses are configuration, not data: condmon stops with a message
/// that names the registry and the subject, and refuses no record.
#[test]
fn a_registry_refusing_condmons_credentials_stops_it_and_refuses_no_record() {
    let rt = runtime();
    let registry = StandInRegistry::start(&rt);
    let (_broker, dir, config) = deployment(|config, _| {
        config.schema_registry_url = Some(registry.url.clone());
    });
    // condmon's credentials come from the environment (never from its configuration file).
    let credentials = "Basic Y29uZG1vbjpzM2NyZXQ="; // condmon:s3cret
    registry.schemas.lock().unwrap().authorization = Some(credentials.into());
    let mut condmon = Condmon::start_with_env(
        &config,
        dir.path(),
        "2026-03-01",
        &[("CONDMON_SCHEMA_REGISTRY_USER_INFO", "condmon:s3cret")],
    );
    condmon.wait_healthy(WAIT);

    // Another producer writes with a version condmon has not seen; then condmon's
    // credentials are revoked.
    let producer = condmon::codec::Registry::connect(
        &registry.url,
        None,
        Some(condmon::codec::RegistryAuth::basic("condmon:s3cret").unwrap()),
    )
    .unwrap();
    let old_id = producer
        .register("ar.items-value", &item_schema_v1())
        .unwrap();
    registry.schemas.lock().unwrap().authorization = Some("Basic revoked".into());
    let mut record = record_for_items(&config, "ACME");
    record.payload = Some(item_written_with_v1(
        &invoice("ACME", "INV-1", "4200.00", "2026-01-15"),
        old_id,
    ));
    produce(&config, vec![record]);

    let status = condmon.wait_exit(WAIT);
    assert!(!status.success(), "it stopped with an error");
    let log = std::fs::read_to_string(dir.path().join("condmon.log")).unwrap();
    assert!(
        log.contains(&format!("schema registry {} denied access", registry.url))
            && log.contains("`ar.items-value`")
            && log.contains("HTTP 401"),
        "{log}"
    );
    let dead = dead_letters(&config);
    assert!(dead.is_empty(), "refused credentials are not bad data");
}

/// What the dead-letter topic holds.
fn dead_letters(config: &Config) -> Vec<ReadRecord> {
    kafka::read_topic(
        config,
        &config.topics.dead_letter,
        usize::MAX,
        Duration::from_millis(500),
    )
    .unwrap()
}

fn record_for_items(config: &Config, customer: &str) -> OutRecord {
    OutRecord {
        topic: config.topics.items.clone(),
        partition: None,
        key: Some(format!("SHARE|{customer}").into_bytes()),
        payload: None,
        headers: vec![],
    }
}

#[test]
fn a_state_ahead_of_its_topics_stops_the_process_instead_of_skipping_records() {
    let first = Broker::start();
    let dir = tempfile::tempdir().unwrap();
    let config_a = config(&first, dir.path());
    create_topics(&config_a);
    let mut condmon = Condmon::start(&config_a, dir.path(), "2026-03-01");
    produce(
        &config_a,
        (0..3)
            .map(|i| {
                record(
                    &config_a,
                    &invoice(&format!("C{i}"), "INV", "2000.00", "2026-01-10"),
                )
            })
            .collect(),
    );
    wait_for(&config_a, &config_a.topics.actions, WAIT, |r| r.len() >= 9);
    assert!(condmon.stop().success(), "clean shutdown");

    // The same state against a broker whose topics start from nothing (recreated, or lost).
    let second = Broker::start();
    let mut config_b = config_a.clone();
    config_b.kafka.brokers = second.addr.clone();
    create_topics(&config_b);
    produce(
        &config_b,
        vec![record(
            &config_b,
            &invoice("NEW", "INV", "2000.00", "2026-01-10"),
        )],
    );
    let mut condmon = Condmon::start(&config_b, dir.path(), "2026-03-01");
    let status = condmon.wait_exit(WAIT);
    assert!(!status.success(), "refuses to read on");
    let log = std::fs::read_to_string(dir.path().join("condmon.log")).unwrap();
    assert!(
        log.contains("the changelog was recreated or lost data"),
        "{log}"
    );
    assert!(
        kafka::read_topic(
            &config_b,
            &config_b.topics.actions,
            usize::MAX,
            Duration::from_millis(500)
        )
        .unwrap()
        .is_empty()
    );
}

/// A system clock that jumps 18 days ahead in a moment is not followed: the business date is
/// held, no timer fires (no letter or hold sent early), the metric says by how much. A restart
/// (someone checked the clock) accepts the date, and what came due fires then.
#[test]
fn a_clock_jump_holds_the_business_date_and_fires_no_timer_until_restarted() {
    let (_broker, dir, config) = deployment(|config, _| {
        config.pipeline.max_clock_jump_days = 1;
    });
    let mut condmon = Condmon::start(&config, dir.path(), "2026-03-02");
    condmon.wait_healthy(WAIT);
    produce(
        &config,
        vec![
            record(&config, &customer("JUMP", "JDOE")),
            // 36 days past due (COLL-30), still under 61 on the 20th (no upgrade to COLL-61).
            record(&config, &invoice("JUMP", "INV-1", "5000.00", "2026-01-25")),
        ],
    );
    // The plan: a call now, a letter on day 10, an automated hold on day 20.
    wait_for(&config, &config.topics.actions, WAIT, |r| {
        count(&actions(&config, r), "JUMP", ActionEventKind::Created) >= 3
    });
    std::thread::sleep(Duration::from_secs(1)); // whatever else the records caused
    let first = kafka::read_topic(&config, &config.topics.actions, usize::MAX, WAIT).unwrap();
    let created = first.len();
    let moved_before = count(
        &actions(&config, &first),
        "JUMP",
        ActionEventKind::MovedToList,
    );
    condmon.set_today("2026-03-20");
    condmon.wait_metric("condmon_clock_jump_held_days", 18.0, WAIT);
    std::thread::sleep(Duration::from_secs(2)); // ten timer ticks
    let (_, metrics) = condmon.get("/metrics");
    assert_eq!(
        metric(&metrics, "condmon_business_date_timestamp_seconds"),
        Some(1_772_409_600.0),
        "still 2026-03-02"
    );
    let now = kafka::read_topic(&config, &config.topics.actions, usize::MAX, WAIT).unwrap();
    assert_eq!(now.len(), created, "nothing moved while the jump was held");
    condmon.stop();
    let condmon = Condmon::start(&config, dir.path(), "2026-03-20");
    wait_for(&config, &config.topics.actions, WAIT, |r| {
        count(&actions(&config, r), "JUMP", ActionEventKind::MovedToList) > moved_before
    });
    condmon.wait_metric("condmon_clock_jump_held_days", 0.0, WAIT);
}

/// A topic that does not exist (a configuration mistake: here the dead-letter topic, which
/// nothing checks at start) is not retried forever: the process stops with the reason, naming
/// the topic, instead of stalling every partition behind the record.
#[test]
fn a_send_that_no_retry_can_fix_stops_the_process_with_the_reason() {
    let broker = Broker::start();
    let dir = tempfile::tempdir().unwrap();
    let mut config = config(&broker, dir.path());
    create_topics(&config);
    config.topics.dead_letter = "cm.dead-letter-nobody-created".into();
    // Each try fails within two seconds.
    config
        .kafka
        .producer
        .insert("message.timeout.ms".into(), "2000".into());
    let mut bad = record(&config, &customer("NOWHERE", "JDOE"));
    bad.payload = Some(vec![0, 0, 0, 0, 9]);
    produce(&config, vec![bad]);
    let mut condmon = Condmon::start(&config, dir.path(), "2026-03-02");
    let status = condmon.wait_exit(Duration::from_secs(120));
    assert!(!status.success(), "it stopped with an error");
    let log = std::fs::read_to_string(dir.path().join("condmon.log")).unwrap();
    assert!(
        log.contains("cm.dead-letter-nobody-created") && log.contains("no retry recovers"),
        "{log}"
    );
    // It said so at start, before any record was refused.
    assert!(
        log.contains("the dead-letter topic `cm.dead-letter-nobody-created` does not exist"),
        "{log}"
    );
}

/// A new business day fires its timers at once, not at the next tick (a minute here): the
/// letter step of a plan comes within seconds of the day it is due.
#[test]
fn a_new_business_day_fires_its_timers_without_waiting_for_the_tick() {
    let (_broker, dir, config) = deployment(|config, _| {
        config.pipeline.tick_ms = 60_000;
    });
    produce(
        &config,
        vec![
            record(&config, &customer("DAWN", "JDOE")),
            record(&config, &invoice("DAWN", "INV-1", "4200.00", "2026-01-15")),
        ],
    );
    let condmon = Condmon::start(&config, dir.path(), "2026-03-01");
    condmon.wait_healthy(WAIT);
    wait_for(&config, &config.topics.actions, WAIT, |r| {
        count(&actions(&config, r), "DAWN", ActionEventKind::Created) >= 3
    });
    // Nothing else happens: the idle loop looks at the file clock within 100 ms (a system
    // clock's idle loop wakes at midnight), sees the new date and starts the day's sweep.
    condmon.set_today("2026-03-11");
    // Within 25 s, well before the minute's tick.
    wait_for(
        &config,
        &config.topics.actions,
        Duration::from_secs(25),
        |r| count(&actions(&config, r), "DAWN", ActionEventKind::MovedToList) == 1,
    );
}

/// A producer that fails fatally (librdkafka's own test hook raises what an idempotent
/// producer out of sequence raises: every later send refused) is replaced, and what it
/// refused is sent again: nothing lost, nothing sent twice, the process keeps running.
#[test]
fn a_producer_that_fails_fatally_is_replaced_and_nothing_is_lost_or_doubled() {
    let (_broker, dir, config) = deployment(|_, _| {});
    let condmon = Condmon::start_with_env(
        &config,
        dir.path(),
        "2026-03-01",
        &[("CONDMON_FAULT_PRODUCER_FATAL_AT_BATCH", "1")],
    );
    condmon.wait_healthy(WAIT);
    produce(
        &config,
        vec![
            record(&config, &customer("ACME", "JDOE")),
            record(&config, &invoice("ACME", "INV-1", "4200.00", "2026-01-15")),
        ],
    );
    let records = wait_for(&config, &config.topics.actions, WAIT, |r| r.len() >= 3);
    condmon.wait_metric("condmon_producer_recreated_total", 1.0, WAIT);
    assert_eq!(
        count(
            &actions(&config, &records),
            "ACME",
            ActionEventKind::Created
        ),
        3
    );
    let sent = count_ids(&all_outputs(&config));
    assert!(sent.values().all(|n| *n == 1), "sent twice: {sent:?}");
    // The next batch goes through the new producer.
    produce(
        &config,
        vec![
            record(&config, &customer("GLOBEX", "JDOE")),
            record(
                &config,
                &invoice("GLOBEX", "INV-2", "4200.00", "2026-01-15"),
            ),
        ],
    );
    wait_for(&config, &config.topics.actions, WAIT, |r| {
        actions(&config, r)
            .iter()
            .any(|a| a.customer_id == "GLOBEX")
    });
    assert_eq!(condmon.get("/healthz").0, 200);
}

/// A batch redone after a crash is decided on the business date its first attempt was: the
/// outputs it had sent stand for it, and the state the redo keeps must say what they said,
/// even when the redo runs the next day.
#[test]
fn a_batch_redone_after_midnight_decides_as_its_first_attempt_did() {
    let (_broker, dir, config) = deployment(|config, _| {
        // The restart owns its partitions without a group (Tansu 0.6 keeps a crashed member's).
        config.kafka.assignment = condmon::config::Assignment::Manual;
    });
    // The first batch (the master) commits; the second (the invoice) crashes right after its
    // outputs are acknowledged, before its commit.
    let mut condmon = Condmon::start_with_env(
        &config,
        dir.path(),
        "2026-03-02",
        &[("CONDMON_CRASH_UNCOMMITTED_AFTER_BATCHES", "2")],
    );
    condmon.wait_healthy(WAIT);
    produce(&config, vec![record(&config, &customer("REDO", "JDOE"))]);
    condmon.wait_customer("REDO", WAIT);
    produce(
        &config,
        vec![record(
            &config,
            &invoice("REDO", "INV-1", "2000.00", "2026-01-20"),
        )],
    );
    assert!(
        !condmon.wait_exit(WAIT).success(),
        "the injected crash happened"
    );
    let sent = actions(
        &config,
        &kafka::read_topic(&config, &config.topics.actions, usize::MAX, WAIT).unwrap(),
    );
    let call = sent
        .iter()
        .find(|a| a.customer_id == "REDO" && a.step == 1)
        .expect("the first attempt sent the plan");
    assert_eq!(call.action_date, "2026-03-02".parse().unwrap());

    // Restarted the next day: the redo decides on the 2nd, as the outputs sent said.
    condmon.set_today("2026-03-03");
    let condmon = Condmon::start(&config, dir.path(), "2026-03-03");
    // The customer is served from the first batch's commit at once; the action once the redo
    // has committed.
    let body = condmon.wait_found(
        &format!("/customers/SHARE/REDO/actions/{}", call.action_id),
        WAIT,
    );
    let kept: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(kept["action_date"], "2026-03-02", "{body}");
    assert_eq!(kept["due_date"], call.due_date.to_string(), "{body}");
    // The unfinished batch was this state directory's own (its process is gone, whatever its
    // name): restarted on it, condmon did not wait for that batch to commit.
    let (_, metrics) = condmon.get("/metrics");
    for outcome in ["committed", "gave_up"] {
        assert_eq!(
            metric(
                &metrics,
                &format!("condmon_takeover_waits_total{{outcome=\"{outcome}\"}}")
            ),
            Some(0.0),
            "{outcome}"
        );
    }
    // Nothing of the plan was sent twice.
    let after = actions(
        &config,
        &kafka::read_topic(&config, &config.topics.actions, usize::MAX, WAIT).unwrap(),
    );
    let created = |all: &[ActionEvent]| {
        all.iter()
            .filter(|a| a.customer_id == "REDO" && a.kind == ActionEventKind::Created)
            .count()
    };
    assert_eq!(created(&after), created(&sent));
}
