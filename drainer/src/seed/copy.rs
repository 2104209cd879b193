//! One table's copy: created downstream when missing, then read upstream chunk by chunk
//! (each in its own consistent snapshot; a task reads the next chunk while this one is
//! written) and written downstream, each chunk in one marked transaction with its
//! control-table row and the apply record.

use std::sync::Arc;

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Value};
use pump_reader::Position;
use tokio::sync::mpsc;

use super::record::Copied;
use super::{failed, params, session, snapshot_position, upsert, Progress, SeedError};
use crate::apply::downstream::Downstream;
use crate::apply::sql::{quote, Stmt};
use crate::servers::Servers;
use crate::verify::chunk::{Chunk, KeyKind};

/// Rows and bytes of one multi-row INSERT at most (and 30,000 parameters).
const INSERT_ROWS: usize = 5_000;
const INSERT_BYTES: usize = 4 << 20;
const INSERT_PARAMS: usize = 30_000;
/// Rows a whole-table read hands over at a time.
const PIECE_ROWS: usize = 5_000;
/// The bytes a chunk holds when `--chunk-rows` does not fix its rows: large enough that
/// a chunk's snapshot and commit cost little per row, small enough to hold three (one
/// being read, one handed over, one being written).
pub const CHUNK_BYTES: usize = 16 << 20;
/// Rows of the first chunk, and the bounds of later ones, when they are sized by bytes.
const FIRST_CHUNK_ROWS: u64 = 10_000;
const CHUNK_ROWS_MIN: u64 = 500;
const CHUNK_ROWS_MAX: u64 = 200_000;

/// The tables to copy: those named, or every base table the direction replicates.
pub async fn tables(
    up: &mut Conn,
    named: &[String],
    filter: &conf::Filter,
) -> Result<Vec<(String, String)>, SeedError> {
    let all: Vec<(String, String, Option<String>)> = up
        .query(
            "SELECT TABLE_SCHEMA, TABLE_NAME, ENGINE FROM information_schema.TABLES \
             WHERE TABLE_TYPE IN ('BASE TABLE', 'SYSTEM VERSIONED') \
             ORDER BY TABLE_SCHEMA, TABLE_NAME",
        )
        .await
        .map_err(|e| failed(format!("upstream: {e}")))?;
    let mut out = Vec::new();
    let wanted: Vec<(String, String, Option<String>)> = if named.is_empty() {
        all.into_iter()
            .filter(|(d, t, _)| {
                filter.wants_table(d, t)
                    && !schema::SYSTEM_SCHEMAS
                        .iter()
                        .any(|s| s.eq_ignore_ascii_case(d))
            })
            .collect()
    } else {
        let mut picked = Vec::new();
        for name in named {
            let (d, t) = name
                .split_once('.')
                .ok_or_else(|| SeedError::Refused(format!("--tables: {name:?} is not db.table")))?;
            let found = all
                .iter()
                .find(|(ad, at, _)| ad == d && at == t)
                .ok_or_else(|| SeedError::Refused(format!("--tables: no table {name} upstream")))?;
            if !filter.wants_table(d, t) {
                return Err(SeedError::Refused(format!(
                    "--tables: {name} is not replicated by this direction's filters"
                )));
            }
            picked.push(found.clone());
        }
        picked
    };
    for (db, table, engine) in wanted {
        let engine = engine.unwrap_or_default();
        if !engine.eq_ignore_ascii_case("InnoDB") {
            return Err(SeedError::Refused(format!(
                "{db}.{table} is {engine}: seed copies InnoDB tables, each in a consistent \
                 snapshot; copy it yourself with writes to it stopped and leave it out \
                 (--tables or the filters)"
            )));
        }
        out.push((db, table));
    }
    Ok(out)
}

/// A table to copy.
pub struct Copy<'a> {
    pub db: &'a str,
    pub table: &'a str,
    /// The mark table's schema (the control table's).
    pub schema: &'a str,
    pub channel: i64,
    /// Where streaming resumes (the apply record of every chunk).
    pub resume: &'a Position,
    pub chunk_rows: Option<u64>,
    /// Its chunks copied by earlier runs.
    pub before: Vec<Copied>,
}

/// What the reader hands the writer: rows, and at a chunk's end its control-table row.
struct Piece {
    rows: Vec<Vec<Value>>,
    end: Option<Copied>,
}

/// The columns and key a table is copied with.
#[derive(Clone)]
struct Shape {
    chunk: Chunk,
    /// The key is made of integers: chunks in key order; else the table is read whole.
    chunked: bool,
}

impl Copy<'_> {
    fn name(&self) -> String {
        format!("{}.{}", self.db, self.table)
    }

    /// Copies the table (what earlier runs left); the last snapshot it was read in.
    pub async fn run(
        &self,
        servers: &Servers,
        up: &mut Conn,
        plain: &mut Conn,
        down: &mut Downstream,
        progress: &Arc<Progress>,
    ) -> Result<Option<Position>, SeedError> {
        let name = self.name();
        let shape = self.shape(up, plain, down).await?;
        let by = match (shape.chunked, shape.chunk.key.is_empty()) {
            (true, _) => format!(
                "by {}",
                shape
                    .chunk
                    .key
                    .iter()
                    .map(|(c, _)| c.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            (false, true) => "no primary or unique key: copied whole in one consistent read".into(),
            (false, false) => {
                "its key is not made of integers: copied whole in one consistent read".into()
            }
        };
        let copied_before: u64 = self.before.iter().map(|c| c.rows).sum();
        let complete = self.before.last().is_some_and(|c| c.done);
        let estimate: Option<u64> = up
            .exec_first(
                "SELECT TABLE_ROWS FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?",
                (self.db, self.table),
            )
            .await
            .map_err(|e| failed(format!("upstream: {e}")))?
            .flatten();
        let at = progress.table(
            name.clone(),
            by,
            estimate.unwrap_or(0),
            (copied_before, self.before.len() as u32),
            complete,
        );
        if complete {
            return Ok(self.before.last().map(|c| c.snapshot.clone()));
        }
        if self.before.is_empty() {
            let sql = format!(
                "SELECT 1 FROM {}.{} LIMIT 1",
                quote(self.db),
                quote(self.table)
            );
            let any: Option<u8> = plain
                .query_first(&sql)
                .await
                .map_err(|e| failed(format!("downstream: {sql}: {e}")))?;
            if any.is_some() {
                return Err(SeedError::Refused(format!(
                    "{name} on the downstream has rows already: seed copies into empty tables \
                     (empty it, or leave it out with --tables)"
                )));
            }
        }
        progress.start(at);
        // The reader runs on its own session, a chunk ahead of the writer.
        let reader = session(&servers.upstream, "upstream").await?;
        let (tx, mut rx) = mpsc::channel::<Result<Piece, SeedError>>(1);
        let lo = self.before.last().and_then(|c| c.hi.clone());
        let next_no = self.before.last().map_or(1, |c| c.chunk + 1);
        let reading = tokio::spawn(read(
            reader,
            shape.clone(),
            lo,
            next_no,
            self.chunk_rows,
            tx,
        ));
        let mut open = false;
        let mut last = None;
        let result = async {
            while let Some(piece) = rx.recv().await {
                let piece = piece?;
                let rows = piece.rows.len() as u64;
                let mut stmts = inserts(&shape.chunk, piece.rows);
                if !open {
                    down.begin(1).await.map_err(failed)?;
                    open = true;
                    // Tables are copied one after another, a child before its parent as
                    // often as not: as a dump restores them, with foreign-key checks off.
                    stmts.insert(
                        0,
                        Stmt {
                            sql: "SET SESSION foreign_key_checks = 0".into(),
                            params: Vec::new(),
                            check: None,
                        },
                    );
                }
                if let Some(end) = &piece.end {
                    stmts.push(upsert(end, self.schema, self.channel));
                }
                down.exec_owned(stmts).await.map_err(failed)?;
                if let Some(end) = piece.end {
                    let stamp = down.stamp(self.resume, self.resume);
                    down.commit(Some(&stamp)).await.map_err(failed)?;
                    open = false;
                    last = Some(end.snapshot.clone());
                    progress.copied(at, rows, true);
                    if end.done {
                        break;
                    }
                } else {
                    progress.copied(at, rows, false);
                    crate::failpoint::hit("seed-whole-piece");
                }
            }
            Ok::<_, SeedError>(())
        }
        .await;
        drop(rx);
        let read = reading.await.map_err(failed)?;
        result?;
        read?;
        progress.finish(at);
        Ok(last)
    }

    /// Creates the table downstream when missing (as the upstream defines it), and
    /// names its columns and key.
    async fn shape(
        &self,
        up: &mut Conn,
        plain: &mut Conn,
        down: &mut Downstream,
    ) -> Result<Shape, SeedError> {
        let exists: Option<u8> = plain
            .exec_first(
                "SELECT 1 FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?",
                (self.db, self.table),
            )
            .await
            .map_err(|e| failed(format!("downstream: {e}")))?;
        if exists.is_none() {
            let sql = format!("SHOW CREATE TABLE {}.{}", quote(self.db), quote(self.table));
            let create: Option<(String, Vec<u8>)> = up
                .query_first(&sql)
                .await
                .map_err(|e| failed(format!("upstream: {sql}: {e}")))?;
            let (_, create) =
                create.ok_or_else(|| failed(format!("upstream: {sql}: no answer")))?;
            // The downstream session writes under the channel's server id: the reverse
            // direction drops these as its own.
            let database = format!("CREATE DATABASE IF NOT EXISTS {}", quote(self.db));
            let use_db = format!("USE {}", quote(self.db));
            for sql in [database.as_bytes(), use_db.as_bytes(), &create] {
                down.run_text(sql).await.map_err(failed)?;
            }
            down.close().await;
            tracing::info!(table = %self.name(), "seed: created the table downstream");
        }
        let chunk = crate::verify::run::shape(up, plain, self.db, self.table)
            .await
            .map_err(failed)?;
        let generated: Vec<String> = up
            .exec(
                "SELECT COLUMN_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? \
                 AND TABLE_NAME = ? AND (EXTRA LIKE '%GENERATED%' OR EXTRA LIKE '%PERSISTENT%' \
                 OR EXTRA LIKE '%VIRTUAL%' OR EXTRA LIKE 'ROW %')",
                (self.db, self.table),
            )
            .await
            .map_err(|e| failed(format!("upstream: {e}")))?;
        let chunk = Chunk {
            columns: chunk
                .columns
                .into_iter()
                .filter(|c| !generated.iter().any(|g| g.eq_ignore_ascii_case(c)))
                .collect(),
            ..chunk
        };
        let chunked = !chunk.key.is_empty()
            && chunk
                .key
                .iter()
                .all(|(_, kind)| matches!(kind, KeyKind::Signed | KeyKind::Unsigned));
        Ok(Shape { chunk, chunked })
    }
}

/// The multi-row INSERTs of `rows` (in `shape`'s columns).
fn inserts(shape: &Chunk, rows: Vec<Vec<Value>>) -> Vec<Stmt> {
    let columns = shape.columns.len().max(1);
    let head = format!(
        "INSERT INTO {}.{} ({}) VALUES ",
        quote(&shape.db),
        quote(&shape.table),
        shape
            .columns
            .iter()
            .map(|c| quote(c))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let one = format!("({})", vec!["?"; columns].join(", "));
    let per = INSERT_ROWS.min(INSERT_PARAMS / columns).max(1);
    let mut stmts = Vec::new();
    let mut batch: Vec<Vec<Value>> = Vec::new();
    let mut bytes = 0;
    let flush = |batch: &mut Vec<Vec<Value>>, stmts: &mut Vec<Stmt>| {
        if batch.is_empty() {
            return;
        }
        let sql = format!("{head}{}", vec![one.as_str(); batch.len()].join(", "));
        let params = batch.drain(..).flat_map(params).collect();
        stmts.push(Stmt {
            sql,
            params,
            check: None,
        });
    };
    for row in rows {
        bytes += row.iter().map(size_of).sum::<usize>();
        batch.push(row);
        if batch.len() >= per || bytes >= INSERT_BYTES {
            flush(&mut batch, &mut stmts);
            bytes = 0;
        }
    }
    flush(&mut batch, &mut stmts);
    stmts
}

fn size_of(value: &Value) -> usize {
    match value {
        Value::Bytes(b) => b.len() + 8,
        _ => 16,
    }
}

/// A key value as the control table and the next chunk's bound take it.
fn key_text(value: &Value) -> Result<String, SeedError> {
    match value {
        Value::Int(i) => Ok(i.to_string()),
        Value::UInt(u) => Ok(u.to_string()),
        Value::Bytes(b) => Ok(String::from_utf8_lossy(b).into_owned()),
        other => Err(failed(format!("a key value {other:?} is not an integer"))),
    }
}

/// Reads the table from `lo` on, chunk by chunk, handing each over as it is read.
async fn read(
    mut up: Conn,
    shape: Shape,
    mut lo: Option<Vec<String>>,
    mut no: u32,
    chunk_rows: Option<u64>,
    tx: mpsc::Sender<Result<Piece, SeedError>>,
) -> Result<(), SeedError> {
    let result = async {
        let columns: Vec<String> = shape.chunk.columns.iter().map(|c| quote(c)).collect();
        let from = format!("{}.{}", quote(&shape.chunk.db), quote(&shape.chunk.table));
        let key_names: Vec<String> = shape.chunk.key.iter().map(|(c, _)| c.clone()).collect();
        let key_at: Vec<usize> = key_names
            .iter()
            .map(|k| {
                shape
                    .chunk
                    .columns
                    .iter()
                    .position(|c| c.eq_ignore_ascii_case(k))
                    .ok_or_else(|| failed(format!("{from}: key column {k} is not copied")))
            })
            .collect::<Result<_, _>>()?;
        let mut size = chunk_rows.unwrap_or(FIRST_CHUNK_ROWS);
        loop {
            up.query_drop("START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY")
                .await
                .map_err(|e| failed(format!("upstream: {e}")))?;
            let snapshot = snapshot_position(&mut up).await?;
            let end = |rows: u64, hi: Option<Vec<String>>, done: bool| Copied {
                db: shape.chunk.db.clone(),
                table: shape.chunk.table.clone(),
                chunk: no,
                key: if shape.chunked {
                    key_names.clone()
                } else {
                    Vec::new()
                },
                hi,
                rows,
                snapshot: snapshot.clone(),
                done,
            };
            if !shape.chunked {
                // Whole, in this one snapshot, handed over in pieces (one transaction
                // downstream).
                let sql = format!("SELECT {} FROM {from}", columns.join(", "));
                let mut result = up
                    .exec_iter(sql.as_str(), ())
                    .await
                    .map_err(|e| failed(format!("upstream: {sql}: {e}")))?;
                let mut rows = Vec::new();
                let mut total = 0u64;
                while let Some(row) = result
                    .next()
                    .await
                    .map_err(|e| failed(format!("upstream: {sql}: {e}")))?
                {
                    rows.push(row.unwrap());
                    if rows.len() >= PIECE_ROWS {
                        total += rows.len() as u64;
                        let piece = Piece {
                            rows: std::mem::take(&mut rows),
                            end: None,
                        };
                        if tx.send(Ok(piece)).await.is_err() {
                            return Ok(());
                        }
                    }
                }
                drop(result);
                up.query_drop("COMMIT").await.map_err(failed)?;
                total += rows.len() as u64;
                let _ = tx
                    .send(Ok(Piece {
                        rows,
                        end: Some(end(total, None, true)),
                    }))
                    .await;
                return Ok(());
            }
            let probe = Chunk {
                lo: lo.clone(),
                hi: None,
                ..shape.chunk.clone()
            };
            let mut bound = Vec::new();
            let range = probe.range(&mut bound);
            let sql = format!(
                "SELECT {} FROM {from}{range} ORDER BY {} LIMIT {size}",
                columns.join(", "),
                key_names
                    .iter()
                    .map(|k| quote(k))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            let rows: Vec<mysql_async::Row> = up
                .exec(sql.as_str(), bound)
                .await
                .map_err(|e| failed(format!("upstream: {sql}: {e}")))?;
            up.query_drop("COMMIT").await.map_err(failed)?;
            let rows: Vec<Vec<Value>> = rows.into_iter().map(mysql_async::Row::unwrap).collect();
            let done = (rows.len() as u64) < size;
            if chunk_rows.is_none() && !rows.is_empty() {
                // The next chunk sized to about CHUNK_BYTES, by this one's rows.
                let bytes: usize = rows
                    .iter()
                    .map(|r| r.iter().map(size_of).sum::<usize>())
                    .sum();
                let per_row = (bytes / rows.len()).max(1);
                size = ((CHUNK_BYTES / per_row) as u64)
                    .clamp(size / 4, size.saturating_mul(4))
                    .clamp(CHUNK_ROWS_MIN, CHUNK_ROWS_MAX);
            }
            let hi = match (done, rows.last()) {
                (false, Some(last)) => Some(
                    key_at
                        .iter()
                        .map(|&i| key_text(&last[i]))
                        .collect::<Result<Vec<_>, _>>()?,
                ),
                _ => None,
            };
            let piece = Piece {
                end: Some(end(rows.len() as u64, hi.clone(), done)),
                rows,
            };
            if tx.send(Ok(piece)).await.is_err() || done {
                return Ok(());
            }
            lo = hi;
            no += 1;
        }
    };
    let result: Result<(), SeedError> = result.await;
    if let Err(e) = &result {
        let _ = tx.send(Err(SeedError::Failed(e.to_string()))).await;
    }
    up.disconnect().await.ok();
    result
}
