//! The operator: one input record or one timer scan in, state changes and outputs out.
//! It sees a [`Txn`] and a business date, never Kafka or RocksDB, so the Kafka run loop and
//! `condmon replay` run exactly this code.

use std::sync::Arc;

use chrono::NaiveDate;

use crate::codec::{self, SchemaCatalog};
use crate::engine::{self, CustomerState};
use crate::model::validate::{validate, validate_key};
use crate::model::{ActionStatus, CustomerKey, InputEvent, OutputEvent, Stream};
use crate::rules::RuleSet;
use crate::state::{StateError, StoreName, Txn};
use crate::timer::Timers;

/// How an input record arrived.
pub enum Payload<'a> {
    /// Confluent wire-format Avro, as read from Kafka.
    Avro(&'a [u8]),
    /// The JSON form, as read from a replay file.
    Json(serde_json::Value),
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
}

impl RejectionKind {
    pub fn as_str(self) -> &'static str {
        match self {
            RejectionKind::Undecodable => "undecodable",
            RejectionKind::Invalid => "invalid",
            RejectionKind::WrongKey => "wrong_key",
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
}

pub enum Outcome {
    Processed(Vec<OutputEvent>),
    Rejected(Rejection),
}

#[derive(Clone)]
pub struct Operator {
    rules: Arc<RuleSet>,
    catalog: Arc<SchemaCatalog>,
}

/// The durable counter of actions in `status` (per partition).
pub fn action_counter(status: ActionStatus) -> String {
    format!("actions.{}", status.as_str())
}

impl Operator {
    pub fn new(rules: Arc<RuleSet>, catalog: Arc<SchemaCatalog>) -> Self {
        Operator { rules, catalog }
    }

    pub fn catalog(&self) -> &SchemaCatalog {
        &self.catalog
    }

    /// Decodes, validates and applies one record of `stream` from `partition`.
    pub fn process(
        &self,
        txn: &mut Txn<'_>,
        partition: i32,
        stream: Stream,
        key: Option<&str>,
        payload: Payload<'_>,
        today: NaiveDate,
    ) -> Result<Outcome, ProcessError> {
        let decoded = match payload {
            Payload::Avro(bytes) => self.catalog.decode_input(stream, bytes),
            Payload::Json(json) => codec::input_from_json(stream, json),
        };
        let reject = |kind, reason: String| Ok(Outcome::Rejected(Rejection { kind, reason }));
        let event = match decoded {
            Ok(event) => event,
            Err(e) if e.is_external() => return Err(ProcessError::External(e.to_string())),
            Err(e) => return reject(RejectionKind::Undecodable, e.to_string()),
        };
        if let Err(e) = validate(&event) {
            return reject(RejectionKind::Invalid, e.to_string());
        }
        if let Err(e) = validate_key(&event, key) {
            return reject(RejectionKind::WrongKey, e.to_string());
        }
        let customer = event.customer_key();
        Ok(Outcome::Processed(self.update(
            txn,
            partition,
            &customer,
            Some(event),
            today,
        )?))
    }

    /// Fires every timer of `partition` due on or before `today`: each customer concerned is
    /// reconciled once, however many of its timers came due.
    pub fn fire_timers(
        &self,
        txn: &mut Txn<'_>,
        partition: i32,
        today: NaiveDate,
    ) -> Result<Vec<OutputEvent>, StateError> {
        let due = Timers { txn, partition }.due(today)?;
        let mut customers: Vec<CustomerKey> = due.into_iter().map(|t| t.key).collect();
        customers.sort();
        customers.dedup();
        let mut out = Vec::new();
        for customer in customers {
            out.extend(self.update(txn, partition, &customer, None, today)?);
        }
        Ok(out)
    }

    /// Loads a customer, folds in the event (if any), reconciles, resets its timers, saves.
    fn update(
        &self,
        txn: &mut Txn<'_>,
        partition: i32,
        customer: &CustomerKey,
        event: Option<InputEvent>,
        today: NaiveDate,
    ) -> Result<Vec<OutputEvent>, StateError> {
        let mut state = customer_state(txn, partition, customer)?.unwrap_or_default();
        if let Some(event) = event {
            state.apply(event);
        }
        let out = engine::reconcile(&mut state, customer, &self.rules, today);
        let wanted = engine::wanted_timers(&state, customer, &self.rules, today);
        Timers { txn, partition }.replace_all(customer, &wanted)?;
        for event in &out {
            if let OutputEvent::Action(a) = event {
                if let Some(previous) = a.previous_status {
                    txn.add_to_counter(partition, &action_counter(previous), -1)?;
                }
                txn.add_to_counter(partition, &action_counter(a.status), 1)?;
            }
        }
        let bytes = serde_json::to_vec(&state).expect("customer state serializes");
        txn.put(
            partition,
            StoreName::Customers,
            customer.encode().as_bytes(),
            bytes,
        );
        Ok(out)
    }
}

/// Reads one customer's state (for queries).
pub fn customer_state(
    txn: &Txn<'_>,
    partition: i32,
    customer: &CustomerKey,
) -> Result<Option<CustomerState>, StateError> {
    let Some(bytes) = txn.get(
        partition,
        StoreName::Customers,
        customer.encode().as_bytes(),
    )?
    else {
        return Ok(None);
    };
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|e| StateError::Corrupt {
            store: StoreName::Customers.as_str().into(),
            message: format!("{customer}: {e}"),
        })
}
