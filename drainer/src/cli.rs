//! Command-line interface.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

const EXAMPLES: &str = "\
Examples:
  drainer check-config --config a-to-b.toml   validate the file and preflight both servers
  drainer --config a-to-b.toml                run the direction A -> B in the foreground
  drainer schema show --config a-to-b.toml app.orders   the tracked definition of app.orders

Exit codes: 0 ok, 1 runtime failure, 2 bad configuration, 3 failed preflight.
Passwords may come from DRAINER_PUMP_PASSWORD and DRAINER_TO_PASSWORD instead of the file.";

/// One direction of MySQL/MariaDB replication that never loops.
#[derive(Debug, Parser)]
#[command(name = "drainer", version, after_help = EXAMPLES)]
pub struct Cli {
    /// This direction's configuration file (drainer.toml).
    #[arg(long, short = 'c', value_name = "FILE", global = true)]
    pub config: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print the effective configuration (secrets redacted), then check both servers:
    /// reachable, binlog settings, server ids, privileges.
    CheckConfig,
    /// Inspect the schema history in data-dir.
    Schema {
        #[command(subcommand)]
        action: SchemaAction,
    },
}

#[derive(Debug, Subcommand)]
pub enum SchemaAction {
    /// Print the tracked table definitions (every table, or the one named `db.table`).
    /// Reads data-dir without locking it, so it works while the drainer runs.
    Show {
        /// `db.table`; all tracked tables when left out.
        table: Option<String>,
    },
}
