//! `condmon replay` over the sample ledger against a golden file, with and without restarts.
//! Regenerate after an intended change with `UPDATE_GOLDEN=1 cargo test --test replay_golden`
//! and review the diff.

use std::path::PathBuf;
use std::sync::Arc;

use condmon::codec::SchemaCatalog;
use condmon::metrics::Metrics;
use condmon::pipeline::Operator;
use condmon::pipeline::replay::{ReplayOptions, ReplaySummary, replay};
use condmon::rules::RuleSet;
use condmon::state::Store;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn operator() -> Operator {
    let rules = RuleSet::load(&repo().join("topology/rules.toml")).unwrap();
    Operator::new(Arc::new(rules), Arc::new(SchemaCatalog::bundled().unwrap()))
}

fn run(store: &Store, stop_after: Option<usize>) -> (String, ReplaySummary) {
    replay_file(
        "topology/sample/ledger.ndjson",
        store,
        stop_after,
        ("2026-01-01", "2026-04-30"),
    )
}

fn replay_file(
    file: &str,
    store: &Store,
    stop_after: Option<usize>,
    (start, until): (&str, &str),
) -> (String, ReplaySummary) {
    let input = std::fs::read(repo().join(file)).unwrap();
    let mut out = Vec::new();
    let metrics = Metrics::new();
    let summary = replay(
        &operator(),
        store,
        input.as_slice(),
        &mut out,
        ReplayOptions {
            start: start.parse().unwrap(),
            until: Some(until.parse().unwrap()),
            stop_after,
            score_at: None,
            metrics: &metrics,
        },
    )
    .unwrap();
    (String::from_utf8(out).unwrap(), summary)
}

fn matches_golden(out: &str, name: &str) {
    let golden = repo().join("tests/golden").join(name);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&golden, out).unwrap();
    }
    assert_eq!(
        out,
        std::fs::read_to_string(&golden).unwrap(),
        "replay output differs from {}",
        golden.display()
    );
}

#[test]
fn the_sample_ledger_replays_to_the_golden_output() {
    let dir = tempfile::tempdir().unwrap();
    let (out, summary) = run(&Store::open(dir.path()).unwrap(), None);
    matches_golden(&out, "sample-ledger.out.ndjson");
    assert_eq!(
        summary.dead_letters, 4,
        "three bad records and one invalid rule document"
    );
}

#[test]
fn a_replay_stopped_anywhere_and_resumed_gives_the_same_output() {
    let dir = tempfile::tempdir().unwrap();
    let (whole, _) = run(&Store::open(dir.path()).unwrap(), None);
    let lines = std::fs::read_to_string(repo().join("topology/sample/ledger.ndjson"))
        .unwrap()
        .lines()
        .count();
    for stop in 1..lines {
        let dir = tempfile::tempdir().unwrap();
        // "Crash" after `stop` lines, then start again on the same state directory.
        let (first, _) = run(&Store::open(dir.path()).unwrap(), Some(stop));
        let (rest, _) = run(&Store::open(dir.path()).unwrap(), None);
        assert_eq!(format!("{first}{rest}"), whole, "stopped after line {stop}");
    }
}

#[test]
fn the_sample_ledger_scored_at_a_date_matches_the_golden_scores() {
    let dir = tempfile::tempdir().unwrap();
    let input = std::fs::read(repo().join("topology/sample/ledger.ndjson")).unwrap();
    let mut out = Vec::new();
    let metrics = Metrics::new();
    replay(
        &operator(),
        &Store::open(dir.path()).unwrap(),
        input.as_slice(),
        &mut out,
        ReplayOptions {
            start: "2026-01-01".parse().unwrap(),
            until: None,
            stop_after: None,
            score_at: Some("2026-03-31".parse().unwrap()),
            metrics: &metrics,
        },
    )
    .unwrap();
    let scores: String = String::from_utf8(out)
        .unwrap()
        .lines()
        .filter(|l| l.contains("\"stream\":\"scores\""))
        .map(|l| format!("{l}\n"))
        .collect();
    let golden = repo().join("tests/golden/sample-ledger.scores.ndjson");
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&golden, &scores).unwrap();
    }
    assert_eq!(scores, std::fs::read_to_string(&golden).unwrap());
    // The manual's worked examples, as a nightly run on 2026-03-31 would score them.
    let total = |customer: &str| -> String {
        let line = scores
            .lines()
            .find(|l| l.contains(&format!("\"key\":\"SHARE|{customer}\"")))
            .unwrap();
        let json: serde_json::Value = serde_json::from_str(line).unwrap();
        json["value"]["total"].as_str().unwrap().to_string()
    };
    assert_eq!(total("ACME"), "8.80");
    assert_eq!(total("GLOBEX"), "8.65");
}

/// A collection plan from its violation to its end, worked by commands: reviewed, a refused
/// perform, performed; an item action added by hand and written off; a future step re-dated;
/// a step reassigned by the supervisor whose letter, performed after a newer dunning action's,
/// is superseded by that one's, sent with the next run; a call added on a Saturday due in 0
/// business days, due on Monday; the automated
/// hold on its (new) day; reminders on their business days; the invoice paid.
#[test]
fn an_action_plan_worked_from_violation_to_completion_replays_to_the_golden_output() {
    let dir = tempfile::tempdir().unwrap();
    let (out, summary) = replay_file(
        "topology/sample/action-plan.ndjson",
        &Store::open(dir.path()).unwrap(),
        None,
        ("2026-06-01", "2026-06-30"),
    );
    matches_golden(&out, "action-plan.out.ndjson");
    assert_eq!(summary.dead_letters, 1, "the command without an id");
    let lines: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let of = |stream: &str| -> Vec<&serde_json::Value> {
        lines
            .iter()
            .filter(|l| l["stream"] == stream)
            .map(|l| &l["value"])
            .collect()
    };
    let answers: Vec<(String, bool)> = of("command-results")
        .iter()
        .map(|r| {
            (
                r["command_id"].as_str().unwrap().to_string(),
                r["accepted"].as_bool().unwrap(),
            )
        })
        .collect();
    let refused: Vec<&str> = answers
        .iter()
        .filter(|(_, ok)| !ok)
        .map(|(id, _)| id.as_str())
        .collect();
    assert_eq!(
        refused,
        ["C3", "C9"],
        "a stranger's perform; a cancel after completion"
    );
    assert_eq!(answers.len(), 12);
    // Added on Saturday the 13th, due in 0 business days: due on Monday, the next business day.
    let added_saturday = of("actions")
        .into_iter()
        .find(|a| a["action_id"] == "ITEM-3")
        .unwrap();
    assert_eq!(added_saturday["due_date"], "2026-06-15");
    // Two dunning letters asked for on Friday the 12th, the newer action's (ITEM-2, added that
    // day) first: one letter, the most recent action's, at the next run (the next business
    // day), standing for the plan's older one performed after it.
    let letters = of("correspondence");
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0]["action_id"], "ITEM-2");
    assert_eq!(letters[0]["letter_code"], "DUN3");
    assert_eq!(letters[0]["superseded_action_ids"][0], "COLL-30-1-2");
    assert_eq!(letters[0]["business_date"], "2026-06-15", "the next run");
    assert!(
        of("actions").iter().any(|a| a["action_id"] == "COLL-30-1-2"
            && a["result"] == "letter superseded by action ITEM-2")
    );
    let requests: Vec<(&str, &str)> = of("requests")
        .iter()
        .map(|r| {
            (
                r["kind"].as_str().unwrap(),
                r["business_date"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        requests,
        [("WRITE_OFF", "2026-06-03"), ("CUSTOMER_HOLD", "2026-06-24")]
    );
    // Every action of the plan ends done: none is left open.
    let last_status = |action: &str| -> String {
        of("actions")
            .iter()
            .rfind(|a| a["action_id"] == action)
            .map(|a| a["status"].as_str().unwrap().to_string())
            .unwrap()
    };
    assert_eq!(last_status("COLL-30-1-1"), "COMPLETE");
    assert_eq!(last_status("COLL-30-1-2"), "COMPLETE");
    assert_eq!(last_status("COLL-30-1-3"), "SYSTEM_COMPLETE");
    assert_eq!(last_status("ITEM-1"), "COMPLETE");
    assert_eq!(last_status("ITEM-2"), "COMPLETE");
}

/// Conversations with LUTHOR: a promise on an item kept by its payment, a follow-up done; a
/// promise on the account partly paid and broken by timer (its plan ends once reviewed); a
/// partial dispute placed and ended; an alert for the supervisor; a site without a profile
/// excluded from dunning only once the call says to update the customer profile, after which
/// the dunning letter is suppressed, until the user re-includes the customer by its profile; a
/// credit memo requested; a promise of a negative amount refused.
#[test]
fn conversations_and_promises_replay_to_the_golden_output() {
    let dir = tempfile::tempdir().unwrap();
    let (out, summary) = replay_file(
        "topology/sample/conversations.ndjson",
        &Store::open(dir.path()).unwrap(),
        None,
        ("2026-07-01", "2026-07-31"),
    );
    matches_golden(&out, "conversations.out.ndjson");
    assert_eq!(summary.dead_letters, 1, "the negative promise");
    let values = |stream: &str| -> Vec<serde_json::Value> {
        out.lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .filter(|l| l["stream"] == stream)
            .map(|l| l["value"].clone())
            .collect()
    };
    let promises: Vec<(String, String, String)> = values("promise-status")
        .iter()
        .map(|p| {
            (
                p["conversation_id"].as_str().unwrap().to_string(),
                p["status"].as_str().unwrap().to_string(),
                p["business_date"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let expected = [
        ("CV-1", "OPEN", "2026-07-01"),
        ("CV-1", "KEPT", "2026-07-03"),
        ("CV-2", "OPEN", "2026-07-07"),
        ("CV-2", "PARTIALLY_KEPT", "2026-07-08"),
        // 9 July + 2 business days = Monday 13: broken on the 14th, by timer.
        ("CV-2", "BROKEN", "2026-07-14"),
    ];
    assert_eq!(
        promises,
        expected
            .iter()
            .map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string()))
            .collect::<Vec<_>>()
    );
    let decisions: Vec<String> = values("dunning-decisions")
        .iter()
        .map(|d| d["decision"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(decisions, ["DECISION_NEEDED", "CUSTOMER_PROFILE_UPDATED"]);
    let suppressed = values("actions").iter().any(|a| {
        a["action_id"] == "COLL-30-1-2"
            && a["result"] == "suppressed: customer excluded from dunning"
    });
    assert!(suppressed, "the dunning letter after the exclusion");
    // The ERP applies the exclusion to the profile (21st), the user updates the profile to
    // re-include the customer (22nd): the next dunning letter goes out.
    let letters: Vec<(String, String)> = values("correspondence")
        .iter()
        .map(|l| {
            (
                l["action_id"].as_str().unwrap().to_string(),
                l["business_date"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(letters, [("ITEM-1".to_string(), "2026-07-22".to_string())]);
    let brkp: Vec<String> = values("conditions")
        .iter()
        .filter(|c| c["condition"] == "BRKP")
        .map(|c| {
            format!(
                "{} {}",
                c["kind"].as_str().unwrap(),
                c["business_date"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(
        brkp,
        ["VIOLATION_OPENED 2026-07-14", "VIOLATION_ENDED 2026-07-15"]
    );
    // Each output line names its cause: the broken promise, time alone (its timer on the 14th);
    // the payment that partly kept it, its input line.
    let cause = |status: &str| -> (serde_json::Value, serde_json::Value) {
        let line: serde_json::Value = out
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .find(|l| l["stream"] == "promise-status" && l["value"]["status"] == status)
            .unwrap();
        (line["line"].clone(), line["timer"].clone())
    };
    assert_eq!(
        cause("BROKEN"),
        (serde_json::Value::Null, "2026-07-14".into())
    );
    assert_eq!(
        cause("PARTIALLY_KEPT"),
        (10.into(), serde_json::Value::Null)
    );
}

/// Every event the goldens hold, of every output stream, goes through the Avro wire format and
/// comes back the same: no field of the model is missing from its schema.
#[test]
fn every_golden_output_survives_the_wire_format() {
    use condmon::codec::{output_from_json, output_to_json};
    use condmon::model::Stream;
    let catalog = SchemaCatalog::bundled().unwrap();
    let mut streams = std::collections::BTreeSet::new();
    for golden in [
        "sample-ledger.out.ndjson",
        "action-plan.out.ndjson",
        "conversations.out.ndjson",
    ] {
        let text = std::fs::read_to_string(repo().join("tests/golden").join(golden)).unwrap();
        for line in text.lines() {
            let line: serde_json::Value = serde_json::from_str(line).unwrap();
            let Ok(stream) = serde_json::from_value::<Stream>(line["stream"].clone()) else {
                continue; // dead letters and rule outcomes are not events
            };
            let event = output_from_json(stream, line["value"].clone()).unwrap();
            let bytes = catalog.encode_output(&event).unwrap();
            let back = catalog.decode_output(stream, &bytes).unwrap();
            // Avro decimals have the schema's scale: 0.60 comes back as 0.6, the same amount.
            assert_eq!(
                same_amounts(output_to_json(&back)),
                same_amounts(line["value"].clone()),
                "{golden}: {}",
                stream.as_str()
            );
            streams.insert(stream.as_str());
        }
    }
    for stream in [
        "actions",
        "escalations",
        "conditions",
        "risk-scores",
        "command-results",
        "notifications",
        "correspondence",
        "requests",
        "promise-status",
        "dunning-decisions",
    ] {
        assert!(streams.contains(stream), "no {stream} event in the goldens");
    }
}

/// Every amount in its normal form (no trailing zeros).
fn same_amounts(value: serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match value {
        Value::String(s) => match s.parse::<rust_decimal::Decimal>() {
            Ok(d) => Value::String(d.normalize().to_string()),
            Err(_) => Value::String(s),
        },
        Value::Array(items) => Value::Array(items.into_iter().map(same_amounts).collect()),
        Value::Object(fields) => Value::Object(
            fields
                .into_iter()
                .map(|(k, v)| (k, same_amounts(v)))
                .collect(),
        ),
        other => other,
    }
}
