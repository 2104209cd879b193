//! The table model: what a table looked like at one position.

use serde::{Deserialize, Serialize};

/// A table definition: columns in order (as row images list them), and its keys.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Table {
    pub schema: String,
    pub name: String,
    pub columns: Vec<Column>,
    pub primary_key: Option<Index>,
    /// UNIQUE keys, in definition order.
    pub unique_keys: Vec<Index>,
    /// Other indexes (tracked so DROP/RENAME INDEX can tell them from unique keys).
    pub indexes: Vec<Index>,
    /// The table's default character set and collation (`DEFAULT CHARSET=`), inherited by
    /// text columns that name none.
    pub charset: Option<String>,
    pub collation: Option<String>,
}

/// A key or index: its name and its columns (a prefix length is not kept).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Index {
    pub name: String,
    pub columns: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Column {
    pub name: String,
    pub ty: ColumnType,
    pub nullable: bool,
    /// The DEFAULT expression as SQL text, when there is one.
    pub default: Option<String>,
    pub generated: Option<Generated>,
    /// Character set and collation of a text column (explicit, else the table's default).
    pub charset: Option<String>,
    pub collation: Option<String>,
    /// MariaDB's INVISIBLE: hidden from `SELECT *`, present in row images.
    pub invisible: bool,
}

/// A generated column: VIRTUAL (computed on read) or STORED (MariaDB also says PERSISTENT).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Generated {
    Virtual,
    Stored,
}

/// Size class of TEXT and BLOB columns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum LobSize {
    Tiny,
    Regular,
    Medium,
    Long,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ColumnType {
    /// TINYINT (1 byte) … BIGINT (8 bytes); BOOLEAN is TINYINT(1).
    Int {
        bytes: u8,
        unsigned: bool,
    },
    Decimal {
        precision: u8,
        scale: u8,
        unsigned: bool,
    },
    Float {
        unsigned: bool,
    },
    Double {
        unsigned: bool,
    },
    Bit {
        bits: u16,
    },
    Year,
    Date,
    Time {
        fsp: u8,
    },
    DateTime {
        fsp: u8,
    },
    Timestamp {
        fsp: u8,
    },
    /// CHAR(n) / VARCHAR(n): `n` characters, in the column's charset.
    Char {
        chars: u32,
    },
    VarChar {
        chars: u32,
    },
    /// BINARY(n) / VARBINARY(n): `n` bytes.
    Binary {
        bytes: u32,
    },
    VarBinary {
        bytes: u32,
    },
    Text {
        size: LobSize,
    },
    Blob {
        size: LobSize,
    },
    /// MySQL's JSON; MariaDB's JSON is LONGTEXT with a CHECK and is kept as `Text`.
    Json,
    Enum {
        members: Vec<String>,
    },
    Set {
        members: Vec<String>,
    },
    Uuid,
    Inet4,
    Inet6,
    /// GEOMETRY, POINT, LINESTRING, POLYGON, MULTI…, GEOMETRYCOLLECTION.
    Geometry {
        kind: String,
    },
}

impl ColumnType {
    /// Whether values are text in a character set (CHAR, VARCHAR, TEXT, ENUM, SET).
    pub fn is_text(&self) -> bool {
        matches!(
            self,
            ColumnType::Char { .. }
                | ColumnType::VarChar { .. }
                | ColumnType::Text { .. }
                | ColumnType::Enum { .. }
                | ColumnType::Set { .. }
        )
    }
}

impl Table {
    /// The column named `name` (column names are case-insensitive).
    pub fn column(&self, name: &str) -> Option<(usize, &Column)> {
        self.columns
            .iter()
            .enumerate()
            .find(|(_, c)| c.name.eq_ignore_ascii_case(name))
    }

    /// `schema.table`.
    pub fn qualified(&self) -> String {
        format!("{}.{}", self.schema, self.name)
    }
}
