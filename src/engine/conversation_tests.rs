//! Conversations, promises, customer calls and partial disputes, dates explicit.

use chrono::NaiveDate;
use rust_decimal::Decimal;

use super::*;
use crate::model::{
    ActionStatus, CallAction, CallActionKind, ConversationChange, CustomerChange, CustomerSite,
    DunningDecision, FollowUp, InputEvent, ItemChange, ItemRef, PaymentApplication, PaymentChange,
    PaymentStatus, Promise, PromiseStatus, RequestKind,
};

const RULES: &str = r#"
version = 1
[options]
exclude_disputed = true
promise_grace_days = 2
broken_promise_template = "BROKEN"

[[collection_rule]]
id = "COLL"
set_id = "SHARE"
currency = "USD"
min_past_due_amount = "1000"
days_past_due = 0
template = "DUN"
owner_type = "COLLECTOR"

[[template]]
id = "DUN"
[[template.step]]
days_after = 0
action_code = "DLTR"
due_days = 1
automated = true

[[template]]
id = "BROKEN"
[[template.step]]
days_after = 0
action_code = "CALL"
due_days = 1

[[calendar]]
id = "US"
business_units = ["US001"]
holidays = ["2026-12-25"]

[[owner]]
id = "COLL1"
email = "coll1@example.com"
supervisor = "SUP1"

[[owner]]
id = "SUP1"
email = "sup1@example.com"
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

fn invoice(id: &str, open: &str) -> InputEvent {
    InputEvent::Item(ItemChange {
        accounting_date: d("2026-10-01"),
        ..ItemChange::invoice(
            &key(),
            "US001",
            id,
            open.parse().unwrap(),
            "USD",
            d("2026-11-01"),
        )
    })
}

fn master(sites: Vec<CustomerSite>) -> InputEvent {
    InputEvent::Customer(CustomerChange {
        profile_id: Some("STD".into()),
        collector: Some("COLL1".into()),
        sites,
        ..CustomerChange::new(&key(), "Acme", "USD")
    })
}

fn payment(id: &str, amount: &str, date: &str, applied_to: &[(&str, &str)]) -> InputEvent {
    InputEvent::Payment(PaymentChange {
        set_id: "SHARE".into(),
        business_unit: "US001".into(),
        customer_id: "C1".into(),
        payment_id: id.into(),
        amount: amount.parse().unwrap(),
        currency: "USD".into(),
        payment_date: d(date),
        status: PaymentStatus::Applied,
        applications: applied_to
            .iter()
            .map(|(item, amount)| PaymentApplication {
                item_id: item.to_string(),
                item_line: 0,
                amount: amount.parse().unwrap(),
            })
            .collect(),
    })
}

fn conversation(id: &str, date: &str) -> ConversationChange {
    ConversationChange {
        set_id: "SHARE".into(),
        customer_id: "C1".into(),
        conversation_id: id.into(),
        business_unit: "US001".into(),
        user: "COLL1".into(),
        conversation_date: d(date),
        contact: Some("AP clerk".into()),
        keywords: vec!["invoice".into()],
        description: None,
        follow_up: None,
        review_date: None,
        reviewed: false,
        supervisor_review: false,
        supervisor: None,
        references: vec![],
        promise: None,
        call_actions: vec![],
        deleted: false,
    }
}

fn promise(date: &str, amount: &str, items: &[&str]) -> Promise {
    Promise {
        date: d(date),
        amount: amount.parse().unwrap(),
        currency: "USD".into(),
        items: items
            .iter()
            .map(|i| ItemRef {
                item_id: i.to_string(),
                item_line: 0,
            })
            .collect(),
        reviewed: false,
        broken_reviewed: false,
    }
}

fn call(id: &str, kind: CallActionKind) -> CallAction {
    CallAction {
        id: id.into(),
        kind,
        item: None,
        amount: None,
        owner: None,
        date: None,
        notes: None,
        site: None,
        update_customer_profile: None,
    }
}

/// A customer with a 1,500 invoice (past due: in violation of COLL) and the master.
fn customer(day: &str) -> CustomerState {
    let mut state = CustomerState::default();
    state.apply(master(vec![]), d(day));
    state.apply(invoice("INV1", "1500"), d(day));
    state.apply(invoice("INV2", "300"), d(day));
    state
}

/// Applies an event (a conversation goes through `take_conversation`) and reconciles.
fn step(
    state: &mut CustomerState,
    rules: &RuleSet,
    event: InputEvent,
    day: &str,
) -> Vec<OutputEvent> {
    let mut out = match event {
        InputEvent::Conversation(c) => take_conversation(state, &key(), c, d(day)),
        other => {
            state.apply(other, d(day));
            Vec::new()
        }
    };
    out.extend(rec(state, rules, day));
    out
}

/// Saves a conversation (as the collector's tool does) and reconciles.
fn save(
    state: &mut CustomerState,
    rules: &RuleSet,
    conversation: ConversationChange,
    day: &str,
) -> Vec<OutputEvent> {
    step(state, rules, InputEvent::Conversation(conversation), day)
}

fn rec(state: &mut CustomerState, rules: &RuleSet, day: &str) -> Vec<OutputEvent> {
    reconcile(state, &key(), rules, &FxTable::default(), d(day))
}

fn statuses(out: &[OutputEvent]) -> Vec<(PromiseStatus, Decimal)> {
    out.iter()
        .filter_map(|e| match e {
            OutputEvent::PromiseStatus(p) => Some((p.status, p.paid)),
            _ => None,
        })
        .collect()
}

fn with_promise(
    state: &mut CustomerState,
    rules: &RuleSet,
    p: Promise,
    day: &str,
) -> Vec<OutputEvent> {
    let mut c = conversation("P1", day);
    c.promise = Some(p);
    save(state, rules, c, day)
}

#[test]
fn a_promise_is_kept_the_moment_a_payment_on_its_date_covers_it() {
    let rules = rules();
    let mut state = customer("2026-11-23");
    let out = with_promise(
        &mut state,
        &rules,
        promise("2026-11-25", "1500", &[]),
        "2026-11-23",
    );
    assert_eq!(statuses(&out), [(PromiseStatus::Open, Decimal::ZERO)]);
    let out = step(
        &mut state,
        &rules,
        payment("PAY1", "1500", "2026-11-25", &[("INV1", "1500")]),
        "2026-11-25",
    );
    assert_eq!(statuses(&out), [(PromiseStatus::Kept, Decimal::from(1500))]);
    let OutputEvent::PromiseStatus(kept) = out
        .iter()
        .find(|e| matches!(e, OutputEvent::PromiseStatus(_)))
        .unwrap()
    else {
        unreachable!()
    };
    assert_eq!(kept.previous_status, Some(PromiseStatus::Open));
    assert_eq!(kept.supervisor.as_deref(), Some("SUP1"));
    // Kept stays kept: no timer brings it back.
    assert!(statuses(&rec(&mut state, &rules, "2026-12-10")).is_empty());
}

#[test]
fn a_payment_on_the_last_day_of_the_grace_period_keeps_the_promise() {
    let rules = rules();
    let mut state = customer("2026-12-21");
    // Promised for Wednesday 23; two business days of grace: Thursday 24, (Friday 25 is a
    // holiday, the weekend) Monday 28.
    let out = with_promise(
        &mut state,
        &rules,
        promise("2026-12-23", "300", &[]),
        "2026-12-21",
    );
    let OutputEvent::PromiseStatus(open) = &out
        .iter()
        .find(|e| matches!(e, OutputEvent::PromiseStatus(_)))
        .cloned()
        .unwrap()
    else {
        unreachable!()
    };
    assert_eq!(open.deadline, d("2026-12-28"));
    let timers = wanted_timers(&state, &key(), &rules, &FxTable::default(), d("2026-12-21"));
    assert!(
        timers.iter().any(|(_, day)| *day == d("2026-12-29")),
        "{timers:?}"
    );
    for day in ["2026-12-24", "2026-12-28"] {
        assert!(statuses(&rec(&mut state, &rules, day)).is_empty(), "{day}");
    }
    let out = step(
        &mut state,
        &rules,
        payment("PAY1", "300", "2026-12-28", &[("INV2", "300")]),
        "2026-12-28",
    );
    assert_eq!(statuses(&out), [(PromiseStatus::Kept, Decimal::from(300))]);
    assert!(statuses(&rec(&mut state, &rules, "2026-12-29")).is_empty());
}

#[test]
fn a_partial_payment_partially_keeps_a_promise_that_breaks_if_not_covered_in_time() {
    let rules = rules();
    let mut state = customer("2026-11-23");
    with_promise(
        &mut state,
        &rules,
        promise("2026-11-25", "1000", &[]),
        "2026-11-23",
    );
    let out = step(
        &mut state,
        &rules,
        payment("PAY1", "400", "2026-11-24", &[("INV1", "400")]),
        "2026-11-24",
    );
    assert_eq!(
        statuses(&out),
        [(PromiseStatus::PartiallyKept, Decimal::from(400))]
    );
    // Deadline: Wednesday 25 + 2 business days = Friday 27. Monday, by timer: broken, 400
    // paid of 1,000.
    assert!(statuses(&rec(&mut state, &rules, "2026-11-27")).is_empty());
    let out = rec(&mut state, &rules, "2026-11-30");
    assert_eq!(
        statuses(&out),
        [(PromiseStatus::Broken, Decimal::from(400))]
    );
}

#[test]
fn a_promise_breaks_by_timer_alone_and_opens_the_broken_promise_plan_until_reviewed() {
    let rules = rules();
    let mut state = customer("2026-11-23");
    let mut c = conversation("P1", "2026-11-23");
    c.promise = Some(promise("2026-11-24", "500", &[]));
    save(&mut state, &rules, c.clone(), "2026-11-23");
    let timers = wanted_timers(&state, &key(), &rules, &FxTable::default(), d("2026-11-23"));
    // Tuesday 24 + 2 business days = Thursday 26: broken on Friday 27.
    assert!(
        timers.iter().any(|(_, day)| *day == d("2026-11-27")),
        "{timers:?}"
    );
    let out = rec(&mut state, &rules, "2026-11-27");
    assert_eq!(statuses(&out), [(PromiseStatus::Broken, Decimal::ZERO)]);
    let plan: Vec<(String, String, ActionStatus)> = out
        .iter()
        .filter_map(|e| match e {
            OutputEvent::Action(a) => Some((a.condition.clone(), a.action_code.clone(), a.status)),
            _ => None,
        })
        .collect();
    assert_eq!(plan, [("BRKP".into(), "CALL".into(), ActionStatus::New)]);
    assert!(state.violations.contains_key("BRKP@P1"));
    // The broken-promise review is done: the plan ends.
    c.promise.as_mut().unwrap().broken_reviewed = true;
    save(&mut state, &rules, c, "2026-11-30");
    assert!(!state.violations.contains_key("BRKP@P1"));
}

#[test]
fn a_promise_on_items_counts_only_payments_applied_to_them() {
    let rules = rules();
    let mut state = customer("2026-11-23");
    with_promise(
        &mut state,
        &rules,
        promise("2026-11-25", "300", &["INV2"]),
        "2026-11-23",
    );
    // Another item paid: nothing for the promise.
    let out = step(
        &mut state,
        &rules,
        payment("PAY1", "1500", "2026-11-24", &[("INV1", "1500")]),
        "2026-11-24",
    );
    assert!(statuses(&out).is_empty(), "{out:?}");
    // A payment split over both: only INV2's part counts, and it covers the promise.
    let out = step(
        &mut state,
        &rules,
        payment(
            "PAY2",
            "500",
            "2026-11-25",
            &[("INV1", "200"), ("INV2", "300")],
        ),
        "2026-11-25",
    );
    assert_eq!(statuses(&out), [(PromiseStatus::Kept, Decimal::from(300))]);
}

#[test]
fn a_returned_payment_no_longer_keeps_a_promise() {
    let rules = rules();
    let mut state = customer("2026-11-23");
    with_promise(
        &mut state,
        &rules,
        promise("2026-11-25", "300", &[]),
        "2026-11-23",
    );
    step(
        &mut state,
        &rules,
        payment("PAY1", "300", "2026-11-24", &[("INV2", "300")]),
        "2026-11-24",
    );
    let InputEvent::Payment(mut nsf) = payment("PAY1", "300", "2026-11-24", &[]) else {
        unreachable!()
    };
    nsf.status = PaymentStatus::Nsf;
    let out = step(&mut state, &rules, InputEvent::Payment(nsf), "2026-11-25");
    assert_eq!(statuses(&out), [(PromiseStatus::Open, Decimal::ZERO)]);
}

#[test]
fn a_promise_date_that_needs_follow_up_puts_an_action_on_the_owners_list() {
    let rules = rules();
    let mut state = customer("2026-11-23");
    let mut c = conversation("P1", "2026-11-23");
    c.promise = Some(promise("2026-11-30", "300", &[]));
    c.follow_up = Some(FollowUp {
        action_code: None,
        owner: "COLL1".into(),
        date: d("2026-11-26"),
        done: false,
    });
    save(&mut state, &rules, c.clone(), "2026-11-23");
    let action = &state.actions["PROMISE-P1"];
    assert_eq!(
        (
            action.status,
            action.action_code.as_str(),
            action.owner.as_deref()
        ),
        (ActionStatus::Future, "FLUP", Some("COLL1"))
    );
    rec(&mut state, &rules, "2026-11-26");
    assert_eq!(state.actions["PROMISE-P1"].status, ActionStatus::New);
    c.follow_up.as_mut().unwrap().done = true;
    save(&mut state, &rules, c, "2026-11-27");
    assert_eq!(
        state.actions["PROMISE-P1"].status,
        ActionStatus::SystemComplete
    );
}

#[test]
fn each_call_action_turns_into_what_it_names() {
    let rules = rules();
    let mut state = customer("2026-11-23");
    let mut c = conversation("CALL1", "2026-11-23");
    let item = Some(ItemRef {
        item_id: "INV2".into(),
        item_line: 0,
    });
    c.call_actions = vec![
        call("1", CallActionKind::Alert),
        CallAction {
            owner: Some("SUP1".into()),
            ..call("2", CallActionKind::Call)
        },
        CallAction {
            item: item.clone(),
            ..call("3", CallActionKind::CollectionAction)
        },
        CallAction {
            date: Some(d("2026-11-30")),
            ..call("4", CallActionKind::CollectionFollowUp)
        },
        CallAction {
            item: item.clone(),
            amount: Some(Decimal::from(50)),
            ..call("5", CallActionKind::CreditMemo)
        },
    ];
    let out = save(&mut state, &rules, c.clone(), "2026-11-23");
    let made = |id: &str| {
        let a = &state.actions[id];
        (a.action_code.clone(), a.owner.clone(), a.status)
    };
    assert_eq!(
        made("CALL-CALL1-1"),
        ("ALRT".into(), Some("COLL1".into()), ActionStatus::New)
    );
    assert_eq!(
        made("CALL-CALL1-2"),
        ("CALL".into(), Some("SUP1".into()), ActionStatus::New)
    );
    assert_eq!(
        made("CALL-CALL1-3"),
        ("COLA".into(), Some("COLL1".into()), ActionStatus::New)
    );
    assert_eq!(
        state.actions["CALL-CALL1-3"].item_key.as_deref(),
        Some("INV2#0")
    );
    assert_eq!(
        made("CALL-CALL1-4"),
        ("CFUP".into(), Some("COLL1".into()), ActionStatus::Future)
    );
    let requests: Vec<(RequestKind, Option<Decimal>)> = out
        .iter()
        .filter_map(|e| match e {
            OutputEvent::Request(r) => Some((r.kind, r.amount)),
            _ => None,
        })
        .collect();
    assert_eq!(
        requests,
        [(RequestKind::CreditMemo, Some(Decimal::from(50)))]
    );
    // Saving the call again does not do it all again.
    let again = save(&mut state, &rules, c, "2026-11-24");
    assert!(!again.iter().any(|e| matches!(e, OutputEvent::Request(_))));
    assert_eq!(
        state
            .actions
            .keys()
            .filter(|k| k.starts_with("CALL-"))
            .count(),
        4
    );
}

fn past_due(state: &CustomerState) -> Option<Decimal> {
    state
        .violations
        .get(&collection_slot("COLL", crate::model::MonitorRole::BillTo))
        .map(|v| v.evidence.past_due_amount)
}

fn dispute(amount: Option<&str>) -> ConversationChange {
    let mut c = conversation("D1", "2026-11-23");
    if let Some(amount) = amount {
        c.call_actions = vec![CallAction {
            item: Some(ItemRef {
                item_id: "INV1".into(),
                item_line: 0,
            }),
            amount: Some(amount.parse().unwrap()),
            ..call("1", CallActionKind::PartialDispute)
        }];
    }
    c
}

#[test]
fn a_partial_dispute_placed_changed_zeroed_and_deleted_moves_the_collection_condition() {
    let rules = rules();
    let mut state = customer("2026-11-23");
    rec(&mut state, &rules, "2026-11-23");
    assert_eq!(past_due(&state), Some(Decimal::from(1800)));
    // 900 of INV1 in dispute, left out of the past due (exclude_disputed): 900 < 1,000.
    save(&mut state, &rules, dispute(Some("900")), "2026-11-23");
    assert_eq!(past_due(&state), None, "no longer in violation");
    assert_eq!(state.items["INV1#0"].disputed_amount, Decimal::from(900));
    assert_eq!(state.totals["USD"].disputed, Decimal::from(900));
    // Changed to 100: 1,700 past due, in violation again.
    save(&mut state, &rules, dispute(Some("100")), "2026-11-24");
    assert_eq!(past_due(&state), Some(Decimal::from(1700)));
    // Zero ends the dispute.
    save(&mut state, &rules, dispute(Some("900")), "2026-11-25");
    save(&mut state, &rules, dispute(Some("0")), "2026-11-26");
    assert!(state.disputes.is_empty());
    assert_eq!(state.items["INV1#0"].disputed_amount, Decimal::ZERO);
    assert_eq!(past_due(&state), Some(Decimal::from(1800)));
    // Deleting the call action ends it too, and the totals always match a recomputation.
    save(&mut state, &rules, dispute(Some("500")), "2026-11-27");
    assert_eq!(state.totals["USD"].disputed, Decimal::from(500));
    save(&mut state, &rules, dispute(None), "2026-11-30");
    assert_eq!(
        state.totals.get("USD").map(|t| t.disputed),
        Some(Decimal::ZERO)
    );
    assert_eq!(state.totals, state.recomputed_totals());
    // An ERP update of the item keeps a call's dispute over the ERP's figure.
    save(&mut state, &rules, dispute(Some("700")), "2026-11-30");
    step(&mut state, &rules, invoice("INV1", "1400"), "2026-12-01");
    assert_eq!(state.items["INV1#0"].disputed_amount, Decimal::from(700));
    assert_eq!(state.totals, state.recomputed_totals());
    let report = super::inquiry::disputed_items(&[(key(), state.clone())])
        .into_iter()
        .map(|i| (i.item_id.to_string(), i.disputed_amount, i.source))
        .collect::<Vec<_>>();
    assert_eq!(report, [("INV1".into(), Decimal::from(700), "CALL")]);
}

fn exclude(id: &str, site: Option<&str>, update: Option<bool>) -> ConversationChange {
    let mut c = conversation(&format!("X{id}"), "2026-11-23");
    c.call_actions = vec![CallAction {
        site: site.map(Into::into),
        update_customer_profile: update,
        ..call(id, CallActionKind::ExcludeFromDunning)
    }];
    c
}

fn decisions(out: &[OutputEvent]) -> Vec<DunningDecision> {
    out.iter()
        .filter_map(|e| match e {
            OutputEvent::DunningDecision(d) => Some(d.decision),
            _ => None,
        })
        .collect()
}

#[test]
fn excluding_a_site_follows_the_customer_calls_rule() {
    let rules = rules();
    let site = |id: &str, profile: Option<&str>| CustomerSite {
        site_id: id.into(),
        profile_id: profile.map(Into::into),
    };
    let mut state = customer("2026-11-23");
    step(
        &mut state,
        &rules,
        master(vec![site("S1", Some("P-S1")), site("S2", None)]),
        "2026-11-23",
    );
    // A site with its own profile: that site.
    let out = save(
        &mut state,
        &rules,
        exclude("1", Some("S1"), None),
        "2026-11-23",
    );
    assert_eq!(decisions(&out), [DunningDecision::SiteExcluded]);
    assert!(state.dunning.sites_excluded.contains("S1"));
    assert!(!state.excluded_from_dunning());
    // No profile for S2 while S1 has one: condmon asks, and changes nothing.
    let asked = exclude("2", Some("S2"), None);
    let out = save(&mut state, &rules, asked, "2026-11-23");
    assert_eq!(decisions(&out), [DunningDecision::DecisionNeeded]);
    assert!(!state.excluded_from_dunning());
    // The answer "no": rejected, nothing changed.
    let out = save(
        &mut state,
        &rules,
        exclude("2", Some("S2"), Some(false)),
        "2026-11-24",
    );
    assert_eq!(decisions(&out), [DunningDecision::Rejected]);
    assert!(!state.excluded_from_dunning());
    // A new call answering "yes": the customer-level profile, the customer is excluded, and
    // its automated dunning letters are suppressed.
    let out = save(
        &mut state,
        &rules,
        exclude("3", Some("S2"), Some(true)),
        "2026-11-25",
    );
    assert_eq!(decisions(&out), [DunningDecision::CustomerProfileUpdated]);
    assert!(state.excluded_from_dunning());
    assert!(out.iter().any(
        |e| matches!(e, OutputEvent::Request(r) if r.kind == RequestKind::ExcludeFromDunning)
    ));
    // Re-including the customer ends the exclusion.
    let mut include = conversation("INC", "2026-11-26");
    include.call_actions = vec![call("1", CallActionKind::IncludeInDunning)];
    let out = save(&mut state, &rules, include, "2026-11-26");
    assert_eq!(decisions(&out), [DunningDecision::CustomerIncluded]);
    assert!(!state.excluded_from_dunning());
}

#[test]
fn the_profile_and_the_calls_decide_dunning_in_the_order_they_come() {
    let rules = rules();
    let profile = |excluded: bool, limit: &str| {
        let InputEvent::Customer(mut m) = master(vec![]) else {
            unreachable!()
        };
        m.exclude_from_dunning = excluded;
        m.credit_limit = Some(limit.parse().unwrap());
        InputEvent::Customer(m)
    };
    let mut state = CustomerState::default();
    state.apply(profile(false, "10000"), d("2026-11-23"));
    // A call excludes the customer; a master change that leaves the profile's flag alone (a
    // new credit limit) does not undo it.
    save(&mut state, &rules, exclude("1", None, None), "2026-11-23");
    assert!(state.excluded_from_dunning());
    state.apply(profile(false, "12000"), d("2026-11-24"));
    assert!(state.excluded_from_dunning(), "the call still decides");
    // The ERP applies condmon's request to the profile, then the user re-includes the
    // customer by updating the profile: back on dunning.
    state.apply(profile(true, "12000"), d("2026-11-25"));
    assert!(state.excluded_from_dunning());
    state.apply(profile(false, "12000"), d("2026-11-26"));
    assert!(!state.excluded_from_dunning(), "re-included by the profile");
    // A letter of its plan now goes out.
    let out = step(&mut state, &rules, invoice("INV1", "1500"), "2026-11-26");
    assert!(
        out.iter()
            .any(|e| matches!(e, OutputEvent::Correspondence(_)))
    );
    // The other way round: the profile excludes, a later call re-includes, and the call
    // stands until the profile's flag changes again.
    state.apply(profile(true, "12000"), d("2026-11-27"));
    assert!(state.excluded_from_dunning());
    let mut include = conversation("INC", "2026-11-27");
    include.call_actions = vec![call("1", CallActionKind::IncludeInDunning)];
    save(&mut state, &rules, include, "2026-11-27");
    assert!(
        !state.excluded_from_dunning(),
        "the call is the latest decision"
    );
    state.apply(profile(true, "15000"), d("2026-11-28"));
    assert!(
        !state.excluded_from_dunning(),
        "the profile's flag did not change"
    );
    state.apply(profile(false, "15000"), d("2026-11-29"));
    state.apply(profile(true, "15000"), d("2026-11-30"));
    assert!(
        state.excluded_from_dunning(),
        "the profile is the latest decision"
    );
}

#[test]
fn an_excluded_customer_gets_no_dunning_letter_from_its_plan() {
    let rules = rules();
    let mut state = CustomerState::default();
    state.apply(master(vec![]), d("2026-11-23"));
    let out = save(&mut state, &rules, exclude("1", None, None), "2026-11-23");
    assert_eq!(decisions(&out), [DunningDecision::CustomerExcluded]);
    let out = step(&mut state, &rules, invoice("INV1", "1500"), "2026-11-23");
    assert!(
        !out.iter()
            .any(|e| matches!(e, OutputEvent::Correspondence(_)))
    );
    assert!(out.iter().any(|e| e.outcome() == Some("letter_suppressed")));
}

#[test]
fn the_searches_and_the_promise_inquiry_find_what_needs_attention() {
    use super::inquiry::{GroupBy, Search, by_keyword, grouped, promises, search};
    let rules = rules();
    let mut state = customer("2026-11-23");
    let mut regular = conversation("R1", "2026-11-20");
    regular.review_date = Some(d("2026-11-22"));
    regular.supervisor_review = true;
    regular.keywords = vec!["Dispute".into()];
    regular.follow_up = Some(FollowUp {
        action_code: None,
        owner: "COLL1".into(),
        date: d("2026-11-25"),
        done: false,
    });
    let mut kept = conversation("P1", "2026-11-20");
    kept.promise = Some(promise("2026-11-21", "300", &[]));
    let mut broken = conversation("P2", "2026-11-20");
    broken.promise = Some(promise("2026-11-18", "200", &[]));
    for c in [regular, kept, broken] {
        save(&mut state, &rules, c, "2026-11-23");
    }
    step(
        &mut state,
        &rules,
        payment("PAY1", "300", "2026-11-21", &[("INV2", "300")]),
        "2026-11-23",
    );
    let customers = vec![(key(), state)];
    let today = d("2026-11-23");
    let ids = |s: Search| -> Vec<String> {
        search(&customers, &rules, s, today)
            .iter()
            .map(|f| f.conversation.conversation_id.clone())
            .collect()
    };
    assert_eq!(ids(Search::FollowUps), ["R1"]);
    assert_eq!(ids(Search::ReviewNeeded), ["R1"]);
    assert_eq!(ids(Search::SupervisorReviewNeeded), ["R1"]);
    assert_eq!(ids(Search::PromiseReviewNeeded), ["P1", "P2"]);
    assert_eq!(ids(Search::BrokenPromiseReviewNeeded), ["P2"]);
    let found = by_keyword(&customers, &rules, "dispute", today);
    assert_eq!(found.len(), 1);
    let rows = promises(&customers, &rules, today);
    assert_eq!(rows.len(), 2);
    let by_collector = grouped(&rows, GroupBy::Collector);
    assert_eq!(by_collector.len(), 1);
    let g = &by_collector[0];
    assert_eq!(
        (
            g.group.as_str(),
            g.kept,
            g.kept_amount,
            g.broken,
            g.broken_amount,
            g.open
        ),
        ("COLL1", 1, Decimal::from(300), 1, Decimal::from(200), 0)
    );
    let by_supervisor = grouped(&rows, GroupBy::Supervisor);
    assert_eq!(by_supervisor[0].group, "SUP1");
}

#[test]
fn a_dispute_saved_before_its_item_arrives_is_placed_when_it_does() {
    let rules = rules();
    let mut state = CustomerState::default();
    state.apply(master(vec![]), d("2026-11-23"));
    save(&mut state, &rules, dispute(Some("900")), "2026-11-23");
    assert!(state.disputes.is_empty(), "no item to dispute yet");
    step(&mut state, &rules, invoice("INV1", "1500"), "2026-11-23");
    assert_eq!(state.items["INV1#0"].disputed_amount, Decimal::from(900));
    assert_eq!(state.totals, state.recomputed_totals());
}

#[test]
fn a_promise_taken_back_ends_its_follow_up_and_a_new_one_gets_new_event_ids() {
    let rules = rules();
    let mut state = customer("2026-11-23");
    let mut c = conversation("P1", "2026-11-23");
    c.promise = Some(promise("2026-11-30", "300", &[]));
    c.follow_up = Some(FollowUp {
        action_code: None,
        owner: "COLL1".into(),
        date: d("2026-11-23"),
        done: false,
    });
    let first = save(&mut state, &rules, c.clone(), "2026-11-23");
    assert_eq!(state.actions["PROMISE-P1"].status, ActionStatus::New);
    let mut taken_back = c.clone();
    taken_back.promise = None;
    save(&mut state, &rules, taken_back, "2026-11-24");
    assert_eq!(
        state.actions["PROMISE-P1"].status,
        ActionStatus::SystemComplete,
        "no promise, no promise follow-up"
    );
    let again = save(&mut state, &rules, c, "2026-11-25");
    let ids = |out: &[OutputEvent]| -> Vec<String> {
        out.iter()
            .filter_map(|e| match e {
                OutputEvent::PromiseStatus(p) => Some(p.event_id.clone()),
                _ => None,
            })
            .collect()
    };
    assert_eq!(ids(&again).len(), 1);
    assert_ne!(ids(&first), ids(&again), "a new promise is not a duplicate");
}

#[test]
fn a_site_exclusion_waits_for_the_customer_master_to_know_the_sites() {
    let rules = rules();
    let mut state = CustomerState::default();
    let out = save(
        &mut state,
        &rules,
        exclude("1", Some("S2"), None),
        "2026-11-23",
    );
    assert!(
        decisions(&out).is_empty(),
        "nothing decided without the master"
    );
    assert!(!state.excluded_from_dunning());
    let site = |id: &str, profile: Option<&str>| CustomerSite {
        site_id: id.into(),
        profile_id: profile.map(Into::into),
    };
    let out = step(
        &mut state,
        &rules,
        master(vec![site("S1", Some("P1")), site("S2", None)]),
        "2026-11-24",
    );
    assert_eq!(decisions(&out), [DunningDecision::DecisionNeeded]);
    // Asked once: the next evaluations do not ask again.
    assert!(decisions(&rec(&mut state, &rules, "2026-11-25")).is_empty());
}

#[test]
fn a_call_action_about_an_item_not_yet_received_waits_for_it() {
    let rules = rules();
    let mut state = CustomerState::default();
    state.apply(master(vec![]), d("2026-11-23"));
    let mut c = conversation("C1", "2026-11-23");
    c.call_actions = vec![CallAction {
        item: Some(ItemRef {
            item_id: "INV7".into(),
            item_line: 0,
        }),
        ..call("1", CallActionKind::Call)
    }];
    save(&mut state, &rules, c, "2026-11-23");
    assert_eq!(state.actions["CALL-C1-1"].status, ActionStatus::New);
    step(&mut state, &rules, invoice("INV7", "100"), "2026-11-24");
    assert_eq!(state.actions["CALL-C1-1"].status, ActionStatus::New);
    // Paid off: now the item closed, and its action with it.
    step(&mut state, &rules, invoice("INV7", "0"), "2026-11-25");
    assert_eq!(
        state.actions["CALL-C1-1"].status,
        ActionStatus::SystemCancelled
    );
}

#[test]
fn a_payment_keeps_one_promise_not_two() {
    let rules = rules();
    let mut state = customer("2026-11-23");
    let mut first = conversation("P1", "2026-11-23");
    first.promise = Some(promise("2026-11-25", "300", &[]));
    let mut second = conversation("P2", "2026-11-23");
    second.promise = Some(promise("2026-11-26", "300", &[]));
    save(&mut state, &rules, first, "2026-11-23");
    save(&mut state, &rules, second, "2026-11-23");
    // 400 paid: the promise due first is kept, the next gets the 100 left.
    let out = step(
        &mut state,
        &rules,
        payment("PAY1", "400", "2026-11-24", &[("INV1", "400")]),
        "2026-11-24",
    );
    let got: Vec<(String, PromiseStatus, Decimal)> = out
        .iter()
        .filter_map(|e| match e {
            OutputEvent::PromiseStatus(p) => Some((p.conversation_id.clone(), p.status, p.paid)),
            _ => None,
        })
        .collect();
    assert_eq!(
        got,
        [
            ("P1".to_string(), PromiseStatus::Kept, Decimal::from(300)),
            (
                "P2".to_string(),
                PromiseStatus::PartiallyKept,
                Decimal::from(100)
            ),
        ]
    );
}
