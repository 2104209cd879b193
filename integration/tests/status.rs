//! `GET /status` of a running drainer: what it reports while a workload runs and once
//! caught up, how the server answers other requests and many at once, and a taken port.

use std::time::Duration;

use integration::{
    config_for, drainer_status, eventually, http_get, two_sites, DrainerCommand, MariaDb,
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
