//! Conversations, promises to pay and customer calls. A conversation is saved whole; condmon
//! keeps it, turns its call actions into what they name (once each), keeps the partial
//! disputes of its calls in the ledger, and judges its promise continuously: kept the moment
//! payments after it cover it, broken by timer when its date plus the grace period passes.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use rust_decimal::Decimal;

use super::plans::action_event;
use super::state::{Action, CustomerState, Dispute, PaymentNote, PromiseState, item_key};
use crate::model::{
    ActionEventKind, ActionStatus, CallAction, CallActionKind, ConversationChange, CustomerKey,
    DunningDecision, DunningDecisionEvent, OutputEvent, PaymentChange, PaymentStatus,
    PromiseStatus, PromiseStatusEvent, RequestEvent, RequestKind, event_id,
};
use crate::rules::RuleSet;

/// Days after its deadline from which a promise is no longer judged again (a late, back-dated
/// payment can still keep it until then). Payment notes are kept longer than this.
const FINAL_AFTER_DAYS: i64 = 90;

/// The condition code and rule id of a broken promise's plan.
pub const BROKEN_PROMISE: &str = "BRKP";
pub const BROKEN_PROMISE_RULE: &str = "BROKEN-PROMISE";

/// The violation slot of a conversation's broken promise.
pub fn promise_slot(conversation_id: &str) -> String {
    format!("{BROKEN_PROMISE}@{conversation_id}")
}

/// Takes in a conversation as saved: stores it (or forgets it, deleted), carries out its call
/// actions not carried out yet, and brings the call disputes in line.
pub fn take_conversation(
    state: &mut CustomerState,
    key: &CustomerKey,
    conversation: ConversationChange,
    today: NaiveDate,
) -> Vec<OutputEvent> {
    let mut out = Vec::new();
    let id = conversation.conversation_id.clone();
    // A promise taken back keeps its count of changes: a new one's events get new ids.
    if (conversation.deleted || conversation.promise.is_none())
        && let Some(p) = state.promises.get_mut(&id)
    {
        p.status = None;
    }
    if conversation.deleted {
        state.conversations.remove(&id);
        end_follow_up(state, key, &id, today, &mut out);
    } else {
        // Saved again: a question asked about its call actions may have its answer now.
        let prefix = format!("{id}/");
        state.calls_asked.retain(|c| !c.starts_with(&prefix));
        state.conversations.insert(id, conversation);
    }
    carry_out_pending(state, key, today, &mut out);
    align_disputes(state, today);
    out
}

/// What became of a call action.
enum Carried {
    Done,
    /// A question was asked (a decision event): looked at again when the call is saved again.
    Asked,
    /// Something it needs has not arrived (the customer master): looked at again on every
    /// evaluation of the customer.
    Waiting,
}

/// Carries out the call actions of every conversation not carried out yet, once each.
fn carry_out_pending(
    state: &mut CustomerState,
    key: &CustomerKey,
    today: NaiveDate,
    out: &mut Vec<OutputEvent>,
) {
    let pending: Vec<(String, CallAction)> = state
        .conversations
        .values()
        .flat_map(|c| c.call_actions.iter().map(move |call| (c, call)))
        .filter(|(c, call)| {
            let mark = format!("{}/{}", c.conversation_id, call.id);
            !state.calls_done.contains(&mark) && !state.calls_asked.contains(&mark)
        })
        .map(|(c, call)| (c.conversation_id.clone(), call.clone()))
        .collect();
    for (id, call) in pending {
        let conversation = state.conversations[&id].clone();
        let mark = format!("{id}/{}", call.id);
        match carry_out(state, key, &conversation, &call, today, out) {
            Carried::Done => {
                state.calls_done.insert(mark);
            }
            Carried::Asked => {
                state.calls_asked.insert(mark);
            }
            Carried::Waiting => {}
        }
    }
}

/// Carries out one call action.
fn carry_out(
    state: &mut CustomerState,
    key: &CustomerKey,
    conversation: &ConversationChange,
    call: &CallAction,
    today: NaiveDate,
    out: &mut Vec<OutputEvent>,
) -> Carried {
    let request = |kind: RequestKind, amount: Option<Decimal>| RequestEvent {
        event_id: event_id(&[
            "call-request",
            &key.set_id,
            &key.customer_id,
            &conversation.conversation_id,
            &call.id,
        ]),
        kind,
        set_id: key.set_id.clone(),
        customer_id: key.customer_id.clone(),
        business_unit: conversation.business_unit.clone(),
        action_id: format!("{}/{}", conversation.conversation_id, call.id),
        code: call.site.clone(),
        item_id: call.item.as_ref().map(|i| i.item_id.clone()),
        item_line: call.item.as_ref().map(|i| i.item_line),
        amount,
        currency: call
            .item
            .as_ref()
            .and_then(|i| state.items.get(&item_key(&i.item_id, i.item_line)))
            .map(|i| i.currency.clone()),
        requested_by: conversation.user.clone(),
        business_date: today,
    };
    match call.kind {
        CallActionKind::Alert
        | CallActionKind::Call
        | CallActionKind::CollectionAction
        | CallActionKind::CollectionFollowUp => {
            let code = call.kind.action_code().expect("an action kind");
            let action = call_action(state, conversation, call, code, today);
            out.push(action_event(
                key,
                &action,
                ActionEventKind::Created,
                None,
                today,
            ));
            state.add_action(action);
            Carried::Done
        }
        CallActionKind::CreditMemo => {
            out.push(OutputEvent::Request(request(
                RequestKind::CreditMemo,
                call.amount,
            )));
            Carried::Done
        }
        CallActionKind::PartialDispute => Carried::Done,
        CallActionKind::IncludeInDunning => {
            state.dunning.customer_excluded = false;
            // Until the ERP updates the profile (the request below), the call decides.
            state.dunning.included_by_call = state
                .customer
                .as_ref()
                .is_some_and(|c| c.exclude_from_dunning);
            out.push(decision(
                key,
                conversation,
                call,
                DunningDecision::CustomerIncluded,
                "the customer is back on dunning".into(),
                today,
            ));
            out.push(OutputEvent::Request(request(
                RequestKind::IncludeInDunning,
                None,
            )));
            Carried::Done
        }
        // Which sites have profiles is the master's: without it a site cannot be judged.
        CallActionKind::ExcludeFromDunning if call.site.is_some() && state.customer.is_none() => {
            Carried::Waiting
        }
        CallActionKind::ExcludeFromDunning => {
            let (verdict, message) = exclusion(state, call);
            match verdict {
                DunningDecision::CustomerExcluded | DunningDecision::CustomerProfileUpdated => {
                    state.dunning.customer_excluded = true;
                    state.dunning.included_by_call = false;
                }
                DunningDecision::SiteExcluded => {
                    let site = call.site.clone().expect("a site decision has a site");
                    state.dunning.sites_excluded.insert(site);
                }
                _ => {}
            }
            let changed = matches!(
                verdict,
                DunningDecision::CustomerExcluded
                    | DunningDecision::CustomerProfileUpdated
                    | DunningDecision::SiteExcluded
            );
            out.push(decision(key, conversation, call, verdict, message, today));
            if changed {
                out.push(OutputEvent::Request(request(
                    RequestKind::ExcludeFromDunning,
                    None,
                )));
            }
            if verdict == DunningDecision::DecisionNeeded {
                Carried::Asked
            } else {
                Carried::Done
            }
        }
    }
}

/// The customer-calls rule for excluding from dunning.
fn exclusion(state: &CustomerState, call: &CallAction) -> (DunningDecision, String) {
    let Some(site) = &call.site else {
        return (
            DunningDecision::CustomerExcluded,
            "the customer is excluded from dunning".into(),
        );
    };
    let sites = state
        .customer
        .as_ref()
        .map(|c| c.sites.as_slice())
        .unwrap_or_default();
    let own = sites
        .iter()
        .any(|s| &s.site_id == site && s.profile_id.is_some());
    let another = sites
        .iter()
        .any(|s| &s.site_id != site && s.profile_id.is_some());
    if own {
        return (
            DunningDecision::SiteExcluded,
            format!("site {site} is excluded from dunning (its own profile)"),
        );
    }
    if !another {
        return (
            DunningDecision::CustomerExcluded,
            format!(
                "site {site} has no profile of its own and uses the customer's: the customer is excluded from dunning"
            ),
        );
    }
    match call.update_customer_profile {
        Some(true) => (
            DunningDecision::CustomerProfileUpdated,
            format!(
                "no site level profile exists for site {site}: the customer-level profile was updated and the customer is excluded from dunning"
            ),
        ),
        Some(false) => (
            DunningDecision::Rejected,
            format!(
                "no site level profile exists for site {site}: the customer-level profile was not updated and nothing is excluded; define a profile for the site to exclude it"
            ),
        ),
        None => (
            DunningDecision::DecisionNeeded,
            format!(
                "no site level profile exists for site {site}: update the customer-level profile? Save the call again with update_customer_profile true or false; nothing is excluded meanwhile"
            ),
        ),
    }
}

fn decision(
    key: &CustomerKey,
    conversation: &ConversationChange,
    call: &CallAction,
    decision: DunningDecision,
    message: String,
    today: NaiveDate,
) -> OutputEvent {
    let name = serde_json::to_string(&decision).expect("enum serializes");
    OutputEvent::DunningDecision(DunningDecisionEvent {
        event_id: event_id(&[
            "dunning",
            &key.set_id,
            &key.customer_id,
            &conversation.conversation_id,
            &call.id,
            &name,
        ]),
        set_id: key.set_id.clone(),
        customer_id: key.customer_id.clone(),
        conversation_id: conversation.conversation_id.clone(),
        call_action_id: call.id.clone(),
        site: call.site.clone(),
        decision,
        message,
        business_date: today,
    })
}

/// The action a call action puts on the owner's list (on its date).
fn call_action(
    state: &CustomerState,
    conversation: &ConversationChange,
    call: &CallAction,
    code: &str,
    today: NaiveDate,
) -> Action {
    let date = call.date.unwrap_or(today).max(today);
    let item_key = call
        .item
        .as_ref()
        .map(|i| item_key(&i.item_id, i.item_line));
    let owner = call
        .owner
        .clone()
        .or_else(|| state.customer.as_ref().and_then(|c| c.collector.clone()));
    new_action(
        format!("CALL-{}-{}", conversation.conversation_id, call.id),
        conversation,
        code,
        owner,
        item_key,
        date,
        today,
    )
}

/// A hand-made action (no violation) for `conversation`, Future until `date`.
fn new_action(
    id: String,
    conversation: &ConversationChange,
    code: &str,
    owner: Option<String>,
    item_key: Option<String>,
    date: NaiveDate,
    today: NaiveDate,
) -> Action {
    let mut action = Action::by_hand(id, code, &conversation.business_unit, date, today);
    action.owner = owner;
    action.item_key = item_key;
    action.created_by = Some(conversation.user.clone());
    action
}

/// The call disputes as the conversations say now: placed, changed, or ended (amount zero, or
/// the call action deleted), each reflected in the item's disputed amount and the totals. Run
/// on every reconcile too: a dispute saved before its item arrived is placed when it does.
pub fn align_disputes(state: &mut CustomerState, today: NaiveDate) {
    let mut wanted = std::collections::BTreeMap::new();
    for conversation in state.conversations.values() {
        for call in &conversation.call_actions {
            if call.kind != CallActionKind::PartialDispute {
                continue;
            }
            let (Some(item), Some(amount)) = (&call.item, call.amount) else {
                continue;
            };
            let key = item_key(&item.item_id, item.item_line);
            if amount > Decimal::ZERO && state.items.contains_key(&key) {
                wanted.insert(
                    key,
                    (
                        amount,
                        conversation.conversation_id.clone(),
                        call.id.clone(),
                    ),
                );
            }
        }
    }
    let ended: Vec<String> = state
        .disputes
        .keys()
        .filter(|k| !wanted.contains_key(*k))
        .cloned()
        .collect();
    for key in ended {
        let dispute = state.disputes.remove(&key).expect("listed above");
        state.set_item_disputed(&key, dispute.erp_amount);
    }
    for (key, (amount, conversation_id, call_action_id)) in wanted {
        // Unchanged: the item already carries it (an ERP update re-applies it, see `apply`).
        let unchanged = state.disputes.get(&key).is_some_and(|d| {
            d.amount == amount
                && d.conversation_id == conversation_id
                && d.call_action_id == call_action_id
        });
        if unchanged {
            continue;
        }
        let erp_amount = match state.disputes.get(&key) {
            Some(d) => d.erp_amount,
            None => state.items[&key].disputed_amount,
        };
        let since = state.disputes.get(&key).map_or(today, |d| d.since);
        state.disputes.insert(
            key.clone(),
            Dispute {
                amount,
                conversation_id,
                call_action_id,
                since,
                erp_amount,
            },
        );
        state.set_item_disputed(&key, amount);
    }
}

/// Notes a payment for the promises: posted (applied or unapplied) payments count, cancelled
/// or returned (NSF) ones no longer do. Notes older than a year are dropped.
pub fn note_payment(state: &mut CustomerState, payment: &PaymentChange, today: NaiveDate) {
    let counts = matches!(
        payment.status,
        PaymentStatus::Applied | PaymentStatus::Unapplied
    );
    if counts {
        state.payment_notes.insert(
            payment.payment_id.clone(),
            PaymentNote {
                date: payment.payment_date,
                currency: payment.currency.clone(),
                amount: payment.amount,
                applications: payment
                    .applications
                    .iter()
                    .map(|a| (item_key(&a.item_id, a.item_line), a.amount))
                    .collect(),
            },
        );
    } else {
        state.payment_notes.remove(&payment.payment_id);
    }
    let horizon = today - chrono::Duration::days(366);
    state.payment_notes.retain(|_, note| note.date >= horizon);
}

/// What the customer paid towards each promise by its deadline. A payment is money once: it
/// goes to the customer's promises in the order they fall due (promise date, then
/// conversation), each taking what it still needs. A payment counts for a promise when it is
/// in the promise's currency and dated from the conversation to the deadline — all of it for
/// a promise on the account, its applications to the promised items otherwise.
fn allocate(state: &CustomerState, rules: &RuleSet) -> BTreeMap<String, Decimal> {
    let mut promises: Vec<(&ConversationChange, &crate::model::Promise, NaiveDate)> = state
        .conversations
        .values()
        .filter_map(|c| Some((c, c.promise.as_ref()?, deadline(rules, c)?)))
        .collect();
    promises
        .sort_by(|a, b| (a.1.date, &a.0.conversation_id).cmp(&(b.1.date, &b.0.conversation_id)));
    // What is left of each payment, and of each of its applications.
    type Left = (Decimal, Vec<(String, Decimal)>);
    let mut left: BTreeMap<&str, Left> = state
        .payment_notes
        .iter()
        .map(|(id, n)| (id.as_str(), (n.amount, n.applications.clone())))
        .collect();
    let mut notes: Vec<(&String, &PaymentNote)> = state.payment_notes.iter().collect();
    notes.sort_by_key(|(id, n)| (n.date, *id));
    let mut paid = BTreeMap::new();
    for (conversation, promise, deadline) in promises {
        let promised: Vec<String> = promise
            .items
            .iter()
            .map(|i| item_key(&i.item_id, i.item_line))
            .collect();
        let mut needed = promise.amount;
        for (id, note) in &notes {
            if needed <= Decimal::ZERO {
                break;
            }
            let counts = note.currency == promise.currency
                && note.date >= conversation.conversation_date
                && note.date <= deadline;
            if !counts {
                continue;
            }
            let (total, applications) = left.get_mut(id.as_str()).expect("every note");
            if promised.is_empty() {
                let take = needed.min(*total);
                *total -= take;
                needed -= take;
                continue;
            }
            for (item, amount) in applications.iter_mut() {
                if promised.contains(item) {
                    let take = needed.min(*amount).min(*total);
                    *amount -= take;
                    *total -= take;
                    needed -= take;
                }
            }
        }
        paid.insert(
            conversation.conversation_id.clone(),
            promise.amount - needed,
        );
    }
    paid
}

/// The last day a payment keeps the promise: its date plus the grace business days.
pub fn deadline(rules: &RuleSet, conversation: &ConversationChange) -> Option<NaiveDate> {
    let promise = conversation.promise.as_ref()?;
    Some(
        rules
            .calendar(&conversation.business_unit)
            .add_business_days(promise.date, rules.options.promise_grace_days as i32),
    )
}

/// What each promise (by conversation id) is on `today`, and what has been paid towards it
/// by its deadline. The payments are allocated once for all of them.
pub fn judgments(
    rules: &RuleSet,
    state: &CustomerState,
    today: NaiveDate,
) -> BTreeMap<String, (PromiseStatus, Decimal)> {
    let paid = allocate(state, rules);
    let mut out = BTreeMap::new();
    for conversation in state.conversations.values() {
        let (Some(promise), Some(deadline)) =
            (conversation.promise.as_ref(), deadline(rules, conversation))
        else {
            continue;
        };
        let id = &conversation.conversation_id;
        // Long after its deadline a promise's judgment is final: the payments it was judged
        // on are no longer all kept.
        if today > deadline + chrono::Duration::days(FINAL_AFTER_DAYS)
            && let Some(PromiseState {
                status: Some(status),
                paid,
                ..
            }) = state.promises.get(id)
        {
            out.insert(id.clone(), (*status, *paid));
            continue;
        }
        let paid = paid.get(id).copied().unwrap_or_default();
        // Not covered by the deadline is broken, partly paid or not: what was paid is reported.
        let status = if paid >= promise.amount {
            PromiseStatus::Kept
        } else if today > deadline {
            PromiseStatus::Broken
        } else if paid > Decimal::ZERO {
            PromiseStatus::PartiallyKept
        } else {
            PromiseStatus::Open
        };
        out.insert(id.clone(), (status, paid));
    }
    out
}

/// Judges every promise and reports each change; keeps promise follow-up actions on their
/// owners' lists while not done.
pub fn review(
    state: &mut CustomerState,
    key: &CustomerKey,
    rules: &RuleSet,
    today: NaiveDate,
    out: &mut Vec<OutputEvent>,
) {
    carry_out_pending(state, key, today, out);
    let judged = judgments(rules, state, today);
    let ids: Vec<String> = state.conversations.keys().cloned().collect();
    for id in ids {
        let conversation = state.conversations[&id].clone();
        follow_up(state, key, &conversation, today, out);
        let Some(&(status, paid)) = judged.get(&id) else {
            continue;
        };
        let collector = state.customer.as_ref().and_then(|c| c.collector.clone());
        let entry = state.promises.entry(id.clone()).or_default();
        entry.paid = paid;
        if entry.status != Some(status) {
            let previous = entry.status;
            entry.status = Some(status);
            entry.changes += 1;
            let promise = conversation.promise.as_ref().expect("judged");
            out.push(OutputEvent::PromiseStatus(PromiseStatusEvent {
                event_id: event_id(&[
                    "promise",
                    &key.set_id,
                    &key.customer_id,
                    &id,
                    &entry.changes.to_string(),
                    status.as_str(),
                ]),
                set_id: key.set_id.clone(),
                customer_id: key.customer_id.clone(),
                business_unit: conversation.business_unit.clone(),
                conversation_id: id.clone(),
                status,
                previous_status: previous,
                promise_date: promise.date,
                deadline: deadline(rules, &conversation).expect("a promise"),
                amount: promise.amount,
                paid,
                currency: promise.currency.clone(),
                items: promise.items.clone(),
                supervisor: conversation.supervisor.clone().or_else(|| {
                    collector
                        .as_deref()
                        .and_then(|c| rules.owner(c))
                        .and_then(|o| o.supervisor.clone())
                }),
                collector,
                business_date: today,
            }));
        }
    }
}

/// A promise-date conversation whose follow-up is not done has an action on the follow-up
/// owner's list from the follow-up date; done, the action completes.
fn follow_up(
    state: &mut CustomerState,
    key: &CustomerKey,
    conversation: &ConversationChange,
    today: NaiveDate,
    out: &mut Vec<OutputEvent>,
) {
    let Some(follow) = &conversation.follow_up else {
        return end_follow_up(state, key, &conversation.conversation_id, today, out);
    };
    let id = follow_up_id(&conversation.conversation_id);
    if follow.done || conversation.promise.is_none() {
        return end_follow_up(state, key, &conversation.conversation_id, today, out);
    }
    if state.actions.get(&id).is_some_and(|a| a.status.is_open()) {
        return;
    }
    if state.actions.contains_key(&id) {
        // Closed by its owner: the follow-up is over even if the conversation still says not
        // done.
        return;
    }
    let action = new_action(
        id,
        conversation,
        follow.action_code.as_deref().unwrap_or("FLUP"),
        Some(follow.owner.clone()),
        None,
        follow.date.max(today),
        today,
    );
    out.push(action_event(
        key,
        &action,
        ActionEventKind::Created,
        None,
        today,
    ));
    state.add_action(action);
}

fn follow_up_id(conversation_id: &str) -> String {
    format!("PROMISE-{conversation_id}")
}

fn end_follow_up(
    state: &mut CustomerState,
    key: &CustomerKey,
    conversation_id: &str,
    today: NaiveDate,
    out: &mut Vec<OutputEvent>,
) {
    let id = follow_up_id(conversation_id);
    if let Some(action) = state.actions.get_mut(&id).filter(|a| a.status.is_open()) {
        let previous = action.status;
        action.status = ActionStatus::SystemComplete;
        action.closed_on = Some(today);
        action.result = Some("follow-up done".into());
        out.push(action_event(
            key,
            action,
            ActionEventKind::Completed,
            Some(previous),
            today,
        ));
    }
}

/// The broken promises whose review is not done: (conversation id, promised amount, paid,
/// currency, business unit).
pub fn broken_unreviewed<'s>(
    state: &'s CustomerState,
    rules: &RuleSet,
    today: NaiveDate,
) -> Vec<(&'s str, Decimal, Decimal, &'s str, &'s str)> {
    let judged = judgments(rules, state, today);
    state
        .conversations
        .values()
        .filter_map(|c| {
            let promise = c.promise.as_ref()?;
            let &(status, paid) = judged.get(&c.conversation_id)?;
            (status == PromiseStatus::Broken && !promise.broken_reviewed).then_some((
                c.conversation_id.as_str(),
                promise.amount,
                paid,
                promise.currency.as_str(),
                c.business_unit.as_str(),
            ))
        })
        .collect()
}

/// The next day time alone changes a promise: the day after the deadline of one not kept.
pub fn next_change(state: &CustomerState, rules: &RuleSet, today: NaiveDate) -> Option<NaiveDate> {
    let judged = judgments(rules, state, today);
    state
        .conversations
        .values()
        .filter(|c| {
            matches!(
                judged.get(&c.conversation_id),
                Some((PromiseStatus::Open | PromiseStatus::PartiallyKept, _))
            )
        })
        .filter_map(|c| deadline(rules, c)?.succ_opt())
        .filter(|d| *d > today)
        .min()
}
