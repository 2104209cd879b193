//! The `drainer.toml` model: parsing, defaults, every validation rule, redaction.

use std::path::{Path, PathBuf};

use conf::{Config, ConfigError, LogLevel, Secret, SslMode};

const MINIMAL: &str = r#"
[pump]
host = "10.0.0.1"
port = 3306
user = "drainer"
server-id = 4001

[syncer.to]
host = "10.0.1.1"
port = 3306
user = "drainer"
"#;

/// The example of DESIGN.md, every key spelled out.
const FULL: &str = r#"
data-dir = "data.drainer"
addr = "127.0.0.1:8249"
log-level = "info"

[pump]
host = "127.0.0.1"
port = 3306
user = "drainer"
password = "pump-pw"
server-id = 4001
initial-gtid = ""
initial-file = ""
initial-pos = 4

[syncer]
worker-count = 16
txn-batch = 20
safe-mode = false
loopback-control = false
channel-id = 0
sync-ddl = true
checkpoint-interval-ms = 3000
mark-table = "retl._drainer_repl_mark"
ignore-schemas = "INFORMATION_SCHEMA,PERFORMANCE_SCHEMA,mysql"
replicate-do-db = []

[[syncer.replicate-do-table]]
db-name = "app"
tbl-name = "orders"

[[syncer.ignore-table]]
db-name = "tidb_binlog"
tbl-name = "checkpoint"

[syncer.to]
host = "127.0.0.1"
port = 3307
user = "drainer"
password = "to-pw"
sync-mode = 1
"#;

fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::parse(text, Path::new("a-to-b.toml"))
}

fn minimal() -> Config {
    parse(MINIMAL).expect("the minimal configuration parses")
}

/// The parse error's message; panics if `text` parses.
fn parse_error(text: &str) -> String {
    match parse(text) {
        Ok(c) => panic!("parsed, but should not have: {c:?}"),
        Err(e) => e.to_string(),
    }
}

/// The fields of `config`'s violations.
fn violated(config: &Config) -> Vec<String> {
    config.validate().into_iter().map(|v| v.field).collect()
}

fn assert_violates(config: &Config, field: &str, constraint_words: &str) {
    let violations = config.validate();
    let hit = violations.iter().find(|v| v.field == field);
    let hit = hit.unwrap_or_else(|| panic!("no violation of {field}; got {violations:?}"));
    assert!(
        hit.constraint.contains(constraint_words),
        "{field}: {:?} does not say {constraint_words:?}",
        hit.constraint
    );
}

#[test]
fn minimal_file_gets_tidb_defaults() {
    let c = minimal();
    assert_eq!(c.data_dir, PathBuf::from("data.drainer"));
    assert_eq!(c.addr, "127.0.0.1:8249");
    assert_eq!(c.log_level, LogLevel::Info);
    assert_eq!(c.pump.password, Secret::default());
    assert_eq!(c.pump.initial_gtid, "");
    assert_eq!(c.pump.initial_file, "");
    assert_eq!(c.pump.initial_pos, 4);
    let s = &c.syncer;
    assert_eq!(s.worker_count, 16);
    assert_eq!(s.txn_batch, 20);
    assert!(!s.safe_mode);
    // Not TiDB's 300: the apply records make replays exact (docs/guarantee.md).
    assert_eq!(s.safe_mode_after_start_s, 0);
    assert!(!s.loopback_control);
    assert_eq!(s.channel_id, 0);
    assert!(s.sync_ddl);
    assert_eq!(s.checkpoint_interval_ms, 3000);
    assert!(s.skip_ddl.is_empty());
    assert_eq!(s.mark_table, "retl._drainer_repl_mark");
    assert_eq!(
        s.ignore_schemas,
        "INFORMATION_SCHEMA,PERFORMANCE_SCHEMA,mysql"
    );
    assert_eq!(
        s.ignored_schemas().collect::<Vec<_>>(),
        ["INFORMATION_SCHEMA", "PERFORMANCE_SCHEMA", "mysql"]
    );
    assert!(s.replicate_do_db.is_empty());
    assert!(s.replicate_do_table.is_empty());
    assert!(s.ignore_table.is_empty());
    assert_eq!(s.to.sync_mode, 1);
    assert!(c.validate().is_empty(), "{:?}", c.validate());
}

#[test]
fn design_example_parses_whole() {
    let c = parse(FULL).unwrap();
    assert_eq!(c.pump.password.expose(), "pump-pw");
    assert_eq!(c.syncer.to.password.expose(), "to-pw");
    assert_eq!(c.syncer.to.port, 3307);
    assert_eq!(c.syncer.replicate_do_table[0].db_name, "app");
    assert_eq!(c.syncer.replicate_do_table[0].tbl_name, "orders");
    assert_eq!(c.syncer.ignore_table[0].tbl_name, "checkpoint");
    assert!(c.validate().is_empty(), "{:?}", c.validate());
}

#[test]
fn serialized_configuration_parses_back_to_the_same_model() {
    let mut c = parse(FULL).unwrap();
    let text = toml::to_string(&c).unwrap();
    let back = parse(&text).unwrap();
    // Passwords are written redacted; everything else survives.
    c.pump.password = Secret::new(conf::REDACTED);
    c.syncer.to.password = Secret::new(conf::REDACTED);
    assert_eq!(back, c);
}

#[test]
fn unknown_keys_are_named_with_their_path_and_the_file() {
    for (text, path) in [
        (format!("bogus = 1\n{MINIMAL}"), "`bogus`"),
        (MINIMAL.replace("server-id", "serverid"), "`pump.serverid`"),
        (
            format!("[syncer]\nworker-cont = 3\n{MINIMAL}"),
            "`syncer.worker-cont`",
        ),
        (
            MINIMAL.replace("[syncer.to]", "[syncer.to]\nsyncmode = 2"),
            "`syncer.to.syncmode`",
        ),
        (
            format!("{MINIMAL}\n[[syncer.ignore-table]]\ndb-name = 'a'\ntbl = 'b'\n"),
            "`syncer.ignore-table[0].tbl`",
        ),
    ] {
        let e = parse_error(&text);
        assert!(e.contains("a-to-b.toml"), "{e}");
        assert!(e.contains(path), "{path} not in: {e}");
        assert!(e.contains("unknown field"), "{e}");
    }
}

#[test]
fn duplicates_are_named_with_their_path() {
    for (text, path) in [
        (
            format!("[syncer]\nworker-count = 2\n{MINIMAL}\n[syncer]\ntxn-batch = 3\n"),
            "key `syncer`: duplicate key",
        ),
        (
            MINIMAL.replace("server-id = 4001", "server-id = 4001\nserver-id = 4002"),
            "key `pump.server-id`: duplicate key",
        ),
        (
            MINIMAL.replace("[syncer.to]", "[syncer.to]\nsync-mode = 1\n  sync-mode = 2"),
            "key `syncer.to.sync-mode`: duplicate key",
        ),
        (
            format!("{MINIMAL}\n[syncer.to]\nport = 1\n"),
            "key `syncer.to`: duplicate key",
        ),
    ] {
        let e = parse_error(&text);
        assert!(
            e.contains("a-to-b.toml") && e.contains(path),
            "{path} not in: {e}"
        );
    }
}

#[test]
fn wrong_types_are_named_not_coerced() {
    for (text, path) in [
        (
            format!("[syncer]\nsync-ddl = 3\n{MINIMAL}"),
            "`syncer.sync-ddl`",
        ),
        (
            format!("[syncer]\nworker-count = '16'\n{MINIMAL}"),
            "`syncer.worker-count`",
        ),
        (
            format!("[syncer]\nworker-count = -1\n{MINIMAL}"),
            "`syncer.worker-count`",
        ),
        (
            MINIMAL.replace("port = 3306", "port = 70000"),
            "`pump.port`",
        ),
        (format!("log-level = 'loud'\n{MINIMAL}"), "`log-level`"),
        (
            format!("[syncer]\nreplicate-do-db = 'app'\n{MINIMAL}"),
            "`syncer.replicate-do-db`",
        ),
    ] {
        let e = parse_error(&text);
        assert!(e.contains(path), "{path} not in: {e}");
        assert!(e.contains("a-to-b.toml"), "{e}");
    }
}

#[test]
fn required_keys_are_required() {
    // [pump]'s keys are required unless it names a relay: a violation each.
    let c = parse(&MINIMAL.replace("server-id = 4001", "")).unwrap();
    assert_violates(&c, "pump.server-id", "must be between 1");
    let c = parse(&MINIMAL.replacen("user = \"drainer\"\n", "", 1)).unwrap();
    assert_violates(&c, "pump.user", "must name a user");
    let c = parse(&MINIMAL.replacen("host = \"10.0.0.1\"\n", "", 1)).unwrap();
    assert_violates(&c, "pump.host", "must name a host");
    let e = parse_error(&MINIMAL.replace("host = \"10.0.1.1\"\n", ""));
    assert!(e.contains("`syncer.to`") && e.contains("host"), "{e}");
    let e = parse_error(MINIMAL.split("[syncer.to]").next().unwrap());
    assert!(e.contains("syncer"), "{e}");
}

#[test]
fn toml_syntax_errors_name_file_and_line() {
    let e = parse_error(&format!("{MINIMAL}\nworker-count = = 3\n"));
    assert!(e.contains("a-to-b.toml") && e.contains("line 13"), "{e}");
}

#[test]
fn loopback_needs_a_channel() {
    let mut c = minimal();
    c.syncer.loopback_control = true;
    assert_violates(&c, "syncer.channel-id", "loopback-control");
    c.syncer.channel_id = 7;
    assert!(c.validate().is_empty());
    c.syncer.channel_id = -1;
    assert_violates(&c, "syncer.channel-id", "negative");
}

#[test]
fn the_mark_server_id_derives_from_the_channel_unless_set() {
    let mut c = minimal();
    c.syncer.loopback_control = true;
    c.syncer.channel_id = 7;
    assert_eq!(c.syncer.effective_mark_server_id(), Some(0xF000_0007));
    c.syncer.mark_server_id = 4242;
    assert_eq!(c.syncer.effective_mark_server_id(), Some(4242));
    assert!(c.validate().is_empty());
    c.syncer.mark_server_id = c.pump.server_id;
    assert_violates(&c, "syncer.mark-server-id", "pump.server-id");
    c.syncer.mark_server_id = 0;
    c.syncer.channel_id = 1 << 40;
    assert_eq!(c.syncer.effective_mark_server_id(), None);
    assert_violates(&c, "syncer.mark-server-id", "must be set");
    c.syncer.mark_server_id = 99;
    assert!(c.validate().is_empty());
}

#[test]
fn sync_mode_is_one_or_two() {
    let mut c = minimal();
    for mode in [0, 3, 255] {
        c.syncer.to.sync_mode = mode;
        assert_violates(&c, "syncer.to.sync-mode", "1 (full columns) or 2");
    }
    c.syncer.to.sync_mode = 2;
    assert!(c.validate().is_empty());
}

#[test]
fn worker_count_txn_batch_and_interval_are_bounded() {
    let mut c = minimal();
    c.syncer.worker_count = 0;
    assert_violates(&c, "syncer.worker-count", "between 1 and 1024");
    c.syncer.worker_count = 1025;
    assert_violates(&c, "syncer.worker-count", "(is 1025)");
    c.syncer.worker_count = 1;
    c.syncer.txn_batch = 0;
    assert_violates(&c, "syncer.txn-batch", "at least 1");
    c.syncer.txn_batch = 1;
    c.syncer.checkpoint_interval_ms = 0;
    assert_violates(&c, "syncer.checkpoint-interval-ms", "between 1 and 3600000");
    c.syncer.checkpoint_interval_ms = 3_600_001;
    assert_violates(&c, "syncer.checkpoint-interval-ms", "between 1 and 3600000");
    c.syncer.checkpoint_interval_ms = 1;
    assert!(c.validate().is_empty());
}

#[test]
fn skip_ddl_entries_name_one_transaction() {
    let mut c = minimal();
    c.syncer.skip_ddl = vec![
        "0-1-345".into(),
        "3e11fa47-71ca-11e1-9e33-c80aa9429562:23".into(),
        "binlog.000003:1234".into(),
    ];
    assert!(c.validate().is_empty(), "{:?}", c.validate());
    c.syncer.skip_ddl.push("0-1".into());
    assert_violates(&c, "syncer.skip-ddl[3]", "must name one transaction");
    c.syncer.skip_ddl[3] = "binlog.000003:".into();
    assert_violates(&c, "syncer.skip-ddl[3]", "(is \"binlog.000003:\")");
}

#[test]
fn upstream_and_downstream_must_differ() {
    let mut c = minimal();
    c.syncer.to.host = "10.0.0.1".into();
    assert_violates(&c, "syncer.to", "same server");
    c.syncer.to.port = 3307;
    assert!(c.validate().is_empty());
    // Every spelling of loopback is one host.
    for (a, b) in [
        ("127.0.0.1", "localhost"),
        ("LOCALHOST", "::1"),
        ("[::1]", "127.0.0.1"),
        ("0:0:0:0:0:0:0:1", "localhost"),
        ("::ffff:127.0.0.1", "127.0.0.1"),
        ("DB1.example", "db1.example"),
    ] {
        c.pump.host = a.into();
        c.syncer.to.host = b.into();
        c.syncer.to.port = c.pump.port;
        assert_violates(&c, "syncer.to", "same server");
    }
    // Another loopback address is another socket: two servers may bind one each.
    c.pump.host = "127.0.0.1".into();
    c.syncer.to.host = "127.0.0.2".into();
    assert!(c.validate().is_empty(), "{:?}", c.validate());
}

#[test]
fn endpoints_need_host_port_user_and_a_replica_id() {
    let mut c = minimal();
    c.pump.host = String::new();
    c.pump.port = 0;
    c.pump.user = String::new();
    c.pump.server_id = 0;
    c.syncer.to.host = "db host".into();
    c.syncer.to.port = 0;
    c.syncer.to.user = String::new();
    assert_eq!(
        violated(&c),
        [
            "pump.host",
            "pump.port",
            "pump.user",
            "pump.server-id",
            "syncer.to.host",
            "syncer.to.port",
            "syncer.to.user",
        ]
    );
}

#[test]
fn data_dir_and_addr_are_checked() {
    let mut c = minimal();
    c.data_dir = PathBuf::new();
    assert_violates(&c, "data-dir", "directory");
    c.data_dir = "d".into();
    for bad in [
        "8249",
        "127.0.0.1",
        "127.0.0.1:0",
        "127.0.0.1:99999",
        ":8249",
        "host:port",
    ] {
        c.addr = bad.into();
        assert_violates(&c, "addr", "host:port");
    }
    for good in [
        "127.0.0.1:8249",
        "[::1]:8249",
        "localhost:1",
        "0.0.0.0:8249",
    ] {
        c.addr = good.into();
        assert!(c.validate().is_empty(), "{good}: {:?}", c.validate());
    }
}

#[test]
fn starting_point_is_one_of_gtid_or_file() {
    let mut c = minimal();
    c.pump.initial_gtid = "0-1-100".into();
    c.pump.initial_file = "binlog.000003".into();
    assert_violates(&c, "pump.initial-file", "initial-gtid");
    c.pump.initial_gtid.clear();
    c.pump.initial_pos = 3;
    assert_violates(&c, "pump.initial-pos", "at least 4");
    c.pump.initial_pos = 1234;
    assert!(c.validate().is_empty());
    c.pump.initial_file = "/var/lib/mysql/binlog.000003".into();
    assert_violates(&c, "pump.initial-file", "not a path");
    c.pump.initial_file = " binlog.000003".into();
    assert_violates(&c, "pump.initial-file", "not a path");
    c.pump.initial_file.clear();
    assert_violates(&c, "pump.initial-pos", "only used with pump.initial-file");
}

#[test]
fn initial_gtid_syntax() {
    let mut c = minimal();
    for good in [
        "0-1-100",
        "0-1-100,1-2-7",
        "0-4294967295-18446744073709551615",
        "3E11FA47-71CA-11E1-9E33-C80AA9429562:1-5",
        "3e11fa47-71ca-11e1-9e33-c80aa9429562:1-5:7:9-11,4e11fa47-71ca-11e1-9e33-c80aa9429562:1",
        "3E11FA47-71CA-11E1-9E33-C80AA9429562:tag_1:1-5",
    ] {
        c.pump.initial_gtid = good.into();
        assert!(c.validate().is_empty(), "{good}: {:?}", c.validate());
    }
    for bad in [
        "0-1",
        "0-1-x",
        "-1-1-1",
        "0-1-100,",
        "3E11FA47-71CA-11E1-9E33-C80AA9429562",
        "3E11FA47-71CA-11E1-9E33-C80AA9429562:5-1",
        "3E11FA47-71CA-11E1-9E33-C80AA9429562:0-3",
        "3E11FA47:1-5",
        "0-1-100,3E11FA47-71CA-11E1-9E33-C80AA9429562:1-5",
    ] {
        c.pump.initial_gtid = bad.into();
        assert_violates(&c, "pump.initial-gtid", "GTID");
    }
    c.pump.initial_gtid = "0-1-100,0-2-7".into();
    assert_violates(&c, "pump.initial-gtid", "domain 0 twice");
}

#[test]
fn names_and_patterns_are_checked() {
    let mut c = minimal();
    c.syncer.mark_table = "no_schema".into();
    assert_violates(&c, "syncer.mark-table", "schema.table");
    c.syncer.mark_table = ".t".into();
    assert_violates(&c, "syncer.mark-table", "schema part");
    c.syncer.mark_table = "retl.`m`".into();
    assert_violates(&c, "syncer.mark-table", "backtick");
    c.syncer.mark_table = format!("retl.{}", "x".repeat(65));
    assert_violates(&c, "syncer.mark-table", "64 characters");
    c.syncer.mark_table = "retl.mark".into();

    c.syncer.ignore_schemas = "mysql, ,sys".into();
    assert!(c.validate().is_empty(), "empty entries are skipped");
    c.syncer.ignore_schemas = "mysql,bad`name".into();
    assert_violates(&c, "syncer.ignore-schemas", "bad`name");
    c.syncer.ignore_schemas = "mysql".into();

    c.syncer.replicate_do_db = vec![
        "app".into(),
        "~^shop_[0-9]+$".into(),
        "~".into(),
        String::new(),
        "~(".into(),
    ];
    assert_eq!(
        violated(&c),
        [
            "syncer.replicate-do-db[2]",
            "syncer.replicate-do-db[3]",
            "syncer.replicate-do-db[4]"
        ]
    );
    assert_violates(
        &c,
        "syncer.replicate-do-db[4]",
        "not a valid regular expression",
    );
    c.syncer.replicate_do_db.clear();

    c.syncer.replicate_do_table = vec![conf::TableName {
        db_name: "app".into(),
        tbl_name: String::new(),
    }];
    c.syncer.ignore_table = vec![conf::TableName {
        db_name: String::new(),
        tbl_name: "~^tmp_".into(),
    }];
    assert_eq!(
        violated(&c),
        [
            "syncer.replicate-do-table[0].tbl-name",
            "syncer.ignore-table[0].db-name"
        ]
    );
}

#[test]
fn secrets_never_show_in_debug_or_serialized_output() {
    let mut c = parse(FULL).unwrap();
    let debug = format!("{c:?} {:#?}", c);
    assert!(
        !debug.contains("pump-pw") && !debug.contains("to-pw"),
        "{debug}"
    );
    assert!(debug.contains("<redacted>"));
    let text = toml::to_string(&c).unwrap();
    assert!(
        !text.contains("pump-pw") && !text.contains("to-pw"),
        "{text}"
    );
    assert!(text.contains("password = \"<redacted>\""), "{text}");
    // An empty password reveals nothing, so it shows as empty.
    c.pump.password = Secret::default();
    assert!(format!("{:?}", c.pump).contains("password: \"\""));
}

#[test]
fn errors_never_quote_a_password() {
    for (line, secret) in [
        ("password = 12345", "12345"),
        ("password = hunter2", "hunter2"),
        ("password = [\"s3cr3t\"]", "s3cr3t"),
        ("password = \"unterminated-s3cr3t", "unterminated-s3cr3t"),
    ] {
        for section in ["[pump]", "[syncer.to]"] {
            let text = MINIMAL.replace(section, &format!("{section}\n{line}"));
            let e = parse_error(&text);
            assert!(!e.contains(secret), "{secret} shown in: {e}");
            assert!(e.contains("line "), "{e}");
        }
    }
    let e = parse_error(&MINIMAL.replace("[pump]", "[pump]\npassword = 12345"));
    assert!(
        e.contains("key `pump.password`: must be a quoted string"),
        "{e}"
    );
}

#[test]
fn errors_name_line_and_column_without_quoting_the_file() {
    let e = parse_error(&format!("[syncer]\nworker-count = 'x'\n{MINIMAL}"));
    assert!(e.contains("line 2, column 16: key `syncer.worker-count`: invalid type: string \"x\", expected u32"), "{e}");
    assert!(
        !e.contains("worker-count = 'x'"),
        "the source line is not echoed: {e}"
    );
}

#[test]
fn password_environment_variables_replace_the_file_values() {
    let mut c = parse(FULL).unwrap();
    c.apply_password_env(|name| match name {
        conf::PUMP_PASSWORD_ENV => Some("from-env".into()),
        _ => None,
    });
    assert_eq!(c.pump.password.expose(), "from-env");
    assert_eq!(c.syncer.to.password.expose(), "to-pw");
    c.apply_password_env(|name| (name == conf::TO_PASSWORD_ENV).then(String::new));
    assert_eq!(
        c.syncer.to.password.expose(),
        "",
        "set but empty means no password"
    );
}

#[test]
fn load_names_the_file_and_lists_every_violation() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("absent.toml");
    let e = Config::load(&missing).unwrap_err();
    assert!(matches!(e, ConfigError::Read { .. }), "{e:?}");
    assert!(e.to_string().contains("absent.toml"), "{e}");

    let path = dir.path().join("bad.toml");
    let text = MINIMAL.replace(
        "[syncer.to]",
        "[syncer]\nworker-count = 0\nloopback-control = true\n[syncer.to]",
    );
    std::fs::write(&path, text).unwrap();
    let e = Config::load(&path).unwrap_err();
    let ConfigError::Invalid { violations, .. } = &e else {
        panic!("expected Invalid, got {e:?}");
    };
    assert_eq!(violations.len(), 2, "{violations:?}");
    let shown = e.to_string();
    assert!(shown.contains("bad.toml"), "{shown}");
    assert!(
        shown.contains("syncer.worker-count: must be between 1 and 1024 (is 0)"),
        "{shown}"
    );
    assert!(shown.contains("syncer.channel-id"), "{shown}");

    let path = dir.path().join("good.toml");
    std::fs::write(&path, MINIMAL).unwrap();
    assert_eq!(Config::load(&path).unwrap().pump.server_id, 4001);
}

/// The example topologies in `examples/` load, validate, and keep their promises: one
/// direction per file, loop control on, pump replica ids unique per upstream, DDL leaving
/// one site only in the two-site and mesh layouts.
#[test]
fn example_topologies_are_valid() {
    // Where cargo runs the test from (the build may have happened in another checkout).
    let manifest = std::env::var_os("CARGO_MANIFEST_DIR").map_or_else(
        || env!("CARGO_MANIFEST_DIR").into(),
        std::path::PathBuf::from,
    );
    let root = manifest.join("../examples");
    for (layout, files) in [("two-sites", 2), ("three-site-mesh", 6), ("chain", 2)] {
        let mut configs = Vec::new();
        for entry in std::fs::read_dir(root.join(layout)).unwrap() {
            let path = entry.unwrap().path();
            let config = Config::load(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            assert!(config.syncer.loopback_control, "{}", path.display());
            configs.push(config);
        }
        assert_eq!(configs.len(), files, "{layout}");
        let mut replicas: Vec<(String, u32)> = configs
            .iter()
            .map(|c| (c.pump.host.clone(), c.pump.server_id))
            .collect();
        replicas.sort();
        replicas.dedup();
        assert_eq!(
            replicas.len(),
            files,
            "{layout}: a pump server-id repeats on one upstream"
        );
        if layout != "chain" {
            let ddl_sources: Vec<&str> = configs
                .iter()
                .filter(|c| c.syncer.sync_ddl)
                .map(|c| c.pump.host.as_str())
                .collect();
            assert!(
                ddl_sources.windows(2).all(|w| w[0] == w[1]),
                "{layout}: DDL leaves more than one site: {ddl_sources:?}"
            );
        }
    }
}

#[test]
fn tls_keys_parse_with_the_mysql_clients_names() {
    let c = minimal();
    assert_eq!(c.pump.ssl_mode, SslMode::Preferred);
    assert_eq!(c.syncer.to.ssl_mode, SslMode::Preferred);
    let text = format!(
        "{MINIMAL}ssl-mode = \"verify-identity\"\nssl-ca = \"ca.pem\"\n\
         ssl-cert = \"me.pem\"\nssl-key = \"me.key\"\n"
    );
    let c = parse(&text).unwrap();
    let tls = c.syncer.to.tls();
    assert_eq!(tls.mode, SslMode::VerifyIdentity);
    assert_eq!(tls.ca.as_deref(), Some(Path::new("ca.pem")));
    assert_eq!(tls.section, "syncer.to");
    assert!(c.validate().is_empty(), "{:?}", c.validate());
    let bad = format!("{MINIMAL}ssl-mode = \"verify_full\"\n");
    let e = parse_error(&bad);
    assert!(e.contains("ssl-mode"), "{e}");
}

#[test]
fn tls_keys_must_agree_with_the_mode() {
    let mut c = minimal();
    c.pump.ssl_mode = SslMode::VerifyCa;
    assert_violates(&c, "pump.ssl-ca", "must name the CA file");
    c.pump.ssl_ca = Some(PathBuf::from("ca.pem"));
    assert!(c.validate().is_empty());
    c.pump.ssl_cert = Some(PathBuf::from("me.pem"));
    assert_violates(&c, "pump.ssl-key", "private key of pump.ssl-cert");
    c.pump.ssl_cert = None;
    c.pump.ssl_key = Some(PathBuf::from("me.key"));
    assert_violates(&c, "pump.ssl-cert", "certificate of pump.ssl-key");
    c.pump.ssl_key = None;
    c.pump.ssl_mode = SslMode::Disabled;
    assert_violates(&c, "pump.ssl-ca", "would not use it");
    c.pump.ssl_ca = Some(PathBuf::new());
    c.pump.ssl_mode = SslMode::Required;
    assert_violates(&c, "pump.ssl-ca", "must name a PEM file");
}

#[test]
fn a_relay_replaces_the_upstreams_address_and_login() {
    let text = r#"
[pump]
relay = "relay-a.example:8250"
[pump.tls]
ca = "ca.pem"
cert = "drainer-b.pem"
key = "drainer-b.key"
server-name = "relay-a.example"

[syncer.to]
host = "10.0.1.1"
port = 3306
user = "drainer"
"#;
    let c = parse(text).unwrap();
    assert!(c.validate().is_empty(), "{:?}", c.validate());
    let tls = c.pump.tls.as_ref().unwrap();
    assert_eq!(tls.server_name.as_deref(), Some("relay-a.example"));
    // Serialized and read back: the same model.
    let back = parse(&toml::to_string(&c).unwrap()).unwrap();
    assert_eq!(back, c);

    let mut both = c.clone();
    both.pump.host = "10.0.0.1".into();
    both.pump.server_id = 4001;
    assert_violates(&both, "pump.host", "not used with pump.relay");
    assert_violates(&both, "pump.server-id", "not used with pump.relay");
    let mut bare = c.clone();
    bare.pump.tls = None;
    assert_violates(&bare, "pump.tls", "must name ca, cert and key");
    let mut bad = c.clone();
    bad.pump.relay = Some("relay-a.example".into());
    assert_violates(&bad, "pump.relay", "port");
    let mut stray = minimal();
    stray.pump.tls = c.pump.tls.clone();
    assert_violates(&stray, "pump.tls", "is for a relay");
}

#[test]
fn relay_toml_loads_and_names_what_is_wrong() {
    let text = r#"
listen = "0.0.0.0:8250"
addr = "127.0.0.1:8251"
[tls]
ca = "ca.pem"
cert = "relay-a.pem"
key = "relay-a.key"
allowed-names = ["drainer-b"]
[upstream]
host = "127.0.0.1"
port = 3306
user = "drainer"
password = "pw"
server-id = 4001
"#;
    let c = conf::RelayConfig::parse(text, Path::new("relay.toml")).unwrap();
    assert!(c.validate().is_empty(), "{:?}", c.validate());
    assert_eq!(c.upstream.max_streams, conf::DEFAULT_MAX_STREAMS);
    assert_eq!(c.upstream.tls().section, "upstream");
    let e = conf::RelayConfig::parse(
        &text.replace("allowed-names", "allowed"),
        Path::new("relay.toml"),
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("relay.toml") && e.contains("allowed"), "{e}");
    let mut bad = c.clone();
    bad.upstream.server_id = 0;
    bad.listen = "8250".into();
    bad.upstream.max_streams = 0;
    let fields: Vec<String> = bad.validate().into_iter().map(|v| v.field).collect();
    assert!(
        fields.contains(&"upstream.server-id".to_owned()),
        "{fields:?}"
    );
    assert!(fields.contains(&"listen".to_owned()), "{fields:?}");
    assert!(
        fields.contains(&"upstream.max-streams".to_owned()),
        "{fields:?}"
    );
    assert!(!format!("{c:?}").contains("\"pw\""));
}

#[test]
fn conflict_policies_per_table() {
    let text = format!(
        "{MINIMAL}[syncer.conflict]\npolicy = \"keep\"\n[[syncer.conflict.table]]\n\
         db-name = \"app\"\ntbl-name = \"accounts\"\npolicy = \"lww\"\ncolumn = \"updated_at\"\n"
    );
    let c = parse(&text).unwrap();
    let conflict = c.syncer.conflict.as_ref().unwrap();
    assert_eq!(conflict.policy, conf::ConflictPolicy::Keep);
    assert_eq!(conflict.table[0].column.as_deref(), Some("updated_at"));
    assert!(c.validate().is_empty(), "{:?}", c.validate());
    assert!(minimal().syncer.conflict.is_none());

    let mut bad = c.clone();
    let t = &mut bad.syncer.conflict.as_mut().unwrap().table;
    t[0].column = None;
    t.push(conf::ConflictTable {
        db_name: "APP".into(),
        tbl_name: "Accounts".into(),
        policy: conf::ConflictPolicy::Stop,
        column: Some("x".into()),
    });
    assert_violates(
        &bad,
        "syncer.conflict.table[0].column",
        "must name the column",
    );
    assert_violates(
        &bad,
        "syncer.conflict.table[1].column",
        "only used with policy",
    );
    assert_violates(&bad, "syncer.conflict.table[1]", "again");
    bad.syncer.conflict.as_mut().unwrap().policy = conf::ConflictPolicy::Lww;
    assert_violates(&bad, "syncer.conflict.policy", "per table");
}

#[test]
fn row_filters_one_per_table() {
    let entry = |db: &str, tbl: &str, cond: &str| {
        format!(
            "[[syncer.row-filter]]\ndb-name = \"{db}\"\ntbl-name = \"{tbl}\"\nwhere = \"{cond}\"\n"
        )
    };
    let text = format!(
        "{MINIMAL}{}{}",
        entry("app", "orders", "region = 'eu'"),
        entry("app", "Orders", "amount > 10")
    );
    let c = parse(&text).unwrap();
    // Table names are case-sensitive on the server, as the filter's lookup is.
    assert!(c.validate().is_empty(), "{:?}", c.validate());

    let mut bad = c.clone();
    bad.syncer.row_filter.push(conf::RowFilter {
        db_name: "app".into(),
        tbl_name: "orders".into(),
        condition: "amount > 10".into(),
    });
    bad.syncer.row_filter.push(conf::RowFilter {
        db_name: "".into(),
        tbl_name: "x`y".into(),
        condition: "1 = 1".into(),
    });
    assert_violates(
        &bad,
        "syncer.row-filter[2]",
        "names app.orders again: give one entry per table, its conditions joined with AND",
    );
    assert_violates(&bad, "syncer.row-filter[3].db-name", "must not be empty");
    assert_violates(&bad, "syncer.row-filter[3].tbl-name", "backtick");
}
