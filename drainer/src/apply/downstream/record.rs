//! The apply record: one row per channel, upstream and writer, written last in every
//! downstream transaction (see the module note of [`super`]), and what it says at start.

use super::*;

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

    pub(super) fn create(&self) -> [String; 2] {
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
    pub(super) fn upgrade(&self) -> String {
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
    pub(super) fn write_and_commit(&self, worker: u32, stamp: &Stamp) -> String {
        format!("{}; COMMIT", self.write(worker, stamp))
    }

    /// The statement writing `stamp` as `worker`'s record.
    pub(super) fn write(&self, worker: u32, stamp: &Stamp) -> String {
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
pub(super) fn text_literal(text: &str) -> String {
    let mut out = String::with_capacity(12 + 2 * text.len());
    out.push_str("_utf8mb4 X'");
    super::inline::hex(text.as_bytes(), &mut out);
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

impl Downstream {
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
    pub(super) async fn record_rows(
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apply::downstream::tests::writer;

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
