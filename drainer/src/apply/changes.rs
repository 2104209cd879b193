//! Decoded row changes of an upstream transaction, as the pipeline reads them and every
//! applier builds statements from them ([`super::build`]).

use std::sync::Arc;

use schema::{Table, Value};

use super::sql::Stmt;

/// ER_BAD_FIELD_ERROR: "unknown column".
pub const UNKNOWN_COLUMN: u16 = 1054;

/// About how many bytes a value takes in a statement.
pub fn approx_size(value: &Option<Value>) -> usize {
    match value {
        Some(Value::Text(b) | Value::Bytes(b)) => b.len() + 8,
        Some(Value::Decimal(d)) => d.len() + 8,
        _ => 16,
    }
}

/// Row changes counted by kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Ops {
    pub inserts: u64,
    pub updates: u64,
    pub deletes: u64,
}

impl Ops {
    /// The inserts, updates and deletes among `changes`.
    pub fn of(changes: &[RowChange]) -> Ops {
        let mut ops = Ops::default();
        for c in changes {
            match (&c.before, &c.after) {
                (None, Some(_)) => ops.inserts += 1,
                (Some(_), Some(_)) => ops.updates += 1,
                (Some(_), None) => ops.deletes += 1,
                (None, None) => {}
            }
        }
        ops
    }
}

impl std::ops::AddAssign for Ops {
    fn add_assign(&mut self, other: Ops) {
        self.inserts += other.inserts;
        self.updates += other.updates;
        self.deletes += other.deletes;
    }
}

/// One decoded row change of an upstream transaction.
pub struct RowChange {
    pub table: Arc<Table>,
    pub before: Option<Vec<Option<Value>>>,
    pub after: Option<Vec<Option<Value>>>,
    /// The checks its upstream session ran with.
    pub checks: Checks,
    /// Set when it applies as its upstream row event, not as SQL (see [`super::binlog`]).
    pub raw: Option<Raw>,
}

/// A row change applied as its upstream row event: the first row change of an event
/// carries it, the others go with it.
#[derive(Clone)]
pub enum Raw {
    First(Arc<pump_reader::RawRows>),
    Rest,
}

/// The checks a row change was written with upstream (its rows event's flags): a dump
/// restore turns foreign-key checks off and writes child rows before their parents, so
/// the downstream must apply them the same way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Checks {
    pub foreign_keys: bool,
    pub unique: bool,
}

impl Default for Checks {
    fn default() -> Checks {
        Checks {
            foreign_keys: true,
            unique: true,
        }
    }
}

impl Checks {
    /// The statement that sets the session's checks to these.
    pub(super) fn set(self) -> Stmt {
        Stmt {
            sql: format!(
                "SET SESSION foreign_key_checks = {}, unique_checks = {}",
                u8::from(self.foreign_keys),
                u8::from(self.unique)
            ),
            params: Vec::new(),
            check: None,
        }
    }
}

/// Whether `changes` are all inserts into one table: in order, they join as multi-row
/// statements do, with no keys to work out.
pub fn one_table_inserts(changes: &[RowChange]) -> bool {
    changes
        .iter()
        .all(|c| c.before.is_none() && Arc::ptr_eq(&c.table, &changes[0].table))
}
