//! DDL text with its schema and table names replaced by the names they have downstream
//! (`[[syncer.route]]`): the statement's own text, spliced where it names a table or a
//! schema, so everything else of it (options, comments, string escapes) goes as written.
//!
//! The forms whose names are found: CREATE / ALTER / DROP / TRUNCATE / RENAME TABLE,
//! CREATE TABLE … LIKE, `REFERENCES` of a foreign key, CREATE / DROP INDEX … ON, and
//! CREATE / ALTER / DROP DATABASE. Views, triggers, routines and events hold statements
//! whose table names this cannot find: such a statement that could name a routed table is
//! refused ([`Rename::Refused`]) rather than run against the wrong one.

use sqlparser::dialect::MySqlDialect;
use sqlparser::tokenizer::{Token, TokenWithSpan, Tokenizer};

use super::tokens::SqlMode;

/// Where names go downstream.
pub trait Routes {
    /// The downstream `(schema, table)` of an upstream table, when it differs.
    fn table(&self, schema: &str, table: &str) -> Option<(String, String)>;
    /// The downstream name of an upstream schema, when it differs.
    fn schema(&self, schema: &str) -> Option<String>;
}

/// What [`rename`] made of a statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rename {
    /// It names nothing routed: it runs as it is.
    Unchanged,
    /// Its text with the routed names replaced.
    Renamed(String),
    /// A statement whose names cannot be found, and that may name something routed.
    Refused(String),
}

/// `sql` (run with `default` as its current schema, written in `mode`) with every schema
/// and table name it gives replaced by its downstream name.
pub fn rename(sql: &str, default: &str, mode: SqlMode, routes: &dyn Routes) -> Rename {
    // Under NO_BACKSLASH_ESCAPES a backslash is a plain character: read as one that is no
    // escape (the same length, so every location still points into `sql`).
    let read = match mode.no_backslash_escapes && sql.contains('\\') {
        true => std::borrow::Cow::Owned(sql.replace('\\', "_")),
        false => std::borrow::Cow::Borrowed(sql),
    };
    let tokens = match Tokenizer::new(&MySqlDialect {}, &read).tokenize_with_location() {
        Ok(t) => t,
        Err(e) => return Rename::Refused(format!("cannot read the statement: {e}")),
    };
    let tokens: Vec<TokenWithSpan> = tokens
        .into_iter()
        .filter(|t| !matches!(t.token, Token::Whitespace(_) | Token::EOF))
        .collect();
    let offsets = Offsets::new(sql);
    let mut edit = Edit {
        sql,
        tokens: &tokens,
        offsets,
        default,
        mode,
        routes,
        splices: Vec::new(),
    };
    match edit.statement() {
        Ok(()) => {}
        Err(reason) => return Rename::Refused(reason),
    }
    if edit.splices.is_empty() {
        return Rename::Unchanged;
    }
    let mut out = String::with_capacity(sql.len() + 32);
    let mut last = 0;
    let mut splices = edit.splices;
    splices.sort_by_key(|s| s.0);
    for (from, to, text) in splices {
        out.push_str(&sql[last..from]);
        out.push_str(&text);
        last = to;
    }
    out.push_str(&sql[last..]);
    Rename::Renamed(out)
}

/// Byte offsets of (line, column) locations (both from 1, columns in characters).
struct Offsets {
    lines: Vec<usize>,
}

impl Offsets {
    fn new(sql: &str) -> Offsets {
        let mut lines = vec![0];
        lines.extend(sql.match_indices('\n').map(|(i, _)| i + 1));
        Offsets { lines }
    }

    fn at(&self, sql: &str, line: u64, column: u64) -> usize {
        let start = self.lines[(line as usize).saturating_sub(1).min(self.lines.len() - 1)];
        sql[start..]
            .char_indices()
            .nth((column as usize).saturating_sub(1))
            .map_or(sql.len(), |(i, _)| start + i)
    }
}

struct Edit<'a> {
    sql: &'a str,
    tokens: &'a [TokenWithSpan],
    offsets: Offsets,
    default: &'a str,
    mode: SqlMode,
    routes: &'a dyn Routes,
    /// (from, to, text): byte ranges of `sql` to replace.
    splices: Vec<(usize, usize, String)>,
}

/// An object name in the statement: its tokens `from..to`, its schema (if written) and
/// name.
struct Name {
    from: usize,
    to: usize,
    schema: Option<String>,
    name: String,
}

impl Edit<'_> {
    /// The keyword (an unquoted word, upper case) at `i`.
    fn word(&self, i: usize) -> Option<String> {
        match &self.tokens.get(i)?.token {
            Token::Word(w) if w.quote_style.is_none() => Some(w.value.to_ascii_uppercase()),
            _ => None,
        }
    }

    fn is(&self, i: usize, keyword: &str) -> bool {
        self.word(i).is_some_and(|w| w == keyword)
    }

    /// `i` past the keywords `words` (in order), if they are there.
    fn skip(&self, i: usize, words: &[&str]) -> usize {
        if words.iter().enumerate().all(|(n, w)| self.is(i + n, w)) {
            i + words.len()
        } else {
            i
        }
    }

    /// An identifier at `i` (a word, quoted or not; a double-quoted one under ANSI_QUOTES).
    fn identifier(&self, i: usize) -> Option<String> {
        match &self.tokens.get(i)?.token {
            Token::Word(w) => Some(w.value.clone()),
            Token::DoubleQuotedString(s) if self.mode.ansi_quotes => Some(s.clone()),
            _ => None,
        }
    }

    /// The name (`t` or `s.t`) at `i`.
    fn name(&self, i: usize) -> Result<Name, String> {
        let first = self
            .identifier(i)
            .ok_or_else(|| format!("expected a name at token {}", i + 1))?;
        if matches!(
            self.tokens.get(i + 1).map(|t| &t.token),
            Some(Token::Period)
        ) {
            let second = self
                .identifier(i + 2)
                .ok_or_else(|| format!("expected a name after `{first}.`"))?;
            return Ok(Name {
                from: i,
                to: i + 3,
                schema: Some(first),
                name: second,
            });
        }
        Ok(Name {
            from: i,
            to: i + 1,
            schema: None,
            name: first,
        })
    }

    fn span(&self, from: usize, to: usize) -> (usize, usize) {
        let start = self.tokens[from].span.start;
        let end = self.tokens[to - 1].span.end;
        (
            self.offsets.at(self.sql, start.line, start.column),
            self.offsets.at(self.sql, end.line, end.column),
        )
    }

    /// Replaces the table name at `i` if it is routed; the index past it.
    fn table_at(&mut self, i: usize) -> Result<usize, String> {
        let n = self.name(i)?;
        let schema = n.schema.clone().unwrap_or_else(|| self.default.to_owned());
        if schema.is_empty() {
            return Ok(n.to);
        }
        let target = self
            .routes
            .table(&schema, &n.name)
            .or_else(|| self.routes.schema(&schema).map(|s| (s, n.name.clone())));
        if let Some((s, t)) = target {
            let (from, to) = self.span(n.from, n.to);
            self.splices
                .push((from, to, format!("{}.{}", quote(&s), quote(&t))));
        }
        Ok(n.to)
    }

    /// Replaces the schema name at `i` if it is routed.
    fn schema_at(&mut self, i: usize) -> Result<(), String> {
        let Some(name) = self.identifier(i) else {
            return Err(format!("expected a schema name at token {}", i + 1));
        };
        if let Some(s) = self.routes.schema(&name) {
            let (from, to) = self.span(i, i + 1);
            self.splices.push((from, to, quote(&s)));
        }
        Ok(())
    }

    /// Every `REFERENCES <table>` from `i` on.
    fn references(&mut self, mut i: usize) -> Result<(), String> {
        while i < self.tokens.len() {
            if self.is(i, "REFERENCES") {
                i = self.table_at(i + 1)?;
            } else {
                i += 1;
            }
        }
        Ok(())
    }

    fn statement(&mut self) -> Result<(), String> {
        let Some(first) = self.word(0) else {
            return Ok(());
        };
        match first.as_str() {
            "CREATE" => self.create(),
            "ALTER" => self.alter(),
            "DROP" => self.drop(),
            "RENAME" if self.is(1, "TABLE") || self.is(1, "TABLES") => {
                // RENAME TABLE a TO b [, c TO d]...
                let mut i = 2;
                loop {
                    i = self.table_at(i)?;
                    if !self.is(i, "TO") {
                        return Err("expected TO in RENAME TABLE".into());
                    }
                    i = self.table_at(i + 1)?;
                    match self.tokens.get(i).map(|t| &t.token) {
                        Some(Token::Comma) => i += 1,
                        _ => return Ok(()),
                    }
                }
            }
            "TRUNCATE" => {
                let i = self.skip(1, &["TABLE"]);
                self.table_at(i).map(drop)
            }
            _ => self.other(),
        }
    }

    fn create(&mut self) -> Result<(), String> {
        let mut i = self.skip(1, &["OR", "REPLACE"]);
        i = self.skip(i, &["TEMPORARY"]);
        match self.word(i).as_deref() {
            Some("TABLE") => {
                i = self.skip(i + 1, &["IF", "NOT", "EXISTS"]);
                i = self.table_at(i)?;
                // CREATE TABLE t LIKE s, or (LIKE s).
                let like = if self.is(i, "LIKE") {
                    Some(i + 1)
                } else if matches!(self.tokens.get(i).map(|t| &t.token), Some(Token::LParen))
                    && self.is(i + 1, "LIKE")
                {
                    Some(i + 2)
                } else {
                    None
                };
                if let Some(at) = like {
                    i = self.table_at(at)?;
                }
                self.references(i)
            }
            Some("DATABASE" | "SCHEMA") => {
                let i = self.skip(i + 1, &["IF", "NOT", "EXISTS"]);
                self.schema_at(i)
            }
            Some("UNIQUE" | "FULLTEXT" | "SPATIAL" | "INDEX") => self.index_on(i),
            _ => self.other(),
        }
    }

    /// `… INDEX name … ON <table>`.
    fn index_on(&mut self, from: usize) -> Result<(), String> {
        let on = (from..self.tokens.len())
            .find(|&i| self.is(i, "ON"))
            .ok_or("expected ON in an INDEX statement")?;
        self.table_at(on + 1).map(drop)
    }

    fn alter(&mut self) -> Result<(), String> {
        let mut i = self.skip(1, &["ONLINE"]);
        i = self.skip(i, &["IGNORE"]);
        match self.word(i).as_deref() {
            Some("TABLE") => {
                i = self.skip(i + 1, &["IF", "EXISTS"]);
                i = self.table_at(i)?;
                // RENAME [TO | AS] <table>, not RENAME COLUMN / INDEX / KEY.
                while i < self.tokens.len() {
                    if self.is(i, "RENAME") {
                        let next = self.word(i + 1);
                        match next.as_deref() {
                            Some("COLUMN" | "INDEX" | "KEY") => i += 2,
                            Some("TO" | "AS") => i = self.table_at(i + 2)?,
                            _ => i = self.table_at(i + 1)?,
                        }
                    } else if self.is(i, "REFERENCES") || self.is(i, "TABLE") {
                        // A foreign key's table; a partition's (EXCHANGE PARTITION … WITH
                        // TABLE t, CONVERT PARTITION … TO TABLE t, CONVERT TABLE t …).
                        i = self.table_at(i + 1)?;
                    } else {
                        i += 1;
                    }
                }
                Ok(())
            }
            Some("DATABASE" | "SCHEMA") => {
                // ALTER DATABASE [name] options: the name, when one is given.
                match self.word(i + 1) {
                    Some(w) if super::DATABASE_OPTIONS.contains(&w.as_str()) => {
                        // The default schema's: it runs with USE of its downstream name.
                        Ok(())
                    }
                    _ if self.identifier(i + 1).is_some() => self.schema_at(i + 1),
                    _ => Ok(()),
                }
            }
            _ => self.other(),
        }
    }

    fn drop(&mut self) -> Result<(), String> {
        let mut i = self.skip(1, &["TEMPORARY"]);
        match self.word(i).as_deref() {
            Some("TABLE" | "TABLES") => {
                i = self.skip(i + 1, &["IF", "EXISTS"]);
                loop {
                    i = self.table_at(i)?;
                    match self.tokens.get(i).map(|t| &t.token) {
                        Some(Token::Comma) => i += 1,
                        _ => return Ok(()),
                    }
                }
            }
            Some("DATABASE" | "SCHEMA") => {
                let i = self.skip(i + 1, &["IF", "EXISTS"]);
                self.schema_at(i)
            }
            Some("INDEX") => self.index_on(i),
            _ => self.other(),
        }
    }

    /// Any other statement: as it is, unless it may name something routed (its current
    /// schema is routed, or a name it holds is a routed schema or table).
    fn other(&mut self) -> Result<(), String> {
        let routed_default = !self.default.is_empty()
            && (self.routes.schema(self.default).is_some()
                || self
                    .tokens
                    .iter()
                    .filter_map(|t| match &t.token {
                        Token::Word(w) => Some(w.value.as_str()),
                        _ => None,
                    })
                    .any(|w| self.routes.table(self.default, w).is_some()));
        let names_routed = self.tokens.iter().enumerate().any(|(i, _)| {
            self.identifier(i).is_some_and(|w| {
                self.routes.schema(&w).is_some()
                    || self.name(i).is_ok_and(|n| {
                        n.schema
                            .is_some_and(|s| self.routes.table(&s, &n.name).is_some())
                    })
            })
        });
        if routed_default || names_routed {
            return Err(
                "the names it holds cannot be rewritten (only those of CREATE, ALTER, DROP, \
                 TRUNCATE and RENAME of tables, indexes and databases can), and it may name a \
                 routed schema or table"
                    .into(),
            );
        }
        Ok(())
    }
}

fn quote(name: &str) -> String {
    format!("`{}`", name.replace('`', "``"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `app` is `app_eu` downstream, and `app.orders` is `app_eu.orders_a`; `shop.items`
    /// is `shop.items_b` (its schema keeps its name).
    struct Eu;

    impl Routes for Eu {
        fn table(&self, schema: &str, table: &str) -> Option<(String, String)> {
            match (schema, table) {
                ("app", "orders") => Some(("app_eu".into(), "orders_a".into())),
                ("shop", "items") => Some(("shop".into(), "items_b".into())),
                _ => None,
            }
        }
        fn schema(&self, schema: &str) -> Option<String> {
            (schema == "app").then(|| "app_eu".into())
        }
    }

    fn renamed(sql: &str, default: &str) -> String {
        match rename(sql, default, SqlMode::default(), &Eu) {
            Rename::Renamed(s) => s,
            other => panic!("{sql}: {other:?}"),
        }
    }

    #[test]
    fn tables_in_every_form() {
        assert_eq!(
            renamed("ALTER TABLE orders ADD COLUMN x INT", "app"),
            "ALTER TABLE `app_eu`.`orders_a` ADD COLUMN x INT"
        );
        assert_eq!(
            renamed("alter table `app`.`users` add y int /* keep */", "shop"),
            "alter table `app_eu`.`users` add y int /* keep */"
        );
        assert_eq!(
            renamed("CREATE TABLE IF NOT EXISTS app.t (id INT PRIMARY KEY, o INT, FOREIGN KEY (o) REFERENCES orders (id))", "app"),
            "CREATE TABLE IF NOT EXISTS `app_eu`.`t` (id INT PRIMARY KEY, o INT, FOREIGN KEY (o) REFERENCES `app_eu`.`orders_a` (id))"
        );
        assert_eq!(
            renamed("CREATE TABLE shop.c LIKE app.orders", ""),
            "CREATE TABLE shop.c LIKE `app_eu`.`orders_a`"
        );
        assert_eq!(
            renamed("DROP TABLE IF EXISTS `orders`, shop.items, shop.other /* generated by server */", "app"),
            "DROP TABLE IF EXISTS `app_eu`.`orders_a`, `shop`.`items_b`, shop.other /* generated by server */"
        );
        assert_eq!(
            renamed(
                "RENAME TABLE shop.items TO shop.old_items, app.x TO app.y",
                ""
            ),
            "RENAME TABLE `shop`.`items_b` TO shop.old_items, `app_eu`.`x` TO `app_eu`.`y`"
        );
        assert_eq!(
            renamed("TRUNCATE items", "shop"),
            "TRUNCATE `shop`.`items_b`"
        );
        assert_eq!(
            renamed("CREATE UNIQUE INDEX u ON orders (x)", "app"),
            "CREATE UNIQUE INDEX u ON `app_eu`.`orders_a` (x)"
        );
        assert_eq!(
            renamed("DROP INDEX u ON orders", "app"),
            "DROP INDEX u ON `app_eu`.`orders_a`"
        );
        assert_eq!(
            renamed(
                "ALTER TABLE shop.items RENAME TO shop.items2, RENAME COLUMN a TO b",
                ""
            ),
            "ALTER TABLE `shop`.`items_b` RENAME TO shop.items2, RENAME COLUMN a TO b"
        );
        assert_eq!(
            renamed(
                "ALTER TABLE orders EXCHANGE PARTITION p WITH TABLE shop.items",
                "app"
            ),
            "ALTER TABLE `app_eu`.`orders_a` EXCHANGE PARTITION p WITH TABLE `shop`.`items_b`"
        );
        assert_eq!(
            renamed("CREATE DATABASE app", ""),
            "CREATE DATABASE `app_eu`"
        );
        assert_eq!(
            renamed("DROP SCHEMA IF EXISTS app", ""),
            "DROP SCHEMA IF EXISTS `app_eu`"
        );
        assert_eq!(
            renamed("ALTER DATABASE app CHARACTER SET utf8mb4", ""),
            "ALTER DATABASE `app_eu` CHARACTER SET utf8mb4"
        );
        // Several lines, and text in other characters before the name.
        assert_eq!(
            renamed("/* é */ ALTER TABLE\n  shop.items\n  COMMENT 'ü'", ""),
            "/* é */ ALTER TABLE\n  `shop`.`items_b`\n  COMMENT 'ü'"
        );
    }

    #[test]
    fn a_backslash_is_a_character_under_no_backslash_escapes() {
        let mode = SqlMode {
            ansi_quotes: false,
            no_backslash_escapes: true,
        };
        assert_eq!(
            rename(
                "ALTER TABLE orders COMMENT 'C:\\', ADD x INT",
                "app",
                mode,
                &Eu
            ),
            Rename::Renamed("ALTER TABLE `app_eu`.`orders_a` COMMENT 'C:\\', ADD x INT".into())
        );
    }

    #[test]
    fn nothing_routed_is_left_as_it_is() {
        for (sql, default) in [
            ("ALTER TABLE t ADD x INT", "shop"),
            ("CREATE TABLE other.t (id INT)", "app"),
            ("DROP DATABASE other", ""),
            ("CREATE VIEW v AS SELECT 1", "shop"),
            ("ALTER DATABASE CHARACTER SET utf8mb4", "shop"),
        ] {
            assert_eq!(
                rename(sql, default, SqlMode::default(), &Eu),
                Rename::Unchanged,
                "{sql}"
            );
        }
    }

    #[test]
    fn ansi_quotes_name_tables_too() {
        let mode = SqlMode {
            ansi_quotes: true,
            no_backslash_escapes: false,
        };
        assert_eq!(
            rename("ALTER TABLE \"app\".\"orders\" ADD x INT", "", mode, &Eu),
            Rename::Renamed("ALTER TABLE `app_eu`.`orders_a` ADD x INT".into())
        );
    }

    #[test]
    fn statements_whose_names_cannot_be_found_are_refused_where_they_may_name_a_route() {
        for (sql, default) in [
            ("CREATE VIEW v AS SELECT * FROM orders", "app"),
            ("CREATE VIEW other.v AS SELECT * FROM app.t", "other"),
            (
                "CREATE TRIGGER tr BEFORE INSERT ON items FOR EACH ROW SET @x = 1",
                "shop",
            ),
        ] {
            assert!(
                matches!(
                    rename(sql, default, SqlMode::default(), &Eu),
                    Rename::Refused(_)
                ),
                "{sql}"
            );
        }
    }
}
