//! Action plans: opening a violation's plan, ending it with a reason, moving future steps to
//! the list on their day, re-creating actions whose owner type changed, and the events that
//! say so.

use chrono::{Duration, NaiveDate};

use super::state::{Action, CustomerState, Violation};
use crate::model::{
    ActionEvent, ActionEventKind, ActionStatus, CancelReason, ConditionEvent, ConditionEventKind,
    CustomerKey, EscalationEvent, Evidence, ItemChange, MonitorRole, OutputEvent, OwnerType,
    event_id,
};
use crate::rules::{ActionTemplate, RuleSet};

/// A violation to open: what the rule and its evaluation say.
#[derive(Debug, Clone)]
pub struct Opening<'r> {
    pub slot: String,
    pub business_unit: String,
    pub rule_id: &'r str,
    pub condition: &'r str,
    pub template: &'r ActionTemplate,
    pub owner_type: OwnerType,
    pub priority: i32,
    pub role: MonitorRole,
    pub item_key: Option<String>,
    pub collection: bool,
    pub evidence: Evidence,
}

pub struct Plans<'a> {
    pub state: &'a mut CustomerState,
    pub key: &'a CustomerKey,
    pub today: NaiveDate,
    pub rules: &'a RuleSet,
    pub out: &'a mut Vec<OutputEvent>,
}

impl Plans<'_> {
    /// Opens a violation and its plan: one action per template step, on the list if its
    /// day has come (and it is proposed), else waiting as a Future action.
    pub fn open(&mut self, opening: Opening<'_>) {
        self.state.violation_seq += 1;
        let violation = Violation {
            id: format!("{}-{}", opening.rule_id, self.state.violation_seq),
            rule_id: opening.rule_id.to_string(),
            template_id: opening.template.id.clone(),
            condition: opening.condition.to_string(),
            item_key: opening.item_key.clone(),
            priority: opening.priority,
            monitor_role: opening.role,
            collection: opening.collection,
            since: self.today,
            evidence: opening.evidence.clone(),
        };
        let business_unit = opening.business_unit.clone();
        let calendar = self.rules.calendar(&business_unit);
        for (index, step) in opening.template.steps.iter().enumerate() {
            let step_no = index as i32 + 1;
            let owner_type = step.owner_type.unwrap_or(opening.owner_type);
            let action_date = self.today + Duration::days(i64::from(step.days_after));
            let on_list_now = action_date <= self.today && !step.automated;
            let mut action = Action {
                id: format!("{}-{step_no}", violation.id),
                violation_id: violation.id.clone(),
                rule_id: violation.rule_id.clone(),
                condition: violation.condition.clone(),
                template_id: violation.template_id.clone(),
                step: step_no,
                action_code: step.action_code.clone(),
                action_parameter: step.action_parameter.clone(),
                owner_type,
                owner: None,
                automated: step.automated,
                status: if on_list_now {
                    ActionStatus::New
                } else {
                    ActionStatus::Future
                },
                business_unit: business_unit.clone(),
                action_date,
                due_date: calendar.add_business_days(action_date, step.due_days),
                cancel_reason: None,
                evidence: opening.evidence.clone(),
                closed_on: None,
                item_key: opening.item_key.clone(),
                priority: opening.priority,
                monitor_role: opening.role,
                created_seq: 0,
                calendar: Some(calendar.id.clone()),
                due_days: step.due_days,
                added_on: on_list_now.then_some(self.today),
                created_by: None,
                notify_owner_days: step.notify_owner_days,
                notify_supervisor_days: step.notify_supervisor_days,
                notify_specialist_days: step.notify_specialist_days,
                announced_to: None,
                reminded: Default::default(),
                revision: 0,
                result: None,
                delivery_method: None,
                write_off: None,
                performed_by: None,
            };
            action.owner = self.owner_for(&action);
            self.out.push(action_event(
                self.key,
                &action,
                ActionEventKind::Created,
                None,
                self.today,
            ));
            self.state.add_action(action);
        }
        self.out.push(condition_event(
            self.key,
            ConditionEventKind::ViolationOpened,
            &violation,
            None,
            self.today,
        ));
        self.state.violations.insert(opening.slot, violation);
    }

    /// Ends the violation in `slot`: its open and future actions are cancelled with `reason`.
    pub fn end(&mut self, slot: &str, reason: CancelReason) {
        let Some(violation) = self.state.violations.remove(slot) else {
            return;
        };
        self.state.actions.change_where(
            |action| action.violation_id == violation.id && action.status.is_open(),
            |action| system_cancel(action, reason, self.key, self.today, self.out),
        );
        self.out.push(condition_event(
            self.key,
            ConditionEventKind::ViolationEnded,
            &violation,
            Some(reason.as_str().to_string()),
            self.today,
        ));
    }

    /// The rule now wants `owner_type` for the actions of `step` of this violation: open
    /// actions with another owner type are cancelled ("Rule Owner Change") and re-created.
    pub fn change_owner_type(&mut self, violation_id: &str, step: i32, owner_type: OwnerType) {
        let stale: Vec<String> = self
            .state
            .actions
            .values()
            .filter(|a| {
                a.violation_id == violation_id
                    && a.step == step
                    && a.status.is_open()
                    && a.owner_type != owner_type
            })
            .map(|a| a.id.clone())
            .collect();
        for id in stale {
            let Some(action) = self.state.actions.get_mut(&id) else {
                continue;
            };
            let previous = action.status;
            system_cancel(
                action,
                CancelReason::RuleOwnerChange,
                self.key,
                self.today,
                self.out,
            );
            let mut replacement = action.clone();
            let base = base_id(&id).to_string();
            let generation = self
                .state
                .actions
                .keys()
                .filter(|k| **k == base || k.starts_with(&format!("{base}/")))
                .count();
            replacement.id = format!("{base}/{generation}");
            replacement.owner_type = owner_type;
            replacement.status = previous;
            replacement.cancel_reason = None;
            replacement.closed_on = None;
            replacement.owner = self.owner_for(&replacement);
            self.out.push(action_event(
                self.key,
                &replacement,
                ActionEventKind::Created,
                None,
                self.today,
            ));
            self.state
                .actions
                .insert(replacement.id.clone(), replacement);
        }
    }

    /// Moves Future actions whose day has come to the list, or performs them if automated.
    pub fn advance(&mut self) {
        let today = self.today;
        let mut due: Vec<(NaiveDate, String, i32, String)> = self
            .state
            .actions
            .values()
            .filter(|a| a.status == ActionStatus::Future && a.action_date <= today)
            .map(|a| (a.action_date, a.violation_id.clone(), a.step, a.id.clone()))
            .collect();
        due.sort();
        for (_, _, _, id) in due {
            let action = &self.state.actions[&id];
            let violation = self
                .state
                .violations
                .values()
                .find(|v| v.id == action.violation_id);
            // A postponed action coming back is not an escalation: it was on the list before.
            if action.step > 1
                && action.added_on.is_none()
                && let Some(v) = violation
            {
                self.out.push(escalation_event(self.key, v, action, today));
            }
            if action.automated {
                super::work::perform_automated(
                    self.state, self.key, self.rules, &id, today, self.out,
                );
            } else {
                let action = self.state.actions.get_mut(&id).expect("listed above");
                action.status = ActionStatus::New;
                action.added_on.get_or_insert(today);
                self.out.push(action_event(
                    self.key,
                    action,
                    ActionEventKind::MovedToList,
                    Some(ActionStatus::Future),
                    today,
                ));
            }
        }
    }

    /// Topics are not ordered with each other: an item can be processed before its customer's
    /// master. Open actions created without an owner get one as soon as someone is named.
    pub fn assign_missing_owners(&mut self) {
        let assigned: Vec<(String, String)> = self
            .state
            .actions
            .values()
            .filter(|a| a.owner.is_none() && a.status.is_open())
            .filter_map(|a| Some((a.id.clone(), self.owner_for(a)?)))
            .collect();
        for (id, owner) in assigned {
            if let Some(action) = self.state.actions.get_mut(&id) {
                action.owner = Some(owner);
                self.out.push(action_event(
                    self.key,
                    action,
                    ActionEventKind::OwnerAssigned,
                    Some(action.status),
                    self.today,
                ));
            }
        }
    }

    fn owner_for(&self, action: &Action) -> Option<String> {
        let item = subject_item(self.state, action.item_key.as_deref(), &action.evidence);
        let bu_owner = (self.rules.options.business_unit_monitoring && action.item_key.is_none())
            .then(|| business_unit_owner(self.state, action.owner_type, &action.business_unit))
            .flatten();
        bu_owner.or_else(|| resolve_owner(action.owner_type, self.state, item))
    }
}

/// The item an action is about: its own (item conditions, item actions) or the one that
/// caused the violation (the oldest past-due item).
pub fn subject_item<'s>(
    state: &'s CustomerState,
    item_key: Option<&str>,
    evidence: &Evidence,
) -> Option<&'s ItemChange> {
    match item_key {
        Some(key) => state.items.get(key),
        None => evidence
            .oldest_item_id
            .as_ref()
            .and_then(|id| state.items.values().find(|i| &i.item_id == id)),
    }
}

/// condmon cancels an open action: `SYSTEM_CANCELLED` with the reason, and the event.
pub fn system_cancel(
    action: &mut Action,
    reason: CancelReason,
    key: &CustomerKey,
    today: NaiveDate,
    out: &mut Vec<OutputEvent>,
) {
    let previous = action.status;
    action.status = ActionStatus::SystemCancelled;
    action.cancel_reason = Some(reason);
    action.closed_on = Some(today);
    out.push(action_event(
        key,
        action,
        ActionEventKind::Cancelled,
        Some(previous),
        today,
    ));
}

/// Re-created actions are numbered `<action id>/<n>`; rule ids cannot contain `/`.
fn base_id(id: &str) -> &str {
    id.split_once('/').map_or(id, |(base, _)| base)
}

/// The owner for `owner_type` from the customer master, or from `item` (the one that caused
/// the violation) where the master has nobody, and always for AR specialists.
pub fn resolve_owner(
    owner_type: OwnerType,
    state: &CustomerState,
    item: Option<&ItemChange>,
) -> Option<String> {
    let customer = state.customer.as_ref();
    match owner_type {
        OwnerType::Collector => customer
            .and_then(|c| c.collector.clone())
            .or_else(|| item.and_then(|i| i.collector.clone())),
        OwnerType::CreditAnalyst => customer.and_then(|c| c.credit_analyst.clone()),
        OwnerType::SalesPerson => customer.and_then(|c| c.sales_person.clone()),
        OwnerType::ArSpecialist => item.and_then(|i| i.ar_specialist.clone()),
    }
}

/// Business-unit monitoring: the owner every open item of the business unit names, when they
/// all name the same one (items carry collectors and AR specialists only).
fn business_unit_owner(state: &CustomerState, owner_type: OwnerType, bu: &str) -> Option<String> {
    let field = |i: &ItemChange| match owner_type {
        OwnerType::Collector => i.collector.clone(),
        OwnerType::ArSpecialist => i.ar_specialist.clone(),
        OwnerType::CreditAnalyst | OwnerType::SalesPerson => None,
    };
    let mut owners = state
        .items
        .values()
        .filter(|i| i.business_unit == bu)
        .map(field);
    let first = owners.next()??;
    owners.all(|o| o.as_ref() == Some(&first)).then_some(first)
}

pub fn split_item_key(key: &str) -> Option<(String, i32)> {
    let (id, line) = key.rsplit_once('#')?;
    Some((id.to_string(), line.parse().ok()?))
}

pub fn action_event(
    key: &CustomerKey,
    action: &Action,
    kind: ActionEventKind,
    previous_status: Option<ActionStatus>,
    today: NaiveDate,
) -> OutputEvent {
    let kind_name = serde_json::to_string(&kind).expect("enum serializes");
    let status_name = action.status.as_str();
    let item = action.item_key.as_deref().and_then(split_item_key);
    let revision = action.revision.to_string();
    let mut id_parts = vec![
        "action",
        &key.set_id,
        &key.customer_id,
        &action.id,
        &kind_name,
        status_name,
    ];
    // Commands can take an action through the same status twice; plan steps cannot.
    if action.revision > 0 {
        id_parts.push(&revision);
    }
    OutputEvent::Action(ActionEvent {
        event_id: event_id(&id_parts),
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
        item_id: item.as_ref().map(|(id, _)| id.clone()),
        item_line: item.map(|(_, line)| line),
        priority: action.priority,
        monitor_role: action.monitor_role,
        created_by: action.created_by.clone(),
        result: action.result.clone(),
        delivery_method: action.delivery_method.clone(),
        calendar: action.calendar.clone(),
    })
}

fn condition_event(
    key: &CustomerKey,
    kind: ConditionEventKind,
    violation: &Violation,
    reason: Option<String>,
    today: NaiveDate,
) -> OutputEvent {
    let kind_name = serde_json::to_string(&kind).expect("enum serializes");
    let item = violation.item_key.as_deref().and_then(split_item_key);
    OutputEvent::Condition(ConditionEvent {
        event_id: event_id(&[
            "condition",
            &key.set_id,
            &key.customer_id,
            &violation.id,
            &kind_name,
        ]),
        kind,
        set_id: key.set_id.clone(),
        customer_id: key.customer_id.clone(),
        rule_id: violation.rule_id.clone(),
        condition: violation.condition.clone(),
        violation_id: Some(violation.id.clone()),
        item_id: item.as_ref().map(|(id, _)| id.clone()),
        item_line: item.map(|(_, line)| line),
        monitor_role: violation.monitor_role,
        reason,
        evidence: violation.evidence.clone(),
        business_date: today,
    })
}

/// A rule became unevaluable (`blocked` lists why) or evaluable again (`None`). `episode`
/// numbers the customer's blocked episodes, so each has its own event ids.
pub fn blocked_event(
    key: &CustomerKey,
    rule_id: &str,
    condition: &str,
    role: MonitorRole,
    episode: u64,
    blocked: Option<&[String]>,
    today: NaiveDate,
) -> OutputEvent {
    let (kind, reason) = match blocked {
        Some(reasons) => (
            ConditionEventKind::EvaluationBlocked,
            Some(reasons.join("; ")),
        ),
        None => (ConditionEventKind::EvaluationRestored, None),
    };
    let kind_name = serde_json::to_string(&kind).expect("enum serializes");
    OutputEvent::Condition(ConditionEvent {
        event_id: event_id(&[
            "condition",
            &key.set_id,
            &key.customer_id,
            rule_id,
            &episode.to_string(),
            &kind_name,
            reason.as_deref().unwrap_or_default(),
        ]),
        kind,
        set_id: key.set_id.clone(),
        customer_id: key.customer_id.clone(),
        rule_id: rule_id.to_string(),
        condition: condition.to_string(),
        violation_id: None,
        item_id: None,
        item_line: None,
        monitor_role: role,
        reason,
        evidence: Evidence::default(),
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
