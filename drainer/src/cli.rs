//! Command-line interface.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

const EXAMPLES: &str = "\
Examples:
  drainer check-config --config a-to-b.toml   validate the file and preflight both servers
  drainer --config a-to-b.toml                run the direction A -> B in the foreground
  drainer schema show --config a-to-b.toml app.orders   the tracked definition of app.orders
  drainer checkpoint set --config a-to-b.toml --gtid 0-1-1200   resume after GTID 0-1-1200
  drainer relay --config relay-a.toml          serve site A's upstream to other sites
  drainer conflicts show --config a-to-b.toml --since 12h   the recent conflict records
  drainer verify --config a-to-b.toml --tables app.orders   is B's app.orders A's?
  drainer seed --config a-to-b.toml            copy A to a new site B, then run the drainer

Exit codes: 0 ok, 1 runtime failure, 2 bad configuration, 3 failed preflight,
130 a second SIGINT/SIGTERM while stopping (exits at once).
Passwords may come from DRAINER_PUMP_PASSWORD and DRAINER_TO_PASSWORD (a relay's from
DRAINER_UPSTREAM_PASSWORD) instead of the file.";

/// One direction of MySQL/MariaDB replication that never loops.
#[derive(Debug, Parser)]
#[command(name = "drainer", version, after_help = EXAMPLES)]
pub struct Cli {
    /// This direction's configuration file (drainer.toml).
    #[arg(long, short = 'c', value_name = "FILE", global = true)]
    pub config: Option<PathBuf>,

    /// Log lines as JSON objects (one per line, for journald or a log shipper) instead of
    /// text.
    #[arg(long, global = true)]
    pub log_json: bool,

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
    /// Inspect or move the checkpoint in data-dir.
    Checkpoint {
        #[command(subcommand)]
        action: CheckpointAction,
    },
    /// Read the conflict records of this direction (docs/conflicts.md).
    Conflicts {
        #[command(subcommand)]
        action: ConflictsAction,
    },
    /// Check, while this direction replicates, that the downstream holds what the
    /// upstream does: chunks of each table checksummed on both sides at the same point of
    /// history (docs/operations.md). Exit 0 when equal, 1 when anything differs.
    Verify {
        /// The tables (db.table, comma-separated); default: every table the direction
        /// replicates.
        #[arg(long, value_delimiter = ',')]
        tables: Vec<String>,
        /// Every table the direction replicates (the default).
        #[arg(long, conflicts_with = "tables")]
        all: bool,
        /// Rows per chunk; default: sized so that reading a chunk (and holding its
        /// share locks) takes about --chunk-time-ms.
        #[arg(long)]
        chunk_rows: Option<u64>,
        /// The time a chunk's read should take, when --chunk-rows is not given.
        #[arg(long, default_value_t = 500)]
        chunk_time_ms: u64,
        /// How often a chunk that differs is checked again before it is reported.
        #[arg(long, default_value_t = 4)]
        rechecks: u32,
        /// How long to wait for the drainer to answer a chunk, in seconds.
        #[arg(long, default_value_t = 600)]
        wait_s: u64,
        /// Also write the report as JSON to this file.
        #[arg(long, value_name = "FILE")]
        json: Option<PathBuf>,
        /// Make each row that differs on the downstream as the upstream's (in a marked
        /// transaction, recorded in the control table), then compare its chunk again.
        #[arg(long)]
        repair: bool,
    },
    /// Copy the upstream's tables to a new, empty downstream while the upstream keeps
    /// writing, and record where streaming resumes (docs/bidirectional.md, "Adding a
    /// site"); then `drainer --config FILE` streams from exactly there. Run it while no
    /// drainer holds this data-dir; started again after a kill it resumes, and after it
    /// completed it says so.
    Seed {
        /// The tables (db.table, comma-separated); default: every table the direction
        /// replicates.
        #[arg(long, value_delimiter = ',')]
        tables: Vec<String>,
        /// Rows per chunk (each read in its own consistent snapshot and written in one
        /// downstream transaction); default: sized so that a chunk holds about 16 MiB.
        #[arg(long)]
        chunk_rows: Option<u64>,
    },
    /// Serve this site's upstream to drainers in other sites over mutual TLS (--config is
    /// a relay.toml); with `check-config`, check that file and the upstream instead.
    Relay {
        #[command(subcommand)]
        action: Option<RelayAction>,
    },
}

#[derive(Debug, Subcommand)]
pub enum ConflictsAction {
    /// Print the recent conflict records, newest first: where, which row, the kind, the
    /// resolution, the upstream's images and the row found downstream.
    Show {
        /// How far back: a duration (90s, 30m, 12h, 7d) or a time (2026-12-05 13:00:00).
        #[arg(long, default_value = "1d")]
        since: String,
        /// At most this many records.
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
}

#[derive(Debug, Subcommand)]
pub enum RelayAction {
    /// Print the effective relay configuration (secrets redacted), then check its TLS
    /// files and the upstream: reachable, binlog settings, privileges, replica ids.
    CheckConfig,
}

#[derive(Debug, Subcommand)]
pub enum CheckpointAction {
    /// Print the saved position, GTID state and the servers the data-dir belongs to.
    /// Reads data-dir without locking it.
    Show,
    /// Set the position the drainer resumes from (only while it is stopped).
    Set {
        /// A GTID state: MariaDB `domain-server-seq[,…]` or MySQL `uuid:1-100[,…]`.
        #[arg(long, conflicts_with_all = ["file", "pos"])]
        gtid: Option<String>,
        /// A binlog file, with --pos.
        #[arg(long, requires = "pos")]
        file: Option<String>,
        /// The position in --file (at least 4).
        #[arg(long, requires = "file")]
        pos: Option<u64>,
    },
}

#[derive(Debug, Subcommand)]
pub enum SchemaAction {
    /// Print the table definitions tracked at the checkpoint (every table, or the one
    /// named `db.table`). Reads data-dir without locking it, so it works while the drainer
    /// runs.
    Show {
        /// `db.table`; all tracked tables when left out.
        table: Option<String>,
    },
}
