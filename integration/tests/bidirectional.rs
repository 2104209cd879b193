//! Two writable sites, one drainer per direction, loopback control on both: concurrent
//! writers on both sites and a schema change on one converge, nothing ping-pongs, and each
//! mark counter equals the transactions its drainer applied.

use std::time::{Duration, Instant};

use integration::{
    binlogs_still, config_for, direction, drainer_status, eventually, http_get, mark_counter,
    parse_prometheus, sample, text_rows, two_sites, DrainerCommand, DrainerProcess, MariaDb,
};
use mysql_async::prelude::Queryable;

const WAIT: Duration = Duration::from_secs(90);
const SETUP: &[&str] = &[
    "CREATE DATABASE app",
    "CREATE TABLE app.kv (id INT PRIMARY KEY, site CHAR(1) NOT NULL, n INT NOT NULL, note VARCHAR(60))",
];

async fn start(config: &conf::Config) -> DrainerProcess {
    integration::replicating(config, WAIT).await.unwrap()
}

/// Writes on `site` for `run_for`: inserts, updates and deletes of its own keys (offset by
/// `base`), single- and multi-row transactions. Returns the rounds written.
async fn writer(server: &MariaDb, site: char, base: i64, run_for: Duration) -> i64 {
    let mut conn = server.conn().await.unwrap();
    let until = Instant::now() + run_for;
    let mut i = 0;
    while Instant::now() < until {
        i += 1;
        let id = base + i;
        let round = [
            format!("INSERT INTO app.kv (id, site, n, note) VALUES ({id}, '{site}', {i}, 'new')"),
            "BEGIN".to_string(),
            format!(
                "INSERT INTO app.kv (id, site, n) VALUES ({}, '{site}', 0), ({}, '{site}', 0)",
                id + 500_000,
                id + 600_000
            ),
            format!(
                "UPDATE app.kv SET n = n + 1, note = 'updated' WHERE id = {}",
                id - 1
            ),
            "COMMIT".to_string(),
            format!("DELETE FROM app.kv WHERE id = {}", id + 600_000 - 3),
        ];
        for s in &round {
            conn.query_drop(s.as_str()).await.unwrap();
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    conn.disconnect().await.ok();
    i
}

async fn dump(server: &MariaDb) -> Result<Vec<String>, String> {
    text_rows(server, "SELECT * FROM app.kv ORDER BY id").await
}

/// `name=value` from the drainer's last log line that has it (ANSI colours removed).
fn logged(stderr: &str, name: &str) -> u64 {
    let mut plain = String::new();
    let mut chars = stderr.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for d in chars.by_ref() {
                if d == 'm' {
                    break;
                }
            }
        } else {
            plain.push(c);
        }
    }
    let key = format!("{name}=");
    let at = plain
        .rfind(&key)
        .unwrap_or_else(|| panic!("no {key} in:\n{plain}"));
    plain[at + key.len()..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect::<String>()
        .parse()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_sites_converge_without_loops() {
    let (a, b) = two_sites(SETUP).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    // DDL flows A → B only; both directions apply rows whose columns differ meanwhile.
    let mut ab = config_for(&a, &b, &dir.path().join("ab")).unwrap();
    let mut ba = config_for(&b, &a, &dir.path().join("ba")).unwrap();
    for (config, sync_ddl) in [(&mut ab, true), (&mut ba, false)] {
        config.syncer.loopback_control = true;
        config.syncer.channel_id = 1;
        config.syncer.sync_ddl = sync_ddl;
        config.syncer.to.sync_mode = 2;
        config.syncer.checkpoint_interval_ms = 200;
    }
    let (ab_drainer, ba_drainer) = tokio::join!(start(&ab), start(&ba));

    let half = Duration::from_secs(10);
    let (rounds_a, rounds_b, ()) = tokio::join!(
        writer(&a, 'A', 1_000_000, 2 * half),
        writer(&b, 'B', 2_000_000, 2 * half),
        async {
            tokio::time::sleep(half).await;
            // The rollout: B's table gains the column through the A → B drainer.
            a.exec(&["ALTER TABLE app.kv ADD COLUMN extra INT NOT NULL DEFAULT 7"])
                .await
                .unwrap();
        }
    );
    assert!(
        rounds_a > 50 && rounds_b > 50,
        "{rounds_a} and {rounds_b} rounds"
    );

    // A transaction on B that updates another channel's mark is replicated.
    b.exec(&[
        "BEGIN",
        "INSERT INTO retl._drainer_repl_mark (id, channel_id, val) VALUES (0, 99, 1) \
         ON DUPLICATE KEY UPDATE val = val + 1",
        "INSERT INTO app.kv (id, site, n) VALUES (3000000, 'B', 99)",
        "COMMIT",
    ])
    .await
    .unwrap();

    eventually("both sites to hold the same rows", WAIT, || async {
        let (x, y) = (dump(&a).await?, dump(&b).await?);
        if x == y && x.iter().any(|r| r.starts_with("3000000|")) {
            Ok(())
        } else {
            Err(format!(
                "A {} rows, B {} rows; first difference {:?}\nA→B:\n{}\nB→A:\n{}",
                x.len(),
                y.len(),
                x.iter().zip(&y).find(|(p, q)| p != q),
                ab_drainer.stderr(),
                ba_drainer.stderr()
            ))
        }
    })
    .await;

    // No ping-pong: both binlogs stop growing.
    binlogs_still(&[&a, &b]).await.unwrap();

    // /status: caught up, and its counters agree with the mark tables. Every transaction
    // A → B applied comes back in B's binlog and B → A drops it.
    let (ab_status, ba_status) = (
        drainer_status(&ab).await.unwrap(),
        drainer_status(&ba).await.unwrap(),
    );
    for s in [&ab_status, &ba_status] {
        assert_eq!(s["state"], "running", "{s}");
        assert_eq!(s["lag_seconds"], 0, "{s}");
    }
    let ab_applied = ab_status["transactions_applied"].as_u64().unwrap();
    assert_eq!(
        mark_counter(&b, 1).await.unwrap(),
        ab_applied,
        "A → B: {ab_status}"
    );
    assert_eq!(
        mark_counter(&a, 1).await.unwrap(),
        ba_status["transactions_applied"].as_u64().unwrap(),
        "B → A: {ba_status}"
    );
    // B → A drops every downstream transaction A → B committed (one per group of up to
    // txn-batch upstream ones: A → B's apply-time histogram counts them), the ALTER A → B
    // ran on B and the apply record it wrote on its own after it (both carry the
    // channel's server id), plus the one that seeded A → B's mark rows, when B → A was
    // reading by then (both start at once).
    let dropped = ba_status["transactions_loop_dropped"].as_u64().unwrap();
    let (_, ab_metrics) = http_get(&ab.addr, "/metrics").await.unwrap();
    let ab_samples = parse_prometheus(&ab_metrics).unwrap();
    let ab_commits = sample(&ab_samples, "drainer_apply_seconds_count", &[]).unwrap() as u64;
    assert!(
        ab_commits <= ab_applied && (dropped == ab_commits + 2 || dropped == ab_commits + 3),
        "B → A dropped {dropped}, A → B committed {ab_commits} downstream transactions for \
         {ab_applied} upstream ones: {ba_status}"
    );
    assert_eq!(ab_status["ddl_applied"], 1, "{ab_status}");
    // /metrics counts the same.
    for (config, status) in [(&ab, &ab_status), (&ba, &ba_status)] {
        let (_, text) = http_get(&config.addr, "/metrics").await.unwrap();
        let samples = parse_prometheus(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        let outcome = |o| sample(&samples, "drainer_transactions_total", &[("outcome", o)]);
        assert_eq!(
            outcome("applied"),
            status["transactions_applied"].as_f64(),
            "{text}"
        );
        assert_eq!(
            outcome("loop_dropped"),
            status["transactions_loop_dropped"].as_f64(),
            "{text}"
        );
    }
    // B → A recognises the ALTER as its partner's (a loop dropped, tracked, not run), not
    // as DDL it skips.
    assert_eq!(ba_status["ddl_skipped"], 0, "{ba_status}");
    assert_eq!(ba_status["ddl_applied"], 0, "{ba_status}");

    // Each mark counter equals the transactions its drainer applied, also as logged.
    let mut outputs = Vec::new();
    for mut drainer in [ab_drainer, ba_drainer] {
        drainer.signal(libc::SIGTERM);
        let out = drainer.wait(WAIT).await.unwrap();
        assert_eq!(out.code(), Some(0), "{}", out.stderr);
        outputs.push(out.stderr);
    }
    let (ab_log, ba_log) = (&outputs[0], &outputs[1]);
    assert_eq!(
        mark_counter(&b, 1).await.unwrap(),
        logged(ab_log, "applied"),
        "A → B"
    );
    assert_eq!(
        mark_counter(&a, 1).await.unwrap(),
        logged(ba_log, "applied"),
        "B → A"
    );
    assert!(logged(ab_log, "loops_dropped") > 0, "{ab_log}");
    assert!(logged(ba_log, "loops_dropped") > 0, "{ba_log}");
}

/// A mark table already on the downstream in another layout would defeat loop control:
/// the drainer refuses it, naming the table and what to do.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mark_table_in_another_layout_is_refused() {
    let (a, b) = two_sites(SETUP).await.unwrap();
    b.exec(&[
        "CREATE DATABASE retl",
        "CREATE TABLE retl._drainer_repl_mark (id BIGINT PRIMARY KEY, val BIGINT)",
    ])
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut config = config_for(&a, &b, &dir.path().join("data")).unwrap();
    config.syncer.loopback_control = true;
    config.syncer.channel_id = 1;
    // Refused at start, before anything is read or applied.
    let out = DrainerCommand::new()
        .unwrap()
        .config(&config)
        .unwrap()
        .output(WAIT)
        .await
        .unwrap();
    assert_eq!(out.code(), Some(1), "{}", out.stderr);
    assert!(!out.stderr.contains("replicating"), "{}", out.stderr);
    assert!(
        out.stderr.contains("`retl`.`_drainer_repl_mark`")
            && out.stderr.contains("(id, val)")
            && out.stderr.contains("TiDB Binlog's layout"),
        "{}",
        out.stderr
    );
}

/// Waits until every site holds `expected` rows and the same ones as the first.
async fn all_converged(sites: &[&MariaDb], expected: usize, drainers: &[DrainerProcess]) {
    eventually("every site to hold the same rows", WAIT, || async {
        let first = dump(sites[0]).await?;
        for site in &sites[1..] {
            let other = dump(site).await?;
            if other != first {
                let logs: Vec<String> = drainers.iter().map(DrainerProcess::stderr).collect();
                return Err(format!(
                    "{} vs {} rows\n{}",
                    first.len(),
                    other.len(),
                    logs.join("\n")
                ));
            }
        }
        if first.len() == expected {
            Ok(())
        } else {
            let logs: Vec<String> = drainers.iter().map(DrainerProcess::stderr).collect();
            Err(format!(
                "{} rows, not {expected}\n{}",
                first.len(),
                logs.join("\n")
            ))
        }
    })
    .await;
}

/// Each site's own rows: `rounds` single-row transactions and one multi-row one.
async fn write_rows(site: &MariaDb, tag: char, base: i64, rounds: i64) {
    let mut conn = site.conn().await.unwrap();
    for i in 1..=rounds {
        conn.query_drop(format!(
            "INSERT INTO app.kv (id, site, n) VALUES ({}, '{tag}', {i})",
            base + i
        ))
        .await
        .unwrap();
    }
    conn.query_drop(format!(
        "UPDATE app.kv SET n = n * 10 WHERE site = '{tag}' AND id % 2 = 0"
    ))
    .await
    .unwrap();
    conn.disconnect().await.ok();
}

/// Three sites, fully meshed: six drainers on one channel. A site's write reaches each
/// other site directly, once; the copies carry the channel's mark and go no further.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_sites_fully_meshed_converge() {
    let (a, b, c) = tokio::join!(MariaDb::start(), MariaDb::start(), MariaDb::start());
    let (a, b, c) = (a.unwrap(), b.unwrap(), c.unwrap());
    let sites = [&a, &b, &c];
    for site in sites {
        site.exec(SETUP).await.unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    let mut drainers = Vec::new();
    for (from, to) in [(&a, &b), (&b, &a), (&a, &c), (&c, &a), (&b, &c), (&c, &b)] {
        // DDL leaves A only.
        let sync_ddl = from.server_id() == a.server_id();
        drainers.push(start(&direction(from, to, 1, sync_ddl, dir.path())).await);
    }
    tokio::join!(
        write_rows(&a, 'A', 1_000_000, 100),
        write_rows(&b, 'B', 2_000_000, 100),
        write_rows(&c, 'C', 3_000_000, 100),
    );
    all_converged(&sites, 300, &drainers).await;
    binlogs_still(&sites).await.unwrap();
}

/// A chain A → B → C on two channels: B forwards A's writes (marked with another
/// channel) to C, and C gets B's own writes too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chain_forwards_through_the_middle_site() {
    let (a, b, c) = tokio::join!(MariaDb::start(), MariaDb::start(), MariaDb::start());
    let (a, b, c) = (a.unwrap(), b.unwrap(), c.unwrap());
    for site in [&a, &b, &c] {
        site.exec(SETUP).await.unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    let drainers = vec![
        start(&direction(&a, &b, 1, true, dir.path())).await,
        start(&direction(&b, &c, 2, true, dir.path())).await,
    ];
    write_rows(&a, 'A', 1_000_000, 100).await;
    eventually("A's rows on B", WAIT, || async {
        let n = dump(&b).await?.len();
        if n == 100 {
            Ok(())
        } else {
            Err(format!("{n} rows"))
        }
    })
    .await;
    write_rows(&b, 'B', 2_000_000, 50).await;
    all_converged(&[&b, &c], 150, &drainers).await;
    let on_a = dump(&a).await.unwrap();
    assert_eq!(
        on_a.len(),
        100,
        "nothing flows back to A in a one-way chain"
    );
    binlogs_still(&[&a, &b, &c]).await.unwrap();
}

/// Someone deletes the mark rows while the drainer runs: the next transaction would go out
/// unmarked (an UPDATE that finds no row writes nothing to the binlog), so the drainer
/// creates the rows again and applies the transaction marked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_mark_row_is_created_again() {
    let (a, b) = two_sites(SETUP).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = direction(&a, &b, 1, true, dir.path());
    let drainer = start(&config).await;
    let applied = |n: usize| {
        let b = &b;
        async move {
            eventually("the row downstream", WAIT, || async {
                let rows: Vec<i32> = b
                    .query("SELECT id FROM app.kv")
                    .await
                    .map_err(|e| e.to_string())?;
                if rows.len() == n {
                    Ok(())
                } else {
                    Err(format!("{rows:?}"))
                }
            })
            .await
        }
    };
    a.exec(&["INSERT INTO app.kv VALUES (1, 'A', 1, NULL)"])
        .await
        .unwrap();
    applied(1).await;
    b.exec(&["DELETE FROM retl._drainer_repl_mark"])
        .await
        .unwrap();
    a.exec(&["INSERT INTO app.kv VALUES (2, 'A', 2, NULL)"])
        .await
        .unwrap();
    applied(2).await;
    // Made again inside the transaction (one sent as one text marks with an upsert), or
    // the transaction rolled back and retried after the rows are made again (one sent
    // statement by statement): counted once either way.
    assert_eq!(
        mark_counter(&b, 1).await.unwrap(),
        1,
        "{}",
        drainer.stderr()
    );
}

/// `examples/<topology>/<name>.toml`, run against the test servers: each host the
/// example names is a site of `sites`; the logins, data-dir and status address are the
/// harness's, everything else (channels, sync-ddl, replica ids, sync-mode) the example's.
fn example(
    topology: &str,
    name: &str,
    sites: &[(&str, &MariaDb)],
    dir: &std::path::Path,
) -> conf::Config {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples")
        .join(topology)
        .join(format!("{name}.toml"));
    let text = std::fs::read_to_string(&path).unwrap();
    let mut config = conf::Config::parse(&text, &path).unwrap();
    let site = |host: &str| {
        sites
            .iter()
            .find(|(h, _)| *h == host)
            .unwrap_or_else(|| panic!("{}: no site for {host}", path.display()))
            .1
    };
    let local = config_for(
        site(&config.pump.host),
        site(&config.syncer.to.host),
        &dir.join(name),
    )
    .unwrap();
    config.pump.host = local.pump.host;
    config.pump.port = local.pump.port;
    config.pump.user = local.pump.user;
    config.pump.password = local.pump.password;
    config.syncer.to.host = local.syncer.to.host;
    config.syncer.to.port = local.syncer.to.port;
    config.syncer.to.user = local.syncer.to.user;
    config.syncer.to.password = local.syncer.to.password;
    config.data_dir = local.data_dir;
    config.addr = local.addr;
    assert!(config.validate().is_empty(), "{}", path.display());
    config
}

/// Runs every file of `examples/<topology>` on `sites`; each site writes its own rows and
/// a schema change runs on `ddl_site`: every site ends with every row and the change,
/// and no binlog keeps growing.
async fn run_example(topology: &str, sites: &[(&str, &MariaDb)], ddl_site: &MariaDb) {
    for (_, site) in sites {
        site.exec(SETUP).await.unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    let mut names: Vec<String> = std::fs::read_dir(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../examples")
            .join(topology),
    )
    .unwrap()
    .map(|e| {
        e.unwrap()
            .file_name()
            .to_string_lossy()
            .trim_end_matches(".toml")
            .to_owned()
    })
    .collect();
    names.sort();
    let mut drainers = Vec::new();
    for name in &names {
        drainers.push(start(&example(topology, name, sites, dir.path())).await);
    }
    let servers: Vec<&MariaDb> = sites.iter().map(|(_, s)| *s).collect();
    // Every site writes at once (each on a session of its own, in a task of its own).
    let mut writers = tokio::task::JoinSet::new();
    for (i, s) in servers.iter().enumerate() {
        let mut conn = s.conn().await.unwrap();
        let (tag, base) = ((b'A' + i as u8) as char, (i as i64 + 1) * 1_000_000);
        writers.spawn(async move {
            for n in 1..=60 {
                conn.query_drop(format!(
                    "INSERT INTO app.kv (id, site, n) VALUES ({}, '{tag}', {n})",
                    base + n
                ))
                .await
                .unwrap();
            }
            conn.query_drop(format!(
                "UPDATE app.kv SET n = n * 10 WHERE site = '{tag}' AND id % 2 = 0"
            ))
            .await
            .unwrap();
        });
    }
    while let Some(done) = writers.join_next().await {
        done.unwrap();
    }
    all_converged(&servers, 60 * servers.len(), &drainers).await;
    ddl_site
        .exec(&["ALTER TABLE app.kv ADD COLUMN extra INT DEFAULT 3"])
        .await
        .unwrap();
    eventually("the schema change on every site", WAIT, || async {
        for s in &servers {
            let rows = text_rows(
                s,
                "SELECT COUNT(*) FROM information_schema.COLUMNS \
                 WHERE TABLE_SCHEMA = 'app' AND TABLE_NAME = 'kv' AND COLUMN_NAME = 'extra'",
            )
            .await?;
            if rows != ["1"] {
                return Err(format!("server {}: {rows:?}", s.server_id()));
            }
        }
        Ok(())
    })
    .await;
    binlogs_still(&servers).await.unwrap();
}

/// `examples/star`: a hub and three spokes, each spoke two-way with the hub on its own
/// channel; writes on every site reach every other, through the hub, once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_star_example_runs() {
    let (h, s1, s2, s3) = tokio::join!(
        MariaDb::start(),
        MariaDb::start(),
        MariaDb::start(),
        MariaDb::start()
    );
    let (h, s1, s2, s3) = (h.unwrap(), s1.unwrap(), s2.unwrap(), s3.unwrap());
    let sites = [
        ("10.0.0.10", &h),
        ("10.0.1.10", &s1),
        ("10.0.2.10", &s2),
        ("10.0.3.10", &s3),
    ];
    run_example("star", &sites, &h).await;
}

/// `examples/two-way-chain`: A ⇄ B ⇄ C, a channel per hop; writes on A reach C and
/// writes on C reach A, through B; nothing loops.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_two_way_chain_example_runs() {
    let (a, b, c) = tokio::join!(MariaDb::start(), MariaDb::start(), MariaDb::start());
    let (a, b, c) = (a.unwrap(), b.unwrap(), c.unwrap());
    let sites = [("10.0.1.10", &a), ("10.0.2.10", &b), ("10.0.3.10", &c)];
    run_example("two-way-chain", &sites, &a).await;
}
