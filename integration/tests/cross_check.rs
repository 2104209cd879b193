//! With `binlog_row_metadata = FULL` upstream, every table map is compared with the tracked
//! definition (issue 23, item 7): a table changed behind the schema history's back (DDL
//! outside the binlog) stops the drainer with both column lists named instead of decoding
//! rows into the wrong columns; signedness the binlog states wins.

use std::time::Duration;

use integration::{config_for, poll_until, replicating, text_rows, two_sites};
use tempfile::TempDir;

const WAIT: Duration = Duration::from_secs(60);

#[tokio::test]
async fn other_column_names_in_the_binlog_stop_the_drainer_naming_both() {
    let (a, b) = two_sites(&[
        "CREATE DATABASE app",
        "CREATE TABLE app.t (id INT PRIMARY KEY, a INT, c VARCHAR(10))",
    ])
    .await
    .unwrap();
    a.exec(&["SET GLOBAL binlog_row_metadata = FULL"])
        .await
        .unwrap();
    let dir = TempDir::new().unwrap();
    let config = config_for(&a, &b, dir.path()).unwrap();
    let mut drainer = replicating(&config, WAIT).await.unwrap();
    a.exec(&["INSERT INTO app.t VALUES (1, 1, 'one')"])
        .await
        .unwrap();
    poll_until("the first row", WAIT, || async {
        match text_rows(&b, "SELECT * FROM app.t").await?.as_slice() {
            [row] if row == "1|1|one" => Ok(()),
            rows => Err(format!("{rows:?}")),
        }
    })
    .await
    .unwrap();

    // The same layout (two INT columns swap names), so only the names tell.
    a.exec(&[
        "SET SESSION sql_log_bin = 0",
        "ALTER TABLE app.t CHANGE a b INT",
        "SET SESSION sql_log_bin = 1",
        "INSERT INTO app.t VALUES (2, 2, 'two')",
    ])
    .await
    .unwrap();
    let out = drainer.wait(WAIT).await.unwrap();
    assert_eq!(out.code(), Some(1), "{}", out.stderr);
    assert!(
        out.stderr.contains(
            "app.t: the binlog's column names differ from the tracked definition: column `a` \
             is `b` (the binlog: id, b, c; tracked: id, a, c)"
        ),
        "{}",
        out.stderr
    );
    let rows = text_rows(&b, "SELECT * FROM app.t ORDER BY id")
        .await
        .unwrap();
    assert_eq!(
        rows,
        ["1|1|one"],
        "nothing decoded with the wrong definition"
    );
}

#[tokio::test]
async fn signedness_the_binlog_states_wins() {
    let (a, b) = two_sites(&[
        "CREATE DATABASE app",
        "CREATE TABLE app.t (id INT PRIMARY KEY, n INT)",
    ])
    .await
    .unwrap();
    a.exec(&["SET GLOBAL binlog_row_metadata = FULL"])
        .await
        .unwrap();
    let dir = TempDir::new().unwrap();
    let config = config_for(&a, &b, dir.path()).unwrap();
    let _drainer = replicating(&config, WAIT).await.unwrap();
    // Made UNSIGNED on both sites outside the binlog: the history still says signed.
    for site in [&a, &b] {
        site.exec(&[
            "SET SESSION sql_log_bin = 0",
            "ALTER TABLE app.t MODIFY n INT UNSIGNED",
            "SET SESSION sql_log_bin = 1",
        ])
        .await
        .unwrap();
    }
    a.exec(&["INSERT INTO app.t VALUES (1, 4000000000)"])
        .await
        .unwrap();
    poll_until("the unsigned value", WAIT, || async {
        match text_rows(&b, "SELECT * FROM app.t").await?.as_slice() {
            [row] if row == "1|4000000000" => Ok(()),
            rows => Err(format!("{rows:?}")),
        }
    })
    .await
    .unwrap();
}
