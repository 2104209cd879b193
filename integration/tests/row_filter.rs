//! Row filters (issue 23, item 5): `[[syncer.row-filter]]` replicates only the rows its
//! condition holds for; an UPDATE moving a row into or out of it arrives as an INSERT or
//! a DELETE; a condition that cannot be read is bad configuration.

use std::time::Duration;

use integration::{check_config, config_for, poll_until, replicating, text_rows, two_sites};
use tempfile::TempDir;

const WAIT: Duration = Duration::from_secs(60);

#[tokio::test]
async fn only_the_rows_the_condition_holds_for_are_replicated() {
    let (a, b) = two_sites(&[
        "CREATE DATABASE app",
        "CREATE TABLE app.o (id INT PRIMARY KEY, region VARCHAR(8), amount DECIMAL(10,2))",
        "CREATE TABLE app.other (id INT PRIMARY KEY)",
    ])
    .await
    .unwrap();
    let dir = TempDir::new().unwrap();
    let mut config = config_for(&a, &b, dir.path()).unwrap();
    config.syncer.row_filter = vec![conf::RowFilter {
        db_name: "app".into(),
        tbl_name: "o".into(),
        condition: "region = 'eu' AND (amount >= 10 OR amount IS NULL)".into(),
    }];
    let _drainer = replicating(&config, WAIT).await.unwrap();
    a.exec(&[
        "INSERT INTO app.o VALUES (1, 'eu', 50), (2, 'us', 50), (3, NULL, 50), (4, 'eu', 5), \
         (5, 'eu', NULL), (6, 'eu', 20), (7, 'us', 20), (8, 'eu', 30)",
        // Out of the filter: a delete there; into it: an insert; within it: an update.
        "UPDATE app.o SET region = 'us' WHERE id = 6",
        "UPDATE app.o SET region = 'eu' WHERE id = 7",
        "UPDATE app.o SET amount = 60 WHERE id = 1",
        "UPDATE app.o SET amount = 70 WHERE id = 2",
        "DELETE FROM app.o WHERE id IN (8, 2)",
        "INSERT INTO app.other VALUES (1), (2)",
    ])
    .await
    .unwrap();
    poll_until("the filtered rows", WAIT, || async {
        let other = text_rows(&b, "SELECT * FROM app.other").await?;
        let rows = text_rows(&b, "SELECT * FROM app.o ORDER BY id").await?;
        let expected = ["1|eu|60.00", "5|eu|NULL", "7|eu|20.00"];
        if other.len() == 2 && rows == expected {
            Ok(())
        } else {
            Err(format!("{rows:?}, other {other:?}"))
        }
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn a_condition_that_cannot_be_read_is_bad_configuration() {
    let (a, b) = two_sites(&[]).await.unwrap();
    let dir = TempDir::new().unwrap();
    let mut config = config_for(&a, &b, dir.path()).unwrap();
    config.syncer.row_filter = vec![conf::RowFilter {
        db_name: "app".into(),
        tbl_name: "o".into(),
        condition: "region = 'eu' AND".into(),
    }];
    let out = check_config(&config, WAIT).await.unwrap();
    assert_eq!(out.code(), Some(2), "{}", out.stderr);
    assert!(
        out.stderr
            .contains("syncer.row-filter[0].where: expected a column or a value, found the end"),
        "{}",
        out.stderr
    );
}
