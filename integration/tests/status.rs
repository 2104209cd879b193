//! `GET /status` of a running drainer: what it reports while a workload runs and once
//! caught up, how the server answers other requests and many at once, and a taken port.

use std::time::Duration;

use integration::{
    config_for, drainer_status, eventually, http_get, parse_prometheus, sample, two_sites,
    DrainerCommand, MariaDb,
};

const WAIT: Duration = Duration::from_secs(90);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_reports_progress_and_the_server_holds_up() {
    let (a, b) = two_sites(&[
        "CREATE DATABASE app",
        "CREATE TABLE app.t (id INT PRIMARY KEY, v INT)",
    ])
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut config = config_for(&a, &b, dir.path()).unwrap();
    config.syncer.loopback_control = true;
    config.syncer.channel_id = 3;
    config.syncer.checkpoint_interval_ms = 100;
    let drainer = integration::replicating(&config, WAIT).await.unwrap();

    for i in 0..40 {
        a.exec(&[&format!("INSERT INTO app.t VALUES ({i}, {i})")])
            .await
            .unwrap();
        if i == 20 {
            // While the workload runs.
            let s = drainer_status(&config).await.unwrap();
            assert_eq!(s["state"], "running", "{s}");
            assert!(s["lag_seconds"].is_u64(), "{s}");
        }
    }
    a.exec(&["ALTER TABLE app.t ADD COLUMN w INT"])
        .await
        .unwrap();
    let status = eventually(
        "40 transactions and the DDL applied, caught up",
        WAIT,
        || async {
            let s = drainer_status(&config).await.map_err(|e| e.to_string())?;
            if s["transactions_applied"] == 40 && s["ddl_applied"] == 1 && s["lag_seconds"] == 0 {
                Ok(s)
            } else {
                Err(format!("{s}\n{}", drainer.stderr()))
            }
        },
    )
    .await;
    assert_eq!(status["state"], "running", "{status}");
    assert_eq!(status["channel_id"], 3);
    assert_eq!(status["transactions_loop_dropped"], 0);
    assert_eq!(status["last_error"], serde_json::Value::Null);
    assert_eq!(status["upstream"], format!("127.0.0.1:{}", a.port()));
    let gtid = status["upstream_position"]["gtid"]
        .as_str()
        .unwrap()
        .to_owned();
    let executed: Vec<String> = a.query("SELECT @@global.gtid_binlog_pos").await.unwrap();
    assert_eq!(gtid, executed[0], "{status}");
    // Caught up: the committed prefix reaches it too.
    assert_eq!(
        status["applied_position"]["gtid"],
        gtid.as_str(),
        "{status}"
    );
    // The checkpoint follows within its interval.
    eventually(
        "the checkpoint to reach the upstream position",
        WAIT,
        || async {
            let s = drainer_status(&config).await.map_err(|e| e.to_string())?;
            if s["checkpoint_position"]["gtid"] == gtid.as_str() {
                Ok(())
            } else {
                Err(s.to_string())
            }
        },
    )
    .await;

    // /metrics: Prometheus text whose counters match what was written.
    let (code, text) = http_get(&config.addr, "/metrics").await.unwrap();
    assert_eq!(code, 200, "{text}");
    let samples = parse_prometheus(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    let get = |name: &str, labels: &[(&str, &str)]| {
        sample(&samples, name, labels).unwrap_or_else(|| panic!("no {name} {labels:?} in\n{text}"))
    };
    let outcome = |o| get("drainer_transactions_total", &[("outcome", o)]);
    assert_eq!(outcome("applied"), 40.0);
    assert_eq!(outcome("loop_dropped"), 0.0);
    assert_eq!(get("drainer_rows_total", &[("op", "insert")]), 40.0);
    assert_eq!(get("drainer_ddl_total", &[("outcome", "applied")]), 1.0);
    // One sample per downstream transaction: 40, or fewer when txn-batch grouped some.
    let commits = get("drainer_apply_seconds_count", &[]);
    assert!((1.0..=40.0).contains(&commits), "{commits}");
    assert_eq!(get("drainer_mark_update_seconds_count", &[]), commits);
    assert_eq!(
        get("drainer_events_read_total", &[("type", "commit")]),
        41.0
    );
    // 0 once the drainer knows it is caught up: at the upstream's next heartbeat after the
    // last commit (the wait above can end earlier, with the commit less than a second old).
    eventually("the lag gauge to read 0", WAIT, || async {
        let (_, text) = http_get(&config.addr, "/metrics")
            .await
            .map_err(|e| e.to_string())?;
        let samples = parse_prometheus(&text)?;
        match sample(&samples, "drainer_lag_seconds", &[]) {
            Some(0.0) => Ok(()),
            other => Err(format!("drainer_lag_seconds {other:?}")),
        }
    })
    .await;
    assert_eq!(get("drainer_state", &[("state", "running")]), 1.0);
    assert_eq!(get("drainer_state", &[("state", "stopped")]), 0.0);
    assert_eq!(get("drainer_buffered_rows", &[]), 0.0);
    assert!(
        !drainer.stderr().contains(integration::APPLY_PASSWORD)
            && !drainer.stderr().contains(integration::PUMP_PASSWORD),
        "a password in the log"
    );

    let (code, body) = http_get(&config.addr, "/nope").await.unwrap();
    assert_eq!(code, 404, "{body}");
    let many: Vec<_> = (0..100)
        .map(|_| {
            let addr = config.addr.clone();
            tokio::spawn(async move { http_get(&addr, "/status").await })
        })
        .collect();
    for request in many {
        let (code, body) = request.await.unwrap().unwrap();
        assert_eq!(code, 200, "{body}");
        serde_json::from_str::<serde_json::Value>(&body).unwrap();
    }
    // Still serving.
    assert_eq!(http_get(&config.addr, "/status").await.unwrap().0, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_taken_status_port_is_an_error_naming_addr() {
    let (a, b) = tokio::join!(MariaDb::start(), MariaDb::start());
    let (a, b) = (a.unwrap(), b.unwrap());
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut config = config_for(&a, &b, dir.path()).unwrap();
    config.addr = taken.local_addr().unwrap().to_string();
    let out = DrainerCommand::new()
        .unwrap()
        .config(&config)
        .unwrap()
        .output(Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(out.code(), Some(1), "{}", out.stderr);
    assert!(
        out.stderr.contains(&format!("addr {}", config.addr)),
        "{}",
        out.stderr
    );
}

/// `--log-json`: every log line is one JSON object; the line that stops the drainer
/// carries the position and names the table.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_carry_position_and_table() {
    let (a, b) = two_sites(&[
        "CREATE DATABASE app",
        "CREATE TABLE app.t (id INT PRIMARY KEY, v INT)",
    ])
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = config_for(&a, &b, dir.path()).unwrap();
    let mut drainer = DrainerCommand::new()
        .unwrap()
        .config(&config)
        .unwrap()
        .arg("--log-json")
        .spawn_replicating(WAIT)
        .await
        .unwrap();
    b.exec(&["DROP TABLE app.t"]).await.unwrap();
    a.exec(&["INSERT INTO app.t VALUES (1, 1)"]).await.unwrap();
    let out = drainer.wait(WAIT).await.unwrap();
    assert_eq!(out.code(), Some(1), "{}", out.stderr);
    let gtid: Vec<String> = a.query("SELECT @@global.gtid_binlog_pos").await.unwrap();
    let mut stopped = None;
    for line in out.stderr.lines().filter(|l| l.starts_with('{')) {
        let json: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert!(
            json["level"].is_string() && json["fields"].is_object(),
            "{line}"
        );
        if json["fields"]["message"] == "replication stopped" {
            stopped = Some(json);
        }
    }
    let stopped = stopped.unwrap_or_else(|| panic!("no stop line in\n{}", out.stderr));
    let at = stopped["fields"]["at"].as_str().unwrap();
    assert!(at.contains(&gtid[0]), "{stopped}");
    assert!(
        stopped["fields"]["reason"]
            .as_str()
            .unwrap()
            .contains("app.t: no such table on the downstream"),
        "{stopped}"
    );
    assert!(!out.stderr.contains(integration::APPLY_PASSWORD));
}
