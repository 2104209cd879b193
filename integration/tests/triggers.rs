//! The same triggers on both sites (the usual case after a restore): a replicated row must
//! not fire the downstream's triggers, whose rows came in the upstream's binlog already.
//! Before, every audit row was written twice and a BEFORE UPDATE ran twice.

use std::time::Duration;

use integration::{direction, eventually, two_writable_sites, DrainerProcess, MariaDb};

const WAIT: Duration = Duration::from_secs(60);
const SETUP: &[&str] = &[
    "CREATE DATABASE app",
    "CREATE TABLE app.accounts (id INT PRIMARY KEY, balance INT NOT NULL, changes INT NOT NULL DEFAULT 0)",
    "CREATE TABLE app.audit (id INT PRIMARY KEY AUTO_INCREMENT, account INT, what VARCHAR(20))",
    "CREATE TRIGGER app.counted BEFORE UPDATE ON app.accounts FOR EACH ROW \
     SET NEW.changes = OLD.changes + 1",
    "CREATE TRIGGER app.audited AFTER INSERT ON app.accounts FOR EACH ROW \
     INSERT INTO app.audit (account, what) VALUES (NEW.id, 'opened')",
    "CREATE TRIGGER app.audited_update AFTER UPDATE ON app.accounts FOR EACH ROW \
     INSERT INTO app.audit (account, what) VALUES (NEW.id, 'changed')",
];

async fn dump(site: &MariaDb) -> Result<Vec<String>, String> {
    let mut out: Vec<String> = Vec::new();
    for sql in [
        "SELECT CONCAT_WS('|', 'account', id, balance, changes) FROM app.accounts ORDER BY id",
        "SELECT CONCAT_WS('|', 'audit', id, account, what) FROM app.audit ORDER BY id",
    ] {
        let rows: Vec<String> = site.query(sql).await.map_err(|e| e.to_string())?;
        out.extend(rows);
    }
    Ok(out)
}

async fn converged(a: &MariaDb, b: &MariaDb, drainers: &[&DrainerProcess], expected: &[&str]) {
    eventually("both sites to hold the same rows", WAIT, || async {
        let (x, y) = (dump(a).await?, dump(b).await?);
        if x == y && x == expected {
            Ok(())
        } else {
            let logs: Vec<String> = drainers.iter().map(|d| d.stderr()).collect();
            Err(format!("A {x:#?}\nB {y:#?}\n{}", logs.join("\n----\n")))
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicated_rows_fire_no_downstream_trigger() {
    let (a, b) = two_writable_sites(SETUP).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ab = integration::replicating(&direction(&a, &b, 1, true, dir.path()), WAIT)
        .await
        .unwrap();
    let ba = integration::replicating(&direction(&b, &a, 1, false, dir.path()), WAIT)
        .await
        .unwrap();

    a.exec(&[
        "INSERT INTO app.accounts (id, balance) VALUES (1, 100)",
        "UPDATE app.accounts SET balance = 150 WHERE id = 1",
    ])
    .await
    .unwrap();
    converged(
        &a,
        &b,
        &[&ab, &ba],
        &["account|1|150|1", "audit|1|1|opened", "audit|3|1|changed"],
    )
    .await;
    b.exec(&[
        "INSERT INTO app.accounts (id, balance) VALUES (2, 200)",
        "BEGIN",
        "UPDATE app.accounts SET balance = balance + 1",
        "COMMIT",
    ])
    .await
    .unwrap();
    // Each trigger ran once, on the site written: A's audit ids are odd, B's even.
    converged(
        &a,
        &b,
        &[&ab, &ba],
        &[
            "account|1|151|2",
            "account|2|201|1",
            "audit|1|1|opened",
            "audit|3|1|changed",
            "audit|4|2|opened",
            "audit|6|1|changed",
            "audit|8|2|changed",
        ],
    )
    .await;
    for d in [&ab, &ba] {
        assert!(!d.stderr().contains("ERROR"), "{}", d.stderr());
        assert!(
            d.stderr().contains("downstream tables with triggers"),
            "{}",
            d.stderr()
        );
    }
}
