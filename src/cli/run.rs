//! `condmon run`: the monitor itself.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;

use super::ConfigArgs;
use crate::api::{self, ApiState};
use crate::kafka;
use crate::metrics::Metrics;
use crate::pipeline::{self, Health, Operator, Runtime};
use crate::rules::RuleSet;
use crate::timer::{Clock, FileClock, SystemClock};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    config: ConfigArgs,
    /// State directory, overriding the file.
    #[arg(long, env = "CONDMON_STATE_DIR")]
    state_dir: Option<PathBuf>,
    /// HTTP listen address for /metrics and the probes, overriding the file.
    #[arg(long, env = "CONDMON_HTTP")]
    http: Option<String>,
    /// HTTP listen address for customer data, overriding the file.
    #[arg(long, env = "CONDMON_API")]
    api: Option<String>,
    /// Where business time comes from: `system`, or `file:PATH` (a file holding a date or an
    /// RFC 3339 time, re-read continuously: for rehearsals and tests).
    #[arg(long, default_value = "system", env = "CONDMON_CLOCK")]
    clock: String,
    /// Create missing topics before starting.
    #[arg(long)]
    create_topics: bool,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let mut config = args.config.load()?;
    if let Some(dir) = args.state_dir {
        config.state_dir = dir;
    }
    if let Some(http) = args.http {
        config.http_listen = http;
    }
    if let Some(api) = args.api {
        config.api_listen = api;
    }
    let rules = RuleSet::load(&config.rules_file)?;
    let catalog = config.schema_catalog().map_err(anyhow::Error::msg)?;
    std::fs::create_dir_all(&config.state_dir)
        .with_context(|| format!("creating {}", config.state_dir.display()))?;
    let store = pipeline::open_store(&config.state_dir, config.state.budget())?;
    let clock: Arc<dyn Clock> = match args.clock.strip_prefix("file:") {
        Some(path) => Arc::new(FileClock::new(path.into()).map_err(anyhow::Error::msg)?),
        None if args.clock == "system" => Arc::new(SystemClock),
        None => anyhow::bail!(
            "--clock must be `system` or `file:PATH`, not `{}`",
            args.clock
        ),
    };
    let metrics = Metrics::new();
    let health = Health::new();
    let operator = Operator::new(Arc::new(rules), Arc::new(catalog));
    super::runtime()?.block_on(async move {
        if args.create_topics {
            let specs = pipeline::changelog::topic_specs(&config);
            for (topic, outcome) in kafka::create_topics(&config, &specs).await? {
                tracing::info!(topic, outcome, "Topic checked.");
            }
        }
        let partitions = check_co_partitioning(&config)?;
        // Who holds which partition: read from the directory topic for as long as this runs.
        let directory = api::Directory::default();
        let stop_directory = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let _directory_reader = {
            let directory = directory.clone();
            tokio::task::block_in_place(|| {
                kafka::spawn_tail(
                    &config,
                    &api::directory::topic(&config),
                    stop_directory.clone(),
                    move |_, value| {
                        if let Some(entry) = value.and_then(|v| serde_json::from_slice(v).ok()) {
                            directory.learn(entry);
                        }
                    },
                )
            })?
        };
        let api_state = ApiState {
            metrics: metrics.clone(),
            health: health.clone(),
            store: store.clone(),
            probes: config.pipeline.probe_limits(),
            operator: operator.clone(),
            clock: clock.clone(),
            directory,
            partitions,
            me: config.http_address(),
            peers: api::Peers::default(),
            token: config
                .api_token()
                .map_err(anyhow::Error::msg)?
                .map(|t| Arc::from(t.as_str())),
        };
        let (listen, data) = (config.http_listen.clone(), config.api_listen.clone());
        tokio::spawn(async move {
            if let Err(e) = api::serve(&listen, &data, api_state).await {
                tracing::error!(error = %e, "HTTP server stopped.");
            }
        });
        let (stop, stopped) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            shutdown_signal().await;
            tracing::info!("Shutting down.");
            let _ = stop.send(true);
        });
        let owner = config
            .kafka
            .instance_name()
            .unwrap_or_else(|| format!("pid-{}", std::process::id()));
        let runtime = Runtime {
            operator,
            config,
            store,
            metrics,
            clock,
            health,
            partitions,
            owner,
            faults: pipeline::Faults::from_env(),
        };
        let result = pipeline::run(runtime, stopped).await;
        stop_directory.store(true, std::sync::atomic::Ordering::Relaxed);
        result?;
        Ok(())
    })
}

/// The per-partition state needs every input topic to have the same partition count: that
/// count. (And the dead-letter topic must exist.)
fn check_co_partitioning(config: &crate::config::Config) -> anyhow::Result<i32> {
    let changelogs: Vec<String> = pipeline::changelog::changelogged()
        .map(|s| pipeline::changelog::topic(config, s))
        .collect();
    // Outputs too: a partition's outputs must land on its own partition number (they are
    // checked there after a crash, see `pipeline::changelog`).
    let mut topics = config.topics.partitioned_inputs();
    topics.extend(changelogs.iter().map(String::as_str));
    topics.extend(
        crate::model::Stream::OUTPUTS
            .iter()
            .map(|s| config.topics.topic(*s)),
    );
    // The dead-letter topic need not be co-partitioned. Missing, condmon still runs (a broker
    // may create it on first use) but says so now: otherwise the first record refused would
    // stop the process with no warning before.
    topics.push(&config.topics.dead_letter);
    let mut counts = tokio::task::block_in_place(|| kafka::partition_counts(config, &topics))?;
    let (dead_letter, dead_letter_partitions) = counts.pop().expect("the dead-letter topic");
    if dead_letter_partitions == 0 {
        tracing::warn!(
            "the dead-letter topic `{dead_letter}` does not exist (`condmon topics create` \
             creates it): the first record condmon refuses will stop it unless the broker \
             creates the topic on first use"
        );
    }
    let first = counts[0].1;
    if first == 0 || counts.iter().any(|(_, n)| *n != first) {
        anyhow::bail!(
            "the input, changelog and output topics must exist and be co-partitioned (same \
             partition count; `condmon topics create` creates them): {counts:?}"
        );
    }
    Ok(first as i32)
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("installing the SIGTERM handler");
    tokio::select! {
        _ = ctrl_c => {}
        _ = term.recv() => {}
    }
}
