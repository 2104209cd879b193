//! Conflicts (issue 20): a direction whose downstream rows differ from what the upstream's
//! changes expect detects each one, records it once in `retl._drainer_conflicts` in the
//! transaction that settles it, and resolves it by the table's policy: `overwrite`,
//! `keep`, `lww` on a DATETIME(6) column, and `stop`, which exits 1 naming the row and
//! resumes once the operator fixed it.

use std::time::Duration;

use integration::{
    direction, drainer_status, poll_until, replicating, two_sites, DrainerCommand, MariaDb,
};
use tempfile::TempDir;

const WAIT: Duration = Duration::from_secs(60);

const SETUP: &[&str] = &[
    "CREATE DATABASE app",
    "CREATE TABLE app.o (id INT PRIMARY KEY, v VARCHAR(20))",
    "CREATE TABLE app.k (id INT PRIMARY KEY, v VARCHAR(20))",
    "CREATE TABLE app.s (id INT PRIMARY KEY, v VARCHAR(20))",
    "CREATE TABLE app.l (id INT PRIMARY KEY, v VARCHAR(20), at DATETIME(6))",
];

async fn rows(db: &MariaDb, table: &str) -> Vec<(i32, String)> {
    db.query(&format!("SELECT id, v FROM app.{table} ORDER BY id"))
        .await
        .unwrap()
}

fn pairs(list: &[(i32, &str)]) -> Vec<(i32, String)> {
    list.iter().map(|(i, v)| (*i, v.to_string())).collect()
}

async fn records(db: &MariaDb) -> Vec<(String, String, String, String)> {
    db.query(
        "SELECT tbl_name, row_key, kind, resolution FROM retl._drainer_conflicts ORDER BY tbl_name, row_key",
    )
    .await
    .unwrap_or_default()
}

#[tokio::test]
async fn every_conflict_is_recorded_once_and_resolved_by_its_tables_policy() {
    let (a, b) = two_sites(SETUP).await.unwrap();
    // Each site's own rows, before any drainer runs: they differ where the test wants
    // conflicts.
    a.exec(&[
        "INSERT INTO app.o VALUES (1, 'a1'), (2, 'a2'), (3, 'a3')",
        "INSERT INTO app.k VALUES (1, 'a')",
        "INSERT INTO app.s VALUES (1, 'a')",
        "INSERT INTO app.l VALUES (1, 'a', '2026-01-01 00:00:01'), (2, 'a', '2026-01-01 00:00:05')",
    ])
    .await
    .unwrap();
    b.exec(&[
        "INSERT INTO app.o VALUES (1, 'b1'), (3, 'a3'), (4, 'b4')",
        "INSERT INTO app.k VALUES (1, 'b')",
        "INSERT INTO app.s VALUES (1, 'b')",
        "INSERT INTO app.l VALUES (1, 'b', '2026-01-01 00:00:02'), (2, 'b', '2026-01-01 00:00:03')",
    ])
    .await
    .unwrap();
    let dir = TempDir::new().unwrap();
    let mut config = direction(&a, &b, 1, true, dir.path());
    let table = |name: &str, policy, column: Option<&str>| conf::ConflictTable {
        db_name: "app".into(),
        tbl_name: name.into(),
        policy,
        column: column.map(str::to_owned),
    };
    config.syncer.conflict = Some(conf::Conflict {
        policy: conf::ConflictPolicy::Overwrite,
        table: vec![
            table("k", conf::ConflictPolicy::Keep, None),
            table("s", conf::ConflictPolicy::Stop, None),
            table("l", conf::ConflictPolicy::Lww, Some("at")),
        ],
    });
    let mut drainer = replicating(&config, WAIT).await.unwrap();

    a.exec(&[
        // overwrite: another row there (update-differs), no row (update-missing), the
        // same row (no conflict), a key taken by another row (insert-exists), a new key.
        "UPDATE app.o SET v = 'a1x' WHERE id = 1",
        "UPDATE app.o SET v = 'a2x' WHERE id = 2",
        "UPDATE app.o SET v = 'a3x' WHERE id = 3",
        "INSERT INTO app.o VALUES (4, 'a4'), (5, 'a5')",
        // keep: the downstream's row stays.
        "UPDATE app.k SET v = 'ax' WHERE id = 1",
        // lww: older than B's row (skipped), newer than B's (applied).
        "UPDATE app.l SET v = 'ax', at = '2026-01-01 00:00:01.5' WHERE id = 1",
        "UPDATE app.l SET v = 'ay', at = '2026-01-01 00:00:06' WHERE id = 2",
    ])
    .await
    .unwrap();
    // `/status` counts the conflicts once they are committed.
    poll_until("the conflicts counted in /status", WAIT, || async {
        let status = drainer_status(&config).await.map_err(|e| e.to_string())?;
        let c = &status["conflicts"];
        let counts = (
            c["update-differs"]["applied"].as_u64(),
            c["update-differs"]["skipped"].as_u64(),
            c["update-missing"]["applied"].as_u64(),
            c["insert-exists"]["applied"].as_u64(),
        );
        if counts == (Some(2), Some(2), Some(1), Some(1)) {
            Ok(())
        } else {
            Err(format!("{c}"))
        }
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", drainer.stderr()));
    // stop: last.
    a.exec(&["UPDATE app.s SET v = 'ax' WHERE id = 1"])
        .await
        .unwrap();
    let stopped = drainer.wait(WAIT).await.unwrap();
    assert_eq!(stopped.code(), Some(1), "{}", stopped.stderr);
    assert!(
        stopped.stderr.contains("conflict on app.s id=1")
            && stopped.stderr.contains("update-differs")
            && stopped.stderr.contains("at gtid "),
        "{}",
        stopped.stderr
    );

    // The operator makes the row as the upstream expected it; the drainer resumes there.
    b.exec(&["UPDATE app.s SET v = 'a' WHERE id = 1"])
        .await
        .unwrap();
    let drainer = DrainerCommand::new()
        .unwrap()
        .config(&config)
        .unwrap()
        .spawn_replicating(WAIT)
        .await
        .unwrap();
    poll_until("the stopped row to apply after the fix", WAIT, || async {
        match rows(&b, "s").await.as_slice() {
            [(1, v)] if v == "ax" => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", drainer.stderr()));

    assert_eq!(
        rows(&b, "o").await,
        pairs(&[(1, "a1x"), (2, "a2x"), (3, "a3x"), (4, "a4"), (5, "a5")])
    );
    assert_eq!(rows(&b, "k").await, pairs(&[(1, "b")]));
    assert_eq!(rows(&b, "l").await, pairs(&[(1, "b"), (2, "ay")]));
    // One record per conflict (none for the rows that matched, none for the fixed one),
    // though a transaction stopped and the drainer started again.
    let expected = [
        ("k", "id=1", "update-differs", "skipped"),
        ("l", "id=1", "update-differs", "skipped"),
        ("l", "id=2", "update-differs", "applied"),
        ("o", "id=1", "update-differs", "applied"),
        ("o", "id=2", "update-missing", "applied"),
        ("o", "id=4", "insert-exists", "applied"),
    ];
    let got = records(&b).await;
    let want: Vec<(String, String, String, String)> = expected
        .iter()
        .map(|(t, k, kind, r)| {
            (
                t.to_string(),
                k.to_string(),
                kind.to_string(),
                r.to_string(),
            )
        })
        .collect();
    assert_eq!(got, want);
    // The record is never replicated: site A has no conflict table rows.
    assert!(records(&a).await.is_empty());

    // `drainer conflicts show` prints them, newest first.
    let shown = DrainerCommand::new()
        .unwrap()
        .arg("conflicts")
        .arg("show")
        .arg("--since")
        .arg("1h")
        .config(&config)
        .unwrap()
        .output(WAIT)
        .await
        .unwrap();
    assert_eq!(shown.code(), Some(0), "{}", shown.stderr);
    assert!(
        shown
            .stdout
            .contains("app.o id=4  insert-exists -> applied"),
        "{}",
        shown.stdout
    );
    assert!(
        shown
            .stdout
            .contains(r#"found here:      {"id": 4, "v": "b4"}"#),
        "{}",
        shown.stdout
    );
    assert!(
        shown.stdout.contains("6 conflict records of channel 1"),
        "{}",
        shown.stdout
    );
    let bad = DrainerCommand::new()
        .unwrap()
        .arg("conflicts")
        .arg("show")
        .arg("--since")
        .arg("yesterday")
        .config(&config)
        .unwrap()
        .output(WAIT)
        .await
        .unwrap();
    assert_eq!(bad.code(), Some(2), "{}", bad.stderr);
}

/// A two-way pair with detection in both directions, writing different rows (each site
/// its own keys), with a MyISAM table, savepoints rolled back to and a session sql_mode:
/// nothing the drainers write comes back as a conflict or a loop, and the sites end equal.
#[tokio::test]
async fn a_two_way_pair_with_partitioned_writes_records_no_conflict() {
    use integration::{binlogs_still, text_rows, two_writable_sites};
    let (a, b) = two_writable_sites(&[
        "CREATE DATABASE app",
        "CREATE TABLE app.t (id INT AUTO_INCREMENT PRIMARY KEY, v VARCHAR(20)) ENGINE=InnoDB",
        "CREATE TABLE app.m (id INT AUTO_INCREMENT PRIMARY KEY, v VARCHAR(20)) ENGINE=MyISAM",
    ])
    .await
    .unwrap();
    let dir = TempDir::new().unwrap();
    let detect = || {
        Some(conf::Conflict {
            policy: conf::ConflictPolicy::Stop,
            table: Vec::new(),
        })
    };
    let mut ab = direction(&a, &b, 1, true, dir.path());
    ab.syncer.conflict = detect();
    let mut ba = direction(&b, &a, 1, false, dir.path());
    ba.syncer.conflict = detect();
    let _ab = replicating(&ab, WAIT).await.unwrap();
    let _ba = replicating(&ba, WAIT).await.unwrap();
    for (site, name) in [(&a, "a"), (&b, "b")] {
        site.exec(&[
            "SET SESSION sql_mode = 'ANSI_QUOTES,NO_BACKSLASH_ESCAPES'",
            &format!(
                "BEGIN; INSERT INTO app.t (v) VALUES ('{name}1'); SAVEPOINT s; \
                 INSERT INTO app.t (v) VALUES ('{name}-gone'); ROLLBACK TO SAVEPOINT s; \
                 INSERT INTO app.t (v) VALUES ('{name}2'); COMMIT"
            ),
            &format!("INSERT INTO app.m (v) VALUES ('{name}m')"),
            // By key (found by a plain read): a scan of the table would lock the rows the
            // drainer is writing too, and deadlock with it.
            &format!("SELECT id INTO @one FROM app.t WHERE v = '{name}1'"),
            "UPDATE app.t SET v = CONCAT(v, '!') WHERE id = @one",
            &format!("SELECT id INTO @two FROM app.t WHERE v = '{name}2'"),
            "DELETE FROM app.t WHERE id = @two",
        ])
        .await
        .unwrap();
    }
    poll_until("both sites equal", WAIT, || async {
        let (ta, tb) = (
            text_rows(&a, "SELECT * FROM app.t ORDER BY id").await?,
            text_rows(&b, "SELECT * FROM app.t ORDER BY id").await?,
        );
        let (ma, mb) = (
            text_rows(&a, "SELECT * FROM app.m ORDER BY id").await?,
            text_rows(&b, "SELECT * FROM app.m ORDER BY id").await?,
        );
        if ta == tb && ma == mb && ta.len() == 2 && ma.len() == 2 {
            Ok(())
        } else {
            Err(format!("t {ta:?} / {tb:?}; m {ma:?} / {mb:?}"))
        }
    })
    .await
    .unwrap();
    binlogs_still(&[&a, &b]).await.unwrap();
    assert!(records(&a).await.is_empty(), "{:?}", records(&a).await);
    assert!(records(&b).await.is_empty(), "{:?}", records(&b).await);
}

/// A transaction too large to buffer streams into the open downstream transaction; its
/// conflicts (100 rows of 30,000 that differ downstream) are found in its multi-row
/// statements, and it is read again row by row to settle them, each recorded once.
#[tokio::test]
async fn a_streamed_transaction_settles_its_conflicts() {
    let (a, b) = two_sites(&[
        "CREATE DATABASE app",
        "CREATE TABLE app.big (id INT PRIMARY KEY, v VARCHAR(20) NOT NULL)",
        "INSERT INTO app.big SELECT seq, 'same' FROM app.seq_1_to_30000",
    ])
    .await
    .unwrap();
    b.exec(&["UPDATE app.big SET v = 'b' WHERE id % 300 = 0"])
        .await
        .unwrap();
    let dir = TempDir::new().unwrap();
    let mut config = direction(&a, &b, 1, false, dir.path());
    config.syncer.conflict = Some(conf::Conflict {
        policy: conf::ConflictPolicy::Keep,
        table: Vec::new(),
    });
    let drainer = replicating(&config, WAIT).await.unwrap();
    a.exec(&["UPDATE app.big SET v = CONCAT('a', id)"])
        .await
        .unwrap();
    poll_until("the big transaction applied", WAIT, || async {
        let n: Vec<(u64, u64)> = b
            .query("SELECT SUM(v LIKE 'a%'), SUM(v = 'b') FROM app.big")
            .await
            .map_err(|e| e.to_string())?;
        match n.first() {
            Some((29_900, 100)) => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", drainer.stderr()));
    assert!(
        drainer.stderr().contains("streaming"),
        "{}",
        drainer.stderr()
    );
    let got = records(&b).await;
    assert_eq!(got.len(), 100);
    assert!(got
        .iter()
        .all(|r| r.0 == "big" && r.2 == "update-differs" && r.3 == "skipped"));
}
