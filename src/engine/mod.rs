//! The decisions, as pure functions of (customer state, rules, business date).
//!
//! `reconcile` is the one entry point: after any input event or timer it compares what the
//! rules say about the customer today with the plans the customer has, and returns the events
//! that close the gap. `wanted_timers` then says when time alone could change that answer.

mod collection;
mod state;

use chrono::NaiveDate;

use crate::model::{
    ActionEvent, ActionEventKind, ActionStatus, CancelReason, CustomerKey, EscalationEvent,
    Evidence, OutputEvent, event_id,
};
use crate::rules::{CollectionRule, RuleSet};

pub use collection::{CollectionFigures, evaluate_collection, resolve_owner};
pub use state::{Action, CustomerState, Violation};

/// Name of the timer that re-evaluates a customer when ageing can change a condition.
pub const AGEING_TIMER: &str = "ageing";
const ACTION_TIMER_PREFIX: &str = "action:";

/// Brings the customer's violations and action plans in line with the rules as of `today`.
pub fn reconcile(
    state: &mut CustomerState,
    key: &CustomerKey,
    rules: &RuleSet,
    today: NaiveDate,
) -> Vec<OutputEvent> {
    let mut out = Vec::new();
    // Violations of rules that no longer exist end like any other violation.
    let orphaned: Vec<String> = state
        .violations
        .keys()
        .filter(|id| {
            !rules
                .collection_rules
                .iter()
                .any(|r| &r.id == *id && r.set_id == key.set_id)
        })
        .cloned()
        .collect();
    for rule_id in orphaned {
        end_violation(state, key, &rule_id, today, &mut out);
    }
    for rule in rules.collection_rules_for(&key.set_id) {
        let figures = evaluate_collection(rule, state, today);
        match (
            figures.in_violation(rule),
            state.violations.contains_key(&rule.id),
        ) {
            (true, false) => open_violation(state, key, rule, rules, &figures, today, &mut out),
            (false, true) => end_violation(state, key, &rule.id, today, &mut out),
            (true, true) => {
                if let Some(v) = state.violations.get_mut(&rule.id) {
                    v.evidence = figures.evidence.clone();
                }
            }
            (false, false) => {}
        }
    }
    advance_plans(state, key, today, &mut out);
    assign_missing_owners(state, key, today, &mut out);
    out
}

/// Topics are not ordered with each other: an item can be processed before its customer's
/// master. Open actions created without an owner get one as soon as the master names one.
fn assign_missing_owners(
    state: &mut CustomerState,
    key: &CustomerKey,
    today: NaiveDate,
    out: &mut Vec<OutputEvent>,
) {
    let mut assigned = Vec::new();
    for action in state
        .actions
        .values()
        .filter(|a| a.owner.is_none() && a.status.is_open())
    {
        let item = action
            .evidence
            .oldest_item_id
            .as_ref()
            .and_then(|id| state.items.values().find(|i| &i.item_id == id));
        if let Some(owner) = resolve_owner(action.owner_type, state, item) {
            assigned.push((action.id.clone(), owner));
        }
    }
    for (id, owner) in assigned {
        if let Some(action) = state.actions.get_mut(&id) {
            action.owner = Some(owner);
            out.push(action_event(
                key,
                action,
                ActionEventKind::OwnerAssigned,
                Some(action.status),
                today,
            ));
        }
    }
}

/// The timers the customer needs: one for the next ageing change, one per future action.
pub fn wanted_timers(
    state: &CustomerState,
    key: &CustomerKey,
    rules: &RuleSet,
    today: NaiveDate,
) -> Vec<(String, NaiveDate)> {
    let mut timers: Vec<(String, NaiveDate)> = state
        .actions
        .values()
        .filter(|a| a.status == ActionStatus::Future)
        .map(|a| (format!("{ACTION_TIMER_PREFIX}{}", a.id), a.action_date))
        .collect();
    let next_ageing = rules
        .collection_rules_for(&key.set_id)
        .filter_map(|rule| collection::next_change(rule, state, today))
        .min();
    if let Some(date) = next_ageing {
        timers.push((AGEING_TIMER.to_string(), date));
    }
    timers
}

fn open_violation(
    state: &mut CustomerState,
    key: &CustomerKey,
    rule: &CollectionRule,
    rules: &RuleSet,
    figures: &CollectionFigures,
    today: NaiveDate,
    out: &mut Vec<OutputEvent>,
) {
    let Some(template) = rules.template(&rule.template) else {
        // Rule sets are validated on load; a missing template cannot get here.
        unreachable!("rule {} names unknown template {}", rule.id, rule.template);
    };
    state.violation_seq += 1;
    let violation = Violation {
        id: format!("{}-{}", rule.id, state.violation_seq),
        rule_id: rule.id.clone(),
        template_id: template.id.clone(),
        since: today,
        evidence: figures.evidence.clone(),
    };
    for (index, step) in template.steps.iter().enumerate() {
        let step_no = index as i32 + 1;
        let owner_type = step.owner_type.unwrap_or(rule.owner_type);
        let action_date = today + chrono::Duration::days(i64::from(step.days_after));
        let action = Action {
            id: format!("{}-{step_no}", violation.id),
            violation_id: violation.id.clone(),
            rule_id: rule.id.clone(),
            condition: rule.condition.clone(),
            template_id: template.id.clone(),
            step: step_no,
            action_code: step.action_code.clone(),
            action_parameter: step.action_parameter.clone(),
            owner_type,
            owner: figures.owner(owner_type, state),
            automated: step.automated,
            // A proposed step whose day has come goes straight to the list; the rest wait.
            status: if action_date <= today && !step.automated {
                ActionStatus::New
            } else {
                ActionStatus::Future
            },
            business_unit: figures.business_unit.clone(),
            action_date,
            due_date: action_date + chrono::Duration::days(i64::from(step.due_days)),
            cancel_reason: None,
            evidence: figures.evidence.clone(),
            closed_on: None,
        };
        out.push(action_event(
            key,
            &action,
            ActionEventKind::Created,
            None,
            today,
        ));
        state.actions.insert(action.id.clone(), action);
    }
    state.violations.insert(rule.id.clone(), violation);
}

fn end_violation(
    state: &mut CustomerState,
    key: &CustomerKey,
    rule_id: &str,
    today: NaiveDate,
    out: &mut Vec<OutputEvent>,
) {
    let Some(violation) = state.violations.remove(rule_id) else {
        return;
    };
    for action in state.actions.values_mut() {
        if action.violation_id == violation.id && action.status.is_open() {
            let previous = action.status;
            action.status = ActionStatus::SystemCancelled;
            action.cancel_reason = Some(CancelReason::NoLongerInViolation);
            action.closed_on = Some(today);
            out.push(action_event(
                key,
                action,
                ActionEventKind::Cancelled,
                Some(previous),
                today,
            ));
        }
    }
}

/// Moves Future actions whose day has come to the list, or performs them if automated.
fn advance_plans(
    state: &mut CustomerState,
    key: &CustomerKey,
    today: NaiveDate,
    out: &mut Vec<OutputEvent>,
) {
    let mut due: Vec<&mut Action> = state
        .actions
        .values_mut()
        .filter(|a| a.status == ActionStatus::Future && a.action_date <= today)
        .collect();
    due.sort_by(|a, b| (&a.violation_id, a.step).cmp(&(&b.violation_id, b.step)));
    for action in due {
        let violation = state
            .violations
            .values()
            .find(|v| v.id == action.violation_id);
        if action.step > 1 {
            if let Some(v) = violation {
                out.push(escalation_event(key, v, action, today));
            }
        }
        if action.automated {
            action.status = ActionStatus::SystemComplete;
            action.closed_on = Some(today);
            out.push(action_event(
                key,
                action,
                ActionEventKind::Completed,
                Some(ActionStatus::Future),
                today,
            ));
        } else {
            action.status = ActionStatus::New;
            out.push(action_event(
                key,
                action,
                ActionEventKind::MovedToList,
                Some(ActionStatus::Future),
                today,
            ));
        }
    }
}

fn action_event(
    key: &CustomerKey,
    action: &Action,
    kind: ActionEventKind,
    previous_status: Option<ActionStatus>,
    today: NaiveDate,
) -> OutputEvent {
    let kind_name = serde_json::to_string(&kind).expect("enum serializes");
    let status_name = action.status.as_str();
    OutputEvent::Action(ActionEvent {
        event_id: event_id(&[
            "action",
            &key.set_id,
            &key.customer_id,
            &action.id,
            &kind_name,
            status_name,
        ]),
        kind,
        set_id: key.set_id.clone(),
        customer_id: key.customer_id.clone(),
        business_unit: action.business_unit.clone(),
        action_id: action.id.clone(),
        violation_id: action.violation_id.clone(),
        rule_id: action.rule_id.clone(),
        condition: action.condition.clone(),
        template_id: action.template_id.clone(),
        step: action.step,
        action_code: action.action_code.clone(),
        action_parameter: action.action_parameter.clone(),
        owner_type: action.owner_type,
        owner: action.owner.clone(),
        automated: action.automated,
        status: action.status,
        previous_status,
        action_date: action.action_date,
        due_date: action.due_date,
        cancel_reason: action.cancel_reason,
        evidence: action.evidence.clone(),
        business_date: today,
    })
}

fn escalation_event(
    key: &CustomerKey,
    violation: &Violation,
    action: &Action,
    today: NaiveDate,
) -> OutputEvent {
    let to_step = action.step.to_string();
    OutputEvent::Escalation(EscalationEvent {
        event_id: event_id(&[
            "escalation",
            &key.set_id,
            &key.customer_id,
            &violation.id,
            &to_step,
        ]),
        set_id: key.set_id.clone(),
        customer_id: key.customer_id.clone(),
        violation_id: violation.id.clone(),
        rule_id: violation.rule_id.clone(),
        template_id: violation.template_id.clone(),
        from_step: action.step - 1,
        to_step: action.step,
        action_id: action.id.clone(),
        action_code: action.action_code.clone(),
        days_in_violation: (today - violation.since).num_days() as i32,
        evidence: Evidence::clone(&violation.evidence),
        business_date: today,
    })
}

#[cfg(test)]
mod tests;
