//! Storage engines in two-way replication: rows of non-transactional tables (MyISAM,
//! Aria) replicate both ways and through a chain like any other, and never loop. MariaDB
//! logs such a row as an event group of its own, outside the transaction that carries the
//! mark row, so only the session's server id marks it (see docs/bidirectional.md).

use std::time::Duration;

use integration::{binlogs_still, direction, eventually, DrainerProcess, MariaDb};

const WAIT: Duration = Duration::from_secs(90);
const SETUP: &[&str] = &[
    "CREATE DATABASE app",
    "CREATE TABLE app.m (a INT) ENGINE=MyISAM",
    "CREATE TABLE app.r (id INT PRIMARY KEY, v INT) ENGINE=Aria",
    "CREATE TABLE app.kv (id INT PRIMARY KEY, v INT) ENGINE=InnoDB",
];

/// Every row of the three tables, as text, in a fixed order.
async fn dump(site: &MariaDb) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    for (table, sql) in [
        ("m", "SELECT CONCAT('m ', a) FROM app.m ORDER BY a"),
        (
            "r",
            "SELECT CONCAT('r ', id, ' ', v) FROM app.r ORDER BY id",
        ),
        (
            "kv",
            "SELECT CONCAT('kv ', id, ' ', v) FROM app.kv ORDER BY id",
        ),
    ] {
        let rows: Vec<String> = site.query(sql).await.map_err(|e| format!("{table}: {e}"))?;
        out.extend(rows);
    }
    Ok(out)
}

fn logs(drainers: &[&DrainerProcess]) -> String {
    drainers
        .iter()
        .map(|d| d.stderr())
        .collect::<Vec<_>>()
        .join("\n----\n")
}

/// A ↔ B on channel 1 and B → C on channel 2: MyISAM and Aria rows written on A and on B
/// reach every site exactly once (a single row became thousands before), an Aria row
/// updated on the other site comes back updated (it stopped B → A on a duplicate key
/// before), and every binlog stops growing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn non_transactional_rows_replicate_both_ways_and_never_loop() {
    let (a, b, c) = tokio::join!(MariaDb::start(), MariaDb::start(), MariaDb::start());
    let (a, b, c) = (a.unwrap(), b.unwrap(), c.unwrap());
    for site in [&a, &b, &c] {
        site.exec(SETUP).await.unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    let start = |config: conf::Config| async move {
        integration::replicating(&config, WAIT).await.unwrap()
    };
    let ab = start(direction(&a, &b, 1, true, dir.path())).await;
    let ba = start(direction(&b, &a, 1, false, dir.path())).await;
    let bc = start(direction(&b, &c, 2, true, dir.path())).await;
    let drainers = [&ab, &ba, &bc];

    a.exec(&[
        "INSERT INTO app.m VALUES (1)",
        "INSERT INTO app.r VALUES (1, 1)",
        // A non-transactional row inside a transaction: MariaDB logs it on its own.
        "BEGIN",
        "INSERT INTO app.kv VALUES (1, 1)",
        "INSERT INTO app.m VALUES (2)",
        "COMMIT",
    ])
    .await
    .unwrap();
    eventually("A's rows on B", WAIT, || async {
        let rows = dump(&b).await?;
        if rows.contains(&"r 1 1".to_owned()) && rows.contains(&"m 2".to_owned()) {
            Ok(())
        } else {
            Err(format!("{rows:?}\n{}", logs(&drainers)))
        }
    })
    .await;
    b.exec(&[
        "INSERT INTO app.m VALUES (100)",
        "INSERT INTO app.r VALUES (100, 1)",
        "UPDATE app.r SET v = 2 WHERE id = 1",
    ])
    .await
    .unwrap();

    let expected: Vec<String> = ["m 1", "m 2", "m 100", "r 1 2", "r 100 1", "kv 1 1"]
        .map(String::from)
        .to_vec();
    eventually("every site to hold each row once", WAIT, || async {
        for (name, site) in [("A", &a), ("B", &b), ("C", &c)] {
            let rows = dump(site).await?;
            if rows != expected {
                return Err(format!("{name}: {rows:?}\n{}", logs(&drainers)));
            }
        }
        Ok(())
    })
    .await;
    // Settled: nothing ping-pongs, and every drainer still runs.
    let sites = [&a, &b, &c];
    if let Err(e) = binlogs_still(&sites).await {
        panic!("{e}\n{}", logs(&drainers));
    }
    for site in sites {
        assert_eq!(dump(site).await.unwrap(), expected);
    }
    for d in drainers {
        assert!(!d.stderr().contains("ERROR"), "{}", d.stderr());
    }
}
