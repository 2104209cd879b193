//! The schema history: every change of a tracked table, with the position where it took
//! effect, saved in the checkpoint store.
//!
//! An entry holds only what one statement changed (the definitions of the tables it
//! created, altered or dropped), never a copy of the whole catalog; the bootstrap is the
//! one entry with every table. Entries are keyed `schema/<sequence>` and replayed in
//! order. Loading up to a position drops entries recorded after it (a DDL whose checkpoint
//! was never written is applied again when the binlog is read again).

use std::cmp::Ordering;

use checkpoint::{Batch, Store};
use pump_reader::{Position, PositionRecord};
use serde::{Deserialize, Serialize};

use crate::ddl::{Applied, Catalog, Database, DdlError, SqlMode};
use crate::model::Table;

const PREFIX: &[u8] = b"schema/";

#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    /// A statement the tracker cannot apply, at its binlog position. Replication stops
    /// here until an operator decides (fix the statement's effect, or skip it).
    #[error("schema change at {at}: {source}")]
    Ddl {
        at: Position,
        #[source]
        source: DdlError,
    },
    #[error("schema history: {0}")]
    Store(#[from] checkpoint::Error),
    #[error("schema history entry {key}: {reason}")]
    Corrupt { key: String, reason: String },
}

/// One table's definition after a change (`None`: dropped).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct TableState {
    schema: String,
    name: String,
    table: Option<Table>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct EntryV1 {
    position: PositionRecord,
    /// The server's default charset, recorded by the bootstrap.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    server: Option<Database>,
    /// What made the change: the statement, or `bootstrap`.
    cause: String,
    tables: Vec<TableState>,
    databases: Vec<(String, Option<Database>)>,
}

/// Stored values carry their format version, so a later release can migrate them.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "version")]
enum Entry {
    #[serde(rename = "1")]
    V1(EntryV1),
}

/// The catalog as of the last recorded change, and where to record the next.
#[derive(Debug, Default)]
pub struct History {
    catalog: Catalog,
    next_seq: u64,
    /// The server default to write with the next entry (the bootstrap's).
    server_to_record: Option<Database>,
    /// Statements of the transaction being read, already in `catalog` (its later rows
    /// decode with them) but recorded only at its commit: (cause, what changed).
    staged: Vec<(String, Applied)>,
    /// The catalog before the first staged statement, for a rollback.
    before_staged: Option<Catalog>,
}

fn key(seq: u64) -> Vec<u8> {
    let mut k = PREFIX.to_vec();
    k.extend(seq.to_be_bytes());
    k
}

/// Whether `entry` is at or before `upto`: by GTID state when both have one (coordinates
/// mean nothing across a failover), else by coordinates.
fn at_or_before(entry: &Position, upto: &Position) -> Option<bool> {
    let order = match (&entry.gtids, &upto.gtids) {
        (Some(a), Some(b)) if !a.is_empty() || !b.is_empty() => a.partial_cmp(b),
        _ => entry.coords.partial_cmp(&upto.coords),
    }?;
    Some(order != Ordering::Greater)
}

/// What a bootstrap reads from the upstream: its default charset, and `(schema,
/// statement)` pairs as `SHOW CREATE DATABASE` / `SHOW CREATE TABLE` print them.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub server: Database,
    pub statements: Vec<(String, String)>,
}

impl History {
    /// Replays the recorded entries (all of them, or those at or before `upto`, deleting the
    /// ones after it: they were recorded by a run that stopped before its checkpoint reached
    /// them, and will be recorded again when their statements are read again).
    pub fn load(store: &Store, upto: Option<&Position>) -> Result<History, HistoryError> {
        let (history, later) = Self::replay(store, upto)?;
        if !later.is_empty() {
            store.write(later)?;
        }
        Ok(history)
    }

    /// The definitions in force at `upto`, without changing the store (for a read-only
    /// look, such as `drainer schema show`).
    pub fn at(store: &Store, upto: &Position) -> Result<History, HistoryError> {
        Self::replay(store, Some(upto)).map(|(history, _)| history)
    }

    /// Replays the entries at or before `upto` (all without it); returns the history and
    /// the deletion of the entries after `upto`.
    fn replay(store: &Store, upto: Option<&Position>) -> Result<(History, Batch), HistoryError> {
        let mut history = History::default();
        let mut later = Batch::default();
        for (k, value) in store.scan(PREFIX)? {
            let name = format!(
                "schema/{}",
                k.get(PREFIX.len()..)
                    .map(|s| format!("{s:02x?}"))
                    .unwrap_or_default()
            );
            let corrupt = |reason: String| HistoryError::Corrupt {
                key: name.clone(),
                reason,
            };
            let seq = u64::from_be_bytes(
                k[PREFIX.len()..]
                    .try_into()
                    .map_err(|_| corrupt("bad key".into()))?,
            );
            let Entry::V1(entry) =
                serde_json::from_slice::<Entry>(&value).map_err(|e| corrupt(e.to_string()))?;
            let position =
                Position::try_from(&entry.position).map_err(|e| corrupt(e.to_string()))?;
            if let Some(upto) = upto {
                match at_or_before(&position, upto) {
                    Some(true) => {}
                    Some(false) if seq == 0 => {
                        return Err(corrupt(format!(
                            "the checkpoint {upto} is before the bootstrap at {position}: this \
                             data-dir cannot decode from there"
                        )))
                    }
                    Some(false) => {
                        later.delete(k);
                        continue;
                    }
                    None => {
                        return Err(corrupt(format!(
                        "its position {position} cannot be ordered against the checkpoint {upto}"
                    )))
                    }
                }
            }
            if let Some(server) = entry.server {
                history.catalog.server = server;
            }
            for state in entry.tables {
                let key = (state.schema, state.name);
                match state.table {
                    Some(t) => history.catalog.tables.insert(key, t),
                    None => history.catalog.tables.remove(&key),
                };
            }
            for (name, db) in entry.databases {
                match db {
                    Some(db) => history.catalog.databases.insert(name, db),
                    None => history.catalog.databases.remove(&name),
                };
            }
            history.next_seq = seq + 1;
        }
        Ok((history, later))
    }

    /// Where the bootstrap was taken, if there was one: no checkpoint may go before it.
    pub fn bootstrap_position(store: &Store) -> Result<Option<Position>, HistoryError> {
        let Some((_, value)) = store.scan(PREFIX)?.into_iter().next() else {
            return Ok(None);
        };
        let corrupt = |reason: String| HistoryError::Corrupt {
            key: "schema/0".into(),
            reason,
        };
        let Entry::V1(entry) =
            serde_json::from_slice::<Entry>(&value).map_err(|e| corrupt(e.to_string()))?;
        Position::try_from(&entry.position)
            .map(Some)
            .map_err(|e| corrupt(e.to_string()))
    }

    /// Whether nothing is recorded yet (the store needs a bootstrap).
    pub fn is_empty(&self) -> bool {
        self.next_seq == 0
    }

    pub fn catalog(&self) -> &Catalog {
        &self.catalog
    }

    /// Records the starting definitions, applied with the same code as any DDL. Only into
    /// an empty history: a bootstrap over recorded changes would mix two starting points.
    pub fn bootstrap(
        &mut self,
        store: &Store,
        at: &Position,
        snapshot: &Snapshot,
    ) -> Result<(), HistoryError> {
        if !self.is_empty() {
            return Err(HistoryError::Corrupt {
                key: "schema/0".into(),
                reason: "the history is not empty: bootstrap only a new data-dir".into(),
            });
        }
        let statements = &snapshot.statements;
        let mut catalog = Catalog::new();
        catalog.server = snapshot.server.clone();
        let mut all = Applied {
            class: crate::Class::Table,
            ..Applied::none()
        };
        for (schema, sql) in statements {
            let applied = catalog
                .apply(schema, sql)
                .map_err(|source| HistoryError::Ddl {
                    at: at.clone(),
                    source,
                })?;
            all.tables.extend(applied.tables);
            all.databases.extend(applied.databases);
        }
        self.server_to_record = Some(snapshot.server.clone());
        self.record(store, at, "bootstrap", &all)?;
        self.catalog = catalog;
        Ok(())
    }

    /// Applies a statement read at `at` (the position after it) with its `USE` context, and
    /// records what it changed at once: [`History::stage`] then [`History::commit_staged`]
    /// (so it also records whatever was staged before).
    pub fn apply(
        &mut self,
        store: &Store,
        at: &Position,
        default_schema: &str,
        sql: &str,
    ) -> Result<Applied, HistoryError> {
        self.apply_filtered(store, at, default_schema, sql, &|_, _| true)
    }

    /// [`History::apply`] with the replication filter: tables `wants` refuses are not
    /// tracked.
    pub fn apply_filtered(
        &mut self,
        store: &Store,
        at: &Position,
        default_schema: &str,
        sql: &str,
        wants: &dyn Fn(&str, &str) -> bool,
    ) -> Result<Applied, HistoryError> {
        let applied = self
            .stage(default_schema, sql, SqlMode::default(), wants)
            .map_err(|source| HistoryError::Ddl {
                at: at.clone(),
                source,
            })?;
        self.commit_staged(store, at)?;
        Ok(applied)
    }

    /// Applies a statement of the transaction being read to the catalog at once (rows after
    /// it in the same transaction, as in `CREATE TABLE … SELECT`, decode with it), to be
    /// recorded by [`History::commit_staged`] at the transaction's commit position, or
    /// undone by [`History::discard_staged`]. On error nothing changes.
    pub fn stage(
        &mut self,
        default_schema: &str,
        sql: &str,
        mode: SqlMode,
        wants: &dyn Fn(&str, &str) -> bool,
    ) -> Result<Applied, DdlError> {
        let mut next = self.catalog.clone();
        let applied = next.apply_in(default_schema, sql, mode, wants)?;
        if !applied.tables.is_empty() || !applied.databases.is_empty() {
            let before = std::mem::replace(&mut self.catalog, next);
            self.before_staged.get_or_insert(before);
            self.staged.push((sql.to_owned(), applied.clone()));
        }
        Ok(applied)
    }

    /// Stages an operator's decision to pass over a statement (see [`History::skip`]).
    pub fn stage_skip(&mut self, sql: &str) {
        self.staged
            .push((format!("skipped by the operator: {sql}"), Applied::none()));
    }

    /// Records the staged statements at `at`, where their transaction committed.
    pub fn commit_staged(&mut self, store: &Store, at: &Position) -> Result<(), HistoryError> {
        for (cause, applied) in std::mem::take(&mut self.staged) {
            self.record(store, at, &cause, &applied)?;
        }
        self.before_staged = None;
        Ok(())
    }

    /// Undoes the staged statements (their transaction rolled back, or was dropped).
    pub fn discard_staged(&mut self) {
        self.staged.clear();
        if let Some(before) = self.before_staged.take() {
            self.catalog = before;
        }
    }

    /// Passes over a statement deliberately (an operator's decision, for one the tracker
    /// cannot apply): the catalog stays as it is, and the history records the skip so the
    /// decision can be seen later.
    pub fn skip(&mut self, store: &Store, at: &Position, sql: &str) -> Result<(), HistoryError> {
        self.stage_skip(sql);
        self.commit_staged(store, at)
    }

    /// Replaces a table's definition (a correction from the binlog's own metadata).
    pub fn replace(
        &mut self,
        store: &Store,
        at: &Position,
        table: Table,
        why: &str,
    ) -> Result<(), HistoryError> {
        let key = (table.schema.clone(), table.name.clone());
        let applied = Applied {
            class: crate::Class::Table,
            tables: vec![(key.clone(), Some(table.clone()))],
            ..Applied::none()
        };
        self.record(store, at, why, &applied)?;
        self.catalog.tables.insert(key, table);
        Ok(())
    }

    fn record(
        &mut self,
        store: &Store,
        at: &Position,
        cause: &str,
        applied: &Applied,
    ) -> Result<(), HistoryError> {
        let entry = Entry::V1(EntryV1 {
            position: PositionRecord::from(at),
            server: self.server_to_record.take(),
            cause: cause.to_owned(),
            tables: applied
                .tables
                .iter()
                .map(|((schema, name), table)| TableState {
                    schema: schema.clone(),
                    name: name.clone(),
                    table: table.clone(),
                })
                .collect(),
            databases: applied.databases.clone(),
        });
        let value = serde_json::to_vec(&entry).map_err(|e| HistoryError::Corrupt {
            key: format!("schema/{}", self.next_seq),
            reason: e.to_string(),
        })?;
        let mut batch = Batch::default();
        batch.put(key(self.next_seq), value);
        store.write(batch)?;
        self.next_seq += 1;
        Ok(())
    }
}
