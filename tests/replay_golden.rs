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
    let input = std::fs::read(repo().join("topology/sample/ledger.ndjson")).unwrap();
    let mut out = Vec::new();
    let metrics = Metrics::new();
    let summary = replay(
        &operator(),
        store,
        input.as_slice(),
        &mut out,
        ReplayOptions {
            start: "2026-01-01".parse().unwrap(),
            until: Some("2026-04-30".parse().unwrap()),
            stop_after,
            score_at: None,
            metrics: &metrics,
        },
    )
    .unwrap();
    (String::from_utf8(out).unwrap(), summary)
}

#[test]
fn the_sample_ledger_replays_to_the_golden_output() {
    let dir = tempfile::tempdir().unwrap();
    let (out, summary) = run(&Store::open(dir.path()).unwrap(), None);
    let golden = repo().join("tests/golden/sample-ledger.out.ndjson");
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&golden, &out).unwrap();
    }
    assert_eq!(
        out,
        std::fs::read_to_string(&golden).unwrap(),
        "replay output differs from {}",
        golden.display()
    );
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
