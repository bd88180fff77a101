//! `condmon schemas doc`: the reference of the input fields, from the schemas.

use std::path::PathBuf;

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Print every field of the current input schemas (type, required, meaning) as Markdown:
    /// the README's "Input fields" section is this output.
    Doc {
        /// The schema directory (`manifest.toml` and the `.avsc` files).
        #[arg(long, default_value = "schemas")]
        dir: PathBuf,
    },
    /// Check that every schema version can read what the version before it wrote (backward
    /// compatibility, stream by stream), and that every enum of the input schemas has a
    /// default; exit 1 naming each step and enum that fails.
    Check {
        #[arg(long, default_value = "schemas")]
        dir: PathBuf,
    },
}

pub fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Doc { dir } => {
            print!("{}", crate::codec::reference::markdown(&dir)?);
            Ok(())
        }
        Command::Check { dir } => {
            let steps = crate::codec::evolution::check(&dir)?;
            let mut broken = 0;
            for step in &steps {
                let (older, newer) = (&step.older, &step.newer);
                match &step.problem {
                    None => println!(
                        "{:<18} {} ({}) reads {} ({}): ok",
                        step.stream, newer.1, newer.0, older.1, older.0
                    ),
                    Some(problem) => {
                        broken += 1;
                        println!(
                            "{:<18} {} ({}) cannot read {} ({}): {problem}",
                            step.stream, newer.1, newer.0, older.1, older.0
                        );
                    }
                }
            }
            let missing = crate::codec::evolution::missing_enum_defaults(&dir)?;
            for enum_ in &missing {
                println!("{enum_} has no default: a newer producer's symbol would be refused");
            }
            if !missing.is_empty() {
                eprintln!("{} input enum(s) without a default", missing.len());
                std::process::exit(1);
            }
            if broken > 0 {
                eprintln!(
                    "{broken} of {} schema step(s) are not backward compatible",
                    steps.len()
                );
                std::process::exit(1);
            }
            println!("{} schema step(s), all backward compatible", steps.len());
            Ok(())
        }
    }
}
