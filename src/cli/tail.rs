//! `condmon tail`: an output topic as JSON lines, decoded from Avro.

use std::time::Duration;

use std::collections::BTreeMap;
use std::io::Write;

use serde_json::json;

use super::ConfigArgs;
use crate::kafka::read_topic;
use crate::model::{OutputEvent, Stream};
use crate::pipeline::{HEADER_KIND, HEADER_OFFSET, HEADER_PARTITION, HEADER_REASON, HEADER_TOPIC};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    config: ConfigArgs,
    /// Which stream to read: actions, escalations, conditions, risk-scores, command-results,
    /// notifications, correspondence, requests, promise-status, dunning-decisions,
    /// child-figures or dead-letter.
    #[arg(long, default_value = "actions")]
    stream: String,
    /// Stop after this many records.
    #[arg(long, default_value_t = 1000)]
    max: usize,
    /// Stop when nothing arrives for this many seconds.
    #[arg(long, default_value_t = 3)]
    idle_secs: u64,
    /// One readable line per record instead of JSON.
    #[arg(long)]
    table: bool,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let config = args.config.load()?;
    let catalog = config.schema_catalog().map_err(anyhow::Error::msg)?;
    let (topic, stream) = if args.stream == "dead-letter" {
        (config.topics.dead_letter.clone(), None)
    } else {
        let stream: Stream = serde_json::from_value(json!(args.stream))
            .map_err(|_| anyhow::anyhow!("unknown stream `{}`", args.stream))?;
        (config.topics.topic(stream).to_string(), Some(stream))
    };
    let mut out = std::io::stdout().lock();
    let idle = Duration::from_secs(args.idle_secs);
    for record in read_topic(&config, &topic, args.max, idle)? {
        let key = record.key.as_deref().map(String::from_utf8_lossy);
        let line = match (stream, &record.payload) {
            (Some(stream), Some(bytes)) => {
                let event = catalog.decode_output(stream, bytes)?;
                if args.table {
                    table_line(&event)
                } else {
                    let value = crate::codec::output_to_json(&event);
                    json!({ "partition": record.partition, "offset": record.offset, "key": key, "value": value }).to_string()
                }
            }
            _ if args.table => format!(
                "{}@{}/{}  {}: {}",
                record.header(HEADER_TOPIC).unwrap_or("?"),
                record.header(HEADER_PARTITION).unwrap_or("?"),
                record.header(HEADER_OFFSET).unwrap_or("?"),
                record.header(HEADER_KIND).unwrap_or("?"),
                record.header(HEADER_REASON).unwrap_or("?"),
            ),
            _ => {
                let headers: BTreeMap<_, _> = record.headers.iter().cloned().collect();
                json!({ "partition": record.partition, "offset": record.offset, "key": key, "headers": headers }).to_string()
            }
        };
        // A closed pipe (`| head`) ends the listing quietly.
        if writeln!(out, "{line}").is_err() {
            break;
        }
    }
    Ok(())
}

fn table_line(event: &OutputEvent) -> String {
    match event {
        OutputEvent::Action(a) => format!(
            "{}  {:<9} {:<5} {:<13} {:<5} {:<16} owner={:<7} due={}  {}{}",
            a.business_date,
            a.customer_id,
            a.condition,
            format!("{:?}", a.kind),
            a.action_code,
            format!("{:?}", a.status),
            a.owner.as_deref().unwrap_or("-"),
            a.due_date,
            evidence_summary(&a.condition, &a.evidence),
            a.cancel_reason
                .map(|r| format!("  [{}]", r.as_str()))
                .unwrap_or_default(),
        ),
        OutputEvent::Escalation(e) => format!(
            "{}  {:<9} escalated step {} -> {} ({}) after {} days in violation",
            e.business_date,
            e.customer_id,
            e.from_step,
            e.to_step,
            e.action_code,
            e.days_in_violation
        ),
        OutputEvent::Condition(c) => format!(
            "{}  {:<9} {:<20} {} ({}, {}){}",
            c.business_date,
            c.customer_id,
            format!("{:?}", c.kind),
            c.rule_id,
            c.condition,
            c.monitor_role.as_str(),
            c.reason
                .as_deref()
                .map(|r| format!("  [{r}]"))
                .unwrap_or_default(),
        ),
        OutputEvent::RiskScore(r) => format!(
            "{}  {:<9} risk score {} ({} v{}){}: {}",
            r.business_date,
            r.customer_id,
            r.total,
            r.rule_id,
            r.rule_version,
            if r.complete { "" } else { " incomplete" },
            r.elements
                .iter()
                .map(|e| format!("{}={}", e.name, e.score))
                .collect::<Vec<_>>()
                .join(" ")
        ),
        OutputEvent::ChildFigures { figures, .. } => format!(
            "{} -> {} ({}): {} line(s), {} cash",
            figures.child_id,
            figures.customer_id,
            figures.role.as_str(),
            figures.lines.len(),
            figures.cash.len()
        ),
        OutputEvent::CommandResult(r) => format!(
            "{}  {:<9} {:<16} {:<15} by {:<7} {}{}",
            r.business_date,
            r.customer_id,
            r.command_id,
            r.kind.as_str(),
            r.issued_by,
            if r.accepted { "accepted" } else { "REJECTED" },
            if r.reasons.is_empty() {
                format!("  {}", r.action_ids.join(" "))
            } else {
                format!(": {}", r.reasons.join("; "))
            }
        ),
        OutputEvent::Notification(n) => format!(
            "{}  {:<9} {:<19} to {:<7} <{}>  {} {} due {}  {}",
            n.business_date,
            n.customer_id,
            n.kind.as_str(),
            n.recipient,
            n.recipient_email.as_deref().unwrap_or("no address"),
            n.action_code
                .as_deref()
                .or(n.item_type.map(|t| t.as_str()))
                .unwrap_or(""),
            n.action_id
                .as_deref()
                .or(n.item_id.as_deref())
                .unwrap_or(""),
            n.due_date,
            n.link
        ),
        OutputEvent::Correspondence(c) => format!(
            "{}  {:<9} {:?} {} for action {}{} ({:?}{})",
            c.business_date,
            c.customer_id,
            c.kind,
            c.letter_code.as_deref().unwrap_or("-"),
            c.action_id,
            if c.superseded_action_ids.is_empty() {
                String::new()
            } else {
                format!(", superseding {}", c.superseded_action_ids.join(" "))
            },
            c.delivery,
            c.delivery_method
                .as_deref()
                .map(|m| format!(", {m}"))
                .unwrap_or_default()
        ),
        OutputEvent::PromiseStatus(p) => format!(
            "{}  {:<9} promise {} {:<14} {} {} due {} (deadline {}), paid {}{}",
            p.business_date,
            p.customer_id,
            p.conversation_id,
            p.status.as_str(),
            p.amount,
            p.currency,
            p.promise_date,
            p.deadline,
            p.paid,
            p.previous_status
                .map(|s| format!("  [was {}]", s.as_str()))
                .unwrap_or_default()
        ),
        OutputEvent::DunningDecision(d) => format!(
            "{}  {:<9} {:?} ({} / {}): {}",
            d.business_date,
            d.customer_id,
            d.decision,
            d.conversation_id,
            d.call_action_id,
            d.message
        ),
        OutputEvent::Request(r) => format!(
            "{}  {:<9} {:?} {} for action {} by {}{}",
            r.business_date,
            r.customer_id,
            r.kind,
            r.code.as_deref().unwrap_or("-"),
            r.action_id,
            r.requested_by,
            match (&r.item_id, r.amount) {
                (Some(item), Some(amount)) => format!(
                    "  item {item} {amount} {}",
                    r.currency.as_deref().unwrap_or_default()
                ),
                _ => String::new(),
            }
        ),
    }
}

/// The figure that made the violation, in a few words.
fn evidence_summary(condition: &str, e: &crate::model::Evidence) -> String {
    if let Some(item) = &e.item {
        return format!(
            "item {} open {} {}",
            item.item_id, item.open_amount, item.currency
        );
    }
    if let Some(stat) = &e.statistic {
        return format!(
            "{} {} {} {} ({})",
            stat.history_id, stat.value, stat.comparison, stat.threshold, stat.source
        );
    }
    if condition == "COLL" {
        return format!(
            "past due {} {} ({} days)",
            e.past_due_amount, e.currency, e.oldest_days_past_due
        );
    }
    match e.measured_amount {
        Some(measured) => format!("{} vs {} {}", measured, e.threshold_amount, e.currency),
        None => format!("past due {} {}", e.past_due_amount, e.currency),
    }
}
