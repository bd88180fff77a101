//! `condmon export`: the input topics over a time range, as a replay-format NDJSON file, so a
//! collections team can replay a rule change against last quarter's real ledger
//! (`condmon replay --rules new.toml --input quarter.ndjson`).

use std::io::{BufWriter, Write};
use std::path::PathBuf;

use anyhow::Context;
use serde_json::json;

use super::ConfigArgs;
use crate::codec;
use crate::model::Stream;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    config: ConfigArgs,
    /// The first record time to export: a date (its midnight, UTC) or an RFC 3339 time.
    /// Exchange rates are exported whole whatever the range (a replay converts with the
    /// rates in force, published before it).
    #[arg(long)]
    from: Option<String>,
    /// Export the records before this time (a date or an RFC 3339 time).
    #[arg(long)]
    to: Option<String>,
    /// Output file (default: standard output).
    #[arg(long)]
    output: Option<PathBuf>,
}

fn millis(text: &Option<String>, what: &str) -> anyhow::Result<Option<i64>> {
    text.as_deref()
        .map(|s| {
            crate::timer::parse_moment(s)
                .map(|t| t.timestamp_millis())
                .with_context(|| format!("--{what} `{s}` is neither a date nor an RFC 3339 time"))
        })
        .transpose()
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let config = args.config.load()?;
    let catalog = config.schema_catalog().map_err(anyhow::Error::msg)?;
    let (from, to) = (millis(&args.from, "from")?, millis(&args.to, "to")?);
    // (timestamp, stream order, partition, offset) → line: the records in the order they
    // were written, across topics.
    let mut lines: Vec<((i64, usize, i32, i64), String)> = Vec::new();
    let mut skipped = 0usize;
    // What a replay needs to decide again (children's figures it derives again).
    for (order, stream) in Stream::FROM_OUTSIDE.into_iter().enumerate() {
        let topic = config.topics.topic(stream);
        let range = if stream == Stream::FxRates {
            (None, to)
        } else {
            (from, to)
        };
        let records = crate::kafka::read_range(&config, topic, range.0, range.1)
            .with_context(|| format!("reading {topic}"))?;
        for record in records {
            let Some(payload) = &record.payload else {
                continue; // a compacted topic's tombstone
            };
            let event = match catalog.decode_input(stream, payload) {
                Ok(event) => event,
                Err(e) => {
                    // condmon dead-lettered it when it read it: nothing to replay.
                    skipped += 1;
                    tracing::debug!(topic, partition = record.partition, offset = record.offset, error = %e, "Skipped.");
                    continue;
                }
            };
            let timestamp = record.timestamp.unwrap_or(0);
            let mut line = json!({
                "stream": stream.as_str(),
                "value": codec::input_to_json(&event),
            });
            if let Some(at) = chrono::DateTime::from_timestamp_millis(timestamp) {
                line["at"] = json!(at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true));
            }
            if let Some(key) = record.key.as_deref().map(String::from_utf8_lossy)
                && key != event.record_key()
            {
                line["key"] = json!(key);
            }
            lines.push((
                (timestamp, order, record.partition, record.offset),
                line.to_string(),
            ));
        }
    }
    lines.sort_by(|a, b| a.0.cmp(&b.0));
    let mut out: Box<dyn Write> = match &args.output {
        Some(path) => Box::new(BufWriter::new(
            std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?,
        )),
        None => Box::new(BufWriter::new(std::io::stdout().lock())),
    };
    for (_, line) in &lines {
        writeln!(out, "{line}")?;
    }
    out.flush()?;
    eprintln!(
        "export: {} record(s){}",
        lines.len(),
        if skipped > 0 {
            format!(", {skipped} undecodable record(s) skipped (dead-lettered when read)")
        } else {
            String::new()
        }
    );
    Ok(())
}
