//! `condmon topics create`.

use super::ConfigArgs;
use crate::kafka;

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Create every topic of the configuration with its partitions and cleanup policy.
    Create(ConfigArgs),
}

pub fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Create(args) => {
            let config = args.load()?;
            let specs = crate::pipeline::changelog::topic_specs(&config);
            let created = super::runtime()?.block_on(kafka::create_topics(&config, &specs))?;
            for (topic, outcome) in created {
                println!("{topic}: {outcome}");
            }
            Ok(())
        }
    }
}
