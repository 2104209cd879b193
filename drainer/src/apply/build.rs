//! The statements of a transaction's row changes against the downstream's columns as
//! they are now (sync-mode 2 projects them onto the columns the downstream has), rows
//! joined in multi-row statements where their keys allow, rows that keep their row
//! event replayed as it: shared by the pipeline's own session and the parallel workers.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Duration;

use schema::{Table, Value};

use super::binlog;
use super::changes::{approx_size, Checks, Raw, RowChange};
use super::conflict::sql as checked;
use super::conflict::{Check, Detect, Image as Owned, Op, Policy};
use super::ctx::Ctx;
use super::downstream::Downstream;
use super::sql::{self, Stmt};
use crate::error::{At, Cause, RunError};
use crate::metrics::Retry;

/// Keeps the columns the downstream has (sync-mode 2): the narrower table, and which of
/// the upstream's columns it keeps.
fn project(table: &Table, downstream: &[String]) -> (Table, Vec<bool>) {
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
    (narrow, keep)
}

/// Rows per multi-row INSERT, and the value bytes after which a multi-row statement closes
/// (well under the server's default 16 MiB `max_allowed_packet`).
const MAX_ROWS_PER_INSERT: usize = 500;
const MAX_INSERT_BYTES: usize = 4 << 20;

/// The downstream's columns of `table`, checked against the upstream's: `None` when
/// they match, else the downstream's (sync-mode 2). In sync-mode 1 a mismatch is an
/// error naming both lists, after one fresh look (the cache may predate a change the
/// other direction made).
async fn downstream_shape(
    ctx: &mut Ctx,
    down: &mut Downstream,
    here: &At,
    table: &Table,
) -> Result<Option<Vec<String>>, RunError> {
    // The server's implicit row start and end of a system-versioned table are in no
    // column list (information_schema shows neither side's).
    let implicit = table.versioning == Some(schema::Versioning::Implicit);
    let upstream = || {
        table
            .columns
            .iter()
            .filter(move |c| !(implicit && c.period.is_some()))
            .map(|c| c.name.as_str())
    };
    let matches = |downstream: &[String]| {
        upstream().count() == downstream.len()
            && upstream()
                .zip(downstream)
                .all(|(a, b)| a.eq_ignore_ascii_case(b))
    };
    let mut fresh = false;
    let message = "cannot read the downstream's columns yet; retrying";
    let mut backoff = Duration::from_millis(100);
    loop {
        let downstream = match down.columns(&table.schema, &table.name).await {
            Ok(columns) => columns,
            Err(e) => {
                (ctx.on_failure(here, Retry::Columns, message, e, &mut backoff)).await?;
                continue;
            }
        };
        if matches(&downstream) {
            return Ok(None);
        }
        if downstream.is_empty() && fresh {
            return Err(RunError::apply(
                here,
                Cause::NoDownstreamTable {
                    table: table.qualified(),
                },
            ));
        }
        if ctx.partial && !downstream.is_empty() {
            return Ok(Some(downstream.to_vec()));
        }
        if fresh {
            return Err(RunError::apply(
                here,
                Cause::Columns {
                    table: table.qualified(),
                    upstream: upstream().collect::<Vec<_>>().join(", "),
                    downstream: downstream.join(", "),
                },
            ));
        }
        down.forget_table(&table.schema, &table.name);
        fresh = true;
    }
}

/// Per table of a transaction: the table, and its projection onto the downstream's
/// columns when they differ (sync-mode 2) with which of the table's columns it keeps.
type Shape = (Arc<Table>, Option<(Arc<Table>, Vec<bool>)>);

/// The statements of the transaction's row changes, against the downstream's columns
/// as they are now. With `levels` (see `statements`) rows of one table join in
/// multi-row statements wherever their keys allow; without, consecutive inserts into one
/// table share a multi-row INSERT (or REPLACE) and every other change is a statement.
pub async fn build_changes(
    ctx: &mut Ctx,
    down: &mut Downstream,
    here: &At,
    txn: &[&RowChange],
    safe: bool,
    levels: Option<&[u32]>,
) -> Result<Vec<Stmt>, RunError> {
    // Each table's shape, worked out once per transaction.
    let mut shapes: Vec<Shape> = Vec::new();
    let mut of = Vec::with_capacity(txn.len());
    for change in txn {
        let table = &change.table;
        let s = match shapes.iter().position(|(t, _)| Arc::ptr_eq(t, table)) {
            Some(s) => s,
            None => {
                let shape = downstream_shape(ctx, down, here, table).await?;
                shapes.push((
                    Arc::clone(table),
                    shape.map(|d| {
                        let (narrow, keep) = project(table, &d);
                        (Arc::new(narrow), keep)
                    }),
                ));
                shapes.len() - 1
            }
        };
        of.push(s);
    }
    // A row event replays only where the downstream table has the upstream's columns.
    for (change, &s) in txn.iter().zip(&of) {
        if change.raw.is_some() && shapes[s].1.is_some() {
            tracing::warn!(at = %here, table = %change.table.qualified(),
                "the downstream table has other columns: its rows apply as SQL statements, \
                 not as row events (its triggers fire; system versioning takes the \
                 downstream's own times)");
        }
    }
    let mut format_sent = false;
    // With conflict detection, every change is checked (see [`statements`]).
    let policies = down.conflicts();
    // Written out only for detection (formatting a position for every transaction
    // costs).
    let position: Option<Arc<str>> = policies.as_ref().map(|_| Arc::from(here.to_string()));
    let detect = policies
        .as_deref()
        .zip(position.as_ref())
        .map(|(policies, position)| Detect { policies, position });
    // Runs written with other checks than the default go between statements that set the
    // session's checks and set them back (the downstream then runs them as the upstream
    // did); a run keeps its place in upstream order.
    if txn.iter().all(|c| c.checks == Checks::default()) {
        return with_events(txn, &shapes, &of, levels, safe, detect, &mut format_sent)
            .map_err(|e| RunError::apply(here, e));
    }
    let mut stmts = Vec::new();
    let mut from = 0;
    for run in txn.chunk_by(|a, b| a.checks == b.checks) {
        let to = from + run.len();
        let checks = run[0].checks;
        let other = checks != Checks::default();
        if other {
            stmts.push(checks.set());
        }
        let levels = levels.map(|l| &l[from..to]);
        let built = with_events(
            run,
            &shapes,
            &of[from..to],
            levels,
            safe,
            detect,
            &mut format_sent,
        );
        stmts.extend(built.map_err(|e| RunError::apply(here, e))?);
        if other {
            stmts.push(Checks::default().set());
        }
        from = to;
    }
    Ok(stmts)
}

/// The statements of `txn` (see [`statements`]), where changes that carry their row
/// event (and whose downstream table has the upstream's columns) replay it, in upstream
/// order with the SQL statements of the others; the events' FORMAT_DESCRIPTION goes
/// first, once (`format_sent`).
fn with_events(
    txn: &[&RowChange],
    shapes: &[Shape],
    of: &[usize],
    levels: Option<&[u32]>,
    safe: bool,
    detect: Option<Detect>,
    format_sent: &mut bool,
) -> Result<Vec<Stmt>, sql::BuildError> {
    let statements = |txn: &[&RowChange], of: &[usize], levels| {
        statements(txn, shapes, of, levels, safe, detect)
    };
    let replays = |i: usize| txn[i].raw.is_some() && shapes[of[i]].1.is_none();
    if !(0..txn.len()).any(replays) {
        return statements(txn, of, levels);
    }
    let mut stmts = Vec::new();
    let mut from = 0;
    for i in 0..txn.len() {
        if !replays(i) {
            continue;
        }
        if from < i {
            stmts.extend(statements(&txn[from..i], &of[from..i], None)?);
        }
        if let Some(Raw::First(rows)) = &txn[i].raw {
            if !*format_sent {
                stmts.extend(binlog::format_statement(rows));
                *format_sent = true;
            }
            stmts.push(binlog::rows_statement(rows));
        }
        from = i + 1;
    }
    stmts.extend(statements(&txn[from..], &of[from..], None)?);
    Ok(stmts)
}

/// What a row change becomes among the others of its level.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Rows located by the same key: one DELETE … WHERE key IN (…).
    Delete(usize),
    /// One UPDATE … CASE key WHEN … per set of rows located by the same key.
    Update(usize),
    Insert,
}

/// Rows per multi-row UPDATE, at most (each column's CASE lists them all).
const MAX_ROWS_PER_UPDATE: usize = 100;
/// Parameters per multi-row statement, at most (a prepared statement takes 65,535).
const MAX_PARAMS: usize = 30_000;

/// The statements of `txn`, whose change `i` is of table `shapes[of[i]]`.
///
/// `levels` gives each change the step it may run in: one past every earlier change it
/// shares a key with (see `super::keys::levels`). Changes of one step share no key
/// (no row, no unique value, no table linked by a foreign key), so they run in any order:
/// the rows of one table and kind join in one statement (deletes first, then changes that
/// cannot join, updates, inserts). A change runs before any later one it shares a key
/// with, so each row sees its changes in upstream order. What the keys cannot see (a
/// collation equating other variants, a unique key only the downstream has) shows as an
/// error of the downstream; the caller then builds again without `levels`. Safe mode
/// ignores `levels`: its REPLACE would overwrite such a row instead of failing. So do
/// levels as many as half the changes (they would join little), and a key with a
/// DECIMAL value keeps its row a statement of its own (see [`sql::exact_key`]).
///
/// Without `levels` every change is a statement, in order, but consecutive inserts into
/// one table, which share an INSERT.
///
/// With `detect` (conflict detection) every UPDATE and DELETE is checked: it matches a
/// row only while every column but the key is still as its before image says (a
/// multi-row one each of its rows so), and every statement carries its row changes
/// ([`Check`]) for the session to settle what does not match (`downstream::settle`). A
/// table without a primary or unique key cannot be checked: its rows apply unchecked.
fn statements<'c>(
    txn: &[&'c RowChange],
    shapes: &[Shape],
    of: &[usize],
    levels: Option<&[u32]>,
    safe: bool,
    detect: Option<Detect>,
) -> Result<Vec<Stmt>, sql::BuildError> {
    let shared = |i: usize| -> &Arc<Table> {
        let (table, narrow) = &shapes[of[i]];
        narrow.as_ref().map_or(table, |(t, _)| t)
    };
    let target = |i: usize| -> &Table { shared(i) };
    // Each table's conflict policy, looked up once per transaction.
    let policy_of: Vec<Option<(Policy, Option<usize>)>> = match detect {
        None => vec![None; shapes.len()],
        Some(d) => shapes
            .iter()
            .map(|(t, narrow)| {
                let t = narrow.as_ref().map_or(t, |(n, _)| n);
                d.policies
                    .of(t)
                    .map(Some)
                    .map_err(|column| sql::BuildError::Missing {
                        table: t.qualified(),
                        column: format!("{column} (the lww column of [[syncer.conflict.table]])"),
                    })
            })
            .collect::<Result<_, _>>()?,
    };
    // The check of a statement of change `i`'s table carrying `rows`.
    let check = |i: usize, op: Op, rows: Vec<(Option<Owned>, Option<Owned>)>| {
        let (policy, column) = policy_of[of[i]]?;
        Some(Arc::new(Check {
            op,
            table: Arc::clone(shared(i)),
            rows,
            policy,
            column,
            position: Arc::clone(detect?.position),
        }))
    };
    let checking = detect.is_some();
    // Each change's images as the downstream table takes them: as they are (no copy)
    // unless that table is narrower.
    type Image<'a> = Option<Cow<'a, [Option<Value>]>>;
    let images: Vec<(Image<'c>, Image<'c>)> = txn
        .iter()
        .zip(of)
        .map(|(c, &s)| {
            let fit = |row: &'c Option<Vec<Option<Value>>>| -> Image<'c> {
                let row = row.as_deref()?;
                Some(match &shapes[s].1 {
                    Some((_, keep)) => Cow::Owned(
                        row.iter()
                            .zip(keep)
                            .filter(|(_, k)| **k)
                            .map(|(v, _)| v.clone())
                            .collect(),
                    ),
                    None => Cow::Borrowed(row),
                })
            };
            (fit(&c.before), fit(&c.after))
        })
        .collect();
    // Last writer wins: a DELETE and, right after it, an INSERT of the same key (a row
    // deleted and written again in one upstream transaction) apply as one UPDATE, so that
    // the row races the other site's changes of it as one write (see `conflict`).
    let mut images = images;
    for i in 1..images.len() {
        let lww = matches!(policy_of[of[i]], Some((Policy::Lww, _)));
        let again = match (&images[i - 1], &images[i]) {
            ((Some(b), None), (None, Some(a))) if lww && of[i - 1] == of[i] => {
                let keys = sql::key_columns(target(i));
                sql::locating_key(&keys, b)
                    .is_some_and(|k| keys[k].iter().all(|&c| b.get(c) == a.get(c)))
            }
            _ => false,
        };
        if again {
            images[i].0 = images[i - 1].0.take();
        }
    }
    let images = images;
    let owned = |image: &Image| image.as_deref().map(<[_]>::to_vec);
    // The inserts of `rows`, each statement checked (its rows) when detecting.
    let insert_rows = |stmts: &mut Vec<Stmt>, i: usize, rows: &[&[Option<Value>]]| {
        inserts(stmts, target(i), rows, safe, |chunk| {
            let rows = chunk.iter().map(|a| (None, Some(a.to_vec()))).collect();
            check(i, Op::Insert, rows)
        })
    };
    let single = |stmts: &mut Vec<Stmt>, i: usize| -> Result<(), sql::BuildError> {
        let t = target(i);
        let checked = |stmt: Result<Stmt, sql::BuildError>, op: Op| {
            let mut stmt = stmt.ok()?;
            stmt.check = Some(check(
                i,
                op,
                vec![(owned(&images[i].0), owned(&images[i].1))],
            )?);
            Some(stmt)
        };
        match &images[i] {
            (Some(before), None) => {
                let found = checking
                    .then(|| checked(checked::checked_delete(t, before), Op::Delete))
                    .flatten();
                stmts.push(match found {
                    Some(stmt) => stmt,
                    None => sql::delete(t, before)?,
                });
            }
            (Some(before), Some(after)) => {
                let sets = sql::stored(t).any(|c| matches!(after.get(c), Some(Some(_))));
                let found = (checking && sets)
                    .then(|| checked(checked::checked_update(t, before, after), Op::Update))
                    .flatten();
                match found {
                    Some(stmt) => stmts.push(stmt),
                    None => stmts.extend(sql::update(t, before, after, safe)?),
                }
            }
            (None, Some(after)) => insert_rows(stmts, i, std::slice::from_ref(&&**after))?,
            (None, None) => {}
        }
        Ok(())
    };
    // Levels as deep as half the changes join little (a table without keys, say):
    // consecutive inserts then join better in order.
    let joins = |levels: &&[u32]| {
        let steps = levels.iter().max().map_or(0, |m| *m as usize + 1);
        steps * 2 <= levels.len()
    };
    let mut stmts = Vec::new();
    let Some(levels) = levels.filter(|_| !safe).filter(joins) else {
        let mut i = 0;
        while i < txn.len() {
            if let (None, Some(_)) = &images[i] {
                // The run of inserts into this table.
                let end = (i..txn.len())
                    .find(|&j| of[j] != of[i] || !matches!(images[j], (None, Some(_))))
                    .unwrap_or(txn.len());
                let rows: Vec<&[Option<Value>]> = images[i..end]
                    .iter()
                    .filter_map(|(_, a)| a.as_deref())
                    .collect();
                insert_rows(&mut stmts, i, &rows)?;
                i = end;
                continue;
            }
            single(&mut stmts, i)?;
            i += 1;
        }
        return Ok(stmts);
    };
    // Each table's key columns, once.
    let keys: Vec<Vec<Vec<usize>>> = shapes
        .iter()
        .map(|(t, narrow)| sql::key_columns(narrow.as_ref().map_or(t, |(n, _)| n)))
        .collect();
    // The statements of one bucket: rows of one table and kind, in order.
    let emit = |stmts: &mut Vec<Stmt>, kind: Kind, members: &[usize]| {
        let first = members[0];
        let t = target(first);
        let key = |k: usize| keys[of[first]][k].as_slice();
        // About what a key's values add to a statement, per use (each other column's
        // value once more when checked).
        let key_size = |key: &[usize], row: sql::Row| -> usize {
            let checks: usize = if checking {
                row.iter().map(approx_size).sum()
            } else {
                0
            };
            checks
                + key
                    .iter()
                    .map(|&c| row.get(c).map_or(16, approx_size))
                    .sum::<usize>()
        };
        let before = |i: &usize| images[*i].0.as_deref().unwrap_or_default();
        let after = |i: &usize| images[*i].1.as_deref().unwrap_or_default();
        match kind {
            Kind::Delete(k) => {
                for chunk in within(members, MAX_ROWS_PER_INSERT, |i| {
                    key_size(key(k), before(i))
                }) {
                    if let [one] = chunk {
                        single(stmts, *one)?;
                        continue;
                    }
                    let rows: Vec<sql::Row> = chunk.iter().map(before).collect();
                    let mut stmt = sql::delete_many(t, key(k), &rows, checking)?;
                    let each = rows.iter().map(|b| (Some(b.to_vec()), None)).collect();
                    stmt.check = check(first, Op::Delete, each);
                    stmts.push(stmt);
                }
            }
            Kind::Update(k) => {
                // Each key value goes once per column and once in WHERE (with every
                // other column when checked).
                let width = (t.columns.len() + 1) * (key(k).len() + 1)
                    + if checking { t.columns.len() } else { 0 };
                let per = MAX_ROWS_PER_UPDATE.min(MAX_PARAMS / width).max(1);
                let size = |i: &usize| {
                    after(i).iter().map(approx_size).sum::<usize>()
                        + key_size(key(k), before(i)) * (t.columns.len() + 1)
                };
                for chunk in within(members, per, size) {
                    if let [one] = chunk {
                        single(stmts, *one)?;
                        continue;
                    }
                    let rows: Vec<(sql::Row, sql::Row)> =
                        chunk.iter().map(|i| (before(i), after(i))).collect();
                    if let Some(mut stmt) = sql::update_many(t, key(k), &rows, checking)? {
                        let each = rows
                            .iter()
                            .map(|(b, a)| (Some(b.to_vec()), Some(a.to_vec())))
                            .collect();
                        stmt.check = check(first, Op::Update, each);
                        stmts.push(stmt);
                    }
                }
            }
            Kind::Insert => {
                let rows: Vec<sql::Row> = members.iter().map(after).collect();
                insert_rows(stmts, first, &rows)?;
            }
        }
        Ok::<(), sql::BuildError>(())
    };
    let mut order: Vec<usize> = (0..txn.len()).collect();
    order.sort_by_key(|&i| levels[i]);
    for step in order.chunk_by(|&a, &b| levels[a] == levels[b]) {
        // (table, kind) and its changes in order; `alone`: changes that join nothing.
        let mut buckets: Vec<((usize, Kind), Vec<usize>)> = Vec::new();
        let mut alone = Vec::new();
        for &i in step {
            let keys = &keys[of[i]];
            let kind = match &images[i] {
                (None, Some(_)) => Some(Kind::Insert),
                (Some(b), None) => sql::locating_key(keys, b)
                    .filter(|&k| sql::exact_key(&keys[k], b))
                    .map(Kind::Delete),
                (Some(b), Some(a)) if sql::full(target(i), a) => sql::locating_key(keys, b)
                    .filter(|&k| sql::exact_key(&keys[k], b) && sql::keeps_key(&keys[k], b, a))
                    .map(Kind::Update),
                _ => None,
            };
            let Some(kind) = kind else {
                alone.push(i);
                continue;
            };
            match buckets.iter_mut().find(|(key, _)| *key == (of[i], kind)) {
                Some((_, members)) => members.push(i),
                None => buckets.push(((of[i], kind), vec![i])),
            }
        }
        // Deletes first: should the keys miss a value two rows share (see above), the
        // row that gives it up is gone before the other takes it. Then what joins
        // nothing, updates, inserts.
        let rank = |kind: Kind| match kind {
            Kind::Delete(_) => 0,
            Kind::Update(_) => 1,
            Kind::Insert => 2,
        };
        buckets.sort_by_key(|((_, kind), _)| rank(*kind));
        let others = buckets.partition_point(|((_, kind), _)| rank(*kind) == 0);
        for ((_, kind), members) in &buckets[..others] {
            emit(&mut stmts, *kind, members)?;
        }
        for i in alone {
            single(&mut stmts, i)?;
        }
        for ((_, kind), members) in &buckets[others..] {
            emit(&mut stmts, *kind, members)?;
        }
    }
    Ok(stmts)
}

/// INSERT (REPLACE in safe mode) statements for `rows` of `table`, in order, each within
/// the statement budget and carrying the check `check` gives its rows.
fn inserts<R: AsRef<[Option<Value>]>>(
    stmts: &mut Vec<Stmt>,
    table: &Table,
    rows: &[R],
    replace: bool,
    check: impl Fn(&[R]) -> Option<Arc<Check>>,
) -> Result<(), sql::BuildError> {
    let size = |r: &R| r.as_ref().iter().map(approx_size).sum();
    let most = MAX_ROWS_PER_INSERT
        .min(MAX_PARAMS / table.columns.len().max(1))
        .max(1);
    for chunk in within(rows, most, size) {
        let refs: Vec<&[Option<Value>]> = chunk.iter().map(|r| r.as_ref()).collect();
        let mut stmt = sql::insert(table, &refs, replace)?;
        stmt.check = check(chunk);
        stmts.push(stmt);
    }
    Ok(())
}

/// `items` cut into runs of at most `max` items, each closed once its `size`s reach
/// `MAX_INSERT_BYTES` (one item alone may be larger).
fn within<T>(items: &[T], max: usize, size: impl Fn(&T) -> usize) -> Vec<&[T]> {
    let mut runs = Vec::new();
    let mut start = 0;
    while start < items.len() {
        let mut end = start;
        let mut bytes = 0;
        while end < items.len() && end - start < max && bytes < MAX_INSERT_BYTES {
            bytes += size(&items[end]);
            end += 1;
        }
        runs.push(&items[start..end]);
        start = end;
    }
    runs
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apply::keys::{change_keys, levels, Links};
    use crate::apply::test_table as table;

    fn row(values: &[i64]) -> Option<Vec<Option<Value>>> {
        Some(values.iter().map(|v| Some(Value::Int(*v))).collect())
    }

    fn change(t: &Arc<Table>, before: &[i64], after: &[i64]) -> RowChange {
        let image = |v: &[i64]| if v.is_empty() { None } else { row(v) };
        RowChange {
            table: Arc::clone(t),
            before: image(before),
            after: image(after),
            checks: Checks::default(),
            raw: None,
        }
    }

    /// The statements of `changes`, merged as a worker merges them, or row by row.
    fn sqls(changes: &[RowChange], merged: bool, safe: bool) -> Vec<String> {
        built(changes, merged, safe, None)
            .into_iter()
            .map(|s| s.sql)
            .collect()
    }

    fn built(changes: &[RowChange], merged: bool, safe: bool, detect: Option<Detect>) -> Vec<Stmt> {
        let txn: Vec<&RowChange> = changes.iter().collect();
        let mut shapes: Vec<Shape> = Vec::new();
        let of: Vec<usize> = changes
            .iter()
            .map(
                |c| match shapes.iter().position(|(t, _)| Arc::ptr_eq(t, &c.table)) {
                    Some(s) => s,
                    None => {
                        shapes.push((Arc::clone(&c.table), None));
                        shapes.len() - 1
                    }
                },
            )
            .collect();
        let keys = change_keys(changes, &Links::new());
        let levels = levels(keys.each());
        let levels = merged.then_some(levels.as_slice());
        statements(&txn, &shapes, &of, levels, safe, detect).unwrap()
    }

    #[test]
    fn checked_rows_join_and_each_statement_carries_its_changes() {
        let t = table("CREATE TABLE t (id INT PRIMARY KEY, v INT)");
        let changes = [
            change(&t, &[1, 0], &[1, 1]),
            change(&t, &[2, 0], &[2, 2]),
            change(&t, &[3, 0], &[]),
            change(&t, &[4, 0], &[]),
            change(&t, &[], &[5, 5]),
            change(&t, &[1, 1], &[1, 2]),
        ];
        let policies = crate::apply::conflict::Policies {
            default: Policy::Keep,
            tables: Vec::new(),
            schema: "retl".into(),
            channel_id: 1,
        };
        let position: Arc<str> = Arc::from("GTID 0-1-5");
        let detect = Detect {
            policies: &policies,
            position: &position,
        };
        let stmts = built(&changes, true, false, Some(detect));
        let sqls: Vec<&str> = stmts.iter().map(|s| s.sql.as_str()).collect();
        let two = "`id` IN (?,?) AND CASE `id` WHEN ? THEN (1 AND `v` <=> ?) \
                   WHEN ? THEN (1 AND `v` <=> ?) END";
        assert_eq!(
            sqls,
            [
                format!("DELETE FROM `app`.`t` WHERE {two}").as_str(),
                &format!(
                    "UPDATE `app`.`t` SET `v` = CASE `id` WHEN ? THEN ? WHEN ? THEN ? END \
                     WHERE {two}"
                ),
                "INSERT INTO `app`.`t` (`id`,`v`) VALUES (?,?)",
                // Row 1's second change, a level later, alone.
                "UPDATE `app`.`t` SET `id` = ?,`v` = ? WHERE `id` = ? \
                 AND CASE WHEN 1 AND `v` <=> ? THEN 1 END",
            ]
        );
        let checks: Vec<(Op, usize)> = stmts
            .iter()
            .map(|s| {
                let c = s.check.as_ref().expect("every statement checked");
                assert_eq!((c.policy, &*c.position), (Policy::Keep, "GTID 0-1-5"));
                (c.op, c.rows.len())
            })
            .collect();
        assert_eq!(
            checks,
            [
                (Op::Delete, 2),
                (Op::Update, 2),
                (Op::Insert, 1),
                (Op::Update, 1)
            ]
        );
        // Row by row: every change a checked statement of its own.
        let single = built(&changes, false, false, Some(detect));
        assert_eq!(single.len(), 6);
        assert!(single.iter().all(|s| s.check.is_some()));
        // A table without a key cannot be checked.
        let n = table("CREATE TABLE n (a INT, v INT)");
        let keyless = built(&[change(&n, &[1, 0], &[])], false, false, Some(detect));
        assert!(keyless[0].check.is_none());
    }

    #[test]
    fn rows_of_a_table_join_where_their_keys_are_apart() {
        let t = table("CREATE TABLE t (id INT PRIMARY KEY, v INT)");
        let u = table("CREATE TABLE u (id INT PRIMARY KEY, v INT)");
        let changes = [
            change(&t, &[1, 0], &[1, 1]),
            change(&u, &[1, 0], &[1, 1]),
            change(&t, &[3, 0], &[]),
            change(&t, &[2, 0], &[2, 2]),
            change(&t, &[], &[3, 9]),
            change(&t, &[4, 0], &[]),
        ];
        assert_eq!(
            sqls(&changes, true, false),
            [
                "DELETE FROM `app`.`t` WHERE `id` IN (?,?)",
                "UPDATE `app`.`t` SET `v` = CASE `id` WHEN ? THEN ? WHEN ? THEN ? END \
                 WHERE `id` IN (?,?)",
                "UPDATE `app`.`u` SET `id` = ?,`v` = ? WHERE `id` = ?",
                // Row 3, deleted above, comes back after it.
                "INSERT INTO `app`.`t` (`id`,`v`) VALUES (?,?)",
            ]
        );
        // Row by row, as upstream ordered them.
        assert_eq!(sqls(&changes, false, false).len(), 6);
    }

    #[test]
    fn changes_of_one_row_keep_their_order_and_key_changes_stand_alone() {
        let t = table("CREATE TABLE t (id INT PRIMARY KEY, v INT, w INT, UNIQUE KEY (w))");
        let changes = [
            change(&t, &[1, 0, 10], &[1, 1, 10]),
            change(&t, &[1, 1, 10], &[1, 2, 10]),
            change(&t, &[2, 0, 20], &[2, 0, 11]),
            // Row 1 takes the unique value row 2 gave up.
            change(&t, &[1, 2, 10], &[1, 2, 20]),
            // A primary key change.
            change(&t, &[5, 0, 50], &[6, 0, 50]),
            change(&t, &[3, 0, 30], &[3, 3, 30]),
            change(&t, &[4, 0, 40], &[4, 4, 40]),
        ];
        let merged = sqls(&changes, true, false);
        let one = "UPDATE `app`.`t` SET `id` = ?,`v` = ?,`w` = ? WHERE `id` = ?";
        assert_eq!(merged[0], one, "row 5 moves to 6 alone");
        let arms = " WHEN ? THEN ?".repeat(4);
        let four = format!(
            "UPDATE `app`.`t` SET `v` = CASE `id`{arms} END,`w` = CASE `id`{arms} END \
             WHERE `id` IN (?,?,?,?)"
        );
        assert_eq!(merged[1], four, "rows 1 to 4, the first change of each");
        assert_eq!(merged[2..], [one, one], "row 1 twice more, in order");
        // Three steps for four changes: in order, a statement each.
        assert_eq!(sqls(&changes[..4], true, false).len(), 4);
        // In safe mode an update is a DELETE and a REPLACE, and everything keeps its
        // upstream order: a REPLACE would overwrite what the keys cannot see.
        let safe = sqls(&changes, true, true);
        assert_eq!(safe, sqls(&changes, false, true));
        assert_eq!(safe.len(), 14);
        assert!(safe[1].starts_with("REPLACE"));
        // An after image without every column (MINIMAL) updates alone.
        let minimal = [
            RowChange {
                table: Arc::clone(&t),
                before: row(&[7, 0, 70]),
                after: Some(vec![None, Some(Value::Int(1)), None]),
                checks: Checks::default(),
                raw: None,
            },
            change(&t, &[8, 0, 80], &[8, 1, 80]),
        ];
        let sqls = sqls(&minimal, true, false);
        assert_eq!(sqls[0], "UPDATE `app`.`t` SET `v` = ? WHERE `id` = ?");
        assert_eq!(sqls.len(), 2);
    }

    #[test]
    fn composite_keys_and_tables_without_keys() {
        let t = table("CREATE TABLE t (a INT, b INT, v INT, PRIMARY KEY (a, b))");
        let changes = [
            change(&t, &[1, 1, 0], &[]),
            change(&t, &[1, 2, 0], &[]),
            change(&t, &[2, 1, 0], &[2, 1, 5]),
            change(&t, &[2, 2, 0], &[2, 2, 6]),
        ];
        assert_eq!(
            sqls(&changes, true, false),
            [
                "DELETE FROM `app`.`t` WHERE (`a` = ? AND `b` = ?) OR (`a` = ? AND `b` = ?)",
                "UPDATE `app`.`t` SET `v` = CASE WHEN `a` = ? AND `b` = ? THEN ? \
                 WHEN `a` = ? AND `b` = ? THEN ? END \
                 WHERE (`a` = ? AND `b` = ?) OR (`a` = ? AND `b` = ?)",
            ]
        );
        // A DECIMAL key compares with its text parameter as DOUBLE: one statement each.
        let d = table("CREATE TABLE d (id DECIMAL(20,0) PRIMARY KEY, v INT)");
        let dec = |id: &str, v: Option<i64>| RowChange {
            table: Arc::clone(&d),
            before: Some(vec![Some(Value::Decimal(id.into())), Some(Value::Int(0))]),
            after: v.map(|v| vec![Some(Value::Decimal(id.into())), Some(Value::Int(v))]),
            checks: Checks::default(),
            raw: None,
        };
        let changes = [
            dec("12345678901234567890", Some(1)),
            dec("12345678901234567891", Some(2)),
            dec("12345678901234567892", None),
            dec("12345678901234567893", None),
        ];
        assert_eq!(sqls(&changes, true, false).len(), 4);
        // Without a key every change of the table conflicts with the others.
        let n = table("CREATE TABLE n (a INT, v INT)");
        let changes = [change(&n, &[1, 0], &[]), change(&n, &[2, 0], &[])];
        assert_eq!(
            sqls(&changes, true, false),
            [
                "DELETE FROM `app`.`n` WHERE `a` <=> ? AND `v` <=> ? LIMIT 1",
                "DELETE FROM `app`.`n` WHERE `a` <=> ? AND `v` <=> ? LIMIT 1",
            ]
        );
    }
}
