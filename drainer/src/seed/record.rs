//! What `drainer seed` copied, as the downstream records it, and the window it leaves
//! the stream: `<mark schema>._drainer_seed` holds one row per copied chunk (its table,
//! the last key it holds, its row count and the binlog position of the consistent
//! snapshot it was read in), written in the chunk's own downstream transaction, and a
//! row for the seed as a whole (where streaming resumes, and whether the copy is
//! complete).
//!
//! ## The rule that makes the copy and the stream meet exactly
//! Each chunk is read in a consistent snapshot whose binlog position the server names
//! (MariaDB's `binlog_snapshot_file` / `binlog_snapshot_position`): the chunk holds every
//! transaction committed before that position and none after. Chunks of a table are
//! read in key order, each in a later snapshot than the one before. Streaming resumes at
//! the first chunk's snapshot; a row change of transaction `T` to key `k` of a copied
//! table then applies if and only if `T` is past the snapshot of the chunk that holds
//! `k`: with `m` the number of the table's chunks whose snapshot `T` is past (a prefix,
//! as snapshots grow), it applies when `k` is at most the last key of chunk `m` (any key,
//! when chunk `m` ran to the table's end; none, when `m` is 0). A change the copy already
//! holds is never applied again, and one it does not hold is never lost. A table copied
//! whole (no key to order by) is one chunk. Once a transaction is past every snapshot the
//! window is over and nothing is filtered.

use std::cmp::Ordering;
use std::collections::HashMap;

use mysql_async::Value;
use pump_reader::{BinlogCoords, Gtid, GtidSet, Position, TxnStart};
use schema::Table;

use crate::apply::sql::quote;

/// The control table's name, in the mark table's schema.
pub const SEED_TABLE: &str = "_drainer_seed";

/// `CREATE TABLE IF NOT EXISTS` of the control table in `schema`.
pub fn create(schema: &str) -> String {
    format!(
        "CREATE TABLE IF NOT EXISTS {}.{} (\
         channel_id BIGINT NOT NULL, \
         db_name VARCHAR(64) NOT NULL, \
         tbl_name VARCHAR(64) NOT NULL, \
         chunk INT UNSIGNED NOT NULL, \
         key_json TEXT NOT NULL, \
         hi_json TEXT NULL, \
         row_count BIGINT UNSIGNED NOT NULL, \
         snapshot_file VARCHAR(512) NOT NULL, \
         snapshot_pos BIGINT UNSIGNED NOT NULL, \
         snapshot_gtid TEXT NULL, \
         done TINYINT NOT NULL, \
         copied_at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6), \
         PRIMARY KEY (channel_id, db_name, tbl_name, chunk))",
        quote(schema),
        quote(SEED_TABLE)
    )
}

/// One row of the control table: a copied chunk, or (empty `db` and `table`, chunk 0)
/// the seed itself.
#[derive(Debug, Clone, PartialEq)]
pub struct Copied {
    pub db: String,
    pub table: String,
    /// 1, 2, … in key order (0: the seed's own row).
    pub chunk: u32,
    /// The key the table is chunked by (none: copied whole).
    pub key: Vec<String>,
    /// The chunk's last key (integers, as text); `None`: it ran to the table's end.
    pub hi: Option<Vec<String>>,
    pub rows: u64,
    /// Where its consistent snapshot stood in the upstream's binlog (the seed's row:
    /// where streaming resumes).
    pub snapshot: Position,
    /// The table is complete with this chunk (the seed's row: the copy is complete).
    pub done: bool,
}

impl Copied {
    /// The seed's own row.
    pub fn start(snapshot: Position, done: bool) -> Copied {
        Copied {
            db: String::new(),
            table: String::new(),
            chunk: 0,
            key: Vec::new(),
            hi: None,
            rows: 0,
            snapshot,
            done,
        }
    }

    pub fn is_start(&self) -> bool {
        self.db.is_empty() && self.table.is_empty()
    }

    /// Its INSERT (an upsert: the seed's row changes once, when the copy completes).
    pub fn upsert(&self, schema: &str, channel_id: i64) -> (String, Vec<Value>) {
        let sql = format!(
            "INSERT INTO {}.{} (channel_id, db_name, tbl_name, chunk, key_json, hi_json, \
             row_count, snapshot_file, snapshot_pos, snapshot_gtid, done) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) \
             ON DUPLICATE KEY UPDATE done = VALUES(done)",
            quote(schema),
            quote(SEED_TABLE)
        );
        let params = vec![
            Value::Int(channel_id),
            Value::from(self.db.as_str()),
            Value::from(self.table.as_str()),
            Value::UInt(u64::from(self.chunk)),
            Value::from(json(&self.key)),
            self.hi
                .as_ref()
                .map_or(Value::NULL, |h| Value::from(json(h))),
            Value::UInt(self.rows),
            Value::from(self.snapshot.coords.file.as_str()),
            Value::UInt(self.snapshot.coords.pos),
            self.snapshot
                .gtids
                .as_ref()
                .map_or(Value::NULL, |g| Value::from(g.to_string())),
            Value::Int(i64::from(self.done)),
        ];
        (sql, params)
    }

    /// The SELECT of a channel's rows, in table and chunk order.
    pub fn select(schema: &str) -> String {
        format!(
            "SELECT db_name, tbl_name, chunk, key_json, hi_json, row_count, snapshot_file, \
             snapshot_pos, snapshot_gtid, done FROM {}.{} WHERE channel_id = ? \
             ORDER BY db_name, tbl_name, chunk",
            quote(schema),
            quote(SEED_TABLE)
        )
    }

    /// A row [`Copied::select`] read.
    pub fn from_row(row: mysql_async::Row) -> Result<Copied, String> {
        type Cells = (
            String,
            String,
            u32,
            String,
            Option<String>,
            u64,
            String,
            u64,
            Option<String>,
            i64,
        );
        let (db, table, chunk, key, hi, rows, file, pos, gtid, done): Cells =
            mysql_async::from_row_opt(row).map_err(|e| format!("{SEED_TABLE}: {e}"))?;
        let bad = |what: &str, e: String| {
            format!("{SEED_TABLE}: {db}.{table} chunk {chunk}: {what}: {e}")
        };
        let key: Vec<String> =
            serde_json::from_str(&key).map_err(|e| bad("key_json", e.to_string()))?;
        let hi = hi
            .map(|h| serde_json::from_str::<Vec<String>>(&h))
            .transpose()
            .map_err(|e| bad("hi_json", e.to_string()))?;
        let gtids = gtid
            .filter(|g| !g.is_empty())
            .map(|g| g.parse::<GtidSet>())
            .transpose()
            .map_err(|e| bad("snapshot_gtid", e.to_string()))?;
        Ok(Copied {
            snapshot: Position {
                coords: BinlogCoords::new(file, pos),
                gtids,
            },
            db,
            table,
            chunk,
            key,
            hi,
            rows,
            done: done != 0,
        })
    }
}

fn json<T: serde::Serialize + ?Sized>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_default()
}

/// Whether the transaction that begins as `txn` is held by a consistent snapshot taken at
/// `snapshot` (committed before it): by its GTID where both have them, else by where it
/// starts in the binlog (a snapshot's position is a transaction boundary).
pub fn in_snapshot(snapshot: &Position, txn: &TxnStart) -> bool {
    match (&snapshot.gtids, &txn.gtid) {
        (Some(GtidSet::MariaDb(list)), Some(Gtid::MariaDb(g))) => {
            list.get(g.domain).is_some_and(|last| last.seq >= g.seq)
        }
        (Some(GtidSet::MySql(set)), Some(Gtid::MySql(g))) => set.contains(g),
        _ => txn.start.partial_cmp(&snapshot.coords) == Some(Ordering::Less),
    }
}

/// A key of integers, as the window compares them.
type Key = Vec<i128>;

fn key_of(texts: &[String]) -> Result<Key, String> {
    texts
        .iter()
        .map(|t| {
            t.parse::<i128>()
                .map_err(|_| format!("{t:?} is not an integer key value"))
        })
        .collect()
}

struct Chunk {
    /// Its last key; `None`: to the table's end.
    hi: Option<Key>,
    snapshot: Position,
}

struct Seeded {
    key: Vec<String>,
    chunks: Vec<Chunk>,
}

/// Which row changes of the transactions read after a seed apply (see the module note).
pub struct Window {
    /// By schema, then table name (looked up per row without building a key).
    tables: HashMap<String, HashMap<String, Seeded>>,
    /// The latest snapshot of all: a transaction past it is past the window.
    last: Position,
}

impl Window {
    /// The window the copied chunks leave (none when nothing was copied).
    pub fn new(copied: &[Copied]) -> Result<Option<Window>, String> {
        let mut tables: HashMap<String, HashMap<String, Seeded>> = HashMap::new();
        let mut last: Option<&Position> = None;
        for c in copied.iter().filter(|c| !c.is_start()) {
            let hi = c.hi.as_deref().map(key_of).transpose().map_err(|e| {
                format!("{SEED_TABLE}: {}.{} chunk {}: {e}", c.db, c.table, c.chunk)
            })?;
            let seeded = tables
                .entry(c.db.clone())
                .or_default()
                .entry(c.table.clone())
                .or_insert_with(|| Seeded {
                    key: c.key.clone(),
                    chunks: Vec::new(),
                });
            seeded.chunks.push(Chunk {
                hi,
                snapshot: c.snapshot.clone(),
            });
            last = match last {
                Some(l)
                    if crate::apply::downstream::order(&c.snapshot, l)
                        != Some(Ordering::Greater) =>
                {
                    Some(l)
                }
                _ => Some(&c.snapshot),
            };
        }
        Ok(last.cloned().map(|last| Window { tables, last }))
    }

    /// Where the window ends.
    pub fn last(&self) -> &Position {
        &self.last
    }

    /// Whether the transaction `txn` is past every snapshot: the window is over.
    pub fn past(&self, txn: &TxnStart) -> bool {
        !in_snapshot(&self.last, txn)
    }

    /// Whether a row image `row` of `table` changed by the transaction `txn` is to be
    /// applied (see the module note).
    pub fn applies(
        &self,
        table: &Table,
        txn: &TxnStart,
        row: &[Option<schema::Value>],
    ) -> Result<bool, String> {
        let Some(seeded) = self
            .tables
            .get(table.schema.as_str())
            .and_then(|t| t.get(table.name.as_str()))
        else {
            return Ok(true);
        };
        let m = seeded
            .chunks
            .iter()
            .take_while(|c| !in_snapshot(&c.snapshot, txn))
            .count();
        let Some(chunk) = m.checked_sub(1).map(|i| &seeded.chunks[i]) else {
            return Ok(false);
        };
        let Some(hi) = &chunk.hi else {
            return Ok(true);
        };
        let mut key = Vec::with_capacity(seeded.key.len());
        for name in &seeded.key {
            let at = table
                .columns
                .iter()
                .position(|c| c.name.eq_ignore_ascii_case(name))
                .ok_or_else(|| {
                    format!(
                        "{}: the seed's key column {name} is gone",
                        table.qualified()
                    )
                })?;
            key.push(match row.get(at) {
                Some(Some(schema::Value::Int(i))) => i128::from(*i),
                Some(Some(schema::Value::UInt(u))) => i128::from(*u),
                other => {
                    return Err(format!(
                        "{}: the seed chunked by {name}, an integer, but the row holds {other:?}",
                        table.qualified()
                    ))
                }
            });
        }
        Ok(key <= *hi)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pump_reader::MariaGtid;

    fn at(seq: u64) -> Position {
        Position {
            coords: BinlogCoords::new("bin.000001", 100 * seq),
            gtids: Some(format!("0-1-{seq}").parse().unwrap()),
        }
    }

    fn txn(seq: u64) -> TxnStart {
        TxnStart {
            gtid: Some(Gtid::MariaDb(MariaGtid {
                domain: 0,
                server: 1,
                seq,
            })),
            server_id: 1,
            start: BinlogCoords::new("bin.000001", 100 * (seq - 1)),
            xa: None,
        }
    }

    fn chunk(no: u32, hi: Option<i64>, snapshot: u64) -> Copied {
        Copied {
            db: "app".into(),
            table: "t".into(),
            chunk: no,
            key: vec!["id".into()],
            hi: hi.map(|h| vec![h.to_string()]),
            rows: 10,
            snapshot: at(snapshot),
            done: hi.is_none(),
        }
    }

    fn table() -> Table {
        let mut catalog = schema::Catalog::new();
        catalog
            .apply("app", "CREATE TABLE app.t (id INT PRIMARY KEY, v INT)")
            .unwrap();
        catalog.table("app", "t").unwrap().clone()
    }

    fn row(id: i64) -> Vec<Option<schema::Value>> {
        vec![Some(schema::Value::Int(id)), None]
    }

    #[test]
    fn a_transaction_is_in_a_snapshot_by_gtid_else_by_where_it_starts() {
        assert!(in_snapshot(&at(5), &txn(5)));
        assert!(!in_snapshot(&at(5), &txn(6)));
        let coords_only = Position {
            coords: BinlogCoords::new("bin.000001", 500),
            gtids: None,
        };
        assert!(in_snapshot(&coords_only, &txn(5)), "starts at 400");
        assert!(!in_snapshot(&coords_only, &txn(6)), "starts at 500");
    }

    #[test]
    fn a_change_applies_only_where_its_chunk_was_read_before_it() {
        // Chunk 1 (ids ..=10) read after transaction 5, chunk 2 (ids 11..) after 8.
        let window = Window::new(&[chunk(1, Some(10), 5), chunk(2, None, 8)])
            .unwrap()
            .unwrap();
        let t = table();
        let applies = |seq, id| window.applies(&t, &txn(seq), &row(id)).unwrap();
        // Before both snapshots: the copy holds it.
        assert!(!applies(3, 1) && !applies(3, 20));
        // Between them: chunk 1 was read before it, chunk 2 after.
        assert!(applies(6, 10) && !applies(6, 11));
        // After both: everything applies; past the window.
        assert!(applies(9, 1) && applies(9, 1_000));
        assert!(!window.past(&txn(8)) && window.past(&txn(9)));
        assert_eq!(window.last(), &at(8));
        // Another table is not filtered.
        let mut other = t.clone();
        other.name = "u".into();
        assert!(window.applies(&other, &txn(3), &row(1)).unwrap());
    }

    #[test]
    fn a_recorded_row_reads_back() {
        let c = chunk(3, Some(-7), 4);
        let (sql, params) = c.upsert("retl", 9);
        assert!(
            sql.starts_with("INSERT INTO `retl`.`_drainer_seed`"),
            "{sql}"
        );
        assert_eq!(params.len(), 11);
        assert_eq!(params[5], Value::from("[\"-7\"]"));
        assert!(Window::new(&[Copied::start(at(1), false)])
            .unwrap()
            .is_none());
    }
}
