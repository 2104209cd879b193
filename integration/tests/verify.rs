//! `drainer verify` (issue 21) on a live two-way pair: writers on both sites the whole
//! time, each chunk compared at the same point of history on both sides; equal both
//! ways, then exactly the rows planted behind the drainers' backs.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use integration::{
    direction, replicating, two_writable_sites, Dice, DrainerCommand, DrainerOutput, MariaDb,
};
use mysql_async::prelude::Queryable;
use tempfile::TempDir;

const WAIT: Duration = Duration::from_secs(120);

const SETUP: &[&str] = &[
    "CREATE DATABASE app",
    "CREATE TABLE app.t (id INT PRIMARY KEY, v VARCHAR(40), n DOUBLE NULL, \
     at TIMESTAMP(6) NULL)",
    "INSERT INTO app.t SELECT seq, CONCAT('v', seq), IF(seq % 7 = 0, NULL, seq / 3), \
     '2026-12-05 01:02:03.000004' FROM app.seq_1_to_5000",
    "CREATE TABLE app.c (a INT, b VARCHAR(10), v INT, PRIMARY KEY (a, b))",
    "INSERT INTO app.c SELECT seq % 10, CONCAT('b', seq), seq FROM app.seq_1_to_1200",
    "CREATE TABLE app.k (a INT, b VARCHAR(10))",
    "INSERT INTO app.k SELECT seq, 'x' FROM app.seq_1_to_100",
    // verify's requests go into retl._drainer_verify on the upstream, as the [pump] user.
    "CREATE DATABASE IF NOT EXISTS retl",
    "GRANT CREATE, INSERT, SELECT ON retl.* TO 'drainer_pump'@'127.0.0.1'",
];

/// Updates rows of `app.t` on `site` until `stop`: ids 1..4000 with the site's parity
/// (the two sites never write one row, so no conflict makes them differ).
async fn writer(site: &MariaDb, parity: u64, stop: Arc<AtomicBool>) -> u64 {
    let mut conn = site.conn().await.unwrap();
    let mut dice = Dice::new(7 + parity);
    let mut n = 0;
    while !stop.load(Ordering::Relaxed) {
        let id = 2 * dice.roll(2000) + 1 + parity;
        conn.query_drop(format!(
            "UPDATE app.t SET v = CONCAT('w', {n}), n = {n} / 7 WHERE id = {id}"
        ))
        .await
        .unwrap();
        n += 1;
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    n
}

async fn verify(config: &conf::Config, args: &[&str]) -> DrainerOutput {
    let mut command = DrainerCommand::new().unwrap().arg("verify");
    for a in args {
        command = command.arg(a);
    }
    command.config(config).unwrap().output(WAIT).await.unwrap()
}

#[tokio::test]
async fn verify_proves_a_live_pair_equal_and_names_exactly_the_rows_planted() {
    let (a, b) = two_writable_sites(SETUP).await.unwrap();
    let dir = TempDir::new().unwrap();
    let ab = direction(&a, &b, 1, false, dir.path());
    let ba = direction(&b, &a, 1, false, dir.path());
    let _to_b = replicating(&ab, WAIT).await.unwrap();
    let _to_a = replicating(&ba, WAIT).await.unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let checks = async {
        // Both directions, writes never paused.
        for config in [&ab, &ba] {
            let out = verify(config, &["--chunk-rows", "500"]).await;
            assert_eq!(out.code(), Some(0), "{}\n{}", out.stdout, out.stderr);
            assert!(
                out.stdout
                    .contains("app.t: 5000 rows in 11 chunks (by id): equal"),
                "{}",
                out.stdout
            );
            assert!(out.stdout.contains("app.c: 1200 rows"), "{}", out.stdout);
            assert!(
                out.stdout.contains(
                    "app.k: 100 rows in 1 chunks (no primary or unique key: checked whole): equal"
                ),
                "{}",
                out.stdout
            );
        }

        // Divergence behind the drainers' backs, on rows the writers leave alone.
        b.exec(&[
            "SET SESSION sql_log_bin = 0",
            "UPDATE app.t SET v = 'planted' WHERE id = 4500",
            "DELETE FROM app.t WHERE id = 4600",
            "INSERT INTO app.t VALUES (6000, 'planted', NULL, NULL)",
            "UPDATE app.c SET v = -1 WHERE a = 3 AND b = 'b13'",
            "SET SESSION sql_log_bin = 1",
        ])
        .await
        .unwrap();
        let json = dir.path().join("verify.json");
        let out = verify(
            &ab,
            &["--chunk-rows", "500", "--json", json.to_str().unwrap()],
        )
        .await;
        assert_eq!(out.code(), Some(1), "{}\n{}", out.stdout, out.stderr);
        let mut named: Vec<&str> = out
            .stdout
            .lines()
            .filter(|l| l.starts_with("    "))
            .map(str::trim)
            .collect();
        named.sort_unstable();
        assert_eq!(
            named,
            [
                "a=3, b=b13: different",
                "id=4500: different",
                "id=4600: missing downstream",
                "id=6000: missing upstream",
            ],
            "{}",
            out.stdout
        );
        let report: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
        assert_eq!(report["equal"], false);

        // --repair makes B's rows A's, in marked transactions; then both ways are equal.
        let out = verify(&ab, &["--chunk-rows", "500", "--repair"]).await;
        assert_eq!(out.code(), Some(1), "{}\n{}", out.stdout, out.stderr);
        assert_eq!(
            out.stdout.matches("(repaired)").count(),
            4,
            "{}\n{}",
            out.stdout,
            out.stderr
        );
        for config in [&ab, &ba] {
            let out = verify(config, &["--chunk-rows", "500"]).await;
            assert_eq!(out.code(), Some(0), "{}\n{}", out.stdout, out.stderr);
        }
        let repairs: Vec<u64> = b
            .query("SELECT COUNT(*) FROM retl._drainer_verify WHERE side = 'repair'")
            .await
            .unwrap();
        assert_eq!(repairs, [4]);
        stop.store(true, Ordering::Relaxed);
    };
    let (wa, wb, ()) = tokio::join!(
        writer(&a, 0, Arc::clone(&stop)),
        writer(&b, 1, Arc::clone(&stop)),
        checks
    );
    assert!(wa > 50 && wb > 50, "{wa} and {wb} writes");
    // Nothing verify or the repair wrote loops: both binlogs go quiet.
    integration::binlogs_still(&[&a, &b]).await.unwrap();
    let rows: Vec<(u64, u64)> = a
        .query("SELECT COUNT(*), SUM(v = 'planted') FROM app.t")
        .await
        .unwrap();
    assert_eq!(rows, [(5000, 0)], "the repair never reached site A");
}

/// kill -9 of the drainer while verify waits for its answers: verify waits, the restarted
/// drainer answers the requests it had not (each exactly once: an answer commits with
/// its apply record), and the result is right.
#[tokio::test]
async fn verify_outlives_a_drainer_killed_under_it() {
    let (a, b) = two_writable_sites(&[
        "CREATE DATABASE app",
        "CREATE TABLE app.t (id INT PRIMARY KEY, v VARCHAR(40))",
        "INSERT INTO app.t SELECT seq, CONCAT('v', seq) FROM app.seq_1_to_20000",
        "CREATE DATABASE IF NOT EXISTS retl",
        "GRANT CREATE, INSERT, SELECT ON retl.* TO 'drainer_pump'@'127.0.0.1'",
    ])
    .await
    .unwrap();
    let dir = TempDir::new().unwrap();
    let ab = direction(&a, &b, 1, false, dir.path());
    let mut drainer = replicating(&ab, WAIT).await.unwrap();
    let answers = || async {
        let n: Vec<u64> = b
            .query("SELECT COUNT(*) FROM retl._drainer_verify WHERE side = 'answer'")
            .await
            .unwrap_or_default();
        n.first().copied().unwrap_or(0)
    };
    let kill = async {
        integration::poll_until("the first answers", WAIT, || async {
            match answers().await {
                n if n >= 10 => Ok(n),
                n => Err(format!("{n} answers")),
            }
        })
        .await
        .unwrap();
        drainer.kill();
        let at_kill = answers().await;
        tokio::time::sleep(Duration::from_secs(2)).await;
        (replicating(&ab, WAIT).await.unwrap(), at_kill)
    };
    let (out, (_drainer, at_kill)) = tokio::join!(
        verify(&ab, &["--tables", "app.t", "--chunk-rows", "200"]),
        kill
    );
    assert_eq!(out.code(), Some(0), "{}\n{}", out.stdout, out.stderr);
    assert!(
        out.stdout
            .contains("app.t: 20000 rows in 101 chunks (by id): equal"),
        "{}",
        out.stdout
    );
    assert!(
        at_kill < 101,
        "verify finished before the kill ({at_kill} answers)"
    );
    let asked: Vec<u64> = a
        .query("SELECT COUNT(*) FROM retl._drainer_verify WHERE side = 'request'")
        .await
        .unwrap();
    let answered: Vec<(u64, u64)> = b
        .query(
            "SELECT COUNT(*), COUNT(DISTINCT run, chunk, attempt) FROM retl._drainer_verify \
             WHERE side = 'answer'",
        )
        .await
        .unwrap();
    assert_eq!(
        answered,
        [(asked[0], asked[0])],
        "killed at {at_kill} answers"
    );
}
