//! `drainer check-config` and the exit codes of a bad configuration, against real servers.

use std::time::Duration;

use integration::{assert_line, config_for, row, DrainerCommand, DrainerOutput, MariaDb};

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
        ("upstream", "connection", "-MariaDB-"),
        ("upstream", "log_bin", "ON"),
        ("upstream", "binlog_format", "ROW"),
        ("upstream", "binlog_row_image", "FULL"),
        ("upstream", "log_bin_compress", "OFF"),
        ("upstream", "server_id", &up.server_id().to_string()),
        (
            "upstream",
            "replication privileges",
            "granted to drainer_pump@127.0.0.1",
        ),
        (
            "upstream",
            "read privileges (table definitions)",
            "granted to drainer_pump@127.0.0.1",
        ),
        ("downstream", "connection", "-MariaDB-"),
        ("downstream", "server_id", &down.server_id().to_string()),
        ("downstream", "read_only", "OFF"),
        (
            "downstream",
            "write privileges",
            "granted to drainer_to@127.0.0.1",
        ),
        (
            "downstream",
            "DDL privileges (sync-ddl = true)",
            "granted to drainer_to@127.0.0.1",
        ),
        (
            "downstream",
            "drainer schema privileges",
            "granted to drainer_to@127.0.0.1",
        ),
    ] {
        let r = row(&out, server, setting);
        assert_eq!(r.result, "ok", "{server} {setting}: {r:?}");
        assert!(
            r.actual == actual || actual.starts_with('-') && r.actual.contains(actual),
            "{server} {setting}: {r:?}"
        );
    }
    assert_eq!(
        row(&out, "upstream", "server_id").expected,
        format!("not {} ([pump] server-id)", 10_000 + up.server_id())
    );
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
    assert_line(&out, "upstream", "binlog_format", "FAIL", "STATEMENT");
    assert_eq!(row(&out, "upstream", "binlog_format").expected, "ROW");
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
    assert_line(&out, "upstream", "log_bin", "FAIL", "OFF");
    assert_eq!(row(&out, "upstream", "log_bin").expected, "ON");
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
        "reader@127.0.0.1 lacks REPLICATION SLAVE, BINLOG MONITOR",
    );
    assert_line(
        &out,
        "upstream",
        "server_id",
        "FAIL",
        &up.server_id().to_string(),
    );
    assert_line(
        &out,
        "downstream",
        "write privileges",
        "ok",
        "granted to writer@127.0.0.1",
    );
    assert_eq!(
        row(&out, "downstream", "write privileges").expected,
        "SELECT, INSERT, UPDATE, DELETE on app.*"
    );
    assert_line(
        &out,
        "downstream",
        "DDL privileges (sync-ddl = true)",
        "FAIL",
        "writer@127.0.0.1 lacks CREATE, DROP, ALTER, INDEX",
    );
    assert_line(
        &out,
        "downstream",
        "BINLOG REPLAY (row events, session server_id)",
        "FAIL",
        "writer@127.0.0.1 lacks BINLOG REPLAY",
    );

    let out = check_config(&up, &down, |c| {
        c.syncer.to.password = conf::Secret::new("wrong")
    })
    .await;
    assert_eq!(out.code(), Some(3));
    assert_line(&out, "downstream", "connection", "FAIL", "Access denied");
}

#[tokio::test]
async fn privileges_granted_through_a_default_role_count() {
    let (up, down) = tokio::join!(MariaDb::start(), MariaDb::start());
    let (up, down) = (up.unwrap(), down.unwrap());
    up.exec(&[
        "CREATE ROLE replication_reader",
        "GRANT REPLICATION SLAVE, BINLOG MONITOR, SELECT ON *.* TO replication_reader",
        "CREATE USER 'via_role'@'127.0.0.1' IDENTIFIED BY 'pw'",
        "GRANT replication_reader TO 'via_role'@'127.0.0.1'",
        "SET DEFAULT ROLE replication_reader FOR 'via_role'@'127.0.0.1'",
    ])
    .await
    .unwrap();
    let out = check_config(&up, &down, |c| {
        c.pump.user = "via_role".into();
        c.pump.password = conf::Secret::new("pw");
    })
    .await;
    assert_eq!(out.code(), Some(0), "{}\n{}", out.stdout, out.stderr);
    assert_line(
        &out,
        "upstream",
        "replication privileges",
        "ok",
        "granted to via_role@127.0.0.1",
    );
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
    assert_line(&out, "downstream", "connection", "FAIL", "");
    assert_line(&out, "upstream", "connection", "ok", "-MariaDB-");
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
