//! `bench relay`: one sysbench workload replicated by two drainers from the same starting
//! position, one reading the upstream directly and one through a relay (TLS 1.3, zstd);
//! each catches up alone. Reports both rates, the ratio, the bytes that crossed the link
//! per row and the compression (binlog and query bytes the relay read from the upstream
//! per byte it sent).

use std::time::{Duration, Instant};

use integration::certs::Ca;
use integration::{MariaDb, RelaySpec};

use super::{drainer_at, gtid_pos, process_cpu_seconds, sysbench, until, Workload, TARGET_ARGS};

struct Run {
    wall: Duration,
    cpu: f64,
}

/// The relay's byte counters: read from the upstream, sent over links.
async fn relay_bytes(spec: &RelaySpec) -> Result<(u64, u64), Box<dyn std::error::Error>> {
    let (_, body) = integration::http_get(&spec.addr, "/status").await?;
    let status: serde_json::Value = serde_json::from_str(&body)?;
    Ok((
        status["bytes_read"].as_u64().unwrap_or(0),
        status["bytes_sent"].as_u64().unwrap_or(0),
    ))
}

pub(crate) async fn relay(
    workload: &str,
    shape: Workload,
) -> Result<(), Box<dyn std::error::Error>> {
    eprintln!("relay: starting three servers and a relay …");
    let start = |target: bool| {
        let mut builder = MariaDb::builder();
        if target {
            for a in TARGET_ARGS {
                builder = builder.arg(a);
            }
        }
        builder.start()
    };
    let (up, direct, relayed) = tokio::join!(start(false), start(true), start(true));
    let (up, direct, relayed) = (up?, direct?, relayed?);
    let dir = tempfile::tempdir()?;
    let ca = Ca::new(dir.path(), "bench-ca")?;
    let relay_cert = ca.issue("relay", &["IP:127.0.0.1"], 30)?;
    let client = ca.issue("drainer", &[], 30)?;
    let spec = RelaySpec::new(&ca.cert, &relay_cert.cert, &relay_cert.key)?;
    let relay = spec.start(&up).await?;

    let direct_config = shape.drainer_config(&up, &direct, &dir.path().join("direct"))?;
    let mut relay_config = shape.drainer_config(&up, &relayed, &dir.path().join("relayed"))?;
    spec.read_through(&mut relay_config, &client.cert, &client.key);
    let configs = [&direct_config, &relay_config];

    // Both follow the prepare phase, then stop.
    let mut running = Vec::new();
    for config in configs {
        running.push(integration::replicating(config, Duration::from_secs(120)).await?);
    }
    up.exec(&["CREATE DATABASE sbtest"]).await?;
    eprintln!("relay: sysbench prepare …");
    sysbench(&up, workload, "prepare", shape)?;
    let (prepared, _) = gtid_pos(&up).await?;
    for (config, mut drainer) in configs.into_iter().zip(running) {
        until("a drainer to follow the prepare phase", || {
            drainer_at(config, &prepared)
        })
        .await?;
        drainer.signal(libc::SIGTERM);
        drainer.wait(Duration::from_secs(60)).await?;
    }

    eprintln!("relay: sysbench {workload} for {} s …", shape.seconds);
    let (_, from_seq) = gtid_pos(&up).await?;
    sysbench(&up, workload, "run", shape)?;
    let (target, to_seq) = gtid_pos(&up).await?;
    let transactions = to_seq - from_seq;

    let mut runs = Vec::new();
    let mut link = (0, 0);
    let mut rows = 1.0;
    let mut relay_cpu = 0.0;
    let relay_pid = relay.pid().ok_or("the relay exited")?;
    for config in configs {
        let through = config.pump.relay.is_some();
        eprintln!(
            "relay: the drainer {} catching up {transactions} transactions …",
            if through {
                "through the relay"
            } else {
                "reading directly"
            }
        );
        let before = relay_bytes(&spec).await?;
        let relay_before = process_cpu_seconds(relay_pid).unwrap_or(0.0);
        let started = Instant::now();
        let drainer = integration::replicating(config, Duration::from_secs(120)).await?;
        until("the drainer to catch up", || drainer_at(config, &target)).await?;
        let wall = started.elapsed();
        let cpu = process_cpu_seconds(drainer.pid().ok_or("the drainer exited")?)
            .ok_or("no CPU figures in /proc")?;
        if through {
            let after = relay_bytes(&spec).await?;
            link = (after.0 - before.0, after.1 - before.1);
            relay_cpu = process_cpu_seconds(relay_pid).unwrap_or(0.0) - relay_before;
            let (_, metrics) = integration::http_get(&config.addr, "/metrics").await?;
            let samples = integration::parse_prometheus(&metrics)?;
            rows = ["insert", "update", "delete"]
                .iter()
                .filter_map(|op| integration::sample(&samples, "drainer_rows_total", &[("op", op)]))
                .sum::<f64>()
                .max(1.0);
        }
        drop(drainer);
        runs.push(Run { wall, cpu });
    }

    println!(
        "{workload}, {transactions} transactions, {rows} rows after {} s of sysbench \
         ({} threads, {} tables x {} rows); drainers with worker-count = {} txn-batch = {}; \
         targets with {}",
        shape.seconds,
        shape.threads,
        shape.tables,
        shape.table_size,
        shape.workers,
        shape.txn_batch,
        TARGET_ARGS.join(" ")
    );
    println!(
        "{:<10} {:>9} {:>9} {:>12} {:>11} {:>11} {:>10}",
        "drainer", "wall s", "txn/s", "cpu µs/txn", "link B/row", "read B/row", "zstd ratio"
    );
    let tps = |r: &Run| transactions as f64 / r.wall.as_secs_f64();
    for (name, r) in ["direct", "relay"].iter().zip(&runs) {
        let (link_row, read_row, ratio) = if *name == "relay" {
            (
                format!("{:.1}", link.1 as f64 / rows),
                format!("{:.1}", link.0 as f64 / rows),
                format!("{:.2}", link.0 as f64 / link.1.max(1) as f64),
            )
        } else {
            ("-".into(), "-".into(), "-".into())
        };
        println!(
            "{name:<10} {:>9.2} {:>9.0} {:>12.1} {link_row:>11} {read_row:>11} {ratio:>10}",
            r.wall.as_secs_f64(),
            tps(r),
            r.cpu * 1e6 / transactions as f64,
        );
    }
    println!(
        "relay / direct: {:.2}; the relay's own CPU during its catch-up: {relay_cpu:.2} s \
         ({:.1} µs/txn)",
        tps(&runs[1]) / tps(&runs[0]),
        relay_cpu * 1e6 / transactions as f64
    );
    Ok(())
}
