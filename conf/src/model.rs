//! The `drainer.toml` structs. Keys are kebab-case; an unknown key is an error.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::tidb::{TidbCheckpoint, TidbFilterRule, TidbMigrateRule, TidbRelay, TidbSecurity};
use crate::Secret;

/// One direction's whole configuration: the root of `drainer.toml`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Config {
    /// RocksDB directory: checkpoint and schema history.
    #[serde(default = "default_data_dir")]
    pub data_dir: PathBuf,
    /// HTTP listen address for `/status` and `/metrics`, as `host:port`.
    #[serde(default = "default_addr")]
    pub addr: String,
    #[serde(default)]
    pub log_level: LogLevel,
    /// The upstream whose binlog is read.
    pub pump: Pump,
    pub syncer: Syncer,
    /// Log lines go to this file (appended) instead of standard error (TiDB Binlog's
    /// key).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_file: Option<PathBuf>,
    // TiDB Binlog's keys that mean nothing here (`crate::tidb`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub advertise_addr: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detect_interval: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pd_urls: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initial_commit_ts: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub synced_check_time: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compressor: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub security: Option<TidbSecurity>,
}

/// Log verbosity, from least to most.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    Error,
    Warn,
    #[default]
    Info,
    Debug,
    Trace,
}

impl LogLevel {
    pub fn as_str(self) -> &'static str {
        match self {
            LogLevel::Error => "error",
            LogLevel::Warn => "warn",
            LogLevel::Info => "info",
            LogLevel::Debug => "debug",
            LogLevel::Trace => "trace",
        }
    }
}

/// `[pump]`: the upstream server and where to start reading it: its address and login,
/// or (`relay`) the relay in its site that reads it for this drainer.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Pump {
    /// `host:port` of the upstream site's relay (`drainer relay`), instead of `host`,
    /// `port`, `user`, `password`, `server-id` and the `ssl-*` keys: the relay logs in to
    /// the upstream and assigns the replica id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub relay: Option<String>,
    /// `[pump.tls]`: this drainer's certificate for the relay, and the CA the relay's
    /// must chain to. Required with `relay`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<RelayClientTls>,
    /// Required without `relay`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub host: String,
    #[serde(default, skip_serializing_if = "is_zero_u16")]
    pub port: u16,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub user: String,
    /// Overridden by the environment variable `DRAINER_PUMP_PASSWORD` when it is set.
    #[serde(default)]
    pub password: Secret,
    /// TLS to this server: `disabled`, `preferred` (the default: TLS when the server
    /// offers it, unverified), `required` (TLS or no connection, unverified), `verify-ca`
    /// (the certificate must chain to `ssl-ca`), `verify-identity` (and name this host).
    #[serde(default, skip_serializing_if = "SslMode::is_default")]
    pub ssl_mode: SslMode,
    /// PEM file of the CA(s) the server's certificate must chain to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssl_ca: Option<PathBuf>,
    /// PEM file of this client's certificate (chain), for servers that ask for one
    /// (`REQUIRE X509`); with `ssl-key`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssl_cert: Option<PathBuf>,
    /// PEM file of the private key of `ssl-cert`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssl_key: Option<PathBuf>,
    /// The replica server id announced to the upstream; must be unique among its replicas.
    /// Required without `relay`: two readers with one id disconnect each other.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub server_id: u32,
    /// GTID state to start from when `data-dir` holds no checkpoint (MariaDB
    /// `domain-server-seq[,…]` or MySQL `uuid:1-100[,…]`); empty: not used.
    #[serde(default)]
    pub initial_gtid: String,
    /// Binlog file to start from when `data-dir` holds no checkpoint; empty: not used.
    #[serde(default)]
    pub initial_file: String,
    /// Position in `initial-file`.
    #[serde(default = "default_initial_pos")]
    pub initial_pos: u64,
}

/// `[pump.tls]`: how a drainer authenticates to a relay, and the relay to it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct RelayClientTls {
    /// PEM file of the CA the relay's certificate must chain to.
    pub ca: PathBuf,
    /// PEM file of this drainer's certificate (chain), which must chain to the relay's CA.
    pub cert: PathBuf,
    /// PEM file of its private key.
    pub key: PathBuf,
    /// The name the relay's certificate must have, if not the host of `relay`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_name: Option<String>,
}

/// `[syncer]`: how transactions are filtered and applied.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Syncer {
    #[serde(default = "default_worker_count")]
    pub worker_count: u32,
    #[serde(default = "default_txn_batch")]
    pub txn_batch: u32,
    #[serde(default)]
    pub safe_mode: bool,
    /// Safe mode also runs for this long after every start. TiDB Binlog runs it 5 minutes
    /// so that transactions read again after a restart neither fail nor double; here the
    /// apply records do that, so the default is 0 (safe mode keeps upstream order inside
    /// a transaction and overwrites the other site's rows on a key collision).
    #[serde(default = "default_safe_mode_after_start_s")]
    pub safe_mode_after_start_s: u64,
    #[serde(default)]
    pub loopback_control: bool,
    /// With `loopback-control`, how the drainer's transactions are recognised: `table`
    /// (a mark-table row in each) or `comment` (a marker comment on each statement, read
    /// from the binlog's annotations; no mark-table row).
    #[serde(default, skip_serializing_if = "LoopMarker::is_default")]
    pub loop_marker: LoopMarker,
    /// This direction's channel in the mark table; 0 means unset.
    #[serde(default)]
    pub channel_id: i64,
    #[serde(default = "default_true")]
    pub sync_ddl: bool,
    #[serde(default = "default_checkpoint_interval_ms")]
    pub checkpoint_interval_ms: u64,
    /// Statements the schema tracker cannot apply that the operator decided to pass over,
    /// named by their transaction's GTID (`0-1-345`) or starting coordinates
    /// (`binlog.000003:1234`), as the error that stopped the drainer names them.
    #[serde(default)]
    pub skip_ddl: Vec<String>,
    /// Whether the downstream's triggers fire for replicated rows. By default they do
    /// not (as MariaDB's replica, `slave_run_triggers_for_rbr = NO`): the rows the
    /// upstream's triggers wrote are in its binlog already, and rows of a table with
    /// triggers downstream are applied as row events, which fire none.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub fire_triggers: bool,
    /// `schema.table` of the loopback mark table.
    #[serde(default = "default_mark_table")]
    pub mark_table: String,
    /// With `loopback-control`, the `server_id` every downstream session of this channel
    /// writes under (`SET SESSION server_id`), so that the reverse direction recognises
    /// every event group the drainer wrote, a non-transactional table's included (MariaDB
    /// logs those outside the transaction that carries the mark row). Both directions of
    /// a channel use the same one; no server of the topology may have it as its own.
    /// 0: [`MARK_SERVER_ID_BASE`] + `channel-id`.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub mark_server_id: u32,
    /// Comma-separated schemas never replicated.
    #[serde(default = "default_ignore_schemas")]
    pub ignore_schemas: String,
    #[serde(default)]
    pub replicate_do_db: Vec<String>,
    #[serde(default)]
    pub replicate_do_table: Vec<TableName>,
    #[serde(default)]
    pub ignore_table: Vec<TableName>,
    /// `[[syncer.row-filter]]`: per table, a condition on the row (its `where`): only rows
    /// for which it is true are replicated (docs/configuration.md).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub row_filter: Vec<RowFilter>,
    /// `[[syncer.route]]`: schemas and tables that have another name downstream (their
    /// rows and DDL go there; docs/configuration.md).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub route: Vec<Route>,
    /// `[syncer.conflict]`: detect rows the two writers both changed, record them, and
    /// resolve them by each table's policy. Absent: no detection (the upstream's change
    /// applies as it is).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conflict: Option<Conflict>,
    /// The downstream.
    pub to: To,
    // TiDB Binlog's keys (`crate::tidb`): honoured where they mean something here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub db_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sql_mode: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ignore_txn_commit_ts: Option<Vec<i64>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disable_dispatch: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enable_dispatch: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disable_detect: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enable_detect: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load_schema_snapshot: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load_table_infos: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub case_sensitive: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table_migrate_rule: Option<Vec<TidbMigrateRule>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub binlog_filter_rule: Option<std::collections::BTreeMap<String, TidbFilterRule>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub relay: Option<TidbRelay>,
}

/// How loopback control marks the drainer's transactions (`[syncer] loop-marker`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum LoopMarker {
    /// The first statement of each transaction updates the channel's mark-table row.
    #[default]
    Table,
    /// Each statement carries `/* drainer loop-marker channel=N */`, which the reverse
    /// direction reads in the binlog's annotations (MariaDB's ANNOTATE_ROWS, MySQL's
    /// ROWS_QUERY). DDL is marked by the session's server id either way.
    Comment,
}

impl LoopMarker {
    fn is_default(&self) -> bool {
        *self == LoopMarker::Table
    }

    /// The comment a statement of `channel` carries in `comment` mode.
    pub fn comment(channel: i64) -> String {
        format!("/* drainer loop-marker channel={channel} */ ")
    }
}

/// `[syncer.conflict]`: the default policy and the tables with their own.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Conflict {
    #[serde(default)]
    pub policy: ConflictPolicy,
    #[serde(default)]
    pub table: Vec<ConflictTable>,
}

/// What a conflicting row change does (docs/conflicts.md).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ConflictPolicy {
    /// The upstream's change wins, recorded.
    #[default]
    Overwrite,
    /// The downstream row stays; the change is recorded and skipped.
    Keep,
    /// The row with the larger `column` wins on both sites.
    Lww,
    /// The drainer stops, naming the row.
    Stop,
}

/// An entry of `[[syncer.conflict.table]]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct ConflictTable {
    pub db_name: String,
    pub tbl_name: String,
    pub policy: ConflictPolicy,
    /// With `lww`: the column whose larger value wins (a TIMESTAMP(6)/DATETIME(6) the
    /// application keeps, or an integer version).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub column: Option<String>,
}

/// An entry of `[[syncer.row-filter]]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct RowFilter {
    pub db_name: String,
    pub tbl_name: String,
    /// The condition, in a subset of SQL (`region = 'eu' AND amount > 10`).
    #[serde(rename = "where")]
    pub condition: String,
}

/// An entry of `[[syncer.route]]`: the schema `db-name` (every table of it), or its table
/// `tbl-name` alone, under another name downstream.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Route {
    pub db_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tbl_name: Option<String>,
    /// The schema downstream; absent: where `db-name` itself goes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_db_name: Option<String>,
    /// The table's name downstream (with `tbl-name` only); absent: its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_tbl_name: Option<String>,
}

/// An entry of `[[syncer.replicate-do-table]]` or `[[syncer.ignore-table]]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct TableName {
    pub db_name: String,
    pub tbl_name: String,
}

/// `[syncer.to]`: the downstream server.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct To {
    pub host: String,
    pub port: u16,
    pub user: String,
    /// Overridden by the environment variable `DRAINER_TO_PASSWORD` when it is set.
    #[serde(default)]
    pub password: Secret,
    /// TLS to this server: `disabled`, `preferred` (the default: TLS when the server
    /// offers it, unverified), `required` (TLS or no connection, unverified), `verify-ca`
    /// (the certificate must chain to `ssl-ca`), `verify-identity` (and name this host).
    #[serde(default, skip_serializing_if = "SslMode::is_default")]
    pub ssl_mode: SslMode,
    /// PEM file of the CA(s) the server's certificate must chain to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssl_ca: Option<PathBuf>,
    /// PEM file of this client's certificate (chain), for servers that ask for one
    /// (`REQUIRE X509`); with `ssl-key`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssl_cert: Option<PathBuf>,
    /// PEM file of the private key of `ssl-cert`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssl_key: Option<PathBuf>,
    /// 1 = full columns, 2 = partial columns (rows apply while a schema change rolls out).
    #[serde(default = "default_sync_mode")]
    pub sync_mode: u8,
    // TiDB Binlog's keys (`crate::tidb`): honoured where they mean something here.
    #[serde(
        default,
        rename = "encrypted_password",
        skip_serializing_if = "Option::is_none"
    )]
    pub encrypted_password: Option<Secret>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_timeout: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub merge: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub params: Option<std::collections::BTreeMap<String, toml::Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dir: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention_time: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zookeeper_addrs: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kafka_addrs: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kafka_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kafka_max_messages: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kafka_max_message_size: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kafka_client_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topic_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oracle_service_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oracle_connect_string: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub security: Option<TidbSecurity>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkpoint: Option<TidbCheckpoint>,
}

/// `ssl-mode` of a connection to a MariaDB/MySQL server, with the MySQL client's names
/// and meanings.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SslMode {
    /// Plain TCP, even where the server offers TLS.
    Disabled,
    /// TLS where the server offers it, else plain TCP; the certificate is not verified.
    #[default]
    Preferred,
    /// TLS or no connection; the certificate is not verified.
    Required,
    /// TLS, and the server's certificate must chain to `ssl-ca`.
    VerifyCa,
    /// As `verify-ca`, and the certificate must name the host connected to.
    VerifyIdentity,
}

impl SslMode {
    pub fn as_str(self) -> &'static str {
        match self {
            SslMode::Disabled => "disabled",
            SslMode::Preferred => "preferred",
            SslMode::Required => "required",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyIdentity => "verify-identity",
        }
    }

    /// Whether the server's certificate is checked against `ssl-ca`.
    pub fn verifies(self) -> bool {
        matches!(self, SslMode::VerifyCa | SslMode::VerifyIdentity)
    }

    fn is_default(&self) -> bool {
        *self == SslMode::default()
    }
}

/// The TLS keys of one server connection (`[pump]`, `[syncer.to]`), and the section they
/// sit in, for messages (`pump.ssl-ca`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerTls {
    pub section: &'static str,
    pub mode: SslMode,
    pub ca: Option<PathBuf>,
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
}

impl Pump {
    pub fn tls(&self) -> ServerTls {
        ServerTls {
            section: "pump",
            mode: self.ssl_mode,
            ca: self.ssl_ca.clone(),
            cert: self.ssl_cert.clone(),
            key: self.ssl_key.clone(),
        }
    }
}

impl To {
    pub fn tls(&self) -> ServerTls {
        ServerTls {
            section: "syncer.to",
            mode: self.ssl_mode,
            ca: self.ssl_ca.clone(),
            cert: self.ssl_cert.clone(),
            key: self.ssl_key.clone(),
        }
    }
}

impl Syncer {
    /// The `server_id` this channel's downstream sessions write under (see
    /// `mark-server-id`): the configured one, else [`MARK_SERVER_ID_BASE`] + `channel-id`
    /// (`None` when that does not fit a server id: validation reports it).
    pub fn effective_mark_server_id(&self) -> Option<u32> {
        if self.mark_server_id != 0 {
            return Some(self.mark_server_id);
        }
        u32::try_from(self.channel_id)
            .ok()
            .filter(|c| *c < MARK_SERVER_ID_SPAN)
            .map(|c| MARK_SERVER_ID_BASE + c)
    }

    /// The schemas named by `ignore-schemas`, trimmed, empty entries left out.
    pub fn ignored_schemas(&self) -> impl Iterator<Item = &str> {
        self.ignore_schemas
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
    }
}

pub const DEFAULT_WORKER_COUNT: u32 = 16;
pub const DEFAULT_TXN_BATCH: u32 = 20;
pub const DEFAULT_CHECKPOINT_INTERVAL_MS: u64 = 3000;
pub const DEFAULT_MARK_TABLE: &str = "retl._drainer_repl_mark";
/// The default `mark-server-id` is this plus `channel-id`: 4,026,531,840 and up, where no
/// server id derived from an IPv4 address falls (240.0.0.0/4 is reserved).
pub const MARK_SERVER_ID_BASE: u32 = 0xF000_0000;
/// Channel ids below this get a default `mark-server-id`.
pub const MARK_SERVER_ID_SPAN: u32 = 0x0FFF_FFFF;
pub const DEFAULT_IGNORE_SCHEMAS: &str = "INFORMATION_SCHEMA,PERFORMANCE_SCHEMA,mysql";

fn default_data_dir() -> PathBuf {
    PathBuf::from("data.drainer")
}
fn default_addr() -> String {
    "127.0.0.1:8249".to_owned()
}
fn default_initial_pos() -> u64 {
    4
}
fn default_worker_count() -> u32 {
    DEFAULT_WORKER_COUNT
}
fn default_safe_mode_after_start_s() -> u64 {
    0
}
fn default_txn_batch() -> u32 {
    DEFAULT_TXN_BATCH
}
fn is_zero(n: &u32) -> bool {
    *n == 0
}
fn is_zero_u16(n: &u16) -> bool {
    *n == 0
}
fn default_true() -> bool {
    true
}
fn default_checkpoint_interval_ms() -> u64 {
    DEFAULT_CHECKPOINT_INTERVAL_MS
}
fn default_mark_table() -> String {
    DEFAULT_MARK_TABLE.to_owned()
}
fn default_ignore_schemas() -> String {
    DEFAULT_IGNORE_SCHEMAS.to_owned()
}
fn default_sync_mode() -> u8 {
    1
}
