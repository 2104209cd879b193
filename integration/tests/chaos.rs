//! Chaos: a bidirectional workload while each drainer is killed with SIGKILL at random
//! moments (20 times each) and started again, the downstream server of one direction is
//! restarted, and one drainer dies at the failpoint between a downstream commit and its
//! checkpoint. Safe mode is off. At the end both sites are equal, the insert-only table
//! without any key holds exactly the rows written (a repeated transaction would double
//! one), every mark counter equals the transactions its origin site wrote (nothing
//! applied twice, nothing lost), and both binlogs are still (nothing loops).

use std::os::unix::process::ExitStatusExt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use integration::{
    eventually, mark_counter, marked_config_for, two_sites, Dice, DrainerCommand, DrainerProcess,
    MariaDb,
};
use mysql_async::prelude::Queryable;

const WAIT: Duration = Duration::from_secs(90);
const KILLS: usize = 20;

/// Writes on `server` until `stop`: inserts, updates and deletes of its own keys and an
/// insert-only keyless log, single- and multi-statement transactions. Counts the
/// transactions that changed rows (each is one binlog transaction).
async fn writer(server: &MariaDb, site: char, base: i64, stop: &AtomicBool, written: &AtomicU64) {
    let mut conn = server.conn().await.unwrap();
    let mut i = 0i64;
    while !stop.load(Ordering::Relaxed) {
        i += 1;
        let id = base + i;
        conn.query_drop(format!(
            "INSERT INTO app.kv (id, site, n) VALUES ({id}, '{site}', 0)"
        ))
        .await
        .unwrap();
        conn.query_drop("BEGIN").await.unwrap();
        conn.query_drop(format!(
            "INSERT INTO app.events (site, seq, what) VALUES ('{site}', {i}, 'a'), ('{site}', {i}, 'b')"
        ))
        .await
        .unwrap();
        conn.query_drop(format!("UPDATE app.kv SET n = n + 1 WHERE id = {}", id - 1))
            .await
            .unwrap();
        conn.query_drop("COMMIT").await.unwrap();
        written.fetch_add(2, Ordering::Relaxed);
        if i % 5 == 0 {
            conn.query_drop(format!("DELETE FROM app.kv WHERE id = {}", id - 3))
                .await
                .unwrap();
            written.fetch_add(1, Ordering::Relaxed);
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    conn.disconnect().await.ok();
}

async fn dump(server: &MariaDb) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    for sql in [
        "SELECT CONCAT_WS(' ', 'kv', id, site, n) FROM app.kv ORDER BY id",
        "SELECT CONCAT_WS(' ', 'events', site, seq, what) FROM app.events ORDER BY site, seq, what",
    ] {
        let rows: Vec<String> = server.query(sql).await.map_err(|e| e.to_string())?;
        out.extend(rows);
    }
    Ok(out)
}

async fn binlog_end(server: &MariaDb) -> String {
    let rows: Vec<String> = server
        .query("SELECT @@global.gtid_binlog_pos")
        .await
        .unwrap();
    rows[0].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kills_restarts_and_a_failpoint_neither_lose_nor_repeat() {
    let seed = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        | 1;
    eprintln!("chaos seed {seed}");
    let mut dice = Dice::new(seed);

    let (a, mut b) = two_sites(&[
        "CREATE DATABASE app",
        "CREATE TABLE app.kv (id INT PRIMARY KEY, site CHAR(1) NOT NULL, n INT NOT NULL)",
        "CREATE TABLE app.events (site CHAR(1) NOT NULL, seq INT NOT NULL, what CHAR(1) NOT NULL)",
    ])
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    // Loopback on channel 1, safe mode off.
    let mut ab = marked_config_for(&a, &b, &dir.path().join("ab")).unwrap();
    let mut ba = marked_config_for(&b, &a, &dir.path().join("ba")).unwrap();
    for (config, sync_ddl) in [(&mut ab, true), (&mut ba, false)] {
        config.syncer.sync_ddl = sync_ddl;
        config.syncer.checkpoint_interval_ms = 2_000;
    }
    let mut drainers: [DrainerProcess; 2] = [
        integration::replicating(&ab, WAIT).await.unwrap(),
        integration::replicating(&ba, WAIT).await.unwrap(),
    ];
    let configs = [&ab, &ba];

    let stop = AtomicBool::new(false);
    let written = [AtomicU64::new(0), AtomicU64::new(0)];
    let writers = async {
        tokio::join!(
            writer(&a, 'A', 1_000_000, &stop, &written[0]),
            writer(&b, 'B', 2_000_000, &stop, &written[1])
        );
    };

    let chaos = async {
        for round in 0..2 * KILLS {
            let which = round % 2;
            tokio::time::sleep(Duration::from_millis(150 + dice.roll(900))).await;
            drainers[which].kill();
            drainers[which] = integration::replicating(configs[which], WAIT)
                .await
                .unwrap();
        }
        // The failpoint: A → B dies right after a downstream commit, before its checkpoint.
        drainers[0].kill();
        let mut failing = DrainerCommand::new()
            .unwrap()
            .config(&ab)
            .unwrap()
            .env("DRAINER_FAILPOINT", "after-commit:10")
            .spawn_replicating(WAIT)
            .await
            .unwrap();
        let out = failing.wait(WAIT).await.unwrap();
        assert_eq!(out.status.signal(), Some(libc::SIGABRT), "{}", out.stderr);
        drainers[0] = integration::replicating(&ab, WAIT).await.unwrap();
        tokio::time::sleep(Duration::from_millis(500)).await;
        stop.store(true, Ordering::Relaxed);
    };
    tokio::join!(writers, chaos);

    // The downstream of A → B restarts, with both drainers running.
    b.restart().await.unwrap();

    eventually("both sites to hold the same rows", WAIT, || async {
        let (x, y) = (dump(&a).await?, dump(&b).await?);
        if x == y {
            Ok(())
        } else {
            Err(format!(
                "A {} rows, B {}; first difference {:?}\nA→B:\n{}\nB→A:\n{}",
                x.len(),
                y.len(),
                x.iter().zip(&y).find(|(p, q)| p != q),
                drainers[0].stderr(),
                drainers[1].stderr()
            ))
        }
    })
    .await;
    let before = tokio::join!(binlog_end(&a), binlog_end(&b));
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = tokio::join!(binlog_end(&a), binlog_end(&b));
    assert_eq!(before, after, "a binlog still grows: transactions loop");

    // The keyless table: every row written once, none twice.
    let doubled: Vec<String> = a
        .query("SELECT CONCAT_WS(' ', site, seq, what) FROM app.events GROUP BY site, seq, what HAVING COUNT(*) > 1")
        .await
        .unwrap();
    assert!(doubled.is_empty(), "rows doubled: {doubled:?}");
    // Every transaction applied exactly once: each mark counter equals what its origin wrote.
    let (wa, wb) = (
        written[0].load(Ordering::Relaxed),
        written[1].load(Ordering::Relaxed),
    );
    assert!(wa > 100 && wb > 100, "{wa} and {wb} transactions written");
    assert_eq!(
        mark_counter(&b, 1).await.unwrap(),
        wa,
        "A → B (seed {seed})"
    );
    assert_eq!(
        mark_counter(&a, 1).await.unwrap(),
        wb,
        "B → A (seed {seed})"
    );
}
