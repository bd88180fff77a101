//! What condmon knows about one customer: its open ledger and its action plans.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use crate::model::{
    ActionStatus, AgingSnapshot, CancelReason, CustomerChange, Evidence, InputEvent, ItemChange,
    OwnerType, PaymentChange, PaymentStatus,
};

/// One customer's state. Stored as one value: every decision about a customer reads all of it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CustomerState {
    pub customer: Option<CustomerChange>,
    /// Open items by `item_id#line`. Items whose open amount reached zero are dropped.
    pub items: BTreeMap<String, ItemChange>,
    /// Payments in process or not fully applied, by payment id.
    pub payments: BTreeMap<String, PaymentChange>,
    /// Latest aging snapshot by `business_unit#aging_id`.
    pub aging: BTreeMap<String, AgingSnapshot>,
    /// Active violations by rule id.
    pub violations: BTreeMap<String, Violation>,
    /// Every action of this customer by action id, open and historical.
    pub actions: BTreeMap<String, Action>,
    /// Numbers the customer's violations, so a repeated violation gets new, stable ids.
    pub violation_seq: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Violation {
    pub id: String,
    pub rule_id: String,
    pub template_id: String,
    pub since: NaiveDate,
    /// The figures as last evaluated.
    pub evidence: Evidence,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Action {
    pub id: String,
    pub violation_id: String,
    pub rule_id: String,
    pub condition: String,
    pub template_id: String,
    pub step: i32,
    pub action_code: String,
    pub action_parameter: Option<String>,
    pub owner_type: OwnerType,
    pub owner: Option<String>,
    pub automated: bool,
    pub status: ActionStatus,
    pub business_unit: String,
    pub action_date: NaiveDate,
    pub due_date: NaiveDate,
    pub cancel_reason: Option<CancelReason>,
    pub evidence: Evidence,
    /// When the action reached Complete/Cancelled (for history).
    pub closed_on: Option<NaiveDate>,
}

fn item_key(item_id: &str, line: i32) -> String {
    format!("{item_id}#{line}")
}

impl CustomerState {
    /// Folds an input event into the ledger. Decisions are made afterwards, by `reconcile`.
    pub fn apply(&mut self, event: InputEvent) {
        match event {
            InputEvent::Item(item) => {
                let key = item_key(&item.item_id, item.item_line);
                if item.open_amount.is_zero() {
                    self.items.remove(&key);
                } else {
                    self.items.insert(key, item);
                }
            }
            InputEvent::Payment(payment) => {
                let settled = match payment.status {
                    PaymentStatus::Cancelled => true,
                    PaymentStatus::Applied => true,
                    PaymentStatus::InProcess | PaymentStatus::Unapplied => false,
                };
                if settled {
                    self.payments.remove(&payment.payment_id);
                } else {
                    self.payments.insert(payment.payment_id.clone(), payment);
                }
            }
            InputEvent::Aging(snapshot) => {
                let key = format!("{}#{}", snapshot.business_unit, snapshot.aging_id);
                let newer = self
                    .aging
                    .get(&key)
                    .is_none_or(|old| old.as_of_date <= snapshot.as_of_date);
                if newer {
                    self.aging.insert(key, snapshot);
                }
            }
            InputEvent::Customer(customer) => self.customer = Some(customer),
        }
    }
}
