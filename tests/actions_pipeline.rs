//! Working actions end to end through a real broker (Tansu) and the real `condmon run`: the
//! owner's e-mail on the notifications topic, commands on the commands topic answered on the
//! results topic (a refused one, a malformed one dead-lettered), a performed dunning letter on
//! the correspondence topic, an automated hold on its business day on the requests topic, and
//! the owner's action list and reports over HTTP.

mod common;

use std::time::Duration;

use common::*;
use condmon::model::{
    ActionCommand, CommandKind, CustomerChange, CustomerKey, InputEvent, ItemChange, OutputEvent,
    Stream,
};

const WAIT: Duration = Duration::from_secs(60);

const RULES: &str = r#"
version = 1
[[collection_rule]]
id = "COLL"
set_id = "SHARE"
currency = "USD"
min_past_due_amount = "1000.00"
days_past_due = 30
template = "STD"
owner_type = "COLLECTOR"

[[template]]
id = "STD"
[[template.step]]
days_after = 0
action_code = "DLTR"
action_parameter = "DUN1"
due_days = 2
[[template.step]]
days_after = 3
action_code = "HOLD"
action_parameter = "CRHOLD"
due_days = 0
automated = true

[[calendar]]
id = "US"
business_units = ["US001"]
holidays = ["2026-03-04"]

[[owner]]
id = "JDOE"
name = "Jane Doe"
email = "jane.doe@example.com"
supervisor = "CMGR"

[[owner]]
id = "CMGR"
email = "chris.manager@example.com"
"#;

fn key() -> CustomerKey {
    CustomerKey::new("SHARE", "ACME")
}

fn master() -> InputEvent {
    InputEvent::Customer(CustomerChange {
        collector: Some("JDOE".into()),
        country: Some("US".into()),
        state: Some("CA".into()),
        ..CustomerChange::new(&key(), "Acme", "USD")
    })
}

fn invoice() -> InputEvent {
    let due = "2026-01-15".parse().unwrap();
    InputEvent::Item(ItemChange::invoice(
        &key(),
        "US001",
        "INV-1",
        "2500.00".parse().unwrap(),
        "USD",
        due,
    ))
}

fn command(id: &str, by: &str, kind: CommandKind, actions: &[&str]) -> InputEvent {
    let mut command = ActionCommand::new(id, &key(), by, kind, actions);
    command.letter_code = Some("DUN9".into());
    command.delivery_method = Some("PRINT".into());
    InputEvent::Command(command)
}

#[test]
fn notifications_commands_letters_and_requests_flow_through_the_real_pipeline() {
    let (_broker, dir, config) = deployment(|config, dir| {
        config.rules_file = rules_file(dir, RULES);
    });
    // Monday 2026-03-02.
    let condmon = Condmon::start(&config, dir.path(), "2026-03-02");
    condmon.wait_healthy(WAIT);
    let topics = config.topics.clone();

    produce(&config, vec![record(&config, &master())]);
    produce(&config, vec![record(&config, &invoice())]);
    // The dunning-letter step is on JDOE's list: she gets an e-mail with what it needs.
    let records = wait_for(&config, &topics.notifications, WAIT, |r| !r.is_empty());
    let OutputEvent::Notification(mail) = &decode(&config, Stream::Notifications, &records)[0]
    else {
        panic!("not a notification")
    };
    assert_eq!(
        mail.recipient_email.as_deref(),
        Some("jane.doe@example.com")
    );
    assert_eq!(mail.action_code.as_deref(), Some("DLTR"));
    assert_eq!(mail.past_due_amount, "2500".parse().unwrap());
    // Monday + 2 business days, Wednesday 4 being a holiday: Thursday 5.
    assert_eq!(mail.due_date, "2026-03-05".parse().unwrap());
    let (status, body) = condmon.get(&mail.link);
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"supervisor\":\"CMGR\""), "{body}");

    // A stranger's perform is refused; a command without an issuer is bad data.
    let action = mail
        .action_id
        .clone()
        .expect("an action's notification names it");
    let mut nameless = record(
        &config,
        &command("C0", "JDOE", CommandKind::Perform, &[&action]),
    );
    nameless.payload = Some(
        condmon::codec::SchemaCatalog::bundled()
            .unwrap()
            .encode_input(&command("C0", " ", CommandKind::Perform, &[&action]))
            .unwrap(),
    );
    produce(
        &config,
        vec![
            nameless,
            record(
                &config,
                &command("C1", "KLEE", CommandKind::Perform, &[&action]),
            ),
            record(
                &config,
                &command("C2", "JDOE", CommandKind::Perform, &[&action]),
            ),
        ],
    );
    let results = wait_for(&config, &topics.command_results, WAIT, |r| r.len() >= 2);
    let answers: Vec<(String, bool, Vec<String>)> =
        decode(&config, Stream::CommandResults, &results)
            .into_iter()
            .filter_map(|e| match e {
                OutputEvent::CommandResult(r) => Some((r.command_id, r.accepted, r.reasons)),
                _ => None,
            })
            .collect();
    assert_eq!(
        answers,
        vec![
            (
                "C1".to_string(),
                false,
                vec![format!(
                    "action {action}: only its owner (JDOE) or creator may change it; not KLEE"
                )]
            ),
            ("C2".to_string(), true, vec![]),
        ]
    );
    let dead = wait_for(&config, &topics.dead_letter, WAIT, |r| !r.is_empty());
    assert_eq!(
        dead[0].header("condmon.error.reason"),
        Some("field `issued_by` is empty")
    );
    assert_eq!(
        dead[0].header("condmon.source.topic"),
        Some(topics.action_commands.as_str())
    );
    let letters = wait_for(&config, &topics.correspondence, WAIT, |r| !r.is_empty());
    let OutputEvent::Correspondence(letter) = &decode(&config, Stream::Correspondence, &letters)[0]
    else {
        panic!("not a letter")
    };
    assert_eq!(letter.letter_code.as_deref(), Some("DUN9"));
    assert_eq!(letter.delivery_method.as_deref(), Some("PRINT"));

    // Three days on, the automated hold: condmon asks the ERP to put ACME on hold.
    condmon.set_today("2026-03-05");
    let requests = wait_for(&config, &topics.requests, WAIT, |r| !r.is_empty());
    let OutputEvent::Request(hold) = &decode(&config, Stream::Requests, &requests)[0] else {
        panic!("not a request")
    };
    assert_eq!(hold.code.as_deref(), Some("CRHOLD"));
    assert_eq!(hold.requested_by, "condmon");

    // The history and the reports over HTTP.
    let (_, history) = condmon.get("/customers/SHARE/ACME/action-history");
    let history: serde_json::Value = serde_json::from_str(&history).unwrap();
    let statuses: Vec<&str> = history
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["COMPLETE", "SYSTEM_COMPLETE"]);
    assert_eq!(history[0]["delivery_method"], "PRINT");
    // In a display currency: the same amounts in USD; in EUR, for which no rate was published,
    // each row says which rate is missing instead of showing a figure.
    let (_, in_usd) = condmon.get("/customers/SHARE/ACME/action-history?display_currency=USD");
    let in_usd: serde_json::Value = serde_json::from_str(&in_usd).unwrap();
    assert_eq!(in_usd[0]["display"]["past_due_amount"], "2500");
    let (_, in_eur) = condmon
        .get("/customers/SHARE/ACME/action-history?display_currency=EUR&effective_date=2026-03-02");
    let in_eur: serde_json::Value = serde_json::from_str(&in_eur).unwrap();
    assert_eq!(
        in_eur[0]["display"]["missing_rate"],
        "no CRRNT rate from USD to EUR in force on 2026-03-02"
    );
    assert!(in_eur[0]["display"]["past_due_amount"].is_null());
    let (status, _) = condmon.get("/owners/JDOE/actions?display_currency=EURO");
    assert_eq!(status, 400, "not a currency");
    let (_, report) =
        condmon.get("/reports/owner-action-status?from=2026-03-01&to=2026-03-31&owner=JDOE");
    let report: serde_json::Value = serde_json::from_str(&report).unwrap();
    assert_eq!(report[0]["date"], "2026-03-02");
    assert_eq!(
        (report[0]["added"].as_u64(), report[0]["completed"].as_u64()),
        (Some(1), Some(1))
    );
    let (_, open) = condmon.get("/owners/JDOE/actions");
    assert_eq!(open.trim(), "[]", "nothing left on JDOE's list");
    for path in [
        "/customers/SHARE/ACME/actions",
        "/customers/SHARE/ACME/future-actions",
    ] {
        let (status, body) = condmon.get(path);
        assert_eq!((status, body.trim()), (200, "[]"), "{path}: all done");
    }
    // The violation is still there (the invoice is unpaid), with no open action left on it.
    let (_, conditions) = condmon.get("/reports/condition-status?owner=JDOE");
    assert_eq!(conditions.trim(), "[]");
    let (status, _) = condmon.get("/customers/SHARE/ACME/actions/NOPE");
    assert_eq!(status, 404);
    let (status, _) = condmon.get("/reports/owner-action-status?from=2026-03-31&to=2026-03-01");
    assert_eq!(status, 400, "a range that ends before it starts");
    condmon.wait_metric(
        "condmon_outcomes_total{outcome=\"command_rejected\"}",
        1.0,
        WAIT,
    );
}
