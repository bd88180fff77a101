//! Domain types: the events condmon consumes and emits. Pure data, no I/O.

mod actions;
pub mod compact;
mod conversations;
mod ledger;
pub mod validate;
mod work;

pub use actions::*;
pub use conversations::*;
pub use ledger::*;
pub use work::*;

use std::fmt;

/// Every topic is keyed by setID + customer so all of a customer's streams share a partition.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CustomerKey {
    pub set_id: String,
    pub customer_id: String,
}

/// Separates setID and customer in the Kafka key. Neither may contain it (validated on input).
pub const KEY_SEPARATOR: char = '|';

impl CustomerKey {
    pub fn new(set_id: impl Into<String>, customer_id: impl Into<String>) -> Self {
        Self {
            set_id: set_id.into(),
            customer_id: customer_id.into(),
        }
    }

    /// The Kafka record key and the RocksDB key prefix.
    pub fn encode(&self) -> String {
        // Built by hand: it is on every record's path, and `format!` costs several times this.
        let mut out = String::with_capacity(self.set_id.len() + 1 + self.customer_id.len());
        out.push_str(&self.set_id);
        out.push(KEY_SEPARATOR);
        out.push_str(&self.customer_id);
        out
    }

    pub fn decode(s: &str) -> Option<Self> {
        let (set_id, customer_id) = s.split_once(KEY_SEPARATOR)?;
        Some(Self::new(set_id, customer_id))
    }
}

impl fmt::Display for CustomerKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.set_id, self.customer_id)
    }
}

/// The logical streams condmon reads and writes. Topic names come from the configuration;
/// schemas, keys and partitioning follow the stream.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum Stream {
    Items,
    Payments,
    Aging,
    Customers,
    History,
    CreditAgency,
    /// Children's figures re-keyed to their parents: written and read by condmon itself.
    ChildFigures,
    /// Collectors' commands on actions, keyed by customer like the ledger.
    ActionCommands,
    /// Conversations with customers: promises to pay, customer calls and their call actions.
    Conversations,
    FxRates,
    Actions,
    Escalations,
    Conditions,
    RiskScores,
    CommandResults,
    Notifications,
    Correspondence,
    Requests,
    PromiseStatus,
    DunningDecisions,
}

impl Stream {
    /// The customer streams: keyed by customer and co-partitioned, read per partition.
    pub const INPUTS: [Stream; 9] = [
        Stream::Items,
        Stream::Payments,
        Stream::Aging,
        Stream::Customers,
        Stream::History,
        Stream::CreditAgency,
        Stream::ChildFigures,
        Stream::ActionCommands,
        Stream::Conversations,
    ];
    /// The streams the ERP and the collectors' tools write (not condmon's own children's
    /// figures): what the input field reference documents and `condmon export` exports.
    pub const FROM_OUTSIDE: [Stream; 9] = [
        Stream::Items,
        Stream::Payments,
        Stream::Aging,
        Stream::Customers,
        Stream::History,
        Stream::CreditAgency,
        Stream::FxRates,
        Stream::Conversations,
        Stream::ActionCommands,
    ];
    /// Reference data every instance reads whole (compacted topics), whatever it holds.
    pub const GLOBAL_INPUTS: [Stream; 1] = [Stream::FxRates];
    pub const OUTPUTS: [Stream; 10] = [
        Stream::Actions,
        Stream::Escalations,
        Stream::Conditions,
        Stream::RiskScores,
        Stream::CommandResults,
        Stream::Notifications,
        Stream::Correspondence,
        Stream::Requests,
        Stream::PromiseStatus,
        Stream::DunningDecisions,
    ];

    /// Outputs that make something happen outside (an e-mail, a letter, a change in the ERP):
    /// never sent for what happened before condmon first ran (see `first_start_quiet`).
    pub fn is_side_effect(self) -> bool {
        matches!(
            self,
            Stream::Notifications | Stream::Correspondence | Stream::Requests
        )
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Stream::Items => "items",
            Stream::Payments => "payments",
            Stream::Aging => "aging",
            Stream::Customers => "customers",
            Stream::History => "history",
            Stream::CreditAgency => "credit-agency",
            Stream::ChildFigures => "child-figures",
            Stream::ActionCommands => "action-commands",
            Stream::Conversations => "conversations",
            Stream::FxRates => "fx-rates",
            Stream::Actions => "actions",
            Stream::Escalations => "escalations",
            Stream::Conditions => "conditions",
            Stream::RiskScores => "risk-scores",
            Stream::CommandResults => "command-results",
            Stream::Notifications => "notifications",
            Stream::Correspondence => "correspondence",
            Stream::Requests => "requests",
            Stream::PromiseStatus => "promise-status",
            Stream::DunningDecisions => "dunning-decisions",
        }
    }

    /// Every stream with a schema: inputs, reference data and outputs.
    pub fn all() -> impl Iterator<Item = Stream> {
        Self::INPUTS
            .into_iter()
            .chain(Self::GLOBAL_INPUTS)
            .chain(Self::OUTPUTS)
    }
}

impl InputEvent {
    pub fn stream(&self) -> Stream {
        match self {
            InputEvent::Item(_) => Stream::Items,
            InputEvent::Payment(_) => Stream::Payments,
            InputEvent::Aging(_) => Stream::Aging,
            InputEvent::Customer(_) => Stream::Customers,
            InputEvent::History(_) => Stream::History,
            InputEvent::CreditAgency(_) => Stream::CreditAgency,
            InputEvent::ChildFigures(_) => Stream::ChildFigures,
            InputEvent::FxRate(_) => Stream::FxRates,
            InputEvent::Command(_) => Stream::ActionCommands,
            InputEvent::Conversation(_) => Stream::Conversations,
        }
    }
}

impl OutputEvent {
    pub fn stream(&self) -> Stream {
        match self {
            OutputEvent::Action(_) => Stream::Actions,
            OutputEvent::Escalation(_) => Stream::Escalations,
            OutputEvent::Condition(_) => Stream::Conditions,
            OutputEvent::RiskScore(_) => Stream::RiskScores,
            OutputEvent::ChildFigures { .. } => Stream::ChildFigures,
            OutputEvent::CommandResult(_) => Stream::CommandResults,
            OutputEvent::Notification(_) => Stream::Notifications,
            OutputEvent::Correspondence(_) => Stream::Correspondence,
            OutputEvent::Request(_) => Stream::Requests,
            OutputEvent::PromiseStatus(_) => Stream::PromiseStatus,
            OutputEvent::DunningDecision(_) => Stream::DunningDecisions,
        }
    }

    pub fn customer_key(&self) -> CustomerKey {
        match self {
            OutputEvent::Action(e) => CustomerKey::new(&e.set_id, &e.customer_id),
            OutputEvent::Escalation(e) => CustomerKey::new(&e.set_id, &e.customer_id),
            OutputEvent::Condition(e) => CustomerKey::new(&e.set_id, &e.customer_id),
            OutputEvent::RiskScore(e) => CustomerKey::new(&e.set_id, &e.customer_id),
            OutputEvent::ChildFigures { figures, .. } => {
                CustomerKey::new(&figures.set_id, &figures.customer_id)
            }
            OutputEvent::CommandResult(e) => CustomerKey::new(&e.set_id, &e.customer_id),
            OutputEvent::Notification(e) => CustomerKey::new(&e.set_id, &e.customer_id),
            OutputEvent::Correspondence(e) => CustomerKey::new(&e.set_id, &e.customer_id),
            OutputEvent::Request(e) => CustomerKey::new(&e.set_id, &e.customer_id),
            OutputEvent::PromiseStatus(e) => CustomerKey::new(&e.set_id, &e.customer_id),
            OutputEvent::DunningDecision(e) => CustomerKey::new(&e.set_id, &e.customer_id),
        }
    }

    pub fn event_id(&self) -> &str {
        match self {
            OutputEvent::Action(e) => &e.event_id,
            OutputEvent::Escalation(e) => &e.event_id,
            OutputEvent::Condition(e) => &e.event_id,
            OutputEvent::RiskScore(e) => &e.event_id,
            OutputEvent::ChildFigures { event_id, .. } => event_id,
            OutputEvent::CommandResult(e) => &e.event_id,
            OutputEvent::Notification(e) => &e.event_id,
            OutputEvent::Correspondence(e) => &e.event_id,
            OutputEvent::Request(e) => &e.event_id,
            OutputEvent::PromiseStatus(e) => &e.event_id,
            OutputEvent::DunningDecision(e) => &e.event_id,
        }
    }
}

/// A deterministic event id: a name-based (v5) UUID of the event's logical cause, so an event
/// re-emitted after a crash carries the same id and downstream can drop the duplicate.
pub fn event_id(parts: &[&str]) -> String {
    const NAMESPACE: uuid::Uuid = uuid::Uuid::from_u128(0x6b1f_53c8_8d0e_4c4b_9a3c_1d2e_3f40_5a6b);
    uuid::Uuid::new_v5(&NAMESPACE, parts.join("\u{1f}").as_bytes()).to_string()
}

/// FNV-1a over the parts: a stable digest (the standard library's hash may change between
/// releases) for fingerprints kept in state.
pub fn fingerprint(parts: &[&[u8]]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for byte in part.iter().chain(&[0xff]) {
            hash ^= u64::from(*byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
    }
    hash
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn customer_key_round_trips_through_its_kafka_form() {
        let key = CustomerKey::new("SHARE", "C-100");
        assert_eq!(key.encode(), "SHARE|C-100");
        assert_eq!(CustomerKey::decode(&key.encode()), Some(key));
        assert_eq!(CustomerKey::decode("no-separator"), None);
    }

    #[test]
    fn event_ids_depend_on_every_part_and_only_on_them() {
        let a = event_id(&["SHARE", "C1", "COLL", "1", "created"]);
        assert_eq!(a, event_id(&["SHARE", "C1", "COLL", "1", "created"]));
        assert_ne!(a, event_id(&["SHARE", "C1", "COLL", "2", "created"]));
        // The separator keeps ("ab","c") and ("a","bc") apart.
        assert_ne!(event_id(&["ab", "c"]), event_id(&["a", "bc"]));
    }
}
