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
//!
//! `bench replication`: for each sysbench workload (`oltp_insert`, `oltp_write_only`,
//! `oltp_update_index` by default) on fresh servers, both appliers first follow the
//! upstream through `sysbench prepare` and stop; the workload then runs on the upstream
//! alone for `--seconds`; then each applier in turn (never both at once: the machine has
//! two cores) catches up from that same position: a drainer (loopback on) and a native
//! MariaDB replica with `slave_parallel_threads` = `--workers`, both targets with the same
//! durability settings (`--native-log-slave-updates`: the native replica also binlogs
//! what it applies, as the drainer's target must). Reports transactions and rows per
//! second of catch-up, the drainer's CPU seconds and peak RSS, the statements the target
//! prepared meanwhile, each target's commits per binlog group commit and its server's CPU
//! per transaction (drainer's target / native replica), and the ratio drainer / native:
//!
//! ```text
//! cargo build --release -p drainer
//! cargo run --release -p integration --bin bench -- replication --json replication.json
//! ```
//!
//! `bench steady`: replication lag at a fixed upstream rate (sysbench `--rate`), per
//! applier in turn (native replica, then drainer) on fresh servers: a heartbeat row is
//! updated upstream every 100 ms, the target polled every 5 ms; reports each applier's
//! lag p50 / p99 / max from upstream commit to visible, and the p99 ratio:
//!
//! ```text
//! cargo run --release -p integration --bin bench -- steady --seconds 30 --rate 500
//! ```
//!
//! `bench relay`: one sysbench workload caught up by a drainer reading the upstream
//! directly and by one reading it through `drainer relay` (mutual TLS, zstd), from the same
//! position, each alone; reports both rates and their ratio, the drainers' CPU per
//! transaction, the bytes that crossed the link per row and the compression ratio:
//!
//! ```text
//! cargo build --release -p drainer
//! cargo run --release -p integration --bin bench -- relay --seconds 10
//! ```
//!
//! `bench big-txn`: one upstream transaction of `--rows` rows (`--change insert`, `update`
//! or `delete`: inserted into an empty table, or every row of a table that holds them on
//! every server updated or deleted), replicated from the same
//! starting position by a drainer (loopback on: the mark is part of what is measured) and
//! by a native MariaDB replica (`CHANGE MASTER TO … MASTER_USE_GTID = slave_pos`), both
//! targets with the same durability settings; reports each one's wall time and rows per
//! second, the drainer's CPU seconds and peak RSS, and the ratio. The drainer binary is
//! the release one beside this program:
//!
//! ```text
//! cargo build --release -p drainer
//! cargo run --release -p integration --bin bench -- big-txn --rows 1000000
//! ```

#[path = "bench/relay.rs"]
mod relay;
#[path = "bench/seed.rs"]
mod seed;
#[path = "bench/verify.rs"]
mod verify;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use clap::{Args, Parser, Subcommand};
use integration::{config_for, MariaDb, PUMP_PASSWORD, PUMP_USER};
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
    /// Catch-up after sysbench workloads: drainer against a native MariaDB replica.
    Replication {
        /// sysbench workloads, each on fresh servers.
        #[arg(
            long,
            value_delimiter = ',',
            default_value = "oltp_insert,oltp_write_only,oltp_update_index"
        )]
        workloads: Vec<String>,
        /// How long each workload runs upstream.
        #[arg(long, default_value_t = 20)]
        seconds: u64,
        #[command(flatten)]
        shape: Workload,
        /// The loop markers to measure, each with every workload, in this one run:
        /// `table` (a mark-table row per transaction), `comment` (a comment per
        /// statement, read from the binlog's annotations).
        #[arg(long, value_delimiter = ',', default_value = "table")]
        loop_markers: Vec<String>,
        /// Also write the results as JSON here.
        #[arg(long)]
        json: Option<PathBuf>,
    },
    /// Replication lag at a fixed upstream rate: drainer against a native MariaDB replica.
    Steady {
        /// The sysbench workload, run at `--rate` transactions per second.
        #[arg(long, default_value = "oltp_write_only")]
        workload: String,
        #[arg(long, default_value_t = 500)]
        rate: u32,
        /// How long the workload runs upstream.
        #[arg(long, default_value_t = 30)]
        seconds: u64,
        #[command(flatten)]
        shape: Workload,
        /// Also write the results as JSON here.
        #[arg(long)]
        json: Option<PathBuf>,
    },
    /// One sysbench workload replicated directly and through a relay (TLS, zstd).
    Relay {
        #[arg(long, default_value = "oltp_write_only")]
        workload: String,
        /// How long the workload runs upstream.
        #[arg(long, default_value_t = 20)]
        seconds: u64,
        #[command(flatten)]
        shape: Workload,
    },
    /// `drainer verify` of one table against `CHECKSUM TABLE` of it, in the same run.
    Verify {
        /// Rows in the table.
        #[arg(long, default_value_t = 1_000_000)]
        rows: u64,
    },
    /// `drainer seed` of one table into an empty server against `mariadb-dump | mariadb`
    /// of it, in the same run; then again while the upstream takes writes.
    Seed {
        /// Rows in the table.
        #[arg(long, default_value_t = 2_000_000)]
        rows: u64,
        /// `drainer seed --chunk-rows` (default: the seed's own, chunks of about 16 MiB).
        #[arg(long)]
        chunk_rows: Option<u64>,
    },
    /// One large transaction: drainer against a native MariaDB replica.
    BigTxn {
        /// Rows in the transaction.
        #[arg(long, default_value_t = 1_000_000)]
        rows: u64,
        /// What the transaction does to the rows.
        #[arg(long, value_enum, default_value_t = BigChange::Insert)]
        change: BigChange,
        /// The native replica also writes what it applies to its binlog
        /// (`log_slave_updates`), as the drainer's target must.
        #[arg(long)]
        native_log_slave_updates: bool,
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
        Bench::Verify { rows } => runtime.block_on(verify::verify(rows)),
        Bench::Seed { rows, chunk_rows } => runtime.block_on(seed::seed(rows, chunk_rows)),
        Bench::BigTxn {
            rows,
            change,
            native_log_slave_updates,
            json,
        } => runtime.block_on(big_txn(
            rows,
            change,
            native_log_slave_updates,
            json.as_deref(),
        )),
        Bench::Steady {
            workload,
            rate,
            seconds,
            shape,
            json,
        } => runtime.block_on(steady(
            &workload,
            rate,
            Workload { seconds, ..shape },
            json.as_deref(),
        )),
        Bench::Relay {
            workload,
            seconds,
            shape,
        } => runtime.block_on(relay::relay(&workload, Workload { seconds, ..shape })),
        Bench::Replication {
            workloads,
            seconds,
            shape,
            loop_markers,
            json,
        } => runtime.block_on(async {
            for marker in &loop_markers {
                let comment_marker = match marker.as_str() {
                    "table" => false,
                    "comment" => true,
                    other => {
                        return Err(
                            format!("--loop-markers: {other:?} is not table or comment").into()
                        )
                    }
                };
                replication(
                    Workload {
                        seconds,
                        comment_marker,
                        ..shape
                    },
                    &workloads,
                    json.as_deref(),
                )
                .await?;
            }
            Ok(())
        }),
    };
    if let Err(e) = result {
        eprintln!("bench: {e}");
        std::process::exit(1);
    }
}

/// CPU seconds (user + system) of this process, or of its finished children.
pub(crate) fn cpu_seconds(who: libc::c_int) -> f64 {
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

/// The durability settings of both targets in `big-txn` (the same for both).
pub(crate) const TARGET_ARGS: [&str; 2] = ["--innodb-flush-log-at-trx-commit=1", "--sync-binlog=1"];

/// CPU seconds (user + system) a running process has used, from `/proc/<pid>/stat`.
fn process_cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The fields after the command name (which may hold spaces), from field 3 on.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let (utime, stime): (f64, f64) = (fields.get(11)?.parse().ok()?, fields.get(12)?.parse().ok()?);
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    Some((utime + stime) / ticks)
}

/// Makes `replica` a native MariaDB replica of `source`, from its `gtid_slave_pos`, and
/// starts it.
async fn replicate_natively(
    replica: &MariaDb,
    source: &MariaDb,
) -> Result<(), Box<dyn std::error::Error>> {
    replica
        .exec(&[
            &format!(
                "CHANGE MASTER TO MASTER_HOST = '{}', MASTER_PORT = {}, MASTER_USER = '{PUMP_USER}', \
                 MASTER_PASSWORD = '{PUMP_PASSWORD}', MASTER_USE_GTID = slave_pos",
                source.host(),
                source.port()
            ),
            "START SLAVE",
        ])
        .await?;
    Ok(())
}

/// Polls until `server` holds `rows` rows in `bench.big`.
/// What the one large transaction of `bench big-txn` does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum BigChange {
    /// Inserts the rows into the empty table.
    Insert,
    /// Updates every row of the table, which holds the rows on all three servers.
    Update,
    /// Deletes every row of the table, which holds the rows on all three servers.
    Delete,
}

/// Waits until `server` shows the transaction applied. It commits as one transaction on
/// both appliers, so its last row tells (a point lookup: polling does not load the target).
async fn wait_for_rows(
    server: &MariaDb,
    change: BigChange,
    rows: u64,
) -> Result<(), Box<dyn std::error::Error>> {
    let deadline = Instant::now() + Duration::from_secs(3600);
    let (check, done) = match change {
        BigChange::Insert => (
            format!("SELECT COUNT(*) FROM bench.big WHERE id = {rows}"),
            1,
        ),
        BigChange::Update => (
            format!("SELECT COUNT(*) FROM bench.big WHERE id = {rows} AND k = id * 7 + 1"),
            1,
        ),
        BigChange::Delete => (
            format!("SELECT COUNT(*) FROM bench.big WHERE id = {rows}"),
            0,
        ),
    };
    loop {
        let n: Vec<u64> = server.query(&check).await?;
        if n.first() == Some(&done) {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!("{change:?} of {rows} rows not applied after an hour").into());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn big_txn(
    rows: u64,
    change: BigChange,
    log_slave_updates: bool,
    json: Option<&Path>,
) -> Result<(), Box<dyn std::error::Error>> {
    eprintln!("starting three MariaDB servers (upstream, drainer target, native replica) …");
    let start = |args: &[&str]| {
        let mut builder = MariaDb::builder();
        for a in args {
            builder = builder.arg(*a);
        }
        builder.start()
    };
    let mut native_args = TARGET_ARGS.to_vec();
    if log_slave_updates {
        native_args.push("--log-slave-updates");
    }
    let (up, drained, native) = tokio::join!(start(&[]), start(&TARGET_ARGS), start(&native_args));
    let (up, drained, native) = (up?, drained?, native?);
    let schema = [
        "CREATE DATABASE bench",
        "CREATE TABLE bench.big (id BIGINT PRIMARY KEY, k INT NOT NULL, name VARCHAR(64), \
         amount DECIMAL(12,2), created DATETIME(6))",
    ];
    let fill = format!(
        "INSERT INTO bench.big SELECT seq, seq * 7, CONCAT('name-', seq), seq / 100, \
         '2024-05-01 12:34:56.123456' FROM bench.seq_1_to_{rows}"
    );
    for server in [&up, &drained, &native] {
        server.exec(&schema).await?;
        if change != BigChange::Insert {
            // The same rows everywhere before the measured transaction.
            server.exec(&[fill.as_str()]).await?;
        }
    }
    let from: Vec<String> = up.query("SELECT @@global.gtid_binlog_pos").await?;
    let from = from.into_iter().next().ok_or("no GTID position")?;
    let what = format!("{change:?}").to_lowercase();
    eprintln!("writing one transaction: {what} of {rows} rows …");
    let statement = match change {
        BigChange::Insert => fill.clone(),
        BigChange::Update => "UPDATE bench.big SET k = k + 1, name = CONCAT(name, '+')".into(),
        BigChange::Delete => "DELETE FROM bench.big".into(),
    };
    up.exec(&[statement.as_str()]).await?;

    eprintln!("native replica …");
    let native_started = Instant::now();
    native
        .exec(&[&format!("SET GLOBAL gtid_slave_pos = '{from}'")])
        .await?;
    replicate_natively(&native, &up).await?;
    wait_for_rows(&native, change, rows).await?;
    let native_wall = native_started.elapsed();

    eprintln!("drainer …");
    let dir = tempfile::tempdir()?;
    let mut config = config_for(&up, &drained, dir.path())?;
    config.pump.initial_gtid = from.clone();
    config.syncer.loopback_control = true;
    config.syncer.channel_id = 1;
    config.syncer.safe_mode_after_start_s = 0;
    let drainer_started = Instant::now();
    let drainer = integration::replicating(&config, Duration::from_secs(120)).await?;
    wait_for_rows(&drained, change, rows).await?;
    let drainer_wall = drainer_started.elapsed();
    let pid = drainer.pid().ok_or("the drainer exited")?;
    let cpu = process_cpu_seconds(pid).ok_or("no CPU figures in /proc")?;
    let peak = drainer.peak_rss().ok_or("no VmHWM in /proc")?;
    let mib = peak as f64 / (1 << 20) as f64;

    let per_s = |wall: Duration| rows as f64 / wall.as_secs_f64();
    println!(
        "one transaction: {what} of {rows} rows; targets with {}; native replica \
         log_slave_updates = {}",
        TARGET_ARGS.join(" "),
        if log_slave_updates { "ON" } else { "OFF" }
    );
    println!(
        "{:<16} {:>10} {:>12} {:>10} {:>14}",
        "applier", "wall s", "rows/s", "cpu s", "peak RSS MiB"
    );
    println!(
        "{:<16} {:>10.2} {:>12.0} {:>10.2} {:>14.1}",
        "drainer",
        drainer_wall.as_secs_f64(),
        per_s(drainer_wall),
        cpu,
        mib
    );
    println!(
        "{:<16} {:>10.2} {:>12.0} {:>10} {:>14}",
        "native replica",
        native_wall.as_secs_f64(),
        per_s(native_wall),
        "-",
        "-"
    );
    let ratio = per_s(drainer_wall) / per_s(native_wall);
    println!("ratio drainer / native (rows per second): {ratio:.2}");
    if let Some(path) = json {
        let text = format!(
            r#"{{"bench":"big-txn","change":"{what}","rows":{rows},"native_log_slave_updates":{log_slave_updates},"drainer":{{"wall_s":{:.3},"rows_per_s":{:.0},"cpu_s":{cpu:.3},"peak_rss_bytes":{peak}}},"native":{{"wall_s":{:.3},"rows_per_s":{:.0}}},"ratio_rows_per_s":{ratio:.3}}}"#,
            drainer_wall.as_secs_f64(),
            per_s(drainer_wall),
            native_wall.as_secs_f64(),
            per_s(native_wall)
        );
        std::fs::write(path, text + "\n")?;
    }
    Ok(())
}

/// The shape of a `bench replication` or `bench steady` run (the same options for both;
/// `seconds` is each subcommand's own, for their defaults differ).
#[derive(Debug, Clone, Copy, Args)]
struct Workload {
    /// Tables, and rows per table, that sysbench prepares.
    #[arg(long, default_value_t = 4)]
    tables: u32,
    #[arg(long, default_value_t = 10_000)]
    table_size: u64,
    #[arg(skip)]
    seconds: u64,
    /// sysbench client threads.
    #[arg(long, default_value_t = 4)]
    threads: u32,
    /// The drainer's `worker-count` and the native replica's `slave_parallel_threads`.
    #[arg(long, default_value_t = 4)]
    workers: u32,
    /// The drainer's `txn-batch` (1: every upstream transaction its own downstream
    /// one, as the native replica applies them).
    #[arg(long, default_value_t = conf::DEFAULT_TXN_BATCH)]
    txn_batch: u32,
    /// The native replica also writes what it applies to its binlog (`log_slave_updates`),
    /// as the drainer's target must (its writes are a client's); off, the native replica
    /// skips the binlog and its fsync at every commit, as two-site MariaDB replication
    /// runs by default.
    #[arg(long)]
    native_log_slave_updates: bool,
    /// The drainer checks every row change for conflicts (`[syncer.conflict]`, policy
    /// `overwrite`): what detection costs when there are none.
    #[arg(long)]
    conflicts: bool,
    /// The drainer's `loop-marker = "comment"` (else `"table"`); set per round by
    /// `replication --loop-markers`.
    #[arg(skip)]
    comment_marker: bool,
}

impl Workload {
    /// The settings, for the line above a table.
    fn describe(&self) -> String {
        format!(
            "{} threads, {} tables x {} rows; native replica slave_parallel_threads = {} \
             log_slave_updates = {}, drainer worker-count = {} txn-batch = {}{}; targets with {}",
            self.threads,
            self.tables,
            self.table_size,
            self.workers,
            if self.native_log_slave_updates {
                "ON"
            } else {
                "OFF"
            },
            self.workers,
            self.txn_batch,
            match (self.conflicts, self.comment_marker) {
                (true, true) => " conflict detection on, loop-marker = comment",
                (true, false) => " conflict detection on",
                (false, true) => " loop-marker = comment",
                (false, false) => "",
            },
            TARGET_ARGS.join(" ")
        )
    }

    /// The settings as JSON members.
    fn json(&self) -> String {
        format!(
            r#""seconds":{},"threads":{},"tables":{},"table_size":{},"workers":{},"txn_batch":{},"native_log_slave_updates":{},"conflicts":{},"loop_marker":"{}""#,
            self.seconds,
            self.threads,
            self.tables,
            self.table_size,
            self.workers,
            self.txn_batch,
            self.native_log_slave_updates,
            self.conflicts,
            if self.comment_marker {
                "comment"
            } else {
                "table"
            }
        )
    }

    /// The native replica's options beyond the targets' shared ones.
    fn native_args(&self) -> Vec<String> {
        let mut args = vec![format!("--slave-parallel-threads={}", self.workers)];
        if self.native_log_slave_updates {
            args.push("--log-slave-updates".to_owned());
        }
        args
    }

    /// The drainer's configuration for `up` → `target` (loopback on, safe mode off).
    fn drainer_config(
        &self,
        up: &MariaDb,
        target: &MariaDb,
        dir: &Path,
    ) -> Result<conf::Config, Box<dyn std::error::Error>> {
        let mut config = integration::marked_config_for(up, target, dir)?;
        config.syncer.worker_count = self.workers;
        config.syncer.txn_batch = self.txn_batch;
        if self.comment_marker {
            config.syncer.loop_marker = conf::LoopMarker::Comment;
        }
        if self.conflicts {
            config.syncer.conflict = Some(conf::Conflict {
                policy: conf::ConflictPolicy::Overwrite,
                table: Vec::new(),
            });
        }
        Ok(config)
    }
}

/// One workload's catch-up figures.
struct CatchUp {
    workload: String,
    transactions: u64,
    rows: u64,
    drainer_wall: Duration,
    drainer_cpu: f64,
    drainer_peak: u64,
    native_wall: Duration,
    /// Transient failures the drainer retried (deadlocks between workers, mostly).
    retries: u64,
    /// Statements the target prepared during the drainer's catch-up (its sessions keep
    /// them cached: many more than its tables' shapes means the caches churn).
    prepared: u64,
    /// Commits per binlog group commit on each target during its catch-up (the server
    /// syncs its logs once per group).
    native_per_group: f64,
    drainer_per_group: f64,
    /// CPU seconds each target's server used during its catch-up.
    native_server_cpu: f64,
    drained_server_cpu: f64,
}

/// One of the server's global status counters (`Com_stmt_prepare`, `Binlog_commits` …).
async fn counter(server: &MariaDb, name: &str) -> Result<u64, Box<dyn std::error::Error>> {
    let n: Vec<u64> = server
        .query(&format!(
            "SELECT VARIABLE_VALUE FROM information_schema.GLOBAL_STATUS \
             WHERE VARIABLE_NAME = '{}'",
            name.to_uppercase()
        ))
        .await?;
    n.first()
        .copied()
        .ok_or_else(|| format!("no {name} in the server's status").into())
}

/// CPU seconds a running server has used.
fn server_cpu(server: &MariaDb) -> Result<f64, Box<dyn std::error::Error>> {
    server
        .pid()
        .and_then(process_cpu_seconds)
        .ok_or_else(|| "no CPU figures in /proc for a server".into())
}

/// A target's binlog commits and group commits (each group one sync of the binlog).
async fn commit_groups(server: &MariaDb) -> Result<(u64, u64), Box<dyn std::error::Error>> {
    Ok((
        counter(server, "Binlog_commits").await?,
        counter(server, "Binlog_group_commits").await?,
    ))
}

/// Commits per binlog group between two [`commit_groups`] readings.
fn per_group(before: (u64, u64), after: (u64, u64)) -> f64 {
    (after.0 - before.0) as f64 / (after.1 - before.1).max(1) as f64
}

/// Runs `sysbench <workload> <action>` against `server`, database `sbtest`.
fn sysbench(
    server: &MariaDb,
    workload: &str,
    action: &str,
    shape: Workload,
) -> Result<String, Box<dyn std::error::Error>> {
    sysbench_with((server.host(), server.port()), workload, action, shape, &[])
}

/// [`sysbench`] against `(host, port)`, with more options (`--rate=…`).
fn sysbench_with(
    (host, port): (&str, u16),
    workload: &str,
    action: &str,
    shape: Workload,
    extra: &[String],
) -> Result<String, Box<dyn std::error::Error>> {
    let output = Command::new("sysbench")
        .arg(workload)
        .args(extra)
        .args([
            "--db-driver=mysql",
            &format!("--mysql-host={host}"),
            &format!("--mysql-port={port}"),
            "--mysql-user=root",
            "--mysql-password=",
            "--mysql-db=sbtest",
            &format!("--tables={}", shape.tables),
            &format!("--table-size={}", shape.table_size),
            &format!("--threads={}", shape.threads),
            &format!("--time={}", shape.seconds),
            "--report-interval=0",
        ])
        .arg(action)
        .output()
        .map_err(|e| {
            format!("cannot run sysbench ({e}): install it with `apt-get install sysbench` (scripts/setup.sh does)")
        })?;
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    if !output.status.success() {
        return Err(format!(
            "sysbench {workload} {action} failed: {}\n{text}",
            String::from_utf8_lossy(&output.stderr)
        )
        .into());
    }
    Ok(text)
}

/// `@@gtid_binlog_pos` of a server with one GTID domain, and its sequence number.
async fn gtid_pos(server: &MariaDb) -> Result<(String, u64), Box<dyn std::error::Error>> {
    let pos: Vec<String> = server.query("SELECT @@global.gtid_binlog_pos").await?;
    let pos = pos.into_iter().next().unwrap_or_default();
    let seq = pos
        .rsplit('-')
        .next()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    Ok((pos, seq))
}

/// Polls until `probe` says yes (an hour at most).
async fn until<F, Fut>(what: &str, mut probe: F) -> Result<(), Box<dyn std::error::Error>>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<bool, Box<dyn std::error::Error>>>,
{
    let deadline = Instant::now() + Duration::from_secs(3600);
    while !probe().await? {
        if Instant::now() > deadline {
            return Err(format!("{what}: not after an hour").into());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}

/// Whether the drainer of `config` has applied everything up to GTID state `pos` (the
/// committed prefix: read and handed to the workers is not enough).
async fn drainer_at(config: &conf::Config, pos: &str) -> Result<bool, Box<dyn std::error::Error>> {
    let status = integration::drainer_status(config).await?;
    Ok(status["applied_position"]["gtid"] == pos && status["state"] == "running")
}

async fn catch_up(workload: &str, shape: Workload) -> Result<CatchUp, Box<dyn std::error::Error>> {
    eprintln!("{workload}: starting three servers …");
    let start = |args: Vec<String>| {
        let mut builder = MariaDb::builder();
        for a in args {
            builder = builder.arg(a);
        }
        builder.start()
    };
    let target: Vec<String> = TARGET_ARGS.iter().map(|a| a.to_string()).collect();
    let mut native_args = target.clone();
    native_args.extend(shape.native_args());
    let (up, drained, native) = tokio::join!(start(Vec::new()), start(target), start(native_args));
    let (up, drained, native) = (up?, drained?, native?);

    // Both appliers follow the upstream from its start through the prepare phase.
    replicate_natively(&native, &up).await?;
    let dir = tempfile::tempdir()?;
    let config = shape.drainer_config(&up, &drained, dir.path())?;
    let mut drainer = integration::replicating(&config, Duration::from_secs(120)).await?;
    up.exec(&["CREATE DATABASE sbtest"]).await?;
    eprintln!(
        "{workload}: sysbench prepare ({} tables of {} rows) …",
        shape.tables, shape.table_size
    );
    sysbench(&up, workload, "prepare", shape)?;
    let (prepared, _) = gtid_pos(&up).await?;
    until("the native replica to follow the prepare phase", || async {
        let applied: Vec<String> = native.query("SELECT @@global.gtid_slave_pos").await?;
        Ok(applied.first() == Some(&prepared))
    })
    .await?;
    until("the drainer to follow the prepare phase", || {
        drainer_at(&config, &prepared)
    })
    .await?;
    native.exec(&["STOP SLAVE"]).await?;
    drainer.signal(libc::SIGTERM);
    let stopped = drainer.wait(Duration::from_secs(60)).await?;
    if stopped.code() != Some(0) {
        return Err(format!("the drainer did not stop cleanly:\n{}", stopped.stderr).into());
    }

    eprintln!(
        "{workload}: sysbench run, {} s with {} threads …",
        shape.seconds, shape.threads
    );
    let (_, from_seq) = gtid_pos(&up).await?;
    sysbench(&up, workload, "run", shape)?;
    let (target_pos, to_seq) = gtid_pos(&up).await?;
    let transactions = to_seq - from_seq;

    eprintln!("{workload}: native replica catching up {transactions} transactions …");
    let native_before = commit_groups(&native).await?;
    let native_cpu_before = server_cpu(&native)?;
    let started = Instant::now();
    native.exec(&["START SLAVE"]).await?;
    until("the native replica to catch up", || async {
        let applied: Vec<String> = native.query("SELECT @@global.gtid_slave_pos").await?;
        Ok(applied.first() == Some(&target_pos))
    })
    .await?;
    let native_wall = started.elapsed();
    let native_server_cpu = server_cpu(&native)? - native_cpu_before;
    let native_per_group = per_group(native_before, commit_groups(&native).await?);

    eprintln!("{workload}: drainer catching up …");
    let prepares_before = counter(&drained, "Com_stmt_prepare").await?;
    let drained_before = commit_groups(&drained).await?;
    let drained_cpu_before = server_cpu(&drained)?;
    let started = Instant::now();
    let drainer = integration::replicating(&config, Duration::from_secs(120)).await?;
    until("the drainer to catch up", || {
        drainer_at(&config, &target_pos)
    })
    .await?;
    let drainer_wall = started.elapsed();
    let drained_server_cpu = server_cpu(&drained)? - drained_cpu_before;
    let prepared = counter(&drained, "Com_stmt_prepare").await? - prepares_before;
    let drainer_per_group = per_group(drained_before, commit_groups(&drained).await?);
    let pid = drainer.pid().ok_or("the drainer exited")?;
    let drainer_cpu = process_cpu_seconds(pid).ok_or("no CPU figures in /proc")?;
    let drainer_peak = drainer.peak_rss().ok_or("no VmHWM in /proc")?;
    let (_, metrics) = integration::http_get(&config.addr, "/metrics").await?;
    let samples = integration::parse_prometheus(&metrics)?;
    let rows = ["insert", "update", "delete"]
        .iter()
        .filter_map(|op| integration::sample(&samples, "drainer_rows_total", &[("op", op)]))
        .sum::<f64>() as u64;
    let retries = samples
        .iter()
        .filter(|s| s.name == "drainer_retries_total")
        .map(|s| s.value)
        .sum::<f64>() as u64;
    Ok(CatchUp {
        retries,
        prepared,
        workload: workload.to_owned(),
        transactions,
        rows,
        drainer_wall,
        drainer_cpu,
        drainer_peak,
        native_wall,
        native_per_group,
        drainer_per_group,
        native_server_cpu,
        drained_server_cpu,
    })
}

async fn replication(
    shape: Workload,
    workloads: &[String],
    json: Option<&Path>,
) -> Result<(), Box<dyn std::error::Error>> {
    let mut results = Vec::new();
    for workload in workloads {
        results.push(catch_up(workload, shape).await?);
    }
    println!(
        "catch-up after {} s of sysbench ({})",
        shape.seconds,
        shape.describe()
    );
    println!(
        "{:<18} {:>8} {:>9} {:>10} {:>10} {:>10} {:>10} {:>10} {:>8} {:>8} {:>8} {:>9} {:>8} {:>9} {:>9} {:>13} {:>7}",
        "workload",
        "txns",
        "rows",
        "native s",
        "txn/s",
        "drainer s",
        "txn/s",
        "rows/s",
        "cpu s",
        "µs/txn",
        "µs/row",
        "RSS MiB",
        "retries",
        "prepared",
        "per group",
        "server µs/txn",
        "ratio"
    );
    let mut entries = Vec::new();
    for r in &results {
        let (native_s, drainer_s) = (r.native_wall.as_secs_f64(), r.drainer_wall.as_secs_f64());
        let (native_tps, drainer_tps) = (
            r.transactions as f64 / native_s,
            r.transactions as f64 / drainer_s,
        );
        let ratio = drainer_tps / native_tps;
        let mib = r.drainer_peak as f64 / (1 << 20) as f64;
        // The drainer's CPU per upstream transaction and per row change, in µs.
        let per_txn = r.drainer_cpu * 1e6 / r.transactions.max(1) as f64;
        let per_row = r.drainer_cpu * 1e6 / r.rows.max(1) as f64;
        // Each target server's CPU per transaction during its catch-up, in µs.
        let drained_server = r.drained_server_cpu * 1e6 / r.transactions.max(1) as f64;
        let native_server = r.native_server_cpu * 1e6 / r.transactions.max(1) as f64;
        println!(
            "{:<18} {:>8} {:>9} {native_s:>10.2} {native_tps:>10.0} {drainer_s:>10.2} \
             {drainer_tps:>10.0} {:>10.0} {:>8.2} {per_txn:>8.1} {per_row:>8.1} {mib:>9.1} \
             {:>8} {:>9} {:>9} {:>13} {ratio:>7.2}",
            r.workload,
            r.transactions,
            r.rows,
            r.rows as f64 / drainer_s,
            r.drainer_cpu,
            r.retries,
            r.prepared,
            format!("{:.1}/{:.1}", r.drainer_per_group, r.native_per_group),
            format!("{:.0}/{:.0}", drained_server, native_server),
        );
        entries.push(format!(
            r#"{{"workload":"{}","transactions":{},"rows":{},"native":{{"wall_s":{native_s:.3},"txn_per_s":{native_tps:.0},"commits_per_group":{native_group:.2},"server_cpu_us_per_txn":{native_server:.1}}},"drainer":{{"wall_s":{drainer_s:.3},"txn_per_s":{drainer_tps:.0},"rows_per_s":{:.0},"cpu_s":{:.3},"cpu_us_per_txn":{per_txn:.1},"cpu_us_per_row":{per_row:.1},"peak_rss_bytes":{},"retries":{},"statements_prepared":{},"commits_per_group":{:.2},"server_cpu_us_per_txn":{drained_server:.1}}},"ratio_txn_per_s":{ratio:.3}}}"#,
            r.workload,
            r.transactions,
            r.rows,
            r.rows as f64 / drainer_s,
            r.drainer_cpu,
            r.drainer_peak,
            r.retries,
            r.prepared,
            r.drainer_per_group,
            native_group = r.native_per_group,
        ));
    }
    if let Some(path) = json {
        let text = format!(
            r#"{{"bench":"replication",{},"results":[{}]}}"#,
            shape.json(),
            entries.join(",")
        );
        std::fs::write(path, text + "\n")?;
    }
    Ok(())
}

/// One applier's lag under a steady upstream rate.
struct Steady {
    applier: &'static str,
    /// Transactions per second sysbench achieved upstream.
    upstream_tps: f64,
    /// Heartbeats, and their lag from the upstream commit to visible on the target.
    lags: Vec<Duration>,
    /// The drainer's downstream transactions (BEGIN to COMMIT) from its
    /// `drainer_apply_seconds` histogram: count, and the bucket bounds (ms) under which
    /// half and 99 % of them took.
    applies: Option<(u64, f64, f64)>,
}

/// Count and p50 / p99 bucket bounds (ms) of `drainer_apply_seconds` in Prometheus text.
fn apply_quantiles(metrics: &str) -> Option<(u64, f64, f64)> {
    let samples = integration::parse_prometheus(metrics).ok()?;
    let mut buckets: Vec<(f64, f64)> = samples
        .iter()
        .filter(|s| s.name == "drainer_apply_seconds_bucket")
        .filter_map(|s| {
            let (_, le) = s.labels.iter().find(|(k, _)| k == "le")?;
            let le = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().ok()?
            };
            Some((le, s.value))
        })
        .collect();
    buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    let total = buckets.last()?.1;
    let under = |q: f64| {
        let need = (total * q).ceil();
        buckets
            .iter()
            .find(|(_, c)| *c >= need)
            .map_or(f64::INFINITY, |(le, _)| le * 1e3)
    };
    Some((total as u64, under(0.5), under(0.99)))
}

impl Steady {
    fn percentile(&self, p: f64) -> f64 {
        let i = ((self.lags.len() as f64 * p) as usize).min(self.lags.len() - 1);
        self.lags[i].as_secs_f64() * 1e3
    }
}

/// How often the heartbeat row is updated upstream, and the target polled for it.
const HEARTBEAT: Duration = Duration::from_millis(100);
const POLL: Duration = Duration::from_millis(5);

/// `bench steady`: per applier (native replica, then drainer; never both at once), fresh
/// servers, the applier following from the start; sysbench `--rate` runs upstream for
/// `--seconds` while a heartbeat row is updated every 100 ms; the target is polled every
/// 5 ms, and each heartbeat's lag is the time from its upstream commit to the first poll
/// that sees it.
async fn steady(
    workload: &str,
    rate: u32,
    shape: Workload,
    json: Option<&Path>,
) -> Result<(), Box<dyn std::error::Error>> {
    let mut results = Vec::new();
    for applier in ["native", "drainer"] {
        results.push(steady_one(applier, workload, rate, shape).await?);
    }
    println!(
        "lag at a steady {rate} txn/s of {workload} for {} s ({}); heartbeat every {} ms, \
         polled every {} ms",
        shape.seconds,
        shape.describe(),
        HEARTBEAT.as_millis(),
        POLL.as_millis()
    );
    println!(
        "{:<10} {:>12} {:>11} {:>10} {:>10} {:>10}",
        "applier", "upstream/s", "heartbeats", "p50 ms", "p99 ms", "max ms"
    );
    let mut entries = Vec::new();
    for r in &results {
        let (p50, p99, max) = (r.percentile(0.5), r.percentile(0.99), r.percentile(1.0));
        println!(
            "{:<10} {:>12.0} {:>11} {p50:>10.1} {p99:>10.1} {max:>10.1}",
            r.applier,
            r.upstream_tps,
            r.lags.len()
        );
        entries.push(format!(
            r#"{{"applier":"{}","upstream_txn_per_s":{:.1},"heartbeats":{},"lag_ms":{{"p50":{p50:.2},"p99":{p99:.2},"max":{max:.2}}}}}"#,
            r.applier,
            r.upstream_tps,
            r.lags.len()
        ));
    }
    let ratio = results[1].percentile(0.99) / results[0].percentile(0.99);
    println!("ratio drainer / native (p99 lag): {ratio:.2}");
    if let Some((count, p50, p99)) = results[1].applies {
        println!(
            "drainer: {count} downstream transactions, BEGIN to COMMIT p50 <= {p50} ms, \
             p99 <= {p99} ms (histogram bucket bounds)"
        );
    }
    if let Some(path) = json {
        let text = format!(
            r#"{{"bench":"steady","workload":"{workload}","rate":{rate},{},"results":[{}],"ratio_p99":{ratio:.3}}}"#,
            shape.json(),
            entries.join(",")
        );
        std::fs::write(path, text + "\n")?;
    }
    Ok(())
}

async fn steady_one(
    applier: &'static str,
    workload: &str,
    rate: u32,
    shape: Workload,
) -> Result<Steady, Box<dyn std::error::Error>> {
    use mysql_async::prelude::Queryable;

    eprintln!("{applier}: starting two servers …");
    let mut target_args: Vec<String> = TARGET_ARGS.iter().map(|a| a.to_string()).collect();
    if applier == "native" {
        target_args.extend(shape.native_args());
    }
    let mut builder = MariaDb::builder();
    for a in target_args {
        builder = builder.arg(a);
    }
    let (up, target) = tokio::join!(MariaDb::start(), builder.start());
    let (up, target) = (up?, target?);
    let dir = tempfile::tempdir()?;
    let mut drainer = None;
    let mut config_addr = String::new();
    if applier == "native" {
        replicate_natively(&target, &up).await?;
    } else {
        let config = shape.drainer_config(&up, &target, dir.path())?;
        config_addr = config.addr.clone();
        drainer = Some(integration::replicating(&config, Duration::from_secs(120)).await?);
    }
    up.exec(&[
        "CREATE DATABASE sbtest",
        "CREATE DATABASE bench",
        "CREATE TABLE bench.heartbeat (id INT PRIMARY KEY, n BIGINT NOT NULL)",
        "INSERT INTO bench.heartbeat VALUES (1, 0)",
    ])
    .await?;
    eprintln!("{applier}: sysbench prepare …");
    sysbench(&up, workload, "prepare", shape)?;
    // A sentinel row after the prepare phase: once the target has it, it has the rest.
    up.exec(&["INSERT INTO bench.heartbeat VALUES (2, 0)"])
        .await?;
    until("the target to follow the prepare phase", || async {
        let there: Vec<u64> = target
            .query(
                "SELECT COUNT(*) FROM information_schema.TABLES \
                 WHERE TABLE_SCHEMA = 'bench' AND TABLE_NAME = 'heartbeat'",
            )
            .await?;
        if there.first() != Some(&1) {
            return Ok(false);
        }
        let sentinel: Vec<u64> = target
            .query("SELECT COUNT(*) FROM bench.heartbeat WHERE id = 2")
            .await?;
        Ok(sentinel.first() == Some(&1))
    })
    .await?;

    eprintln!(
        "{applier}: sysbench at {rate} txn/s for {} s, heartbeat every {} ms …",
        shape.seconds,
        HEARTBEAT.as_millis()
    );
    let sysbench_run = {
        let (host, port) = (up.host(), up.port());
        let workload = workload.to_owned();
        let rate_arg = vec![format!("--rate={rate}")];
        tokio::task::spawn_blocking(move || {
            sysbench_with((host, port), &workload, "run", shape, &rate_arg)
                .map_err(|e| e.to_string())
        })
    };
    let mut writer = up.conn().await?;
    let mut reader = target.conn().await?;
    let mut written: Vec<Instant> = vec![Instant::now()]; // heartbeat 0: the seed row
    let mut seen: Vec<Option<Instant>> = vec![Some(Instant::now())];
    let started = Instant::now();
    let mut next_beat = Instant::now();
    let mut last_seen = 0u64;
    let deadline = started + Duration::from_secs(shape.seconds);
    loop {
        let now = Instant::now();
        if now >= next_beat && now < deadline {
            let n = written.len() as u64;
            writer
                .exec_drop("UPDATE bench.heartbeat SET n = ? WHERE id = 1", (n,))
                .await?;
            written.push(Instant::now());
            seen.push(None);
            next_beat += HEARTBEAT;
        }
        let n: Option<u64> = reader
            .query_first("SELECT n FROM bench.heartbeat WHERE id = 1")
            .await?;
        let n = n.unwrap_or(0);
        let at = Instant::now();
        while last_seen < n {
            last_seen += 1;
            if let Some(slot) = seen.get_mut(last_seen as usize) {
                slot.get_or_insert(at);
            }
        }
        if now >= deadline && last_seen + 1 >= written.len() as u64 {
            break;
        }
        if now > deadline + Duration::from_secs(600) {
            return Err(format!("{applier}: the target lags over 10 minutes behind").into());
        }
        tokio::time::sleep(POLL).await;
    }
    let output = sysbench_run.await?.map_err(|e| format!("sysbench: {e}"))?;
    let upstream_tps = output
        .lines()
        .find(|l| l.trim_start().starts_with("transactions:"))
        .and_then(|l| l.split('(').nth(1))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    let mut lags: Vec<Duration> = written
        .iter()
        .zip(&seen)
        .skip(1)
        .filter_map(|(w, s)| s.map(|s| s.saturating_duration_since(*w)))
        .collect();
    lags.sort();
    if lags.is_empty() {
        return Err(format!("{applier}: no heartbeat reached the target").into());
    }
    let mut applies = None;
    if let Some(mut d) = drainer.take() {
        let (_, metrics) = integration::http_get(&config_addr, "/metrics").await?;
        applies = apply_quantiles(&metrics);
        d.signal(libc::SIGTERM);
        d.wait(Duration::from_secs(60)).await?;
    }
    Ok(Steady {
        applier,
        upstream_tps,
        lags,
        applies,
    })
}
