//! `drainer check-config` and the exit codes of a bad configuration, against real servers.

use std::time::Duration;

use integration::{config_for, DrainerCommand, DrainerOutput, MariaDb};

const RUN_TIMEOUT: Duration = Duration::from_secs(60);

/// Runs `drainer check-config` for the direction `up` → `down`, after `adjust`.
async fn check_config(
    up: &MariaDb,
    down: &MariaDb,
    adjust: impl FnOnce(&mut conf::Config),
) -> DrainerOutput {
    let command = DrainerCommand::new().unwrap();
    let mut config = config_for(up, down, &command.dir().join("data")).unwrap();
    adjust(&mut config);
    command
        .arg("check-config")
        .config(&config)
        .unwrap()
        .output(RUN_TIMEOUT)
        .await
        .unwrap()
}

/// The report line of `setting` on `server`, e.g. `FAIL   upstream   binlog_format  ROW  STATEMENT`.
fn line<'a>(out: &'a DrainerOutput, server: &str, setting: &str) -> &'a str {
    out.stdout
        .lines()
        .find(|l| {
            let mut words = l.split_whitespace().skip(1);
            words.next() == Some(server) && l.contains(&format!(" {setting} "))
        })
        .unwrap_or_else(|| panic!("no {server} {setting} line in:\n{}", out.stdout))
}

fn assert_line(out: &DrainerOutput, server: &str, setting: &str, result: &str, words: &[&str]) {
    let l = line(out, server, setting);
    assert!(
        l.starts_with(result),
        "expected {result}: {l}\n{}",
        out.stdout
    );
    for w in words {
        assert!(l.contains(w), "{w:?} missing from: {l}");
    }
}

#[tokio::test]
async fn a_correctly_set_up_pair_passes() {
    let (up, down) = tokio::join!(MariaDb::start(), MariaDb::start());
    let (up, down) = (up.unwrap(), down.unwrap());
    let out = check_config(&up, &down, |c| {
        c.syncer.loopback_control = true;
        c.syncer.channel_id = 1;
    })
    .await;
    assert_eq!(
        out.code(),
        Some(0),
        "stdout:\n{}\nstderr:\n{}",
        out.stdout,
        out.stderr
    );
    assert!(out.stdout.contains("preflight passed"), "{}", out.stdout);
    assert!(!out.stdout.contains("FAIL"), "{}", out.stdout);
    for (server, setting, actual) in [
        ("upstream", "connection", "MariaDB"),
        ("upstream", "log_bin", "ON"),
        ("upstream", "binlog_format", "ROW"),
        ("upstream", "binlog_row_image", "FULL"),
        ("upstream", "log_bin_compress", "OFF"),
        ("upstream", "server_id", &up.server_id().to_string()),
        ("upstream", "replication privileges", "granted"),
        ("downstream", "connection", "MariaDB"),
        ("downstream", "server_id", &down.server_id().to_string()),
        ("downstream", "write privileges", "granted"),
        ("downstream", "mark table privileges", "granted"),
    ] {
        assert_line(&out, server, setting, "ok", &[actual]);
    }
    // The effective configuration comes first, with the passwords redacted.
    assert!(
        out.stdout.contains(&format!("port = {}", up.port())),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("password = \"<redacted>\""),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("from DRAINER_PUMP_PASSWORD"),
        "{}",
        out.stdout
    );
    for secret in [integration::PUMP_PASSWORD, integration::APPLY_PASSWORD] {
        assert!(
            !out.stdout.contains(secret) && !out.stderr.contains(secret),
            "{secret} leaked"
        );
    }
}

#[tokio::test]
async fn statement_binlog_upstream_fails_with_exit_3_naming_binlog_format() {
    let (up, down) = tokio::join!(
        MariaDb::builder().arg("--binlog-format=STATEMENT").start(),
        MariaDb::start()
    );
    let (up, down) = (up.unwrap(), down.unwrap());
    let out = check_config(&up, &down, |_| {}).await;
    assert_eq!(out.code(), Some(3), "{}\n{}", out.stdout, out.stderr);
    assert_line(
        &out,
        "upstream",
        "binlog_format",
        "FAIL",
        &["ROW", "STATEMENT"],
    );
    assert!(
        out.stdout
            .contains("preflight FAILED: upstream binlog_format"),
        "{}",
        out.stdout
    );
}

#[tokio::test]
async fn upstream_without_binlog_fails_with_exit_3_naming_log_bin() {
    let (up, down) = tokio::join!(MariaDb::builder().binlog(false).start(), MariaDb::start());
    let (up, down) = (up.unwrap(), down.unwrap());
    let out = check_config(&up, &down, |_| {}).await;
    assert_eq!(out.code(), Some(3), "{}\n{}", out.stdout, out.stderr);
    assert_line(&out, "upstream", "log_bin", "FAIL", &["ON", "OFF"]);
}

#[tokio::test]
async fn wrong_credentials_missing_privileges_and_a_clashing_replica_id_fail() {
    let (up, down) = tokio::join!(MariaDb::start(), MariaDb::start());
    let (up, down) = (up.unwrap(), down.unwrap());
    up.exec(&[
        "CREATE USER 'reader'@'127.0.0.1' IDENTIFIED BY 'pw'",
        "GRANT SELECT ON *.* TO 'reader'@'127.0.0.1'",
    ])
    .await
    .unwrap();
    down.exec(&[
        "CREATE USER 'writer'@'127.0.0.1' IDENTIFIED BY 'pw'",
        "GRANT SELECT, INSERT, UPDATE, DELETE ON app.* TO 'writer'@'127.0.0.1'",
    ])
    .await
    .unwrap();

    let out = check_config(&up, &down, |c| {
        c.pump.user = "reader".into();
        c.pump.password = conf::Secret::new("pw");
        c.pump.server_id = up.server_id();
        c.syncer.to.user = "writer".into();
        c.syncer.to.password = conf::Secret::new("pw");
        c.syncer.replicate_do_db = vec!["app".into()];
    })
    .await;
    assert_eq!(out.code(), Some(3), "{}\n{}", out.stdout, out.stderr);
    assert_line(
        &out,
        "upstream",
        "replication privileges",
        "FAIL",
        &["lacks REPLICATION SLAVE, BINLOG MONITOR"],
    );
    assert_line(
        &out,
        "upstream",
        "server_id",
        "FAIL",
        &[&format!("not {}", up.server_id())],
    );
    assert_line(&out, "downstream", "write privileges", "ok", &["app.*"]);
    assert_line(
        &out,
        "downstream",
        "DDL privileges",
        "FAIL",
        &["lacks CREATE, DROP, ALTER, INDEX"],
    );

    let out = check_config(&up, &down, |c| {
        c.syncer.to.password = conf::Secret::new("wrong")
    })
    .await;
    assert_eq!(out.code(), Some(3));
    assert_line(&out, "downstream", "connection", "FAIL", &["Access denied"]);
}

#[tokio::test]
async fn an_unreachable_server_fails_the_preflight() {
    let up = MariaDb::start().await.unwrap();
    let down = MariaDb::start().await.unwrap();
    let port = down.port();
    drop(down);
    let command = DrainerCommand::new().unwrap();
    let mut config = config_for(&up, &up, &command.dir().join("data")).unwrap();
    config.syncer.to.port = port;
    let out = command
        .arg("check-config")
        .config(&config)
        .unwrap()
        .output(RUN_TIMEOUT)
        .await
        .unwrap();
    assert_eq!(out.code(), Some(3), "{}\n{}", out.stdout, out.stderr);
    assert_line(&out, "downstream", "connection", "FAIL", &[]);
    assert_line(&out, "upstream", "connection", "ok", &[]);
}

#[tokio::test]
async fn run_refuses_an_upstream_that_fails_the_preflight() {
    let (up, down) = tokio::join!(
        MariaDb::builder().arg("--binlog-format=MIXED").start(),
        MariaDb::start()
    );
    let (up, down) = (up.unwrap(), down.unwrap());
    let command = DrainerCommand::new().unwrap();
    let config = config_for(&up, &down, &command.dir().join("data")).unwrap();
    let out = command
        .config(&config)
        .unwrap()
        .output(RUN_TIMEOUT)
        .await
        .unwrap();
    assert_eq!(out.code(), Some(3), "{}\n{}", out.stdout, out.stderr);
    assert!(
        out.stderr.contains("binlog_format") && out.stderr.contains("MIXED"),
        "{}",
        out.stderr
    );
}
