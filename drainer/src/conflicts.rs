//! `drainer conflicts show`: the recent conflict records of this direction, from the
//! downstream's `_drainer_conflicts` (docs/conflicts.md), readably.

use mysql_async::prelude::Queryable;

use crate::apply::conflict::record::CONFLICTS_TABLE;
use crate::apply::sql::quote;
use crate::servers::Servers;

/// How far back `--since` reaches: `90s`, `30m`, `12h`, `7d`, or a time
/// `YYYY-MM-DD[ HH:MM:SS]` (the downstream's time zone).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Since {
    Ago(u64),
    At(String),
}

impl Since {
    pub fn parse(text: &str) -> Result<Since, String> {
        let text = text.trim();
        let bad = || {
            format!(
                "--since {text:?}: give a duration (90s, 30m, 12h, 7d) or a time \
                 (2026-12-05 or 2026-12-05 13:00:00)"
            )
        };
        if let Some(unit) = text.chars().last().filter(|c| c.is_ascii_alphabetic()) {
            let n: u64 = text[..text.len() - 1].parse().map_err(|_| bad())?;
            let seconds = match unit {
                's' => 1,
                'm' => 60,
                'h' => 3600,
                'd' => 86_400,
                _ => return Err(bad()),
            };
            return Ok(Since::Ago(n.saturating_mul(seconds)));
        }
        let digits_and = |c: char| c.is_ascii_digit() || matches!(c, '-' | ':' | ' ' | '.');
        if text.len() >= 10 && text.chars().all(digits_and) {
            return Ok(Since::At(text.to_owned()));
        }
        Err(bad())
    }
}

/// The records of `channel` since `since`, newest first, at most `limit`.
pub async fn show(
    servers: &Servers,
    schema: &str,
    channel: i64,
    since: &Since,
    limit: u32,
) -> Result<String, String> {
    let down = &servers.downstream;
    let mut conn = down
        .session(down.opts())
        .await
        .map_err(|e| format!("cannot connect to the downstream {down:?}: {e}"))?;
    let exists: Option<u64> = conn
        .exec_first(
            "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?",
            (schema, CONFLICTS_TABLE),
        )
        .await
        .map_err(|e| e.to_string())?;
    if exists != Some(1) {
        return Ok(format!(
            "no conflict records: {schema}.{CONFLICTS_TABLE} does not exist on the downstream \
             (detection is on with [syncer.conflict])\n"
        ));
    }
    let (cutoff, param) = match since {
        Since::Ago(seconds) => (
            "NOW(6) - INTERVAL ? SECOND".to_owned(),
            mysql_async::Value::UInt(*seconds),
        ),
        Since::At(time) => ("?".to_owned(), mysql_async::Value::from(time.as_str())),
    };
    let sql = format!(
        "SELECT CAST(detected_at AS CHAR), position, db_name, tbl_name, row_key, kind, \
         resolution, upstream_before, upstream_after, downstream_row FROM {}.{} \
         WHERE channel_id = ? AND detected_at >= {cutoff} ORDER BY id DESC LIMIT {limit}",
        quote(schema),
        quote(CONFLICTS_TABLE)
    );
    type Record = (
        String,
        String,
        String,
        String,
        String,
        String,
        String,
        Option<String>,
        Option<String>,
        Option<String>,
    );
    let records: Vec<Record> = conn
        .exec(sql.as_str(), (channel, param))
        .await
        .map_err(|e| e.to_string())?;
    conn.disconnect().await.ok();
    let mut out = String::new();
    for (at, position, db, table, key, kind, resolution, before, after, found) in &records {
        out.push_str(&format!(
            "{at}  {db}.{table} {key}  {kind} -> {resolution}  ({position})\n"
        ));
        let none = || "(none)".to_owned();
        out.push_str(&format!(
            "    upstream before: {}\n",
            before.clone().unwrap_or_else(none)
        ));
        out.push_str(&format!(
            "    upstream after:  {}\n",
            after.clone().unwrap_or_else(none)
        ));
        out.push_str(&format!(
            "    found here:      {}\n",
            found.clone().unwrap_or_else(none)
        ));
    }
    out.push_str(&format!(
        "{} conflict record{} of channel {channel}\n",
        records.len(),
        if records.len() == 1 { "" } else { "s" }
    ));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_takes_durations_and_times() {
        assert_eq!(Since::parse("90s"), Ok(Since::Ago(90)));
        assert_eq!(Since::parse("30m"), Ok(Since::Ago(1800)));
        assert_eq!(Since::parse("2d"), Ok(Since::Ago(172_800)));
        assert_eq!(
            Since::parse("2026-12-05 13:00:00"),
            Ok(Since::At("2026-12-05 13:00:00".into()))
        );
        assert!(Since::parse("yesterday").unwrap_err().contains("--since"));
        assert!(Since::parse("5w").is_err());
        assert!(Since::parse("2026-12-05; DROP").is_err());
    }
}
