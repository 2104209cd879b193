//! The preflight checks as pure functions of the configuration and what the servers said.

use conf::{Config, RelayConfig};

use super::facts::ServerFacts;
use super::grants::{
    need, privileges, Scope, BINLOG_MONITOR, DDL, MARK_TABLE, OBJECT_DDL, REPLICATION_SLAVE,
    SELECT, WRITE,
};

/// Which server a check is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Upstream,
    Downstream,
    /// The relay itself (its own certificates).
    Relay,
}

impl Side {
    pub fn as_str(self) -> &'static str {
        match self {
            Side::Upstream => "upstream",
            Side::Downstream => "downstream",
            Side::Relay => "relay",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Pass,
    Fail,
    /// Does not apply to this server (a MariaDB-only setting on MySQL, say).
    Skip,
    /// Passes, with something the operator should know (plain TCP across a network, a
    /// certificate close to expiry).
    Warn,
}

/// One named check, reported as setting / expected / actual.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    pub side: Side,
    pub setting: String,
    pub expected: String,
    pub actual: String,
    pub outcome: Outcome,
}

impl Check {
    pub(super) fn new(
        side: Side,
        setting: &str,
        expected: String,
        actual: String,
        pass: bool,
    ) -> Check {
        Check {
            side,
            setting: setting.to_owned(),
            expected,
            actual,
            outcome: if pass { Outcome::Pass } else { Outcome::Fail },
        }
    }
}

/// Checks of the upstream: reachable, binlog settings, server id, replication privileges.
pub fn upstream_checks(config: &Config, facts: &Result<ServerFacts, String>) -> Vec<Check> {
    let (check, facts) = reachable(Side::Upstream, &config.pump.user, facts);
    let mut checks = vec![check];
    if let Some(facts) = facts {
        checks.extend(upstream_settings(config, facts));
    }
    checks
}

fn upstream_settings(config: &Config, facts: &ServerFacts) -> Vec<Check> {
    let side = Side::Upstream;
    let mut checks = binlog_settings(facts);
    // Conflict detection compares the downstream row with the whole before image.
    if config.syncer.conflict.is_some() {
        for check in &mut checks {
            if check.setting == "binlog_row_image" {
                check.expected = "FULL (conflict detection compares whole before images)".into();
            }
        }
    }
    // Comment markers: the partner's statements are recognised by their text, which the
    // upstream must write beside their rows.
    if config.syncer.loopback_control && config.syncer.loop_marker == conf::LoopMarker::Comment {
        let setting = if facts.version.contains("MariaDB") {
            "binlog_annotate_row_events"
        } else {
            "binlog_rows_query_log_events"
        };
        let mut check = variable_is(side, facts, setting, "ON");
        check.expected = "ON (loop-marker = \"comment\" reads each statement's text)".into();
        checks.push(check);
    }
    let server_id = facts.variable("server_id").unwrap_or("?");
    if config.pump.relay.is_none() {
        checks.push(Check::new(
            side,
            "server_id",
            format!("not {} ([pump] server-id)", config.pump.server_id),
            server_id.to_owned(),
            server_id != config.pump.server_id.to_string(),
        ));
    }
    checks.extend(reading_privileges(facts, &Scope::replicated(config)));
    checks
}

/// The upstream account's privileges to stream the binlog (`*.*`) and to read table
/// definitions (in `tables`).
fn reading_privileges(facts: &ServerFacts, tables: &Scope) -> [Check; 2] {
    let side = Side::Upstream;
    [
        privileges(
            side,
            facts,
            "replication privileges",
            &[REPLICATION_SLAVE, BINLOG_MONITOR],
            &Scope::AllSchemas,
        ),
        privileges(
            side,
            facts,
            "read privileges (table definitions)",
            &[SELECT],
            tables,
        ),
    ]
}

/// Checks of a relay's upstream (`drainer relay check-config`): reachable as the relay's
/// account, the binlog settings, its own server id outside the relay's replica ids, and
/// the privileges to stream and to answer any drainer's reads.
pub fn relay_upstream_checks(
    config: &RelayConfig,
    facts: &Result<ServerFacts, String>,
) -> Vec<Check> {
    let side = Side::Upstream;
    let up = &config.upstream;
    let (check, facts) = reachable(side, &up.user, facts);
    let mut checks = vec![check];
    let Some(facts) = facts else {
        return checks;
    };
    checks.extend(binlog_settings(facts));
    let (first, last) = (
        u64::from(up.server_id),
        u64::from(up.server_id) + u64::from(up.max_streams) - 1,
    );
    let server_id = facts.variable("server_id").unwrap_or("?");
    let inside = server_id
        .parse::<u64>()
        .map_or(true, |id| (first..=last).contains(&id));
    checks.push(Check::new(
        side,
        "server_id",
        format!("outside {first}–{last} (the relay's replica ids)"),
        server_id.to_owned(),
        !inside,
    ));
    checks.extend(reading_privileges(facts, &Scope::AllSchemas));
    checks
}

/// The binlog as drainer reads it: on, row-based, full images, not compressed.
fn binlog_settings(facts: &ServerFacts) -> Vec<Check> {
    let side = Side::Upstream;
    let mut checks = vec![
        variable_is(side, facts, "log_bin", "ON"),
        variable_is(side, facts, "binlog_format", "ROW"),
        variable_is(side, facts, "binlog_row_image", "FULL"),
    ];
    // With full metadata, every table map names its columns and their signedness, and
    // the drainer checks them against the tracked definition: a table changed outside the
    // binlog stops it instead of decoding rows into the wrong columns.
    let expected = "FULL (each table map checked against the tracked definition)";
    checks.push(match facts.variable("binlog_row_metadata") {
        Some(v) if v.eq_ignore_ascii_case("FULL") => Check::new(
            side,
            "binlog_row_metadata",
            expected.into(),
            v.to_owned(),
            true,
        ),
        Some(v) => Check {
            outcome: Outcome::Warn,
            ..Check::new(
                side,
                "binlog_row_metadata",
                expected.into(),
                v.to_owned(),
                true,
            )
        },
        None => Check {
            outcome: Outcome::Skip,
            ..Check::new(
                side,
                "binlog_row_metadata",
                expected.into(),
                "(no such variable)".into(),
                true,
            )
        },
    });
    checks.push(match facts.variable("log_bin_compress") {
        Some(_) => variable_is(side, facts, "log_bin_compress", "OFF"),
        None => Check {
            outcome: Outcome::Skip,
            ..Check::new(
                side,
                "log_bin_compress",
                "OFF".into(),
                "(no such variable: not MariaDB)".into(),
                true,
            )
        },
    });
    checks
}

/// Checks of the downstream: reachable, another server than the upstream, writable,
/// privileges to apply rows, DDL (with `sync-ddl`), and the drainer's own schema (the
/// mark table's: the apply record always, the mark table with loopback).
pub fn downstream_checks(
    config: &Config,
    upstream: Option<&ServerFacts>,
    facts: &Result<ServerFacts, String>,
) -> Vec<Check> {
    let side = Side::Downstream;
    let syncer = &config.syncer;
    let (check, facts) = reachable(side, &syncer.to.user, facts);
    let mut checks = vec![check];
    let Some(facts) = facts else {
        return checks;
    };
    if let Some(upstream) = upstream {
        let up = upstream.variable("server_id").unwrap_or("?");
        let down = facts.variable("server_id").unwrap_or("?");
        checks.push(Check::new(
            side,
            "server_id",
            format!("not {up} (the upstream's server_id)"),
            down.to_owned(),
            up != down,
        ));
    }
    checks.push(variable_is(side, facts, "read_only", "OFF"));
    let replicated = Scope::replicated(config);
    checks.push(privileges(
        side,
        facts,
        "write privileges",
        WRITE,
        &replicated,
    ));
    if syncer.sync_ddl {
        checks.push(privileges(
            side,
            facts,
            "DDL privileges (sync-ddl = true)",
            DDL,
            &replicated,
        ));
        if facts.version.contains("MariaDB") {
            checks.push(privileges(
                side,
                facts,
                "view, routine, trigger and event DDL (sync-ddl = true)",
                OBJECT_DDL,
                &Scope::AllSchemas,
            ));
            // With the binlog on, only SUPER may create a stored function unless the
            // server trusts function creators.
            let trusted = facts.variable("log_bin_trust_function_creators");
            let superuser = facts
                .global_privileges
                .iter()
                .any(|p| p == "SUPER" || p == "ALL PRIVILEGES");
            checks.push(Check::new(
                side,
                "log_bin_trust_function_creators (sync-ddl = true)",
                "ON (or SUPER for the [syncer.to] user): stored functions replicate".into(),
                trusted.unwrap_or("(no such variable)").to_owned(),
                superuser || trusted.is_some_and(|v| v.eq_ignore_ascii_case("ON")),
            ));
        }
    }
    let schema = syncer
        .mark_table
        .split_once('.')
        .map_or(syncer.mark_table.as_str(), |(schema, _)| schema);
    checks.push(privileges(
        side,
        facts,
        "drainer schema privileges",
        MARK_TABLE,
        &Scope::Schemas(vec![schema.to_owned()]),
    ));
    if syncer.loopback_control {
        checks.extend(mark_server_id(config, upstream, facts));
    }
    checks.push(binlog_replay(config, facts));
    checks
}

/// With loopback control neither server may have `mark-server-id` as its own: the
/// reverse direction drops what carries it.
fn mark_server_id(
    config: &Config,
    upstream: Option<&ServerFacts>,
    facts: &ServerFacts,
) -> Option<Check> {
    let id = config.syncer.effective_mark_server_id()?.to_string();
    let theirs: Vec<&str> = upstream
        .into_iter()
        .chain([facts])
        .filter_map(|f| f.variable("server_id"))
        .collect();
    Some(Check::new(
        Side::Downstream,
        "mark-server-id",
        "no server's own server_id".into(),
        format!("{id} (the servers have {})", theirs.join(", ")),
        !theirs.contains(&id.as_str()),
    ))
}

/// On MariaDB the drainer needs BINLOG REPLAY (or SUPER) whatever the settings: rows of
/// system-versioned tables and of tables with triggers apply as their own row events
/// (`BINLOG '…'`), and with loopback control every session sets `server_id`. Checked
/// always, so that a trigger created later cannot stop the drainer mid-stream.
fn binlog_replay(config: &Config, facts: &ServerFacts) -> Check {
    let side = Side::Downstream;
    let name = "BINLOG REPLAY (row events, session server_id)";
    if facts.version.contains("MariaDB") {
        return privileges(
            side,
            facts,
            name,
            &[need(&["BINLOG REPLAY", "SUPER"])],
            &Scope::AllSchemas,
        );
    }
    let why = if config.syncer.loopback_control {
        "(not MariaDB: only the mark row marks the drainer's writes)"
    } else {
        "(not MariaDB)"
    };
    Check {
        outcome: Outcome::Skip,
        ..Check::new(side, name, "BINLOG REPLAY on *.*".into(), why.into(), true)
    }
}

fn reachable<'f>(
    side: Side,
    user: &str,
    facts: &'f Result<ServerFacts, String>,
) -> (Check, Option<&'f ServerFacts>) {
    let expected = format!("login as {user}");
    match facts {
        Ok(f) => (
            Check::new(side, "connection", expected, f.version.clone(), true),
            Some(f),
        ),
        Err(e) => (
            Check::new(side, "connection", expected, e.clone(), false),
            None,
        ),
    }
}

fn variable_is(side: Side, facts: &ServerFacts, name: &str, expected: &str) -> Check {
    let actual = facts.variable(name);
    Check::new(
        side,
        name,
        expected.to_owned(),
        actual.unwrap_or("(no such variable)").to_owned(),
        actual.is_some_and(|a| a.eq_ignore_ascii_case(expected)),
    )
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    const CONFIG: &str = r#"
        [pump]
        host = "10.0.0.1"
        port = 3306
        user = "pump"
        server-id = 4001
        [syncer.to]
        host = "10.0.1.1"
        port = 3306
        user = "apply"
    "#;

    fn config() -> Config {
        Config::parse(CONFIG, Path::new("t.toml")).unwrap()
    }

    fn facts(server_id: &str, privileges: &[&str]) -> ServerFacts {
        let variables = [
            ("log_bin", "ON"),
            ("binlog_format", "ROW"),
            ("binlog_row_image", "FULL"),
            ("binlog_row_metadata", "FULL"),
            ("log_bin_compress", "OFF"),
            ("server_id", server_id),
            ("read_only", "OFF"),
            ("log_bin_trust_function_creators", "ON"),
        ];
        ServerFacts {
            version: "10.11.19-MariaDB-log".into(),
            variables: variables
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            current_user: "u@%".into(),
            global_privileges: privileges.iter().map(|p| p.to_string()).collect(),
            schema_privileges: Vec::new(),
            tls: None,
        }
    }

    fn good_upstream() -> ServerFacts {
        facts("1", &["REPLICATION SLAVE", "BINLOG MONITOR", "SELECT"])
    }

    fn good_downstream() -> ServerFacts {
        facts(
            "2",
            &[
                "SELECT",
                "INSERT",
                "UPDATE",
                "DELETE",
                "CREATE",
                "DROP",
                "ALTER",
                "INDEX",
                "CREATE VIEW",
                "CREATE ROUTINE",
                "ALTER ROUTINE",
                "TRIGGER",
                "EVENT",
                "SET USER",
                "BINLOG REPLAY",
            ],
        )
    }

    fn failed(checks: &[Check]) -> Vec<&str> {
        checks
            .iter()
            .filter(|c| c.outcome == Outcome::Fail)
            .map(|c| c.setting.as_str())
            .collect()
    }

    #[test]
    fn row_metadata_short_of_full_is_a_warning() {
        let c = config();
        let mut up = good_upstream();
        up.variables
            .insert("binlog_row_metadata".into(), "NO_LOG".into());
        let checks = upstream_checks(&c, &Ok(up));
        let check = checks
            .iter()
            .find(|c| c.setting == "binlog_row_metadata")
            .unwrap();
        assert_eq!(check.outcome, Outcome::Warn, "{check:?}");
        assert!(failed(&checks).is_empty());
    }

    #[test]
    fn a_well_set_up_pair_passes_every_check() {
        let c = config();
        let up = upstream_checks(&c, &Ok(good_upstream()));
        let down = downstream_checks(&c, Some(&good_upstream()), &Ok(good_downstream()));
        assert!(failed(&up).is_empty(), "{up:?}");
        assert!(failed(&down).is_empty(), "{down:?}");
        let settings: Vec<&str> = up.iter().map(|c| c.setting.as_str()).collect();
        assert_eq!(
            settings,
            [
                "connection",
                "log_bin",
                "binlog_format",
                "binlog_row_image",
                "binlog_row_metadata",
                "log_bin_compress",
                "server_id",
                "replication privileges",
                "read privileges (table definitions)"
            ]
        );
    }

    #[test]
    fn each_binlog_setting_is_reported_with_expected_and_actual() {
        let c = config();
        for (name, bad) in [
            ("log_bin", "OFF"),
            ("binlog_format", "STATEMENT"),
            ("binlog_format", "MIXED"),
            ("binlog_row_image", "MINIMAL"),
            ("log_bin_compress", "ON"),
        ] {
            let mut up = good_upstream();
            up.variables.insert(name.into(), bad.into());
            let checks = upstream_checks(&c, &Ok(up));
            assert_eq!(failed(&checks), [name]);
            let check = checks.iter().find(|c| c.setting == name).unwrap();
            assert_eq!(check.actual, bad);
        }
    }

    #[test]
    fn conflict_detection_says_why_it_needs_full_images() {
        let mut c = config();
        c.syncer.conflict = Some(conf::Conflict {
            policy: conf::ConflictPolicy::Overwrite,
            table: Vec::new(),
        });
        let mut up = good_upstream();
        up.variables
            .insert("binlog_row_image".into(), "MINIMAL".into());
        let checks = upstream_checks(&c, &Ok(up));
        let check = checks
            .iter()
            .find(|c| c.setting == "binlog_row_image")
            .unwrap();
        assert_eq!(check.outcome, Outcome::Fail);
        assert!(check.expected.contains("conflict detection"), "{check:?}");
    }

    #[test]
    fn log_bin_compress_is_skipped_on_mysql() {
        let mut up = good_upstream();
        up.variables.remove("log_bin_compress");
        let checks = upstream_checks(&config(), &Ok(up));
        let check = checks
            .iter()
            .find(|c| c.setting == "log_bin_compress")
            .unwrap();
        assert_eq!(check.outcome, Outcome::Skip);
    }

    #[test]
    fn the_replica_id_must_differ_from_the_upstreams() {
        let checks = upstream_checks(
            &config(),
            &Ok(facts(
                "4001",
                &["REPLICATION SLAVE", "BINLOG MONITOR", "SELECT"],
            )),
        );
        assert_eq!(failed(&checks), ["server_id"]);
    }

    #[test]
    fn an_unreachable_server_fails_once_and_skips_the_rest() {
        let checks = upstream_checks(&config(), &Err("Access denied for user 'pump'".into()));
        assert_eq!(checks.len(), 1);
        assert_eq!(failed(&checks), ["connection"]);
        assert!(checks[0].actual.contains("Access denied"));
    }

    #[test]
    fn missing_privileges_are_named() {
        let c = config();
        let checks = upstream_checks(&c, &Ok(facts("1", &["SELECT"])));
        assert_eq!(failed(&checks), ["replication privileges"]);
        let check = checks
            .iter()
            .find(|c| c.setting == "replication privileges")
            .unwrap();
        assert_eq!(check.actual, "u@% lacks REPLICATION SLAVE, BINLOG MONITOR");
        // REPLICATION CLIENT (MySQL, MariaDB before 10.5) stands for BINLOG MONITOR.
        let checks = upstream_checks(
            &c,
            &Ok(facts(
                "1",
                &["REPLICATION SLAVE", "REPLICATION CLIENT", "SELECT"],
            )),
        );
        assert!(failed(&checks).is_empty(), "{checks:?}");

        let down = downstream_checks(&c, None, &Ok(facts("2", &["SELECT", "INSERT"])));
        assert_eq!(
            failed(&down),
            [
                "write privileges",
                "DDL privileges (sync-ddl = true)",
                "view, routine, trigger and event DDL (sync-ddl = true)",
                "drainer schema privileges",
                "BINLOG REPLAY (row events, session server_id)"
            ]
        );
    }

    #[test]
    fn ddl_and_drainer_schema_privileges_follow_the_settings() {
        let mut c = config();
        c.syncer.sync_ddl = false;
        c.syncer.loopback_control = true;
        c.syncer.channel_id = 1;
        let writer = facts(
            "2",
            &["SELECT", "INSERT", "UPDATE", "DELETE", "BINLOG REPLAY"],
        );
        let down = downstream_checks(&c, None, &Ok(writer.clone()));
        assert_eq!(failed(&down), ["drainer schema privileges"]);
        let mut with_retl = writer;
        with_retl.schema_privileges = ["CREATE", "SELECT", "INSERT", "UPDATE"]
            .iter()
            .map(|p| ("retl".to_string(), p.to_string()))
            .collect();
        assert!(failed(&downstream_checks(&c, None, &Ok(with_retl))).is_empty());
    }

    #[test]
    fn loopback_control_needs_its_server_id_free_and_settable() {
        let mut c = config();
        c.syncer.loopback_control = true;
        c.syncer.channel_id = 1;
        let mut down = good_downstream();
        down.global_privileges.remove("BINLOG REPLAY");
        let checks = downstream_checks(&c, Some(&good_upstream()), &Ok(down.clone()));
        assert_eq!(
            failed(&checks),
            ["BINLOG REPLAY (row events, session server_id)"]
        );
        down.global_privileges.insert("BINLOG REPLAY".into());
        let checks = downstream_checks(&c, Some(&good_upstream()), &Ok(down.clone()));
        assert!(failed(&checks).is_empty(), "{checks:?}");
        // The upstream already writes under the channel's id: everything would be dropped.
        let clash = facts(&0xF000_0001u32.to_string(), &[]);
        let checks = downstream_checks(&c, Some(&clash), &Ok(down.clone()));
        assert_eq!(failed(&checks), ["mark-server-id"]);
        // Without loopback control, rows of versioned and triggered tables still apply
        // as row events.
        c.syncer.loopback_control = false;
        down.global_privileges.remove("BINLOG REPLAY");
        let checks = downstream_checks(&c, Some(&good_upstream()), &Ok(down.clone()));
        assert_eq!(
            failed(&checks),
            ["BINLOG REPLAY (row events, session server_id)"]
        );
        c.syncer.loopback_control = true;
        // MySQL has no session server_id: skipped, not failed.
        down.version = "8.0.36".into();
        down.global_privileges.remove("BINLOG REPLAY");
        let checks = downstream_checks(&c, Some(&good_upstream()), &Ok(down));
        assert!(failed(&checks).is_empty(), "{checks:?}");
    }

    #[test]
    fn schema_level_grants_count_for_the_replicated_schemas() {
        let mut c = config();
        c.syncer.replicate_do_db = vec!["app".into(), "shop_1".into()];
        let mut up = facts("1", &["REPLICATION SLAVE", "BINLOG MONITOR"]);
        up.schema_privileges = vec![
            ("app".into(), "SELECT".into()),
            ("shop\\_%".into(), "SELECT".into()),
        ];
        assert!(failed(&upstream_checks(&c, &Ok(up.clone()))).is_empty());
        c.syncer.replicate_do_db.push("other".into());
        assert_eq!(
            failed(&upstream_checks(&c, &Ok(up.clone()))),
            ["read privileges (table definitions)"]
        );
        // A pattern in the filter could match any schema: only a global grant will do.
        c.syncer.replicate_do_db = vec!["~^app".into()];
        assert_eq!(
            failed(&upstream_checks(&c, &Ok(up))),
            ["read privileges (table definitions)"]
        );
    }

    #[test]
    fn downstream_must_be_another_writable_server() {
        let c = config();
        let mut same_id = good_downstream();
        same_id.variables.insert("server_id".into(), "1".into());
        let down = downstream_checks(&c, Some(&good_upstream()), &Ok(same_id));
        assert_eq!(failed(&down), ["server_id"]);
        let mut ro = good_downstream();
        ro.variables.insert("read_only".into(), "ON".into());
        assert_eq!(failed(&downstream_checks(&c, None, &Ok(ro))), ["read_only"]);
    }
}
