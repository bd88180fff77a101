//! Partition work and the one commit protocol:
//!
//! 1. read a batch of input records (or a timer tick),
//! 2. run the [`Operator`] on each inside one state transaction,
//! 3. produce every output and dead letter and wait for the broker's acknowledgement,
//! 4. commit the transaction together with the input offsets it covers (one RocksDB batch).
//!
//! A crash before 4 loses nothing: the inputs are read again and produce the same outputs with
//! the same event ids. [`run`] drives this from Kafka, [`replay`] from an NDJSON file.

mod operator;
pub mod replay;
mod run;

pub use operator::{
    CUSTOMERS_FLAGGED, Operator, Outcome, Payload, ProcessError, Rejection, RejectionKind,
    RulesChange, VIOLATIONS_PREFIX, action_counter, customer_state, customer_states,
    customers_of_owner, violation_counter,
};
pub use run::{Health, PipelineError, Runtime, run};

use crate::codec::{CodecError, SchemaCatalog};
use crate::config::TopicsConfig;
use crate::kafka::OutRecord;
use crate::model::OutputEvent;

/// Dead-letter headers: why, and where the record came from.
pub const HEADER_KIND: &str = "condmon.error.kind";
pub const HEADER_REASON: &str = "condmon.error.reason";
pub const HEADER_TOPIC: &str = "condmon.source.topic";
pub const HEADER_PARTITION: &str = "condmon.source.partition";
pub const HEADER_OFFSET: &str = "condmon.source.offset";

/// An output event as a record of its topic, keyed by customer.
/// The header naming what a record counts as (see [`OutputEvent::outcome`]).
pub const OUTCOME_HEADER: &str = "condmon.outcome";

pub fn output_record(
    topics: &TopicsConfig,
    catalog: &SchemaCatalog,
    event: &OutputEvent,
) -> Result<OutRecord, CodecError> {
    Ok(OutRecord {
        topic: topics.topic(event.stream()).to_string(),
        key: Some(event.customer_key().encode().into_bytes()),
        payload: catalog.encode_output(event)?,
        headers: std::iter::once(("condmon.event-id".into(), event.event_id().to_string()))
            .chain(event.outcome().map(|o| (OUTCOME_HEADER.into(), o.into())))
            .collect(),
    })
}

/// The record that carries a refused input to the dead-letter topic, bytes untouched.
pub fn dead_letter_record(
    topics: &TopicsConfig,
    source_topic: &str,
    partition: i32,
    offset: i64,
    key: Option<Vec<u8>>,
    payload: Vec<u8>,
    rejection: &Rejection,
) -> OutRecord {
    OutRecord {
        topic: topics.dead_letter.clone(),
        key,
        payload,
        headers: vec![
            (HEADER_KIND.into(), rejection.kind.as_str().into()),
            (HEADER_REASON.into(), rejection.reason.clone()),
            (HEADER_TOPIC.into(), source_topic.into()),
            (HEADER_PARTITION.into(), partition.to_string()),
            (HEADER_OFFSET.into(), offset.to_string()),
        ],
    }
}
