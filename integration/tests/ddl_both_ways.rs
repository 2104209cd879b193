//! DDL from either site (issue 23, item 3): with `sync-ddl = true` in both directions, an
//! ALTER, a CREATE … SELECT, a RENAME, a DROP and a CREATE run on A reach B once, and
//! those run on B reach A once; none comes back (the drainer's DDL carries its channel's
//! server id, which survives MariaDB rewriting a statement before it logs it), while
//! writers on both sites keep inserting.

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

/// Inserts into `app.t` on `site` until `stop` (the site's own auto-increment keys).
async fn writer(site: &MariaDb, name: &str, stop: Arc<AtomicBool>) -> u64 {
    let mut conn = site.conn().await.unwrap();
    let mut n = 0;
    while !stop.load(Ordering::Relaxed) {
        conn.query_drop(format!("INSERT INTO app.t (v) VALUES ('{name}{n}')"))
            .await
            .unwrap();
        n += 1;
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    n
}

/// `SHOW CREATE TABLE` on `site` (its AUTO_INCREMENT counter left out: each site hands
/// out its own keys), or `None` when the table is not there.
async fn definition(site: &MariaDb, table: &str) -> Option<String> {
    let rows: Vec<(String, String)> = site
        .query(&format!("SHOW CREATE TABLE {table}"))
        .await
        .ok()?;
    rows.into_iter().next().map(|(_, d)| {
        d.split(' ')
            .filter(|w| !w.starts_with("AUTO_INCREMENT="))
            .collect::<Vec<_>>()
            .join(" ")
    })
}

/// Waits until both sites define `table` alike (`present`), or neither has it.
async fn same_on_both(a: &MariaDb, b: &MariaDb, table: &str, present: bool) {
    poll_until(&format!("{table} alike on both sites"), WAIT, || async {
        let (da, db) = (definition(a, table).await, definition(b, table).await);
        match (&da, &db) {
            (Some(x), Some(y)) if present && x == y => Ok(()),
            (None, None) if !present => Ok(()),
            _ => Err(format!("A: {da:?}\nB: {db:?}")),
        }
    })
    .await
    .unwrap();
}

async fn ddl_applied(config: &conf::Config) -> u64 {
    let (_, body) = http_get(&config.addr, "/status").await.unwrap();
    let status: serde_json::Value = serde_json::from_str(&body).unwrap();
    status["ddl_applied"].as_u64().unwrap()
}

#[tokio::test]
async fn ddl_from_either_site_reaches_the_other_once_and_never_comes_back() {
    let (a, b) = two_writable_sites(&[
        "CREATE DATABASE app",
        "CREATE TABLE app.t (id INT AUTO_INCREMENT PRIMARY KEY, v VARCHAR(20))",
        "CREATE TABLE app.u (id INT PRIMARY KEY)",
    ])
    .await
    .unwrap();
    let dir = TempDir::new().unwrap();
    let mut ab = direction(&a, &b, 1, true, dir.path());
    let mut ba = direction(&b, &a, 1, true, dir.path());
    // Rows written before a site has a new column apply on the other with the columns
    // both have (docs/bidirectional.md, rolling out a schema change).
    ab.syncer.to.sync_mode = 2;
    ba.syncer.to.sync_mode = 2;
    let _to_b = replicating(&ab, WAIT).await.unwrap();
    let _to_a = replicating(&ba, WAIT).await.unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let ddl = async {
        a.exec(&["ALTER TABLE app.t ADD COLUMN c INT DEFAULT 7"])
            .await
            .unwrap();
        same_on_both(&a, &b, "app.t", true).await;
        b.exec(&["ALTER TABLE app.t ADD COLUMN d VARCHAR(10) DEFAULT 'x'"])
            .await
            .unwrap();
        same_on_both(&a, &b, "app.t", true).await;
        b.exec(&["CREATE TABLE app.copy AS SELECT id, v FROM app.t WHERE id < 50"])
            .await
            .unwrap();
        same_on_both(&a, &b, "app.copy", true).await;
        a.exec(&["RENAME TABLE app.u TO app.u2"]).await.unwrap();
        same_on_both(&a, &b, "app.u2", true).await;
        b.exec(&["DROP TABLE app.u2"]).await.unwrap();
        same_on_both(&a, &b, "app.u2", false).await;
        a.exec(&["CREATE TABLE app.fresh (id INT PRIMARY KEY, w INT)"])
            .await
            .unwrap();
        same_on_both(&a, &b, "app.fresh", true).await;
        b.exec(&["INSERT INTO app.fresh VALUES (1, 1), (2, 2)"])
            .await
            .unwrap();
        stop.store(true, Ordering::Relaxed);
    };
    let (wa, wb, ()) = tokio::join!(
        writer(&a, "a", Arc::clone(&stop)),
        writer(&b, "b", Arc::clone(&stop)),
        ddl
    );
    assert!(wa > 20 && wb > 20, "{wa} and {wb} rows");
    for sql in [
        "SELECT * FROM app.t ORDER BY id",
        "SELECT * FROM app.copy ORDER BY id",
        "SELECT * FROM app.fresh ORDER BY id",
    ] {
        poll_until(sql, WAIT, || async {
            let (ra, rb) = (text_rows(&a, sql).await?, text_rows(&b, sql).await?);
            if ra == rb && !ra.is_empty() {
                Ok(())
            } else {
                Err(format!("{} / {} rows", ra.len(), rb.len()))
            }
        })
        .await
        .unwrap();
    }
    binlogs_still(&[&a, &b]).await.unwrap();
    // Each statement ran once on the other site: A's three on B, B's three on A.
    assert_eq!(
        ddl_applied(&ab).await,
        3,
        "A's ALTER, RENAME and CREATE on B"
    );
    assert_eq!(
        ddl_applied(&ba).await,
        3,
        "B's ALTER, CREATE … SELECT and DROP on A"
    );
}

/// The same table altered on both sites before either statement crossed: the same
/// statement on both counts as done; different ones stop each drainer with the
/// statement and both definitions named, instead of leaving the sites different.
#[tokio::test]
async fn the_same_table_altered_on_both_sites_at_once_is_caught() {
    let (a, b) = two_writable_sites(&[
        "CREATE DATABASE app",
        "CREATE TABLE app.v (id INT PRIMARY KEY)",
        "CREATE TABLE app.w (id INT PRIMARY KEY)",
    ])
    .await
    .unwrap();
    let dir = TempDir::new().unwrap();
    let ab = direction(&a, &b, 1, true, dir.path());
    let ba = direction(&b, &a, 1, true, dir.path());
    // Both directions have started (their checkpoints stand before the statements),
    // then stop, so that neither statement crosses before the other runs.
    let (mut to_b, mut to_a) = (
        replicating(&ab, WAIT).await.unwrap(),
        replicating(&ba, WAIT).await.unwrap(),
    );
    to_b.kill();
    to_a.kill();
    a.exec(&[
        "ALTER TABLE app.w ADD COLUMN y INT",
        "ALTER TABLE app.v ADD COLUMN x INT",
    ])
    .await
    .unwrap();
    b.exec(&[
        "ALTER TABLE app.w ADD COLUMN y INT",
        "ALTER TABLE app.v ADD COLUMN x VARCHAR(10)",
    ])
    .await
    .unwrap();
    for (config, theirs, ours) in [(&ab, "varchar(10)", "int"), (&ba, "int", "varchar(10)")] {
        let out = integration::DrainerCommand::new()
            .unwrap()
            .config(config)
            .unwrap()
            .output(WAIT)
            .await
            .unwrap();
        assert_eq!(out.code(), Some(1), "{}", out.stderr);
        assert!(
            out.stderr
                .contains("DDL already applied downstream, and its tables are as it leaves them"),
            "the identical ALTER of app.w counts as done: {}",
            out.stderr
        );
        assert!(
            out.stderr.contains("app.v changed there already"),
            "{}",
            out.stderr
        );
        assert!(
            out.stderr.contains(&format!("`x` {theirs}"))
                && out.stderr.contains(&format!("x {ours}")),
            "both definitions: {}",
            out.stderr
        );
    }
}
