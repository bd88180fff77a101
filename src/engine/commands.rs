//! Commands from the collectors' tools: each is checked whole against the customer's actions
//! and the owner directory, then applied whole or refused whole, and answered either way.

use chrono::NaiveDate;

use super::plans::action_event;
use super::state::{Action, CustomerState, item_key};
use super::work;
use crate::model::{
    ActionCommand, ActionEventKind, ActionStatus, CancelReason, CommandKind, CommandResultEvent,
    CustomerKey, NotificationKind, OutputEvent, OwnerType, event_id,
};
use crate::rules::RuleSet;

/// Executes `command` on the customer's actions: the answer first, then what it changed. A
/// command whose id was answered already (a tool or the broker delivered it again) changes
/// nothing and is not answered again: nothing is returned.
pub fn execute(
    state: &mut CustomerState,
    key: &CustomerKey,
    rules: &RuleSet,
    command: &ActionCommand,
    today: NaiveDate,
) -> Vec<OutputEvent> {
    if state.commands_seen.contains_key(&command.command_id) {
        return Vec::new();
    }
    state
        .commands_seen
        .insert(command.command_id.clone(), today);
    let problems = check(state, rules, command, today);
    state.command_seq += 1;
    let seq = state.command_seq.to_string();
    let mut changes = Vec::new();
    let mut touched = command.action_ids.clone();
    if problems.is_empty()
        && let Some(created) = apply(state, key, rules, command, today, &mut changes)
    {
        touched = vec![created];
    }
    let mut out = vec![OutputEvent::CommandResult(CommandResultEvent {
        event_id: event_id(&[
            "command",
            &key.set_id,
            &key.customer_id,
            &command.command_id,
            &seq,
        ]),
        command_id: command.command_id.clone(),
        set_id: key.set_id.clone(),
        customer_id: key.customer_id.clone(),
        kind: command.kind,
        issued_by: command.issued_by.clone(),
        accepted: problems.is_empty(),
        reasons: problems,
        action_ids: touched,
        business_date: today,
    })];
    out.extend(changes);
    out
}

/// Everything that stops the command, one line each (empty: it can be applied).
fn check(
    state: &CustomerState,
    rules: &RuleSet,
    command: &ActionCommand,
    today: NaiveDate,
) -> Vec<String> {
    if command.kind == CommandKind::Unknown {
        return vec![
            "the command names a kind or a value this version of condmon does not know (a \
             newer schema's symbol); nothing was changed"
                .into(),
        ];
    }
    let mut problems = Vec::new();
    let known_owner = |problems: &mut Vec<String>| match command.owner.as_deref() {
        None => problems.push("name the new owner (`owner`)".to_string()),
        Some(owner) if rules.owner(owner).is_none() => {
            problems.push(format!("owner `{owner}` is not in the owner directory"))
        }
        Some(_) => {}
    };
    if command.kind == CommandKind::AddItemAction {
        known_owner(&mut problems);
        if command
            .action_code
            .as_deref()
            .is_none_or(|c| c.trim().is_empty())
        {
            problems.push("name the action (`action_code`)".into());
        }
        match (&command.item_id, command.item_line) {
            (Some(id), Some(line)) if state.items.contains_key(&item_key(id, line)) => {}
            (Some(id), Some(line)) => problems.push(format!(
                "item {id} line {line} is not open for this customer"
            )),
            _ => problems.push("name the item (`item_id`, `item_line`)".into()),
        }
        if command.due_days.is_some_and(|d| d < 0) {
            problems.push("due_days is negative".into());
        }
        return problems;
    }
    if command.action_ids.is_empty() {
        problems.push("name the actions (`action_ids`)".into());
    }
    match command.kind {
        CommandKind::Reassign => known_owner(&mut problems),
        CommandKind::SetFuture | CommandKind::RedateFuture => match command.action_date {
            None => problems.push("give the new date (`action_date`)".into()),
            Some(date) if command.kind == CommandKind::SetFuture && date <= today => problems.push(
                format!("a postponed action needs a date after today ({today}), not {date}"),
            ),
            Some(date) if date < today => {
                problems.push(format!("{date} is in the past (today is {today})"))
            }
            Some(_) => {}
        },
        _ => {}
    }
    for id in &command.action_ids {
        let Some(action) = state.actions.get(id) else {
            problems.push(format!("action {id} does not exist for this customer"));
            continue;
        };
        if let Some(problem) = status_problem(action, command.kind) {
            problems.push(format!("action {id} {problem}"));
            continue;
        }
        if !may_change(rules, action, command) {
            problems.push(format!(
                "action {id}: only its owner ({}) or creator may change it{}; not {}",
                action.owner.as_deref().unwrap_or("none"),
                if command.kind == CommandKind::Reassign {
                    ", or the owner's supervisor reassign it"
                } else {
                    ""
                },
                command.issued_by
            ));
            continue;
        }
        if command.kind == CommandKind::Perform {
            problems.extend(work::perform_problem(state, action, command));
        }
    }
    problems
}

/// Why the action's status forbids the command, if it does.
fn status_problem(action: &Action, kind: CommandKind) -> Option<String> {
    let status = action.status;
    if !status.is_open() {
        return Some(format!(
            "is {} and cannot change any more",
            status_name(status)
        ));
    }
    match kind {
        CommandKind::SetPending if status == ActionStatus::Pending => {
            Some("is Pending already".into())
        }
        CommandKind::SetPending | CommandKind::Perform | CommandKind::SetFuture
            if !action.on_list() =>
        {
            Some("is not on the action list (it is a future action)".into())
        }
        CommandKind::CancelFuture | CommandKind::RedateFuture if !action.is_editable_future() => {
            Some(
                "is already on the action list: it can no longer be edited as a future action"
                    .into(),
            )
        }
        _ => None,
    }
}

fn status_name(status: ActionStatus) -> &'static str {
    match status {
        ActionStatus::Future => "Future",
        ActionStatus::New => "New",
        ActionStatus::Pending => "Pending",
        ActionStatus::Complete => "Complete",
        ActionStatus::Cancelled => "Cancelled",
        ActionStatus::SystemComplete => "System Complete",
        ActionStatus::SystemCancelled => "System Cancelled",
    }
}

/// Only the owner or creator changes an action; the owner's supervisor may also reassign it.
fn may_change(rules: &RuleSet, action: &Action, command: &ActionCommand) -> bool {
    let user = command.issued_by.as_str();
    let owner = action.owner.as_deref();
    let supervises = || {
        owner
            .and_then(|o| rules.owner(o))
            .and_then(|o| o.supervisor.as_deref())
            == Some(user)
    };
    owner == Some(user)
        || action.created_by.as_deref() == Some(user)
        || (command.kind == CommandKind::Reassign && supervises())
}

/// Applies a checked command. Returns the id of the action it created, if it created one.
fn apply(
    state: &mut CustomerState,
    key: &CustomerKey,
    rules: &RuleSet,
    command: &ActionCommand,
    today: NaiveDate,
    out: &mut Vec<OutputEvent>,
) -> Option<String> {
    if command.kind == CommandKind::AddItemAction {
        return Some(add_item_action(state, key, rules, command, today, out));
    }
    for id in &command.action_ids {
        if command.kind == CommandKind::Perform {
            // Checked above: performing cannot fail now.
            let _ = work::perform(state, key, rules, id, Some(command), today, out);
            continue;
        }
        let action = state.actions.get_mut(id).expect("checked above");
        let previous = action.status;
        action.revision += 1;
        let kind = match command.kind {
            CommandKind::SetPending => {
                action.status = ActionStatus::Pending;
                ActionEventKind::StatusChanged
            }
            CommandKind::SetFuture | CommandKind::RedateFuture => {
                let date = command.action_date.expect("checked above");
                action.status = ActionStatus::Future;
                action.action_date = date;
                action.due_date = rules
                    .calendar(&action.business_unit)
                    .add_business_days(date, action.due_days);
                if command.kind == CommandKind::SetFuture {
                    ActionEventKind::StatusChanged
                } else {
                    ActionEventKind::Redated
                }
            }
            CommandKind::Cancel | CommandKind::CancelFuture => {
                action.status = ActionStatus::Cancelled;
                action.cancel_reason = Some(CancelReason::OperatorCancelled);
                action.closed_on = Some(today);
                action.performed_by = Some(command.issued_by.clone());
                ActionEventKind::Cancelled
            }
            CommandKind::Reassign => {
                let from = action.owner.clone();
                let to = command.owner.clone().expect("checked above");
                action.owner = Some(to.clone());
                // A plan step's owner type is its rule's (a rule owner change re-creates it);
                // only actions added by hand take the one the command gives.
                if action.violation_id.is_empty() {
                    action.owner_type = command.owner_type.unwrap_or(action.owner_type);
                }
                if action.on_list() {
                    action.announced_to = Some(to.clone());
                }
                let action = &state.actions[id];
                let cause = &command.command_id;
                out.push(action_event(
                    key,
                    action,
                    ActionEventKind::Reassigned,
                    Some(previous),
                    today,
                ));
                out.push(work::notification(
                    state,
                    key,
                    rules,
                    action,
                    NotificationKind::Reassigned,
                    &to,
                    cause,
                    today,
                ));
                if let Some(from) = from.filter(|f| *f != to) {
                    out.push(work::notification(
                        state,
                        key,
                        rules,
                        action,
                        NotificationKind::ReassignedAway,
                        &from,
                        cause,
                        today,
                    ));
                }
                continue;
            }
            CommandKind::Perform | CommandKind::AddItemAction | CommandKind::Unknown => {
                unreachable!("performed, added or refused above")
            }
        };
        out.push(action_event(key, action, kind, Some(previous), today));
    }
    None
}

fn add_item_action(
    state: &mut CustomerState,
    key: &CustomerKey,
    rules: &RuleSet,
    command: &ActionCommand,
    today: NaiveDate,
    out: &mut Vec<OutputEvent>,
) -> String {
    let item_key = item_key(
        command.item_id.as_deref().expect("checked"),
        command.item_line.expect("checked"),
    );
    let item = &state.items[&item_key];
    state.item_action_seq += 1;
    let due_days = command.due_days.unwrap_or(0);
    let mut action = Action::by_hand(
        format!("ITEM-{}", state.item_action_seq),
        command.action_code.as_deref().expect("checked"),
        &item.business_unit,
        today,
        today,
    );
    action.action_parameter = command.action_parameter.clone();
    action.owner_type = command.owner_type.unwrap_or(OwnerType::ArSpecialist);
    action.owner = command.owner.clone();
    let calendar = rules.calendar(&item.business_unit);
    action.due_date = calendar.add_business_days(today, due_days);
    action.calendar = Some(calendar.id.clone());
    action.due_days = due_days;
    action.evidence.currency = item.currency.clone();
    action.item_key = Some(item_key);
    action.created_by = Some(command.issued_by.clone());
    action.notify_owner_days = command.notify_owner_days;
    action.notify_supervisor_days = command.notify_supervisor_days;
    action.notify_specialist_days = command.notify_specialist_days;
    out.push(action_event(
        key,
        &action,
        ActionEventKind::Created,
        None,
        today,
    ));
    let id = action.id.clone();
    state.add_action(action);
    id
}
