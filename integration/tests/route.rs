//! Renamed schemas and tables between the sites (issue 23, item 4): `[[syncer.route]]`
//! sends `app` on A to `app_eu` on B, and `app.orders` to `app_eu.orders_a`; the reverse
//! drainer routes them back. Rows and DDL from both sites, with writers on both, end in
//! equal tables under each site's own names, nothing under the other site's names, and
//! quiet binlogs. Routes that cannot work are refused before anything starts.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use integration::{
    binlogs_still, check_config, direction, poll_until, replicating, text_rows, two_writable_sites,
    DrainerCommand, MariaDb,
};
use mysql_async::prelude::Queryable;
use tempfile::TempDir;

const WAIT: Duration = Duration::from_secs(120);

fn route(db: &str, tbl: Option<&str>, to_db: Option<&str>, to_tbl: Option<&str>) -> conf::Route {
    conf::Route {
        db_name: db.into(),
        tbl_name: tbl.map(Into::into),
        target_db_name: to_db.map(Into::into),
        target_tbl_name: to_tbl.map(Into::into),
    }
}

/// The drainer exited with `code`, its error naming each of `needles`.
fn exited_naming(out: &integration::DrainerOutput, code: i32, needles: &[&str]) {
    assert_eq!(out.code(), Some(code), "{}", out.stderr);
    for needle in needles {
        assert!(out.stderr.contains(needle), "{needle}: {}", out.stderr);
    }
}

/// Inserts and updates in `schema`'s `orders` table and `users` table (the names on
/// `site`) until `stop`.
async fn writer(site: &MariaDb, schema: &str, orders: &str, stop: Arc<AtomicBool>) -> u64 {
    let mut conn = site.conn().await.unwrap();
    let mut n = 0;
    while !stop.load(Ordering::Relaxed) {
        conn.query_drop(format!(
            "INSERT INTO {schema}.{orders} (v) VALUES ('{schema}{n}')"
        ))
        .await
        .unwrap();
        let id = conn.last_insert_id().unwrap();
        conn.query_drop(format!(
            "UPDATE {schema}.{orders} SET v = CONCAT(v, '+') WHERE id = {id}"
        ))
        .await
        .unwrap();
        conn.query_drop(format!(
            "INSERT INTO {schema}.users (name) VALUES ('{schema}{n}')"
        ))
        .await
        .unwrap();
        n += 1;
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    n
}

/// `SHOW CREATE TABLE` on `site` without its name and AUTO_INCREMENT counter (each site
/// hands out its own keys), or `None` when there is no such table.
async fn shape(site: &MariaDb, table: &str) -> Option<String> {
    let rows: Vec<(String, String)> = site
        .query(&format!("SHOW CREATE TABLE {table}"))
        .await
        .ok()?;
    rows.into_iter().next().map(|(_, d)| {
        let body = d.split_once('(').map_or(d.as_str(), |(_, rest)| rest);
        body.split(' ')
            .filter(|w| !w.starts_with("AUTO_INCREMENT="))
            .collect::<Vec<_>>()
            .join(" ")
    })
}

/// Waits until `a_table` on A and `b_table` on B have the same definition (`present`),
/// or neither is there.
async fn alike(
    a: &MariaDb,
    a_table: &str,
    b: &MariaDb,
    b_table: &str,
    present: bool,
) -> Result<(), String> {
    poll_until(
        &format!("{a_table} on A as {b_table} on B"),
        WAIT,
        || async {
            let (x, y) = (shape(a, a_table).await, shape(b, b_table).await);
            match (&x, &y) {
                (Some(x), Some(y)) if present && x == y => Ok(()),
                (None, None) if !present => Ok(()),
                _ => Err(format!("A: {x:?}\nB: {y:?}")),
            }
        },
    )
    .await
    .map_err(|e| e.to_string())
}

#[tokio::test]
async fn renamed_schemas_and_tables_replicate_rows_and_ddl_both_ways() {
    let (a, b) = two_writable_sites(&[]).await.unwrap();
    let table = |schema: &str, name: &str| {
        format!("CREATE TABLE {schema}.{name} (id INT AUTO_INCREMENT PRIMARY KEY, v VARCHAR(40))")
    };
    a.exec(&[
        "CREATE DATABASE app",
        &table("app", "orders"),
        "CREATE TABLE app.users (id INT AUTO_INCREMENT PRIMARY KEY, name VARCHAR(40))",
    ])
    .await
    .unwrap();
    b.exec(&[
        "CREATE DATABASE app_eu",
        &table("app_eu", "orders_a"),
        "CREATE TABLE app_eu.users (id INT AUTO_INCREMENT PRIMARY KEY, name VARCHAR(40))",
    ])
    .await
    .unwrap();
    let dir = TempDir::new().unwrap();
    let mut ab = direction(&a, &b, 1, true, dir.path());
    ab.syncer.route = vec![
        route("app", None, Some("app_eu"), None),
        route("app", Some("orders"), None, Some("orders_a")),
    ];
    let mut ba = direction(&b, &a, 1, true, dir.path());
    ba.syncer.route = vec![
        route("app_eu", None, Some("app"), None),
        route("app_eu", Some("orders_a"), None, Some("orders")),
    ];
    // Rows written before a site has a new column apply with the columns both have.
    ab.syncer.to.sync_mode = 2;
    ba.syncer.to.sync_mode = 2;
    for config in [&ab, &ba] {
        let out = check_config(config, WAIT).await.unwrap();
        assert_eq!(out.code(), Some(0), "{}", out.stderr);
    }
    let to_b = replicating(&ab, WAIT).await.unwrap();
    let to_a = replicating(&ba, WAIT).await.unwrap();

    let logs = |e: String| panic!("{e}\n{}\n{}", to_b.stderr(), to_a.stderr());
    let stop = Arc::new(AtomicBool::new(false));
    let ddl = async {
        // A's ALTER of the renamed table, qualified.
        a.exec(&["ALTER TABLE app.orders ADD COLUMN c INT DEFAULT 7"])
            .await
            .unwrap();
        alike(&a, "app.orders", &b, "app_eu.orders_a", true)
            .await
            .unwrap_or_else(&logs);
        // B's, unqualified (its current schema is routed too).
        let mut conn = b.conn().await.unwrap();
        conn.query_drop("USE app_eu").await.unwrap();
        conn.query_drop("ALTER TABLE orders_a ADD COLUMN d VARCHAR(10) DEFAULT 'x'")
            .await
            .unwrap();
        alike(&a, "app.orders", &b, "app_eu.orders_a", true)
            .await
            .unwrap_or_else(&logs);
        // A table made on A, filled on B, renamed on B, dropped on A.
        a.exec(&["CREATE TABLE app.fresh (id INT PRIMARY KEY, w INT)"])
            .await
            .unwrap();
        alike(&a, "app.fresh", &b, "app_eu.fresh", true)
            .await
            .unwrap_or_else(&logs);
        b.exec(&["INSERT INTO app_eu.fresh VALUES (1, 1), (2, 2)"])
            .await
            .unwrap();
        conn.query_drop("RENAME TABLE fresh TO fresh2")
            .await
            .unwrap();
        alike(&a, "app.fresh2", &b, "app_eu.fresh2", true)
            .await
            .unwrap_or_else(&logs);
        poll_until("fresh2's rows on A", WAIT, || async {
            let rows = text_rows(&a, "SELECT * FROM app.fresh2 ORDER BY id").await?;
            (rows == ["1|1", "2|2"])
                .then_some(())
                .ok_or(format!("{rows:?}"))
        })
        .await
        .unwrap();
        a.exec(&["DROP TABLE app.fresh2"]).await.unwrap();
        alike(&a, "app.fresh2", &b, "app_eu.fresh2", false)
            .await
            .unwrap_or_else(&logs);
        stop.store(true, Ordering::Relaxed);
    };
    let (wa, wb, ()) = tokio::join!(
        writer(&a, "app", "orders", Arc::clone(&stop)),
        writer(&b, "app_eu", "orders_a", Arc::clone(&stop)),
        ddl
    );
    assert!(wa > 20 && wb > 20, "{wa} and {wb} rows");
    for (on_a, on_b) in [
        (
            "SELECT * FROM app.orders ORDER BY id",
            "SELECT * FROM app_eu.orders_a ORDER BY id",
        ),
        (
            "SELECT * FROM app.users ORDER BY id",
            "SELECT * FROM app_eu.users ORDER BY id",
        ),
    ] {
        poll_until(on_a, WAIT, || async {
            let (ra, rb) = (text_rows(&a, on_a).await?, text_rows(&b, on_b).await?);
            if ra == rb && ra.len() as u64 >= wa + wb {
                Ok(())
            } else {
                Err(format!("{} / {} rows", ra.len(), rb.len()))
            }
        })
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}\n{}", to_b.stderr(), to_a.stderr()));
    }
    binlogs_still(&[&a, &b]).await.unwrap();
    // Nothing went under the other site's names.
    for (site, foreign) in [(&a, "app_eu"), (&b, "app")] {
        let schemas = text_rows(site, "SHOW DATABASES").await.unwrap();
        assert!(!schemas.iter().any(|s| s == foreign), "{schemas:?}");
    }
    let tables = text_rows(&b, "SHOW TABLES FROM app_eu").await.unwrap();
    assert_eq!(tables, ["orders_a", "users"]);
}

/// Routes that cannot work are refused before anything starts, naming the rule; DDL
/// whose table names cannot be rewritten stops the drainer (naming skip-ddl) instead of
/// running against the upstream's names; verify and seed refuse routes.
#[tokio::test]
async fn routes_that_cannot_work_are_refused() {
    let (a, b) = two_writable_sites(&["CREATE DATABASE app", "CREATE DATABASE app_eu"])
        .await
        .unwrap();
    let dir = TempDir::new().unwrap();
    let mut config = direction(&a, &b, 1, true, dir.path());
    for (routes, message) in [
        (
            vec![route("app", None, None, Some("x"))],
            "syncer.route[0].target-tbl-name: needs tbl-name",
        ),
        (
            vec![route("app", Some("t"), None, None)],
            "syncer.route[0]: must give target-db-name or target-tbl-name",
        ),
        (
            vec![
                route("app", Some("a"), None, Some("c")),
                route("app", Some("b"), None, Some("c")),
            ],
            "syncer.route: routes app.a and app.b both to app.c",
        ),
        (
            vec![route("retl", None, Some("x"), None)],
            "syncer.route[0].db-name: must not route the mark table's schema",
        ),
    ] {
        config.syncer.route = routes;
        let out = check_config(&config, WAIT).await.unwrap();
        exited_naming(&out, 2, &[message]);
    }

    config.syncer.route = vec![route("app", None, Some("app_eu"), None)];
    for command in ["verify", "seed"] {
        let out = DrainerCommand::new()
            .unwrap()
            .arg(command)
            .config(&config)
            .unwrap()
            .output(WAIT)
            .await
            .unwrap();
        assert_eq!(out.code(), Some(2), "{}", out.stderr);
        assert!(
            out.stderr.contains("do not follow [[syncer.route]]"),
            "{}",
            out.stderr
        );
    }

    let drainer = replicating(&config, WAIT).await.unwrap();
    a.exec(&[
        "CREATE TABLE app.t (id INT PRIMARY KEY)",
        "CREATE VIEW app.v AS SELECT id FROM app.t",
    ])
    .await
    .unwrap();
    let mut drainer = drainer;
    let out = drainer.wait(WAIT).await.unwrap();
    exited_naming(&out, 1, &["[[syncer.route]]", "VIEW `app`.`v`", "skip-ddl"]);
    let tables = text_rows(&b, "SHOW TABLES FROM app_eu").await.unwrap();
    assert_eq!(tables, ["t"], "the CREATE TABLE before it went to app_eu");
}

/// A table without a table rule whose downstream name is a table rule's target (by its
/// own name, or through its schema's rule) would merge its rows into the routed table:
/// the drainer stops at its first rows, or at the DDL that makes it, naming both, and
/// nothing of it reaches the downstream.
#[tokio::test]
async fn a_table_that_would_share_a_routed_tables_target_stops_the_drainer() {
    let tables = [
        "CREATE TABLE app.orders (id INT PRIMARY KEY)",
        "CREATE TABLE app.orders_old (id INT PRIMARY KEY)",
    ];
    let (a, b) = two_writable_sites(&["CREATE DATABASE app"]).await.unwrap();
    a.exec(&tables).await.unwrap();
    b.exec(&tables[1..]).await.unwrap();
    let dir = TempDir::new().unwrap();
    let mut config = direction(&a, &b, 1, true, dir.path());
    config.syncer.route = vec![route("app", Some("orders"), None, Some("orders_old"))];
    let out = check_config(&config, WAIT).await.unwrap();
    assert_eq!(out.code(), Some(0), "{}", out.stderr);

    // Rows of a table the drainer found at its start.
    let mut drainer = replicating(&config, WAIT).await.unwrap();
    a.exec(&[
        "INSERT INTO app.orders VALUES (1)",
        "INSERT INTO app.orders_old VALUES (2)",
    ])
    .await
    .unwrap();
    let out = drainer.wait(WAIT).await.unwrap();
    exited_naming(
        &out,
        1,
        &[
            "app.orders_old would go to",
            "routes app.orders to",
            "target-tbl-name",
        ],
    );
    let rows = text_rows(&b, "SELECT id FROM app.orders_old")
        .await
        .unwrap();
    assert_eq!(rows, ["1"], "app.orders' row only");

    // DDL that makes such a table, through a schema's rule; the same drainer, its rules
    // changed, resumes at the transaction it stopped at.
    config.syncer.route = vec![
        route("crm", Some("items"), Some("app_eu"), None),
        route("shop", None, Some("app_eu"), None),
    ];
    let mut drainer = replicating(&config, WAIT).await.unwrap();
    a.exec(&[
        "CREATE DATABASE crm",
        "CREATE DATABASE shop",
        "CREATE TABLE crm.items (id INT PRIMARY KEY)",
        "CREATE TABLE shop.items (id INT PRIMARY KEY, extra INT)",
    ])
    .await
    .unwrap();
    let out = drainer.wait(WAIT).await.unwrap();
    exited_naming(&out, 1, &["shop.items would go to", "routes crm.items to"]);
    let rows = text_rows(&b, "SELECT id FROM app.orders_old ORDER BY id")
        .await
        .unwrap();
    assert_eq!(rows, ["1", "2"], "resumed at the row it stopped at");
    let columns = text_rows(
        &b,
        "SELECT COLUMN_NAME FROM information_schema.COLUMNS \
         WHERE TABLE_SCHEMA = 'app_eu' AND TABLE_NAME = 'items'",
    )
    .await
    .unwrap();
    assert_eq!(
        columns,
        ["id"],
        "crm.items' table, not changed by shop.items"
    );
}
