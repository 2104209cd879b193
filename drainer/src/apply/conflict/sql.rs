//! The statements that detect a conflict and find its facts, every comparison made by the
//! server (as the columns store their values: a FLOAT as a FLOAT, text by the column's
//! collation, NULL equal to NULL):
//!
//! - [`checked_update`], [`checked_delete`]: the change, matching only a row that is still
//!   what the upstream's before image says (its key, and every other column both sides
//!   have). A match count of 0 means a conflict, or a row already changed the same way.
//! - [`probe`]: what a change that did not match found: no row, a row already equal to the
//!   change's result, or another row.
//! - [`newer`]: for last writer wins, the upstream's row against the downstream's: the
//!   policy's column, then the whole image, each as -1, 0 or 1.

use schema::{Table, Value};

use crate::apply::sql::{
    bind, key_columns, key_match, locating_key, qualified, quote, same_as, set_columns, still,
    stored, BuildError, Stmt,
};

type Row = [Option<Value>];

/// The key that locates `row` (its columns), or an error naming the table.
pub fn key_of(table: &Table, row: &Row) -> Result<Vec<usize>, BuildError> {
    let keys = key_columns(table);
    locating_key(&keys, row)
        .map(|k| keys[k].clone())
        .ok_or_else(|| BuildError::Missing {
            table: table.qualified(),
            column: "(a primary or unique key, to detect conflicts by)".into(),
        })
}

/// UPDATE of the row `before` locates to `after`, only if the row is still `before`.
pub fn checked_update(table: &Table, before: &Row, after: &Row) -> Result<Stmt, BuildError> {
    let key = key_of(table, before)?;
    let mut sql = format!("UPDATE {} SET ", qualified(table));
    let mut params = Vec::new();
    set_columns(table, after, &mut sql, &mut params)?;
    sql.push_str(" WHERE ");
    key_match(table, &key, before, &mut sql, &mut params)?;
    still(table, &key, before, &mut sql, &mut params)?;
    Ok(Stmt {
        sql,
        params,
        check: None,
    })
}

/// DELETE of the row `before` locates, only if the row is still `before`.
pub fn checked_delete(table: &Table, before: &Row) -> Result<Stmt, BuildError> {
    let key = key_of(table, before)?;
    let mut sql = format!("DELETE FROM {} WHERE ", qualified(table));
    let mut params = Vec::new();
    key_match(table, &key, before, &mut sql, &mut params)?;
    still(table, &key, before, &mut sql, &mut params)?;
    Ok(Stmt {
        sql,
        params,
        check: None,
    })
}

/// `SELECT <the row equals result> FROM … WHERE <key of located> FOR UPDATE`: no row
/// (missing), 1 (already the change's result: `result` `None`, a DELETE's, never is) or
/// 0 (another row). The row stays locked until the transaction ends.
pub fn probe(table: &Table, located: &Row, result: Option<&Row>) -> Result<Stmt, BuildError> {
    let key = key_of(table, located)?;
    let mut params = Vec::new();
    let mut sql = "SELECT ".to_owned();
    match result {
        None => sql.push('0'),
        Some(row) => {
            sql.push('(');
            same_as(table, &[], row, &mut sql, &mut params)?;
            sql.push(')');
        }
    }
    sql.push_str(&format!(" FROM {} WHERE ", qualified(table)));
    key_match(table, &key, located, &mut sql, &mut params)?;
    sql.push_str(" FOR UPDATE");
    Ok(Stmt {
        sql,
        params,
        check: None,
    })
}

/// The sign of `value` against column `i` (-1, 0, 1), NULL the smallest.
fn sign(
    table: &Table,
    i: usize,
    value: &Value,
    sql: &mut String,
    params: &mut Vec<crate::apply::values::Param>,
) -> Result<(), BuildError> {
    let c = quote(&table.columns[i].name);
    sql.push_str(&format!(
        "(CASE WHEN ? <=> {c} THEN 0 WHEN {c} IS NULL THEN 1 WHEN ? IS NULL THEN -1 \
         WHEN ? > {c} THEN 1 ELSE -1 END)"
    ));
    for _ in 0..3 {
        params.push(bind(table, i, value)?);
    }
    Ok(())
}

/// For last writer wins: `SELECT <after's column against the row's>, <after's image
/// against the row's, column by column> FROM … WHERE <key of located> FOR UPDATE`, each
/// -1, 0 or 1 (no row: missing). Both sites compute the same for the same two rows, with
/// the sides swapped: one site keeps what the other takes.
pub fn newer(table: &Table, located: &Row, after: &Row, column: usize) -> Result<Stmt, BuildError> {
    let key = key_of(table, located)?;
    let mut sql = "SELECT ".to_owned();
    let mut params = Vec::new();
    let value = after.get(column).and_then(Option::as_ref);
    let value = value.ok_or_else(|| BuildError::Missing {
        table: table.qualified(),
        column: table.columns[column].name.clone(),
    })?;
    sign(table, column, value, &mut sql, &mut params)?;
    sql.push_str(", (CASE");
    let mut n = 0;
    for i in stored(table) {
        let Some(Some(v)) = after.get(i) else {
            continue;
        };
        let c = quote(&table.columns[i].name);
        sql.push_str(&format!(" WHEN NOT (? <=> {c}) THEN "));
        params.push(bind(table, i, v)?);
        sign(table, i, v, &mut sql, &mut params)?;
        n += 1;
    }
    if n == 0 {
        return Err(BuildError::Missing {
            table: table.qualified(),
            column: "(any stored column)".into(),
        });
    }
    sql.push_str(&format!(" ELSE 0 END) FROM {} WHERE ", qualified(table)));
    key_match(table, &key, located, &mut sql, &mut params)?;
    sql.push_str(" FOR UPDATE");
    Ok(Stmt {
        sql,
        params,
        check: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apply::test_table;

    fn int(i: i64) -> Option<Value> {
        Some(Value::Int(i))
    }

    #[test]
    fn checked_statements_compare_every_column_but_the_key() {
        let t = test_table("CREATE TABLE t (id INT PRIMARY KEY, a INT, b INT, g INT AS (a + 1))");
        let before = [int(1), int(2), Some(Value::Null), int(3)];
        let after = [int(1), int(5), Some(Value::Null), int(6)];
        let u = checked_update(&t, &before, &after).unwrap();
        assert_eq!(
            u.sql,
            "UPDATE `app`.`t` SET `id` = ?,`a` = ?,`b` = ? WHERE `id` = ? \
             AND CASE WHEN 1 AND `a` <=> ? AND `b` <=> ? THEN 1 END"
        );
        assert_eq!(u.params.len(), 6);
        let d = checked_delete(&t, &before).unwrap();
        assert_eq!(
            d.sql,
            "DELETE FROM `app`.`t` WHERE `id` = ? AND CASE WHEN 1 AND `a` <=> ? AND `b` <=> ? THEN 1 END"
        );
        let p = probe(&t, &before, Some(&after)).unwrap();
        assert_eq!(
            p.sql,
            "SELECT (1 AND `id` <=> ? AND `a` <=> ? AND `b` <=> ?) FROM `app`.`t` WHERE `id` = ? FOR UPDATE"
        );
        assert!(probe(&t, &before, None)
            .unwrap()
            .sql
            .starts_with("SELECT 0 FROM"));
        let n = newer(&t, &before, &after, 1).unwrap();
        assert!(
            n.sql.starts_with("SELECT (CASE WHEN ? <=> `a` THEN 0"),
            "{}",
            n.sql
        );
        // The column's sign (3), then per column its test (1) and sign (3), then the key.
        assert_eq!(n.params.len(), 3 + 3 * 4 + 1);
    }

    #[test]
    fn a_table_without_keys_has_no_conflict_detection() {
        let t = test_table("CREATE TABLE t (a INT, b INT)");
        let e = checked_update(&t, &[int(1), int(2)], &[int(1), int(3)]).unwrap_err();
        assert!(e.to_string().contains("a primary or unique key"), "{e}");
    }
}
