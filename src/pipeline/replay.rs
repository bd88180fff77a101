//! `condmon replay`: the operator over an NDJSON file, with a manual clock, no broker.
//!
//! Input lines (the same file `condmon feed` sends to Kafka):
//! ```json
//! {"stream": "items", "at": "2026-01-05", "value": { ...ItemChange JSON... }}
//! {"advance_to": "2026-03-31"}
//! ```
//! `at` (a date or an RFC 3339 time, optional) moves the clock forward first; every timer that
//! falls due on the way fires on its own day. `{"rules": "<TOML rule document>"}` replaces
//! the rule set live, as a document on the rules topic does. Output lines:
//! ```json
//! {"stream": "actions", "key": "SHARE|C1", "line": 3, "value": { ...ActionEvent JSON... }}
//! {"stream": "actions", "key": "SHARE|C1", "timer": "2026-02-02", "value": { ... }}
//! {"stream": "dead-letter", "line": 7, "kind": "invalid", "reason": "...", "input": "..."}
//! ```
//! Every output line names its cause: the input line (`line`, from 1) or, when time alone
//! caused it, the day its timers fired (`timer`).
//! With a state directory, a replay that stops part-way (`stop_after`) resumes where it
//! stopped: the line number and the clock are committed with the state, like Kafka offsets.

use std::io::{BufRead, Write};
use std::path::Path;

use chrono::{DateTime, NaiveDate, Utc};
use serde::Deserialize;
use serde_json::{Value as Json, json};

use super::{Operator, Outcome, Payload, Rejection, RejectionKind, RulesChange};
use crate::metrics::Metrics;
use crate::model::{OutputEvent, Stream};
use crate::state::{StateError, Store};
use crate::timer::{Clock, ManualClock, Timers};

/// Replay has one virtual partition.
const PARTITION: i32 = 0;
const LINE_OFFSET: &str = "replay.line";
const CLOCK_OFFSET: &str = "replay.clock";

#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error(transparent)]
    State(#[from] StateError),
    #[error(transparent)]
    Process(#[from] super::ProcessError),
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    #[error("internal: condmon refused its own record: {0}")]
    Internal(String),
}

/// An input line: a record of a stream, or a clock movement.
#[derive(Debug, Deserialize)]
#[serde(untagged, deny_unknown_fields)]
pub enum ReplayLine {
    Record {
        stream: Stream,
        #[serde(default)]
        at: Option<Moment>,
        #[serde(default)]
        key: Option<String>,
        value: Json,
    },
    Advance {
        advance_to: Moment,
    },
    /// A rule document, as the rules topic carries it.
    Rules {
        rules: String,
        #[serde(default)]
        at: Option<Moment>,
    },
}

/// A date (midnight UTC) or a full timestamp.
#[derive(Debug, Clone, Copy)]
pub struct Moment(pub DateTime<Utc>);

impl<'de> Deserialize<'de> for Moment {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        crate::timer::parse_moment(&s).map(Moment).ok_or_else(|| {
            serde::de::Error::custom(format!("`{s}` is neither a date nor an RFC 3339 time"))
        })
    }
}

pub struct ReplayOptions<'a> {
    pub start: NaiveDate,
    /// Move the clock here at the end, firing the timers on the way.
    pub until: Option<NaiveDate>,
    /// Stop after this many input lines (a simulated crash point, for restart tests).
    pub stop_after: Option<usize>,
    /// Batch parity: read the lines up to this business date, move the clock to it, and write
    /// every customer's risk score as of it (`{"stream": "scores", ...}` lines).
    pub score_at: Option<NaiveDate>,
    pub metrics: &'a Metrics,
}

/// Summary of a replay run.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ReplaySummary {
    pub lines_read: usize,
    pub events_out: usize,
    pub dead_letters: usize,
}

/// Runs `input` through `operator` over `store`, writing output lines to `out`.
pub fn replay(
    operator: &Operator,
    store: &Store,
    input: impl BufRead,
    out: &mut dyn Write,
    options: ReplayOptions<'_>,
) -> Result<ReplaySummary, ReplayError> {
    store.ensure_partition(PARTITION)?;
    let committed = store.offsets(PARTITION)?;
    let resume_line = committed.get(LINE_OFFSET).copied().unwrap_or(0) as usize;
    let clock = ManualClock::starting_on(options.start);
    if let Some(days) = committed.get(CLOCK_OFFSET) {
        clock.advance_to(day_start(epoch_day(*days)));
    }
    let mut driver = Driver {
        operator,
        store,
        clock,
        out,
        metrics: options.metrics,
        summary: ReplaySummary::default(),
        cause: Cause::Line(0),
        abort_after_line: std::env::var(ABORT_AFTER_LINE)
            .ok()
            .and_then(|v| v.parse().ok()),
    };
    for (index, line) in input.lines().enumerate() {
        if index < resume_line {
            // Reference data lives in memory, as it does when read from its topics: reload
            // what the lines already done had set.
            driver.reload_reference(index, &line?)?;
            continue;
        }
        if options.stop_after.is_some_and(|n| index >= resume_line + n) {
            return Ok(driver.summary);
        }
        let line = line?;
        if options
            .score_at
            .is_some_and(|date| moment_of(&line).is_some_and(|at| at.date_naive() > date))
        {
            break;
        }
        driver.summary.lines_read += 1;
        driver.line(index, &line)?;
    }
    if let Some(until) = options.score_at.or(options.until) {
        driver.advance(day_start(until))?;
    }
    if options.score_at.is_some() {
        driver.write_scores()?;
    }
    driver.out.flush()?;
    Ok(driver.summary)
}

/// When a line happens, if it says.
fn moment_of(line: &str) -> Option<DateTime<Utc>> {
    match serde_json::from_str::<ReplayLine>(line).ok()? {
        ReplayLine::Record { at, .. } | ReplayLine::Rules { at, .. } => at.map(|m| m.0),
        ReplayLine::Advance { advance_to } => Some(advance_to.0),
    }
}

struct Driver<'a> {
    operator: &'a Operator,
    store: &'a Store,
    clock: ManualClock,
    out: &'a mut dyn Write,
    metrics: &'a Metrics,
    summary: ReplaySummary,
    /// What the events being written were caused by (every output line says).
    cause: Cause,
    /// Fault injection for the tests: abort right after committing this line.
    abort_after_line: Option<usize>,
}

/// Fault injection: `condmon replay` aborts right after committing this (1-based) input line,
/// the worst instant for its output (see [`Driver::commit_txn`]).
pub const ABORT_AFTER_LINE: &str = "CONDMON_FAULT_REPLAY_ABORT_AFTER_LINE";

/// An output line's cause: an input line (its number), or time alone (a timer on its day).
#[derive(Debug, Clone, Copy)]
enum Cause {
    Line(usize),
    Timer(NaiveDate),
}

fn day_start(date: NaiveDate) -> DateTime<Utc> {
    date.and_hms_opt(0, 0, 0).expect("midnight").and_utc()
}

fn epoch_day(days: i64) -> NaiveDate {
    NaiveDate::from_ymd_opt(1970, 1, 1).expect("epoch") + chrono::Duration::days(days)
}

fn day_number(date: NaiveDate) -> i64 {
    (date - epoch_day(0)).num_days()
}

impl Driver<'_> {
    fn line(&mut self, index: usize, line: &str) -> Result<(), ReplayError> {
        let line_no = index + 1;
        if line.trim().is_empty() {
            return self.commit(index, None);
        }
        let parsed: ReplayLine = match serde_json::from_str(line) {
            Ok(parsed) => parsed,
            Err(e) => {
                let rejection = Rejection {
                    kind: RejectionKind::Undecodable,
                    reason: format!("not a replay line: {e}"),
                };
                return self.commit(index, Some((line_no, line, rejection)));
            }
        };
        match parsed {
            ReplayLine::Advance { advance_to } => {
                self.advance(advance_to.0)?;
                self.commit(index, None)
            }
            ReplayLine::Rules { rules, at } => {
                if let Some(at) = at {
                    self.advance(at.0)?;
                }
                let mut txn = self.store.txn();
                let origin = format!("line {line_no}");
                let change = self.operator.replace_rules(
                    &mut txn,
                    &[PARTITION],
                    &rules,
                    &origin,
                    self.clock.today(),
                )?;
                match change {
                    RulesChange::Applied { version, events } => {
                        let line = json!({"stream": "rules", "line": line_no, "outcome": "applied", "version": version});
                        writeln!(self.out, "{line}")?;
                        self.cause = Cause::Line(line_no);
                        self.emit(&mut txn, events)?;
                        self.commit_txn(txn, index)
                    }
                    RulesChange::Stale { offered, current } => {
                        let line = json!({"stream": "rules", "line": line_no, "outcome": "stale", "version": offered, "current": current});
                        writeln!(self.out, "{line}")?;
                        drop(txn);
                        self.commit(index, None)
                    }
                    RulesChange::Rejected(rejection) => {
                        drop(txn);
                        self.commit(index, Some((line_no, line, rejection)))
                    }
                }
            }
            ReplayLine::Record {
                stream,
                at,
                key,
                value,
            } => {
                if let Some(at) = at {
                    self.advance(at.0)?;
                }
                let topic = stream.as_str();
                self.metrics.records_in.with_label_values(&[topic]).inc();
                // Replay files may leave the key out: it is then the event's own key.
                let key = key.or_else(|| {
                    let event = crate::codec::input_from_json(stream, value.clone()).ok()?;
                    Some(event.record_key())
                });
                let mut txn = self.store.txn();
                let outcome = self.operator.process(
                    &mut txn,
                    &[PARTITION],
                    stream,
                    key.as_deref(),
                    Payload::Json(value),
                    self.clock.today(),
                )?;
                match outcome {
                    Outcome::AlreadyHeld => self.commit_txn(txn, index),
                    Outcome::Processed(events) => {
                        self.cause = Cause::Line(line_no);
                        self.emit(&mut txn, events)?;
                        self.commit_txn(txn, index)
                    }
                    Outcome::Rejected(rejection) => {
                        self.metrics
                            .dead_letters
                            .with_label_values(&[topic, rejection.kind.as_str()])
                            .inc();
                        drop(txn);
                        self.commit(index, Some((line_no, line, rejection)))
                    }
                }
            }
        }
    }

    /// Re-applies the reference data (rule documents, exchange rates) of a line done before
    /// a resume, without re-evaluating anyone: the state already reflects it.
    fn reload_reference(&mut self, index: usize, line: &str) -> Result<(), ReplayError> {
        match serde_json::from_str::<ReplayLine>(line) {
            Ok(ReplayLine::Rules { rules, .. }) => {
                let mut scratch = self.store.txn();
                let origin = format!("line {}", index + 1);
                // Its re-evaluations were committed with the line: drop them.
                self.operator.replace_rules(
                    &mut scratch,
                    &[],
                    &rules,
                    &origin,
                    self.clock.today(),
                )?;
            }
            Ok(ReplayLine::Record {
                stream, key, value, ..
            }) if Stream::GLOBAL_INPUTS.contains(&stream) => {
                let key = key.or_else(|| {
                    crate::codec::input_from_json(stream, value.clone())
                        .ok()
                        .map(|e| e.record_key())
                });
                self.operator
                    .load_reference(stream, key.as_deref(), Payload::Json(value))?;
            }
            _ => {}
        }
        Ok(())
    }

    /// Every scored customer's risk score as of the clock, in key order.
    fn write_scores(&mut self) -> Result<(), ReplayError> {
        let mut txn = self.store.txn();
        let all = self
            .operator
            .scores(&mut txn, PARTITION, self.clock.today())?;
        for (key, score) in all {
            let line = json!({
                "stream": "scores",
                "key": key.encode(),
                "business_date": self.clock.today(),
                "value": score,
            });
            writeln!(self.out, "{line}")?;
        }
        Ok(())
    }

    /// Moves the clock to `to`, firing every timer on its own day on the way.
    fn advance(&mut self, to: DateTime<Utc>) -> Result<(), ReplayError> {
        loop {
            let mut txn = self.store.txn();
            let next = Timers {
                txn: &mut txn,
                partition: PARTITION,
            }
            .next_due()?;
            match next {
                Some(due) if day_start(due) <= to => {
                    self.clock.advance_to(day_start(due));
                    let today = self.clock.today();
                    let events = self.operator.fire_timers(&mut txn, PARTITION, today)?;
                    self.metrics.timers_fired.inc_by(events.len() as u64);
                    self.cause = Cause::Timer(today);
                    self.emit(&mut txn, events)?;
                    let clock = day_number(today);
                    self.out.flush()?;
                    self.store
                        .commit(txn, &[(PARTITION, CLOCK_OFFSET.into(), clock)])?;
                }
                _ => break,
            }
        }
        self.clock.advance_to(to);
        Ok(())
    }

    /// Writes the events; children's figures also go to their parent, as the internal topic
    /// carries them in the Kafka pipeline (replay has one partition: at once, in order).
    fn emit(
        &mut self,
        txn: &mut crate::state::Txn<'_>,
        events: Vec<OutputEvent>,
    ) -> Result<(), ReplayError> {
        let mut queue = std::collections::VecDeque::from(events);
        while let Some(event) = queue.pop_front() {
            self.write_events(std::slice::from_ref(&event))?;
            if let OutputEvent::ChildFigures { figures, .. } = event {
                let key = crate::model::CustomerKey::new(&figures.set_id, &figures.customer_id);
                let json =
                    crate::codec::input_to_json(&crate::model::InputEvent::ChildFigures(figures));
                let outcome = self.operator.process(
                    txn,
                    &[PARTITION],
                    Stream::ChildFigures,
                    Some(&key.encode()),
                    Payload::Json(json),
                    self.clock.today(),
                )?;
                match outcome {
                    Outcome::Processed(more) => queue.extend(more),
                    Outcome::AlreadyHeld => {}
                    // condmon wrote it: refusing it is a bug, not bad input.
                    Outcome::Rejected(r) => return Err(ReplayError::Internal(r.reason)),
                }
            }
        }
        Ok(())
    }

    fn write_events(&mut self, events: &[OutputEvent]) -> Result<(), ReplayError> {
        for event in events {
            let mut line = json!({
                "stream": event.stream().as_str(),
                "key": event.customer_key().encode(),
                "value": crate::codec::output_to_json(event),
            });
            match self.cause {
                Cause::Line(n) => line["line"] = json!(n),
                Cause::Timer(day) => line["timer"] = json!(day),
            }
            writeln!(self.out, "{line}")?;
            self.metrics
                .records_out
                .with_label_values(&[event.stream().as_str()])
                .inc();
            if let Some(outcome) = event.outcome() {
                self.metrics.outcomes.with_label_values(&[outcome]).inc();
            }
            self.summary.events_out += 1;
        }
        Ok(())
    }

    fn commit_txn(&mut self, txn: crate::state::Txn<'_>, index: usize) -> Result<(), ReplayError> {
        let offsets = [
            (PARTITION, LINE_OFFSET.to_string(), index as i64 + 1),
            (
                PARTITION,
                CLOCK_OFFSET.to_string(),
                day_number(self.clock.today()),
            ),
        ];
        // The output first, then the line that caused it: a replay killed between the two
        // redoes the line (its output written again) instead of losing its output.
        self.out.flush()?;
        self.store.commit(txn, &offsets)?;
        if self.abort_after_line == Some(index + 1) {
            std::process::abort();
        }
        Ok(())
    }

    /// Commits a line that changed no state (a clock line, a blank or a refused record).
    fn commit(
        &mut self,
        index: usize,
        rejected: Option<(usize, &str, Rejection)>,
    ) -> Result<(), ReplayError> {
        if let Some((line_no, input, rejection)) = rejected {
            let line = json!({
                "stream": "dead-letter",
                "line": line_no,
                "kind": rejection.kind.as_str(),
                "reason": rejection.reason,
                "input": input,
            });
            writeln!(self.out, "{line}")?;
            self.summary.dead_letters += 1;
        }
        let txn = self.store.txn();
        self.commit_txn(txn, index)
    }
}

/// The replay's state: a directory the caller names, or a temporary one removed afterwards.
pub struct ReplayState {
    // Field order is drop order: the store closes before its temporary directory goes.
    pub store: Store,
    _temp: Option<tempfile::TempDir>,
}

/// Opens `dir` as the replay's state, or a fresh temporary directory.
pub fn open_state(dir: Option<&Path>) -> Result<ReplayState, ReplayError> {
    match dir {
        Some(dir) => Ok(ReplayState {
            store: super::open_store(dir, Default::default())?,
            _temp: None,
        }),
        None => {
            let temp = tempfile::tempdir()?;
            Ok(ReplayState {
                store: super::open_store(temp.path(), Default::default())?,
                _temp: Some(temp),
            })
        }
    }
}
