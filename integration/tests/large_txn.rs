//! A one-million-row upstream transaction replicates as one downstream transaction with
//! bounded memory (its rows stream into the open downstream transaction), also when the
//! drainer is killed while streaming it. The drainer's peak RSS is reported.

use std::time::{Duration, Instant};

use integration::{
    eventually, mark_counter, marked_config_for, two_sites, DrainerProcess, MariaDb,
};

const ROWS: u64 = 1_000_000;
const WAIT: Duration = Duration::from_secs(600);

async fn count(server: &MariaDb) -> Result<(u64, u64), String> {
    let rows: Vec<(u64, Option<u64>)> = server
        .query("SELECT COUNT(*), CAST(SUM(n) AS UNSIGNED) FROM app.big")
        .await
        .map_err(|e| e.to_string())?;
    Ok((rows[0].0, rows[0].1.unwrap_or(0)))
}

/// Two sites that take large packets, each with `app.doc` (a key and a LONGBLOB) and the
/// tables `more` creates.
async fn document_sites(max_packet: &str, more: &[&str]) -> (MariaDb, MariaDb) {
    let site = || async {
        let site = MariaDb::builder()
            .arg(format!("--max-allowed-packet={max_packet}"))
            .start()
            .await
            .unwrap();
        site.exec(&[
            "CREATE DATABASE app",
            "CREATE TABLE app.doc (id INT PRIMARY KEY, body LONGBLOB NOT NULL)",
        ])
        .await
        .unwrap();
        site.exec(more).await.unwrap();
        site
    };
    tokio::join!(site(), site())
}

/// Waits until the drainer streams the big transaction.
async fn streaming(drainer: &DrainerProcess) {
    eventually("the drainer to stream the transaction", WAIT, || async {
        let log = drainer.stderr();
        log.contains("streaming its rows").then_some(()).ok_or(log)
    })
    .await;
}

/// Waits until `app.big` on `server` holds rows 1..=n, each once (count and sum).
async fn all_rows_once(server: &MariaDb, n: u64, drainer: &DrainerProcess) {
    let expected = (n, 3 * n * (n + 1) / 2);
    eventually("the whole transaction downstream", WAIT, || async {
        let got = count(server).await?;
        (got == expected)
            .then_some(())
            .ok_or(format!("{got:?}\n{}", drainer.stderr()))
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_million_row_transaction_streams_with_bounded_memory() {
    let (a, b) = two_sites(&[
        "CREATE DATABASE app",
        "CREATE TABLE app.big (id INT PRIMARY KEY, pad VARCHAR(100) NOT NULL, n BIGINT NOT NULL)",
    ])
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = marked_config_for(&a, &b, dir.path()).unwrap();
    let mut drainer = integration::replicating(&config, WAIT).await.unwrap();

    let written = Instant::now();
    a.exec(&[&format!(
        "INSERT INTO app.big SELECT seq, REPEAT('p', 60), seq * 3 FROM app.seq_1_to_{ROWS}"
    )])
    .await
    .unwrap();
    eprintln!(
        "upstream: {ROWS} rows in one transaction in {:?}",
        written.elapsed()
    );

    // Killed while streaming: the open downstream transaction is rolled back, and the
    // restart streams the whole transaction again, once.
    streaming(&drainer).await;
    let first_peak = drainer.peak_rss().unwrap_or(0);
    drainer.kill();
    assert_eq!(count(&b).await.unwrap().0, 0, "nothing committed halfway");

    let applying = Instant::now();
    let drainer = integration::replicating(&config, WAIT).await.unwrap();
    all_rows_once(&b, ROWS, &drainer).await;
    assert_eq!(
        mark_counter(&b, 1).await.unwrap(),
        1,
        "one downstream transaction"
    );
    // VmHWM: the high-water mark of the process's whole life.
    let peak = first_peak.max(drainer.peak_rss().unwrap_or(0));
    let mib = peak as f64 / (1 << 20) as f64;
    eprintln!(
        "drainer: {ROWS} rows applied as one transaction in {:?}; peak RSS {mib:.0} MiB",
        applying.elapsed()
    );
    // Held in memory, a million rows take far more; the goal is under 256 MiB.
    assert!(mib < 256.0, "peak RSS {mib:.0} MiB");
}

/// The downstream restarts while a transaction streams into it: the open downstream
/// transaction is gone, so the drainer reads the upstream transaction again from its
/// start and applies it once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_downstream_restart_while_streaming_reads_the_transaction_again() {
    const N: u64 = 150_000;
    let (a, mut b) = two_sites(&[
        "CREATE DATABASE app",
        "CREATE TABLE app.big (id INT PRIMARY KEY, pad VARCHAR(100) NOT NULL, n BIGINT NOT NULL)",
    ])
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = marked_config_for(&a, &b, dir.path()).unwrap();
    let drainer = integration::replicating(&config, WAIT).await.unwrap();
    a.exec(&[&format!(
        "INSERT INTO app.big SELECT seq, REPEAT('p', 60), seq * 3 FROM app.seq_1_to_{N}"
    )])
    .await
    .unwrap();
    streaming(&drainer).await;
    b.restart().await.unwrap();
    all_rows_once(&b, N, &drainer).await;
    assert!(
        drainer.stderr().contains("reading the transaction again"),
        "{}",
        drainer.stderr()
    );
    assert_eq!(
        mark_counter(&b, 1).await.unwrap(),
        1,
        "one downstream transaction"
    );
}

/// SIGTERM while a transaction streams: the drainer rolls the open downstream
/// transaction back, saves its checkpoint and exits 0; the next start applies the whole
/// transaction once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_graceful_stop_while_streaming_rolls_back_and_resumes() {
    const N: u64 = 150_000;
    let (a, b) = two_sites(&[
        "CREATE DATABASE app",
        "CREATE TABLE app.big (id INT PRIMARY KEY, pad VARCHAR(100) NOT NULL, n BIGINT NOT NULL)",
    ])
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = marked_config_for(&a, &b, dir.path()).unwrap();
    let mut drainer = integration::replicating(&config, WAIT).await.unwrap();
    a.exec(&[&format!(
        "INSERT INTO app.big SELECT seq, REPEAT('p', 60), seq * 3 FROM app.seq_1_to_{N}"
    )])
    .await
    .unwrap();
    streaming(&drainer).await;
    drainer.signal(libc::SIGTERM);
    let out = drainer.wait(WAIT).await.unwrap();
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    assert!(
        out.stderr.contains("rolling back the streamed transaction"),
        "{}",
        out.stderr
    );
    assert_eq!(count(&b).await.unwrap().0, 0, "nothing committed halfway");

    let drainer = integration::replicating(&config, WAIT).await.unwrap();
    all_rows_once(&b, N, &drainer).await;
    assert_eq!(
        mark_counter(&b, 1).await.unwrap(),
        1,
        "one downstream transaction"
    );
}

/// One 64 MiB row, inserted and then updated (its before and after images are 128 MiB
/// in one event), replicates with the drainer under 256 MiB of RSS: no more copies of a
/// row image are held than needed (the update peaked at 344 MiB before).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_64_mib_row_replicates_in_bounded_memory() {
    const SIZE: u64 = 64 << 20;
    let (a, b) = document_sites("1G", &[]).await;
    let dir = tempfile::tempdir().unwrap();
    let config = marked_config_for(&a, &b, dir.path()).unwrap();
    let drainer = integration::replicating(&config, WAIT).await.unwrap();
    let same = |what: &'static str| {
        let (a, b, drainer) = (&a, &b, &drainer);
        async move {
            let sql = "SELECT COUNT(*), CAST(COALESCE(SUM(LENGTH(body)), 0) AS UNSIGNED), \
                       COALESCE(MAX(MD5(body)), '') FROM app.doc";
            let want: Vec<(u64, u64, String)> = a.query(sql).await.unwrap();
            eventually(what, WAIT, || async {
                let got: Vec<(u64, u64, String)> = b.query(sql).await.map_err(|e| e.to_string())?;
                (got == want)
                    .then_some(())
                    .ok_or(format!("{got:?} != {want:?}\n{}", drainer.stderr()))
            })
            .await;
        }
    };
    a.exec(&[&format!(
        "INSERT INTO app.doc VALUES (1, REPEAT('x', {SIZE}))"
    )])
    .await
    .unwrap();
    same("the inserted row downstream").await;
    let inserted = drainer.peak_rss().unwrap_or(0) as f64 / (1 << 20) as f64;
    a.exec(&[&format!(
        "UPDATE app.doc SET body = REPEAT('y', {SIZE}) WHERE id = 1"
    )])
    .await
    .unwrap();
    same("the updated row downstream").await;
    let updated = drainer.peak_rss().unwrap_or(0) as f64 / (1 << 20) as f64;
    eprintln!(
        "drainer peak RSS: {inserted:.0} MiB after the insert, {updated:.0} MiB after the update"
    );

    assert!(
        updated < 256.0,
        "peak RSS {updated:.0} MiB (insert: {inserted:.0})"
    );
}

/// The drainer waits for the next event and for its checkpoint timer at once: a large
/// event still arriving when the timer fires (here every millisecond, right after a small
/// transaction's commit) is taken up again where its read stopped, and the stream keeps
/// its place (it lost it once: a reconnect, or a stop on what it read as a packet).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_events_keep_their_place_across_checkpoint_ticks() {
    let (a, b) = document_sites("256M", &["CREATE TABLE app.tick (id INT PRIMARY KEY)"]).await;
    let dir = tempfile::tempdir().unwrap();
    let mut config = marked_config_for(&a, &b, dir.path()).unwrap();
    config.syncer.checkpoint_interval_ms = 1;
    let drainer = integration::replicating(&config, WAIT).await.unwrap();
    for i in 0..12 {
        a.exec(&[
            &format!("INSERT INTO app.tick VALUES ({i})"),
            &format!(
                "INSERT INTO app.doc VALUES ({i}, REPEAT('{i}', {}))",
                24 << 20
            ),
        ])
        .await
        .unwrap();
    }
    let sql = "SELECT COUNT(*), CAST(COALESCE(SUM(LENGTH(body)), 0) AS UNSIGNED) FROM app.doc";
    let want: Vec<(u64, u64)> = a.query(sql).await.unwrap();
    eventually("every large row downstream", WAIT, || async {
        let got: Vec<(u64, u64)> = b.query(sql).await.map_err(|e| e.to_string())?;
        (got == want)
            .then_some(())
            .ok_or(format!("{got:?} != {want:?}\n{}", drainer.stderr()))
    })
    .await;
    let (_, metrics) = integration::http_get(&config.addr, "/metrics")
        .await
        .unwrap();
    let samples = integration::parse_prometheus(&metrics).unwrap();
    assert_eq!(
        integration::sample(&samples, "drainer_upstream_reconnects_total", &[]),
        Some(0.0),
        "the stream kept its place\n{}",
        drainer.stderr()
    );
}
