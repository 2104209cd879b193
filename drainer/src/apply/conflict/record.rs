//! The conflict record: one row of `<mark schema>._drainer_conflicts` per conflicting row
//! change, written in the downstream transaction that applies (or skips) the change, with
//! its apply record, so that a crash and a replay neither lose nor double it. The mark
//! table's schema is never replicated: the record stays on its site.

use std::fmt::Write as _;

use schema::{Table, Value};

use crate::apply::sql::{key_match, qualified, quote, stored, BuildError, Stmt};
use crate::apply::values::Param;

use super::{Kind, Resolution};

/// The conflict table's name, in the mark table's schema.
pub const CONFLICTS_TABLE: &str = "_drainer_conflicts";

/// `CREATE TABLE IF NOT EXISTS` of the conflict table in `schema`.
pub fn create(schema: &str) -> Stmt {
    Stmt {
        sql: format!(
            "CREATE TABLE IF NOT EXISTS {}.{} (\
             id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY, \
             detected_at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6), \
             channel_id BIGINT NOT NULL, \
             position VARCHAR(1024) NOT NULL, \
             db_name VARCHAR(64) NOT NULL, \
             tbl_name VARCHAR(64) NOT NULL, \
             row_key TEXT NOT NULL, \
             kind VARCHAR(16) NOT NULL, \
             resolution VARCHAR(16) NOT NULL, \
             upstream_before LONGTEXT NULL, \
             upstream_after LONGTEXT NULL, \
             downstream_row LONGTEXT NULL, \
             KEY (detected_at), KEY (db_name, tbl_name))",
            quote(schema),
            quote(CONFLICTS_TABLE)
        ),
        params: Vec::new(),
        check: None,
    }
}

/// What one record says.
pub struct Conflict<'a> {
    pub channel_id: i64,
    /// The upstream transaction: its GTID and position, as errors name it.
    pub position: &'a str,
    pub table: &'a Table,
    /// The row image whose key locates the row (the before image; an INSERT's after).
    pub located: &'a [Option<Value>],
    pub before: Option<&'a [Option<Value>]>,
    pub after: Option<&'a [Option<Value>]>,
    pub kind: Kind,
    pub resolution: Resolution,
}

/// The INSERT of a conflict record into `schema`'s conflict table. The downstream row is
/// read by the statement itself (as JSON, by the key), so it must run before the
/// resolution changes that row.
pub fn insert(schema: &str, c: &Conflict<'_>, key: &[usize]) -> Result<Stmt, BuildError> {
    let t = c.table;
    let text = |s: String| Param::Shared(bytes::Bytes::from(s));
    let mut params = vec![
        Param::Plain(mysql_async::Value::Int(c.channel_id)),
        text(c.position.to_owned()),
        text(t.schema.clone()),
        text(t.name.clone()),
        text(key_text(t, key, c.located)),
        text(c.kind.as_str().to_owned()),
        text(c.resolution.as_str().to_owned()),
    ];
    for image in [c.before, c.after] {
        params.push(match image {
            Some(row) => text(image_json(t, row)),
            None => Param::Plain(mysql_async::Value::NULL),
        });
    }
    let mut found = String::new();
    for (n, i) in stored(t).enumerate() {
        let name = &t.columns[i].name;
        let _ = write!(
            found,
            "{}'{}', {}",
            if n == 0 { "" } else { ", " },
            name.replace('\\', "\\\\").replace('\'', "''"),
            quote(name)
        );
    }
    let mut sql = format!(
        "INSERT INTO {}.{} (channel_id, position, db_name, tbl_name, row_key, kind, \
         resolution, upstream_before, upstream_after, downstream_row) \
         SELECT ?, ?, ?, ?, ?, ?, ?, ?, ?, (SELECT JSON_OBJECT({found}) FROM {} WHERE ",
        quote(schema),
        quote(CONFLICTS_TABLE),
        qualified(t)
    );
    key_match(t, key, c.located, &mut sql, &mut params)?;
    sql.push_str(" LIMIT 1)");
    Ok(Stmt {
        sql,
        params,
        check: None,
    })
}

/// `id=5` or `a=1,b='x'`: the key columns and their values, for people.
pub fn key_text(table: &Table, key: &[usize], row: &[Option<Value>]) -> String {
    key.iter()
        .map(|&i| {
            let value = row
                .get(i)
                .and_then(Option::as_ref)
                .map_or(serde_json::Value::Null, json);
            format!("{}={value}", table.columns[i].name)
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// A row image as a JSON object, its columns in table order (absent ones left out).
pub fn image_json(table: &Table, row: &[Option<Value>]) -> String {
    let mut out = String::from("{");
    let mut n = 0;
    for (column, value) in table.columns.iter().zip(row) {
        let Some(value) = value else {
            continue;
        };
        if n > 0 {
            out.push_str(", ");
        }
        let name = serde_json::Value::String(column.name.clone());
        let _ = write!(out, "{name}: {}", json(value));
        n += 1;
    }
    out.push('}');
    out
}

/// A value as JSON: numbers as numbers (DECIMAL as its exact text), text as text, bytes
/// as `0x…` hexadecimal, times as the server prints them.
fn json(value: &Value) -> serde_json::Value {
    use serde_json::Value as J;
    let hex = |b: &[u8]| {
        let mut s = String::from("0x");
        for byte in b {
            let _ = write!(s, "{byte:02x}");
        }
        J::String(s)
    };
    match value {
        Value::Null => J::Null,
        Value::Int(i) => J::from(*i),
        Value::UInt(u) => J::from(*u),
        Value::Float(f) => J::from(f64::from(*f)),
        Value::Double(d) => J::from(*d),
        Value::Decimal(d) => J::String(d.clone()),
        Value::Year(y) => J::from(*y),
        Value::Date { year, month, day } => J::String(format!("{year:04}-{month:02}-{day:02}")),
        Value::Time {
            negative,
            hours,
            minutes,
            seconds,
            micros,
        } => J::String(format!(
            "{}{hours:02}:{minutes:02}:{seconds:02}.{micros:06}",
            if *negative { "-" } else { "" }
        )),
        Value::DateTime {
            year,
            month,
            day,
            hour,
            minute,
            second,
            micros,
        } => J::String(format!(
            "{year:04}-{month:02}-{day:02} {hour:02}:{minute:02}:{second:02}.{micros:06}"
        )),
        Value::Timestamp { seconds, micros } => {
            J::String(format!("@{seconds}.{micros:06} (unix seconds)"))
        }
        Value::Text(b) => J::String(String::from_utf8_lossy(b).into_owned()),
        Value::Bytes(b) | Value::MysqlJson(b) => hex(b),
        Value::Enum { name, index } => name.clone().map_or_else(|| J::from(*index), J::String),
        Value::Set { names, .. } => J::String(names.join(",")),
        Value::Bit { value, .. } => J::from(*value),
        Value::Uuid(b) => hex(b),
        Value::Inet4(b) => J::String(std::net::Ipv4Addr::from(*b).to_string()),
        Value::Inet6(b) => J::String(std::net::Ipv6Addr::from(*b).to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apply::test_table;

    #[test]
    fn images_read_as_json_in_column_order() {
        let t =
            test_table("CREATE TABLE t (id INT PRIMARY KEY, s VARCHAR(9), b VARBINARY(4), n INT)");
        let row = [
            Some(Value::Int(5)),
            Some(Value::Text(bytes::Bytes::from_static(b"it's \"x\""))),
            Some(Value::Bytes(bytes::Bytes::from_static(b"\x00\xff"))),
            Some(Value::Null),
        ];
        let j = image_json(&t, &row);
        assert_eq!(
            j,
            r#"{"id": 5, "s": "it's \"x\"", "b": "0x00ff", "n": null}"#
        );
        let parsed: serde_json::Value = serde_json::from_str(&j).unwrap();
        assert_eq!(parsed["id"], 5);
        assert_eq!(key_text(&t, &[0], &row), "id=5");
        let partial = [Some(Value::Int(5)), None, None, None];
        assert_eq!(image_json(&t, &partial), r#"{"id": 5}"#);
    }

    #[test]
    fn the_record_reads_the_downstream_row_by_its_key() {
        let t = test_table("CREATE TABLE t (id INT PRIMARY KEY, `it's` INT)");
        let row = [Some(Value::Int(5)), Some(Value::Int(1))];
        let c = Conflict {
            channel_id: 1,
            position: "gtid 0-1-9 at binlog.000001:400",
            table: &t,
            located: &row,
            before: Some(&row),
            after: None,
            kind: Kind::DeleteDiffers,
            resolution: Resolution::Apply,
        };
        let s = insert("retl", &c, &[0]).unwrap();
        assert!(
            s.sql.starts_with("INSERT INTO `retl`.`_drainer_conflicts`"),
            "{}",
            s.sql
        );
        assert!(
            s.sql.ends_with(
                "(SELECT JSON_OBJECT('id', `id`, 'it''s', `it's`) FROM `app`.`t` WHERE `id` = ? LIMIT 1)"
            ),
            "{}",
            s.sql
        );
        assert_eq!(s.params.len(), 10);
        assert!(create("retl").sql.contains("`retl`.`_drainer_conflicts`"));
    }
}
