//! Applying statements to the catalog of tracked tables.
//!
//! A statement is tokenized (sqlparser's tokenizer), classified by its leading keywords,
//! and applied: statement forms and ALTER specs are read from the tokens, column
//! definitions are parsed by sqlparser. MariaDB forms sqlparser rejects are handled here
//! (ZEROFILL, PERSISTENT, PARTITION BY, `IF [NOT] EXISTS` in specs, DROP KEY, RENAME
//! INDEX, option-only specs, ALTER ONLINE TABLE).

mod alter;
mod columns;
mod keys;
pub mod rename;
mod tokens;

use std::collections::BTreeMap;

use sqlparser::ast::{ColumnOption, Statement};
use sqlparser::dialect::MySqlDialect;
use sqlparser::parser::Parser;
use sqlparser::tokenizer::Token;

use crate::model::{Column, ColumnType, Generated, Index, Period, Table, Versioning};
use keys::{is_key_definition, parse_foreign_key, parse_key, ForeignKey, KeyDef, KeyKind};
/// The keywords an option of ALTER DATABASE starts with: a word after `ALTER DATABASE`
/// that is none of them is the database's name.
pub(crate) const DATABASE_OPTIONS: [&str; 7] = [
    "DEFAULT",
    "CHARACTER",
    "CHARSET",
    "COLLATE",
    "COMMENT",
    "UPGRADE",
    "READ",
];
use tokens::{
    closing_paren, ident, is_word, normalize, render, skip_words, split_top_level, starts_with,
    tokenize,
};
pub use tokens::{past_quoted, SqlMode};

pub(crate) use alter::mbmaxlen;
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
    /// The views, triggers, routines and events a [`Class::Object`] statement is about.
    pub objects: Vec<Object>,
}

impl Applied {
    /// A statement that changed nothing tracked.
    pub fn none() -> Applied {
        Applied {
            class: Class::Other,
            tables: Vec::new(),
            databases: Vec::new(),
            objects: Vec::new(),
        }
    }
}

/// A view, trigger, stored routine or event a statement creates, changes or drops.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Object {
    pub kind: ObjectKind,
    /// Its schema: the one named, else the default one (a trigger's: its table's).
    pub schema: String,
    /// Its name after the statement (`ALTER EVENT e RENAME TO f` names `f`).
    pub name: String,
    /// The statement drops it.
    pub dropped: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObjectKind {
    View,
    Trigger,
    Procedure,
    Function,
    Event,
    Package,
}

/// The objects of a CREATE, ALTER or DROP whose object keyword is at `t[at]`: one, or
/// for `DROP VIEW a, b` several.
fn objects(ctx: &Ctx, t: &[Token], at: usize) -> Result<Vec<Object>, DdlError> {
    let kind = match t.get(at) {
        Some(Token::Word(w)) => match w.value.to_ascii_uppercase().as_str() {
            "VIEW" => ObjectKind::View,
            "TRIGGER" => ObjectKind::Trigger,
            "PROCEDURE" => ObjectKind::Procedure,
            "FUNCTION" => ObjectKind::Function,
            "EVENT" => ObjectKind::Event,
            _ => ObjectKind::Package,
        },
        _ => return Err(ctx.err("expected an object keyword")),
    };
    let mut i = at + 1;
    if kind == ObjectKind::Package && is_word(t.get(i), "BODY") {
        i += 1;
    }
    skip_words(t, &mut i, &["IF", "NOT", "EXISTS"]);
    skip_words(t, &mut i, &["IF", "EXISTS"]);
    let drop = is_word(t.first(), "DROP");
    let names: Vec<&[Token]> = if drop && kind == ObjectKind::View {
        let mut end = t.len();
        while end > i && (is_word(t.get(end - 1), "RESTRICT") || is_word(t.get(end - 1), "CASCADE"))
        {
            end -= 1;
        }
        split_top_level(&t[i..end])
    } else {
        vec![&t[i..]]
    };
    let mut out = Vec::new();
    for part in names {
        let ((schema, name), next) = ctx.table_name(part, 0)?;
        // A trigger lives with its table: `CREATE TRIGGER tr … ON db.t`.
        let schema = match (kind, drop) {
            (ObjectKind::Trigger, false) => part
                .iter()
                .position(|tok| is_word(Some(tok), "ON"))
                .filter(|&on| on >= next)
                .and_then(|on| ctx.table_name(part, on + 1).ok())
                .map_or(schema, |((s, _), _)| s),
            _ => schema,
        };
        // ALTER EVENT e … RENAME TO f: it is `f` after the statement.
        let renamed = (kind == ObjectKind::Event && !drop)
            .then(|| {
                (0..part.len())
                    .find(|&i| starts_with(&part[i..], &["RENAME", "TO"]))
                    .and_then(|i| ctx.table_name(part, i + 2).ok())
            })
            .flatten();
        let (schema, name) = renamed.map_or((schema, name), |(key, _)| key);
        out.push(Object {
            kind,
            schema,
            name,
            dropped: drop,
        });
    }
    Ok(out)
}

/// Gives `table` system versioning: its own period columns if it declares them, else the
/// server's implicit `row_start` and `row_end`, last.
/// The primary and unique keys then end with the row end (the server adds it: history
/// rows share the rest of the key).
fn version(table: &mut Table) {
    if table.columns.iter().any(|c| c.period.is_some()) {
        table.versioning = Some(Versioning::Explicit);
    } else {
        table.columns.extend(Table::implicit_period());
        table.versioning = Some(Versioning::Implicit);
    }
    let Some(end) = table
        .columns
        .iter()
        .find(|c| c.period == Some(Period::RowEnd))
        .map(|c| c.name.clone())
    else {
        return;
    };
    for key in table.primary_key.iter_mut().chain(&mut table.unique_keys) {
        if !key.columns.iter().any(|c| c.eq_ignore_ascii_case(&end)) {
            key.columns.push(end.clone());
        }
    }
}

/// Whether `t` holds the unquoted words `words` in a row.
fn has_words(t: &[Token], words: &[&str]) -> bool {
    (0..t.len()).any(|i| starts_with(&t[i..], words))
}

/// The table option `SEQUENCE=1` (what SHOW CREATE TABLE says of a sequence).
fn sequence_option(t: &[Token]) -> bool {
    t.iter().enumerate().any(|(i, tok)| {
        is_word(Some(tok), "SEQUENCE") && {
            let v = if matches!(t.get(i + 1), Some(Token::Eq)) {
                t.get(i + 2)
            } else {
                t.get(i + 1)
            };
            matches!(v, Some(Token::Number(n, _)) if n == "1")
        }
    })
}

/// Adds the index InnoDB makes for `fk` when no index starts with its columns: named
/// after the constraint, else after the foreign key's index name, else after its first
/// column.
fn add_foreign_key_index(ctx: &Ctx, table: &mut Table, fk: ForeignKey) -> Result<(), DdlError> {
    let covered = table
        .primary_key
        .iter()
        .chain(&table.unique_keys)
        .chain(&table.indexes)
        .any(|k| {
            k.columns.len() >= fk.columns.len()
                && k.columns
                    .iter()
                    .zip(&fk.columns)
                    .all(|(a, b)| a.eq_ignore_ascii_case(b))
        });
    if covered {
        return Ok(());
    }
    add_key(
        ctx,
        table,
        KeyDef {
            kind: KeyKind::Plain,
            name: fk.name,
            columns: fk.columns,
            if_not_exists: true,
        },
    )
}

/// Every tracked table and database.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Catalog {
    pub databases: BTreeMap<String, Database>,
    pub tables: BTreeMap<(String, String), Table>,
    /// The upstream's `character_set_server` / `collation_server`: the default of a
    /// database created without one.
    pub server: Database,
}

/// A statement being applied.
struct Ctx<'a> {
    default_schema: &'a str,
    sql: &'a str,
    /// Whether a table is replicated; statements about other tables change nothing.
    wants: &'a dyn Fn(&str, &str) -> bool,
}

impl Ctx<'_> {
    fn wants(&self, key: &(String, String)) -> bool {
        (self.wants)(&key.0, &key.1)
    }

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

    /// Applies one statement, run with `default_schema` as its `USE` context, tracking
    /// every table.
    pub fn apply(&mut self, default_schema: &str, sql: &str) -> Result<Applied, DdlError> {
        self.apply_filtered(default_schema, sql, &|_, _| true)
    }

    /// Applies one statement; tables `wants(schema, table)` refuses are not tracked, and
    /// statements about them change nothing.
    pub fn apply_filtered(
        &mut self,
        default_schema: &str,
        sql: &str,
        wants: &dyn Fn(&str, &str) -> bool,
    ) -> Result<Applied, DdlError> {
        self.apply_in(default_schema, sql, SqlMode::default(), wants)
    }

    /// Applies one statement written in SQL mode `mode` (`ANSI_QUOTES`,
    /// `NO_BACKSLASH_ESCAPES` change how it reads); otherwise as
    /// [`Catalog::apply_filtered`].
    pub fn apply_in(
        &mut self,
        default_schema: &str,
        sql: &str,
        mode: SqlMode,
        wants: &dyn Fn(&str, &str) -> bool,
    ) -> Result<Applied, DdlError> {
        let ctx = Ctx {
            default_schema,
            sql,
            wants,
        };
        let tokens = tokenize(&normalize(sql, mode)).map_err(|e| ctx.err(e))?;
        let mut t: &[Token] = &tokens;
        while matches!(t.last(), Some(Token::SemiColon)) {
            t = &t[..t.len() - 1];
        }
        // SET STATEMENT var = value, … FOR <statement>: the statement is what changes.
        if starts_with(t, &["SET", "STATEMENT"]) {
            let mut depth = 0i32;
            let for_at = t.iter().position(|tok| {
                match tok {
                    Token::LParen => depth += 1,
                    Token::RParen => depth -= 1,
                    _ => {}
                }
                depth == 0 && is_word(Some(tok), "FOR")
            });
            let for_at = for_at.ok_or_else(|| ctx.err("SET STATEMENT without FOR"))?;
            t = &t[for_at + 1..];
        }
        let mut changed = Applied::none();
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
                    "SEQUENCE" => {
                        changed.class = Class::Table;
                        self.create_sequence(&ctx, t, i + 1, &mut changed)?;
                    }
                    "VIEW" | "TRIGGER" | "PROCEDURE" | "FUNCTION" | "EVENT" | "PACKAGE" => {
                        changed.class = Class::Object;
                        changed.objects = objects(&ctx, t, i)?;
                    }
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
                    "SEQUENCE" => {
                        changed.class = Class::Table;
                        self.alter_sequence(&ctx, t, i + 1, &mut changed)?;
                    }
                    "VIEW" | "EVENT" | "FUNCTION" | "PROCEDURE" | "PACKAGE" => {
                        changed.class = Class::Object;
                        changed.objects = objects(&ctx, t, i)?;
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
                    "SEQUENCE" => {
                        changed.class = Class::Table;
                        self.drop_tables(&ctx, t, i + 1, &mut changed)?;
                    }
                    "VIEW" | "TRIGGER" | "PROCEDURE" | "FUNCTION" | "EVENT" | "PACKAGE" => {
                        changed.class = Class::Object;
                        changed.objects = objects(&ctx, t, i)?;
                    }
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
            "TRUNCATE" => {
                let i = if is_word(t.get(1), "TABLE") { 2 } else { 1 };
                let (key, _) = ctx.table_name(t, i)?;
                // A table outside replication: nothing to replay.
                changed.class = if ctx.wants(&key) {
                    Class::Truncate
                } else {
                    Class::Other
                };
            }
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
        let if_not_exists = skip_words(t, &mut i, &["IF", "NOT", "EXISTS"]);
        let name = ident(t.get(i)).ok_or_else(|| ctx.err("expected a database name"))?;
        if if_not_exists && self.databases.contains_key(&name) {
            return Ok(());
        }
        if is_word(t.get(1), "OR") {
            // CREATE OR REPLACE DATABASE drops the old one with its tables.
            let gone: Vec<(String, String)> = self
                .tables
                .keys()
                .filter(|(s, _)| *s == name)
                .cloned()
                .collect();
            for key in gone {
                self.put(key, None, changed);
            }
        }
        let db = match charset_options(&t[i + 1..]) {
            (None, None) => self.server.clone(),
            (charset, collation) => Database { charset, collation },
        };
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
        let option_start = DATABASE_OPTIONS;
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
        let db = self.databases.entry(name.clone()).or_default();
        if charset.is_none() && collation.is_none() {
            // A comment or other option: nothing tracked changes, but the statement
            // concerns this database (and is replicated when the database is).
            changed.databases.push((name, Some(db.clone())));
            return Ok(());
        }
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
        skip_words(t, &mut i, &["IF", "EXISTS"]);
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
        let if_not_exists = skip_words(t, &mut i, &["IF", "NOT", "EXISTS"]);
        let (key, next) = ctx.table_name(t, i)?;
        if !ctx.wants(&key) {
            return Ok(());
        }
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
            versioning: None,
            sequence: false,
        };
        let mut keys = Vec::new();
        let mut foreign_keys = Vec::new();
        let mut versioned = false;
        for element in split_top_level(&t[next + 1..close]) {
            if is_key_definition(element) {
                if let Some(k) = parse_key(element).map_err(|e| ctx.err(e))? {
                    keys.push(k);
                } else if let Some(fk) = parse_foreign_key(element).map_err(|e| ctx.err(e))? {
                    foreign_keys.push(fk);
                }
                continue;
            }
            let (column, inline_keys, column_versioned) = parse_column(ctx, element)?;
            versioned |= column_versioned;
            keys.extend(inline_keys);
            table.columns.push(column);
        }
        for k in keys {
            add_key(ctx, &mut table, k)?;
        }
        for fk in foreign_keys {
            add_foreign_key_index(ctx, &mut table, fk)?;
        }
        let options = table_options(options);
        if versioned || has_words(options, &["WITH", "SYSTEM", "VERSIONING"]) {
            version(&mut table);
        }
        table.sequence = sequence_option(options);
        inherit_column_charsets(&mut table);
        self.put(key, Some(table), changed);
        Ok(())
    }

    /// CREATE SEQUENCE: a table of the server's eight sequence columns.
    fn create_sequence(
        &mut self,
        ctx: &Ctx,
        t: &[Token],
        mut i: usize,
        changed: &mut Applied,
    ) -> Result<(), DdlError> {
        let if_not_exists = skip_words(t, &mut i, &["IF", "NOT", "EXISTS"]);
        let (key, _) = ctx.table_name(t, i)?;
        if !ctx.wants(&key) || (if_not_exists && self.tables.contains_key(&key)) {
            return Ok(());
        }
        let column = |name: &str, bytes: u8, unsigned: bool| Column {
            nullable: false,
            ..Column::new(name, ColumnType::Int { bytes, unsigned })
        };
        let table = Table {
            schema: key.0.clone(),
            name: key.1.clone(),
            columns: vec![
                column("next_not_cached_value", 8, false),
                column("minimum_value", 8, false),
                column("maximum_value", 8, false),
                column("start_value", 8, false),
                column("increment", 8, false),
                column("cache_size", 8, true),
                column("cycle_option", 1, true),
                column("cycle_count", 8, false),
            ],
            primary_key: None,
            unique_keys: Vec::new(),
            indexes: Vec::new(),
            charset: None,
            collation: None,
            versioning: None,
            sequence: true,
        };
        self.put(key, Some(table), changed);
        Ok(())
    }

    /// ALTER SEQUENCE: no column changes, but the statement concerns the sequence.
    fn alter_sequence(
        &mut self,
        ctx: &Ctx,
        t: &[Token],
        mut i: usize,
        changed: &mut Applied,
    ) -> Result<(), DdlError> {
        let if_exists = skip_words(t, &mut i, &["IF", "EXISTS"]);
        let (key, _) = ctx.table_name(t, i)?;
        if !ctx.wants(&key) {
            return Ok(());
        }
        match self.tables.get(&key).cloned() {
            Some(table) => self.put(key, Some(table), changed),
            None if if_exists => {}
            None => return Err(ctx.err(format!("sequence {}.{} is not tracked", key.0, key.1))),
        }
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
        if !ctx.wants(&key) {
            return Ok(());
        }
        let mut table = self.tracked(ctx, &key)?;
        // CREATE OR REPLACE INDEX
        if is_word(t.get(1), "OR") {
            if let Some(name) = &k.name {
                remove_key(&mut table, name);
            }
        }
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
        let if_exists = skip_words(t, &mut i, &["IF", "EXISTS"]);
        let name = ident(t.get(i)).ok_or_else(|| ctx.err("expected an index name"))?;
        if !is_word(t.get(i + 1), "ON") {
            return Err(ctx.err("DROP INDEX without ON"));
        }
        let (key, _) = ctx.table_name(t, i + 2)?;
        if !ctx.wants(&key) || (if_exists && !self.tables.contains_key(&key)) {
            return Ok(());
        }
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
        skip_words(t, &mut i, &["IF", "EXISTS"]);
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
        // RENAME TABLE [IF EXISTS] a TO b, …: pairs apply in order, so
        // `a TO tmp, b TO a, tmp TO b` swaps.
        let if_exists = starts_with(&t[i..], &["IF", "EXISTS"]);
        let i = if if_exists { i + 2 } else { i };
        for part in split_top_level(&t[i..]) {
            let (from, next) = ctx.table_name(part, 0)?;
            if !is_word(part.get(next), "TO") {
                return Err(ctx.err("expected TO in RENAME TABLE"));
            }
            let (to, _) = ctx.table_name(part, next + 1)?;
            if if_exists && !self.tables.contains_key(&from) {
                continue;
            }
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
        match (ctx.wants(&from), ctx.wants(&to)) {
            // Between tables that are not replicated: nothing to track.
            (false, false) => return Ok(()),
            // Out of replication: no longer tracked.
            (true, false) => {
                if self.tables.contains_key(&from) {
                    self.put(from, None, changed);
                }
                return Ok(());
            }
            // Into replication from outside: its definition was never known.
            (false, true) => {
                return Err(ctx.err(format!(
                    "{}.{} comes from {}.{}, which is not replicated, so its definition is unknown",
                    to.0, to.1, from.0, from.1
                )))
            }
            (true, true) => {}
        }
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
        let if_exists = skip_words(t, &mut i, &["IF", "EXISTS"]);
        let (key, next) = ctx.table_name(t, i)?;
        let Some(table) = self.tables.get(&key).cloned() else {
            if if_exists || !ctx.wants(&key) {
                return Ok(());
            }
            return Err(ctx.err(format!("table {}.{} is not tracked", key.0, key.1)));
        };
        let (mut table, rename_to) = alter::alter(ctx, table, &t[next..])?;
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
    let mut depth = 0i32;
    // The next token is the value of an attribute left out.
    let mut skip_value = false;
    for (i, tok) in tokens.iter().enumerate() {
        match tok {
            Token::LParen => depth += 1,
            Token::RParen => depth -= 1,
            _ => {}
        }
        // Only the column's own words: an expression (DEFAULT, AS (…), CHECK (…)) keeps
        // its SIGNED, BINARY and CHARSET.
        let own = depth == 0;
        if is_word(Some(tok), "BINARY") && is_word(out.last(), "SET") {
            // CHARACTER SET binary: sqlparser wants a name there, not the keyword.
            out.push(Token::Word(sqlparser::tokenizer::Word {
                value: "binary".into(),
                quote_style: Some('`'),
                keyword: sqlparser::keywords::Keyword::NoKeyword,
            }));
        } else if own && is_word(Some(tok), "ZEROFILL") {
            if !is_word(out.last(), "UNSIGNED") {
                out.push(Token::make_keyword("UNSIGNED"));
            }
        } else if own && is_word(Some(tok), "PERSISTENT") {
            out.push(Token::make_keyword("STORED"));
        } else if own && is_word(Some(tok), "SIGNED") {
            // INT SIGNED is INT.
        } else if own && is_word(Some(tok), "CHARSET") {
            out.push(Token::make_keyword("CHARACTER"));
            out.push(Token::make_keyword("SET"));
        } else if own
            && i > 1
            && is_word(Some(tok), "SERIAL")
            && is_word(tokens.get(i + 1), "DEFAULT")
            && is_word(tokens.get(i + 2), "VALUE")
        {
            // SERIAL DEFAULT VALUE is NOT NULL AUTO_INCREMENT UNIQUE.
            for w in ["NOT", "NULL", "AUTO_INCREMENT", "UNIQUE"] {
                out.push(Token::make_keyword(w));
            }
        } else if own
            && i > 2
            && (is_word(Some(tok), "DEFAULT") || is_word(Some(tok), "VALUE"))
            && is_word(
                tokens.get(i - if is_word(Some(tok), "DEFAULT") { 1 } else { 2 }),
                "SERIAL",
            )
        {
            // The rest of SERIAL DEFAULT VALUE.
        } else if own && i == 1 && is_word(Some(tok), "SERIAL") {
            // SERIAL is BIGINT UNSIGNED NOT NULL AUTO_INCREMENT UNIQUE.
            for w in [
                "BIGINT",
                "UNSIGNED",
                "NOT",
                "NULL",
                "AUTO_INCREMENT",
                "UNIQUE",
            ] {
                out.push(Token::make_keyword(w));
            }
        } else if own
            && i > 1
            && (is_word(Some(tok), "REF_SYSTEM_ID")
                || is_word(Some(tok), "COLUMN_FORMAT")
                || is_word(Some(tok), "STORAGE"))
        {
            // Storage attributes of a column (a geometry's SRID, NDB's column format and
            // storage): no change to its values. Their value follows.
            skip_value = true;
        } else if std::mem::take(&mut skip_value) {
            if matches!(tok, Token::Eq) {
                skip_value = true;
            }
        } else if own && i > 1 && is_word(Some(tok), "BINARY") {
            // CHAR(n) BINARY: a binary collation of the charset, still text.
        } else {
            out.push(tok.clone());
        }
    }
    out
}

/// The system-versioning words of a column definition, taken out of it: `GENERATED
/// ALWAYS AS ROW START | END` (or `AS ROW …`) make it a period column, `WITH SYSTEM
/// VERSIONING` versions its table; `WITHOUT SYSTEM VERSIONING` changes nothing tracked.
fn take_versioning(tokens: &[Token]) -> (Vec<Token>, Option<Period>, bool) {
    let mut out = Vec::with_capacity(tokens.len());
    let (mut period, mut versioned) = (None, false);
    let mut i = 0;
    while i < tokens.len() {
        let rest = &tokens[i..];
        let row_at = if starts_with(rest, &["GENERATED", "ALWAYS", "AS", "ROW"]) {
            Some(4)
        } else if starts_with(rest, &["AS", "ROW"]) {
            Some(2)
        } else {
            None
        };
        if let Some(n) = row_at {
            if is_word(rest.get(n), "START") || is_word(rest.get(n), "END") {
                period = Some(if is_word(rest.get(n), "START") {
                    Period::RowStart
                } else {
                    Period::RowEnd
                });
                i += n + 1;
                continue;
            }
        }
        if i > 1 && starts_with(rest, &["WITH", "SYSTEM", "VERSIONING"]) {
            versioned = true;
            i += 3;
            continue;
        }
        if i > 1 && starts_with(rest, &["WITHOUT", "SYSTEM", "VERSIONING"]) {
            i += 3;
            continue;
        }
        out.push(tokens[i].clone());
        i += 1;
    }
    (out, period, versioned)
}

/// One column definition (`name type options…`), with the keys it declares inline
/// (`PRIMARY KEY`, `UNIQUE`), and whether it said `WITH SYSTEM VERSIONING` (which
/// versions its table).
fn parse_column(ctx: &Ctx, tokens: &[Token]) -> Result<(Column, Vec<KeyDef>, bool), DdlError> {
    let (tokens, period, versioned) = take_versioning(tokens);
    let tokens = tokens.as_slice();
    if tokens
        .iter()
        .skip(2)
        .any(|t| is_word(Some(t), "COMPRESSED"))
    {
        return Err(ctx.err(format!(
            "column `{}`: COMPRESSED columns are not supported (their row images cannot be \
             decoded)",
            render(tokens)
        )));
    }
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
    let mut column = columns::column(def).map_err(|e| ctx.err(e))?;
    if let Some(period) = period {
        column.period = Some(period);
        column.generated = Some(Generated::Stored);
        column.nullable = false;
    }
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
    Ok((column, keys, versioned))
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
