//! Table-driven tests of the decisions, with dates given explicitly (no clock at all).

use chrono::NaiveDate;
use rust_decimal::Decimal;

use super::*;
use crate::model::{
    ActionEventKind, ActionStatus, ConditionEventKind, CustomerChange, InputEvent, ItemChange,
    ItemType,
};

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
        origin_item_id: None,
        origin_item_line: None,
        origin_payment_id: None,
    })
}

fn invoice(id: &str, open: &str, due: &str) -> InputEvent {
    item(id, ItemType::Invoice, open, due, "USD")
}

fn state_with(events: Vec<InputEvent>) -> CustomerState {
    let mut state = CustomerState::default();
    for e in events {
        state.apply(e, d("2026-01-01"));
    }
    state
}

fn no_fx() -> FxTable {
    FxTable::default()
}

/// Reconciles with no exchange rates.
fn rec(state: &mut CustomerState, rules: &RuleSet, today: &str) -> Vec<OutputEvent> {
    reconcile(state, &key(), rules, &no_fx(), d(today))
}

fn timers(state: &CustomerState, rules: &RuleSet, today: &str) -> Vec<(String, NaiveDate)> {
    wanted_timers(state, &key(), rules, &no_fx(), d(today))
}

fn verdict(rules: &RuleSet, state: &CustomerState, fx: &FxTable, today: &str) -> Verdict {
    let ctx = Context::new(state, rules, fx, d(today));
    evaluate_collection(&rules.collection_rules[0], &ctx)
}

fn conditions(out: &[OutputEvent]) -> Vec<(ConditionEventKind, String, Option<String>)> {
    out.iter()
        .filter_map(|e| match e {
            OutputEvent::Condition(c) => Some((c.kind, c.rule_id.clone(), c.reason.clone())),
            _ => None,
        })
        .collect()
}

fn action_events(out: &[OutputEvent]) -> Vec<&crate::model::ActionEvent> {
    out.iter()
        .filter_map(|e| match e {
            OutputEvent::Action(a) => Some(a),
            _ => None,
        })
        .collect()
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
        assert_eq!(
            verdict(&rules, &state, &no_fx(), today).is_violated(),
            expected,
            "{why}"
        );
    }
}

#[test]
fn credits_reduce_the_past_due_amount() {
    let state = state_with(vec![
        invoice("INV1", "1500.00", "2026-01-01"),
        item("CM1", ItemType::CreditMemo, "-600.00", "2026-03-01", "USD"),
    ]);
    let Verdict::Clear(evidence) = verdict(&rules(), &state, &no_fx(), "2026-02-15") else {
        panic!("900 past due is under 1000");
    };
    assert_eq!(
        evidence.past_due_amount,
        "900.00".parse::<Decimal>().unwrap()
    );
    assert_eq!(evidence.balance, Some("900.00".parse().unwrap()));
}

#[test]
fn a_new_violation_opens_the_plan_with_the_first_step_on_the_list() {
    let mut state = state_with(vec![invoice("INV1", "2500.00", "2026-01-01")]);
    let out = rec(&mut state, &rules(), "2026-02-10");
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
    assert!(rec(&mut state, &rules(), "2026-02-11").is_empty());
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
        credit_hold: false,
        country: None,
        state: None,
        exclude_from_dunning: false,
        sites: vec![],
    })
}

#[test]
fn the_customer_masters_collector_owns_the_action() {
    let mut state = state_with(vec![
        invoice("INV1", "2500.00", "2026-01-01"),
        master("JDOE"),
    ]);
    let out = rec(&mut state, &rules(), "2026-02-10");
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
    state.apply(item, d("2026-01-01"));
    let out = rec(&mut state, &rules(), "2026-02-10");
    assert!(action_events(&out).iter().all(|a| a.owner.is_none()));
    state.apply(master("JDOE"), d("2026-02-10"));
    let out = rec(&mut state, &rules(), "2026-02-10");
    // The owner is told of the action on the list now that there is one to tell.
    let told: Vec<&str> = out
        .iter()
        .filter_map(|e| match e {
            OutputEvent::Notification(n) => n.action_id.as_deref(),
            _ => None,
        })
        .collect();
    assert_eq!(told, ["COLL-30-1-1"]);
    assert_eq!(action_events(&out).len(), out.len() - 1, "{out:?}");
    let assigned: Vec<(String, Option<String>, ActionStatus)> = action_events(&out)
        .into_iter()
        .map(|a| {
            assert_eq!(a.kind, ActionEventKind::OwnerAssigned);
            (a.action_code.clone(), a.owner.clone(), a.status)
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
        rec(&mut state, &rules(), "2026-02-10").is_empty(),
        "assigned once"
    );
}

#[test]
fn ageing_alone_brings_the_customer_into_violation_on_the_right_day() {
    let rules = rules();
    let mut state = state_with(vec![invoice("INV1", "2500.00", "2026-01-01")]);
    // On 2026-01-15 the invoice is 14 days late: no violation, wake up on day 31.
    assert!(rec(&mut state, &rules, "2026-01-15").is_empty());
    let timers = timers(&state, &rules, "2026-01-15");
    assert_eq!(timers, vec![(AGEING_TIMER.to_string(), d("2026-02-01"))]);
    let out = rec(&mut state, &rules, "2026-02-01");
    assert_eq!(actions(&out).len(), 3);
}

#[test]
fn future_steps_move_to_the_list_on_their_day_and_automated_ones_complete() {
    let rules = rules();
    let mut state = state_with(vec![invoice("INV1", "2500.00", "2026-01-01")]);
    rec(&mut state, &rules, "2026-02-10");
    let timers = timers(&state, &rules, "2026-02-10");
    assert!(
        timers.contains(&("action:COLL-30-1-2".to_string(), d("2026-02-20"))),
        "{timers:?}"
    );
    assert!(
        rec(&mut state, &rules, "2026-02-19").is_empty(),
        "one day early"
    );

    let out = rec(&mut state, &rules, "2026-02-20");
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
    let out = rec(&mut state, &rules, "2026-03-05");
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
    rec(&mut state, &rules, "2026-02-10");
    state.apply(invoice("INV1", "0", "2026-01-01"), d("2026-02-11"));
    let out = rec(&mut state, &rules, "2026-02-12");
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
    for a in action_events(&out) {
        assert_eq!(a.cancel_reason, Some(CancelReason::NoLongerInViolation));
    }
    assert_eq!(
        conditions(&out),
        vec![(
            ConditionEventKind::ViolationEnded,
            "COLL-30".into(),
            Some("No Longer in Violation".into())
        )]
    );
    assert!(state.violations.is_empty());
    assert!(timers(&state, &rules, "2026-02-12").is_empty());
}

#[test]
fn a_credit_memo_can_end_the_violation_too() {
    let rules = rules();
    let mut state = state_with(vec![invoice("INV1", "2500.00", "2026-01-01")]);
    rec(&mut state, &rules, "2026-02-10");
    state.apply(
        item("CM1", ItemType::CreditMemo, "-1500.01", "2026-02-11", "USD"),
        d("2026-02-11"),
    );
    let out = rec(&mut state, &rules, "2026-02-11");
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
        let mut out = rec(&mut state, &rules, "2026-02-10");
        state.apply(invoice("INV1", "0", "2026-01-01"), d("2026-02-11"));
        out.extend(rec(&mut state, &rules, "2026-02-11"));
        state.apply(invoice("INV2", "3000.00", "2026-01-05"), d("2026-02-12"));
        out.extend(rec(&mut state, &rules, "2026-02-12"));
        out
    };
    let first = run();
    assert_eq!(first, run(), "deterministic");
    let ids: std::collections::HashSet<&str> = first.iter().map(|e| e.event_id()).collect();
    assert_eq!(ids.len(), first.len(), "every transition has its own id");
    let last = action_events(&first).pop().unwrap();
    assert_eq!(last.violation_id, "COLL-30-2");
}

#[test]
fn a_rule_removed_from_the_rule_set_ends_its_violations() {
    let mut state = state_with(vec![invoice("INV1", "2500.00", "2026-01-01")]);
    rec(&mut state, &rules(), "2026-02-10");
    let empty = RuleSet {
        version: 2,
        collection_rules: vec![],
        ..rules()
    };
    let out = rec(&mut state, &empty, "2026-02-11");
    assert_eq!(actions(&out).len(), 3);
    assert!(state.violations.is_empty());
}

/// Rule schedules (the chapter's "rules scheduled to be monitored on the current day"): a
/// violation of a rule scheduled on Mondays opens its plan on the first Monday on or after it
/// began, by timer with no input; a Monday passed while nothing ran is caught up the next
/// time; a payment ends the plan at once; the lowest level wins whatever its schedule.
#[test]
fn a_scheduled_rule_opens_its_plan_on_its_run_day_and_catches_up_a_missed_one() {
    let scheduled = format!(
        "{RULES}\n[[schedule]]\nid = \"MONDAYS\"\ncadence = {{ kind = \"WEEKLY\", weekdays = [\"MON\"] }}\n"
    )
    .replace(
        "owner_type = \"COLLECTOR\"\n",
        "owner_type = \"COLLECTOR\"\nschedule = \"MONDAYS\"\n",
    );
    let rules = RuleSet::parse(&scheduled, "test").unwrap();
    let opened = |out: &[OutputEvent]| {
        conditions(out)
            .iter()
            .any(|(kind, _, _)| *kind == ConditionEventKind::ViolationOpened)
    };
    // 45 days past due on Wednesday 2026-12-02: violated, but the next run day is Monday.
    let mut state = state_with(vec![invoice("INV1", "2000.00", "2026-10-18")]);
    let out = rec(&mut state, &rules, "2026-12-02");
    assert!(!opened(&out) && state.violations.is_empty(), "{out:?}");
    assert_eq!(state.waiting["COLL|BILL_TO"].since, d("2026-12-02"));
    assert!(
        timers(&state, &rules, "2026-12-02").contains(&(AGEING_TIMER.into(), d("2026-12-07"))),
        "a timer for Monday"
    );
    assert!(
        !opened(&rec(&mut state, &rules, "2026-12-04")),
        "Friday: still waiting"
    );
    // Monday's timer, no input: the plan opens, dated Monday.
    let out = rec(&mut state, &rules, "2026-12-07");
    assert!(opened(&out));
    assert_eq!(action_events(&out)[0].action_date, d("2026-12-07"));
    assert!(state.waiting.is_empty());

    // Monday missed (nothing ran from Friday to Tuesday): caught up on Tuesday.
    let mut state = state_with(vec![invoice("INV1", "2000.00", "2026-10-18")]);
    rec(&mut state, &rules, "2026-12-04");
    let out = rec(&mut state, &rules, "2026-12-08");
    assert!(opened(&out), "the missed Monday is caught up");
    assert_eq!(action_events(&out)[0].action_date, d("2026-12-08"));

    // A violation that ends before its run day never opens; one that ends after, ends at
    // once (a Wednesday payment ends the plan on Wednesday, not on the next Monday).
    let mut state = state_with(vec![invoice("INV1", "2000.00", "2026-10-18")]);
    rec(&mut state, &rules, "2026-12-02");
    state.apply(invoice("INV1", "0", "2026-10-18"), d("2026-12-03"));
    rec(&mut state, &rules, "2026-12-03");
    assert!(state.waiting.is_empty());
    assert!(!opened(&rec(&mut state, &rules, "2026-12-07")));
    let mut state = state_with(vec![invoice("INV1", "2000.00", "2026-10-18")]);
    rec(&mut state, &rules, "2026-12-07");
    assert_eq!(state.violations.len(), 1);
    state.apply(invoice("INV1", "0", "2026-10-18"), d("2026-12-09"));
    let out = rec(&mut state, &rules, "2026-12-09");
    assert!(
        conditions(&out)
            .iter()
            .any(|(kind, _, _)| *kind == ConditionEventKind::ViolationEnded),
        "ended on Wednesday"
    );

    // The lowest level wins whatever its schedule: a customer-level rule on Mondays keeps the
    // setID rule (no schedule) from opening on a Wednesday.
    let levels = format!(
        "{RULES}\n[[schedule]]\nid = \"MONDAYS\"\ncadence = {{ kind = \"WEEKLY\", weekdays = [\"MON\"] }}\n\
         [[collection_rule]]\nid = \"COLL-C1\"\nset_id = \"SHARE\"\ncustomer_id = \"C1\"\n\
         currency = \"USD\"\nmin_past_due_amount = \"1000.00\"\ndays_past_due = 30\n\
         template = \"STD\"\nowner_type = \"COLLECTOR\"\nschedule = \"MONDAYS\"\n"
    );
    let rules = RuleSet::parse(&levels, "test").unwrap();
    let mut state = state_with(vec![invoice("INV1", "2000.00", "2026-10-18")]);
    assert!(!opened(&rec(&mut state, &rules, "2026-12-02")));
    let out = rec(&mut state, &rules, "2026-12-07");
    assert_eq!(
        conditions(&out)[0].1,
        "COLL-C1",
        "the customer's own rule, on Monday"
    );
}

#[test]
fn a_rule_naming_an_unknown_schedule_or_a_bad_cadence_is_refused() {
    let bad = format!(
        "{RULES}\n[[schedule]]\nid = \"S\"\ncadence = {{ kind = \"WEEKLY\", weekdays = [\"MONDAY\"] }}\n\
         [[schedule]]\nid = \"M\"\ncadence = {{ kind = \"MONTHLY\", day = 32 }}\n"
    )
    .replace(
        "owner_type = \"COLLECTOR\"\n",
        "owner_type = \"COLLECTOR\"\nschedule = \"NOPE\"\n",
    );
    let message = RuleSet::parse(&bad, "test").unwrap_err().to_string();
    for expected in [
        "schedule `NOPE` is not defined",
        "`MONDAY` is not a day name",
        "day 32 of the month is not 1 to 31",
    ] {
        assert!(message.contains(expected), "{expected}: {message}");
    }
}

/// A flag whose reasons change and change back is three events with three ids: the third is
/// not a repeat of the first (a consumer that drops repeated ids would lose it).
#[test]
fn a_blocked_flag_whose_reasons_change_back_gets_a_new_event_id() {
    let rules = rules();
    let mut state = state_with(vec![item(
        "E1",
        ItemType::Invoice,
        "2000.00",
        "2026-10-18",
        "EUR",
    )]);
    let blocked_ids = |out: &[OutputEvent]| -> Vec<String> {
        out.iter()
            .filter_map(|e| match e {
                OutputEvent::Condition(c) if c.kind == ConditionEventKind::EvaluationBlocked => {
                    Some(c.event_id.clone())
                }
                _ => None,
            })
            .collect()
    };
    let first = blocked_ids(&rec(&mut state, &rules, "2026-12-02"));
    state.apply(
        item("G1", ItemType::Invoice, "10.00", "2026-10-18", "GBP"),
        d("2026-12-03"),
    );
    let second = blocked_ids(&rec(&mut state, &rules, "2026-12-03"));
    state.apply(
        item("G1", ItemType::Invoice, "0", "2026-10-18", "GBP"),
        d("2026-12-04"),
    );
    let third = blocked_ids(&rec(&mut state, &rules, "2026-12-04"));
    assert_eq!((first.len(), second.len(), third.len()), (1, 1, 1));
    assert_ne!(first, third, "the same reasons again, a new event");
    assert_ne!(first, second);
}
