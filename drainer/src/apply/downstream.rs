//! The downstream connection: session settings, transactions with retries, DDL, the
//! downstream's own table columns (for the sync modes), the loopback mark and the apply
//! record.
//!
//! ## The apply record
//! Every downstream transaction that applies an upstream transaction also writes, last
//! before its COMMIT, one row of `<mark schema>._drainer_apply_state`: one row per channel,
//! upstream and writer (`worker` 0 is the pipeline's own session, for DDL and streamed
//! transactions; 1 to `worker-count` are the parallel workers). The row holds
//! - `position`: the upstream position after the transaction (a COMMIT whose answer was
//!   lost is settled by reading it);
//! - `low_watermark`: a position up to which every upstream transaction was committed
//!   downstream when the row was written;
//! - `applied_after`: the positions after the transactions this writer committed past
//!   that watermark (workers commit out of upstream order).
//!
//! Committed together, the row and the changes cannot disagree. After any crash the
//! furthest watermark `L` of the channel's rows is a true one, and every transaction
//! committed past it is listed in its writer's row (that writer's own watermark is at or
//! before `L`): a restart resumes after `L` and passes over exactly the listed ones (see
//! [`Applied`] and the pipeline). Rows written before this layout (no watermark) count
//! their `position` as the watermark.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, OptsBuilder};

use pump_reader::event::{charset_of, SessionVars};
use pump_reader::{Position, PositionRecord, Statement, Xid};

use super::sql::{quote, Stmt};
use super::values::Param;
use crate::failpoint;
use std::borrow::Cow;

/// Where and how to connect.
#[derive(Clone)]
pub struct Target {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub password: String,
    /// `sync-mode = 2`: the session drops STRICT_TRANS_TABLES and STRICT_ALL_TABLES, so
    /// rows still apply while a schema change rolls out.
    pub partial: bool,
    /// `loopback-control = true`: every transaction begins with this mark.
    pub mark: Option<Mark>,
    /// The row every transaction records its upstream position in.
    pub record: ApplyRecord,
    /// Sessions of this drainer at once (the pipeline's and one per worker): they share
    /// the server's prepared-statement budget (see [`Target::stmt_cache`]).
    pub sessions: u32,
}

impl Target {
    /// Prepared statements kept per session: room for the shapes of many tables, so a
    /// session does not prepare them again and again (a statement per table, change kind
    /// and row count), while all sessions together keep to half of the server's default
    /// `max_prepared_stmt_count`. A server set lower answers 1461, retried as transient
    /// (a new session starts with none).
    pub fn stmt_cache(&self) -> usize {
        (STMT_BUDGET / self.sessions.max(1) as usize).clamp(STMT_CACHE_MIN, STMT_CACHE_MAX)
    }
}

/// The apply record's row: see the module note.
#[derive(Debug, Clone)]
pub struct ApplyRecord {
    /// The mark table's schema (never replicated).
    pub schema: String,
    pub channel_id: i64,
    /// The upstream, as its identity names it: `server_id:<n>` or the MySQL server uuid.
    pub source: String,
}

/// The apply record's table, in the mark table's schema.
pub const APPLY_TABLE: &str = "_drainer_apply_state";

impl ApplyRecord {
    pub fn qualified(&self) -> String {
        format!("{}.{}", quote(&self.schema), quote(APPLY_TABLE))
    }

    fn create(&self) -> [String; 2] {
        [
            format!("CREATE DATABASE IF NOT EXISTS {}", quote(&self.schema)),
            format!(
                "CREATE TABLE IF NOT EXISTS {} (channel_id BIGINT NOT NULL, \
                 source VARCHAR(255) NOT NULL, worker INT NOT NULL DEFAULT 0, \
                 position TEXT NOT NULL, low_watermark TEXT NULL, applied_after MEDIUMTEXT NULL, \
                 updated_at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) \
                 ON UPDATE CURRENT_TIMESTAMP(6), PRIMARY KEY (channel_id, source, worker)) \
                 ENGINE=InnoDB",
                self.qualified()
            ),
        ]
    }

    /// Brings a table of the first layout (one row per channel and upstream) to the
    /// current one; its rows become worker 0's.
    fn upgrade(&self) -> String {
        format!(
            "ALTER TABLE {} ADD COLUMN worker INT NOT NULL DEFAULT 0 AFTER source, \
             ADD COLUMN low_watermark TEXT NULL AFTER position, \
             ADD COLUMN applied_after MEDIUMTEXT NULL AFTER low_watermark, \
             DROP PRIMARY KEY, ADD PRIMARY KEY (channel_id, source, worker)",
            self.qualified()
        )
    }

    /// The statement that records `stamp` for `worker`, then COMMIT: one round trip, so
    /// its values are literals (utf8mb4 hex strings, whatever the session's SQL mode).
    fn write_and_commit(&self, worker: u32, stamp: &Stamp) -> String {
        format!("{}; COMMIT", self.write(worker, stamp))
    }

    /// The statement writing `stamp` as `worker`'s record.
    fn write(&self, worker: u32, stamp: &Stamp) -> String {
        let json = |p: &Position| {
            serde_json::to_string(&PositionRecord::from(p)).expect("a position record serializes")
        };
        let after: Vec<PositionRecord> = stamp.after.iter().map(PositionRecord::from).collect();
        let after = serde_json::to_string(&after).expect("position records serialize");
        format!(
            "INSERT INTO {} (channel_id, source, worker, position, low_watermark, \
             applied_after) VALUES ({}, {}, {worker}, {}, {}, {}) ON DUPLICATE KEY UPDATE \
             position = VALUES(position), low_watermark = VALUES(low_watermark), \
             applied_after = VALUES(applied_after)",
            self.qualified(),
            self.channel_id,
            text_literal(&self.source),
            text_literal(&json(&stamp.position)),
            text_literal(&json(&stamp.low)),
            text_literal(&after),
        )
    }

    /// The statement that removes this record, for messages to the operator.
    pub fn delete_hint(&self) -> String {
        format!(
            "DELETE FROM {} WHERE channel_id = {} AND source = '{}'",
            self.qualified(),
            self.channel_id,
            self.source.replace('\'', "''")
        )
    }
}

/// `text` as a utf8mb4 string literal in hex: no quote or backslash to escape, under any
/// SQL mode.
fn text_literal(text: &str) -> String {
    use std::fmt::Write;
    let mut out = String::with_capacity(12 + 2 * text.len());
    out.push_str("_utf8mb4 X'");
    for b in text.bytes() {
        write!(out, "{b:02x}").expect("writing to a String");
    }
    out.push('\'');
    out
}

/// What one writer's apply record says: see the module note.
#[derive(Debug, Clone, PartialEq)]
pub struct Stamp {
    /// After the transaction being committed.
    pub position: Position,
    /// Every upstream transaction up to here is committed downstream.
    pub low: Position,
    /// After the transactions this writer committed past `low` (with `position`).
    pub after: Vec<Position>,
}

/// What the apply records of a channel say was applied: every upstream transaction up to
/// `low`, and the ones ending at `after` (all past `low`).
#[derive(Debug, Clone, PartialEq)]
pub struct Applied {
    pub low: Position,
    pub after: Vec<Position>,
}

/// Which of two positions of one upstream is further: by binlog coordinates when both
/// have them, else by GTID state. `None`: they cannot be ordered.
pub fn order(a: &Position, b: &Position) -> Option<std::cmp::Ordering> {
    if !a.coords.file.is_empty() && !b.coords.file.is_empty() {
        a.coords.partial_cmp(&b.coords)
    } else {
        a.gtids.as_ref()?.partial_cmp(b.gtids.as_ref()?)
    }
}

/// Whether `p` is past `low`.
pub fn past(p: &Position, low: &Position) -> bool {
    order(p, low) == Some(std::cmp::Ordering::Greater)
}

/// The loopback mark: a row of the mark table (TiDB Binlog's layout) that every
/// transaction of this channel updates first, so the reverse direction can recognise it.
#[derive(Debug, Clone)]
pub struct Mark {
    pub schema: String,
    pub table: String,
    pub channel_id: i64,
    /// Rows created for the channel, ids 0 to `rows - 1` (one per writer: 0 for the
    /// pipeline's own session, one per worker).
    pub rows: u32,
    /// The `server_id` every session of the channel writes under (`mark-server-id`): it
    /// marks what no mark row can follow, a non-transactional table's rows (logged as
    /// event groups of their own) and DDL.
    pub server_id: u32,
}

impl Mark {
    fn qualified(&self) -> String {
        format!("{}.{}", quote(&self.schema), quote(&self.table))
    }

    /// The mark table (and its schema) if missing; then this channel's rows.
    fn setup(&self) -> ([Stmt; 2], Stmt) {
        let plain = |sql: String| Stmt {
            sql,
            params: Vec::new(),
        };
        let rows: Vec<String> = (0..self.rows)
            .map(|id| format!("({id}, {}, 0, 'drainer')", self.channel_id))
            .collect();
        let create = [
            plain(format!(
                "CREATE DATABASE IF NOT EXISTS {}",
                quote(&self.schema)
            )),
            plain(format!(
                "CREATE TABLE IF NOT EXISTS {} (id BIGINT NOT NULL, channel_id BIGINT NOT NULL \
                 DEFAULT 0, val BIGINT DEFAULT 0, channel_info VARCHAR(64) DEFAULT NULL, \
                 PRIMARY KEY (id, channel_id))",
                self.qualified()
            )),
        ];
        let seed = plain(format!(
            "INSERT IGNORE INTO {} (id, channel_id, val, channel_info) VALUES {}",
            self.qualified(),
            rows.join(", ")
        ));
        (create, seed)
    }

    /// What opens every transaction: BEGIN, then row `id` of this channel up by the number
    /// of upstream transactions it applies (1 unless `txn-batch` grouped several), so the
    /// channel's sum counts upstream transactions applied. One round trip: its values
    /// are integers, written as literals.
    fn begin(&self, id: u32, transactions: u64) -> String {
        format!(
            "BEGIN; UPDATE {} SET val = val + {transactions} WHERE id = {id} AND channel_id = {}",
            self.qualified(),
            self.channel_id
        )
    }
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}@{}:{}", self.user, self.host, self.port)
    }
}

/// A foreign key of a downstream table: the child table and the parent table it
/// references, each as (schema, table).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForeignKey {
    pub child: (String, String),
    pub parent: (String, String),
}

/// A downstream failure, sorted.
#[derive(Debug, thiserror::Error)]
pub enum DownstreamError {
    /// Connection lost, deadlock, lock wait timeout, server going away: worth retrying.
    #[error("downstream (retryable): {0}")]
    Transient(String),
    /// Anything else: the drainer stops, naming the statement.
    #[error("downstream refused `{statement}`: {reason}")]
    Definite {
        statement: String,
        /// The server's error code.
        code: u16,
        reason: String,
    },
}

/// Server error codes worth retrying the whole transaction for.
fn transient(code: u16) -> bool {
    matches!(
        code,
        1205 // lock wait timeout
            | 1213 // deadlock
            | 1040 // too many connections
            | 1053 // server shutdown in progress
            | 1152 // aborted connection
            | 1154
            ..=1161 // network (1153, a packet over max_allowed_packet, is definite)
            | 1461 // max_prepared_stmt_count reached (a new session holds none)
            | 1927 // connection killed
            | 2006 | 2013 // gone away, lost
            | 4031 // disconnected by the server (idle)
    )
}

fn classify(statement: &str, e: mysql_async::Error) -> DownstreamError {
    match &e {
        mysql_async::Error::Server(s) if !transient(s.code) => DownstreamError::Definite {
            statement: statement.chars().take(300).collect(),
            code: s.code,
            reason: e.to_string(),
        },
        _ => DownstreamError::Transient(e.to_string()),
    }
}

/// Errors of a replayed DDL that mean its effect is already there.
fn already_applied(code: u16) -> bool {
    matches!(
        code,
        1007 // database exists
            | 1008 // database does not exist (DROP)
            | 1050 // table exists
            | 1051 // unknown table (DROP)
            | 1060 // duplicate column
            | 1061 // duplicate key name
            | 1091 // can't drop: does not exist
            | 1146 // table does not exist (for a DROP/RENAME replay)
    )
}

/// A call that runs this long gets the server probed on a second connection, every
/// `PROBE_EVERY`; after `PROBE_FAILURES` probes in a row without an answer (each may take
/// `PROBE_TIMEOUT`) the call is abandoned as transient and its connection replaced.
const PROBE_EVERY: Duration = Duration::from_secs(5);
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);
const PROBE_FAILURES: u32 = 3;

/// Prepared statements all sessions of a drainer keep, at most: half of the 16,382 a
/// server allows in all by default.
const STMT_BUDGET: usize = 8_191;
/// Prepared statements kept per session, at least and at most.
const STMT_CACHE_MIN: usize = 64;
const STMT_CACHE_MAX: usize = 1_024;

/// How long connecting and setting up a session may take.
const SETUP_TIMEOUT: Duration = Duration::from_secs(60);

/// Whether the server answers on a new connection within `PROBE_TIMEOUT`, and still has
/// session `id` (the one the call runs in: after a failover behind one address, or a flow
/// dropped by a firewall, another server may answer while the session is gone).
async fn probe(t: &Target, id: u32) -> bool {
    let opts = OptsBuilder::default()
        .ip_or_hostname(t.host.as_str())
        .tcp_port(t.port)
        .user(Some(t.user.as_str()))
        .pass(Some(t.password.as_str()))
        .prefer_socket(false);
    let found = tokio::time::timeout(PROBE_TIMEOUT, async {
        let mut conn = Conn::new(opts).await.ok()?;
        let found: Option<u64> = conn
            .exec_first(
                "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE ID = ?",
                (id,),
            )
            .await
            .ok()?;
        conn.disconnect().await.ok();
        found
    })
    .await
    .ok()
    .flatten();
    found == Some(1)
}

/// Runs `call`, watching the server while it takes long: a long DDL or a lock wait goes
/// on as long as the server answers probes; a hung server or a silently dead connection
/// is given up on within about a minute.
async fn watched<T>(
    target: &Target,
    session: u32,
    call: impl Future<Output = Result<T, DownstreamError>>,
) -> Result<T, DownstreamError> {
    tokio::pin!(call);
    let mut failures = 0;
    loop {
        tokio::select! {
            result = &mut call => return result,
            _ = tokio::time::sleep(PROBE_EVERY) => {}
        }
        let answered = tokio::select! {
            result = &mut call => return result,
            answered = probe(target, session) => answered,
        };
        if answered {
            failures = 0;
        } else {
            failures += 1;
            tracing::warn!(server = ?target, failures, "the downstream does not answer a probe while a statement runs");
            if failures >= PROBE_FAILURES {
                return Err(DownstreamError::Transient(format!(
                    "{target:?} answered none of {PROBE_FAILURES} probes: the connection is \
                     given up and replaced"
                )));
            }
        }
    }
}

/// Which servers a statement goes between: their `sql_mode` bits and collation ids
/// agree only in part.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Flavours {
    pub from_mariadb: bool,
    pub to_mariadb: bool,
}

/// The statements that give a session the context an upstream statement ran in (its
/// QUERY event's status variables, as `mariadb-binlog` replays them), and its start time
/// (`timestamp`, with the event's microseconds): `NOW()`, `CURRENT_TIMESTAMP` defaults and
/// TIMESTAMP literals mean the same downstream. Without the character sets (servers that
/// do not log them), the client set is utf8mb4. Between MySQL and MariaDB the SQL mode is
/// translated ([`sql_mode_for`]) and a collation only one of them numbers so
/// (`utf8mb4_0900_ai_ci`, 255; `utf8mb4_uca1400_ai_ci`, 2304) is given by its
/// character set's name: the downstream's default collation of that set.
pub fn session_context(vars: &SessionVars, timestamp: u32, flavours: Flavours) -> Vec<String> {
    let same = flavours.from_mariadb == flavours.to_mariadb;
    let mut sets = Vec::new();
    // First: its literal is read in the session's SQL mode, which comes next.
    if let Some(zone) = &vars.time_zone {
        sets.push(format!(
            "SET @@session.time_zone = '{}'",
            zone.replace('\\', "\\\\").replace('\'', "''")
        ));
    }
    if vars.flags2.is_some() {
        sets.push(format!(
            "SET @@session.foreign_key_checks = {}, @@session.unique_checks = {}, \
             @@session.sql_auto_is_null = {}",
            u8::from(vars.foreign_key_checks()),
            u8::from(vars.unique_checks()),
            u8::from(vars.auto_is_null())
        ));
    }
    if let Some(mode) = vars.sql_mode {
        sets.push(format!(
            "SET @@session.sql_mode = {}",
            sql_mode_for(mode, flavours)
        ));
    }
    if let Some((increment, offset)) = vars.auto_increment {
        sets.push(format!(
            "SET @@session.auto_increment_increment = {increment}, \
             @@session.auto_increment_offset = {offset}"
        ));
    }
    // Ids below 248 name the same collation on both servers.
    let collation = |set: &str, id: u16| match charset_of(id) {
        Some(name) if !same && id >= 248 => format!("@@session.character_set_{set} = '{name}'"),
        _ => format!("@@session.collation_{set} = {id}"),
    };
    match vars.charset {
        Some([client, connection, server]) => sets.push(format!(
            "SET @@session.character_set_client = {}, {}, {}",
            match charset_of(client) {
                Some(name) if !same && client >= 248 => format!("'{name}'"),
                _ => client.to_string(),
            },
            collation("connection", connection),
            collation("server", server),
        )),
        None => sets.push("SET NAMES utf8mb4".into()),
    }
    if let Some(locale) = vars.lc_time_names {
        sets.push(format!("SET @@session.lc_time_names = {locale}"));
    }
    if let Some(id) = vars.collation_database {
        sets.push(format!("SET {}", collation("database", id)));
    }
    sets.push(match vars.micros {
        Some(us) => format!("SET @@session.timestamp = {timestamp}.{us:06}"),
        None => format!("SET @@session.timestamp = {timestamp}"),
    });
    sets
}

/// `sql_mode` as the downstream reads it. MariaDB and MySQL number the modes alike up to
/// bit 31, except bit 4 (MariaDB's IGNORE_BAD_TABLE_OPTIONS, unused in MySQL), the modes
/// MySQL 8 removed (POSTGRESQL … MYSQL40, bits 8–17; NO_AUTO_CREATE_USER, bit 28: a MySQL
/// 8 server refuses them, as its own replica drops them), and past bit 31, where MySQL's
/// TIME_TRUNCATE_FRACTIONAL (32) and MariaDB's TIME_ROUND_FRACTIONAL (34) each ask for
/// the other server's default.
pub fn sql_mode_for(mode: u64, flavours: Flavours) -> u64 {
    const LOW: u64 = 0xFFFF_FFFF & !(1 << 4);
    const MYSQL_REMOVED: u64 = 0x3FF << 8 | 1 << 28;
    const TRUNCATE: u64 = 1 << 32;
    const ROUND: u64 = 1 << 34;
    match (flavours.from_mariadb, flavours.to_mariadb) {
        (true, true) => mode,
        (false, false) => mode & !MYSQL_REMOVED,
        (false, true) => mode & LOW | if mode & TRUNCATE == 0 { ROUND } else { 0 },
        (true, false) => mode & LOW & !MYSQL_REMOVED | if mode & ROUND == 0 { TRUNCATE } else { 0 },
    }
}

/// A name the server sent, as text.
fn text(b: Vec<u8>) -> String {
    String::from_utf8_lossy(&b).into_owned()
}

/// Makes every event group of the session carry `server_id` (loopback control): what
/// the reverse direction drops. MariaDB only: MySQL has no session `server_id`, so there
/// only the mark row marks (its non-transactional tables are not protected:
/// docs/bidirectional.md says so).
async fn set_server_id(
    conn: &mut Conn,
    server_id: u32,
    version: &str,
) -> Result<(), DownstreamError> {
    if !version.contains("MariaDB") {
        return Ok(());
    }
    let sql = format!("SET SESSION server_id = {server_id}");
    match conn.query_drop(sql.as_str()).await {
        Err(mysql_async::Error::Server(e)) if e.code == 1227 => Err(DownstreamError::Definite {
            statement: sql,
            code: e.code,
            reason: format!(
                "{}: loopback control marks every write of the drainer with its channel's \
                 server id, which needs the BINLOG REPLAY privilege (or SUPER) on the \
                 downstream: GRANT BINLOG REPLAY ON *.* TO the [syncer.to] user",
                e.message
            ),
        }),
        other => other.map_err(|e| classify(&sql, e)),
    }
}

/// One downstream session.
pub struct Downstream {
    target: Arc<Target>,
    conn: Option<Conn>,
    /// `schema.table` → column names, in order; refreshed after DDL.
    columns: HashMap<(String, String), Vec<String>>,
    /// Whether the mark table and rows, and the apply record's table, are known to exist.
    mark_ready: bool,
    record_ready: bool,
    /// A session given up on (its id, and when its server started): killed on the next
    /// connection, so a transaction it may still hold cannot commit later. After a server
    /// restart the id may name another session: then it is left alone.
    stale: Option<(u32, i64)>,
    /// When the server of the current session started (unix seconds).
    server_started: i64,
    /// A transaction is open (between `begin` and `commit`).
    in_txn: bool,
    /// How long the mark updates take.
    mark_seconds: metrics::Histogram,
    /// Which writer this session is: its mark row and apply-record row.
    worker: u32,
    /// After the transactions this writer committed past the last watermark it recorded.
    after: Vec<Position>,
    /// The server is MariaDB (learned at connection).
    mariadb: bool,
    /// The upstream is MariaDB (statements are translated from MySQL otherwise).
    upstream_mariadb: bool,
}

impl Downstream {
    /// The pipeline's own session (writer 0).
    pub fn new(target: Target) -> Self {
        Self::writer(Arc::new(target), 0)
    }

    /// A session to the same server for writer `worker` (listing what this one lists
    /// past the watermark).
    pub fn for_worker(&self, worker: u32) -> Self {
        let mut down = Self::writer(Arc::clone(&self.target), worker);
        down.after = self.after.clone();
        down
    }

    fn writer(target: Arc<Target>, worker: u32) -> Self {
        Downstream {
            target,
            conn: None,
            columns: HashMap::new(),
            mark_ready: false,
            record_ready: false,
            stale: None,
            server_started: 0,
            in_txn: false,
            mark_seconds: crate::metrics::mark_update_seconds(),
            worker,
            after: Vec::new(),
            mariadb: true,
            upstream_mariadb: true,
        }
    }

    /// Statements come from a MySQL upstream (`false`) or a MariaDB one.
    pub fn set_upstream_mariadb(&mut self, mariadb: bool) {
        self.upstream_mariadb = mariadb;
    }

    async fn conn(&mut self) -> Result<&mut Conn, DownstreamError> {
        if self.conn.is_none() {
            let conn = tokio::time::timeout(SETUP_TIMEOUT, self.open())
                .await
                .map_err(|_| {
                    DownstreamError::Transient(format!(
                        "connecting to {:?} and setting up the session took over {} s",
                        self.target,
                        SETUP_TIMEOUT.as_secs()
                    ))
                })??;
            self.conn = Some(conn);
        }
        Ok(self.conn.as_mut().expect("connected above"))
    }

    /// A new session: settings, the drainer's tables (once), the stale connection killed.
    async fn open(&mut self) -> Result<Conn, DownstreamError> {
        let t = &self.target;
        let opts = OptsBuilder::default()
            .ip_or_hostname(t.host.as_str())
            .tcp_port(t.port)
            .user(Some(t.user.as_str()))
            .pass(Some(t.password.as_str()))
            .prefer_socket(false)
            .max_allowed_packet(Some(1 << 30))
            // Prepared statements are cached per connection by their text (one per table
            // and change shape, and per row count of a multi-row statement).
            .stmt_cache_size(Some(t.stmt_cache()))
            // Long DDL (an index on a big table) must not hit a read timeout: none set;
            // a dead link is found by keepalives and the probes of `watched`.
            .wait_timeout(Some(28_800))
            .tcp_keepalive(Some(Duration::from_secs(10)));
        let mut conn = tokio::time::timeout(Duration::from_secs(10), Conn::new(opts))
            .await
            .map_err(|_| DownstreamError::Transient(format!("no answer from {t:?} within 10 s")))?
            .map_err(|e| match &e {
                mysql_async::Error::Server(s) if matches!(s.code, 1044 | 1045 | 1130) => {
                    DownstreamError::Definite {
                        statement: format!("log in to {t:?}"),
                        code: s.code,
                        reason: e.to_string(),
                    }
                }
                _ => DownstreamError::Transient(e.to_string()),
            })?;
        let mut setup = vec!["SET NAMES binary", "SET time_zone = '+00:00'"];
        if t.partial {
            setup.push(
                "SET SESSION sql_mode = REPLACE(REPLACE(REPLACE(@@sql_mode, 'STRICT_TRANS_TABLES', ''), \
                 'STRICT_ALL_TABLES', ''), ',,', ',')",
            );
        }
        for s in setup {
            conn.query_drop(s).await.map_err(|e| classify(s, e))?;
        }
        let sql = "SELECT CAST(UNIX_TIMESTAMP() - VARIABLE_VALUE AS SIGNED), VERSION() \
                   FROM information_schema.GLOBAL_STATUS WHERE VARIABLE_NAME = 'UPTIME'";
        let (started, version): (i64, String) = conn
            .query_first(sql)
            .await
            .map_err(|e| classify(sql, e))?
            .unwrap_or_default();
        self.server_started = started;
        self.mariadb = version.contains("MariaDB");
        if let Some((id, then)) = self.stale {
            // The same server run (start times computed, so a second or two apart) and a
            // session of our user: it is the one given up on.
            let sql =
                "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE ID = ? AND USER = ?";
            let ours: Option<u64> = conn
                .exec_first(sql, (id, self.target.user.as_str()))
                .await
                .map_err(|e| classify(sql, e))?;
            if (self.server_started - then).abs() <= 2 && ours == Some(1) {
                // ER_NO_SUCH_THREAD, ER_KILL_DENIED_ERROR: gone meanwhile, or not ours.
                match conn.query_drop(format!("KILL CONNECTION {id}")).await {
                    Ok(()) => tracing::info!(connection = id, "killed the connection given up on"),
                    Err(mysql_async::Error::Server(e)) if matches!(e.code, 1094 | 1095) => {}
                    Err(e) => return Err(classify("KILL CONNECTION", e)),
                }
            }
            self.stale = None;
        }
        if !self.record_ready {
            for s in t.record.create() {
                conn.query_drop(s.as_str())
                    .await
                    .map_err(|e| classify(&s, e))?;
            }
            let sql = "SELECT COUNT(*) FROM information_schema.COLUMNS \
                       WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? AND COLUMN_NAME = 'worker'";
            let upgraded: Option<u64> = conn
                .exec_first(sql, (t.record.schema.as_str(), APPLY_TABLE))
                .await
                .map_err(|e| classify(sql, e))?;
            if upgraded == Some(0) {
                let alter = t.record.upgrade();
                match conn.query_drop(alter.as_str()).await {
                    Ok(()) => {
                        tracing::info!(table = %t.record.qualified(), "apply record table upgraded: one row per worker")
                    }
                    // Another worker's session upgraded it meanwhile.
                    Err(mysql_async::Error::Server(e)) if already_applied(e.code) => {}
                    Err(e) => return Err(classify(&alter, e)),
                }
            }
            self.record_ready = true;
        }
        if let (Some(mark), false) = (&t.mark, self.mark_ready) {
            let (create, seed) = mark.setup();
            for s in create {
                conn.query_drop(s.sql.as_str())
                    .await
                    .map_err(|e| classify(&s.sql, e))?;
            }
            // The reverse direction finds the channel in the second column: a table
            // that was there before, in another layout, would defeat loop control.
            let sql = "SELECT COLUMN_NAME FROM information_schema.COLUMNS \
                       WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION";
            let names: Vec<String> = conn
                .exec(sql, (mark.schema.as_str(), mark.table.as_str()))
                .await
                .map_err(|e| classify(sql, e))?;
            let layout = ["id", "channel_id", "val", "channel_info"];
            let fits = names.len() >= 3
                && names
                    .iter()
                    .zip(layout)
                    .all(|(n, l)| n.eq_ignore_ascii_case(l));
            if !fits {
                return Err(DownstreamError::Definite {
                    statement: format!("check the mark table {}", mark.qualified()),
                    code: 0,
                    reason: format!(
                        "it has the columns ({}); loop control needs TiDB Binlog's layout \
                         (id, channel_id, val, channel_info): drop or rename it, or set \
                         [syncer] mark-table to another name",
                        names.join(", ")
                    ),
                });
            }
            conn.query_drop(seed.sql.as_str())
                .await
                .map_err(|e| classify(&seed.sql, e))?;
            self.mark_ready = true;
        }
        if let Some(mark) = &t.mark {
            // Last: the drainer's own tables above are set up unmarked (the reverse
            // direction filters their schema anyway).
            set_server_id(&mut conn, mark.server_id, &version).await?;
        }
        Ok(conn)
    }

    /// This writer as it would be after [`Downstream::reset`], without touching `self`: to
    /// stand in while `self` is lent to a task, and to take its place should that task be
    /// given up (its next connection kills `self`'s session first, so what that session
    /// holds open cannot commit later).
    pub fn successor(&self) -> Downstream {
        let mut next = Self::writer(Arc::clone(&self.target), self.worker);
        next.after.clone_from(&self.after);
        next.stale = match &self.conn {
            Some(conn) => Some((conn.id(), self.server_started)),
            None => self.stale,
        };
        next
    }

    /// Drops the session (after a failure); the next call reconnects, and checks the
    /// mark table and rows again (a missing mark row is created then).
    pub fn reset(&mut self) {
        if let Some(conn) = self.conn.take() {
            self.stale = Some((conn.id(), self.server_started));
        }
        self.in_txn = false;
        self.mark_ready = false;
        self.record_ready = false;
    }

    /// Runs `stmts` as one transaction, with the apply record of `position` (the upstream
    /// position after the transaction) last when given. On error the transaction is rolled
    /// back (by the server, as the session is dropped) and nothing of it is committed —
    /// unless the error is the COMMIT's own answer lost: [`Downstream::record`] tells.
    pub async fn apply_txn(
        &mut self,
        stmts: &[Stmt],
        transactions: u64,
        stamp: Option<&Stamp>,
    ) -> Result<(), DownstreamError> {
        if stmts.is_empty() {
            return Ok(());
        }
        self.begin(transactions).await?;
        self.exec(stmts).await?;
        self.commit(stamp).await
    }

    /// The downstream's id for the upstream XA transaction `xid`: the same global id and
    /// branch qualifier, under a format id of this channel's (so it never meets an XA
    /// transaction of the downstream's own clients).
    pub fn xa_id(&self, xid: &Xid) -> Xid {
        let channel = self.target.record.channel_id as u64;
        // Plain arithmetic, not a library hash: the same id after an upgrade.
        let mixed = (0x4452_u64 << 16 | (channel & 0xFFFF))
            ^ u64::from(xid.format_id).wrapping_mul(0x9E37_79B1);
        Xid {
            format_id: (mixed & 0x7FFF_FFFF) as u32,
            ..xid.clone()
        }
    }

    /// Prepares `stmts` downstream as the XA transaction `xid` (`XA START`, the
    /// statements, `XA END`, `XA PREPARE`), as the upstream prepared it; the session is
    /// closed after (it can do nothing else until the transaction ends; the prepared
    /// transaction outlives it). `Ok(false)`: `xid` is prepared downstream already (by a
    /// run that stopped before its checkpoint passed it). No mark row: the channel's
    /// server id marks it (a mark row would stay locked until the XA COMMIT).
    pub async fn prepare_xa(&mut self, xid: &Xid, stmts: &[Stmt]) -> Result<bool, DownstreamError> {
        if !self.begin_xa(xid).await? {
            return Ok(false);
        }
        self.exec(stmts).await?;
        self.end_prepare_xa(xid).await?;
        Ok(true)
    }

    /// `XA START xid`: the open transaction [`Downstream::exec`] adds to. `Ok(false)`: it
    /// is prepared downstream already (nothing opened).
    pub async fn begin_xa(&mut self, xid: &Xid) -> Result<bool, DownstreamError> {
        self.conn().await?;
        if self.target.mark.is_some() && !self.mariadb {
            return Err(DownstreamError::Definite {
                statement: format!("XA START {xid}"),
                code: 0,
                reason: "loopback control cannot mark an XA transaction on a MySQL \
                         downstream (MySQL has no session server_id, and a mark row would \
                         stay locked until the XA COMMIT): it would come back to the \
                         upstream. Commit it there in one phase, or run this channel \
                         without loopback-control"
                    .into(),
            });
        }
        // XAER_DUPID: a transaction of this id exists. Prepared (by a run before), or
        // still open in a session given up on and not yet rolled back by the server.
        let result = self.xa_statement(&format!("XA START {xid}"), 1440).await;
        self.in_txn = matches!(result, Ok(true));
        match result {
            Ok(false) if !self.xa_prepared(xid).await? => Err(DownstreamError::Transient(format!(
                "XA transaction {xid} is still open in another session (one given up \
                     on, not yet rolled back)"
            ))),
            other => other,
        }
    }

    /// `XA END`, `XA PREPARE` of the open XA transaction; the session is closed after.
    pub async fn end_prepare_xa(&mut self, xid: &Xid) -> Result<(), DownstreamError> {
        self.require_txn()?;
        let result = self.text(&format!("XA END {xid}; XA PREPARE {xid}")).await;
        self.in_txn = false;
        match result {
            Ok(()) => {
                self.close().await;
                Ok(())
            }
            Err(e) => {
                self.reset();
                Err(e)
            }
        }
    }

    /// Commits the open XA transaction in one phase, `stamp`'s apply record inside it.
    pub async fn commit_one_phase(
        &mut self,
        xid: &Xid,
        stamp: &Stamp,
    ) -> Result<(), DownstreamError> {
        self.require_txn()?;
        let record = self.target.record.write(self.worker, stamp);
        let result = self
            .text(&format!(
                "{record}; XA END {xid}; XA COMMIT {xid} ONE PHASE"
            ))
            .await;
        self.in_txn = false;
        if result.is_ok() {
            self.recorded(stamp);
        }
        self.reset_on_error(result)
    }

    /// `XA COMMIT xid` or `XA ROLLBACK xid` of a transaction prepared downstream.
    /// `Ok(false)`: none of that id is prepared there (it ended already, before a
    /// restart; or it was prepared upstream before this channel started reading).
    pub async fn end_xa(&mut self, xid: &Xid, commit: bool) -> Result<bool, DownstreamError> {
        let verb = if commit { "COMMIT" } else { "ROLLBACK" };
        // XAER_NOTA: unknown to this session. The server says so too while the session
        // that prepared it is still being closed: `XA RECOVER` tells the two apart.
        match self.xa_statement(&format!("XA {verb} {xid}"), 1397).await {
            Ok(false) if self.xa_prepared(xid).await? => Err(DownstreamError::Transient(format!(
                "XA transaction {xid} is prepared but still held by the session that \
                     prepared it"
            ))),
            other => other,
        }
    }

    /// Whether `xid` is prepared downstream (`XA RECOVER` lists it), whichever session
    /// holds it.
    async fn xa_prepared(&mut self, xid: &Xid) -> Result<bool, DownstreamError> {
        let sql = "XA RECOVER";
        let target = Arc::clone(&self.target);
        let conn = self.conn().await?;
        let session = conn.id();
        let prepared: Vec<(i64, usize, usize, Vec<u8>)> = watched(&target, session, async {
            conn.query(sql).await.map_err(|e| classify(sql, e))
        })
        .await?;
        let data = [xid.gtrid.as_slice(), xid.bqual.as_slice()].concat();
        Ok(prepared.iter().any(|(format, gtrid, bqual, d)| {
            *format == i64::from(xid.format_id)
                && (*gtrid, *bqual) == (xid.gtrid.len(), xid.bqual.len())
                && *d == data
        }))
    }

    /// Runs `sql` (statements that return no rows) as text on this session, watched.
    async fn text(&mut self, sql: &str) -> Result<(), DownstreamError> {
        let target = Arc::clone(&self.target);
        let conn = self.conn().await?;
        let session = conn.id();
        watched(&target, session, async {
            conn.query_drop(sql).await.map_err(|e| classify(sql, e))
        })
        .await
    }

    /// Runs the XA statement `sql`; `Ok(false)` when the server answers with error
    /// `absent` (the transaction is not in the state the statement needs).
    async fn xa_statement(&mut self, sql: &str, absent: u16) -> Result<bool, DownstreamError> {
        let target = Arc::clone(&self.target);
        let conn = self.conn().await?;
        let session = conn.id();
        let result = watched(&target, session, async {
            match conn.query_drop(sql).await {
                Ok(()) => Ok(true),
                Err(mysql_async::Error::Server(e)) if e.code == absent => Ok(false),
                Err(e) => Err(classify(sql, e)),
            }
        })
        .await;
        self.reset_on_error(result)
    }
    /// The apply record of a transaction ending at `position`, committed while every
    /// transaction up to `low` is committed.
    pub fn stamp(&self, position: &Position, low: &Position) -> Stamp {
        self.stamp_all(std::slice::from_ref(position), low)
    }

    /// The apply record of one downstream transaction applying the upstream transactions
    /// ending at `positions` (in upstream order, at least one).
    pub fn stamp_all(&self, positions: &[Position], low: &Position) -> Stamp {
        let after: Vec<Position> = self
            .after
            .iter()
            .chain(positions)
            .filter(|p| past(p, low))
            .cloned()
            .collect();
        Stamp {
            position: positions.last().expect("at least one position").clone(),
            low: low.clone(),
            after,
        }
    }

    /// Transactions committed past the watermark before this start (by any writer): this
    /// writer's records list them too, until the watermark passes them.
    pub fn seed_after(&mut self, positions: &[Position]) {
        self.after = positions.to_vec();
    }

    /// Takes `stamp` as this writer's recorded state: its transaction committed.
    pub fn recorded(&mut self, stamp: &Stamp) {
        self.after.clone_from(&stamp.after);
    }

    /// Opens a transaction, marked (loopback control) for `transactions` upstream ones;
    /// [`Downstream::exec`] adds to it and [`Downstream::commit`] ends it. Any error drops
    /// the session, which rolls it back.
    pub async fn begin(&mut self, transactions: u64) -> Result<(), DownstreamError> {
        let mark = self
            .target
            .mark
            .as_ref()
            .map(|m| m.begin(self.worker, transactions));
        let mark_seconds = self.mark_seconds.clone();
        let target = Arc::clone(&self.target);
        let conn = self.conn().await?;
        let session = conn.id();
        let result = watched(&target, session, async {
            let Some(sql) = &mark else {
                return conn
                    .query_drop("BEGIN")
                    .await
                    .map_err(|e| classify("BEGIN", e));
            };
            let started = std::time::Instant::now();
            // Both statements' answers are read (an error in either is returned); the
            // last OK packet is the UPDATE's.
            conn.query_drop(sql.as_str())
                .await
                .map_err(|e| classify(sql, e))?;
            mark_seconds.record(started.elapsed().as_secs_f64());
            // An UPDATE that finds no row writes nothing to the binlog: the transaction
            // would go out unmarked and come back.
            if conn.affected_rows() != 1 {
                return Err(DownstreamError::Transient(
                    "the mark row of this channel is missing; creating it again".into(),
                ));
            }
            Ok(())
        })
        .await;
        self.in_txn = result.is_ok();
        self.reset_on_error(result)
    }

    /// Runs statements in the open transaction (an error if there is none: the session
    /// that held it was lost, and with it the transaction).
    pub async fn exec(&mut self, stmts: &[Stmt]) -> Result<(), DownstreamError> {
        self.run(
            stmts
                .iter()
                .map(|s| (Cow::Borrowed(s.sql.as_str()), s.values())),
        )
        .await
    }

    /// [`Downstream::exec`], taking the statements: each parameter is handed to the
    /// driver as it is (a string shared with its row image is copied just before its
    /// statement runs, and that image can go once no other statement needs it), so a
    /// large row is not held twice more while it is sent.
    pub async fn exec_owned(&mut self, stmts: Vec<Stmt>) -> Result<(), DownstreamError> {
        self.run(stmts.into_iter().map(|s| {
            let values = s.params.into_iter().map(Param::into_value).collect();
            (Cow::Owned(s.sql), values)
        }))
        .await
    }

    async fn run<'s>(
        &mut self,
        stmts: impl Iterator<Item = (Cow<'s, str>, Vec<mysql_async::Value>)> + Send,
    ) -> Result<(), DownstreamError> {
        self.require_txn()?;
        let target = Arc::clone(&self.target);
        let conn = self.conn().await?;
        let session = conn.id();
        let result = watched(&target, session, async {
            for (i, (sql, values)) in stmts.enumerate() {
                if i == 1 {
                    failpoint::hit("between-rows");
                }
                // Statements without parameters (BINLOG, SAVEPOINT, SET) go as text: the
                // server cannot prepare some of them.
                let result = if values.is_empty() {
                    conn.query_drop(sql.as_ref()).await
                } else {
                    conn.exec_drop(sql.as_ref(), values).await
                };
                result.map_err(|e| classify(&sql, e))?;
            }
            Ok(())
        })
        .await;
        self.reset_on_error(result)
    }

    /// Writes the apply record `stamp` when given, then commits the open transaction.
    pub async fn commit(&mut self, stamp: Option<&Stamp>) -> Result<(), DownstreamError> {
        self.require_txn()?;
        let record = stamp.map(|st| self.target.record.write_and_commit(self.worker, st));
        let target = Arc::clone(&self.target);
        let conn = self.conn().await?;
        let session = conn.id();
        let result = watched(&target, session, async {
            let Some(sql) = &record else {
                return conn
                    .query_drop("COMMIT")
                    .await
                    .map_err(|e| classify("COMMIT", e));
            };
            failpoint::hit("between-rows");
            // The server stops at a failing statement: no COMMIT after a failed record.
            conn.query_drop(sql.as_str())
                .await
                .map_err(|e| classify(sql, e))
        })
        .await;
        self.in_txn = false;
        if let (Ok(()), Some(st)) = (&result, stamp) {
            self.recorded(st);
        }
        self.reset_on_error(result)
    }

    fn require_txn(&self) -> Result<(), DownstreamError> {
        if self.in_txn {
            Ok(())
        } else {
            Err(DownstreamError::Transient(
                "the open transaction was lost with its session".into(),
            ))
        }
    }

    /// Drops the session after a failure (the server rolls back what it held open).
    fn reset_on_error<T>(
        &mut self,
        result: Result<T, DownstreamError>,
    ) -> Result<T, DownstreamError> {
        if result.is_err() {
            self.reset();
        }
        result
    }

    /// Runs a statement (DDL) in its schema context (`USE schema`, unless empty) and the
    /// session context its upstream event carries, as a replica does: SQL mode, character
    /// sets (its bytes are sent as written), time zone, checks, auto-increment settings,
    /// and its start time. Errors meaning "already done" (a replayed DDL) count as
    /// applied; the column cache is cleared. The session is closed after it (it carries
    /// that context); the next call opens a fresh one.
    pub async fn apply_ddl(
        &mut self,
        schema: &str,
        statement: &Statement,
        then: &[String],
    ) -> Result<(), DownstreamError> {
        self.columns.clear();
        let target = Arc::clone(&self.target);
        let upstream_mariadb = self.upstream_mariadb;
        self.conn().await?;
        // Learned as the session opened.
        let mariadb = self.mariadb;
        let conn = self.conn().await?;
        let session = conn.id();
        let sql = statement.text.as_str();
        let result = watched(&target, session, async {
            if !schema.is_empty() {
                let use_db = format!("USE `{}`", schema.replace('`', "``"));
                conn.query_drop(use_db.as_str()).await.map_err(|e| classify(&use_db, e))?;
            }
            let flavours = Flavours {
                from_mariadb: upstream_mariadb,
                to_mariadb: mariadb,
            };
            let mut sets = session_context(&statement.vars, statement.timestamp, flavours);
            if mariadb {
                // An ALTER of a system-versioned table that reached the binlog was allowed
                // upstream (a session setting the binlog does not record): keep history.
                sets.push("SET @@session.system_versioning_alter_history = KEEP".into());
            }
            for set in sets {
                conn.query_drop(set.as_str()).await.map_err(|e| classify(&set, e))?;
            }
            match conn.query_drop(statement.bytes.as_ref()).await {
                Err(mysql_async::Error::Server(s)) if already_applied(s.code) => {
                    tracing::info!(statement = sql, reason = %s.message, "DDL already applied downstream");
                }
                other => other.map_err(|e| classify(sql, e))?,
            }
            if !then.is_empty() {
                // Written by the drainer, in UTF-8, whatever the statement's client set.
                conn.query_drop("SET NAMES utf8mb4")
                    .await
                    .map_err(|e| classify("SET NAMES utf8mb4", e))?;
            }
            for next in then {
                conn.query_drop(next.as_str()).await.map_err(|e| classify(next, e))?;
            }
            Ok(())
        })
        .await;
        match &result {
            Err(DownstreamError::Transient(_)) => self.reset(),
            _ => self.close().await,
        }
        result
    }

    /// Ends the session cleanly (nothing is open in it); the next call opens a new one.
    pub async fn close(&mut self) {
        if let Some(conn) = self.conn.take() {
            if tokio::time::timeout(Duration::from_secs(5), conn.disconnect())
                .await
                .is_err()
            {
                tracing::debug!("the downstream did not answer a disconnect in time");
            }
        }
        self.in_txn = false;
    }

    /// Writes the apply record `stamp` in a transaction of its own (after DDL, which
    /// cannot share one).
    pub async fn write_record(&mut self, stamp: &Stamp) -> Result<(), DownstreamError> {
        // Autocommitted; its COMMIT finds nothing open.
        let sql = self.target.record.write_and_commit(self.worker, stamp);
        let result = self.text(&sql).await;
        match &result {
            Ok(()) => self.recorded(stamp),
            Err(_) => self.reset(),
        }
        result
    }

    /// This writer's recorded position: after the last upstream transaction it committed
    /// (`None`: no record yet). A shared lock waits for a session still holding the row
    /// (its transaction committing or rolling back): the answer is final.
    pub async fn record(&mut self) -> Result<Option<Position>, DownstreamError> {
        let rows = self.record_rows(Some(self.worker)).await?;
        Ok(rows.into_iter().next().map(|(position, _, _)| position))
    }

    /// What this channel's apply records (all writers) say was applied; `None`: no record.
    pub async fn applied(&mut self) -> Result<Option<Applied>, DownstreamError> {
        let rows = self.record_rows(None).await?;
        let mut low: Option<Position> = None;
        let mut listed = Vec::new();
        for (position, watermark, after) in rows {
            let watermark = watermark.unwrap_or_else(|| position.clone());
            listed.extend(after);
            listed.push(position);
            low = Some(match low {
                None => watermark,
                Some(l) => match order(&watermark, &l) {
                    Some(std::cmp::Ordering::Greater) => watermark,
                    Some(_) => l,
                    None => {
                        return Err(DownstreamError::Definite {
                            statement: format!("read {}", self.target.record.qualified()),
                            code: 0,
                            reason: format!(
                                "the apply records of this channel name positions of different \
                                 binlog histories ({l} and {watermark}); remove them (`{}`) and \
                                 set the checkpoint",
                                self.target.record.delete_hint()
                            ),
                        })
                    }
                },
            });
        }
        let Some(low) = low else { return Ok(None) };
        let mut after: Vec<Position> = Vec::new();
        for p in listed {
            if past(&p, &low) && !after.contains(&p) {
                after.push(p);
            }
        }
        after.sort_by(|a, b| order(a, b).unwrap_or(std::cmp::Ordering::Equal));
        Ok(Some(Applied { low, after }))
    }

    /// The apply-record rows of this channel (of one writer, when given): position,
    /// watermark, and the positions applied past it.
    async fn record_rows(
        &mut self,
        worker: Option<u32>,
    ) -> Result<Vec<(Position, Option<Position>, Vec<Position>)>, DownstreamError> {
        let target = Arc::clone(&self.target);
        let record = &target.record;
        let conn = self.conn().await?;
        let session = conn.id();
        let sql = format!(
            "SELECT position, low_watermark, applied_after FROM {} \
             WHERE channel_id = ? AND source = ? AND (? IS NULL OR worker = ?) LOCK IN SHARE MODE",
            record.qualified()
        );
        type Row = (String, Option<String>, Option<String>);
        let rows: Vec<Row> = match watched(&target, session, async {
            conn.exec(
                sql.as_str(),
                (record.channel_id, record.source.as_str(), worker, worker),
            )
            .await
            .map_err(|e| classify(&sql, e))
        })
        .await
        {
            Ok(rows) => rows,
            Err(e) => {
                self.reset();
                return Err(e);
            }
        };
        let bad = |text: &str, why: String| DownstreamError::Definite {
            statement: sql.clone(),
            code: 0,
            reason: format!(
                "the apply record {text:?} cannot be read ({why}); if the row was edited by \
                 hand, restore it or remove it (`{}`) and set the checkpoint",
                record.delete_hint()
            ),
        };
        let one = |text: &str| -> Result<Position, DownstreamError> {
            let parsed: PositionRecord =
                serde_json::from_str(text).map_err(|e| bad(text, e.to_string()))?;
            Position::try_from(&parsed).map_err(|e| bad(text, e.to_string()))
        };
        let mut out = Vec::new();
        for (position, low, after) in rows {
            let after = match after {
                Some(text) => {
                    let parsed: Vec<PositionRecord> =
                        serde_json::from_str(&text).map_err(|e| bad(&text, e.to_string()))?;
                    parsed
                        .iter()
                        .map(|r| Position::try_from(r).map_err(|e| bad(&text, e.to_string())))
                        .collect::<Result<_, _>>()?
                }
                None => Vec::new(),
            };
            out.push((one(&position)?, low.as_deref().map(one).transpose()?, after));
        }
        Ok(out)
    }

    /// The downstream's columns of `schema.table`, in order (cached until the next DDL).
    pub async fn columns(
        &mut self,
        schema: &str,
        table: &str,
    ) -> Result<Vec<String>, DownstreamError> {
        let key = (schema.to_owned(), table.to_owned());
        if let Some(c) = self.columns.get(&key) {
            return Ok(c.clone());
        }
        let target = Arc::clone(&self.target);
        let conn = self.conn().await?;
        let session = conn.id();
        let sql = "SELECT COLUMN_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? \
                   ORDER BY ORDINAL_POSITION";
        let names: Vec<Vec<u8>> = match watched(&target, session, async {
            conn.exec(sql, (schema, table))
                .await
                .map_err(|e| classify(sql, e))
        })
        .await
        {
            Ok(names) => names,
            Err(e) => {
                self.reset();
                return Err(e);
            }
        };
        let names: Vec<String> = names
            .into_iter()
            .map(|n| String::from_utf8_lossy(&n).into_owned())
            .collect();
        self.columns.insert(key, names.clone());
        Ok(names)
    }

    /// The foreign keys of the downstream's tables in `schemas`.
    pub async fn foreign_keys(
        &mut self,
        schemas: &[String],
    ) -> Result<Vec<ForeignKey>, DownstreamError> {
        let sql = "SELECT CONSTRAINT_SCHEMA, TABLE_NAME, UNIQUE_CONSTRAINT_SCHEMA, \
                   REFERENCED_TABLE_NAME FROM information_schema.REFERENTIAL_CONSTRAINTS \
                   WHERE CONSTRAINT_SCHEMA = ?";
        type Row = (Vec<u8>, Vec<u8>, Vec<u8>, Vec<u8>);
        let rows: Vec<Row> = self.per_schema(sql, schemas).await?;
        Ok(rows
            .into_iter()
            .map(|(a, b, c, d)| ForeignKey {
                child: (text(a), text(b)),
                parent: (text(c), text(d)),
            })
            .collect())
    }

    /// The downstream's tables in `schemas` that have triggers.
    pub async fn triggered_tables(
        &mut self,
        schemas: &[String],
    ) -> Result<std::collections::HashSet<(String, String)>, DownstreamError> {
        let sql = "SELECT DISTINCT EVENT_OBJECT_SCHEMA, EVENT_OBJECT_TABLE \
                   FROM information_schema.TRIGGERS WHERE EVENT_OBJECT_SCHEMA = ?";
        let rows: Vec<(Vec<u8>, Vec<u8>)> = self.per_schema(sql, schemas).await?;
        Ok(rows.into_iter().map(|(s, t)| (text(s), text(t))).collect())
    }

    /// The rows of `sql` (one parameter: a schema) for each of `schemas`. One query per
    /// schema, each naming it: the server opens only that schema's tables (a scan of
    /// every schema would open every table and view there is, `sys` included).
    async fn per_schema<R: mysql_async::prelude::FromRow + Send + 'static>(
        &mut self,
        sql: &str,
        schemas: &[String],
    ) -> Result<Vec<R>, DownstreamError> {
        let target = Arc::clone(&self.target);
        let conn = self.conn().await?;
        let session = conn.id();
        let result = watched(&target, session, async {
            let mut rows = Vec::new();
            for schema in schemas {
                let found: Vec<R> = conn
                    .exec(sql, (schema.as_str(),))
                    .await
                    .map_err(|e| classify(sql, e))?;
                rows.extend(found);
            }
            Ok(rows)
        })
        .await;
        self.reset_on_error(result)
    }

    /// Forgets cached downstream columns (after DDL, or an "unknown column" error).
    pub fn forget_columns(&mut self) {
        self.columns.clear();
    }

    /// Forgets the cached columns of one table.
    pub fn forget_table(&mut self, schema: &str, table: &str) {
        self.columns.remove(&(schema.to_owned(), table.to_owned()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MARIA_TO_MARIA: Flavours = Flavours {
        from_mariadb: true,
        to_mariadb: true,
    };
    const MYSQL_TO_MARIA: Flavours = Flavours {
        from_mariadb: false,
        to_mariadb: true,
    };
    const MARIA_TO_MYSQL: Flavours = Flavours {
        from_mariadb: true,
        to_mariadb: false,
    };

    #[test]
    fn sql_modes_translate_between_mysql_and_mariadb() {
        // MariaDB 10.11's default: STRICT_TRANS_TABLES, ERROR_FOR_DIVISION_BY_ZERO,
        // NO_AUTO_CREATE_USER, NO_ENGINE_SUBSTITUTION.
        let maria = 1 << 21 | 1 << 26 | 1 << 28 | 1 << 30;
        assert_eq!(sql_mode_for(maria, MARIA_TO_MARIA), maria);
        // MySQL 8 refuses NO_AUTO_CREATE_USER; it rounds fractional seconds unless told
        // to truncate, as MariaDB does.
        assert_eq!(
            sql_mode_for(maria, MARIA_TO_MYSQL),
            1 << 21 | 1 << 26 | 1 << 30 | 1 << 32
        );
        // MySQL 8's default (ONLY_FULL_GROUP_BY, STRICT_TRANS_TABLES, NO_ZERO_IN_DATE,
        // NO_ZERO_DATE, ERROR_FOR_DIVISION_BY_ZERO, NO_ENGINE_SUBSTITUTION): rounding is
        // MariaDB's TIME_ROUND_FRACTIONAL.
        let mysql = 1 << 5 | 1 << 21 | 1 << 23 | 1 << 24 | 1 << 26 | 1 << 30;
        assert_eq!(sql_mode_for(mysql, MYSQL_TO_MARIA), mysql | 1 << 34);
        assert_eq!(
            sql_mode_for(mysql | 1 << 32 | 1 << 4, MYSQL_TO_MARIA),
            mysql,
            "TIME_TRUNCATE_FRACTIONAL is MariaDB's default; bit 4 means nothing in MySQL"
        );
        // MariaDB's modes past bit 31 (EMPTY_STRING_IS_NULL) have no MySQL meaning.
        assert_eq!(
            sql_mode_for(1 << 33 | 1 << 34, MARIA_TO_MYSQL),
            0,
            "rounding, MySQL's default"
        );
    }

    #[test]
    fn collations_one_server_does_not_number_go_by_their_character_set() {
        let vars = SessionVars {
            charset: Some([255, 255, 45]),
            collation_database: Some(2304),
            ..SessionVars::default()
        };
        let sets = session_context(&vars, 1, MYSQL_TO_MARIA).join("; ");
        assert!(
            sets.contains(
                "SET @@session.character_set_client = 'utf8mb4', \
                 @@session.character_set_connection = 'utf8mb4', \
                 @@session.collation_server = 45"
            ),
            "{sets}"
        );
        assert!(
            sets.contains("SET @@session.character_set_database = 'utf8mb4'"),
            "{sets}"
        );
        let same = session_context(&vars, 1, MARIA_TO_MARIA).join("; ");
        assert!(
            same.contains("character_set_client = 255, @@session.collation_connection = 255"),
            "{same}"
        );
    }

    #[test]
    fn text_literals_need_no_escaping() {
        assert_eq!(text_literal("a'\\é"), "_utf8mb4 X'61275cc3a9'");
        assert_eq!(text_literal(""), "_utf8mb4 X''");
    }

    fn at(pos: u64) -> Position {
        Position {
            coords: pump_reader::BinlogCoords::new("binlog.000001", pos),
            gtids: None,
        }
    }

    fn writer() -> Downstream {
        Downstream::new(Target {
            host: "127.0.0.1".into(),
            port: 1,
            user: "u".into(),
            password: String::new(),
            partial: false,
            mark: None,
            record: ApplyRecord {
                schema: "retl".into(),
                channel_id: 1,
                source: "server_id:1".into(),
            },
            sessions: 1,
        })
    }

    #[test]
    fn sessions_share_the_prepared_statement_budget() {
        let cache = |sessions| {
            Target {
                sessions,
                ..writer().target.as_ref().clone()
            }
            .stmt_cache()
        };
        assert_eq!(cache(1), STMT_CACHE_MAX);
        assert_eq!(cache(5), STMT_CACHE_MAX);
        assert_eq!(cache(17), 481);
        assert_eq!(cache(1000), STMT_CACHE_MIN);
        assert!(cache(17) * 17 <= 16_382 / 2);
    }

    #[test]
    fn a_record_lists_what_its_writer_committed_past_the_watermark() {
        let mut down = writer();
        // Passed over at start (committed before it, past the watermark).
        down.seed_after(&[at(500), at(900)]);
        let stamp = down.stamp_all(&[at(1200), at(1300)], &at(700));
        assert_eq!(stamp.position, at(1300));
        assert_eq!(stamp.low, at(700));
        assert_eq!(
            stamp.after,
            [at(900), at(1200), at(1300)],
            "500 is covered by 700"
        );
        down.recorded(&stamp);
        // Once the watermark passes them, they drop out; a worker's other sessions share
        // the seed.
        let next = down.stamp(&at(1500), &at(1250));
        assert_eq!(next.after, [at(1300), at(1500)]);
        assert_eq!(
            down.for_worker(2).stamp(&at(1600), &at(1000)).after,
            [at(1200), at(1300), at(1600)]
        );
        // Writer 0 after a barrier: the transaction is its own watermark.
        assert!(down.stamp(&at(2000), &at(2000)).after.is_empty());
    }
}
