//! Table-driven tests of the decisions, with dates given explicitly (no clock at all).

use chrono::NaiveDate;
use rust_decimal::Decimal;

use super::*;
use crate::model::{CustomerChange, InputEvent, ItemChange, ItemType};

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

[[template]]
id = "STD"
[[template.step]]
days_after = 0
action_code = "CALL"
due_days = 3
[[template.step]]
days_after = 10
action_code = "DLTR"
action_parameter = "DUN1"
due_days = 5
[[template.step]]
days_after = 20
action_code = "HOLD"
due_days = 0
automated = true
"#;

fn rules() -> RuleSet {
    RuleSet::parse(RULES, "test").unwrap()
}

fn d(s: &str) -> NaiveDate {
    s.parse().unwrap()
}

fn key() -> CustomerKey {
    CustomerKey::new("SHARE", "C1")
}

fn item(id: &str, item_type: ItemType, open: &str, due: &str, currency: &str) -> InputEvent {
    let open: Decimal = open.parse().unwrap();
    InputEvent::Item(ItemChange {
        set_id: "SHARE".into(),
        business_unit: "US001".into(),
        customer_id: "C1".into(),
        item_id: id.into(),
        item_line: 0,
        item_type,
        original_amount: open,
        open_amount: open,
        currency: currency.into(),
        accounting_date: d(due) - chrono::Duration::days(30),
        due_date: d(due),
        entry_type: "IN".into(),
        entry_reason: None,
        disputed_amount: Decimal::ZERO,
        ar_specialist: Some("SPEC1".into()),
        collector: Some("ITEMCOLL".into()),
    })
}

fn invoice(id: &str, open: &str, due: &str) -> InputEvent {
    item(id, ItemType::Invoice, open, due, "USD")
}

fn state_with(events: Vec<InputEvent>) -> CustomerState {
    let mut state = CustomerState::default();
    for e in events {
        state.apply(e);
    }
    state
}

fn actions(out: &[OutputEvent]) -> Vec<(ActionEventKind, String, ActionStatus)> {
    out.iter()
        .filter_map(|e| match e {
            OutputEvent::Action(a) => Some((a.kind, a.action_code.clone(), a.status)),
            _ => None,
        })
        .collect()
}

#[test]
fn violation_needs_both_the_amount_and_more_than_n_days() {
    // Invoice due 2026-01-01; 31 days past due on 2026-02-01, 30 days on 2026-01-31.
    let cases = [
        (
            "1000.00",
            "2026-02-01",
            true,
            "exactly the amount, one day more than N",
        ),
        ("999.99", "2026-02-01", false, "one cent under the amount"),
        (
            "1000.00",
            "2026-01-31",
            false,
            "exactly N days is not more than N",
        ),
        ("5000.00", "2026-01-01", false, "due today is not past due"),
    ];
    for (amount, today, expected, why) in cases {
        let state = state_with(vec![invoice("INV1", amount, "2026-01-01")]);
        let rules = rules();
        let figures = evaluate_collection(&rules.collection_rules[0], &state, d(today));
        assert_eq!(
            figures.in_violation(&rules.collection_rules[0]),
            expected,
            "{why}"
        );
    }
}

#[test]
fn credits_reduce_the_past_due_amount_and_other_currencies_are_reported_not_counted() {
    let state = state_with(vec![
        invoice("INV1", "1500.00", "2026-01-01"),
        item("CM1", ItemType::CreditMemo, "-600.00", "2026-03-01", "USD"),
        item("INV2", ItemType::Invoice, "9000.00", "2026-01-01", "EUR"),
    ]);
    let figures = evaluate_collection(&rules().collection_rules[0], &state, d("2026-02-15"));
    assert_eq!(
        figures.evidence.past_due_amount,
        "900.00".parse::<Decimal>().unwrap()
    );
    assert_eq!(figures.evidence.items_in_other_currencies, 1);
    assert!(!figures.in_violation(&rules().collection_rules[0]));
}

#[test]
fn a_new_violation_opens_the_plan_with_the_first_step_on_the_list() {
    let mut state = state_with(vec![invoice("INV1", "2500.00", "2026-01-01")]);
    let out = reconcile(&mut state, &key(), &rules(), d("2026-02-10"));
    assert_eq!(
        actions(&out),
        vec![
            (ActionEventKind::Created, "CALL".into(), ActionStatus::New),
            (
                ActionEventKind::Created,
                "DLTR".into(),
                ActionStatus::Future
            ),
            (
                ActionEventKind::Created,
                "HOLD".into(),
                ActionStatus::Future
            ),
        ]
    );
    let OutputEvent::Action(call) = &out[0] else {
        panic!()
    };
    assert_eq!(
        (call.rule_id.as_str(), call.template_id.as_str(), call.step),
        ("COLL-30", "STD", 1)
    );
    assert_eq!(call.condition, "COLL");
    assert_eq!(call.due_date, d("2026-02-13"));
    assert_eq!(
        call.owner.as_deref(),
        Some("ITEMCOLL"),
        "no customer master: the item's collector"
    );
    assert_eq!(call.evidence.oldest_days_past_due, 40);
    assert_eq!(call.evidence.oldest_item_id.as_deref(), Some("INV1"));
    // Nothing changed: the existing violation keeps its plan and emits nothing.
    assert!(reconcile(&mut state, &key(), &rules(), d("2026-02-11")).is_empty());
}

fn master(collector: &str) -> InputEvent {
    InputEvent::Customer(CustomerChange {
        set_id: "SHARE".into(),
        customer_id: "C1".into(),
        name: "Acme".into(),
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
    })
}

#[test]
fn the_customer_masters_collector_owns_the_action() {
    let mut state = state_with(vec![
        invoice("INV1", "2500.00", "2026-01-01"),
        master("JDOE"),
    ]);
    let out = reconcile(&mut state, &key(), &rules(), d("2026-02-10"));
    let OutputEvent::Action(call) = &out[0] else {
        panic!()
    };
    assert_eq!(call.owner.as_deref(), Some("JDOE"));
}

#[test]
fn actions_created_before_the_master_arrived_get_their_owner_when_it_does() {
    let mut state = CustomerState::default();
    let mut item = invoice("INV1", "2500.00", "2026-01-01");
    if let InputEvent::Item(i) = &mut item {
        i.collector = None;
    }
    state.apply(item);
    let out = reconcile(&mut state, &key(), &rules(), d("2026-02-10"));
    assert!(
        out.iter()
            .all(|e| matches!(e, OutputEvent::Action(a) if a.owner.is_none()))
    );
    state.apply(master("JDOE"));
    let out = reconcile(&mut state, &key(), &rules(), d("2026-02-10"));
    let assigned: Vec<(String, Option<String>, ActionStatus)> = out
        .iter()
        .map(|e| match e {
            OutputEvent::Action(a) if a.kind == ActionEventKind::OwnerAssigned => {
                (a.action_code.clone(), a.owner.clone(), a.status)
            }
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    assert_eq!(
        assigned,
        vec![
            ("CALL".into(), Some("JDOE".into()), ActionStatus::New),
            ("DLTR".into(), Some("JDOE".into()), ActionStatus::Future),
            ("HOLD".into(), Some("JDOE".into()), ActionStatus::Future),
        ]
    );
    assert!(
        reconcile(&mut state, &key(), &rules(), d("2026-02-10")).is_empty(),
        "assigned once"
    );
}

#[test]
fn ageing_alone_brings_the_customer_into_violation_on_the_right_day() {
    let rules = rules();
    let mut state = state_with(vec![invoice("INV1", "2500.00", "2026-01-01")]);
    // On 2026-01-15 the invoice is 14 days late: no violation, wake up on day 31.
    assert!(reconcile(&mut state, &key(), &rules, d("2026-01-15")).is_empty());
    let timers = wanted_timers(&state, &key(), &rules, d("2026-01-15"));
    assert_eq!(timers, vec![(AGEING_TIMER.to_string(), d("2026-02-01"))]);
    let out = reconcile(&mut state, &key(), &rules, d("2026-02-01"));
    assert_eq!(actions(&out).len(), 3);
}

#[test]
fn future_steps_move_to_the_list_on_their_day_and_automated_ones_complete() {
    let rules = rules();
    let mut state = state_with(vec![invoice("INV1", "2500.00", "2026-01-01")]);
    reconcile(&mut state, &key(), &rules, d("2026-02-10"));
    let timers = wanted_timers(&state, &key(), &rules, d("2026-02-10"));
    assert!(
        timers.contains(&("action:COLL-30-1-2".to_string(), d("2026-02-20"))),
        "{timers:?}"
    );
    assert!(
        reconcile(&mut state, &key(), &rules, d("2026-02-19")).is_empty(),
        "one day early"
    );

    let out = reconcile(&mut state, &key(), &rules, d("2026-02-20"));
    assert_eq!(
        actions(&out),
        vec![(
            ActionEventKind::MovedToList,
            "DLTR".into(),
            ActionStatus::New
        )]
    );
    let OutputEvent::Escalation(esc) = &out[0] else {
        panic!("escalation first: {out:?}")
    };
    assert_eq!(
        (esc.from_step, esc.to_step, esc.days_in_violation),
        (1, 2, 10)
    );

    // Days later with nothing in between: the automated HOLD is performed by condmon.
    let out = reconcile(&mut state, &key(), &rules, d("2026-03-05"));
    assert_eq!(
        actions(&out),
        vec![(
            ActionEventKind::Completed,
            "HOLD".into(),
            ActionStatus::SystemComplete
        )]
    );
}

#[test]
fn a_payment_closing_the_item_cancels_open_and_future_actions() {
    let rules = rules();
    let mut state = state_with(vec![invoice("INV1", "2500.00", "2026-01-01")]);
    reconcile(&mut state, &key(), &rules, d("2026-02-10"));
    state.apply(invoice("INV1", "0", "2026-01-01"));
    let out = reconcile(&mut state, &key(), &rules, d("2026-02-12"));
    assert_eq!(
        actions(&out),
        vec![
            (
                ActionEventKind::Cancelled,
                "CALL".into(),
                ActionStatus::SystemCancelled
            ),
            (
                ActionEventKind::Cancelled,
                "DLTR".into(),
                ActionStatus::SystemCancelled
            ),
            (
                ActionEventKind::Cancelled,
                "HOLD".into(),
                ActionStatus::SystemCancelled
            ),
        ]
    );
    for event in &out {
        let OutputEvent::Action(a) = event else {
            panic!()
        };
        assert_eq!(a.cancel_reason, Some(CancelReason::NoLongerInViolation));
    }
    assert!(state.violations.is_empty());
    assert!(wanted_timers(&state, &key(), &rules, d("2026-02-12")).is_empty());
}

#[test]
fn a_credit_memo_can_end_the_violation_too() {
    let rules = rules();
    let mut state = state_with(vec![invoice("INV1", "2500.00", "2026-01-01")]);
    reconcile(&mut state, &key(), &rules, d("2026-02-10"));
    state.apply(item(
        "CM1",
        ItemType::CreditMemo,
        "-1500.01",
        "2026-02-11",
        "USD",
    ));
    let out = reconcile(&mut state, &key(), &rules, d("2026-02-11"));
    assert_eq!(actions(&out).len(), 3);
    assert!(
        actions(&out)
            .iter()
            .all(|(k, _, _)| *k == ActionEventKind::Cancelled)
    );
}

#[test]
fn a_repeated_violation_gets_new_ids_and_the_same_inputs_give_the_same_ids() {
    let rules = rules();
    let run = || {
        let mut state = state_with(vec![invoice("INV1", "2500.00", "2026-01-01")]);
        let mut out = reconcile(&mut state, &key(), &rules, d("2026-02-10"));
        state.apply(invoice("INV1", "0", "2026-01-01"));
        out.extend(reconcile(&mut state, &key(), &rules, d("2026-02-11")));
        state.apply(invoice("INV2", "3000.00", "2026-01-05"));
        out.extend(reconcile(&mut state, &key(), &rules, d("2026-02-12")));
        out
    };
    let first = run();
    assert_eq!(first, run(), "deterministic");
    let ids: std::collections::HashSet<&str> = first.iter().map(|e| e.event_id()).collect();
    assert_eq!(ids.len(), first.len(), "every transition has its own id");
    let OutputEvent::Action(last) = first.last().unwrap() else {
        panic!()
    };
    assert_eq!(last.violation_id, "COLL-30-2");
}

#[test]
fn a_rule_removed_from_the_rule_set_ends_its_violations() {
    let mut state = state_with(vec![invoice("INV1", "2500.00", "2026-01-01")]);
    reconcile(&mut state, &key(), &rules(), d("2026-02-10"));
    let empty = RuleSet {
        version: 2,
        collection_rules: vec![],
        templates: rules().templates,
    };
    let out = reconcile(&mut state, &key(), &empty, d("2026-02-11"));
    assert_eq!(actions(&out).len(), 3);
    assert!(state.violations.is_empty());
}
