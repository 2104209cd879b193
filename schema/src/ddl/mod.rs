//! Applying statements to the catalog of tracked tables.
//!
//! A statement is tokenized (sqlparser's tokenizer), classified by its leading keywords,
//! and applied: statement forms and ALTER specs are read from the tokens, column
//! definitions are parsed by sqlparser. MariaDB forms sqlparser rejects are handled here
//! (ZEROFILL, PERSISTENT, PARTITION BY, `IF [NOT] EXISTS` in specs, DROP KEY, RENAME
//! INDEX, option-only specs, ALTER ONLINE TABLE).

mod columns;
mod keys;
mod tokens;

use std::collections::BTreeMap;

use sqlparser::ast::{ColumnOption, Statement};
use sqlparser::dialect::MySqlDialect;
use sqlparser::parser::Parser;
use sqlparser::tokenizer::Token;

use crate::model::{Column, Index, Table};
use keys::{is_key_definition, parse_key, KeyDef, KeyKind};
use tokens::{closing_paren, ident, is_word, render, split_top_level, starts_with, tokenize};

pub(crate) use columns::charset_of_collation;

/// A schema (database) and its defaults.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Database {
    pub charset: Option<String>,
    pub collation: Option<String>,
}

/// A statement the tracker could not apply. The caller adds the binlog position.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot track `{statement}`: {reason}")]
pub struct DdlError {
    /// The statement (shortened to 300 characters).
    pub statement: String,
    pub reason: String,
}

/// What kind of statement it was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// CREATE/ALTER/DROP/RENAME TABLE, CREATE/DROP INDEX.
    Table,
    /// CREATE/ALTER/DROP DATABASE.
    Database,
    /// TRUNCATE: data, not definitions.
    Truncate,
    /// Views, triggers, procedures, functions, events, sequences.
    Object,
    /// Users, roles, grants, passwords.
    Account,
    /// OPTIMIZE, ANALYZE, REPAIR, CHECK, FLUSH.
    Maintenance,
    /// Anything else that changes no table (SET, INSTALL PLUGIN, LOCK, …).
    Other,
}

/// What applying a statement changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    pub class: Class,
    /// Each table the statement created, changed or dropped, with its definition now
    /// (`None`: it no longer exists), in the order they changed.
    pub tables: Vec<((String, String), Option<Table>)>,
    /// Each database created, changed or dropped.
    pub databases: Vec<(String, Option<Database>)>,
}

/// Every tracked table and database.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Catalog {
    pub databases: BTreeMap<String, Database>,
    pub tables: BTreeMap<(String, String), Table>,
}

/// A statement being applied.
struct Ctx<'a> {
    default_schema: &'a str,
    sql: &'a str,
}

impl Ctx<'_> {
    fn err(&self, reason: impl Into<String>) -> DdlError {
        let mut statement: String = self.sql.trim().chars().take(300).collect();
        if self.sql.trim().chars().count() > 300 {
            statement.push('…');
        }
        DdlError {
            statement,
            reason: reason.into(),
        }
    }

    /// `db.t` or `t` (in the default schema) at `tokens[i..]`; returns the next index.
    fn table_name(
        &self,
        tokens: &[Token],
        i: usize,
    ) -> Result<((String, String), usize), DdlError> {
        let first = ident(tokens.get(i)).ok_or_else(|| {
            self.err(format!(
                "expected a table name at `{}`",
                render(&tokens[i.min(tokens.len())..])
            ))
        })?;
        if matches!(tokens.get(i + 1), Some(Token::Period)) {
            let second = ident(tokens.get(i + 2))
                .ok_or_else(|| self.err("expected a table name after the schema"))?;
            Ok(((first, second), i + 3))
        } else {
            if self.default_schema.is_empty() {
                return Err(self.err(format!(
                    "table `{first}` has no schema and no USE is in effect"
                )));
            }
            Ok(((self.default_schema.to_owned(), first), i + 1))
        }
    }
}

impl Catalog {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn table(&self, schema: &str, name: &str) -> Option<&Table> {
        self.tables.get(&(schema.to_owned(), name.to_owned()))
    }

    /// Applies one statement, run with `default_schema` as its `USE` context.
    pub fn apply(&mut self, default_schema: &str, sql: &str) -> Result<Applied, DdlError> {
        let ctx = Ctx {
            default_schema,
            sql,
        };
        let tokens = tokenize(sql).map_err(|e| ctx.err(e))?;
        let mut t: &[Token] = &tokens;
        while matches!(t.last(), Some(Token::SemiColon)) {
            t = &t[..t.len() - 1];
        }
        let mut changed = Applied {
            class: Class::Other,
            tables: Vec::new(),
            databases: Vec::new(),
        };
        let word = |i: usize| match t.get(i) {
            Some(Token::Word(w)) if w.quote_style.is_none() => w.value.to_ascii_uppercase(),
            _ => String::new(),
        };
        match word(0).as_str() {
            "CREATE" => {
                let mut i = 1;
                if starts_with(&t[i..], &["OR", "REPLACE"]) {
                    i += 2;
                }
                i = skip_object_prefixes(t, i);
                let temporary = is_word(t.get(i), "TEMPORARY");
                if temporary {
                    i += 1;
                }
                match word(i).as_str() {
                    "TABLE" if temporary => changed.class = Class::Other,
                    "TABLE" => {
                        changed.class = Class::Table;
                        self.create_table(&ctx, t, i + 1, &mut changed)?;
                    }
                    "DATABASE" | "SCHEMA" => {
                        changed.class = Class::Database;
                        self.create_database(&ctx, t, i + 1, &mut changed)?;
                    }
                    "UNIQUE" | "FULLTEXT" | "SPATIAL" | "INDEX" => {
                        changed.class = Class::Table;
                        self.create_index(&ctx, t, i, &mut changed)?;
                    }
                    "VIEW" | "TRIGGER" | "PROCEDURE" | "FUNCTION" | "EVENT" | "PACKAGE"
                    | "SEQUENCE" => changed.class = Class::Object,
                    "USER" | "ROLE" => changed.class = Class::Account,
                    "SERVER" | "TABLESPACE" | "LOGFILE" => changed.class = Class::Other,
                    _ => return Err(ctx.err("an unknown CREATE statement")),
                }
            }
            "ALTER" => {
                let mut i = 1;
                while is_word(t.get(i), "ONLINE") || is_word(t.get(i), "IGNORE") {
                    i += 1;
                }
                i = skip_object_prefixes(t, i);
                match word(i).as_str() {
                    "TABLE" => {
                        changed.class = Class::Table;
                        self.alter_table(&ctx, t, i + 1, &mut changed)?;
                    }
                    "DATABASE" | "SCHEMA" => {
                        changed.class = Class::Database;
                        self.alter_database(&ctx, t, i + 1, &mut changed)?;
                    }
                    "VIEW" | "EVENT" | "FUNCTION" | "PROCEDURE" | "SEQUENCE" | "PACKAGE" => {
                        changed.class = Class::Object
                    }
                    "USER" | "ROLE" => changed.class = Class::Account,
                    "SERVER" | "TABLESPACE" | "LOGFILE" | "INSTANCE" => {
                        changed.class = Class::Other
                    }
                    _ => return Err(ctx.err("an unknown ALTER statement")),
                }
            }
            "DROP" => {
                let mut i = 1;
                let temporary = is_word(t.get(i), "TEMPORARY");
                if temporary {
                    i += 1;
                }
                match word(i).as_str() {
                    "TABLE" | "TABLES" if temporary => changed.class = Class::Other,
                    "TABLE" | "TABLES" => {
                        changed.class = Class::Table;
                        self.drop_tables(&ctx, t, i + 1, &mut changed)?;
                    }
                    "DATABASE" | "SCHEMA" => {
                        changed.class = Class::Database;
                        self.drop_database(&ctx, t, i + 1, &mut changed)?;
                    }
                    "INDEX" => {
                        changed.class = Class::Table;
                        self.drop_index(&ctx, t, i + 1, &mut changed)?;
                    }
                    "VIEW" | "TRIGGER" | "PROCEDURE" | "FUNCTION" | "EVENT" | "SEQUENCE"
                    | "PACKAGE" => changed.class = Class::Object,
                    "USER" | "ROLE" => changed.class = Class::Account,
                    "SERVER" | "TABLESPACE" | "LOGFILE" => changed.class = Class::Other,
                    _ => return Err(ctx.err("an unknown DROP statement")),
                }
            }
            "RENAME" => match word(1).as_str() {
                "TABLE" | "TABLES" => {
                    changed.class = Class::Table;
                    self.rename_tables(&ctx, t, 2, &mut changed)?;
                }
                "USER" => changed.class = Class::Account,
                _ => return Err(ctx.err("an unknown RENAME statement")),
            },
            "TRUNCATE" => changed.class = Class::Truncate,
            "GRANT" | "REVOKE" => changed.class = Class::Account,
            "SET"
                if is_word(t.get(1), "PASSWORD") || starts_with(&t[1..], &["DEFAULT", "ROLE"]) =>
            {
                changed.class = Class::Account
            }
            "OPTIMIZE" | "ANALYZE" | "REPAIR" | "CHECK" | "CHECKSUM" | "FLUSH" => {
                changed.class = Class::Maintenance
            }
            "SET" | "INSTALL" | "UNINSTALL" | "LOCK" | "UNLOCK" | "DO" | "SAVEPOINT"
            | "RELEASE" | "PURGE" | "RESET" => changed.class = Class::Other,
            _ => return Err(ctx.err("a statement the schema tracker does not know")),
        }
        Ok(changed)
    }

    /// Records a table's new definition (or its removal) in `changed`.
    fn put(&mut self, key: (String, String), table: Option<Table>, changed: &mut Applied) {
        match &table {
            Some(t) => {
                self.tables.insert(key.clone(), t.clone());
            }
            None => {
                self.tables.remove(&key);
            }
        }
        changed.tables.push((key, table));
    }

    fn create_database(
        &mut self,
        ctx: &Ctx,
        t: &[Token],
        mut i: usize,
        changed: &mut Applied,
    ) -> Result<(), DdlError> {
        let if_not_exists = starts_with(&t[i..], &["IF", "NOT", "EXISTS"]);
        if if_not_exists {
            i += 3;
        }
        let name = ident(t.get(i)).ok_or_else(|| ctx.err("expected a database name"))?;
        if if_not_exists && self.databases.contains_key(&name) {
            return Ok(());
        }
        let (charset, collation) = charset_options(&t[i + 1..]);
        let db = Database { charset, collation };
        self.databases.insert(name.clone(), db.clone());
        changed.databases.push((name, Some(db)));
        Ok(())
    }

    fn alter_database(
        &mut self,
        ctx: &Ctx,
        t: &[Token],
        i: usize,
        changed: &mut Applied,
    ) -> Result<(), DdlError> {
        // ALTER DATABASE [name] options: a name is a word that is no option keyword.
        let option_start = [
            "DEFAULT",
            "CHARACTER",
            "CHARSET",
            "COLLATE",
            "COMMENT",
            "UPGRADE",
            "READ",
        ];
        let (name, rest) = match t.get(i) {
            Some(Token::Word(w))
                if w.quote_style.is_some()
                    || !option_start.iter().any(|o| w.value.eq_ignore_ascii_case(o)) =>
            {
                (w.value.clone(), i + 1)
            }
            _ => (ctx.default_schema.to_owned(), i),
        };
        if name.is_empty() {
            return Err(ctx.err("ALTER DATABASE without a name and without USE"));
        }
        let (charset, collation) = charset_options(&t[rest..]);
        if charset.is_none() && collation.is_none() {
            return Ok(());
        }
        let db = self.databases.entry(name.clone()).or_default();
        if charset.is_some() {
            db.charset = charset;
            db.collation = collation;
        } else {
            db.charset = collation.as_deref().map(charset_of_collation);
            db.collation = collation;
        }
        changed.databases.push((name, Some(db.clone())));
        Ok(())
    }

    fn drop_database(
        &mut self,
        ctx: &Ctx,
        t: &[Token],
        mut i: usize,
        changed: &mut Applied,
    ) -> Result<(), DdlError> {
        if starts_with(&t[i..], &["IF", "EXISTS"]) {
            i += 2;
        }
        let name = ident(t.get(i)).ok_or_else(|| ctx.err("expected a database name"))?;
        let gone: Vec<(String, String)> = self
            .tables
            .keys()
            .filter(|(s, _)| *s == name)
            .cloned()
            .collect();
        for key in gone {
            self.put(key, None, changed);
        }
        self.databases.remove(&name);
        changed.databases.push((name, None));
        Ok(())
    }

    fn create_table(
        &mut self,
        ctx: &Ctx,
        t: &[Token],
        mut i: usize,
        changed: &mut Applied,
    ) -> Result<(), DdlError> {
        let or_replace = is_word(t.get(1), "OR");
        let if_not_exists = starts_with(&t[i..], &["IF", "NOT", "EXISTS"]);
        if if_not_exists {
            i += 3;
        }
        let (key, next) = ctx.table_name(t, i)?;
        if if_not_exists && self.tables.contains_key(&key) {
            return Ok(());
        }
        if self.tables.contains_key(&key) && !or_replace {
            return Err(ctx.err(format!(
                "table {}.{} already exists in the tracked schema",
                key.0, key.1
            )));
        }
        // CREATE TABLE a LIKE b, or CREATE TABLE a (LIKE b).
        let like_at = if is_word(t.get(next), "LIKE") {
            Some(next + 1)
        } else if matches!(t.get(next), Some(Token::LParen)) && is_word(t.get(next + 1), "LIKE") {
            Some(next + 2)
        } else {
            None
        };
        if let Some(at) = like_at {
            let (source, _) = ctx.table_name(t, at)?;
            let mut copy = self.tables.get(&source).cloned().ok_or_else(|| {
                ctx.err(format!(
                    "the LIKE source {}.{} is not tracked",
                    source.0, source.1
                ))
            })?;
            copy.schema = key.0.clone();
            copy.name = key.1.clone();
            self.put(key, Some(copy), changed);
            return Ok(());
        }
        if !matches!(t.get(next), Some(Token::LParen)) {
            return Err(ctx.err("CREATE TABLE without a column list (… SELECT) is not tracked"));
        }
        let close = closing_paren(t, next).ok_or_else(|| ctx.err("unbalanced parentheses"))?;
        let options = &t[close + 1..];
        if options.iter().any(|tok| is_word(Some(tok), "SELECT")) {
            return Err(
                ctx.err("CREATE TABLE … SELECT is not tracked (its columns come from the query)")
            );
        }
        let (charset, collation) = charset_options(table_options(options));
        let (charset, collation) = self.inherit(&key.0, charset, collation);
        let mut table = Table {
            schema: key.0.clone(),
            name: key.1.clone(),
            columns: Vec::new(),
            primary_key: None,
            unique_keys: Vec::new(),
            indexes: Vec::new(),
            charset,
            collation,
        };
        let mut keys = Vec::new();
        for element in split_top_level(&t[next + 1..close]) {
            if is_key_definition(element) {
                if let Some(k) = parse_key(element).map_err(|e| ctx.err(e))? {
                    keys.push(k);
                }
                continue;
            }
            let (column, inline_keys) = parse_column(ctx, element)?;
            keys.extend(inline_keys);
            table.columns.push(column);
        }
        for k in keys {
            add_key(ctx, &mut table, k)?;
        }
        inherit_column_charsets(&mut table);
        self.put(key, Some(table), changed);
        Ok(())
    }

    /// A table's charset and collation: its own, else its database's.
    fn inherit(
        &self,
        schema: &str,
        charset: Option<String>,
        collation: Option<String>,
    ) -> (Option<String>, Option<String>) {
        match (charset, collation) {
            (Some(cs), coll) => (Some(cs), coll),
            (None, Some(coll)) => (Some(charset_of_collation(&coll)), Some(coll)),
            (None, None) => match self.databases.get(schema) {
                Some(db) => (db.charset.clone(), db.collation.clone()),
                None => (None, None),
            },
        }
    }

    fn create_index(
        &mut self,
        ctx: &Ctx,
        t: &[Token],
        i: usize,
        changed: &mut Applied,
    ) -> Result<(), DdlError> {
        // CREATE [UNIQUE|FULLTEXT|SPATIAL] INDEX [IF NOT EXISTS] name [USING x] ON tbl (cols)
        let on = t[i..]
            .iter()
            .position(|tok| is_word(Some(tok), "ON"))
            .map(|p| p + i)
            .ok_or_else(|| ctx.err("CREATE INDEX without ON"))?;
        let (key, next) = ctx.table_name(t, on + 1)?;
        let open = next;
        let close =
            closing_paren(t, open).ok_or_else(|| ctx.err("expected the index's column list"))?;
        // Rebuild as a key definition: kind words and name, then the column list.
        let mut def: Vec<Token> = t[i..on]
            .iter()
            .filter(|tok| !is_word(Some(tok), "USING"))
            .cloned()
            .collect();
        if let Some(pos) = def.iter().position(|tok| {
            is_word(Some(tok), "BTREE") || is_word(Some(tok), "HASH") || is_word(Some(tok), "RTREE")
        }) {
            def.truncate(pos);
        }
        def.extend_from_slice(&t[open..=close]);
        let k = parse_key(&def)
            .map_err(|e| ctx.err(e))?
            .ok_or_else(|| ctx.err("not an index"))?;
        let mut table = self.tracked(ctx, &key)?;
        add_key(ctx, &mut table, k)?;
        self.put(key, Some(table), changed);
        Ok(())
    }

    fn drop_index(
        &mut self,
        ctx: &Ctx,
        t: &[Token],
        mut i: usize,
        changed: &mut Applied,
    ) -> Result<(), DdlError> {
        let if_exists = starts_with(&t[i..], &["IF", "EXISTS"]);
        if if_exists {
            i += 2;
        }
        let name = ident(t.get(i)).ok_or_else(|| ctx.err("expected an index name"))?;
        if !is_word(t.get(i + 1), "ON") {
            return Err(ctx.err("DROP INDEX without ON"));
        }
        let (key, _) = ctx.table_name(t, i + 2)?;
        let mut table = self.tracked(ctx, &key)?;
        if !remove_key(&mut table, &name) && !if_exists {
            return Err(ctx.err(format!("no index `{name}` on {}.{}", key.0, key.1)));
        }
        self.put(key, Some(table), changed);
        Ok(())
    }

    fn drop_tables(
        &mut self,
        ctx: &Ctx,
        t: &[Token],
        mut i: usize,
        changed: &mut Applied,
    ) -> Result<(), DdlError> {
        let if_exists = starts_with(&t[i..], &["IF", "EXISTS"]);
        if if_exists {
            i += 2;
        }
        let mut end = t.len();
        while end > i && (is_word(t.get(end - 1), "RESTRICT") || is_word(t.get(end - 1), "CASCADE"))
        {
            end -= 1;
        }
        for part in split_top_level(&t[i..end]) {
            let (key, _) = ctx.table_name(part, 0)?;
            // A drop of an untracked table (ignored upstream, or already gone) is fine.
            if self.tables.contains_key(&key) {
                self.put(key, None, changed);
            }
        }
        Ok(())
    }

    fn rename_tables(
        &mut self,
        ctx: &Ctx,
        t: &[Token],
        i: usize,
        changed: &mut Applied,
    ) -> Result<(), DdlError> {
        // Pairs apply in order, so `a TO tmp, b TO a, tmp TO b` swaps.
        for part in split_top_level(&t[i..]) {
            let (from, next) = ctx.table_name(part, 0)?;
            if !is_word(part.get(next), "TO") {
                return Err(ctx.err("expected TO in RENAME TABLE"));
            }
            let (to, _) = ctx.table_name(part, next + 1)?;
            self.rename(ctx, from, to, changed)?;
        }
        Ok(())
    }

    fn rename(
        &mut self,
        ctx: &Ctx,
        from: (String, String),
        to: (String, String),
        changed: &mut Applied,
    ) -> Result<(), DdlError> {
        let mut table = self.tracked(ctx, &from)?;
        table.schema = to.0.clone();
        table.name = to.1.clone();
        self.put(from, None, changed);
        self.put(to, Some(table), changed);
        Ok(())
    }

    /// A tracked table, or an error naming it.
    fn tracked(&self, ctx: &Ctx, key: &(String, String)) -> Result<Table, DdlError> {
        self.tables
            .get(key)
            .cloned()
            .ok_or_else(|| ctx.err(format!("table {}.{} is not tracked", key.0, key.1)))
    }

    fn alter_table(
        &mut self,
        ctx: &Ctx,
        t: &[Token],
        i: usize,
        changed: &mut Applied,
    ) -> Result<(), DdlError> {
        let mut i = i;
        let if_exists = starts_with(&t[i..], &["IF", "EXISTS"]);
        if if_exists {
            i += 2;
        }
        let (key, next) = ctx.table_name(t, i)?;
        let Some(mut table) = self.tables.get(&key).cloned() else {
            if if_exists {
                return Ok(());
            }
            return Err(ctx.err(format!("table {}.{} is not tracked", key.0, key.1)));
        };
        let mut rename_to = None;
        for spec in split_top_level(&t[next..]) {
            if spec.is_empty() {
                continue;
            }
            if let Some(to) = alter_spec(ctx, &mut table, spec)? {
                rename_to = Some(to);
            }
        }
        inherit_column_charsets(&mut table);
        self.put(key.clone(), Some(table), changed);
        if let Some(to) = rename_to {
            self.rename(ctx, key, to, changed)?;
        }
        Ok(())
    }
}

/// Skips `ALGORITHM = x`, `DEFINER = user`, `SQL SECURITY x`, `AGGREGATE`, `DEFINITION`
/// between CREATE/ALTER and the object keyword.
fn skip_object_prefixes(t: &[Token], mut i: usize) -> usize {
    loop {
        if is_word(t.get(i), "ALGORITHM") || is_word(t.get(i), "DEFINER") {
            i += 1;
            if matches!(t.get(i), Some(Token::Eq)) {
                i += 1;
            }
            // A value, possibly `user`@`host`.
            i += 1;
            while matches!(t.get(i), Some(Token::AtSign))
                || matches!(t.get(i), Some(Token::Word(w)) if w.value.starts_with('@'))
            {
                i += 2;
            }
        } else if is_word(t.get(i), "SQL") && is_word(t.get(i + 1), "SECURITY") {
            i += 3;
        } else if is_word(t.get(i), "AGGREGATE") || is_word(t.get(i), "NONATOMIC") {
            i += 1;
        } else {
            return i;
        }
    }
}

/// The table options after a CREATE TABLE column list, up to a PARTITION BY clause.
fn table_options(t: &[Token]) -> &[Token] {
    match t.iter().position(|tok| is_word(Some(tok), "PARTITION")) {
        Some(p) => &t[..p],
        None => t,
    }
}

/// `[DEFAULT] CHARACTER SET|CHARSET [=] x`, `[DEFAULT] COLLATE [=] y` anywhere in `t`.
fn charset_options(t: &[Token]) -> (Option<String>, Option<String>) {
    let mut charset = None;
    let mut collation = None;
    let mut i = 0;
    let value = |i: usize| -> (Option<String>, usize) {
        let i = if matches!(t.get(i), Some(Token::Eq)) {
            i + 1
        } else {
            i
        };
        match t.get(i) {
            Some(Token::Word(w)) => (Some(w.value.to_ascii_lowercase()), i + 1),
            Some(Token::SingleQuotedString(s)) => (Some(s.to_ascii_lowercase()), i + 1),
            _ => (None, i),
        }
    };
    while i < t.len() {
        if is_word(t.get(i), "CHARACTER") && is_word(t.get(i + 1), "SET") {
            let (v, next) = value(i + 2);
            charset = v;
            i = next;
        } else if is_word(t.get(i), "CHARSET") {
            let (v, next) = value(i + 1);
            charset = v;
            i = next;
        } else if is_word(t.get(i), "COLLATE") {
            let (v, next) = value(i + 1);
            collation = v;
            i = next;
        } else {
            i += 1;
        }
    }
    if charset.as_deref() == Some("default") {
        charset = None;
    }
    if charset.is_none() {
        charset = collation.as_deref().map(charset_of_collation);
    }
    (charset, collation)
}

/// Text columns without their own charset take the table's.
fn inherit_column_charsets(table: &mut Table) {
    for c in &mut table.columns {
        if c.ty.is_text() && c.charset.is_none() {
            c.charset = table.charset.clone();
            c.collation = table.collation.clone();
        }
    }
}

/// Rewrites MariaDB column syntax sqlparser does not know: ZEROFILL (which implies
/// UNSIGNED) and PERSISTENT (STORED).
fn normalize_column(tokens: &[Token]) -> Vec<Token> {
    let mut out: Vec<Token> = Vec::with_capacity(tokens.len());
    for tok in tokens {
        if is_word(Some(tok), "ZEROFILL") {
            if !is_word(out.last(), "UNSIGNED") {
                out.push(Token::make_keyword("UNSIGNED"));
            }
        } else if is_word(Some(tok), "PERSISTENT") {
            out.push(Token::make_keyword("STORED"));
        } else if is_word(Some(tok), "SIGNED") {
            // INT SIGNED is INT.
        } else {
            out.push(tok.clone());
        }
    }
    out
}

/// One column definition (`name type options…`), with the keys it declares inline
/// (`PRIMARY KEY`, `UNIQUE`).
fn parse_column(ctx: &Ctx, tokens: &[Token]) -> Result<(Column, Vec<KeyDef>), DdlError> {
    let sql = format!("CREATE TABLE t ({})", render(&normalize_column(tokens)));
    let statements = Parser::parse_sql(&MySqlDialect {}, &sql)
        .map_err(|e| ctx.err(format!("column `{}`: {e}", render(tokens))))?;
    let Some(Statement::CreateTable(ct)) = statements.into_iter().next() else {
        return Err(ctx.err(format!(
            "column `{}` did not parse as a column",
            render(tokens)
        )));
    };
    let def = ct
        .columns
        .first()
        .ok_or_else(|| ctx.err(format!("`{}` is not a column definition", render(tokens))))?;
    let column = columns::column(def).map_err(|e| ctx.err(e))?;
    let mut keys = Vec::new();
    for o in &def.options {
        match &o.option {
            ColumnOption::PrimaryKey(_) => keys.push(KeyDef {
                kind: KeyKind::Primary,
                name: Some("PRIMARY".into()),
                columns: vec![column.name.clone()],
                if_not_exists: false,
            }),
            ColumnOption::Unique(_) => keys.push(KeyDef {
                kind: KeyKind::Unique,
                name: None,
                columns: vec![column.name.clone()],
                if_not_exists: false,
            }),
            _ => {}
        }
    }
    Ok((column, keys))
}

/// Adds a key, naming an unnamed one as the server does (its first column, then `_2`, …).
fn add_key(ctx: &Ctx, table: &mut Table, k: KeyDef) -> Result<(), DdlError> {
    for c in &k.columns {
        if table.column(c).is_none() {
            return Err(ctx.err(format!(
                "key column `{c}` is not a column of {}",
                table.qualified()
            )));
        }
    }
    let exists = |table: &Table, name: &str| {
        table
            .primary_key
            .iter()
            .chain(&table.unique_keys)
            .chain(&table.indexes)
            .any(|i| i.name.eq_ignore_ascii_case(name))
    };
    let name = match k.name {
        Some(n) => n,
        None => {
            let base = k.columns[0].clone();
            let mut name = base.clone();
            let mut n = 2;
            while exists(table, &name) {
                name = format!("{base}_{n}");
                n += 1;
            }
            name
        }
    };
    if exists(table, &name) {
        if k.if_not_exists {
            return Ok(());
        }
        if k.kind != KeyKind::Primary || table.primary_key.is_some() {
            return Err(ctx.err(format!("{} already has a key `{name}`", table.qualified())));
        }
    }
    let index = Index {
        name,
        columns: k.columns,
    };
    match k.kind {
        KeyKind::Primary => {
            for c in &index.columns {
                if let Some(col) = table
                    .columns
                    .iter_mut()
                    .find(|col| col.name.eq_ignore_ascii_case(c))
                {
                    col.nullable = false;
                }
            }
            table.primary_key = Some(index);
        }
        KeyKind::Unique => table.unique_keys.push(index),
        KeyKind::Plain => table.indexes.push(index),
    }
    Ok(())
}

/// Removes the key `name`; whether there was one.
fn remove_key(table: &mut Table, name: &str) -> bool {
    if name.eq_ignore_ascii_case("PRIMARY") {
        return table.primary_key.take().is_some();
    }
    let before = table.unique_keys.len() + table.indexes.len();
    table
        .unique_keys
        .retain(|i| !i.name.eq_ignore_ascii_case(name));
    table.indexes.retain(|i| !i.name.eq_ignore_ascii_case(name));
    before != table.unique_keys.len() + table.indexes.len()
}

/// Where a column goes: `FIRST`, `AFTER x`, or at the end; strips the clause from `tokens`.
fn position_clause<'t>(
    ctx: &Ctx,
    table: &Table,
    tokens: &'t [Token],
) -> Result<(&'t [Token], Option<usize>), DdlError> {
    let n = tokens.len();
    if n >= 1 && is_word(tokens.get(n - 1), "FIRST") {
        return Ok((&tokens[..n - 1], Some(0)));
    }
    if n >= 2 && is_word(tokens.get(n - 2), "AFTER") {
        let after = ident(tokens.get(n - 1)).unwrap_or_default();
        let (at, _) = table.column(&after).ok_or_else(|| {
            ctx.err(format!(
                "AFTER `{after}`: no such column in {}",
                table.qualified()
            ))
        })?;
        return Ok((&tokens[..n - 2], Some(at + 1)));
    }
    Ok((tokens, None))
}

/// Renames a column inside every key.
fn rename_in_keys(table: &mut Table, from: &str, to: &str) {
    for index in table
        .primary_key
        .iter_mut()
        .chain(&mut table.unique_keys)
        .chain(&mut table.indexes)
    {
        for c in &mut index.columns {
            if c.eq_ignore_ascii_case(from) {
                *c = to.to_owned();
            }
        }
    }
}

/// Applies one ALTER TABLE spec; returns the new name for a `RENAME TO`.
fn alter_spec(
    ctx: &Ctx,
    table: &mut Table,
    spec: &[Token],
) -> Result<Option<(String, String)>, DdlError> {
    let w = |i: usize| match spec.get(i) {
        Some(Token::Word(w)) if w.quote_style.is_none() => w.value.to_ascii_uppercase(),
        _ => String::new(),
    };
    let mut i = 1;
    let skip_if = |i: &mut usize, words: &[&str]| -> bool {
        if starts_with(&spec[*i..], words) {
            *i += words.len();
            true
        } else {
            false
        }
    };
    match w(0).as_str() {
        "ADD" => {
            if is_key_definition(&spec[1..]) {
                if let Some(k) = parse_key(&spec[1..]).map_err(|e| ctx.err(e))? {
                    add_key(ctx, table, k)?;
                }
                return Ok(None);
            }
            if w(1) == "SYSTEM" {
                return Err(ctx.err("system versioning is not supported"));
            }
            if w(1) == "PARTITION" || w(1) == "PERIOD" {
                return if w(1) == "PERIOD" {
                    Err(ctx.err("ADD PERIOD (system versioning) is not supported"))
                } else {
                    Ok(None)
                };
            }
            skip_if(&mut i, &["COLUMN"]);
            let if_not_exists = skip_if(&mut i, &["IF", "NOT", "EXISTS"]);
            if matches!(spec.get(i), Some(Token::LParen)) {
                // ADD (a INT, b INT)
                let close =
                    closing_paren(spec, i).ok_or_else(|| ctx.err("unbalanced parentheses"))?;
                for part in split_top_level(&spec[i + 1..close]) {
                    add_column(ctx, table, part, None, if_not_exists)?;
                }
                return Ok(None);
            }
            let (def, at) = position_clause(ctx, table, &spec[i..])?;
            add_column(ctx, table, def, at, if_not_exists)?;
        }
        "DROP" => {
            match w(1).as_str() {
                "PRIMARY" => {
                    table.primary_key = None;
                }
                "INDEX" | "KEY" => {
                    i = 2;
                    let if_exists = skip_if(&mut i, &["IF", "EXISTS"]);
                    let name =
                        ident(spec.get(i)).ok_or_else(|| ctx.err("expected an index name"))?;
                    if !remove_key(table, &name) && !if_exists {
                        return Err(ctx.err(format!("no index `{name}` on {}", table.qualified())));
                    }
                }
                "CONSTRAINT" => {
                    // A UNIQUE constraint is a unique key; CHECK and FOREIGN KEY are not tracked.
                    i = 2;
                    skip_if(&mut i, &["IF", "EXISTS"]);
                    if let Some(name) = ident(spec.get(i)) {
                        remove_key(table, &name);
                    }
                }
                "FOREIGN" | "CHECK" | "PARTITION" => {}
                "SYSTEM" => return Err(ctx.err("DROP SYSTEM VERSIONING is not supported")),
                "PERIOD" => return Err(ctx.err("DROP PERIOD (system versioning) is not supported")),
                _ => {
                    skip_if(&mut i, &["COLUMN"]);
                    let if_exists = skip_if(&mut i, &["IF", "EXISTS"]);
                    let name =
                        ident(spec.get(i)).ok_or_else(|| ctx.err("expected a column name"))?;
                    match table.column(&name) {
                        Some((at, _)) => {
                            table.columns.remove(at);
                            drop_from_keys(table, &name);
                        }
                        None if if_exists => {}
                        None => {
                            return Err(
                                ctx.err(format!("no column `{name}` in {}", table.qualified()))
                            )
                        }
                    }
                }
            }
        }
        "MODIFY" | "CHANGE" => {
            let change = w(0) == "CHANGE";
            skip_if(&mut i, &["COLUMN"]);
            let if_exists = skip_if(&mut i, &["IF", "EXISTS"]);
            let old = if change {
                i += 1;
                ident(spec.get(i - 1)).ok_or_else(|| ctx.err("expected a column name"))?
            } else {
                ident(spec.get(i)).ok_or_else(|| ctx.err("expected a column name"))?
            };
            let Some((at, _)) = table.column(&old) else {
                if if_exists {
                    return Ok(None);
                }
                return Err(ctx.err(format!("no column `{old}` in {}", table.qualified())));
            };
            // The table is a copy until the whole statement applies: no need to undo.
            table.columns.remove(at);
            let (def, position) = position_clause(ctx, table, &spec[i..])?;
            let (column, inline_keys) = parse_column(ctx, def)?;
            rename_in_keys(table, &old, &column.name);
            table
                .columns
                .insert(position.unwrap_or(at).min(table.columns.len()), column);
            for k in inline_keys {
                add_key(ctx, table, k)?;
            }
        }
        "RENAME" => match w(1).as_str() {
            "COLUMN" => {
                let from = ident(spec.get(2)).ok_or_else(|| ctx.err("expected a column name"))?;
                let to = ident(spec.get(4))
                    .filter(|_| is_word(spec.get(3), "TO"))
                    .ok_or_else(|| ctx.err("expected RENAME COLUMN a TO b"))?;
                let (at, _) = table.column(&from).ok_or_else(|| {
                    ctx.err(format!("no column `{from}` in {}", table.qualified()))
                })?;
                table.columns[at].name = to.clone();
                rename_in_keys(table, &from, &to);
            }
            "INDEX" | "KEY" => {
                let from = ident(spec.get(2)).ok_or_else(|| ctx.err("expected an index name"))?;
                let to = ident(spec.get(4))
                    .filter(|_| is_word(spec.get(3), "TO"))
                    .ok_or_else(|| ctx.err("expected RENAME INDEX a TO b"))?;
                let index = table
                    .unique_keys
                    .iter_mut()
                    .chain(&mut table.indexes)
                    .find(|k| k.name.eq_ignore_ascii_case(&from))
                    .ok_or_else(|| {
                        ctx.err(format!(
                            "no index `{from}` on {}.{}",
                            table.schema, table.name
                        ))
                    })?;
                index.name = to;
            }
            _ => {
                // RENAME [TO | AS] new_name
                let at = if is_word(spec.get(1), "TO") || is_word(spec.get(1), "AS") {
                    2
                } else {
                    1
                };
                let (to, _) = ctx.table_name(spec, at)?;
                return Ok(Some(to));
            }
        },
        "ALTER" => {
            // ALTER [COLUMN] c SET DEFAULT x | DROP DEFAULT | SET [IN]VISIBLE
            skip_if(&mut i, &["COLUMN"]);
            let name = ident(spec.get(i)).ok_or_else(|| ctx.err("expected a column name"))?;
            let (at, _) = table
                .column(&name)
                .ok_or_else(|| ctx.err(format!("no column `{name}` in {}", table.qualified())))?;
            let rest = &spec[i + 1..];
            let column = &mut table.columns[at];
            if starts_with(rest, &["SET", "DEFAULT"]) {
                column.default = Some(render(&rest[2..]));
            } else if starts_with(rest, &["DROP", "DEFAULT"]) {
                column.default = None;
            } else if starts_with(rest, &["SET", "INVISIBLE"]) {
                column.invisible = true;
            } else if starts_with(rest, &["SET", "VISIBLE"]) {
                column.invisible = false;
            } else {
                return Err(ctx.err(format!("unknown ALTER COLUMN form `{}`", render(spec))));
            }
        }
        "CONVERT" => {
            // CONVERT TO CHARACTER SET x [COLLATE y]: every text column, and the default.
            let (charset, collation) = charset_options(&spec[1..]);
            for c in table.columns.iter_mut().filter(|c| c.ty.is_text()) {
                c.charset = charset.clone();
                c.collation = collation.clone();
            }
            table.charset = charset;
            table.collation = collation;
        }
        "DEFAULT" | "CHARACTER" | "CHARSET" | "COLLATE" => {
            let (charset, collation) = charset_options(spec);
            if charset.is_some() || collation.is_some() {
                table.charset = charset;
                table.collation = collation;
            }
        }
        "WITH" | "WITHOUT" if w(1) == "SYSTEM" => {
            return Err(ctx.err("system versioning is not supported"));
        }
        // Options and partitioning: no column or key changes.
        "ENGINE"
        | "AUTO_INCREMENT"
        | "COMMENT"
        | "ROW_FORMAT"
        | "KEY_BLOCK_SIZE"
        | "ALGORITHM"
        | "LOCK"
        | "FORCE"
        | "ORDER"
        | "STATS_AUTO_RECALC"
        | "STATS_PERSISTENT"
        | "STATS_SAMPLE_PAGES"
        | "PAGE_COMPRESSED"
        | "PAGE_COMPRESSION_LEVEL"
        | "ENCRYPTED"
        | "ENCRYPTION_KEY_ID"
        | "CHECKSUM"
        | "TABLE_CHECKSUM"
        | "DELAY_KEY_WRITE"
        | "PACK_KEYS"
        | "MAX_ROWS"
        | "MIN_ROWS"
        | "AVG_ROW_LENGTH"
        | "INSERT_METHOD"
        | "UNION"
        | "TABLESPACE"
        | "DATA"
        | "INDEX"
        | "TRANSACTIONAL"
        | "DISCARD"
        | "IMPORT"
        | "ENABLE"
        | "DISABLE"
        | "PARTITION"
        | "COALESCE"
        | "REORGANIZE"
        | "EXCHANGE"
        | "TRUNCATE"
        | "ANALYZE"
        | "CHECK"
        | "OPTIMIZE"
        | "REBUILD"
        | "REPAIR"
        | "REMOVE"
        | "PARTITIONS"
        | "SEQUENCE"
        | "NOWAIT"
        | "WAIT" => {}
        _ => {
            return Err(ctx.err(format!(
                "an ALTER TABLE spec the tracker does not know: `{}`",
                render(spec)
            )))
        }
    }
    Ok(None)
}

fn add_column(
    ctx: &Ctx,
    table: &mut Table,
    def: &[Token],
    at: Option<usize>,
    if_not_exists: bool,
) -> Result<(), DdlError> {
    let (column, inline_keys) = parse_column(ctx, def)?;
    if table.column(&column.name).is_some() {
        if if_not_exists {
            return Ok(());
        }
        return Err(ctx.err(format!(
            "column `{}` already exists in {}",
            column.name,
            table.qualified()
        )));
    }
    let at = at.unwrap_or(table.columns.len());
    table.columns.insert(at, column);
    for k in inline_keys {
        add_key(ctx, table, k)?;
    }
    Ok(())
}

/// A dropped column leaves every key; a key left with no column goes too.
fn drop_from_keys(table: &mut Table, column: &str) {
    let strip = |index: &mut Index| index.columns.retain(|c| !c.eq_ignore_ascii_case(column));
    if let Some(pk) = &mut table.primary_key {
        strip(pk);
        if pk.columns.is_empty() {
            table.primary_key = None;
        }
    }
    for list in [&mut table.unique_keys, &mut table.indexes] {
        list.iter_mut().for_each(strip);
        list.retain(|i| !i.columns.is_empty());
    }
}
