//! The decisions, as pure functions of (customer state, rules, exchange rates, business date).
//!
//! `reconcile` is the one entry point: after any input event or timer it compares what the
//! rules say about the customer today with the violations and plans the customer has, and
//! returns the events that close the gap. `wanted_timers` then says when time alone could
//! change that answer.

mod children;
mod commands;
pub mod conditions;
pub mod conversations;
pub mod fx;
pub mod history;
pub mod inquiry;
mod plans;
pub mod reports;
pub mod risk;
mod state;
pub mod stats;
pub mod work;

use std::collections::BTreeMap;

use chrono::NaiveDate;

use crate::model::{CancelReason, CustomerKey, MonitorRole, OutputEvent, OwnerType};

use crate::rules::{Applicable, RuleSet};
pub use children::{RELATIONSHIPS, families, family, family_head, monitored_roles};

pub use commands::execute;
pub use conditions::{Context, Verdict, evaluate_collection, evaluate_customer, evaluate_items};
pub use conversations::take_conversation;
pub use fx::{FxTable, MissingRate};
pub use plans::resolve_owner;
pub use state::{
    Action, Blocked, CustomerState, OwnRecords, PromiseState, QueuedLetter, TimerSet, Totals,
    Violation, Waiting, collection_slot, item_key, item_slot,
};

use plans::{Opening, Plans};

/// Name of the timer that re-evaluates a customer when time alone can change a condition.
pub const AGEING_TIMER: &str = "ageing";
const ACTION_TIMER_PREFIX: &str = "action:";

/// What reconcile decides for one violation slot.
enum Decision<'r> {
    /// The slot should hold a violation of this rule (opened if it has none). Boxed, as the
    /// upgrade: an opening with its evidence is large, and the decisions are a map.
    Violated(Box<Opening<'r>>),
    /// The slot should hold nothing: an existing violation ends with this reason.
    End(CancelReason),
    /// The rule cannot be evaluated now: whatever the slot holds stays as it is.
    Keep,
    /// A higher-priority collection violation replaces the current plan.
    Upgrade(Box<Opening<'r>>),
}

/// Reconciles the customer and says which timers it wants: one evaluation, the applicable
/// rules and the relationships' views found once for both.
pub fn evaluate(
    state: &mut CustomerState,
    key: &CustomerKey,
    rules: &RuleSet,
    fx: &FxTable,
    today: NaiveDate,
) -> (Vec<OutputEvent>, Vec<(String, NaiveDate)>) {
    let (events, applicable, views) = reconcile_with(state, key, rules, fx, today);
    let timers = timers_for(state, key, rules, fx, today, &applicable, &views);
    (events, timers)
}

/// Brings the customer's violations and action plans in line with the rules as of `today`.
pub fn reconcile(
    state: &mut CustomerState,
    key: &CustomerKey,
    rules: &RuleSet,
    fx: &FxTable,
    today: NaiveDate,
) -> Vec<OutputEvent> {
    reconcile_with(state, key, rules, fx, today).0
}

/// The children's lines each monitored relationship sees, by role.
type Views = BTreeMap<MonitorRole, children::ChildLedger>;

/// [`reconcile`], with the rules it found applicable and the relationships' views (neither
/// changes with what it decides: they depend on the customer's group, ledger and children).
fn reconcile_with<'r>(
    state: &mut CustomerState,
    key: &CustomerKey,
    rules: &'r RuleSet,
    fx: &FxTable,
    today: NaiveDate,
) -> (Vec<OutputEvent>, Applicable<'r>, Views) {
    state
        .stats
        .prune(today, rules.options.statistics_window_days);
    let mut out = Vec::new();
    // The score first: conditions may be on it.
    out.extend(risk::rescore(state, key, rules, fx, today));
    // Before violations end: an item written off completes its write-off action rather than
    // cancelling it.
    work::complete_write_offs(state, key, today, &mut out);
    work::close_item_actions(state, key, today, &mut out);
    // Disputes and promises before decisions: they change balances, and a broken promise may
    // open a plan.
    conversations::align_disputes(state, today);
    conversations::review(state, key, rules, today, &mut out);
    let applicable = applicable(state, key, rules);
    let views = role_views(state, &applicable);
    let (decisions, blocked) = decide(state, &views, rules, fx, today, &applicable);
    report_blocked(state, key, rules, blocked, today, &mut out);
    let mut plans = Plans {
        state: &mut *state,
        key,
        today,
        rules,
        out: &mut out,
    };
    // Violations no rule speaks for any more end too: their rule was removed, no longer
    // applies to the customer, or their item closed.
    let orphans: Vec<(String, CancelReason)> = plans
        .state
        .violations
        .iter()
        .filter(|(slot, _)| !decisions.contains_key(*slot))
        .map(|(slot, v)| {
            let reason = match &v.item_key {
                Some(item) if !plans.state.items.contains_key(item) => CancelReason::ItemClosed,
                _ if v.collection && plans.state.on_credit_hold() => CancelReason::CreditHoldExists,
                _ => CancelReason::NoLongerInViolation,
            };
            (slot.clone(), reason)
        })
        .collect();
    for (slot, reason) in orphans {
        plans.end(&slot, reason);
    }
    // A scheduled rule's violation that no longer holds stops waiting.
    plans.state.waiting.retain(|slot, _| {
        matches!(
            decisions.get(slot),
            Some(Decision::Violated(_) | Decision::Upgrade(_) | Decision::Keep)
        )
    });
    for (slot, decision) in decisions {
        match decision {
            Decision::Violated(opening) => match plans.state.violations.get_mut(&slot) {
                Some(existing) if existing.rule_id == opening.rule_id => {
                    existing.evidence = opening.evidence;
                }
                // Another collection rule's plan stays (no escalation, or not higher).
                Some(_) => {}
                None => {
                    if !waits_for_schedule(plans.state, rules, &slot, opening.rule_id, today) {
                        plans.open(*opening);
                    }
                }
            },
            Decision::Upgrade(opening) => {
                // The current plan stays until the higher rule's run day.
                if !waits_for_schedule(plans.state, rules, &slot, opening.rule_id, today) {
                    plans.end(&slot, CancelReason::TemplateUpgrade);
                    plans.open(*opening);
                }
            }
            // Continuous monitoring: a plan ends the day its violation does, whatever the
            // rule's schedule.
            Decision::End(reason) => plans.end(&slot, reason),
            Decision::Keep => {}
        }
    }
    for (violation_id, step, owner_type) in owner_types(plans.state, rules) {
        plans.change_owner_type(&violation_id, step, owner_type);
    }
    plans.advance();
    plans.assign_missing_owners();
    work::release_letters(state, key, today, &mut out);
    work::notify(state, key, rules, today, &mut out);
    out.extend(children::contributions(state, key, rules));
    (out, applicable, views)
}

/// Whether a violation of `rule_id` in `slot` waits for its rule's schedule: it opens on the
/// first run day on or after the day it began, or at once when a run day passed since (the
/// catch-up); meanwhile the slot is kept in [`CustomerState::waiting`] and a timer is set for
/// the next run day.
fn waits_for_schedule(
    state: &mut CustomerState,
    rules: &RuleSet,
    slot: &str,
    rule_id: &str,
    today: NaiveDate,
) -> bool {
    let Some(schedule) = rules.schedule_of(rule_id) else {
        state.waiting.remove(slot);
        return false;
    };
    let since = match state.waiting.get(slot) {
        Some(waiting) if waiting.rule_id == rule_id => waiting.since.min(today),
        _ => today,
    };
    if schedule.runs_between(since, today) {
        state.waiting.remove(slot);
        return false;
    }
    state.waiting.insert(
        slot.to_string(),
        Waiting {
            rule_id: rule_id.to_string(),
            since,
        },
    );
    true
}

/// The rules for the customer. A rule monitoring a relationship applies at the customers that
/// have that role: parents with children in it (a child's figures count at its parent).
fn applicable<'r>(state: &CustomerState, key: &CustomerKey, rules: &'r RuleSet) -> Applicable<'r> {
    let mut applicable = rules.applicable(&key.set_id, &key.customer_id, state.group());
    let has_role =
        |role: MonitorRole| role == MonitorRole::BillTo || children::children_in(state, role) > 0;
    applicable.collection.retain(|(_, role), _| has_role(*role));
    applicable.assessment.retain(|r| has_role(r.monitor));
    applicable
}

/// For each relationship an applicable rule monitors, what it sees besides the customer's own
/// ledger: the children's lines and the totals with them.
fn role_views(state: &CustomerState, applicable: &Applicable<'_>) -> Views {
    applicable
        .collection
        .keys()
        .map(|(_, role)| *role)
        .chain(applicable.assessment.iter().map(|r| r.monitor))
        .filter(|role| *role != MonitorRole::BillTo)
        .map(|role| (role, children::child_ledger(state, role)))
        .collect()
}

/// One context per monitored role (the customer's own ledger, or it with its children's), so
/// the rules of a role share its figures.
fn role_contexts<'a>(
    state: &'a CustomerState,
    views: &'a Views,
    rules: &'a RuleSet,
    fx: &'a FxTable,
    today: NaiveDate,
) -> BTreeMap<MonitorRole, Context<'a>> {
    std::iter::once(MonitorRole::BillTo)
        .chain(views.keys().copied())
        .map(|role| {
            let children = views.get(&role);
            (
                role,
                Context::with_children(state, children, rules, fx, today),
            )
        })
        .collect()
}

/// Evaluates every applicable rule: a decision per violation slot, and the rules that could
/// not be evaluated (rule id → what blocks it).
fn decide<'r>(
    state: &CustomerState,
    views: &Views,
    rules: &'r RuleSet,
    fx: &FxTable,
    today: NaiveDate,
    applicable: &Applicable<'r>,
) -> (
    BTreeMap<String, Decision<'r>>,
    BTreeMap<String, Vec<String>>,
) {
    let contexts = role_contexts(state, views, rules, fx, today);
    let context = |role: MonitorRole| &contexts[&role];
    let mut decisions = BTreeMap::new();
    let mut blocked = BTreeMap::new();
    for ((condition, role), candidates) in &applicable.collection {
        let ctx = context(*role);
        let slot = collection_slot(condition, *role);
        if state.on_credit_hold() {
            // Moot while the hold lasts: not evaluated, so what blocked them still does.
            for rule in candidates {
                if let Some(b) = state.blocked.get(&rule.id) {
                    blocked.insert(rule.id.clone(), b.reasons.clone());
                }
            }
            decisions.insert(slot, Decision::End(CancelReason::CreditHoldExists));
            continue;
        }
        let mut winner = None;
        let mut any_blocked = false;
        // Blocked before a winner: a rule that may rank above it cannot be ruled out.
        let mut blocked_above = false;
        for rule in candidates.iter().copied() {
            match evaluate_collection(rule, ctx) {
                Verdict::Violated(evidence) if winner.is_none() => winner = Some((rule, evidence)),
                Verdict::Blocked(reasons) => {
                    any_blocked = true;
                    blocked_above |= winner.is_none();
                    blocked.insert(rule.id.clone(), reasons);
                }
                _ => {}
            }
        }
        let decision = match winner {
            Some(_) if blocked_above => Decision::Keep,
            Some((rule, mut evidence)) => {
                evidence.children = children::children_in(state, rule.monitor) as i32;
                let opening = Opening {
                    slot: slot.clone(),
                    business_unit: business_unit(ctx, None, &evidence),
                    rule_id: &rule.id,
                    condition: &rule.condition,
                    template: rules.template(&rule.template).expect("validated template"),
                    owner_type: rule.owner_type,
                    priority: rules.priority(rule),
                    role: rule.monitor,
                    item_key: None,
                    collection: true,
                    evidence,
                };
                match state.violations.get(&slot) {
                    Some(current)
                        if current.rule_id != rule.id
                            && rules.options.escalation
                            && opening.priority > current.priority =>
                    {
                        Decision::Upgrade(Box::new(opening))
                    }
                    _ => Decision::Violated(Box::new(opening)),
                }
            }
            None if any_blocked => Decision::Keep,
            None => Decision::End(CancelReason::NoLongerInViolation),
        };
        decisions.insert(slot, decision);
    }
    for rule in applicable.assessment.iter().copied() {
        let ctx = context(rule.monitor);
        let template = rules.template(&rule.template).expect("validated template");
        let opening = |slot: String, item_key: Option<String>, evidence| Opening {
            slot,
            business_unit: business_unit(ctx, item_key.as_deref(), &evidence),
            rule_id: &rule.id,
            condition: rule.code(),
            template,
            owner_type: rule.owner(),
            priority: template.priority,
            role: rule.monitor,
            item_key,
            collection: false,
            evidence,
        };
        let verdicts = if rule.check.is_item_level() {
            evaluate_items(rule, ctx)
                .into_iter()
                .map(|(item, verdict)| (item_slot(&rule.id, &item), Some(item), verdict))
                .collect()
        } else {
            vec![(rule.id.clone(), None, evaluate_customer(rule, ctx))]
        };
        for (slot, item, verdict) in verdicts {
            let decision = match verdict {
                Verdict::Violated(mut evidence) => {
                    evidence.children = children::children_in(state, rule.monitor) as i32;
                    Decision::Violated(Box::new(opening(slot.clone(), item, evidence)))
                }
                Verdict::Clear(_) => Decision::End(CancelReason::NoLongerInViolation),
                Verdict::Blocked(reasons) => {
                    blocked.entry(rule.id.clone()).or_insert(reasons);
                    Decision::Keep
                }
            };
            decisions.insert(slot, decision);
        }
    }
    broken_promises(state, rules, today, &mut decisions);
    (decisions, blocked)
}

/// A broken promise whose review is not done holds a plan from the rules' broken-promise
/// template (when they name one); reviewed or kept after all, the plan ends.
fn broken_promises<'r>(
    state: &CustomerState,
    rules: &'r RuleSet,
    today: NaiveDate,
    decisions: &mut BTreeMap<String, Decision<'r>>,
) {
    let Some(template) = rules
        .options
        .broken_promise_template
        .as_deref()
        .and_then(|t| rules.template(t))
    else {
        return;
    };
    for (conversation, amount, paid, currency, business_unit) in
        conversations::broken_unreviewed(state, rules, today)
    {
        let slot = conversations::promise_slot(conversation);
        let evidence = crate::model::Evidence {
            currency: currency.to_string(),
            past_due_amount: amount - paid,
            threshold_amount: amount,
            measured_amount: Some(paid),
            ..Default::default()
        };
        decisions.insert(
            slot.clone(),
            Decision::Violated(Box::new(Opening {
                slot,
                business_unit: business_unit.to_string(),
                rule_id: conversations::BROKEN_PROMISE_RULE,
                condition: conversations::BROKEN_PROMISE,
                template,
                owner_type: OwnerType::Collector,
                priority: template.priority,
                role: MonitorRole::BillTo,
                item_key: None,
                collection: false,
                evidence,
            })),
        );
    }
}

/// Where a violation's actions belong: its item's business unit, or that of the item that
/// caused it (the oldest past-due item, possibly a child's), or of any item the rule sees.
fn business_unit(
    ctx: &Context<'_>,
    item_key: Option<&str>,
    evidence: &crate::model::Evidence,
) -> String {
    let item = match item_key {
        Some(key) => ctx.item(key),
        None => evidence
            .oldest_item_id
            .as_ref()
            .and_then(|id| ctx.items().find(|i| &i.item_id == id)),
    };
    item.or_else(|| ctx.items().next())
        .map(|i| i.business_unit.clone())
        .unwrap_or_default()
}

/// Open actions whose owner type is no longer what their rule and template step say:
/// (violation id, step, owner type now wanted).
fn owner_types(state: &CustomerState, rules: &RuleSet) -> Vec<(String, i32, OwnerType)> {
    let mut out = Vec::new();
    for v in state.violations.values() {
        let rule_owner = match (
            rules.collection_rule(&v.rule_id),
            rules.assessment_rule(&v.rule_id),
        ) {
            (Some(rule), _) => rule.owner_type,
            (None, Some(rule)) => rule.owner(),
            (None, None) => continue,
        };
        let Some(template) = rules.template(&v.template_id) else {
            continue;
        };
        for (index, step) in template.steps.iter().enumerate() {
            let step_no = index as i32 + 1;
            let wanted = step.owner_type.unwrap_or(rule_owner);
            let stale = state.actions.values().any(|a| {
                a.violation_id == v.id
                    && a.step == step_no
                    && a.status.is_open()
                    && a.owner_type != wanted
            });
            if stale {
                out.push((v.id.clone(), step_no, wanted));
            }
        }
    }
    out
}

/// Flags the rules that cannot be evaluated and reports each change of that flag.
fn report_blocked(
    state: &mut CustomerState,
    key: &CustomerKey,
    rules: &RuleSet,
    blocked: BTreeMap<String, Vec<String>>,
    today: NaiveDate,
    out: &mut Vec<OutputEvent>,
) {
    let describe = |rule_id: &str| -> (String, MonitorRole) {
        match (
            rules.collection_rule(rule_id),
            rules.assessment_rule(rule_id),
        ) {
            (Some(r), _) => (r.condition.clone(), r.monitor),
            (None, Some(r)) => (r.code().to_string(), r.monitor),
            (None, None) => (String::new(), MonitorRole::BillTo),
        }
    };
    let ended: Vec<String> = state
        .blocked
        .keys()
        .filter(|rule| !blocked.contains_key(*rule))
        .cloned()
        .collect();
    for rule_id in ended {
        if let Some(was) = state.blocked.remove(&rule_id) {
            let (condition, role) = describe(&rule_id);
            out.push(plans::blocked_event(
                key,
                &rule_id,
                &condition,
                role,
                was.episode,
                None,
                today,
            ));
        }
    }
    for (rule_id, reasons) in blocked {
        if state
            .blocked
            .get(&rule_id)
            .is_some_and(|b| b.reasons == reasons)
        {
            continue;
        }
        // Every change of the flag is numbered anew: reasons that change back to earlier ones
        // are a new event, not a repeat of the earlier event (same id, dropped downstream).
        state.blocked_seq += 1;
        let episode = state.blocked_seq;
        let (condition, role) = describe(&rule_id);
        out.push(plans::blocked_event(
            key,
            &rule_id,
            &condition,
            role,
            episode,
            Some(&reasons),
            today,
        ));
        state.blocked.insert(rule_id, Blocked { episode, reasons });
    }
}

/// The timers the customer needs: one for the next date on which time alone can change a
/// rule's answer (ageing, item dates, a statistic's window, a new exchange rate), and one per
/// future action.
pub fn wanted_timers(
    state: &CustomerState,
    key: &CustomerKey,
    rules: &RuleSet,
    fx: &FxTable,
    today: NaiveDate,
) -> Vec<(String, NaiveDate)> {
    let applicable = applicable(state, key, rules);
    let views = role_views(state, &applicable);
    timers_for(state, key, rules, fx, today, &applicable, &views)
}

fn timers_for(
    state: &CustomerState,
    key: &CustomerKey,
    rules: &RuleSet,
    fx: &FxTable,
    today: NaiveDate,
    applicable: &Applicable<'_>,
    views: &Views,
) -> Vec<(String, NaiveDate)> {
    let mut timers: Vec<(String, NaiveDate)> = state
        .actions
        .values()
        .filter(|a| a.status == crate::model::ActionStatus::Future)
        .map(|a| ([ACTION_TIMER_PREFIX, &a.id].concat(), a.action_date))
        .collect();
    let contexts = role_contexts(state, views, rules, fx, today);
    let context = |role: MonitorRole| &contexts[&role];
    let currencies = state.currencies();
    // (anchor currency, rate type) of the rules that convert with the business date's rates.
    let mut anchors = Vec::new();
    let mut dates = Vec::new();
    for rule in applicable.collection.values().flatten() {
        dates.extend(conditions::next_change_collection(
            rule,
            context(rule.monitor),
        ));
        if rule.anchor_date.is_none() {
            anchors.push((rule.currency.as_str(), rule.rate_type.as_str()));
        }
    }
    for rule in &applicable.assessment {
        dates.extend(conditions::next_change_assessment(
            rule,
            context(rule.monitor),
        ));
        if rule.anchor_date.is_none() {
            anchors.push((rule.currency.as_str(), rule.rate_type.as_str()));
        }
    }
    for (anchor, rate_type) in anchors {
        dates.extend(
            currencies
                .iter()
                .filter(|c| **c != anchor)
                .filter_map(|c| fx.next_change(rate_type, c, anchor, today)),
        );
    }
    // Violations waiting for their rule's next run day.
    dates.extend(state.waiting.values().filter_map(|w| {
        rules
            .schedule_of(&w.rule_id)
            .and_then(|s| s.next_run_after(today))
    }));
    dates.extend(risk::next_change(state, key, rules, fx, today));
    dates.extend(work::next_change(state, rules, today));
    dates.extend(conversations::next_change(state, rules, today));
    if let Some(date) = dates.into_iter().min() {
        timers.push((AGEING_TIMER.to_string(), date));
    }
    timers
}

#[cfg(test)]
mod catalog_tests;
#[cfg(test)]
mod conversation_tests;
#[cfg(test)]
mod risk_tests;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod work_tests;
