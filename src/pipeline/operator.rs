//! The operator: one input record or one timer scan in, state changes and outputs out.
//! It sees a [`Txn`] and a business date, never Kafka or RocksDB, so the Kafka run loop and
//! `condmon replay` run exactly this code.

use std::collections::BTreeSet;
use std::sync::{Arc, RwLock};

use chrono::NaiveDate;

use crate::codec::{self, SchemaCatalog};
use crate::engine::{self, CustomerState, FxTable};
use crate::model::validate::{validate, validate_key};
use crate::model::{
    ActionStatus, ConditionEventKind, CustomerKey, InputEvent, OutputEvent, Stream,
};
use crate::rules::RuleSet;
use crate::state::{StateError, StoreName, StoreSpec, Txn};

use super::customers::{self, index_key};

/// The stores the operator uses, per input partition. Every store is changelogged but
/// `timers-by-due`, which is `timers` inverted (rebuilt from it).
pub const STORES: [StoreSpec; 10] = [
    StoreSpec {
        name: StoreName::Ledger,
        changelogged: true,
        what: "customer -> ledger, running balances, statistics, children's figures, violations",
    },
    StoreSpec {
        name: StoreName::Actions,
        changelogged: true,
        what: "customer + action id -> action (open, or closed within the horizon)",
    },
    StoreSpec {
        name: StoreName::Conversations,
        changelogged: true,
        what: "customer + conversation id -> conversation as saved, its promise's status",
    },
    StoreSpec {
        name: StoreName::History,
        changelogged: true,
        what: "customer + id -> closed action or finished conversation past the horizon",
    },
    StoreSpec {
        name: StoreName::Timers,
        changelogged: false,
        what: "customer + timer name -> due date (as each ledger lists them)",
    },
    StoreSpec {
        name: StoreName::TimersByDue,
        changelogged: false,
        what: "due date + customer + timer name: timers in firing order (from timers)",
    },
    StoreSpec {
        name: StoreName::CurrencyIndex,
        changelogged: false,
        what: "currency + customer: whom an exchange rate concerns",
    },
    StoreSpec {
        name: StoreName::OwnerIndex,
        changelogged: false,
        what: "owner + customer: whose open actions an owner's list reads",
    },
    StoreSpec {
        name: StoreName::ParentIndex,
        changelogged: false,
        what: "relationship + parent + customer: who is related to whom (action list levels)",
    },
    StoreSpec {
        name: StoreName::Meta,
        changelogged: true,
        what: "input offsets, reference fingerprint, durable counters",
    },
];
use crate::timer::Timers;

/// How an input record arrived.
pub enum Payload<'a> {
    /// Confluent wire-format Avro, as read from Kafka.
    Avro(&'a [u8]),
    /// The JSON form, as read from a replay file.
    Json(serde_json::Value),
    /// No value: on a compacted reference topic, the deletion of the key's record.
    Tombstone,
}

/// Why a record was refused. The kind is a metric label and a dead-letter header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub kind: RejectionKind,
    pub reason: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RejectionKind {
    /// The bytes are not an event of the topic's schema (bad magic, unknown id, bad Avro).
    Undecodable,
    /// The event decodes but breaks a business rule (see `model::validate`).
    Invalid,
    /// The record key does not name the event's customer.
    WrongKey,
    /// An output the record caused could not be produced: larger than `max_message_bytes`.
    OutputTooLarge,
    /// The record is on another partition than its key's and too large to be sent on.
    WrongPartition,
    /// Processing the record panicked (a defect of condmon): the batch was redone without it.
    Internal,
}

impl RejectionKind {
    pub fn as_str(self) -> &'static str {
        match self {
            RejectionKind::Undecodable => "undecodable",
            RejectionKind::Invalid => "invalid",
            RejectionKind::WrongKey => "wrong_key",
            RejectionKind::OutputTooLarge => "output_too_large",
            RejectionKind::WrongPartition => "wrong_partition",
            RejectionKind::Internal => "internal",
        }
    }
}

/// Why a record could not be processed now.
#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    #[error(transparent)]
    State(#[from] StateError),
    /// Something outside (the schema registry) could not be asked: retry later, refuse nothing.
    #[error("{0}")]
    External(String),
    /// condmon is configured wrongly (the registry refused its credentials): refuse nothing,
    /// retry nothing, stop.
    #[error("{0}")]
    Configuration(String),
}

pub enum Outcome {
    Processed(Vec<OutputEvent>),
    /// The record says exactly what condmon already holds (an ERP's extract sending it
    /// again): nothing was applied or decided, and nothing of the customer is written.
    AlreadyHeld,
    Rejected(Rejection),
}

impl Outcome {
    /// The events of a record taken (none for one already held); `None` for one refused.
    pub fn events(self) -> Option<Vec<OutputEvent>> {
        match self {
            Outcome::Processed(events) => Some(events),
            Outcome::AlreadyHeld => Some(Vec::new()),
            Outcome::Rejected(_) => None,
        }
    }
}

#[derive(Clone)]
pub struct Operator {
    /// The rule set in force: from the topology file, replaced live by newer documents.
    rules: Arc<RwLock<Arc<RuleSet>>>,
    catalog: Arc<SchemaCatalog>,
    /// Exchange rates: reference data shared by every partition.
    fx: Arc<RwLock<FxTable>>,
}

/// The durable counter of actions in `status` (per partition).
pub fn action_counter(status: ActionStatus) -> String {
    format!("actions.{}", status.as_str())
}

/// The durable counter of active violations of a condition (per partition).
pub fn violation_counter(condition: &str) -> String {
    format!("{VIOLATIONS_PREFIX}{condition}")
}

pub const VIOLATIONS_PREFIX: &str = "violations.";

/// The durable counter of customers flagged because a rule cannot be evaluated.
pub const CUSTOMERS_FLAGGED: &str = "customers.flagged";

/// What a rule document read live did.
#[derive(Debug)]
pub enum RulesChange {
    /// The document replaced the rule set; `events` are what re-evaluating the affected
    /// customers produced.
    Applied {
        version: u32,
        events: Vec<OutputEvent>,
    },
    /// Not newer than the rule set in force: nothing changed.
    Stale { offered: u32, current: u32 },
    /// Invalid: every problem, located. The rule set in force stays.
    Rejected(Rejection),
}

/// A record that passed decoding and validation.
// Lives for one record.
#[allow(clippy::large_enum_variant)]
enum Checked {
    Event(InputEvent),
    /// A tombstone on the exchange-rate topic: (rate type, from, to, effective date).
    RateDeleted(String, String, String, NaiveDate),
}

impl Operator {
    pub fn new(rules: Arc<RuleSet>, catalog: Arc<SchemaCatalog>) -> Self {
        Operator {
            rules: Arc::new(RwLock::new(rules)),
            catalog,
            fx: Arc::default(),
        }
    }

    pub fn catalog(&self) -> &SchemaCatalog {
        &self.catalog
    }

    /// The rule set in force.
    pub fn rules(&self) -> Arc<RuleSet> {
        self.rules.read().expect("rules lock").clone()
    }

    /// Reads the exchange rates in force (queries convert with them).
    pub fn with_fx<R>(&self, read: impl FnOnce(&FxTable) -> R) -> R {
        read(&self.fx.read().expect("fx lock"))
    }

    /// The reference data in force, to put back if a batch that changed it is redone.
    pub fn reference_snapshot(&self) -> (Arc<RuleSet>, FxTable) {
        (self.rules(), self.fx.read().expect("fx lock").clone())
    }

    pub fn restore_reference(&self, (rules, fx): (Arc<RuleSet>, FxTable)) {
        *self.rules.write().expect("rules lock") = rules;
        *self.fx.write().expect("fx lock") = fx;
    }

    /// A fingerprint of the reference data decisions depend on (rules and exchange rates),
    /// and of the derived layout ([`DERIVED_LAYOUT`]). A partition whose state was reconciled
    /// under another fingerprint is reconciled again.
    pub fn fingerprint(&self) -> i64 {
        let rules = serde_json::to_string(self.rules().as_ref()).expect("rules serialize");
        let fx = format!("{:?}", self.fx.read().expect("fx lock"));
        crate::model::fingerprint(&[rules.as_bytes(), fx.as_bytes(), DERIVED_LAYOUT]) as i64
    }

    /// Decodes, validates and applies one record of `stream`. A customer's record concerns
    /// the one partition it came from; reference data (exchange rates) every partition in
    /// `partitions`.
    pub fn process(
        &self,
        txn: &mut Txn<'_>,
        partitions: &[i32],
        stream: Stream,
        key: Option<&str>,
        payload: Payload<'_>,
        today: NaiveDate,
    ) -> Result<Outcome, ProcessError> {
        let events = match self.check(stream, key, payload)? {
            Err(rejection) => return Ok(Outcome::Rejected(rejection)),
            Ok(Checked::RateDeleted(rate_type, from, to, date)) => {
                self.fx
                    .write()
                    .expect("fx lock")
                    .remove(&rate_type, &from, &to, date);
                self.reevaluate_holders(txn, partitions, &from, &to, today)?
            }
            Ok(Checked::Event(InputEvent::FxRate(rate))) => {
                self.fx.write().expect("fx lock").insert(&rate);
                self.reevaluate_holders(
                    txn,
                    partitions,
                    &rate.from_currency,
                    &rate.to_currency,
                    today,
                )?
            }
            Ok(Checked::Event(event)) => {
                let customer = event
                    .customer_key()
                    .expect("customer events have a customer");
                let [partition] = partitions else {
                    unreachable!("a customer's record comes from one partition");
                };
                match self.update_with(txn, *partition, &customer, Some(event), today, false)? {
                    Some(events) => events,
                    None => return Ok(Outcome::AlreadyHeld),
                }
            }
        };
        Ok(Outcome::Processed(events))
    }

    /// Loads reference data read at start-up, before any partition is held: nothing to
    /// re-evaluate yet (a partition reconciled under other reference data is reconciled
    /// again when it is taken up, see [`Operator::fingerprint`]).
    pub fn load_reference(
        &self,
        stream: Stream,
        key: Option<&str>,
        payload: Payload<'_>,
    ) -> Result<Option<Rejection>, ProcessError> {
        match self.check(stream, key, payload)? {
            Err(rejection) => Ok(Some(rejection)),
            Ok(Checked::RateDeleted(rate_type, from, to, date)) => {
                self.fx
                    .write()
                    .expect("fx lock")
                    .remove(&rate_type, &from, &to, date);
                Ok(None)
            }
            Ok(Checked::Event(InputEvent::FxRate(rate))) => {
                self.fx.write().expect("fx lock").insert(&rate);
                Ok(None)
            }
            Ok(Checked::Event(_)) => Ok(Some(Rejection {
                kind: RejectionKind::Invalid,
                reason: format!("`{}` is not reference data", stream.as_str()),
            })),
        }
    }

    /// Decodes and validates a record: the event, or why it is refused.
    fn check(
        &self,
        stream: Stream,
        key: Option<&str>,
        payload: Payload<'_>,
    ) -> Result<Result<Checked, Rejection>, ProcessError> {
        let reject = |kind, reason: String| Ok(Err(Rejection { kind, reason }));
        let decoded = match payload {
            Payload::Avro(bytes) => self.catalog.decode_input(stream, bytes),
            Payload::Json(json) => codec::input_from_json(stream, json),
            Payload::Tombstone if stream == Stream::FxRates => {
                return match key.and_then(parse_rate_key) {
                    Some((rate_type, from, to, date)) => {
                        Ok(Ok(Checked::RateDeleted(rate_type, from, to, date)))
                    }
                    None => reject(
                        RejectionKind::WrongKey,
                        format!(
                            "a tombstone's key must be TYPE|FROM|TO|YYYY-MM-DD, not `{}`",
                            key.unwrap_or("<none>")
                        ),
                    ),
                };
            }
            Payload::Tombstone => {
                return reject(
                    RejectionKind::Undecodable,
                    "record has no value (a tombstone is not an event)".into(),
                );
            }
        };
        let event = match decoded {
            Ok(event) => event,
            Err(e) if e.is_external() => return Err(ProcessError::External(e.to_string())),
            Err(codec::CodecError::RegistryDenied(e)) => {
                return Err(ProcessError::Configuration(e));
            }
            Err(e) => return reject(RejectionKind::Undecodable, e.to_string()),
        };
        if let Err(e) = validate(&event) {
            return reject(RejectionKind::Invalid, e.to_string());
        }
        if let Err(e) = validate_key(&event, key) {
            return reject(RejectionKind::WrongKey, e.to_string());
        }
        Ok(Ok(Checked::Event(event)))
    }

    /// Re-evaluates, in `partitions`, the customers whose figures a rate between `a` and `b`
    /// converts: those holding one of the currencies while a rule anchors in the other.
    fn reevaluate_holders(
        &self,
        txn: &mut Txn<'_>,
        partitions: &[i32],
        a: &str,
        b: &str,
        today: NaiveDate,
    ) -> Result<Vec<OutputEvent>, StateError> {
        let rules = self.rules();
        let anchors = rules.anchor_currencies();
        let mut held = Vec::new();
        if anchors.contains(b) {
            held.push(a);
        }
        if anchors.contains(a) {
            held.push(b);
        }
        let mut out = Vec::new();
        for partition in partitions {
            let mut customers = BTreeSet::new();
            for currency in &held {
                customers.extend(customers_holding(txn, *partition, currency)?);
            }
            for customer in customers {
                out.extend(self.update(txn, *partition, &customer, today)?);
            }
        }
        Ok(out)
    }

    /// Takes in a rule document read live (the rules topic, a replay line). A valid document
    /// newer than the rule set in force replaces it, and the customers of every setID whose
    /// rules changed are re-evaluated in `partitions`; an invalid one is refused with every
    /// problem and the rule set in force stays.
    pub fn replace_rules(
        &self,
        txn: &mut Txn<'_>,
        partitions: &[i32],
        text: &str,
        origin: &str,
        today: NaiveDate,
    ) -> Result<RulesChange, StateError> {
        let new = match RuleSet::parse(text, origin) {
            Ok(new) => new,
            Err(e) => {
                return Ok(RulesChange::Rejected(Rejection {
                    kind: RejectionKind::Invalid,
                    reason: e.to_string(),
                }));
            }
        };
        let old = self.rules();
        if new.version <= old.version {
            return Ok(RulesChange::Stale {
                offered: new.version,
                current: old.version,
            });
        }
        let version = new.version;
        let affected = changed_set_ids(&old, &new);
        *self.rules.write().expect("rules lock") = Arc::new(new);
        let mut events = Vec::new();
        for partition in partitions {
            for customer in customers_of(txn, *partition, affected.as_ref())? {
                events.extend(self.update(txn, *partition, &customer, today)?);
            }
        }
        Ok(RulesChange::Applied { version, events })
    }

    /// Reconciles every customer of `partition` (after reference data changed while the
    /// partition was not held here).
    pub fn reconcile_partition(
        &self,
        txn: &mut Txn<'_>,
        partition: i32,
        today: NaiveDate,
    ) -> Result<Vec<OutputEvent>, StateError> {
        let mut out = Vec::new();
        for customer in customers_of(txn, partition, None)? {
            out.extend(
                self.update_with(txn, partition, &customer, None, today, true)?
                    .unwrap_or_default(),
            );
        }
        Ok(out)
    }

    /// The risk score of every customer of `partition` that has a scoring rule, as of `today`
    /// (batch parity: what a nightly scoring run would have computed).
    pub fn scores(
        &self,
        txn: &mut Txn<'_>,
        partition: i32,
        today: NaiveDate,
    ) -> Result<Vec<(CustomerKey, engine::risk::RiskScore)>, StateError> {
        let rules = self.rules();
        let fx = self.fx.read().expect("fx lock");
        let mut out = Vec::new();
        for customer in customers_of(txn, partition, None)? {
            let state = customers::load(txn, partition, &customer)?.unwrap_or_default();
            if let Some(rule) = engine::risk::rule_for(&state, &customer, &rules) {
                out.push((
                    customer,
                    engine::risk::score(&state, rule, &rules, &fx, today),
                ));
            }
        }
        Ok(out)
    }

    /// Fires every timer of `partition` due on or before `today`: each customer concerned is
    /// reconciled once, however many of its timers came due.
    pub fn fire_timers(
        &self,
        txn: &mut Txn<'_>,
        partition: i32,
        today: NaiveDate,
    ) -> Result<Vec<OutputEvent>, StateError> {
        Ok(self.fire_timers_due(txn, partition, today)?.0)
    }

    /// [`Operator::fire_timers`], with the due date of every timer that fired (to measure how
    /// late they fired).
    pub fn fire_timers_due(
        &self,
        txn: &mut Txn<'_>,
        partition: i32,
        today: NaiveDate,
    ) -> Result<(Vec<OutputEvent>, Vec<NaiveDate>), StateError> {
        let fired = self.fire_timers_from(txn, partition, today, None, usize::MAX)?;
        Ok((fired.events, fired.due))
    }

    /// [`Operator::fire_timers_due`] for at most `limit` due timers, after `after` (a position
    /// this returned before): a day on which a million customers' timers fall due is worked
    /// through in batches of bounded size, not one. Returns the position to go on from, `None`
    /// once none are left.
    pub fn fire_timers_from(
        &self,
        txn: &mut Txn<'_>,
        partition: i32,
        today: NaiveDate,
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Fired, StateError> {
        let (due, next) = Timers { txn, partition }.due_from(today, after, limit)?;
        // A restore's stand-in is not a timer of the day: no lateness to report for it.
        let dates = due
            .iter()
            .filter(|t| t.name != crate::timer::RESTORED)
            .map(|t| t.due)
            .collect();
        let mut customers: Vec<CustomerKey> = due.into_iter().map(|t| t.key).collect();
        customers.sort();
        customers.dedup();
        let mut out = Vec::new();
        for customer in customers {
            out.extend(self.update(txn, partition, &customer, today)?);
        }
        Ok(Fired {
            events: out,
            due: dates,
            next,
        })
    }

    /// Loads a customer, reconciles it (time, rules or rates moved, not its ledger), resets
    /// its timers, saves.
    fn update(
        &self,
        txn: &mut Txn<'_>,
        partition: i32,
        customer: &CustomerKey,
        today: NaiveDate,
    ) -> Result<Vec<OutputEvent>, StateError> {
        Ok(self
            .update_with(txn, partition, customer, None, today, false)?
            .unwrap_or_default())
    }

    /// [`Operator::update`], with the record's event folded in first (if any);
    /// `rewrite_families` writes the customer's parent-index entries
    /// whether or not they changed. `None`: the event says what the customer already holds,
    /// and nothing was applied or decided.
    fn update_with(
        &self,
        txn: &mut Txn<'_>,
        partition: i32,
        customer: &CustomerKey,
        event: Option<InputEvent>,
        today: NaiveDate,
        rewrite_families: bool,
    ) -> Result<Option<Vec<OutputEvent>>, StateError> {
        let (mut state, timers_set) =
            customers::load_listed(txn, partition, customer)?.unwrap_or_default();
        // An open item re-sent as it stands (an ERP's full extract): nothing to apply or
        // decide, and what time changes is decided by the customer's timers. The customer goes
        // back as it was read, and the batch writes nothing for it.
        if event.as_ref().is_some_and(|e| state.already_holds(e)) {
            customers::save(txn, partition, customer, state, timers_set)?;
            return Ok(None);
        }
        let held_before = owned(state.currencies());
        let owners_before = state.open_action_owners();
        let flagged_before = !state.blocked.is_empty();
        let families_before = engine::families(&state);
        let rules = self.rules();
        let mut out = Vec::new();
        match event {
            Some(InputEvent::Command(command)) => {
                out.extend(engine::execute(
                    &mut state, customer, &rules, &command, today,
                ));
            }
            Some(InputEvent::Conversation(conversation)) => {
                customers::recall_conversation(
                    txn,
                    partition,
                    customer,
                    &conversation.conversation_id,
                    &mut state,
                )?;
                out.extend(engine::take_conversation(
                    &mut state,
                    customer,
                    conversation,
                    today,
                ));
            }
            Some(event) => {
                if let InputEvent::Item(item) = &event {
                    out.extend(engine::work::announce_new_item(
                        &state, customer, &rules, item, today,
                    ));
                }
                state.apply(event, today)
            }
            None => {}
        }
        let fx = self.fx.read().expect("fx lock");
        let (events, wanted) = engine::evaluate(&mut state, customer, &rules, &fx, today);
        out.extend(events);
        drop(fx);
        let timers_set = Timers { txn, partition }.replace_all(customer, &wanted, timers_set)?;
        let (held, owners) = (owned(state.currencies()), state.open_action_owners());
        reindex(
            txn,
            partition,
            StoreName::CurrencyIndex,
            customer,
            (&held_before, &held),
        );
        reindex(
            txn,
            partition,
            StoreName::OwnerIndex,
            customer,
            (&owners_before, &owners),
        );
        let families_after = engine::families(&state);
        // A full pass (after an upgrade, or reference data changed) writes them all: state
        // written before the index existed has no entries.
        let families_before = if rewrite_families {
            BTreeSet::new()
        } else {
            families_before
        };
        reindex(
            txn,
            partition,
            StoreName::ParentIndex,
            customer,
            (&families_before, &families_after),
        );
        for event in &out {
            match event {
                OutputEvent::Action(a) => {
                    if let Some(previous) = a.previous_status {
                        txn.add_to_counter(partition, &action_counter(previous), -1)?;
                    }
                    txn.add_to_counter(partition, &action_counter(a.status), 1)?;
                }
                OutputEvent::Condition(c) => {
                    let delta = match c.kind {
                        ConditionEventKind::ViolationOpened => 1,
                        ConditionEventKind::ViolationEnded => -1,
                        _ => 0,
                    };
                    txn.add_to_counter(partition, &violation_counter(&c.condition), delta)?;
                }
                _ => {}
            }
        }
        let flagged_after = !state.blocked.is_empty();
        if flagged_before != flagged_after {
            txn.add_to_counter(
                partition,
                CUSTOMERS_FLAGGED,
                if flagged_after { 1 } else { -1 },
            )?;
        }
        let retired = engine::history::retire(&mut state, &rules, today);
        if !retired.is_empty() {
            customers::save_history(txn, partition, customer, retired)?;
        }
        customers::save(txn, partition, customer, state, Some(timers_set))?;
        Ok(Some(out))
    }
}

fn owned(values: BTreeSet<&str>) -> BTreeSet<String> {
    values.into_iter().map(str::to_owned).collect()
}

/// What firing a bounded batch of due timers did: the events, the due date of each timer
/// fired, and the position the next batch goes on from (`None`: none left).
pub struct Fired {
    pub events: Vec<OutputEvent>,
    pub due: Vec<NaiveDate>,
    pub next: Option<Vec<u8>>,
}

/// Keeps an index (`value NUL customer-key`) in step with the customer: values gone are
/// deleted, values new are written (only changes: each is a changelog record).
fn reindex(
    txn: &mut Txn<'_>,
    partition: i32,
    index: StoreName,
    customer: &CustomerKey,
    (before, after): (&BTreeSet<String>, &BTreeSet<String>),
) {
    for gone in before.difference(after) {
        txn.delete(partition, index, &index_key(gone, customer));
    }
    for new in after.difference(before) {
        txn.put(partition, index, &index_key(new, customer), Vec::new());
    }
}

/// The customers of `partition` related at `role` to `head` (of `head`'s setID): the head
/// itself when it is on the partition, and the customers whose master names it as their
/// parent there (by the parent index).
pub fn customers_related(
    txn: &mut Txn<'_>,
    partition: i32,
    partitions: i32,
    role: crate::model::MonitorRole,
    head: &CustomerKey,
) -> Result<Vec<(CustomerKey, CustomerState)>, StateError> {
    let family = engine::family(role, &head.set_id, &head.customer_id);
    let mut keys = indexed_customers(txn, partition, StoreName::ParentIndex, &family)?;
    if crate::kafka::partition_for(head.encode().as_bytes(), partitions) == partition {
        keys.insert(0, head.clone());
    }
    let mut out = Vec::new();
    for key in keys {
        if let Some(state) = customers::load(txn, partition, &key)? {
            out.push((key, state));
        }
    }
    Ok(out)
}

/// The customers of `partition` with an open action of `owner` (by the owner index).
pub fn customers_of_owner(
    txn: &mut Txn<'_>,
    partition: i32,
    owner: &str,
) -> Result<Vec<(CustomerKey, CustomerState)>, StateError> {
    let mut out = Vec::new();
    for key in indexed_customers(txn, partition, StoreName::OwnerIndex, owner)? {
        if let Some(state) = customers::load(txn, partition, &key)? {
            out.push((key, state));
        }
    }
    Ok(out)
}

/// The customers of `partition` with figures in `currency`.
fn customers_holding(
    txn: &Txn<'_>,
    partition: i32,
    currency: &str,
) -> Result<Vec<CustomerKey>, StateError> {
    indexed_customers(txn, partition, StoreName::CurrencyIndex, currency)
}

/// What the stores derive from the customers besides their decisions; a new value makes
/// every partition go through [`Operator::reconcile_partition`] once (which writes the parent
/// index of state written before it existed).
pub(super) const DERIVED_LAYOUT: &[u8] = b"parent-index";

/// The customers an index (`value NUL customer-key → nothing`) lists under `value`.
fn indexed_customers(
    txn: &Txn<'_>,
    partition: i32,
    index: StoreName,
    value: &str,
) -> Result<Vec<CustomerKey>, StateError> {
    let mut prefix = value.as_bytes().to_vec();
    prefix.push(0);
    txn.scan(partition, index, &prefix, |k| k.starts_with(&prefix))?
        .into_iter()
        .map(|(k, _)| {
            std::str::from_utf8(&k[prefix.len()..])
                .ok()
                .and_then(CustomerKey::decode)
                .ok_or_else(|| StateError::Corrupt {
                    store: index.as_str().into(),
                    message: "undecodable customer key".into(),
                })
        })
        .collect()
}

/// The customers of `partition` (of the given setIDs only, when given), in key order.
fn customers_of(
    txn: &Txn<'_>,
    partition: i32,
    set_ids: Option<&BTreeSet<String>>,
) -> Result<Vec<CustomerKey>, StateError> {
    let prefixes: Vec<Vec<u8>> = match set_ids {
        None => vec![Vec::new()],
        Some(sets) => sets
            .iter()
            .map(|s| CustomerKey::new(s.as_str(), "").encode().into_bytes())
            .collect(),
    };
    let mut out = Vec::new();
    for prefix in prefixes {
        for k in txn.value_keys(partition, StoreName::Ledger, &prefix)? {
            let key = std::str::from_utf8(&k)
                .ok()
                .and_then(CustomerKey::decode)
                .ok_or_else(|| StateError::Corrupt {
                    store: StoreName::Ledger.as_str().into(),
                    message: "undecodable customer key".into(),
                })?;
            out.push(key);
        }
    }
    Ok(out)
}

/// The setIDs whose rules differ between two rule sets; `None` when everything is affected
/// (options, aging definitions, templates, calendars or owners changed).
fn changed_set_ids(old: &RuleSet, new: &RuleSet) -> Option<BTreeSet<String>> {
    // Calendars move reminder dates; the directory changes who is told.
    if old.options != new.options
        || old.agings != new.agings
        || old.templates != new.templates
        || old.calendars != new.calendars
        || old.owners != new.owners
    {
        return None;
    }
    let mut changed = BTreeSet::new();
    for rule in old.collection_rules.iter().chain(&new.collection_rules) {
        if old.collection_rule(&rule.id) != new.collection_rule(&rule.id) {
            changed.insert(rule.set_id.clone());
        }
    }
    for rule in old.assessment_rules.iter().chain(&new.assessment_rules) {
        if old.assessment_rule(&rule.id) != new.assessment_rule(&rule.id) {
            changed.insert(rule.set_id.clone());
        }
    }
    for rule in old.scoring_rules.iter().chain(&new.scoring_rules) {
        if old.scoring_rule(&rule.id) != new.scoring_rule(&rule.id) {
            changed.insert(rule.set_id.clone());
        }
    }
    Some(changed)
}

/// `TYPE|FROM|TO|YYYY-MM-DD`, the key of an exchange rate.
fn parse_rate_key(key: &str) -> Option<(String, String, String, NaiveDate)> {
    let mut parts = key.split('|');
    let (rate_type, from, to, date) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    Some((rate_type.into(), from.into(), to.into(), date.parse().ok()?))
}

/// Every customer of `partition` with its state (for queries across customers).
pub fn customer_states(
    txn: &mut Txn<'_>,
    partition: i32,
) -> Result<Vec<(CustomerKey, CustomerState)>, StateError> {
    let mut out = Vec::new();
    for key in customers_of(txn, partition, None)? {
        if let Some(state) = customers::load(txn, partition, &key)? {
            out.push((key, state));
        }
    }
    Ok(out)
}

/// Reads one customer's state (for queries: the batch that reads it is dropped, not finished).
pub fn customer_state(
    txn: &mut Txn<'_>,
    partition: i32,
    customer: &CustomerKey,
) -> Result<Option<CustomerState>, StateError> {
    customers::load(txn, partition, customer)
}

#[cfg(test)]
mod tests {
    use rust_decimal::Decimal;

    use super::*;

    const SCORING: &str = r#"
version = 1
[[scoring_rule]]
id = "R"
set_id = "SHARE"
currency = "USD"
[[scoring_rule.element]]
name = "BAL"
weight = "100"
input = { kind = "BALANCE_DUE" }
ranges = [ { low = "-999999999", high = "1000", value = "1" }, { low = "1000.0001", high = "999999999", value = "5" } ]
"#;

    /// A collection rule over any past-due amount from 100, with a one-step plan (a call).
    pub(super) const COLLECT: &str = r#"
version = 1
[[collection_rule]]
id = "COLL"
set_id = "SHARE"
currency = "USD"
min_past_due_amount = "100"
days_past_due = 0
template = "T"
owner_type = "COLLECTOR"
[[template]]
id = "T"
[[template.step]]
days_after = 0
action_code = "CALL"
due_days = 1
"#;

    #[test]
    fn a_change_of_scoring_rules_alone_rescores_the_customers_of_its_set_id() {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::state::Store::open(dir.path()).unwrap();
        store.ensure_partition(0).unwrap();
        let operator = Operator::new(
            Arc::new(RuleSet::parse(SCORING, "v1").unwrap()),
            Arc::new(SchemaCatalog::bundled().unwrap()),
        );
        let today: NaiveDate = "2026-03-31".parse().unwrap();
        let item = serde_json::json!({"set_id":"SHARE","business_unit":"US001","customer_id":"C1","item_id":"I1","item_line":0,"item_type":"INVOICE","original_amount":"2000","open_amount":"2000","currency":"USD","accounting_date":"2026-03-01","due_date":"2026-04-30","entry_type":"IN","disputed_amount":"0"});
        let mut txn = store.txn();
        let Outcome::Processed(out) = operator
            .process(
                &mut txn,
                &[0],
                Stream::Items,
                Some("SHARE|C1"),
                Payload::Json(item),
                today,
            )
            .unwrap()
        else {
            panic!("refused")
        };
        assert!(matches!(&out[0], OutputEvent::RiskScore(r) if r.total == Decimal::from(5)));
        let v2 = SCORING
            .replace("version = 1", "version = 2")
            .replace("value = \"5\"", "value = \"7\"");
        let RulesChange::Applied { events, .. } = operator
            .replace_rules(&mut txn, &[0], &v2, "v2", today)
            .unwrap()
        else {
            panic!("not applied")
        };
        assert!(
            matches!(&events[0], OutputEvent::RiskScore(r) if r.total == Decimal::from(7) && r.rule_version == 2),
            "{events:?}"
        );
    }

    #[test]
    fn a_rate_rescores_customers_whose_only_conversion_is_for_their_scoring_rule() {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::state::Store::open(dir.path()).unwrap();
        store.ensure_partition(0).unwrap();
        let eur = SCORING.replace("currency = \"USD\"", "currency = \"EUR\"");
        let operator = Operator::new(
            Arc::new(RuleSet::parse(&eur, "eur").unwrap()),
            Arc::new(SchemaCatalog::bundled().unwrap()),
        );
        let today: NaiveDate = "2026-03-31".parse().unwrap();
        let item = serde_json::json!({"set_id":"SHARE","business_unit":"US001","customer_id":"C1","item_id":"I1","item_line":0,"item_type":"INVOICE","original_amount":"2000","open_amount":"2000","currency":"USD","accounting_date":"2026-03-01","due_date":"2026-04-30","entry_type":"IN","disputed_amount":"0"});
        let mut txn = store.txn();
        let Outcome::Processed(out) = operator
            .process(
                &mut txn,
                &[0],
                Stream::Items,
                Some("SHARE|C1"),
                Payload::Json(item),
                today,
            )
            .unwrap()
        else {
            panic!("refused")
        };
        assert!(
            matches!(&out[0], OutputEvent::RiskScore(r) if !r.complete),
            "no USD/EUR rate yet: {out:?}"
        );
        let rate = serde_json::json!({"rate_type":"CRRNT","from_currency":"EUR","to_currency":"USD","effective_date":"2026-01-01","rate":"2"});
        let Outcome::Processed(out) = operator
            .process(
                &mut txn,
                &[0],
                Stream::FxRates,
                Some("CRRNT|EUR|USD|2026-01-01"),
                Payload::Json(rate),
                today,
            )
            .unwrap()
        else {
            panic!("refused")
        };
        // 2,000 USD = 1,000 EUR: the first range.
        assert!(
            matches!(&out[0], OutputEvent::RiskScore(r) if r.complete && r.total == Decimal::from(1)),
            "{out:?}"
        );
    }

    #[test]
    fn the_owner_index_lists_the_customers_with_an_owners_open_actions() {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::state::Store::open(dir.path()).unwrap();
        store.ensure_partition(0).unwrap();
        let operator = Operator::new(
            Arc::new(RuleSet::parse(COLLECT, "owners").unwrap()),
            Arc::new(SchemaCatalog::bundled().unwrap()),
        );
        let today: NaiveDate = "2026-03-31".parse().unwrap();
        let mut txn = store.txn();
        let item = |customer: &str, open: &str| serde_json::json!({"set_id":"SHARE","business_unit":"US001","customer_id":customer,"item_id":"I1","item_line":0,"item_type":"INVOICE","original_amount":"500","open_amount":open,"currency":"USD","accounting_date":"2026-02-01","due_date":"2026-03-01","entry_type":"IN","disputed_amount":"0","collector":"JDOE"});
        for (customer, open) in [("C1", "500"), ("C2", "500"), ("C2", "0")] {
            let key = format!("SHARE|{customer}");
            operator
                .process(
                    &mut txn,
                    &[0],
                    Stream::Items,
                    Some(&key),
                    Payload::Json(item(customer, open)),
                    today,
                )
                .unwrap();
        }
        let listed: Vec<String> = customers_of_owner(&mut txn, 0, "JDOE")
            .unwrap()
            .into_iter()
            .map(|(k, _)| k.customer_id)
            .collect();
        // C2 paid: its action was cancelled and it left JDOE's list.
        assert_eq!(listed, ["C1"]);
        assert!(
            customers_of_owner(&mut txn, 0, "NOBODY")
                .unwrap()
                .is_empty()
        );
    }

    /// A day on which many customers' timers fall due is worked through in bounded batches,
    /// each going on where the last stopped, and decides exactly what one batch would have.
    #[test]
    fn due_timers_fired_a_bounded_batch_at_a_time_decide_what_one_batch_would() {
        // A second step three days on: a timer for each customer.
        let rules = format!(
            "{COLLECT}[[template.step]]\ndays_after = 3\naction_code = \"DLTR\"\ndue_days = 1\n"
        );
        let opened: NaiveDate = "2026-03-02".parse().unwrap();
        let later: NaiveDate = "2026-03-05".parse().unwrap();
        let item = |customer: &str| serde_json::json!({"set_id":"SHARE","business_unit":"US001","customer_id":customer,"item_id":"I1","item_line":0,"item_type":"INVOICE","original_amount":"500","open_amount":"500","currency":"USD","accounting_date":"2026-02-01","due_date":"2026-03-01","entry_type":"IN","disputed_amount":"0"});
        let prepared = || {
            let dir = tempfile::tempdir().unwrap();
            let store = crate::state::Store::open(dir.path()).unwrap();
            store.ensure_partition(0).unwrap();
            let operator = Operator::new(
                Arc::new(RuleSet::parse(&rules, "timers").unwrap()),
                Arc::new(SchemaCatalog::bundled().unwrap()),
            );
            let mut txn = store.txn();
            for n in 0..12 {
                let customer = format!("C{n:02}");
                let key = format!("SHARE|{customer}");
                operator
                    .process(
                        &mut txn,
                        &[0],
                        Stream::Items,
                        Some(&key),
                        Payload::Json(item(&customer)),
                        opened,
                    )
                    .unwrap();
            }
            store.commit(txn, &[]).unwrap();
            (dir, store, operator)
        };
        let as_text = |events: Vec<OutputEvent>| -> Vec<String> {
            let mut text: Vec<String> = events.iter().map(|e| format!("{e:?}")).collect();
            text.sort();
            text
        };

        let (_dir, store, operator) = prepared();
        let mut txn = store.txn();
        let (all, fired) = operator.fire_timers_due(&mut txn, 0, later).unwrap();
        assert!(fired.len() >= 12, "every customer's DLTR step is due");
        let all = as_text(all);

        let (_dir, store, operator) = prepared();
        let (mut events, mut position, mut batches) = (Vec::new(), None, 0);
        loop {
            let mut txn = store.txn();
            let fired = operator
                .fire_timers_from(&mut txn, 0, later, position.as_deref(), 5)
                .unwrap();
            store.commit(txn, &[]).unwrap();
            assert!(fired.due.len() <= 5, "a batch fires at most its limit");
            events.extend(fired.events);
            batches += 1;
            match fired.next {
                Some(next) => position = Some(next),
                None => break,
            }
        }
        assert!(batches >= 3, "{batches} batches");
        assert_eq!(as_text(events), all);
        // Nothing is left due: a new sweep finds nothing.
        let mut txn = store.txn();
        let fired = operator
            .fire_timers_from(&mut txn, 0, later, None, 5)
            .unwrap();
        assert!(fired.events.is_empty() && fired.due.is_empty() && fired.next.is_none());
    }

    /// The customer action list's levels read the parent index: a customer is listed under
    /// each parent its master names, moves when the master changes, and state written before
    /// the index existed is indexed by the full pass an upgrade triggers.
    #[test]
    fn the_parent_index_follows_the_masters_relationships() {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::state::Store::open(dir.path()).unwrap();
        store.ensure_partition(0).unwrap();
        let operator = Operator::new(
            Arc::new(RuleSet::parse("version = 1\n", "none").unwrap()),
            Arc::new(SchemaCatalog::bundled().unwrap()),
        );
        let today: NaiveDate = "2026-03-31".parse().unwrap();
        let master = |customer: &str, corporate: Option<&str>, remit: Option<&str>| {
            let key = CustomerKey::new("SHARE", customer);
            let change = crate::model::CustomerChange {
                corporate_parent: corporate.map(String::from),
                remit_from_parent: remit.map(String::from),
                ..crate::model::CustomerChange::new(&key, customer, "USD")
            };
            serde_json::to_value(change).unwrap()
        };
        // Each change is its own committed batch; queries read with batches of their own.
        let send = |value: serde_json::Value| {
            let key = format!("SHARE|{}", value["customer_id"].as_str().unwrap());
            let mut txn = store.txn();
            operator
                .process(
                    &mut txn,
                    &[0],
                    Stream::Customers,
                    Some(&key),
                    Payload::Json(value),
                    today,
                )
                .unwrap();
            store.apply(&txn.finish(&[])).unwrap();
        };
        send(master("HQ", None, None));
        send(master("B1", Some("HQ"), Some("HQ")));
        send(master("B2", Some("HQ"), None));
        send(master("B3", Some("B3"), None)); // its own parent: no family
        let family = |role, head: &str| -> Vec<String> {
            customers_related(
                &mut store.txn(),
                0,
                1,
                role,
                &CustomerKey::new("SHARE", head),
            )
            .unwrap()
            .into_iter()
            .map(|(k, _)| k.customer_id)
            .collect()
        };
        use crate::model::MonitorRole::{Corporate, RemitFrom};
        assert_eq!(family(Corporate, "HQ"), ["HQ", "B1", "B2"]);
        assert_eq!(family(RemitFrom, "HQ"), ["HQ", "B1"]);
        assert_eq!(family(Corporate, "B3"), ["B3"]);
        // B2 moves to another corporate parent.
        send(master("B2", Some("B3"), None));
        assert_eq!(family(Corporate, "HQ"), ["HQ", "B1"]);
        assert_eq!(family(Corporate, "B3"), ["B3", "B2"]);
        // State without index entries (written before the index existed) is indexed by the
        // full pass that a new fingerprint triggers.
        let entries = || {
            store
                .txn()
                .scan(0, StoreName::ParentIndex, b"", |_| true)
                .unwrap()
        };
        let mut txn = store.txn();
        for (key, _) in entries() {
            txn.delete(0, StoreName::ParentIndex, &key);
        }
        store.apply(&txn.finish(&[])).unwrap();
        assert_eq!(family(Corporate, "HQ"), ["HQ"]);
        let mut txn = store.txn();
        operator.reconcile_partition(&mut txn, 0, today).unwrap();
        store.apply(&txn.finish(&[])).unwrap();
        assert_eq!(family(Corporate, "HQ"), ["HQ", "B1"]);
        assert_eq!(family(Corporate, "B3"), ["B3", "B2"]);
        assert_eq!(
            entries().len(),
            3,
            "B1 twice (corporate, remit from), B2 once"
        );
    }
}

#[cfg(test)]
mod history_tests {
    use super::*;

    fn item(id: &str, open: &str, due: NaiveDate) -> serde_json::Value {
        serde_json::json!({"set_id":"SHARE","business_unit":"US001","customer_id":"C1",
            "item_id":id,"item_line":0,"item_type":"INVOICE","original_amount":"2000",
            "open_amount":open,"currency":"USD","accounting_date":(due - chrono::Duration::days(30)).to_string(),
            "due_date":due.to_string(),"entry_type":"IN","disputed_amount":"0"})
    }

    #[test]
    fn closed_actions_leave_the_hot_state_after_the_horizon_and_stay_in_the_history() {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::state::Store::open(dir.path()).unwrap();
        store.ensure_partition(0).unwrap();
        let rules = RuleSet::load(
            &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("topology/rules.toml"),
        )
        .unwrap();
        assert_eq!(rules.options.history_after_days, 400);
        let operator = Operator::new(Arc::new(rules), Arc::new(SchemaCatalog::bundled().unwrap()));
        let customer = CustomerKey::new("SHARE", "C1");
        let start: NaiveDate = "2026-01-01".parse().unwrap();
        // Five years of a monthly invoice 45 days late (a plan opens) then paid (it is cancelled).
        let months = 60;
        let mut hot_peak = 0;
        for month in 0..months {
            let today = start + chrono::Duration::days(30 * month);
            let id = format!("INV-{month}");
            let due = today - chrono::Duration::days(45);
            for open in ["2000", "0"] {
                let mut txn = store.txn();
                let Outcome::Processed(_) = operator
                    .process(
                        &mut txn,
                        &[0],
                        Stream::Items,
                        Some("SHARE|C1"),
                        Payload::Json(item(&id, open, due)),
                        today,
                    )
                    .unwrap()
                else {
                    panic!("refused")
                };
                store.commit(txn, &[]).unwrap();
            }
            let mut txn = store.txn();
            let state = customer_state(&mut txn, 0, &customer).unwrap().unwrap();
            assert!(state.actions.values().all(|a| !a.status.is_open()));
            hot_peak = hot_peak.max(state.actions.len());
        }
        let mut txn = store.txn();
        let state = customer_state(&mut txn, 0, &customer).unwrap().unwrap();
        let history = customers::history_actions(&mut txn, 0, &customer).unwrap();
        let created = state.actions.len() + history.len();
        assert!(created >= months as usize * 3, "{created} actions in all");
        // 400 days of closed plans stay hot (about 14 months of them), not five years.
        assert!(hot_peak <= 16 * 3, "hot actions peaked at {hot_peak}");
        assert!(history.len() >= 40 * 3, "{} in the history", history.len());
        let last = start + chrono::Duration::days(30 * (months - 1));
        assert!(
            history
                .iter()
                .all(|a| a.closed_on.unwrap() < last - chrono::Duration::days(400))
        );
    }

    /// What is not logged is rebuilt by a restore: a partition restored from its logged
    /// stores alone has the timers, `timers-by-due`, indexes and pending count of the one that
    /// wrote them, also over stale entries of its own; a ledger written before ledgers listed
    /// their timers gets one due at once, whose firing sets the customer's timers again and
    /// sends nothing.
    #[test]
    fn a_restore_rebuilds_the_timers_and_indexes_from_the_customers() {
        use std::collections::BTreeMap;

        use crate::kafka::LogRecord;
        use crate::pipeline::changelog::{Applier, changelogged};
        use crate::pipeline::customers::DERIVED;
        use crate::timer::TIMERS_PENDING;

        let dir = tempfile::tempdir().unwrap();
        let store = crate::state::Store::open(dir.path()).unwrap();
        for p in 0..4 {
            store.ensure_partition(p).unwrap();
        }
        // A second step ten days on: every plan sets a timer.
        let two_steps = format!(
            "{}[[template.step]]\ndays_after = 10\naction_code = \"LETTER\"\ndue_days = 1\n",
            super::tests::COLLECT
        );
        let operator = Operator::new(
            Arc::new(RuleSet::parse(&two_steps, "two-steps").unwrap()),
            Arc::new(SchemaCatalog::bundled().unwrap()),
        );
        let today: NaiveDate = "2026-03-31".parse().unwrap();
        let item = |customer: &str, currency: &str, due: &str| serde_json::json!({"set_id":"SHARE","business_unit":"US001","customer_id":customer,"item_id":"I1","item_line":0,"item_type":"INVOICE","original_amount":"500","open_amount":"500","currency":currency,"accounting_date":"2026-02-01","due_date":due,"entry_type":"IN","disputed_amount":"0","collector":"JDOE"});
        let mut master = serde_json::to_value(crate::model::CustomerChange {
            corporate_parent: Some("HQ".into()),
            ..crate::model::CustomerChange::new(&CustomerKey::new("SHARE", "B1"), "B1", "USD")
        })
        .unwrap();
        master["customer_id"] = "B1".into();
        let inputs = [
            (Stream::Items, "SHARE|C1", item("C1", "USD", "2026-03-01")),
            (Stream::Items, "SHARE|C2", item("C2", "EUR", "2026-04-15")),
            (Stream::Customers, "SHARE|B1", master),
        ];
        let mut txn = store.txn();
        for (stream, key, value) in inputs {
            let outcome = operator
                .process(
                    &mut txn,
                    &[0],
                    stream,
                    Some(key),
                    Payload::Json(value),
                    today,
                )
                .unwrap();
            assert!(matches!(outcome, Outcome::Processed(_)), "{key} refused");
        }
        store.apply(&txn.finish(&[])).unwrap();

        // The derived stores as the partition that wrote them holds them.
        let derived = |p: i32| {
            let mut out: BTreeMap<StoreName, crate::state::KeyValues> = DERIVED
                .into_iter()
                .chain([StoreName::TimersByDue])
                .map(|s| (s, store.entries(p, s).unwrap()))
                .collect();
            let pending = store.counters(p).unwrap().get(TIMERS_PENDING).copied();
            out.insert(
                StoreName::Meta,
                vec![(vec![], format!("{pending:?}").into())],
            );
            out
        };
        let written = derived(0);
        for s in DERIVED {
            assert!(
                !written[&s].is_empty(),
                "{} holds nothing to rebuild",
                s.as_str()
            );
        }
        // The logged stores as a restore reads them, all committed (epoch 1, seq 1), each
        // value as `edit` makes it.
        type Edit<'e> = &'e dyn Fn(StoreName, &[u8], Vec<u8>) -> Vec<u8>;
        let logged = |edit: Edit<'_>| {
            changelogged()
                .flat_map(|s| {
                    store
                        .entries(0, s)
                        .unwrap()
                        .into_iter()
                        .map(move |e| (s, e))
                })
                .enumerate()
                .map(|(offset, (s, (key, value)))| {
                    let value = edit(s, &key, value);
                    let record = LogRecord {
                        offset: offset as i64,
                        key,
                        value: Some(value),
                        headers: vec![("condmon.writer".into(), "1.1".into())],
                    };
                    (s, record)
                })
                .collect::<Vec<_>>()
        };
        let committed = BTreeMap::from([(1u64, 1u64)]);
        let restore = |p: i32, records: Vec<(StoreName, LogRecord)>| {
            let mut repairs = BTreeSet::new();
            let mut applier = Applier::new(&store, p, &committed, &mut repairs);
            for (s, record) in records {
                applier.apply(s, record).unwrap();
            }
            applier.finish().unwrap();
        };
        let as_logged = |_: StoreName, _: &[u8], value: Vec<u8>| value;

        restore(1, logged(&as_logged));
        assert_eq!(derived(1), written, "restored into an empty partition");

        // A directory whose derived stores are of an older layout (here without the parent
        // index, as before the full pass wrote it) has them rebuilt for every customer by its
        // next restore, even one that reads nothing; one of today's layout does not.
        let delete = |p: i32, s: StoreName, keys: Vec<Vec<u8>>| {
            let mut txn = store.txn();
            for key in keys {
                txn.delete(p, s, &key);
            }
            store.apply(&txn.finish(&[])).unwrap();
        };
        let parents = || {
            store
                .keys_where(1, StoreName::ParentIndex, |_| true)
                .unwrap()
        };
        delete(1, StoreName::ParentIndex, parents());
        restore(1, Vec::new());
        assert!(
            parents().is_empty(),
            "today's layout: nothing read, nothing rebuilt"
        );
        let marker = customers::DERIVED_LAYOUT_KEY.to_vec();
        delete(1, StoreName::Checkpoint, vec![marker]);
        restore(1, Vec::new());
        assert_eq!(
            derived(1),
            written,
            "an older layout: rebuilt for every customer"
        );

        // Over entries of its own: those of the customers restored are replaced, others kept.
        let c1 = CustomerKey::new("SHARE", "C1");
        let c9 = CustomerKey::new("SHARE", "C9");
        let mut txn = store.txn();
        txn.put(
            2,
            StoreName::OwnerIndex,
            &customers::index_key("GONE", &c1),
            vec![],
        );
        txn.put(
            2,
            StoreName::OwnerIndex,
            &customers::index_key("KEPT", &c9),
            vec![],
        );
        let (stale, due) = crate::timer::stored(&c1, "stale", today);
        txn.put(2, StoreName::Timers, &stale, due);
        store.apply(&txn.finish(&[])).unwrap();
        restore(2, logged(&as_logged));
        let mut expected = written.clone();
        expected
            .get_mut(&StoreName::OwnerIndex)
            .unwrap()
            .push((customers::index_key("KEPT", &c9), vec![]));
        expected.get_mut(&StoreName::OwnerIndex).unwrap().sort();
        assert_eq!(derived(2), expected, "restored over stale entries");

        // C1's ledger as written before ledgers listed their timers.
        let unlisted = |s: StoreName, key: &[u8], value: Vec<u8>| {
            if s != StoreName::Ledger || key != c1.encode().as_bytes() {
                return value;
            }
            let mut ledger: CustomerState = crate::state::value::decode(&value).unwrap();
            ledger.records.as_mut().unwrap().timers = None;
            crate::state::value::encode(&ledger)
        };
        restore(3, logged(&unlisted));
        let timers_of_c1 = |p: i32| {
            let mut txn = store.txn();
            Timers {
                txn: &mut txn,
                partition: p,
            }
            .for_key(&c1)
            .unwrap()
        };
        assert_eq!(
            timers_of_c1(3),
            [(
                crate::timer::RESTORED.to_string(),
                crate::timer::restored_due()
            )]
        );
        let mut txn = store.txn();
        let (events, due) = operator.fire_timers_due(&mut txn, 3, today).unwrap();
        store.apply(&txn.finish(&[])).unwrap();
        assert!(events.is_empty(), "decided again, nothing new: {events:?}");
        assert!(
            due.is_empty(),
            "the stand-in is no timer of the day: {due:?}"
        );
        assert_eq!(timers_of_c1(3), timers_of_c1(0));
        assert_eq!(derived(3), written, "once fired, as written");
    }
}
