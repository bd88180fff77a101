//! The collection condition (COLL): past-due amount and days past due.

use chrono::{Duration, NaiveDate};
use rust_decimal::Decimal;

use super::CustomerState;
use crate::model::{Evidence, ItemChange, OwnerType};
use crate::rules::CollectionRule;

/// A customer's figures for one collection rule on one business date.
#[derive(Debug, Clone, PartialEq)]
pub struct CollectionFigures {
    pub evidence: Evidence,
    /// The business unit of the oldest past-due item: where the action belongs.
    pub business_unit: String,
    oldest_item: Option<ItemChange>,
}

impl CollectionFigures {
    pub fn in_violation(&self, rule: &CollectionRule) -> bool {
        self.evidence.past_due_amount >= rule.min_past_due_amount
            && self.evidence.oldest_days_past_due > rule.days_past_due
    }

    /// The person an action with `owner_type` goes to: from the customer master, or from the
    /// item that caused the violation where the master has nobody (or for AR specialists).
    pub fn owner(&self, owner_type: OwnerType, state: &CustomerState) -> Option<String> {
        resolve_owner(owner_type, state, self.oldest_item.as_ref())
    }
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

fn days_past_due(item: &ItemChange, today: NaiveDate) -> i64 {
    (today - item.due_date).num_days()
}

/// Past-due amount: debit items whose due date has passed, less every open credit (a credit
/// memo or on-account payment is money the customer can already set against what is late).
/// Items in another currency than the rule's are counted in the evidence, not in the amount.
pub fn evaluate_collection(
    rule: &CollectionRule,
    state: &CustomerState,
    today: NaiveDate,
) -> CollectionFigures {
    let mut past_due = Decimal::ZERO;
    let mut other_currency = 0;
    let mut oldest: Option<&ItemChange> = None;
    for item in state.items.values() {
        if item.currency != rule.currency {
            other_currency += 1;
            continue;
        }
        if item.item_type.is_credit() {
            past_due += item.open_amount;
        } else if item.due_date < today {
            past_due += item.open_amount;
            // Ties go to the smallest item key (the map's order), so the choice is stable.
            if oldest.is_none_or(|o| item.due_date < o.due_date) {
                oldest = Some(item);
            }
        }
    }
    let oldest_days = oldest.map_or(0, |i| days_past_due(i, today));
    CollectionFigures {
        evidence: Evidence {
            currency: rule.currency.clone(),
            past_due_amount: past_due,
            threshold_amount: rule.min_past_due_amount,
            oldest_days_past_due: oldest_days as i32,
            threshold_days: rule.days_past_due,
            oldest_item_id: oldest.map(|i| i.item_id.clone()),
            items_in_other_currencies: other_currency,
        },
        business_unit: oldest
            .or_else(|| state.items.values().next())
            .map(|i| i.business_unit.clone())
            .unwrap_or_default(),
        oldest_item: oldest.cloned(),
    }
}

/// The next date after `today` on which ageing alone can change this rule's answer: an item
/// falling past due (the amount changes) or crossing the rule's days (the age test changes).
pub fn next_change(
    rule: &CollectionRule,
    state: &CustomerState,
    today: NaiveDate,
) -> Option<NaiveDate> {
    state
        .items
        .values()
        .filter(|i| i.currency == rule.currency && !i.item_type.is_credit())
        .flat_map(|i| {
            [
                i.due_date + Duration::days(1),
                i.due_date + Duration::days(i64::from(rule.days_past_due) + 1),
            ]
        })
        .filter(|d| *d > today)
        .min()
}
