//! A collector's command (its JSON form) on a customer in collection: validation and the
//! command engine.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;

static HARNESS: OnceLock<condmon::fuzzing::Harness> = OnceLock::new();

fuzz_target!(
    init: {
        // The default corpus starts from valid inputs (libFuzzer reads it after this).
        let corpus = concat!(env!("CARGO_MANIFEST_DIR"), "/corpus/command");
        condmon::fuzzing::write_seeds("command", std::path::Path::new(corpus)).expect("seeds");
        HARNESS.get_or_init(condmon::fuzzing::Harness::new);
    },
    |data: &[u8]| {
        HARNESS.get().expect("initialised").command(data);
    }
);
