//! Customer relationships. A rule may monitor a corporate, correspondence or remit-from
//! parent: the parent's figures then include its children's. Each child summarises its open
//! items and cash ([`ChildFigures`]) and sends them, keyed by the parent, through an internal
//! topic to the parent's partition; the parent evaluates such rules over a view of its own
//! ledger plus its children's lines.

use std::collections::{BTreeMap, BTreeSet};

use chrono::NaiveDate;
use rust_decimal::Decimal;

use super::state::{CustomerState, Totals, add_totals, item_key};
use crate::model::{
    ChildCash, ChildFigures, ChildLine, CustomerChange, CustomerKey, ItemChange, ItemType,
    MonitorRole, OutputEvent, event_id, fingerprint,
};
use crate::rules::RuleSet;

/// The relationships the rules of `set_id` monitor.
pub fn monitored_roles(rules: &RuleSet, set_id: &str) -> BTreeSet<MonitorRole> {
    rules
        .collection_rules
        .iter()
        .filter(|r| r.set_id == set_id)
        .map(|r| r.monitor)
        .chain(
            rules
                .assessment_rules
                .iter()
                .filter(|r| r.set_id == set_id)
                .map(|r| r.monitor),
        )
        .filter(|role| *role != MonitorRole::BillTo)
        .collect()
}

/// The relationships a customer can have a parent in (the Customer Action page's levels C, P
/// and R).
pub const RELATIONSHIPS: [MonitorRole; 3] = [
    MonitorRole::Corporate,
    MonitorRole::Correspondence,
    MonitorRole::RemitFrom,
];

/// The name of the family of `parent` (of `set_id`) at `role`, as the parent index keeps it.
pub fn family(role: MonitorRole, set_id: &str, parent: &str) -> String {
    format!("{}|{set_id}|{parent}", role.as_str())
}

/// The families the customer belongs to as a child: one per relationship its master names a
/// parent in (other than itself). Reads the master only (a restore's view of the ledger,
/// `LedgerView` in `pipeline::customers`, decodes no more).
pub fn families(state: &CustomerState) -> BTreeSet<String> {
    let Some(customer) = state.customer.as_ref() else {
        return BTreeSet::new();
    };
    RELATIONSHIPS
        .iter()
        .filter_map(|role| {
            parent_of(customer, *role).map(|parent| family(*role, &customer.set_id, parent))
        })
        .collect()
}

/// The head of the customer's family at `role`: its parent there, or itself when it has none
/// (a parent, or a customer on its own).
pub fn family_head(state: &CustomerState, key: &CustomerKey, role: MonitorRole) -> CustomerKey {
    let parent = state.customer.as_ref().and_then(|c| parent_of(c, role));
    CustomerKey::new(&key.set_id, parent.unwrap_or(&key.customer_id))
}

fn parent_of(customer: &CustomerChange, role: MonitorRole) -> Option<&str> {
    match role {
        MonitorRole::BillTo => None,
        MonitorRole::Corporate => customer.corporate_parent.as_deref(),
        MonitorRole::Correspondence => customer.correspondence_parent.as_deref(),
        MonitorRole::RemitFrom => customer.remit_from_parent.as_deref(),
    }
    .filter(|parent| *parent != customer.customer_id)
}

/// The customer's open items by business unit, currency, due date and side, and its cash.
fn summarise(
    state: &CustomerState,
    key: &CustomerKey,
    parent: &str,
    role: MonitorRole,
) -> ChildFigures {
    let mut lines: BTreeMap<(String, String, NaiveDate, bool), ChildLine> = BTreeMap::new();
    for item in state.items.values() {
        let credit = item.item_type.is_credit();
        let line = lines
            .entry((
                item.business_unit.clone(),
                item.currency.clone(),
                item.due_date,
                credit,
            ))
            .or_insert_with(|| ChildLine {
                business_unit: item.business_unit.clone(),
                currency: item.currency.clone(),
                due_date: item.due_date,
                credit,
                open_amount: Decimal::ZERO,
                disputed_amount: Decimal::ZERO,
                item_id: item.item_id.clone(),
            });
        line.open_amount += item.open_amount;
        line.disputed_amount += item.disputed_amount;
        line.item_id = line.item_id.clone().min(item.item_id.clone());
    }
    let cash = state
        .totals
        .iter()
        .filter(|(_, t)| !t.unapplied.is_zero() || !t.in_process.is_zero())
        .map(|(currency, t)| ChildCash {
            currency: currency.clone(),
            unapplied: t.unapplied,
            in_process: t.in_process,
        })
        .collect();
    ChildFigures {
        set_id: key.set_id.clone(),
        customer_id: parent.to_string(),
        child_id: key.customer_id.clone(),
        role,
        lines: lines.into_values().collect(),
        cash,
    }
}

fn withdrawal(key: &CustomerKey, parent: &str, role: MonitorRole) -> ChildFigures {
    ChildFigures {
        set_id: key.set_id.clone(),
        customer_id: parent.to_string(),
        child_id: key.customer_id.clone(),
        role,
        lines: Vec::new(),
        cash: Vec::new(),
    }
}

/// The `seq`-th sending of the customer's figures: each has its own event id, even when the
/// figures return to an earlier content.
fn send(figures: ChildFigures, seq: u64) -> OutputEvent {
    OutputEvent::ChildFigures {
        event_id: event_id(&[
            "child-figures",
            &figures.set_id,
            &figures.child_id,
            figures.role.as_str(),
            &seq.to_string(),
        ]),
        figures,
    }
}

/// What the customer must send its parents now: its figures where they changed, and a
/// withdrawal from a parent it no longer has. Remembers what it sent.
pub fn contributions(
    state: &mut CustomerState,
    key: &CustomerKey,
    rules: &RuleSet,
) -> Vec<OutputEvent> {
    let mut out = Vec::new();
    let roles = monitored_roles(rules, &key.set_id);
    let mut wanted: BTreeMap<MonitorRole, String> = BTreeMap::new();
    if let Some(customer) = &state.customer {
        for role in &roles {
            if let Some(parent) = parent_of(customer, *role) {
                wanted.insert(*role, parent.to_string());
            }
        }
    }
    let sent_roles: Vec<MonitorRole> = state.sent.keys().copied().collect();
    for role in sent_roles {
        let (parent, _) = &state.sent[&role];
        if wanted.get(&role) != Some(parent) {
            let figures = withdrawal(key, parent, role);
            state.sent_seq += 1;
            out.push(send(figures, state.sent_seq));
            state.sent.remove(&role);
        }
    }
    for (role, parent) in wanted {
        let figures = summarise(state, key, &parent, role);
        if figures.is_withdrawal() {
            // Nothing to contribute: withdraw what was sent, if anything.
            if state.sent.remove(&role).is_some() {
                state.sent_seq += 1;
                out.push(send(figures, state.sent_seq));
            }
            continue;
        }
        let text = serde_json::to_string(&figures).expect("figures serialize");
        let digest = fingerprint(&[text.as_bytes()]);
        if state
            .sent
            .get(&role)
            .is_some_and(|(p, d)| *p == parent && *d == digest)
        {
            continue;
        }
        state.sent_seq += 1;
        out.push(send(figures, state.sent_seq));
        state.sent.insert(role, (parent, digest));
    }
    out
}

/// What a rule monitoring `role` sees at this customer beyond its own ledger: its children's
/// lines as items (named `CHILD/ITEM`), and its totals with the children's lines and cash
/// added. The customer's own items are not copied ([`super::conditions::Context`] reads them
/// merged with these): a parent's evaluation copies its children's lines, never itself.
#[derive(Debug)]
pub struct ChildLedger {
    pub items: BTreeMap<String, ItemChange>,
    pub totals: super::state::SortedMap<Totals>,
}

pub fn child_ledger(state: &CustomerState, role: MonitorRole) -> ChildLedger {
    let mut view = ChildLedger {
        items: BTreeMap::new(),
        // One entry per currency: cheap to copy.
        totals: state.totals.clone(),
    };
    for child in state.children.values().filter(|c| c.role == role) {
        for (n, line) in child.lines.iter().enumerate() {
            let item = ItemChange {
                set_id: child.set_id.clone(),
                business_unit: line.business_unit.clone(),
                customer_id: child.child_id.clone(),
                item_id: format!("{}/{}", child.child_id, line.item_id),
                item_line: n as i32,
                item_type: if line.credit {
                    ItemType::CreditMemo
                } else {
                    ItemType::Invoice
                },
                original_amount: line.open_amount,
                open_amount: line.open_amount,
                currency: line.currency.clone(),
                accounting_date: line.due_date,
                due_date: line.due_date,
                entry_type: "CHILD".into(),
                entry_reason: None,
                disputed_amount: line.disputed_amount,
                ar_specialist: None,
                collector: None,
                origin_item_id: None,
                origin_item_line: None,
                origin_payment_id: None,
            };
            add_totals(
                &mut view.totals,
                &line.currency,
                &Totals {
                    open: line.open_amount,
                    disputed: line.disputed_amount,
                    ..Totals::default()
                },
                1,
            );
            view.items
                .insert(item_key(&item.item_id, item.item_line), item);
        }
        for cash in &child.cash {
            add_totals(
                &mut view.totals,
                &cash.currency,
                &Totals {
                    unapplied: cash.unapplied,
                    in_process: cash.in_process,
                    ..Totals::default()
                },
                1,
            );
        }
    }
    view
}

/// How many children a rule monitoring `role` sees.
pub fn children_in(state: &CustomerState, role: MonitorRole) -> usize {
    state.children.values().filter(|c| c.role == role).count()
}
