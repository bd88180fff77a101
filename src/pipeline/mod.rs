//! Partition work and the one commit protocol:
//!
//! 1. read a batch of input records (or a timer tick),
//! 2. run the [`Operator`] on each inside one state transaction,
//! 3. produce every output and dead letter and wait for the broker's acknowledgement,
//! 4. commit the transaction together with the input offsets it covers (one RocksDB batch).
//!
//! A crash before 4 loses nothing: the inputs are read again and produce the same outputs with
//! the same event ids. [`run`] drives this from Kafka, [`replay`] from an NDJSON file.

pub mod changelog;
pub mod customers;
mod operator;
pub mod replay;
mod run;

pub use operator::{
    CUSTOMERS_FLAGGED, Operator, Outcome, Payload, ProcessError, Rejection, RejectionKind,
    RulesChange, STORES, VIOLATIONS_PREFIX, action_counter, customer_state, customer_states,
    customers_of_owner, customers_related, violation_counter,
};

/// Opens a state directory within `budget`, migrating one written before the stores were
/// split.
pub fn open_store(
    path: &std::path::Path,
    budget: crate::state::MemoryBudget,
) -> Result<crate::state::Store, crate::state::StateError> {
    crate::state::Store::open_migrating(path, budget, customers::split_legacy)
}
pub use run::{Faults, Health, PipelineError, ProbeLimits, Runtime, run};

use crate::codec::{CodecError, SchemaCatalog};
use crate::config::{Config, TopicsConfig};
use crate::kafka::OutRecord;
use crate::model::OutputEvent;

/// Dead-letter headers: why, and where the record came from.
pub const HEADER_KIND: &str = "condmon.error.kind";
pub const HEADER_REASON: &str = "condmon.error.reason";
pub const HEADER_TOPIC: &str = "condmon.source.topic";
pub const HEADER_PARTITION: &str = "condmon.source.partition";
pub const HEADER_OFFSET: &str = "condmon.source.offset";

/// The header carrying an output's event id.
pub const EVENT_ID_HEADER: &str = "condmon.event-id";

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
        partition: None,
        key: Some(event.customer_key().encode().into_bytes()),
        payload: Some(catalog.encode_output(event)?),
        headers: std::iter::once((EVENT_ID_HEADER.into(), event.event_id().to_string()))
            .chain(event.outcome().map(|o| (OUTCOME_HEADER.into(), o.into())))
            .collect(),
    })
}

/// Where a refused record came from (for a rerouted record: where it first arrived).
pub struct SourceRef<'a> {
    pub topic: &'a str,
    pub partition: i32,
    pub offset: i64,
}

/// Dead-letter headers of a record that had to be cut to fit.
pub const HEADER_SIZE: &str = "condmon.source.size";
pub const HEADER_SHA256: &str = "condmon.source.sha256";
pub const HEADER_TRUNCATED: &str = "condmon.dead-letter.truncated";

/// A reason longer than this is cut (it may quote the record).
const MAX_REASON_BYTES: usize = 1000;
/// A key longer than this is cut (customer keys are two ids of at most 255 bytes).
const MAX_KEY_BYTES: usize = 1024;

/// The record that carries a refused input to the dead-letter topic: its bytes untouched, or
/// cut to fit when they are longer than `dead_letter_max_value_bytes` or than what
/// `max_message_bytes` leaves room for — a dead letter that cannot be produced would stop every
/// partition. The headers give the original size and SHA-256 (to find the original by) and,
/// when it was cut, say which part.
pub fn dead_letter_record(
    config: &Config,
    source: &SourceRef<'_>,
    key: Option<&[u8]>,
    payload: &[u8],
    rejection: &Rejection,
) -> OutRecord {
    use sha2::Digest;
    let mut truncated = Vec::new();
    let key = key.map(|k| {
        if k.len() > MAX_KEY_BYTES {
            truncated.push("key");
        }
        k[..k.len().min(MAX_KEY_BYTES)].to_vec()
    });
    let reason = cut_str(&rejection.reason, MAX_REASON_BYTES);
    let mut record = OutRecord {
        topic: config.topics.dead_letter.clone(),
        partition: None,
        key,
        payload: None,
        headers: vec![
            (HEADER_KIND.into(), rejection.kind.as_str().into()),
            (HEADER_REASON.into(), reason.into()),
            (HEADER_TOPIC.into(), source.topic.into()),
            (HEADER_PARTITION.into(), source.partition.to_string()),
            (HEADER_OFFSET.into(), source.offset.to_string()),
            (HEADER_SIZE.into(), payload.len().to_string()),
            (
                HEADER_SHA256.into(),
                format!("{:x}", sha2::Sha256::digest(payload)),
            ),
        ],
    };
    // Room for the value once the truncation header (at most "key,value") is in.
    let room = config
        .pipeline
        .max_message_bytes
        .saturating_sub(record.size() + HEADER_TRUNCATED.len() + 20);
    let keep = payload
        .len()
        .min(config.pipeline.dead_letter_max_value_bytes)
        .min(room);
    if keep < payload.len() {
        truncated.push("value");
    }
    record.payload = Some(payload[..keep].to_vec());
    if !truncated.is_empty() {
        record
            .headers
            .push((HEADER_TRUNCATED.into(), truncated.join(",")));
    }
    record
}

/// `text` cut to at most `max` bytes, on a character boundary.
fn cut_str(text: &str, max: usize) -> &str {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rejection() -> Rejection {
        Rejection {
            kind: RejectionKind::Undecodable,
            reason: "é".repeat(5000),
        }
    }

    const SOURCE: SourceRef<'static> = SourceRef {
        topic: "ar.items",
        partition: 1,
        offset: 42,
    };

    #[test]
    fn a_dead_letter_keeps_a_small_record_whole() {
        let config = Config::default();
        let record = dead_letter_record(&config, &SOURCE, Some(b"SHARE|C1"), b"abc", &rejection());
        assert_eq!(record.payload.as_deref(), Some(b"abc".as_slice()));
        assert_eq!(record.header(HEADER_SIZE), Some("3"));
        assert_eq!(
            record.header(HEADER_SHA256),
            Some("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        );
        assert_eq!(record.header(HEADER_TRUNCATED), None);
        assert_eq!(record.header(HEADER_REASON).unwrap().len(), 1000);
    }

    #[test]
    fn a_dead_letter_always_fits_the_largest_message() {
        let mut config = Config::default();
        let just_under = vec![7u8; 999_900];
        let record = dead_letter_record(
            &config,
            &SOURCE,
            Some(b"SHARE|C1"),
            &just_under,
            &rejection(),
        );
        assert_eq!(
            record.payload.as_ref().unwrap().len(),
            512 * 1024,
            "the configured cut"
        );
        assert_eq!(record.header(HEADER_TRUNCATED), Some("value"));
        assert_eq!(record.header(HEADER_SIZE), Some("999900"));
        // With a cut larger than what the message limit leaves, the limit wins.
        config.pipeline.dead_letter_max_value_bytes = config.pipeline.max_message_bytes;
        let huge_key = vec![b'k'; 5000];
        let record =
            dead_letter_record(&config, &SOURCE, Some(&huge_key), &just_under, &rejection());
        assert!(
            record.size() <= config.pipeline.max_message_bytes,
            "{}",
            record.size()
        );
        let kept = record.payload.as_ref().unwrap().len();
        assert!(kept > 990_000, "{kept}");
        assert_eq!(record.key.as_ref().unwrap().len(), 1024);
        assert_eq!(record.header(HEADER_TRUNCATED), Some("key,value"));
    }
}
