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
    /// `WITH SYSTEM VERSIONING`: its rows carry their row start and end (see
    /// [`Column::period`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub versioning: Option<Versioning>,
    /// A SEQUENCE: a one-row table whose row every `NEXTVAL` may rewrite.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub sequence: bool,
}

/// How a system-versioned table got its row start and end columns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Versioning {
    /// `row_start` and `row_end`, made by the server (invisible, always the last two
    /// columns: a column added later goes before them).
    Implicit,
    /// Columns the statement declared `GENERATED ALWAYS AS ROW START / END`.
    Explicit,
}

/// The row start or end of a system-versioned table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Period {
    RowStart,
    RowEnd,
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
    /// `GENERATED ALWAYS AS ROW START / END` of a system-versioned table.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub period: Option<Period>,
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

impl Column {
    /// A column of type `ty`: nullable, no default, stored, visible, in no charset.
    pub fn new(name: &str, ty: ColumnType) -> Column {
        Column {
            name: name.to_owned(),
            ty,
            nullable: true,
            default: None,
            generated: None,
            charset: None,
            collation: None,
            invisible: false,
            period: None,
        }
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

fn quote(name: &str) -> String {
    format!("`{}`", name.replace('`', "``"))
}

fn quote_str(s: &str) -> String {
    format!("'{}'", s.replace('\\', "\\\\").replace('\'', "''"))
}

impl std::fmt::Display for ColumnType {
    /// The type as MariaDB spells it (`int unsigned`, `varchar(20)`, `enum('a','b')`).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let sign = |u: bool| if u { " unsigned" } else { "" };
        let lob = |size: LobSize, base: &str| match size {
            LobSize::Tiny => format!("tiny{base}"),
            LobSize::Regular => base.to_owned(),
            LobSize::Medium => format!("medium{base}"),
            LobSize::Long => format!("long{base}"),
        };
        let members = |m: &[String]| m.iter().map(|s| quote_str(s)).collect::<Vec<_>>().join(",");
        let fsp = |p: u8| {
            if p > 0 {
                format!("({p})")
            } else {
                String::new()
            }
        };
        match self {
            ColumnType::Int { bytes, unsigned } => {
                let name = match bytes {
                    1 => "tinyint",
                    2 => "smallint",
                    3 => "mediumint",
                    4 => "int",
                    _ => "bigint",
                };
                write!(f, "{name}{}", sign(*unsigned))
            }
            ColumnType::Decimal {
                precision,
                scale,
                unsigned,
            } => write!(f, "decimal({precision},{scale}){}", sign(*unsigned)),
            ColumnType::Float { unsigned } => write!(f, "float{}", sign(*unsigned)),
            ColumnType::Double { unsigned } => write!(f, "double{}", sign(*unsigned)),
            ColumnType::Bit { bits } => write!(f, "bit({bits})"),
            ColumnType::Year => f.write_str("year"),
            ColumnType::Date => f.write_str("date"),
            ColumnType::Time { fsp: p } => write!(f, "time{}", fsp(*p)),
            ColumnType::DateTime { fsp: p } => write!(f, "datetime{}", fsp(*p)),
            ColumnType::Timestamp { fsp: p } => write!(f, "timestamp{}", fsp(*p)),
            ColumnType::Char { chars } => write!(f, "char({chars})"),
            ColumnType::VarChar { chars } => write!(f, "varchar({chars})"),
            ColumnType::Binary { bytes } => write!(f, "binary({bytes})"),
            ColumnType::VarBinary { bytes } => write!(f, "varbinary({bytes})"),
            ColumnType::Text { size } => f.write_str(&lob(*size, "text")),
            ColumnType::Blob { size } => f.write_str(&lob(*size, "blob")),
            ColumnType::Json => f.write_str("json"),
            ColumnType::Enum { members: m } => write!(f, "enum({})", members(m)),
            ColumnType::Set { members: m } => write!(f, "set({})", members(m)),
            ColumnType::Uuid => f.write_str("uuid"),
            ColumnType::Inet4 => f.write_str("inet4"),
            ColumnType::Inet6 => f.write_str("inet6"),
            ColumnType::Geometry { kind } => f.write_str(kind),
        }
    }
}

impl Table {
    /// The definition as a CREATE TABLE statement (what the tracker knows: generated
    /// columns show as such, without their expression).
    pub fn create_statement(&self) -> String {
        let mut lines = Vec::new();
        for c in &self.columns {
            let mut line = format!("  {} {}", quote(&c.name), c.ty);
            if let (Some(cs), true) = (&c.charset, c.ty.is_text()) {
                line.push_str(&format!(" CHARACTER SET {cs}"));
                if let Some(coll) = &c.collation {
                    line.push_str(&format!(" COLLATE {coll}"));
                }
            }
            match (c.period, c.generated) {
                (Some(Period::RowStart), _) => line.push_str(" GENERATED ALWAYS AS ROW START"),
                (Some(Period::RowEnd), _) => line.push_str(" GENERATED ALWAYS AS ROW END"),
                (None, Some(Generated::Virtual)) => line.push_str(" /* generated */ VIRTUAL"),
                (None, Some(Generated::Stored)) => line.push_str(" /* generated */ STORED"),
                (None, None) => {}
            }
            line.push_str(if c.nullable { " NULL" } else { " NOT NULL" });
            if let Some(d) = &c.default {
                line.push_str(&format!(" DEFAULT {d}"));
            }
            if c.invisible {
                line.push_str(" INVISIBLE");
            }
            lines.push(line);
        }
        let cols = |i: &Index| {
            i.columns
                .iter()
                .map(|c| quote(c))
                .collect::<Vec<_>>()
                .join(",")
        };
        if let Some(pk) = &self.primary_key {
            lines.push(format!("  PRIMARY KEY ({})", cols(pk)));
        }
        for k in &self.unique_keys {
            lines.push(format!("  UNIQUE KEY {} ({})", quote(&k.name), cols(k)));
        }
        for k in &self.indexes {
            lines.push(format!("  KEY {} ({})", quote(&k.name), cols(k)));
        }
        let mut sql = format!(
            "CREATE TABLE {}.{} (\n{}\n)",
            quote(&self.schema),
            quote(&self.name),
            lines.join(",\n")
        );
        if let Some(cs) = &self.charset {
            sql.push_str(&format!(" DEFAULT CHARSET={cs}"));
            if let Some(coll) = &self.collation {
                sql.push_str(&format!(" COLLATE={coll}"));
            }
        }
        if self.sequence {
            sql.push_str(" SEQUENCE=1");
        }
        if self.versioning.is_some() {
            sql.push_str(" WITH SYSTEM VERSIONING");
        }
        sql
    }

    /// The columns of an implicit row start and end, as the server makes them.
    pub fn implicit_period() -> [Column; 2] {
        let column = |name: &str, period| Column {
            nullable: false,
            generated: Some(Generated::Stored),
            invisible: true,
            period: Some(period),
            ..Column::new(name, ColumnType::Timestamp { fsp: 6 })
        };
        [
            column("row_start", Period::RowStart),
            column("row_end", Period::RowEnd),
        ]
    }
}
