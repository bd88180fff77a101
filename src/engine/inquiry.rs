//! The conversation searches and the promise inquiry of the manual, and the disputed-item
//! report, over customers' states. Pure functions: the HTTP API feeds them the states.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::conversations::{deadline, judgments};
use super::state::CustomerState;
use crate::model::{ConversationChange, CustomerKey, PromiseStatus};
use crate::rules::RuleSet;

/// Which conversations a search wants.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Search {
    /// Follow-ups whose Done box is not checked.
    FollowUps,
    /// Regular conversations whose review date has passed without a review.
    ReviewNeeded,
    /// Promise-date conversations whose promise date has come without a review.
    PromiseReviewNeeded,
    /// Broken promises whose review is not done.
    BrokenPromiseReviewNeeded,
    /// Conversations marked for a supervisor's review.
    SupervisorReviewNeeded,
}

/// A conversation found by a search, with its customer and what the promise is now.
#[derive(Debug, Clone, Serialize)]
pub struct Found<'a> {
    pub set_id: &'a str,
    pub customer_id: &'a str,
    pub promise_status: Option<PromiseStatus>,
    #[serde(flatten)]
    pub conversation: &'a ConversationChange,
}

pub fn search<'a>(
    customers: &'a [(CustomerKey, CustomerState)],
    rules: &RuleSet,
    search: Search,
    today: NaiveDate,
) -> Vec<Found<'a>> {
    select(customers, rules, today, |c, status| match search {
        Search::FollowUps => c.follow_up.as_ref().is_some_and(|f| !f.done),
        Search::ReviewNeeded => {
            c.promise.is_none() && !c.reviewed && c.review_date.is_some_and(|d| d < today)
        }
        Search::PromiseReviewNeeded => c
            .promise
            .as_ref()
            .is_some_and(|p| !p.reviewed && p.date <= today),
        Search::BrokenPromiseReviewNeeded => {
            status == Some(PromiseStatus::Broken)
                && c.promise.as_ref().is_some_and(|p| !p.broken_reviewed)
        }
        Search::SupervisorReviewNeeded => c.supervisor_review,
    })
}

/// Conversations with `keyword` (case-insensitive).
pub fn by_keyword<'a>(
    customers: &'a [(CustomerKey, CustomerState)],
    rules: &RuleSet,
    keyword: &str,
    today: NaiveDate,
) -> Vec<Found<'a>> {
    select(customers, rules, today, |c, _| {
        c.keywords.iter().any(|k| k.eq_ignore_ascii_case(keyword))
    })
}

fn select<'a>(
    customers: &'a [(CustomerKey, CustomerState)],
    rules: &RuleSet,
    today: NaiveDate,
    wanted: impl Fn(&ConversationChange, Option<PromiseStatus>) -> bool,
) -> Vec<Found<'a>> {
    let mut out = Vec::new();
    for (key, state) in customers {
        let judged = judgments(rules, state, today);
        for c in state.conversations.values() {
            let status = judged.get(&c.conversation_id).map(|(s, _)| *s);
            if wanted(c, status) {
                out.push(Found {
                    set_id: &key.set_id,
                    customer_id: &key.customer_id,
                    promise_status: status,
                    conversation: c,
                });
            }
        }
    }
    out
}

/// One promise in the inquiry's "show all".
#[derive(Debug, Clone, Serialize)]
pub struct PromiseRow<'a> {
    pub set_id: &'a str,
    pub customer_id: &'a str,
    pub business_unit: &'a str,
    pub conversation_id: &'a str,
    pub promise_date: NaiveDate,
    pub deadline: NaiveDate,
    pub status: PromiseStatus,
    pub amount: Decimal,
    pub paid: Decimal,
    pub currency: &'a str,
    pub collector: Option<&'a str>,
    pub supervisor: Option<&'a str>,
}

/// Every promise, by customer and date.
pub fn promises<'a>(
    customers: &'a [(CustomerKey, CustomerState)],
    rules: &'a RuleSet,
    today: NaiveDate,
) -> Vec<PromiseRow<'a>> {
    let mut out = Vec::new();
    for (key, state) in customers {
        let collector = state.customer.as_ref().and_then(|c| c.collector.as_deref());
        let judged = judgments(rules, state, today);
        for c in state.conversations.values() {
            let (Some(promise), Some(&(status, paid)), Some(deadline)) = (
                &c.promise,
                judged.get(&c.conversation_id),
                deadline(rules, c),
            ) else {
                continue;
            };
            out.push(PromiseRow {
                set_id: &key.set_id,
                customer_id: &key.customer_id,
                business_unit: &c.business_unit,
                conversation_id: &c.conversation_id,
                promise_date: promise.date,
                deadline,
                status,
                amount: promise.amount,
                paid,
                currency: &promise.currency,
                collector,
                supervisor: c.supervisor.as_deref().or_else(|| {
                    collector
                        .and_then(|o| rules.owner(o))
                        .and_then(|o| o.supervisor.as_deref())
                }),
            });
        }
    }
    out
}

/// How the inquiry groups promises.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum GroupBy {
    Customer,
    BusinessUnit,
    Collector,
    Supervisor,
}

/// Counts and amounts of one group's promises, per currency.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PromiseGroup {
    pub group: String,
    pub currency: String,
    pub broken: u32,
    pub broken_amount: Decimal,
    pub kept: u32,
    pub kept_amount: Decimal,
    /// Open and partially kept promises (not yet judged final).
    pub open: u32,
    pub open_amount: Decimal,
}

pub fn grouped(rows: &[PromiseRow<'_>], by: GroupBy) -> Vec<PromiseGroup> {
    let mut groups: BTreeMap<(String, String), PromiseGroup> = BTreeMap::new();
    for row in rows {
        let group = match by {
            GroupBy::Customer => format!("{}|{}", row.set_id, row.customer_id),
            GroupBy::BusinessUnit => row.business_unit.to_string(),
            GroupBy::Collector => row.collector.unwrap_or("(none)").to_string(),
            GroupBy::Supervisor => row.supervisor.unwrap_or("(none)").to_string(),
        };
        let entry = groups
            .entry((group.clone(), row.currency.to_string()))
            .or_insert_with(|| PromiseGroup {
                group,
                currency: row.currency.to_string(),
                ..PromiseGroup::default()
            });
        let (count, amount) = match row.status {
            PromiseStatus::Broken => (&mut entry.broken, &mut entry.broken_amount),
            PromiseStatus::Kept => (&mut entry.kept, &mut entry.kept_amount),
            PromiseStatus::Open | PromiseStatus::PartiallyKept => {
                (&mut entry.open, &mut entry.open_amount)
            }
        };
        *count += 1;
        *amount += row.amount;
    }
    groups.into_values().collect()
}

/// An item in dispute: by a customer call (partial dispute) or as the ERP says.
#[derive(Debug, Clone, Serialize)]
pub struct DisputedItem<'a> {
    pub set_id: &'a str,
    pub customer_id: &'a str,
    pub item_id: &'a str,
    pub item_line: i32,
    pub business_unit: &'a str,
    pub currency: &'a str,
    pub open_amount: Decimal,
    pub disputed_amount: Decimal,
    /// `CALL` (a partial dispute of a customer call) or `ERP`.
    pub source: &'static str,
    pub conversation_id: Option<&'a str>,
    pub since: Option<NaiveDate>,
}

/// The disputed-invoice report: every open item with an amount in dispute.
pub fn disputed_items(customers: &[(CustomerKey, CustomerState)]) -> Vec<DisputedItem<'_>> {
    let mut out = Vec::new();
    for (key, state) in customers {
        for (item_key, item) in &state.items {
            if item.disputed_amount.is_zero() {
                continue;
            }
            let dispute = state.disputes.get(item_key);
            out.push(DisputedItem {
                set_id: &key.set_id,
                customer_id: &key.customer_id,
                item_id: &item.item_id,
                item_line: item.item_line,
                business_unit: &item.business_unit,
                currency: &item.currency,
                open_amount: item.open_amount,
                disputed_amount: item.disputed_amount,
                source: if dispute.is_some() { "CALL" } else { "ERP" },
                conversation_id: dispute.map(|d| d.conversation_id.as_str()),
                since: dispute.map(|d| d.since),
            });
        }
    }
    out
}
