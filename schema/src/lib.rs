//! # schema: table definitions at every binlog position
//!
//! Binlog row events carry values by position, usually without column names. This crate
//! owns what each replicated table looked like at every position: the table model
//! ([`Table`]: columns with types, charsets, nullability, defaults, generated or not; the
//! primary, unique and other keys), and the [`Catalog`] of tracked tables that DDL
//! statements change.
//!
//! ## DDL
//! [`Catalog::apply_filtered`] takes a statement, its `USE` context and the replication
//! filter (statements about tables outside it change nothing). ALTER TABLE follows
//! MariaDB's semantics: specs name columns as they were before the statement (so a
//! `CHANGE a b …, CHANGE b a …` swap comes out right), positions and new keys use the new
//! names, existing keys follow their columns. Statements are tokenized
//! with sqlparser's tokenizer (comments, quoting and MariaDB's executable comments handled
//! there), classified by their leading keywords ([`Class`]), and applied: statement forms,
//! ALTER specs and keys are read from the tokens, and each column definition is parsed by
//! sqlparser. The MariaDB forms sqlparser rejects are handled here: ZEROFILL,
//! PERSISTENT, PARTITION BY, `IF [NOT] EXISTS` in ALTER specs, DROP KEY, RENAME INDEX,
//! option-only ALTERs (any spec that is no column or key change is a table option:
//! `STORAGE DISK`, `ENGINE=…`), ALTER ONLINE TABLE, `SERIAL DEFAULT VALUE`. The index InnoDB
//! makes for a foreign key is tracked as the server names it. System versioning gives a
//! table its period columns (the server's implicit `row_start` and `row_end` last, or the
//! declared ones; [`Table::versioning`]); a sequence is a table of the server's eight
//! columns ([`Table::sequence`]). A statement is read in the SQL mode it was written in
//! ([`SqlMode`]: `ANSI_QUOTES`, `NO_BACKSLASH_ESCAPES`). Statements that change no table
//! (GRANT, CREATE USER, OPTIMIZE, TRUNCATE, …) are classified and change nothing; views,
//! triggers, routines and events are classified with the objects they name
//! ([`Applied::objects`]). A statement the tracker cannot apply is a [`DdlError`] naming
//! it; it is never passed over silently. The model is checked against a real server's
//! `SHOW CREATE TABLE` statement by statement (`tests/follows_server.rs`).
//!
//! [`rename`] gives a statement the names a downstream has for its schemas and tables
//! (`[[syncer.route]]`), spliced into its own text; a statement whose names it cannot
//! find and that may name a routed one is refused, never run under the wrong name.
//!
//! ## Rows
//! [`decode_row`] turns a raw row image from pump-reader, with the definition in force at
//! its position, into typed [`Value`]s. The corrections the binlog alone cannot make live
//! there: signedness, MEDIUMINT sign, BINARY/UUID/INET6 padding, ENUM/SET names. Every
//! column's TABLE_MAP layout must fit its tracked type ([`check_layout`]: widths,
//! precision, byte lengths, sizes), so a wrong model stops replication instead of
//! decoding quietly wrong values; a row with another column count is a [`RowError`]
//! naming the table and both column lists.
//! [`cross_check`] compares a TABLE_MAP's full metadata (names, signedness) with the
//! definition: other signedness is corrected (the binlog wins), other names stop.
//!
//! ## History and bootstrap
//! [`History`] keeps the catalog as of the last change and records each change, with the
//! position where it took effect, in the checkpoint store (`schema/<sequence>`, versioned
//! JSON): only the tables a statement changed, never a copy of every table. Loading up to
//! a position replays what was in force there, also after a restart. The first entry is
//! the bootstrap: [`read_upstream`] reads `SHOW CREATE DATABASE` / `SHOW CREATE TABLE`
//! from the upstream, applied with the same code as any DDL, so both paths agree.
//! The drainer stages a transaction's statements ([`History::stage`]: in force at once,
//! so later rows of the transaction decode with them) and records them at its commit
//! position ([`History::commit_staged`]), or undoes them ([`History::discard_staged`]).
//!
//! A statement the tracker cannot apply stops replication with [`HistoryError::Ddl`] (the
//! statement and its position); [`History::skip`] records an operator's decision to pass
//! over it (the drainer's `[syncer] skip-ddl` asks for it, through
//! [`History::stage_skip`]). `drainer schema show` prints the definitions at the
//! checkpoint ([`History::at`]).

mod bootstrap;
mod ddl;
mod decode;
mod history;
mod model;

pub use bootstrap::{read_upstream, SYSTEM as SYSTEM_SCHEMAS};
pub use ddl::rename::{rename, Rename, Routes};
pub use ddl::{
    past_quoted, Applied, Catalog, Class, Database, DdlError, Object, ObjectKind, SqlMode,
};
pub use decode::{check_layout, cross_check, decode_row, RowError, Value};
pub use history::{History, HistoryError, Snapshot};
pub use model::{Column, ColumnType, Generated, Index, LobSize, Period, Table, Versioning};
