//! What condmon knows about one customer: its open ledger, its running balances, the
//! statistics it keeps, its violations and its action plans.

use std::collections::{BTreeMap, BTreeSet};

use chrono::NaiveDate;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::stats::Statistics;
use crate::model::CreditAgencyRecord;
use crate::model::{
    ActionStatus, AgingSnapshot, CancelReason, ChildFigures, ConversationChange,
    CorrespondenceKind, CustomerChange, Delivery, Evidence, HistoryChange, InputEvent, ItemChange,
    MonitorRole, NotificationKind, OwnerType, PaymentChange, PaymentStatus, PromiseStatus,
};

/// The maps of a customer's state, by string key: vectors sorted by key, stored and shown as
/// the maps they were (a MessagePack or JSON map in key order). A customer's state is decoded
/// whole for every record it receives and its maps hold a few entries each: appending to a
/// vector in the stored order, finding by binary search and dropping a vector cost a fraction
/// of a B-tree's node building, moves and walks. Read and changed through `litemap`'s map
/// methods (`Deref`); indexed by `&str` like the `BTreeMap`s it replaced.
#[derive(Clone, PartialEq, Deserialize)]
#[serde(transparent)]
pub struct SortedMap<V>(litemap::LiteMap<String, V>);

/// Always a map: `litemap`'s own form writes an empty map as a JSON list.
impl<V: Serialize> Serialize for SortedMap<V> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(self.0.iter())
    }
}

impl<V> Default for SortedMap<V> {
    fn default() -> Self {
        SortedMap(litemap::LiteMap::new())
    }
}

impl<V> std::ops::Deref for SortedMap<V> {
    type Target = litemap::LiteMap<String, V>;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl<V> std::ops::DerefMut for SortedMap<V> {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.0
    }
}

impl<V> std::ops::Index<&str> for SortedMap<V> {
    type Output = V;
    fn index(&self, key: &str) -> &V {
        self.0.get(key).expect("no entry found for key")
    }
}

impl<V> FromIterator<(String, V)> for SortedMap<V> {
    fn from_iter<I: IntoIterator<Item = (String, V)>>(iter: I) -> Self {
        SortedMap(iter.into_iter().collect())
    }
}

impl<V> IntoIterator for SortedMap<V> {
    type Item = (String, V);
    type IntoIter = <litemap::LiteMap<String, V> as IntoIterator>::IntoIter;
    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

impl<'a, V> IntoIterator for &'a SortedMap<V> {
    type Item = (&'a String, &'a V);
    type IntoIter = std::iter::Map<
        std::slice::Iter<'a, (String, V)>,
        fn(&'a (String, V)) -> (&'a String, &'a V),
    >;
    fn into_iter(self) -> Self::IntoIter {
        self.0.as_slice().iter().map(|(k, v)| (k, v))
    }
}

impl<V: std::fmt::Debug> std::fmt::Debug for SortedMap<V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map().entries(self.0.iter()).finish()
    }
}

/// One customer's state: every decision about a customer reads all of it. Stored in parts
/// (see `pipeline::customers`): this value is the ledger part; its actions and conversations
/// (with their promises) are records of their own, so they are skipped here.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CustomerState {
    pub customer: Option<CustomerChange>,
    /// Open items by `item_id#line`. Items whose open amount reached zero are dropped.
    pub items: SortedMap<ItemChange>,
    /// Payments in process or not fully applied, by payment id.
    pub payments: SortedMap<PaymentChange>,
    /// Latest aging snapshot by `business_unit#aging_id`.
    pub aging: SortedMap<AgingSnapshot>,
    /// ERP history figures by `history_id#business_unit#fiscal_year#period`.
    #[serde(default)]
    pub history: SortedMap<HistoryChange>,
    /// Balance components by currency, kept up to date on every item and payment change.
    #[serde(default)]
    pub totals: SortedMap<Totals>,
    #[serde(default)]
    pub stats: Statistics,
    /// The latest credit agency (D&B) report.
    #[serde(default)]
    pub credit_agency: Option<CreditAgencyRecord>,
    /// The risk score as last computed.
    #[serde(default)]
    pub risk: Option<super::risk::RiskScore>,
    /// Numbers the risk-score events (each has its own id).
    #[serde(default)]
    pub risk_seq: u64,
    /// Children's figures for the relationships rules monitor here, by `ROLE|child`.
    #[serde(default)]
    pub children: SortedMap<ChildFigures>,
    /// What this customer last sent each parent: role → (parent, digest of the figures).
    #[serde(default)]
    pub sent: BTreeMap<MonitorRole, (String, u64)>,
    /// Numbers what this customer sent its parents (each sending has its own event id).
    #[serde(default)]
    pub sent_seq: u64,
    /// Active violations by slot (see [`Violation::slot`]).
    pub violations: SortedMap<Violation>,
    /// Rules that cannot be evaluated now, by rule id, with what blocks them.
    #[serde(default)]
    pub blocked: SortedMap<Blocked>,
    /// Numbers the blocked episodes, so each has its own event ids.
    #[serde(default)]
    pub blocked_seq: u64,
    /// Every action of this customer by action id, open and closed within the horizon.
    #[serde(skip)]
    pub actions: Actions,
    /// Numbers the customer's violations, so a repeated violation gets new, stable ids.
    pub violation_seq: u64,
    /// Numbers the actions added by hand.
    #[serde(default)]
    pub item_action_seq: u64,
    /// Numbers the commands taken, so each answer has its own event id even if a tool reuses
    /// a command id.
    #[serde(default)]
    pub command_seq: u64,
    /// Letters waiting for their run, by kind.
    #[serde(default)]
    pub letters: Vec<QueuedLetter>,
    /// Conversations by id, as last saved.
    #[serde(skip)]
    pub conversations: BTreeMap<String, ConversationChange>,
    /// Each promise's status as last reported, by conversation id.
    #[serde(skip)]
    pub promises: BTreeMap<String, PromiseState>,
    /// Posted payments of the last year, by payment id, for judging promises.
    #[serde(default)]
    pub payment_notes: SortedMap<PaymentNote>,
    /// Item line amounts in dispute by customer calls, by `item_id#line`.
    #[serde(default)]
    pub disputes: SortedMap<Dispute>,
    /// Exclusions from dunning made by customer calls.
    #[serde(default)]
    pub dunning: DunningState,
    /// Call actions already turned into what they name (`conversation/call action`).
    #[serde(default)]
    pub calls_done: BTreeSet<String>,
    /// Call actions that asked a question (a decision event) not answered yet.
    #[serde(default)]
    pub calls_asked: BTreeSet<String>,
    /// Numbers every action created, in order (plan steps, item and call actions alike).
    /// (New fields go last: the stored form is a MessagePack array.)
    #[serde(default)]
    pub action_seq: u64,
    /// Violations of scheduled rules waiting for a run day, by slot: appended last and
    /// defaulted (stored ledgers are MessagePack arrays written before it existed).
    #[serde(default)]
    pub waiting: SortedMap<Waiting>,
    /// The commands answered, by command id, with the day each was: a command redelivered
    /// (the same id) is not taken or answered again. Forgotten after the history horizon.
    #[serde(default)]
    pub commands_seen: SortedMap<NaiveDate>,
    /// What the customer has in the other per-customer stores as last saved (its action and
    /// conversation ids, its timers), so that reading and saving it needs no scan of those
    /// stores. The stores' concern, not the engine's: written when saved, taken out when read
    /// (`None` in memory), absent from ledgers written before it existed (those are scanned).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub records: Option<OwnRecords>,
}

/// A customer's actions by id. Read like a map; changed only through the methods here, which
/// remember which actions changed since the customer was read, so that saving it encodes
/// only those. (Most records change none of a customer's actions: encoding them all again to
/// find that out was 5 % of a record's instructions.) Equality and `Debug` are the actions'
/// alone.
#[derive(Clone, Default)]
pub struct Actions {
    by_id: SortedMap<Action>,
    changed: BTreeSet<String>,
}

impl std::ops::Deref for Actions {
    type Target = SortedMap<Action>;
    fn deref(&self) -> &Self::Target {
        &self.by_id
    }
}

impl std::fmt::Debug for Actions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.by_id.fmt(f)
    }
}

impl PartialEq for Actions {
    fn eq(&self, other: &Self) -> bool {
        self.by_id == other.by_id
    }
}

/// As the map of actions by id (the JSON of the API and of the layout before the split).
impl Serialize for Actions {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.by_id.serialize(s)
    }
}

/// New actions, all changed (the old layout's JSON is written out again whole).
impl<'de> Deserialize<'de> for Actions {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(BTreeMap::<String, Action>::deserialize(d)?
            .into_iter()
            .collect())
    }
}

/// New actions (all of them count as changed).
impl FromIterator<(String, Action)> for Actions {
    fn from_iter<I: IntoIterator<Item = (String, Action)>>(actions: I) -> Self {
        let mut out = Actions::default();
        for (id, action) in actions {
            out.insert(id, action);
        }
        out
    }
}

impl Actions {
    /// An action as the store holds it (not changed).
    pub fn read(&mut self, id: String, action: Action) {
        self.changed.remove(&id);
        self.by_id.insert(id, action);
    }

    pub fn insert(&mut self, id: String, action: Action) -> Option<Action> {
        self.changed.insert(id.clone());
        self.by_id.insert(id, action)
    }

    /// The action to change (it counts as changed, whether it is or not).
    pub fn get_mut(&mut self, id: &str) -> Option<&mut Action> {
        let action = self.by_id.get_mut(id)?;
        if !self.changed.contains(id) {
            self.changed.insert(id.to_string());
        }
        Some(action)
    }

    pub fn remove(&mut self, id: &str) -> Option<Action> {
        self.changed.remove(id);
        self.by_id.remove(id)
    }

    /// Changes the actions `pick` selects with `change` (only they count as changed).
    pub fn change_where(
        &mut self,
        mut pick: impl FnMut(&Action) -> bool,
        mut change: impl FnMut(&mut Action),
    ) {
        for (id, action) in self.by_id.iter_mut() {
            if pick(action) {
                if !self.changed.contains(id) {
                    self.changed.insert(id.clone());
                }
                change(action);
            }
        }
    }

    /// Every action with whether it changed since read, in id order.
    pub fn into_changes(self) -> impl Iterator<Item = (String, Action, bool)> {
        let changed = self.changed;
        self.by_id.into_iter().map(move |(id, action)| {
            let is_changed = changed.contains(&id);
            (id, action, is_changed)
        })
    }
}

/// See [`CustomerState::records`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct OwnRecords {
    pub actions: Vec<String>,
    pub conversations: Vec<String>,
    /// `None` where a migration wrote the ledger without knowing them.
    pub timers: Option<Vec<TimerSet>>,
}

/// A timer as set: its name and due date.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimerSet {
    pub name: String,
    #[serde(with = "crate::model::compact::date")]
    pub due: NaiveDate,
}

/// A scheduled rule's violation that has not opened its plan yet: since when it holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Waiting {
    pub rule_id: String,
    #[serde(with = "crate::model::compact::date")]
    pub since: NaiveDate,
}

/// A promise's status as last reported.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PromiseState {
    pub status: Option<PromiseStatus>,
    /// Paid towards it by its deadline, as last judged.
    #[serde(default)]
    #[serde(with = "crate::model::compact::decimal")]
    pub paid: Decimal,
    /// Numbers the status changes, so each has its own event id.
    pub changes: u32,
}

/// A payment as promises see it (posted, not cancelled or returned): kept for a year so a
/// promise is judged from the payments whatever order conversations and payments arrive in.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PaymentNote {
    #[serde(with = "crate::model::compact::date")]
    pub date: NaiveDate,
    pub currency: String,
    #[serde(with = "crate::model::compact::decimal")]
    pub amount: Decimal,
    /// Applications: (`item_id#line`, amount).
    pub applications: Vec<(String, Decimal)>,
}

/// An item line amount placed in dispute by a customer call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Dispute {
    #[serde(with = "crate::model::compact::decimal")]
    pub amount: Decimal,
    pub conversation_id: String,
    pub call_action_id: String,
    #[serde(with = "crate::model::compact::date")]
    pub since: NaiveDate,
    /// What the ERP says is in dispute, restored when the call's dispute ends.
    #[serde(with = "crate::model::compact::decimal")]
    pub erp_amount: Decimal,
}

/// Whether the customer gets dunning letters is decided by two sources, customer calls and the
/// master's profile (`exclude_from_dunning`); the most recent decision wins. A master change
/// decides only when it changes the profile's flag (any other master change leaves a call's
/// decision standing).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DunningState {
    /// The customer was excluded by a call (and neither a call nor the profile re-included it
    /// since).
    pub customer_excluded: bool,
    /// Sites excluded by calls.
    pub sites_excluded: BTreeSet<String>,
    /// A call re-included the customer while the profile still says excluded (until the
    /// profile's flag changes).
    #[serde(default)]
    pub included_by_call: bool,
}

/// The running components of a customer's balance in one currency.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Totals {
    /// Open amounts of all open items: debits positive, credits negative.
    #[serde(with = "crate::model::compact::decimal")]
    pub open: Decimal,
    /// Amounts in dispute on open debit items.
    #[serde(with = "crate::model::compact::decimal")]
    pub disputed: Decimal,
    /// Unapplied cash: what posted payments' applications do not cover.
    #[serde(with = "crate::model::compact::decimal")]
    pub unapplied: Decimal,
    /// Payments received and not yet posted.
    #[serde(with = "crate::model::compact::decimal")]
    pub in_process: Decimal,
}

impl Totals {
    fn is_zero(&self) -> bool {
        self.open.is_zero()
            && self.disputed.is_zero()
            && self.unapplied.is_zero()
            && self.in_process.is_zero()
    }
}

/// Adds `delta` times `sign` to `currency`'s totals; a currency whose totals reach zero is
/// dropped.
pub(super) fn add_totals(all: &mut SortedMap<Totals>, currency: &str, delta: &Totals, sign: i64) {
    let sign = Decimal::from(sign);
    let totals = all.entry(currency.to_string()).or_default();
    totals.open += delta.open * sign;
    totals.disputed += delta.disputed * sign;
    totals.unapplied += delta.unapplied * sign;
    totals.in_process += delta.in_process * sign;
    if totals.is_zero() {
        all.remove(currency);
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Blocked {
    pub episode: u64,
    pub reasons: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Violation {
    pub id: String,
    pub rule_id: String,
    pub template_id: String,
    #[serde(default)]
    pub condition: String,
    /// The item, for item-level conditions (`item_id#line`).
    #[serde(default)]
    pub item_key: Option<String>,
    #[serde(default)]
    pub priority: i32,
    #[serde(default)]
    pub monitor_role: MonitorRole,
    /// Collection violations share one slot per condition and role (one plan at a time).
    #[serde(default)]
    pub collection: bool,
    #[serde(with = "crate::model::compact::date")]
    pub since: NaiveDate,
    /// The figures as last evaluated.
    pub evidence: Evidence,
}

/// Where violations live in the state: one collection plan per condition and monitored role,
/// one plan per customer-level assessment rule, one per item-level rule and item.
/// (Keys are built by concatenation, not `format!`: they are built for every rule of every
/// record.)
pub fn collection_slot(condition: &str, role: MonitorRole) -> String {
    [condition, "|", role.as_str()].concat()
}

pub fn item_slot(rule_id: &str, item_key: &str) -> String {
    [rule_id, "@", item_key].concat()
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
    #[serde(with = "crate::model::compact::date")]
    pub action_date: NaiveDate,
    #[serde(with = "crate::model::compact::date")]
    pub due_date: NaiveDate,
    pub cancel_reason: Option<CancelReason>,
    pub evidence: Evidence,
    /// When the action reached Complete/Cancelled (for history).
    pub closed_on: Option<NaiveDate>,
    /// The item (`item_id#line`), for item-level conditions.
    #[serde(default)]
    pub item_key: Option<String>,
    #[serde(default)]
    pub priority: i32,
    #[serde(default)]
    pub monitor_role: MonitorRole,
    /// Business days from the action date to the due date (kept for re-dating).
    #[serde(default)]
    pub due_days: i32,
    /// When it went on the action list (first time). An action that has been on the list
    /// can no longer be edited as a future action.
    #[serde(default)]
    pub added_on: Option<NaiveDate>,
    /// The user who added it by hand (item actions); plan steps have none.
    #[serde(default)]
    pub created_by: Option<String>,
    /// Business days from the due date on which to remind the owner, the supervisor and the
    /// item's AR specialist (negative: before).
    #[serde(default)]
    pub notify_owner_days: Option<i32>,
    #[serde(default)]
    pub notify_supervisor_days: Option<i32>,
    #[serde(default)]
    pub notify_specialist_days: Option<i32>,
    /// The owner told of the action (a new owner is told again).
    #[serde(default)]
    pub announced_to: Option<String>,
    /// Reminders sent.
    #[serde(default)]
    pub reminded: BTreeSet<NotificationKind>,
    /// Counts the changes commands made, so each change has its own event id.
    #[serde(default)]
    pub revision: u32,
    /// What performing it did.
    #[serde(default)]
    pub result: Option<String>,
    #[serde(default)]
    pub delivery_method: Option<String>,
    /// A write-off was requested for this item (`item_id#line`): the action completes when
    /// the item's balance reaches zero.
    #[serde(default)]
    pub write_off: Option<String>,
    /// Who performed it (`condmon` for automated steps).
    #[serde(default)]
    pub performed_by: Option<String>,
    /// Its place in the order the customer's actions were created (see
    /// [`CustomerState::add_action`]): the most recent action is the highest. 0 for actions
    /// created before it was kept. (New fields go last: the stored form is a MessagePack
    /// array, which a field added in the middle would misalign.)
    #[serde(default)]
    pub created_seq: u64,
    /// The business calendar its due date counts in (plan steps, item actions): its business
    /// unit's, or `STANDARD` (weekends only) when no calendar names the unit. Absent for
    /// actions due on a given date (call actions, follow-ups) and those created before.
    #[serde(default)]
    pub calendar: Option<String>,
}

impl Action {
    /// An action added by hand (a command, a customer call, a promise follow-up): no
    /// violation, on the list if `date` has come, else Future until then; due on its date.
    /// Callers set the owner, item, creator and what else they know.
    pub fn by_hand(
        id: String,
        action_code: &str,
        business_unit: &str,
        date: NaiveDate,
        today: NaiveDate,
    ) -> Action {
        let on_list = date <= today;
        Action {
            id,
            violation_id: String::new(),
            rule_id: String::new(),
            condition: String::new(),
            template_id: String::new(),
            step: 1,
            action_code: action_code.to_string(),
            action_parameter: None,
            owner_type: OwnerType::Collector,
            owner: None,
            automated: false,
            status: if on_list {
                ActionStatus::New
            } else {
                ActionStatus::Future
            },
            business_unit: business_unit.to_string(),
            action_date: date,
            due_date: date,
            cancel_reason: None,
            evidence: Evidence::default(),
            closed_on: None,
            item_key: None,
            priority: 0,
            monitor_role: MonitorRole::default(),
            created_seq: 0,
            calendar: None,
            due_days: 0,
            added_on: on_list.then_some(today),
            created_by: None,
            notify_owner_days: None,
            notify_supervisor_days: None,
            notify_specialist_days: None,
            announced_to: None,
            reminded: BTreeSet::new(),
            revision: 0,
            result: None,
            delivery_method: None,
            write_off: None,
            performed_by: None,
        }
    }

    /// On the owner's action list (New or Pending), as opposed to waiting or closed.
    pub fn on_list(&self) -> bool {
        matches!(self.status, ActionStatus::New | ActionStatus::Pending)
    }

    /// A plan step that has not yet been on the list: it can still be edited as a future
    /// action (re-dated or cancelled).
    pub fn is_editable_future(&self) -> bool {
        self.status == ActionStatus::Future && self.added_on.is_none()
    }
}

/// A letter asked for but not yet produced: produced now, or with the next correspondence run.
/// A later letter of the same kind replaces it (only the most recent produces a letter).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueuedLetter {
    pub kind: CorrespondenceKind,
    pub action_id: String,
    pub superseded: Vec<String>,
    pub letter_code: Option<String>,
    pub contact_id: Option<String>,
    pub delivery: Delivery,
    pub delivery_method: Option<String>,
    /// Produced on or after this date.
    #[serde(with = "crate::model::compact::date")]
    pub release_on: NaiveDate,
}

/// Where an ERP history figure is kept: `history_id#business_unit#fiscal_year#period`.
fn history_key(h: &HistoryChange) -> String {
    format!(
        "{}#{}#{:04}#{:03}",
        h.history_id, h.business_unit, h.fiscal_year, h.accounting_period
    )
}

/// Whether two values read the same in JSON, where every amount keeps its scale.
fn shown_alike<T: Serialize>(a: &T, b: &T) -> bool {
    serde_json::to_value(a).ok() == serde_json::to_value(b).ok()
}

/// Where an aging snapshot is kept: `business_unit#aging_id`.
fn aging_key(snapshot: &AgingSnapshot) -> String {
    [snapshot.business_unit.as_str(), "#", &snapshot.aging_id].concat()
}

pub fn item_key(item_id: &str, line: i32) -> String {
    [item_id, "#", itoa::Buffer::new().format(line)].concat()
}

/// What an item adds to its currency's totals.
fn item_totals(item: &ItemChange) -> Totals {
    Totals {
        open: item.open_amount,
        disputed: item.disputed_amount,
        ..Totals::default()
    }
}

/// What a payment adds to its currency's totals.
fn payment_totals(payment: &PaymentChange) -> Totals {
    match payment.status {
        PaymentStatus::InProcess => Totals {
            in_process: payment.amount,
            ..Totals::default()
        },
        PaymentStatus::Unapplied => Totals {
            unapplied: payment.amount - payment.applied_amount(),
            ..Totals::default()
        },
        PaymentStatus::Applied | PaymentStatus::Cancelled | PaymentStatus::Nsf => Totals::default(),
    }
}

impl CustomerState {
    /// Keeps a new action, numbered in creation order (which action of a kind is the most
    /// recent is decided by this number, not by when the actions are performed).
    pub fn add_action(&mut self, mut action: Action) {
        self.action_seq += 1;
        action.created_seq = self.action_seq;
        self.actions.insert(action.id.clone(), action);
    }

    /// Whether applying `event` would leave this state as it is: a record an ERP's extract
    /// sends again exactly as condmon holds it, amounts to the same scale (a different scale
    /// is a different figure in every event that shows it). Nothing a rule reads changes, so
    /// nothing is to be decided for it (what time changes is the timers' to decide). Checked:
    /// an open item with no customer call's dispute over it and its statistics as it says; an
    /// aging snapshot; a customer master; an ERP history figure; a credit agency report.
    /// Other events are applied and decided.
    pub fn already_holds(&self, event: &InputEvent) -> bool {
        let same = |a: Decimal, b: Decimal| a == b && a.scale() == b.scale();
        match event {
            InputEvent::Item(item) => {
                let key = item_key(&item.item_id, item.item_line);
                let held = self.items.get(&key).is_some_and(|held| {
                    held == item
                        && same(held.open_amount, item.open_amount)
                        && same(held.original_amount, item.original_amount)
                        && same(held.disputed_amount, item.disputed_amount)
                });
                held && self.stats.holds_open_item(&key, item) && !self.disputes.contains_key(&key)
            }
            // The other records are compared as condmon shows them (JSON keeps each amount's
            // scale), once `==` says they may be the same; items, the bulk of an extract, are
            // compared field by field instead.
            InputEvent::Aging(snapshot) => self
                .aging
                .get(&aging_key(snapshot))
                .is_some_and(|held| held == snapshot && shown_alike(held, snapshot)),
            InputEvent::Customer(master) => self
                .customer
                .as_ref()
                .is_some_and(|held| held == master && shown_alike(held, master)),
            InputEvent::History(figure) => self
                .history
                .get(&history_key(figure))
                .is_some_and(|held| held == figure && shown_alike(held, figure)),
            InputEvent::CreditAgency(report) => self
                .credit_agency
                .as_ref()
                .is_some_and(|held| held == report && shown_alike(held, report)),
            _ => false,
        }
    }

    /// Folds an input event into the ledger on business date `today`. Decisions are made
    /// afterwards, by `reconcile`.
    pub fn apply(&mut self, event: InputEvent, today: NaiveDate) {
        match event {
            InputEvent::Item(mut item) => {
                let key = item_key(&item.item_id, item.item_line);
                self.stats.record_item(&key, &item, today);
                // A call's dispute stands over the ERP's figure until it ends.
                if item.open_amount.is_zero() {
                    self.disputes.remove(&key);
                } else if let Some(dispute) = self.disputes.get_mut(&key) {
                    dispute.erp_amount = item.disputed_amount;
                    item.disputed_amount = dispute.amount.min(item.open_amount.abs());
                }
                if let Some(old) = self.items.remove(&key) {
                    self.add_totals(&old.currency, &item_totals(&old), -1);
                }
                if !item.open_amount.is_zero() {
                    self.add_totals(&item.currency, &item_totals(&item), 1);
                    self.items.insert(key, item);
                }
            }
            InputEvent::Payment(payment) => {
                let due_dates = |item_id: &str, line: i32| {
                    let key = item_key(item_id, line);
                    self.items
                        .get(&key)
                        .map(|i| i.due_date)
                        .or_else(|| self.stats.closed_due_date(&key))
                };
                let lateness: Vec<Option<NaiveDate>> = payment
                    .applications
                    .iter()
                    .map(|a| due_dates(&a.item_id, a.item_line))
                    .collect();
                self.stats.record_payment(&payment, &lateness);
                super::conversations::note_payment(self, &payment, today);
                if let Some(old) = self.payments.remove(&payment.payment_id) {
                    self.add_totals(&old.currency, &payment_totals(&old), -1);
                }
                let totals = payment_totals(&payment);
                if !totals.is_zero() {
                    self.add_totals(&payment.currency, &totals, 1);
                    self.payments.insert(payment.payment_id.clone(), payment);
                }
            }
            InputEvent::Aging(snapshot) => {
                let key = aging_key(&snapshot);
                let newer = self
                    .aging
                    .get(&key)
                    .is_none_or(|old| old.as_of_date <= snapshot.as_of_date);
                if newer {
                    self.aging.insert(key, snapshot);
                }
            }
            InputEvent::Customer(customer) => {
                let was_excluded = self
                    .customer
                    .as_ref()
                    .is_some_and(|c| c.exclude_from_dunning);
                if customer.exclude_from_dunning != was_excluded {
                    // The profile was updated: the latest decision, over the calls' earlier ones.
                    self.dunning.customer_excluded = false;
                    self.dunning.included_by_call = false;
                }
                self.customer = Some(customer);
            }
            InputEvent::History(h) => {
                self.history.insert(history_key(&h), h);
            }
            InputEvent::CreditAgency(report) => {
                let newer = self
                    .credit_agency
                    .as_ref()
                    .is_none_or(|old| old.report_date <= report.report_date);
                if newer {
                    self.credit_agency = Some(report);
                }
            }
            InputEvent::ChildFigures(figures) => {
                let key = format!("{}|{}", figures.role.as_str(), figures.child_id);
                if figures.is_withdrawal() {
                    self.children.remove(&key);
                } else {
                    self.children.insert(key, figures);
                }
            }
            // Reference data is not a customer's: the operator keeps it. Commands and
            // conversations are decisions, not ledger: `engine::execute` and
            // `engine::take_conversation` take them.
            InputEvent::FxRate(_) | InputEvent::Command(_) | InputEvent::Conversation(_) => {}
        }
    }

    pub(super) fn add_totals(&mut self, currency: &str, delta: &Totals, sign: i64) {
        add_totals(&mut self.totals, currency, delta, sign);
    }

    /// The totals recomputed from the open items and payments (what `totals` must equal).
    pub fn recomputed_totals(&self) -> SortedMap<Totals> {
        let mut out = CustomerState::default();
        for item in self.items.values() {
            out.add_totals(&item.currency, &item_totals(item), 1);
        }
        for payment in self.payments.values() {
            out.add_totals(&payment.currency, &payment_totals(payment), 1);
        }
        out.totals
    }

    /// The customer group from the master, once it has arrived.
    pub fn group(&self) -> Option<&str> {
        self.customer.as_ref()?.customer_group.as_deref()
    }

    pub fn on_credit_hold(&self) -> bool {
        self.customer.as_ref().is_some_and(|c| c.credit_hold)
    }

    /// Everyone with an open action of this customer (the owner index).
    pub fn open_action_owners(&self) -> BTreeSet<String> {
        self.actions
            .values()
            .filter(|a| a.status.is_open())
            .filter_map(|a| a.owner.clone())
            .collect()
    }

    /// No dunning letters: a customer call excluded it, or the master's profile says so and no
    /// call re-included it since (see [`DunningState`]).
    pub fn excluded_from_dunning(&self) -> bool {
        let profile = self
            .customer
            .as_ref()
            .is_some_and(|c| c.exclude_from_dunning);
        self.dunning.customer_excluded || (profile && !self.dunning.included_by_call)
    }

    /// Sets what is in dispute on an open item, keeping the running totals in step.
    pub fn set_item_disputed(&mut self, key: &str, amount: Decimal) {
        let Some(item) = self.items.get(key) else {
            return;
        };
        let (currency, old) = (item.currency.clone(), item_totals(item));
        let item = self.items.get_mut(key).expect("looked up above");
        item.disputed_amount = amount.min(item.open_amount.abs());
        let new = item_totals(item);
        self.add_totals(&currency, &old, -1);
        self.add_totals(&currency, &new, 1);
    }

    /// Every currency the customer's figures are in (items, payments, credit limit, history).
    /// Borrowed: a year of payment samples each names its currency, and this is asked several
    /// times a record. A restore reads it from a view of the ledger that decodes only the
    /// fields read here (`LedgerView` in `pipeline::customers`): read another, decode it there.
    pub fn currencies(&self) -> BTreeSet<&str> {
        let mut out: BTreeSet<&str> = self.totals.keys().map(String::as_str).collect();
        // Most samples and lines repeat the currency before them: one set insertion a run
        // (this is asked three times a record, over every statistics sample).
        fn add<'s>(out: &mut BTreeSet<&'s str>, currencies: impl Iterator<Item = &'s str>) {
            let mut last = None;
            for currency in currencies {
                if last != Some(currency) {
                    out.insert(currency);
                    last = Some(currency);
                }
            }
        }
        add(&mut out, self.customer.iter().map(|c| c.currency.as_str()));
        add(
            &mut out,
            self.history.values().filter_map(|h| h.currency.as_deref()),
        );
        add(&mut out, self.stats.currencies());
        add(
            &mut out,
            self.credit_agency.iter().map(|r| r.currency.as_str()),
        );
        add(&mut out, self.aging.values().map(|a| a.currency.as_str()));
        for child in self.children.values() {
            add(&mut out, child.lines.iter().map(|l| l.currency.as_str()));
            add(&mut out, child.cash.iter().map(|c| c.currency.as_str()));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn action(id: &str) -> Action {
        let day = NaiveDate::from_ymd_opt(2026, 12, 1).unwrap();
        Action::by_hand(id.into(), "CALL", "US001", day, day)
    }

    #[test]
    fn actions_remember_which_changed_since_read() {
        let mut actions = Actions::default();
        for id in ["A", "B", "C", "D"] {
            actions.read(id.into(), action(id));
        }
        actions.get_mut("A").unwrap().revision += 1;
        actions.change_where(|a| a.id == "B", |a| a.result = Some("called".into()));
        actions.insert("E".into(), action("E"));
        actions.remove("D");
        assert!(actions.get_mut("Z").is_none());
        let changed: Vec<(String, bool)> = actions
            .clone()
            .into_changes()
            .map(|(id, _, changed)| (id, changed))
            .collect();
        assert_eq!(
            changed,
            [
                ("A".into(), true),
                ("B".into(), true),
                ("C".into(), false),
                ("E".into(), true)
            ]
        );
        // Equality is the actions', not what changed.
        let mut fresh = Actions::default();
        for (id, action) in actions.iter() {
            fresh.read(id.clone(), action.clone());
        }
        assert_eq!(fresh, actions);
    }

    /// The sorted maps replaced `BTreeMap`s in stored ledgers: the bytes and the JSON must stay
    /// the same both ways, and a map out of order or with a key twice (which condmon never
    /// wrote) must read as a B-tree would have read it, the last value of a key winning.
    #[test]
    fn sorted_maps_are_stored_and_shown_as_the_maps_they_replaced() {
        let entries = [("b", 2u32), ("a", 1), ("c", 3)];
        let tree: BTreeMap<String, u32> =
            entries.iter().map(|(k, v)| (k.to_string(), *v)).collect();
        let sorted: SortedMap<u32> = entries.iter().map(|(k, v)| (k.to_string(), *v)).collect();
        assert_eq!(
            crate::state::value::encode(&sorted),
            crate::state::value::encode(&tree)
        );
        assert_eq!(
            serde_json::to_string(&sorted).unwrap(),
            r#"{"a":1,"b":2,"c":3}"#
        );
        let empty = SortedMap::<u32>::default();
        assert_eq!(serde_json::to_string(&empty).unwrap(), "{}");
        assert_eq!(
            crate::state::value::encode(&empty),
            crate::state::value::encode(&BTreeMap::<String, u32>::new())
        );
        assert_eq!(format!("{sorted:?}"), format!("{tree:?}"));
        let written = crate::state::value::encode(&tree);
        let read: SortedMap<u32> = crate::state::value::decode(&written).unwrap();
        assert_eq!(read, sorted);
        assert_eq!(read["b"], 2);
        let unordered = r#"{"c":3,"a":1,"b":5,"a":4}"#;
        let tree: BTreeMap<String, u32> = serde_json::from_str(unordered).unwrap();
        let sorted: SortedMap<u32> = serde_json::from_str(unordered).unwrap();
        assert_eq!(
            sorted
                .iter()
                .map(|(k, v)| (k.clone(), *v))
                .collect::<Vec<_>>(),
            tree.into_iter().collect::<Vec<_>>()
        );
    }
}
