//! Schema history against a real MariaDB: DDL and DML interleaved, every row decoded with
//! the definition in force at its position and compared with what SELECT returned right
//! after it was written; a restart in the middle.

use std::time::Duration;

use checkpoint::Store;
use integration::{MariaDb, PUMP_PASSWORD, PUMP_USER};
use mysql_async::prelude::Queryable;
use pump_reader::{Change, LiveOptions, LiveReader, Position, StartAt, Txn, Upstream};
use schema::{decode_row, read_upstream, History, Value};

/// A step: statements, then the row to check as (table, id), if any.
type Step = (&'static [&'static str], Option<(&'static str, i64)>);
/// A row as text, keyed by (table, id).
type TextRow = ((String, i64), Vec<Option<String>>);

const STEPS: &[Step] = &[
    (&["INSERT INTO t VALUES (1, 'one', 10)"], Some(("t", 1))),
    (&["ALTER TABLE t ADD COLUMN m DATE AFTER id"], None),
    (&["INSERT INTO t VALUES (2, '2024-05-06', 'two', 20)"], Some(("t", 2))),
    (&["ALTER TABLE t DROP COLUMN b"], None),
    (&["INSERT INTO t VALUES (3, NULL, 'three')"], Some(("t", 3))),
    (&["ALTER TABLE t ADD n INT"], None),
    (&["ALTER TABLE t MODIFY n INT UNSIGNED"], None),
    (&["INSERT INTO t VALUES (4, '2000-01-01', 'four', 4294967295)"], Some(("t", 4))),
    // The restart happens here.
    (&["RENAME TABLE t TO t2"], None),
    (&["INSERT INTO t2 VALUES (5, NULL, 'five', 5)"], Some(("t2", 5))),
    (&["DROP TABLE t2"], None),
    (&["CREATE TABLE t2 (id BIGINT PRIMARY KEY, d DECIMAL(10,2), e ENUM('x','y'), s VARCHAR(10) CHARACTER SET latin1)"], None),
    (&["INSERT INTO t2 VALUES (6, -12.5, 'y', 'café')"], Some(("t2", 6))),
    (&["UPDATE t2 SET d = 99.99, e = 'x' WHERE id = 6"], Some(("t2", 6))),
];
/// Steps read before the restart.
const BEFORE_RESTART: usize = 8;

fn upstream(server: &MariaDb) -> Upstream {
    Upstream {
        server: link::Server::plain(server.host(), server.port(), PUMP_USER, PUMP_PASSWORD),
        server_id: 9100 + server.server_id(),
    }
}

fn options() -> LiveOptions {
    LiveOptions {
        heartbeat: Duration::from_millis(200),
        dead_after: Duration::from_secs(5),
        ..LiveOptions::default()
    }
}

/// A value as the text protocol prints it (text columns converted from their charset).
fn text(value: Option<Value>, charset: Option<&str>) -> Option<String> {
    match value? {
        Value::Null => None,
        Value::Int(i) => Some(i.to_string()),
        Value::UInt(u) => Some(u.to_string()),
        Value::Decimal(d) => Some(d),
        Value::Date { year, month, day } => Some(format!("{year:04}-{month:02}-{day:02}")),
        Value::Enum { name, .. } => name,
        Value::Text(b) if charset == Some("latin1") => Some(b.iter().map(|&c| c as char).collect()),
        Value::Text(b) => Some(String::from_utf8(b.to_vec()).unwrap()),
        other => panic!("the test does not render {other:?}"),
    }
}

/// Reads the next transaction and applies it to the history; returns the decoded rows'
/// after images (or before images for deletes) as text, with their table and id.
async fn consume(
    reader: &mut LiveReader,
    store: &Store,
    history: &mut History,
) -> (Txn, Vec<((String, i64), Vec<Option<String>>)>) {
    let txn = tokio::time::timeout(Duration::from_secs(30), reader.next_txn())
        .await
        .expect("a transaction")
        .unwrap();
    let mut decoded = Vec::new();
    for change in &txn.changes {
        match change {
            Change::Statement(s) => {
                history
                    .apply(store, &txn.position, &s.schema, &s.text)
                    .unwrap();
            }
            Change::Rows(rows) => {
                let table = history
                    .catalog()
                    .table(&rows.table.schema, &rows.table.table)
                    .unwrap()
                    .clone();
                for row in &rows.rows {
                    let image = row.after.as_ref().or(row.before.as_ref()).unwrap();
                    let values = decode_row(&table, &rows.table, image).unwrap();
                    let id = match &values[0] {
                        Some(Value::Int(i)) => *i,
                        other => panic!("id {other:?}"),
                    };
                    let as_text = values
                        .into_iter()
                        .zip(&table.columns)
                        .map(|(v, c)| text(v, c.charset.as_deref()))
                        .collect();
                    decoded.push(((table.name.clone(), id), as_text));
                }
            }
            other => panic!("not in these transactions: {other:?}"),
        }
    }
    (txn, decoded)
}

#[tokio::test]
async fn every_row_decodes_as_select_returns_it_across_ddl_and_a_restart() {
    let server = MariaDb::start().await.unwrap();
    server
        .exec(&[
            "CREATE DATABASE app",
            "CREATE TABLE app.t (id INT PRIMARY KEY, a VARCHAR(20), b INT)",
        ])
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();

    // Bootstrap at the starting position, from the upstream's own definitions.
    let mut reader = LiveReader::connect(upstream(&server), StartAt::Now, options())
        .await
        .unwrap();
    let start = reader.position().clone();
    let mut history;
    let store = Store::open(dir.path()).unwrap();
    {
        let mut conn = server.conn().await.unwrap();
        let definitions = read_upstream(&mut conn, |schema, _| schema == "app")
            .await
            .unwrap();
        conn.disconnect().await.unwrap();
        history = History::load(&store, None).unwrap();
        history.bootstrap(&store, &start, &definitions).unwrap();
        assert_eq!(
            history.catalog().server.charset.as_deref(),
            Some("utf8mb4"),
            "the harness server's default"
        );
    }

    // Write every step, and what SELECT returns right after each row's statement.
    let mut expected: Vec<TextRow> = Vec::new();
    let mut conn = server.conn().await.unwrap();
    conn.query_drop("USE app").await.unwrap();
    for (statements, check) in STEPS {
        for sql in *statements {
            conn.query_drop(*sql).await.unwrap();
        }
        if let Some((table, id)) = check {
            let row: mysql_async::Row = conn
                .query_first(format!("SELECT * FROM {table} WHERE id = {id}"))
                .await
                .unwrap()
                .unwrap();
            let values: Vec<Option<String>> = (0..row.len())
                .map(|i| row.get::<Option<String>, _>(i).unwrap())
                .collect();
            expected.push(((table.to_string(), *id), values));
        }
    }
    conn.disconnect().await.unwrap();

    let mut decoded = Vec::new();
    let mut last: Position = start;
    for _ in 0..BEFORE_RESTART {
        let (txn, rows) = consume(&mut reader, &store, &mut history).await;
        last = txn.position;
        decoded.extend(rows);
    }

    // Restart: a new reader from the last position, the history loaded up to it.
    drop(reader);
    drop(history);
    drop(store);
    let store = Store::open(dir.path()).unwrap();
    let mut history = History::load(&store, Some(&last)).unwrap();
    let mut reader = LiveReader::connect(
        upstream(&server),
        StartAt::Gtid(last.gtids.clone().unwrap()),
        options(),
    )
    .await
    .unwrap();
    for _ in BEFORE_RESTART..STEPS.len() {
        let (_, rows) = consume(&mut reader, &store, &mut history).await;
        decoded.extend(rows);
    }

    assert_eq!(
        decoded.len(),
        expected.len(),
        "one decoded row per written row: {decoded:?}"
    );
    for ((key, want), (got_key, got)) in expected.iter().zip(&decoded) {
        assert_eq!(got_key, key, "rows in write order");
        assert_eq!(got, want, "row {key:?} decodes as SELECT returned it");
    }
    // The final definition is the recreated table's, in a fresh load too.
    let t2 = History::load(&store, None)
        .unwrap()
        .catalog()
        .table("app", "t2")
        .unwrap()
        .clone();
    let names: Vec<&str> = t2.columns.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["id", "d", "e", "s"]);
}
