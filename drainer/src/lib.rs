//! # drainer (library): the parts of the `drainer` binary that are more than wiring
//!
//! The binary (`main.rs`) reads the command line and wires the crates together. What it
//! applies lives here, so it can be tested on its own:
//! [`apply`] turns typed row changes into downstream statements with exact parameters;
//! [`pipeline`] runs one direction end to end; [`status`] keeps what it does for
//! `GET /status` and [`metrics`] for `GET /metrics`, which [`http`] serves; [`failpoint`] holds the crash points the tests use (they act only
//! in a build with the `failpoints` feature; any other build refuses `DRAINER_FAILPOINT`).

pub mod apply;
pub mod error;
pub mod failpoint;
pub mod http;
pub mod metrics;
pub mod pipeline;
pub mod status;
