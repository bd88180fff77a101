//! The command line: one file per subcommand. `anyhow` lives here and in `main` only.

mod bench;
mod export;
mod feed;
mod replay;
mod rules;
mod run;
mod schemas;
mod tail;
mod topics;
mod topology;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::config::Config;

#[derive(Debug, Parser)]
#[command(
    name = "condmon",
    version,
    about = "A continuous Accounts-Receivable Condition Monitor over Kafka."
)]
pub struct Cli {
    /// Log as JSON lines instead of text.
    #[arg(long, global = true, env = "CONDMON_LOG_JSON")]
    log_json: bool,
    #[command(subcommand)]
    command: Command,
}

/// Options shared by the commands that talk to Kafka.
#[derive(Debug, clap::Args)]
pub struct ConfigArgs {
    /// Configuration file.
    #[arg(long, default_value = "topology/condmon.toml", env = "CONDMON_CONFIG")]
    config: PathBuf,
    /// Bootstrap brokers, overriding the file.
    #[arg(long, env = "CONDMON_BROKERS")]
    brokers: Option<String>,
}

impl ConfigArgs {
    fn load(&self) -> anyhow::Result<Config> {
        let mut config = Config::load(&self.config)?;
        if let Some(brokers) = &self.brokers {
            config.kafka.brokers = brokers.clone();
        }
        Ok(config)
    }
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the monitor: consume the ledger topics, evaluate, emit actions.
    Run(run::Args),
    /// Manage the topics.
    Topics {
        #[command(subcommand)]
        command: topics::Command,
    },
    /// Print the topics, stores and operators this configuration runs.
    Topology(topology::Args),
    /// Run the operators over an NDJSON file of input events: no broker needed.
    Replay(replay::Args),
    /// Rule-set tools.
    Rules {
        #[command(subcommand)]
        command: rules::Command,
    },
    /// Schema tools.
    Schemas {
        #[command(subcommand)]
        command: schemas::Command,
    },
    /// Produce the events of an NDJSON file (the replay format) to the input topics as Avro.
    Feed(feed::Args),
    /// Write the input topics over a time range as a replay-format NDJSON file.
    Export(export::Args),
    /// Print the records of an output topic as JSON lines.
    Tail(tail::Args),
    /// Time the hot path in-process over a realistic mixed stream (no broker).
    Bench(bench::Args),
}

pub fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    init_tracing(cli.log_json);
    match cli.command {
        Command::Run(args) => run::run(args),
        Command::Topics { command } => topics::run(command),
        Command::Topology(args) => topology::run(args),
        Command::Replay(args) => replay::run(args),
        Command::Rules { command } => rules::run(command),
        Command::Schemas { command } => schemas::run(command),
        Command::Feed(args) => feed::run(args),
        Command::Export(args) => export::run(args),
        Command::Tail(args) => tail::run(args),
        Command::Bench(args) => bench::run(args),
    }
}

fn init_tracing(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,rdkafka=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}
