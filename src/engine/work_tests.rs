//! Working actions: business calendars, notifications, commands and what performing each
//! action code does. Dates explicit, no clock.

use chrono::NaiveDate;
use rust_decimal::Decimal;

use super::*;
use crate::model::{
    ActionCommand, ActionEvent, ActionEventKind, ActionStatus, CommandKind, CommandResultEvent,
    CorrespondenceEvent, CorrespondenceKind, CustomerChange, Delivery, InputEvent, ItemChange,
    ItemType, NotificationKind, RequestKind, SUPPRESSED_EXCLUDED,
};

/// A plan of one proposed call due in 2 business days, reminding the owner the day before it
/// is due, the supervisor on the day and the specialist two days after; then a dunning letter.
const RULES: &str = r#"
version = 1
[[collection_rule]]
id = "COLL"
set_id = "SHARE"
currency = "USD"
min_past_due_amount = "100"
days_past_due = 0
template = "STD"
owner_type = "COLLECTOR"

[[template]]
id = "STD"
[[template.step]]
days_after = 0
action_code = "CALL"
due_days = 2
notify_owner_days = -1
notify_supervisor_days = 0
notify_specialist_days = 2
[[template.step]]
days_after = 10
action_code = "DLTR"
action_parameter = "DUN1"
due_days = 1

[[calendar]]
id = "US"
business_units = ["US001"]
holidays = ["2026-12-25"]

[[owner]]
id = "COLL1"
name = "Casey Collector"
email = "casey@example.com"
supervisor = "SUP1"

[[owner]]
id = "SUP1"
email = "sup@example.com"

[[owner]]
id = "COLL2"
email = "coll2@example.com"
supervisor = "SUP1"
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

fn invoice(id: &str, open: &str) -> ItemChange {
    ItemChange {
        accounting_date: d("2026-10-01"),
        ar_specialist: Some("SPEC1".into()),
        ..ItemChange::invoice(
            &key(),
            "US001",
            id,
            open.parse().unwrap(),
            "USD",
            d("2026-11-01"),
        )
    }
}

fn customer(excluded: bool) -> CustomerChange {
    CustomerChange {
        collector: Some("COLL1".into()),
        country: Some("US".into()),
        state: Some("NY".into()),
        exclude_from_dunning: excluded,
        ..CustomerChange::new(&key(), "Acme", "USD")
    }
}

/// A customer with a past-due invoice whose plan opened on `day`.
fn violated(rules: &RuleSet, day: &str) -> (CustomerState, Vec<OutputEvent>) {
    let mut state = CustomerState::default();
    state.apply(InputEvent::Customer(customer(false)), d(day));
    state.apply(InputEvent::Item(invoice("INV1", "500")), d(day));
    let out = rec(&mut state, rules, day);
    (state, out)
}

fn rec(state: &mut CustomerState, rules: &RuleSet, today: &str) -> Vec<OutputEvent> {
    reconcile(state, &key(), rules, &FxTable::default(), d(today))
}

/// A command with an id of its own (a repeated id is a redelivery, answered once).
fn command(kind: CommandKind, by: &str, ids: &[&str]) -> ActionCommand {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(1);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    ActionCommand::new(
        &format!("{}-{by}-{n}", kind.as_str()),
        &key(),
        by,
        kind,
        ids,
    )
}

/// Executes the command and reconciles, as the operator does.
fn run(
    state: &mut CustomerState,
    rules: &RuleSet,
    c: &ActionCommand,
    today: &str,
) -> Vec<OutputEvent> {
    let mut out = execute(state, &key(), rules, c, d(today));
    out.extend(rec(state, rules, today));
    out
}

fn result(out: &[OutputEvent]) -> &CommandResultEvent {
    out.iter()
        .find_map(|e| match e {
            OutputEvent::CommandResult(r) => Some(r),
            _ => None,
        })
        .expect("every command is answered")
}

fn notifications(out: &[OutputEvent]) -> Vec<(NotificationKind, String)> {
    out.iter()
        .filter_map(|e| match e {
            OutputEvent::Notification(n) => Some((n.kind, n.recipient.clone())),
            _ => None,
        })
        .collect()
}

fn action_events(out: &[OutputEvent]) -> Vec<&ActionEvent> {
    out.iter()
        .filter_map(|e| match e {
            OutputEvent::Action(a) => Some(a),
            _ => None,
        })
        .collect()
}

fn letters(out: &[OutputEvent]) -> Vec<&CorrespondenceEvent> {
    out.iter()
        .filter_map(|e| match e {
            OutputEvent::Correspondence(c) => Some(c),
            _ => None,
        })
        .collect()
}

fn requests(out: &[OutputEvent]) -> Vec<(RequestKind, Option<String>)> {
    out.iter()
        .filter_map(|e| match e {
            OutputEvent::Request(r) => Some((r.kind, r.code.clone())),
            _ => None,
        })
        .collect()
}

const CALL: &str = "COLL-1-1";
const DLTR: &str = "COLL-1-2";

#[test]
fn due_dates_count_business_days_across_a_weekend_and_a_holiday() {
    // Wednesday 2026-12-23 + 2 business days: Thursday 24, (Friday 25 is a holiday, then the
    // weekend) Monday 28.
    let (state, _) = violated(&rules(), "2026-12-23");
    assert_eq!(state.actions[CALL].due_date, d("2026-12-28"));
    // The letter on 2027-01-02 (a Saturday) + 1 business day: Monday 2027-01-04.
    assert_eq!(state.actions[DLTR].action_date, d("2027-01-02"));
    assert_eq!(state.actions[DLTR].due_date, d("2027-01-04"));
}

#[test]
fn a_business_unit_without_a_calendar_skips_only_weekends() {
    let rules = rules();
    let mut state = CustomerState::default();
    let mut item = invoice("INV1", "500");
    item.business_unit = "FR001".into();
    state.apply(InputEvent::Item(item), d("2026-12-24"));
    rec(&mut state, &rules, "2026-12-24");
    // Thursday + 2 business days: Friday 25 (no holiday here), Monday 28.
    assert_eq!(state.actions[CALL].due_date, d("2026-12-28"));
}

#[test]
fn the_owner_is_told_of_a_new_action_and_reminded_before_on_and_after_its_due_date() {
    let rules = rules();
    // Monday 2026-11-23: the call is due Wednesday 25.
    let (mut state, out) = violated(&rules, "2026-11-23");
    assert_eq!(
        notifications(&out),
        vec![(NotificationKind::NewAction, "COLL1".into())]
    );
    let OutputEvent::Notification(new) = out
        .iter()
        .find(|e| matches!(e, OutputEvent::Notification(_)))
        .unwrap()
    else {
        unreachable!()
    };
    assert_eq!(new.recipient_email.as_deref(), Some("casey@example.com"));
    assert_eq!(new.link, "/customers/SHARE/C1/actions/COLL-1-1");
    assert_eq!(new.past_due_amount, Decimal::from(500));
    assert_eq!(new.due_date, d("2026-11-25"));
    // Time alone brings the reminders: the next is the owner's, one business day before.
    let timers = wanted_timers(&state, &key(), &rules, &FxTable::default(), d("2026-11-23"));
    assert!(
        timers.iter().any(|(_, date)| *date == d("2026-11-24")),
        "{timers:?}"
    );
    let expected = [
        (
            "2026-11-24",
            vec![(NotificationKind::OwnerReminder, "COLL1")],
        ),
        (
            "2026-11-25",
            vec![(NotificationKind::SupervisorReminder, "SUP1")],
        ),
        ("2026-11-26", vec![]),
        // Two business days after Wednesday 25: Friday 27.
        (
            "2026-11-27",
            vec![(NotificationKind::SpecialistReminder, "SPEC1")],
        ),
        ("2026-11-30", vec![]),
    ];
    for (day, wanted) in expected {
        let out = rec(&mut state, &rules, day);
        let wanted: Vec<(NotificationKind, String)> = wanted
            .into_iter()
            .map(|(k, r)| (k, r.to_string()))
            .collect();
        assert_eq!(notifications(&out), wanted, "on {day}");
    }
}

#[test]
fn a_completed_action_is_not_reminded() {
    let rules = rules();
    let (mut state, _) = violated(&rules, "2026-11-23");
    let mut done = command(CommandKind::Perform, "COLL1", &[CALL]);
    done.complete = Some(true);
    let out = run(&mut state, &rules, &done, "2026-11-23");
    assert!(result(&out).accepted, "{out:?}");
    assert_eq!(state.actions[CALL].status, ActionStatus::Complete);
    for day in ["2026-11-24", "2026-11-25", "2026-11-27"] {
        assert!(notifications(&rec(&mut state, &rules, day)).is_empty());
    }
}

#[test]
fn set_pending_by_the_owner_and_not_by_anyone_else() {
    let rules = rules();
    let (mut state, _) = violated(&rules, "2026-11-23");
    let out = run(
        &mut state,
        &rules,
        &command(CommandKind::SetPending, "COLL2", &[CALL]),
        "2026-11-23",
    );
    let r = result(&out);
    assert!(!r.accepted);
    assert_eq!(
        r.reasons,
        vec!["action COLL-1-1: only its owner (COLL1) or creator may change it; not COLL2"]
    );
    assert_eq!(
        state.actions[CALL].status,
        ActionStatus::New,
        "nothing changed"
    );

    let out = run(
        &mut state,
        &rules,
        &command(CommandKind::SetPending, "COLL1", &[CALL]),
        "2026-11-23",
    );
    assert!(result(&out).accepted);
    assert_eq!(
        action_events(&out)[0].previous_status,
        Some(ActionStatus::New)
    );
    assert_eq!(state.actions[CALL].status, ActionStatus::Pending);
    let again = run(
        &mut state,
        &rules,
        &command(CommandKind::SetPending, "COLL1", &[CALL]),
        "2026-11-23",
    );
    assert_eq!(
        result(&again).reasons,
        vec!["action COLL-1-1 is Pending already"]
    );
}

#[test]
fn set_future_postpones_an_action_until_its_new_date() {
    let rules = rules();
    let (mut state, _) = violated(&rules, "2026-11-23");
    let mut postpone = command(CommandKind::SetFuture, "COLL1", &[CALL]);
    postpone.action_date = Some(d("2026-11-23"));
    let out = run(&mut state, &rules, &postpone, "2026-11-23");
    assert_eq!(
        result(&out).reasons,
        vec!["a postponed action needs a date after today (2026-11-23), not 2026-11-23"]
    );
    postpone.command_id = format!("{}-corrected", postpone.command_id);
    postpone.action_date = Some(d("2026-11-30"));
    let out = run(&mut state, &rules, &postpone, "2026-11-23");
    assert!(result(&out).accepted);
    let call = &state.actions[CALL];
    assert_eq!(call.status, ActionStatus::Future);
    // Monday 30 + 2 business days.
    assert_eq!(call.due_date, d("2026-12-02"));
    rec(&mut state, &rules, "2026-11-27");
    assert_eq!(state.actions[CALL].status, ActionStatus::Future, "not yet");
    let out = rec(&mut state, &rules, "2026-11-30");
    let back = action_events(&out);
    assert_eq!(back[0].kind, ActionEventKind::MovedToList);
    assert_eq!(state.actions[CALL].status, ActionStatus::New);
    // A postponed action coming back is not an escalation.
    assert!(!out.iter().any(|e| matches!(e, OutputEvent::Escalation(_))));
}

#[test]
fn cancel_is_final() {
    let rules = rules();
    let (mut state, _) = violated(&rules, "2026-11-23");
    let out = run(
        &mut state,
        &rules,
        &command(CommandKind::Cancel, "COLL1", &[CALL]),
        "2026-11-23",
    );
    assert!(result(&out).accepted);
    let call = &state.actions[CALL];
    assert_eq!(call.status, ActionStatus::Cancelled);
    assert_eq!(call.cancel_reason, Some(CancelReason::OperatorCancelled));
    assert_eq!(call.closed_on, Some(d("2026-11-23")));
    let out = run(
        &mut state,
        &rules,
        &command(CommandKind::SetPending, "COLL1", &[CALL]),
        "2026-11-24",
    );
    assert_eq!(
        result(&out).reasons,
        vec!["action COLL-1-1 is Cancelled and cannot change any more"]
    );
}

#[test]
fn a_supervisor_reassigns_in_bulk_and_both_owners_are_told() {
    let rules = rules();
    let (mut state, _) = violated(&rules, "2026-11-23");
    let mut reassign = command(CommandKind::Reassign, "SUP1", &[CALL, DLTR]);
    reassign.owner = Some("COLL2".into());
    let out = run(&mut state, &rules, &reassign, "2026-11-23");
    assert!(result(&out).accepted, "{out:?}");
    assert_eq!(state.actions[CALL].owner.as_deref(), Some("COLL2"));
    assert_eq!(state.actions[DLTR].owner.as_deref(), Some("COLL2"));
    assert_eq!(
        notifications(&out),
        vec![
            (NotificationKind::Reassigned, "COLL2".into()),
            (NotificationKind::ReassignedAway, "COLL1".into()),
            (NotificationKind::Reassigned, "COLL2".into()),
            (NotificationKind::ReassignedAway, "COLL1".into()),
        ],
        "no second 'new action' for the call: the reassignment said it"
    );
    // When the letter reaches the list, its new owner is told (the call's reminders, all
    // due by now, go to the new owner and the new owner's supervisor too).
    let out = rec(&mut state, &rules, "2026-12-03");
    let told: Vec<(NotificationKind, String, String)> = out
        .iter()
        .filter_map(|e| match e {
            OutputEvent::Notification(n) => Some((
                n.kind,
                n.recipient.clone(),
                n.action_id.clone().unwrap_or_default(),
            )),
            _ => None,
        })
        .collect();
    assert_eq!(
        told,
        vec![
            (NotificationKind::OwnerReminder, "COLL2".into(), CALL.into()),
            (
                NotificationKind::SupervisorReminder,
                "SUP1".into(),
                CALL.into()
            ),
            (
                NotificationKind::SpecialistReminder,
                "SPEC1".into(),
                CALL.into()
            ),
            (NotificationKind::NewAction, "COLL2".into(), DLTR.into()),
        ]
    );
}

#[test]
fn reassignment_is_refused_to_strangers_and_to_unknown_owners() {
    let rules = rules();
    let (mut state, _) = violated(&rules, "2026-11-23");
    let mut reassign = command(CommandKind::Reassign, "COLL2", &[CALL]);
    reassign.owner = Some("NOBODY".into());
    let out = run(&mut state, &rules, &reassign, "2026-11-23");
    assert_eq!(
        result(&out).reasons,
        vec![
            "owner `NOBODY` is not in the owner directory",
            "action COLL-1-1: only its owner (COLL1) or creator may change it, or the owner's supervisor reassign it; not COLL2",
        ]
    );
    let out = run(
        &mut state,
        &rules,
        &command(CommandKind::Reassign, "COLL1", &["NOPE"]),
        "2026-11-23",
    );
    assert_eq!(
        result(&out).reasons,
        vec![
            "name the new owner (`owner`)",
            "action NOPE does not exist for this customer"
        ]
    );
    assert_eq!(state.actions[CALL].owner.as_deref(), Some("COLL1"));
}

#[test]
fn future_actions_can_be_cancelled_or_redated_until_they_reach_the_list() {
    let rules = rules();
    let (mut state, _) = violated(&rules, "2026-11-23");
    let mut redate = command(CommandKind::RedateFuture, "COLL1", &[DLTR]);
    redate.action_date = Some(d("2026-12-07"));
    let out = run(&mut state, &rules, &redate, "2026-11-23");
    assert!(result(&out).accepted);
    assert_eq!(action_events(&out)[0].kind, ActionEventKind::Redated);
    assert_eq!(state.actions[DLTR].action_date, d("2026-12-07"));
    assert_eq!(state.actions[DLTR].due_date, d("2026-12-08"));
    // The call is on the list: no longer a future action.
    let mut redate_call = command(CommandKind::RedateFuture, "COLL1", &[CALL]);
    redate_call.action_date = Some(d("2026-12-07"));
    let out = run(&mut state, &rules, &redate_call, "2026-11-23");
    assert_eq!(
        result(&out).reasons,
        vec![
            "action COLL-1-1 is already on the action list: it can no longer be edited as a future action"
        ]
    );
    let out = run(
        &mut state,
        &rules,
        &command(CommandKind::CancelFuture, "COLL1", &[DLTR]),
        "2026-11-24",
    );
    assert!(result(&out).accepted);
    assert_eq!(state.actions[DLTR].status, ActionStatus::Cancelled);
    assert_eq!(
        state.actions[DLTR].cancel_reason,
        Some(CancelReason::OperatorCancelled)
    );
    // Nothing comes on the old or the new date.
    assert!(letters(&rec(&mut state, &rules, "2026-12-07")).is_empty());
    assert_eq!(state.actions[DLTR].status, ActionStatus::Cancelled);
}

#[test]
fn an_item_action_added_by_hand_goes_to_its_owner_and_ends_with_its_item() {
    let rules = rules();
    let (mut state, _) = violated(&rules, "2026-11-23");
    let mut add = command(CommandKind::AddItemAction, "SPEC1", &[]);
    add.owner = Some("COLL2".into());
    add.action_code = Some("ALRT".into());
    add.item_id = Some("INV9".into());
    add.item_line = Some(0);
    let out = run(&mut state, &rules, &add, "2026-11-23");
    assert_eq!(
        result(&out).reasons,
        vec!["item INV9 line 0 is not open for this customer"]
    );
    // Corrected, it is another command (a redelivered id would not be taken again).
    add.command_id = format!("{}-corrected", add.command_id);
    add.item_id = Some("INV1".into());
    add.due_days = Some(3);
    add.notify_owner_days = Some(0);
    let out = run(&mut state, &rules, &add, "2026-11-23");
    let r = result(&out);
    assert!(r.accepted);
    assert_eq!(r.action_ids, vec!["ITEM-1"]);
    let added = &state.actions["ITEM-1"];
    assert_eq!(added.created_by.as_deref(), Some("SPEC1"));
    assert_eq!(added.due_date, d("2026-11-26"));
    assert_eq!(
        notifications(&out),
        vec![(NotificationKind::NewAction, "COLL2".into())]
    );
    // Its creator may change it too.
    let out = run(
        &mut state,
        &rules,
        &command(CommandKind::SetPending, "SPEC1", &["ITEM-1"]),
        "2026-11-24",
    );
    assert!(result(&out).accepted);
    let mut paid = invoice("INV1", "0");
    paid.open_amount = Decimal::ZERO;
    state.apply(InputEvent::Item(paid), d("2026-11-25"));
    rec(&mut state, &rules, "2026-11-25");
    assert_eq!(
        state.actions["ITEM-1"].status,
        ActionStatus::SystemCancelled
    );
    assert_eq!(
        state.actions["ITEM-1"].cancel_reason,
        Some(CancelReason::ItemClosed)
    );
}

/// A plan of one step of `code` (proposed or automated), then a call 30 days later.
fn one_step(code: &str, parameter: Option<&str>, automated: bool) -> RuleSet {
    let start = RULES.find("[[template]]").unwrap();
    let end = RULES.find("[[calendar]]").unwrap();
    let template = format!(
        "[[template]]\nid = \"STD\"\n[[template.step]]\ndays_after = 0\naction_code = \"{code}\"\ndue_days = 1\nautomated = {automated}\n{}[[template.step]]\ndays_after = 30\naction_code = \"CALL\"\ndue_days = 1\n\n",
        parameter.map_or(String::new(), |p| format!("action_parameter = \"{p}\"\n"))
    );
    let text = format!("{}{template}{}", &RULES[..start], &RULES[end..]);
    RuleSet::parse(&text, "one step").unwrap()
}

fn perform(state: &mut CustomerState, rules: &RuleSet, complete: Option<bool>) -> Vec<OutputEvent> {
    let mut c = command(CommandKind::Perform, "COLL1", &[CALL]);
    c.complete = complete;
    run(state, rules, &c, "2026-11-23")
}

#[test]
fn hold_and_referral_ask_the_erp_and_complete() {
    for (code, kind) in [
        ("HOLD", RequestKind::CustomerHold),
        ("REFR", RequestKind::Referral),
    ] {
        let rules = one_step(code, Some("CODE7"), false);
        let (mut state, _) = violated(&rules, "2026-11-23");
        let out = perform(&mut state, &rules, None);
        assert!(result(&out).accepted, "{code}: {out:?}");
        assert_eq!(requests(&out), vec![(kind, Some("CODE7".into()))]);
        assert_eq!(state.actions[CALL].status, ActionStatus::Complete, "{code}");
        assert_eq!(state.actions[CALL].performed_by.as_deref(), Some("COLL1"));
    }
}

#[test]
fn alerts_calls_reviews_and_user_actions_complete_or_stay_pending_as_the_owner_says() {
    for code in ["ALRT", "CALL", "DNGD", "VISIT"] {
        let rules = one_step(code, None, false);
        let (mut state, _) = violated(&rules, "2026-11-23");
        let out = perform(&mut state, &rules, None);
        assert_eq!(
            result(&out).reasons,
            vec![format!(
                "action COLL-1-1 ({code}): say whether it is done (`complete` true or false)"
            )]
        );
        let out = perform(&mut state, &rules, Some(false));
        assert!(result(&out).accepted);
        assert_eq!(state.actions[CALL].status, ActionStatus::Pending, "{code}");
        let review = requests(&out);
        if code == "DNGD" {
            assert_eq!(review, vec![(RequestKind::CreditReview, None)]);
        } else {
            assert!(review.is_empty(), "{code}");
        }
        perform(&mut state, &rules, Some(true));
        assert_eq!(state.actions[CALL].status, ActionStatus::Complete, "{code}");
    }
}

#[test]
fn letters_go_to_the_correspondence_topic_with_the_owners_choices() {
    for (code, kind) in [
        ("DLTR", CorrespondenceKind::DunningLetter),
        ("OLTR", CorrespondenceKind::FollowUpLetter),
        ("STMT", CorrespondenceKind::Statement),
    ] {
        let rules = one_step(code, Some("L1"), false);
        let (mut state, _) = violated(&rules, "2026-11-23");
        let mut c = command(CommandKind::Perform, "COLL1", &[CALL]);
        c.letter_code = Some("L2".into());
        c.contact_id = Some("CONTACT9".into());
        c.delivery_method = Some("EMAIL".into());
        let out = run(&mut state, &rules, &c, "2026-11-23");
        let sent = letters(&out);
        assert_eq!(sent.len(), 1, "{code}");
        assert_eq!(sent[0].kind, kind);
        assert_eq!(sent[0].letter_code.as_deref(), Some("L2"));
        assert_eq!(sent[0].contact_id.as_deref(), Some("CONTACT9"));
        assert_eq!(sent[0].past_due_amount, Decimal::from(500));
        let done = &state.actions[CALL];
        assert_eq!(done.status, ActionStatus::Complete);
        assert_eq!(done.delivery_method.as_deref(), Some("EMAIL"));
    }
}

/// COLL1 adds a dunning-letter action (`letter_code`) to INV1: `ITEM-<n>`.
fn add_dunning_item_action(
    state: &mut CustomerState,
    rules: &RuleSet,
    letter_code: &str,
    on: &str,
) {
    let mut add = command(CommandKind::AddItemAction, "COLL1", &[]);
    add.owner = Some("COLL1".into());
    add.action_code = Some("DLTR".into());
    add.action_parameter = Some(letter_code.into());
    add.item_id = Some("INV1".into());
    add.item_line = Some(0);
    run(state, rules, &add, on);
}

#[test]
fn only_the_most_recent_letter_of_a_kind_is_produced() {
    let rules = one_step("DLTR", Some("L1"), false);
    let (mut state, _) = violated(&rules, "2026-11-23");
    // The owner asks for a letter with the next run...
    let mut later = command(CommandKind::Perform, "COLL1", &[CALL]);
    later.delivery = Some(Delivery::NextRun);
    let out = run(&mut state, &rules, &later, "2026-11-23");
    assert!(letters(&out).is_empty(), "waits for the next run");
    assert_eq!(
        state.actions[CALL].result.as_deref(),
        Some("letter requested with the next run")
    );
    // ...and before it, an item action for another dunning letter is performed now.
    add_dunning_item_action(&mut state, &rules, "L3", "2026-11-23");
    let out = run(
        &mut state,
        &rules,
        &command(CommandKind::Perform, "COLL1", &["ITEM-1"]),
        "2026-11-23",
    );
    let sent = letters(&out);
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].action_id, "ITEM-1");
    assert_eq!(sent[0].letter_code.as_deref(), Some("L3"));
    assert_eq!(sent[0].superseded_action_ids, vec![CALL.to_string()]);
    assert_eq!(
        state.actions[CALL].result.as_deref(),
        Some("letter superseded by action ITEM-1")
    );
    // The superseded action's history says so, as an event.
    assert!(action_events(&out).iter().any(|a| a.action_id == CALL
        && a.kind == ActionEventKind::ResultChanged
        && a.result.as_deref() == Some("letter superseded by action ITEM-1")));
    // The next run has nothing left to send.
    assert!(letters(&rec(&mut state, &rules, "2026-11-24")).is_empty());
}

#[test]
fn the_most_recent_action_s_letter_wins_whatever_order_they_are_performed_in() {
    let rules = one_step("DLTR", Some("L1"), false);
    let (mut state, _) = violated(&rules, "2026-11-23");
    // A newer dunning action (added after the plan's) is performed first, with the next run...
    add_dunning_item_action(&mut state, &rules, "L3", "2026-11-23");
    assert!(state.actions["ITEM-1"].created_seq > state.actions[CALL].created_seq);
    let mut newer = command(CommandKind::Perform, "COLL1", &["ITEM-1"]);
    newer.delivery = Some(Delivery::NextRun);
    assert!(letters(&run(&mut state, &rules, &newer, "2026-11-23")).is_empty());
    // ...then the older plan action is performed, for a letter now.
    let out = run(
        &mut state,
        &rules,
        &command(CommandKind::Perform, "COLL1", &[CALL]),
        "2026-11-23",
    );
    let sent = letters(&out);
    assert_eq!(sent.len(), 1, "one letter, at once");
    assert_eq!(sent[0].action_id, "ITEM-1", "the most recent action's");
    assert_eq!(sent[0].letter_code.as_deref(), Some("L3"));
    assert_eq!(sent[0].superseded_action_ids, vec![CALL.to_string()]);
    assert_eq!(state.actions[CALL].status, ActionStatus::Complete);
    assert_eq!(
        state.actions[CALL].result.as_deref(),
        Some("letter superseded by action ITEM-1")
    );
    assert_eq!(
        state.actions["ITEM-1"].result.as_deref(),
        Some("letter requested with the next run")
    );
    // Nothing is left for the next run.
    assert!(letters(&rec(&mut state, &rules, "2026-11-24")).is_empty());
}

#[test]
fn a_letter_with_the_next_run_goes_out_the_next_day() {
    let rules = one_step("STMT", None, false);
    let (mut state, _) = violated(&rules, "2026-11-23");
    let mut later = command(CommandKind::Perform, "COLL1", &[CALL]);
    later.delivery = Some(Delivery::NextRun);
    run(&mut state, &rules, &later, "2026-11-23");
    let timers = wanted_timers(&state, &key(), &rules, &FxTable::default(), d("2026-11-23"));
    assert!(timers.iter().any(|(_, date)| *date == d("2026-11-24")));
    let sent = rec(&mut state, &rules, "2026-11-24");
    assert_eq!(letters(&sent).len(), 1);
    assert_eq!(letters(&sent)[0].delivery, Delivery::NextRun);
}

#[test]
fn a_customer_excluded_from_dunning_gets_no_dunning_letter_and_it_is_reported() {
    let rules = one_step("DLTR", Some("L1"), true);
    let mut state = CustomerState::default();
    state.apply(InputEvent::Customer(customer(true)), d("2026-11-23"));
    state.apply(InputEvent::Item(invoice("INV1", "500")), d("2026-11-23"));
    let out = rec(&mut state, &rules, "2026-11-23");
    assert!(letters(&out).is_empty(), "{out:?}");
    let done = &state.actions[CALL];
    assert_eq!(done.status, ActionStatus::SystemComplete);
    assert_eq!(done.result.as_deref(), Some(SUPPRESSED_EXCLUDED));
    let reported = out
        .iter()
        .filter(|e| e.outcome() == Some("letter_suppressed"))
        .count();
    assert_eq!(reported, 1);
    // Statements are not dunning: they still go.
    let rules = one_step("STMT", None, true);
    let mut state = CustomerState::default();
    state.apply(InputEvent::Customer(customer(true)), d("2026-11-23"));
    state.apply(InputEvent::Item(invoice("INV1", "500")), d("2026-11-23"));
    assert_eq!(letters(&rec(&mut state, &rules, "2026-11-23")).len(), 1);
}

#[test]
fn an_automated_step_is_performed_on_its_day_by_condmon() {
    let rules = one_step("HOLD", Some("MSG1"), true);
    let (state, out) = violated(&rules, "2026-11-23");
    assert_eq!(
        requests(&out),
        vec![(RequestKind::CustomerHold, Some("MSG1".into()))]
    );
    let hold = &state.actions[CALL];
    assert_eq!(hold.status, ActionStatus::SystemComplete);
    assert_eq!(hold.performed_by.as_deref(), Some("condmon"));
    // Nobody has work to do: no e-mail about an automated step.
    assert!(notifications(&out).is_empty(), "{out:?}");
}

#[test]
fn a_write_off_stays_pending_until_the_item_is_paid_off() {
    let rules = one_step("WOFF", None, false);
    let (mut state, _) = violated(&rules, "2026-11-23");
    let out = perform(&mut state, &rules, None);
    assert!(result(&out).accepted, "{out:?}");
    let OutputEvent::Request(request) = out
        .iter()
        .find(|e| matches!(e, OutputEvent::Request(_)))
        .unwrap()
    else {
        unreachable!()
    };
    assert_eq!(request.kind, RequestKind::WriteOff);
    assert_eq!(request.item_id.as_deref(), Some("INV1"));
    assert_eq!(request.amount, Some(Decimal::from(500)));
    assert_eq!(state.actions[CALL].status, ActionStatus::Pending);
    // Part written off: still pending.
    state.apply(InputEvent::Item(invoice("INV1", "200")), d("2026-11-24"));
    rec(&mut state, &rules, "2026-11-24");
    assert_eq!(state.actions[CALL].status, ActionStatus::Pending);
    // Balance zero: complete (the violation ends, but the write-off is done, not cancelled).
    let mut zero = invoice("INV1", "0");
    zero.open_amount = Decimal::ZERO;
    state.apply(InputEvent::Item(zero), d("2026-11-25"));
    let out = rec(&mut state, &rules, "2026-11-25");
    let woff = &state.actions[CALL];
    assert_eq!(woff.status, ActionStatus::Complete);
    assert_eq!(woff.result.as_deref(), Some("written off"));
    assert!(
        action_events(&out)
            .iter()
            .any(|a| a.action_id == CALL && a.kind == ActionEventKind::Completed)
    );
}

#[test]
fn the_owner_list_and_the_reports_read_the_states() {
    use super::reports::{OwnerFilter, condition_status, owner_action_status, owner_actions};
    let rules = rules();
    let (mut state, _) = violated(&rules, "2026-11-23");
    let mut done = command(CommandKind::Perform, "COLL1", &[CALL]);
    done.complete = Some(true);
    run(&mut state, &rules, &done, "2026-11-24");
    rec(&mut state, &rules, "2026-12-03"); // the letter reaches the list
    let customers = vec![(key(), state)];
    let today = d("2026-12-04");
    let ids = |filter: OwnerFilter| -> Vec<String> {
        owner_actions(&customers, &rules, "COLL1", &filter, today)
            .iter()
            .map(|v| v.action.id.clone())
            .collect()
    };
    assert_eq!(ids(OwnerFilter::default()), [DLTR]);
    let only = |f: fn(&mut OwnerFilter)| {
        let mut filter = OwnerFilter::default();
        f(&mut filter);
        ids(filter)
    };
    assert_eq!(only(|f| f.supervisor = Some("SUP1".into())), [DLTR]);
    assert!(only(|f| f.supervisor = Some("OTHER".into())).is_empty());
    assert_eq!(only(|f| f.country = Some("US".into())), [DLTR]);
    assert!(
        only(|f| f.state = Some("CA".into())).is_empty(),
        "the customer is in NY"
    );
    assert_eq!(only(|f| f.specialist = Some("SPEC1".into())), [DLTR]);
    assert!(only(|f| f.status = Some(ActionStatus::Pending)).is_empty());
    assert!(only(|f| f.customer = Some("C2".into())).is_empty());
    let view = &owner_actions(&customers, &rules, "COLL1", &OwnerFilter::default(), today)[0];
    assert_eq!(view.days_on_list, 1);
    assert_eq!(view.customer_name, Some("Acme"));

    let days = owner_action_status(&customers, d("2026-11-01"), d("2026-12-31"), None);
    let row = |date: &str| {
        days.iter()
            .find(|r| r.owner == "COLL1" && r.date == d(date))
            .map(|r| (r.added, r.completed, r.cancelled))
    };
    assert_eq!(row("2026-11-23"), Some((1, 0, 0)), "the call added");
    assert_eq!(row("2026-11-24"), Some((0, 1, 0)), "the call completed");
    assert_eq!(row("2026-12-03"), Some((1, 0, 0)), "the letter added");
    assert!(
        owner_action_status(&customers, d("2026-11-25"), d("2026-12-02"), None).is_empty(),
        "nothing in between"
    );

    let conditions = condition_status(&customers, Some("COLL1"), None);
    assert_eq!(conditions.len(), 1);
    assert_eq!(conditions[0].condition, "COLL");
    assert_eq!(conditions[0].past_due_amount, Decimal::from(500));
    let open: Vec<&str> = conditions[0]
        .actions
        .iter()
        .map(|a| a.id.as_str())
        .collect();
    assert_eq!(open, [DLTR]);
    assert!(condition_status(&customers, Some("COLL2"), None).is_empty());
}

/// The Display Currency Conversion of the action lists: the balance and past-due amount in the
/// asked-for currency at the rate type and effective date asked for; a missing rate says so
/// on the row instead of showing a wrong figure.
#[test]
fn the_lists_show_amounts_in_a_display_currency_or_say_which_rate_is_missing() {
    use super::reports::{DisplayCurrency, OwnerFilter, owner_actions};
    let rules = rules();
    let (state, _) = violated(&rules, "2026-11-23");
    let customers = vec![(key(), state)];
    let today = d("2026-12-04");
    let mut fx = FxTable::default();
    let rate = |rate_type: &str, effective: &str, rate: &str| crate::model::FxRate {
        rate_type: rate_type.into(),
        from_currency: "USD".into(),
        to_currency: "EUR".into(),
        effective_date: d(effective),
        rate: rate.parse().unwrap(),
    };
    fx.insert(&rate("CRRNT", "2026-11-01", "0.9"));
    fx.insert(&rate("CRRNT", "2026-12-01", "0.8"));
    fx.insert(&rate("AVG", "2026-11-01", "0.85"));
    let shown = |display: DisplayCurrency| {
        let mut views = owner_actions(&customers, &rules, "COLL1", &OwnerFilter::default(), today);
        display.apply(&fx, &mut views, today);
        views[0].display.clone()
    };
    let ask = |currency: &str, rate_type: Option<&str>, on: Option<&str>| DisplayCurrency {
        display_currency: Some(currency.into()),
        rate_type: rate_type.map(String::from),
        effective_date: on.map(d),
    };
    assert_eq!(shown(DisplayCurrency::default()), None, "none asked for");
    // CRRNT on the business date by default: 500 USD past due, balance 500, at 0.8.
    let eur = shown(ask("EUR", None, None)).unwrap();
    assert_eq!(
        (eur.past_due_amount, eur.balance, eur.missing_rate),
        (Some(Decimal::from(400)), Some(Decimal::from(400)), None)
    );
    assert_eq!(
        (eur.rate_type.as_str(), eur.effective_date),
        ("CRRNT", today)
    );
    // An earlier effective date takes the rate in force then; another rate type its own.
    let earlier = shown(ask("EUR", None, Some("2026-11-15"))).unwrap();
    assert_eq!(earlier.past_due_amount, Some(Decimal::from(450)));
    let average = shown(ask("EUR", Some("AVG"), None)).unwrap();
    assert_eq!(average.past_due_amount, Some(Decimal::from(425)));
    // No rate to JPY at all.
    let yen = shown(ask("JPY", None, None)).unwrap();
    assert_eq!((yen.past_due_amount, yen.balance), (None, None));
    assert_eq!(
        yen.missing_rate.as_deref(),
        Some("no CRRNT rate from USD to JPY in force on 2026-12-04")
    );
    // Before any rate was in force: missing too, never converted at a later rate.
    let too_early = shown(ask("EUR", None, Some("2026-10-01"))).unwrap();
    assert!(too_early.missing_rate.is_some() && too_early.past_due_amount.is_none());
    // The action's own currency needs no rate.
    let usd = shown(ask("USD", None, None)).unwrap();
    assert_eq!(usd.past_due_amount, Some(Decimal::from(500)));
    assert!(
        ask("EURO", None, None).currency().is_err(),
        "not an ISO code"
    );
}

#[test]
fn a_reassigned_plan_step_keeps_its_rules_owner_type() {
    let rules = rules();
    let (mut state, _) = violated(&rules, "2026-11-23");
    let mut reassign = command(CommandKind::Reassign, "SUP1", &[CALL]);
    reassign.owner = Some("COLL2".into());
    reassign.owner_type = Some(OwnerType::CreditAnalyst);
    let out = run(&mut state, &rules, &reassign, "2026-11-23");
    assert!(result(&out).accepted);
    // Not undone by the rule's owner type in the same evaluation.
    let call = &state.actions[CALL];
    assert_eq!(call.owner.as_deref(), Some("COLL2"));
    assert_eq!(call.owner_type, OwnerType::Collector);
    assert_eq!(call.status, ActionStatus::New);
    assert!(
        !action_events(&out)
            .iter()
            .any(|a| a.cancel_reason == Some(CancelReason::RuleOwnerChange))
    );
}

#[test]
fn a_reused_command_id_still_gets_its_own_answer() {
    let rules = rules();
    let (mut state, _) = violated(&rules, "2026-11-23");
    let first = run(
        &mut state,
        &rules,
        &command(CommandKind::SetPending, "COLL1", &[CALL]),
        "2026-11-23",
    );
    let second = run(
        &mut state,
        &rules,
        &command(CommandKind::SetPending, "COLL1", &[CALL]),
        "2026-11-23",
    );
    assert!(result(&first).accepted && !result(&second).accepted);
    assert_ne!(
        result(&first).event_id,
        result(&second).event_id,
        "downstream would drop the second answer as a duplicate"
    );
}

/// Workflow notifications of the chapter: a new debit or credit the ERP created when it
/// closed another item, and a new on-account item from a payment, each announced once to the
/// customer's collector, each kind switched on by its option.
#[test]
fn new_debits_credits_and_on_account_items_are_announced_to_the_collector() {
    let options = "[options]\nnotify_new_debits_credits = true\nnotify_new_on_account = true\n";
    let on = RuleSet::parse(&format!("{RULES}{options}"), "test").unwrap();
    let off = rules();
    let mut state = CustomerState::default();
    state.apply(InputEvent::Customer(customer(false)), d("2026-12-01"));
    state.apply(InputEvent::Item(invoice("INV1", "500")), d("2026-12-01"));
    let today = d("2026-12-02");
    let created = |id: &str, item_type: ItemType, open: &str| ItemChange {
        item_type,
        original_amount: open.parse().unwrap(),
        open_amount: open.parse().unwrap(),
        origin_item_id: Some("INV1".into()),
        origin_item_line: Some(0),
        ..invoice(id, "1")
    };
    let debit = created("DM1", ItemType::DebitMemo, "40");
    let credit = created("CM1", ItemType::CreditMemo, "-40");
    let on_account = ItemChange {
        origin_item_id: None,
        origin_payment_id: Some("PAY7".into()),
        ..created("OA1", ItemType::OnAccount, "-75")
    };
    let announce =
        |state: &CustomerState, rules: &RuleSet, item: &ItemChange| match work::announce_new_item(
            state,
            &key(),
            rules,
            item,
            today,
        ) {
            Some(OutputEvent::Notification(n)) => Some(n),
            Some(other) => panic!("not a notification: {other:?}"),
            None => None,
        };
    let mail = announce(&state, &on, &debit).expect("a new debit is announced");
    assert_eq!(mail.kind, NotificationKind::NewDebit);
    assert_eq!(mail.recipient, "COLL1");
    assert_eq!(mail.recipient_email.as_deref(), Some("casey@example.com"));
    assert_eq!(mail.item_id.as_deref(), Some("DM1"));
    assert_eq!(mail.item_amount, Some("40".parse().unwrap()));
    assert_eq!(mail.origin_item_id.as_deref(), Some("INV1"));
    assert_eq!(mail.action_id, None, "no action is involved");
    let credit_mail = announce(&state, &on, &credit).unwrap();
    assert_eq!(credit_mail.kind, NotificationKind::NewCredit);
    let oa = announce(&state, &on, &on_account).unwrap();
    assert_eq!(oa.kind, NotificationKind::NewOnAccount);
    assert_eq!(oa.origin_payment_id.as_deref(), Some("PAY7"));
    // Each kind is off unless its option is on.
    assert!(announce(&state, &off, &debit).is_none());
    let only_on_account = RuleSet::parse(
        &format!("{RULES}[options]\nnotify_new_on_account = true\n"),
        "test",
    )
    .unwrap();
    assert!(announce(&state, &only_on_account, &debit).is_none());
    assert!(announce(&state, &only_on_account, &on_account).is_some());
    // An item without an origin is the ERP's own, not the system's: no notification.
    assert!(announce(&state, &on, &invoice("INV2", "10")).is_none());
    // Once the item is in the ledger, a re-sent or changed item is not new any more.
    state.apply(InputEvent::Item(debit.clone()), today);
    assert!(announce(&state, &on, &debit).is_none());
    // A customer without a collector: the item's collector hears of it.
    let mut orphan = CustomerState::default();
    orphan.apply(
        InputEvent::Customer(CustomerChange {
            collector: None,
            ..customer(false)
        }),
        today,
    );
    let with_owner = ItemChange {
        collector: Some("COLL2".into()),
        ..debit.clone()
    };
    assert_eq!(
        announce(&orphan, &on, &with_owner).unwrap().recipient,
        "COLL2"
    );
    assert!(announce(&orphan, &on, &debit).is_none(), "nobody to tell");
}

/// A business unit that no calendar names falls back to weekends only: each action says
/// which calendar its due date counted in (`STANDARD` is the flag), and `rules check` warns.
#[test]
fn an_action_says_which_calendar_counted_its_due_date_and_flags_the_fallback() {
    let rules = rules();
    let (_, out) = violated(&rules, "2026-11-23");
    let calendars: Vec<Option<&str>> = action_events(&out)
        .iter()
        .map(|a| a.calendar.as_deref())
        .collect();
    assert!(!calendars.is_empty() && calendars.iter().all(|c| *c == Some("US")));
    let mut state = CustomerState::default();
    state.apply(InputEvent::Customer(customer(false)), d("2026-11-23"));
    let elsewhere = ItemChange {
        business_unit: "MX001".into(),
        ..invoice("INV9", "500")
    };
    state.apply(InputEvent::Item(elsewhere), d("2026-11-23"));
    let out = rec(&mut state, &rules, "2026-11-23");
    assert_eq!(action_events(&out)[0].calendar.as_deref(), Some("STANDARD"));
    assert_eq!(
        rules.calendar_warnings(&["US001".into(), "MX001".into()]),
        [
            "business unit `MX001` is named by no calendar; its due and notification dates count \
          weekends only (calendar STANDARD), with no holidays"
        ]
    );
    assert!(rules.calendar_warnings(&[])[0].contains("other than US001"));
}

/// A command redelivered (the same command id) is taken and answered once: an item action
/// added by hand is not added twice, and no second answer goes out.
#[test]
fn a_command_delivered_twice_is_taken_and_answered_once() {
    let rules = rules();
    let (mut state, _) = violated(&rules, "2026-11-23");
    let mut add = ActionCommand::new("ADD-ONCE", &key(), "COLL1", CommandKind::AddItemAction, &[]);
    add.owner = Some("COLL1".into());
    add.action_code = Some("CALL".into());
    add.item_id = Some("INV1".into());
    add.item_line = Some(0);
    let first = run(&mut state, &rules, &add, "2026-11-24");
    assert!(result(&first).accepted, "{:?}", result(&first).reasons);
    let actions = state.actions.len();
    let again = execute(&mut state, &key(), &rules, &add, d("2026-11-25"));
    assert!(again.is_empty(), "answered twice: {again:?}");
    assert_eq!(state.actions.len(), actions, "added twice");
    // Past the history horizon the id is forgotten (nothing redelivers that late).
    let later =
        d("2026-11-24") + chrono::Duration::days(i64::from(rules.options.history_after_days) + 1);
    super::history::retire(&mut state, &rules, later);
    assert!(!state.commands_seen.contains_key("ADD-ONCE"));
}

/// A command read from a newer producer's schema with a symbol this version does not know
/// (its kind read as UNKNOWN) is answered REJECTED with the reason, and changes nothing.
#[test]
fn a_command_this_version_cannot_understand_is_rejected_whole() {
    let rules = rules();
    let (mut state, _) = violated(&rules, "2026-11-23");
    let before = state.actions[CALL].clone();
    let out = run(
        &mut state,
        &rules,
        &command(CommandKind::Unknown, "COLL1", &[CALL]),
        "2026-11-23",
    );
    let r = result(&out);
    assert!(!r.accepted);
    assert_eq!(r.kind, CommandKind::Unknown);
    assert!(r.reasons[0].contains("does not know"), "{:?}", r.reasons);
    assert_eq!(out.len(), 1, "only the answer: {out:?}");
    assert_eq!(state.actions[CALL], before, "nothing changed");
}
