//! `condmon replay`: the operators over an NDJSON file, no broker.

use std::io::{BufRead, BufReader, BufWriter, IsTerminal, Read, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

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
    /// Show progress on standard error (position, lines a second) every second; on by
    /// default when standard error is a terminal.
    #[arg(long)]
    progress: bool,
}

/// Reads the input for the replay and reports how far it got: bytes of the file and lines,
/// with the rate, on one terminal line rewritten every second, and once at the end.
struct Progress<R> {
    inner: R,
    size: u64,
    read: u64,
    lines: u64,
    started: Instant,
    shown: Instant,
    finished: bool,
}

impl<R: BufRead> Progress<R> {
    fn new(inner: R, size: u64) -> Self {
        let now = Instant::now();
        Progress {
            inner,
            size,
            read: 0,
            lines: 0,
            started: now,
            shown: now,
            finished: false,
        }
    }

    fn show(&mut self, done: bool) {
        let seconds = self.started.elapsed().as_secs_f64().max(1e-3);
        let percent = if self.size == 0 {
            100.0
        } else {
            self.read as f64 * 100.0 / self.size as f64
        };
        eprint!(
            "\rreplay: {percent:5.1}% ({} of {} bytes), line {}, {:.0} lines/s{}",
            self.read,
            self.size,
            self.lines,
            self.lines as f64 / seconds,
            if done { "\n" } else { "" }
        );
        self.shown = Instant::now();
    }
}

impl<R: BufRead> Read for Progress<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let available = self.fill_buf()?;
        let n = available.len().min(buf.len());
        buf[..n].copy_from_slice(&available[..n]);
        self.consume(n);
        Ok(n)
    }
}

impl<R: BufRead> BufRead for Progress<R> {
    fn fill_buf(&mut self) -> std::io::Result<&[u8]> {
        if self.inner.fill_buf()?.is_empty() && !self.finished {
            self.finished = true;
            self.show(true);
        }
        self.inner.fill_buf()
    }

    fn consume(&mut self, amount: usize) {
        if let Ok(buffer) = self.inner.fill_buf() {
            let taken = &buffer[..amount.min(buffer.len())];
            self.lines += taken.iter().filter(|b| **b == b'\n').count() as u64;
        }
        self.read += amount as u64;
        self.inner.consume(amount);
        if self.shown.elapsed() >= Duration::from_secs(1) {
            self.show(false);
        }
    }
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
    let size = input.metadata().map(|m| m.len()).unwrap_or(0);
    let input: Box<dyn BufRead> = if args.progress || std::io::stderr().is_terminal() {
        Box::new(Progress::new(BufReader::new(input), size))
    } else {
        Box::new(BufReader::new(input))
    };
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
        input,
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
