//! # checkpoint: where this direction stands, durably
//!
//! Owns the RocksDB store in `data-dir`: the position after the last transaction applied
//! downstream, the GTID state of every domain, the schema history, and the identity of the
//! servers the data-dir belongs to. Values are versioned; several keys change in one
//! `WriteBatch`; the position never moves backward.
//!
//! ## Why Debian's librocksdb
//! `rocksdb = "=0.20.1"` with default features off links Debian's `librocksdb-dev`
//! (RocksDB 7.8) through `ROCKSDB_LIB_DIR` (set in `.cargo/config.toml`). The bundled C++
//! build of newer `rocksdb` releases takes about 23 minutes on the project's 2-core
//! machines, paid again on every fresh machine and CI run; the system library builds in
//! seconds. The cost: the binary needs `librocksdb7.8` at run time (installed with
//! `librocksdb-dev`), and bindgen needs `libclang-dev` at build time. Default features stay
//! off, or the compression `-sys` crates would be compiled from source anyway.
//!
//! ## What is here
//! [`Store::open`] opens (or creates) the store in `data-dir`, tags a new one with
//! [`FORMAT_VERSION`] and refuses a store of another version, and refuses a data-dir that
//! another drainer process holds open ([`Error::InUse`], from RocksDB's lock file).
//! [`Store::write`] applies a [`Batch`] of puts and deletes atomically and durably;
//! [`Store::scan`] reads a key prefix in order (the schema history lives under `schema/`).
//! [`Store::save_checkpoint`] saves the position after the last transaction durably
//! applied (coordinates and GTID state, versioned JSON) together with other keys in one
//! batch, and refuses to move it backward; [`Store::set_checkpoint`] is the operator's
//! deliberate move. [`Store::claim`] binds a data-dir to its upstream, downstream and
//! channel, and refuses other servers afterwards.

mod position;
mod store;

pub use position::{Checkpoint, Identity, ServerIdentity};
pub use store::{Batch, Error, KeyValue, Store, FORMAT_VERSION};
