//! A verify chunk as both sides see it: the request `drainer verify` writes on the
//! upstream (in the same transaction as its share-locked read of the chunk), the answer
//! the running drainer writes on the downstream at the request's place in its apply
//! order, and the one checksum statement both compute, so that the two compare.
//!
//! The control table `<mark schema>._drainer_verify` holds both (`side`): requests on the
//! upstream, answers on the downstream. Its schema is never replicated; a request is
//! read by the direction of its `channel_id` only, and an answer commits in the
//! drainer's marked transaction with its apply record (once, and never back).

use mysql_async::Value;
use pump_reader::event::Cell;

use crate::apply::sql::quote;

/// The control table's name, in the mark table's schema.
pub const VERIFY_TABLE: &str = "_drainer_verify";

/// `CREATE TABLE IF NOT EXISTS` of the control table in `schema`.
pub fn create(schema: &str) -> String {
    format!(
        "CREATE TABLE IF NOT EXISTS {}.{} (\
         id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY, \
         run VARCHAR(64) NOT NULL, \
         channel_id BIGINT NOT NULL, \
         side VARCHAR(8) NOT NULL, \
         chunk INT NOT NULL, \
         attempt INT NOT NULL, \
         db_name VARCHAR(64) NOT NULL, \
         tbl_name VARCHAR(64) NOT NULL, \
         columns_json TEXT NOT NULL, \
         key_json TEXT NOT NULL, \
         lo_json TEXT NULL, \
         hi_json TEXT NULL, \
         row_count BIGINT NOT NULL, \
         checksum VARCHAR(64) NOT NULL, \
         at_position VARCHAR(1024) NULL, \
         created_at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6), \
         KEY (run, side, chunk, attempt))",
        quote(schema),
        quote(VERIFY_TABLE)
    )
}

/// How a key column's values go as parameters: integers as integers (a text parameter
/// would compare as DOUBLE and lose digits past 2^53), anything else as text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    Signed,
    Unsigned,
    Text,
}

impl KeyKind {
    fn code(self) -> &'static str {
        match self {
            KeyKind::Signed => "i",
            KeyKind::Unsigned => "u",
            KeyKind::Text => "s",
        }
    }

    fn of_code(code: &str) -> Option<KeyKind> {
        match code {
            "i" => Some(KeyKind::Signed),
            "u" => Some(KeyKind::Unsigned),
            "s" => Some(KeyKind::Text),
            _ => None,
        }
    }

    /// The kind of a column of `data_type` (information_schema's).
    pub fn of_type(data_type: &str, unsigned: bool) -> KeyKind {
        let integer = matches!(
            data_type.to_ascii_lowercase().as_str(),
            "tinyint" | "smallint" | "mediumint" | "int" | "integer" | "bigint"
        );
        match (integer, unsigned) {
            (true, false) => KeyKind::Signed,
            (true, true) => KeyKind::Unsigned,
            (false, _) => KeyKind::Text,
        }
    }

    /// `text` as this kind's parameter.
    pub fn param(self, text: &str) -> Value {
        match self {
            KeyKind::Signed => text
                .parse::<i64>()
                .map_or_else(|_| Value::from(text), Value::Int),
            KeyKind::Unsigned => text
                .parse::<u64>()
                .map_or_else(|_| Value::from(text), Value::UInt),
            KeyKind::Text => Value::Bytes(text.as_bytes().to_vec()),
        }
    }
}

/// One chunk of one table: rows whose key is past `lo` (all, when `None`) and at most
/// `hi` (all, when `None`), checksummed over `columns`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk {
    pub db: String,
    pub table: String,
    pub columns: Vec<String>,
    /// The key's columns (none: the whole table is one chunk).
    pub key: Vec<(String, KeyKind)>,
    pub lo: Option<Vec<String>>,
    pub hi: Option<Vec<String>>,
}

/// A request or an answer: which run and chunk, and the count and checksum one side
/// found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    pub run: String,
    pub channel_id: i64,
    pub chunk_no: u32,
    pub attempt: u32,
    pub chunk: Chunk,
    pub rows: u64,
    pub checksum: String,
}

impl Chunk {
    fn from(&self) -> String {
        format!("{}.{}", quote(&self.db), quote(&self.table))
    }

    /// `` WHERE …`` of the chunk (with its parameters), or nothing for a whole table.
    pub(crate) fn range(&self, params: &mut Vec<Value>) -> String {
        let mut parts = Vec::new();
        if let Some(lo) = &self.lo {
            parts.push(bound(&self.key, lo, ">", ">", params));
        }
        if let Some(hi) = &self.hi {
            parts.push(bound(&self.key, hi, "<", "<=", params));
        }
        if parts.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", parts.join(" AND "))
        }
    }

    /// The text each row is hashed from (`reversed`: its columns in the other order):
    /// every column as the server prints it in a session with `SET NAMES binary` and
    /// `time_zone = '+00:00'`, and which are NULL.
    fn row_text(&self, reversed: bool) -> String {
        let mut cols: Vec<String> = self.columns.iter().map(|c| quote(c)).collect();
        let nulls: Vec<String> = cols.iter().map(|c| format!("ISNULL({c})")).collect();
        if reversed {
            cols.reverse();
        }
        format!(
            "CONCAT_WS('#', {}, CONCAT({}))",
            cols.join(", "),
            nulls.join(", ")
        )
    }

    /// A row's 64-bit hash: the CRC32 of its text and of its text in reverse column
    /// order (CRC32 is what servers compute fastest: about as fast as `CHECKSUM TABLE`
    /// reads).
    fn row_hash(&self) -> String {
        format!(
            "((CRC32({}) << 32) | CRC32({}))",
            self.row_text(false),
            self.row_text(true)
        )
    }

    /// `SELECT COUNT(*), <checksum>` of the chunk: the XOR of each row's 64-bit hash.
    /// `lock`: its rows share-locked (the upstream's read, until its request commits).
    pub fn checksum_sql(&self, lock: bool) -> (String, Vec<Value>) {
        let mut params = Vec::new();
        let range = self.range(&mut params);
        let sql = format!(
            "SELECT COUNT(*), CAST(COALESCE(BIT_XOR({}), 0) AS CHAR) FROM {}{range}{}",
            self.row_hash(),
            self.from(),
            if lock { " LOCK IN SHARE MODE" } else { "" }
        );
        (sql, params)
    }

    /// `SELECT <key columns>, <row hash>` of every row of the chunk in key order: what
    /// tells the rows of a differing chunk apart.
    pub fn rows_sql(&self) -> (String, Vec<Value>) {
        let mut params = Vec::new();
        let range = self.range(&mut params);
        let key: Vec<String> = self.key.iter().map(|(c, _)| quote(c)).collect();
        let order = if key.is_empty() {
            String::new()
        } else {
            format!(" ORDER BY {}", key.join(", "))
        };
        let sql = format!(
            "SELECT {}{} FROM {}{range}{order}",
            key.iter().map(|k| format!("{k}, ")).collect::<String>(),
            self.row_hash(),
            self.from(),
        );
        (sql, params)
    }
}

/// `(k1 > ? OR (k1 = ? AND k2 > ?) …)`: rows past (`op`, `last` for the last column)
/// the key values `at`.
fn bound(
    key: &[(String, KeyKind)],
    at: &[String],
    op: &str,
    last: &str,
    params: &mut Vec<Value>,
) -> String {
    let mut ors = Vec::new();
    for i in 0..key.len().min(at.len()) {
        let mut ands = Vec::new();
        for (j, (column, kind)) in key[..i].iter().enumerate() {
            ands.push(format!("{} = ?", quote(column)));
            params.push(kind.param(&at[j]));
        }
        let (column, kind) = &key[i];
        let op = if i + 1 == key.len() { last } else { op };
        ands.push(format!("{} {op} ?", quote(column)));
        params.push(kind.param(&at[i]));
        ors.push(format!("({})", ands.join(" AND ")));
    }
    format!("({})", ors.join(" OR "))
}

impl Verdict {
    /// The INSERT of this verdict as `side` (`request`, `answer`) into `schema`'s
    /// control table; `at` where it was computed.
    pub fn insert(&self, schema: &str, side: &str, at: Option<&str>) -> (String, Vec<Value>) {
        let sql = format!(
            "INSERT INTO {}.{} (run, channel_id, side, chunk, attempt, db_name, tbl_name, \
             columns_json, key_json, lo_json, hi_json, row_count, checksum, at_position) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            quote(schema),
            quote(VERIFY_TABLE)
        );
        let key: Vec<[&str; 2]> = self
            .chunk
            .key
            .iter()
            .map(|(c, k)| [c.as_str(), k.code()])
            .collect();
        let params = vec![
            Value::from(self.run.as_str()),
            Value::Int(self.channel_id),
            Value::from(side),
            Value::UInt(self.chunk_no.into()),
            Value::UInt(self.attempt.into()),
            Value::from(self.chunk.db.as_str()),
            Value::from(self.chunk.table.as_str()),
            Value::from(json(&self.chunk.columns)),
            Value::from(json(&key)),
            self.chunk
                .lo
                .as_ref()
                .map_or(Value::NULL, |v| Value::from(json(v))),
            self.chunk
                .hi
                .as_ref()
                .map_or(Value::NULL, |v| Value::from(json(v))),
            Value::UInt(self.rows),
            Value::from(self.checksum.as_str()),
            at.map_or(Value::NULL, Value::from),
        ];
        (sql, params)
    }

    /// A request read back from the upstream's binlog (the control table's row image),
    /// `None` for an answer or a row it cannot read.
    pub fn from_cells(cells: &[Cell]) -> Option<Verdict> {
        let text = |i: usize| match cells.get(i)? {
            Cell::Bytes(b) => String::from_utf8(b.to_vec()).ok(),
            _ => None,
        };
        let int = |i: usize| cells.get(i)?.as_signed();
        if text(3)? != "request" {
            return None;
        }
        let list = |i: usize| -> Option<Option<Vec<String>>> {
            match cells.get(i)? {
                Cell::Null => Some(None),
                _ => serde_json::from_str(&text(i)?).ok().map(Some),
            }
        };
        let key: Vec<[String; 2]> = serde_json::from_str(&text(9)?).ok()?;
        let key = key
            .into_iter()
            .map(|[c, k]| Some((c, KeyKind::of_code(&k)?)))
            .collect::<Option<Vec<_>>>()?;
        Some(Verdict {
            run: text(1)?,
            channel_id: int(2)?,
            chunk_no: u32::try_from(int(4)?).ok()?,
            attempt: u32::try_from(int(5)?).ok()?,
            chunk: Chunk {
                db: text(6)?,
                table: text(7)?,
                columns: serde_json::from_str(&text(8)?).ok()?,
                key,
                lo: list(10)?,
                hi: list(11)?,
            },
            rows: u64::try_from(int(12)?).ok()?,
            checksum: text(13)?,
        })
    }
}

/// `value` as JSON text.
fn json<T: serde::Serialize + ?Sized>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(key: &[(&str, KeyKind)], lo: Option<&[&str]>, hi: Option<&[&str]>) -> Chunk {
        let list = |v: Option<&[&str]>| v.map(|v| v.iter().map(|s| s.to_string()).collect());
        Chunk {
            db: "app".into(),
            table: "t".into(),
            columns: vec!["a".into(), "b".into()],
            key: key.iter().map(|(c, k)| (c.to_string(), *k)).collect(),
            lo: list(lo),
            hi: list(hi),
        }
    }

    #[test]
    fn a_chunk_is_a_key_range_hashed_row_by_row() {
        let one = chunk(&[("a", KeyKind::Signed)], Some(&["10"]), Some(&["20"]));
        let (sql, params) = one.checksum_sql(true);
        assert_eq!(
            sql,
            "SELECT COUNT(*), CAST(COALESCE(BIT_XOR(((CRC32(CONCAT_WS('#', `a`, `b`, \
             CONCAT(ISNULL(`a`), ISNULL(`b`)))) << 32) | CRC32(CONCAT_WS('#', `b`, `a`, \
             CONCAT(ISNULL(`a`), ISNULL(`b`)))))), 0) AS CHAR) \
             FROM `app`.`t` WHERE ((`a` > ?)) AND ((`a` <= ?)) LOCK IN SHARE MODE"
        );
        assert_eq!(params, [Value::Int(10), Value::Int(20)]);
        let two = chunk(
            &[("a", KeyKind::Signed), ("b", KeyKind::Text)],
            Some(&["1", "x"]),
            None,
        );
        let (sql, params) = two.rows_sql();
        assert!(
            sql.ends_with("WHERE ((`a` > ?) OR (`a` = ? AND `b` > ?)) ORDER BY `a`, `b`"),
            "{sql}"
        );
        assert_eq!(params.len(), 3);
        let whole = chunk(&[], None, None);
        assert!(whole.checksum_sql(false).0.ends_with("FROM `app`.`t`"));
    }

    #[test]
    fn a_request_reads_back_from_its_row_image() {
        let v = Verdict {
            run: "r1".into(),
            channel_id: 3,
            chunk_no: 7,
            attempt: 1,
            chunk: chunk(&[("a", KeyKind::Unsigned)], None, Some(&["99"])),
            rows: 12,
            checksum: "123".into(),
        };
        let (_, params) = v.insert("retl", "request", None);
        // The row image as the binlog has it: the id first, then the values.
        let mut cells = vec![Cell::Int { bits: 1, bytes: 8 }];
        for p in params {
            cells.push(match p {
                Value::Int(i) => Cell::Int {
                    bits: i as u64,
                    bytes: 8,
                },
                Value::UInt(u) => Cell::Int { bits: u, bytes: 8 },
                Value::Bytes(b) => Cell::Bytes(b.into()),
                _ => Cell::Null,
            });
        }
        assert_eq!(Verdict::from_cells(&cells), Some(v));
        cells[3] = Cell::Bytes("answer".as_bytes().to_vec().into());
        assert_eq!(Verdict::from_cells(&cells), None);
    }
}
