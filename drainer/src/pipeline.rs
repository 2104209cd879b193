//! One direction, end to end: read upstream transactions, filter, decode, apply each as one
//! downstream transaction, and checkpoint.
//!
//! - The checkpoint moves only after the downstream COMMIT of the transaction it names
//!   (batched by `checkpoint-interval-ms`, at once after DDL, and at shutdown).
//! - A transient downstream failure (lost connection, deadlock, lock wait timeout) retries
//!   the whole transaction with backoff; anything else stops with the position, table and
//!   statement.
//! - After a start, transactions up to the checkpoint may be read again (the process may
//!   have died after a downstream commit and before the checkpoint write): safe mode (INSERT
//!   as REPLACE, UPDATE as DELETE + REPLACE) runs for `safe-mode-after-start-s` so such a
//!   replay neither fails nor doubles rows of tables with keys.
//! - DDL: with `sync-ddl = true` it runs downstream in its schema context once the earlier
//!   transactions are committed (replays that find it done count as applied); either way
//!   the schema history takes it.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use checkpoint::{Batch, Identity, ServerIdentity, Store};
use conf::{Config, Filter};
use mysql_async::prelude::Queryable;
use pump_reader::{Change, LiveOptions, LiveReader, Position, Rows, StartAt, TxnEvent, Upstream};
use schema::{decode_row, read_upstream, Class, History, Table, Value};
use tokio::sync::watch;

use crate::apply::downstream::{Downstream, DownstreamError, Target};
use crate::apply::sql::{self, Stmt};

/// Why the pipeline stopped, with where.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("configuration: {0}")]
    Config(String),
    #[error(transparent)]
    Store(#[from] checkpoint::Error),
    #[error(transparent)]
    Upstream(#[from] pump_reader::Error),
    #[error(transparent)]
    Schema(#[from] schema::HistoryError),
    #[error("at {at}: {reason}")]
    Apply { at: String, reason: String },
    #[error("upstream: {0}")]
    Connect(String),
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// `SELECT @@server_id` (and MySQL's `@@server_uuid`) of a server.
async fn identify(
    host: &str,
    port: u16,
    user: &str,
    password: &str,
) -> Result<ServerIdentity, String> {
    let opts = mysql_async::OptsBuilder::default()
        .ip_or_hostname(host)
        .tcp_port(port)
        .user(Some(user))
        .pass(Some(password))
        .prefer_socket(false);
    let mut conn = tokio::time::timeout(Duration::from_secs(10), mysql_async::Conn::new(opts))
        .await
        .map_err(|_| format!("no answer from {host}:{port}"))?
        .map_err(|e| format!("{host}:{port}: {e}"))?;
    let server_id: Option<u32> = conn
        .query_first("SELECT @@server_id")
        .await
        .map_err(|e| e.to_string())?;
    let uuid: Option<String> = conn
        .query_first("SELECT @@server_uuid")
        .await
        .ok()
        .flatten();
    conn.disconnect().await.ok();
    Ok(ServerIdentity {
        server_id: server_id.unwrap_or_default(),
        uuid,
        address: format!("{host}:{port}"),
    })
}

fn start_at(p: &Position) -> StartAt {
    match &p.gtids {
        Some(g) if !g.is_empty() => StartAt::Gtid(g.clone()),
        _ => StartAt::Coords(p.coords.clone()),
    }
}

/// Keeps the columns the downstream has (sync-mode 2): a narrower table and row.
fn project(
    table: &Table,
    row: &[Option<Value>],
    downstream: &[String],
) -> (Table, Vec<Option<Value>>) {
    let keep: Vec<bool> = table
        .columns
        .iter()
        .map(|c| downstream.iter().any(|d| d.eq_ignore_ascii_case(&c.name)))
        .collect();
    let mut narrow = table.clone();
    narrow.columns = table
        .columns
        .iter()
        .zip(&keep)
        .filter(|(_, k)| **k)
        .map(|(c, _)| c.clone())
        .collect();
    let kept: Vec<String> = narrow
        .columns
        .iter()
        .map(|c| c.name.to_ascii_lowercase())
        .collect();
    let has = |name: &String| kept.contains(&name.to_ascii_lowercase());
    narrow.primary_key = narrow
        .primary_key
        .take()
        .filter(|k| k.columns.iter().all(has));
    narrow.unique_keys.retain(|k| k.columns.iter().all(has));
    let values = row
        .iter()
        .zip(&keep)
        .filter(|(_, k)| **k)
        .map(|(v, _)| v.clone())
        .collect();
    (narrow, values)
}

/// The pipeline's state between events.
struct Run<'a> {
    config: &'a Config,
    filter: Filter,
    store: Store,
    history: History,
    down: Downstream,
    started: Instant,
    /// The statements of the transaction being read, applied at its commit.
    txn: Vec<Stmt>,
    /// Statements of the transaction being read: (schema, statement). They go into the
    /// schema history at its commit (the position where they took effect), and run
    /// downstream after its rows.
    statements: Vec<(String, String)>,
    /// The transaction being read: its GTID and where it starts.
    current: Option<pump_reader::TxnStart>,
    /// The position after the last transaction committed downstream, not yet saved.
    unsaved: Option<Position>,
    last_save: Instant,
}

impl Run<'_> {
    fn safe_mode(&self) -> bool {
        self.config.syncer.safe_mode
            || self.started.elapsed()
                < Duration::from_secs(self.config.syncer.safe_mode_after_start_s)
    }

    fn fail(at: &Position, reason: impl std::fmt::Display) -> RunError {
        RunError::Apply {
            at: at.to_string(),
            reason: reason.to_string(),
        }
    }

    /// The transaction being read, for messages: `gtid 0-1-5 at binlog.000002:1234`.
    fn here(&self) -> String {
        match &self.current {
            Some(t) => match &t.gtid {
                Some(g) => format!("gtid {g} at {}", t.start),
                None => format!("{}", t.start),
            },
            None => "(no transaction)".into(),
        }
    }

    /// How the operator names the current transaction in `skip-ddl`: its GTID, else its
    /// starting coordinates.
    fn skip_name(&self) -> String {
        match &self.current {
            Some(t) => t
                .gtid
                .as_ref()
                .map_or_else(|| t.start.to_string(), |g| g.to_string()),
            None => String::new(),
        }
    }

    /// Whether the operator asked to pass over the statements of the current transaction.
    fn skip_requested(&self) -> bool {
        let Some(t) = &self.current else { return false };
        self.config.syncer.skip_ddl.iter().any(|s| {
            t.gtid.as_ref().is_some_and(|g| g.to_string() == *s) || t.start.to_string() == *s
        })
    }

    /// Takes the transaction's statements into the schema history at `position` (where
    /// they took effect); returns the DDL to run downstream.
    fn track_statements(&mut self, position: &Position) -> Result<Vec<(String, String)>, RunError> {
        let mut ddl = Vec::new();
        for (schema_name, text) in std::mem::take(&mut self.statements) {
            let filter = &self.filter;
            let wants = |schema: &str, table: &str| filter.wants_table(schema, table);
            let applied = match self.history.apply_filtered(
                &self.store,
                position,
                &schema_name,
                &text,
                &wants,
            ) {
                Ok(applied) => applied,
                Err(schema::HistoryError::Ddl { source, .. }) if self.skip_requested() => {
                    tracing::warn!(at = %self.here(), statement = %text, reason = %source.reason,
                        "passing over a statement the schema tracker cannot apply, as skip-ddl asks");
                    self.history.skip(&self.store, position, &text)?;
                    continue;
                }
                Err(schema::HistoryError::Ddl { source, .. }) => {
                    return Err(RunError::Apply {
                        at: self.here(),
                        reason: format!(
                        "{source}; to pass over it deliberately, add \"{}\" to [syncer] skip-ddl",
                        self.skip_name()
                    ),
                    })
                }
                Err(e) => return Err(e.into()),
            };
            let replicated = match applied.class {
                Class::Table => !applied.tables.is_empty(),
                Class::Truncate => true,
                Class::Database => applied
                    .databases
                    .iter()
                    .any(|(db, _)| self.filter.wants_schema(db)),
                _ => false,
            };
            if self.config.syncer.sync_ddl && replicated {
                ddl.push((schema_name, text));
            }
        }
        Ok(ddl)
    }

    /// Statements for one rows event.
    async fn rows(&mut self, rows: &Rows, at: &Position) -> Result<(), RunError> {
        let (schema_name, table_name) = (&rows.table.schema, &rows.table.table);
        if !self.filter.wants_table(schema_name, table_name) {
            return Ok(());
        }
        let table = self
            .history
            .catalog()
            .table(schema_name, table_name)
            .cloned()
            .ok_or_else(|| {
                Self::fail(
                    at,
                    format!("{schema_name}.{table_name} has rows but no tracked definition"),
                )
            })?;
        let downstream = self
            .down
            .columns(schema_name, table_name)
            .await
            .map_err(|e| Self::fail(at, e))?;
        let upstream_names: Vec<&str> = table.columns.iter().map(|c| c.name.as_str()).collect();
        let same = upstream_names.len() == downstream.len()
            && upstream_names
                .iter()
                .zip(&downstream)
                .all(|(a, b)| a.eq_ignore_ascii_case(b));
        let partial = self.config.syncer.to.sync_mode == 2;
        if !same && !partial {
            return Err(Self::fail(
                at,
                format!(
                    "{}: the upstream row has columns ({}), the downstream table ({}); sync-mode = 2 applies \
                     the columns both have",
                    table.qualified(),
                    upstream_names.join(", "),
                    downstream.join(", ")
                ),
            ));
        }
        let safe = self.safe_mode();
        for change in &rows.rows {
            let decode = |image: &Option<Vec<pump_reader::event::Cell>>| -> Result<Option<Vec<Option<Value>>>, RunError> {
                image
                    .as_ref()
                    .map(|cells| decode_row(&table, &rows.table, cells).map_err(|e| Self::fail(at, e)))
                    .transpose()
            };
            let (before, after) = (decode(&change.before)?, decode(&change.after)?);
            let shape = |row: Vec<Option<Value>>| {
                if same {
                    (table.clone(), row)
                } else {
                    project(&table, &row, &downstream)
                }
            };
            let stmts = match (before, after) {
                (None, Some(after)) => {
                    let (t, a) = shape(after);
                    vec![sql::insert(&t, &[&a], safe)]
                }
                (Some(before), None) => {
                    let (t, b) = shape(before);
                    vec![sql::delete(&t, &b)]
                }
                (Some(before), Some(after)) => {
                    let (t, b) = shape(before);
                    let (_, a) = shape(after);
                    match sql::update(&t, &b, &a, safe) {
                        Ok(v) => v.into_iter().map(Ok).collect(),
                        Err(e) => vec![Err(e)],
                    }
                }
                (None, None) => Vec::new(),
            };
            for s in stmts {
                self.txn.push(s.map_err(|e| Self::fail(at, e))?);
            }
        }
        Ok(())
    }

    /// Commits the transaction read so far downstream, retrying transient failures.
    async fn commit(&mut self, position: Position) -> Result<(), RunError> {
        let ddl = self.track_statements(&position)?;
        let mut backoff = Duration::from_millis(100);
        loop {
            match self.down.apply_txn(&self.txn).await {
                Ok(()) => break,
                Err(DownstreamError::Transient(reason)) => {
                    tracing::warn!(%position, %reason, "downstream failed; retrying the transaction");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(10));
                }
                Err(e) => return Err(Self::fail(&position, e)),
            }
        }
        self.txn.clear();
        let had_ddl = !ddl.is_empty();
        for (schema_name, statement) in ddl {
            loop {
                match self.down.apply_ddl(&schema_name, &statement).await {
                    Ok(()) => break,
                    Err(DownstreamError::Transient(reason)) => {
                        tracing::warn!(%position, %reason, "downstream failed during DDL; retrying it");
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(Duration::from_secs(10));
                    }
                    Err(e) => return Err(Self::fail(&position, e)),
                }
            }
        }
        self.unsaved = Some(position);
        let interval = Duration::from_millis(self.config.syncer.checkpoint_interval_ms);
        if had_ddl || self.last_save.elapsed() >= interval {
            self.save()?;
        }
        Ok(())
    }

    /// Saves the last committed position.
    fn save(&mut self) -> Result<(), RunError> {
        if let Some(p) = self.unsaved.take() {
            self.store.save_checkpoint(&p, now(), Batch::default())?;
            tracing::debug!(position = %p, "checkpoint saved");
        }
        self.last_save = Instant::now();
        Ok(())
    }
}

/// Runs one direction until `stop` turns true (then the transaction in flight is
/// dropped, never half-applied, and the checkpoint saved) or a definite error.
pub async fn run(config: &Config, mut stop: watch::Receiver<bool>) -> Result<(), RunError> {
    let filter = Filter::new(&config.syncer).map_err(RunError::Config)?;
    let pump = &config.pump;
    let to = &config.syncer.to;
    let store = Store::open(&config.data_dir)?;
    let identity = Identity {
        upstream: identify(&pump.host, pump.port, &pump.user, pump.password.expose())
            .await
            .map_err(RunError::Connect)?,
        downstream: identify(&to.host, to.port, &to.user, to.password.expose())
            .await
            .map_err(RunError::Connect)?,
        channel_id: config.syncer.channel_id,
    };
    store.claim(&identity)?;

    let saved = store.checkpoint()?;
    let mut history = History::load(&store, saved.as_ref().map(|c| &c.position))?;
    let start = match (&saved, History::bootstrap_position(&store)?) {
        (Some(cp), _) => start_at(&cp.position),
        (None, Some(bootstrap)) => start_at(&bootstrap),
        (None, None) if !pump.initial_gtid.is_empty() => StartAt::Gtid(
            pump.initial_gtid
                .parse()
                .map_err(|e: pump_reader::PositionError| {
                    RunError::Config(format!("pump.initial-gtid: {e}"))
                })?,
        ),
        (None, None) if !pump.initial_file.is_empty() => StartAt::Coords(
            pump_reader::BinlogCoords::new(pump.initial_file.clone(), pump.initial_pos),
        ),
        (None, None) => StartAt::Now,
    };
    let upstream = Upstream {
        host: pump.host.clone(),
        port: pump.port,
        user: pump.user.clone(),
        password: pump.password.expose().to_owned(),
        server_id: pump.server_id,
    };
    let mut reader = LiveReader::connect(upstream, start, LiveOptions::default()).await?;
    if history.is_empty() {
        // First start: the definitions where reading begins.
        let opts = mysql_async::OptsBuilder::default()
            .ip_or_hostname(pump.host.as_str())
            .tcp_port(pump.port)
            .user(Some(pump.user.as_str()))
            .pass(Some(pump.password.expose()))
            .prefer_socket(false);
        let mut conn = mysql_async::Conn::new(opts)
            .await
            .map_err(|e| RunError::Connect(e.to_string()))?;
        let snapshot = read_upstream(&mut conn, |s, t| filter.wants_table(s, t))
            .await
            .map_err(|e| RunError::Connect(format!("reading table definitions: {e}")))?;
        conn.disconnect().await.ok();
        history.bootstrap(&store, reader.position(), &snapshot)?;
        tracing::info!(tables = history.catalog().tables.len(), position = %reader.position(), "schema bootstrapped");
    }
    tracing::info!(position = %reader.position(), "replicating");

    let mut run = Run {
        config,
        filter,
        store,
        history,
        down: Downstream::new(Target {
            host: to.host.clone(),
            port: to.port,
            user: to.user.clone(),
            password: to.password.expose().to_owned(),
            partial: to.sync_mode == 2,
        }),
        started: Instant::now(),
        txn: Vec::new(),
        statements: Vec::new(),
        current: None,
        unsaved: None,
        last_save: Instant::now(),
    };
    let interval = Duration::from_millis(config.syncer.checkpoint_interval_ms);
    loop {
        let event = tokio::select! {
            biased;
            _ = stop.changed() => break,
            e = reader.next_event() => e?,
            // An idle upstream still gets its last commit saved in time.
            _ = tokio::time::sleep(interval), if run.unsaved.is_some() => {
                run.save()?;
                continue;
            }
        };
        match event {
            TxnEvent::Begin(start) => {
                run.txn.clear();
                run.statements.clear();
                run.current = Some(start);
            }
            TxnEvent::Change(Change::Rows(rows)) => {
                let at = reader.position().clone();
                run.rows(&rows, &at).await?;
            }
            TxnEvent::Change(Change::Statement(s)) => run.statements.push((s.schema, s.text)),
            TxnEvent::Commit { position, .. } => run.commit(position).await?,
            TxnEvent::Rollback => {
                run.txn.clear();
                run.statements.clear();
            }
            TxnEvent::Idle { position } => {
                if run.txn.is_empty() {
                    run.unsaved = Some(position);
                }
            }
        }
    }
    run.save()?;
    tracing::info!("stopped; checkpoint saved");
    Ok(())
}
