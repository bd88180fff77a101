//! Configuration: `topology/condmon.toml` by default; every field has a default, so a file
//! only names what differs. Command-line flags override the broker list, state directory and
//! HTTP address (runtime concerns); the pipeline's meaning stays in the file.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::model::Stream;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub kafka: KafkaConfig,
    pub topics: TopicsConfig,
    pub state_dir: PathBuf,
    pub rules_file: PathBuf,
    pub schemas_dir: PathBuf,
    /// A Confluent-compatible schema registry. When set, schema ids come from it (subjects
    /// `<topic>-value`); otherwise from `schemas_dir/manifest.toml`.
    pub schema_registry_url: Option<String>,
    /// PEM certificates of the authorities that signed the registry's HTTPS certificate
    /// (default: Mozilla's roots).
    pub schema_registry_ca_file: Option<PathBuf>,
    /// A file holding `user:password` for the registry's basic authentication;
    /// `$CONDMON_SCHEMA_REGISTRY_USER_INFO` wins. Credentials are never in this file itself.
    pub schema_registry_user_info_file: Option<PathBuf>,
    /// A file holding a bearer token for the registry; `$CONDMON_SCHEMA_REGISTRY_TOKEN` wins.
    pub schema_registry_token_file: Option<PathBuf>,
    /// Whether condmon registers its own schemas (outputs, repartitioned figures) under their
    /// subjects. Off where a registry's subjects are managed centrally: they must then exist.
    /// The ERP's input subjects are never written.
    pub schema_registry_register_outputs: bool,
    /// Operations: `/metrics`, the probes, `/openapi.json`.
    pub http_listen: String,
    /// Customer data: customers, action lists, reports, conversations (and `/openapi.json`).
    /// Apart from `http_listen` by default, so that what scrapes metrics does not read
    /// customers; the same address serves both on one port.
    pub api_listen: String,
    /// A file holding the bearer token every request for customer data must carry
    /// (`Authorization: Bearer …`); `$CONDMON_API_TOKEN` wins. Neither: no token asked.
    pub api_token_file: Option<PathBuf>,
    /// Where other instances reach this one's customer API (`host:port`; queries for
    /// customers it holds are forwarded there). Default: `$CONDMON_HTTP_ADVERTISED`, else
    /// `api_listen`. On Kubernetes: `$(POD_NAME).<headless service>:9465`.
    pub http_advertised: Option<String>,
    pub pipeline: PipelineConfig,
    pub state: StateConfig,
}

/// RocksDB's memory, shared by every partition and store this node holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StateConfig {
    /// The block cache (index and filter blocks and the memtables' reservation included).
    pub block_cache_mb: usize,
    /// All memtables together.
    pub write_buffer_mb: usize,
}

impl Default for StateConfig {
    fn default() -> Self {
        let budget = crate::state::MemoryBudget::default();
        StateConfig {
            block_cache_mb: budget.block_cache_bytes >> 20,
            write_buffer_mb: budget.write_buffer_bytes >> 20,
        }
    }
}

impl StateConfig {
    pub fn budget(&self) -> crate::state::MemoryBudget {
        crate::state::MemoryBudget {
            block_cache_bytes: self.block_cache_mb << 20,
            write_buffer_bytes: self.write_buffer_mb << 20,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KafkaConfig {
    pub brokers: String,
    pub group_id: String,
    /// This instance's stable name: its static group membership (`group.instance.id`: a
    /// restarted instance gets its partitions back without a rebalance) and its name in the
    /// changelogs' claims. Default: `$CONDMON_INSTANCE_ID` (on Kubernetes, the pod's name),
    /// else none (dynamic membership). Two live instances must never share one.
    pub instance_id: Option<String>,
    /// Join the group as a static member (`group.instance.id` = `instance_id`) when the
    /// instance has a name. Tansu 0.6 rebalances without end when a second static member
    /// joins (measured): turn this off there.
    pub static_membership: bool,
    /// Leave the consumer group when stopped (SIGTERM), so that its partitions move to the
    /// other instances at once (a static member would otherwise keep them until it returns
    /// or its session times out). Turn off for rolling restarts without rebalances.
    pub leave_group_on_shutdown: bool,
    /// Extra librdkafka properties for every client (e.g. security settings).
    pub client: BTreeMap<String, String>,
    /// Extra librdkafka properties for the consumer only (e.g. `session.timeout.ms`: how long
    /// a crashed instance keeps its partitions before the group moves them).
    pub consumer: BTreeMap<String, String>,
    /// Extra librdkafka properties for the producer only. On Tansu 0.6 set
    /// `batch.num.messages = "1"`: it cannot fetch from the middle of a record batch.
    pub producer: BTreeMap<String, String>,
    /// `group`: partitions are shared out by the consumer group (range assignor).
    /// `manual`: this instance reads `partitions` (all when empty) without group membership:
    /// for fixed ownership, and for brokers whose group coordinator does not expire a crashed
    /// member (Tansu 0.6: see the README).
    pub assignment: Assignment,
    pub partitions: Vec<i32>,
    /// How often librdkafka reports its statistics (per-partition lag, broker round trips,
    /// the producer's queue) to the metrics; 0 turns them off.
    pub statistics_interval_ms: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Assignment {
    Group,
    Manual,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TopicsConfig {
    pub items: String,
    pub payments: String,
    pub aging: String,
    pub customers: String,
    pub history: String,
    pub credit_agency: String,
    /// condmon's internal topic: children's figures keyed by their parent.
    pub child_figures: String,
    /// Exchange rates: a compacted topic every instance reads whole.
    pub fx_rates: String,
    pub actions: String,
    pub escalations: String,
    pub conditions: String,
    pub risk_scores: String,
    /// Collectors' commands on actions (keyed by customer) and condmon's answers.
    pub action_commands: String,
    pub command_results: String,
    /// E-mails for the mailer: new actions, reminders, reassignments.
    pub notifications: String,
    /// Letters for the mailer: dunning letters, follow-up letters, statements.
    pub correspondence: String,
    /// Changes asked of the ERP: customer holds, referrals, credit reviews, write-offs.
    pub requests: String,
    /// Conversations, promises and customer calls (keyed by customer).
    pub conversations: String,
    /// Promise statuses as they change; answers to exclusions from dunning.
    pub promise_status: String,
    pub dunning_decisions: String,
    /// Rule documents (TOML), compacted: a newer valid version replaces the rule set live.
    pub rules: String,
    /// condmon's internal topic: input records that arrived on another partition than the
    /// Java clients' murmur2 partitioner gives their key, re-sent to the right one.
    pub repartition: String,
    pub dead_letter: String,
    /// Every topic has this many partitions: the inputs must be co-partitioned.
    pub partitions: i32,
    /// `retention.ms` of the customer input topics (and the repartition topic) when `topics
    /// create` creates them: -1 (the default) keeps records for good. A record deleted before
    /// condmon processed it stops its partition (the ERP must send it again); keep at least the
    /// longest outage condmon must survive.
    pub input_retention_ms: i64,
    /// `retention.ms` of the output and dead-letter topics; none: the broker's default. Keep it
    /// longer than a partition's longest uncommitted batch (minutes): a partition taken up
    /// reads its outputs from the last commit on.
    pub output_retention_ms: Option<i64>,
    pub replication_factor: i32,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PipelineConfig {
    /// Most input records in one batch (one commit); also the most due timers of a partition
    /// one batch fires (a day of many timers is worked through batch after batch).
    pub max_batch: usize,
    /// How long to wait for more records once a batch has one.
    pub linger_ms: u64,
    /// How often to look for due timers and refresh gauges (due timers are also looked for
    /// at once when the business date changes).
    pub tick_ms: u64,
    /// First back-off after a failed produce; doubles up to 30 s.
    pub retry_backoff_ms: u64,
    /// The largest record condmon produces (set as the producer's `message.max.bytes`, which
    /// must not exceed the broker's limit). An output that would be larger dead-letters the
    /// input that caused it; a dead letter is cut to fit.
    pub max_message_bytes: usize,
    /// A dead letter carries at most this much of the refused record's value (the headers then
    /// give its original size and SHA-256).
    pub dead_letter_max_value_bytes: usize,
    /// A partition that has neither state nor changelog (condmon's first start on topics that
    /// already hold records) builds its state from those records without sending the
    /// notifications, letters and ERP requests they would cause: they happened before condmon
    /// ran. From the records that arrive afterwards on, everything is sent.
    pub first_start_quiet: bool,
    /// `/livez` (and `/healthz`) fail when the loop has shown no sign of life for this long:
    /// wedged, not merely waiting for a broker or registry it retries.
    pub liveness_timeout_ms: u64,
    /// `/readyz` fails while a held partition is more input records than this behind.
    pub ready_max_lag: i64,
    /// The system clock may move the business date forward by at most this many days more
    /// than the time that passed (measured by the process); a larger jump is held: the date
    /// stays, timers do not fire, `condmon_clock_jump_held_days` says by how much.
    pub max_clock_jump_days: u32,
    /// A partition taken up while another instance's batch on it is unfinished (its changelog
    /// records without their commit) waits at most this long for that batch's commit before
    /// its first batch: the outputs that batch sent are then known and not sent again. A
    /// crashed holder's batch never commits, so this is also how much later a partition moved
    /// off a crashed instance starts (not one restarted on its state directory: the batch was
    /// its own).
    pub takeover_wait_ms: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            kafka: KafkaConfig::default(),
            topics: TopicsConfig::default(),
            state_dir: PathBuf::from("var/state"),
            rules_file: PathBuf::from("topology/rules.toml"),
            schemas_dir: PathBuf::from("schemas"),
            schema_registry_url: None,
            http_listen: "127.0.0.1:9464".into(),
            api_listen: "127.0.0.1:9465".into(),
            api_token_file: None,
            schema_registry_ca_file: None,
            schema_registry_user_info_file: None,
            schema_registry_token_file: None,
            schema_registry_register_outputs: true,
            http_advertised: None,
            pipeline: PipelineConfig::default(),
            state: StateConfig::default(),
        }
    }
}

impl Default for KafkaConfig {
    fn default() -> Self {
        KafkaConfig {
            brokers: "127.0.0.1:9092".into(),
            group_id: "condmon".into(),
            instance_id: None,
            static_membership: true,
            leave_group_on_shutdown: true,
            client: BTreeMap::new(),
            consumer: BTreeMap::new(),
            producer: BTreeMap::new(),
            assignment: Assignment::Group,
            partitions: Vec::new(),
            statistics_interval_ms: 10_000,
        }
    }
}

impl Default for TopicsConfig {
    fn default() -> Self {
        TopicsConfig {
            items: "ar.items".into(),
            payments: "ar.payments".into(),
            aging: "ar.aging".into(),
            customers: "ar.customers".into(),
            history: "ar.history".into(),
            credit_agency: "ar.credit-agency".into(),
            child_figures: "condmon.child-figures".into(),
            fx_rates: "ar.fx-rates".into(),
            actions: "cm.actions".into(),
            escalations: "cm.escalations".into(),
            conditions: "cm.conditions".into(),
            risk_scores: "cm.risk-scores".into(),
            action_commands: "cm.action-commands".into(),
            command_results: "cm.command-results".into(),
            notifications: "cm.notifications".into(),
            correspondence: "cm.correspondence".into(),
            requests: "cm.requests".into(),
            conversations: "ar.conversations".into(),
            promise_status: "cm.promise-status".into(),
            dunning_decisions: "cm.dunning-decisions".into(),
            rules: "cm.rules".into(),
            repartition: "condmon.repartition".into(),
            dead_letter: "cm.dead-letter".into(),
            partitions: 4,
            replication_factor: 1,
            input_retention_ms: -1,
            output_retention_ms: None,
        }
    }
}

impl PipelineConfig {
    pub fn probe_limits(&self) -> crate::pipeline::ProbeLimits {
        crate::pipeline::ProbeLimits {
            liveness_timeout: std::time::Duration::from_millis(self.liveness_timeout_ms),
            ready_max_lag: self.ready_max_lag,
        }
    }
}

impl Default for PipelineConfig {
    fn default() -> Self {
        PipelineConfig {
            max_batch: 1000,
            linger_ms: 5,
            tick_ms: 1000,
            retry_backoff_ms: 100,
            max_message_bytes: 1_000_000,
            dead_letter_max_value_bytes: 512 * 1024,
            first_start_quiet: true,
            liveness_timeout_ms: 60_000,
            ready_max_lag: 10_000,
            max_clock_jump_days: 1,
            takeover_wait_ms: 5_000,
        }
    }
}

/// Cleanup policy of a topic, as `condmon topics create` sets it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cleanup {
    /// Records are deleted after `retention.ms` (`None`: the broker's default; -1: never).
    Delete {
        retention_ms: Option<i64>,
    },
    Compact,
}

impl Cleanup {
    pub fn as_str(self) -> &'static str {
        match self {
            Cleanup::Delete { .. } => "delete",
            Cleanup::Compact => "compact",
        }
    }

    /// The topic configuration `condmon topics create` sets.
    pub fn properties(self) -> Vec<(&'static str, String)> {
        let mut out = vec![("cleanup.policy", self.as_str().to_string())];
        if let Cleanup::Delete {
            retention_ms: Some(ms),
        } = self
        {
            out.push(("retention.ms", ms.to_string()));
        }
        out
    }
}

/// One topic condmon knows about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicSpec {
    pub name: String,
    pub stream: Option<Stream>,
    pub role: &'static str,
    pub cleanup: Cleanup,
}

impl TopicsConfig {
    pub fn topic(&self, stream: Stream) -> &str {
        match stream {
            Stream::Items => &self.items,
            Stream::Payments => &self.payments,
            Stream::Aging => &self.aging,
            Stream::Customers => &self.customers,
            Stream::History => &self.history,
            Stream::CreditAgency => &self.credit_agency,
            Stream::ChildFigures => &self.child_figures,
            Stream::FxRates => &self.fx_rates,
            Stream::Actions => &self.actions,
            Stream::Escalations => &self.escalations,
            Stream::Conditions => &self.conditions,
            Stream::RiskScores => &self.risk_scores,
            Stream::ActionCommands => &self.action_commands,
            Stream::CommandResults => &self.command_results,
            Stream::Notifications => &self.notifications,
            Stream::Correspondence => &self.correspondence,
            Stream::Requests => &self.requests,
            Stream::Conversations => &self.conversations,
            Stream::PromiseStatus => &self.promise_status,
            Stream::DunningDecisions => &self.dunning_decisions,
        }
    }

    pub fn stream_of(&self, topic: &str) -> Option<Stream> {
        Stream::all().find(|s| self.topic(*s) == topic)
    }

    /// The topics read per partition: the customer streams and the repartition topic. They
    /// must be co-partitioned (one partition number holds all of a customer's records).
    pub fn partitioned_inputs(&self) -> Vec<&str> {
        Stream::INPUTS
            .iter()
            .map(|s| self.topic(*s))
            .chain([self.repartition.as_str()])
            .collect()
    }

    /// What the inputs' records need: kept until processed, whatever the lag.
    fn input_cleanup(&self) -> Cleanup {
        Cleanup::Delete {
            retention_ms: Some(self.input_retention_ms),
        }
    }

    /// Every topic: inputs keyed by customer (so `delete`: compaction would keep one event per
    /// customer), reference data keyed by record (compacted), outputs and the dead letters.
    pub fn all(&self) -> Vec<TopicSpec> {
        let mut specs: Vec<TopicSpec> = Stream::INPUTS
            .into_iter()
            .map(|s| TopicSpec {
                name: self.topic(s).to_string(),
                stream: Some(s),
                role: "input",
                cleanup: self.input_cleanup(),
            })
            .chain(Stream::GLOBAL_INPUTS.into_iter().map(|s| TopicSpec {
                name: self.topic(s).to_string(),
                stream: Some(s),
                role: "global",
                cleanup: Cleanup::Compact,
            }))
            .chain(Stream::OUTPUTS.into_iter().map(|s| TopicSpec {
                name: self.topic(s).to_string(),
                stream: Some(s),
                role: "output",
                cleanup: Cleanup::Delete {
                    retention_ms: self.output_retention_ms,
                },
            }))
            .collect();
        specs.push(TopicSpec {
            name: self.rules.clone(),
            stream: None,
            role: "global",
            cleanup: Cleanup::Compact,
        });
        specs.push(TopicSpec {
            name: self.repartition.clone(),
            stream: None,
            role: "internal",
            cleanup: self.input_cleanup(),
        });
        specs.push(TopicSpec {
            name: self.dead_letter.clone(),
            stream: None,
            role: "dead letters",
            cleanup: Cleanup::Delete {
                retention_ms: self.output_retention_ms,
            },
        });
        specs
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("reading {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Invalid { path: String, message: String },
}

impl KafkaConfig {
    /// The instance's stable name, if it has one (see `instance_id`).
    pub fn instance_name(&self) -> Option<String> {
        self.instance_id
            .clone()
            .or_else(|| std::env::var("CONDMON_INSTANCE_ID").ok())
            .filter(|n| !n.trim().is_empty())
    }
}

impl Config {
    /// Where other instances reach this one's customer API.
    pub fn http_address(&self) -> String {
        self.http_advertised
            .clone()
            .or_else(|| std::env::var("CONDMON_HTTP_ADVERTISED").ok())
            .filter(|a| !a.trim().is_empty())
            .unwrap_or_else(|| self.api_listen.clone())
    }

    /// The bearer token the customer API asks for: `$CONDMON_API_TOKEN`, else the content of
    /// `api_token_file` (trimmed); none when neither is set.
    pub fn api_token(&self) -> Result<Option<String>, String> {
        secret(
            "CONDMON_API_TOKEN",
            "api_token_file",
            self.api_token_file.as_deref(),
        )
    }

    /// The schema catalog condmon runs with: the manifest's, switched to the registry's ids
    /// when one is set (the ERP's subjects looked up, condmon's own registered as configured).
    pub fn schema_catalog(&self) -> Result<crate::codec::SchemaCatalog, String> {
        self.schema_catalog_for(crate::codec::RegistryUse {
            register_inputs: false,
            register_outputs: self.schema_registry_register_outputs,
        })
    }

    /// The schema catalog of a client that registers as `use_` says (`condmon feed` produces
    /// input streams, so it registers their schemas as their producer would).
    pub fn schema_catalog_for(
        &self,
        use_: crate::codec::RegistryUse,
    ) -> Result<crate::codec::SchemaCatalog, String> {
        let catalog =
            crate::codec::SchemaCatalog::load(&self.schemas_dir).map_err(|e| e.to_string())?;
        match &self.schema_registry_url {
            None => Ok(catalog),
            Some(url) => catalog
                .with_registry(
                    self.registry(url)?,
                    |s| self.topics.topic(s).to_string(),
                    use_,
                )
                .map_err(|e| e.to_string()),
        }
    }

    /// The registry client: its trusted authorities and credentials.
    fn registry(&self, url: &str) -> Result<crate::codec::Registry, String> {
        use crate::codec::RegistryAuth;
        let user_info = secret(
            "CONDMON_SCHEMA_REGISTRY_USER_INFO",
            "schema_registry_user_info_file",
            self.schema_registry_user_info_file.as_deref(),
        )?;
        let token = secret(
            "CONDMON_SCHEMA_REGISTRY_TOKEN",
            "schema_registry_token_file",
            self.schema_registry_token_file.as_deref(),
        )?;
        let auth = match (user_info, token) {
            (Some(_), Some(_)) => {
                return Err(
                    "schema registry: both basic credentials and a bearer token are \
                            set; give one"
                        .into(),
                );
            }
            (Some(user_info), None) => {
                Some(RegistryAuth::basic(&user_info).map_err(|e| e.to_string())?)
            }
            (None, Some(token)) => Some(RegistryAuth::Bearer(token)),
            (None, None) => None,
        };
        let ca = match &self.schema_registry_ca_file {
            None => None,
            Some(path) => Some(
                std::fs::read(path)
                    .map_err(|e| format!("schema_registry_ca_file {}: {e}", path.display()))?,
            ),
        };
        crate::codec::Registry::connect(url, ca.as_deref(), auth).map_err(|e| e.to_string())
    }

    /// Reads `path`; relative paths inside it are taken relative to the working directory.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
            path: path.display().to_string(),
            source,
        })?;
        let config: Config = toml::from_str(&text).map_err(|e| ConfigError::Invalid {
            path: path.display().to_string(),
            message: e.to_string(),
        })?;
        if config.pipeline.max_message_bytes < 4096
            || config.pipeline.dead_letter_max_value_bytes > config.pipeline.max_message_bytes
        {
            return Err(ConfigError::Invalid {
                path: path.display().to_string(),
                message: "pipeline.max_message_bytes must be at least 4096 and at least \
                          pipeline.dead_letter_max_value_bytes"
                    .into(),
            });
        }
        if config.topics.partitions < 1 {
            return Err(ConfigError::Invalid {
                path: path.display().to_string(),
                message: "topics.partitions must be at least 1".into(),
            });
        }
        Ok(config)
    }
}

/// A secret from the environment variable `env`, else the trimmed content of `file` (the
/// setting `key`); none when neither is set. An empty file is an error: a mounted secret that
/// lost its content must not silently mean "no credentials".
fn secret(env: &str, key: &str, file: Option<&Path>) -> Result<Option<String>, String> {
    if let Ok(value) = std::env::var(env)
        && !value.trim().is_empty()
    {
        return Ok(Some(value.trim().to_string()));
    }
    let Some(path) = file else {
        return Ok(None);
    };
    let value =
        std::fs::read_to_string(path).map_err(|e| format!("{key} {}: {e}", path.display()))?;
    let value = value.trim();
    if value.is_empty() {
        return Err(format!("{key} {} is empty", path.display()));
    }
    Ok(Some(value.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_configuration_loads_and_names_every_stream() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("topology/condmon.toml");
        let config = Config::load(&path).unwrap();
        for stream in Stream::all() {
            assert_eq!(
                config.topics.stream_of(config.topics.topic(stream)),
                Some(stream)
            );
        }
        assert_eq!(config.topics.all().len(), 23);
    }

    /// Registry credentials come from files (or the environment), one kind at a time; a file
    /// that lost its content is an error, not "no credentials".
    #[test]
    fn registry_credentials_come_from_files_one_kind_at_a_time() {
        let dir = tempfile::tempdir().unwrap();
        let (user_info, token, empty) = (
            dir.path().join("user-info"),
            dir.path().join("token"),
            dir.path().join("empty"),
        );
        std::fs::write(&user_info, "condmon:s3cret\n").unwrap();
        std::fs::write(&token, "t0ken\n").unwrap();
        std::fs::write(&empty, "\n").unwrap();
        let url = "https://registry.example:8081";
        let mut config = Config::default();
        assert!(format!("{:?}", config.registry(url).unwrap()).contains("authenticated: false"));
        config.schema_registry_user_info_file = Some(user_info.clone());
        assert!(format!("{:?}", config.registry(url).unwrap()).contains("authenticated: true"));
        config.schema_registry_token_file = Some(token.clone());
        let err = config.registry(url).unwrap_err();
        assert!(err.contains("give one"), "{err}");
        config.schema_registry_user_info_file = None;
        assert!(format!("{:?}", config.registry(url).unwrap()).contains("authenticated: true"));
        config.schema_registry_token_file = Some(empty);
        let err = config.registry(url).unwrap_err();
        assert!(
            err.contains("schema_registry_token_file") && err.contains("is empty"),
            "{err}"
        );
        config.schema_registry_token_file = None;
        config.schema_registry_ca_file = Some(token);
        let err = config.registry(url).unwrap_err();
        assert!(err.contains("no PEM certificate"), "{err}");
    }

    #[test]
    fn unknown_keys_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(&path, "state_dirr = \"x\"\n").unwrap();
        let err = Config::load(&path).unwrap_err().to_string();
        assert!(err.contains("state_dirr"), "{err}");
    }
}
