//! `loop-marker = "comment"` (issue 23, item 2): no mark-table row; every statement the
//! drainer sends names its channel in a comment, and the reverse direction drops what
//! carries it, read from MariaDB's ANNOTATE_ROWS events. A two-way pair with writers on
//! both sites converges, nothing loops, and no mark table exists on either site.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use integration::{
    binlogs_still, direction, http_get, poll_until, replicating, text_rows, two_writable_sites,
    MariaDb,
};
use mysql_async::prelude::Queryable;
use tempfile::TempDir;

const WAIT: Duration = Duration::from_secs(120);

async fn writer(site: &MariaDb, name: &str, stop: Arc<AtomicBool>) -> u64 {
    let mut conn = site.conn().await.unwrap();
    let mut n = 0;
    while !stop.load(Ordering::Relaxed) {
        // The update goes by key: a scan would lock the rows the drainer writes.
        conn.query_drop(format!(
            "BEGIN; INSERT INTO app.t (v) VALUES ('{name}{n}'); \
             UPDATE app.t SET v = CONCAT(v, '+') WHERE id = LAST_INSERT_ID(); COMMIT"
        ))
        .await
        .unwrap();
        n += 1;
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    n
}

async fn status(config: &conf::Config) -> serde_json::Value {
    let (_, body) = http_get(&config.addr, "/status").await.unwrap();
    serde_json::from_str(&body).unwrap()
}

#[tokio::test]
async fn comment_markers_keep_a_two_way_pair_from_looping() {
    let (a, b) = two_writable_sites(&[
        "CREATE DATABASE app",
        "CREATE TABLE app.t (id INT AUTO_INCREMENT PRIMARY KEY, v VARCHAR(40))",
    ])
    .await
    .unwrap();
    let dir = TempDir::new().unwrap();
    let mut ab = direction(&a, &b, 1, true, dir.path());
    let mut ba = direction(&b, &a, 1, false, dir.path());
    for config in [&mut ab, &mut ba] {
        config.syncer.loop_marker = conf::LoopMarker::Comment;
    }
    let check = integration::check_config(&ab, WAIT).await.unwrap();
    assert_eq!(check.code(), Some(0), "{}", check.stdout);
    integration::assert_line(&check, "upstream", "binlog_annotate_row_events", "ok", "ON");
    let _to_b = replicating(&ab, WAIT).await.unwrap();
    let _to_a = replicating(&ba, WAIT).await.unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let ddl = async {
        tokio::time::sleep(Duration::from_secs(2)).await;
        a.exec(&["ALTER TABLE app.t ADD COLUMN c INT DEFAULT 1"])
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_secs(2)).await;
        stop.store(true, Ordering::Relaxed);
    };
    let (wa, wb, ()) = tokio::join!(
        writer(&a, "a", Arc::clone(&stop)),
        writer(&b, "b", Arc::clone(&stop)),
        ddl
    );
    assert!(wa > 20 && wb > 20, "{wa} and {wb} transactions");
    poll_until("both sites equal", WAIT, || async {
        let sql = "SELECT * FROM app.t ORDER BY id";
        let (ra, rb) = (text_rows(&a, sql).await?, text_rows(&b, sql).await?);
        match ra == rb {
            true => Ok(()),
            false => Err(format!("{} / {} rows", ra.len(), rb.len())),
        }
    })
    .await
    .unwrap();
    binlogs_still(&[&a, &b]).await.unwrap();
    for site in [&a, &b] {
        let marks: Vec<u64> = site
            .query(
                "SELECT COUNT(*) FROM information_schema.TABLES \
                 WHERE TABLE_NAME = '_drainer_repl_mark'",
            )
            .await
            .unwrap();
        assert_eq!(marks, [0], "no mark table with comment markers");
    }
    // Each direction dropped what the other applied: by the comments (the sessions
    // writing rows carry no server id of the channel in this mode).
    for config in [&ab, &ba] {
        let s = status(config).await;
        assert!(s["transactions_loop_dropped"].as_u64().unwrap() > 20, "{s}");
    }
}

/// A table with a trigger on the downstream takes its rows as row events (`BINLOG`, which
/// fires no trigger): with comment markers those must not come back either.
#[tokio::test]
async fn comment_markers_cover_rows_replayed_as_row_events() {
    let (a, b) = two_writable_sites(&[
        "CREATE DATABASE app",
        "CREATE TABLE app.t (id INT AUTO_INCREMENT PRIMARY KEY, v VARCHAR(40))",
        "CREATE TABLE app.audit (n INT)",
    ])
    .await
    .unwrap();
    for site in [&a, &b] {
        site.exec(&["CREATE TRIGGER app.t_ai AFTER INSERT ON app.t FOR EACH ROW INSERT INTO app.audit VALUES (NEW.id)"])
            .await
            .unwrap();
    }
    let dir = TempDir::new().unwrap();
    let mut ab = direction(&a, &b, 1, true, dir.path());
    let mut ba = direction(&b, &a, 1, false, dir.path());
    for config in [&mut ab, &mut ba] {
        config.syncer.loop_marker = conf::LoopMarker::Comment;
    }
    let _to_b = replicating(&ab, WAIT).await.unwrap();
    let _to_a = replicating(&ba, WAIT).await.unwrap();
    a.exec(&["INSERT INTO app.t (v) VALUES ('a1'), ('a2')"])
        .await
        .unwrap();
    b.exec(&["INSERT INTO app.t (v) VALUES ('b1')"])
        .await
        .unwrap();
    poll_until("both sites equal", WAIT, || async {
        let sql = "SELECT * FROM app.t ORDER BY id";
        let (ra, rb) = (text_rows(&a, sql).await?, text_rows(&b, sql).await?);
        match ra == rb && ra.len() == 3 {
            true => Ok(()),
            false => Err(format!("{ra:?} / {rb:?}")),
        }
    })
    .await
    .unwrap();
    binlogs_still(&[&a, &b]).await.unwrap();
    let rows = text_rows(&a, "SELECT COUNT(*) FROM app.t").await.unwrap();
    assert_eq!(rows, ["3"], "nothing came back doubled");
}
