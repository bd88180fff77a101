//! What collectors and their supervisors look at, computed from customers' states: the
//! customer's action list, future actions and action history; the owner action list with its
//! filters; the owner action status report and the condition status by owner and customer.
//! Pure functions: the HTTP API feeds them the states it reads.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::fx::FxTable;
use super::plans::subject_item;
use super::state::{Action, CustomerState};
use crate::model::{ActionStatus, CustomerKey};
use crate::rules::RuleSet;

/// An action as the lists show it: with its customer, the owner's supervisor and the AR
/// specialist of its item.
#[derive(Debug, Clone, Serialize)]
pub struct ActionView<'a> {
    pub set_id: &'a str,
    pub customer_id: &'a str,
    pub customer_name: Option<&'a str>,
    pub country: Option<&'a str>,
    pub state: Option<&'a str>,
    pub supervisor: Option<&'a str>,
    pub specialist: Option<&'a str>,
    pub risk_score: Option<Decimal>,
    /// Days on the list (0 for actions not on it).
    pub days_on_list: i64,
    /// The action's amounts in the display currency, when the list was asked for one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub display: Option<DisplayAmounts>,
    #[serde(flatten)]
    pub action: &'a Action,
}

/// The lists' Display Currency Conversion: `?display_currency=EUR[&rate_type=CRRNT]
/// [&effective_date=YYYY-MM-DD]` (rate type CRRNT and the business date by default).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct DisplayCurrency {
    pub display_currency: Option<String>,
    pub rate_type: Option<String>,
    pub effective_date: Option<NaiveDate>,
}

/// An action's balance and past-due amount converted for display; a missing rate says so
/// instead of showing a figure.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DisplayAmounts {
    pub currency: String,
    pub rate_type: String,
    pub effective_date: NaiveDate,
    pub balance: Option<Decimal>,
    pub past_due_amount: Option<Decimal>,
    /// Set when no rate converts the action's currency: the amounts are then absent.
    pub missing_rate: Option<String>,
}

impl DisplayCurrency {
    /// The asked-for currency, checked: `Ok(None)` when none was asked for.
    pub fn currency(&self) -> Result<Option<&str>, String> {
        match self.display_currency.as_deref() {
            None => Ok(None),
            Some(code) if iso_currency::Currency::from_code(code).is_some() => Ok(Some(code)),
            Some(code) => Err(format!("display_currency {code:?} is not an ISO 4217 code")),
        }
    }

    /// The action's amounts (its evidence's, in the rule's anchor currency) in the display
    /// currency at the rate in force on the effective date.
    pub fn amounts(
        &self,
        fx: &FxTable,
        action: &Action,
        today: NaiveDate,
    ) -> Option<DisplayAmounts> {
        let to = self.currency().ok()??;
        let rate_type = self.rate_type.as_deref().unwrap_or(DEFAULT_RATE_TYPE);
        let on = self.effective_date.unwrap_or(today);
        let evidence = &action.evidence;
        let convert = |amount: Decimal| fx.convert(amount, &evidence.currency, to, rate_type, on);
        let converted = convert(evidence.past_due_amount)
            .and_then(|past_due| Ok((past_due, evidence.balance.map(convert).transpose()?)));
        let (past_due_amount, balance, missing_rate) = match converted {
            Ok((past_due, balance)) => (Some(past_due), balance, None),
            Err(missing) => (None, None, Some(format!("{missing} in force on {on}"))),
        };
        Some(DisplayAmounts {
            currency: to.to_string(),
            rate_type: rate_type.to_string(),
            effective_date: on,
            balance,
            past_due_amount,
            missing_rate,
        })
    }

    /// Sets every view's display amounts.
    pub fn apply(&self, fx: &FxTable, views: &mut [ActionView<'_>], today: NaiveDate) {
        for view in views {
            view.display = self.amounts(fx, view.action, today);
        }
    }
}

/// The rate type of the manual's examples, and of rules that name none.
const DEFAULT_RATE_TYPE: &str = "CRRNT";

pub fn view<'a>(
    key: &'a CustomerKey,
    state: &'a CustomerState,
    rules: &'a RuleSet,
    action: &'a Action,
    today: NaiveDate,
) -> ActionView<'a> {
    let customer = state.customer.as_ref();
    ActionView {
        set_id: &key.set_id,
        customer_id: &key.customer_id,
        customer_name: customer.map(|c| c.name.as_str()),
        country: customer.and_then(|c| c.country.as_deref()),
        state: customer.and_then(|c| c.state.as_deref()),
        supervisor: action
            .owner
            .as_deref()
            .and_then(|o| rules.owner(o))
            .and_then(|o| o.supervisor.as_deref()),
        specialist: subject_item(state, action.item_key.as_deref(), &action.evidence)
            .and_then(|i| i.ar_specialist.as_deref()),
        risk_score: state.risk.as_ref().map(|r| r.total),
        days_on_list: match (action.on_list(), action.added_on) {
            (true, Some(added)) => (today - added).num_days(),
            _ => 0,
        },
        display: None,
        action,
    }
}

/// The customer's action list: New and Pending actions, oldest due first.
pub fn action_list(state: &CustomerState) -> Vec<&Action> {
    sorted(state.actions.values().filter(|a| a.on_list()), |a| {
        (a.due_date, a.id.clone())
    })
}

/// Actions waiting for their date: plan steps not yet on the list, and postponed actions.
pub fn future_actions(state: &CustomerState) -> Vec<&Action> {
    sorted(
        state
            .actions
            .values()
            .filter(|a| a.status == ActionStatus::Future),
        |a| (a.action_date, a.id.clone()),
    )
}

/// Every action of the customer, open and closed, in the order they were dated.
pub fn action_history(state: &CustomerState) -> Vec<&Action> {
    sorted(state.actions.values(), |a| (a.action_date, a.id.clone()))
}

fn sorted<'a, K: Ord>(
    actions: impl Iterator<Item = &'a Action>,
    key: impl Fn(&Action) -> K,
) -> Vec<&'a Action> {
    let mut out: Vec<&Action> = actions.collect();
    out.sort_by_key(|a| key(a));
    out
}

/// The owner action list's search: every field optional.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct OwnerFilter {
    /// New, Pending or Future (the list's statuses); absent: all three.
    pub status: Option<ActionStatus>,
    pub customer: Option<String>,
    pub supervisor: Option<String>,
    pub specialist: Option<String>,
    pub country: Option<String>,
    pub state: Option<String>,
}

/// `owner`'s open actions across `customers` that match `filter`, oldest due first.
pub fn owner_actions<'a>(
    customers: &'a [(CustomerKey, CustomerState)],
    rules: &'a RuleSet,
    owner: &str,
    filter: &OwnerFilter,
    today: NaiveDate,
) -> Vec<ActionView<'a>> {
    let mut out = Vec::new();
    for (key, state) in customers {
        if filter
            .customer
            .as_ref()
            .is_some_and(|c| *c != key.customer_id)
        {
            continue;
        }
        for action in state.actions.values() {
            let status_ok = match filter.status {
                Some(status) => action.status == status,
                None => action.status.is_open(),
            };
            if !status_ok || action.owner.as_deref() != Some(owner) {
                continue;
            }
            let v = view(key, state, rules, action, today);
            let matches = |wanted: &Option<String>, have: Option<&str>| {
                wanted.as_deref().is_none_or(|w| have == Some(w))
            };
            if matches(&filter.supervisor, v.supervisor)
                && matches(&filter.specialist, v.specialist)
                && matches(&filter.country, v.country)
                && matches(&filter.state, v.state)
            {
                out.push(v);
            }
        }
    }
    out.sort_by(|a, b| {
        (a.action.due_date, a.customer_id, &a.action.id).cmp(&(
            b.action.due_date,
            b.customer_id,
            &b.action.id,
        ))
    });
    out
}

/// One owner's day in the owner action status report.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct OwnerDay {
    pub owner: String,
    pub date: NaiveDate,
    /// Actions that went on the owner's list that day.
    pub added: u32,
    pub completed: u32,
    pub cancelled: u32,
}

/// Per owner and day in `from..=to`: actions added to the list, completed and cancelled.
/// Days without any are left out. Actions without an owner count under `(none)`.
pub fn owner_action_status(
    customers: &[(CustomerKey, CustomerState)],
    from: NaiveDate,
    to: NaiveDate,
    owner: Option<&str>,
) -> Vec<OwnerDay> {
    let mut days: BTreeMap<(String, NaiveDate), OwnerDay> = BTreeMap::new();
    let in_range = |d: &NaiveDate| (from..=to).contains(d);
    for action in customers.iter().flat_map(|(_, s)| s.actions.values()) {
        let who = action.owner.clone().unwrap_or_else(|| "(none)".into());
        if owner.is_some_and(|o| o != who) {
            continue;
        }
        let mut count = |date: NaiveDate, field: fn(&mut OwnerDay) -> &mut u32| {
            let day = days.entry((who.clone(), date)).or_insert_with(|| OwnerDay {
                owner: who.clone(),
                date,
                ..OwnerDay::default()
            });
            *field(day) += 1;
        };
        if let Some(added) = action.added_on.filter(in_range) {
            count(added, |d| &mut d.added);
        }
        if let Some(closed) = action.closed_on.filter(in_range) {
            match action.status {
                ActionStatus::Complete | ActionStatus::SystemComplete => {
                    count(closed, |d| &mut d.completed)
                }
                ActionStatus::Cancelled | ActionStatus::SystemCancelled => {
                    count(closed, |d| &mut d.cancelled)
                }
                _ => {}
            }
        }
    }
    days.into_values().collect()
}

/// A condition of a customer, with the owner's open actions on it.
#[derive(Debug, Clone, Serialize)]
pub struct ConditionStatus<'a> {
    pub owner: String,
    pub set_id: &'a str,
    pub customer_id: &'a str,
    pub customer_name: Option<&'a str>,
    pub condition: &'a str,
    pub rule_id: &'a str,
    pub violation_id: &'a str,
    pub since: NaiveDate,
    pub currency: &'a str,
    pub past_due_amount: Decimal,
    pub balance: Option<Decimal>,
    pub actions: Vec<&'a Action>,
}

/// The condition status by owner and customer: each active violation under each owner of
/// its open actions.
pub fn condition_status<'a>(
    customers: &'a [(CustomerKey, CustomerState)],
    owner: Option<&str>,
    customer: Option<&str>,
) -> Vec<ConditionStatus<'a>> {
    let mut out = Vec::new();
    for (key, state) in customers {
        if customer.is_some_and(|c| c != key.customer_id) {
            continue;
        }
        for violation in state.violations.values() {
            let mut by_owner: BTreeMap<String, Vec<&Action>> = BTreeMap::new();
            for action in state.actions.values() {
                if action.violation_id == violation.id && action.status.is_open() {
                    let who = action.owner.clone().unwrap_or_else(|| "(none)".into());
                    by_owner.entry(who).or_default().push(action);
                }
            }
            for (who, actions) in by_owner {
                if owner.is_some_and(|o| o != who) {
                    continue;
                }
                out.push(ConditionStatus {
                    owner: who,
                    set_id: &key.set_id,
                    customer_id: &key.customer_id,
                    customer_name: state.customer.as_ref().map(|c| c.name.as_str()),
                    condition: &violation.condition,
                    rule_id: &violation.rule_id,
                    violation_id: &violation.id,
                    since: violation.since,
                    currency: &violation.evidence.currency,
                    past_due_amount: violation.evidence.past_due_amount,
                    balance: violation.evidence.balance,
                    actions,
                });
            }
        }
    }
    out.sort_by(|a, b| {
        (&a.owner, a.set_id, a.customer_id, a.violation_id).cmp(&(
            &b.owner,
            b.set_id,
            b.customer_id,
            b.violation_id,
        ))
    });
    out
}
