//! Working actions: performing them (by condmon on an automated step's day, or by an owner's
//! command), the letters and ERP requests that produces, write-offs that complete when the item
//! is paid off, and the owner's, supervisor's and specialist's e-mails.

use chrono::NaiveDate;
use rust_decimal::Decimal;

use super::plans::{action_event, split_item_key, subject_item, system_cancel};
use super::state::{Action, CustomerState, QueuedLetter};
use crate::model::{
    ActionCommand, ActionEventKind, ActionStatus, CancelReason, CorrespondenceEvent,
    CorrespondenceKind, CustomerKey, Delivery, ItemChange, ItemType, NotificationEvent,
    NotificationKind, OutputEvent, RequestEvent, RequestKind, SUPPRESSED_EXCLUDED, event_id,
};
use crate::rules::RuleSet;

/// Who performs an action, as requests and history record it.
pub const SYSTEM_USER: &str = "condmon";

/// How a perform ends for the action.
enum Finish {
    /// Complete (by an owner) or System Complete (automated).
    Done,
    /// Pending: the owner said it is not done yet, or it waits for the world (a write-off).
    Pending,
}

/// Performs an automated step on its day.
pub fn perform_automated(
    state: &mut CustomerState,
    key: &CustomerKey,
    rules: &RuleSet,
    action_id: &str,
    today: NaiveDate,
    out: &mut Vec<OutputEvent>,
) {
    let result = perform(state, key, rules, action_id, None, today, out);
    // Validation of a command cannot apply to condmon itself: whatever an automated step
    // cannot do is recorded as its result.
    if let Err(reason) = result {
        let action = state.actions.get_mut(action_id).expect("performed action");
        let previous = action.status;
        action.status = ActionStatus::SystemComplete;
        action.closed_on = Some(today);
        action.result = Some(reason);
        action.performed_by = Some(SYSTEM_USER.into());
        out.push(action_event(
            key,
            action,
            ActionEventKind::Completed,
            Some(previous),
            today,
        ));
    }
}

/// What a perform would need and lacks, for a command to be refused before anything changes.
pub fn perform_problem(
    state: &CustomerState,
    action: &Action,
    command: &ActionCommand,
) -> Option<String> {
    let code = action.action_code.as_str();
    if RequestKind::of(code) == Some(RequestKind::WriteOff) {
        return write_off_item(state, action)
            .is_none()
            .then(|| format!("action {}: the item to write off is not open", action.id));
    }
    let needs_answer = CorrespondenceKind::of(code).is_none() && RequestKind::of(code).is_none()
        || RequestKind::of(code) == Some(RequestKind::CreditReview);
    (needs_answer && command.complete.is_none()).then(|| {
        format!(
            "action {} ({code}): say whether it is done (`complete` true or false)",
            action.id
        )
    })
}

/// Performs `action_id`: by its owner (`command`) or, automated, by condmon. What the action
/// code asks is emitted (letters, requests); the action completes, or goes Pending. An error
/// is what makes performing impossible (checked for commands by [`perform_problem`]).
pub fn perform(
    state: &mut CustomerState,
    key: &CustomerKey,
    rules: &RuleSet,
    action_id: &str,
    command: Option<&ActionCommand>,
    today: NaiveDate,
    out: &mut Vec<OutputEvent>,
) -> Result<(), String> {
    let action = state.actions[action_id].clone();
    if let Some(problem) = command.and_then(|c| perform_problem(state, &action, c)) {
        return Err(problem);
    }
    let by = command.map_or(SYSTEM_USER, |c| c.issued_by.as_str());
    let code = action.action_code.as_str();
    let mut result = None;
    let mut delivery_method = None;
    let finish = if let Some(kind) = CorrespondenceKind::of(code) {
        if kind == CorrespondenceKind::DunningLetter && state.excluded_from_dunning() {
            result = Some(SUPPRESSED_EXCLUDED.to_string());
        } else {
            let delivery = command.and_then(|c| c.delivery).unwrap_or_default();
            delivery_method = command.and_then(|c| c.delivery_method.clone());
            let letter = QueuedLetter {
                kind,
                action_id: action.id.clone(),
                superseded: Vec::new(),
                letter_code: command
                    .and_then(|c| c.letter_code.clone())
                    .or_else(|| action.action_parameter.clone()),
                contact_id: command.and_then(|c| c.contact_id.clone()),
                delivery,
                delivery_method: delivery_method.clone(),
                // The next run: the business unit's next business day.
                release_on: match delivery {
                    Delivery::Now => today,
                    Delivery::NextRun => rules
                        .calendar(&action.business_unit)
                        .add_business_days(today, 1),
                },
            };
            result = Some(queue_letter(state, key, letter, today, out));
        }
        Finish::Done
    } else if let Some(kind) = RequestKind::of(code) {
        let mut request = RequestEvent {
            event_id: event_id(&[
                "request",
                &key.set_id,
                &key.customer_id,
                &action.id,
                &action.revision.to_string(),
            ]),
            kind,
            set_id: key.set_id.clone(),
            customer_id: key.customer_id.clone(),
            business_unit: action.business_unit.clone(),
            action_id: action.id.clone(),
            code: action.action_parameter.clone(),
            item_id: None,
            item_line: None,
            amount: None,
            currency: None,
            requested_by: by.to_string(),
            business_date: today,
        };
        let finish = match kind {
            RequestKind::CustomerHold => {
                result = Some("customer hold requested".into());
                Finish::Done
            }
            RequestKind::Referral => {
                result = Some("referral to a collection agency requested".into());
                Finish::Done
            }
            RequestKind::CreditReview => {
                result = Some("credit rating review requested".into());
                answer(command)
            }
            RequestKind::WriteOff => {
                let Some(item) = write_off_item(state, &action) else {
                    return Err(format!(
                        "action {}: the item to write off is not open",
                        action.id
                    ));
                };
                let (item_id, line) = (item.item_id.clone(), item.item_line);
                request.item_id = Some(item_id.clone());
                request.item_line = Some(line);
                request.amount = Some(item.open_amount);
                request.currency = Some(item.currency.clone());
                result = Some(format!("write-off of {item_id} line {line} requested"));
                let target = state.actions.get_mut(action_id).expect("action exists");
                target.write_off = Some(super::state::item_key(&item_id, line));
                Finish::Pending
            }
            // Asked by customer calls, not by action codes (see `RequestKind::of`).
            RequestKind::CreditMemo
            | RequestKind::ExcludeFromDunning
            | RequestKind::IncludeInDunning => {
                result = Some(format!("{kind:?} requested"));
                Finish::Done
            }
        };
        out.push(OutputEvent::Request(request));
        finish
    } else {
        // ALRT, CALL and user-defined actions: done when the owner says so.
        answer(command)
    };
    let action = state.actions.get_mut(action_id).expect("action exists");
    let previous = action.status;
    action.result = result;
    action.delivery_method = delivery_method;
    action.performed_by = Some(by.to_string());
    let kind = match finish {
        Finish::Done => {
            action.status = if command.is_some() {
                ActionStatus::Complete
            } else {
                ActionStatus::SystemComplete
            };
            action.closed_on = Some(today);
            ActionEventKind::Completed
        }
        Finish::Pending => {
            action.status = ActionStatus::Pending;
            ActionEventKind::StatusChanged
        }
    };
    if command.is_some() {
        action.revision += 1;
    }
    out.push(action_event(key, action, kind, Some(previous), today));
    Ok(())
}

fn answer(command: Option<&ActionCommand>) -> Finish {
    match command.map(|c| c.complete) {
        Some(Some(false)) => Finish::Pending,
        _ => Finish::Done,
    }
}

fn write_off_item<'s>(
    state: &'s CustomerState,
    action: &Action,
) -> Option<&'s crate::model::ItemChange> {
    subject_item(state, action.item_key.as_deref(), &action.evidence)
}

/// Puts a letter in the queue. Of two letters of the same kind, only the one of the most
/// recent action (the one created last, whatever order they are performed in) is produced,
/// standing for the other, whose action says it was superseded. The result for the action
/// just performed.
fn queue_letter(
    state: &mut CustomerState,
    key: &CustomerKey,
    mut letter: QueuedLetter,
    today: NaiveDate,
    out: &mut Vec<OutputEvent>,
) -> String {
    let requested = match letter.delivery {
        Delivery::Now => "letter requested",
        Delivery::NextRun => "letter requested with the next run",
    };
    let Some(pos) = state.letters.iter().position(|l| l.kind == letter.kind) else {
        state.letters.push(letter);
        return requested.to_string();
    };
    let mut older = state.letters.remove(pos);
    let created = |id: &str| state.actions.get(id).map_or(0, |a| a.created_seq);
    // A tie (actions from before the order was kept) goes to the one performed last.
    let waiting_is_newer = created(&older.action_id) > created(&letter.action_id);
    if waiting_is_newer {
        std::mem::swap(&mut older, &mut letter);
    }
    letter.superseded.extend(older.superseded);
    letter.superseded.push(older.action_id.clone());
    // The earlier of the two runs: a "now" letter does not wait for a later one's run.
    letter.release_on = letter.release_on.min(older.release_on);
    let superseded = format!("letter superseded by action {}", letter.action_id);
    state.letters.push(letter);
    if waiting_is_newer {
        // The action just performed is the older one: its result is the superseding.
        superseded
    } else {
        change_result(state, key, &older.action_id, superseded, today, out);
        requested.to_string()
    }
}

/// A performed action's result changed after the fact (its letter superseded or suppressed):
/// its history says so, with an event.
fn change_result(
    state: &mut CustomerState,
    key: &CustomerKey,
    action_id: &str,
    result: String,
    today: NaiveDate,
    out: &mut Vec<OutputEvent>,
) {
    if let Some(action) = state.actions.get_mut(action_id) {
        action.result = Some(result);
        action.revision += 1;
        out.push(action_event(
            key,
            action,
            ActionEventKind::ResultChanged,
            Some(action.status),
            today,
        ));
    }
}

/// Produces the letters whose run has come. A dunning letter for a customer excluded from
/// dunning meanwhile is dropped, and its action says so.
pub fn release_letters(
    state: &mut CustomerState,
    key: &CustomerKey,
    today: NaiveDate,
    out: &mut Vec<OutputEvent>,
) {
    let (due, waiting): (Vec<QueuedLetter>, Vec<QueuedLetter>) = std::mem::take(&mut state.letters)
        .into_iter()
        .partition(|l| l.release_on <= today);
    state.letters = waiting;
    let excluded = state.excluded_from_dunning();
    for letter in due {
        if letter.kind == CorrespondenceKind::DunningLetter && excluded {
            let result = SUPPRESSED_EXCLUDED.to_string();
            change_result(state, key, &letter.action_id, result, today, out);
            continue;
        }
        let action = state.actions.get(&letter.action_id);
        let evidence = action.map(|a| a.evidence.clone()).unwrap_or_default();
        out.push(OutputEvent::Correspondence(CorrespondenceEvent {
            event_id: event_id(&["letter", &key.set_id, &key.customer_id, &letter.action_id]),
            kind: letter.kind,
            set_id: key.set_id.clone(),
            customer_id: key.customer_id.clone(),
            business_unit: action.map(|a| a.business_unit.clone()).unwrap_or_default(),
            action_id: letter.action_id,
            superseded_action_ids: letter.superseded,
            letter_code: letter.letter_code,
            contact_id: letter.contact_id,
            delivery: letter.delivery,
            delivery_method: letter.delivery_method,
            currency: evidence.currency,
            past_due_amount: evidence.past_due_amount,
            balance: evidence.balance,
            business_date: today,
        }));
    }
}

/// Write-offs complete when the item's balance reached zero (the item left the ledger).
/// Runs before violations are ended, so an item closed by its write-off completes the action
/// instead of cancelling it.
pub fn complete_write_offs(
    state: &mut CustomerState,
    key: &CustomerKey,
    today: NaiveDate,
    out: &mut Vec<OutputEvent>,
) {
    let items = &state.items;
    let paid_off = |action: &Action| {
        action.status == ActionStatus::Pending
            && action
                .write_off
                .as_ref()
                .is_some_and(|item| !items.contains_key(item))
    };
    state.actions.change_where(paid_off, |action| {
        let by_owner = action.performed_by.as_deref() != Some(SYSTEM_USER);
        action.status = if by_owner {
            ActionStatus::Complete
        } else {
            ActionStatus::SystemComplete
        };
        action.closed_on = Some(today);
        action.result = Some("written off".into());
        out.push(action_event(
            key,
            action,
            ActionEventKind::Completed,
            Some(ActionStatus::Pending),
            today,
        ));
    });
}

/// Item actions added by hand belong to no violation: they end when their item closes. An
/// item not seen yet (a call about it came first) is not closed: its action waits.
pub fn close_item_actions(
    state: &mut CustomerState,
    key: &CustomerKey,
    today: NaiveDate,
    out: &mut Vec<OutputEvent>,
) {
    let (items, stats) = (&state.items, &state.stats);
    let orphan = |action: &Action| {
        action.violation_id.is_empty()
            && action.status.is_open()
            && action.item_key.as_ref().is_some_and(|item| {
                !items.contains_key(item) && stats.closed_due_date(item).is_some()
            })
    };
    state.actions.change_where(orphan, |action| {
        system_cancel(action, CancelReason::ItemClosed, key, today, out)
    });
}

/// The reminders an action has, with their dates.
pub fn reminder_dates(rules: &RuleSet, action: &Action) -> Vec<(NotificationKind, NaiveDate)> {
    let calendar = rules.calendar(&action.business_unit);
    [
        (NotificationKind::OwnerReminder, action.notify_owner_days),
        (
            NotificationKind::SupervisorReminder,
            action.notify_supervisor_days,
        ),
        (
            NotificationKind::SpecialistReminder,
            action.notify_specialist_days,
        ),
    ]
    .into_iter()
    .filter_map(|(kind, days)| Some((kind, calendar.add_business_days(action.due_date, days?))))
    .collect()
}

/// Tells owners of actions new on their list, and reminds owner, supervisor and AR specialist
/// of actions still not done on their notify dates. Each is sent once; a date passed while
/// the action was not on the list is caught up the day it is.
pub fn notify(
    state: &mut CustomerState,
    key: &CustomerKey,
    rules: &RuleSet,
    today: NaiveDate,
    out: &mut Vec<OutputEvent>,
) {
    let ids: Vec<String> = state
        .actions
        .values()
        .filter(|a| a.on_list() && !a.automated)
        .map(|a| a.id.clone())
        .collect();
    for id in ids {
        let action = &state.actions[&id];
        let Some(owner) = action.owner.clone() else {
            continue;
        };
        let mut sends = Vec::new();
        if action.announced_to.as_deref() != Some(owner.as_str()) {
            sends.push((NotificationKind::NewAction, Some(owner.clone())));
        }
        for (kind, date) in reminder_dates(rules, action) {
            if date > today || action.reminded.contains(&kind) {
                continue;
            }
            let recipient = match kind {
                NotificationKind::OwnerReminder => Some(owner.clone()),
                NotificationKind::SupervisorReminder => {
                    rules.owner(&owner).and_then(|o| o.supervisor.clone())
                }
                _ => subject_item(state, action.item_key.as_deref(), &action.evidence)
                    .and_then(|i| i.ar_specialist.clone()),
            };
            sends.push((kind, recipient));
        }
        for (kind, recipient) in sends {
            if let Some(recipient) = &recipient {
                // Commands can bring an action back to the same owner: the revision tells the
                // announcements apart.
                let action = &state.actions[&id];
                let cause = action.revision.to_string();
                out.push(notification(
                    state, key, rules, action, kind, recipient, &cause, today,
                ));
            }
            let action = state.actions.get_mut(&id).expect("listed above");
            match kind {
                NotificationKind::NewAction => action.announced_to = Some(owner.clone()),
                // Nobody to remind (no supervisor, no specialist) counts as done.
                _ => {
                    action.reminded.insert(kind);
                }
            }
        }
    }
}

/// A notification about `action` for `recipient`. `cause` tells apart notifications of the
/// same kind to the same person (the command that reassigned).
#[allow(clippy::too_many_arguments)]
pub fn notification(
    state: &CustomerState,
    key: &CustomerKey,
    rules: &RuleSet,
    action: &Action,
    kind: NotificationKind,
    recipient: &str,
    cause: &str,
    today: NaiveDate,
) -> OutputEvent {
    let directory = rules.owner(recipient);
    let item = action.item_key.as_deref().and_then(split_item_key);
    let owner = action.owner.as_deref().unwrap_or_default();
    OutputEvent::Notification(NotificationEvent {
        event_id: event_id(&[
            "notification",
            &key.set_id,
            &key.customer_id,
            &action.id,
            kind.as_str(),
            recipient,
            owner,
            cause,
        ]),
        kind,
        recipient: recipient.to_string(),
        recipient_name: directory.map(|o| o.name.clone()).filter(|n| !n.is_empty()),
        recipient_email: directory.map(|o| o.email.clone()),
        set_id: key.set_id.clone(),
        customer_id: key.customer_id.clone(),
        customer_name: state.customer.as_ref().map(|c| c.name.clone()),
        business_unit: action.business_unit.clone(),
        action_id: Some(action.id.clone()),
        action_code: Some(action.action_code.clone()),
        action_parameter: action.action_parameter.clone(),
        action_status: Some(action.status),
        owner: action.owner.clone(),
        condition: Some(action.condition.clone()),
        due_date: action.due_date,
        currency: action.evidence.currency.clone(),
        past_due_amount: action.evidence.past_due_amount,
        balance: action.evidence.balance,
        item_id: item.as_ref().map(|(id, _)| id.clone()),
        item_line: item.map(|(_, line)| line),
        link: format!(
            "/customers/{}/{}/actions/{}",
            key.set_id, key.customer_id, action.id
        ),
        business_date: today,
        item_type: None,
        item_amount: None,
        origin_item_id: None,
        origin_payment_id: None,
    })
}

/// The notification about a new item the ERP created from another item (a debit or a
/// credit) or from a payment (an on-account item), for the customer's collector (the item's
/// when the customer names none), if the rules' options ask for that kind. Called with the
/// state before the item is applied: an item already open, or re-sent, is not new.
pub fn announce_new_item(
    state: &CustomerState,
    key: &CustomerKey,
    rules: &RuleSet,
    item: &ItemChange,
    today: NaiveDate,
) -> Option<OutputEvent> {
    let item_key = super::item_key(&item.item_id, item.item_line);
    if item.open_amount.is_zero()
        || state.items.contains_key(&item_key)
        || state.stats.closed_due_date(&item_key).is_some()
    {
        return None;
    }
    let options = &rules.options;
    let kind = match (&item.origin_item_id, &item.origin_payment_id) {
        (_, Some(_)) if item.item_type == ItemType::OnAccount => options
            .notify_new_on_account
            .then_some(NotificationKind::NewOnAccount)?,
        (Some(_), _) if item.item_type.is_credit() => options
            .notify_new_debits_credits
            .then_some(NotificationKind::NewCredit)?,
        (Some(_), _) => options
            .notify_new_debits_credits
            .then_some(NotificationKind::NewDebit)?,
        _ => return None,
    };
    let customer = state.customer.as_ref();
    let recipient = customer
        .and_then(|c| c.collector.as_deref())
        .or(item.collector.as_deref())?;
    let directory = rules.owner(recipient);
    Some(OutputEvent::Notification(NotificationEvent {
        event_id: event_id(&[
            "notification",
            &key.set_id,
            &key.customer_id,
            &item_key,
            kind.as_str(),
            recipient,
        ]),
        kind,
        recipient: recipient.to_string(),
        recipient_name: directory.map(|o| o.name.clone()).filter(|n| !n.is_empty()),
        recipient_email: directory.map(|o| o.email.clone()),
        set_id: key.set_id.clone(),
        customer_id: key.customer_id.clone(),
        customer_name: customer.map(|c| c.name.clone()),
        business_unit: item.business_unit.clone(),
        action_id: None,
        action_code: None,
        action_parameter: None,
        action_status: None,
        owner: None,
        condition: None,
        due_date: item.due_date,
        currency: item.currency.clone(),
        past_due_amount: Decimal::ZERO,
        balance: None,
        item_id: Some(item.item_id.clone()),
        item_line: Some(item.item_line),
        link: format!("/customers/{}/{}", key.set_id, key.customer_id),
        business_date: today,
        item_type: Some(item.item_type),
        item_amount: Some(item.open_amount),
        origin_item_id: item.origin_item_id.clone(),
        origin_payment_id: item.origin_payment_id.clone(),
    }))
}

/// The next date on which time alone sends something: a reminder, or a letter's run.
pub fn next_change(state: &CustomerState, rules: &RuleSet, today: NaiveDate) -> Option<NaiveDate> {
    let reminders = state
        .actions
        .values()
        .filter(|a| a.on_list() && !a.automated)
        .flat_map(|a| {
            reminder_dates(rules, a)
                .into_iter()
                .filter(|(kind, date)| *date > today && !a.reminded.contains(kind))
                .map(|(_, date)| date)
        });
    let letters = state
        .letters
        .iter()
        .map(|l| l.release_on.max(today.succ_opt().expect("date in range")));
    reminders.chain(letters).min()
}
