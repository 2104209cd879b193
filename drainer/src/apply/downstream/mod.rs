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
//! A writer has a second row (`worker` + [`record::ALTERNATE`]): the queues of
//! transactions it sends together (`txn-batch = 1`) record in its two rows in turn, each
//! row listing what was committed through it, so that a queue's records do not list the
//! previous queue's transactions too. Every row reads alike at a restart.
//!
//! Committed together, the row and the changes cannot disagree. After any crash the
//! furthest watermark `L` of the channel's rows is a true one, and every transaction
//! committed past it is listed in its writer's row (that writer's own watermark is at or
//! before `L`): a restart resumes after `L` and passes over exactly the listed ones (see
//! [`Applied`] and the pipeline). Rows written before this layout (no watermark) count
//! their `position` as the watermark.
//!
//! "After any crash" needs every session of the crashed run to have ended: one running a
//! text of several transactions ([`Downstream::apply_trips`]) goes on with it after its
//! client is gone. Each session holds its writer's named lock (`GET_LOCK`) while it
//! lives, and [`Downstream::applied`] waits for every writer's lock before it reads.

mod context;
pub mod inline;
mod mark;
mod record;
mod settle;
mod tables;
mod verify;
mod watch;
mod xa;

pub use context::{session_context, sql_mode_for, Flavours};
pub use mark::Mark;
pub use record::{order, past, Applied, ApplyRecord, Listed, Stamp, APPLY_TABLE};
pub use tables::ForeignKey;
use watch::watched;

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use link::Server;
use mysql_async::prelude::Queryable;
use mysql_async::Conn;

use pump_reader::event::{charset_of, SessionVars};
use pump_reader::{GtidSet, Position, PositionRecord, Statement, Xid};

use super::conflict::{self, Check, Op, Policies};
use super::sql::{push_quoted, quote, Stmt};
use super::values::Param;
use crate::failpoint;
use std::borrow::Cow;

/// Where and how to connect.
#[derive(Clone)]
pub struct Target {
    /// The server, its login and TLS.
    pub server: Server,
    /// `sync-mode = 2`: the session drops STRICT_TRANS_TABLES and STRICT_ALL_TABLES, so
    /// rows still apply while a schema change rolls out.
    pub partial: bool,
    /// `loopback-control = true`: every transaction begins with this mark.
    pub mark: Option<Mark>,
    /// `[syncer.conflict]`: detection on, with these policies (the conflict table in the
    /// apply record's schema).
    pub conflicts: Option<Arc<Policies>>,
    /// Where committed conflicts are counted for `/status`.
    pub status: Option<Arc<crate::status::Status>>,
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

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", self.server)
    }
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

/// One transaction as one text of statements ([`Downstream::trip`]).
pub struct Trip {
    /// `START TRANSACTION;\n<mark>;\n<statements>;\n<record>;\nCOMMIT`.
    text: String,
    /// Where each statement ends in `text` (the next begins after `;\n`).
    ends: Vec<usize>,
    /// Which statement is the mark's.
    marked: Option<usize>,
    /// It may run inside a compound statement (see [`Downstream::apply_trips`]): no
    /// `BINLOG` statement (refused there) and no comment marker (a stored program's
    /// statements are logged as the server rewrites them).
    compound: bool,
}

/// How a text of several transactions stopped (see [`Downstream::apply_trips`]).
#[derive(Debug)]
pub struct Stopped {
    /// The transactions known to be committed (the first ones).
    pub committed: usize,
    /// The next ones may be committed too (the answer was lost, or one compound
    /// statement ran them): the apply record tells.
    pub unsure: bool,
    pub error: DownstreamError,
}

impl Stopped {
    /// Nothing was sent: the session could not be had.
    fn before_any(error: DownstreamError) -> Stopped {
        Stopped {
            committed: 0,
            unsure: false,
            error,
        }
    }
}

impl Trip {
    /// Its text's length in bytes.
    pub fn bytes(&self) -> usize {
        self.text.len()
    }
}

/// ER_DUP_ENTRY.
const DUPLICATE_KEY: u16 = 1062;

/// The code of a [`DownstreamError::Definite`] that is a conflict whose table's policy is
/// `stop` (no server sends it): the failure policy stops at once, rebuilding nothing.
pub const CONFLICT_STOP: u16 = u16::MAX;

/// The code of a [`DownstreamError::Definite`] that asks for the transaction finer (no
/// server sends it): a checked multi-row statement matched fewer rows than it carries
/// (which of them conflict, the statement cannot say), or a group of upstream
/// transactions met a conflict (its record names one upstream transaction). The session
/// rolled back and stays open.
pub const CONFLICT_RECHECK: u16 = u16::MAX - 1;

fn recheck(why: &str) -> DownstreamError {
    DownstreamError::Definite {
        statement: "a checked statement".into(),
        code: CONFLICT_RECHECK,
        reason: why.into(),
    }
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

/// A client or server error, sorted: transient (worth trying the transaction again) or
/// definite, naming the statement.
pub(crate) fn classify(statement: &str, e: mysql_async::Error) -> DownstreamError {
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

/// Prepared statements all sessions of a drainer keep, at most: half of the 16,382 a
/// server allows in all by default.
const STMT_BUDGET: usize = 8_191;
/// Prepared statements kept per session, at least and at most.
const STMT_CACHE_MIN: usize = 64;
const STMT_CACHE_MAX: usize = 1_024;

/// How long connecting and setting up a session may take.
const SETUP_TIMEOUT: Duration = Duration::from_secs(60);

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
    columns: HashMap<String, HashMap<String, Arc<[String]>>>,
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
    /// The open transaction applies several upstream ones.
    group: bool,
    /// The verify control table exists (see `verify`).
    verify_ready: bool,
    /// The conflicts settled in the open transaction: counted once it commits.
    settled: Vec<(conflict::Kind, conflict::Resolution)>,
    /// How long the mark updates take.
    mark_seconds: metrics::Histogram,
    /// Which writer this session is: its mark row and apply-record row.
    worker: u32,
    /// After the transactions this writer committed past the last watermark it recorded
    /// in its first row, and in its second ([`record::ALTERNATE`]).
    after: Vec<Arc<Listed>>,
    after_alternate: Vec<Arc<Listed>>,
    /// The next queue sent together records in the second row.
    alternate_next: bool,
    /// The server is MariaDB (learned at connection).
    mariadb: bool,
    /// It takes compound statements (see [`Downstream::apply_trips`]).
    compound: bool,
    /// It has named locks, which let a start wait for a session an earlier run left
    /// (see [`Downstream::applied`]); without them transactions are not sent together.
    writer_locks: bool,
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
        down.after_alternate = self.after_alternate.clone();
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
            settled: Vec::new(),
            group: false,
            verify_ready: false,
            mark_seconds: crate::metrics::mark_update_seconds(),
            worker,
            after: Vec::new(),
            after_alternate: Vec::new(),
            alternate_next: false,
            mariadb: true,
            compound: true,
            writer_locks: true,
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
        let opts = t
            .server
            .opts()
            .max_allowed_packet(Some(1 << 30))
            // Prepared statements are cached per connection by their text (one per table
            // and change shape, and per row count of a multi-row statement).
            .stmt_cache_size(Some(t.stmt_cache()))
            // Long DDL (an index on a big table) must not hit a read timeout: none set;
            // a dead link is found by keepalives and the probes of `watched`.
            .wait_timeout(Some(28_800))
            .tcp_keepalive(Some(Duration::from_secs(10)));
        let mut conn = tokio::time::timeout(Duration::from_secs(10), t.server.session(opts))
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
                e if link::refused_by_tls(e) => DownstreamError::Definite {
                    statement: format!("log in to {t:?}"),
                    code: 0,
                    reason: e.to_string(),
                },
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
                .exec_first(sql, (id, self.target.server.user.as_str()))
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
        // Held while the session lives: see `Downstream::applied`.
        if self.writer_locks {
            let lock = t.record.writer_lock(self.worker);
            let user = t.server.user.as_str();
            if !record::writer_lock(&mut conn, &lock, self.worker, true, user).await? {
                tracing::warn!(
                    worker = self.worker,
                    "the downstream has no named locks \
                    (GET_LOCK): transactions go one per round trip, and a start cannot wait \
                    for a session a killed drainer left running"
                );
                self.writer_locks = false;
            }
        }
        if !self.record_ready {
            for s in t.record.create() {
                conn.query_drop(s.as_str())
                    .await
                    .map_err(|e| classify(&s, e))?;
            }
            let sql = "SELECT COUNT(*) FROM information_schema.COLUMNS \
                       WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? AND COLUMN_NAME = 'worker'";
            let upgraded: Vec<u64> =
                tables::dictionary(&mut conn, sql, (t.record.schema.as_str(), APPLY_TABLE))
                    .await??;
            if upgraded.first() == Some(&0) {
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
            if t.conflicts.is_some() {
                let create = conflict::record::create(&t.record.schema);
                conn.query_drop(create.sql.as_str())
                    .await
                    .map_err(|e| classify(&create.sql, e))?;
            }
            self.record_ready = true;
        }
        if let (Some(mark), false) = (
            t.mark.as_ref().filter(|m| m.comment.is_none()),
            self.mark_ready,
        ) {
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
            let names: Vec<String> =
                tables::dictionary(&mut conn, sql, (mark.schema.as_str(), mark.table.as_str()))
                    .await??;
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
        if let Some(mark) = t.mark.as_ref().filter(|m| m.comment.is_none()) {
            // Last: the drainer's own tables above are set up unmarked (the reverse
            // direction filters their schema anyway).
            set_server_id(&mut conn, mark.server_id, &version).await?;
        }
        Ok(conn)
    }

    /// The conflict policies, when detection is on.
    pub fn conflicts(&self) -> Option<Arc<Policies>> {
        self.target.conflicts.clone()
    }

    /// This writer as it would be after [`Downstream::reset`], without touching `self`: to
    /// stand in while `self` is lent to a task, and to take its place should that task be
    /// given up (its next connection kills `self`'s session first, so what that session
    /// holds open cannot commit later).
    pub fn successor(&self) -> Downstream {
        let mut next = Self::writer(Arc::clone(&self.target), self.worker);
        next.after.clone_from(&self.after);
        next.after_alternate.clone_from(&self.after_alternate);
        next.alternate_next = self.alternate_next;
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
        self.settled.clear();
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
        if let Some(trip) = self.trip(stmts, transactions, stamp) {
            return self.apply_trip(&trip, stamp).await;
        }
        self.begin(transactions).await?;
        self.exec(stmts).await?;
        self.commit(stamp).await
    }

    /// `stmts` as one transaction in one text (see `inline`): `None` when a statement is
    /// checked for conflicts (its matched rows are read one by one), a value has no
    /// literal, the text would be large, or a test arms the failpoint between rows; and
    /// with comment markers, when rows replay as row events (`BINLOG`: sent inside a
    /// text of several statements, their rows were seen to come back unmarked).
    pub fn trip(&self, stmts: &[Stmt], transactions: u64, stamp: Option<&Stamp>) -> Option<Trip> {
        let mark = self.target.mark.as_ref();
        let comment = mark.and_then(|m| m.comment.as_deref());
        if self.in_txn
            || stmts.iter().any(|s| s.check.is_some())
            || (comment.is_some() && stmts.iter().any(|s| s.sql.starts_with("BINLOG")))
            || failpoint::armed("between-rows")
        {
            return None;
        }
        // Sized for what usually goes in, so that the text is not copied as it grows:
        // each statement and its values (a string value quoted as it is), the mark and
        // the record with the positions it lists.
        let values = |s: &Stmt| -> usize {
            s.params
                .iter()
                .map(|p| match p {
                    Param::Shared(b) => b.len() + 12,
                    Param::Plain(_) => 24,
                })
                .sum()
        };
        let listed = stamp.map_or(0, |st| st.after.len() * 96);
        let size = 512 + listed + stmts.iter().map(|s| s.sql.len() + values(s)).sum::<usize>();
        let mut text = String::with_capacity(size);
        let mut ends = Vec::with_capacity(stmts.len() + 4);
        // Not BEGIN, which opens a block inside a compound statement.
        text.push_str("START TRANSACTION");
        ends.push(text.len());
        let mut marked = None;
        if let Some(m) = mark.filter(|m| m.comment.is_none()) {
            text.push_str(";\n");
            m.push_upsert(&mut text, self.worker, transactions);
            ends.push(text.len());
            marked = Some(ends.len() - 1);
        }
        for s in stmts {
            text.push_str(";\n");
            if let Some(c) = comment {
                text.push_str(c);
            }
            inline::inline(&s.sql, &s.params, &mut text)?;
            ends.push(text.len());
            if text.len() > inline::MAX_TEXT {
                return None;
            }
        }
        if let Some(st) = stamp {
            text.push_str(";\n");
            self.target.record.write_into(self.worker, st, &mut text);
            ends.push(text.len());
        }
        text.push_str(";\nCOMMIT");
        ends.push(text.len());
        let compound = comment.is_none() && !stmts.iter().any(|s| s.sql.starts_with("BINLOG"));
        Some(Trip {
            text,
            ends,
            marked,
            compound,
        })
    }

    /// Sends `trip` and reads every statement's answer; a failing one is named (the
    /// server runs none after it, so COMMIT is never reached and the session, dropped,
    /// rolls the transaction back).
    async fn apply_trip(
        &mut self,
        trip: &Trip,
        stamp: Option<&Stamp>,
    ) -> Result<(), DownstreamError> {
        let stamps: Vec<Stamp> = stamp.into_iter().cloned().collect();
        self.send_trips(std::slice::from_ref(trip), &stamps)
            .await
            .map_err(|stop| stop.error)
    }

    /// Several upstream transactions, each its own downstream transaction (its mark, its
    /// statements, its record and COMMIT: [`Downstream::trip`]), sent one after the other
    /// in one text: one round trip for them all. `stamps` are their records, in order.
    ///
    /// On MariaDB they run inside one compound statement (`BEGIN NOT ATOMIC … END`),
    /// which answers once: a text of statements is answered statement by statement as
    /// each finishes, and every answer that arrives on its own wakes the drainer (most
    /// of its CPU with one downstream transaction per upstream one). Each transaction
    /// still commits on its own and is logged as its own event group; a failing
    /// statement ends the compound statement, its transaction left open (the session is
    /// dropped, which rolls it back), and which of the earlier ones committed is then
    /// for the apply record to say. A server that refuses compound statements (an
    /// `sql_mode` with ORACLE, or not MariaDB) gets the plain text from then on.
    ///
    /// On a failure: how many committed for certain, whether more may have, and the error.
    pub async fn apply_trips(&mut self, trips: &[Trip], stamps: &[Stamp]) -> Result<(), Stopped> {
        if self.mariadb && self.compound && trips.len() > 1 && trips.iter().all(|t| t.compound) {
            return self.send_compound(trips, stamps).await;
        }
        self.send_trips(trips, stamps).await
    }

    /// Whether transactions may be sent together ([`Downstream::apply_trips`]): only
    /// where a start can wait for a session left running such a text (named locks).
    /// Opens the session to learn it.
    pub async fn sends_together(&mut self) -> Result<bool, DownstreamError> {
        self.conn().await?;
        Ok(self.writer_locks)
    }

    /// `trips` in one compound statement: see [`Downstream::apply_trips`].
    async fn send_compound(&mut self, trips: &[Trip], stamps: &[Stamp]) -> Result<(), Stopped> {
        let size = trips.iter().map(|t| t.text.len() + 2).sum::<usize>() + 24;
        let mut text = String::with_capacity(size);
        text.push_str("BEGIN NOT ATOMIC\n");
        for trip in trips {
            text.push_str(&trip.text);
            text.push_str(";\n");
        }
        text.push_str("END");
        let target = Arc::clone(&self.target);
        let conn = self.conn().await.map_err(Stopped::before_any)?;
        let session = conn.id();
        let result = watched(&target, session, async {
            // Named by the transactions it held (up to 256 KiB of text): the failing
            // statement is named when they apply one at a time after it.
            conn.query_drop(text.as_str()).await.map_err(|e| {
                let shown = format!("BEGIN NOT ATOMIC … END ({} transactions)", trips.len());
                classify(&shown, e)
            })
        })
        .await;
        self.in_txn = false;
        match result {
            Ok(()) => {
                if let Some(st) = stamps.get(trips.len() - 1) {
                    self.recorded(st);
                }
                Ok(())
            }
            Err(error) => {
                // Parsed before anything runs: refused, it ran nothing (1314: a
                // statement stored programs refuse).
                if let DownstreamError::Definite {
                    code: 1064 | 1149 | 1314,
                    ..
                } = &error
                {
                    tracing::info!(%error, "the downstream refuses compound statements: \
                        transactions sent together go as plain text from now on");
                    self.compound = false;
                }
                self.reset();
                Err(Stopped {
                    committed: 0,
                    unsure: true,
                    error,
                })
            }
        }
    }

    /// `trips[i]` committing records `stamps[i]` (when stamped).
    async fn send_trips(&mut self, trips: &[Trip], stamps: &[Stamp]) -> Result<(), Stopped> {
        let target = Arc::clone(&self.target);
        let mark_seconds = self.mark_seconds.clone();
        let joined;
        // One transaction (the usual case) goes as it is: its text and ends not copied.
        let (text, ends, marks, commits): (&str, Cow<'_, [usize]>, Vec<usize>, Vec<usize>) =
            if let [trip] = trips {
                (
                    trip.text.as_str(),
                    Cow::Borrowed(&trip.ends),
                    trip.marked.into_iter().collect(),
                    vec![trip.ends.len() - 1],
                )
            } else {
                let mut text = String::new();
                let (mut ends, mut marks, mut commits) = (Vec::new(), Vec::new(), Vec::new());
                for trip in trips {
                    if !text.is_empty() {
                        text.push_str(";\n");
                    }
                    let (offset, first) = (text.len(), ends.len());
                    text.push_str(&trip.text);
                    ends.extend(trip.ends.iter().map(|e| e + offset));
                    marks.extend(trip.marked.map(|m| m + first));
                    commits.push(ends.len() - 1);
                }
                joined = text;
                (joined.as_str(), Cow::Owned(ends), marks, commits)
            };
        let statement = |k: usize| {
            let from = k.checked_sub(1).map_or(0, |p| ends[p] + 2);
            ends.get(k).map_or("", |&to| &text[from..to])
        };
        let conn = self.conn().await.map_err(Stopped::before_any)?;
        let session = conn.id();
        // The statement whose answer is read.
        let mut current = 0;
        let result = watched(&target, session, async {
            let started = std::time::Instant::now();
            let mut answers = conn
                .query_iter(text)
                .await
                .map_err(|e| classify(statement(0), e))?;
            // The driver keeps a failed statement's error until asked for it (the last
            // answer: the server runs nothing after it), and otherwise reads the next
            // answer as this one is taken.
            loop {
                if marks.contains(&current) {
                    mark_seconds.record(started.elapsed().as_secs_f64());
                }
                let last = answers.is_empty();
                answers
                    .collect::<mysql_async::Row>()
                    .await
                    .map_err(|e| classify(statement(current), e))?;
                if last {
                    break;
                }
                current += 1;
            }
            if current + 1 != ends.len() {
                return Err(DownstreamError::Transient(format!(
                    "the downstream answered {} of {} statements",
                    current + 1,
                    ends.len()
                )));
            }
            Ok(())
        })
        .await;
        self.in_txn = false;
        // Committed: every transaction whose COMMIT was answered before the one read.
        let committed = match &result {
            Ok(()) => trips.len(),
            Err(_) => commits.iter().filter(|&&c| c < current).count(),
        };
        if let Some(st) = committed.checked_sub(1).and_then(|last| stamps.get(last)) {
            self.recorded(st);
        }
        result.map_err(|error| {
            self.reset();
            Stopped {
                committed,
                // The session was lost while the next was answered.
                unsure: matches!(error, DownstreamError::Transient(_)),
                error,
            }
        })
    }

    /// Runs `sql` (a statement that returns no rows, its bytes as they are) on this
    /// session, watched: `drainer seed` creates tables with it.
    pub async fn run_text(&mut self, sql: &[u8]) -> Result<(), DownstreamError> {
        let target = Arc::clone(&self.target);
        self.conn().await?;
        // Learned as the session opened.
        let mariadb = self.mariadb;
        let conn = self.conn().await?;
        let session = conn.id();
        let shown = String::from_utf8_lossy(sql).into_owned();
        watched(&target, session, async {
            // Marked as DDL is (comment markers leave rows' sessions unmarked).
            if let Some(mark) = target.mark.as_ref().filter(|m| m.comment.is_some()) {
                let version = if mariadb { "MariaDB" } else { "" };
                set_server_id(conn, mark.server_id, version).await?;
            }
            conn.query_drop(sql).await.map_err(|e| classify(&shown, e))
        })
        .await
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

    /// Opens a transaction, marked (loopback control) for `transactions` upstream ones;
    /// [`Downstream::exec`] adds to it and [`Downstream::commit`] ends it. Any error drops
    /// the session, which rolls it back.
    pub async fn begin(&mut self, transactions: u64) -> Result<(), DownstreamError> {
        let mark = self
            .target
            .mark
            .as_ref()
            .filter(|m| m.comment.is_none())
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
        self.group = transactions > 1;
        self.reset_on_error(result)
    }

    /// Runs statements in the open transaction (an error if there is none: the session
    /// that held it was lost, and with it the transaction).
    pub async fn exec(&mut self, stmts: &[Stmt]) -> Result<(), DownstreamError> {
        self.run(
            stmts
                .iter()
                .map(|s| (Cow::Borrowed(s.sql.as_str()), s.values(), s.check.clone())),
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
            (Cow::Owned(s.sql), values, s.check)
        }))
        .await
    }

    async fn run<'s>(
        &mut self,
        stmts: impl Iterator<Item = (Cow<'s, str>, Vec<mysql_async::Value>, Option<Arc<Check>>)> + Send,
    ) -> Result<(), DownstreamError> {
        self.require_txn()?;
        let target = Arc::clone(&self.target);
        let group = self.group;
        let conn = self.conn().await?;
        let session = conn.id();
        let mut settled = Vec::new();
        let comment = target.mark.as_ref().and_then(|m| m.comment.as_deref());
        let result = watched(&target, session, async {
            for (i, (sql, values, check)) in stmts.enumerate() {
                if i == 1 {
                    failpoint::hit("between-rows");
                }
                // Comment markers: every statement names the channel (the binlog's
                // annotation of its rows carries it to the reverse direction).
                let sql: Cow<'_, str> = match comment {
                    Some(c) => Cow::Owned(format!("{c}{sql}")),
                    None => sql,
                };
                // Statements without parameters (BINLOG, SAVEPOINT, SET) go as text: the
                // server cannot prepare some of them.
                let result = if values.is_empty() {
                    conn.query_drop(sql.as_ref()).await
                } else {
                    conn.exec_drop(sql.as_ref(), values).await
                };
                let finer = match (result, check) {
                    // A checked change that matched fewer rows than it carries: a
                    // conflict, or a row already as the change leaves it.
                    (Ok(()), Some(c))
                        if c.op != Op::Insert && conn.affected_rows() < c.rows.len() as u64 =>
                    {
                        if c.rows.len() > 1 {
                            "a multi-row statement matched fewer rows than it changes"
                        } else if group {
                            "a conflict in a group of transactions"
                        } else {
                            settled.extend(settle::row(conn, &target, &c, 0).await?);
                            continue;
                        }
                    }
                    // A key that exists: each row of the INSERT on its own.
                    (Err(mysql_async::Error::Server(e)), Some(c))
                        if c.op == Op::Insert && e.code == DUPLICATE_KEY =>
                    {
                        if group {
                            "a conflict in a group of transactions"
                        } else {
                            settle::inserts(conn, &target, &c, &mut settled).await?;
                            continue;
                        }
                    }
                    (result, _) => {
                        result.map_err(|e| classify(&sql, e))?;
                        continue;
                    }
                };
                // Applied again finer (see `CONFLICT_RECHECK`); the session stays.
                conn.query_drop("ROLLBACK")
                    .await
                    .map_err(|e| classify("ROLLBACK", e))?;
                return Err(recheck(finer));
            }
            Ok(())
        })
        .await;
        self.settled.extend(settled);
        if let Err(DownstreamError::Definite {
            code: CONFLICT_RECHECK,
            ..
        }) = &result
        {
            // Rolled back, the session kept.
            self.in_txn = false;
            self.settled.clear();
            return result;
        }
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
        // Conflicts count once their records are committed: a transaction rolled back
        // and applied again settles (and counts) them again.
        let settled = std::mem::take(&mut self.settled);
        if result.is_ok() {
            for (kind, resolution) in settled {
                metrics::counter!(
                    crate::metrics::CONFLICTS,
                    "kind" => kind.as_str(),
                    "resolution" => resolution.as_str()
                )
                .increment(1);
                if let Some(status) = &self.target.status {
                    status.conflict(kind.as_str(), resolution.as_str());
                }
            }
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
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn writer() -> Downstream {
        Downstream::new(Target {
            server: Server::plain("127.0.0.1", 1, "u", ""),
            partial: false,
            mark: None,
            conflicts: None,
            status: None,
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
}
