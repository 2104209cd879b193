//! Which schemas and tables a direction replicates, compiled from `[syncer]`.
//!
//! TiDB Binlog's rules, in order:
//! 1. a schema in `ignore-schemas`, or the mark table's schema, is never replicated;
//! 2. a table matching `[[syncer.ignore-table]]` is not;
//! 3. with no `replicate-do-db` and no `[[syncer.replicate-do-table]]`, everything else is;
//! 4. otherwise a table is replicated when it matches a `replicate-do-table` entry or its
//!    schema matches `replicate-do-db`.
//!
//! A name is exact (compared case-insensitively) or, after a leading `~`, a regular
//! expression, matched anywhere in the name as TiDB Binlog does (anchor it with `^…$`;
//! `(?i)` for case-insensitive).

use regex_lite::Regex;

use crate::model::{Syncer, TableName};

/// One name rule: exact or a regular expression.
#[derive(Debug, Clone)]
enum Name {
    Exact(String),
    Pattern(Regex),
}

impl Name {
    fn parse(text: &str) -> Result<Name, String> {
        match text.strip_prefix('~') {
            Some(re) => Regex::new(re)
                .map(Name::Pattern)
                .map_err(|e| format!("`{text}` is not a valid regular expression: {e}")),
            None => Ok(Name::Exact(text.to_owned())),
        }
    }

    fn matches(&self, name: &str) -> bool {
        match self {
            Name::Exact(n) => n.eq_ignore_ascii_case(name),
            Name::Pattern(re) => re.is_match(name),
        }
    }
}

/// The compiled replication filter of one direction.
#[derive(Debug, Clone)]
pub struct Filter {
    ignore_schemas: Vec<String>,
    do_dbs: Vec<Name>,
    do_tables: Vec<(Name, Name)>,
    ignore_tables: Vec<(Name, Name)>,
}

fn tables(list: &[TableName]) -> Result<Vec<(Name, Name)>, String> {
    list.iter()
        .map(|t| Ok((Name::parse(&t.db_name)?, Name::parse(&t.tbl_name)?)))
        .collect()
}

impl Filter {
    /// Compiles the filter; an invalid regular expression is an error naming it.
    pub fn new(syncer: &Syncer) -> Result<Filter, String> {
        let mut ignore_schemas: Vec<String> = syncer.ignored_schemas().map(str::to_owned).collect();
        if let Some((schema, _)) = syncer.mark_table.split_once('.') {
            ignore_schemas.push(schema.to_owned());
        }
        Ok(Filter {
            ignore_schemas,
            do_dbs: syncer
                .replicate_do_db
                .iter()
                .map(|d| Name::parse(d))
                .collect::<Result<_, _>>()?,
            do_tables: tables(&syncer.replicate_do_table)?,
            ignore_tables: tables(&syncer.ignore_table)?,
        })
    }

    fn schema_ignored(&self, schema: &str) -> bool {
        self.ignore_schemas
            .iter()
            .any(|s| s.eq_ignore_ascii_case(schema))
    }

    /// Whether rows and DDL of `schema.table` are replicated.
    pub fn wants_table(&self, schema: &str, table: &str) -> bool {
        if self.schema_ignored(schema) {
            return false;
        }
        if self
            .ignore_tables
            .iter()
            .any(|(d, t)| d.matches(schema) && t.matches(table))
        {
            return false;
        }
        if self.do_dbs.is_empty() && self.do_tables.is_empty() {
            return true;
        }
        self.do_tables
            .iter()
            .any(|(d, t)| d.matches(schema) && t.matches(table))
            || self.do_dbs.iter().any(|d| d.matches(schema))
    }

    /// Whether database-level DDL of `schema` (CREATE/ALTER/DROP DATABASE) is replicated:
    /// when some table of it can be.
    pub fn wants_schema(&self, schema: &str) -> bool {
        if self.schema_ignored(schema) {
            return false;
        }
        if self.do_dbs.is_empty() && self.do_tables.is_empty() {
            return true;
        }
        self.do_dbs.iter().any(|d| d.matches(schema))
            || self.do_tables.iter().any(|(d, _)| d.matches(schema))
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::Config;

    fn filter(syncer_toml: &str) -> Filter {
        let text = format!(
            "[pump]\nhost='a'\nport=1\nuser='u'\nserver-id=5\n[syncer]\n{syncer_toml}\n[syncer.to]\nhost='b'\nport=2\nuser='u'\n"
        );
        let config = Config::parse(&text, Path::new("t.toml")).unwrap();
        Filter::new(&config.syncer).unwrap()
    }

    #[test]
    fn everything_but_system_and_mark_schemas_by_default() {
        let f = filter("");
        assert!(f.wants_table("app", "orders"));
        for schema in ["mysql", "INFORMATION_SCHEMA", "performance_schema", "retl"] {
            assert!(!f.wants_table(schema, "x"), "{schema}");
            assert!(!f.wants_schema(schema), "{schema}");
        }
        let f = filter("mark-table = 'bookkeeping.mark'");
        assert!(!f.wants_table("bookkeeping", "mark") && f.wants_table("retl", "x"));
    }

    #[test]
    fn do_rules_narrow_and_ignore_rules_win() {
        let f = filter(
            "             replicate-do-db = ['app', '~^shop_[0-9]+$']\n\
             [[syncer.replicate-do-table]]\ndb-name = 'crm'\ntbl-name = '~^lead'\n\
             [[syncer.ignore-table]]\ndb-name = 'app'\ntbl-name = 'tmp_cache'",
        );
        assert!(f.wants_table("app", "orders"));
        assert!(
            f.wants_table("APP", "orders"),
            "exact names are case-insensitive"
        );
        assert!(
            !f.wants_table("app", "tmp_cache"),
            "ignore-table wins over do-db"
        );
        assert!(f.wants_table("shop_12", "carts"));
        assert!(!f.wants_table("shop_x", "carts"));
        assert!(
            !f.wants_table("shop_12x", "carts"),
            "anchored patterns match whole names"
        );
        let unanchored = filter("replicate-do-db = ['~shop']");
        assert!(
            unanchored.wants_table("myshop_1", "t"),
            "as in TiDB, a pattern matches anywhere"
        );
        assert!(f.wants_table("crm", "leads") && !f.wants_table("crm", "accounts"));
        assert!(!f.wants_table("other", "t"));
        assert!(f.wants_schema("crm") && f.wants_schema("app") && !f.wants_schema("other"));
    }

    #[test]
    fn bad_patterns_are_named() {
        let text = "[pump]\nhost='a'\nport=1\nuser='u'\nserver-id=5\n[syncer]\nreplicate-do-db = ['~(']\n[syncer.to]\nhost='b'\nport=2\nuser='u'\n";
        let config = Config::parse(text, Path::new("t.toml")).unwrap();
        let e = Filter::new(&config.syncer).unwrap_err();
        assert!(e.contains("`~(` is not a valid regular expression"), "{e}");
    }
}
