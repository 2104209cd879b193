//! # conf: the `drainer.toml` model
//!
//! One `drainer` process replicates one direction and reads one TOML file: `[pump]` names
//! the upstream whose binlog is read, `[syncer]` how transactions are filtered and applied,
//! `[syncer.to]` the downstream. This crate owns that model and nothing else: serde
//! structs with TiDB Binlog's defaults (but `safe-mode-after-start-s`, 0 here: the apply
//! records make replays exact), [`Config::validate`] (pure: no file, no network),
//! and [`Secret`], the password type that prints as `<redacted>` in `Debug` output and
//! when serialized, so a whole configuration can be logged or shown safely.
//!
//! ## Loading
//! [`Config::load`] reads the file, lets `DRAINER_PUMP_PASSWORD` / `DRAINER_TO_PASSWORD`
//! replace the two passwords when they are set, and validates. Errors are
//! [`ConfigError`]s that name the file and the key: a TOML syntax error, an unknown key
//! (every table denies unknown fields), a wrong type, a missing required key, or the list
//! of broken rules ([`Violation`]: key path plus constraint).
//!
//! ## TiDB Binlog's files
//! Every key of TiDB Binlog's drainer.toml loads; [`Config::adopt_tidb`] honours those
//! that mean something here and refuses those it cannot honour safely, and
//! [`Config::tidb_notes`] names the ones that cannot apply (module `tidb`).
//!
//! ## Routes
//! [`Routes`] resolves `[[syncer.route]]`: the downstream name of an upstream schema or
//! table (a table's own rule first, then its schema's).
//!
//! ## Required keys
//! `[pump]` `host`, `port`, `user`, `server-id` and `[syncer.to]` `host`, `port`, `user`
//! have no defaults: a wrong guess there would connect to the wrong server, or register a
//! replica id that disconnects another reader. Everything else defaults as in the
//! configuration reference (docs/configuration.md).
//!
//! ```
//! let text = r#"
//!     [pump]
//!     host = "10.0.0.1"
//!     port = 3306
//!     user = "drainer"
//!     server-id = 4001
//!     [syncer.to]
//!     host = "10.0.1.1"
//!     port = 3306
//!     user = "drainer"
//! "#;
//! let config = conf::Config::parse(text, "drainer.toml".as_ref()).unwrap();
//! assert_eq!(config.syncer.worker_count, 16);
//! assert!(config.validate().is_empty());
//! ```

mod filter;
mod load;
mod model;
mod relay;
mod route;
mod secret;
mod tidb;
mod validate;

pub use filter::Filter;
pub use load::{ConfigError, PasswordSource, PUMP_PASSWORD_ENV, TO_PASSWORD_ENV};
pub use model::*;
pub use relay::*;
pub use route::Routes;
pub use secret::{Secret, REDACTED};
pub use tidb::{
    TidbCheckpoint, TidbFilterRule, TidbMigrateRule, TidbRelay, TidbRuleTable, TidbSecurity,
};
pub use validate::{Violation, MAX_CHECKPOINT_INTERVAL_MS, MAX_WORKER_COUNT};
