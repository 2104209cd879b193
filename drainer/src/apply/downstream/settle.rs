//! Settling a conflict in the open transaction (issue 20): what the change found, its
//! kind, the table's policy, the record, then the resolution, every step on the server
//! (see `conflict`). The record and the resolution commit with the transaction, or
//! neither does.

use std::sync::atomic::{AtomicU64, Ordering as Atomic};

use mysql_async::prelude::Queryable;
use mysql_async::Conn;

use super::{classify, DownstreamError, Target, CONFLICT_STOP};
use crate::apply::conflict::record::{image_json, insert, key_text, Conflict};
use crate::apply::conflict::sql::{key_of, newer, probe};
use crate::apply::conflict::{kind, resolve, Check, Found, Kind, Newer, Op, Policy, Resolution};
use crate::apply::sql::{self, BuildError, Stmt};

fn built(e: BuildError) -> DownstreamError {
    DownstreamError::Definite {
        statement: "build a conflict statement".into(),
        code: 0,
        reason: e.to_string(),
    }
}

async fn run(conn: &mut Conn, stmt: &Stmt) -> Result<(), DownstreamError> {
    conn.exec_drop(stmt.sql.as_str(), stmt.values())
        .await
        .map_err(|e| classify(&stmt.sql, e))
}

/// Each row of the checked INSERT `c`, on its own (the joined statement was refused
/// whole): those whose key exists are settled.
pub(super) async fn inserts(
    conn: &mut Conn,
    target: &Target,
    c: &Check,
    settled: &mut Vec<(Kind, Resolution)>,
) -> Result<(), DownstreamError> {
    for (n, (_, after)) in c.rows.iter().enumerate() {
        let Some(after) = after else { continue };
        let one = sql::insert(&c.table, &[after.as_slice()], false).map_err(built)?;
        match conn.exec_drop(one.sql.as_str(), one.values()).await {
            Ok(()) => {}
            Err(mysql_async::Error::Server(e)) if e.code == super::DUPLICATE_KEY => {
                settled.extend(row(conn, target, c, n).await?)
            }
            Err(e) => return Err(classify(&one.sql, e)),
        }
    }
    Ok(())
}

/// Row `n` of `c`, which did not find the row it expects: the conflict settled, if it
/// is one (counted by the caller once the transaction commits).
pub(super) async fn row(
    conn: &mut Conn,
    target: &Target,
    c: &Check,
    n: usize,
) -> Result<Option<(Kind, Resolution)>, DownstreamError> {
    let Some(policies) = &target.conflicts else {
        return Ok(None);
    };
    let (before, after) = &c.rows[n];
    let Some(located) = before.as_deref().or(after.as_deref()) else {
        return Ok(None);
    };
    let table = &c.table;
    let looked = probe(table, located, after.as_deref()).map_err(built)?;
    let found: Option<Option<i64>> = conn
        .exec_first(looked.sql.as_str(), looked.values())
        .await
        .map_err(|e| classify(&looked.sql, e))?;
    let found = match found {
        None => Found::Missing,
        Some(Some(1)) => Found::AlreadyApplied,
        Some(_) => Found::Differs,
    };
    let Some(kind) = kind(c.op, found) else {
        return Ok(None);
    };
    let newer = match (c.policy, c.column, after) {
        (Policy::Lww, Some(column), Some(after))
            if matches!(kind, Kind::UpdateDiffers | Kind::InsertExists) =>
        {
            let asked = newer(table, located, after, column).map_err(built)?;
            let signs: Option<(i64, i64)> = conn
                .exec_first(asked.sql.as_str(), asked.values())
                .await
                .map_err(|e| classify(&asked.sql, e))?;
            signs.map(|(column, image)| Newer {
                column: column.cmp(&0),
                image: image.cmp(&0),
            })
        }
        _ => None,
    };
    let resolution = resolve(kind, c.policy, newer);
    let key = key_of(table, located).map_err(built)?;
    if resolution == Resolution::Stop {
        return Err(DownstreamError::Definite {
            statement: format!(
                "conflict on {} {}",
                table.qualified(),
                key_text(table, &key, located)
            ),
            code: CONFLICT_STOP,
            reason: format!(
                "{}: the table's conflict policy is stop; the upstream's before image {}, its \
                 after image {}; the row here differs (SELECT it by the key). Make the row as \
                 the upstream's before image (or remove it), then start the drainer again: it \
                 resumes with this transaction",
                kind.as_str(),
                before
                    .as_deref()
                    .map_or("(none)".into(), |b| image_json(table, b)),
                after
                    .as_deref()
                    .map_or("(none)".into(), |a| image_json(table, a)),
            ),
        });
    }
    // The record reads the row as found, so it goes before the resolution.
    let record = insert(
        &policies.schema,
        &Conflict {
            channel_id: policies.channel_id,
            position: &c.position,
            table,
            located,
            before: before.as_deref(),
            after: after.as_deref(),
            kind,
            resolution,
        },
        &key,
    )
    .map_err(built)?;
    run(conn, &record).await?;
    if log_allowed() {
        tracing::warn!(at = %c.position, table = %table.qualified(),
            key = %key_text(table, &key, located), kind = kind.as_str(),
            resolution = resolution.as_str(), "conflict");
    }
    if resolution == Resolution::Skip {
        return Ok(Some((kind, resolution)));
    }
    let apply: Vec<Stmt> = match (c.op, before, after) {
        // The row ends as the upstream's after image.
        (Op::Update | Op::Insert, _, Some(after))
            if found == Found::Missing || c.op == Op::Insert =>
        {
            vec![sql::insert(table, &[after.as_slice()], true).map_err(built)?]
        }
        (Op::Update, Some(before), Some(after)) => {
            sql::update(table, before, after, false).map_err(built)?
        }
        (Op::Delete, Some(before), None) => vec![sql::delete(table, before).map_err(built)?],
        _ => Vec::new(),
    };
    for stmt in &apply {
        run(conn, stmt).await?;
    }
    Ok(Some((kind, resolution)))
}

/// At most 10 conflict log lines a second (every conflict is recorded and counted).
fn log_allowed() -> bool {
    static WINDOW: AtomicU64 = AtomicU64::new(0);
    static LINES: AtomicU64 = AtomicU64::new(0);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    if WINDOW.swap(now, Atomic::Relaxed) != now {
        LINES.store(0, Atomic::Relaxed);
    }
    LINES.fetch_add(1, Atomic::Relaxed) < 10
}
