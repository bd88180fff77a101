//! A record of an input stream (the first byte picks which) in the Confluent wire format:
//! the frame decoder, the size and count limits, validation and the engine.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;

static HARNESS: OnceLock<condmon::fuzzing::Harness> = OnceLock::new();

fuzz_target!(
    init: {
        // The default corpus starts from valid inputs (libFuzzer reads it after this).
        let corpus = concat!(env!("CARGO_MANIFEST_DIR"), "/corpus/avro_frame");
        condmon::fuzzing::write_seeds("avro_frame", std::path::Path::new(corpus)).expect("seeds");
        HARNESS.get_or_init(condmon::fuzzing::Harness::new);
    },
    |data: &[u8]| {
        HARNESS.get().expect("initialised").avro_frame(data);
    }
);
