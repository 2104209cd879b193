//! # schema: table definitions at every binlog position
//!
//! Binlog row events carry values by position, usually without column names. This crate
//! owns what each replicated table looked like at every position: the table model
//! ([`Table`]: columns with types, charsets, nullability, defaults, generated or not; the
//! primary, unique and other keys), and the [`Catalog`] of tracked tables that DDL
//! statements change.
//!
//! ## DDL
//! [`Catalog::apply`] takes a statement and its `USE` context. Statements are tokenized
//! with sqlparser's tokenizer (comments, quoting and MariaDB's executable comments handled
//! there), classified by their leading keywords ([`Class`]), and applied: statement forms,
//! ALTER specs and keys are read from the tokens, and each column definition is parsed by
//! sqlparser. The MariaDB forms sqlparser rejects are handled here: ZEROFILL,
//! PERSISTENT, PARTITION BY, `IF [NOT] EXISTS` in ALTER specs, DROP KEY, RENAME INDEX,
//! option-only ALTERs, ALTER ONLINE TABLE. Statements that change no table (GRANT,
//! CREATE USER, views, triggers, routines, OPTIMIZE, TRUNCATE, …) are classified and
//! change nothing. A statement the tracker cannot apply is a [`DdlError`] naming it; it
//! is never passed over silently.
//!
//! Status (issue 4): the model and DDL tracking are here. Bootstrap from the upstream,
//! the history per position in RocksDB, typed row decoding, the TABLE_MAP cross-check and
//! `drainer schema show` are not built yet.

mod ddl;
mod model;

pub use ddl::{Applied, Catalog, Class, Database, DdlError};
pub use model::{Column, ColumnType, Generated, Index, LobSize, Table};
