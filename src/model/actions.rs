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
    /// The condition that generated the action no longer exists.
    #[serde(rename = "No Longer in Violation")]
    NoLongerInViolation,
    /// The item the action was about has a zero balance.
    #[serde(rename = "Item Closed")]
    ItemClosed,
    /// The customer was put on credit hold: further collection steps are moot.
    #[serde(rename = "Credit Hold Exists")]
    CreditHoldExists,
    /// The owner type of the rule changed: the action is re-created for the new owner.
    #[serde(rename = "Rule Owner Change")]
    RuleOwnerChange,
    /// A violation with a higher-priority template replaced the plan (escalation option).
    #[serde(rename = "Template Upgrade")]
    TemplateUpgrade,
    /// Its owner (or creator) cancelled it.
    #[serde(rename = "Operator Cancelled")]
    OperatorCancelled,
}

impl CancelReason {
    pub fn as_str(self) -> &'static str {
        match self {
            CancelReason::NoLongerInViolation => "No Longer in Violation",
            CancelReason::ItemClosed => "Item Closed",
            CancelReason::CreditHoldExists => "Credit Hold Exists",
            CancelReason::RuleOwnerChange => "Rule Owner Change",
            CancelReason::TemplateUpgrade => "Template Upgrade",
            CancelReason::OperatorCancelled => "Operator Cancelled",
        }
    }
}

/// Which customer of a relationship a rule monitors: the customer itself, or a parent whose
/// figures include its children's.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, Default,
)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum MonitorRole {
    #[default]
    BillTo,
    Corporate,
    Correspondence,
    RemitFrom,
}

impl MonitorRole {
    pub fn as_str(self) -> &'static str {
        match self {
            MonitorRole::BillTo => "BILL_TO",
            MonitorRole::Corporate => "CORPORATE",
            MonitorRole::Correspondence => "CORRESPONDENCE",
            MonitorRole::RemitFrom => "REMIT_FROM",
        }
    }
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
    /// A command gave the action to another owner.
    Reassigned,
    /// A command moved a future action to another date.
    Redated,
    /// What performing it did changed afterwards (its letter was superseded by a newer one, or
    /// suppressed because the customer was excluded from dunning meanwhile).
    ResultChanged,
}

/// What made a violation true when it was detected: the figures and the thresholds, all in
/// the rule's anchor currency.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Evidence {
    /// The rule's anchor currency: every amount here is in it.
    pub currency: String,
    #[serde(with = "crate::model::compact::decimal")]
    pub past_due_amount: Decimal,
    /// The amount the measured figure was compared with (0 when the rule has none).
    #[serde(with = "crate::model::compact::decimal")]
    pub threshold_amount: Decimal,
    pub oldest_days_past_due: i32,
    /// The days the rule compares with (0 when it has none).
    pub threshold_days: i32,
    pub oldest_item_id: Option<String>,
    /// Open items in another currency than the anchor, converted at `rate_type`.
    pub items_in_other_currencies: i32,
    #[serde(default)]
    pub rate_type: Option<String>,
    /// The customer balance, after the installation options (unapplied, in-process, disputed).
    #[serde(default)]
    pub balance: Option<Decimal>,
    /// The figure the rule compared with `threshold_amount`.
    #[serde(default)]
    pub measured_amount: Option<Decimal>,
    /// The credit limit (times 1 + percent over, where the condition uses it).
    #[serde(default)]
    pub credit_limit: Option<Decimal>,
    #[serde(default)]
    pub disputed_amount: Option<Decimal>,
    #[serde(default)]
    pub unapplied_amount: Option<Decimal>,
    #[serde(default)]
    pub in_process_amount: Option<Decimal>,
    /// Past-due amounts by aging category, for rules with an aging definition.
    #[serde(default)]
    pub buckets: Vec<BucketAmount>,
    #[serde(default)]
    pub statistic: Option<StatisticEvidence>,
    /// The item, for item-level conditions.
    #[serde(default)]
    pub item: Option<ItemEvidence>,
    /// Children whose figures are included (for a rule monitoring a parent).
    #[serde(default)]
    pub children: i32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BucketAmount {
    pub category: String,
    #[serde(with = "crate::model::compact::decimal")]
    pub amount: Decimal,
}

/// A history statistic compared by a Key Statistics (KSTE) rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatisticEvidence {
    pub history_id: String,
    /// `CONDMON` (kept by condmon from item and payment events) or `ERP` (history events).
    pub source: String,
    #[serde(with = "crate::model::compact::decimal")]
    pub value: Decimal,
    pub comparison: String,
    #[serde(with = "crate::model::compact::decimal")]
    pub threshold: Decimal,
    /// Payments, sales or periods the value was computed from.
    pub samples: i32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ItemEvidence {
    pub item_id: String,
    pub item_line: i32,
    pub item_type: String,
    pub currency: String,
    #[serde(with = "crate::model::compact::decimal")]
    pub open_amount: Decimal,
    #[serde(with = "crate::model::compact::decimal")]
    pub disputed_amount: Decimal,
    pub entry_type: String,
    pub entry_reason: Option<String>,
    #[serde(with = "crate::model::compact::date")]
    pub due_date: NaiveDate,
    #[serde(with = "crate::model::compact::date")]
    pub accounting_date: NaiveDate,
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
    #[serde(with = "crate::model::compact::date")]
    pub action_date: NaiveDate,
    #[serde(with = "crate::model::compact::date")]
    pub due_date: NaiveDate,
    pub cancel_reason: Option<CancelReason>,
    pub evidence: Evidence,
    /// The business date on which the transition happened.
    #[serde(with = "crate::model::compact::date")]
    pub business_date: NaiveDate,
    /// The item, for actions of item-level conditions.
    #[serde(default)]
    pub item_id: Option<String>,
    #[serde(default)]
    pub item_line: Option<i32>,
    /// The priority of the rule (collection) or template that produced the action.
    #[serde(default)]
    pub priority: i32,
    #[serde(default)]
    pub monitor_role: MonitorRole,
    /// The user who added the action by hand; absent for plan steps.
    #[serde(default)]
    pub created_by: Option<String>,
    /// What performing the action did ("dunning letter requested", "suppressed: ...").
    #[serde(default)]
    pub result: Option<String>,
    /// Correspondence actions: EMAIL, FAX or PRINT, as performed.
    #[serde(default)]
    pub delivery_method: Option<String>,
    /// The business calendar its due date was counted in; `STANDARD` (weekends only) when no
    /// calendar of the rules names its business unit — the flag that a unit was left out.
    #[serde(default)]
    pub calendar: Option<String>,
}

/// What happened to a condition of a customer: a violation began or ended, or a rule could
/// not be evaluated (and why), or could again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ConditionEventKind {
    ViolationOpened,
    ViolationEnded,
    /// The rule cannot be evaluated (e.g. an exchange rate is missing): the customer is
    /// flagged and its plans for the rule stay as they are until it can.
    EvaluationBlocked,
    EvaluationRestored,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConditionEvent {
    pub event_id: String,
    pub kind: ConditionEventKind,
    pub set_id: String,
    pub customer_id: String,
    pub rule_id: String,
    pub condition: String,
    pub violation_id: Option<String>,
    pub item_id: Option<String>,
    pub item_line: Option<i32>,
    pub monitor_role: MonitorRole,
    /// Why a violation ended, or what blocks the evaluation.
    pub reason: Option<String>,
    pub evidence: Evidence,
    #[serde(with = "crate::model::compact::date")]
    pub business_date: NaiveDate,
}

/// How one element of a risk score came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ElementStatus {
    /// The input fell in a range (or was a Y/N flag) and scored.
    Scored,
    /// The input is outside every range of the element.
    NoRange,
    /// An input the element needs is missing (no history for the period, no credit limit...).
    MissingInput,
    /// The element's formula divides by zero.
    DivisionByZero,
    /// An amount could not be converted to the rule's anchor currency.
    MissingRate,
}

/// One element of a risk score: its input, the range it hit and what it weighed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RiskElement {
    pub name: String,
    /// The scoring group (SYSTEM_HISTORY, USER_HISTORY, AGING, ITEM, CUSTOMER_ACTIVITY,
    /// CUSTOMER, CREDIT_AGENCY, RATIOS).
    pub group: String,
    pub status: ElementStatus,
    pub input_value: Option<Decimal>,
    /// `Y` or `N` for flag elements.
    pub input_flag: Option<String>,
    pub range_low: Option<Decimal>,
    pub range_high: Option<Decimal>,
    pub range_value: Option<Decimal>,
    /// Percent.
    #[serde(with = "crate::model::compact::decimal")]
    pub weight: Decimal,
    /// range value × weight / 100; zero when the element did not score (see `status`).
    #[serde(with = "crate::model::compact::decimal")]
    pub score: Decimal,
    /// Why it did not score, in words.
    pub detail: Option<String>,
}

/// A customer's risk score, emitted when its total or an element changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RiskScoreEvent {
    pub event_id: String,
    pub set_id: String,
    pub customer_id: String,
    pub rule_id: String,
    /// The version of the rule set the scoring rule came from.
    pub rule_version: i32,
    /// The anchor currency amounts were converted to.
    pub currency: String,
    #[serde(with = "crate::model::compact::decimal")]
    pub total: Decimal,
    /// Every element scored (none missing, out of range or dividing by zero).
    pub complete: bool,
    pub elements: Vec<RiskElement>,
    #[serde(with = "crate::model::compact::date")]
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
    #[serde(with = "crate::model::compact::date")]
    pub business_date: NaiveDate,
}

/// Everything condmon emits, one variant per output stream.
// Events are encoded and dropped within their batch: boxing the large ones buys nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum OutputEvent {
    Action(ActionEvent),
    Escalation(EscalationEvent),
    Condition(ConditionEvent),
    RiskScore(RiskScoreEvent),
    /// A child's figures for its parent, to the internal topic (read back as an input).
    ChildFigures {
        event_id: String,
        figures: super::ChildFigures,
    },
    CommandResult(super::CommandResultEvent),
    Notification(super::NotificationEvent),
    Correspondence(super::CorrespondenceEvent),
    Request(super::RequestEvent),
    PromiseStatus(super::PromiseStatusEvent),
    DunningDecision(super::DunningDecisionEvent),
}
