//! Conflicts under load (issue 20): two sites whose writers change the same rows at the
//! same time, both directions detecting; and a drainer killed while it settles conflicts.
//!
//! - `lww`: both sites end byte-equal, every row as the write with the larger
//!   `updated_at`, and each side's conflict table holds one record per conflicting change,
//!   each resolved as last writer wins says.
//! - `overwrite`: the sites may end different, but never without a record: a site that
//!   ends with the other's value of a row recorded its own last write of it overwritten.
//! - kill -9 while conflicts are settled: after the restart every conflict the workload
//!   makes is recorded exactly once.

use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use integration::{
    binlogs_still, direction, parse_prometheus, poll_until, replicating, text_rows,
    two_writable_sites, Dice, MariaDb,
};
use mysql_async::prelude::Queryable;
use tempfile::TempDir;

const WAIT: Duration = Duration::from_secs(120);
const ROWS: u64 = 50;
const SETUP: &[&str] = &[
    "CREATE DATABASE app",
    "CREATE TABLE app.r (id INT PRIMARY KEY, v VARCHAR(40) NOT NULL, \
     updated_at TIMESTAMP(6) NOT NULL DEFAULT '2001-01-01 00:00:00')",
    "INSERT INTO app.r (id, v) SELECT seq, 'initial' FROM app.seq_1_to_50",
];

/// One write that took effect on its site: the row, its `updated_at` (microseconds since
/// the epoch) and its `v`.
#[derive(Debug, Clone)]
struct Write {
    id: u64,
    micros: u64,
    v: String,
    /// Its transaction's GTID (`@@last_gtid`).
    gtid: String,
}

/// `micros` as `FROM_UNIXTIME` takes it exactly (a DECIMAL literal).
fn unix(micros: u64) -> String {
    format!("{}.{:06}", micros / 1_000_000, micros % 1_000_000)
}

/// A writer on `site` for `seconds`: updates of random rows among the 50, a fifth of
/// them a delete and re-insert of the row in one transaction. Each write carries a
/// timestamp of its own (this clock, odd or even microseconds by site, so no two sites
/// write the same one) and takes effect only over an older row (`updated_at < ts`), as
/// an application maintaining `updated_at` would: a site never moves a row back in time.
async fn writer(site: &MariaDb, parity: u64, name: &str, seed: u64, run: Duration) -> Vec<Write> {
    let mut conn = site.conn().await.unwrap();
    let mut dice = Dice::new(seed);
    let mut writes = Vec::new();
    let mut last = 0;
    let started = Instant::now();
    let mut n = 0;
    while started.elapsed() < run {
        n += 1;
        let id = 1 + dice.roll(ROWS);
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_micros() as u64;
        let micros = ((now.max(last + 1) + 1) & !1) | parity;
        last = micros;
        let v = format!("{name}{n}");
        let ts = format!("FROM_UNIXTIME({})", unix(micros));
        let took = if dice.roll(5) == 0 {
            conn.query_drop("BEGIN").await.unwrap();
            conn.query_drop(format!(
                "DELETE FROM app.r WHERE id = {id} AND updated_at < {ts}"
            ))
            .await
            .unwrap();
            if conn.affected_rows() == 1 {
                conn.query_drop(format!("INSERT INTO app.r VALUES ({id}, '{v}', {ts})"))
                    .await
                    .unwrap();
                conn.query_drop("COMMIT").await.unwrap();
                true
            } else {
                conn.query_drop("ROLLBACK").await.unwrap();
                false
            }
        } else {
            conn.query_drop(format!(
                "UPDATE app.r SET v = '{v}', updated_at = {ts} WHERE id = {id} AND updated_at < {ts}"
            ))
            .await
            .unwrap();
            conn.affected_rows() == 1
        };
        if took {
            let gtid: Option<String> = conn.query_first("SELECT @@last_gtid").await.unwrap();
            let gtid = gtid.unwrap_or_default();
            writes.push(Write {
                id,
                micros,
                v,
                gtid,
            });
        }
    }
    writes
}

/// Two writers on each site, for `run`; every write that took effect.
async fn race(a: &MariaDb, b: &MariaDb, run: Duration) -> Vec<Write> {
    let (w1, w2, w3, w4) = tokio::join!(
        writer(a, 0, "a", 11, run),
        writer(a, 0, "A", 12, run),
        writer(b, 1, "b", 13, run),
        writer(b, 1, "B", 14, run),
    );
    [w1, w2, w3, w4].concat()
}

/// The table as `id|v|updated_at` lines, `updated_at` in microseconds since the epoch.
async fn dump(site: &MariaDb) -> Result<Vec<String>, String> {
    text_rows(
        site,
        "SELECT id, v, CAST(UNIX_TIMESTAMP(updated_at) * 1000000 AS UNSIGNED) \
         FROM app.r ORDER BY id",
    )
    .await
}

/// Both sites equal (each drainer has applied everything the other site wrote).
async fn converged(a: &MariaDb, b: &MariaDb) -> Result<Vec<String>, String> {
    let (da, db) = (dump(a).await?, dump(b).await?);
    if da == db {
        Ok(da)
    } else {
        let first = da.iter().zip(&db).find(|(x, y)| x != y);
        Err(format!("the sites differ, first at {first:?}"))
    }
}

/// The conflict records on `site`: (position, row key, kind, resolution, upstream
/// after `v`, downstream `v`, upstream before `v`).
type Record = (
    String,
    String,
    String,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
);

async fn records(site: &MariaDb) -> Vec<Record> {
    site.query(
        "SELECT position, row_key, kind, resolution, \
         JSON_VALUE(upstream_after, '$.v'), JSON_VALUE(downstream_row, '$.v'), \
         JSON_VALUE(upstream_before, '$.v') FROM retl._drainer_conflicts ORDER BY id",
    )
    .await
    .unwrap()
}

/// `drainer_conflicts_total`, summed over kinds and resolutions, at the drainer of `config`.
async fn counted(config: &conf::Config) -> u64 {
    let (_, metrics) = integration::http_get(&config.addr, "/metrics")
        .await
        .unwrap();
    parse_prometheus(&metrics)
        .unwrap()
        .iter()
        .filter(|s| s.name == "drainer_conflicts_total")
        .map(|s| s.value)
        .sum::<f64>() as u64
}

fn policy(policy: conf::ConflictPolicy, column: Option<&str>) -> Option<conf::Conflict> {
    Some(conf::Conflict {
        policy: conf::ConflictPolicy::Overwrite,
        table: vec![conf::ConflictTable {
            db_name: "app".into(),
            tbl_name: "r".into(),
            policy,
            column: column.map(str::to_owned),
        }],
    })
}

/// Every record of `site` names one upstream change (its transaction and key) once.
fn once_each(site: &str, records: &[Record]) {
    let mut seen = HashMap::new();
    for r in records {
        if let Some(earlier) = seen.insert((&r.0, &r.1), r) {
            panic!("site {site}: two records of one change: {earlier:?} and {r:?}");
        }
    }
}

#[tokio::test]
async fn two_sites_writing_the_same_rows_converge_by_last_writer_wins() {
    let (a, b) = two_writable_sites(SETUP).await.unwrap();
    let dir = TempDir::new().unwrap();
    let mut ab = direction(&a, &b, 1, false, dir.path());
    ab.syncer.conflict = policy(conf::ConflictPolicy::Lww, Some("updated_at"));
    let mut ba = direction(&b, &a, 1, false, dir.path());
    ba.syncer.conflict = policy(conf::ConflictPolicy::Lww, Some("updated_at"));
    let to_b = replicating(&ab, WAIT).await.unwrap();
    let to_a = replicating(&ba, WAIT).await.unwrap();

    let writes = race(&a, &b, Duration::from_secs(20)).await;
    let rows = poll_until("both sites equal", WAIT, || converged(&a, &b))
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}\n{}", to_b.stderr(), to_a.stderr()));
    binlogs_still(&[&a, &b]).await.unwrap();

    // Each row is the write with the larger timestamp (or as it began, if none took).
    let mut latest: HashMap<u64, &Write> = HashMap::new();
    for w in &writes {
        let best = latest.entry(w.id).or_insert(w);
        if w.micros > best.micros {
            *best = w;
        }
    }
    for line in &rows {
        let [id, v, micros] = line.split('|').collect::<Vec<_>>()[..] else {
            panic!("{line}");
        };
        let id: u64 = id.parse().unwrap();
        match latest.get(&id) {
            Some(w) => assert_eq!(
                (v, micros),
                (w.v.as_str(), w.micros.to_string().as_str()),
                "row {id}"
            ),
            None => assert_eq!(v, "initial", "row {id}"),
        }
    }
    assert_eq!(rows.len() as u64, ROWS);

    // Conflicts on both sides, one record per conflicting change, each resolved as last
    // writer wins says: applied when the upstream's write is the later.
    let when: HashMap<&str, u64> = writes.iter().map(|w| (w.v.as_str(), w.micros)).collect();
    let at = |v: &Option<String>| {
        v.as_deref()
            .map_or(0, |v| when.get(v).copied().unwrap_or(0))
    };
    for (name, site, config) in [("a", &a, &ba), ("b", &b, &ab)] {
        let records = records(site).await;
        assert!(
            records.len() > 10,
            "site {name}: {} conflicts",
            records.len()
        );
        once_each(name, &records);
        for r in &records {
            assert_eq!(r.2, "update-differs", "site {name}: {r:?}");
            let applied = at(&r.4) > at(&r.5);
            let want = if applied { "applied" } else { "skipped" };
            assert_eq!(r.3, want, "site {name}: {r:?}");
        }
        assert_eq!(counted(config).await, records.len() as u64, "site {name}");
    }
    eprintln!(
        "{} writes took effect; {} and {} conflicts recorded",
        writes.len(),
        records(&a).await.len(),
        records(&b).await.len()
    );
}

#[tokio::test]
async fn with_overwrite_every_divergence_is_recorded() {
    let (a, b) = two_writable_sites(SETUP).await.unwrap();
    let dir = TempDir::new().unwrap();
    let mut ab = direction(&a, &b, 1, false, dir.path());
    ab.syncer.conflict = policy(conf::ConflictPolicy::Overwrite, None);
    let mut ba = direction(&b, &a, 1, false, dir.path());
    ba.syncer.conflict = policy(conf::ConflictPolicy::Overwrite, None);
    let to_b = replicating(&ab, WAIT).await.unwrap();
    let to_a = replicating(&ba, WAIT).await.unwrap();

    let writes = race(&a, &b, Duration::from_secs(20)).await;
    // Settled: both binlogs stand still (each drainer has read and applied all).
    poll_until("both binlogs still", WAIT, || async {
        binlogs_still(&[&a, &b]).await
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}\n{}", to_b.stderr(), to_a.stderr()));
    let (da, db) = (dump(&a).await.unwrap(), dump(&b).await.unwrap());
    let (ra, rb) = (records(&a).await, records(&b).await);
    once_each("a", &ra);
    once_each("b", &rb);
    assert!(!ra.is_empty() && !rb.is_empty());
    // A site that ends with the other site's value of a row lost its own last write of
    // it (a site's own writes only move a row forward in time, so its last is the one
    // with the largest timestamp). The first of the other's changes applied after that
    // write either expected it (the other site had it and wrote on: the sites then end
    // equal on the row) or did not: a conflict, recorded with that write as the row
    // found. So a row the sites end different on has, at each site that ends with the
    // other's value, the record of its own last write overwritten.
    let mut last: HashMap<(char, u64), &Write> = HashMap::new();
    for w in &writes {
        let site = if w.v.starts_with(['a', 'A']) {
            'a'
        } else {
            'b'
        };
        let best = last.entry((site, w.id)).or_insert(w);
        if w.micros > best.micros {
            *best = w;
        }
    }
    let mut differ = 0;
    for (x, y) in da.iter().zip(&db) {
        if x == y {
            continue;
        }
        differ += 1;
        let (fa, fb): (Vec<&str>, Vec<&str>) = (x.split('|').collect(), y.split('|').collect());
        let id: u64 = fa[0].parse().unwrap();
        let key = format!("id={id}");
        for (site, holds, records) in [('a', fa[1], &ra), ('b', fb[1], &rb)] {
            let Some(own) = last.get(&(site, id)) else {
                continue;
            };
            if holds.starts_with([site, site.to_ascii_uppercase()]) {
                continue;
            }
            assert!(
                records
                    .iter()
                    .any(|r| r.1 == key && r.5.as_deref() == Some(own.v.as_str())),
                "the sites differ on row {id} ({x} / {y}); site {site} holds the other \
                 site's value, yet no conflict record of its own last write {} ({}) \
                 overwritten\nrecords on A: {:?}\nrecords on B: {:?}\nwrites: {:?}",
                own.v,
                own.gtid,
                ra.iter().filter(|r| r.1 == key).collect::<Vec<_>>(),
                rb.iter().filter(|r| r.1 == key).collect::<Vec<_>>(),
                writes
                    .iter()
                    .filter(|w| w.id == id)
                    .map(|w| (w.v.as_str(), w.gtid.as_str(), w.micros))
                    .collect::<Vec<_>>()
            );
        }
    }
    eprintln!(
        "{} writes; {differ} rows differ; {} and {} conflicts recorded",
        writes.len(),
        ra.len(),
        rb.len()
    );
    assert_eq!(counted(&ab).await, rb.len() as u64);
    assert_eq!(counted(&ba).await, ra.len() as u64);
}

/// A drainer killed (SIGKILL) while it settles conflicts, in multi-row transactions
/// grouped by `txn-batch`: the restart records each conflict exactly once.
#[tokio::test]
async fn a_drainer_killed_while_settling_conflicts_loses_and_doubles_no_record() {
    const N: u64 = 4000;
    let setup = [
        "CREATE DATABASE app",
        "CREATE TABLE app.d (id INT PRIMARY KEY, v VARCHAR(20) NOT NULL)",
        "INSERT INTO app.d SELECT seq, 'same' FROM app.seq_1_to_4000",
    ];
    let (a, b) = two_writable_sites(&setup).await.unwrap();
    // Every row differs at B before A's changes come: each of them is a conflict.
    b.exec(&["UPDATE app.d SET v = 'b'"]).await.unwrap();
    let dir = TempDir::new().unwrap();
    let mut ab = direction(&a, &b, 1, false, dir.path());
    ab.syncer.conflict = Some(conf::Conflict {
        policy: conf::ConflictPolicy::Overwrite,
        table: Vec::new(),
    });
    let mut drainer = replicating(&ab, WAIT).await.unwrap();
    // 400 transactions of 10 rows each.
    let mut statements = Vec::new();
    for t in 0..N / 10 {
        statements.push(format!(
            "UPDATE app.d SET v = CONCAT('a', id) WHERE id BETWEEN {} AND {}",
            t * 10 + 1,
            t * 10 + 10
        ));
    }
    let refs: Vec<&str> = statements.iter().map(String::as_str).collect();
    a.exec(&refs).await.unwrap();
    let count = || async {
        let n: Vec<u64> = b
            .query("SELECT COUNT(*) FROM retl._drainer_conflicts")
            .await
            .unwrap_or_default();
        n.first().copied().unwrap_or(0)
    };
    poll_until("a third of the conflicts recorded", WAIT, || async {
        let n = count().await;
        if n >= N / 3 {
            Ok(n)
        } else {
            Err(format!("{n} records"))
        }
    })
    .await
    .unwrap();
    drainer.kill();
    let at_kill = count().await;
    assert!(
        at_kill < N,
        "the drainer finished before the kill ({at_kill} records)"
    );
    eprintln!("killed at {at_kill} of {N} records");

    let drainer = replicating(&ab, WAIT).await.unwrap();
    poll_until("every row applied", WAIT, || async {
        let left: Vec<u64> = b
            .query("SELECT COUNT(*) FROM app.d WHERE v NOT LIKE 'a%'")
            .await
            .map_err(|e| e.to_string())?;
        match left.first() {
            Some(0) => Ok(()),
            other => Err(format!("{other:?} rows left")),
        }
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", drainer.stderr()));
    let keys: Vec<(u64, u64)> = b
        .query(
            "SELECT COUNT(*), COUNT(DISTINCT row_key) FROM retl._drainer_conflicts \
             WHERE kind = 'update-differs' AND resolution = 'applied'",
        )
        .await
        .unwrap();
    assert_eq!(keys, [(N, N)], "killed at {at_kill} records");
    assert_eq!(count().await, N);
}
