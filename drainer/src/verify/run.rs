//! `drainer verify`: the requests on the upstream, the answers read back from the
//! downstream, re-checks of chunks that differ, and the rows of those that keep
//! differing.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use conf::Config;
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Value};

use super::chunk::{create, Chunk, KeyKind, Verdict, VERIFY_TABLE};
use crate::apply::sql::quote;
use crate::servers::Servers;

/// What `drainer verify` was asked.
#[derive(Debug, Clone)]
pub struct Options {
    /// `db.table` names; empty: every table the direction replicates.
    pub tables: Vec<String>,
    /// Rows per chunk; `None`: sized to `chunk_time`.
    pub chunk_rows: Option<u64>,
    /// How long a chunk's read (and its locks) should take, when sized by time.
    pub chunk_time: Duration,
    /// How often a differing chunk is checked again before it is reported.
    pub rechecks: u32,
    /// How long to wait for the drainer's answers.
    pub wait: Duration,
    /// Make each differing row of the downstream as the upstream's.
    pub repair: bool,
}

/// How a chunk compared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Equal,
    /// It differed at every check, the same way the last two times.
    Differs(Vec<RowDiff>),
    /// It differed at every check, differently each time: changes kept crossing it.
    Unsettled,
    /// The downstream could not checksum it (its message).
    Error(String),
    /// It differed in these rows, now made as the upstream's (and compared equal after).
    Repaired(Vec<RowDiff>),
}

/// A row that differs: its key (as text, and its values), and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowDiff {
    pub key: String,
    pub values: Vec<String>,
    pub how: &'static str,
}

/// One chunk's result.
#[derive(Debug, Clone)]
pub struct ChunkReport {
    pub chunk: Chunk,
    pub rows: u64,
    pub outcome: Outcome,
}

/// One table's results.
#[derive(Debug, Clone)]
pub struct TableReport {
    pub db: String,
    pub table: String,
    /// How it was chunked: by which key, or whole.
    pub by: String,
    pub chunks: Vec<ChunkReport>,
}

/// Everything `verify` found, and the longest a chunk held its upstream locks.
#[derive(Debug, Clone, Default)]
pub struct Report {
    pub tables: Vec<TableReport>,
    pub longest_lock: Duration,
}

impl Report {
    /// Whether every chunk compared equal.
    pub fn equal(&self) -> bool {
        self.tables
            .iter()
            .flat_map(|t| &t.chunks)
            .all(|c| c.outcome == Outcome::Equal)
    }

    /// The report as text, one line per table and per chunk that is not equal.
    pub fn text(&self) -> String {
        let mut out = String::new();
        for t in &self.tables {
            let rows: u64 = t.chunks.iter().map(|c| c.rows).sum();
            let bad: Vec<&ChunkReport> = t
                .chunks
                .iter()
                .filter(|c| c.outcome != Outcome::Equal)
                .collect();
            out.push_str(&format!(
                "{}.{}: {} rows in {} chunks ({}): {}\n",
                t.db,
                t.table,
                rows,
                t.chunks.len(),
                t.by,
                if bad.is_empty() {
                    "equal".to_owned()
                } else {
                    format!("{} chunks not equal", bad.len())
                }
            ));
            for c in bad {
                let range = range_text(&c.chunk);
                match &c.outcome {
                    Outcome::Differs(rows) => {
                        out.push_str(&format!("  chunk {range}: differs\n"));
                        for r in rows {
                            out.push_str(&format!("    {}: {}\n", r.key, r.how));
                        }
                    }
                    Outcome::Repaired(rows) => {
                        out.push_str(&format!("  chunk {range}: differed, repaired\n"));
                        for r in rows {
                            out.push_str(&format!("    {}: {} (repaired)\n", r.key, r.how));
                        }
                    }
                    Outcome::Unsettled => out.push_str(&format!(
                        "  chunk {range}: unsettled (changes kept crossing it)\n"
                    )),
                    Outcome::Error(e) => {
                        out.push_str(&format!("  chunk {range}: the downstream failed: {e}\n"))
                    }
                    Outcome::Equal => {}
                }
            }
        }
        out.push_str(&format!(
            "longest upstream lock held by a chunk: {} ms\n",
            self.longest_lock.as_millis()
        ));
        out
    }

    /// The report as JSON.
    pub fn json(&self) -> serde_json::Value {
        use serde_json::json;
        let tables: Vec<serde_json::Value> = self
            .tables
            .iter()
            .map(|t| {
                let chunks: Vec<serde_json::Value> = t
                    .chunks
                    .iter()
                    .map(|c| {
                        let (outcome, rows) = match &c.outcome {
                            Outcome::Equal => ("equal", Vec::new()),
                            Outcome::Differs(rows) => ("differs", rows.clone()),
                            Outcome::Unsettled => ("unsettled", Vec::new()),
                            Outcome::Error(_) => ("error", Vec::new()),
                            Outcome::Repaired(rows) => ("repaired", rows.clone()),
                        };
                        json!({
                            "lo": c.chunk.lo, "hi": c.chunk.hi, "rows": c.rows,
                            "outcome": outcome,
                            "differing_rows": rows.iter()
                                .map(|r| json!({"key": r.key, "how": r.how}))
                                .collect::<Vec<_>>(),
                        })
                    })
                    .collect();
                json!({"db": t.db, "table": t.table, "by": t.by, "chunks": chunks})
            })
            .collect();
        json!({
            "equal": self.equal(),
            "longest_lock_ms": self.longest_lock.as_millis() as u64,
            "tables": tables,
        })
    }
}

fn range_text(c: &Chunk) -> String {
    let side = |v: &Option<Vec<String>>, open: &str| match v {
        Some(v) => format!("({})", v.join(", ")),
        None => open.to_owned(),
    };
    format!("{} .. {}", side(&c.lo, "start"), side(&c.hi, "end"))
}

/// A session on `server` as the checksums need it: the same text for the same values
/// on both sides.
async fn session(server: &link::Server, what: &str) -> Result<Conn, String> {
    let mut conn = server
        .session(server.opts())
        .await
        .map_err(|e| format!("cannot connect to the {what} {server:?}: {e}"))?;
    conn.query_drop("SET NAMES binary, time_zone = '+00:00'")
        .await
        .map_err(|e| format!("{what}: {e}"))?;
    Ok(conn)
}

/// A value read back as the text a key parameter takes.
fn text(value: &Value) -> String {
    match value {
        Value::NULL => "NULL".into(),
        Value::Bytes(b) => String::from_utf8_lossy(b).into_owned(),
        Value::Int(i) => i.to_string(),
        Value::UInt(u) => u.to_string(),
        Value::Float(f) => f.to_string(),
        Value::Double(d) => d.to_string(),
        Value::Date(y, mo, d, h, mi, s, us) => {
            format!("{y:04}-{mo:02}-{d:02} {h:02}:{mi:02}:{s:02}.{us:06}")
        }
        Value::Time(neg, days, h, mi, s, us) => format!(
            "{}{:02}:{mi:02}:{s:02}.{us:06}",
            if *neg { "-" } else { "" },
            u32::from(*h) + days * 24
        ),
    }
}

/// Runs `verify` for the direction of `config`.
pub async fn verify(
    config: &Config,
    servers: &Servers,
    options: &Options,
) -> Result<Report, String> {
    let schema = config
        .syncer
        .mark_table
        .split_once('.')
        .map_or("retl", |(s, _)| s)
        .to_owned();
    let channel = config.syncer.channel_id;
    let mut up = session(&servers.upstream, "upstream").await?;
    let mut down = session(&servers.downstream, "downstream").await?;
    up.query_drop(format!("CREATE DATABASE IF NOT EXISTS {}", quote(&schema)))
        .await
        .and(up.query_drop(create(&schema)).await)
        .map_err(|e| {
            format!(
                "cannot create {schema}.{VERIFY_TABLE} on the upstream ({e}): the upstream \
                 account needs CREATE, INSERT and SELECT on {schema}.*"
            )
        })?;
    let run = format!(
        "{:x}-{}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_micros()),
        std::process::id()
    );
    let filter = conf::Filter::new(&config.syncer)?;
    let tables = tables(&mut up, options, &filter).await?;
    let mut report = Report::default();
    let mut no = 0u32;
    for (db, table) in tables {
        let shape = shape(&mut up, &mut down, &db, &table).await?;
        let by = if shape.key.is_empty() {
            "no primary or unique key: checked whole".to_owned()
        } else {
            format!(
                "by {}",
                shape
                    .key
                    .iter()
                    .map(|(c, _)| c.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        };
        let mut reports = Vec::new();
        let progress = std::io::IsTerminal::is_terminal(&std::io::stderr());
        // Fixed with --chunk-rows; else sized so that a chunk's read takes about
        // `chunk_time` (its locks held no longer).
        let mut size = options.chunk_rows.unwrap_or(1000);
        let mut lo = None;
        let mut last = false;
        // The chunk asked and not yet settled: the next one is read upstream while the
        // drainer answers it.
        let mut pending: Option<(Chunk, u32, Verdict)> = None;
        loop {
            let next = if last {
                None
            } else {
                let chunk = next_chunk(&mut up, &shape, lo.take(), size).await?;
                no += 1;
                last = chunk.hi.is_none() || chunk.key.is_empty();
                lo = chunk.hi.clone();
                let ask = Ask::new(&schema, &run, channel, no, options.wait);
                let (asked, held) = ask.request(&mut up, &chunk, 0).await?;
                report.longest_lock = report.longest_lock.max(held);
                if options.chunk_rows.is_none() {
                    let ratio = options.chunk_time.as_secs_f64() / held.as_secs_f64().max(1e-3);
                    size = ((size as f64 * ratio) as u64)
                        .clamp(size / 4, size * 10)
                        .clamp(10, 1_000_000);
                }
                Some((chunk, no, asked))
            };
            if progress {
                eprint!(
                    "\rverify: {db}.{table}: chunk {no}, {} rows so far   ",
                    reports.iter().map(|r: &ChunkReport| r.rows).sum::<u64>()
                );
            }
            if let Some((chunk, no, asked)) = pending.take() {
                let ask = Ask::new(&schema, &run, channel, no, options.wait);
                let outcome = settle(
                    config,
                    options,
                    &ask,
                    &mut up,
                    &mut down,
                    &chunk,
                    &asked,
                    &mut report,
                )
                .await?;
                reports.push(ChunkReport {
                    chunk,
                    rows: asked.rows,
                    outcome,
                });
            }
            match next {
                Some(next) => pending = Some(next),
                None => break,
            }
        }
        if progress {
            eprint!("\r\x1b[2K");
        }
        report.tables.push(TableReport {
            db,
            table,
            by,
            chunks: reports,
        });
    }
    Ok(report)
}

/// The tables to verify: those named, or every base table the direction replicates.
async fn tables(
    up: &mut Conn,
    options: &Options,
    filter: &conf::Filter,
) -> Result<Vec<(String, String)>, String> {
    if !options.tables.is_empty() {
        return options
            .tables
            .iter()
            .map(|t| {
                t.split_once('.')
                    .map(|(d, t)| (d.to_owned(), t.to_owned()))
                    .ok_or_else(|| format!("--tables: {t:?} is not db.table"))
            })
            .collect();
    }
    let all: Vec<(String, String)> = up
        .query(
            "SELECT TABLE_SCHEMA, TABLE_NAME FROM information_schema.TABLES \
             WHERE TABLE_TYPE = 'BASE TABLE' ORDER BY TABLE_SCHEMA, TABLE_NAME",
        )
        .await
        .map_err(|e| format!("upstream: {e}"))?;
    Ok(all
        .into_iter()
        .filter(|(d, t)| filter.wants_table(d, t))
        .collect())
}

/// A table's chunking key and the columns both sides have.
pub(crate) async fn shape(
    up: &mut Conn,
    down: &mut Conn,
    db: &str,
    table: &str,
) -> Result<Chunk, String> {
    let sql = "SELECT COLUMN_NAME FROM information_schema.COLUMNS \
               WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION";
    let theirs: Vec<String> = up
        .exec(sql, (db, table))
        .await
        .map_err(|e| format!("upstream: {e}"))?;
    if theirs.is_empty() {
        return Err(format!("{db}.{table}: no such table on the upstream"));
    }
    let ours: Vec<String> = down
        .exec(sql, (db, table))
        .await
        .map_err(|e| format!("downstream: {e}"))?;
    if ours.is_empty() {
        return Err(format!("{db}.{table}: no such table on the downstream"));
    }
    let columns: Vec<String> = theirs
        .into_iter()
        .filter(|c| ours.iter().any(|o| o.eq_ignore_ascii_case(c)))
        .collect();
    // The primary key, else the first unique key of NOT NULL columns.
    let keys: Vec<(String, String, String, String, String)> = up
        .exec(
            "SELECT s.INDEX_NAME, s.COLUMN_NAME, c.DATA_TYPE, c.COLUMN_TYPE, c.IS_NULLABLE \
             FROM information_schema.STATISTICS s JOIN information_schema.COLUMNS c \
             ON c.TABLE_SCHEMA = s.TABLE_SCHEMA AND c.TABLE_NAME = s.TABLE_NAME \
             AND c.COLUMN_NAME = s.COLUMN_NAME \
             WHERE s.TABLE_SCHEMA = ? AND s.TABLE_NAME = ? AND s.NON_UNIQUE = 0 \
             ORDER BY s.INDEX_NAME <> 'PRIMARY', s.INDEX_NAME, s.SEQ_IN_INDEX",
            (db, table),
        )
        .await
        .map_err(|e| format!("upstream: {e}"))?;
    let mut by: BTreeMap<String, Vec<(String, KeyKind, bool)>> = BTreeMap::new();
    let mut order = Vec::new();
    for (index, column, data_type, column_type, nullable) in keys {
        if !order.contains(&index) {
            order.push(index.clone());
        }
        let kind = KeyKind::of_type(&data_type, column_type.contains("unsigned"));
        by.entry(index)
            .or_default()
            .push((column, kind, nullable == "YES"));
    }
    let key = order
        .iter()
        .map(|i| &by[i])
        .find(|cols| cols.iter().all(|(_, _, nullable)| !nullable))
        .map(|cols| cols.iter().map(|(c, k, _)| (c.clone(), *k)).collect())
        .unwrap_or_default();
    Ok(Chunk {
        db: db.to_owned(),
        table: table.to_owned(),
        columns,
        key,
        lo: None,
        hi: None,
    })
}

/// The chunk of about `rows` rows past `lo`, read from the upstream's key order: up to
/// the key `rows` rows on, or to the end (the whole table when it has no key).
async fn next_chunk(
    up: &mut Conn,
    shape: &Chunk,
    lo: Option<Vec<String>>,
    rows: u64,
) -> Result<Chunk, String> {
    let probe = Chunk {
        lo,
        hi: None,
        ..shape.clone()
    };
    if shape.key.is_empty() {
        return Ok(probe);
    }
    let key: Vec<String> = shape.key.iter().map(|(c, _)| quote(c)).collect();
    let (rows_sql, params) = probe.rows_sql();
    let from = rows_sql
        .find(" FROM ")
        .map_or(rows_sql.as_str(), |i| &rows_sql[i..]);
    let sql = format!(
        "SELECT {}{} LIMIT 1 OFFSET {}",
        key.join(", "),
        from,
        rows.max(1) - 1
    );
    let found: Option<mysql_async::Row> = up
        .exec_first(&sql, params)
        .await
        .map_err(|e| format!("upstream: {sql}: {e}"))?;
    Ok(Chunk {
        hi: found.map(|row| (0..row.len()).map(|i| text(&row[i])).collect()),
        ..probe
    })
}

/// One chunk's comparison: what `verify` asks under one run.
struct Ask<'a> {
    schema: &'a str,
    run: &'a str,
    channel: i64,
    no: u32,
    wait: Duration,
}

impl<'a> Ask<'a> {
    fn new(schema: &'a str, run: &'a str, channel: i64, no: u32, wait: Duration) -> Ask<'a> {
        Ask {
            schema,
            run,
            channel,
            no,
            wait,
        }
    }

    /// Requests `chunk` (as `attempt`) on the upstream: the request as written, and how
    /// long the upstream held the chunk's locks.
    async fn request(
        &self,
        up: &mut Conn,
        chunk: &Chunk,
        attempt: u32,
    ) -> Result<(Verdict, Duration), String> {
        let verdict = Verdict {
            run: self.run.to_owned(),
            channel_id: self.channel,
            chunk_no: self.no,
            attempt,
            chunk: chunk.clone(),
            rows: 0,
            checksum: String::new(),
        };
        request(up, self.schema, verdict).await
    }

    /// The drainer's answer to `attempt`: rows, checksum, where.
    async fn answer(&self, down: &mut Conn, attempt: u32) -> Result<(u64, String, String), String> {
        answer(
            down,
            self.schema,
            self.run,
            (self.no, attempt),
            self.channel,
            self.wait,
        )
        .await
    }
}

/// How the chunk `asked` (its first attempt) compares: equal at some attempt, the rows
/// that keep differing (repaired with `--repair`), unsettled, or what the downstream
/// failed with.
#[allow(clippy::too_many_arguments)]
async fn settle(
    config: &Config,
    options: &Options,
    ask: &Ask<'_>,
    up: &mut Conn,
    down: &mut Conn,
    chunk: &Chunk,
    asked: &Verdict,
    report: &mut Report,
) -> Result<Outcome, String> {
    let mut seen: Vec<(String, String)> = Vec::new();
    let mut asked = asked.clone();
    let mut outcome = Outcome::Unsettled;
    // Where the downstream stood when it last answered (its binlog's GTIDs).
    let mut stood: Option<String> = None;
    for attempt in 0..=options.rechecks {
        if attempt > 0 {
            // A two-way pair: the downstream's own changes of the chunk may still be on
            // their way upstream. Check again once the reverse direction has applied
            // past where the downstream stood (or after a pause, without one).
            let waited = match &stood {
                Some(stood) => reverse_past(config, up, down, stood).await?,
                None => false,
            };
            if !waited {
                tokio::time::sleep(Duration::from_millis(300 * u64::from(attempt))).await;
            }
            let (again, held) = ask.request(up, chunk, attempt).await?;
            report.longest_lock = report.longest_lock.max(held);
            asked = again;
        }
        let answer = ask.answer(down, attempt).await?;
        if answer.1 == "error" {
            return Ok(Outcome::Error(answer.2));
        }
        stood = answer
            .2
            .split_once("downstream gtid ")
            .map(|(_, g)| g.split(';').next().unwrap_or("").trim().to_owned())
            .filter(|g| !g.is_empty());
        if (asked.rows, &asked.checksum) == (answer.0, &answer.1) {
            return Ok(Outcome::Equal);
        }
        seen.push((
            format!("{}/{}", asked.rows, asked.checksum),
            format!("{}/{}", answer.0, answer.1),
        ));
    }
    if seen.len() >= 2 && seen[seen.len() - 1] == seen[seen.len() - 2] {
        // The same difference twice in a row: it stays. Which rows?
        let rows = row_diffs(up, down, chunk).await?;
        if !rows.is_empty() {
            outcome = Outcome::Differs(rows);
        }
    }
    if let (Outcome::Differs(rows), true) = (&outcome, options.repair) {
        let fixed = repair(config, up, down, ask.run, ask.no, chunk, rows).await?;
        // Compared again through the stream: equal now, or still different.
        let attempt = options.rechecks + 1;
        let (asked, _) = ask.request(up, chunk, attempt).await?;
        let answer = ask.answer(down, attempt).await?;
        if (asked.rows, asked.checksum) == (answer.0, answer.1) {
            outcome = Outcome::Repaired(fixed);
        }
    }
    Ok(outcome)
}

/// Writes the request for `verdict`'s chunk on the upstream, in the transaction that
/// reads the chunk share-locked; the request as written, and how long the locks held.
async fn request(
    up: &mut Conn,
    schema: &str,
    mut verdict: Verdict,
) -> Result<(Verdict, Duration), String> {
    let failed = |e: mysql_async::Error| format!("upstream: {e}");
    up.query_drop("BEGIN").await.map_err(failed)?;
    let started = Instant::now();
    let (sql, params) = verdict.chunk.checksum_sql(true);
    let found: Option<(u64, String)> = up.exec_first(&sql, params).await.map_err(failed)?;
    let (rows, checksum) = found.unwrap_or((0, "0".into()));
    verdict.rows = rows;
    verdict.checksum = checksum;
    let (sql, params) = verdict.insert(schema, "request", None);
    up.exec_drop(&sql, params).await.map_err(failed)?;
    up.query_drop("COMMIT").await.map_err(failed)?;
    Ok((verdict, started.elapsed()))
}

/// The drainer's answer to chunk `no`, attempt `attempt` of `run`: rows, checksum, where.
async fn answer(
    down: &mut Conn,
    schema: &str,
    run: &str,
    (no, attempt): (u32, u32),
    channel: i64,
    wait: Duration,
) -> Result<(u64, String, String), String> {
    let sql = format!(
        "SELECT row_count, checksum, COALESCE(at_position, '') FROM {}.{} \
         WHERE run = ? AND side = 'answer' AND chunk = ? AND attempt = ?",
        quote(schema),
        quote(VERIFY_TABLE)
    );
    let started = Instant::now();
    loop {
        match down
            .exec_first::<(u64, String, String), _, _>(&sql, (run, no, attempt))
            .await
        {
            Ok(Some(found)) => return Ok(found),
            Ok(None) => {}
            // The drainer creates the table with its first answer.
            Err(mysql_async::Error::Server(e)) if e.code == 1146 => {}
            Err(e) => return Err(format!("downstream: {e}")),
        }
        if started.elapsed() > wait {
            return Err(format!(
                "no answer from the drainer after {} s: is it running for this direction \
                 (channel-id {channel})?",
                wait.as_secs()
            ));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits (up to 3 s) until a reverse direction (a drainer writing the downstream's
/// changes to the upstream) has applied past `stood`, the downstream's MariaDB GTID
/// position: its apply record on the upstream (source `server_id:<downstream's>`) says
/// so. `false` when there is no such record to wait on, or it did not get there in time
/// (the reverse direction may be idle past a tail of transactions it drops as its own).
async fn reverse_past(
    config: &Config,
    up: &mut Conn,
    down: &mut Conn,
    stood: &str,
) -> Result<bool, String> {
    use pump_reader::MariaGtid;
    let parse = |list: &str| -> Vec<MariaGtid> {
        list.split(',')
            .filter_map(|g| g.trim().parse::<MariaGtid>().ok())
            .collect()
    };
    let needed = parse(stood);
    if needed.is_empty() {
        return Ok(false);
    }
    let server_id: Option<u64> = down
        .query_first("SELECT @@server_id")
        .await
        .map_err(|e| format!("downstream: {e}"))?;
    let source = format!("server_id:{}", server_id.unwrap_or_default());
    let schema = config
        .syncer
        .mark_table
        .split_once('.')
        .map_or("retl", |(s, _)| s);
    let sql = format!(
        "SELECT low_watermark FROM {}.{} WHERE source = ?",
        quote(schema),
        quote(crate::apply::downstream::APPLY_TABLE)
    );
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(3) {
        let records: Vec<Option<String>> = match up.exec(&sql, (source.as_str(),)).await {
            Ok(records) => records,
            // No apply record table upstream: no reverse direction.
            Err(mysql_async::Error::Server(e)) if e.code == 1146 => return Ok(false),
            Err(e) => return Err(format!("upstream: {e}")),
        };
        if records.is_empty() {
            return Ok(false);
        }
        let past = records.iter().flatten().any(|json| {
            let record: Option<pump_reader::PositionRecord> = serde_json::from_str(json).ok();
            let have = parse(record.and_then(|r| r.gtids).as_deref().unwrap_or(""));
            needed
                .iter()
                .all(|n| have.iter().any(|h| h.domain == n.domain && h.seq >= n.seq))
        });
        if past {
            return Ok(true);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(false)
}

/// The rows of a differing chunk that differ, read from both sides twice (a row seen
/// different only once was a change in flight).
async fn row_diffs(up: &mut Conn, down: &mut Conn, chunk: &Chunk) -> Result<Vec<RowDiff>, String> {
    let mut first = None;
    for round in 0..2 {
        if round > 0 {
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        let (sql, params) = chunk.rows_sql();
        let read = |rows: Vec<mysql_async::Row>| -> BTreeMap<String, (Vec<String>, String)> {
            rows.into_iter()
                .map(|r| {
                    let n = r.len();
                    let hash = text(&r[n - 1]);
                    // A table without a key: its rows known by their hash alone.
                    let key: Vec<String> = (0..n - 1)
                        .map(|i| format!("{}={}", chunk.key[i].0, text(&r[i])))
                        .collect();
                    let values = (0..n - 1).map(|i| text(&r[i])).collect();
                    let key = if key.is_empty() {
                        format!("a row hashed {hash}")
                    } else {
                        key.join(", ")
                    };
                    (key, (values, hash))
                })
                .collect()
        };
        let theirs = read(
            up.exec(&sql, params.clone())
                .await
                .map_err(|e| format!("upstream: {e}"))?,
        );
        let ours = read(
            down.exec(&sql, params)
                .await
                .map_err(|e| format!("downstream: {e}"))?,
        );
        let mut diffs = Vec::new();
        for (key, (values, hash)) in &theirs {
            let how = match ours.get(key) {
                None => "missing downstream",
                Some((_, h)) if h != hash => "different",
                _ => continue,
            };
            diffs.push(RowDiff {
                key: key.clone(),
                values: values.clone(),
                how,
            });
        }
        for (key, (values, _)) in ours.iter().filter(|(k, _)| !theirs.contains_key(*k)) {
            diffs.push(RowDiff {
                key: key.clone(),
                values: values.clone(),
                how: "missing upstream",
            });
        }
        first = Some(match first {
            None => diffs,
            Some(before) => {
                let before: Vec<RowDiff> = before;
                diffs.into_iter().filter(|d| before.contains(d)).collect()
            }
        });
    }
    Ok(first.unwrap_or_default())
}

/// Makes each of `rows` (of `chunk`, keyed) on the downstream as the upstream's, in one
/// transaction carrying this channel's mark (the reverse direction drops it: the repair
/// does not come back), each recorded in the control table as `side = 'repair'`. The
/// upstream rows stay share-locked until it commits, so no later change of them can be
/// applied downstream before the repair.
async fn repair(
    config: &Config,
    up: &mut Conn,
    down: &mut Conn,
    run: &str,
    no: u32,
    chunk: &Chunk,
    rows: &[RowDiff],
) -> Result<Vec<RowDiff>, String> {
    if chunk.key.is_empty() {
        return Err(format!(
            "{}.{}: a table without a primary or unique key cannot be repaired row by row",
            chunk.db, chunk.table
        ));
    }
    let syncer = &config.syncer;
    let (schema, mark_table) = syncer
        .mark_table
        .split_once('.')
        .unwrap_or(("retl", "_drainer_repl_mark"));
    let table = format!("{}.{}", quote(&chunk.db), quote(&chunk.table));
    let columns: Vec<String> = chunk.columns.iter().map(|c| quote(c)).collect();
    let by_key = chunk
        .key
        .iter()
        .map(|(c, _)| format!("{} = ?", quote(c)))
        .collect::<Vec<_>>()
        .join(" AND ");
    let params = |r: &RowDiff| -> Vec<Value> {
        chunk
            .key
            .iter()
            .zip(&r.values)
            .map(|((_, kind), v)| kind.param(v))
            .collect()
    };
    let failed = |side: &'static str| move |e: mysql_async::Error| format!("repair, {side}: {e}");
    up.query_drop("BEGIN").await.map_err(failed("upstream"))?;
    if syncer.loopback_control {
        let server_id = syncer.effective_mark_server_id().unwrap_or_default();
        down.query_drop(format!("SET SESSION server_id = {server_id}"))
            .await
            .map_err(failed("downstream"))?;
    }
    down.query_drop("BEGIN")
        .await
        .map_err(failed("downstream"))?;
    // With comment markers there is no mark row: the session's server id marks it.
    if syncer.loopback_control && syncer.loop_marker == conf::LoopMarker::Table {
        down.query_drop(format!(
            "UPDATE {}.{} SET val = val + 1 WHERE id = 0 AND channel_id = {}",
            quote(schema),
            quote(mark_table),
            syncer.channel_id
        ))
        .await
        .map_err(failed("downstream"))?;
    }
    for r in rows {
        let found: Option<mysql_async::Row> = up
            .exec_first(
                format!(
                    "SELECT {} FROM {table} WHERE {by_key} LOCK IN SHARE MODE",
                    columns.join(", ")
                ),
                params(r),
            )
            .await
            .map_err(failed("upstream"))?;
        down.exec_drop(format!("DELETE FROM {table} WHERE {by_key}"), params(r))
            .await
            .map_err(failed("downstream"))?;
        if let Some(row) = &found {
            let values: Vec<Value> = (0..row.len()).map(|i| row[i].clone()).collect();
            down.exec_drop(
                format!(
                    "INSERT INTO {table} ({}) VALUES ({})",
                    columns.join(", "),
                    vec!["?"; columns.len()].join(", ")
                ),
                values,
            )
            .await
            .map_err(failed("downstream"))?;
        }
        let record = Verdict {
            run: run.to_owned(),
            channel_id: syncer.channel_id,
            chunk_no: no,
            attempt: 0,
            chunk: Chunk {
                lo: Some(r.values.clone()),
                hi: None,
                ..chunk.clone()
            },
            rows: u64::from(found.is_some()),
            checksum: "repaired".into(),
        };
        let (sql, params) = record.insert(schema, "repair", Some(r.how));
        down.exec_drop(sql, params)
            .await
            .map_err(failed("downstream"))?;
    }
    down.query_drop("COMMIT")
        .await
        .map_err(failed("downstream"))?;
    up.query_drop("COMMIT").await.map_err(failed("upstream"))?;
    Ok(rows.to_vec())
}
