//! Working actions: the commands collectors' tools send, the answers condmon gives, and what
//! performing an action asks of the world (notifications for the mailer, correspondence,
//! requests to the ERP).

use chrono::NaiveDate;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::{ActionStatus, OutputEvent, OwnerType};

/// The result recorded on a dunning-letter action whose letter the customer's exclusion from
/// dunning suppressed.
pub const SUPPRESSED_EXCLUDED: &str = "suppressed: customer excluded from dunning";

/// Every outcome [`OutputEvent::outcome`] names: the metric's series exist from the start (at
/// 0), so that a rate over them is defined before the first one happens.
pub const OUTCOMES: [&str; 10] = [
    "command_accepted",
    "command_rejected",
    "notification_undeliverable",
    "letter_superseding",
    "letter_suppressed",
    "promise_open",
    "promise_kept",
    "promise_partially_kept",
    "promise_broken",
    "dunning_decision_needed",
];

impl OutputEvent {
    /// What SREs count about working actions (`condmon_outcomes_total{outcome}`), if the
    /// event is one of those outcomes.
    pub fn outcome(&self) -> Option<&'static str> {
        match self {
            OutputEvent::CommandResult(r) if r.accepted => Some("command_accepted"),
            OutputEvent::CommandResult(_) => Some("command_rejected"),
            OutputEvent::Notification(n) if n.recipient_email.is_none() => {
                Some("notification_undeliverable")
            }
            OutputEvent::Correspondence(c) if !c.superseded_action_ids.is_empty() => {
                Some("letter_superseding")
            }
            OutputEvent::Action(a) if a.result.as_deref() == Some(SUPPRESSED_EXCLUDED) => {
                Some("letter_suppressed")
            }
            OutputEvent::PromiseStatus(p) => Some(match p.status {
                super::PromiseStatus::Open => "promise_open",
                super::PromiseStatus::Kept => "promise_kept",
                super::PromiseStatus::PartiallyKept => "promise_partially_kept",
                super::PromiseStatus::Broken => "promise_broken",
            }),
            OutputEvent::DunningDecision(d)
                if d.decision == super::DunningDecision::DecisionNeeded =>
            {
                Some("dunning_decision_needed")
            }
            _ => None,
        }
    }
}

/// What a command asks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum CommandKind {
    /// The owner reviewed the action (New → Pending).
    SetPending,
    /// Postpone an action on the list to `action_date`, when it comes back as New.
    SetFuture,
    /// Cancel actions on the list ("Operator Cancelled").
    Cancel,
    /// Perform an action on the list; what happens depends on its action code.
    Perform,
    /// Give actions to another owner (`owner_type`, `owner`). More than one action at once is
    /// a supervisor's bulk reassignment.
    Reassign,
    /// Add an action to an item by hand.
    AddItemAction,
    /// Cancel future actions of a plan (not yet on the list).
    CancelFuture,
    /// Move future actions of a plan (not yet on the list) to `action_date`.
    RedateFuture,
    /// A command naming a kind or a value this version of condmon does not know (read from a
    /// newer producer's schema): answered REJECTED, nothing changed.
    Unknown,
}

impl CommandKind {
    pub fn as_str(self) -> &'static str {
        match self {
            CommandKind::SetPending => "SET_PENDING",
            CommandKind::SetFuture => "SET_FUTURE",
            CommandKind::Cancel => "CANCEL",
            CommandKind::Perform => "PERFORM",
            CommandKind::Reassign => "REASSIGN",
            CommandKind::AddItemAction => "ADD_ITEM_ACTION",
            CommandKind::CancelFuture => "CANCEL_FUTURE",
            CommandKind::RedateFuture => "REDATE_FUTURE",
            CommandKind::Unknown => "UNKNOWN",
        }
    }
}

/// When a letter is produced: now, or with the next correspondence run (the next business
/// day's first evaluation), where a later letter of the same kind replaces it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Delivery {
    #[default]
    Now,
    NextRun,
}

/// A command from a collector's tool, keyed by the customer it concerns.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActionCommand {
    /// The tool's id for the command; the answer carries it.
    pub command_id: String,
    pub set_id: String,
    pub customer_id: String,
    /// The user who issued it: must be the owner or creator of each action it changes (or
    /// the owner's supervisor, to reassign).
    pub issued_by: String,
    pub kind: CommandKind,
    #[serde(default)]
    pub action_ids: Vec<String>,
    /// Reassign, add: the new owner.
    #[serde(default)]
    pub owner_type: Option<OwnerType>,
    #[serde(default)]
    pub owner: Option<String>,
    /// Set Future, re-date: the new action date.
    #[serde(default)]
    pub action_date: Option<NaiveDate>,
    /// Add: the action and its item.
    #[serde(default)]
    pub action_code: Option<String>,
    #[serde(default)]
    pub action_parameter: Option<String>,
    #[serde(default)]
    pub item_id: Option<String>,
    #[serde(default)]
    pub item_line: Option<i32>,
    #[serde(default)]
    pub due_days: Option<i32>,
    #[serde(default)]
    pub notify_owner_days: Option<i32>,
    #[serde(default)]
    pub notify_supervisor_days: Option<i32>,
    #[serde(default)]
    pub notify_specialist_days: Option<i32>,
    /// Perform (ALRT, CALL, DNGD, user-defined): the owner's answer to "is it done?" — yes
    /// completes the action, no leaves it Pending.
    #[serde(default)]
    pub complete: Option<bool>,
    /// Perform (DLTR, OLTR, STMT): a letter code instead of the action parameter, a contact
    /// to print instead of the customer's, when, and how.
    #[serde(default)]
    pub letter_code: Option<String>,
    #[serde(default)]
    pub contact_id: Option<String>,
    #[serde(default)]
    pub delivery: Option<Delivery>,
    #[serde(default)]
    pub delivery_method: Option<String>,
}

impl ActionCommand {
    /// A command of `kind` on `action_ids` with every optional field empty (fill in what the
    /// kind needs).
    pub fn new(
        command_id: &str,
        key: &super::CustomerKey,
        issued_by: &str,
        kind: CommandKind,
        action_ids: &[&str],
    ) -> Self {
        ActionCommand {
            command_id: command_id.into(),
            set_id: key.set_id.clone(),
            customer_id: key.customer_id.clone(),
            issued_by: issued_by.into(),
            kind,
            action_ids: action_ids.iter().map(|a| a.to_string()).collect(),
            owner_type: None,
            owner: None,
            action_date: None,
            action_code: None,
            action_parameter: None,
            item_id: None,
            item_line: None,
            due_days: None,
            notify_owner_days: None,
            notify_supervisor_days: None,
            notify_specialist_days: None,
            complete: None,
            letter_code: None,
            contact_id: None,
            delivery: None,
            delivery_method: None,
        }
    }
}

/// The answer to a command: accepted (and what it changed) or rejected (and why).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommandResultEvent {
    pub event_id: String,
    pub command_id: String,
    pub set_id: String,
    pub customer_id: String,
    pub kind: CommandKind,
    pub issued_by: String,
    pub accepted: bool,
    /// Why it was rejected: one line per problem.
    pub reasons: Vec<String>,
    /// The actions it changed or created.
    pub action_ids: Vec<String>,
    #[serde(with = "crate::model::compact::date")]
    pub business_date: NaiveDate,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, Hash)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum NotificationKind {
    /// A new action is on the owner's list.
    NewAction,
    OwnerReminder,
    SupervisorReminder,
    SpecialistReminder,
    /// The action was given to the recipient.
    Reassigned,
    /// The action was taken from the recipient and given to someone else.
    ReassignedAway,
    /// A new debit the ERP created when it closed another item (no action).
    NewDebit,
    /// A new credit the ERP created when it closed another item (no action).
    NewCredit,
    /// A new on-account item the Payment Predictor created from a payment (no action).
    NewOnAccount,
}

impl NotificationKind {
    pub fn as_str(self) -> &'static str {
        match self {
            NotificationKind::NewAction => "NEW_ACTION",
            NotificationKind::OwnerReminder => "OWNER_REMINDER",
            NotificationKind::SupervisorReminder => "SUPERVISOR_REMINDER",
            NotificationKind::SpecialistReminder => "SPECIALIST_REMINDER",
            NotificationKind::Reassigned => "REASSIGNED",
            NotificationKind::ReassignedAway => "REASSIGNED_AWAY",
            NotificationKind::NewDebit => "NEW_DEBIT",
            NotificationKind::NewCredit => "NEW_CREDIT",
            NotificationKind::NewOnAccount => "NEW_ON_ACCOUNT",
        }
    }
}

/// An e-mail for the mailer: everything it needs to write it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NotificationEvent {
    pub event_id: String,
    pub kind: NotificationKind,
    /// User id of the recipient.
    pub recipient: String,
    pub recipient_name: Option<String>,
    /// Absent when the owner directory does not know the recipient (counted as
    /// undeliverable).
    pub recipient_email: Option<String>,
    pub set_id: String,
    pub customer_id: String,
    pub customer_name: Option<String>,
    pub business_unit: String,
    /// The action's fields: absent on a notification about a new item.
    pub action_id: Option<String>,
    pub action_code: Option<String>,
    pub action_parameter: Option<String>,
    pub action_status: Option<ActionStatus>,
    pub owner: Option<String>,
    pub condition: Option<String>,
    /// The action's due date, or the new item's.
    #[serde(with = "crate::model::compact::date")]
    pub due_date: NaiveDate,
    /// The amounts of the condition, in `currency`.
    pub currency: String,
    #[serde(with = "crate::model::compact::decimal")]
    pub past_due_amount: Decimal,
    pub balance: Option<Decimal>,
    pub item_id: Option<String>,
    pub item_line: Option<i32>,
    /// The path of the action (or the customer) in condmon's HTTP API.
    pub link: String,
    #[serde(with = "crate::model::compact::date")]
    pub business_date: NaiveDate,
    /// A new item's type and open amount, and what it was created from.
    pub item_type: Option<super::ItemType>,
    pub item_amount: Option<Decimal>,
    pub origin_item_id: Option<String>,
    pub origin_payment_id: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum CorrespondenceKind {
    DunningLetter,
    FollowUpLetter,
    Statement,
}

impl CorrespondenceKind {
    /// The correspondence an action code produces, if any.
    pub fn of(action_code: &str) -> Option<Self> {
        match action_code {
            "DLTR" => Some(CorrespondenceKind::DunningLetter),
            "OLTR" => Some(CorrespondenceKind::FollowUpLetter),
            "STMT" => Some(CorrespondenceKind::Statement),
            _ => None,
        }
    }
}

/// A letter for the mailer to produce.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CorrespondenceEvent {
    pub event_id: String,
    pub kind: CorrespondenceKind,
    pub set_id: String,
    pub customer_id: String,
    pub business_unit: String,
    /// The action that produced it.
    pub action_id: String,
    /// Other actions of the customer for the same kind of correspondence that this letter
    /// stands for (only the most recent produces a letter).
    pub superseded_action_ids: Vec<String>,
    pub letter_code: Option<String>,
    /// The contact to print instead of the customer's default.
    pub contact_id: Option<String>,
    pub delivery: Delivery,
    pub delivery_method: Option<String>,
    pub currency: String,
    #[serde(with = "crate::model::compact::decimal")]
    pub past_due_amount: Decimal,
    pub balance: Option<Decimal>,
    #[serde(with = "crate::model::compact::date")]
    pub business_date: NaiveDate,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RequestKind {
    /// HOLD: put the customer on hold with a message code.
    CustomerHold,
    /// REFR: refer the customer to a collection agency with a collection code.
    Referral,
    /// DNGD: review (downgrade) the customer's credit rating.
    CreditReview,
    /// WOFF: write off an item's balance.
    WriteOff,
    /// A customer call's credit memo for an item line.
    CreditMemo,
    /// Take the customer (or a site) off dunning in its profile.
    ExcludeFromDunning,
    /// Put the customer back on dunning.
    IncludeInDunning,
}

impl RequestKind {
    /// The request an action code makes of the ERP, if any.
    pub fn of(action_code: &str) -> Option<Self> {
        match action_code {
            "HOLD" => Some(RequestKind::CustomerHold),
            "REFR" => Some(RequestKind::Referral),
            "DNGD" => Some(RequestKind::CreditReview),
            "WOFF" => Some(RequestKind::WriteOff),
            _ => None,
        }
    }
}

/// A change condmon asks the ERP to make: a customer update, a referral, a credit review, a
/// write-off.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestEvent {
    pub event_id: String,
    pub kind: RequestKind,
    pub set_id: String,
    pub customer_id: String,
    pub business_unit: String,
    pub action_id: String,
    /// The message code (HOLD) or collection code (REFR): the action parameter.
    pub code: Option<String>,
    /// Write-off: the item and what is open on it.
    pub item_id: Option<String>,
    pub item_line: Option<i32>,
    pub amount: Option<Decimal>,
    pub currency: Option<String>,
    /// Who asked: the user who performed it, or `condmon` for automated steps.
    pub requested_by: String,
    #[serde(with = "crate::model::compact::date")]
    pub business_date: NaiveDate,
}
