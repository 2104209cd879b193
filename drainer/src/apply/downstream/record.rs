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

/// A writer's second row: its `worker` plus this. Queues of transactions sent together
/// (`txn-batch = 1`) record in the writer's two rows in turn, each row listing what was
/// committed through it past the watermark: a queue's records list the transactions
/// before them in the queue, and no longer the previous queue's as well (by the time a
/// queue writes a row again, the watermark has mostly passed what that row listed).
/// A restart reads every row alike; an earlier version reads these rows as writers of
/// their own, which list what they committed (the same thing).
pub const ALTERNATE: u32 = 1 << 20;

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
    /// its values are literals that mean the same under any SQL mode.
    pub(super) fn write_and_commit(&self, worker: u32, stamp: &Stamp) -> String {
        format!("{}; COMMIT", self.write(worker, stamp))
    }

    /// The statement writing `stamp` as `worker`'s record.
    pub(super) fn write(&self, worker: u32, stamp: &Stamp) -> String {
        let mut out = String::with_capacity(512);
        self.write_into(worker, stamp, &mut out);
        out
    }

    /// [`ApplyRecord::write`] appended to `out`: written in place, as it is part of
    /// every transaction's text.
    pub(super) fn write_into(&self, worker: u32, stamp: &Stamp, out: &mut String) {
        use std::fmt::Write;
        out.push_str("INSERT INTO ");
        push_quoted(out, &self.schema);
        out.push('.');
        push_quoted(out, APPLY_TABLE);
        let _ = write!(
            out,
            " (channel_id, source, worker, position, low_watermark, applied_after) \
             VALUES ({}, ",
            self.channel_id,
        );
        out.push_str(&text_literal(&self.source));
        let _ = write!(out, ", {}, ", ApplyRecord::row(worker, stamp.alternate));
        json_literal(out, false, |out| position_json(&stamp.position, out));
        out.push_str(", ");
        json_literal(out, false, |out| position_json(&stamp.low, out));
        out.push_str(", ");
        let list = |out: &mut String| {
            out.push('[');
            for (i, p) in stamp.after.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&p.json);
            }
            out.push(']');
        };
        // The list is the longest part of the text, and written again with every
        // transaction while the watermark has not passed it: its entries were checked
        // once, as they were listed.
        json_literal(out, stamp.after.iter().all(|p| p.plain), list);
        out.push_str(
            ") ON DUPLICATE KEY UPDATE position = VALUES(position), \
             low_watermark = VALUES(low_watermark), applied_after = VALUES(applied_after)",
        );
    }

    /// The `worker` column of writer `worker`'s first row or, `alternate`, its second.
    pub fn row(worker: u32, alternate: bool) -> u32 {
        if alternate {
            worker + ALTERNATE
        } else {
            worker
        }
    }

    /// The name of writer `worker`'s lock (`GET_LOCK`), held by its session while it
    /// lives (see [`Downstream::applied`]): the same for every run of the channel and
    /// drainer version, within the 64 characters servers allow.
    pub fn writer_lock(&self, worker: u32) -> String {
        // FNV-1a: a hash that stays the same from one build to the next.
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        let channel = self.channel_id.to_string();
        for part in [
            self.schema.as_bytes(),
            channel.as_bytes(),
            self.source.as_bytes(),
        ] {
            for &b in part.iter().chain(&[0]) {
                hash = (hash ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
            }
        }
        format!("drainer-{hash:016x}-{worker}")
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

/// How long a session waits for a writer's lock: a session of an earlier run still runs
/// at most a text of 256 KiB (`inline::MAX_TEXT`), unless a lock wait holds it.
const WRITER_LOCK_WAIT_S: u32 = 30;

/// Takes writer `worker`'s lock `name` on `conn`, waiting for the session holding it to
/// end; keeps it (the writer's own session) or gives it back (`keep = false`: waiting
/// was all that was needed). A session of `user` holding it while idle is killed: it
/// runs nothing that could commit later (left by a drainer host that died, it would
/// otherwise hold the lock until the server times it out), and an open transaction of
/// it is rolled back. Still held after [`WRITER_LOCK_WAIT_S`], it is a transient error
/// naming the session that holds it. `Ok(false)`: the server has no named locks
/// (Galera refuses them, 1235; a server without the function, 1305).
pub(super) async fn writer_lock(
    conn: &mut Conn,
    name: &str,
    worker: u32,
    keep: bool,
    user: &str,
) -> Result<bool, DownstreamError> {
    let sql = "SELECT IS_USED_LOCK(?)";
    let holder: Option<u64> = match conn.exec_first::<Option<u64>, _, _>(sql, (name,)).await {
        Ok(holder) => holder.flatten(),
        Err(mysql_async::Error::Server(e)) if matches!(e.code, 1235 | 1305) => return Ok(false),
        Err(e) => return Err(classify(sql, e)),
    };
    if let Some(id) = holder.filter(|&id| id != u64::from(conn.id())) {
        let sql = "SELECT COUNT(*) FROM information_schema.PROCESSLIST \
                   WHERE ID = ? AND USER = ? AND COMMAND = 'Sleep'";
        let idle: Option<u64> = conn
            .exec_first(sql, (id, user))
            .await
            .map_err(|e| classify(sql, e))?;
        if idle == Some(1) {
            // ER_NO_SUCH_THREAD, ER_KILL_DENIED_ERROR: gone meanwhile, or not ours.
            match conn.query_drop(format!("KILL CONNECTION {id}")).await {
                Ok(()) => tracing::warn!(
                    connection = id,
                    worker,
                    "killed an idle session holding this writer's lock (left by an earlier \
                     run of this channel, or a second drainer runs it on this downstream)"
                ),
                Err(mysql_async::Error::Server(e)) if matches!(e.code, 1094 | 1095) => {}
                Err(e) => return Err(classify("KILL CONNECTION", e)),
            }
        }
    }
    let sql = "SELECT GET_LOCK(?, ?)";
    let got: Option<Option<i64>> = conn
        .exec_first(sql, (name, WRITER_LOCK_WAIT_S))
        .await
        .map_err(|e| classify(sql, e))?;
    if got.flatten() != Some(1) {
        let sql = "SELECT IS_USED_LOCK(?)";
        let holder: Option<Option<u64>> = conn
            .exec_first(sql, (name,))
            .await
            .map_err(|e| classify(sql, e))?;
        return Err(DownstreamError::Transient(format!(
            "writer {worker}'s lock {name:?} is still held by connection {} after \
             {WRITER_LOCK_WAIT_S} s: a session of an earlier run of this channel is still \
             applying, or another drainer runs this channel on this downstream",
            holder
                .flatten()
                .map_or("(gone)".to_owned(), |id| id.to_string())
        )));
    }
    if !keep {
        let sql = "DO RELEASE_LOCK(?)";
        conn.exec_drop(sql, (name,))
            .await
            .map_err(|e| classify(sql, e))?;
    }
    Ok(true)
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

/// Whether `text` holds no quote or backslash: it may be quoted as it is, under every
/// SQL mode.
fn plain(text: &str) -> bool {
    // Without an early exit, so that the compiler checks many bytes at a time.
    text.bytes()
        .fold(true, |plain, b| plain & (b != b'\'') & (b != b'\\'))
}

/// The JSON `json` appends, as a utf8mb4 string literal: quoted as it is when it holds
/// no quote or backslash (what positions hold; `checked`: known to hold none), else in
/// hex (see [`text_literal`]).
fn json_literal(out: &mut String, checked: bool, json: impl FnOnce(&mut String)) {
    let start = out.len();
    out.push_str("_utf8mb4'");
    json(out);
    if !checked && !plain(&out[start + 9..]) {
        let text = out.split_off(start + 9);
        out.truncate(start);
        out.push_str(&text_literal(&text));
    } else {
        out.push('\'');
    }
}

/// `p` as serde writes its [`PositionRecord`] (`{"file":…,"pos":…,"gtids":…,"flavor":…}`,
/// the last two only with a GTID state), without building the record.
fn position_json(p: &Position, out: &mut String) {
    use std::fmt::Write;
    out.push_str("{\"file\":");
    let file = &p.coords.file;
    if file.contains(|c: char| c == '"' || c == '\\' || c.is_control()) {
        out.push_str(&serde_json::to_string(file).expect("a string serializes"));
    } else {
        out.push('"');
        out.push_str(file);
        out.push('"');
    }
    let _ = write!(out, ",\"pos\":{}", p.coords.pos);
    if let Some(g) = &p.gtids {
        // GTID text is digits, hex, dashes, commas, colons and tag letters: nothing that
        // JSON escapes.
        let _ = write!(out, ",\"gtids\":\"{g}\",\"flavor\":\"");
        out.push_str(match g {
            GtidSet::MariaDb(_) => "mariadb",
            GtidSet::MySql(_) => "mysql",
        });
        out.push('"');
    }
    out.push('}');
}

/// What one writer's apply record says: see the module note.
#[derive(Debug, Clone, PartialEq)]
pub struct Stamp {
    /// After the transaction being committed.
    pub position: Position,
    /// Every upstream transaction up to here is committed downstream.
    pub low: Position,
    /// After the transactions this writer committed past `low` through this row (with
    /// `position`).
    pub after: Vec<Arc<Listed>>,
    /// Written to the writer's second row (see [`ALTERNATE`]).
    pub alternate: bool,
}

impl Stamp {
    /// The positions `after` lists.
    pub fn after(&self) -> impl Iterator<Item = &Position> {
        self.after.iter().map(|l| &l.position)
    }
}

/// A position an apply record lists, with its JSON: one writer's records list a
/// transaction until the watermark passes it (with `txn-batch = 1` and a queue sent
/// together, each record lists the ones before it), so it is copied and written often.
#[derive(Debug, PartialEq)]
pub struct Listed {
    pub position: Position,
    json: String,
    /// `json` holds no quote or backslash.
    plain: bool,
}

impl Listed {
    pub fn new(position: Position) -> Arc<Listed> {
        let mut json = String::with_capacity(96);
        position_json(&position, &mut json);
        let plain = plain(&json);
        Arc::new(Listed {
            position,
            json,
            plain,
        })
    }
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
        let listed: Vec<Arc<Listed>> = positions.iter().cloned().map(Listed::new).collect();
        self.stamp_listed(&listed, low)
    }

    /// [`Downstream::stamp_all`] of positions already listed (see [`Listed`]).
    pub fn stamp_listed(&self, positions: &[Arc<Listed>], low: &Position) -> Stamp {
        self.stamp_on(false, positions, low)
    }

    /// [`Downstream::stamp_listed`], written to this writer's first row or, `alternate`,
    /// its second (see [`ALTERNATE`]): the positions that row lists still past `low`,
    /// then `positions`.
    pub fn stamp_on(&self, alternate: bool, positions: &[Arc<Listed>], low: &Position) -> Stamp {
        let listed = if alternate {
            &self.after_alternate
        } else {
            &self.after
        };
        let after: Vec<Arc<Listed>> = listed
            .iter()
            .chain(positions)
            .filter(|l| past(&l.position, low))
            .cloned()
            .collect();
        Stamp {
            position: positions
                .last()
                .expect("at least one position")
                .position
                .clone(),
            low: low.clone(),
            after,
            alternate,
        }
    }

    /// Which of this writer's rows the next queue sent together records in: the first
    /// and the second in turn (see [`ALTERNATE`]).
    pub fn next_row(&mut self) -> bool {
        self.alternate_next = !self.alternate_next;
        !self.alternate_next
    }

    /// Transactions committed past the watermark before this start (by any writer): this
    /// writer's records list them too, in both its rows, until the watermark passes them
    /// (either row, written over, must not drop them).
    pub fn seed_after(&mut self, positions: &[Position]) {
        self.after = positions.iter().cloned().map(Listed::new).collect();
        self.after_alternate.clone_from(&self.after);
    }

    /// Takes `stamp` as this writer's recorded state: its transaction committed.
    pub fn recorded(&mut self, stamp: &Stamp) {
        if stamp.alternate {
            self.after_alternate.clone_from(&stamp.after);
        } else {
            self.after.clone_from(&stamp.after);
        }
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
        self.record_of(false).await
    }

    /// [`Downstream::record`] of this writer's first row or, `alternate`, its second.
    pub async fn record_of(
        &mut self,
        alternate: bool,
    ) -> Result<Option<Position>, DownstreamError> {
        let row = ApplyRecord::row(self.worker, alternate);
        let rows = self.record_rows(Some(row)).await?;
        Ok(rows.into_iter().next().map(|(position, _, _)| position))
    }

    /// What this channel's apply records (all writers) say was applied; `None`: no record.
    ///
    /// Read once no session of an earlier run still writes them: a drainer killed while
    /// the server ran a text of several transactions it sent leaves that session running
    /// to the end of the text (the server learns the client is gone only when it answers).
    /// Every writer's session holds its lock ([`ApplyRecord::writer_lock`]) while it
    /// lives, so waiting for each writer's lock waits for such a session to end.
    pub async fn applied(&mut self) -> Result<Option<Applied>, DownstreamError> {
        self.wait_for_writers().await?;
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

    /// Waits until the sessions of this channel's other writers (see
    /// [`Downstream::applied`]) have ended: the ones the records list, and this run's
    /// (an earlier run's writer may have been killed before its first record).
    async fn wait_for_writers(&mut self) -> Result<(), DownstreamError> {
        let target = Arc::clone(&self.target);
        let record = &target.record;
        let own = self.worker;
        self.conn().await?;
        if !self.writer_locks {
            return Ok(());
        }
        let conn = self.conn.as_mut().expect("opened above");
        let sql = format!(
            "SELECT worker FROM {} WHERE channel_id = ? AND source = ?",
            record.qualified()
        );
        let result = async {
            let mut workers: Vec<u32> = conn
                .exec(sql.as_str(), (record.channel_id, record.source.as_str()))
                .await
                .map_err(|e| classify(&sql, e))?;
            // A writer's second row names the writer's lock too.
            for w in &mut workers {
                *w %= ALTERNATE;
            }
            workers.extend(0..target.sessions);
            workers.sort_unstable();
            workers.dedup();
            let user = target.server.user.as_str();
            for worker in workers.into_iter().filter(|&w| w != own) {
                writer_lock(conn, &record.writer_lock(worker), worker, false, user).await?;
            }
            Ok(())
        }
        .await;
        if result.is_err() {
            // It may hold a writer's lock it was to give back.
            self.reset();
        }
        result
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
    use pump_reader::BinlogCoords;

    #[test]
    fn text_literals_need_no_escaping() {
        assert_eq!(text_literal("a'\\é"), "_utf8mb4 X'61275cc3a9'");
        assert_eq!(text_literal(""), "_utf8mb4 X''");
    }

    #[test]
    fn a_record_writes_positions_as_their_stored_json() {
        let maria = |g: &str| Some(GtidSet::MariaDb(g.parse().unwrap()));
        let mysql = |g: &str| Some(GtidSet::MySql(g.parse().unwrap()));
        let positions = [
            (BinlogCoords::new("binlog.000001", 4), None),
            (
                BinlogCoords::new("binlog.000002", 1234),
                maria("0-1-5,3-2-9"),
            ),
            (BinlogCoords::new("", 0), maria("")),
            (
                BinlogCoords::new("b.000003", 99),
                mysql("3e11fa47-71ca-11e1-9e33-c80aa9429562:1-5:7"),
            ),
            (BinlogCoords::new("it's\\\"odd\".1", 7), None),
        ];
        for (coords, gtids) in positions {
            let p = Position { coords, gtids };
            let serde = serde_json::to_string(&PositionRecord::from(&p)).unwrap();
            let mut ours = String::new();
            position_json(&p, &mut ours);
            assert_eq!(ours, serde);
            let mut literal = String::new();
            json_literal(&mut literal, false, |out| position_json(&p, out));
            if serde.contains(['\'', '\\']) {
                assert_eq!(literal, text_literal(&serde));
            } else {
                assert_eq!(literal, format!("_utf8mb4'{serde}'"));
            }
        }
        let record = ApplyRecord {
            schema: "re`tl".into(),
            channel_id: 3,
            source: "server_id:1".into(),
        };
        let stamp = Stamp {
            position: at(1300),
            low: at(700),
            after: vec![Listed::new(at(900)), Listed::new(at(1300))],
            alternate: false,
        };
        let sql = record.write(2, &stamp);
        assert!(sql.starts_with(&format!(
            "INSERT INTO {} (channel_id, source, worker, position, low_watermark, \
             applied_after) VALUES (3, {}, 2, _utf8mb4'{{\"file\":\"binlog.000001\",\"pos\":1300}}', ",
            record.qualified(),
            text_literal("server_id:1")
        )), "{sql}");
        assert!(
            sql.contains(
                r#"'[{"file":"binlog.000001","pos":900},{"file":"binlog.000001","pos":1300}]')"#
            ),
            "{sql}"
        );
        // A listed position whose file name holds a quote or backslash: the list goes
        // in hex, whole.
        let odd = Position {
            coords: BinlogCoords::new("it's\\odd.1", 7),
            gtids: None,
        };
        let stamp = Stamp {
            position: odd.clone(),
            low: at(700),
            after: vec![Listed::new(at(900)), Listed::new(odd.clone())],
            alternate: true,
        };
        let list = format!(
            "[{},{}]",
            serde_json::to_string(&PositionRecord::from(&at(900))).unwrap(),
            serde_json::to_string(&PositionRecord::from(&odd)).unwrap()
        );
        let sql = record.write(2, &stamp);
        assert!(
            sql.contains(&format!(", {}) ON DUPLICATE", text_literal(&list))),
            "{sql}"
        );
    }

    #[test]
    fn writer_locks_are_short_and_stable() {
        let record = ApplyRecord {
            schema: "retl".into(),
            channel_id: 1,
            source: "3e11fa47-71ca-11e1-9e33-c80aa9429562".into(),
        };
        let name = record.writer_lock(4_000_000_000);
        assert!(name.len() <= 64, "{name}");
        // Fixed: a later build waits for an earlier one's sessions.
        assert_eq!(record.writer_lock(3), "drainer-3c0be84dd9c2d00b-3");
        let other = ApplyRecord {
            channel_id: 2,
            ..record.clone()
        };
        assert_ne!(other.writer_lock(3), record.writer_lock(3));
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
        assert!(
            stamp.after().eq(&[at(900), at(1200), at(1300)]),
            "500 is covered by 700"
        );
        down.recorded(&stamp);
        // Once the watermark passes them, they drop out; a worker's other sessions share
        // the seed.
        let next = down.stamp(&at(1500), &at(1250));
        assert!(next.after().eq(&[at(1300), at(1500)]));
        assert!(down.for_worker(2).stamp(&at(1600), &at(1000)).after().eq(&[
            at(1200),
            at(1300),
            at(1600)
        ]));
        // Writer 0 after a barrier: the transaction is its own watermark.
        assert!(down.stamp(&at(2000), &at(2000)).after.is_empty());
    }

    #[test]
    fn queues_sent_together_record_in_a_writers_two_rows_in_turn() {
        let listed =
            |ps: &[u64]| -> Vec<Arc<Listed>> { ps.iter().map(|&p| Listed::new(at(p))).collect() };
        let mut down = writer();
        // Passed over at start: both rows list it until the watermark passes it.
        down.seed_after(&[at(900)]);
        assert!(!down.next_row(), "the first queue: the first row");
        let first = down.stamp_on(false, &listed(&[1000, 1100]), &at(800));
        assert!(first.after().eq(&[at(900), at(1000), at(1100)]));
        assert!(!first.alternate);
        down.recorded(&first);
        assert!(down.next_row(), "the next queue: the second row");
        let second = down.stamp_on(true, &listed(&[1200]), &at(800));
        assert!(second.alternate);
        assert!(
            second.after().eq(&[at(900), at(1200)]),
            "not the first row's transactions: that row still lists them"
        );
        down.recorded(&second);
        // Each row goes on from what it recorded; a session standing in carries both.
        assert!(!down.next_row());
        let next = down.successor();
        assert!(next
            .stamp_on(false, &listed(&[1300]), &at(1000))
            .after()
            .eq(&[at(1100), at(1300)]));
        assert!(next
            .stamp_on(true, &listed(&[1400]), &at(1000))
            .after()
            .eq(&[at(1200), at(1400)]));
        assert_eq!(ApplyRecord::row(3, false), 3);
        assert_eq!(ApplyRecord::row(3, true) % ALTERNATE, 3);
    }
}
