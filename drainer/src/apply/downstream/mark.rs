//! The loopback mark: a row of the mark table (TiDB Binlog's layout) that every
//! transaction of this channel updates first, so the reverse direction can recognise it.

use super::*;

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
    /// `loop-marker = "comment"`: no mark row and no session server id for rows; every
    /// statement begins with this comment instead (DDL sessions still write under
    /// `server_id`: MariaDB drops comments from some statements it logs).
    pub comment: Option<String>,
}

impl Mark {
    pub(super) fn qualified(&self) -> String {
        format!("{}.{}", quote(&self.schema), quote(&self.table))
    }

    /// The mark table (and its schema) if missing; then this channel's rows.
    pub(super) fn setup(&self) -> ([Stmt; 2], Stmt) {
        let plain = |sql: String| Stmt {
            sql,
            params: Vec::new(),
            check: None,
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
    pub(super) fn begin(&self, id: u32, transactions: u64) -> String {
        format!(
            "BEGIN; UPDATE {} SET val = val + {transactions} WHERE id = {id} AND channel_id = {}",
            self.qualified(),
            self.channel_id
        )
    }

    /// The mark of a transaction sent as one text (`Downstream::trip`), which no
    /// answer can stop between statements: row `id` up as [`Mark::begin`] has it, or
    /// made again if it is missing, so the transaction is marked either way.
    /// Written into `text` (for every transaction: no string of its own).
    pub(super) fn push_upsert(&self, text: &mut String, id: u32, transactions: u64) {
        use std::fmt::Write;
        text.push_str("INSERT INTO ");
        push_quoted(text, &self.schema);
        text.push('.');
        push_quoted(text, &self.table);
        write!(
            text,
            " (id, channel_id, val, channel_info) VALUES ({id}, {}, {transactions}, \
             'drainer') ON DUPLICATE KEY UPDATE val = val + {transactions}",
            self.channel_id
        )
        .expect("writing to a String cannot fail");
    }
}
