//! Statements replay in the session context their binlog event carries, as MariaDB's own
//! replica runs them: foreign-key checks, SQL mode (`ANSI_QUOTES`,
//! `NO_BACKSLASH_ESCAPES`), the client's character set, the time zone; and rows written
//! with foreign-key checks off apply the same way downstream. Each of these stopped the
//! drainer or left the sites silently different before.

use std::time::Duration;

use integration::{eventually, marked_config_for, text_rows, two_sites, DrainerProcess, MariaDb};
use mysql_async::prelude::Queryable;

const WAIT: Duration = Duration::from_secs(60);

/// Every table of `app`: its definition and its rows, in a stable order.
async fn dump(site: &MariaDb) -> Result<Vec<String>, String> {
    let tables = text_rows(
        site,
        "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = 'app' ORDER BY 1",
    )
    .await?;
    let mut out = Vec::new();
    for t in tables {
        let create: Vec<(String, String)> = site
            .query(&format!("SHOW CREATE TABLE app.`{t}`"))
            .await
            .map_err(|e| e.to_string())?;
        out.push(create[0].1.clone());
        // Both servers run with the same time zone and character sets: the same text.
        let sql = format!("SELECT * FROM app.`{t}` ORDER BY 1");
        for row in text_rows(site, &sql).await? {
            out.push(format!("{t}: {row}"));
        }
    }
    Ok(out)
}

async fn same(a: &MariaDb, b: &MariaDb, drainer: &DrainerProcess, tables: usize) {
    eventually("the downstream to match the upstream", WAIT, || async {
        let (x, y) = (dump(a).await?, dump(b).await?);
        let defined = y.iter().filter(|l| l.starts_with("CREATE TABLE")).count();
        if x == y && defined == tables {
            Ok(())
        } else {
            Err(format!(
                "{defined} tables; first difference: {:?}\nupstream: {x:#?}\ndownstream: {y:#?}\n{}",
                x.iter().zip(&y).find(|(p, q)| p != q),
                drainer.stderr()
            ))
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statements_replay_in_the_session_context_they_ran_in() {
    let (a, b) = two_sites(&["CREATE DATABASE app"]).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = marked_config_for(&a, &b, dir.path()).unwrap();
    let drainer = integration::replicating(&config, WAIT).await.unwrap();
    let mut conn = a.conn().await.unwrap();

    // A dump restore: a child table before its parent, child rows before their parent.
    for sql in [
        "SET foreign_key_checks = 0",
        "CREATE TABLE app.child (id INT PRIMARY KEY, pid INT, \
         CONSTRAINT fk_parent FOREIGN KEY (pid) REFERENCES app.parent (id))",
        "CREATE TABLE app.parent (id INT PRIMARY KEY)",
        "INSERT INTO app.child VALUES (1, 10), (2, 20)",
        "INSERT INTO app.parent VALUES (10), (20)",
        "SET foreign_key_checks = 1",
        // Checked again: a parent deleted takes its children along (ON DELETE is not set,
        // so this one refuses; a child of an existing parent is fine).
        "INSERT INTO app.child VALUES (3, 10)",
    ] {
        conn.query_drop(sql).await.unwrap();
    }
    // ANSI_QUOTES: "…" names things.
    for sql in [
        "SET sql_mode = 'ANSI_QUOTES'",
        r#"CREATE TABLE "app"."quoted" ("id" INT PRIMARY KEY, "v" VARCHAR(10) DEFAULT 'x"y')"#,
        r#"INSERT INTO "app"."quoted" ("id") VALUES (1)"#,
        "SET sql_mode = DEFAULT",
    ] {
        conn.query_drop(sql).await.unwrap();
    }
    // NO_BACKSLASH_ESCAPES: a backslash in a default is itself.
    for sql in [
        "CREATE TABLE app.paths (id INT PRIMARY KEY)",
        "INSERT INTO app.paths VALUES (1), (2)",
        "SET sql_mode = 'NO_BACKSLASH_ESCAPES'",
        r"ALTER TABLE app.paths ADD COLUMN p VARCHAR(20) NOT NULL DEFAULT 'C:\dir\'",
        "SET sql_mode = DEFAULT",
    ] {
        conn.query_drop(sql).await.unwrap();
    }
    // The session's time zone: existing rows take the default's instant.
    for sql in [
        "CREATE TABLE app.zoned (id INT PRIMARY KEY)",
        "INSERT INTO app.zoned VALUES (1), (2)",
        "SET time_zone = '+05:00'",
        "ALTER TABLE app.zoned ADD COLUMN ts TIMESTAMP NOT NULL DEFAULT '2024-01-01 00:00:00'",
        "SET time_zone = DEFAULT",
    ] {
        conn.query_drop(sql).await.unwrap();
    }
    // A latin1 client: names and defaults with é, è, à, sent as latin1 bytes.
    conn.query_drop("SET NAMES latin1").await.unwrap();
    let latin1 = |text: &str| -> Vec<u8> { text.chars().map(|c| c as u32 as u8).collect() };
    for sql in [
        "CREATE TABLE app.accents (id INT PRIMARY KEY, café VARCHAR(10) DEFAULT 'èà') \
         DEFAULT CHARSET = utf8mb4",
        "INSERT INTO app.accents (id) VALUES (1)",
        "INSERT INTO app.accents VALUES (2, 'à la')",
    ] {
        conn.query_drop(latin1(sql)).await.unwrap();
    }
    conn.disconnect().await.ok();

    same(&a, &b, &drainer, 6).await;
    let zoned: Vec<(u32, i64)> = b
        .query("SELECT id, UNIX_TIMESTAMP(ts) FROM app.zoned ORDER BY id")
        .await
        .unwrap();
    // 2024-01-01 00:00:00 at +05:00.
    assert_eq!(zoned, [(1, 1_704_049_200), (2, 1_704_049_200)]);
    let paths: Vec<String> = b.query("SELECT p FROM app.paths").await.unwrap();
    assert_eq!(paths, [r"C:\dir\", r"C:\dir\"]);
    assert!(!drainer.stderr().contains("ERROR"), "{}", drainer.stderr());
}
