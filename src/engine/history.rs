//! What leaves a customer's hot state: closed actions and finished conversations, once they
//! are older than the history horizon (`options.history_after_days`) and nothing still depends
//! on them. They go to the customer's history (kept, not decided on), so a customer's hot
//! state stays bounded however long it lives.

use chrono::NaiveDate;

use super::conversations::deadline;
use super::state::{Action, CustomerState, PromiseState};
use crate::model::ConversationChange;
use crate::rules::RuleSet;

/// A conversation that left the hot state, with what marks its call actions as carried out
/// (so that saving it again later carries none of them out a second time).
#[derive(Debug, Clone, PartialEq)]
pub struct RetiredConversation {
    pub id: String,
    pub conversation: Option<ConversationChange>,
    pub promise: Option<PromiseState>,
    pub calls_done: Vec<String>,
}

#[derive(Debug, Default, PartialEq)]
pub struct Retired {
    pub actions: Vec<Action>,
    pub conversations: Vec<RetiredConversation>,
}

impl Retired {
    pub fn is_empty(&self) -> bool {
        self.actions.is_empty() && self.conversations.is_empty()
    }
}

/// Takes out of `state` what is past the horizon on `today`:
/// - a conversation saved before the horizon whose promise (if any) had its deadline before
///   it, with no follow-up to do, no call action waiting for an answer, no dispute of its own in
///   force and no open action or active violation that names it;
/// - a closed action closed before the horizon, unless a letter waits for it or it is the
///   follow-up of a conversation still held (it would be opened again).
pub fn retire(state: &mut CustomerState, rules: &RuleSet, today: NaiveDate) -> Retired {
    let horizon = today - chrono::Duration::days(i64::from(rules.options.history_after_days));
    // A command older than the horizon is not redelivered any more (input retention is far
    // shorter for commands in practice): its id may go.
    state.commands_seen.retain(|_, seen| *seen >= horizon);
    let mut retired = Retired::default();
    let ids: Vec<String> = state
        .conversations
        .keys()
        .chain(state.promises.keys())
        .cloned()
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    for id in ids {
        if conversation_is_done(state, rules, &id, horizon) {
            let prefix = format!("{id}/");
            let calls_done: Vec<String> = state
                .calls_done
                .iter()
                .filter(|c| c.starts_with(&prefix))
                .cloned()
                .collect();
            state.calls_done.retain(|c| !c.starts_with(&prefix));
            retired.conversations.push(RetiredConversation {
                conversation: state.conversations.remove(&id),
                promise: state.promises.remove(&id),
                calls_done,
                id,
            });
        }
    }
    let done: Vec<String> = state
        .actions
        .values()
        .filter(|a| !a.status.is_open() && a.closed_on.is_some_and(|d| d < horizon))
        .filter(|a| !state.letters.iter().any(|l| l.action_id == a.id))
        .filter(|a| {
            !state
                .conversations
                .keys()
                .any(|c| a.id.contains(c.as_str()))
        })
        .map(|a| a.id.clone())
        .collect();
    for id in done {
        if let Some(action) = state.actions.remove(&id) {
            retired.actions.push(action);
        }
    }
    retired
}

fn conversation_is_done(
    state: &CustomerState,
    rules: &RuleSet,
    id: &str,
    horizon: NaiveDate,
) -> bool {
    let Some(conversation) = state.conversations.get(id) else {
        // A deleted conversation's promise status alone: kept until its actions are gone.
        return !names(state, id);
    };
    let promise_done = match (conversation.promise.as_ref(), deadline(rules, conversation)) {
        (None, _) => true,
        (Some(_), Some(deadline)) => deadline < horizon,
        (Some(_), None) => false,
    };
    conversation.conversation_date < horizon
        && promise_done
        && conversation.follow_up.as_ref().is_none_or(|f| f.done)
        && !state
            .calls_asked
            .iter()
            .any(|c| c.starts_with(&format!("{id}/")))
        && !state.disputes.values().any(|d| d.conversation_id == id)
        && !names(state, id)
}

/// Whether an open action or an active violation names the conversation (their ids are made
/// of it). A false match only keeps the conversation longer.
fn names(state: &CustomerState, id: &str) -> bool {
    state
        .actions
        .values()
        .any(|a| a.status.is_open() && (a.id.contains(id) || a.violation_id.contains(id)))
        || state.violations.keys().any(|slot| slot.contains(id))
}
