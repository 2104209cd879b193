//! `drainer seed`: a new downstream copied from a live upstream, so that the direction
//! then streams from exactly the point the copy corresponds to.
//!
//! - The copy is read in chunks of a table's integer key, each in its own consistent
//!   snapshot whose binlog position the upstream names (no lock, no global read lock;
//!   writers go on). A table without an integer primary or unique key is read whole in
//!   one snapshot, and says so.
//! - Each chunk is written downstream in one marked transaction (the channel's mark, its
//!   server id), with a row of `<mark schema>._drainer_seed` naming the chunk and its
//!   snapshot and the channel's apply record: a kill resumes at the next chunk, and
//!   nothing flows back on a two-way pair. A table copied whole is one transaction.
//! - Streaming resumes at the first chunk's snapshot. Until it is past the last one, the
//!   pipeline applies a row change only where the copy does not hold it yet
//!   ([`record::Window`]): nothing is applied twice or lost, whatever the upstream wrote
//!   while the copy ran.
//! - The data-dir records the seed (`seed/state`): the schema history is bootstrapped at
//!   the resume position when the seed starts, and the checkpoint is set there once the
//!   copy is complete. A drainer refuses to start on an unfinished seed; a seed started
//!   again after a kill resumes, and one started after it completed says so.

pub mod copy;
pub mod progress;
pub mod record;

use std::sync::Arc;

use checkpoint::{Batch, Identity, Store};
use conf::{Config, Filter};
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Value};
use pump_reader::{Position, PositionRecord};
use schema::{Catalog, History};
use serde::{Deserialize, Serialize};

use crate::apply::downstream::Downstream;
use crate::apply::sql::{quote, Stmt};
use crate::apply::values::Param;
use crate::servers::Servers;
pub use progress::Progress;
use record::{create, Copied};

/// What `drainer seed` was asked.
#[derive(Debug, Clone)]
pub struct Options {
    /// `db.table` names; empty: every table the direction replicates.
    pub tables: Vec<String>,
    /// Rows per chunk; `None`: sized to about [`copy::CHUNK_BYTES`].
    pub chunk_rows: Option<u64>,
}

/// Why a seed did not complete: bad configuration or a state it must not copy into
/// (exit 2), or a failure on the way (exit 1; started again, it resumes).
#[derive(Debug, thiserror::Error)]
pub enum SeedError {
    #[error("{0}")]
    Refused(String),
    #[error("{0}")]
    Failed(String),
}

fn failed(e: impl std::fmt::Display) -> SeedError {
    SeedError::Failed(e.to_string())
}

/// How a seed ended.
#[derive(Debug)]
pub enum Outcome {
    /// The copy is complete (this run finished it).
    Copied { resume: Position, last: Position },
    /// An earlier run completed it.
    AlreadyDone { resume: Position },
}

const STATE_KEY: &[u8] = b"seed/state";

/// The seed as the data-dir records it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "version")]
enum State {
    #[serde(rename = "1")]
    V1 {
        /// Where streaming resumes.
        resume: PositionRecord,
        complete: bool,
    },
}

/// The data-dir's seed: where streaming resumes and whether the copy is complete.
pub fn state(store: &Store) -> Result<Option<(Position, bool)>, String> {
    let Some(bytes) = store.get(STATE_KEY).map_err(|e| e.to_string())? else {
        return Ok(None);
    };
    let corrupt = |e: String| format!("{}: seed/state: {e}", store.path().display());
    let State::V1 { resume, complete } =
        serde_json::from_slice(&bytes).map_err(|e| corrupt(e.to_string()))?;
    let resume = Position::try_from(&resume).map_err(|e| corrupt(e.to_string()))?;
    Ok(Some((resume, complete)))
}

fn state_value(resume: &Position, complete: bool) -> Vec<u8> {
    serde_json::to_vec(&State::V1 {
        resume: PositionRecord::from(resume),
        complete,
    })
    .expect("a seed state serializes")
}

/// A session as the copy reads and writes rows: values as stored (`SET NAMES binary`),
/// times in UTC, snapshots that hold for a whole transaction.
pub(crate) async fn session(server: &link::Server, what: &str) -> Result<Conn, SeedError> {
    let mut conn = server
        .session(server.opts())
        .await
        .map_err(|e| failed(format!("cannot connect to the {what} {server:?}: {e}")))?;
    for sql in [
        "SET NAMES binary, time_zone = '+00:00'",
        "SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ",
    ] {
        conn.query_drop(sql)
            .await
            .map_err(|e| failed(format!("{what}: {e}")))?;
    }
    Ok(conn)
}

/// The rows of `channel` in the downstream's control table.
async fn recorded(down: &mut Conn, schema: &str, channel: i64) -> Result<Vec<Copied>, SeedError> {
    let rows: Vec<mysql_async::Row> = down
        .exec(Copied::select(schema), (channel,))
        .await
        .map_err(|e| {
            failed(format!(
                "downstream: reading {schema}.{}: {e}",
                record::SEED_TABLE
            ))
        })?;
    rows.into_iter()
        .map(Copied::from_row)
        .collect::<Result<_, _>>()
        .map_err(failed)
}

/// The copy's window as the downstream records it for `channel` (none: no seed, or a
/// downstream without the control table).
///
/// Errors say whether asking again may help (`true`: the downstream could not be reached
/// or the session was lost).
pub async fn window(
    server: &link::Server,
    schema: &str,
    channel: i64,
) -> Result<Option<record::Window>, (bool, String)> {
    let mut down = session(server, "downstream")
        .await
        .map_err(|e| (true, e.to_string()))?;
    let exists: Option<u8> = down
        .exec_first(
            "SELECT 1 FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?",
            (schema, record::SEED_TABLE),
        )
        .await
        .map_err(|e| {
            let transient = !matches!(e, mysql_async::Error::Server(_));
            (transient, format!("downstream: {e}"))
        })?;
    if exists.is_none() {
        return Ok(None);
    }
    let copied = recorded(&mut down, schema, channel)
        .await
        .map_err(|e| (false, e.to_string()))?;
    down.disconnect().await.ok();
    record::Window::new(&copied).map_err(|e| (false, e))
}

/// The position of a consistent snapshot just opened on `up` (MariaDB names it; the GTID
/// state from it).
pub(crate) async fn snapshot_position(up: &mut Conn) -> Result<Position, SeedError> {
    let vars: Vec<(String, String)> = up
        .query(
            "SELECT UPPER(VARIABLE_NAME), VARIABLE_VALUE FROM information_schema.SESSION_STATUS \
             WHERE VARIABLE_NAME IN ('BINLOG_SNAPSHOT_FILE', 'BINLOG_SNAPSHOT_POSITION')",
        )
        .await
        .map_err(|e| failed(format!("upstream: {e}")))?;
    let get = |name: &str| vars.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone());
    let (Some(file), Some(pos)) = (get("BINLOG_SNAPSHOT_FILE"), get("BINLOG_SNAPSHOT_POSITION"))
    else {
        return Err(SeedError::Refused(
            "the upstream does not name the binlog position of a consistent snapshot \
             (status binlog_snapshot_file): seed needs a MariaDB upstream with the binlog on"
                .into(),
        ));
    };
    let pos: u64 = pos
        .parse()
        .map_err(|_| failed(format!("upstream: binlog_snapshot_position {pos:?}")))?;
    if file.is_empty() {
        return Err(SeedError::Refused(
            "the upstream's binlog is off (binlog_snapshot_file is empty): seed reads \
             where each chunk stands in it"
                .into(),
        ));
    }
    let gtid: Option<String> = up
        .exec_first("SELECT BINLOG_GTID_POS(?, ?)", (file.as_str(), pos))
        .await
        .map_err(|e| failed(format!("upstream: BINLOG_GTID_POS: {e}")))?
        .flatten();
    let gtids = gtid
        .filter(|g| !g.is_empty())
        .map(|g| g.parse())
        .transpose()
        .map_err(|e: pump_reader::PositionError| {
            failed(format!("upstream: BINLOG_GTID_POS: {e}"))
        })?;
    Ok(Position {
        coords: pump_reader::BinlogCoords::new(file, pos),
        gtids,
    })
}

/// One control-table row as a statement of a downstream transaction.
pub(crate) fn upsert(copied: &Copied, schema: &str, channel: i64) -> Stmt {
    let (sql, params) = copied.upsert(schema, channel);
    Stmt {
        sql,
        params: params.into_iter().map(Param::Plain).collect(),
        check: None,
    }
}

/// Writes `stmts` downstream in one marked transaction with the apply record at
/// `resume`.
pub(crate) async fn write(
    down: &mut Downstream,
    stmts: Vec<Stmt>,
    resume: &Position,
) -> Result<(), SeedError> {
    down.begin(1).await.map_err(failed)?;
    down.exec_owned(stmts).await.map_err(failed)?;
    let stamp = down.stamp(resume, resume);
    down.commit(Some(&stamp)).await.map_err(failed)
}

/// Runs `drainer seed` for the direction of `config` (see the module note).
pub async fn seed(
    config: &Config,
    servers: &Servers,
    options: &Options,
    progress: &Arc<Progress>,
) -> Result<Outcome, SeedError> {
    let store = Store::open(&config.data_dir).map_err(|e| {
        SeedError::Refused(format!(
            "{e} (seed runs while no drainer holds this data-dir)"
        ))
    })?;
    let identity = Identity {
        upstream: crate::pipeline::identify(&servers.upstream)
            .await
            .map_err(failed)?,
        downstream: crate::pipeline::identify(&servers.downstream)
            .await
            .map_err(failed)?,
        channel_id: config.syncer.channel_id,
    };
    store
        .claim(&identity)
        .map_err(|e| SeedError::Refused(e.to_string()))?;
    let saved = state(&store).map_err(failed)?;
    if let Some((resume, true)) = &saved {
        return Ok(Outcome::AlreadyDone {
            resume: resume.clone(),
        });
    }
    if saved.is_none() {
        if let Some(c) = store.checkpoint().map_err(failed)? {
            return Err(SeedError::Refused(format!(
                "{}: this data-dir replicates already (checkpoint at {}): seed brings up a new \
                 site; to copy again, stop the drainer, empty the downstream's tables and \
                 start with a new data-dir",
                config.data_dir.display(),
                c.position
            )));
        }
    }
    let target =
        crate::pipeline::downstream_target(config, servers, &identity, None).map_err(failed)?;
    let schema = target.record.schema.clone();
    let channel = config.syncer.channel_id;
    let mut down = Downstream::new(target);
    let mut plain = session(&servers.downstream, "downstream").await?;
    for sql in [
        format!("CREATE DATABASE IF NOT EXISTS {}", quote(&schema)),
        create(&schema),
    ] {
        plain
            .query_drop(&sql)
            .await
            .map_err(|e| failed(format!("downstream: {sql}: {e}")))?;
    }
    let copied = recorded(&mut plain, &schema, channel).await?;
    let mut up = session(&servers.upstream, "upstream").await?;

    // Where streaming resumes: the first snapshot, recorded downstream with the apply
    // record in one transaction.
    let start = copied.iter().find(|c| c.is_start()).cloned();
    let resume = match &start {
        Some(s) => s.snapshot.clone(),
        None => {
            if let Some(applied) = down.applied().await.map_err(failed)? {
                return Err(SeedError::Refused(format!(
                    "the downstream records that channel {channel} applied this upstream to {} \
                     already: seed copies into a new site (remove the record and empty the \
                     tables to copy again)",
                    applied.low
                )));
            }
            up.query_drop("START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY")
                .await
                .map_err(|e| failed(format!("upstream: {e}")))?;
            let at = snapshot_position(&mut up).await?;
            up.query_drop("COMMIT").await.map_err(failed)?;
            write(
                &mut down,
                vec![upsert(&Copied::start(at.clone(), false), &schema, channel)],
                &at,
            )
            .await?;
            tracing::info!(position = %at, "seed: streaming will resume here");
            at
        }
    };
    // The schema history begins where streaming resumes.
    let filter = Filter::new(&config.syncer).map_err(SeedError::Refused)?;
    let mut history = History::load(&store, None).map_err(failed)?;
    if history.is_empty() {
        let snapshot = crate::pipeline::read_definitions(&servers.upstream, &filter)
            .await
            .map_err(failed)?;
        history
            .bootstrap(&store, &resume, &snapshot)
            .map_err(failed)?;
        store
            .write({
                let mut batch = Batch::default();
                batch.put(STATE_KEY.to_vec(), state_value(&resume, false));
                batch
            })
            .map_err(failed)?;
    }

    let done = start.as_ref().is_some_and(|s| s.done);
    let mut last = resume.clone();
    if !done {
        let tables = copy::tables(&mut up, &options.tables, &filter).await?;
        for (db, table) in &tables {
            let copy = copy::Copy {
                db,
                table,
                schema: &schema,
                channel,
                resume: &resume,
                chunk_rows: options.chunk_rows.map(|n| n.max(1)),
                before: copied
                    .iter()
                    .filter(|c| c.db == *db && c.table == *table)
                    .cloned()
                    .collect(),
            };
            if let Some(at) = copy
                .run(servers, &mut up, &mut plain, &mut down, progress)
                .await?
            {
                last = at;
            }
        }
        unchanged(&servers.upstream, &filter, history.catalog(), &tables).await?;
        write(
            &mut down,
            vec![upsert(
                &Copied::start(resume.clone(), true),
                &schema,
                channel,
            )],
            &resume,
        )
        .await?;
    }
    // The copy is complete downstream: the data-dir's checkpoint moves to where
    // streaming resumes (a crash before this finishes it on the next run).
    let mut batch = Batch::default();
    batch.put(STATE_KEY.to_vec(), state_value(&resume, true));
    store
        .save_checkpoint(&resume, crate::status::unix_now(), batch)
        .map_err(failed)?;
    down.close().await;
    Ok(Outcome::Copied { resume, last })
}

/// Refuses a copy during which a copied table's definition changed upstream: its
/// chunks would hold rows of two shapes, and the stream would replay the change.
async fn unchanged(
    server: &link::Server,
    filter: &Filter,
    at_start: &Catalog,
    tables: &[(String, String)],
) -> Result<(), SeedError> {
    let now = crate::pipeline::read_definitions(server, filter)
        .await
        .map_err(failed)?;
    let mut catalog = Catalog::new();
    catalog.server = now.server.clone();
    for (schema, sql) in &now.statements {
        catalog
            .apply(schema, sql)
            .map_err(|e| failed(format!("upstream definitions: {e}")))?;
    }
    let changed: Vec<String> = tables
        .iter()
        .filter(|(d, t)| catalog.table(d, t) != at_start.table(d, t))
        .map(|(d, t)| format!("{d}.{t}"))
        .collect();
    if changed.is_empty() {
        return Ok(());
    }
    Err(SeedError::Failed(format!(
        "the definition of {} changed on the upstream while seed copied it (DDL): its copy \
         may mix rows of both definitions. Empty the downstream (drop its copied tables and \
         the rows of {}), remove the data-dir, and seed again with no DDL on these tables \
         meanwhile",
        changed.join(", "),
        record::SEED_TABLE
    )))
}

/// `Value`s of a row as they go back as parameters.
pub(crate) fn params(row: Vec<Value>) -> impl Iterator<Item = Param> {
    row.into_iter().map(Param::Plain)
}
