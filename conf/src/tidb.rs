//! TiDB Binlog's own `drainer.toml` keys: a TiDB file loads as it is (with a `[pump]`
//! section added: TiDB's drainer finds its pumps through PD, this one reads a binlog).
//!
//! Every key of TiDB's drainer.toml is accepted, typed as TiDB types it. Where a key has
//! a meaning here it is honoured ([`Config::adopt_tidb`]): `db-type` (`mysql` or
//! `tidb`), `disable-dispatch` / `enable-dispatch` (one worker), `log-file`,
//! `[syncer.to.security]` (TLS to the downstream, verified as TiDB's drainer verifies it),
//! `[syncer.to.checkpoint]` (`schema`: where the apply record and the other control tables
//! live; the rest must name the downstream itself, since the record commits in the same
//! transaction as the rows). Where a key cannot apply (PD, TiKV, Kafka, files, TiDB
//! timestamps), [`Config::tidb_notes`] says so in one line, which the drainer logs at
//! start and `check-config` prints. A key whose silent omission would replicate what the
//! operator meant to filter (`ignore-txn-commit-ts`, `binlog-filter-rule`, a routed
//! `table-migrate-rule`) is an error naming why.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::model::{Config, SslMode, TableName, DEFAULT_MARK_TABLE};
use crate::Violation;

/// `[security]` and `[syncer.to.security]`, `[syncer.to.checkpoint.security]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct TidbSecurity {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssl_ca: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssl_cert: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssl_key: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert_allowed_cn: Option<Vec<String>>,
}

impl TidbSecurity {
    fn is_set(&self) -> bool {
        self.ssl_ca
            .as_ref()
            .is_some_and(|p| !p.as_os_str().is_empty())
            || self
                .ssl_cert
                .as_ref()
                .is_some_and(|p| !p.as_os_str().is_empty())
            || self
                .ssl_key
                .as_ref()
                .is_some_and(|p| !p.as_os_str().is_empty())
    }
}

/// `[syncer.relay]`: TiDB's relay log.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct TidbRelay {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_dir: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_file_size: Option<i64>,
}

/// `[syncer.to.checkpoint]`: where TiDB's drainer keeps its checkpoint.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct TidbCheckpoint {
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<crate::Secret>,
    #[serde(
        default,
        rename = "encrypted_password",
        skip_serializing_if = "Option::is_none"
    )]
    pub encrypted_password: Option<crate::Secret>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oracle_service_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oracle_connect_string: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub security: Option<TidbSecurity>,
}

/// `[[syncer.table-migrate-rule]]` (TiDB 5.4+).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct TidbMigrateRule {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub binlog_filter_rule: Option<Vec<String>>,
    #[serde(default)]
    pub source: TidbRuleTable,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<TidbRuleTable>,
}

/// A `source` or `target` of a migrate rule: schema and table patterns (`*`, `?`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct TidbRuleTable {
    #[serde(default)]
    pub schema: String,
    #[serde(default)]
    pub table: String,
}

/// `[syncer.binlog-filter-rule.<name>]` (TiDB 5.4+).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct TidbFilterRule {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ignore_event: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ignore_sql: Option<Vec<String>>,
}

/// A TiDB wildcard pattern (`*`, `?`) as the filter's regular expression (`~^…$`).
fn wildcard(pattern: &str, case_sensitive: bool) -> String {
    let mut re = String::from("~");
    if !case_sensitive {
        re.push_str("(?i)");
    }
    re.push('^');
    for c in pattern.chars() {
        match c {
            '*' => re.push_str(".*"),
            '?' => re.push('.'),
            c if c.is_ascii_alphanumeric() || c == '_' => re.push(c),
            c => {
                re.push('\\');
                re.push(c);
            }
        }
    }
    re.push('$');
    re
}

fn set(value: &Option<String>) -> bool {
    value.as_deref().is_some_and(|v| !v.trim().is_empty())
}

impl Config {
    /// Honours TiDB Binlog's keys that mean something here (see the module note),
    /// changing the configuration as they say; what cannot be honoured safely is a
    /// violation.
    pub fn adopt_tidb(&mut self) -> Vec<Violation> {
        let mut v = Vec::new();
        let mut add = |field: &str, constraint: String| {
            v.push(Violation {
                field: field.to_owned(),
                constraint,
            })
        };
        let syncer = &mut self.syncer;
        if let Some(db_type) = syncer.db_type.as_deref() {
            if !matches!(db_type.to_ascii_lowercase().as_str(), "mysql" | "tidb") {
                add(
                    "syncer.db-type",
                    format!(
                        "{db_type:?}: drainer applies to a MySQL-protocol server (MySQL, \
                         MariaDB or TiDB): \"mysql\" or \"tidb\"; files, Kafka and Oracle are \
                         TiDB Binlog's drainer's"
                    ),
                );
            }
        }
        // TiDB: the disable-* key wins over enable-*; without dispatch, one worker.
        let dispatch = match (syncer.disable_dispatch, syncer.enable_dispatch) {
            (Some(disable), _) => !disable,
            (None, Some(enable)) => enable,
            (None, None) => true,
        };
        if !dispatch {
            syncer.worker_count = 1;
        }
        if syncer
            .ignore_txn_commit_ts
            .as_ref()
            .is_some_and(|t| !t.is_empty())
        {
            add(
                "syncer.ignore-txn-commit-ts",
                "names TiDB commit timestamps, which no MySQL/MariaDB binlog transaction has: \
                 empty it (a statement the schema tracker refuses is passed over with \
                 skip-ddl, by its GTID)"
                    .into(),
            );
        }
        if syncer
            .binlog_filter_rule
            .as_ref()
            .is_some_and(|r| !r.is_empty())
        {
            add(
                "syncer.binlog-filter-rule",
                "event and SQL filters are not supported: leaving them out would replicate \
                 what they filter; filter by table (replicate-do-table, ignore-table)"
                    .into(),
            );
        }
        let case_sensitive = syncer.case_sensitive.unwrap_or(false);
        for (i, rule) in syncer.table_migrate_rule.iter().flatten().enumerate() {
            if rule.target.is_some() {
                add(
                    &format!("syncer.table-migrate-rule[{i}].target"),
                    "is TiDB's routing for Oracle targets; to give a table another name \
                     downstream, use [[syncer.route]] (db-name, tbl-name, target-db-name, \
                     target-tbl-name)"
                        .into(),
                );
            }
            if rule
                .binlog_filter_rule
                .as_ref()
                .is_some_and(|r| !r.is_empty())
            {
                add(
                    &format!("syncer.table-migrate-rule[{i}].binlog-filter-rule"),
                    "event and SQL filters are not supported".into(),
                );
            }
            let (schema, table) = (&rule.source.schema, &rule.source.table);
            if schema.is_empty() {
                add(
                    &format!("syncer.table-migrate-rule[{i}].source.schema"),
                    "must name a schema (pattern)".into(),
                );
                continue;
            }
            // The source is replicated, as TiDB's allow-list.
            syncer.replicate_do_table.push(TableName {
                db_name: wildcard(schema, case_sensitive),
                tbl_name: wildcard(if table.is_empty() { "*" } else { table }, case_sensitive),
            });
        }
        let to = &mut syncer.to;
        if to
            .encrypted_password
            .as_ref()
            .is_some_and(|p| !p.expose().is_empty())
        {
            add(
                "syncer.to.encrypted_password",
                "binlogctl's encryption cannot be read here: set password, or the \
                 DRAINER_TO_PASSWORD environment variable"
                    .into(),
            );
        }
        if let Some(security) = to.security.clone().filter(TidbSecurity::is_set) {
            if to.ssl_ca.is_some() || to.ssl_cert.is_some() || to.ssl_key.is_some() {
                add(
                    "syncer.to.security",
                    "and syncer.to.ssl-* both set TLS to the downstream: keep one".into(),
                );
            } else {
                // As TiDB's drainer: TLS, the certificate checked against the CA and the
                // host's name.
                to.ssl_ca = security.ssl_ca.filter(|p| !p.as_os_str().is_empty());
                to.ssl_cert = security.ssl_cert.filter(|p| !p.as_os_str().is_empty());
                to.ssl_key = security.ssl_key.filter(|p| !p.as_os_str().is_empty());
                if to.ssl_ca.is_some() && to.ssl_mode == SslMode::Preferred {
                    to.ssl_mode = SslMode::VerifyIdentity;
                } else if to.ssl_mode == SslMode::Preferred {
                    to.ssl_mode = SslMode::Required;
                }
            }
        }
        if let Some(checkpoint) = to.checkpoint.clone() {
            let field = |key: &str| format!("syncer.to.checkpoint.{key}");
            if let Some(kind) = checkpoint.kind.as_deref() {
                if !matches!(kind.to_ascii_lowercase().as_str(), "mysql" | "tidb") {
                    add(
                        &field("type"),
                        format!(
                            "{kind:?}: the apply record lives on the downstream (\"mysql\" or \
                             \"tidb\"), in the transaction of the rows it records"
                        ),
                    );
                }
            }
            // The record commits with the rows: on the downstream, as its user.
            let why = "the apply record commits in the same downstream transaction as the \
                       rows it records, so it lives on [syncer.to]: leave this out or make it \
                       [syncer.to]'s";
            if set(&checkpoint.host) && checkpoint.host.as_deref() != Some(to.host.as_str()) {
                add(&field("host"), why.into());
            }
            if checkpoint.port.is_some_and(|p| p != to.port) {
                add(&field("port"), why.into());
            }
            if set(&checkpoint.user) && checkpoint.user.as_deref() != Some(to.user.as_str()) {
                add(&field("user"), why.into());
            }
            if checkpoint
                .password
                .as_ref()
                .is_some_and(|p| !p.expose().is_empty() && p.expose() != to.password.expose())
            {
                add(&field("password"), why.into());
            }
            if checkpoint
                .encrypted_password
                .as_ref()
                .is_some_and(|p| !p.expose().is_empty())
            {
                add(
                    &field("encrypted_password"),
                    "binlogctl's encryption cannot be read here (and the record uses \
                     [syncer.to]'s login)"
                        .into(),
                );
            }
            if set(&checkpoint.table) {
                add(
                    &field("table"),
                    "the apply record's table is `_drainer_apply_state` (its own layout, \
                     not TiDB's checkpoint table): set only schema"
                        .into(),
                );
            }
            if let Some(schema) = checkpoint.schema.filter(|s| !s.trim().is_empty()) {
                // The apply record, and the other control tables with it, live in the mark
                // table's schema: the checkpoint's schema is that schema.
                let (mark_schema, mark_name) = syncer
                    .mark_table
                    .split_once('.')
                    .map(|(s, t)| (s.to_owned(), t.to_owned()))
                    .unwrap_or_default();
                if syncer.mark_table == DEFAULT_MARK_TABLE {
                    syncer.mark_table = format!("{schema}.{mark_name}");
                } else if mark_schema != schema {
                    add(
                        &field("schema"),
                        format!(
                            "{schema:?}: the apply record lives in the mark table's schema, \
                             and mark-table names {mark_schema:?}: keep one"
                        ),
                    );
                }
            }
        }
        v
    }

    /// What of TiDB Binlog's keys this file sets that cannot apply here, as one line
    /// (none: nothing to say).
    pub fn tidb_notes(&self) -> Option<String> {
        let mut ignored: Vec<String> = Vec::new();
        let mut note = |key: &str, why: &str| ignored.push(format!("{key} ({why})"));
        if self.pd_urls.is_some() {
            note(
                "pd-urls",
                "TiDB's drainer finds its pumps through PD; [pump] names the upstream here",
            );
        }
        for (key, present) in [
            ("advertise-addr", self.advertise_addr.is_some()),
            ("node-id", self.node_id.is_some()),
            ("detect-interval", self.detect_interval.is_some()),
            ("synced-check-time", self.synced_check_time.is_some()),
        ] {
            if present {
                note(key, "TiDB cluster membership");
            }
        }
        if self.initial_commit_ts.is_some_and(|ts| ts > 0) {
            note(
                "initial-commit-ts",
                "a TiDB timestamp: [pump] initial-gtid starts here",
            );
        }
        if set(&self.compressor) {
            note(
                "compressor",
                "pump-to-drainer compression; a relay's link is zstd",
            );
        }
        if self.security.as_ref().is_some_and(TidbSecurity::is_set) {
            note(
                "[security]",
                "TLS to PD and pumps; [pump] ssl-* is TLS to the upstream",
            );
        }
        let syncer = &self.syncer;
        if set(&syncer.sql_mode) {
            note(
                "syncer.sql-mode",
                "each statement's own sql_mode comes with it in the binlog",
            );
        }
        if syncer.disable_detect == Some(true) || syncer.enable_detect == Some(false) {
            note(
                "syncer.disable-detect",
                "transactions touching the same rows always apply in upstream order",
            );
        }
        if syncer.load_schema_snapshot.is_some() || syncer.load_table_infos.is_some() {
            note(
                "syncer.load-schema-snapshot",
                "definitions are bootstrapped from the upstream",
            );
        }
        if syncer.relay.as_ref().is_some_and(|r| set(&r.log_dir)) {
            note(
                "syncer.relay",
                "the apply record in each downstream transaction makes restarts exact",
            );
        }
        let to = &syncer.to;
        if set(&to.read_timeout) {
            note(
                "syncer.to.read-timeout",
                "sessions are watched by keepalives and probes",
            );
        }
        if to.merge == Some(true) {
            note(
                "syncer.to.merge",
                "rows of a transaction join in multi-row statements anyway",
            );
        }
        if to.params.as_ref().is_some_and(|p| !p.is_empty()) {
            note(
                "syncer.to.params",
                "sessions take each statement's context from the binlog",
            );
        }
        if to
            .security
            .as_ref()
            .is_some_and(|s| s.cert_allowed_cn.is_some())
        {
            note("syncer.to.security.cert-allowed-cn", "a server-side check");
        }
        let outputs = [
            set(&to.dir),
            to.retention_time.is_some(),
            set(&to.zookeeper_addrs),
            set(&to.kafka_addrs),
            set(&to.kafka_version),
            to.kafka_max_messages.is_some(),
            to.kafka_max_message_size.is_some(),
            set(&to.kafka_client_id),
            set(&to.topic_name),
            set(&to.oracle_service_name),
            set(&to.oracle_connect_string),
        ];
        if outputs.into_iter().any(|o| o) {
            note(
                "syncer.to file, Kafka and Oracle keys",
                "the downstream is a MySQL-protocol server",
            );
        }
        (!ignored.is_empty()).then(|| {
            format!(
                "TiDB Binlog keys that do not apply here, ignored: {}",
                ignored.join("; ")
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    const BASE: &str = r#"
        [pump]
        host = "10.0.0.1"
        port = 3306
        user = "pump"
        server-id = 4001
    "#;

    fn load(top: &str, rest: &str) -> (Config, Vec<Violation>) {
        let text = format!("{top}\n{BASE}\n{rest}");
        let mut config = Config::parse(&text, Path::new("t.toml")).unwrap();
        let v = config.adopt_tidb();
        (config, v)
    }

    #[test]
    fn tidb_keys_with_a_meaning_are_honoured() {
        let (c, v) = load(
            r#"
            pd-urls = "http://pd:2379"
            log-file = "drainer.log"
            "#,
            r#"
            [syncer]
            db-type = "tidb"
            disable-dispatch = true
            ignore-txn-commit-ts = []
            [[syncer.table-migrate-rule]]
            source = { schema = "shop*", table = "order_?" }
            [syncer.to]
            host = "10.0.1.1"
            port = 4000
            user = "root"
            [syncer.to.security]
            ssl-ca = "/ca.pem"
            [syncer.to.checkpoint]
            type = "mysql"
            schema = "tidb_binlog"
            host = "10.0.1.1"
        "#,
        );
        assert!(v.is_empty(), "{v:?}");
        assert_eq!(c.syncer.worker_count, 1);
        assert_eq!(c.syncer.to.ssl_mode, SslMode::VerifyIdentity);
        assert_eq!(c.syncer.to.ssl_ca.as_deref(), Some(Path::new("/ca.pem")));
        assert_eq!(c.syncer.mark_table, "tidb_binlog._drainer_repl_mark");
        let filter = crate::Filter::new(&c.syncer).unwrap();
        assert!(filter.wants_table("shop_eu", "order_1"));
        assert!(!filter.wants_table("shop_eu", "order_12"));
        assert!(!filter.wants_table("other", "order_1"));
        assert!(c.validate().is_empty());
        let notes = c.tidb_notes().unwrap();
        assert!(
            notes.starts_with("TiDB Binlog keys that do not apply here, ignored: pd-urls"),
            "{notes}"
        );
    }

    #[test]
    fn tidb_keys_that_cannot_be_honoured_are_named() {
        let (_, v) = load(
            "",
            r#"
            [syncer]
            db-type = "kafka"
            ignore-txn-commit-ts = [420]
            [syncer.binlog-filter-rule.x]
            ignore-event = ["truncate table"]
            [syncer.to]
            host = "10.0.1.1"
            port = 3306
            user = "root"
            encrypted_password = "abc"
            [syncer.to.checkpoint]
            type = "file"
            host = "10.9.9.9"
        "#,
        );
        let fields: Vec<&str> = v.iter().map(|v| v.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "syncer.db-type",
                "syncer.ignore-txn-commit-ts",
                "syncer.binlog-filter-rule",
                "syncer.to.encrypted_password",
                "syncer.to.checkpoint.type",
                "syncer.to.checkpoint.host",
            ]
        );
        assert!(
            v[0].constraint.contains("\"mysql\" or \"tidb\""),
            "{}",
            v[0]
        );
    }

    #[test]
    fn wildcards_become_anchored_patterns() {
        assert_eq!(wildcard("a*b?.c", false), "~(?i)^a.*b.\\.c$");
        assert_eq!(wildcard("x", true), "~^x$");
    }
}
