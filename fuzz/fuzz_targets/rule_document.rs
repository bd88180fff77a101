//! A rule document as the rules topic carries it (TOML): parsing, validation and the
//! re-evaluation it triggers.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;

static HARNESS: OnceLock<condmon::fuzzing::Harness> = OnceLock::new();

fuzz_target!(
    init: {
        // The default corpus starts from valid inputs (libFuzzer reads it after this).
        let corpus = concat!(env!("CARGO_MANIFEST_DIR"), "/corpus/rule_document");
        condmon::fuzzing::write_seeds("rule_document", std::path::Path::new(corpus)).expect("seeds");
        HARNESS.get_or_init(condmon::fuzzing::Harness::new);
    },
    |data: &[u8]| {
        HARNESS.get().expect("initialised").rule_document(data);
    }
);
