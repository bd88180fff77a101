//! What the fuzz targets in `fuzz/` (`cargo fuzz`) feed arbitrary bytes to: the paths hostile
//! input takes from the outside in, each through the same operator and RocksDB store the run
//! loop uses. None may panic, whatever the bytes: every refusal is a typed error or a
//! rejection (a dead letter in production). A panic is what the fuzzer reports.
//!
//! The targets stay thin so that they compile where the fuzzer runs (nightly) and this code
//! compiles and is exercised on stable too (the tests at the bottom feed it mutated seeds).

use std::sync::Arc;

use chrono::NaiveDate;

use crate::codec::SchemaCatalog;
use crate::model::Stream;
use crate::pipeline::replay::{ReplayLine, ReplayState, open_state};
use crate::pipeline::{Operator, Outcome, Payload};
use crate::rules::RuleSet;

const PARTITION: i32 = 0;

/// A customer with open actions, so that fuzzed commands and records meet real state.
const SEED: &[&str] = &[
    r#"{"stream":"customers","value":{"set_id":"SHARE","customer_id":"OSCORP","name":"Oscorp Industries","customer_group":null,"currency":"USD","credit_limit":null,"credit_limit_pct_over":null,"profile_id":null,"collector":"JDOE","credit_analyst":"MROE","sales_person":"KLEE","corporate_parent":null,"remit_from_parent":null,"correspondence_parent":null,"credit_hold":false,"country":"US","state":"NJ","exclude_from_dunning":false}}"#,
    r#"{"stream":"items","value":{"set_id":"SHARE","business_unit":"US001","customer_id":"OSCORP","item_id":"INV-O1","item_line":0,"item_type":"INVOICE","original_amount":"2500.00","open_amount":"2500.00","currency":"USD","accounting_date":"2026-04-01","due_date":"2026-04-30","entry_type":"IN","disputed_amount":"0","ar_specialist":"PSPEC","collector":"JDOE"}}"#,
];

/// The operator over the sample rules and the bundled schemas, with a customer in collection
/// in a temporary RocksDB store.
pub struct Harness {
    operator: Operator,
    state: ReplayState,
    today: NaiveDate,
    /// Action events the seed caused (the customer is in collection when there are some).
    pub seeded_actions: usize,
}

impl Harness {
    pub fn new() -> Harness {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let rules = RuleSet::load(&root.join("topology/rules.toml")).expect("sample rules");
        let catalog = SchemaCatalog::bundled().expect("bundled schemas");
        let mut harness = Harness {
            operator: Operator::new(Arc::new(rules), Arc::new(catalog)),
            state: open_state(None).expect("temporary state"),
            today: NaiveDate::from_ymd_opt(2026, 6, 1).expect("a date"),
            seeded_actions: 0,
        };
        harness
            .state
            .store
            .ensure_partition(PARTITION)
            .expect("partition");
        for line in SEED {
            let mut txn = harness.state.store.txn();
            let Some(Outcome::Processed(events)) =
                harness.replay_line_in(&mut txn, line.as_bytes())
            else {
                panic!("seed refused: {line}");
            };
            harness.seeded_actions += events
                .iter()
                .filter(|e| matches!(e, crate::model::OutputEvent::Action(_)))
                .count();
            harness
                .state
                .store
                .commit(txn, &[])
                .expect("seed committed");
        }
        harness
    }

    /// Bytes as a record of one of the input streams (chosen by the first byte): the Avro
    /// frame decoder, the limits, validation and the engine.
    pub fn avro_frame(&self, data: &[u8]) {
        let Some((choice, bytes)) = data.split_first() else {
            return;
        };
        let stream = Stream::INPUTS[usize::from(*choice) % Stream::INPUTS.len()];
        self.process(stream, Some("SHARE|OSCORP"), Payload::Avro(bytes));
    }

    /// Bytes as a line of the replay format.
    pub fn replay_line(&self, data: &[u8]) {
        let mut txn = self.state.store.txn();
        self.replay_line_in(&mut txn, data);
    }

    /// Bytes as a rule document (TOML), as the rules topic carries it, applied to the state.
    pub fn rule_document(&self, data: &[u8]) {
        let Ok(text) = std::str::from_utf8(data) else {
            return;
        };
        // The rule set must not stay replaced: the next input meets the sample rules again.
        let sample = self.operator.reference_snapshot();
        let mut txn = self.state.store.txn();
        let _ = self
            .operator
            .replace_rules(&mut txn, &[PARTITION], text, "fuzz", self.today);
        self.operator.restore_reference(sample);
    }

    /// Bytes as the JSON of a collector's command on the customer in collection.
    pub fn command(&self, data: &[u8]) {
        let Ok(value) = serde_json::from_slice::<serde_json::Value>(data) else {
            return;
        };
        self.process(
            Stream::ActionCommands,
            Some("SHARE|OSCORP"),
            Payload::Json(value),
        );
    }

    fn replay_line_in(&self, txn: &mut crate::state::Txn<'_>, data: &[u8]) -> Option<Outcome> {
        let line = std::str::from_utf8(data).ok()?;
        match serde_json::from_str::<ReplayLine>(line).ok()? {
            ReplayLine::Record {
                stream, key, value, ..
            } => {
                let key = key.or_else(|| {
                    crate::codec::input_from_json(stream, value.clone())
                        .ok()
                        .map(|e| e.record_key())
                });
                self.operator
                    .process(
                        txn,
                        &[PARTITION],
                        stream,
                        key.as_deref(),
                        Payload::Json(value),
                        self.today,
                    )
                    .ok()
            }
            ReplayLine::Rules { rules, .. } => {
                RuleSet::parse(&rules, "fuzz").ok();
                None
            }
            ReplayLine::Advance { .. } => None,
        }
    }

    fn process(&self, stream: Stream, key: Option<&str>, payload: Payload<'_>) {
        let mut txn = self.state.store.txn();
        let _ = self
            .operator
            .process(&mut txn, &[PARTITION], stream, key, payload, self.today);
    }
}

/// The valid inputs each target starts from (libFuzzer mutates them): every line of the
/// sample replay files, each record also as its Avro frame, the sample rule document, and the
/// sample commands' values.
pub fn seeds(target: &str) -> Vec<Vec<u8>> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let lines: Vec<String> = ["ledger", "action-plan", "conversations"]
        .iter()
        .flat_map(|name| {
            let path = root.join(format!("topology/sample/{name}.ndjson"));
            std::fs::read_to_string(path)
                .expect("sample file")
                .lines()
                .filter(|l| !l.trim().is_empty())
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .collect();
    let records = || {
        lines.iter().filter_map(
            |line| match serde_json::from_str::<ReplayLine>(line).ok()? {
                ReplayLine::Record { stream, value, .. } => Some((stream, value)),
                _ => None,
            },
        )
    };
    match target {
        "avro_frame" => {
            let catalog = SchemaCatalog::bundled().expect("bundled schemas");
            records()
                .filter_map(|(stream, value)| {
                    let index = Stream::INPUTS.iter().position(|s| *s == stream)?;
                    let event = crate::codec::input_from_json(stream, value).ok()?;
                    let mut frame = vec![u8::try_from(index).ok()?];
                    frame.extend(catalog.encode_input(&event).ok()?);
                    Some(frame)
                })
                .collect()
        }
        "replay_line" => lines.iter().map(|l| l.clone().into_bytes()).collect(),
        "rule_document" => vec![std::fs::read(root.join("topology/rules.toml")).expect("rules")],
        "command" => records()
            .filter(|(stream, _)| *stream == Stream::ActionCommands)
            .map(|(_, value)| value.to_string().into_bytes())
            .collect(),
        _ => Vec::new(),
    }
}

/// Writes `target`'s seeds into `dir` (a fuzz target's corpus) where they are missing.
pub fn write_seeds(target: &str, dir: &std::path::Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    for (n, seed) in seeds(target).iter().enumerate() {
        let path = dir.join(format!("seed-{n:03}"));
        if !path.exists() {
            std::fs::write(path, seed)?;
        }
    }
    Ok(())
}

impl Default for Harness {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn harness() -> &'static Harness {
        static HARNESS: std::sync::OnceLock<Harness> = std::sync::OnceLock::new();
        HARNESS.get_or_init(Harness::new)
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

        /// What the fuzz targets do on stable, for every build: mutated valid inputs and
        /// random bytes, none of which may panic.
        #[test]
        fn no_input_panics(
            seed in any::<usize>(),
            flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 0..8),
            cut in any::<usize>(),
            noise in proptest::collection::vec(any::<u8>(), 0..64),
        ) {
            let h = harness();
            let mutate = |mut bytes: Vec<u8>| {
                for (at, byte) in &flips {
                    if !bytes.is_empty() {
                        let at = at % bytes.len();
                        bytes[at] ^= byte;
                    }
                }
                let keep = if bytes.is_empty() { 0 } else { cut % (bytes.len() + 1) };
                bytes.truncate(keep.max(bytes.len() / 2));
                bytes
            };
            for target in ["avro_frame", "replay_line", "rule_document", "command"] {
                let seeds = seeds(target);
                let input = mutate(seeds[seed % seeds.len()].clone());
                match target {
                    "avro_frame" => h.avro_frame(&input),
                    "replay_line" => h.replay_line(&input),
                    "rule_document" => h.rule_document(&input),
                    _ => h.command(&input),
                }
            }
            h.avro_frame(&noise);
        }
    }

    /// The harness meets real state: the seed put the customer in collection.
    #[test]
    fn the_seed_puts_a_customer_in_collection() {
        assert!(harness().seeded_actions > 0);
    }

    /// Every target starts from valid inputs of each kind it takes.
    #[test]
    fn every_target_has_seeds() {
        assert!(
            seeds("avro_frame").len() >= 60,
            "every sample record as a frame"
        );
        let streams: std::collections::HashSet<u8> =
            seeds("avro_frame").iter().map(|f| f[0]).collect();
        assert!(streams.len() >= 7, "{streams:?}");
        assert!(seeds("replay_line").len() >= 80);
        assert_eq!(seeds("rule_document").len(), 1);
        assert!(seeds("command").len() >= 10);
    }
}
