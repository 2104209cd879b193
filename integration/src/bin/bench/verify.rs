//! `bench verify`: `drainer verify` of one table against `CHECKSUM TABLE` of the same
//! table on the upstream, in the same run: rows per second of each, and the longest time
//! a verify chunk held its share locks. The drainer replicates the table's direction
//! while verify runs (it answers the requests); nothing writes meanwhile.

use std::time::{Duration, Instant};

use integration::{DrainerCommand, MariaDb};

pub(crate) async fn verify(rows: u64) -> Result<(), Box<dyn std::error::Error>> {
    eprintln!("verify: starting two servers, {rows} rows on each …");
    let (up, down) = tokio::join!(MariaDb::start(), MariaDb::start());
    let (up, down) = (up?, down?);
    let setup = [
        "CREATE DATABASE sbtest".to_owned(),
        "CREATE TABLE sbtest.sbtest1 (id INT NOT NULL PRIMARY KEY, k INT NOT NULL DEFAULT 0, \
         c CHAR(120) NOT NULL DEFAULT '', pad CHAR(60) NOT NULL DEFAULT '', KEY k_1 (k))"
            .to_owned(),
        format!(
            "INSERT INTO sbtest.sbtest1 SELECT seq, seq * 7 % {rows}, \
             LEFT(REPEAT(MD5(seq), 4), 120), LEFT(REPEAT(SHA1(seq), 2), 60) \
             FROM sbtest.seq_1_to_{rows}"
        ),
        "CREATE DATABASE IF NOT EXISTS retl".to_owned(),
        format!(
            "GRANT CREATE, INSERT, SELECT ON retl.* TO '{}'@'127.0.0.1'",
            integration::PUMP_USER
        ),
    ];
    let setup: Vec<&str> = setup.iter().map(String::as_str).collect();
    tokio::try_join!(up.exec(&setup), down.exec(&setup))?;
    let dir = tempfile::TempDir::new()?;
    let config = integration::marked_config_for(&up, &down, dir.path())?;
    let _drainer = integration::replicating(&config, Duration::from_secs(120)).await?;

    eprintln!("verify: CHECKSUM TABLE on the upstream …");
    let started = Instant::now();
    let _: Vec<(String, Option<u64>)> = up.query("CHECKSUM TABLE sbtest.sbtest1").await?;
    let checksum = started.elapsed();

    eprintln!("verify: drainer verify (chunks sized to 500 ms) …");
    let started = Instant::now();
    let out = DrainerCommand::new()?
        .arg("verify")
        .arg("--tables")
        .arg("sbtest.sbtest1")
        .config(&config)?
        .output(Duration::from_secs(3600))
        .await?;
    let verified = started.elapsed();
    if out.code() != Some(0) {
        return Err(format!(
            "verify exited {:?}: {}{}",
            out.code(),
            out.stdout,
            out.stderr
        )
        .into());
    }
    let chunks = out
        .stdout
        .split(" rows in ")
        .nth(1)
        .and_then(|s| s.split(' ').next())
        .unwrap_or("?")
        .to_owned();
    let lock = out
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("longest upstream lock held by a chunk: "))
        .unwrap_or("?")
        .to_owned();
    let rate = |d: Duration| rows as f64 / d.as_secs_f64();
    println!("verify of one table of {rows} rows (sysbench layout), drainer replicating it");
    println!(
        "{:<28} {:>9} {:>12} {:>8}",
        "", "seconds", "rows/s", "chunks"
    );
    println!(
        "{:<28} {:>9.2} {:>12.0} {:>8}",
        "CHECKSUM TABLE (upstream)",
        checksum.as_secs_f64(),
        rate(checksum),
        "-"
    );
    println!(
        "{:<28} {:>9.2} {:>12.0} {:>8}",
        "drainer verify",
        verified.as_secs_f64(),
        rate(verified),
        chunks
    );
    println!(
        "ratio verify / CHECKSUM TABLE (rows/s): {:.2}; longest lock held by a chunk: {lock}",
        rate(verified) / rate(checksum)
    );
    Ok(())
}
