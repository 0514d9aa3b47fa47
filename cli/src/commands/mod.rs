//! One module per subcommand; each turns its clap arguments into engine settings and runs them.

mod build;

use crate::args::{Cli, Command};

/// Runs the parsed command line.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Build(args) => build::run(args, &cli.global).await,
        _ => anyhow::bail!("not implemented yet"),
    }
}
