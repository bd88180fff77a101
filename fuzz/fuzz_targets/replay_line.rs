//! A line of the replay format (`condmon replay`, `condmon feed`): its JSON, the event it
//! names, validation and the engine.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;

static HARNESS: OnceLock<condmon::fuzzing::Harness> = OnceLock::new();

fuzz_target!(
    init: {
        // The default corpus starts from valid inputs (libFuzzer reads it after this).
        let corpus = concat!(env!("CARGO_MANIFEST_DIR"), "/corpus/replay_line");
        condmon::fuzzing::write_seeds("replay_line", std::path::Path::new(corpus)).expect("seeds");
        HARNESS.get_or_init(condmon::fuzzing::Harness::new);
    },
    |data: &[u8]| {
        HARNESS.get().expect("initialised").replay_line(data);
    }
);
