//! # pump-reader: ordered, positioned transactions from an upstream binlog
//!
//! Owns reading the upstream's change log in commit order: the replication protocol
//! (registering as a replica with `[pump] server-id`, MariaDB and MySQL flavours) and
//! binlog files on disk; positions as types (`file:pos`, MariaDB GTID lists, MySQL GTID
//! sets); and assembling whole transactions (`Txn`), each carrying the position right after
//! its commit, so that nothing downstream has to know binlog framing.
//!
//! Status: not implemented yet (issue 3). The crate exists so the workspace has its final
//! shape; it exports nothing. See `../shared/notes/dependencies.md` for what
//! mysql_async/mysql_common do and do not handle on MariaDB before writing it.
