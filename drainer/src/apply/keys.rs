//! Conflict keys: what a row change touches, as hashes, so that transactions that
//! share none may run at once ([`super::workers`]), and the steps ([`levels`]) in which
//! the row changes of one downstream transaction may join in multi-row statements.
//!
//! Every row change names keys: its table with the values of the primary key and of
//! each unique key, for the before and the after image (a table with neither names the
//! table itself, so all its changes conflict; so does an image whose every key holds a
//! NULL, which a unique key does not constrain, whatever the change's other image
//! names). Text compares case-insensitively (Unicode case where it is UTF-8) and without
//! trailing spaces, as the usual collations do. Hashes stand for keys: a collision only
//! makes two transactions wait for each other. The downstream's foreign keys link
//! tables ([`links`]): a change of a child table names its parent table, and a change
//! of a parent table names itself.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use schema::{Table, Value};

use super::changes::RowChange;
use super::downstream::ForeignKey;

/// Per table (lower-case schema and name): the keys its foreign keys add to every change.
pub type Links = HashMap<(String, String), Vec<u64>>;

/// [`Links`] of the downstream's foreign keys.
pub fn links(foreign_keys: &[ForeignKey]) -> Links {
    let key = |schema: &str, table: &str| {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        "foreign key parent".hash(&mut h);
        schema.to_ascii_lowercase().hash(&mut h);
        table.to_ascii_lowercase().hash(&mut h);
        h.finish()
    };
    let mut links = Links::new();
    let mut add = |schema: &str, table: &str, k: u64| {
        let entry = links
            .entry((schema.to_ascii_lowercase(), table.to_ascii_lowercase()))
            .or_default();
        if !entry.contains(&k) {
            entry.push(k);
        }
    };
    for fk in foreign_keys {
        let ((cs, ct), (ps, pt)) = (&fk.child, &fk.parent);
        let k = key(ps, pt);
        add(cs, ct, k);
        add(ps, pt, k);
    }
    links
}

/// Hashes a key that is a hash already: the key itself.
#[derive(Default)]
pub(crate) struct PassThrough(u64);

impl Hasher for PassThrough {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

/// A map by key hash (no second hashing).
pub(crate) type KeyMap<V> = HashMap<u64, V, std::hash::BuildHasherDefault<PassThrough>>;

/// Feeds text to a hasher through `write!` (no allocation).
struct HashWriter<'a, H: Hasher>(&'a mut H);

impl<H: Hasher> std::fmt::Write for HashWriter<'_, H> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.0.write(s.as_bytes());
        Ok(())
    }
}

fn hash_value(h: &mut impl Hasher, value: Option<&Value>) {
    use std::fmt::Write;
    match value {
        // As the usual collations compare: case and trailing spaces aside (Unicode case
        // where the text is UTF-8 beyond ASCII; folding more only makes more conflicts).
        Some(Value::Text(b)) => {
            let trimmed = &b[..b.len() - b.iter().rev().take_while(|c| **c == b' ').count()];
            // The common all-ASCII value is never validated as UTF-8.
            let unicode = (!trimmed.is_ascii())
                .then(|| std::str::from_utf8(trimmed).ok())
                .flatten();
            match unicode {
                Some(text) => {
                    let mut buf = [0u8; 4];
                    for c in text.chars().flat_map(char::to_lowercase) {
                        for byte in c.encode_utf8(&mut buf).bytes() {
                            h.write_u8(byte);
                        }
                    }
                }
                None => {
                    for c in trimmed {
                        h.write_u8(c.to_ascii_lowercase());
                    }
                }
            }
            h.write_u8(0xff);
        }
        // The usual key types without formatting them.
        Some(Value::Int(i)) => {
            h.write_u8(1);
            h.write_i64(*i);
        }
        Some(Value::UInt(u)) => {
            h.write_u8(2);
            h.write_u64(*u);
        }
        Some(Value::Bytes(b)) => {
            h.write_u8(3);
            h.write(b);
            h.write_u8(0xff);
        }
        Some(v) => {
            write!(HashWriter(h), "{v:?}").ok();
        }
        None => h.write_u8(0),
    }
}

/// The keys of row changes: change `i`'s are `keys[ends[i - 1]..ends[i]]`.
#[derive(Default)]
pub struct ChangeKeys {
    keys: Vec<u64>,
    ends: Vec<usize>,
}

impl ChangeKeys {
    /// Each change's keys, in order.
    pub fn each(&self) -> impl Iterator<Item = &[u64]> {
        let starts = std::iter::once(0).chain(self.ends.iter().copied());
        starts.zip(&self.ends).map(|(a, &b)| &self.keys[a..b])
    }

    /// All the keys, once each, sorted.
    pub(crate) fn set(&self) -> Vec<u64> {
        let mut keys = self.keys.clone();
        keys.sort_unstable();
        keys.dedup();
        keys
    }
}

/// For each row change in order (given its keys), the step it may run in: one past the
/// latest step of an earlier change it shares a key with, else 0. Changes of one step
/// share no key; each change comes after every earlier one it shares a key with.
pub fn levels<'a>(keys: impl Iterator<Item = &'a [u64]>) -> Vec<u32> {
    let mut latest: KeyMap<u32> = KeyMap::default();
    keys.map(|keys| {
        let level = keys
            .iter()
            .filter_map(|k| latest.get(k))
            .map(|l| l + 1)
            .max()
            .unwrap_or(0);
        for k in keys {
            latest.insert(*k, level);
        }
        level
    })
    .collect()
}

/// The conflict keys of a transaction's row changes (see the module note), each
/// change's apart.
pub fn change_keys(changes: &[RowChange], links: &Links) -> ChangeKeys {
    /// What a table's changes need, worked out once per table of the transaction.
    struct Layout<'a> {
        table: &'a Arc<Table>,
        /// Hash of the table's name: the start of every key of its rows.
        name: u64,
        /// Column positions of its primary and unique keys.
        keys: Vec<Vec<usize>>,
        /// Keys its foreign keys add.
        links: &'a [u64],
    }
    let mut layouts: Vec<Layout> = Vec::new();
    let mut keys = Vec::with_capacity(changes.len() * 2);
    let mut ends = Vec::with_capacity(changes.len());
    for change in changes {
        let layout = match layouts
            .iter()
            .position(|l| Arc::ptr_eq(l.table, &change.table))
        {
            Some(i) => &layouts[i],
            None => {
                let table = &change.table;
                let lower = (
                    table.schema.to_ascii_lowercase(),
                    table.name.to_ascii_lowercase(),
                );
                let mut h = std::collections::hash_map::DefaultHasher::new();
                lower.hash(&mut h);
                layouts.push(Layout {
                    table,
                    name: h.finish(),
                    keys: super::sql::key_columns(table),
                    links: links.get(&lower).map_or(&[], Vec::as_slice),
                });
                layouts.last().expect("pushed")
            }
        };
        keys.extend(layout.links);
        let before = change.before.as_deref();
        let mut unkeyed = false;
        for image in [before, change.after.as_deref()].into_iter().flatten() {
            let start = keys.len();
            'key: for (k, columns) in layout.keys.iter().enumerate() {
                let mut h = std::collections::hash_map::DefaultHasher::new();
                h.write_u64(layout.name);
                k.hash(&mut h);
                for &c in columns {
                    // A column the after image lacks (MINIMAL, NOBLOB) kept its value.
                    let value = match image.get(c) {
                        Some(Some(v)) => Some(v),
                        _ => before.and_then(|b| b.get(c)).and_then(Option::as_ref),
                    };
                    if value == Some(&Value::Null) {
                        // A unique key holds any number of NULLs: no key.
                        continue 'key;
                    }
                    hash_value(&mut h, value);
                }
                keys.push(h.finish());
            }
            // An image without a key (none at all, or NULL in every one) is a row known
            // by all its columns: it conflicts with every such image of its table, and
            // with the change that gave it a key or takes it away, whose other image
            // names one.
            unkeyed |= keys.len() == start;
        }
        // Every change has an image, so a change without any key is unkeyed too.
        if unkeyed {
            keys.push(layout.name);
        }
        ends.push(keys.len());
    }
    ChangeKeys { keys, ends }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::apply::test_table as table;

    fn text(s: &str) -> Option<Value> {
        Some(Value::Text(Bytes::copy_from_slice(s.as_bytes())))
    }

    fn int(i: i64) -> Option<Value> {
        Some(Value::Int(i))
    }

    fn change(
        t: &Arc<Table>,
        before: Option<Vec<Option<Value>>>,
        after: Option<Vec<Option<Value>>>,
    ) -> RowChange {
        RowChange {
            table: Arc::clone(t),
            before,
            after,
            checks: Default::default(),
            raw: None,
        }
    }

    /// Whether two transactions (their changes) share a key.
    fn conflict(a: &[RowChange], b: &[RowChange], links: &Links) -> bool {
        let (ka, kb) = (change_keys(a, links).set(), change_keys(b, links).set());
        ka.iter().any(|k| kb.contains(k))
    }

    #[test]
    fn keys_link_rows_by_primary_and_unique_keys_in_either_image() {
        let t = table("CREATE TABLE t (id INT PRIMARY KEY, u VARCHAR(10), v INT, UNIQUE KEY (u))");
        let none = Links::new();
        let insert = |id, u: &str, v| vec![change(&t, None, Some(vec![int(id), text(u), int(v)]))];
        // Same primary key; a unique value written by one and held by the other (after
        // image of one, before image of the other); nothing shared.
        assert!(conflict(&insert(1, "a", 1), &insert(1, "b", 2), &none));
        let moved = vec![change(
            &t,
            Some(vec![int(2), text("x"), int(0)]),
            Some(vec![int(2), text("y"), int(0)]),
        )];
        assert!(
            conflict(&moved, &insert(3, "x", 0), &none),
            "the before image's unique value"
        );
        assert!(
            conflict(&moved, &insert(4, "y", 0), &none),
            "the after image's unique value"
        );
        assert!(!conflict(&insert(5, "p", 1), &insert(6, "q", 1), &none));
        // As the usual collations compare text: case and trailing spaces aside.
        assert!(conflict(
            &insert(7, "Key", 0),
            &insert(8, "kEY  ", 0),
            &none
        ));
        assert!(conflict(
            &insert(7, "José", 0),
            &insert(8, "JOSÉ", 0),
            &none
        ));
        // An after image lacking a key column (MINIMAL) kept the before image's value:
        // updates of two rows stay apart, and a unique key's other column counts.
        let minimal = |id, u: &str, v| {
            let before = Some(vec![int(id), text(u), int(0)]);
            vec![change(&t, before, Some(vec![None, None, int(v)]))]
        };
        assert!(!conflict(&minimal(10, "m", 1), &minimal(11, "n", 1), &none));
        assert!(conflict(&minimal(10, "m", 1), &minimal(10, "m", 2), &none));
        assert!(conflict(&minimal(12, "o", 1), &insert(13, "o", 0), &none));
        // A NULL in a unique key constrains nothing: two rows apart by their primary
        // keys; without one, such rows are known by all their columns (the table).
        let null = Some(Value::Null);
        let with_null = |id| vec![change(&t, None, Some(vec![int(id), null.clone(), int(0)]))];
        assert!(!conflict(&with_null(20), &with_null(21), &none));
        let u = table("CREATE TABLE u (a INT NULL, b INT, UNIQUE KEY (a))");
        let nulls = |b| vec![change(&u, Some(vec![null.clone(), int(b)]), None)];
        assert!(conflict(&nulls(1), &nulls(2), &none));
        // A row whose unique value goes from NULL to 7 (or back) conflicts with the
        // change that wrote (or deletes) it with the NULL, which only the table names:
        // else the UPDATE could run first, find no row, and the INSERT leave it NULL.
        let inserted = vec![change(&u, None, Some(vec![null.clone(), int(1)]))];
        let keyed = vec![change(
            &u,
            Some(vec![null.clone(), int(1)]),
            Some(vec![int(7), int(1)]),
        )];
        assert!(conflict(&inserted, &keyed, &none), "NULL to 7");
        let unkeyed = vec![change(
            &u,
            Some(vec![int(7), int(1)]),
            Some(vec![null.clone(), int(1)]),
        )];
        assert!(conflict(&unkeyed, &nulls(1), &none), "7 to NULL");
        // The same values in another table are other keys.
        let other = table("CREATE TABLE o (id INT PRIMARY KEY, u VARCHAR(10), v INT)");
        let in_other = vec![change(&other, None, Some(vec![int(1), text("a"), int(1)]))];
        assert!(!conflict(&insert(1, "a", 1), &in_other, &none));
    }

    #[test]
    fn a_table_without_keys_conflicts_with_itself_and_foreign_keys_link_tables() {
        let log = table("CREATE TABLE log (n INT, msg VARCHAR(10))");
        let row = |n| vec![change(&log, None, Some(vec![int(n), text("m")]))];
        assert!(conflict(&row(1), &row(2), &Links::new()));

        let parent = table("CREATE TABLE parent (id INT PRIMARY KEY)");
        let child = table("CREATE TABLE child (id INT PRIMARY KEY, p INT)");
        let p = vec![change(&parent, Some(vec![int(5)]), None)];
        let c = vec![change(&child, None, Some(vec![int(10), int(5)]))];
        assert!(!conflict(&p, &c, &Links::new()));
        let fks = links(&[ForeignKey {
            child: ("app".into(), "child".into()),
            parent: ("APP".into(), "Parent".into()),
        }]);
        assert!(conflict(&p, &c, &fks), "linked by the foreign key");
        let unrelated = table("CREATE TABLE other (id INT PRIMARY KEY)");
        let u = vec![change(&unrelated, None, Some(vec![int(5)]))];
        assert!(!conflict(&u, &c, &fks));
    }
}
