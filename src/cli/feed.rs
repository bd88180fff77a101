//! `condmon feed`: send a replay-format NDJSON file to the input topics, as the ERP would
//! (and its rule documents to the rules topic).

use std::io::BufRead;
use std::path::PathBuf;

use anyhow::Context;

use super::ConfigArgs;
use crate::codec;
use crate::kafka::{OutRecord, Sink};
use crate::pipeline::replay::ReplayLine;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    config: ConfigArgs,
    /// NDJSON file in the replay format; clock lines (`advance_to`) are skipped.
    #[arg(long)]
    input: PathBuf,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let config = args.config.load()?;
    let catalog = config
        // The feeder stands in for the ERP: it produces the input streams, so it registers
        // their schemas as their producer would.
        .schema_catalog_for(codec::RegistryUse {
            register_inputs: true,
            register_outputs: config.schema_registry_register_outputs,
        })
        .map_err(anyhow::Error::msg)?;
    let file = std::fs::File::open(&args.input)
        .with_context(|| format!("opening {}", args.input.display()))?;
    let mut records = Vec::new();
    for (index, line) in std::io::BufReader::new(file).lines().enumerate() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let at = || format!("{}:{}", args.input.display(), index + 1);
        let parsed: ReplayLine = serde_json::from_str(&line).with_context(at)?;
        let (stream, key, value) = match parsed {
            ReplayLine::Record {
                stream, key, value, ..
            } => (stream, key, value),
            // A rule document goes to the rules topic as its TOML text.
            ReplayLine::Rules { rules, .. } => {
                records.push(OutRecord {
                    topic: config.topics.rules.clone(),
                    partition: None,
                    key: Some(b"rules".to_vec()),
                    payload: Some(rules.into_bytes()),
                    headers: Vec::new(),
                });
                continue;
            }
            ReplayLine::Advance { .. } => continue,
        };
        let event = codec::input_from_json(stream, value).with_context(at)?;
        records.push(OutRecord {
            topic: config.topics.topic(stream).to_string(),
            partition: None,
            key: Some(key.unwrap_or_else(|| event.record_key()).into_bytes()),
            payload: Some(catalog.encode_input(&event).with_context(at)?),
            headers: Vec::new(),
        });
    }
    let count = records.len();
    let sink = Sink::new(&config)?;
    let failed = super::runtime()?
        .block_on(sink.send_all(records))
        .failed
        .len();
    if failed > 0 {
        anyhow::bail!("{failed} of {count} record(s) were not acknowledged");
    }
    println!("fed {count} record(s) from {}", args.input.display());
    Ok(())
}
