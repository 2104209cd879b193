//! Transaction forms MariaDB writes that a replica must run as they stand: `ROLLBACK TO
//! SAVEPOINT` after a non-transactional change, and XA transactions (`ONE PHASE`, and
//! prepared then committed or rolled back in event groups of their own), with loopback
//! control both ways and exactly once across a kill between prepare and commit. Each
//! stopped the drainer before.

use std::time::Duration;

use integration::{binlogs_still, eventually, DrainerProcess, MariaDb};
use mysql_async::prelude::Queryable;

const WAIT: Duration = Duration::from_secs(60);
const SETUP: &[&str] = &[
    "CREATE DATABASE app",
    "CREATE TABLE app.i (id INT PRIMARY KEY) ENGINE=InnoDB",
    "CREATE TABLE app.m (id INT) ENGINE=MyISAM",
    "CREATE TABLE app.k (id INT) ENGINE=InnoDB",
];

/// `from` → `to` on channel 1, with a checkpoint that lags far behind: a restart reads
/// the prepared XA group again.
fn direction(from: &MariaDb, to: &MariaDb, sync_ddl: bool, dir: &std::path::Path) -> conf::Config {
    let mut config = integration::direction(from, to, 1, sync_ddl, dir);
    config.syncer.checkpoint_interval_ms = 600_000;
    config
}

async fn ids(site: &MariaDb, table: &str) -> Result<Vec<i32>, String> {
    site.query(&format!("SELECT id FROM app.{table} ORDER BY id"))
        .await
        .map_err(|e| e.to_string())
}

async fn holds(site: &MariaDb, i: &[i32], m: &[i32], drainers: &[&DrainerProcess]) {
    eventually("the downstream rows", WAIT, || async {
        let (gi, gm) = (ids(site, "i").await?, ids(site, "m").await?);
        if gi == i && gm == m {
            Ok(())
        } else {
            let logs: Vec<String> = drainers.iter().map(|d| d.stderr()).collect();
            Err(format!("i {gi:?}, m {gm:?}\n{}", logs.join("\n----\n")))
        }
    })
    .await;
}

async fn run(site: &MariaDb, statements: &[&str]) {
    let mut conn = site.conn().await.unwrap();
    for sql in statements {
        conn.query_drop(*sql)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
    conn.disconnect().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn savepoints_and_xa_transactions_replicate_exactly_once() {
    let (a, b) = tokio::join!(MariaDb::start(), MariaDb::start());
    let (a, b) = (a.unwrap(), b.unwrap());
    for site in [&a, &b] {
        site.exec(SETUP).await.unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    let ab_config = direction(&a, &b, true, dir.path());
    let mut ab = integration::replicating(&ab_config, WAIT).await.unwrap();
    let ba = integration::replicating(&direction(&b, &a, false, dir.path()), WAIT)
        .await
        .unwrap();

    // A rollback to a savepoint after a MyISAM change: the InnoDB row after the savepoint
    // is undone, the MyISAM row (logged on its own) stays.
    run(
        &a,
        &[
            "BEGIN",
            "INSERT INTO app.i VALUES (1)",
            "SAVEPOINT s1",
            "INSERT INTO app.m VALUES (2)",
            "INSERT INTO app.i VALUES (3)",
            "ROLLBACK TO SAVEPOINT s1",
            "INSERT INTO app.i VALUES (4)",
            "COMMIT",
        ],
    )
    .await;
    // XA in one phase, prepared then committed (another transaction between), prepared
    // then rolled back.
    run(
        &a,
        &[
            "XA START 'x1'",
            "INSERT INTO app.i VALUES (10)",
            "XA END 'x1'",
            "XA COMMIT 'x1' ONE PHASE",
        ],
    )
    .await;
    for (xid, id) in [("x2", 20), ("x3", 30)] {
        run(
            &a,
            &[
                &format!("XA START '{xid}'"),
                &format!("INSERT INTO app.i VALUES ({id})"),
                &format!("XA END '{xid}'"),
                &format!("XA PREPARE '{xid}'"),
            ],
        )
        .await;
    }
    run(
        &a,
        &[
            "INSERT INTO app.i VALUES (21)",
            "XA COMMIT 'x2'",
            "XA ROLLBACK 'x3'",
        ],
    )
    .await;
    holds(&b, &[1, 4, 10, 20, 21], &[2], &[&ab, &ba]).await;

    // Killed once the XA transaction is prepared downstream, before its apply record and
    // its checkpoint: the restart reads the prepare again (finds it prepared there),
    // then the commit.
    ab.kill();
    let mut dying = integration::replicating_with_failpoint(&ab_config, "after-xa-prepare", WAIT)
        .await
        .unwrap();
    run(
        &a,
        &[
            "XA START 'x4'",
            "INSERT INTO app.i VALUES (40)",
            "XA END 'x4'",
            "XA PREPARE 'x4'",
        ],
    )
    .await;
    let out = dying.wait(WAIT).await.unwrap();
    assert!(out.stderr.contains("failpoint"), "{}", out.stderr);
    let prepared: Vec<mysql_async::Row> = b.query("XA RECOVER").await.unwrap();
    assert_eq!(prepared.len(), 1, "x4 prepared on B");
    let mut ab = integration::replicating(&ab_config, WAIT).await.unwrap();
    run(&a, &["XA COMMIT 'x4'"]).await;
    holds(&b, &[1, 4, 10, 20, 21, 40], &[2], &[&ab, &ba]).await;
    assert!(
        ab.stderr().contains("prepared downstream already"),
        "{}",
        ab.stderr()
    );
    let prepared: Vec<mysql_async::Row> = b.query("XA RECOVER").await.unwrap();
    assert!(prepared.is_empty(), "nothing left prepared on B");

    // Killed after the XA COMMIT downstream, before its apply record, with the
    // checkpoint still before the prepare: the restart must not prepare it again (the
    // keyless table would hold the row twice).
    run(
        &a,
        &[
            "XA START 'x5'",
            "INSERT INTO app.k VALUES (50)",
            "XA END 'x5'",
            "XA PREPARE 'x5'",
        ],
    )
    .await;
    eventually("x5 prepared downstream", WAIT, || async {
        let prepared: Vec<mysql_async::Row> =
            b.query("XA RECOVER").await.map_err(|e| e.to_string())?;
        (prepared.len() == 1)
            .then_some(())
            .ok_or(format!("{} prepared", prepared.len()))
    })
    .await;
    ab.kill();
    let mut dying = integration::replicating_with_failpoint(&ab_config, "after-xa-end", WAIT)
        .await
        .unwrap();
    run(&a, &["XA COMMIT 'x5'"]).await;
    let out = dying.wait(WAIT).await.unwrap();
    assert!(out.stderr.contains("failpoint"), "{}", out.stderr);
    let ab = integration::replicating(&ab_config, WAIT).await.unwrap();
    run(&a, &["INSERT INTO app.k VALUES (51)"]).await;
    eventually("the keyless table", WAIT, || async {
        let k = ids(&b, "k").await?;
        (k == [50, 51])
            .then_some(())
            .ok_or(format!("k {k:?}\n{}", ab.stderr()))
    })
    .await;
    let prepared: Vec<mysql_async::Row> = b.query("XA RECOVER").await.unwrap();
    assert!(prepared.is_empty(), "nothing left prepared on B");

    // Nothing came back to A, and nothing ping-pongs.
    holds(&a, &[1, 4, 10, 20, 21, 40], &[2], &[&ab, &ba]).await;
    binlogs_still(&[&a, &b]).await.unwrap();
    for d in [&ab, &ba] {
        assert!(!d.stderr().contains("ERROR"), "{}", d.stderr());
    }
}
