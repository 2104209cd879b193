//! Benchmarks, each against a baseline measured in the same run.
//!
//! `bench decode`: writes a workload into a real MariaDB server, then decodes the binlog
//! files it produced twice: with pump-reader (binlog file → transactions with typed cells)
//! and with MariaDB's own decoder, `mariadb-binlog --base64-output=decode-rows -v` (binlog →
//! pseudo-SQL for every row),
//! and reports rows and row events per CPU-second of one core, and the ratio.
//!
//! ```text
//! cargo run --release -p integration --bin bench -- decode --rows 1000000 --json decode.json
//! ```

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};
use integration::MariaDb;
use pump_reader::{Change, FileReader, TxnEvent};

#[derive(Parser)]
#[command(
    name = "bench",
    about = "drainer benchmarks, each with a same-run baseline"
)]
struct Cli {
    #[command(subcommand)]
    command: Bench,
}

#[derive(Subcommand)]
enum Bench {
    /// Binlog file decoding: pump-reader against mariadb-binlog -v.
    Decode {
        /// Rows inserted (in transactions of 1,000); a tenth of them are then updated.
        #[arg(long, default_value_t = 1_000_000)]
        rows: u64,
        /// Also write the results as JSON here.
        #[arg(long)]
        json: Option<PathBuf>,
    },
}

fn main() {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let result = match cli.command {
        Bench::Decode { rows, json } => runtime.block_on(decode(rows, json.as_deref())),
    };
    if let Err(e) = result {
        eprintln!("bench: {e}");
        std::process::exit(1);
    }
}

/// CPU seconds (user + system) of this process, or of its finished children.
fn cpu_seconds(who: libc::c_int) -> f64 {
    // SAFETY: getrusage writes into the struct we pass and has no other effect.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::getrusage(who, &mut usage);
        usage
    };
    let t = |tv: libc::timeval| tv.tv_sec as f64 + tv.tv_usec as f64 / 1e6;
    t(usage.ru_utime) + t(usage.ru_stime)
}

struct Measured {
    name: &'static str,
    rows: u64,
    row_events: u64,
    wall: Duration,
    cpu: f64,
}

impl Measured {
    fn rows_per_cpu_second(&self) -> f64 {
        self.rows as f64 / self.cpu
    }
    fn events_per_cpu_second(&self) -> f64 {
        self.row_events as f64 / self.cpu
    }
}

async fn decode(rows: u64, json: Option<&Path>) -> Result<(), Box<dyn std::error::Error>> {
    eprintln!("starting MariaDB and writing {rows} rows …");
    let server = MariaDb::builder()
        .arg("--innodb-flush-log-at-trx-commit=2")
        .arg("--sync-binlog=0")
        .start()
        .await?;
    server
        .exec(&[
            "CREATE DATABASE bench",
            "CREATE TABLE bench.t (
                id BIGINT PRIMARY KEY, k INT NOT NULL, name VARCHAR(64), amount DECIMAL(12,2),
                ratio DOUBLE, created DATETIME(6), flag TINYINT UNSIGNED, note TEXT
            )",
            "FLUSH BINARY LOGS",
        ])
        .await?;
    let first_file: String = server
        .query::<(String, u64)>("SHOW BINARY LOGS")
        .await?
        .pop()
        .map(|(f, _)| f)
        .ok_or("no binlog")?;
    let mut statements = vec!["USE bench".to_owned()];
    for chunk in 0..rows.div_ceil(1000) {
        let base = chunk * 1000;
        let n = (rows - base).min(1000);
        statements.push(format!(
            "INSERT INTO t SELECT {base} + seq, seq * 7, CONCAT('name-', {base} + seq), seq / 100, seq / 3, \
             '2024-05-01 12:34:56.123456', seq % 256, IF(seq % 5 = 0, REPEAT('n', 40), NULL) FROM seq_1_to_{n}"
        ));
    }
    for chunk in 0..(rows / 10).div_ceil(1000) {
        let (a, b) = (chunk * 1000 + 1, (chunk + 1) * 1000);
        statements.push(format!(
            "UPDATE t SET k = k + 1, name = CONCAT(name, '!') WHERE id BETWEEN {a} AND {b}"
        ));
    }
    statements.push("FLUSH BINARY LOGS".into());
    let refs: Vec<&str> = statements.iter().map(String::as_str).collect();
    server.exec(&refs).await?;
    let files: Vec<PathBuf> = server
        .query::<(String, u64)>("SHOW BINARY LOGS")
        .await?
        .into_iter()
        .map(|(f, _)| f)
        .filter(|f| *f >= first_file)
        .map(|f| server.data_dir().join(f))
        .collect();
    let files = &files[..files.len() - 1]; // the last one is the new, empty file
    let bytes: u64 = files
        .iter()
        .map(|f| std::fs::metadata(f).map(|m| m.len()).unwrap_or(0))
        .sum();
    eprintln!(
        "decoding {} binlog file(s), {:.1} MiB",
        files.len(),
        bytes as f64 / (1 << 20) as f64
    );

    let ours = measure_pump_reader(files)?;
    let theirs = measure_mariadb_binlog(files)?;
    if ours.rows != theirs.rows {
        return Err(format!(
            "row counts differ: pump-reader {} vs mariadb-binlog {}",
            ours.rows, theirs.rows
        )
        .into());
    }

    println!(
        "binlog decoding, {} rows ({} inserted, {} updated), {:.1} MiB",
        ours.rows,
        rows,
        rows / 10,
        bytes as f64 / (1 << 20) as f64
    );
    println!(
        "{:<16} {:>12} {:>10} {:>10} {:>16} {:>18}",
        "decoder", "row events", "wall s", "cpu s", "rows/cpu-s", "row events/cpu-s"
    );
    for m in [&ours, &theirs] {
        println!(
            "{:<16} {:>12} {:>10.2} {:>10.2} {:>16.0} {:>18.0}",
            m.name,
            m.row_events,
            m.wall.as_secs_f64(),
            m.cpu,
            m.rows_per_cpu_second(),
            m.events_per_cpu_second()
        );
    }
    let ratio = ours.rows_per_cpu_second() / theirs.rows_per_cpu_second();
    println!("ratio pump-reader / mariadb-binlog (rows per CPU-second): {ratio:.2}");
    if let Some(path) = json {
        let entry = |m: &Measured| {
            format!(
                r#"{{"decoder":"{}","rows":{},"row_events":{},"wall_s":{:.3},"cpu_s":{:.3},"rows_per_cpu_s":{:.0},"row_events_per_cpu_s":{:.0}}}"#,
                m.name,
                m.rows,
                m.row_events,
                m.wall.as_secs_f64(),
                m.cpu,
                m.rows_per_cpu_second(),
                m.events_per_cpu_second()
            )
        };
        let text = format!(
            r#"{{"bench":"decode","binlog_bytes":{bytes},"results":[{},{}],"ratio_rows_per_cpu_s":{ratio:.3}}}"#,
            entry(&ours),
            entry(&theirs)
        );
        std::fs::write(path, text + "\n")?;
    }
    Ok(())
}

fn measure_pump_reader(files: &[PathBuf]) -> Result<Measured, Box<dyn std::error::Error>> {
    let (cpu0, wall0) = (cpu_seconds(libc::RUSAGE_SELF), Instant::now());
    let (mut rows, mut row_events) = (0u64, 0u64);
    for file in files {
        let mut reader = FileReader::open(file)?;
        while let Some(event) = reader.next_event()? {
            if let TxnEvent::Change(Change::Rows(r)) = event {
                row_events += 1;
                rows += r.rows.len() as u64;
            }
        }
    }
    Ok(Measured {
        name: "pump-reader",
        rows,
        row_events,
        wall: wall0.elapsed(),
        cpu: cpu_seconds(libc::RUSAGE_SELF) - cpu0,
    })
}

fn measure_mariadb_binlog(files: &[PathBuf]) -> Result<Measured, Box<dyn std::error::Error>> {
    let (cpu0, wall0) = (cpu_seconds(libc::RUSAGE_CHILDREN), Instant::now());
    let mut child = Command::new("mariadb-binlog")
        .arg("--no-defaults")
        .arg("--base64-output=decode-rows")
        .arg("-v")
        .args(files)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()?;
    // Count what it decoded as it streams: one "### INSERT|UPDATE|DELETE" line per row, one
    // "Write_rows|Update_rows|Delete_rows" header line per row event.
    let (mut rows, mut row_events) = (0u64, 0u64);
    let stdout = child.stdout.take().ok_or("no stdout")?;
    for line in std::io::BufRead::split(std::io::BufReader::with_capacity(1 << 20, stdout), b'\n') {
        let line = line?;
        if line.starts_with(b"### INSERT")
            || line.starts_with(b"### UPDATE")
            || line.starts_with(b"### DELETE")
        {
            rows += 1;
        } else if [
            &b"\tWrite_rows: "[..],
            b"\tUpdate_rows: ",
            b"\tDelete_rows: ",
        ]
        .iter()
        .any(|m| line.windows(m.len()).any(|w| w == *m))
        {
            row_events += 1;
        }
    }
    let status = child.wait()?;
    let (wall, cpu) = (wall0.elapsed(), cpu_seconds(libc::RUSAGE_CHILDREN) - cpu0);
    if !status.success() {
        return Err(format!("mariadb-binlog failed: {status}").into());
    }
    Ok(Measured {
        name: "mariadb-binlog -v",
        rows,
        row_events,
        wall,
        cpu,
    })
}
