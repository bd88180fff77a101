//! The command line as an operator uses it.

use std::process::Command;

fn condmon(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_condmon"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap()
}

#[test]
fn rules_check_accepts_the_shipped_rules() {
    let out = condmon(&["rules", "check", "topology/rules.toml"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains(
            "valid (version 1, 5 collection rule(s), 9 assessment rule(s), 2 scoring rule(s), 5 template(s), 2 calendar(s), 7 owner(s))"
        )
    );
    // A business unit no calendar names is said to fall back to weekends only.
    let out = condmon(&[
        "rules",
        "check",
        "topology/rules.toml",
        "--business-unit",
        "US001",
        "--business-unit",
        "US002",
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    assert!(
        text.contains("warning: business unit `US002` is named by no calendar; its due and notification dates count weekends only (calendar STANDARD)"),
        "{text}"
    );
    assert!(!text.contains("`US001`"), "{text}");
}

/// The README's input field reference is what `condmon schemas doc` generates from the
/// schemas: a schema change that is not in the README fails here.
#[test]
fn the_readme_input_field_reference_is_generated_from_the_schemas() {
    let out = condmon(&["schemas", "doc"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let generated = String::from_utf8(out.stdout).unwrap();
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let (_, rest) = readme.split_once("<!-- input-fields:begin -->\n").unwrap();
    let (section, _) = rest.split_once("<!-- input-fields:end -->").unwrap();
    assert!(
        section == generated,
        "README.md's input fields differ from `condmon schemas doc`: paste its output between the \
         input-fields markers"
    );
}

#[test]
fn rules_check_lists_every_problem_and_fails() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/topology/rules.toml"))
        .unwrap()
        .replacen("currency = \"USD\"", "currency = \"DOLLARS\"", 1)
        .replacen("due_days = 5", "due_days = -5", 1);
    std::fs::write(&bad, text).unwrap();
    let out = condmon(&["rules", "check", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("2 problem(s)"), "{err}");
    assert!(
        err.contains("collection_rule[0] (COLL-30): `DOLLARS` is not an ISO 4217 currency code"),
        "{err}"
    );
    assert!(
        err.contains("template[0] (STD-COLL).step[1]: due_days -5 is negative"),
        "{err}"
    );
}

#[test]
fn topology_prints_every_topic_with_its_cleanup_policy() {
    let out = condmon(&["topology"]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for topic in [
        "ar.items",
        "ar.payments",
        "ar.aging",
        "ar.customers",
        "ar.history",
        "condmon.child-figures",
        "cm.actions",
        "cm.escalations",
        "cm.conditions",
        "cm.dead-letter",
    ] {
        assert!(
            text.lines()
                .any(|l| l.contains(topic) && l.contains("cleanup.policy=delete")),
            "{topic}:\n{text}"
        );
    }
    for topic in ["ar.fx-rates", "cm.rules"] {
        assert!(
            text.lines()
                .any(|l| l.contains(topic) && l.contains("cleanup.policy=compact")),
            "{topic}:\n{text}"
        );
    }
    assert!(text.contains("timers-by-due.N"));
    assert!(text.contains("customers-by-currency.N"));
    assert!(text.contains("customers-by-owner.N"));
    for topic in [
        "cm.action-commands",
        "ar.conversations",
        "cm.promise-status",
    ] {
        assert!(
            text.lines()
                .any(|l| l.contains(topic) && l.contains("cleanup.policy=delete")),
            "{topic}:\n{text}"
        );
    }
}

#[test]
fn replay_requires_the_rule_set_it_tries() {
    let out = condmon(&[
        "replay",
        "--input",
        "topology/sample/ledger.ndjson",
        "--start",
        "2026-01-01",
    ]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--rules"), "{stderr}");
}

#[test]
fn replay_writes_ndjson_and_reports_dead_letters() {
    let dir = tempfile::tempdir().unwrap();
    let output = dir.path().join("out.ndjson");
    let out = condmon(&[
        "replay",
        "--input",
        "topology/sample/ledger.ndjson",
        "--rules",
        "topology/rules.toml",
        "--start",
        "2026-01-01",
        "--until",
        "2026-04-30",
        "--output",
        output.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("4 dead letter(s)"));
    let written = std::fs::read_to_string(&output).unwrap();
    let golden = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/golden/sample-ledger.out.ndjson"
    ))
    .unwrap();
    assert_eq!(written, golden);
}

/// Every schema version in `schemas/` reads what the one before it wrote, and every input
/// enum has a default; a version that adds a field without a default, or an input enum
/// without one, is named, and the command fails.
#[test]
fn schemas_check_proves_every_version_reads_the_one_before() {
    let out = condmon(&["schemas", "check"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("item_change_v2.avsc (1011) reads item_change.avsc (1001): ok"),
        "{text}"
    );
    assert!(text.contains("all backward compatible"), "{text}");

    let dir = tempfile::tempdir().unwrap();
    let schemas = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas");
    for entry in std::fs::read_dir(&schemas).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, dir.path().join(path.file_name().unwrap())).unwrap();
    }
    let mut v2: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(schemas.join("item_change_v2.avsc")).unwrap(),
    )
    .unwrap();
    v2["fields"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!({"name": "region", "type": "string"}));
    std::fs::write(dir.path().join("item_change_v2.avsc"), v2.to_string()).unwrap();
    let out = condmon(&["schemas", "check", "--dir", dir.path().to_str().unwrap()]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success());
    assert!(
        text.contains("item_change_v2.avsc (1011) cannot read item_change.avsc (1001)"),
        "{text}"
    );

    // An input enum without a default: a newer producer's symbol would dead-letter a valid
    // record, so the check fails naming it.
    std::fs::copy(
        schemas.join("item_change_v2.avsc"),
        dir.path().join("item_change_v2.avsc"),
    )
    .unwrap();
    let v3 = std::fs::read_to_string(schemas.join("payment_change_v3.avsc")).unwrap();
    let without = v3.replace("\"default\": \"IN_PROCESS\"", "\"doc\": \"no default\"");
    assert_ne!(v3, without);
    std::fs::write(dir.path().join("payment_change_v3.avsc"), without).unwrap();
    let out = condmon(&["schemas", "check", "--dir", dir.path().to_str().unwrap()]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success());
    assert!(
        text.contains("payments: payment_change_v3.avsc: enum PaymentStatus has no default"),
        "{text}"
    );
}
