//! One direction end to end: the `drainer` binary between two real MariaDB servers.

use std::time::Duration;

use integration::{config_for, eventually, two_sites, DrainerCommand, DrainerProcess, MariaDb};
use mysql_async::prelude::Queryable;

const WAIT: Duration = Duration::from_secs(60);

const SETUP: &[&str] = &[
    "CREATE DATABASE app",
    "CREATE TABLE app.orders (id INT PRIMARY KEY, customer VARCHAR(40), total DECIMAL(10,2), note TEXT)",
    "CREATE TABLE app.lines (order_id INT, line INT, qty INT, PRIMARY KEY (order_id, line))",
    "CREATE TABLE app.log (at DATETIME(6), msg VARCHAR(100))",
];

/// Every row of every table, as text, in a stable order.
async fn dump(server: &MariaDb) -> Result<Vec<String>, String> {
    let mut conn = server.conn().await.map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    for (table, order) in [
        ("orders", "id"),
        ("lines", "order_id, line"),
        ("log", "at, msg"),
    ] {
        let sql = format!("SELECT * FROM app.{table} ORDER BY {order}");
        let rows: Vec<mysql_async::Row> = conn.query(sql).await.map_err(|e| e.to_string())?;
        for r in rows {
            let cols: Vec<String> = (0..r.len())
                .map(|i| {
                    r.get::<Option<String>, _>(i)
                        .flatten()
                        .unwrap_or_else(|| "NULL".into())
                })
                .collect();
            out.push(format!("{table}: {}", cols.join(" | ")));
        }
    }
    conn.disconnect().await.ok();
    Ok(out)
}

async fn converged(a: &MariaDb, b: &MariaDb) {
    eventually("the downstream to match the upstream", WAIT, || async {
        let (x, y) = (dump(a).await?, dump(b).await?);
        if x == y {
            Ok(())
        } else {
            Err(format!(
                "upstream {} rows, downstream {} rows; first difference: {:?}",
                x.len(),
                y.len(),
                x.iter().zip(&y).find(|(p, q)| p != q).or(None)
            ))
        }
    })
    .await;
}

/// Two fresh servers with [`SETUP`] on both, and a configuration for the direction a → b
/// with its data-dir in the returned temporary directory (keep it alive: dropping it
/// deletes the data-dir).
async fn pair() -> (MariaDb, MariaDb, tempfile::TempDir, conf::Config) {
    let (a, b) = two_sites(SETUP).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = config_for(&a, &b, &dir.path().join("data")).unwrap();
    (a, b, dir, config)
}

/// Starts the drainer and waits until it reads the upstream.
async fn start(config: &conf::Config) -> DrainerProcess {
    integration::replicating(config, WAIT).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicates_dml_and_ddl_and_survives_a_restart() {
    let (a, b, dir, mut config) = pair().await;
    config.syncer.checkpoint_interval_ms = 200;
    let mut drainer = start(&config).await;
    a.exec(&["INSERT INTO app.orders VALUES (1, 'ada', 10.50, NULL)"])
        .await
        .unwrap();
    converged(&a, &b).await;

    a.exec(&[
        "BEGIN",
        "INSERT INTO app.orders VALUES (2, 'bob', 20.00, 'two'), (3, 'cy', 30.00, 'three')",
        "INSERT INTO app.lines VALUES (2, 1, 5), (2, 2, 6), (3, 1, 1)",
        "COMMIT",
        "UPDATE app.orders SET id = 20, total = 21.00 WHERE id = 2",
        "UPDATE app.lines SET order_id = 20 WHERE order_id = 2",
        "DELETE FROM app.orders WHERE id = 3",
        "DELETE FROM app.lines WHERE order_id = 3",
        "INSERT INTO app.log VALUES ('2024-01-01 00:00:00.000001', 'no key here'), ('2024-01-01 00:00:00.000001', 'no key here')",
        "DELETE FROM app.log LIMIT 1",
        "ALTER TABLE app.orders ADD COLUMN status ENUM('new','paid') NOT NULL DEFAULT 'new' AFTER customer",
        "INSERT INTO app.orders VALUES (4, 'dee', 'paid', 40.00, '😀')",
    ])
    .await
    .unwrap();
    converged(&a, &b).await;

    // A graceful stop mid-workload, more writes, and a start from the checkpoint.
    drainer.signal(libc::SIGTERM);
    let out = drainer.wait(WAIT).await.unwrap();
    assert_eq!(out.code(), Some(0), "stopped cleanly:\n{}", out.stderr);
    a.exec(&[
        "INSERT INTO app.orders VALUES (5, 'eve', 'new', 50.00, NULL)",
        "UPDATE app.orders SET status = 'paid' WHERE id = 1",
        "TRUNCATE TABLE app.log",
        "INSERT INTO app.log VALUES (NOW(6), 'after restart')",
    ])
    .await
    .unwrap();
    let mut drainer = start(&config).await;
    converged(&a, &b).await;
    let status = DrainerCommand::new()
        .unwrap()
        .arg("checkpoint")
        .arg("show")
        .config(&config)
        .unwrap()
        .output(WAIT)
        .await
        .unwrap();
    assert!(
        status
            .stdout
            .contains(&format!("upstream   server_id {}", a.server_id())),
        "{}",
        status.stdout
    );
    drainer.signal(libc::SIGTERM);
    assert_eq!(drainer.wait(WAIT).await.unwrap().code(), Some(0));

    // The same data-dir against another upstream is refused.
    let c = MariaDb::start().await.unwrap();
    let mut other = config_for(&c, &b, &dir.path().join("data")).unwrap();
    other.pump.server_id = config.pump.server_id;
    let out = DrainerCommand::new()
        .unwrap()
        .config(&other)
        .unwrap()
        .output(WAIT)
        .await
        .unwrap();
    assert_eq!(out.code(), Some(1), "{}", out.stderr);
    assert!(
        out.stderr.contains("belongs to upstream server_id"),
        "{}",
        out.stderr
    );
}

/// A drainer killed while its DDL waits downstream resumes from the checkpoint before the
/// DDL: the schema history as of that checkpoint must not hold the DDL yet (it is recorded
/// at the statement's own commit position), and the downstream ALTER the dead drainer left
/// behind may or may not have run: either way the restarted drainer converges.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_during_ddl_resumes_before_it() {
    let (a, b, _dir, mut config) = pair().await;
    config.syncer.checkpoint_interval_ms = 100;
    let mut drainer = start(&config).await;
    a.exec(&["INSERT INTO app.orders VALUES (1, 'ada', 10.50, NULL)"])
        .await
        .unwrap();
    converged(&a, &b).await;
    // The checkpoint reaches the insert (`checkpoint show` reads beside the drainer).
    let gtid: Vec<String> = a.query("SELECT @@gtid_binlog_pos").await.unwrap();
    eventually("the checkpoint to reach the insert", WAIT, || async {
        let out = DrainerCommand::new()
            .map_err(|e| e.to_string())?
            .arg("checkpoint")
            .arg("show")
            .config(&config)
            .map_err(|e| e.to_string())?
            .output(WAIT)
            .await
            .map_err(|e| e.to_string())?;
        if out.stdout.contains(&format!("gtid       {}", gtid[0])) {
            Ok(())
        } else {
            Err(out.stdout + &out.stderr)
        }
    })
    .await;

    // A reader downstream holds the table's metadata lock, so the drainer's ALTER waits.
    let mut reader = b.conn().await.unwrap();
    reader.query_drop("BEGIN").await.unwrap();
    reader.query_drop("SELECT * FROM app.orders").await.unwrap();
    a.exec(&["ALTER TABLE app.orders ADD COLUMN region CHAR(2) NOT NULL DEFAULT 'eu'"])
        .await
        .unwrap();
    eventually("the drainer's ALTER to wait for the lock", WAIT, || async {
        let waiting: Vec<String> = b
            .query(
                "SELECT info FROM information_schema.processlist \
                 WHERE state LIKE 'Waiting for table metadata lock' AND info LIKE 'ALTER%'",
            )
            .await
            .map_err(|e| e.to_string())?;
        if waiting.is_empty() {
            Err("no ALTER waiting".to_string())
        } else {
            Ok(())
        }
    })
    .await;
    drainer.kill();
    let _ = drainer.wait(WAIT).await;
    // The orphaned ALTER may still run once the lock goes; the restarted drainer must
    // cope either way.
    reader.query_drop("ROLLBACK").await.unwrap();
    reader.disconnect().await.unwrap();

    a.exec(&["INSERT INTO app.orders VALUES (2, 'bob', 20.00, NULL, 'us')"])
        .await
        .unwrap();
    let mut drainer = start(&config).await;
    converged(&a, &b).await;
    drainer.signal(libc::SIGTERM);
    let out = drainer.wait(WAIT).await.unwrap();
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
}

/// A statement the schema tracker cannot apply stops the drainer with its GTID and the
/// way to pass over it; once the operator lists it in `skip-ddl`, replication continues
/// and the statement does not run downstream.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_untrackable_statement_stops_until_skipped() {
    let (a, b, _dir, mut config) = pair().await;
    let mut drainer = start(&config).await;
    a.exec(&[
        "INSERT INTO app.orders VALUES (1, 'ada', 10.50, NULL)",
        "CREATE TABLE app.history (id INT PRIMARY KEY, body BLOB COMPRESSED)",
    ])
    .await
    .unwrap();
    let gtid: Vec<String> = a.query("SELECT @@gtid_binlog_pos").await.unwrap();
    let out = drainer.wait(WAIT).await.unwrap();
    assert_eq!(out.code(), Some(1), "{}", out.stderr);
    let advice = format!("add \"{}\" to [syncer] skip-ddl", gtid[0]);
    assert!(out.stderr.contains(&advice), "{advice} in:\n{}", out.stderr);
    assert!(out.stderr.contains("COMPRESSED columns"), "{}", out.stderr);
    // The rows before the statement were applied.
    let ids: Vec<i32> = b.query("SELECT id FROM app.orders").await.unwrap();
    assert_eq!(ids, [1]);

    a.exec(&["INSERT INTO app.orders VALUES (2, 'bob', 20.00, NULL)"])
        .await
        .unwrap();
    config.syncer.skip_ddl = vec![gtid[0].clone()];
    let mut drainer = start(&config).await;
    converged(&a, &b).await;
    let tables: Vec<String> = b
        .query("SELECT table_name FROM information_schema.tables WHERE table_name = 'history'")
        .await
        .unwrap();
    assert!(tables.is_empty(), "the skipped statement ran downstream");
    assert!(
        drainer.stderr().contains("skip-ddl"),
        "{}",
        drainer.stderr()
    );
    drainer.signal(libc::SIGTERM);
    assert_eq!(drainer.wait(WAIT).await.unwrap().code(), Some(0));
}

/// The downstream table loses a column the drainer has cached (the other direction ran
/// the DDL): the statement fails with "unknown column", the drainer looks at the table
/// again and applies the transaction without that column (sync-mode 2).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_column_downstream_refreshes_and_retries() {
    let (a, b, _dir, mut config) = pair().await;
    config.syncer.to.sync_mode = 2;
    let mut drainer = start(&config).await;
    a.exec(&["INSERT INTO app.orders VALUES (1, 'ada', 10.50, 'cached')"])
        .await
        .unwrap();
    converged(&a, &b).await;

    b.exec(&["ALTER TABLE app.orders DROP COLUMN note"])
        .await
        .unwrap();
    a.exec(&["INSERT INTO app.orders VALUES (2, 'bob', 20.00, 'dropped downstream')"])
        .await
        .unwrap();
    eventually(
        "the row to arrive without the dropped column",
        WAIT,
        || async {
            let rows: Vec<(i32, String)> = b
                .query("SELECT id, customer FROM app.orders ORDER BY id")
                .await
                .map_err(|e| e.to_string())?;
            if rows == [(1, "ada".to_string()), (2, "bob".to_string())] {
                Ok(())
            } else {
                Err(format!("{rows:?}\n{}", drainer.stderr()))
            }
        },
    )
    .await;
    assert!(
        drainer.stderr().contains("downstream columns changed"),
        "{}",
        drainer.stderr()
    );
    drainer.signal(libc::SIGTERM);
    assert_eq!(drainer.wait(WAIT).await.unwrap().code(), Some(0));
}

/// A downstream table that a DDL statement of the downstream's own users holds (its
/// exclusive metadata lock) when the drainer first looks at its columns: the drainer
/// waits and applies the row. Its sessions hold their writer's named lock, and MariaDB
/// answers such a session's `information_schema` query without the table (warning
/// 1684), which the drainer once took for "no such table" and stopped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_table_held_by_downstream_ddl_is_waited_for_not_taken_as_missing() {
    let (a, b, _dir, config) = pair().await;
    let mut drainer = start(&config).await;
    // A RENAME takes its tables' exclusive locks in order and waits, holding
    // `app.lines`'s, for `app.orders`'s, which an open transaction holds.
    let mut holder = b.conn().await.unwrap();
    holder
        .query_drop("START TRANSACTION; SELECT * FROM app.orders")
        .await
        .unwrap();
    let mut ddl = b.conn().await.unwrap();
    let rename = tokio::spawn(async move {
        ddl.query_drop("SET SESSION lock_wait_timeout = 6")
            .await
            .unwrap();
        ddl.query_drop("RENAME TABLE app.lines TO app.lines_old, app.orders TO app.orders_old")
            .await
    });
    eventually("the RENAME to hold app.lines", WAIT, || async {
        let waiting: Vec<String> = b
            .query("SELECT STATE FROM information_schema.PROCESSLIST WHERE INFO LIKE 'RENAME%'")
            .await
            .map_err(|e| e.to_string())?;
        match waiting.first() {
            Some(state) if state.contains("metadata lock") => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    a.exec(&["INSERT INTO app.lines VALUES (1, 1, 5)"])
        .await
        .unwrap();
    // The lock wait ends in ER_LOCK_WAIT_TIMEOUT: nothing was renamed.
    let renamed = rename.await.unwrap();
    assert!(
        matches!(&renamed, Err(mysql_async::Error::Server(e)) if e.code == 1205),
        "{renamed:?}"
    );
    holder.query_drop("ROLLBACK").await.unwrap();
    converged(&a, &b).await;
    assert!(drainer.stderr().contains("1684"), "{}", drainer.stderr());
    drainer.signal(libc::SIGTERM);
    assert_eq!(drainer.wait(WAIT).await.unwrap().code(), Some(0));
}

/// String values that read like SQL (the end of a compound statement, a comment, a
/// placeholder, a backtick), or hold a quote, a backslash or a control character, sent
/// under upstream sessions with `ANSI_QUOTES` and `NO_BACKSLASH_ESCAPES`: each arrives
/// byte for byte, one downstream transaction per upstream one (the values written as
/// literals into one text, a worker's queue in one compound statement).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn values_that_read_like_sql_arrive_byte_for_byte() {
    let (a, b, _dir, mut config) = pair().await;
    config.syncer.txn_batch = 1;
    let mut drainer = start(&config).await;
    let values = [
        "END; DROP TABLE app.orders; --",
        "*/ ? ?? $$ % # `x` \"quoted\"",
        "it's",
        "back\\slash \\' \\\\",
        "C:\\dir\\new \\0 \\%",
        "tab\tnew\nline\r",
        "_binary X'00' _binary'",
        "",
        "~ printable !@^&()[]{}|<>,.:",
    ];
    let mut conn = a.conn().await.unwrap();
    for mode in ["", "ANSI_QUOTES,NO_BACKSLASH_ESCAPES"] {
        conn.query_drop(format!("SET SESSION sql_mode = '{mode}'"))
            .await
            .unwrap();
        for v in values {
            conn.exec_drop(
                "INSERT INTO app.log (at, msg) VALUES (NOW(6), ?)",
                (format!("{mode}:{v}"),),
            )
            .await
            .unwrap();
        }
    }
    converged(&a, &b).await;
    let rows: Vec<String> = b.query("SELECT msg FROM app.log").await.unwrap();
    assert_eq!(rows.len(), 2 * values.len(), "{}", drainer.stderr());
    drainer.signal(libc::SIGTERM);
    assert_eq!(drainer.wait(WAIT).await.unwrap().code(), Some(0));
}

/// Writes to the upstream until `stop` turns true: inserts, updates of earlier rows,
/// deletes, and two-table transactions; returns how many transactions it committed.
async fn workload(a: &MariaDb, stop: tokio::sync::watch::Receiver<bool>) -> u64 {
    let mut conn = a.conn().await.unwrap();
    let mut n: u64 = 100;
    while !*stop.borrow() {
        n += 1;
        let statements = [
            "BEGIN".to_string(),
            format!("INSERT INTO app.orders VALUES ({n}, 'load', {n}.25, REPEAT('x', {n} % 300))"),
            format!("INSERT INTO app.lines VALUES ({n}, 1, {n} % 7), ({n}, 2, 1)"),
            "COMMIT".to_string(),
            format!(
                "UPDATE app.orders SET total = total + 1, id = id + 1000000 WHERE id = {}",
                n - 3
            ),
            format!(
                "UPDATE app.lines SET order_id = order_id + 1000000 WHERE order_id = {}",
                n - 3
            ),
            format!("DELETE FROM app.orders WHERE id = {}", n - 7 + 1_000_000),
            format!(
                "DELETE FROM app.lines WHERE order_id = {} AND line = 2",
                n - 7 + 1_000_000
            ),
        ];
        for s in &statements {
            conn.query_drop(s.as_str()).await.unwrap();
        }
    }
    conn.disconnect().await.ok();
    n - 100
}

/// Under a steady write load: a graceful stop and start, a kill -9 and start, and a
/// downstream restart underneath the running drainer. Nothing is missing or doubled.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn survives_stops_kills_and_a_downstream_restart_under_load() {
    let (a, mut b, _dir, mut config) = pair().await;
    config.syncer.checkpoint_interval_ms = 50;
    // The first start takes the upstream's position then: the load starts after it.
    let mut drainer = start(&config).await;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let a = std::sync::Arc::new(a);
    let writer = tokio::spawn({
        let a = std::sync::Arc::clone(&a);
        async move { workload(&a, stop_rx).await }
    });
    let pause = || tokio::time::sleep(Duration::from_millis(700));
    pause().await;
    drainer.signal(libc::SIGTERM);
    let out = drainer.wait(WAIT).await.unwrap();
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    pause().await;

    let mut drainer = start(&config).await;
    pause().await;
    drainer.kill();
    let _ = drainer.wait(WAIT).await;
    pause().await;

    let mut drainer = start(&config).await;
    pause().await;
    b.restart().await.unwrap();
    pause().await;
    stop_tx.send(true).unwrap();
    let transactions = writer.await.unwrap();
    assert!(
        transactions > 10,
        "the workload ran ({transactions} rounds)"
    );
    converged(&a, &b).await;
    assert!(
        drainer.stderr().contains("retrying"),
        "the downstream restart was retried:\n{}",
        drainer.stderr()
    );
    drainer.signal(libc::SIGTERM);
    assert_eq!(drainer.wait(WAIT).await.unwrap().code(), Some(0));
}

/// A first start (no checkpoint, no configured start) replicates from the moment the
/// process started: rows written while it checks the servers, before it says it
/// replicates, arrive too (they were lost before: "now" was read only after the preflight).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_first_start_replicates_what_was_written_while_it_started() {
    let (a, b, _dir, config) = pair().await;
    // A downstream that does not answer for a while holds the preflight: the drainer is
    // starting, not replicating, while the rows are written.
    b.freeze();
    let drainer = DrainerCommand::new()
        .unwrap()
        .config(&config)
        .unwrap()
        .spawn()
        .unwrap();
    // The status server answers before the preflight runs: write from then on.
    eventually("the drainer to serve /status", WAIT, || async {
        let log = drainer.stderr();
        if log.contains("serving GET /status") {
            Ok(())
        } else {
            Err(log)
        }
    })
    .await;
    let mut conn = a.conn().await.unwrap();
    for i in 1..=50 {
        conn.query_drop(format!(
            "INSERT INTO app.orders (id, customer) VALUES ({i}, 'early')"
        ))
        .await
        .unwrap();
    }
    conn.disconnect().await.ok();
    let log = drainer.stderr();
    assert!(!log.contains("replicating"), "{log}");
    b.thaw();
    converged(&a, &b).await;
    assert!(
        log.contains("first start: the upstream's position now is where reading begins"),
        "{log}"
    );
}
