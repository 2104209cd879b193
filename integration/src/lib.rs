//! # integration: real servers and real drainer processes for tests and benchmarks
//!
//! Tests here never mock the database. [`MariaDb`] starts a real `mariadbd` (Debian's
//! `mariadb-server`) in a temporary directory on a free loopback port, with its own
//! `server_id` and `gtid_domain_id` and the binlog on in ROW format; it answers before
//! `start` returns, hands out connection options, and is killed and removed when dropped,
//! also when the test panics. Several can run at once (bidirectional tests need two,
//! topology tests three). Every server has two users besides `root`: [`PUMP_USER`]
//! (replication privileges) and [`APPLY_USER`] (write and DDL privileges).
//!
//! [`DrainerCommand`] runs the real `drainer` binary with a generated configuration
//! ([`config_for`]) and reports its exit code and output; [`eventually`] waits on a
//! condition with a deadline instead of sleeping; [`drainer_status`] reads a running
//! drainer's `GET /status` and [`parse_prometheus`] its `GET /metrics`. Shared by the
//! multi-site tests, the demo (`src/bin/demo.rs`) and the benchmarks (`src/bin/bench.rs`):
//! [`two_sites`], [`marked_config_for`], [`mark_counter`], [`Dice`].
//!
//! Children (servers, drainers) run in their own process group and die with the process
//! that started them, so a terminal's Ctrl-C reaches only that process.
//!
//! ## When MariaDB is missing
//! Starting a server fails with [`HarnessError::Missing`], which says how to install it
//! (`apt-get install mariadb-server`). Tests `expect` the server, so a machine without
//! MariaDB fails them loudly; nothing is skipped silently. `.ci/run` installs it.
//!
//! ## Speed
//! `mariadb-install-db` runs once per machine and server version into a template under the
//! system temporary directory; each server starts from a copy (about a second).
//!
//! ```no_run
//! # async fn demo() -> Result<(), integration::HarnessError> {
//! use integration::MariaDb;
//! let site_a = MariaDb::start().await?;
//! let site_b = MariaDb::builder().arg("--binlog-format=STATEMENT").start().await?;
//! site_a.exec(&["CREATE DATABASE app"]).await?;
//! # Ok(()) }
//! ```

pub mod certs;
mod drainer;
mod eventually;
mod http;
mod mariadb;
mod netns;
mod relay;
mod sites;

pub use drainer::{
    assert_line, check_config, config_for, drainer_binary, marked_config_for, replicating,
    replicating_with_failpoint, row, DrainerCommand, DrainerOutput, DrainerProcess, Row,
};
pub use eventually::{eventually, poll_until, Timeout};
pub use http::{drainer_status, http_get, parse_prometheus, sample, Sample};
pub use mariadb::{
    free_port, MariaDb, MariaDbBuilder, APPLY_PASSWORD, APPLY_USER, PUMP_PASSWORD, PUMP_USER,
};
pub use netns::{Bridge, Netns};
pub use relay::RelaySpec;
pub use sites::{
    binlogs_still, direction, mark_counter, text_rows, two_sites, two_writable_sites, Dice,
};

/// Why the harness could not give a test what it asked for.
#[derive(Debug, thiserror::Error)]
pub enum HarnessError {
    /// A program the tests need is not installed; the message says how to install it.
    #[error("{0}")]
    Missing(String),
    #[error("cannot {what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot prepare the MariaDB template data directory: {0}")]
    Template(String),
    #[error("mariadbd (server_id {server_id}, port {port}) did not start: {reason}\n--- error log (last lines) ---\n{log}")]
    Start {
        server_id: u32,
        port: u16,
        reason: String,
        log: String,
    },
    #[error("on {server}, `{sql}`: {source}")]
    Sql {
        server: String,
        sql: String,
        #[source]
        source: mysql_async::Error,
    },
    #[error(transparent)]
    Timeout(#[from] Timeout),
    /// The harness was asked for something it cannot do (a test's mistake).
    #[error("harness misuse: {0}")]
    Usage(String),
}

impl HarnessError {
    pub(crate) fn io(what: impl Into<String>, source: std::io::Error) -> HarnessError {
        HarnessError::Io {
            what: what.into(),
            source,
        }
    }
}
