//! `condmon rules check FILE`.

use std::path::PathBuf;

use crate::rules::{RuleSet, RulesError};

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Validate a rule set; print every problem with its location, and warn of business
    /// units no calendar names.
    Check {
        file: PathBuf,
        /// A business unit the ERP uses (repeat the option): warned of if no calendar names
        /// it.
        #[arg(long = "business-unit")]
        business_units: Vec<String>,
    },
}

pub fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Check {
            file,
            business_units,
        } => match RuleSet::load(&file) {
            Ok(rules) => {
                println!(
                    "{}: valid (version {}, {} collection rule(s), {} assessment rule(s), {} scoring rule(s), {} template(s), {} calendar(s), {} owner(s))",
                    file.display(),
                    rules.version,
                    rules.collection_rules.len(),
                    rules.assessment_rules.len(),
                    rules.scoring_rules.len(),
                    rules.templates.len(),
                    rules.calendars.len(),
                    rules.owners.len()
                );
                for warning in rules.calendar_warnings(&business_units) {
                    println!("warning: {warning}");
                }
                Ok(())
            }
            Err(e @ RulesError::Invalid { .. }) => {
                eprintln!("{e}");
                std::process::exit(1);
            }
            Err(e) => Err(e.into()),
        },
    }
}
