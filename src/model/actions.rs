//! The output events: actions on a customer's action plan and escalations of that plan.

use chrono::NaiveDate;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

/// Who an action is assigned to, resolved against the customer master or the item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Hash)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum OwnerType {
    Collector,
    CreditAnalyst,
    SalesPerson,
    ArSpecialist,
}

/// Action statuses as the receivables manual names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Hash, PartialOrd, Ord)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ActionStatus {
    /// Waiting for its action date; not yet on the owner's action list.
    Future,
    /// On the action list, not reviewed.
    New,
    /// Reviewed, not performed.
    Pending,
    Complete,
    Cancelled,
    /// Completed by condmon itself (automated steps).
    SystemComplete,
    /// Cancelled by condmon itself (e.g. the violation ended).
    SystemCancelled,
}

impl ActionStatus {
    pub const ALL: [ActionStatus; 7] = [
        ActionStatus::Future,
        ActionStatus::New,
        ActionStatus::Pending,
        ActionStatus::Complete,
        ActionStatus::Cancelled,
        ActionStatus::SystemComplete,
        ActionStatus::SystemCancelled,
    ];

    /// Future, New and Pending actions can still change; the rest are history.
    pub fn is_open(self) -> bool {
        matches!(
            self,
            ActionStatus::Future | ActionStatus::New | ActionStatus::Pending
        )
    }

    /// Stable lower-case name for metric labels and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            ActionStatus::Future => "future",
            ActionStatus::New => "new",
            ActionStatus::Pending => "pending",
            ActionStatus::Complete => "complete",
            ActionStatus::Cancelled => "cancelled",
            ActionStatus::SystemComplete => "system_complete",
            ActionStatus::SystemCancelled => "system_cancelled",
        }
    }
}

/// Why an action was cancelled. The manual's wording is the wire form.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum CancelReason {
    #[serde(rename = "No Longer in Violation")]
    NoLongerInViolation,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ActionEventKind {
    /// The plan step exists (as a Future action, or directly on the list when its day has come).
    Created,
    /// A Future action reached its action date and moved to the action list.
    MovedToList,
    StatusChanged,
    Cancelled,
    Completed,
    /// An action created without an owner (the customer master arrived after the ledger
    /// event) got one.
    OwnerAssigned,
}

/// What made a violation true when it was detected: the figures and the thresholds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Evidence {
    pub currency: String,
    pub past_due_amount: Decimal,
    pub threshold_amount: Decimal,
    pub oldest_days_past_due: i32,
    pub threshold_days: i32,
    pub oldest_item_id: Option<String>,
    /// Open items in other currencies, which this rule could not count.
    pub items_in_other_currencies: i32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActionEvent {
    /// Deterministic: the same logical transition always has the same id.
    pub event_id: String,
    pub kind: ActionEventKind,
    pub set_id: String,
    pub customer_id: String,
    pub business_unit: String,
    pub action_id: String,
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
    pub previous_status: Option<ActionStatus>,
    pub action_date: NaiveDate,
    pub due_date: NaiveDate,
    pub cancel_reason: Option<CancelReason>,
    pub evidence: Evidence,
    /// The business date on which the transition happened.
    pub business_date: NaiveDate,
}

/// A plan moved to a later, sharper step: the signal a supervisor dashboard watches.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EscalationEvent {
    pub event_id: String,
    pub set_id: String,
    pub customer_id: String,
    pub violation_id: String,
    pub rule_id: String,
    pub template_id: String,
    pub from_step: i32,
    pub to_step: i32,
    pub action_id: String,
    pub action_code: String,
    pub days_in_violation: i32,
    pub evidence: Evidence,
    pub business_date: NaiveDate,
}

/// Everything condmon emits, one variant per output stream.
#[derive(Debug, Clone, PartialEq)]
pub enum OutputEvent {
    Action(ActionEvent),
    Escalation(EscalationEvent),
}
