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
    #[serde(with = "crate::model::compact::decimal")]
    pub original_amount: Decimal,
    #[serde(with = "crate::model::compact::decimal")]
    pub open_amount: Decimal,
    pub currency: String,
    #[serde(with = "crate::model::compact::date")]
    pub accounting_date: NaiveDate,
    #[serde(with = "crate::model::compact::date")]
    pub due_date: NaiveDate,
    pub entry_type: String,
    pub entry_reason: Option<String>,
    #[serde(with = "crate::model::compact::decimal")]
    pub disputed_amount: Decimal,
    pub ar_specialist: Option<String>,
    pub collector: Option<String>,
    /// The item whose closing created this one (a new debit or credit the ERP created), with
    /// its line. Appended last, defaulted: stored ledgers written before have no such fields.
    #[serde(default)]
    pub origin_item_id: Option<String>,
    #[serde(default)]
    pub origin_item_line: Option<i32>,
    /// The payment this item was created from (an on-account item of the Payment Predictor).
    #[serde(default)]
    pub origin_payment_id: Option<String>,
}

impl ItemChange {
    /// An invoice line 0 open for its whole amount, accounted 30 days before it is due, nothing
    /// in dispute, no owners named (set what differs).
    pub fn invoice(
        key: &CustomerKey,
        business_unit: &str,
        item_id: &str,
        amount: Decimal,
        currency: &str,
        due_date: NaiveDate,
    ) -> Self {
        ItemChange {
            set_id: key.set_id.clone(),
            business_unit: business_unit.into(),
            customer_id: key.customer_id.clone(),
            item_id: item_id.into(),
            item_line: 0,
            item_type: ItemType::Invoice,
            original_amount: amount,
            open_amount: amount,
            currency: currency.into(),
            accounting_date: due_date - chrono::Duration::days(30),
            due_date,
            entry_type: "IN".into(),
            entry_reason: None,
            disputed_amount: Decimal::ZERO,
            ar_specialist: None,
            collector: None,
            origin_item_id: None,
            origin_item_line: None,
            origin_payment_id: None,
        }
    }
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
    /// Returned unpaid (non-sufficient funds): it no longer counts as cash, and it is counted
    /// in the customer's NSF statistic.
    Nsf,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PaymentApplication {
    pub item_id: String,
    pub item_line: i32,
    #[serde(with = "crate::model::compact::decimal")]
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
    #[serde(with = "crate::model::compact::decimal")]
    pub amount: Decimal,
    pub currency: String,
    #[serde(with = "crate::model::compact::date")]
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
    #[serde(with = "crate::model::compact::decimal")]
    pub amount: Decimal,
}

/// An aging run's result for one customer, business unit and aging ID.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgingSnapshot {
    pub set_id: String,
    pub business_unit: String,
    pub customer_id: String,
    pub aging_id: String,
    #[serde(with = "crate::model::compact::date")]
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
    /// The customer is on credit hold: collection actions it makes moot are cancelled.
    #[serde(default)]
    pub credit_hold: bool,
    /// Where the customer is (owner action lists filter by them).
    #[serde(default)]
    pub country: Option<String>,
    #[serde(default)]
    pub state: Option<String>,
    /// The customer gets no dunning letters: DLTR actions complete without one, and say so.
    #[serde(default)]
    pub exclude_from_dunning: bool,
    /// The customer's sites and the dunning profile each has of its own (if any).
    #[serde(default)]
    pub sites: Vec<CustomerSite>,
}

impl CustomerChange {
    /// A customer master with only its name and currency: no limit, owners, parents, sites
    /// (set what differs).
    pub fn new(key: &CustomerKey, name: &str, currency: &str) -> Self {
        CustomerChange {
            set_id: key.set_id.clone(),
            customer_id: key.customer_id.clone(),
            name: name.into(),
            customer_group: None,
            currency: currency.into(),
            credit_limit: None,
            credit_limit_pct_over: None,
            profile_id: None,
            collector: None,
            credit_analyst: None,
            sales_person: None,
            corporate_parent: None,
            remit_from_parent: None,
            correspondence_parent: None,
            credit_hold: false,
            country: None,
            state: None,
            exclude_from_dunning: false,
            sites: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CustomerSite {
    pub site_id: String,
    #[serde(default)]
    pub profile_id: Option<String>,
}

/// One ERP history figure (CUST_HISTORY): a statistic of a customer for a business unit,
/// fiscal year and accounting period. Amount-based statistics carry a currency; count- and
/// days-based ones (average days late, number of NSF payments) do not.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistoryChange {
    pub set_id: String,
    pub customer_id: String,
    pub business_unit: String,
    pub history_id: String,
    pub fiscal_year: i32,
    pub accounting_period: i32,
    #[serde(with = "crate::model::compact::decimal")]
    pub value: Decimal,
    pub currency: Option<String>,
}

/// A credit agency's (Dun & Bradstreet) report on a customer: the financials risk scoring
/// reads. Amounts are in `currency`; a figure the report lacks is absent, never zero.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CreditAgencyRecord {
    pub set_id: String,
    pub customer_id: String,
    pub duns_number: String,
    #[serde(with = "crate::model::compact::date")]
    pub report_date: NaiveDate,
    pub currency: String,
    pub sales: Option<Decimal>,
    pub total_assets: Option<Decimal>,
    pub current_assets: Option<Decimal>,
    pub total_current_liabilities: Option<Decimal>,
    pub net_income: Option<Decimal>,
    pub inventory: Option<Decimal>,
    /// The agency's payment index (not an amount).
    pub paydex: Option<Decimal>,
}

/// An exchange rate: one unit of `from_currency` is worth `rate` units of `to_currency`, for
/// `rate_type`, from `effective_date` until the next rate of the same pair and type.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FxRate {
    pub rate_type: String,
    pub from_currency: String,
    pub to_currency: String,
    #[serde(with = "crate::model::compact::date")]
    pub effective_date: NaiveDate,
    #[serde(with = "crate::model::compact::decimal")]
    pub rate: Decimal,
}

impl FxRate {
    /// The compacted topic's key: one record per pair, type and effective date.
    pub fn key(&self) -> String {
        format!(
            "{}|{}|{}|{}",
            self.rate_type, self.from_currency, self.to_currency, self.effective_date
        )
    }
}

/// What a child customer contributes to a parent that rules monitor in a relationship
/// (corporate, correspondence or remit-from): its open items summarised by business unit,
/// currency and due date, and its cash. condmon sends it to the parent's partition through an
/// internal topic keyed by the parent, so the parent's figures are right whichever partition
/// its children live on. No lines and no cash withdraws the child.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChildFigures {
    pub set_id: String,
    /// The parent: the customer this record is keyed by.
    pub customer_id: String,
    pub child_id: String,
    pub role: super::MonitorRole,
    pub lines: Vec<ChildLine>,
    pub cash: Vec<ChildCash>,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ChildLine {
    pub business_unit: String,
    pub currency: String,
    #[serde(with = "crate::model::compact::date")]
    pub due_date: NaiveDate,
    /// Credits (credit memos, on-account) rather than debits.
    pub credit: bool,
    #[serde(with = "crate::model::compact::decimal")]
    pub open_amount: Decimal,
    #[serde(with = "crate::model::compact::decimal")]
    pub disputed_amount: Decimal,
    /// The smallest item id of the line: named as the oldest item when it is.
    pub item_id: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChildCash {
    pub currency: String,
    #[serde(with = "crate::model::compact::decimal")]
    pub unapplied: Decimal,
    #[serde(with = "crate::model::compact::decimal")]
    pub in_process: Decimal,
}

impl ChildFigures {
    pub fn is_withdrawal(&self) -> bool {
        self.lines.is_empty() && self.cash.is_empty()
    }
}

/// Any event condmon consumes, tagged by the stream it came from.
#[derive(Debug, Clone, PartialEq)]
pub enum InputEvent {
    Item(ItemChange),
    Payment(PaymentChange),
    Aging(AgingSnapshot),
    Customer(CustomerChange),
    History(HistoryChange),
    CreditAgency(CreditAgencyRecord),
    /// A child's figures for its parent (condmon's own internal stream).
    ChildFigures(ChildFigures),
    /// Reference data shared by every customer, not a customer's event.
    FxRate(FxRate),
    /// A collector's command on the customer's actions.
    Command(super::ActionCommand),
    /// A conversation with the customer, as last saved.
    Conversation(super::ConversationChange),
}

impl InputEvent {
    /// The customer the event belongs to; `None` for reference data (exchange rates).
    pub fn customer_key(&self) -> Option<CustomerKey> {
        let (set_id, customer_id) = match self {
            InputEvent::Item(e) => (&e.set_id, &e.customer_id),
            InputEvent::Payment(e) => (&e.set_id, &e.customer_id),
            InputEvent::Aging(e) => (&e.set_id, &e.customer_id),
            InputEvent::Customer(e) => (&e.set_id, &e.customer_id),
            InputEvent::History(e) => (&e.set_id, &e.customer_id),
            InputEvent::CreditAgency(e) => (&e.set_id, &e.customer_id),
            InputEvent::ChildFigures(e) => (&e.set_id, &e.customer_id),
            InputEvent::Command(e) => (&e.set_id, &e.customer_id),
            InputEvent::Conversation(e) => (&e.set_id, &e.customer_id),
            InputEvent::FxRate(_) => return None,
        };
        Some(CustomerKey::new(set_id, customer_id))
    }

    /// The Kafka record key the event must carry.
    pub fn record_key(&self) -> String {
        match self {
            InputEvent::FxRate(rate) => rate.key(),
            other => other
                .customer_key()
                .expect("customer events have a customer")
                .encode(),
        }
    }
}
