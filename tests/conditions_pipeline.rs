//! The condition catalog end to end through a real broker (Tansu) and the real `condmon run`:
//! exchange rates from their compacted topic (a missing rate flags the customer, the rate's
//! arrival re-evaluates it), a corporate parent whose children are processed on different
//! partitions, and rule documents applied live from the rules topic (an invalid one refused,
//! the newest reloaded after a restart).

mod common;

use std::time::Duration;

use common::*;
use condmon::config::Config;
use condmon::kafka::{OutRecord, ReadRecord};
use condmon::model::{
    ActionEvent, ActionEventKind, AgingBucket, AgingSnapshot, CancelReason, ConditionEvent,
    ConditionEventKind, CustomerChange, ElementStatus, FxRate, HistoryChange, InputEvent,
    ItemChange, ItemType, MonitorRole, OutputEvent, RiskScoreEvent, Stream,
};

const WAIT: Duration = Duration::from_secs(60);

const RULES: &str = r#"
version = 1
[[collection_rule]]
id = "COLL-30"
set_id = "SHARE"
currency = "USD"
min_past_due_amount = "1000.00"
days_past_due = 30
template = "STD"
owner_type = "COLLECTOR"

[[collection_rule]]
id = "COLL-CORP"
set_id = "SHARE"
monitor = "CORPORATE"
currency = "USD"
min_past_due_amount = "1500.00"
days_past_due = 30
template = "STD"
owner_type = "COLLECTOR"

[[template]]
id = "STD"
[[template.step]]
days_after = 0
action_code = "CALL"
due_days = 3

[[scoring_rule]]
id = "RISK1"
set_id = "SHARE"
currency = "USD"
[[scoring_rule.element]]
name = "AVGDAYS"
weight = "15"
input = { kind = "HISTORY", history_id = "AVG_DAYS_LATE" }
ranges = [
  { low = "-99999", high = "35", value = "1" },
  { low = "36", high = "56", value = "2" },
  { low = "57", high = "99999", value = "3" },
]
[[scoring_rule.element]]
name = "06 121+"
weight = "85"
input = { kind = "AGING", aging_id = "STD", category = "06 121+" }
ranges = [
  { low = "-999999999", high = "1000", value = "5" },
  { low = "1001", high = "10000", value = "10" },
  { low = "10001", high = "999999999", value = "15" },
]
"#;

fn master(id: &str, currency: &str, parent: Option<&str>) -> InputEvent {
    InputEvent::Customer(CustomerChange {
        set_id: "SHARE".into(),
        customer_id: id.into(),
        name: id.into(),
        customer_group: None,
        currency: currency.into(),
        credit_limit: None,
        credit_limit_pct_over: None,
        profile_id: None,
        collector: Some("JDOE".into()),
        credit_analyst: None,
        sales_person: None,
        corporate_parent: parent.map(Into::into),
        remit_from_parent: None,
        correspondence_parent: None,
        credit_hold: false,
        country: None,
        state: None,
        exclude_from_dunning: false,
        sites: vec![],
    })
}

fn invoice(customer: &str, open: &str, currency: &str) -> InputEvent {
    InputEvent::Item(ItemChange {
        set_id: "SHARE".into(),
        business_unit: "US001".into(),
        customer_id: customer.into(),
        item_id: format!("INV-{customer}"),
        item_line: 0,
        item_type: ItemType::Invoice,
        original_amount: open.parse().unwrap(),
        open_amount: open.parse().unwrap(),
        currency: currency.into(),
        accounting_date: "2025-12-15".parse().unwrap(),
        due_date: "2026-01-15".parse().unwrap(),
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

fn actions(config: &Config, records: &[ReadRecord]) -> Vec<ActionEvent> {
    decode(config, Stream::Actions, records)
        .into_iter()
        .filter_map(|e| match e {
            OutputEvent::Action(a) => Some(a),
            _ => None,
        })
        .collect()
}

fn conditions(config: &Config, records: &[ReadRecord]) -> Vec<ConditionEvent> {
    decode(config, Stream::Conditions, records)
        .into_iter()
        .filter_map(|e| match e {
            OutputEvent::Condition(c) => Some(c),
            _ => None,
        })
        .collect()
}

fn has_condition(
    config: &Config,
    records: &[ReadRecord],
    customer: &str,
    kind: ConditionEventKind,
) -> bool {
    conditions(config, records)
        .iter()
        .any(|c| c.customer_id == customer && c.kind == kind)
}

fn risk_scores(config: &Config, records: &[ReadRecord]) -> Vec<RiskScoreEvent> {
    decode(config, Stream::RiskScores, records)
        .into_iter()
        .filter_map(|e| match e {
            OutputEvent::RiskScore(r) => Some(r),
            _ => None,
        })
        .collect()
}

fn rules_document(text: &str, config: &Config) -> OutRecord {
    OutRecord {
        topic: config.topics.rules.clone(),
        partition: None,
        key: Some(b"rules".to_vec()),
        payload: Some(text.as_bytes().to_vec()),
        headers: vec![],
    }
}

#[test]
fn rates_parents_and_rule_documents_apply_live_through_the_real_pipeline() {
    let (_broker, dir, config) = deployment(|config, dir| {
        // The test restarts the process: Tansu's group coordinator keeps a killed member's
        // partitions (see the README), so this instance owns every partition outright.
        config.kafka.assignment = condmon::config::Assignment::Manual;
        config.rules_file = rules_file(dir, RULES);
    });
    let mut condmon = Condmon::start(&config, dir.path(), "2026-03-01");
    condmon.wait_healthy(WAIT);
    let (topics, fx_topic) = (&config.topics, config.topics.fx_rates.clone());

    // A customer in EUR with no EUR rate: flagged, nothing decided.
    produce(
        &config,
        vec![record(&config, &master("WAYNE", "EUR", None))],
    );
    produce(
        &config,
        vec![record(&config, &invoice("WAYNE", "2000.00", "EUR"))],
    );
    wait_for(&config, &topics.conditions, WAIT, |r| {
        has_condition(&config, r, "WAYNE", ConditionEventKind::EvaluationBlocked)
    });
    let (status, body) = condmon.get("/customers/SHARE/WAYNE/violations");
    assert_eq!(status, 200);
    assert!(body.contains("no CRRNT rate from EUR to USD"), "{body}");

    // The rate arrives on its compacted topic: WAYNE is re-evaluated at once, 2,200 USD past due.
    let rate = InputEvent::FxRate(FxRate {
        rate_type: "CRRNT".into(),
        from_currency: "EUR".into(),
        to_currency: "USD".into(),
        effective_date: "2026-01-01".parse().unwrap(),
        rate: "1.10".parse().unwrap(),
    });
    let mut zero_rate = record(&config, &rate);
    zero_rate.payload = Some({
        let InputEvent::FxRate(mut bad) = rate.clone() else {
            unreachable!()
        };
        bad.rate = "0".parse().unwrap();
        bad.effective_date = "2026-02-01".parse().unwrap();
        zero_rate.key = Some(bad.key().into_bytes());
        condmon::codec::SchemaCatalog::bundled()
            .unwrap()
            .encode_input(&InputEvent::FxRate(bad))
            .unwrap()
    });
    produce(&config, vec![record(&config, &rate), zero_rate]);
    let records = wait_for(&config, &topics.actions, WAIT, |r| {
        actions(&config, r).iter().any(|a| a.customer_id == "WAYNE")
    });
    let wayne = actions(&config, &records)
        .into_iter()
        .find(|a| a.customer_id == "WAYNE")
        .unwrap();
    assert_eq!(wayne.evidence.past_due_amount, "2200".parse().unwrap());
    assert_eq!(wayne.evidence.items_in_other_currencies, 1);
    wait_for(&config, &topics.conditions, WAIT, |r| {
        has_condition(&config, r, "WAYNE", ConditionEventKind::EvaluationRestored)
    });
    let dead = wait_for(&config, &topics.dead_letter, WAIT, |r| {
        r.iter()
            .any(|d| d.header("condmon.source.topic") == Some(fx_topic.as_str()))
    });
    let bad_rate = dead
        .iter()
        .find(|d| d.header("condmon.source.topic") == Some(fx_topic.as_str()))
        .unwrap();
    assert_eq!(bad_rate.header("condmon.error.kind"), Some("invalid"));
    assert_eq!(
        bad_rate.header("condmon.error.reason"),
        Some("rate 0 must be positive")
    );

    // Children of MEGA on both partitions: 800 each is under every bill-to rule, 1,600 at the
    // corporate parent is over its 1,500.
    let candidates: Vec<String> = (0..12).map(|n| format!("SUB{n}")).collect();
    produce(
        &config,
        candidates
            .iter()
            .map(|c| record(&config, &master(c, "USD", Some("MEGA"))))
            .collect(),
    );
    let masters = wait_for(&config, &topics.customers, WAIT, |r| {
        r.len() > candidates.len()
    });
    let partition_of = |id: &str| {
        masters
            .iter()
            .find(|r| r.key.as_deref() == Some(format!("SHARE|{id}").as_bytes()))
            .unwrap()
            .partition
    };
    let first = &candidates[0];
    let second = candidates
        .iter()
        .find(|c| partition_of(c) != partition_of(first))
        .expect("a candidate on the other partition");
    produce(
        &config,
        vec![
            record(&config, &invoice(first, "800.00", "USD")),
            record(&config, &invoice(second, "800.00", "USD")),
        ],
    );
    let records = wait_for(&config, &topics.actions, WAIT, |r| {
        actions(&config, r).iter().any(|a| a.customer_id == "MEGA")
    });
    let mega = actions(&config, &records)
        .into_iter()
        .find(|a| a.customer_id == "MEGA")
        .unwrap();
    assert_eq!(
        (mega.rule_id.as_str(), mega.monitor_role),
        ("COLL-CORP", MonitorRole::Corporate)
    );
    assert_eq!(mega.evidence.past_due_amount, "1600".parse().unwrap());
    assert_eq!(mega.evidence.children, 2);
    assert!(
        actions(&config, &records)
            .iter()
            .all(|a| !a.customer_id.starts_with("SUB")),
        "the children are under the bill-to threshold"
    );

    // The manual's Customer A: history and aging arrive on their topics and the score follows,
    // element by element; the history alone first (an incomplete score, reported as such).
    let history = InputEvent::History(HistoryChange {
        set_id: "SHARE".into(),
        customer_id: "CUSTA".into(),
        business_unit: "US001".into(),
        history_id: "AVG_DAYS_LATE".into(),
        fiscal_year: 2026,
        accounting_period: 3,
        value: "50".parse().unwrap(),
        currency: None,
    });
    let aging = InputEvent::Aging(AgingSnapshot {
        set_id: "SHARE".into(),
        business_unit: "US001".into(),
        customer_id: "CUSTA".into(),
        aging_id: "STD".into(),
        as_of_date: "2026-02-28".parse().unwrap(),
        currency: "USD".into(),
        buckets: vec![AgingBucket {
            category: "06 121+".into(),
            amount: "8000".parse().unwrap(),
        }],
    });
    produce(&config, vec![record(&config, &history)]);
    let records = wait_for(&config, &topics.risk_scores, WAIT, |r| {
        risk_scores(&config, r)
            .iter()
            .any(|s| s.customer_id == "CUSTA")
    });
    let first = risk_scores(&config, &records)
        .into_iter()
        .find(|s| s.customer_id == "CUSTA")
        .unwrap();
    assert!(!first.complete);
    assert_eq!(first.elements[1].status, ElementStatus::MissingInput);
    produce(&config, vec![record(&config, &aging)]);
    let records = wait_for(&config, &topics.risk_scores, WAIT, |r| {
        risk_scores(&config, r)
            .iter()
            .any(|s| s.customer_id == "CUSTA" && s.complete)
    });
    let scored = risk_scores(&config, &records)
        .into_iter()
        .find(|s| s.customer_id == "CUSTA" && s.complete)
        .unwrap();
    assert_eq!(
        (scored.total, scored.rule_id.as_str()),
        ("8.80".parse().unwrap(), "RISK1")
    );
    let (status, body) = condmon.get("/customers/SHARE/CUSTA/risk-score");
    assert_eq!(status, 200);
    assert!(body.contains("\"total\":\"8.80\""), "{body}");
    // The same aging again moves nothing: no new score event.
    produce(&config, vec![record(&config, &aging)]);
    condmon.wait_metric("condmon_records_in_total{topic=\"ar.aging\"}", 2.0, WAIT);
    let records = wait_for(&config, &topics.risk_scores, WAIT, |_| true);
    assert_eq!(
        risk_scores(&config, &records)
            .iter()
            .filter(|s| s.customer_id == "CUSTA")
            .count(),
        2,
        "only the two changes of the score were emitted"
    );

    // A newer rule document raises COLL-30 to 5,000: WAYNE's plan ends at once, live.
    let v2 = RULES
        .replace("version = 1", "version = 2")
        .replace("\"1000.00\"", "\"5000.00\"");
    produce(&config, vec![rules_document(&v2, &config)]);
    let records = wait_for(&config, &topics.actions, WAIT, |r| {
        actions(&config, r)
            .iter()
            .any(|a| a.customer_id == "WAYNE" && a.kind == ActionEventKind::Cancelled)
    });
    let cancelled = actions(&config, &records)
        .into_iter()
        .find(|a| a.customer_id == "WAYNE" && a.kind == ActionEventKind::Cancelled)
        .unwrap();
    assert_eq!(
        cancelled.cancel_reason,
        Some(CancelReason::NoLongerInViolation)
    );
    condmon.wait_metric("condmon_rules_version", 2.0, WAIT);

    // An invalid document is refused with its problems; the rule set in force stays.
    let broken = "version = 3\n[[collection_rule]]\nid = \"X\"\nset_id = \"SHARE\"\ncurrency = \"USD\"\nmin_past_due_amount = \"1\"\ndays_past_due = 1\ntemplate = \"NOPE\"\nowner_type = \"COLLECTOR\"\n";
    produce(&config, vec![rules_document(broken, &config)]);
    let dead = wait_for(&config, &topics.dead_letter, WAIT, |r| {
        r.iter()
            .any(|d| d.header("condmon.source.topic") == Some(config.topics.rules.as_str()))
    });
    let refused = dead
        .iter()
        .find(|d| d.header("condmon.source.topic") == Some(config.topics.rules.as_str()))
        .unwrap();
    assert_eq!(refused.header("condmon.error.kind"), Some("invalid"));
    assert!(
        refused
            .header("condmon.error.reason")
            .unwrap()
            .contains("collection_rule[0] (X): template `NOPE` is not defined"),
        "{:?}",
        refused.header("condmon.error.reason")
    );
    condmon.wait_metric("condmon_rules_version", 2.0, WAIT);

    // After a restart the newest valid document (not the file's version 1) is in force.
    condmon.kill();
    let mut condmon = Condmon::start(&config, dir.path(), "2026-03-01");
    condmon.wait_healthy(WAIT);
    condmon.wait_metric("condmon_rules_version", 2.0, WAIT);

    // Rules change while no process runs: at start the partitions reconciled under the old
    // rules are reconciled again, so WAYNE is back in violation with no event of its own.
    condmon.kill();
    let v4 = RULES.replace("version = 1", "version = 4");
    produce(&config, vec![rules_document(&v4, &config)]);
    let condmon = Condmon::start(&config, dir.path(), "2026-03-01");
    condmon.wait_healthy(WAIT);
    condmon.wait_metric("condmon_rules_version", 4.0, WAIT);
    wait_for(&config, &topics.actions, WAIT, |r| {
        actions(&config, r)
            .iter()
            .filter(|a| a.customer_id == "WAYNE" && a.kind == ActionEventKind::Created)
            .map(|a| a.violation_id.clone())
            .collect::<std::collections::BTreeSet<_>>()
            .len()
            == 2
    });
}
