//! Conflicts between two writers (issue 20), decided without I/O: what kind a row change's
//! mismatch with the downstream row is, and what a table's policy does about it.
//!
//! A row change conflicts when the downstream row is not what the upstream change
//! expects: an UPDATE or DELETE whose row is missing, or differs from the upstream's
//! before image (in the columns both sides have), or an INSERT whose key exists with other
//! contents. A downstream row that already equals the change's result is no conflict:
//! the drainer wrote it before (a replay) or both sites made the same change.
//!
//! The applier finds the facts (the statement's matched rows, then the row by its key and
//! the comparisons, on the server, so every type compares as stored); this module only
//! names the kind ([`kind`]) and the outcome ([`resolve`]).
//!
//! Last writer wins (`lww`) ends the same on both sites whatever order the changes cross
//! in, because each site decides with the same inputs:
//! - the larger value of the table's `column` wins (NULL is the smallest);
//! - equal values: the larger row image wins (its values compared in column order, as the
//!   server orders them), so both sites keep the same row;
//! - a DELETE racing an UPDATE or INSERT of the same row: the delete wins (an UPDATE
//!   whose row is missing is skipped, a DELETE of a row that differs applies), so the row
//!   ends absent on both sites.
//!
//! With `[syncer.conflict]`, a transaction's statements are built checked (`build`: every
//! path builds through it, multi-row statements included); the session settles a
//! statement that did not match (`downstream::settle`) with the statements of [`sql`],
//! writes the [`record`] and applies the resolution, in the same downstream transaction.
//! A multi-row statement that matched fewer rows than it carries, or any conflict in a
//! group of upstream transactions, rolls back and applies again finer (row by row, or
//! one upstream transaction at a time: see `policy`), so that each conflict is settled
//! on its own and its record names its own upstream transaction.

pub mod record;
pub mod sql;

use std::cmp::Ordering;
use std::sync::Arc;

use schema::{Table, Value};

/// A row image: a value (or NULL) per column, `None` where the image lacks the column.
pub type Image = Vec<Option<Value>>;

/// What building checked statements needs: the policies, and the upstream transaction
/// the records name.
#[derive(Debug, Clone, Copy)]
pub struct Detect<'a> {
    pub policies: &'a Policies,
    pub position: &'a Arc<str>,
}

/// What a statement's conflict detection needs: the row changes it carries.
#[derive(Debug, Clone, PartialEq)]
pub struct Check {
    pub op: Op,
    /// The table as the downstream has it: the images fit it.
    pub table: Arc<Table>,
    /// The changes' before and after images, one pair per row (several: a multi-row
    /// statement).
    pub rows: Vec<(Option<Image>, Option<Image>)>,
    pub policy: Policy,
    /// With `lww`: the column's index in `table`.
    pub column: Option<usize>,
    /// The upstream transaction, as errors and the record name it.
    pub position: Arc<str>,
}

/// The policies of `[syncer.conflict]`, and where records go.
#[derive(Debug, Clone, PartialEq)]
pub struct Policies {
    pub default: Policy,
    /// `(schema, table)` in lower case, the policy, the `lww` column.
    pub tables: Vec<(String, String, Policy, Option<String>)>,
    /// The schema of the conflict table (the mark table's).
    pub schema: String,
    pub channel_id: i64,
}

impl Policies {
    /// The policies of `config`, whose tables are named as upstream (each looked up by
    /// its name downstream, as `routes` gives it).
    pub fn new(
        config: &conf::Conflict,
        routes: &conf::Routes,
        schema: &str,
        channel_id: i64,
    ) -> Policies {
        let policy = |p: conf::ConflictPolicy| match p {
            conf::ConflictPolicy::Overwrite => Policy::Overwrite,
            conf::ConflictPolicy::Keep => Policy::Keep,
            conf::ConflictPolicy::Lww => Policy::Lww,
            conf::ConflictPolicy::Stop => Policy::Stop,
        };
        Policies {
            default: policy(config.policy),
            tables: config
                .table
                .iter()
                .map(|t| {
                    let (db, tbl) = routes.target(&t.db_name, &t.tbl_name);
                    (
                        db.to_lowercase(),
                        tbl.to_lowercase(),
                        policy(t.policy),
                        t.column.clone(),
                    )
                })
                .collect(),
            schema: schema.to_owned(),
            channel_id,
        }
    }

    /// `table`'s policy and, with `lww`, its column's index; an `lww` column the table
    /// lacks is named in the error.
    pub fn of(&self, table: &Table) -> Result<(Policy, Option<usize>), String> {
        let found = self.tables.iter().find(|(s, t, _, _)| {
            s.eq_ignore_ascii_case(&table.schema) && t.eq_ignore_ascii_case(&table.name)
        });
        match found {
            None => Ok((self.default, None)),
            Some((_, _, Policy::Lww, Some(column))) => {
                let index = table
                    .columns
                    .iter()
                    .position(|c| c.name.eq_ignore_ascii_case(column))
                    .ok_or_else(|| column.clone())?;
                Ok((Policy::Lww, Some(index)))
            }
            Some((_, _, policy, _)) => Ok((*policy, None)),
        }
    }
}

/// What a row change found downstream, by the key of its before image (an UPDATE or
/// DELETE) or of its after image (an INSERT).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Found {
    /// The statement matched the row as the change expects (no conflict to look at).
    AsExpected,
    /// No row with the key.
    Missing,
    /// A row that already equals the change's result.
    AlreadyApplied,
    /// A row with other contents.
    Differs,
}

/// The row change's operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Insert,
    Update,
    Delete,
}

/// The kinds of conflict, as recorded and counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    UpdateMissing,
    UpdateDiffers,
    DeleteMissing,
    DeleteDiffers,
    InsertExists,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::UpdateMissing => "update-missing",
            Kind::UpdateDiffers => "update-differs",
            Kind::DeleteMissing => "delete-missing",
            Kind::DeleteDiffers => "delete-differs",
            Kind::InsertExists => "insert-exists",
        }
    }
}

/// The conflict a change has with what it found; `None`: none.
pub fn kind(op: Op, found: Found) -> Option<Kind> {
    match (op, found) {
        (_, Found::AsExpected | Found::AlreadyApplied) => None,
        (Op::Update, Found::Missing) => Some(Kind::UpdateMissing),
        (Op::Update, Found::Differs) => Some(Kind::UpdateDiffers),
        (Op::Delete, Found::Missing) => Some(Kind::DeleteMissing),
        (Op::Delete, Found::Differs) => Some(Kind::DeleteDiffers),
        // An INSERT expects no row: a missing one is what it expects.
        (Op::Insert, Found::Missing) => None,
        (Op::Insert, Found::Differs) => Some(Kind::InsertExists),
    }
}

/// A table's policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    /// The upstream's change wins (as without detection), recorded.
    Overwrite,
    /// The downstream row stays; the change is recorded and skipped.
    Keep,
    /// The later write wins, by the table's column (see the module note).
    Lww,
    /// The drainer stops, naming the row, until an operator fixes it.
    Stop,
}

/// What the applier does with the conflicting change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resolution {
    /// Apply the upstream's change so that the row ends as its after image (an UPDATE
    /// whose row is missing inserts it; an INSERT whose key exists replaces the row; a
    /// DELETE deletes the row by its key).
    Apply,
    /// Leave the downstream row as it is.
    Skip,
    /// Stop replication at this transaction.
    Stop,
}

impl Resolution {
    pub fn as_str(self) -> &'static str {
        match self {
            Resolution::Apply => "applied",
            Resolution::Skip => "skipped",
            Resolution::Stop => "stopped",
        }
    }
}

/// For `lww`: how the upstream's row compares with the downstream's, first by the
/// table's column, then, when equal, by the whole row image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Newer {
    /// The upstream's `column` value against the downstream row's, NULL the smallest.
    pub column: Ordering,
    /// The upstream's after image against the downstream row, value by value.
    pub image: Ordering,
}

/// What `policy` does with a conflict of `kind`. `newer` is needed by `lww` when both
/// rows exist (an UPDATE or INSERT that found another row).
pub fn resolve(kind: Kind, policy: Policy, newer: Option<Newer>) -> Resolution {
    match policy {
        Policy::Overwrite => match kind {
            // Nothing to delete: the row is absent already, as upstream.
            Kind::DeleteMissing => Resolution::Skip,
            _ => Resolution::Apply,
        },
        Policy::Keep => Resolution::Skip,
        Policy::Stop => Resolution::Stop,
        Policy::Lww => match kind {
            // Delete wins: the row was deleted here; the upstream's update of it is not
            // brought back. A delete of a row that differs here deletes it.
            Kind::UpdateMissing | Kind::DeleteMissing => Resolution::Skip,
            Kind::DeleteDiffers => Resolution::Apply,
            Kind::UpdateDiffers | Kind::InsertExists => match newer {
                Some(n) => match n.column.then(n.image) {
                    Ordering::Greater => Resolution::Apply,
                    Ordering::Less | Ordering::Equal => Resolution::Skip,
                },
                // Without the comparison the change cannot be judged: stay.
                None => Resolution::Skip,
            },
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Ordering::{Equal, Greater, Less};

    #[test]
    fn kinds_of_mismatch() {
        assert_eq!(kind(Op::Update, Found::Missing), Some(Kind::UpdateMissing));
        assert_eq!(kind(Op::Update, Found::Differs), Some(Kind::UpdateDiffers));
        assert_eq!(kind(Op::Delete, Found::Missing), Some(Kind::DeleteMissing));
        assert_eq!(kind(Op::Delete, Found::Differs), Some(Kind::DeleteDiffers));
        assert_eq!(kind(Op::Insert, Found::Differs), Some(Kind::InsertExists));
        for op in [Op::Insert, Op::Update, Op::Delete] {
            assert_eq!(kind(op, Found::AsExpected), None);
            // The drainer's own earlier write, seen again: no conflict.
            assert_eq!(kind(op, Found::AlreadyApplied), None);
        }
        assert_eq!(kind(Op::Insert, Found::Missing), None);
        assert_eq!(Kind::InsertExists.as_str(), "insert-exists");
    }

    #[test]
    fn overwrite_keep_and_stop() {
        for k in [
            Kind::UpdateMissing,
            Kind::UpdateDiffers,
            Kind::DeleteDiffers,
            Kind::InsertExists,
        ] {
            assert_eq!(
                resolve(k, Policy::Overwrite, None),
                Resolution::Apply,
                "{k:?}"
            );
        }
        assert_eq!(
            resolve(Kind::DeleteMissing, Policy::Overwrite, None),
            Resolution::Skip
        );
        for k in [Kind::UpdateMissing, Kind::DeleteDiffers, Kind::InsertExists] {
            assert_eq!(resolve(k, Policy::Keep, None), Resolution::Skip);
            assert_eq!(resolve(k, Policy::Stop, None), Resolution::Stop);
        }
    }

    /// Two sites, each with its own write of one row, receive each other's: whatever the
    /// values, exactly one of the two writes ends on both.
    #[test]
    fn lww_ends_the_same_on_both_sites() {
        let cases = [
            (Greater, Less),
            (Less, Greater),
            (Equal, Greater),
            (Equal, Less),
        ];
        for (column, image) in cases {
            // Site B receives A's write: A's row against B's.
            let at_b = resolve(
                Kind::UpdateDiffers,
                Policy::Lww,
                Some(Newer { column, image }),
            );
            // Site A receives B's write: B's row against A's, every comparison reversed.
            let reversed = Newer {
                column: column.reverse(),
                image: image.reverse(),
            };
            let at_a = resolve(Kind::UpdateDiffers, Policy::Lww, Some(reversed));
            // One site takes the other's row and the other keeps its own: the same row.
            assert_ne!(at_a, at_b, "{column:?} {image:?}");
        }
        let later = Newer {
            column: Greater,
            image: Less,
        };
        assert_eq!(
            resolve(Kind::InsertExists, Policy::Lww, Some(later)),
            Resolution::Apply
        );
        assert_eq!(
            resolve(Kind::UpdateDiffers, Policy::Lww, None),
            Resolution::Skip
        );
    }

    #[test]
    fn lww_lets_a_delete_win() {
        // A deleted the row while B updated it: at B the delete applies, at A the update
        // finds nothing and is not brought back: the row is gone on both sites.
        assert_eq!(
            resolve(Kind::DeleteDiffers, Policy::Lww, None),
            Resolution::Apply
        );
        assert_eq!(
            resolve(Kind::UpdateMissing, Policy::Lww, None),
            Resolution::Skip
        );
        assert_eq!(
            resolve(Kind::DeleteMissing, Policy::Lww, None),
            Resolution::Skip
        );
    }
}
