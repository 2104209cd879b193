//! The applier: upstream row changes to downstream statements.
//!
//! [`values`] turns typed values into exact parameters; [`sql`] builds the statements of a
//! row change; [`downstream`] is the session that runs them (transactions with retries,
//! DDL, the downstream's own column lists).

pub mod downstream;
pub mod sql;
pub mod values;
