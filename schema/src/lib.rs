//! # schema: table definitions at every binlog position
//!
//! Binlog row events carry values by position, usually without column names. This crate
//! owns what each replicated table looked like at every position: the table model
//! (columns, types, keys), its bootstrap from the upstream (`SHOW CREATE TABLE`), DDL
//! applied with `sqlparser` (and MariaDB's dialect where sqlparser stops), the history of
//! changes saved through `checkpoint`, and decoding raw row images into named, correctly
//! typed values.
//!
//! Status: not implemented yet (issue 4). The crate exists so the workspace has its final
//! shape; it exports nothing.
