//! Privileges as grants give them: which a user holds on which schemas, read from its
//! `SHOW GRANTS` (roles included), matched as the server matches them.

use conf::Config;

use super::facts::ServerFacts;
use super::rules::{Check, Side};

/// A privilege the user needs, satisfied by any of several names (MariaDB 10.5 renamed
/// `REPLICATION CLIENT` to `BINLOG MONITOR`; `SUPER` used to cover it).
pub(super) struct Need {
    any_of: &'static [&'static str],
}

pub(super) const fn need(any_of: &'static [&'static str]) -> Need {
    Need { any_of }
}

pub(super) const REPLICATION_SLAVE: Need = need(&["REPLICATION SLAVE"]);
pub(super) const BINLOG_MONITOR: Need = need(&["BINLOG MONITOR", "REPLICATION CLIENT", "SUPER"]);
pub(super) const SELECT: Need = need(&["SELECT"]);
pub(super) const WRITE: &[Need] = &[
    need(&["SELECT"]),
    need(&["INSERT"]),
    need(&["UPDATE"]),
    need(&["DELETE"]),
];
pub(super) const DDL: &[Need] = &[
    need(&["CREATE"]),
    need(&["DROP"]),
    need(&["ALTER"]),
    need(&["INDEX"]),
];
/// Views, routines, triggers and events run downstream as written, their DEFINER
/// included (SET USER: another user as definer).
pub(super) const OBJECT_DDL: &[Need] = &[
    need(&["CREATE VIEW"]),
    need(&["CREATE ROUTINE"]),
    need(&["ALTER ROUTINE"]),
    need(&["TRIGGER"]),
    need(&["EVENT"]),
    need(&["SET USER", "SUPER"]),
];
pub(super) const MARK_TABLE: &[Need] = &[
    need(&["CREATE"]),
    need(&["SELECT"]),
    need(&["INSERT"]),
    need(&["UPDATE"]),
];

/// Where a privilege is needed: on every schema, or on the schemas named.
pub(super) enum Scope {
    AllSchemas,
    Schemas(Vec<String>),
}

impl Scope {
    /// The schemas this direction replicates, when the configuration names them exactly
    /// (`replicate-do-db`, `replicate-do-table`); otherwise every schema.
    pub(super) fn replicated(config: &Config) -> Scope {
        let s = &config.syncer;
        let mut names: Vec<String> = s
            .replicate_do_db
            .iter()
            .chain(s.replicate_do_table.iter().map(|t| &t.db_name))
            .cloned()
            .collect();
        if names.is_empty() || names.iter().any(|n| n.starts_with('~')) {
            return Scope::AllSchemas;
        }
        names.sort();
        names.dedup();
        Scope::Schemas(names)
    }

    fn describe(&self) -> String {
        match self {
            Scope::AllSchemas => "*.*".to_owned(),
            Scope::Schemas(names) => names
                .iter()
                .map(|n| format!("{n}.*"))
                .collect::<Vec<_>>()
                .join(", "),
        }
    }
}

pub(super) fn privileges(
    side: Side,
    facts: &ServerFacts,
    setting: &str,
    needs: &[Need],
    scope: &Scope,
) -> Check {
    let names = |ns: &mut dyn Iterator<Item = &Need>| {
        ns.map(|n| n.any_of[0]).collect::<Vec<_>>().join(", ")
    };
    let missing: Vec<&Need> = needs.iter().filter(|n| !granted(facts, n, scope)).collect();
    let actual = if missing.is_empty() {
        format!("granted to {}", facts.current_user)
    } else {
        format!(
            "{} lacks {}",
            facts.current_user,
            names(&mut missing.iter().copied())
        )
    };
    Check::new(
        side,
        setting,
        format!("{} on {}", names(&mut needs.iter()), scope.describe()),
        actual,
        missing.is_empty(),
    )
}

pub(super) fn granted(facts: &ServerFacts, need: &Need, scope: &Scope) -> bool {
    let has = |privilege: &str| {
        privilege.eq_ignore_ascii_case("ALL PRIVILEGES")
            || need
                .any_of
                .iter()
                .any(|n| n.eq_ignore_ascii_case(privilege))
    };
    if facts.global_privileges.iter().any(|p| has(p)) {
        return true;
    }
    match scope {
        Scope::AllSchemas => false,
        Scope::Schemas(schemas) => schemas.iter().all(|schema| {
            facts
                .schema_privileges
                .iter()
                .any(|(pattern, p)| has(p) && like_match(pattern, schema))
        }),
    }
}

/// SQL `LIKE` as GRANT uses it for schema names: `%` any run, `_` one character, `\`
/// escapes the next one.
pub(super) fn like_match(pattern: &str, name: &str) -> bool {
    fn go(p: &[char], n: &[char]) -> bool {
        match p.split_first() {
            None => n.is_empty(),
            Some(('%', rest)) => (0..=n.len()).any(|i| go(rest, &n[i..])),
            Some(('_', rest)) => !n.is_empty() && go(rest, &n[1..]),
            Some(('\\', rest)) if !rest.is_empty() => {
                n.first() == Some(&rest[0]) && go(&rest[1..], &n[1..])
            }
            Some((c, rest)) => n.first() == Some(c) && go(rest, &n[1..]),
        }
    }
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    go(&p, &n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_patterns_match_as_grant_does() {
        assert!(like_match("app", "app"));
        assert!(!like_match("app", "apps"));
        assert!(like_match("app%", "apps"));
        assert!(like_match("a_p", "axp"));
        assert!(!like_match("a\\_p", "axp"));
        assert!(like_match("a\\_p", "a_p"));
        assert!(like_match("%", ""));
    }
}
