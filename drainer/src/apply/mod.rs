//! Applying upstream transactions downstream, in layers: nothing here knows the pipeline.
//!
//! - [`changes`]: the decoded row changes of a transaction; [`values`] turns their typed
//!   values into exact parameters, [`sql`] the statements of one row change or of
//!   several rows, [`binlog`] replays a row event as it was written (system-versioned
//!   tables, tables with triggers downstream), and [`build`] a transaction's statements
//!   against the downstream's columns, joining rows whose keys allow it.
//! - [`downstream`]: the session that runs them (transactions, XA, DDL in its session
//!   context, the downstream's own columns, foreign keys and triggers, the mark and the
//!   apply record).
//! - [`applier`]: applies one downstream transaction, sorting every failure through
//!   [`policy`]; [`ctx`] is where every applier reports.
//! - [`workers`]: apply transactions in parallel, in causal order, by the conflict
//!   [`keys`] of their rows.
//! - [`conflict`]: two writers' conflicts (`[syncer.conflict]`): checked statements, the
//!   kinds and policies, the record; the session settles them (`downstream::settle`).

pub mod applier;
pub mod binlog;
pub mod build;
pub mod changes;
pub mod conflict;
pub mod ctx;
pub mod downstream;
pub mod keys;
pub mod policy;
pub mod sql;
pub mod values;
pub mod workers;

/// `sql` (a CREATE TABLE) as the schema history models it, in database `app`.
#[cfg(test)]
pub(crate) fn test_table(sql: &str) -> std::sync::Arc<schema::Table> {
    let mut catalog = schema::Catalog::new();
    catalog.apply("", "CREATE DATABASE app").unwrap();
    let changed = catalog.apply("app", sql).unwrap();
    std::sync::Arc::new(changed.tables[0].1.clone().unwrap())
}
