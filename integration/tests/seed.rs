//! `drainer seed` (issue 22): a new, empty site B copied from a live site A whose writers
//! never stop, then streamed from exactly where the copy stands; the reverse drainer runs
//! the whole time and nothing of the copy flows back.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use integration::{
    binlogs_still, direction, http_get, mark_counter, poll_until, replicating, text_rows,
    two_writable_sites, Dice, DrainerCommand, DrainerOutput, MariaDb,
};
use mysql_async::prelude::Queryable;
use tempfile::TempDir;

const WAIT: Duration = Duration::from_secs(300);

/// 201,000 rows on site A: an integer key, a composite integer key, a text key (copied
/// whole), no key at all (copied whole), and a child table with a foreign key.
const SETUP: &[&str] = &[
    "CREATE DATABASE app",
    "CREATE TABLE app.t (id INT PRIMARY KEY, v VARCHAR(40), n DOUBLE NULL, \
     at TIMESTAMP(6) NULL, b BLOB NULL)",
    "INSERT INTO app.t SELECT seq, CONCAT('v', seq), IF(seq % 7 = 0, NULL, seq / 3), \
     '2026-12-05 01:02:03.000004', IF(seq % 11 = 0, UNHEX('00FF00'), NULL) \
     FROM app.seq_1_to_120000",
    "CREATE TABLE app.c (a INT UNSIGNED, b BIGINT, v INT, PRIMARY KEY (a, b))",
    "INSERT INTO app.c SELECT seq % 10, seq, seq FROM app.seq_1_to_40000",
    "CREATE TABLE app.s (name VARCHAR(20) PRIMARY KEY, v INT)",
    "INSERT INTO app.s SELECT CONCAT('n', seq), seq FROM app.seq_1_to_20000",
    // A child copied before its parent (tables go in name order).
    "CREATE TABLE app.d (id INT PRIMARY KEY, name VARCHAR(20) NOT NULL, \
     FOREIGN KEY (name) REFERENCES app.s (name))",
    "INSERT INTO app.d SELECT seq, CONCAT('n', seq * 3) FROM app.seq_1_to_1000",
    "CREATE TABLE app.k (a INT, b VARCHAR(10))",
    "INSERT INTO app.k SELECT seq % 5000, 'x' FROM app.seq_1_to_20000",
    // `drainer verify` at the end writes its requests as the [pump] user.
    "CREATE DATABASE IF NOT EXISTS retl",
    "GRANT CREATE, INSERT, SELECT ON retl.* TO 'drainer_pump'@'127.0.0.1'",
];

/// Inserts, updates and deletes on every table of site A until `stop`; the number of
/// statements.
async fn writer(a: &MariaDb, seed: u64, stop: Arc<AtomicBool>) -> u64 {
    let mut conn = a.conn().await.unwrap();
    let mut dice = Dice::new(seed);
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let id = dice.roll(130_000) + 1;
        let sql = match dice.roll(10) {
            0 => format!("INSERT IGNORE INTO app.t (id, v) VALUES ({id} + 120000, 'new{n}')"),
            1 => format!("DELETE FROM app.t WHERE id = {id}"),
            2 => format!("UPDATE IGNORE app.t SET id = id + 200000 WHERE id = {id}"),
            3 => format!(
                "UPDATE app.c SET v = v + 1 WHERE a = {} AND b = {}",
                id % 10,
                id % 40_000
            ),
            4 => format!(
                "INSERT IGNORE INTO app.c VALUES ({}, {id} + 50000, {n})",
                id % 10
            ),
            5 => format!("UPDATE app.s SET v = {n} WHERE name = 'n{}'", id % 20_000),
            6 => format!("INSERT INTO app.k VALUES ({}, 'w{n}')", id % 5000),
            7 => format!("DELETE FROM app.k WHERE a = {} LIMIT 1", id % 5000),
            8 => format!("UPDATE app.k SET b = 'u{n}' WHERE a = {}", id % 5000),
            _ => format!("UPDATE app.t SET v = CONCAT('w', {n}), n = {n} / 7 WHERE id = {id}"),
        };
        conn.query_drop(sql).await.unwrap();
        n += 1;
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    n
}

fn seed_command(config: &conf::Config) -> DrainerCommand {
    DrainerCommand::new()
        .unwrap()
        .arg("seed")
        .arg("--chunk-rows")
        .arg("2000")
        .config(config)
        .unwrap()
}

/// The rows of every table of site `s`, in key order (the keyless one in full order).
async fn dump(s: &MariaDb) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    for sql in [
        "SELECT id, v, n, at, HEX(b) FROM app.t ORDER BY id",
        "SELECT * FROM app.c ORDER BY a, b",
        "SELECT * FROM app.d ORDER BY id",
        "SELECT * FROM app.s ORDER BY name",
        "SELECT * FROM app.k ORDER BY a, b",
    ] {
        out.push(text_rows(s, sql).await.unwrap());
    }
    out
}

async fn verify(config: &conf::Config) -> DrainerOutput {
    DrainerCommand::new()
        .unwrap()
        .arg("verify")
        .config(config)
        .unwrap()
        .output(WAIT)
        .await
        .unwrap()
}

/// How a seed run is cut short.
#[derive(Clone, Copy)]
enum Kill {
    /// SIGKILL once this many more chunks are in.
    AfterChunks(u64),
    /// It aborts at a failpoint (see the drainer's `failpoint` module).
    At(&'static str),
}

/// The seed of B from A under writers, cut short by each of `kills` along the way; then
/// the stream, and both sites equal.
async fn seed_under_writes(kills: &[Kill]) {
    let (a, b) = two_writable_sites(&[]).await.unwrap();
    a.exec(SETUP).await.unwrap();
    let dir = TempDir::new().unwrap();
    let ab = direction(&a, &b, 1, false, dir.path());
    let ba = direction(&b, &a, 1, false, dir.path());
    // The reverse direction runs the whole time: the copy must not flow back to A.
    let _to_a = replicating(&ba, WAIT).await.unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let run = async {
        for &kill in kills {
            match kill {
                Kill::AfterChunks(more) => {
                    let mut seed = seed_command(&ab).spawn().unwrap();
                    let chunks_before = chunks(&b).await;
                    poll_until("chunks copied", WAIT, || async {
                        match chunks(&b).await {
                            n if n >= chunks_before + more => Ok(()),
                            n => Err(format!("{n} chunks")),
                        }
                    })
                    .await
                    .unwrap();
                    // Its progress on `addr` meanwhile.
                    let (code, body) = http_get(&ab.addr, "/status").await.unwrap();
                    assert_eq!(code, 200, "{body}");
                    let status: serde_json::Value = serde_json::from_str(&body).unwrap();
                    assert_eq!(status["state"], "copying", "{body}");
                    let copied = status["tables"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|t| t["rows_copied"].as_u64().unwrap())
                        .sum::<u64>();
                    assert!(copied >= 2000, "{body}");
                    let (_, metrics) = http_get(&ab.addr, "/metrics").await.unwrap();
                    assert!(
                        metrics.contains("drainer_seed_rows_total{table=\"app."),
                        "{metrics}"
                    );
                    seed.kill();
                }
                Kill::At(failpoint) => {
                    let out = seed_command(&ab)
                        .env("DRAINER_FAILPOINT", failpoint)
                        .output(WAIT)
                        .await
                        .unwrap();
                    assert!(out.stderr.contains("aborting"), "{}", out.stderr);
                    if failpoint.starts_with("seed-whole-piece") {
                        // Its transaction died with it: none of its rows are in.
                        let k: Vec<u64> = b.query("SELECT COUNT(*) FROM app.k").await.unwrap();
                        assert_eq!(k, [0]);
                    }
                }
            }
            // A drainer refuses to stream from a seed that did not finish.
            let early = DrainerCommand::new()
                .unwrap()
                .config(&ab)
                .unwrap()
                .output(WAIT)
                .await
                .unwrap();
            assert_eq!(early.code(), Some(1), "{}", early.stderr);
            assert!(early.stderr.contains("did not finish"), "{}", early.stderr);
        }
        let out = seed_command(&ab).output(WAIT).await.unwrap();
        assert_eq!(out.code(), Some(0), "{}\n{}", out.stdout, out.stderr);
        assert!(out.stdout.contains("seed complete"), "{}", out.stdout);
        println!("{}", out.stdout);
        assert!(
            out.stdout.contains("app.k: ")
                && out
                    .stdout
                    .contains("no primary or unique key: copied whole"),
            "{}",
            out.stdout
        );
        assert!(out.stdout.contains("(by id)"), "{}", out.stdout);
        // Started again, it has nothing to do.
        let again = seed_command(&ab).output(WAIT).await.unwrap();
        assert_eq!(again.code(), Some(0), "{}", again.stderr);
        assert!(
            again.stdout.contains("complete already"),
            "{}",
            again.stdout
        );
        let drainer = replicating(&ab, WAIT).await.unwrap();
        tokio::time::sleep(Duration::from_secs(3)).await;
        stop.store(true, Ordering::Relaxed);
        drainer
    };
    let (w1, w2, _to_b) = tokio::join!(
        writer(&a, 7, Arc::clone(&stop)),
        writer(&a, 11, Arc::clone(&stop)),
        run
    );
    assert!(w1 > 100 && w2 > 100, "{w1} and {w2} writes");
    poll_until("both sites equal", WAIT, || async {
        let (da, db) = (dump(&a).await, dump(&b).await);
        match da == db {
            true => Ok(()),
            false => Err(da
                .iter()
                .zip(&db)
                .map(|(x, y)| format!("{} / {} rows", x.len(), y.len()))
                .collect::<Vec<_>>()
                .join("; ")),
        }
    })
    .await
    .unwrap();
    let out = verify(&ab).await;
    assert_eq!(out.code(), Some(0), "{}\n{}", out.stdout, out.stderr);
    binlogs_still(&[&a, &b]).await.unwrap();
    assert_eq!(
        mark_counter(&a, 1).await.unwrap(),
        0,
        "the reverse direction applied nothing: the copy did not flow back"
    );
    let keyless: Vec<u64> = b.query("SELECT COUNT(*) FROM app.k").await.unwrap();
    let upstream: Vec<u64> = a.query("SELECT COUNT(*) FROM app.k").await.unwrap();
    assert_eq!(keyless, upstream, "nothing doubled in the keyless table");
}

/// Chunks the downstream holds.
async fn chunks(b: &MariaDb) -> u64 {
    let n: Result<Vec<u64>, _> = b
        .query("SELECT COUNT(*) FROM retl._drainer_seed WHERE db_name <> ''")
        .await;
    n.ok().and_then(|n| n.first().copied()).unwrap_or(0)
}

#[tokio::test]
async fn a_new_site_is_seeded_under_writes_and_streams_exactly_from_the_copy() {
    seed_under_writes(&[]).await;
}

#[tokio::test]
async fn a_seed_killed_twice_resumes_and_ends_equal() {
    // Inside the one transaction of the keyless table (after 10,000 of its rows), then
    // among the chunks of app.t.
    seed_under_writes(&[Kill::At("seed-whole-piece:2"), Kill::AfterChunks(15)]).await;
}
