//! A transaction's statements with conflict detection: every UPDATE and DELETE a checked
//! statement of its own (matching only a row still as its before image), consecutive
//! INSERTs into one table joined; each statement carries its row changes ([`Check`]) for
//! the session to settle what does not match. A table without a primary or unique key
//! cannot be checked: its rows apply as without detection.

use std::sync::Arc;

use schema::{Table, Value};

use super::{sql as checked, Check, Image, Op, Policies, Policy};
use crate::apply::changes::RowChange;
use crate::apply::sql::{self, BuildError, Stmt};

/// Rows per joined INSERT at most.
const ROWS_PER_INSERT: usize = 200;
/// Parameters per statement at most.
const MAX_PARAMS: usize = 30_000;

/// A table as the upstream has it, and as the downstream does when narrower (its columns,
/// and which of the upstream's it keeps).
pub type Shape = (Arc<Table>, Option<(Arc<Table>, Vec<bool>)>);

/// The statements of `txn`, whose change `i` is of table `shapes[of[i]]`.
pub fn statements(
    txn: &[&RowChange],
    shapes: &[Shape],
    of: &[usize],
    policies: &Policies,
    position: &Arc<str>,
) -> Result<Vec<Stmt>, BuildError> {
    let mut stmts = Vec::new();
    // Each table's policy, looked up once per transaction.
    let mut policy_of: Vec<Option<(Policy, Option<usize>)>> = vec![None; shapes.len()];
    let mut i = 0;
    while i < txn.len() {
        let (table, narrow) = &shapes[of[i]];
        let (target, keep) = match narrow {
            Some((t, keep)) => (t, Some(keep)),
            None => (table, None),
        };
        let fit = |row: &Option<Vec<Option<Value>>>| -> Option<Image> {
            let row = row.as_ref()?;
            Some(match keep {
                Some(keep) => row
                    .iter()
                    .zip(keep)
                    .filter(|(_, k)| **k)
                    .map(|(v, _)| v.clone())
                    .collect(),
                None => row.clone(),
            })
        };
        let (policy, column) = match policy_of[of[i]] {
            Some(known) => known,
            None => {
                let found = policies.of(target).map_err(|column| BuildError::Missing {
                    table: target.qualified(),
                    column: format!("{column} (the lww column of [[syncer.conflict.table]])"),
                })?;
                *policy_of.get_mut(of[i]).expect("one per shape") = Some(found);
                found
            }
        };
        let check = |op: Op, rows: Vec<(Option<Image>, Option<Image>)>| {
            Some(Arc::new(Check {
                op,
                table: Arc::clone(target),
                rows,
                policy,
                column,
                position: Arc::clone(position),
            }))
        };
        match (fit(&txn[i].before), fit(&txn[i].after)) {
            (None, Some(_)) => {
                // The run of inserts into this table, joined.
                let end = (i..txn.len())
                    .find(|&j| of[j] != of[i] || txn[j].before.is_some() || txn[j].after.is_none())
                    .unwrap_or(txn.len());
                let rows: Vec<Image> = txn[i..end].iter().filter_map(|c| fit(&c.after)).collect();
                let per = ROWS_PER_INSERT
                    .min(MAX_PARAMS / target.columns.len().max(1))
                    .max(1);
                for chunk in rows.chunks(per) {
                    let refs: Vec<&[Option<Value>]> = chunk.iter().map(Vec::as_slice).collect();
                    let mut stmt = sql::insert(target, &refs, false)?;
                    stmt.check = check(
                        Op::Insert,
                        chunk.iter().map(|a| (None, Some(a.clone()))).collect(),
                    );
                    stmts.push(stmt);
                }
                i = end;
                continue;
            }
            (Some(before), Some(after)) => {
                let sets = sql::stored(target).any(|c| matches!(after.get(c), Some(Some(_))));
                if sets {
                    match checked::checked_update(target, &before, &after) {
                        Ok(mut stmt) => {
                            stmt.check = check(Op::Update, vec![(Some(before), Some(after))]);
                            stmts.push(stmt);
                        }
                        Err(_) => stmts.extend(sql::update(target, &before, &after, false)?),
                    }
                }
            }
            (Some(before), None) => match checked::checked_delete(target, &before) {
                Ok(mut stmt) => {
                    stmt.check = check(Op::Delete, vec![(Some(before), None)]);
                    stmts.push(stmt);
                }
                Err(_) => stmts.push(sql::delete(target, &before)?),
            },
            (None, None) => {}
        }
        i += 1;
    }
    Ok(stmts)
}
