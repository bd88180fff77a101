//! The tools for the people around condmon: `condmon topology` for tools and diagrams,
//! `condmon export` (the input topics over a time range into the replay format, through a
//! real broker) and `condmon replay`'s progress on a long file.

mod common;

use std::process::Command;
use std::time::Duration;

use common::*;
use condmon::codec::input_from_json;
use condmon::model::{
    CustomerChange, CustomerKey, InputEvent, ItemChange, PaymentApplication, PaymentChange,
    PaymentStatus, Stream,
};
use rust_decimal::Decimal;

fn condmon(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_condmon"))
        .args(args)
        .current_dir(repo())
        .output()
        .unwrap()
}

fn ok(out: &std::process::Output) -> String {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).unwrap()
}

#[test]
fn topology_describes_itself_as_json_and_as_a_graph() {
    let json: serde_json::Value =
        serde_json::from_str(&ok(&condmon(&["topology", "--format", "json"]))).unwrap();
    let topics = json["topics"].as_array().unwrap();
    let named = |name: &str| topics.iter().find(|t| t["name"] == name).cloned();
    assert_eq!(named("ar.items").unwrap()["role"], "input");
    assert_eq!(named("cm.actions").unwrap()["role"], "output");
    assert_eq!(
        named("condmon-ledger-changelog").unwrap()["properties"]["cleanup.policy"],
        "compact"
    );
    let stores = json["stores"].as_array().unwrap();
    let ledger = stores.iter().find(|s| s["name"] == "ledger").unwrap();
    assert_eq!(ledger["changelog"], "condmon-ledger-changelog");
    let by_due = stores
        .iter()
        .find(|s| s["name"] == "timers-by-due")
        .unwrap();
    assert!(by_due["changelog"].is_null(), "rebuilt locally");

    let dot = ok(&condmon(&["topology", "--format", "dot"]));
    assert!(dot.starts_with("digraph condmon {") && dot.trim_end().ends_with('}'));
    assert!(dot.contains("\"ar.items\" -> operator;"));
    assert!(dot.contains("operator -> \"cm.actions\";"));
    assert!(dot.contains("\"ledger.N\" -> \"condmon-ledger-changelog\" [style=dashed];"));
    // Every topic of the JSON form is a node of the graph.
    for topic in topics {
        let name = topic["name"].as_str().unwrap();
        assert!(dot.contains(&format!("\"{name}\" [shape=cds")), "{name}");
    }
}

#[test]
fn replay_shows_its_progress_when_asked() {
    let out = condmon(&[
        "replay",
        "--rules",
        "topology/rules.toml",
        "--input",
        "topology/sample/ledger.ndjson",
        "--start",
        "2026-01-01",
        "--progress",
    ]);
    ok(&out);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let size = std::fs::metadata(repo().join("topology/sample/ledger.ndjson"))
        .unwrap()
        .len();
    let lines = std::fs::read_to_string(repo().join("topology/sample/ledger.ndjson"))
        .unwrap()
        .lines()
        .count();
    assert!(
        stderr.contains(&format!("100.0% ({size} of {size} bytes), line {lines}, ")),
        "{stderr}"
    );
    assert!(stderr.contains(" lines/s\n"), "{stderr}");
    // Without the option (standard error not a terminal), nothing but the summary.
    let quiet = condmon(&[
        "replay",
        "--rules",
        "topology/rules.toml",
        "--input",
        "topology/sample/ledger.ndjson",
        "--start",
        "2026-01-01",
    ]);
    assert!(!String::from_utf8_lossy(&quiet.stderr).contains("lines/s"));
}

fn master() -> InputEvent {
    let mut master = CustomerChange::new(&CustomerKey::new("SHARE", "EXP"), "Exp Inc", "USD");
    master.collector = Some("JDOE".into());
    InputEvent::Customer(master)
}

fn invoice(id: &str) -> InputEvent {
    InputEvent::Item(ItemChange::invoice(
        &CustomerKey::new("SHARE", "EXP"),
        "US001",
        id,
        Decimal::from(1500),
        "USD",
        "2026-01-15".parse().unwrap(),
    ))
}

fn payment() -> InputEvent {
    InputEvent::Payment(PaymentChange {
        set_id: "SHARE".into(),
        business_unit: "US001".into(),
        customer_id: "EXP".into(),
        payment_id: "PAY-1".into(),
        status: PaymentStatus::Applied,
        amount: Decimal::from(1500),
        currency: "USD".into(),
        payment_date: "2026-03-05".parse().unwrap(),
        applications: vec![PaymentApplication {
            item_id: "INV-1".into(),
            item_line: 0,
            amount: Decimal::from(1500),
        }],
    })
}

/// What an export file holds: (stream, event) per line, in order.
fn exported(path: &std::path::Path) -> Vec<InputEvent> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|line| {
            let json: serde_json::Value = serde_json::from_str(line).unwrap();
            assert!(json["at"].as_str().is_some(), "{line}");
            let stream: Stream = serde_json::from_value(json["stream"].clone()).unwrap();
            input_from_json(stream, json["value"].clone()).unwrap()
        })
        .collect()
}

#[test]
fn export_writes_a_time_range_of_the_inputs_that_replays() {
    let (_broker, dir, config) = deployment(|_, _| {});
    let config_file = dir.path().join("condmon.toml");
    std::fs::write(&config_file, toml::to_string(&config).unwrap()).unwrap();
    let config_arg = config_file.to_str().unwrap();

    produce(&config, vec![record(&config, &master())]);
    produce(&config, vec![record(&config, &invoice("INV-1"))]);
    std::thread::sleep(Duration::from_millis(1500));
    let between = chrono::Utc::now().to_rfc3339();
    std::thread::sleep(Duration::from_millis(500));
    produce(&config, vec![record(&config, &payment())]);
    produce(&config, vec![record(&config, &invoice("INV-2"))]);
    let mut bad = record(&config, &invoice("INV-3"));
    bad.payload = Some(vec![0, 0, 0, 0, 9, 1]);
    produce(&config, vec![bad]);

    // Everything: in the order it was written, undecodable records left out and counted.
    let all = dir.path().join("all.ndjson");
    let out = condmon(&[
        "export",
        "--config",
        config_arg,
        "--output",
        all.to_str().unwrap(),
    ]);
    ok(&out);
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("export: 4 record(s), 1 undecodable record(s) skipped"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        exported(&all),
        [master(), invoice("INV-1"), payment(), invoice("INV-2")]
    );

    // From a time on: only what was written after it.
    let later = dir.path().join("later.ndjson");
    ok(&condmon(&[
        "export",
        "--config",
        config_arg,
        "--from",
        &between,
        "--output",
        later.to_str().unwrap(),
    ]));
    assert_eq!(exported(&later), [payment(), invoice("INV-2")]);
    // Up to that time: the rest.
    let earlier = dir.path().join("earlier.ndjson");
    ok(&condmon(&[
        "export",
        "--config",
        config_arg,
        "--to",
        &between,
        "--output",
        earlier.to_str().unwrap(),
    ]));
    assert_eq!(exported(&earlier), [master(), invoice("INV-1")]);

    // The export replays as it is, with the rule set a team wants to try.
    let replayed = condmon(&[
        "replay",
        "--rules",
        "topology/rules.toml",
        "--input",
        all.to_str().unwrap(),
        "--start",
        "2026-03-02",
    ]);
    let output = ok(&replayed);
    assert!(
        String::from_utf8_lossy(&replayed.stderr).contains("4 line(s) read"),
        "{}",
        String::from_utf8_lossy(&replayed.stderr)
    );
    assert!(output.contains("\"stream\":\"actions\""), "{output}");
    assert!(!output.contains("dead-letter"), "{output}");
}

/// `condmon replay` writes a line's output before it commits the line: killed right after a
/// commit, a replay resumed on the same state directory and output file misses nothing.
#[test]
fn a_replay_killed_after_committing_a_line_resumes_without_missing_output() {
    let dir = tempfile::tempdir().unwrap();
    let replay = |name: &str, abort_after: Option<usize>| {
        let state = dir.path().join(format!("{name}-state"));
        let output = dir.path().join(format!("{name}.ndjson"));
        let mut command = Command::new(env!("CARGO_BIN_EXE_condmon"));
        command
            .args(["replay", "--rules", "topology/rules.toml"])
            .args(["--input", "topology/sample/ledger.ndjson"])
            .args(["--start", "2026-01-01", "--until", "2026-04-30"])
            .arg("--state-dir")
            .arg(&state)
            .arg("--output")
            .arg(&output)
            .current_dir(repo());
        if let Some(line) = abort_after {
            command.env("CONDMON_FAULT_REPLAY_ABORT_AFTER_LINE", line.to_string());
        }
        let status = command.status().unwrap();
        (status, output)
    };
    let (status, whole) = replay("whole", None);
    assert!(status.success());
    let whole = std::fs::read_to_string(whole).unwrap();
    // Killed after line 12 was committed (the sample's early lines have outputs).
    let (status, _) = replay("killed", Some(12));
    assert!(!status.success(), "it was to abort");
    let (status, resumed) = replay("killed", None);
    assert!(status.success());
    assert_eq!(std::fs::read_to_string(resumed).unwrap(), whole);
}
