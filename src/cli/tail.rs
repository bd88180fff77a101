//! `condmon tail`: an output topic as JSON lines, decoded from Avro.

use std::time::Duration;

use serde_json::json;

use super::ConfigArgs;
use crate::codec::SchemaCatalog;
use crate::kafka::read_topic;
use crate::model::Stream;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    config: ConfigArgs,
    /// Which stream to read: actions, escalations, or dead-letter.
    #[arg(long, default_value = "actions")]
    stream: String,
    /// Stop after this many records.
    #[arg(long, default_value_t = 1000)]
    max: usize,
    /// Stop when nothing arrives for this many seconds.
    #[arg(long, default_value_t = 3)]
    idle_secs: u64,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let config = args.config.load()?;
    let catalog = SchemaCatalog::load(&config.schemas_dir)?;
    let (topic, stream) = if args.stream == "dead-letter" {
        (config.topics.dead_letter.clone(), None)
    } else {
        let stream: Stream = serde_json::from_value(json!(args.stream))
            .map_err(|_| anyhow::anyhow!("unknown stream `{}`", args.stream))?;
        (config.topics.topic(stream).to_string(), Some(stream))
    };
    for record in read_topic(
        &config,
        &topic,
        args.max,
        Duration::from_secs(args.idle_secs),
    )? {
        let key = record.key.as_deref().map(String::from_utf8_lossy);
        let value = match (stream, &record.payload) {
            (Some(stream), Some(bytes)) => {
                crate::codec::output_to_json(&catalog.decode_output(stream, bytes)?)
            }
            _ => {
                json!({ "headers": record.headers.iter().cloned().collect::<std::collections::BTreeMap<_, _>>() })
            }
        };
        println!(
            "{}",
            json!({ "partition": record.partition, "offset": record.offset, "key": key, "value": value })
        );
    }
    Ok(())
}
