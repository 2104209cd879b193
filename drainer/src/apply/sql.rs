//! Row changes to SQL statements with bound parameters.
//!
//! - INSERT of one or more rows (REPLACE in safe mode), generated columns left out (the
//!   downstream computes them).
//! - UPDATE and DELETE locate their row by the first key (primary, then unique keys in
//!   order) whose before-image values are all present and non-NULL; without one, by every
//!   stored column of the before image with NULL-safe `<=>`, and `LIMIT 1`.
//! - UPDATE sets the after image's present columns; in safe mode it is a DELETE of the old
//!   row and a REPLACE of the new one.
//! - Several rows of one table that the same key locates, none of them sharing a key with
//!   another (see `super::build`), delete in one statement (`WHERE id IN (…)`) and
//!   update in one statement that sets each row's values by its key
//!   (`SET c = CASE id WHEN ? THEN ? … END … WHERE id IN (…)`); the key's columns,
//!   unchanged, are not set, so every CASE sees the row's own key. Every row sets every
//!   column (full after images), so a CASE's type is its parameters' (no `ELSE c`, whose
//!   column type would join: an ENUM would turn the member numbers into text).

use std::sync::Arc;

use schema::{Table, Value};

use super::conflict::Check;
use super::values::{param, Param, Unwritable};

/// A row image: a value (or NULL) per column; `None` where the image lacks the column.
pub type Row<'a> = &'a [Option<Value>];

/// A statement and its parameters, in order.
#[derive(Debug, Clone, PartialEq)]
pub struct Stmt {
    pub sql: String,
    pub params: Vec<Param>,
    /// With conflict detection: the row changes it carries, which the session checks
    /// (and resolves) when the statement does not match as they expect.
    pub check: Option<Arc<Check>>,
}

impl Stmt {
    /// The parameters as the driver takes them (strings copied, for this one call).
    pub fn values(&self) -> Vec<mysql_async::Value> {
        self.params.iter().map(Param::value).collect()
    }
}

/// Why a row change cannot be written as SQL.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BuildError {
    #[error("{table}.{column}: {source}")]
    Value {
        table: String,
        column: String,
        #[source]
        source: Unwritable,
    },
    #[error("{table}: the row image lacks column {column}, which the statement needs")]
    Missing { table: String, column: String },
}

/// `name` as a quoted identifier.
pub fn quote(name: &str) -> String {
    format!("`{}`", name.replace('`', "``"))
}

pub(crate) fn qualified(table: &Table) -> String {
    let mut out = String::with_capacity(table.schema.len() + table.name.len() + 5);
    push_qualified(&mut out, table);
    out
}

/// `name` as [`quote`] writes it, appended to `sql` (statements are built per row change:
/// no string made per name).
pub fn push_quoted(sql: &mut String, name: &str) {
    sql.push('`');
    if name.contains('`') {
        sql.push_str(&name.replace('`', "``"));
    } else {
        sql.push_str(name);
    }
    sql.push('`');
}

/// [`qualified`]'s text appended to `sql`.
pub(crate) fn push_qualified(sql: &mut String, table: &Table) {
    push_quoted(sql, &table.schema);
    sql.push('.');
    push_quoted(sql, &table.name);
}

/// `head` (`DELETE FROM `, `UPDATE `), then the table's name.
fn begin(head: &str, table: &Table) -> String {
    let mut sql = String::with_capacity(128);
    sql.push_str(head);
    push_qualified(&mut sql, table);
    sql
}

pub(crate) fn bind(table: &Table, column: usize, value: &Value) -> Result<Param, BuildError> {
    param(value).map_err(|source| BuildError::Value {
        table: table.qualified(),
        column: table.columns[column].name.clone(),
        source,
    })
}

/// The parameter for column `i` of `row`, which the statement needs.
pub(crate) fn bind_present(
    table: &Table,
    i: usize,
    row: &[Option<Value>],
) -> Result<Param, BuildError> {
    let value = row.get(i).and_then(Option::as_ref);
    let value = value.ok_or_else(|| BuildError::Missing {
        table: table.qualified(),
        column: table.columns[i].name.clone(),
    })?;
    bind(table, i, value)
}

/// The stored (not generated) columns, by index.
pub(crate) fn stored(table: &Table) -> impl Iterator<Item = usize> + '_ {
    table
        .columns
        .iter()
        .enumerate()
        .filter(|(_, c)| c.generated.is_none())
        .map(|(i, _)| i)
}

/// INSERT (or REPLACE) of `rows`, each a full after image.
pub fn insert(table: &Table, rows: &[&[Option<Value>]], replace: bool) -> Result<Stmt, BuildError> {
    let columns: Vec<usize> = stored(table).collect();
    let placeholders = format!("({})", vec!["?"; columns.len()].join(","));
    let mut sql = begin(
        if replace {
            "REPLACE INTO "
        } else {
            "INSERT INTO "
        },
        table,
    );
    sql.push_str(" (");
    for (n, &i) in columns.iter().enumerate() {
        if n > 0 {
            sql.push(',');
        }
        push_quoted(&mut sql, &table.columns[i].name);
    }
    sql.push_str(") VALUES ");
    let mut params = Vec::with_capacity(rows.len() * columns.len());
    for (n, row) in rows.iter().enumerate() {
        if n > 0 {
            sql.push(',');
        }
        sql.push_str(&placeholders);
        for &i in &columns {
            params.push(bind_present(table, i, row)?);
        }
    }
    Ok(Stmt {
        sql,
        params,
        check: None,
    })
}

/// The column positions of `table`'s primary key, then of each unique key, in order (a
/// key naming a column the table lacks is left out): worked out once per table, not
/// per row.
pub fn key_columns(table: &Table) -> Vec<Vec<usize>> {
    let keys = table.primary_key.iter().chain(&table.unique_keys);
    keys.filter_map(|key| {
        key.columns
            .iter()
            .map(|name| table.column(name).map(|(i, _)| i))
            .collect::<Option<Vec<usize>>>()
    })
    .collect()
}

/// Which of `keys` ([`key_columns`]) locates the row of `before`: the first whose values
/// the image has, none NULL.
pub fn locating_key(keys: &[Vec<usize>], before: &[Option<Value>]) -> Option<usize> {
    keys.iter().position(|key| {
        key.iter()
            .all(|&i| matches!(before.get(i), Some(Some(v)) if *v != Value::Null))
    })
}

/// Whether the values of the key columns `key` in `row` compare exactly with their
/// parameters. A DECIMAL travels as text, and a DECIMAL column compares with text as
/// DOUBLE: fine for an index lookup, not for telling rows apart in a multi-row statement.
pub fn exact_key(key: &[usize], row: &[Option<Value>]) -> bool {
    key.iter()
        .all(|&i| !matches!(row.get(i), Some(Some(Value::Decimal(_)))))
}

/// Whether `after` leaves the values of the key columns `key` as `before` has them (a
/// column the after image lacks is left as it is).
pub fn keeps_key(key: &[usize], before: &[Option<Value>], after: &[Option<Value>]) -> bool {
    key.iter().all(|&i| match after.get(i) {
        Some(Some(v)) => before.get(i).and_then(Option::as_ref) == Some(v),
        _ => true,
    })
}

/// Appends `` `a` = ? AND `b` = ?`` for key columns `key` of `row`.
pub(crate) fn key_match(
    table: &Table,
    key: &[usize],
    row: &[Option<Value>],
    sql: &mut String,
    params: &mut Vec<Param>,
) -> Result<(), BuildError> {
    for (n, &i) in key.iter().enumerate() {
        if n > 0 {
            sql.push_str(" AND ");
        }
        push_quoted(sql, &table.columns[i].name);
        sql.push_str(" = ?");
        params.push(bind_present(table, i, row)?);
    }
    Ok(())
}

/// `` AND CASE WHEN 1 AND `c` <=> ? … THEN 1 END``: the row is still `row` in every
/// stored column but `key`'s. A CASE, so that the optimizer finds the row by its key
/// alone: given `` `k` <=> ?`` it may choose a range of the index on `k` instead, reading
/// (and gap-locking) every row with that value.
pub(crate) fn still(
    table: &Table,
    key: &[usize],
    row: &[Option<Value>],
    sql: &mut String,
    params: &mut Vec<Param>,
) -> Result<(), BuildError> {
    sql.push_str(" AND CASE WHEN ");
    same_as(table, key, row, sql, params)?;
    sql.push_str(" THEN 1 END");
    Ok(())
}

/// Appends ` WHERE …` matching the rows `rows` whose key columns are `key`:
/// `` `id` IN (?,?)`` or `` (`a` = ? AND `b` = ?) OR (…)``. `checked` (conflict
/// detection): each row only while every other column is still as in `rows`, by a CASE
/// on the key, which the optimizer cannot use to choose an index: the rows are found by
/// the key alone, as without detection (`` … AND CASE `id` WHEN ? THEN (1 AND `v` <=> ?)
/// … END``), not by a range of another index with its gap locks.
fn locate_all(
    table: &Table,
    key: &[usize],
    rows: &[&[Option<Value>]],
    checked: bool,
    sql: &mut String,
    params: &mut Vec<Param>,
) -> Result<(), BuildError> {
    sql.push_str(" WHERE ");
    if let [column] = key {
        push_quoted(sql, &table.columns[*column].name);
        sql.push_str(" IN (");
        for (n, row) in rows.iter().enumerate() {
            sql.push_str(if n == 0 { "?" } else { ",?" });
            params.push(bind_present(table, *column, row)?);
        }
        sql.push(')');
    } else {
        // Bracketed when a condition follows.
        if checked {
            sql.push('(');
        }
        for (n, row) in rows.iter().enumerate() {
            sql.push_str(if n == 0 { "(" } else { " OR (" });
            key_match(table, key, row, sql, params)?;
            sql.push(')');
        }
        if checked {
            sql.push(')');
        }
    }
    if !checked {
        return Ok(());
    }
    sql.push_str(" AND CASE");
    if let [column] = key {
        sql.push(' ');
        push_quoted(sql, &table.columns[*column].name);
    }
    for row in rows {
        if let [column] = key {
            sql.push_str(" WHEN ?");
            params.push(bind_present(table, *column, row)?);
        } else {
            sql.push_str(" WHEN ");
            key_match(table, key, row, sql, params)?;
        }
        sql.push_str(" THEN (");
        same_as(table, key, row, sql, params)?;
        sql.push(')');
    }
    sql.push_str(" END");
    Ok(())
}

/// Appends `` 1 AND `c` <=> ? AND …`` for every stored column `row` has but those of
/// `key` (`1` alone when there is none).
pub(crate) fn same_as(
    table: &Table,
    key: &[usize],
    row: &[Option<Value>],
    sql: &mut String,
    params: &mut Vec<Param>,
) -> Result<(), BuildError> {
    sql.push('1');
    for i in stored(table).filter(|i| !key.contains(i)) {
        let Some(Some(v)) = row.get(i) else {
            continue;
        };
        sql.push_str(" AND ");
        push_quoted(sql, &table.columns[i].name);
        sql.push_str(" <=> ?");
        params.push(bind(table, i, v)?);
    }
    Ok(())
}

/// Appends ` WHERE …` locating the row of `before`; returns whether it needs `LIMIT 1`.
fn locate(
    table: &Table,
    before: &[Option<Value>],
    sql: &mut String,
    params: &mut Vec<Param>,
) -> Result<bool, BuildError> {
    let keys = key_columns(table);
    if let Some(k) = locating_key(&keys, before) {
        sql.push_str(" WHERE ");
        key_match(table, &keys[k], before, sql, params)?;
        return Ok(false);
    }
    // No usable key: every stored column the image has, NULL-safe.
    let mut n = 0;
    for i in stored(table) {
        let Some(Some(v)) = before.get(i) else {
            continue;
        };
        sql.push_str(if n == 0 { " WHERE " } else { " AND " });
        push_quoted(sql, &table.columns[i].name);
        sql.push_str(" <=> ?");
        params.push(bind(table, i, v)?);
        n += 1;
    }
    if n == 0 {
        return Err(BuildError::Missing {
            table: table.qualified(),
            column: "(any column to locate the row by)".into(),
        });
    }
    Ok(true)
}

/// DELETE of the row `before` identifies.
pub fn delete(table: &Table, before: &[Option<Value>]) -> Result<Stmt, BuildError> {
    let mut sql = begin("DELETE FROM ", table);
    let mut params = Vec::new();
    if locate(table, before, &mut sql, &mut params)? {
        sql.push_str(" LIMIT 1");
    }
    Ok(Stmt {
        sql,
        params,
        check: None,
    })
}

/// DELETE of several rows, each located by the key columns `key` (which
/// [`locating_key`] chose for it); `checked`, only rows still as `befores` say.
pub fn delete_many(
    table: &Table,
    key: &[usize],
    befores: &[&[Option<Value>]],
    checked: bool,
) -> Result<Stmt, BuildError> {
    let mut sql = begin("DELETE FROM ", table);
    let mut params = Vec::new();
    locate_all(table, key, befores, checked, &mut sql, &mut params)?;
    Ok(Stmt {
        sql,
        params,
        check: None,
    })
}

/// Whether `after` has every stored column (what [`update_many`] needs).
pub fn full(table: &Table, after: &[Option<Value>]) -> bool {
    stored(table).all(|i| matches!(after.get(i), Some(Some(_))))
}

/// UPDATE of several rows, each located by the key columns `key` in its before image,
/// which its after image, [`full`], leaves as it is ([`keeps_key`]): each stored column
/// but the key's is set, row by row, to the after image's value. `None` when nothing is
/// set. `checked`: only rows still as their before images say.
pub fn update_many(
    table: &Table,
    key: &[usize],
    rows: &[(Row, Row)],
    checked: bool,
) -> Result<Option<Stmt>, BuildError> {
    let mut sql = begin("UPDATE ", table);
    sql.push_str(" SET ");
    let mut params = Vec::new();
    let mut set = 0;
    for i in stored(table).filter(|i| !key.contains(i)) {
        for (n, (before, after)) in rows.iter().enumerate() {
            if n == 0 {
                if set > 0 {
                    sql.push(',');
                }
                push_quoted(&mut sql, &table.columns[i].name);
                sql.push_str(" = CASE");
                if let [column] = key {
                    sql.push(' ');
                    push_quoted(&mut sql, &table.columns[*column].name);
                }
            }
            if let [column] = key {
                sql.push_str(" WHEN ? THEN ?");
                params.push(bind_present(table, *column, before)?);
            } else {
                sql.push_str(" WHEN ");
                key_match(table, key, before, &mut sql, &mut params)?;
                sql.push_str(" THEN ?");
            }
            params.push(bind_present(table, i, after)?);
        }
        if !rows.is_empty() {
            sql.push_str(" END");
            set += 1;
        }
    }
    if set == 0 {
        return Ok(None);
    }
    let befores: Vec<&[Option<Value>]> = rows.iter().map(|(b, _)| *b).collect();
    locate_all(table, key, &befores, checked, &mut sql, &mut params)?;
    Ok(Some(Stmt {
        sql,
        params,
        check: None,
    }))
}

/// Appends `` `a` = ?,`b` = ?`` for the present, stored columns of `after`; how many.
pub(crate) fn set_columns(
    table: &Table,
    after: &[Option<Value>],
    sql: &mut String,
    params: &mut Vec<Param>,
) -> Result<usize, BuildError> {
    let mut n = 0;
    for i in stored(table) {
        let Some(Some(v)) = after.get(i) else {
            continue;
        };
        if n > 0 {
            sql.push(',');
        }
        push_quoted(sql, &table.columns[i].name);
        sql.push_str(" = ?");
        params.push(bind(table, i, v)?);
        n += 1;
    }
    Ok(n)
}

/// UPDATE of the row `before` identifies to `after` (its present, stored columns); in
/// safe mode a DELETE and a REPLACE.
pub fn update(
    table: &Table,
    before: &[Option<Value>],
    after: &[Option<Value>],
    safe: bool,
) -> Result<Vec<Stmt>, BuildError> {
    if safe {
        return Ok(vec![delete(table, before)?, insert(table, &[after], true)?]);
    }
    let mut sql = begin("UPDATE ", table);
    sql.push_str(" SET ");
    let mut params = Vec::new();
    if set_columns(table, after, &mut sql, &mut params)? == 0 {
        return Ok(Vec::new()); // nothing stored changes
    }
    if locate(table, before, &mut sql, &mut params)? {
        sql.push_str(" LIMIT 1");
    }
    Ok(vec![Stmt {
        sql,
        params,
        check: None,
    }])
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use schema::Catalog;

    use super::*;
    use mysql_async::Value as V;

    fn table(sql: &str) -> Table {
        let mut c = Catalog::new();
        c.apply("", "CREATE DATABASE app").unwrap();
        c.apply("app", sql).unwrap().tables[0].1.clone().unwrap()
    }

    fn text(s: &str) -> Option<Value> {
        Some(Value::Text(Bytes::copy_from_slice(s.as_bytes())))
    }

    fn int(i: i64) -> Option<Value> {
        Some(Value::Int(i))
    }

    #[test]
    fn inserts_leave_generated_columns_to_the_downstream() {
        let t =
            table("CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(10), g INT AS (id * 2) STORED)");
        let rows = [vec![int(1), text("a"), int(2)], vec![int(2), None, int(4)]];
        let e = insert(&t, &[&rows[0], &rows[1]], false).unwrap_err();
        assert_eq!(
            e.to_string(),
            "app.t: the row image lacks column v, which the statement needs"
        );
        let rows = [
            vec![int(1), text("a"), int(2)],
            vec![int(2), Some(Value::Null), int(4)],
        ];
        let s = insert(&t, &[&rows[0], &rows[1]], false).unwrap();
        assert_eq!(s.sql, "INSERT INTO `app`.`t` (`id`,`v`) VALUES (?,?),(?,?)");
        assert_eq!(
            s.values(),
            [V::Int(1), V::Bytes(b"a".to_vec()), V::Int(2), V::NULL]
        );
        assert!(insert(&t, &[&rows[0]], true)
            .unwrap()
            .sql
            .starts_with("REPLACE INTO"));
    }

    #[test]
    fn rows_are_located_by_the_first_complete_key() {
        let t = table("CREATE TABLE t (id INT, email VARCHAR(20), n INT, UNIQUE KEY (email), PRIMARY KEY (id))");
        let before = [int(1), text("a@x"), int(5)];
        let after = [int(1), text("b@x"), int(6)];
        let s = update(&t, &before, &after, false).unwrap();
        assert_eq!(
            s[0].sql,
            "UPDATE `app`.`t` SET `id` = ?,`email` = ?,`n` = ? WHERE `id` = ?"
        );
        assert_eq!(s[0].values().last(), Some(&V::Int(1)));
        // A primary key change: the old key locates, the new values are set.
        let moved = [int(9), text("a@x"), int(5)];
        let s = update(&t, &before, &moved, false).unwrap();
        assert_eq!(
            s[0].values(),
            [V::Int(9), V::Bytes(b"a@x".to_vec()), V::Int(5), V::Int(1)]
        );
        // Without a primary key, the first unique key whose values are not NULL.
        let t = table("CREATE TABLE u (a INT, b INT, c INT, UNIQUE KEY ua (a), UNIQUE KEY ub (b))");
        let s = delete(&t, &[Some(Value::Null), int(2), int(3)]).unwrap();
        assert_eq!(s.sql, "DELETE FROM `app`.`u` WHERE `b` = ?");
        assert_eq!(s.values(), [V::Int(2)]);
    }

    #[test]
    fn without_a_usable_key_every_column_null_safely_and_limit_1() {
        let t = table("CREATE TABLE n (a INT, b VARCHAR(5), g INT AS (a + 1) VIRTUAL)");
        let s = delete(&t, &[int(1), Some(Value::Null), int(2)]).unwrap();
        assert_eq!(
            s.sql,
            "DELETE FROM `app`.`n` WHERE `a` <=> ? AND `b` <=> ? LIMIT 1"
        );
        assert_eq!(s.values(), [V::Int(1), V::NULL]);
        let s = update(
            &t,
            &[int(1), text("x"), int(2)],
            &[int(1), text("y"), int(2)],
            false,
        )
        .unwrap();
        assert_eq!(
            s[0].sql,
            "UPDATE `app`.`n` SET `a` = ?,`b` = ? WHERE `a` <=> ? AND `b` <=> ? LIMIT 1"
        );
    }

    #[test]
    fn minimal_images_and_safe_mode() {
        let t = table("CREATE TABLE t (id INT PRIMARY KEY, a INT, b INT)");
        // MINIMAL: the before image has the key, the after image the changed columns.
        let s = update(&t, &[int(1), None, None], &[None, None, int(7)], false).unwrap();
        assert_eq!(s[0].sql, "UPDATE `app`.`t` SET `b` = ? WHERE `id` = ?");
        let s = update(
            &t,
            &[int(1), int(2), int(3)],
            &[int(1), int(2), int(7)],
            true,
        )
        .unwrap();
        let sqls: Vec<&str> = s.iter().map(|s| s.sql.as_str()).collect();
        assert_eq!(
            sqls,
            [
                "DELETE FROM `app`.`t` WHERE `id` = ?",
                "REPLACE INTO `app`.`t` (`id`,`a`,`b`) VALUES (?,?,?)"
            ]
        );
        assert!(
            update(&t, &[int(1), None, None], &[None, None, None], false)
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn several_rows_by_key_and_each_row_its_own_values() {
        let t = table("CREATE TABLE t (id INT PRIMARY KEY, a INT, b VARCHAR(5))");
        let (r1, r2) = ([int(1), int(2), text("x")], [int(7), int(8), text("y")]);
        let s = delete_many(&t, &[0], &[&r1, &r2], false).unwrap();
        assert_eq!(s.sql, "DELETE FROM `app`.`t` WHERE `id` IN (?,?)");
        assert_eq!(s.values(), [V::Int(1), V::Int(7)]);
        let (a1, a2) = (
            [int(1), int(3), Some(Value::Null)],
            [int(7), int(9), text("z")],
        );
        assert!(full(&t, &a1) && !full(&t, &[None, int(9), None]));
        let s = update_many(&t, &[0], &[(&r1, &a1), (&r2, &a2)], false)
            .unwrap()
            .unwrap();
        assert_eq!(
            s.sql,
            "UPDATE `app`.`t` SET `a` = CASE `id` WHEN ? THEN ? WHEN ? THEN ? END,\
             `b` = CASE `id` WHEN ? THEN ? WHEN ? THEN ? END WHERE `id` IN (?,?)"
        );
        assert_eq!(
            s.values(),
            [
                V::Int(1),
                V::Int(3),
                V::Int(7),
                V::Int(9),
                V::Int(1),
                V::NULL,
                V::Int(7),
                V::Bytes(b"z".to_vec()),
                V::Int(1),
                V::Int(7)
            ]
        );
        // Nothing but the key: nothing to set.
        let k = table("CREATE TABLE k (id INT PRIMARY KEY)");
        let (one, two) = ([int(1)], [int(2)]);
        assert!(update_many(&k, &[0], &[(&one, &one), (&two, &two)], false)
            .unwrap()
            .is_none());
        // Which key locates a row, and whether an update keeps it.
        let u = table("CREATE TABLE u (a INT, b INT, UNIQUE KEY (a), UNIQUE KEY (b))");
        let keys = key_columns(&u);
        assert_eq!(keys, [vec![0], vec![1]]);
        assert_eq!(locating_key(&keys, &[Some(Value::Null), int(2)]), Some(1));
        assert_eq!(locating_key(&keys, &[None, None]), None);
        assert!(keeps_key(&keys[1], &[int(1), int(2)], &[int(5), int(2)]));
        assert!(!keeps_key(&keys[0], &[int(1), int(2)], &[int(5), int(2)]));
        assert!(keeps_key(&keys[0], &[int(1), int(2)], &[None, int(3)]));
    }

    #[test]
    fn identifiers_are_quoted() {
        let t = table("CREATE TABLE `we``ird` (`select` INT PRIMARY KEY)");
        assert_eq!(
            delete(&t, &[int(1)]).unwrap().sql,
            "DELETE FROM `app`.`we``ird` WHERE `select` = ?"
        );
    }
}
