//! The input events: what the ERP publishes about a customer's ledger.
//!
//! Field names are the JSON form and the Avro field names alike (see `schemas/`).

use chrono::NaiveDate;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::CustomerKey;

/// Receivable item types. Debit types carry a positive open amount, credit types a negative one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ItemType {
    Invoice,
    DebitMemo,
    CreditMemo,
    Chargeback,
    Deduction,
    OnAccount,
}

impl ItemType {
    /// The wire name (Avro symbol and JSON string).
    pub fn as_str(self) -> &'static str {
        match self {
            ItemType::Invoice => "INVOICE",
            ItemType::DebitMemo => "DEBIT_MEMO",
            ItemType::CreditMemo => "CREDIT_MEMO",
            ItemType::Chargeback => "CHARGEBACK",
            ItemType::Deduction => "DEDUCTION",
            ItemType::OnAccount => "ON_ACCOUNT",
        }
    }

    /// Credit items (credit memos, on-account payments) reduce what the customer owes.
    pub fn is_credit(self) -> bool {
        matches!(self, ItemType::CreditMemo | ItemType::OnAccount)
    }
}

/// A receivable item line as the ERP sees it after its latest activity. The ERP is the
/// source of truth for `open_amount`: a payment application reaches condmon as a new item change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ItemChange {
    pub set_id: String,
    pub business_unit: String,
    pub customer_id: String,
    pub item_id: String,
    pub item_line: i32,
    pub item_type: ItemType,
    pub original_amount: Decimal,
    pub open_amount: Decimal,
    pub currency: String,
    pub accounting_date: NaiveDate,
    pub due_date: NaiveDate,
    pub entry_type: String,
    pub entry_reason: Option<String>,
    pub disputed_amount: Decimal,
    pub ar_specialist: Option<String>,
    pub collector: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum PaymentStatus {
    /// Received, not yet posted.
    InProcess,
    /// Posted; what the applications do not cover is unapplied cash.
    Unapplied,
    /// Posted and applied in full to the listed items.
    Applied,
    /// Reversed or deleted in the ERP: it no longer counts anywhere.
    Cancelled,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PaymentApplication {
    pub item_id: String,
    pub item_line: i32,
    pub amount: Decimal,
}

/// The latest state of one payment. Re-sending the same payment replaces it, never adds to it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PaymentChange {
    pub set_id: String,
    pub business_unit: String,
    pub customer_id: String,
    pub payment_id: String,
    pub status: PaymentStatus,
    pub amount: Decimal,
    pub currency: String,
    pub payment_date: NaiveDate,
    pub applications: Vec<PaymentApplication>,
}

impl PaymentChange {
    pub fn applied_amount(&self) -> Decimal {
        self.applications.iter().map(|a| a.amount).sum()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgingBucket {
    pub category: String,
    pub amount: Decimal,
}

/// An aging run's result for one customer, business unit and aging ID.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgingSnapshot {
    pub set_id: String,
    pub business_unit: String,
    pub customer_id: String,
    pub aging_id: String,
    pub as_of_date: NaiveDate,
    pub currency: String,
    pub buckets: Vec<AgingBucket>,
}

/// Customer master data: limits, owners and relationships.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CustomerChange {
    pub set_id: String,
    pub customer_id: String,
    pub name: String,
    pub customer_group: Option<String>,
    pub currency: String,
    pub credit_limit: Option<Decimal>,
    pub credit_limit_pct_over: Option<Decimal>,
    pub profile_id: Option<String>,
    pub collector: Option<String>,
    pub credit_analyst: Option<String>,
    pub sales_person: Option<String>,
    pub corporate_parent: Option<String>,
    pub remit_from_parent: Option<String>,
    pub correspondence_parent: Option<String>,
}

/// Any event condmon consumes, tagged by the stream it came from.
#[derive(Debug, Clone, PartialEq)]
pub enum InputEvent {
    Item(ItemChange),
    Payment(PaymentChange),
    Aging(AgingSnapshot),
    Customer(CustomerChange),
}

impl InputEvent {
    pub fn customer_key(&self) -> CustomerKey {
        let (set_id, customer_id) = match self {
            InputEvent::Item(e) => (&e.set_id, &e.customer_id),
            InputEvent::Payment(e) => (&e.set_id, &e.customer_id),
            InputEvent::Aging(e) => (&e.set_id, &e.customer_id),
            InputEvent::Customer(e) => (&e.set_id, &e.customer_id),
        };
        CustomerKey::new(set_id, customer_id)
    }
}
