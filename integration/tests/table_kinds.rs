//! MariaDB's other table kinds and stored objects, between two writable sites:
//! system-versioned tables replicate with their history, exactly as MariaDB's replica
//! keeps it; a sequence is created on both sites and each site keeps its own; views,
//! procedures, functions, triggers and events run downstream with `sync-ddl = true` (an
//! event disabled there, as a replica has it) and are counted as skipped without.
//! Each of these stopped replication or was passed over silently before.

use std::time::Duration;

use integration::{
    direction, drainer_status, eventually, text_rows, two_writable_sites, DrainerProcess, MariaDb,
};

const WAIT: Duration = Duration::from_secs(60);

/// Waits until `sql` answers the same on both sites, and that answer has `n` rows.
async fn same(a: &MariaDb, b: &MariaDb, sql: &str, n: usize, drainers: &[&DrainerProcess]) {
    eventually(sql, WAIT, || async {
        let (x, y) = (text_rows(a, sql).await?, text_rows(b, sql).await?);
        if x == y && x.len() == n {
            Ok(())
        } else {
            let logs: Vec<String> = drainers.iter().map(|d| d.stderr()).collect();
            Err(format!("A {x:?}\nB {y:?}\n{}", logs.join("\n----\n")))
        }
    })
    .await;
}

async fn nextval(site: &MariaDb) -> i64 {
    let v: Vec<i64> = site.query("SELECT NEXTVAL(app.ids)").await.unwrap();
    v[0]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn versioned_tables_sequences_and_stored_objects_between_two_sites() {
    let (a, b) = two_writable_sites(&["CREATE DATABASE app"]).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ab = integration::replicating(&direction(&a, &b, 1, true, dir.path()), WAIT)
        .await
        .unwrap();
    let ba_config = direction(&b, &a, 1, false, dir.path());
    let ba = integration::replicating(&ba_config, WAIT).await.unwrap();
    let drainers = [&ab, &ba];

    // A system-versioned table, written on both sites: rows and history alike.
    a.exec(&[
        "CREATE TABLE app.prices (id INT PRIMARY KEY, p INT) WITH SYSTEM VERSIONING",
        "INSERT INTO app.prices VALUES (1, 10), (2, 20)",
        "UPDATE app.prices SET p = 11 WHERE id = 1",
    ])
    .await
    .unwrap();
    let history = "SELECT id, p, row_start, row_end FROM app.prices FOR SYSTEM_TIME ALL \
                   ORDER BY id, row_start";
    same(&a, &b, history, 3, &drainers).await;
    b.exec(&[
        "UPDATE app.prices SET p = 21 WHERE id = 2",
        "DELETE FROM app.prices WHERE id = 1",
    ])
    .await
    .unwrap();
    same(&a, &b, history, 4, &drainers).await;
    let current: Vec<String> = text_rows(&a, "SELECT id, p FROM app.prices").await.unwrap();
    assert_eq!(current, ["2|21"]);

    // A sequence: created on both sites, each keeps its own (INCREMENT BY 0 follows the
    // sites' auto_increment_increment and offset).
    a.exec(&["CREATE SEQUENCE app.ids START WITH 1 INCREMENT BY 0"])
        .await
        .unwrap();
    same(
        &a,
        &b,
        "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_TYPE = 'SEQUENCE'",
        1,
        &drainers,
    )
    .await;
    let (a1, b1) = (nextval(&a).await, nextval(&b).await);
    let (a2, b2) = (nextval(&a).await, nextval(&b).await);
    assert!(
        a1 % 2 == 1 && a2 % 2 == 1 && b1 % 2 == 0 && b2 % 2 == 0,
        "A {a1} {a2}, B {b1} {b2}"
    );

    // Stored objects, from A (sync-ddl = true) to B.
    a.exec(&[
        "CREATE TABLE app.orders (id INT PRIMARY KEY, total INT)",
        "CREATE VIEW app.big_orders AS SELECT id FROM app.orders WHERE total > 100",
        "CREATE PROCEDURE app.add_order(i INT, t INT) INSERT INTO app.orders VALUES (i, t)",
        "CREATE FUNCTION app.twice(x INT) RETURNS INT DETERMINISTIC RETURN 2 * x",
        "CREATE EVENT app.purge ON SCHEDULE EVERY 1 DAY DO DELETE FROM app.orders WHERE total = 0",
        "CALL app.add_order(7, 700)",
    ])
    .await
    .unwrap();
    same(&a, &b, "SELECT * FROM app.big_orders", 1, &drainers).await;
    let objects = "SELECT ROUTINE_TYPE, ROUTINE_NAME FROM information_schema.ROUTINES \
                   WHERE ROUTINE_SCHEMA = 'app' ORDER BY 2";
    same(&a, &b, objects, 2, &drainers).await;
    let twice: Vec<i64> = b.query("SELECT app.twice(21)").await.unwrap();
    assert_eq!(twice, [42]);
    // The event runs on the site it was made on.
    let status = "SELECT STATUS FROM information_schema.EVENTS WHERE EVENT_NAME = 'purge'";
    eventually("the event downstream", WAIT, || async {
        let s = text_rows(&b, status).await?;
        (s == ["SLAVESIDE_DISABLED"])
            .then_some(())
            .ok_or(format!("{s:?}\n{}", ab.stderr()))
    })
    .await;
    assert_eq!(text_rows(&a, status).await.unwrap(), ["ENABLED"]);

    // From B (sync-ddl = false): tracked, not run on A, counted, logged.
    b.exec(&["CREATE VIEW app.small_orders AS SELECT id FROM app.orders WHERE total < 10"])
        .await
        .unwrap();
    eventually("B → A to count the skipped view", WAIT, || async {
        let s = drainer_status(&ba_config)
            .await
            .map_err(|e| e.to_string())?;
        (s["ddl_skipped"] == 1).then_some(()).ok_or(s.to_string())
    })
    .await;
    let on_a: Vec<String> = text_rows(
        &a,
        "SELECT TABLE_NAME FROM information_schema.VIEWS WHERE TABLE_SCHEMA = 'app'",
    )
    .await
    .unwrap();
    assert_eq!(on_a, ["big_orders"]);
    assert!(
        ba.stderr()
            .contains("not run downstream (sync-ddl = false)"),
        "{}",
        ba.stderr()
    );
    for d in drainers {
        assert!(!d.stderr().contains("ERROR"), "{}", d.stderr());
    }
}
