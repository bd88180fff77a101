//! A customer's state over the stores, in records that change for different reasons: its
//! ledger and figures (one value, `ledger`), each action (`actions`, keyed by customer and
//! action id) and each conversation with its promise's status (`conversations`, keyed by
//! customer and conversation id). A decision reads the customer whole (the engine's
//! [`CustomerState`]); what it did not change is not written again (the batch writes only
//! values whose bytes changed). The ledger lists the customer's other records and its timers
//! ([`CustomerState::records`]), so reading and saving a customer takes point reads, not scans.

use std::collections::BTreeSet;

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use crate::engine::{Action, CustomerState, OwnRecords, PromiseState, TimerSet};
use crate::model::{ConversationChange, CustomerKey};
use crate::state::{StateError, Store, StoreName, Txn, customer_key, customer_prefix};

/// A conversation as last saved and its promise's status as last reported (either may be
/// absent: a deleted conversation keeps the status of its promise).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ConversationRecord {
    pub conversation: Option<ConversationChange>,
    pub promise: Option<PromiseState>,
    /// In the history store: the marks of its call actions carried out.
    #[serde(default)]
    pub calls_done: Vec<String>,
}

/// `value NUL customer-key`, the key of the index stores: the customers with a value (a
/// currency held, an owner with open actions) are one prefix.
pub fn index_key(value: &str, customer: &CustomerKey) -> Vec<u8> {
    let mut key = value.as_bytes().to_vec();
    key.push(0);
    key.extend_from_slice(customer.encode().as_bytes());
    key
}

/// Whether a key of an index store (`value NUL customer`) is an entry of one of `customers`:
/// the value is not checked for NUL bytes, so every NUL is a place the customer may start.
fn indexes_one_of(key: &[u8], customers: &BTreeSet<String>) -> bool {
    key.iter().enumerate().any(|(at, b)| {
        *b == 0 && std::str::from_utf8(&key[at + 1..]).is_ok_and(|c| customers.contains(c))
    })
}

/// The local key (in `checkpoint`, not logged) of the layout the derived stores were last
/// rebuilt in: one of an older layout (or none: a directory of before derived stores were
/// rebuilt) is rebuilt for every customer by the next restore, because the full pass that a
/// new layout makes (see `Operator::fingerprint`) writes entries that change no ledger, and
/// another instance may have made it while this directory was away.
pub(super) const DERIVED_LAYOUT_KEY: &[u8] = b"derived-layout";

/// Whether the derived stores of `partition` are of today's layout.
pub fn derived_current(store: &Store, partition: i32) -> Result<bool, StateError> {
    Ok(store
        .committed_value(partition, StoreName::Checkpoint, DERIVED_LAYOUT_KEY)?
        .is_some_and(|v| v == super::operator::DERIVED_LAYOUT))
}

/// Every customer of `partition` with a ledger or an action (encoded keys).
pub fn all_customers(store: &Store, partition: i32) -> Result<BTreeSet<String>, StateError> {
    let mut out = BTreeSet::new();
    for key in store.keys_where(partition, StoreName::Ledger, |_| true)? {
        out.extend(String::from_utf8(key).ok());
    }
    for key in store.keys_where(partition, StoreName::Actions, |_| true)? {
        out.extend(crate::state::split_customer_key(&key).map(|(c, _)| c.to_string()));
    }
    Ok(out)
}

/// The stores derived from the customers' own records and not logged: a restore rebuilds them
/// ([`rebuild_derived`]).
pub const DERIVED: [StoreName; 4] = [
    StoreName::Timers,
    StoreName::CurrencyIndex,
    StoreName::OwnerIndex,
    StoreName::ParentIndex,
];

/// Rebuilds what the stores derive from `customers` (encoded keys of customers whose records
/// a restore applied): their timers, as their ledgers list them, and their entries in the
/// currency, owner and parent indexes, as the operator keeps them. Their earlier entries are
/// found in one pass over each derived store. A ledger that lists no timers (written before
/// ledgers listed them) gets [`crate::timer::RESTORED`], due at once: its firing decides the
/// customer again and sets its timers. `timers-by-due` is the caller's to rebuild. Marks the
/// derived stores as of today's layout.
pub fn rebuild_derived(
    store: &Store,
    partition: i32,
    customers: &BTreeSet<String>,
) -> Result<(), StateError> {
    let mut writer = store.bulk_writer();
    for derived in DERIVED {
        let earlier = store.keys_where(partition, derived, |k| match derived {
            StoreName::Timers => {
                crate::timer::customer_of(k).is_some_and(|c| customers.contains(c))
            }
            _ => indexes_one_of(k, customers),
        })?;
        for key in earlier {
            writer.put(partition, derived, &key, None)?;
        }
    }
    let keys: Vec<&String> = customers.iter().collect();
    // Read in batches that are dropped, not committed: nothing is written through them, and
    // what they cache stays bounded.
    for chunk in keys.chunks(1000) {
        let mut txn = store.txn();
        for encoded in chunk {
            let customer = CustomerKey::decode(encoded).ok_or_else(|| StateError::Corrupt {
                store: StoreName::Ledger.as_str().into(),
                message: format!("undecodable customer key {encoded:?}"),
            })?;
            let entries = match derived_from_views(store, partition, &customer)? {
                Some(entries) => entries,
                None => match load_listed(&mut txn, partition, &customer)? {
                    Some((state, timers)) => DerivedEntries::of(&state, timers),
                    None => continue,
                },
            };
            let mut put = |derived: StoreName, key: Vec<u8>, value: Vec<u8>| {
                writer.put(partition, derived, &key, Some(&value))
            };
            for currency in &entries.currencies {
                put(
                    StoreName::CurrencyIndex,
                    index_key(currency, &customer),
                    vec![],
                )?;
            }
            for owner in &entries.owners {
                put(StoreName::OwnerIndex, index_key(owner, &customer), vec![])?;
            }
            for family in &entries.families {
                put(StoreName::ParentIndex, index_key(family, &customer), vec![])?;
            }
            for (name, due) in entries.timers {
                let (key, value) = crate::timer::stored(&customer, &name, due);
                put(StoreName::Timers, key, value)?;
            }
        }
    }
    writer.put(
        partition,
        StoreName::Checkpoint,
        DERIVED_LAYOUT_KEY,
        Some(super::operator::DERIVED_LAYOUT),
    )?;
    writer.finish().map(drop)
}

/// A customer's entries in the derived stores.
#[derive(Debug, Default, PartialEq)]
struct DerivedEntries {
    currencies: BTreeSet<String>,
    owners: BTreeSet<String>,
    families: BTreeSet<String>,
    timers: Vec<(String, NaiveDate)>,
}

impl DerivedEntries {
    /// As the operator keeps them for `state`; a ledger that lists no timers (written before
    /// ledgers listed them) gets [`crate::timer::RESTORED`], due at once.
    fn of(state: &CustomerState, timers: ListedTimers) -> Self {
        DerivedEntries {
            currencies: state.currencies().into_iter().map(String::from).collect(),
            owners: state.open_action_owners(),
            families: crate::engine::families(state),
            timers: timers.unwrap_or_else(|| {
                vec![(
                    crate::timer::RESTORED.to_string(),
                    crate::timer::restored_due(),
                )]
            }),
        }
    }
}

/// [`DerivedEntries`] from views of the customer's records that decode only what the derived
/// stores come from: of its ledger the parts [`CustomerState::currencies`] and
/// [`crate::engine::families`] read and the list of its records and timers, skipping its items,
/// payments, violations and the rest; of each action its status and owner; no conversation.
/// A rebuild decoded whole customers at about 46 µs each, more than applying their records.
/// `None` where the views cannot tell (no ledger, one that lists neither its records nor its
/// timers, a value they cannot read): the caller decodes the customer whole.
fn derived_from_views(
    store: &Store,
    partition: i32,
    customer: &CustomerKey,
) -> Result<Option<DerivedEntries>, StateError> {
    let key = customer.encode();
    let Some(bytes) = store.committed_value(partition, StoreName::Ledger, key.as_bytes())? else {
        return Ok(None);
    };
    let Ok(LedgerView { mut state }) = crate::state::value::decode::<LedgerView>(&bytes) else {
        return Ok(None);
    };
    let Some(OwnRecords {
        actions,
        timers: Some(timers),
        ..
    }) = state.records.take()
    else {
        return Ok(None);
    };
    let mut owners = BTreeSet::new();
    for id in actions {
        let at = customer_key(&key, &id);
        let Some(bytes) = store.committed_value(partition, StoreName::Actions, &at)? else {
            continue;
        };
        let Ok(action) = crate::state::value::decode::<ActionView>(&bytes) else {
            return Ok(None);
        };
        owners.extend(action.owner.filter(|_| action.status.is_open()));
    }
    let timers = timers.into_iter().map(|t| (t.name, t.due)).collect();
    Ok(Some(DerivedEntries {
        owners,
        ..DerivedEntries::of(&state, Some(timers))
    }))
}

/// The ledger's fields the derived stores come from, in a [`CustomerState`] whose other fields
/// keep their defaults. A field that [`CustomerState::currencies`] or
/// [`crate::engine::families`] comes to read must be decoded here too (the test
/// `views_give_what_whole_customers_give` compares them over the samples).
struct LedgerView {
    state: CustomerState,
}

impl<'de> Deserialize<'de> for LedgerView {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Fields;
        impl<'de> serde::de::Visitor<'de> for Fields {
            type Value = LedgerView;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a stored ledger")
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                seq: A,
            ) -> Result<LedgerView, A::Error> {
                use crate::state::value::{read_fields, skip_field};
                static NAMES: std::sync::LazyLock<&[&str]> =
                    std::sync::LazyLock::new(crate::state::value::field_names::<CustomerState>);
                let mut s = CustomerState::default();
                read_fields(seq, &NAMES, |name, seq| {
                    Ok(match name {
                        "customer" => seq.next_element()?.map(|v| s.customer = v),
                        "aging" => seq.next_element()?.map(|v| s.aging = v),
                        "history" => seq.next_element()?.map(|v| s.history = v),
                        "totals" => seq.next_element()?.map(|v| s.totals = v),
                        "stats" => seq.next_element()?.map(|v| s.stats = v),
                        "credit_agency" => seq.next_element()?.map(|v| s.credit_agency = v),
                        "children" => seq.next_element()?.map(|v| s.children = v),
                        "records" => seq.next_element()?.map(|v| s.records = v),
                        _ => skip_field(seq)?,
                    })
                })?;
                Ok(LedgerView { state: s })
            }
        }
        d.deserialize_seq(Fields)
    }
}

/// An action's status and owner (what the owner index comes from).
struct ActionView {
    status: crate::model::ActionStatus,
    owner: Option<String>,
}

impl<'de> Deserialize<'de> for ActionView {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Fields;
        impl<'de> serde::de::Visitor<'de> for Fields {
            type Value = ActionView;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a stored action")
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                seq: A,
            ) -> Result<ActionView, A::Error> {
                use crate::state::value::{read_fields, skip_field};
                static NAMES: std::sync::LazyLock<&[&str]> =
                    std::sync::LazyLock::new(crate::state::value::field_names::<Action>);
                let (mut status, mut owner) = (None, None);
                read_fields(seq, &NAMES, |name, seq| {
                    Ok(match name {
                        "status" => seq.next_element()?.map(|v| status = Some(v)),
                        "owner" => seq.next_element()?.map(|v| owner = v),
                        _ => skip_field(seq)?,
                    })
                })?;
                let status = status.ok_or_else(|| serde::de::Error::missing_field("status"))?;
                Ok(ActionView { status, owner })
            }
        }
        d.deserialize_seq(Fields)
    }
}

fn ledger_key(customer: &CustomerKey) -> Vec<u8> {
    customer.encode().into_bytes()
}

/// The ids under `prefix` in a per-customer store.
fn ids(
    txn: &Txn<'_>,
    partition: i32,
    store: StoreName,
    prefix: &[u8],
) -> Result<Vec<String>, StateError> {
    txn.value_keys(partition, store, prefix)?
        .into_iter()
        .map(|k| {
            std::str::from_utf8(&k[prefix.len()..])
                .map(String::from)
                .map_err(|_| StateError::Corrupt {
                    store: store.as_str().into(),
                    message: "undecodable key".into(),
                })
        })
        .collect()
}

/// Takes the customer's records out of the batch and assembles them; `None` if it has none.
/// Put it back with [`save`] (what is not put back is deleted when the batch finishes), or drop
/// the batch (queries).
pub fn load(
    txn: &mut Txn<'_>,
    partition: i32,
    customer: &CustomerKey,
) -> Result<Option<CustomerState>, StateError> {
    Ok(load_listed(txn, partition, customer)?.map(|(state, _)| state))
}

/// A customer's timers as its ledger lists them (`None`: not listed, scan the timer store).
pub type ListedTimers = Option<Vec<(String, NaiveDate)>>;

/// [`load`], with the timers the ledger lists, for a decision that replaces them.
pub fn load_listed(
    txn: &mut Txn<'_>,
    partition: i32,
    customer: &CustomerKey,
) -> Result<Option<(CustomerState, ListedTimers)>, StateError> {
    let key = customer.encode();
    let mut ledger: Option<CustomerState> =
        txn.take_value(partition, StoreName::Ledger, &ledger_key(customer))?;
    // Listed, they need no scan (two RocksDB iterators a record were 7 % of the hot path's
    // instructions); debug builds check the list against the stores.
    let scan = |txn: &Txn<'_>| -> Result<(Vec<String>, Vec<String>), StateError> {
        let prefix = customer_prefix(&key);
        Ok((
            ids(txn, partition, StoreName::Actions, &prefix)?,
            ids(txn, partition, StoreName::Conversations, &prefix)?,
        ))
    };
    let (action_ids, conversation_ids, timers) =
        match ledger.as_mut().and_then(|l| l.records.take()) {
            Some(listed) => {
                debug_assert_eq!(
                    scan(txn)?,
                    (listed.actions.clone(), listed.conversations.clone()),
                    "{key}: the ledger lists other records than the stores hold"
                );
                let timers = listed
                    .timers
                    .map(|t| t.into_iter().map(|t| (t.name, t.due)).collect());
                (listed.actions, listed.conversations, timers)
            }
            None => {
                let (actions, conversations) = scan(txn)?;
                (actions, conversations, None)
            }
        };
    if ledger.is_none() && action_ids.is_empty() && conversation_ids.is_empty() {
        return Ok(None);
    }
    let mut state = ledger.unwrap_or_default();
    for id in action_ids {
        if let Some(action) =
            txn.take_value::<Action>(partition, StoreName::Actions, &customer_key(&key, &id))?
        {
            state.actions.read(id, action);
        }
    }
    for id in conversation_ids {
        let record = txn.take_value::<ConversationRecord>(
            partition,
            StoreName::Conversations,
            &customer_key(&key, &id),
        )?;
        if let Some(record) = record {
            if let Some(conversation) = record.conversation {
                state.conversations.insert(id.clone(), conversation);
            }
            if let Some(promise) = record.promise {
                state.promises.insert(id, promise);
            }
        }
    }
    Ok(Some((state, timers)))
}

/// A customer split into its records.
struct Parts {
    ledger: CustomerState,
    /// With whether each changed since read.
    actions: Vec<(String, Action, bool)>,
    conversations: Vec<(String, ConversationRecord)>,
}

fn split(mut state: CustomerState, timers: ListedTimers) -> Parts {
    let actions: Vec<(String, Action, bool)> =
        std::mem::take(&mut state.actions).into_changes().collect();
    let mut conversations = std::mem::take(&mut state.conversations);
    let mut promises = std::mem::take(&mut state.promises);
    let ids: std::collections::BTreeSet<String> = conversations
        .keys()
        .chain(promises.keys())
        .cloned()
        .collect();
    let conversations: Vec<(String, ConversationRecord)> = ids
        .into_iter()
        .map(|id| {
            let record = ConversationRecord {
                conversation: conversations.remove(&id),
                promise: promises.remove(&id),
                calls_done: Vec::new(),
            };
            (id, record)
        })
        .collect();
    state.records = Some(OwnRecords {
        actions: actions.iter().map(|(id, ..)| id.clone()).collect(),
        conversations: conversations.iter().map(|(id, _)| id.clone()).collect(),
        timers: timers.map(|t| {
            t.into_iter()
                .map(|(name, due)| TimerSet { name, due })
                .collect()
        }),
    });
    Parts {
        ledger: state,
        actions,
        conversations,
    }
}

/// Puts the customer back, split into its records, its ledger listing them and `timers` (the
/// customer's timers as the timer store has them now, or `None` if not known).
pub fn save(
    txn: &mut Txn<'_>,
    partition: i32,
    customer: &CustomerKey,
    state: CustomerState,
    timers: ListedTimers,
) -> Result<(), StateError> {
    let key = customer.encode();
    let parts = split(state, timers);
    for (id, action, changed) in parts.actions {
        let at = customer_key(&key, &id);
        if changed {
            txn.put_value(partition, StoreName::Actions, &at, action)?;
        } else {
            txn.put_unchanged(partition, StoreName::Actions, &at, action)?;
        }
    }
    for (id, record) in parts.conversations {
        txn.put_value(
            partition,
            StoreName::Conversations,
            &customer_key(&key, &id),
            record,
        )?;
    }
    txn.put_value(
        partition,
        StoreName::Ledger,
        &ledger_key(customer),
        parts.ledger,
    )
}

/// What left the customer's hot state goes to its history store: actions under `A/<id>`,
/// conversations under `C/<id>`.
pub fn save_history(
    txn: &mut Txn<'_>,
    partition: i32,
    customer: &CustomerKey,
    retired: crate::engine::history::Retired,
) -> Result<(), StateError> {
    let key = customer.encode();
    for action in retired.actions {
        let at = customer_key(&key, &format!("A/{}", action.id));
        txn.put_value(partition, StoreName::History, &at, action)?;
    }
    for c in retired.conversations {
        let at = customer_key(&key, &format!("C/{}", c.id));
        let record = ConversationRecord {
            conversation: c.conversation,
            promise: c.promise,
            calls_done: c.calls_done,
        };
        txn.put_value(partition, StoreName::History, &at, record)?;
    }
    Ok(())
}

/// A conversation saved again after it left the hot state comes back from the history with its
/// promise's status and its call actions' marks (nothing of it is done twice).
pub fn recall_conversation(
    txn: &mut Txn<'_>,
    partition: i32,
    customer: &CustomerKey,
    id: &str,
    state: &mut CustomerState,
) -> Result<(), StateError> {
    if state.conversations.contains_key(id) || state.promises.contains_key(id) {
        return Ok(());
    }
    let at = customer_key(&customer.encode(), &format!("C/{id}"));
    if let Some(record) =
        txn.take_value::<ConversationRecord>(partition, StoreName::History, &at)?
    {
        if let Some(conversation) = record.conversation {
            state.conversations.insert(id.to_string(), conversation);
        }
        if let Some(promise) = record.promise {
            state.promises.insert(id.to_string(), promise);
        }
        state.calls_done.extend(record.calls_done);
    }
    Ok(())
}

/// The customer's actions that left the hot state (for its action history).
pub fn history_actions(
    txn: &mut Txn<'_>,
    partition: i32,
    customer: &CustomerKey,
) -> Result<Vec<Action>, StateError> {
    let prefix = customer_key(&customer.encode(), "A/");
    let mut out = Vec::new();
    for key in txn.value_keys(partition, StoreName::History, &prefix)? {
        out.extend(txn.take_value::<Action>(partition, StoreName::History, &key)?);
    }
    Ok(out)
}

/// The records of a customer value of the layout before the split (JSON, the whole customer
/// in one value), as (store, key, encoded value).
pub fn split_legacy(
    customer: &str,
    json: &[u8],
) -> Result<Vec<(StoreName, Vec<u8>, Vec<u8>)>, String> {
    use crate::state::value::encode;
    let mut whole: serde_json::Value = serde_json::from_slice(json).map_err(|e| e.to_string())?;
    let mut part = |name: &str| {
        whole
            .as_object_mut()
            .and_then(|o| o.remove(name))
            .unwrap_or_default()
    };
    let (actions, conversations, promises) =
        (part("actions"), part("conversations"), part("promises"));
    let mut state: CustomerState = serde_json::from_value(whole).map_err(|e| e.to_string())?;
    let or_empty = |v: serde_json::Value| {
        if v.is_null() {
            serde_json::json!({})
        } else {
            v
        }
    };
    state.actions =
        serde_json::from_value(or_empty(actions)).map_err(|e| format!("actions: {e}"))?;
    state.conversations = serde_json::from_value(or_empty(conversations))
        .map_err(|e| format!("conversations: {e}"))?;
    state.promises =
        serde_json::from_value(or_empty(promises)).map_err(|e| format!("promises: {e}"))?;
    // The indexes it belongs in (an index is written only when it changes from now on).
    let key = CustomerKey::decode(customer).ok_or("not a customer key")?;
    let mut out: Vec<(StoreName, Vec<u8>, Vec<u8>)> = state
        .currencies()
        .iter()
        .map(|c| (StoreName::CurrencyIndex, index_key(c, &key), Vec::new()))
        .chain(
            state
                .open_action_owners()
                .iter()
                .map(|o| (StoreName::OwnerIndex, index_key(o, &key), Vec::new())),
        )
        .collect();
    // The timers are the migration's to move: not listed, they are scanned once.
    let parts = split(state, None);
    out.push((
        StoreName::Ledger,
        customer.as_bytes().to_vec(),
        encode(&parts.ledger),
    ));
    out.extend(parts.actions.iter().map(|(id, action, _)| {
        (
            StoreName::Actions,
            customer_key(customer, id),
            encode(action),
        )
    }));
    out.extend(parts.conversations.iter().map(|(id, record)| {
        (
            StoreName::Conversations,
            customer_key(customer, id),
            encode(record),
        )
    }));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::Store;

    const FIXTURE: &[u8] = include_bytes!("../../tests/fixtures/customer-state-v0.json");

    /// The fixture as the previous version read it: one JSON value, parts included.
    fn legacy_whole() -> (CustomerState, serde_json::Value) {
        let json: serde_json::Value = serde_json::from_slice(FIXTURE).unwrap();
        let mut state: CustomerState = serde_json::from_value(json.clone()).unwrap();
        state.actions = serde_json::from_value(json["actions"].clone()).unwrap();
        state.conversations = serde_json::from_value(json["conversations"].clone()).unwrap();
        state.promises = serde_json::from_value(json["promises"].clone()).unwrap();
        (state, json)
    }

    /// Records as the release of 2026-11-30 wrote them (MessagePack arrays, before
    /// `action_seq` and `created_seq` were appended): a field added anywhere but at the end
    /// would misalign them.
    #[test]
    fn records_written_by_an_earlier_release_still_read() {
        let ledger: CustomerState = crate::state::value::decode(include_bytes!(
            "../../tests/fixtures/ledger-v1-2026-11-30.bin"
        ))
        .unwrap();
        assert_eq!(ledger.items.len(), 10);
        assert_eq!(ledger.action_seq, 0, "appended since: its default");
        let action: Action = crate::state::value::decode(include_bytes!(
            "../../tests/fixtures/action-v1-2026-11-30.bin"
        ))
        .unwrap();
        assert_eq!(action.id, "COLL-30-1-1");
        assert_eq!(action.created_seq, 0);
        // Written again, they read back the same.
        let again: CustomerState =
            crate::state::value::decode(&crate::state::value::encode(&ledger)).unwrap();
        assert_eq!(again, ledger);
    }

    #[test]
    fn a_customer_written_by_the_previous_version_reads_whole_from_its_split_records() {
        let (expected, json) = legacy_whole();
        assert_eq!(expected.actions.len(), 8);
        assert_eq!(expected.conversations.len(), 3);
        assert_eq!(expected.promises.len(), 2);
        assert_eq!(
            expected.actions.keys().collect::<Vec<_>>(),
            json["actions"]
                .as_object()
                .unwrap()
                .keys()
                .collect::<Vec<_>>()
        );

        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        store.ensure_partition(0).unwrap();
        let customer = CustomerKey::new("SHARE", "LUTHOR");
        let records = split_legacy(&customer.encode(), FIXTURE).unwrap();
        let indexes = records
            .iter()
            .filter(|(s, _, _)| matches!(s, StoreName::CurrencyIndex | StoreName::OwnerIndex))
            .count();
        assert_eq!(records.len(), indexes + 1 + 8 + 3);
        assert!(
            indexes >= 2,
            "a currency held and an owner with open actions"
        );
        let mut txn = store.txn();
        for (store_name, key, bytes) in &records {
            // Through the same write path as a batch, as raw bytes.
            txn.put_raw(0, *store_name, key, bytes.clone());
        }
        store.commit(txn, &[]).unwrap();

        let mut txn = store.txn();
        let read = load(&mut txn, 0, &customer).unwrap().unwrap();
        assert_eq!(read, expected);
        // Saved back unchanged, nothing is rewritten.
        save(&mut txn, 0, &customer, read, None).unwrap();
        assert!(txn.finish(&[]).writes.is_empty());
    }

    /// The views a restore rebuilds the derived stores from give, for every customer of the
    /// three samples (masters with parents, items in several currencies, payments, aging,
    /// history, credit agency reports, plans with owners, conversations), what the customer
    /// decoded whole gives; a ledger that lists no timers is left to the whole decoding.
    #[test]
    fn views_give_what_whole_customers_give() {
        use std::sync::Arc;

        use crate::pipeline::replay::{ReplayOptions, replay};
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let rules = crate::rules::RuleSet::load(&root.join("topology/rules.toml")).unwrap();
        let operator = crate::pipeline::Operator::new(
            Arc::new(rules),
            Arc::new(crate::codec::SchemaCatalog::bundled().unwrap()),
        );
        let mut seen = DerivedEntries::default();
        let mut customers_seen = 0;
        for (file, start, until) in [
            ("ledger", "2026-01-01", "2026-04-30"),
            ("action-plan", "2026-06-01", "2026-06-30"),
            ("conversations", "2026-07-01", "2026-07-31"),
        ] {
            let dir = tempfile::tempdir().unwrap();
            let store = Store::open(dir.path()).unwrap();
            let input = std::fs::read(root.join(format!("topology/sample/{file}.ndjson"))).unwrap();
            let metrics = crate::metrics::Metrics::new();
            let options = ReplayOptions {
                start: start.parse().unwrap(),
                until: Some(until.parse().unwrap()),
                stop_after: None,
                score_at: None,
                metrics: &metrics,
            };
            replay(
                &operator,
                &store,
                input.as_slice(),
                &mut Vec::new(),
                options,
            )
            .unwrap();
            for encoded in all_customers(&store, 0).unwrap() {
                let customer = CustomerKey::decode(&encoded).unwrap();
                let (state, timers) = load_listed(&mut store.txn(), 0, &customer)
                    .unwrap()
                    .unwrap();
                let whole = DerivedEntries::of(&state, timers);
                let viewed = derived_from_views(&store, 0, &customer).unwrap();
                assert_eq!(viewed.as_ref(), Some(&whole), "{file}: {encoded}");
                customers_seen += 1;
                seen.currencies.extend(whole.currencies);
                seen.owners.extend(whole.owners);
                seen.families.extend(whole.families);
                seen.timers.extend(whole.timers);
            }
        }
        assert!(customers_seen >= 10, "{customers_seen} customers");
        assert!(seen.currencies.len() >= 2, "{:?}", seen.currencies);
        assert!(!seen.owners.is_empty() && !seen.families.is_empty() && !seen.timers.is_empty());

        // Values the views cannot read are left to the whole decoding.
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        store.ensure_partition(0).unwrap();
        let customer = CustomerKey::new("SHARE", "LUTHOR");
        let mut txn = store.txn();
        for (store_name, key, bytes) in split_legacy(&customer.encode(), FIXTURE).unwrap() {
            txn.put_raw(0, store_name, &key, bytes);
        }
        store.commit(txn, &[]).unwrap();
        assert_eq!(
            derived_from_views(&store, 0, &customer).unwrap(),
            None,
            "a ledger that does not list its timers"
        );
    }

    /// LUTHOR of the conversations sample saved in a new store, and what was saved.
    fn saved_luthor() -> (tempfile::TempDir, Store, CustomerKey, CustomerState) {
        let (state, _) = legacy_whole();
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        store.ensure_partition(0).unwrap();
        let customer = CustomerKey::new("SHARE", "LUTHOR");
        let mut txn = store.txn();
        save(&mut txn, 0, &customer, state.clone(), None).unwrap();
        store.commit(txn, &[]).unwrap();
        (dir, store, customer, state)
    }

    #[test]
    fn a_decision_rewrites_only_the_records_it_changed() {
        let (_dir, store, customer, _) = saved_luthor();

        let mut txn = store.txn();
        let mut state = load(&mut txn, 0, &customer).unwrap().unwrap();
        let id = state.actions.keys().next().unwrap().clone();
        state.actions.get_mut(&id).unwrap().revision += 1;
        let gone = state.actions.keys().nth(1).unwrap().clone();
        state.actions.remove(&gone);
        save(&mut txn, 0, &customer, state, None).unwrap();
        let changes = txn.finish(&[]);
        let stores: Vec<StoreName> = changes.writes.keys().map(|(_, s, _)| *s).collect();
        assert_eq!(
            stores,
            [StoreName::Ledger, StoreName::Actions, StoreName::Actions],
            "one action changed, one deleted, the ledger's list of action ids; the \
             conversations untouched"
        );
        assert_eq!(changes.writes.values().filter(|v| v.is_none()).count(), 1);

        // A change to an action alone leaves the ledger as it was.
        let mut txn = store.txn();
        let mut state = load(&mut txn, 0, &customer).unwrap().unwrap();
        state.actions.get_mut(&id).unwrap().revision += 1;
        save(&mut txn, 0, &customer, state, None).unwrap();
        let changes = txn.finish(&[]);
        assert_eq!(changes.writes.len(), 1);
        assert!(
            changes
                .writes
                .keys()
                .all(|(_, s, _)| *s == StoreName::Actions)
        );
    }

    #[test]
    fn a_customer_reads_its_records_by_the_ids_its_ledger_lists_or_by_a_scan_when_it_lists_none() {
        let (_dir, store, customer, state) = saved_luthor();

        // The ledger lists the records it was saved with; a read gives them all, and the
        // list stays out of the engine's view.
        let ledger: CustomerState = crate::state::value::decode(
            &store
                .committed_value(0, StoreName::Ledger, customer.encode().as_bytes())
                .unwrap()
                .unwrap(),
        )
        .unwrap();
        let ids = ledger.records.clone().unwrap();
        assert_eq!(ids.actions.len(), 8);
        assert_eq!(ids.conversations.len(), 3);
        let read = load(&mut store.txn(), 0, &customer).unwrap().unwrap();
        assert_eq!(read, state);
        assert!(read.records.is_none());

        // A ledger written before the list existed: its records are found by scanning.
        let mut old = ledger;
        old.records = None;
        let mut txn = store.txn();
        txn.put_raw(
            0,
            StoreName::Ledger,
            customer.encode().as_bytes(),
            crate::state::value::encode(&old),
        );
        store.commit(txn, &[]).unwrap();
        assert_eq!(
            load(&mut store.txn(), 0, &customer).unwrap().unwrap(),
            state
        );
    }

    #[test]
    fn a_state_directory_of_the_previous_layout_is_migrated_when_opened() {
        let dir = tempfile::tempdir().unwrap();
        let timer_key = customer_key("SHARE|LUTHOR", "ageing");
        {
            let mut options = rocksdb::Options::default();
            options.create_if_missing(true);
            options.create_missing_column_families(true);
            let db = rocksdb::DB::open_cf(
                &options,
                dir.path(),
                ["customers.0", "timers-by-key.0", "meta"],
            )
            .unwrap();
            let cf = |name| db.cf_handle(name).unwrap();
            db.put_cf(cf("customers.0"), b"SHARE|LUTHOR", FIXTURE)
                .unwrap();
            db.put_cf(cf("timers-by-key.0"), &timer_key, [0x80, 0, 0x51, 0x2a])
                .unwrap();
            db.put_cf(cf("meta"), b"offset/0/ar.items", 42i64.to_be_bytes())
                .unwrap();
            db.put_cf(cf("meta"), b"counter/0/actions.new", 3i64.to_be_bytes())
                .unwrap();
        }
        assert!(
            Store::open(dir.path()).is_err(),
            "a plain open refuses the old layout rather than ignore it"
        );
        let store = super::super::open_store(dir.path(), Default::default()).unwrap();
        assert_eq!(store.offsets(0).unwrap()["ar.items"], 42);
        assert_eq!(store.counters(0).unwrap()["actions.new"], 3);
        let mut txn = store.txn();
        assert_eq!(
            txn.get(0, StoreName::Timers, &timer_key).unwrap(),
            Some(vec![0x80, 0, 0x51, 0x2a])
        );
        let customer = CustomerKey::new("SHARE", "LUTHOR");
        assert_eq!(
            load(&mut txn, 0, &customer).unwrap().unwrap(),
            legacy_whole().0
        );
        drop(txn);
        drop(store);
        // Migrated once: the old families are gone.
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(store.partitions(), vec![0]);
    }

    #[test]
    fn a_finished_conversation_leaves_the_hot_state_and_comes_back_whole_when_saved_again() {
        use std::sync::Arc;

        use crate::model::{InputEvent, OutputEvent, Stream};
        use crate::pipeline::{Operator, Outcome, Payload};

        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        store.ensure_partition(0).unwrap();
        let customer = CustomerKey::new("SHARE", "LUTHOR");
        let (state, json) = legacy_whole();
        let mut txn = store.txn();
        save(&mut txn, 0, &customer, state, None).unwrap();
        store.commit(txn, &[]).unwrap();
        let rules = crate::rules::RuleSet::load(
            &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("topology/rules.toml"),
        )
        .unwrap();
        let operator = Operator::new(
            Arc::new(rules),
            Arc::new(crate::codec::SchemaCatalog::bundled().unwrap()),
        );
        // Over a year and a half after July 2026: CV-2 (its promise long judged) and CV-3 (a
        // call) are done; CV-1 still has an open call action.
        let mut txn = store.txn();
        operator
            .reconcile_partition(&mut txn, 0, "2028-01-01".parse().unwrap())
            .unwrap();
        store.commit(txn, &[]).unwrap();
        let mut txn = store.txn();
        let hot = load(&mut txn, 0, &customer).unwrap().unwrap();
        assert_eq!(hot.conversations.keys().collect::<Vec<_>>(), ["CV-1"]);
        assert!(!hot.calls_done.iter().any(|c| c.starts_with("CV-3/")));
        drop(txn);

        // CV-3 saved again: it comes back with its marks (its call actions are not done twice),
        // and, still done, goes back to the history.
        let cv3: crate::model::ConversationChange =
            serde_json::from_value(json["conversations"]["CV-3"].clone()).unwrap();
        let mut txn = store.txn();
        let Outcome::Processed(events) = operator
            .process(
                &mut txn,
                &[0],
                Stream::Conversations,
                Some("SHARE|LUTHOR"),
                Payload::Json(crate::codec::input_to_json(&InputEvent::Conversation(cv3))),
                "2028-01-02".parse().unwrap(),
            )
            .unwrap()
        else {
            panic!("refused")
        };
        assert!(
            !events
                .iter()
                .any(|e| matches!(e, OutputEvent::Request(_) | OutputEvent::DunningDecision(_))),
            "{events:?}"
        );
        store.commit(txn, &[]).unwrap();
        let mut txn = store.txn();
        let back: ConversationRecord = txn
            .take_value(
                0,
                StoreName::History,
                &customer_key("SHARE|LUTHOR", "C/CV-3"),
            )
            .unwrap()
            .unwrap();
        assert_eq!(back.calls_done, ["CV-3/1", "CV-3/2"]);
        // CV-2's promise status stays in the history with its count of changes.
        let record: ConversationRecord = txn
            .take_value(
                0,
                StoreName::History,
                &customer_key("SHARE|LUTHOR", "C/CV-2"),
            )
            .unwrap()
            .unwrap();
        assert_eq!(record.promise.unwrap().changes, 3);
    }
}
