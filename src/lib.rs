//! condmon: the Accounts-Receivable Condition Monitor as a continuous Kafka stream processor.
//!
//! # Data flow
//! ```text
//! ar.items ──────┐                     ┌─ per input partition ───────────────────────────────┐
//! ar.payments ───┤  kafka::Source  ──► │ codec (Avro/JSON) → validate ──(bad)──► dead letter │
//! ar.aging ──────┤  (consumer group,   │ → engine::CustomerState::apply                      │
//! ar.customers ──┘   seek to offsets   │ → engine::reconcile (rules, business date)          │
//!                    kept in state)    │ → timers (ageing, future actions) ◄── clock         │
//!                                      └──────────────────────────┬──────────────────────────┘
//!                  outputs acknowledged by the broker, then ONE RocksDB write batch
//!                  (state + timers + counters + input offsets)
//!                                                                 ▼
//!                                  cm.actions / cm.escalations / cm.dead-letter
//! ```
//!
//! # Module map
//! - [`model`]: the events and domain types, pure data; [`model::validate`] is the semantic check.
//! - [`codec`]: Avro in the Confluent wire format and JSON, both to and from the model; schema
//!   ids from `schemas/manifest.toml` or a Confluent-compatible schema registry.
//! - [`rules`]: collection rules and action templates, parsed and validated once.
//! - [`engine`]: the pure decisions: conditions, violations, action plans (no I/O, no clock).
//! - [`state`]: RocksDB stores per input partition, written through one transaction per batch.
//! - [`timer`]: the injected clock and durable timers (by due date and by key).
//! - [`pipeline`]: the operator (decode → validate → apply → reconcile → timers) and the commit
//!   protocol shared by the Kafka run loop and `replay`. Errors are classified there: bad data
//!   → dead letter; external (broker, registry) → retried with back-off; internal (state,
//!   encoding) → the process stops.
//! - [`kafka`]: rdkafka consumer, producer and admin; nothing else sees rdkafka types.
//! - [`api`]: HTTP `/metrics`, `/healthz` and state queries; [`metrics`] defines the metrics.
//! - [`config`]: the TOML configuration and its defaults.
//! - [`cli`]: one file per subcommand.

pub mod api;
pub mod cli;
pub mod codec;
pub mod config;
pub mod engine;
pub mod kafka;
pub mod metrics;
pub mod model;
pub mod pipeline;
pub mod rules;
pub mod state;
pub mod timer;
