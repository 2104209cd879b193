//! The schema tracker against a real MariaDB: after each statement, every table as the
//! tracker follows it equals the table the server shows (`SHOW CREATE TABLE`, read as a
//! bootstrap reads it): columns in row-image order with their types, nullability,
//! visibility and system-versioning role, keys, indexes, versioning, sequences.
//! Covers forms that stopped replication before: option-only ALTERs (`STORAGE DISK`),
//! `SERIAL DEFAULT VALUE`, the index InnoDB makes for a foreign key, system versioning,
//! sequences.

use std::collections::BTreeSet;

use integration::MariaDb;
use schema::{read_upstream, Catalog, Period, Table, Versioning};

/// What the tracker must get right of a table.
#[derive(Debug, PartialEq, Eq)]
struct Essence {
    columns: Vec<(String, String, bool, bool, Option<Period>)>,
    primary: Option<Vec<String>>,
    unique: BTreeSet<(String, Vec<String>)>,
    indexes: BTreeSet<(String, Vec<String>)>,
    versioning: Option<Versioning>,
    sequence: bool,
}

fn essence(t: &Table) -> Essence {
    let lower = |v: &[String]| v.iter().map(|c| c.to_ascii_lowercase()).collect::<Vec<_>>();
    let keys = |list: &[schema::Index]| {
        list.iter()
            .map(|k| (k.name.to_ascii_lowercase(), lower(&k.columns)))
            .collect()
    };
    Essence {
        columns: t
            .columns
            .iter()
            .map(|c| {
                (
                    c.name.clone(),
                    c.ty.to_string(),
                    c.nullable,
                    c.invisible,
                    c.period,
                )
            })
            .collect(),
        primary: t.primary_key.as_ref().map(|k| lower(&k.columns)),
        unique: keys(&t.unique_keys),
        indexes: keys(&t.indexes),
        versioning: t.versioning,
        sequence: t.sequence,
    }
}

/// The server's tables of `app`, as a bootstrap reads them.
async fn server_tables(server: &MariaDb) -> Catalog {
    let mut conn = server.conn().await.unwrap();
    let snapshot = read_upstream(&mut conn, |s, _| s == "app").await.unwrap();
    let mut catalog = Catalog::new();
    catalog.server = snapshot.server.clone();
    for (schema, sql) in &snapshot.statements {
        catalog
            .apply(schema, sql)
            .unwrap_or_else(|e| panic!("the server's own definition: {e}"));
    }
    catalog
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tracker_follows_the_server_statement_by_statement() {
    let server = MariaDb::start().await.unwrap();
    let mut conn = server.conn().await.unwrap();
    let mut tracked = server_tables(&server).await;
    let statements = [
        "CREATE DATABASE app",
        "CREATE TABLE app.t1 (id INT PRIMARY KEY, v INT)",
        // Options that change no column or key.
        "ALTER TABLE app.t1 STORAGE DISK",
        "ALTER TABLE app.t1 ENGINE=InnoDB, ROW_FORMAT=DYNAMIC, STATS_PERSISTENT=0, COMMENT='c'",
        "ALTER TABLE app.t1 FORCE",
        // Column attributes that change no value.
        "CREATE TABLE app.t3 (id INT PRIMARY KEY, g POINT REF_SYSTEM_ID=4326)",
        // SERIAL DEFAULT VALUE: NOT NULL AUTO_INCREMENT UNIQUE.
        "CREATE TABLE app.t2 (id INT PRIMARY KEY, s BIGINT SERIAL DEFAULT VALUE)",
        // The index InnoDB makes for a foreign key, named as the server names it.
        "CREATE TABLE app.p (id INT PRIMARY KEY)",
        "CREATE TABLE app.c1 (id INT PRIMARY KEY, pid INT, \
         CONSTRAINT fk1 FOREIGN KEY (pid) REFERENCES app.p (id))",
        "ALTER TABLE app.c1 DROP FOREIGN KEY fk1",
        "ALTER TABLE app.c1 DROP INDEX fk1",
        "CREATE TABLE app.c2 (id INT PRIMARY KEY, pid INT, FOREIGN KEY (pid) REFERENCES app.p (id))",
        "CREATE TABLE app.c3 (id INT PRIMARY KEY, pid INT, \
         CONSTRAINT fk3 FOREIGN KEY ix3 (pid) REFERENCES app.p (id), KEY k (id, pid))",
        "ALTER TABLE app.c3 ADD COLUMN q INT, ADD CONSTRAINT FOREIGN KEY ix4 (q) REFERENCES app.p (id)",
        // Covered by an index of the same statement: no index of its own.
        "ALTER TABLE app.c1 ADD INDEX both_cols (pid, id), \
         ADD CONSTRAINT fk5 FOREIGN KEY (pid) REFERENCES app.p (id)",
        // System versioning: implicit and declared period columns.
        "CREATE TABLE app.sv1 (id INT PRIMARY KEY, v INT) WITH SYSTEM VERSIONING",
        "CREATE TABLE app.sv2 (id INT PRIMARY KEY, \
         s TIMESTAMP(6) GENERATED ALWAYS AS ROW START INVISIBLE, \
         e TIMESTAMP(6) GENERATED ALWAYS AS ROW END INVISIBLE, \
         PERIOD FOR SYSTEM_TIME(s, e)) WITH SYSTEM VERSIONING",
        "SET SESSION system_versioning_alter_history = KEEP",
        "ALTER TABLE app.sv1 ADD COLUMN w INT",
        "ALTER TABLE app.sv1 ADD COLUMN z INT FIRST",
        "ALTER TABLE app.t1 ADD SYSTEM VERSIONING",
        "ALTER TABLE app.t1 DROP SYSTEM VERSIONING",
        "ALTER TABLE app.sv2 DROP SYSTEM VERSIONING, DROP COLUMN s, DROP COLUMN e",
        "CREATE TABLE app.sv4 (id INT, u INT UNIQUE) WITH SYSTEM VERSIONING",
        "CREATE TABLE app.sv3 (id INT PRIMARY KEY, v INT WITH SYSTEM VERSIONING, \
         u INT WITHOUT SYSTEM VERSIONING)",
        // Sequences.
        "CREATE SEQUENCE app.seq1 START WITH 10 INCREMENT BY 0",
        "ALTER SEQUENCE app.seq1 RESTART WITH 100",
        "CREATE SEQUENCE app.seq2",
        "DROP SEQUENCE app.seq2",
    ];
    for sql in statements {
        use mysql_async::prelude::Queryable;
        conn.query_drop(sql)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
        tracked
            .apply("", sql)
            .unwrap_or_else(|e| panic!("the tracker: {e}"));
        let server_side = server_tables(&server).await;
        let names = |c: &Catalog| c.tables.keys().cloned().collect::<Vec<_>>();
        assert_eq!(names(&tracked), names(&server_side), "after `{sql}`");
        for (key, table) in &server_side.tables {
            assert_eq!(
                essence(&tracked.tables[key]),
                essence(table),
                "{}.{} after `{sql}`",
                key.0,
                key.1
            );
        }
    }
}
