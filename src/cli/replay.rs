//! `condmon replay`: the operators over an NDJSON file, no broker.

use std::io::{BufReader, BufWriter, Write};
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use chrono::NaiveDate;

use crate::codec::SchemaCatalog;
use crate::metrics::Metrics;
use crate::pipeline::Operator;
use crate::pipeline::replay::{ReplayOptions, open_state, replay};
use crate::rules::RuleSet;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// NDJSON input: `{"stream": "items", "at": "2026-01-05", "value": {...}}` per line.
    #[arg(long)]
    input: PathBuf,
    /// Rule set (TOML). Required: a what-if replay must say which rules it tries.
    #[arg(long)]
    rules: PathBuf,
    /// Business date the clock starts on.
    #[arg(long)]
    start: NaiveDate,
    /// Move the clock to this date at the end, firing the timers due on the way.
    #[arg(long)]
    until: Option<NaiveDate>,
    /// Output NDJSON file (default: standard output).
    #[arg(long)]
    output: Option<PathBuf>,
    /// Keep state here (to resume a replay stopped with --stop-after); default: a temporary one.
    #[arg(long)]
    state_dir: Option<PathBuf>,
    /// Stop after this many input lines, as if the process had been killed.
    #[arg(long)]
    stop_after: Option<usize>,
    /// Batch parity: replay the lines up to this date and write every customer's risk score
    /// as of it (`"stream": "scores"` lines), to compare with a nightly scoring run.
    #[arg(long)]
    score_at: Option<NaiveDate>,
    /// Score with this scoring rule alone (the run's override risk score ID).
    #[arg(long, requires = "score_at")]
    scoring_rule: Option<String>,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let mut rules = RuleSet::load(&args.rules)?;
    if let Some(id) = &args.scoring_rule {
        if rules.scoring_rule(id).is_none() {
            anyhow::bail!("{}: no scoring rule `{id}`", args.rules.display());
        }
        rules.options.override_scoring_rule = Some(id.clone());
    }
    let operator = Operator::new(Arc::new(rules), Arc::new(SchemaCatalog::bundled()?));
    let state = open_state(args.state_dir.as_deref())?;
    let input = std::fs::File::open(&args.input)
        .with_context(|| format!("opening {}", args.input.display()))?;
    let mut out: Box<dyn Write> = match &args.output {
        Some(path) => Box::new(BufWriter::new(
            std::fs::OpenOptions::new()
                .create(true)
                .append(args.state_dir.is_some())
                .write(true)
                .truncate(args.state_dir.is_none())
                .open(path)
                .with_context(|| format!("opening {}", path.display()))?,
        )),
        None => Box::new(BufWriter::new(std::io::stdout().lock())),
    };
    let metrics = Metrics::new();
    let summary = replay(
        &operator,
        &state.store,
        BufReader::new(input),
        &mut out,
        ReplayOptions {
            start: args.start,
            until: args.until,
            stop_after: args.stop_after,
            score_at: args.score_at,
            metrics: &metrics,
        },
    )?;
    out.flush()?;
    eprintln!(
        "replay: {} line(s) read, {} event(s) out, {} dead letter(s)",
        summary.lines_read, summary.events_out, summary.dead_letters
    );
    Ok(())
}
