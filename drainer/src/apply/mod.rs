//! The applier: upstream row changes to downstream statements.
//!
//! [`values`] turns typed values into exact parameters; [`sql`] builds the statements of a
//! row change. The transaction loop, the downstream table cache, sync modes and safe mode
//! at start-up come with the rest of the pipeline (issue 5).

pub mod sql;
pub mod values;
