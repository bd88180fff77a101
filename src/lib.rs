//! condmon: the Accounts-Receivable Condition Monitor as a continuous Kafka stream processor.
//!
//! # Data flow
//! ```text
//! ar.items ───────────────┐                 ┌─ per input partition N ───────────────────────────┐
//! ar.payments ────────────┤ kafka::Source ─►│ codec (Avro/JSON) → validate ──(bad)──► dead letter│
//! ar.aging ───────────────┤ (group; on      │   (on another partition than murmur2(key):        │
//! ar.customers ───────────┤  assignment the │    sent on via condmon.repartition)               │
//! ar.history ─────────────┤  partition is   │ → engine::CustomerState::apply (running balances, │
//! ar.conversations ───────┤  restored from  │   statistics, children's figures), or a command:  │
//! condmon.child-figures ──┤  its changelogs,│   engine::execute, or a conversation              │
//! cm.action-commands ─────┤  then read from │ → engine::reconcile (rules × ledger × rates × date)│
//! condmon.repartition ────┘  its offsets)   │ → timers (ageing, plan steps, reminders) ◄── clock│
//!                                           │   state: ledger, actions, conversations, timers, │
//!                                           │   indexes, meta (per-batch cache, typed values)  │
//!                                           └──────────────┬────────────────────────────────────┘
//! ar.fx-rates, cm.rules ──► kafka::GlobalReader (whole topics, every instance): exchange rates
//!                           and rule documents; a change re-evaluates the customers it concerns
//!   outputs + every change of a customer's records and meta as a record of
//!   `<group>-<store>-changelog` (timers and indexes are rebuilt from them), acknowledged;
//!   then one commit record per partition, acknowledged; then ONE RocksDB write batch
//!   (state + timers + indexes + counters + input offsets + changelog checkpoint)
//!                                                          ▼
//!            cm.actions / cm.escalations / cm.conditions / cm.risk-scores / cm.dead-letter
//!            cm.command-results / cm.notifications / cm.correspondence / cm.requests
//!            cm.promise-status / cm.dunning-decisions
//!            condmon.child-figures (a child's figures, keyed by its parent: read back above)
//! ```
//!
//! # Module map
//! - [`model`]: the events and domain types, pure data; [`model::validate`] is the semantic check.
//! - [`codec`]: Avro in the Confluent wire format and JSON, both to and from the model; schema
//!   ids from `schemas/manifest.toml` or a Confluent-compatible schema registry.
//! - [`rules`]: installation options, aging definitions, collection and assessment rules (the
//!   condition catalog) at setID / customer-group / customer level, action templates, business
//!   calendars and the owner directory; parsed and validated once.
//! - [`engine`]: the pure decisions: conditions, violations, action plans, exchange rates,
//!   statistics, relationships, risk scores; working actions (commands, performing, letters,
//!   notifications); conversations (promises judged, call actions, partial disputes,
//!   exclusions from dunning); the lists, searches and reports over states (no I/O, no
//!   clock).
//! - [`state`]: RocksDB stores per input partition; [`state::Txn`] is the per-batch cache and
//!   write buffer, values are versioned binary ([`state::value`]).
//! - [`timer`]: the injected clock and durable timers (by due date and by key).
//! - [`pipeline`]: the operator (decode → validate → apply → reconcile → timers, reference data)
//!   with its declared stores ([`pipeline::STORES`]) and a customer's layout over them
//!   ([`pipeline::customers`]); the changelogs, restore and claims ([`pipeline::changelog`]);
//!   the commit protocol shared by the Kafka run loop and `replay`. Errors are classified
//!   there: bad data → dead letter; external (broker, registry) → retried with back-off;
//!   internal (state, encoding) → the process stops.
//! - [`kafka`]: rdkafka consumer, reference-topic reader, producer and admin; nothing else sees
//!   rdkafka types.
//! - [`api`]: HTTP `/metrics`, `/healthz` and state queries; [`metrics`] defines the metrics.
//! - [`config`]: the TOML configuration and its defaults.
//! - [`cli`]: one file per subcommand.
//! - [`fuzzing`]: what the fuzz targets in `fuzz/` feed arbitrary bytes to (Avro frames, replay
//!   lines, rule documents, commands), through the real operator and store.

pub mod api;
pub mod cli;
pub mod codec;
pub mod config;
pub mod engine;
pub mod fuzzing;
pub mod kafka;
pub mod metrics;
pub mod model;
pub mod pipeline;
pub mod rules;
pub mod state;
pub mod timer;
