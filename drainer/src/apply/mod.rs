//! The applier: upstream row changes to downstream statements.
//!
//! [`values`] turns typed values into exact parameters; [`sql`] builds the statements of a
//! row change or of several rows; [`binlog`] replays a row event as it was written
//! (system-versioned tables, tables with triggers downstream); [`changes`] builds a
//! transaction's statements against the downstream's columns, joining rows whose keys
//! allow it; [`downstream`] is the session that runs them (transactions, XA, DDL in its
//! session context, the downstream's own column lists and triggers, the mark and the
//! apply record); [`keys`] says which row changes touch the same rows; [`policy`] decides what a failed downstream transaction means for all
//! of them; [`workers`] applies transactions in parallel, in causal order.

pub mod applier;
pub mod binlog;
pub mod changes;
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
