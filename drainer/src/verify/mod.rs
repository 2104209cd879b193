//! `drainer verify`: whether the downstream holds what the upstream does, chunk by
//! chunk, each compared at the same point of history (see [`chunk`]).

pub mod chunk;
pub mod run;

pub use run::{verify, Options, Report};
