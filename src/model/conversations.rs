//! Conversations with customers: regular ones, promise-to-pay ones and customer calls with
//! their call actions; what condmon says about promises and exclusions from dunning.

use chrono::NaiveDate;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

/// A conversation as the collector's tool last saved it: the whole record each time, so an
/// update replaces it and a call action left out of it is deleted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConversationChange {
    pub set_id: String,
    pub customer_id: String,
    pub conversation_id: String,
    pub business_unit: String,
    /// The collector (or other user) who had the conversation.
    pub user: String,
    #[serde(with = "crate::model::compact::date")]
    pub conversation_date: NaiveDate,
    #[serde(default)]
    pub contact: Option<String>,
    #[serde(default)]
    pub keywords: Vec<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub follow_up: Option<FollowUp>,
    /// Review the conversation on this date; `reviewed` once done.
    #[serde(default)]
    pub review_date: Option<NaiveDate>,
    #[serde(default)]
    pub reviewed: bool,
    /// A supervisor is to review the conversation.
    #[serde(default)]
    pub supervisor_review: bool,
    #[serde(default)]
    pub supervisor: Option<String>,
    /// Items the conversation is about.
    #[serde(default)]
    pub references: Vec<ItemRef>,
    /// A promise to pay: this is a promise-date conversation.
    #[serde(default)]
    pub promise: Option<Promise>,
    /// A customer call's actions.
    #[serde(default)]
    pub call_actions: Vec<CallAction>,
    /// The conversation was deleted: its promise, follow-up and call actions go with it.
    #[serde(default)]
    pub deleted: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ItemRef {
    pub item_id: String,
    pub item_line: i32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FollowUp {
    /// The action to take (default `FLUP`).
    #[serde(default)]
    pub action_code: Option<String>,
    pub owner: String,
    #[serde(with = "crate::model::compact::date")]
    pub date: NaiveDate,
    #[serde(default)]
    pub done: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Promise {
    #[serde(with = "crate::model::compact::date")]
    pub date: NaiveDate,
    #[serde(with = "crate::model::compact::decimal")]
    pub amount: Decimal,
    pub currency: String,
    /// The items the promise covers; empty: the customer's account.
    #[serde(default)]
    pub items: Vec<ItemRef>,
    /// The promise date was reviewed (promise-date review done).
    #[serde(default)]
    pub reviewed: bool,
    /// The broken promise was reviewed (broken-promise review done).
    #[serde(default)]
    pub broken_reviewed: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum CallActionKind {
    /// Notify management the item is still outstanding (an ALRT action).
    Alert,
    /// Contact the customer for more information (a CALL action).
    Call,
    /// The transaction needs further collection action (a COLA action).
    CollectionAction,
    /// The item needs follow-up (a CFUP action).
    CollectionFollowUp,
    /// Credit the item line: a credit-memo request to the ERP.
    CreditMemo,
    /// Take the customer (or a site) off dunning.
    ExcludeFromDunning,
    /// Take the customer back on dunning (ends a customer-level exclusion).
    IncludeInDunning,
    /// Place an item line amount in dispute; amount 0 (or deleting the call action) ends it.
    PartialDispute,
}

impl CallActionKind {
    /// The action a call action puts on the owner's list, if it is one.
    pub fn action_code(self) -> Option<&'static str> {
        match self {
            CallActionKind::Alert => Some("ALRT"),
            CallActionKind::Call => Some("CALL"),
            CallActionKind::CollectionAction => Some("COLA"),
            CallActionKind::CollectionFollowUp => Some("CFUP"),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CallAction {
    /// Unique within the conversation: an update of the same call action keeps it.
    pub id: String,
    pub kind: CallActionKind,
    #[serde(default)]
    pub item: Option<ItemRef>,
    /// Partial dispute: the amount in dispute; credit memo: the amount to credit.
    #[serde(default)]
    pub amount: Option<Decimal>,
    /// The action's owner (default: the customer's collector) and date (default: the call's).
    #[serde(default)]
    pub owner: Option<String>,
    #[serde(default)]
    pub date: Option<NaiveDate>,
    #[serde(default)]
    pub notes: Option<String>,
    /// Exclude from dunning: the customer site (absent: the customer).
    #[serde(default)]
    pub site: Option<String>,
    /// Exclude a site without a profile of its own while another site has one: true updates
    /// the customer-level profile (the customer is excluded), false does not. Absent, condmon
    /// asks (a decision event) and changes nothing.
    #[serde(default)]
    pub update_customer_profile: Option<bool>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Hash)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum PromiseStatus {
    Open,
    Kept,
    PartiallyKept,
    Broken,
}

impl PromiseStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            PromiseStatus::Open => "OPEN",
            PromiseStatus::Kept => "KEPT",
            PromiseStatus::PartiallyKept => "PARTIALLY_KEPT",
            PromiseStatus::Broken => "BROKEN",
        }
    }
}

/// A promise changed status: kept the moment payments cover it, partially kept by a partial
/// payment, broken when its date plus the grace period passed uncovered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PromiseStatusEvent {
    pub event_id: String,
    pub set_id: String,
    pub customer_id: String,
    pub business_unit: String,
    pub conversation_id: String,
    pub status: PromiseStatus,
    pub previous_status: Option<PromiseStatus>,
    #[serde(with = "crate::model::compact::date")]
    pub promise_date: NaiveDate,
    /// The last day a payment keeps the promise (promise date + grace business days).
    #[serde(with = "crate::model::compact::date")]
    pub deadline: NaiveDate,
    #[serde(with = "crate::model::compact::decimal")]
    pub amount: Decimal,
    /// Paid towards the promise so far.
    #[serde(with = "crate::model::compact::decimal")]
    pub paid: Decimal,
    pub currency: String,
    pub items: Vec<ItemRef>,
    pub collector: Option<String>,
    pub supervisor: Option<String>,
    #[serde(with = "crate::model::compact::date")]
    pub business_date: NaiveDate,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum DunningDecision {
    /// The customer is excluded from dunning.
    CustomerExcluded,
    /// The site (with a profile of its own) is excluded.
    SiteExcluded,
    /// The site has no profile while another site has one; the customer-level profile was
    /// updated as the call said: the customer is excluded.
    CustomerProfileUpdated,
    /// The site has no profile while another site has one; the call said not to update the
    /// customer-level profile: nothing changed.
    Rejected,
    /// The site has no profile while another site has one and the call did not say whether
    /// to update the customer-level profile: nothing changed until it does.
    DecisionNeeded,
    /// The customer is back on dunning.
    CustomerIncluded,
}

/// The answer to an exclusion from (or re-inclusion in) dunning: never a silent partial update.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DunningDecisionEvent {
    pub event_id: String,
    pub set_id: String,
    pub customer_id: String,
    pub conversation_id: String,
    pub call_action_id: String,
    pub site: Option<String>,
    pub decision: DunningDecision,
    pub message: String,
    #[serde(with = "crate::model::compact::date")]
    pub business_date: NaiveDate,
}
