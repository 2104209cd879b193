//! `bench seed`: `drainer seed` of one sysbench-shaped table into an empty server against
//! `mariadb-dump --single-transaction | mariadb` of the same table in the same run (the
//! floor a DBA reaches for), then `drainer seed` again while writers keep changing the
//! upstream. Rows per second of each, and the drainer's CPU. Every target has the same
//! durability (`innodb_flush_log_at_trx_commit = 1`, `sync_binlog = 1`, binlog on).

use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use integration::{DrainerCommand, MariaDb};
use mysql_async::prelude::Queryable;

use super::{cpu_seconds, TARGET_ARGS};

async fn target() -> Result<MariaDb, integration::HarnessError> {
    let mut builder = MariaDb::builder();
    for arg in TARGET_ARGS {
        builder = builder.arg(arg);
    }
    builder.start().await
}

/// Updates random rows of the table on `up` until `stop`, counting them in `done`.
async fn writer(up: &MariaDb, rows: u64, seed: u64, stop: Arc<AtomicBool>, done: Arc<AtomicU64>) {
    let Ok(mut conn) = up.conn().await else {
        return;
    };
    let mut dice = integration::Dice::new(seed);
    while !stop.load(Ordering::Relaxed) {
        let id = dice.roll(rows) + 1;
        let sql = format!("UPDATE sbtest.sbtest1 SET k = k + 1 WHERE id = {id}");
        if conn.query_drop(sql).await.is_err() {
            return;
        }
        done.fetch_add(1, Ordering::Relaxed);
    }
}

/// `mariadb-dump --single-transaction | mariadb` of the table from `up` into `down`: its
/// wall time and the two clients' CPU seconds.
async fn dump(
    up: &MariaDb,
    down: &MariaDb,
    rows: u64,
) -> Result<(Duration, f64), Box<dyn std::error::Error>> {
    down.exec(&["CREATE DATABASE sbtest"]).await?;
    let pipeline = format!(
        "set -o pipefail; mariadb-dump --single-transaction -h {h} -P {} -u root sbtest sbtest1 \
         | mariadb -h {h} -P {} -u root sbtest",
        up.port(),
        down.port(),
        h = up.host(),
    );
    let (cpu0, started) = (cpu_seconds(libc::RUSAGE_CHILDREN), Instant::now());
    let shell = pipeline.clone();
    let status = tokio::task::spawn_blocking(move || {
        std::process::Command::new("bash")
            .arg("-c")
            .arg(&shell)
            .stdout(Stdio::null())
            .status()
    })
    .await??;
    let (wall, cpu) = (started.elapsed(), cpu_seconds(libc::RUSAGE_CHILDREN) - cpu0);
    if !status.success() {
        return Err(format!("{pipeline}: {status}").into());
    }
    let copied: Vec<u64> = down.query("SELECT COUNT(*) FROM sbtest.sbtest1").await?;
    if copied != [rows] {
        return Err(format!("mariadb-dump | mariadb copied {copied:?} rows").into());
    }
    Ok((wall, cpu))
}

/// One `drainer seed` of `up` into `down`: its wall time and CPU seconds.
async fn drainer_seed(
    up: &MariaDb,
    down: &MariaDb,
    dir: &std::path::Path,
    chunk_rows: Option<u64>,
) -> Result<(Duration, f64, String), Box<dyn std::error::Error>> {
    let config = integration::marked_config_for(up, down, dir)?;
    let (cpu0, started) = (cpu_seconds(libc::RUSAGE_CHILDREN), Instant::now());
    let mut command = DrainerCommand::new()?.arg("seed");
    if let Some(n) = chunk_rows {
        command = command.arg("--chunk-rows").arg(n.to_string());
    }
    let out = command
        .config(&config)?
        .output(Duration::from_secs(3600))
        .await?;
    let (wall, cpu) = (started.elapsed(), cpu_seconds(libc::RUSAGE_CHILDREN) - cpu0);
    if out.code() != Some(0) {
        return Err(format!("seed exited {:?}: {}{}", out.code(), out.stdout, out.stderr).into());
    }
    Ok((wall, cpu, out.stdout))
}

/// A copy's wall time, CPU seconds and output.
type Copied = Result<(Duration, f64, String), Box<dyn std::error::Error>>;
type Copying<'a> = std::pin::Pin<Box<dyn std::future::Future<Output = Copied> + 'a>>;

pub(crate) async fn seed(
    rows: u64,
    chunk_rows: Option<u64>,
) -> Result<(), Box<dyn std::error::Error>> {
    eprintln!("seed: starting five servers, {rows} rows upstream …");
    let (up, dumped, seeded, dumped_live, seeded_live) =
        tokio::join!(MariaDb::start(), target(), target(), target(), target());
    let (up, dumped, seeded, dumped_live, seeded_live) =
        (up?, dumped?, seeded?, dumped_live?, seeded_live?);
    up.exec(&[
        "CREATE DATABASE sbtest",
        "CREATE TABLE sbtest.sbtest1 (id INT NOT NULL PRIMARY KEY, k INT NOT NULL DEFAULT 0, \
         c CHAR(120) NOT NULL DEFAULT '', pad CHAR(60) NOT NULL DEFAULT '', KEY k_1 (k))",
        &format!(
            "INSERT INTO sbtest.sbtest1 SELECT seq, seq * 7 % {rows}, \
             LEFT(REPEAT(MD5(seq), 4), 120), LEFT(REPEAT(SHA1(seq), 2), 60) \
             FROM sbtest.seq_1_to_{rows}"
        ),
    ])
    .await?;

    eprintln!("seed: mariadb-dump --single-transaction | mariadb …");
    let (dump_wall, dump_cpu) = dump(&up, &dumped, rows).await?;

    eprintln!("seed: drainer seed, nothing writing …");
    let dir = tempfile::TempDir::new()?;
    let (seed_wall, seed_cpu, shown) =
        drainer_seed(&up, &seeded, &dir.path().join("idle"), chunk_rows).await?;
    let copied: Vec<u64> = seeded.query("SELECT COUNT(*) FROM sbtest.sbtest1").await?;
    if copied != [rows] {
        return Err(format!("drainer seed copied {copied:?} rows: {shown}").into());
    }

    // The same two copies again while two writers update the upstream as fast as they
    // can.
    let under_writes = |copy| async {
        let stop = Arc::new(AtomicBool::new(false));
        let updates = Arc::new(AtomicU64::new(0));
        let copy = async {
            let result = copy.await;
            stop.store(true, Ordering::Relaxed);
            result
        };
        let (result, (), ()) = tokio::join!(
            copy,
            writer(&up, rows, 11, Arc::clone(&stop), Arc::clone(&updates)),
            writer(&up, rows, 13, Arc::clone(&stop), Arc::clone(&updates))
        );
        (result, updates.load(Ordering::Relaxed))
    };
    eprintln!("seed: mariadb-dump | mariadb, two writers updating the upstream …");
    let (dumped_live, live_dump_updates) = under_writes(Box::pin(async {
        dump(&up, &dumped_live, rows)
            .await
            .map(|(wall, cpu)| (wall, cpu, String::new()))
    }) as Copying<'_>)
    .await;
    let (live_dump_wall, live_dump_cpu, _) = dumped_live?;
    eprintln!("seed: drainer seed, two writers updating the upstream …");
    let (live, updates) = under_writes(Box::pin(drainer_seed(
        &up,
        &seeded_live,
        &dir.path().join("live"),
        chunk_rows,
    )) as Copying<'_>)
    .await;
    let (live_wall, live_cpu, _) = live?;

    let rate = |d: Duration| rows as f64 / d.as_secs_f64();
    println!(
        "copy of one table of {rows} rows (sysbench layout) into an empty server; targets \
         with {}",
        TARGET_ARGS.join(" ")
    );
    println!(
        "{:<44} {:>9} {:>12} {:>14}",
        "", "seconds", "rows/s", "client cpu s"
    );
    println!(
        "{:<44} {:>9.2} {:>12.0} {:>14.2}",
        "mariadb-dump --single-transaction | mariadb",
        dump_wall.as_secs_f64(),
        rate(dump_wall),
        dump_cpu
    );
    println!(
        "{:<44} {:>9.2} {:>12.0} {:>14.2}",
        "drainer seed (nothing writing)",
        seed_wall.as_secs_f64(),
        rate(seed_wall),
        seed_cpu
    );
    println!(
        "{:<44} {:>9.2} {:>12.0} {:>14.2}",
        format!("dump | mariadb ({live_dump_updates} updates meanwhile)"),
        live_dump_wall.as_secs_f64(),
        rate(live_dump_wall),
        live_dump_cpu
    );
    println!(
        "{:<44} {:>9.2} {:>12.0} {:>14.2}",
        format!("drainer seed ({updates} updates meanwhile)"),
        live_wall.as_secs_f64(),
        rate(live_wall),
        live_cpu
    );
    println!(
        "ratio seed / dump (rows/s): {:.2} idle, {:.2} while the upstream writes \
         ({:.0} and {:.0} updates/s); drainer CPU per row {:.2} µs",
        rate(seed_wall) / rate(dump_wall),
        rate(live_wall) / rate(live_dump_wall),
        live_dump_updates as f64 / live_dump_wall.as_secs_f64(),
        updates as f64 / live_wall.as_secs_f64(),
        seed_cpu * 1e6 / rows as f64
    );
    Ok(())
}
