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
}

pub fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Doc { dir } => {
            print!("{}", crate::codec::reference::markdown(&dir)?);
            Ok(())
        }
    }
}
