//! The command line without servers: help, version, and configuration errors (exit 2).
//! Tests that need MariaDB live in the `integration` crate.

use std::path::Path;
use std::process::{Command, Output};

const VALID: &str = r#"
[pump]
host = "127.0.0.1"
port = 3306
user = "drainer"
server-id = 4001
[syncer.to]
host = "127.0.0.1"
port = 3307
user = "drainer"
"#;

fn drainer(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_drainer"))
        .args(args)
        .env_remove("DRAINER_PUMP_PASSWORD")
        .env_remove("DRAINER_TO_PASSWORD")
        .output()
        .expect("the drainer binary runs")
}

fn with_config(text: &str, args: &[&str]) -> Output {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("drainer.toml");
    std::fs::write(&path, text).unwrap();
    let mut all: Vec<&str> = args.to_vec();
    all.extend(["--config", path.to_str().unwrap()]);
    drainer(&all)
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn an_unknown_key_exits_2_and_names_the_key_and_file() {
    let text = VALID.replace("[syncer.to]", "[syncer]\nworker-cont = 4\n[syncer.to]");
    for args in [&[][..], &["check-config"][..]] {
        let out = with_config(&text, args);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains("key `syncer.worker-cont`"), "{err}");
        assert!(
            err.contains("drainer.toml") && err.contains("line 8"),
            "{err}"
        );
    }
}

#[test]
fn a_duplicated_section_exits_2_naming_it() {
    let text = format!("{VALID}\n[syncer]\ntxn-batch = 3\n[syncer]\nworker-count = 2\n");
    let out = with_config(&text, &["check-config"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("key `syncer`: duplicate key"), "{err}");
}

/// Log lines to a file, a pipe or journald carry no colour codes; only a terminal gets
/// them.
#[test]
fn logs_to_a_file_carry_no_colour_codes() {
    // Nothing listens on port 1: the preflight fails and logs errors (exit 3).
    let text = VALID.replace("port = 3306", "port = 1");
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap()
        .port();
    let text = format!("addr = \"127.0.0.1:{port}\"\n{text}");
    let path = dir.path().join("drainer.toml");
    std::fs::write(&path, text).unwrap();
    let out = drainer(&["--config", path.to_str().unwrap()]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(err.contains("preflight check failed"), "{err}");
    assert!(!err.contains('\u{1b}'), "colour codes in a pipe: {err:?}");
}

#[test]
fn an_invalid_configuration_exits_2_listing_every_broken_rule() {
    let text = VALID.replace("port = 3307", "port = 3306\nsync-mode = 3");
    let out = with_config(&text, &["check-config"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("syncer.to.sync-mode: must be 1 (full columns) or 2"),
        "{err}"
    );
    assert!(
        err.contains("syncer.to: must be another server than [pump]"),
        "{err}"
    );
}

#[test]
fn a_missing_file_or_flag_exits_2() {
    let out = drainer(&["--config", "/nonexistent/drainer.toml"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("/nonexistent/drainer.toml"),
        "{}",
        stderr(&out)
    );

    let out = drainer(&["check-config"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("--config FILE is required"),
        "{}",
        stderr(&out)
    );

    let out = drainer(&["no-such-command"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn help_shows_an_example_and_the_exit_codes() {
    let out = drainer(&["--help"]);
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("drainer check-config --config a-to-b.toml"),
        "{text}"
    );
    assert!(
        text.contains(
            "Exit codes: 0 ok, 1 runtime failure, 2 bad configuration, 3 failed preflight"
        ),
        "{text}"
    );
    let out = drainer(&["--version"]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("drainer {}", env!("CARGO_PKG_VERSION"))
    );
    assert!(Path::new(env!("CARGO_BIN_EXE_drainer")).is_file());
}

#[test]
fn schema_show_prints_the_tracked_definitions() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data.drainer");
    {
        let store = checkpoint::Store::open(&data).unwrap();
        let mut history = schema::History::load(&store, None).unwrap();
        let at = pump_reader::Position {
            coords: pump_reader::BinlogCoords::new("binlog.000001", 4),
            gtids: None,
        };
        history
            .bootstrap(
                &store,
                &at,
                &schema::Snapshot {
                    server: schema::Database::default(),
                    statements: vec![
                        (String::new(), "CREATE DATABASE app".into()),
                        (
                            "app".into(),
                            "CREATE TABLE orders (id INT PRIMARY KEY, total DECIMAL(10,2))".into(),
                        ),
                        ("app".into(), "CREATE TABLE notes (body TEXT)".into()),
                    ],
                },
            )
            .unwrap();
        // A checkpoint at the bootstrap, and a change read after it but never committed.
        store.set_checkpoint(&at, 0).unwrap();
        let later = pump_reader::Position {
            coords: pump_reader::BinlogCoords::new("binlog.000001", 500),
            gtids: None,
        };
        history
            .apply(
                &store,
                &later,
                "app",
                "ALTER TABLE notes ADD COLUMN tag INT",
            )
            .unwrap();
    }
    let text = VALID.replace(
        "[pump]",
        &format!("data-dir = {:?}\n[pump]", data.display().to_string()),
    );
    let out = with_config(&text, &["schema", "show"]);
    let shown = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        shown.starts_with("-- at the checkpoint binlog.000001:4\n"),
        "{shown}"
    );
    assert!(!shown.contains("`tag`"), "past the checkpoint: {shown}");
    assert!(shown.contains("CREATE TABLE `app`.`orders` (\n  `id` int NOT NULL,\n  `total` decimal(10,2) NULL,\n  PRIMARY KEY (`id`)\n);"), "{shown}");
    assert!(shown.contains("CREATE TABLE `app`.`notes`"), "{shown}");

    let out = with_config(&text, &["schema", "show", "app.notes"]);
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(
        shown.contains("`notes`") && !shown.contains("`orders`"),
        "{shown}"
    );

    // Showing changed nothing: the change past the checkpoint is still recorded, and is
    // shown once the checkpoint reaches it.
    {
        let store = checkpoint::Store::open(&data).unwrap();
        let later = pump_reader::Position {
            coords: pump_reader::BinlogCoords::new("binlog.000001", 500),
            gtids: None,
        };
        store.set_checkpoint(&later, 0).unwrap();
    }
    let out = with_config(&text, &["schema", "show", "app.notes"]);
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(shown.contains("`tag` int NULL"), "{shown}");

    let out = with_config(&text, &["schema", "show", "app.nope"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out)
            .contains("app.nope is not tracked (give db.table); tracked: app.notes, app.orders"),
        "{}",
        stderr(&out)
    );

    let missing = VALID.replace("[pump]", "data-dir = \"/nonexistent/data\"\n[pump]");
    let out = with_config(&missing, &["schema", "show"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("does not exist"), "{}", stderr(&out));
}

#[test]
fn checkpoint_show_and_set() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data.drainer");
    let text = VALID.replace(
        "[pump]",
        &format!("data-dir = {:?}\n[pump]", data.display().to_string()),
    );
    let out = with_config(&text, &["checkpoint", "show"]);
    assert_eq!(out.status.code(), Some(1), "no data-dir yet");

    let out = with_config(&text, &["checkpoint", "set", "--gtid", "0-1-1200,1-2-7"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(String::from_utf8_lossy(&out.stdout)
        .contains("checkpoint set to gtid 0-1-1200,1-2-7 (was none)"));
    let out = with_config(&text, &["checkpoint", "show"]);
    let shown = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        shown.contains("position   (by GTID only)") && shown.contains("gtid       0-1-1200,1-2-7"),
        "{shown}"
    );

    let out = with_config(
        &text,
        &[
            "checkpoint",
            "set",
            "--file",
            "binlog.000009",
            "--pos",
            "1234",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(String::from_utf8_lossy(&out.stdout)
        .contains("set to binlog.000009:1234 (was gtid 0-1-1200,1-2-7)"));

    for (args, code) in [
        (&["checkpoint", "set", "--gtid", "nonsense"][..], 2),
        (
            &["checkpoint", "set", "--file", "binlog.000001", "--pos", "3"][..],
            2,
        ),
        (&["checkpoint", "set", "--file", "binlog.000001"][..], 2),
        (
            &["checkpoint", "set", "--gtid", "0-1-5", "--pos", "4"][..],
            2,
        ),
        (&["checkpoint", "set"][..], 2),
    ] {
        let out = with_config(&text, args);
        assert_eq!(out.status.code(), Some(code), "{args:?}: {}", stderr(&out));
    }

    // Not while a drainer holds the data-dir.
    {
        let _held = checkpoint::Store::open(&data).unwrap();
        let out = with_config(&text, &["checkpoint", "set", "--gtid", "0-1-5"]);
        assert_eq!(out.status.code(), Some(1));
        assert!(
            stderr(&out).contains("stop the drainer first"),
            "{}",
            stderr(&out)
        );
        // show works beside it.
        assert_eq!(
            with_config(&text, &["checkpoint", "show"]).status.code(),
            Some(0)
        );
    }

    // Not before the schema history's bootstrap.
    {
        let store = checkpoint::Store::open(&data).unwrap();
        let mut history = schema::History::load(&store, None).unwrap();
        let at = pump_reader::Position {
            coords: pump_reader::BinlogCoords::new("binlog.000009", 5000),
            gtids: None,
        };
        history
            .bootstrap(&store, &at, &schema::Snapshot::default())
            .unwrap();
    }
    let out = with_config(
        &text,
        &["checkpoint", "set", "--file", "binlog.000008", "--pos", "4"],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("before the schema history's bootstrap at binlog.000009:5000"),
        "{}",
        stderr(&out)
    );
}
