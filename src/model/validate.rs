//! Semantic validation of input events. An event that decodes but makes no business sense is
//! bad data: it goes to the dead-letter topic with the reason below and never reaches state.

use rust_decimal::Decimal;
use thiserror::Error;

use super::{
    AgingSnapshot, CustomerChange, FxRate, HistoryChange, InputEvent, ItemChange, KEY_SEPARATOR,
    PaymentChange, PaymentStatus,
};

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ValidationError {
    #[error("field `{0}` is empty")]
    Empty(&'static str),
    #[error("field `{field}` contains the key separator `{KEY_SEPARATOR}`: {value:?}")]
    Separator { field: &'static str, value: String },
    #[error("`{0}` is not an ISO 4217 currency code")]
    Currency(String),
    #[error("open amount {amount} is on the wrong side of zero for item type {item_type}")]
    WrongSign {
        amount: Decimal,
        item_type: &'static str,
    },
    #[error("{0}")]
    Amount(String),
    #[error("{field} {date} is outside the years 1900..=2199")]
    DateRange {
        field: &'static str,
        date: chrono::NaiveDate,
    },
    #[error("{0}")]
    Invalid(String),
    #[error("field `{field}` is {len} bytes long: at most {max}")]
    TooLong {
        field: &'static str,
        len: usize,
        max: usize,
    },
    #[error("field `{field}` has {len} entries: at most {max}")]
    TooMany {
        field: &'static str,
        len: usize,
        max: usize,
    },
    #[error("the key `{key}` does not match the event's key `{expected}`")]
    KeyMismatch { key: String, expected: String },
    #[error("field `{field}` contains a control character: {value:?}")]
    Control { field: &'static str, value: String },
}

/// No receivable amount reaches a thousand trillion: beyond it a figure is an error, and
/// bounding inputs keeps every product and conversion inside `rust_decimal`'s range.
pub const MAX_AMOUNT: Decimal = Decimal::from_parts(0xa4c6_8000, 0x0003_8d7e, 0, false, 0);

fn amount(field: &'static str, value: Decimal) -> Result<(), ValidationError> {
    if value.abs() >= MAX_AMOUNT {
        return Err(ValidationError::Amount(format!(
            "{field} {value} is beyond ±{MAX_AMOUNT}"
        )));
    }
    Ok(())
}

/// Checks an event on its own (no state needed).
pub fn validate(event: &InputEvent) -> Result<(), ValidationError> {
    match event {
        InputEvent::Item(e) => item(e),
        InputEvent::Payment(e) => payment(e),
        InputEvent::Aging(e) => aging(e),
        InputEvent::Customer(e) => customer(e),
        InputEvent::History(e) => history(e),
        InputEvent::CreditAgency(e) => credit_agency(e),
        InputEvent::ChildFigures(e) => child_figures(e),
        InputEvent::FxRate(e) => fx_rate(e),
        InputEvent::Command(e) => command(e),
        InputEvent::Conversation(e) => conversation(e),
    }
}

/// Checks that the record key names the same customer as the event (co-partitioning relies on
/// it), or for reference data the same record (compaction relies on it).
pub fn validate_key(event: &InputEvent, key: Option<&str>) -> Result<(), ValidationError> {
    let expected = event.record_key();
    match key {
        Some(k) if k == expected => Ok(()),
        other => Err(ValidationError::KeyMismatch {
            key: other.unwrap_or("<none>").to_string(),
            expected,
        }),
    }
}

/// Dates far outside business time would overflow date arithmetic downstream.
fn date(field: &'static str, value: chrono::NaiveDate) -> Result<(), ValidationError> {
    use chrono::Datelike;
    if (1900..2200).contains(&value.year()) {
        Ok(())
    } else {
        Err(ValidationError::DateRange { field, date: value })
    }
}

/// Ids become parts of keys with 16-bit length prefixes; 255 bytes is plenty for any ERP id.
fn id(field: &'static str, value: &str) -> Result<(), ValidationError> {
    if value.trim().is_empty() {
        return Err(ValidationError::Empty(field));
    }
    if value.len() > 255 {
        return Err(ValidationError::Amount(format!(
            "field `{field}` is longer than 255 bytes"
        )));
    }
    if value.contains(KEY_SEPARATOR) {
        return Err(ValidationError::Separator {
            field,
            value: value.to_string(),
        });
    }
    no_control(field, value)
}

/// Ids, codes and owners are parts of keys (an index key is `value NUL customer`) and of
/// letters: a NUL, a line break or an escape in one is bad data, never a name.
fn no_control(field: &'static str, value: &str) -> Result<(), ValidationError> {
    if value.chars().any(char::is_control) {
        return Err(ValidationError::Control {
            field,
            value: value.to_string(),
        });
    }
    Ok(())
}

/// Names, codes and owners: as long as an id (ERP columns of these are far shorter).
pub const MAX_NAME_BYTES: usize = 255;
/// Free text (a conversation's description, a call action's notes).
pub const MAX_TEXT_BYTES: usize = 4000;

/// Free text is bounded so that no record's text can fill an output record (events carry
/// names, reasons and notes as evidence) or a customer's state.
fn text(field: &'static str, value: Option<&str>, max: usize) -> Result<(), ValidationError> {
    match value {
        Some(v) if v.len() > max => Err(ValidationError::TooLong {
            field,
            len: v.len(),
            max,
        }),
        _ => Ok(()),
    }
}

fn name(field: &'static str, value: &Option<String>) -> Result<(), ValidationError> {
    text(field, value.as_deref(), MAX_NAME_BYTES)?;
    value.as_deref().map_or(Ok(()), |v| no_control(field, v))
}

/// Arrays are bounded for the same reason (the Avro decoder bounds them before it reserves
/// memory, see `codec::limits`; these are the per-field business limits).
fn count(field: &'static str, len: usize, max: usize) -> Result<(), ValidationError> {
    if len > max {
        return Err(ValidationError::TooMany { field, len, max });
    }
    Ok(())
}

fn currency(code: &str) -> Result<(), ValidationError> {
    match iso_currency::Currency::from_code(code) {
        Some(_) => Ok(()),
        None => Err(ValidationError::Currency(code.to_string())),
    }
}

fn customer_ids(set_id: &str, customer_id: &str) -> Result<(), ValidationError> {
    id("set_id", set_id)?;
    id("customer_id", customer_id)
}

fn item(e: &ItemChange) -> Result<(), ValidationError> {
    customer_ids(&e.set_id, &e.customer_id)?;
    amount("original_amount", e.original_amount)?;
    amount("open_amount", e.open_amount)?;
    amount("disputed_amount", e.disputed_amount)?;
    id("business_unit", &e.business_unit)?;
    id("item_id", &e.item_id)?;
    currency(&e.currency)?;
    date("due_date", e.due_date)?;
    date("accounting_date", e.accounting_date)?;
    text("entry_type", Some(&e.entry_type), MAX_NAME_BYTES)?;
    name("entry_reason", &e.entry_reason)?;
    name("ar_specialist", &e.ar_specialist)?;
    name("collector", &e.collector)?;
    if let Some(origin) = &e.origin_item_id {
        id("origin_item_id", origin)?;
    }
    if let Some(origin) = &e.origin_payment_id {
        id("origin_payment_id", origin)?;
    }
    let wrong_side = |amount: Decimal| {
        if e.item_type.is_credit() {
            amount > Decimal::ZERO
        } else {
            amount < Decimal::ZERO
        }
    };
    for amount in [e.open_amount, e.original_amount] {
        if wrong_side(amount) {
            return Err(ValidationError::WrongSign {
                amount,
                item_type: e.item_type.as_str(),
            });
        }
    }
    if e.disputed_amount < Decimal::ZERO || e.disputed_amount > e.open_amount.abs() {
        return Err(ValidationError::Amount(format!(
            "disputed amount {} is outside 0..={}",
            e.disputed_amount,
            e.open_amount.abs()
        )));
    }
    Ok(())
}

fn payment(e: &PaymentChange) -> Result<(), ValidationError> {
    customer_ids(&e.set_id, &e.customer_id)?;
    amount("amount", e.amount)?;
    count("applications", e.applications.len(), 10_000)?;
    for a in &e.applications {
        amount("applications.amount", a.amount)?;
        id("applications.item_id", &a.item_id)?;
    }
    id("business_unit", &e.business_unit)?;
    id("payment_id", &e.payment_id)?;
    currency(&e.currency)?;
    date("payment_date", e.payment_date)?;
    if e.amount <= Decimal::ZERO {
        return Err(ValidationError::Amount(format!(
            "payment amount {} must be positive",
            e.amount
        )));
    }
    if let Some(a) = e.applications.iter().find(|a| a.amount <= Decimal::ZERO) {
        return Err(ValidationError::Amount(format!(
            "application to item {} has non-positive amount {}",
            a.item_id, a.amount
        )));
    }
    let applied = e.applied_amount();
    if applied > e.amount {
        return Err(ValidationError::Amount(format!(
            "applications total {applied} exceed the payment amount {}",
            e.amount
        )));
    }
    if e.status == PaymentStatus::Applied && applied != e.amount {
        return Err(ValidationError::Amount(format!(
            "an APPLIED payment must be applied in full: {applied} of {}",
            e.amount
        )));
    }
    Ok(())
}

fn aging(e: &AgingSnapshot) -> Result<(), ValidationError> {
    customer_ids(&e.set_id, &e.customer_id)?;
    id("business_unit", &e.business_unit)?;
    id("aging_id", &e.aging_id)?;
    currency(&e.currency)?;
    date("as_of_date", e.as_of_date)?;
    count("buckets", e.buckets.len(), 100)?;
    for b in &e.buckets {
        text("buckets.category", Some(&b.category), MAX_NAME_BYTES)?;
    }
    if e.buckets.iter().any(|b| b.category.trim().is_empty()) {
        return Err(ValidationError::Empty("buckets.category"));
    }
    for b in &e.buckets {
        amount("buckets.amount", b.amount)?;
    }
    Ok(())
}

/// A command's shape: who, about what, with numbers in reason. Whether it may be carried out
/// is the engine's answer (a command result), not a dead letter.
fn command(e: &super::ActionCommand) -> Result<(), ValidationError> {
    customer_ids(&e.set_id, &e.customer_id)?;
    id("command_id", &e.command_id)?;
    id("issued_by", &e.issued_by)?;
    for (field, value) in [
        ("owner", &e.owner),
        ("action_code", &e.action_code),
        ("action_parameter", &e.action_parameter),
        ("item_id", &e.item_id),
        ("letter_code", &e.letter_code),
        ("contact_id", &e.contact_id),
        ("delivery_method", &e.delivery_method),
    ] {
        name(field, value)?;
    }
    if e.action_ids.len() > 1000 {
        return Err(ValidationError::Invalid(format!(
            "{} actions in one command: at most 1000",
            e.action_ids.len()
        )));
    }
    let mut seen = std::collections::HashSet::new();
    for action_id in &e.action_ids {
        id("action_ids", action_id)?;
        if !seen.insert(action_id.as_str()) {
            return Err(ValidationError::Invalid(format!(
                "action {action_id} is named twice"
            )));
        }
    }
    if let Some(d) = e.action_date {
        date("action_date", d)?;
    }
    for (field, days) in [
        ("due_days", e.due_days),
        ("notify_owner_days", e.notify_owner_days),
        ("notify_supervisor_days", e.notify_supervisor_days),
        ("notify_specialist_days", e.notify_specialist_days),
    ] {
        if days.is_some_and(|d| d.abs() > 3660) {
            return Err(ValidationError::Invalid(format!(
                "{field} {} is more than ten years",
                days.unwrap_or_default()
            )));
        }
    }
    Ok(())
}

/// A conversation's shape. Whether its call actions can be carried out (an item open, a site
/// with a profile) is the engine's answer.
fn conversation(e: &super::ConversationChange) -> Result<(), ValidationError> {
    use super::CallActionKind;
    customer_ids(&e.set_id, &e.customer_id)?;
    id("conversation_id", &e.conversation_id)?;
    id("business_unit", &e.business_unit)?;
    id("user", &e.user)?;
    date("conversation_date", e.conversation_date)?;
    name("contact", &e.contact)?;
    name("supervisor", &e.supervisor)?;
    text("description", e.description.as_deref(), MAX_TEXT_BYTES)?;
    count("keywords", e.keywords.len(), 50)?;
    for k in &e.keywords {
        text("keywords", Some(k), MAX_NAME_BYTES)?;
    }
    count("references", e.references.len(), 1000)?;
    count("call_actions", e.call_actions.len(), 100)?;
    for d in [e.review_date, e.follow_up.as_ref().map(|f| f.date)]
        .into_iter()
        .flatten()
    {
        date("review_date/follow_up.date", d)?;
    }
    if let Some(f) = &e.follow_up {
        id("follow_up.owner", &f.owner)?;
        name("follow_up.action_code", &f.action_code)?;
    }
    for r in &e.references {
        id("references.item_id", &r.item_id)?;
    }
    if let Some(p) = &e.promise {
        date("promise.date", p.date)?;
        currency(&p.currency)?;
        amount("promise.amount", p.amount)?;
        if p.amount <= Decimal::ZERO {
            return Err(ValidationError::Amount(format!(
                "promise amount {} must be positive",
                p.amount
            )));
        }
        count("promise.items", p.items.len(), 1000)?;
        for i in &p.items {
            id("promise.items.item_id", &i.item_id)?;
        }
    }
    let mut seen = std::collections::HashSet::new();
    for c in &e.call_actions {
        id("call_actions.id", &c.id)?;
        name("call_actions.owner", &c.owner)?;
        text("call_actions.notes", c.notes.as_deref(), MAX_TEXT_BYTES)?;
        // The id ends the ids condmon derives from it (`CALL-<conversation>-<id>`).
        if !c
            .id
            .chars()
            .all(|ch| ch.is_ascii_alphanumeric() || ch == '_')
        {
            return Err(ValidationError::Invalid(format!(
                "call action id `{}`: letters, digits and `_` only",
                c.id
            )));
        }
        if !seen.insert(c.id.as_str()) {
            return Err(ValidationError::Invalid(format!(
                "call action id `{}` is used twice",
                c.id
            )));
        }
        if let Some(a) = c.amount {
            amount("call_actions.amount", a)?;
            if a < Decimal::ZERO {
                return Err(ValidationError::Amount(format!(
                    "call action {}: amount {a} is negative",
                    c.id
                )));
            }
        }
        if let Some(d) = c.date {
            date("call_actions.date", d)?;
        }
        let needs_item = matches!(
            c.kind,
            CallActionKind::PartialDispute | CallActionKind::CreditMemo
        );
        if needs_item && c.item.is_none() {
            let kind = serde_json::to_value(c.kind)
                .ok()
                .and_then(|v| v.as_str().map(String::from))
                .unwrap_or_default();
            return Err(ValidationError::Invalid(format!(
                "call action {}: a {kind} names its item",
                c.id
            )));
        }
        if c.kind == CallActionKind::PartialDispute && c.amount.is_none() {
            return Err(ValidationError::Invalid(format!(
                "call action {}: a partial dispute gives the amount in dispute (0 ends it)",
                c.id
            )));
        }
        if let Some(site) = &c.site {
            id("call_actions.site", site)?;
        }
    }
    Ok(())
}

fn customer(e: &CustomerChange) -> Result<(), ValidationError> {
    customer_ids(&e.set_id, &e.customer_id)?;
    currency(&e.currency)?;
    text("name", Some(&e.name), MAX_NAME_BYTES)?;
    for (field, value) in [
        ("customer_group", &e.customer_group),
        ("profile_id", &e.profile_id),
        ("collector", &e.collector),
        ("credit_analyst", &e.credit_analyst),
        ("sales_person", &e.sales_person),
        ("corporate_parent", &e.corporate_parent),
        ("remit_from_parent", &e.remit_from_parent),
        ("correspondence_parent", &e.correspondence_parent),
        ("country", &e.country),
        ("state", &e.state),
    ] {
        name(field, value)?;
    }
    count("sites", e.sites.len(), 1000)?;
    for site in &e.sites {
        id("sites.site_id", &site.site_id)?;
        name("sites.profile_id", &site.profile_id)?;
    }
    if let Some(limit) = e.credit_limit {
        amount("credit_limit", limit)?;
    }
    if e.credit_limit_pct_over
        .is_some_and(|p| p > Decimal::ONE_THOUSAND)
    {
        return Err(ValidationError::Amount(
            "credit_limit_pct_over is a percentage: at most 1000".into(),
        ));
    }
    for (field, value) in [
        ("credit_limit", e.credit_limit),
        ("credit_limit_pct_over", e.credit_limit_pct_over),
    ] {
        if value.is_some_and(|v| v < Decimal::ZERO) {
            return Err(ValidationError::Amount(format!(
                "{field} must not be negative"
            )));
        }
    }
    Ok(())
}

fn history(e: &HistoryChange) -> Result<(), ValidationError> {
    customer_ids(&e.set_id, &e.customer_id)?;
    amount("value", e.value)?;
    id("business_unit", &e.business_unit)?;
    id("history_id", &e.history_id)?;
    if let Some(code) = &e.currency {
        currency(code)?;
    }
    if !(1900..2200).contains(&e.fiscal_year) || !(1..=999).contains(&e.accounting_period) {
        return Err(ValidationError::Amount(format!(
            "fiscal year {} / period {} is out of range",
            e.fiscal_year, e.accounting_period
        )));
    }
    Ok(())
}

fn child_figures(e: &super::ChildFigures) -> Result<(), ValidationError> {
    customer_ids(&e.set_id, &e.customer_id)?;
    count("lines", e.lines.len(), 100_000)?;
    count("cash", e.cash.len(), 1000)?;
    for line in &e.lines {
        amount("lines.open_amount", line.open_amount)?;
        id("lines.item_id", &line.item_id)?;
        id("lines.business_unit", &line.business_unit)?;
    }
    id("child_id", &e.child_id)?;
    if e.child_id == e.customer_id {
        return Err(ValidationError::Amount(format!(
            "customer {} cannot be its own parent",
            e.child_id
        )));
    }
    if e.role == super::MonitorRole::BillTo {
        return Err(ValidationError::Amount(
            "a child's figures are for a corporate, correspondence or remit-from parent".into(),
        ));
    }
    for line in &e.lines {
        currency(&line.currency)?;
        date("lines.due_date", line.due_date)?;
    }
    for cash in &e.cash {
        currency(&cash.currency)?;
    }
    Ok(())
}

fn credit_agency(e: &super::CreditAgencyRecord) -> Result<(), ValidationError> {
    customer_ids(&e.set_id, &e.customer_id)?;
    id("duns_number", &e.duns_number)?;
    currency(&e.currency)?;
    date("report_date", e.report_date)?;
    for (field, value) in [
        ("sales", e.sales),
        ("total_assets", e.total_assets),
        ("current_assets", e.current_assets),
        ("total_current_liabilities", e.total_current_liabilities),
        ("inventory", e.inventory),
    ] {
        if value.is_some_and(|v| v < Decimal::ZERO) {
            return Err(ValidationError::Amount(format!(
                "{field} must not be negative"
            )));
        }
    }
    Ok(())
}

fn fx_rate(e: &FxRate) -> Result<(), ValidationError> {
    id("rate_type", &e.rate_type)?;
    currency(&e.from_currency)?;
    currency(&e.to_currency)?;
    date("effective_date", e.effective_date)?;
    if e.from_currency == e.to_currency {
        return Err(ValidationError::Amount(format!(
            "a rate from {} to itself",
            e.from_currency
        )));
    }
    if e.rate <= Decimal::ZERO {
        return Err(ValidationError::Amount(format!(
            "rate {} must be positive",
            e.rate
        )));
    }
    if e.rate >= Decimal::from(1_000_000_000) || e.rate < Decimal::new(1, 9) {
        return Err(ValidationError::Amount(format!(
            "rate {} is outside 0.000000001..1000000000",
            e.rate
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{ItemType, PaymentApplication};

    fn item(item_type: ItemType, open: &str) -> ItemChange {
        ItemChange {
            set_id: "SHARE".into(),
            business_unit: "US001".into(),
            customer_id: "C1".into(),
            item_id: "I1".into(),
            item_line: 0,
            item_type,
            original_amount: open.parse().unwrap(),
            open_amount: open.parse().unwrap(),
            currency: "USD".into(),
            accounting_date: "2026-01-01".parse().unwrap(),
            due_date: "2026-01-31".parse().unwrap(),
            entry_type: "IN".into(),
            entry_reason: None,
            disputed_amount: Decimal::ZERO,
            ar_specialist: None,
            collector: None,
            origin_item_id: None,
            origin_item_line: None,
            origin_payment_id: None,
        }
    }

    fn payment(status: PaymentStatus, amount: &str, applied: &[&str]) -> PaymentChange {
        PaymentChange {
            set_id: "SHARE".into(),
            business_unit: "US001".into(),
            customer_id: "C1".into(),
            payment_id: "P1".into(),
            status,
            amount: amount.parse().unwrap(),
            currency: "USD".into(),
            payment_date: "2026-02-01".parse().unwrap(),
            applications: applied
                .iter()
                .map(|a| PaymentApplication {
                    item_id: "I1".into(),
                    item_line: 0,
                    amount: a.parse().unwrap(),
                })
                .collect(),
        }
    }

    fn check_item(e: ItemChange) -> Result<(), String> {
        validate(&InputEvent::Item(e)).map_err(|e| e.to_string())
    }

    fn check_payment(e: PaymentChange) -> Result<(), String> {
        validate(&InputEvent::Payment(e)).map_err(|e| e.to_string())
    }

    #[test]
    fn items_are_checked_for_ids_currency_sign_and_dispute() {
        assert_eq!(check_item(item(ItemType::Invoice, "10.00")), Ok(()));
        assert_eq!(check_item(item(ItemType::CreditMemo, "-10.00")), Ok(()));
        assert_eq!(
            check_item(item(ItemType::Invoice, "0")),
            Ok(()),
            "a closed item is fine"
        );
        let err = check_item(item(ItemType::Invoice, "-10.00")).unwrap_err();
        assert_eq!(
            err,
            "open amount -10.00 is on the wrong side of zero for item type INVOICE"
        );
        assert!(
            check_item(item(ItemType::OnAccount, "5"))
                .unwrap_err()
                .contains("wrong side of zero")
        );
        let mut e = item(ItemType::Invoice, "10");
        e.customer_id = " ".into();
        assert_eq!(check_item(e).unwrap_err(), "field `customer_id` is empty");
        let mut e = item(ItemType::Invoice, "10");
        e.set_id = "A|B".into();
        assert!(check_item(e).unwrap_err().contains("key separator"));
        let mut e = item(ItemType::Invoice, "10");
        e.currency = "usd".into();
        assert_eq!(
            check_item(e).unwrap_err(),
            "`usd` is not an ISO 4217 currency code"
        );
        let mut e = item(ItemType::Invoice, "10");
        e.due_date = "9999-12-31".parse().unwrap();
        assert_eq!(
            check_item(e).unwrap_err(),
            "due_date 9999-12-31 is outside the years 1900..=2199"
        );
        let mut e = item(ItemType::Invoice, "10");
        e.item_id = "I\n1".into();
        assert_eq!(
            check_item(e).unwrap_err(),
            "field `item_id` contains a control character: \"I\\n1\""
        );
        let mut e = item(ItemType::Invoice, "10");
        e.collector = Some("JD\0OE".into());
        assert_eq!(
            check_item(e).unwrap_err(),
            "field `collector` contains a control character: \"JD\\0OE\""
        );
        let mut e = item(ItemType::Invoice, "10");
        e.item_id = "x".repeat(256);
        assert!(check_item(e).unwrap_err().contains("longer than 255 bytes"));
        let mut e = item(ItemType::Invoice, "10");
        e.disputed_amount = "10.01".parse().unwrap();
        assert_eq!(
            check_item(e).unwrap_err(),
            "disputed amount 10.01 is outside 0..=10"
        );
    }

    #[test]
    fn payments_cannot_apply_more_than_they_are() {
        assert_eq!(
            check_payment(payment(PaymentStatus::Applied, "100", &["60", "40"])),
            Ok(())
        );
        assert_eq!(
            check_payment(payment(PaymentStatus::Unapplied, "100", &["60"])),
            Ok(())
        );
        assert!(
            check_payment(payment(PaymentStatus::Applied, "100", &["60"]))
                .unwrap_err()
                .contains("applied in full")
        );
        assert!(
            check_payment(payment(PaymentStatus::Unapplied, "100", &["60", "41"]))
                .unwrap_err()
                .contains("exceed")
        );
        assert!(
            check_payment(payment(PaymentStatus::InProcess, "0", &[]))
                .unwrap_err()
                .contains("must be positive")
        );
        assert!(
            check_payment(payment(PaymentStatus::Unapplied, "10", &["-1"]))
                .unwrap_err()
                .contains("non-positive")
        );
    }

    #[test]
    fn amounts_beyond_a_thousand_trillion_and_absurd_rates_are_refused() {
        assert_eq!(MAX_AMOUNT, Decimal::from(1_000_000_000_000_000_i64));
        let mut e = item(ItemType::Invoice, "10");
        e.open_amount = MAX_AMOUNT;
        e.original_amount = MAX_AMOUNT;
        assert!(check_item(e).unwrap_err().contains("beyond"));
        let rate = |r: &str| {
            validate(&InputEvent::FxRate(crate::model::FxRate {
                rate_type: "CRRNT".into(),
                from_currency: "EUR".into(),
                to_currency: "USD".into(),
                effective_date: "2026-01-01".parse().unwrap(),
                rate: r.parse().unwrap(),
            }))
            .map_err(|e| e.to_string())
        };
        assert_eq!(rate("1.1"), Ok(()));
        assert!(rate("0").unwrap_err().contains("must be positive"));
        assert!(rate("1000000000").unwrap_err().contains("outside"));
    }

    #[test]
    fn commands_and_conversations_are_checked_for_their_shape() {
        let key = crate::model::CustomerKey::new("SHARE", "C1");
        let command = |issued_by: &str, ids: &[&str]| {
            validate(&InputEvent::Command(crate::model::ActionCommand::new(
                "C1",
                &key,
                issued_by,
                crate::model::CommandKind::Cancel,
                ids,
            )))
            .map_err(|e| e.to_string())
        };
        assert_eq!(command("JDOE", &["A-1", "A-2"]), Ok(()));
        assert_eq!(
            command("JDOE", &["A-1", "A-1"]),
            Err("action A-1 is named twice".into())
        );
        assert_eq!(
            command(" ", &["A-1"]),
            Err("field `issued_by` is empty".into())
        );
        let conversation: crate::model::ConversationChange = serde_json::from_value(
            serde_json::json!({"set_id": "SHARE", "customer_id": "C1", "conversation_id": "CV-1",
                "business_unit": "US001", "user": "JDOE", "conversation_date": "2026-07-01",
                "call_actions": [{"id": "1-2", "kind": "ALERT"}]}),
        )
        .unwrap();
        let check = |c: &crate::model::ConversationChange| {
            validate(&InputEvent::Conversation(c.clone())).map_err(|e| e.to_string())
        };
        assert_eq!(
            check(&conversation),
            Err("call action id `1-2`: letters, digits and `_` only".into())
        );
        let mut dispute = conversation.clone();
        dispute.call_actions[0].id = "1".into();
        dispute.call_actions[0].kind = crate::model::CallActionKind::PartialDispute;
        assert_eq!(
            check(&dispute),
            Err("call action 1: a PARTIAL_DISPUTE names its item".into())
        );
        let mut fine = conversation;
        fine.call_actions[0].id = "1".into();
        assert_eq!(check(&fine), Ok(()));
    }

    #[test]
    fn free_text_and_arrays_are_bounded() {
        let mut e = item(ItemType::Invoice, "10");
        e.entry_reason = Some("x".repeat(MAX_NAME_BYTES));
        assert_eq!(check_item(e.clone()), Ok(()));
        e.entry_reason = Some("x".repeat(1 << 20));
        assert_eq!(
            check_item(e).unwrap_err(),
            "field `entry_reason` is 1048576 bytes long: at most 255"
        );
        let mut p = payment(PaymentStatus::Unapplied, "100000", &[]);
        p.applications = vec![
            PaymentApplication {
                item_id: "I1".into(),
                item_line: 0,
                amount: "1".parse().unwrap(),
            };
            10_001
        ];
        assert_eq!(
            check_payment(p).unwrap_err(),
            "field `applications` has 10001 entries: at most 10000"
        );
        let mut conversation: crate::model::ConversationChange = serde_json::from_value(
            serde_json::json!({"set_id": "SHARE", "customer_id": "C1", "conversation_id": "CV-1",
                "business_unit": "US001", "user": "JDOE", "conversation_date": "2026-07-01"}),
        )
        .unwrap();
        conversation.description = Some("d".repeat(MAX_TEXT_BYTES + 1));
        assert_eq!(
            validate(&InputEvent::Conversation(conversation))
                .unwrap_err()
                .to_string(),
            "field `description` is 4001 bytes long: at most 4000"
        );
    }

    #[test]
    fn the_key_must_name_the_events_customer() {
        let event = InputEvent::Item(item(ItemType::Invoice, "1"));
        assert_eq!(validate_key(&event, Some("SHARE|C1")), Ok(()));
        assert_eq!(
            validate_key(&event, Some("SHARE|C2"))
                .unwrap_err()
                .to_string(),
            "the key `SHARE|C2` does not match the event's key `SHARE|C1`"
        );
        assert!(validate_key(&event, None).is_err());
    }
}
