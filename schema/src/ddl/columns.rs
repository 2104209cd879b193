//! Column definitions: sqlparser's data types and options to the model's.

use sqlparser::ast::{
    CharacterLength, ColumnDef, ColumnOption, DataType, ExactNumberInfo, GeneratedExpressionMode,
    ObjectName,
};

use crate::model::{Column, ColumnType, Generated, LobSize};

/// A column from its definition. `unsigned_hint` is set when the statement said UNSIGNED
/// (or ZEROFILL) in a place sqlparser does not fold into the type.
pub(crate) fn column(def: &ColumnDef) -> Result<Column, String> {
    column_from(
        &def.name.value,
        &def.data_type,
        def.options.iter().map(|o| &o.option),
    )
}

/// A column from a name, a type and options (MODIFY/CHANGE give options without names).
pub(crate) fn column_from<'a>(
    name: &str,
    data_type: &DataType,
    options: impl Iterator<Item = &'a ColumnOption>,
) -> Result<Column, String> {
    let ty = column_type(data_type).map_err(|e| format!("column `{name}`: {e}"))?;
    // Nullable: TIMESTAMP is NOT NULL unless said otherwise only with
    // explicit_defaults_for_timestamp=OFF; MariaDB 10.11 defaults to ON.
    let mut column = Column::new(name, ty);
    for option in options {
        match option {
            ColumnOption::NotNull => column.nullable = false,
            ColumnOption::Null => column.nullable = true,
            ColumnOption::Default(expr) => column.default = Some(expr.to_string()),
            ColumnOption::CharacterSet(name) => column.charset = Some(object_name(name)),
            ColumnOption::Collation(name) => column.collation = Some(object_name(name)),
            ColumnOption::Invisible => column.invisible = true,
            ColumnOption::PrimaryKey(_) => column.nullable = false,
            ColumnOption::Generated {
                generation_expr: Some(_),
                generation_expr_mode,
                ..
            } => {
                column.generated = Some(match generation_expr_mode {
                    Some(GeneratedExpressionMode::Stored) => Generated::Stored,
                    _ => Generated::Virtual,
                })
            }
            _ => {}
        }
    }
    column.charset = column.charset.as_deref().map(normal_charset);
    column.collation = column.collation.as_deref().map(normal_collation);
    if column.collation.is_some() && column.charset.is_none() {
        column.charset = column.collation.as_deref().map(charset_of_collation);
    }
    // NCHAR and NVARCHAR are always utf8mb3.
    let national = matches!(data_type, DataType::Nvarchar(_))
        || matches!(data_type, DataType::Custom(name, _) if object_name(name).eq_ignore_ascii_case("nchar"));
    if national && column.charset.is_none() {
        column.charset = Some("utf8mb3".into());
    }
    // A text type in the binary charset is a binary type.
    if column.charset.as_deref() == Some("binary") {
        column.ty = match column.ty {
            ColumnType::Char { chars } => ColumnType::Binary { bytes: chars },
            ColumnType::VarChar { chars } => ColumnType::VarBinary { bytes: chars },
            ColumnType::Text { size } => ColumnType::Blob { size },
            other => other,
        };
    }
    if !column.ty.is_text() {
        column.charset = None;
        column.collation = None;
    }
    Ok(column)
}

/// The character set a collation belongs to (`latin1_swedish_ci` → `latin1`; `binary`).
pub(crate) fn charset_of_collation(collation: &str) -> String {
    let lower = normal_collation(collation);
    match lower.split_once('_') {
        Some((cs, _)) => cs.to_owned(),
        None => lower,
    }
}

/// A charset name as MariaDB 10.6+ reports it: lower case, `utf8` as `utf8mb3`.
pub(crate) fn normal_charset(name: &str) -> String {
    match name.to_ascii_lowercase().as_str() {
        "utf8" => "utf8mb3".into(),
        other => other.to_owned(),
    }
}

/// A collation name, lower case, `utf8_…` as `utf8mb3_…`.
pub(crate) fn normal_collation(name: &str) -> String {
    let lower = name.to_ascii_lowercase();
    match lower.strip_prefix("utf8_") {
        Some(rest) => format!("utf8mb3_{rest}"),
        None => lower,
    }
}

pub(crate) fn object_name(name: &ObjectName) -> String {
    name.to_string().trim_matches('`').to_owned()
}

fn char_len(len: &Option<CharacterLength>, default: u32) -> Result<u32, String> {
    match len {
        None => Ok(default),
        Some(CharacterLength::IntegerLength { length, .. }) => {
            u32::try_from(*length).map_err(|_| format!("length {length} is too large"))
        }
        Some(CharacterLength::Max) => Err("MAX is not a MariaDB length".into()),
    }
}

fn decimal(info: &ExactNumberInfo, unsigned: bool) -> Result<ColumnType, String> {
    let (precision, scale) = match info {
        ExactNumberInfo::None => (10, 0),
        ExactNumberInfo::Precision(p) => (*p, 0),
        ExactNumberInfo::PrecisionAndScale(p, s) => {
            (*p, u64::try_from(*s).map_err(|_| format!("scale {s}"))?)
        }
    };
    if precision == 0 || precision > 65 || scale > 38 || scale > precision {
        return Err(format!("DECIMAL({precision},{scale}) is out of range"));
    }
    Ok(ColumnType::Decimal {
        precision: precision as u8,
        scale: scale as u8,
        unsigned,
    })
}

fn fsp(p: &Option<u64>) -> Result<u8, String> {
    match p {
        None => Ok(0),
        Some(n @ 0..=6) => Ok(*n as u8),
        Some(n) => Err(format!("fractional seconds precision {n} is above 6")),
    }
}

/// FLOAT(p) with p above 24 is a DOUBLE; FLOAT(M,D) stays a FLOAT.
fn float(info: &ExactNumberInfo, unsigned: bool) -> ColumnType {
    match info {
        ExactNumberInfo::Precision(p) if *p > 24 => ColumnType::Double { unsigned },
        _ => ColumnType::Float { unsigned },
    }
}

pub(crate) fn column_type(dt: &DataType) -> Result<ColumnType, String> {
    use DataType as D;
    let int = |bytes: u8, unsigned: bool| Ok(ColumnType::Int { bytes, unsigned });
    match dt {
        D::TinyInt(_) | D::Bool | D::Boolean => int(1, false),
        D::TinyIntUnsigned(_) => int(1, true),
        D::SmallInt(_) => int(2, false),
        D::SmallIntUnsigned(_) => int(2, true),
        D::MediumInt(_) => int(3, false),
        D::MediumIntUnsigned(_) => int(3, true),
        D::Int(_) | D::Integer(_) => int(4, false),
        D::IntUnsigned(_) | D::IntegerUnsigned(_) => int(4, true),
        D::BigInt(_) => int(8, false),
        D::BigIntUnsigned(_) => int(8, true),
        D::Decimal(i) | D::Numeric(i) | D::Dec(i) => decimal(i, false),
        D::DecimalUnsigned(i) | D::DecUnsigned(i) => decimal(i, true),
        D::Float(i) => Ok(float(i, false)),
        D::FloatUnsigned(i) => Ok(float(i, true)),
        D::Double(_) | D::DoublePrecision | D::Real => Ok(ColumnType::Double { unsigned: false }),
        D::DoubleUnsigned(_) | D::DoublePrecisionUnsigned | D::RealUnsigned => {
            Ok(ColumnType::Double { unsigned: true })
        }
        D::Bit(n) => match n.unwrap_or(1) {
            bits @ 1..=64 => Ok(ColumnType::Bit { bits: bits as u16 }),
            bits => Err(format!("BIT({bits}) is out of range")),
        },
        D::Date => Ok(ColumnType::Date),
        D::Time(p, _) => Ok(ColumnType::Time { fsp: fsp(p)? }),
        D::Datetime(p) => Ok(ColumnType::DateTime { fsp: fsp(p)? }),
        D::Timestamp(p, _) => Ok(ColumnType::Timestamp { fsp: fsp(p)? }),
        D::Char(n) | D::Character(n) => Ok(ColumnType::Char {
            chars: char_len(n, 1)?,
        }),
        D::Varchar(n) | D::CharacterVarying(n) | D::CharVarying(n) | D::Nvarchar(n) => {
            Ok(ColumnType::VarChar {
                chars: char_len(n, 0)?,
            })
        }
        D::Binary(n) => Ok(ColumnType::Binary {
            bytes: n.unwrap_or(1) as u32,
        }),
        D::Varbinary(n) => Ok(ColumnType::VarBinary {
            bytes: match n {
                Some(sqlparser::ast::BinaryLength::IntegerLength { length }) => *length as u32,
                _ => return Err("VARBINARY needs a length".into()),
            },
        }),
        D::TinyText => Ok(ColumnType::Text {
            size: LobSize::Tiny,
        }),
        D::Text => Ok(ColumnType::Text {
            size: LobSize::Regular,
        }),
        D::MediumText => Ok(ColumnType::Text {
            size: LobSize::Medium,
        }),
        D::LongText => Ok(ColumnType::Text {
            size: LobSize::Long,
        }),
        D::TinyBlob => Ok(ColumnType::Blob {
            size: LobSize::Tiny,
        }),
        D::Blob(None) => Ok(ColumnType::Blob {
            size: LobSize::Regular,
        }),
        // BLOB(n): the smallest BLOB that holds n bytes.
        D::Blob(Some(n)) => Ok(ColumnType::Blob {
            size: super::alter::lob_for(u32::try_from(*n).unwrap_or(u32::MAX)),
        }),
        D::MediumBlob => Ok(ColumnType::Blob {
            size: LobSize::Medium,
        }),
        D::LongBlob => Ok(ColumnType::Blob {
            size: LobSize::Long,
        }),
        D::JSON => Ok(ColumnType::Json),
        D::Enum(members, _) => Ok(ColumnType::Enum {
            members: members
                .iter()
                .map(|m| match m {
                    sqlparser::ast::EnumMember::Name(n) => n.clone(),
                    sqlparser::ast::EnumMember::NamedValue(n, _) => n.clone(),
                })
                .collect(),
        }),
        D::Set(members) => Ok(ColumnType::Set {
            members: members.clone(),
        }),
        D::Uuid => Ok(ColumnType::Uuid),
        D::Custom(name, args) => custom(&object_name(name).to_ascii_lowercase(), args),
        other => Err(format!(
            "the type {other} is not a MariaDB column type this tracker knows"
        )),
    }
}

/// Types sqlparser leaves as names: YEAR, INET4/6, geometry, NCHAR, and a few aliases.
fn custom(name: &str, args: &[String]) -> Result<ColumnType, String> {
    let arg = |default: u32| -> Result<u32, String> {
        match args.first() {
            None => Ok(default),
            Some(a) => a.parse().map_err(|_| format!("{name}({a})")),
        }
    };
    match name {
        "year" => Ok(ColumnType::Year),
        // TEXT(n): the smallest TEXT that holds n (counted here as bytes).
        "text" => Ok(ColumnType::Text {
            size: super::alter::lob_for(arg(65_535)?),
        }),
        "inet4" => Ok(ColumnType::Inet4),
        "inet6" => Ok(ColumnType::Inet6),
        "nchar" | "national char" => Ok(ColumnType::Char { chars: arg(1)? }),
        "geometry" | "point" | "linestring" | "polygon" | "multipoint" | "multilinestring"
        | "multipolygon" | "geometrycollection" => Ok(ColumnType::Geometry {
            kind: name.to_owned(),
        }),
        "int1" => Ok(ColumnType::Int {
            bytes: 1,
            unsigned: false,
        }),
        "int3" | "middleint" => Ok(ColumnType::Int {
            bytes: 3,
            unsigned: false,
        }),
        "fixed" => decimal(
            &match args {
                [p] => ExactNumberInfo::Precision(p.parse().map_err(|_| format!("FIXED({p})"))?),
                [p, s] => ExactNumberInfo::PrecisionAndScale(
                    p.parse().map_err(|_| format!("FIXED({p},{s})"))?,
                    s.parse().map_err(|_| format!("FIXED({p},{s})"))?,
                ),
                _ => ExactNumberInfo::None,
            },
            false,
        ),
        other => Err(format!("unknown column type `{other}`")),
    }
}
