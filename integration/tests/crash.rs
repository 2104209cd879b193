//! Exactly-once across crashes: the drainer dies at each dangerous moment (failpoints:
//! between the rows of a transaction, after a downstream commit and before the checkpoint,
//! before and after a DDL) and a restart neither loses nor repeats a transaction — shown
//! on a table without any key, where a repeat would be a second copy of a row, with safe
//! mode off.

use std::os::unix::process::ExitStatusExt;
use std::time::Duration;

use integration::{
    config_for, eventually, mark_counter, marked_config_for, replicating_with_failpoint, two_sites,
    DrainerCommand, MariaDb,
};
use mysql_async::prelude::Queryable;

const WAIT: Duration = Duration::from_secs(60);

/// `app.log` has no key (a replayed insert doubles a row); `app.kv` has one.
const SETUP: &[&str] = &[
    "CREATE DATABASE app",
    "CREATE TABLE app.log (n INT, msg VARCHAR(40))",
    "CREATE TABLE app.kv (id INT PRIMARY KEY, v INT)",
];

/// The rows of `app.log` (no key: a replayed insert doubles a row) and of `app.kv`.
async fn dump(server: &MariaDb) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    for sql in [
        "SELECT CONCAT('log ', n, ' ', msg) FROM app.log ORDER BY n, msg",
        "SELECT CONCAT_WS(' ', 'kv', id, v) FROM app.kv ORDER BY id",
    ] {
        let rows: Vec<String> = server.query(sql).await.map_err(|e| e.to_string())?;
        out.extend(rows);
    }
    Ok(out)
}

/// Waits until `b` holds what `a` holds (see [`dump`]); `log` is shown with the last
/// difference.
async fn same_rows(a: &MariaDb, b: &MariaDb, what: &str, log: impl Fn() -> String) {
    eventually(what, WAIT, || async {
        let (x, y) = (dump(a).await?, dump(b).await?);
        if x == y {
            Ok(())
        } else {
            Err(format!(
                "upstream {} rows, downstream {}; first difference {:?}\n{}",
                x.len(),
                y.len(),
                x.iter().zip(&y).find(|(p, q)| p != q),
                log()
            ))
        }
    })
    .await;
}

/// Waits until the drainer of `config` has read (and handed to its workers) every
/// transaction `upstream` has logged.
async fn read_to_the_end(upstream: &MariaDb, config: &conf::Config) {
    eventually("the drainer to read every transaction", WAIT, || async {
        let logged: Vec<String> = upstream
            .query("SELECT @@gtid_binlog_pos")
            .await
            .map_err(|e| e.to_string())?;
        let status = integration::drainer_status(config)
            .await
            .map_err(|e| e.to_string())?;
        let read = status["upstream_position"]["gtid"].as_str().unwrap_or("");
        if logged.first().map(String::as_str) == Some(read) {
            Ok(())
        } else {
            Err(format!("read to {read}, the upstream logged {logged:?}"))
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_at_each_failpoint_neither_loses_nor_repeats() {
    crash_at_each_failpoint(20).await;
}

/// The same with `txn-batch = 1`, where a worker sends the transactions it has queued in
/// one round trip, each its own downstream transaction with its own apply record.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_with_one_downstream_transaction_each_neither_loses_nor_repeats() {
    crash_at_each_failpoint(1).await;
}

async fn crash_at_each_failpoint(txn_batch: u32) {
    let (a, b) = two_sites(SETUP).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    // Safe mode off, and a checkpoint that lags far behind: only the apply record can
    // keep a restart exact.
    let mut config = marked_config_for(&a, &b, dir.path()).unwrap();
    config.syncer.checkpoint_interval_ms = 3_600_000;
    config.syncer.txn_batch = txn_batch;

    let mut n = 0;
    for (failpoint, ddl) in [
        ("after-commit:3", None),
        ("between-rows:2", None),
        ("after-ddl", Some("ALTER TABLE app.kv ADD COLUMN w INT")),
        ("before-ddl", Some("ALTER TABLE app.kv DROP COLUMN w")),
        ("after-commit:1", None),
    ] {
        let mut drainer = replicating_with_failpoint(&config, failpoint, WAIT)
            .await
            .unwrap();
        // Single-row and multi-row transactions, then the DDL, then more rows.
        for _ in 0..3 {
            n += 1;
            a.exec(&[
                "BEGIN",
                &format!("INSERT INTO app.log VALUES ({n}, 'one'), ({n}, 'two')"),
                &format!("INSERT INTO app.kv (id, v) VALUES ({n}, {n})"),
                "COMMIT",
            ])
            .await
            .unwrap();
        }
        if let Some(ddl) = ddl {
            a.exec(&[ddl]).await.unwrap();
        }
        n += 1;
        a.exec(&[&format!("INSERT INTO app.log VALUES ({n}, 'after')")])
            .await
            .unwrap();
        let out = drainer.wait(WAIT).await.unwrap();
        assert_eq!(
            out.status.signal(),
            Some(libc::SIGABRT),
            "{failpoint}: the drainer should die there (built with the failpoints feature?)\n{}",
            out.stderr
        );
        assert!(out.stderr.contains("failpoint"), "{}", out.stderr);
    }

    let drainer = integration::replicating(&config, WAIT).await.unwrap();
    same_rows(
        &a,
        &b,
        "the downstream to hold every row exactly once",
        || drainer.stderr(),
    )
    .await;
    let columns: Vec<String> = b
        .query("SELECT COLUMN_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = 'app' AND TABLE_NAME = 'kv' ORDER BY ORDINAL_POSITION")
        .await
        .unwrap();
    assert_eq!(columns, ["id", "v"]);
    // Every upstream transaction committed downstream once: the mark counter says so.
    assert_eq!(
        mark_counter(&b, 1).await.unwrap(),
        5 * 4,
        "transactions applied downstream"
    );
}

/// One worker with `txn-batch = 1` (what queues behind a transaction held by a row lock
/// is sent together once it commits), safe mode off, the checkpoint far behind (only the
/// apply record keeps a restart exact), and no loopback mark: a restart's session would
/// wait on the mark row a text holds, which hides the race of
/// `a_restart_waits_for_the_text_a_killed_drainer_left_running`. The downstream's lock
/// waits outlast the tests' row locks.
async fn one_worker_sending_together(
    a: &MariaDb,
    b: &MariaDb,
    dir: &std::path::Path,
) -> conf::Config {
    let mut config = config_for(a, b, dir).unwrap();
    config.syncer.checkpoint_interval_ms = 3_600_000;
    config.syncer.safe_mode_after_start_s = 0;
    config.syncer.worker_count = 1;
    config.syncer.txn_batch = 1;
    b.exec(&["SET GLOBAL innodb_lock_wait_timeout = 300"])
        .await
        .unwrap();
    config
}

/// A drainer killed while the downstream runs a text of several transactions it sent
/// (here held in its middle by a row lock) leaves that text running: the server learns
/// the client is gone only when it answers. The restart waits for that session to end
/// before it reads the apply record; read earlier, the record would not yet show the
/// rest of the text, and the restart would apply it a second time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_waits_for_the_text_a_killed_drainer_left_running() {
    let (a, b) = two_sites(SETUP).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = one_worker_sending_together(&a, &b, dir.path()).await;
    let mut drainer = integration::replicating(&config, WAIT).await.unwrap();
    a.exec(&["INSERT INTO app.kv VALUES (1, 0), (2, 0), (3, 0), (4, 0), (5, 0), (6, 0)"])
        .await
        .unwrap();
    let count = |sql: &'static str| {
        let b = &b;
        async move {
            let n: Vec<u64> = b.query(sql).await.map_err(|e| e.to_string())?;
            Ok::<u64, String>(n.first().copied().unwrap_or(0))
        }
    };
    eventually("the rows downstream", WAIT, || async {
        match count("SELECT COUNT(*) FROM app.kv").await? {
            6 => Ok(()),
            n => Err(format!("{n} rows")),
        }
    })
    .await;
    // Two sessions downstream hold rows 1 and 4.
    let hold = |id: u32| {
        let b = &b;
        async move {
            let mut conn = b.conn().await.unwrap();
            conn.query_drop("BEGIN").await.unwrap();
            conn.query_drop(format!("SELECT v FROM app.kv WHERE id = {id} FOR UPDATE"))
                .await
                .unwrap();
            conn
        }
    };
    let (mut first, mut fourth) = (hold(1).await, hold(4).await);
    for id in 1..=6 {
        a.exec(&[
            "BEGIN",
            &format!("INSERT INTO app.log VALUES ({id}, 'held')"),
            &format!("UPDATE app.kv SET v = v + 1 WHERE id = {id}"),
            "COMMIT",
        ])
        .await
        .unwrap();
    }
    // The worker waits on row 1 with the other five queued behind it, then sends those
    // in one text, which commits two and waits on row 4.
    read_to_the_end(&a, &config).await;
    first.query_drop("COMMIT").await.unwrap();
    eventually("the text to wait on row 4", WAIT, || async {
        let waiting =
            count("SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE INFO LIKE 'UPDATE %'")
                .await?;
        match (waiting, count("SELECT COUNT(*) FROM app.log").await?) {
            (1, 3) => Ok(()),
            (waiting, log) => Err(format!("{waiting} updates waiting, {log} rows")),
        }
    })
    .await;
    drainer.kill();
    let restarted = DrainerCommand::new()
        .unwrap()
        .config(&config)
        .unwrap()
        .spawn()
        .unwrap();
    // The restart waits for the session running the text (for its writer's lock)...
    eventually("the restart to wait for the text", WAIT, || async {
        match count("SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE STATE = 'User lock'")
            .await?
        {
            0 => Err(format!("not waiting\n{}", restarted.stderr())),
            _ => Ok(()),
        }
    })
    .await;
    // ... which goes on once row 4 is free.
    fourth.query_drop("COMMIT").await.unwrap();
    same_rows(&a, &b, "every row exactly once", || restarted.stderr()).await;
    // Nothing arrives late: the restart applied none of the text again.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        dump(&a).await.unwrap(),
        dump(&b).await.unwrap(),
        "{}",
        restarted.stderr()
    );
}

/// A statement that fails in the middle of a worker's queue sent together: the ones
/// before it stay committed (once), the failure stops the drainer naming that statement
/// (not the text it was sent in), nothing after it is applied, and once the downstream
/// is mended a restart applies the rest exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failure_inside_a_queue_sent_together_is_named_and_nothing_repeats() {
    let (a, b) = two_sites(SETUP).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = one_worker_sending_together(&a, &b, dir.path()).await;
    let mut drainer = integration::replicating(&config, WAIT).await.unwrap();
    a.exec(&["INSERT INTO app.kv VALUES (1, 0)"]).await.unwrap();
    let rows = |sql: &'static str| {
        let b = &b;
        async move { b.query::<String>(sql).await.map_err(|e| e.to_string()) }
    };
    eventually("row 1 downstream", WAIT, || async {
        match rows("SELECT CAST(id AS CHAR) FROM app.kv").await?.len() {
            1 => Ok(()),
            n => Err(format!("{n} rows")),
        }
    })
    .await;
    // Written on the downstream alone: the upstream's row 3 will not fit.
    b.exec(&["INSERT INTO app.kv VALUES (3, 99)"])
        .await
        .unwrap();
    let mut held = b.conn().await.unwrap();
    held.query_drop("BEGIN").await.unwrap();
    held.query_drop("SELECT v FROM app.kv WHERE id = 1 FOR UPDATE")
        .await
        .unwrap();
    for sql in [
        "UPDATE app.kv SET v = 1 WHERE id = 1",
        "INSERT INTO app.kv VALUES (2, 2)",
        "INSERT INTO app.kv VALUES (3, 3)",
        "INSERT INTO app.log VALUES (4, 'after')",
    ] {
        a.exec(&[sql]).await.unwrap();
    }
    // The worker waits on row 1 with the other three queued, then sends them together.
    read_to_the_end(&a, &config).await;
    held.query_drop("COMMIT").await.unwrap();
    let out = drainer.wait(WAIT).await.unwrap();
    assert_eq!(out.code(), Some(1), "{}", out.stderr);
    assert!(
        out.stderr.contains("Duplicate entry") && out.stderr.contains("INSERT INTO `app`.`kv`"),
        "the error names the failing statement:\n{}",
        out.stderr
    );
    assert!(!out.stderr.contains("BEGIN NOT ATOMIC"), "{}", out.stderr);
    assert_eq!(
        rows("SELECT CONCAT_WS(' ', id, v) FROM app.kv ORDER BY id")
            .await
            .unwrap(),
        ["1 1", "2 2", "3 99"],
        "the transactions before the failing one committed, once"
    );
    assert!(rows("SELECT msg FROM app.log").await.unwrap().is_empty());
    // Mended downstream, the rest applies once.
    b.exec(&["DELETE FROM app.kv WHERE id = 3"]).await.unwrap();
    let drainer = integration::replicating(&config, WAIT).await.unwrap();
    same_rows(&a, &b, "every row exactly once", || drainer.stderr()).await;
}

/// A drainer whose host stopped (here: SIGSTOP) leaves idle sessions holding its writers'
/// locks, which the server would keep for hours. A drainer started in its place kills
/// them (they run nothing, and what they held open rolls back) and replicates.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drainer_in_place_of_a_stopped_one_takes_over_its_writers() {
    let (a, b) = two_sites(SETUP).await.unwrap();
    let (dir, other) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut config = marked_config_for(&a, &b, dir.path()).unwrap();
    config.syncer.worker_count = 2;
    config.syncer.txn_batch = 1;
    let mut stopped = integration::replicating(&config, WAIT).await.unwrap();
    let write = |from: u32| {
        let a = &a;
        async move {
            for n in from..from + 10 {
                a.exec(&[&format!("INSERT INTO app.log VALUES ({n}, 'row')")])
                    .await
                    .unwrap();
            }
        }
    };
    write(0).await;
    same_rows(&a, &b, "the first rows downstream", || stopped.stderr()).await;
    stopped.signal(libc::SIGSTOP);
    // Its own status address and replica id, and a copy of the data-dir (the stopped
    // drainer holds them), as a standby host would have.
    let copied = std::process::Command::new("cp")
        .arg("-a")
        .arg(format!("{}/.", dir.path().display()))
        .arg(other.path())
        .status()
        .unwrap();
    assert!(copied.success());
    config.data_dir = other.path().to_owned();
    config.addr = format!("127.0.0.1:{}", integration::free_port().unwrap());
    config.pump.server_id += 1;
    let taking_over = integration::replicating(&config, WAIT).await.unwrap();
    write(10).await;
    same_rows(&a, &b, "the rows written after the takeover", || {
        taking_over.stderr()
    })
    .await;
    stopped.kill();
    assert!(
        taking_over
            .stderr()
            .contains("killed an idle session holding this writer's lock"),
        "{}",
        taking_over.stderr()
    );
    assert_eq!(
        mark_counter(&b, 1).await.unwrap(),
        20,
        "transactions applied downstream"
    );
}

/// An apply record of the first layout (one row per channel and upstream, no watermark)
/// is upgraded in place at start, and its position still decides where to resume: the
/// checkpoint lags behind it here, so a replay would double rows of the keyless table.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_apply_record_of_the_first_layout_is_upgraded_and_honoured() {
    let (a, b) = two_sites(SETUP).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut config = marked_config_for(&a, &b, dir.path()).unwrap();
    config.syncer.checkpoint_interval_ms = 3_600_000;
    config.syncer.worker_count = 1;
    let write = |n: u32| {
        let a = &a;
        async move {
            a.exec(&[
                "BEGIN",
                &format!("INSERT INTO app.log VALUES ({n}, 'row')"),
                &format!("INSERT INTO app.kv VALUES ({n}, {n})"),
                "COMMIT",
            ])
            .await
            .unwrap()
        }
    };
    let mut drainer = integration::replicating(&config, WAIT).await.unwrap();
    for n in 1..=5 {
        write(n).await;
    }
    eventually("five transactions applied", WAIT, || async {
        match mark_counter(&b, 1).await.map_err(|e| e.to_string())? {
            5 => Ok(()),
            n => Err(format!("{n} applied")),
        }
    })
    .await;
    // Killed: the checkpoint stays at the bootstrap position.
    drainer.kill();
    let last: Vec<String> = b
        .query("SELECT position FROM retl._drainer_apply_state WHERE worker = 1")
        .await
        .unwrap();
    b.exec(&[
        "CREATE TABLE retl.first_layout (channel_id BIGINT NOT NULL, \
         source VARCHAR(255) NOT NULL, position TEXT NOT NULL, \
         updated_at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) \
         ON UPDATE CURRENT_TIMESTAMP(6), PRIMARY KEY (channel_id, source)) ENGINE=InnoDB",
        "INSERT INTO retl.first_layout (channel_id, source, position) \
         SELECT channel_id, source, position FROM retl._drainer_apply_state WHERE worker = 1",
        "DROP TABLE retl._drainer_apply_state",
        "RENAME TABLE retl.first_layout TO retl._drainer_apply_state",
    ])
    .await
    .unwrap();

    let drainer = integration::replicating(&config, WAIT).await.unwrap();
    for n in 6..=8 {
        write(n).await;
    }
    same_rows(&a, &b, "every row once", || drainer.stderr()).await;
    assert_eq!(mark_counter(&b, 1).await.unwrap(), 8);
    let rows: Vec<(u32, String)> = b
        .query("SELECT worker, position FROM retl._drainer_apply_state ORDER BY worker")
        .await
        .unwrap();
    assert_eq!(
        rows.len(),
        2,
        "the old row (writer 0) and worker 1's: {rows:?}"
    );
    assert_eq!(rows[0].1, last[0], "the old row kept as writer 0's");
}

/// Runs a drainer on a new data-dir from `start` until row `last` of `app.log` is on `b`,
/// then stops it (it must exit 0); its log.
async fn run_from_new_data_dir(a: &MariaDb, b: &MariaDb, start: &str, last: u32) -> String {
    let dir = tempfile::tempdir().unwrap();
    let mut config = marked_config_for(a, b, dir.path()).unwrap();
    config.pump.initial_gtid = start.to_owned();
    let mut drainer = integration::replicating(&config, WAIT).await.unwrap();
    eventually(&format!("row {last} applied"), WAIT, || async {
        let rows: Vec<u64> = b
            .query(&format!("SELECT COUNT(*) FROM app.log WHERE n = {last}"))
            .await
            .map_err(|e| e.to_string())?;
        if rows[0] > 0 {
            Ok(())
        } else {
            Err(format!("not there yet\n{}", drainer.stderr()))
        }
    })
    .await;
    drainer.signal(libc::SIGTERM);
    let out = drainer.wait(WAIT).await.unwrap();
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    out.stderr
}

/// A data-dir lost (a new one) while the configuration still names the first
/// deployment's start: the start resumes after the downstream's apply record, as it does
/// after a checkpoint behind it, not at the old start (which would apply every
/// transaction since again: doubled rows in the keyless table). A start past the record
/// is taken as configured: the transactions between are passed over.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_data_dir_resumes_after_the_apply_record_not_at_an_older_start() {
    let (a, b) = two_sites(SETUP).await.unwrap();
    let first: Vec<String> = a.query("SELECT @@gtid_binlog_pos").await.unwrap();
    let write = |n: u32| {
        let a = &a;
        async move {
            a.exec(&[&format!("INSERT INTO app.log VALUES ({n}, 'row')")])
                .await
                .unwrap()
        }
    };

    for n in 1..=5 {
        write(n).await;
    }
    run_from_new_data_dir(&a, &b, &first[0], 5).await;

    // The data-dir is gone; the configuration still starts at the first position.
    for n in 6..=8 {
        write(n).await;
    }
    let log = run_from_new_data_dir(&a, &b, &first[0], 8).await;
    assert_eq!(dump(&b).await.unwrap(), dump(&a).await.unwrap(), "{log}");
    assert_eq!(mark_counter(&b, 1).await.unwrap(), 8);
    assert!(log.contains("resuming after the record"), "{log}");

    // A start past the record: row 9 is passed over, as configured.
    write(9).await;
    let past: Vec<String> = a.query("SELECT @@gtid_binlog_pos").await.unwrap();
    write(10).await;
    let log = run_from_new_data_dir(&a, &b, &past[0], 10).await;
    assert!(log.contains("starting there, as configured"), "{log}");
    let nine: Vec<u64> = b
        .query("SELECT COUNT(*) FROM app.log WHERE n = 9")
        .await
        .unwrap();
    assert_eq!(nine[0], 0, "row 9 lies before the configured start");
    assert_eq!(mark_counter(&b, 1).await.unwrap(), 9);
}

/// A crash at a DDL statement before the first checkpoint (a new data-dir, the statement
/// the first transaction read): the schema history had recorded the statement, and a
/// restart from the bootstrap read it again onto the definitions it had already changed
/// (a duplicate column: the drainer stopped). The history now stands where reading
/// resumes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_at_the_first_ddl_before_any_checkpoint_replays_it() {
    let (a, b) = two_sites(SETUP).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut config = marked_config_for(&a, &b, dir.path()).unwrap();
    config.syncer.checkpoint_interval_ms = 3_600_000;
    let mut drainer = replicating_with_failpoint(&config, "before-ddl", WAIT)
        .await
        .unwrap();
    a.exec(&["ALTER TABLE app.kv ADD COLUMN w INT"])
        .await
        .unwrap();
    let out = drainer.wait(WAIT).await.unwrap();
    assert_eq!(out.status.signal(), Some(libc::SIGABRT), "{}", out.stderr);

    let drainer = integration::replicating(&config, WAIT).await.unwrap();
    a.exec(&["INSERT INTO app.kv (id, v, w) VALUES (1, 2, 3)"])
        .await
        .unwrap();
    eventually("the row with its new column downstream", WAIT, || async {
        let rows: Vec<String> = b
            .query("SELECT CONCAT_WS(' ', id, v, w) FROM app.kv")
            .await
            .map_err(|e| format!("{e}\n{}", drainer.stderr()))?;
        if rows == ["1 2 3"] {
            Ok(())
        } else {
            Err(format!("{rows:?}\n{}", drainer.stderr()))
        }
    })
    .await;
}
