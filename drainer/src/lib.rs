//! # drainer (library): the parts of the `drainer` binary that are more than wiring
//!
//! The binary (`main.rs`) reads the command line and wires the crates together. What it
//! runs lives here, so it can be tested on its own (docs/architecture.md follows one
//! transaction through it):
//!
//! - [`pipeline`] runs one direction: the loop, the transaction being read, where to
//!   resume, the checkpoint; it gives rows and DDL their downstream names
//!   (`[[syncer.route]]`, with `schema::rename` for the DDL text);
//! - [`apply`] applies transactions downstream (statements with exact parameters, the
//!   session, one applier with one failure policy, the parallel workers) and knows
//!   nothing of the pipeline;
//! - [`servers`] says how the direction reaches its two servers (TLS loaded at start; with
//!   `[pump] relay`, the tunnel to the upstream site's relay);
//! - [`relay`] is `drainer relay`: a site's database served to other sites' drainers over
//!   mutual TLS (docs/cross-site.md);
//! - [`conflicts`] is `drainer conflicts show`, the conflict records read back;
//! - [`verify`] is `drainer verify`: chunks checksummed on both sides at one point of
//!   the stream (the pipeline answers its requests), differing rows named and repaired;
//! - [`rowfilter`] evaluates `[[syncer.row-filter]]` conditions on decoded rows;
//! - [`seed`] is `drainer seed`: a new downstream copied from the live upstream in
//!   chunks, each at the binlog position of its consistent snapshot, so that the stream
//!   (which passes over what the copy holds until it is past the last chunk) takes over
//!   exactly;
//! - [`error`] says why a direction stopped, where and what;
//! - [`status`] keeps what it does for `GET /status` and [`metrics`] for `GET /metrics`,
//!   which [`http`] serves (the relay's pages too);
//! - [`failpoint`] holds the crash points the tests use (they act only in a build with
//!   the `failpoints` feature; any other build refuses `DRAINER_FAILPOINT`).

pub mod apply;
pub mod conflicts;
pub mod error;
pub mod failpoint;
pub mod http;
pub mod metrics;
pub mod pipeline;
pub mod relay;
pub mod rowfilter;
pub mod seed;
pub mod servers;
pub mod status;
pub mod verify;
