//! Which instance holds which partition, and where its HTTP API is: so that any instance can
//! answer any query. Each instance writes an entry when it claims a partition (the topic
//! `<group id>-directory`, compacted, keyed by partition); every instance reads the topic
//! whole and keeps, per partition, the entry of the highest epoch (the latest claim).

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use serde::{Deserialize, Serialize};

use crate::config::Config;

/// The directory topic.
pub fn topic(config: &Config) -> String {
    format!("{}-directory", config.kafka.group_id)
}

/// A partition's holder, as its claim announced it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub partition: i32,
    pub owner: String,
    /// Where the holder's HTTP API answers (`host:port`).
    pub http: String,
    pub epoch: u64,
}

#[derive(Clone, Default)]
pub struct Directory {
    entries: Arc<RwLock<BTreeMap<i32, Entry>>>,
}

impl Directory {
    /// Takes in an entry read from the topic: kept if it is the partition's latest claim.
    pub fn learn(&self, entry: Entry) {
        let mut entries = self.entries.write().expect("directory lock");
        let newer = entries
            .get(&entry.partition)
            .is_none_or(|known| entry.epoch >= known.epoch);
        if newer {
            entries.insert(entry.partition, entry);
        }
    }

    /// Where `partition`'s holder answers, if one is known.
    pub fn holder(&self, partition: i32) -> Option<Entry> {
        self.entries
            .read()
            .expect("directory lock")
            .get(&partition)
            .cloned()
    }

    /// The HTTP address of every instance holding a partition, each once.
    pub fn instances(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .entries
            .read()
            .expect("directory lock")
            .values()
            .map(|e| e.http.clone())
            .collect();
        out.sort();
        out.dedup();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(partition: i32, http: &str, epoch: u64) -> Entry {
        Entry {
            partition,
            owner: http.into(),
            http: http.into(),
            epoch,
        }
    }

    #[test]
    fn the_latest_claim_of_a_partition_wins_whatever_order_entries_are_read_in() {
        let directory = Directory::default();
        directory.learn(entry(0, "b:1", 2));
        directory.learn(entry(0, "a:1", 1));
        directory.learn(entry(1, "a:1", 3));
        assert_eq!(directory.holder(0).unwrap().http, "b:1");
        assert_eq!(directory.instances(), ["a:1", "b:1"]);
        assert_eq!(directory.holder(2), None);
    }
}
