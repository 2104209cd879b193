//! The live reader: registers with the upstream as a replica and turns its binlog stream
//! into transactions, reconnecting after a lost connection at the last transaction
//! boundary it handed out.
//!
//! ## Starting points
//! [`StartAt::Now`] (the upstream's current position), [`StartAt::Coords`] (`file:pos`) or
//! [`StartAt::Gtid`] (a GTID state: the next transaction after it). On MariaDB the GTID
//! state of a coordinate start is asked of the server (`BINLOG_GTID_POS`), so every
//! position handed out carries both.
//!
//! ## Failures
//! A lost or silent connection (no event and no heartbeat for
//! [`LiveOptions::dead_after`]) is transient: the reader waits (exponential backoff up to
//! [`LiveOptions::backoff_max`]) and resumes at [`LiveReader::position`], by GTID when it has
//! one. A transaction that was open is discarded with [`TxnEvent::Rollback`] and sent
//! again whole. Definite failures (a purged binlog, an unknown GTID, access denied) end
//! the reader with an [`Error`] that says what was asked and what the server has.

use std::collections::VecDeque;
use std::time::Duration;

use link::Server;
use mysql_async::prelude::Queryable;
use mysql_async::Conn;

use crate::assemble::{Assembler, RawEvent};
use crate::dump::{Dump, DumpError};
use crate::position::{BinlogCoords, GtidSet, MariaGtidList, MysqlGtidSet, Position};
use crate::txn::{Collector, Txn, TxnEvent};
use crate::Error;

/// The upstream server (how to reach it, TLS included) and the replica id to register
/// with.
#[derive(Clone)]
pub struct Upstream {
    pub server: Server,
    /// The replica server id announced to the upstream (`[pump] server-id`).
    pub server_id: u32,
}

impl std::fmt::Debug for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?} (replica id {})", self.server, self.server_id)
    }
}

/// Timing of the live reader.
#[derive(Debug, Clone)]
pub struct LiveOptions {
    /// How often an idle upstream sends a heartbeat (`@master_heartbeat_period`).
    pub heartbeat: Duration,
    /// A connection with no event and no heartbeat for this long is dead and replaced.
    pub dead_after: Duration,
    /// Connecting (and the queries before the dump) may take this long.
    pub connect_timeout: Duration,
    pub backoff_initial: Duration,
    pub backoff_max: Duration,
    /// How a lost connection resumes when the position has both a GTID state and
    /// coordinates.
    pub resume_by: ResumeBy,
    /// Ask MariaDB for its ANNOTATE_ROWS events too (each rows statement's text, as
    /// [`crate::Change::Annotation`]); MySQL writes ROWS_QUERY events unasked when
    /// `binlog_rows_query_log_events` is on.
    pub annotate: bool,
}

/// The half of a [`Position`] a reconnect asks the upstream for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResumeBy {
    /// By GTID state when known (survives the upstream's binlog files being renamed or
    /// rebuilt; MariaDB checks the history has not diverged), else by coordinates.
    Gtid,
    /// Always by binlog coordinates (once the stream has named its file).
    Coords,
}

impl Default for LiveOptions {
    fn default() -> Self {
        LiveOptions {
            heartbeat: Duration::from_secs(1),
            // Also the longest one event may take to arrive whole: generous, for large
            // row events on slow links (MariaDB's own replica waits 60 s).
            dead_after: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
            backoff_initial: Duration::from_millis(100),
            backoff_max: Duration::from_secs(10),
            resume_by: ResumeBy::Gtid,
            annotate: false,
        }
    }
}

/// The largest packet (event) accepted: MariaDB's and MySQL's own ceiling.
const MAX_PACKET: usize = 1 << 30;

/// Where reading begins.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartAt {
    /// The upstream's current position: only transactions committed from now on.
    Now,
    Coords(BinlogCoords),
    /// Right after the transactions of this GTID state.
    Gtid(GtidSet),
}

/// The upstream's server family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    MariaDb,
    MySql,
}

/// A failure while streaming: retry, or give up.
enum Failure {
    Transient(Cause, String),
    Definite(Error),
}

/// What a transient failure came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cause {
    /// The network or the server going away: retried for as long as it lasts.
    Network,
    /// The stream itself (a packet the client could not read): retried, but a stream that
    /// fails like this again and again at one position stops the reader.
    Stream,
}

/// Reads transactions from a live upstream; see the module note.
pub struct LiveReader {
    upstream: Upstream,
    options: LiveOptions,
    flavor: Flavor,
    assembler: Assembler,
    stream: Option<Dump>,
    pending: VecDeque<TxnEvent>,
    scratch: Vec<TxnEvent>,
    /// Keeps a transaction being collected by `next_txn` across cancelled calls.
    collector: Collector,
    reconnects: u64,
    /// Stream failures in a row at one position (see [`MAX_STALLS`]).
    stalls: u32,
    stalled_at: Option<Position>,
    /// Set by the first definite error: the reader hands out nothing after it.
    failed: Option<String>,
}

/// A stream that opens but fails again at the same position this many times in a row is
/// failing on something in the binlog, not on the network: a definite error, not a loop.
const MAX_STALLS: u32 = 10;

impl LiveReader {
    /// Connects and resolves `start`. Definite problems (access denied, a position the
    /// server does not have) are returned here; the stream itself opens on the first read.
    pub async fn connect(
        upstream: Upstream,
        start: StartAt,
        options: LiveOptions,
    ) -> Result<LiveReader, Error> {
        let mut conn = connect(&upstream, &options).await.map_err(|e| match e {
            Failure::Definite(e) => e,
            Failure::Transient(_, reason) => Error::Upstream {
                what: format!("connect to {upstream:?}"),
                reason,
            },
        })?;
        let resolve_all = async {
            let version: Option<String> = conn
                .query_first("SELECT VERSION()")
                .await
                .map_err(Unresolved::Sql)?;
            let flavor = match version {
                Some(v) if v.contains("MariaDB") => Flavor::MariaDb,
                _ => Flavor::MySql,
            };
            Ok((flavor, resolve(&mut conn, flavor, start).await?))
        };
        let resolved = match tokio::time::timeout(options.connect_timeout, resolve_all).await {
            Ok(resolved) => resolved,
            Err(_) => Err(Unresolved::Invalid(format!(
                "no answer within {:?}",
                options.connect_timeout
            ))),
        };
        let resolved = match resolved {
            Ok(ok) => Ok(ok),
            Err(Unresolved::NoSuchPosition { asked, why, flavor }) => Err(Error::Unavailable {
                asked,
                server: why,
                has: upstream_has(&mut conn, flavor, options.connect_timeout).await,
            }),
            Err(Unresolved::Invalid(reason)) => Err(Error::Upstream {
                what: "resolve the starting position".into(),
                reason,
            }),
            Err(Unresolved::Sql(e)) => Err(Error::Upstream {
                what: "resolve the starting position".into(),
                reason: e.to_string(),
            }),
        };
        disconnect(conn, options.connect_timeout).await;
        let (flavor, position) = resolved?;
        let annotate = options.annotate;
        Ok(LiveReader {
            upstream,
            options,
            flavor,
            assembler: Assembler::new(position).annotating(annotate),
            stream: None,
            pending: VecDeque::new(),
            scratch: Vec::new(),
            collector: Collector::default(),
            reconnects: 0,
            stalls: 0,
            stalled_at: None,
            failed: None,
        })
    }

    pub fn flavor(&self) -> Flavor {
        self.flavor
    }

    /// The position after the last transaction handed out (or the last heartbeat while
    /// idle): where a restart resumes.
    pub fn position(&self) -> &Position {
        self.assembler.position()
    }

    /// Reads again from `to`, a transaction boundary already handed out (the position
    /// after an earlier transaction): the consumer lost what it did with the transactions
    /// since, say a downstream transaction that streamed them. Drops the connection and
    /// anything read ahead; the next event is the `Begin` of the transaction after `to`.
    pub fn rewind(&mut self, to: Position) {
        self.stream = None;
        self.pending.clear();
        self.collector = Collector::default();
        self.assembler = Assembler::new(to).annotating(self.options.annotate);
    }

    /// How often the connection was replaced.
    pub fn reconnects(&self) -> u64 {
        self.reconnects
    }

    /// The next piece of the transaction stream. Waits for the upstream; replaces lost
    /// connections; returns only definite errors.
    pub async fn next_event(&mut self) -> Result<TxnEvent, Error> {
        if let Some(first) = &self.failed {
            return Err(Error::Stream {
                at: self.assembler.position().coords.clone(),
                reason: format!("the reader stopped after an earlier error: {first}"),
            });
        }
        let result = self.next_event_inner().await;
        if let Err(e) = &result {
            self.failed = Some(e.to_string());
            self.stream = None;
        }
        result
    }

    async fn next_event_inner(&mut self) -> Result<TxnEvent, Error> {
        let mut backoff = self.options.backoff_initial;
        loop {
            if let Some(e) = self.pending.pop_front() {
                return Ok(e);
            }
            match self.step().await {
                Ok(()) => backoff = self.options.backoff_initial,
                Err(Failure::Definite(e)) => return Err(e),
                Err(Failure::Transient(cause, reason)) => {
                    if cause == Cause::Stream {
                        self.count_stall(&reason)?;
                    }
                    self.stream = None;
                    self.reconnects += 1;
                    if self.assembler.abandon() {
                        self.pending.push_back(TxnEvent::Rollback);
                    }
                    tracing::warn!(
                        position = %self.assembler.position(),
                        %reason,
                        retry_in_ms = backoff.as_millis() as u64,
                        "upstream connection lost; resuming at the last transaction boundary"
                    );
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(self.options.backoff_max);
                }
            }
        }
    }

    /// Counts a failure of an opened stream; too many at one position is definite.
    fn count_stall(&mut self, reason: &str) -> Result<(), Error> {
        let here = self.assembler.position();
        if self.stalled_at.as_ref() == Some(here) {
            self.stalls += 1;
        } else {
            self.stalled_at = Some(here.clone());
            self.stalls = 1;
        }
        if self.stalls >= MAX_STALLS {
            return Err(Error::Stream {
                at: here.coords.clone(),
                reason: format!(
                    "the stream failed {MAX_STALLS} times in a row at {here}: {reason}"
                ),
            });
        }
        Ok(())
    }

    /// The next whole transaction (collected from [`LiveReader::next_event`]). Cancel-safe:
    /// a call dropped halfway keeps what it collected for the next one. Do not mix with
    /// `next_event` inside one transaction.
    pub async fn next_txn(&mut self) -> Result<Txn, Error> {
        loop {
            let event = self.next_event().await?;
            match self.collector.push(event) {
                Ok(Some(txn)) => return Ok(txn),
                Ok(None) => {}
                Err(reason) => {
                    self.failed = Some(reason.clone());
                    return Err(Error::Stream {
                        at: self.assembler.position().coords.clone(),
                        reason,
                    });
                }
            }
        }
    }

    /// Reads one event from the stream (opening it first if needed) into `pending`.
    async fn step(&mut self) -> Result<(), Failure> {
        if self.stream.is_none() {
            // Boxed, as is the rare classification below: each event's future would
            // otherwise be as large as a login's (kilobytes, copied for every event).
            self.stream = Some(Box::pin(self.open_stream()).await?);
        }
        let stream = self.stream.as_mut().expect("opened above");
        let (header, body) =
            match tokio::time::timeout(self.options.dead_after, stream.next_event()).await {
                Err(_) => {
                    return Err(Failure::Transient(
                        Cause::Network,
                        format!("no event or heartbeat for {:?}", self.options.dead_after),
                    ))
                }
                Ok(Ok(None)) => {
                    return Err(Failure::Transient(
                        Cause::Network,
                        "the upstream ended the stream".into(),
                    ))
                }
                Ok(Err(e)) => return Err(Box::pin(self.classify(e)).await),
                Ok(Ok(Some(event))) => event,
            };
        let event = RawEvent { header, body };
        self.assembler
            .push(&event, &mut self.scratch)
            .map_err(Failure::Definite)?;
        self.pending.extend(self.scratch.drain(..));
        Ok(())
    }

    /// Connects (the replication connection of [`crate::dump`]) and asks for the binlog
    /// from the current position.
    async fn open_stream(&self) -> Result<Dump, Failure> {
        let up = &self.upstream;
        let timeout = self.options.connect_timeout;
        let mut dump = Dump::login(&up.server, timeout)
            .await
            .map_err(|e| login_failure(up, e))?;
        let position = self.assembler.position().clone();
        let resume_gtids = match self.options.resume_by {
            ResumeBy::Coords if !position.coords.file.is_empty() => None,
            _ => position.gtids.as_ref().filter(|g| !g.is_empty()),
        };
        let heartbeat_ns = self.options.heartbeat.as_nanos().min(u128::from(u64::MAX)) as u64;
        let setup = async {
            dump.execute(&format!("SET @master_heartbeat_period = {heartbeat_ns}"))
                .await?;
            // Events come with their checksums, which the reader checks.
            dump.execute("SET @master_binlog_checksum = 'ALL'").await?;
            if self.flavor == Flavor::MariaDb {
                dump.execute("SET @mariadb_slave_capability = 4").await?;
                if let Some(GtidSet::MariaDb(state)) = resume_gtids {
                    dump.execute(&format!("SET @slave_connect_state = '{state}'"))
                        .await?;
                    // Refuse a history that diverged from ours (a failover gone wrong).
                    dump.execute("SET @slave_gtid_strict_mode = 1").await?;
                }
            }
            dump.register(up.server_id).await?;
            match (self.flavor, resume_gtids) {
                // MariaDB: the GTID start was set above; an empty file name means "by GTID".
                (Flavor::MariaDb, Some(GtidSet::MariaDb(_))) => {
                    dump.dump(up.server_id, "", 4, self.options.annotate).await
                }
                (Flavor::MySql, Some(GtidSet::MySql(set))) => {
                    dump.dump_gtid(up.server_id, &sids(set)).await
                }
                _ => {
                    let coords = &position.coords;
                    dump.dump(
                        up.server_id,
                        &coords.file,
                        coords.pos,
                        self.options.annotate,
                    )
                    .await
                }
            }
        };
        match tokio::time::timeout(timeout, setup).await {
            Err(_) => Err(Failure::Transient(
                Cause::Network,
                "no answer while asking for the binlog".into(),
            )),
            Ok(Err(e)) => Err(self.classify(e).await),
            Ok(Ok(())) => {
                tracing::info!(position = %position, upstream = ?self.upstream, "reading the upstream binlog");
                Ok(dump)
            }
        }
    }

    /// Sorts a failure of the replication connection into retry or stop; a stop because
    /// the server cannot serve our position says what it has.
    async fn classify(&self, e: DumpError) -> Failure {
        let code = match &e {
            DumpError::Server { code, .. } => *code,
            DumpError::Io(_) => return Failure::Transient(Cause::Network, e.to_string()),
            // A packet the reader could not make sense of, or a checksum that does not
            // match: the stream, not the network.
            DumpError::Protocol(_) => return Failure::Transient(Cause::Stream, e.to_string()),
            DumpError::Refused(_) => return login_failure(&self.upstream, e),
        };
        match code {
            // ER_MASTER_FATAL_ERROR_READING_BINLOG: purged file, unknown GTID, bad position.
            1236 => Failure::Definite(Error::Unavailable {
                asked: self.assembler.position().to_string(),
                server: match e {
                    DumpError::Server { message, .. } => message,
                    other => other.to_string(),
                },
                has: self.what_upstream_has().await,
            }),
            // Too many connections, shutdown in progress, killed, interrupted, aborted.
            1040 | 1053 | 1152 | 1156..=1161 | 1184 | 1317 | 1927 | 4031 => {
                Failure::Transient(Cause::Network, e.to_string())
            }
            _ => Failure::Definite(Error::Upstream {
                what: "read the binlog".into(),
                reason: e.to_string(),
            }),
        }
    }

    /// What the upstream has, asked on a new connection, for error messages.
    async fn what_upstream_has(&self) -> String {
        let Ok(mut conn) = connect(&self.upstream, &self.options).await else {
            return "(could not ask the server)".into();
        };
        let has = upstream_has(&mut conn, self.flavor, self.options.connect_timeout).await;
        disconnect(conn, self.options.connect_timeout).await;
        has
    }
}

/// "binlog files X … Y, GTID state Z", for error messages.
async fn upstream_has(conn: &mut Conn, flavor: Flavor, timeout: Duration) -> String {
    tokio::time::timeout(timeout, upstream_has_inner(conn, flavor))
        .await
        .unwrap_or_else(|_| "(the server did not say in time)".into())
}

async fn upstream_has_inner(conn: &mut Conn, flavor: Flavor) -> String {
    let files: Vec<String> = conn
        .query("SHOW BINARY LOGS")
        .await
        .unwrap_or_default()
        .into_iter()
        .map(|row: mysql_async::Row| {
            row.get::<Option<String>, _>(0)
                .flatten()
                .unwrap_or_default()
        })
        .collect();
    let state_query = match flavor {
        Flavor::MariaDb => "SELECT @@gtid_binlog_state",
        Flavor::MySql => "SELECT @@gtid_executed",
    };
    let state: Option<String> = conn.query_first(state_query).await.ok().flatten();
    let files = match &files[..] {
        [] => "no binlog files".to_owned(),
        [only] => format!("binlog file {only}"),
        [first, .., last] => format!("binlog files {first} … {last}"),
    };
    format!("{files}, GTID state {:?}", state.unwrap_or_default())
}

/// Opens a client-library session with the upstream.
async fn connect(upstream: &Upstream, options: &LiveOptions) -> Result<Conn, Failure> {
    let server = &upstream.server;
    let opts = server
        .opts()
        .max_allowed_packet(Some(MAX_PACKET))
        .tcp_keepalive(Some(Duration::from_secs(10)));
    let login = || format!("log in to {upstream:?}");
    match tokio::time::timeout(options.connect_timeout, server.session(opts)).await {
        Err(_) => Err(Failure::Transient(
            Cause::Network,
            format!("no answer within {:?}", options.connect_timeout),
        )),
        Ok(Ok(conn)) => Ok(conn),
        Ok(Err(mysql_async::Error::Server(s))) if refused_login(s.code) => {
            Err(Failure::Definite(Error::Upstream {
                what: login(),
                reason: s.message,
            }))
        }
        Ok(Err(
            e @ mysql_async::Error::Driver(
                mysql_async::DriverError::UnknownAuthPlugin { .. }
                | mysql_async::DriverError::MysqlOldPasswordDisabled
                | mysql_async::DriverError::CleartextPluginDisabled
                | mysql_async::DriverError::NoClientSslFlagFromServer,
            ),
        )) => Err(Failure::Definite(Error::Upstream {
            what: login(),
            reason: e.to_string(),
        })),
        Ok(Err(e)) if link::refused_by_tls(&e) => Err(Failure::Definite(Error::Upstream {
            what: login(),
            reason: e.to_string(),
        })),
        Ok(Err(e)) => Err(Failure::Transient(Cause::Network, e.to_string())),
    }
}

/// Closes a connection politely, without waiting long on a server that does not answer.
async fn disconnect(conn: Conn, timeout: Duration) {
    let _ = tokio::time::timeout(timeout, conn.disconnect()).await;
}

/// Why a starting point has no position.
enum Unresolved {
    /// The server does not have it (purged file, a position inside an event).
    NoSuchPosition {
        asked: String,
        why: String,
        flavor: Flavor,
    },
    Invalid(String),
    Sql(mysql_async::Error),
}

impl From<mysql_async::Error> for Unresolved {
    fn from(e: mysql_async::Error) -> Self {
        Unresolved::Sql(e)
    }
}

/// The position (coordinates and GTID state) of a starting point.
async fn resolve(conn: &mut Conn, flavor: Flavor, start: StartAt) -> Result<Position, Unresolved> {
    let bad = Unresolved::Invalid;
    let coords = match start {
        StartAt::Gtid(gtids) => {
            let flavor_ok = matches!(
                (flavor, &gtids),
                (Flavor::MariaDb, GtidSet::MariaDb(_)) | (Flavor::MySql, GtidSet::MySql(_))
            );
            if !flavor_ok {
                return Err(bad(format!(
                    "GTID state {gtids} is of the other server flavour than the upstream"
                )));
            }
            return Ok(Position {
                // The file is learnt from the stream's first ROTATE.
                coords: BinlogCoords::new("", BinlogCoords::FIRST_EVENT),
                gtids: Some(gtids),
            });
        }
        StartAt::Coords(coords) => coords,
        StartAt::Now => {
            // MySQL 8.4 renamed it; MariaDB and older MySQL know only the old name.
            let row: Option<mysql_async::Row> = match conn.query_first("SHOW MASTER STATUS").await {
                Err(mysql_async::Error::Server(e)) if e.code == 1064 => {
                    conn.query_first("SHOW BINARY LOG STATUS").await?
                }
                other => other?,
            };
            let row = row.ok_or_else(|| {
                bad("SHOW MASTER STATUS is empty: the upstream's binlog is off".into())
            })?;
            let file: Option<String> = row.get(0);
            let pos: Option<u64> = row.get(1);
            let (Some(file), Some(pos)) = (file, pos) else {
                return Err(bad("SHOW MASTER STATUS has no file and position".into()));
            };
            if flavor == Flavor::MySql {
                let executed: Option<String> = row.get(4);
                let gtids = executed
                    .filter(|s| !s.trim().is_empty())
                    .map(|s| s.parse::<MysqlGtidSet>().map(GtidSet::MySql))
                    .transpose()
                    .map_err(|e| bad(e.to_string()))?;
                return Ok(Position {
                    coords: BinlogCoords::new(file, pos),
                    gtids,
                });
            }
            BinlogCoords::new(file, pos)
        }
    };
    let gtids = match flavor {
        Flavor::MariaDb => {
            let state: Option<Option<String>> = conn
                .exec_first(
                    "SELECT BINLOG_GTID_POS(?, ?)",
                    (coords.file.as_str(), coords.pos),
                )
                .await?;
            let state = state.flatten().ok_or_else(|| Unresolved::NoSuchPosition {
                asked: coords.to_string(),
                why: "no such binlog position (no such file, or not at the start of an event)"
                    .into(),
                flavor,
            })?;
            Some(GtidSet::MariaDb(
                state
                    .parse::<MariaGtidList>()
                    .map_err(|e| bad(e.to_string()))?,
            ))
        }
        // Without reading the file from its start, a MySQL coordinate start has no GTID state.
        Flavor::MySql => None,
    };
    Ok(Position { coords, gtids })
}

/// Server errors of a login that no retry will fix: access denied, host not allowed or
/// blocked, account locked, password expired, TLS required, an unknown plugin.
fn refused_login(code: u16) -> bool {
    matches!(
        code,
        1044 | 1045 | 1129 | 1130 | 1227 | 1251 | 1524 | 1698 | 1820 | 1862 | 3118 | 3159 | 4151
    )
}

/// A login the replication connection could not make: refusals no retry will fix
/// (access denied, host not allowed or blocked, account locked, password expired, TLS
/// required, an authentication plugin it does not speak) stop; anything else is retried.
fn login_failure(upstream: &Upstream, e: DumpError) -> Failure {
    let definite = match &e {
        DumpError::Refused(_) => true,
        DumpError::Server { code, .. } => refused_login(*code),
        DumpError::Io(_) | DumpError::Protocol(_) => false,
    };
    if definite {
        Failure::Definite(Error::Upstream {
            what: format!("log in to {upstream:?}"),
            reason: match e {
                DumpError::Server { message, .. } => message,
                other => other.to_string(),
            },
        })
    } else {
        Failure::Transient(Cause::Network, e.to_string())
    }
}

/// The GTID set as COM_BINLOG_DUMP_GTID wants it: the number of server uuids, then each
/// uuid with its intervals (ends exclusive), all little-endian.
fn sids(set: &MysqlGtidSet) -> Vec<u8> {
    let sids: Vec<_> = set.iter().filter(|(_, tag, _)| tag.is_empty()).collect();
    let mut out = Vec::new();
    out.extend((sids.len() as u64).to_le_bytes());
    for (uuid, _, intervals) in sids {
        out.extend(uuid.0);
        out.extend((intervals.len() as u64).to_le_bytes());
        for &(start, end) in intervals {
            out.extend(start.to_le_bytes());
            out.extend(end.saturating_add(1).to_le_bytes());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gtid_sets_become_dump_intervals_with_exclusive_ends() {
        let set: MysqlGtidSet = "3e11fa47-71ca-11e1-9e33-c80aa9429562:1-5:7"
            .parse()
            .unwrap();
        let bytes = sids(&set);
        let u64_at = |i: usize| u64::from_le_bytes(bytes[i..i + 8].try_into().unwrap());
        assert_eq!(u64_at(0), 1, "one server uuid");
        assert_eq!(
            bytes[8..24],
            [
                0x3e, 0x11, 0xfa, 0x47, 0x71, 0xca, 0x11, 0xe1, 0x9e, 0x33, 0xc8, 0x0a, 0xa9, 0x42,
                0x95, 0x62
            ]
        );
        assert_eq!(u64_at(24), 2, "two intervals");
        assert_eq!(
            [u64_at(32), u64_at(40), u64_at(48), u64_at(56)],
            [1, 6, 7, 8]
        );
        assert_eq!(bytes.len(), 64);
    }
}
