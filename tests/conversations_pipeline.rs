//! Conversations end to end through a real broker (Tansu) and the real `condmon run`: a
//! promise kept by a payment, another broken by the clock alone, an exclusion from dunning
//! answered on its topic, a malformed conversation dead-lettered, and the promise inquiry over
//! HTTP.

mod common;

use std::time::Duration;

use common::*;
use condmon::model::{
    CallAction, CallActionKind, ConversationChange, CustomerChange, CustomerKey, CustomerSite,
    DunningDecision, InputEvent, ItemChange, OutputEvent, PaymentApplication, PaymentChange,
    PaymentStatus, Promise, PromiseStatus, Stream,
};

const WAIT: Duration = Duration::from_secs(60);

const RULES: &str = r#"
version = 1
[options]
promise_grace_days = 1

[[owner]]
id = "JDOE"
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
    let site = |id: &str, profile: Option<&str>| CustomerSite {
        site_id: id.into(),
        profile_id: profile.map(Into::into),
    };
    InputEvent::Customer(CustomerChange {
        profile_id: Some("STD".into()),
        collector: Some("JDOE".into()),
        sites: vec![site("S1", Some("P1")), site("S2", None)],
        ..CustomerChange::new(&key(), "Acme", "USD")
    })
}

fn invoice() -> InputEvent {
    let due = "2026-02-28".parse().unwrap();
    InputEvent::Item(ItemChange::invoice(
        &key(),
        "US001",
        "INV-1",
        "900.00".parse().unwrap(),
        "USD",
        due,
    ))
}

fn conversation(id: &str, promised: Option<(&str, &str)>) -> ConversationChange {
    ConversationChange {
        set_id: "SHARE".into(),
        customer_id: "ACME".into(),
        conversation_id: id.into(),
        business_unit: "US001".into(),
        user: "JDOE".into(),
        conversation_date: "2026-03-02".parse().unwrap(),
        contact: None,
        keywords: vec![],
        description: None,
        follow_up: None,
        review_date: None,
        reviewed: false,
        supervisor_review: false,
        supervisor: None,
        references: vec![],
        promise: promised.map(|(date, amount)| Promise {
            date: date.parse().unwrap(),
            amount: amount.parse().unwrap(),
            currency: "USD".into(),
            items: vec![],
            reviewed: false,
            broken_reviewed: false,
        }),
        call_actions: vec![],
        deleted: false,
    }
}

fn statuses(
    records: &[condmon::kafka::ReadRecord],
    config: &condmon::config::Config,
) -> Vec<(String, PromiseStatus)> {
    decode(config, Stream::PromiseStatus, records)
        .into_iter()
        .filter_map(|e| match e {
            OutputEvent::PromiseStatus(p) => Some((p.conversation_id, p.status)),
            _ => None,
        })
        .collect()
}

#[test]
fn promises_are_judged_and_calls_answered_through_the_real_pipeline() {
    let (_broker, dir, config) = deployment(|config, dir| {
        config.rules_file = rules_file(dir, RULES);
    });
    // Monday 2026-03-02.
    let condmon = Condmon::start(&config, dir.path(), "2026-03-02");
    condmon.wait_healthy(WAIT);
    let topics = config.topics.clone();
    produce(
        &config,
        vec![record(&config, &master()), record(&config, &invoice())],
    );
    // Two promises: 500 by Tuesday on the account, 400 by Wednesday on INV-9; a site without a
    // profile excluded from dunning with no answer; and a conversation that is not one.
    let mut p2 = conversation("P-2", Some(("2026-03-04", "400")));
    p2.promise.as_mut().unwrap().items = vec![condmon::model::ItemRef {
        item_id: "INV-9".into(),
        item_line: 0,
    }];
    let mut call = conversation("CALL-1", None);
    call.call_actions = vec![CallAction {
        id: "1".into(),
        kind: CallActionKind::ExcludeFromDunning,
        item: None,
        amount: None,
        owner: None,
        date: None,
        notes: None,
        site: Some("S2".into()),
        update_customer_profile: None,
    }];
    let mut bad = record(
        &config,
        &InputEvent::Conversation(conversation("BAD", Some(("2026-03-03", "1")))),
    );
    let mut negative = conversation("BAD", Some(("2026-03-03", "1")));
    negative.promise.as_mut().unwrap().amount = "-1".parse().unwrap();
    bad.payload = Some(
        condmon::codec::SchemaCatalog::bundled()
            .unwrap()
            .encode_input(&InputEvent::Conversation(negative))
            .unwrap(),
    );
    produce(
        &config,
        vec![
            record(
                &config,
                &InputEvent::Conversation(conversation("P-1", Some(("2026-03-03", "500")))),
            ),
            record(&config, &InputEvent::Conversation(p2)),
            record(&config, &InputEvent::Conversation(call)),
            bad,
        ],
    );
    let records = wait_for(&config, &topics.promise_status, WAIT, |r| r.len() >= 2);
    assert_eq!(
        statuses(&records, &config),
        [
            ("P-1".to_string(), PromiseStatus::Open),
            ("P-2".to_string(), PromiseStatus::Open)
        ]
    );
    let decisions = wait_for(&config, &topics.dunning_decisions, WAIT, |r| !r.is_empty());
    let OutputEvent::DunningDecision(asked) =
        &decode(&config, Stream::DunningDecisions, &decisions)[0]
    else {
        panic!("not a decision")
    };
    assert_eq!(asked.decision, DunningDecision::DecisionNeeded);
    assert!(
        asked
            .message
            .contains("no site level profile exists for site S2"),
        "{}",
        asked.message
    );
    let dead = wait_for(&config, &topics.dead_letter, WAIT, |r| !r.is_empty());
    assert_eq!(
        dead[0].header("condmon.error.reason"),
        Some("promise amount -1 must be positive")
    );

    // 500 paid on Tuesday to INV-1 keeps P-1 (on the account) at once; P-2 is on another item.
    let payment = InputEvent::Payment(PaymentChange {
        set_id: "SHARE".into(),
        business_unit: "US001".into(),
        customer_id: "ACME".into(),
        payment_id: "PAY-1".into(),
        amount: "500.00".parse().unwrap(),
        currency: "USD".into(),
        payment_date: "2026-03-03".parse().unwrap(),
        status: PaymentStatus::Applied,
        applications: vec![PaymentApplication {
            item_id: "INV-1".into(),
            item_line: 0,
            amount: "500.00".parse().unwrap(),
        }],
    });
    condmon.set_today("2026-03-03");
    produce(&config, vec![record(&config, &payment)]);
    let records = wait_for(&config, &topics.promise_status, WAIT, |r| r.len() >= 3);
    assert_eq!(
        statuses(&records, &config)[2],
        ("P-1".to_string(), PromiseStatus::Kept)
    );
    // P-2: Wednesday + 1 business day = Thursday; nothing paid on its item: broken on Friday
    // by the clock alone.
    condmon.set_today("2026-03-06");
    let records = wait_for(&config, &topics.promise_status, WAIT, |r| r.len() >= 4);
    assert_eq!(
        statuses(&records, &config)[3],
        ("P-2".to_string(), PromiseStatus::Broken)
    );
    let (status, body) = condmon.get("/promises?group_by=collector");
    assert_eq!(status, 200);
    let groups: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(groups[0]["group"], "JDOE");
    assert_eq!(
        (groups[0]["kept"].as_u64(), groups[0]["broken"].as_u64()),
        (Some(1), Some(1))
    );
    let (_, found) = condmon.get("/conversations/search/broken-promise-review-needed");
    assert!(found.contains("\"conversation_id\":\"P-2\""), "{found}");
    let (status, _) = condmon.get("/conversations/search/everything");
    assert_eq!(status, 404, "no such search");
    let (_, all) = condmon.get("/promises");
    let all: serde_json::Value = serde_json::from_str(&all).unwrap();
    assert_eq!(all.as_array().unwrap().len(), 2);
    let (_, mine) = condmon.get("/customers/SHARE/ACME/conversations");
    let mine: serde_json::Value = serde_json::from_str(&mine).unwrap();
    assert_eq!(mine["promises"]["P-1"]["status"], "KEPT");
    assert!(
        mine["dunning"]["sites_excluded"]
            .as_array()
            .unwrap()
            .is_empty()
    );
}
