//! The schema history in the checkpoint store: recorded per change, replayed per position.

use checkpoint::Store;
use pump_reader::{BinlogCoords, Position};
use schema::{History, HistoryError, Snapshot, SqlMode};

fn at(pos: u64) -> Position {
    Position {
        coords: BinlogCoords::new("binlog.000001", pos),
        gtids: Some(format!("0-1-{pos}").parse().unwrap()),
    }
}

fn columns(h: &History, table: &str) -> Vec<String> {
    h.catalog()
        .table("app", table)
        .map(|t| t.columns.iter().map(|c| c.name.clone()).collect())
        .unwrap_or_default()
}

fn bootstrapped(store: &Store) -> History {
    let mut h = History::load(store, None).unwrap();
    assert!(h.is_empty());
    let snapshot = Snapshot {
        server: schema::Database {
            charset: Some("latin1".into()),
            collation: Some("latin1_swedish_ci".into()),
        },
        statements: vec![
            (
                String::new(),
                "CREATE DATABASE `app` /*!40100 DEFAULT CHARACTER SET utf8mb4 */".into(),
            ),
            (
                "app".into(),
                "CREATE TABLE `t` (`id` int(11) NOT NULL, PRIMARY KEY (`id`))".into(),
            ),
            ("app".into(), "CREATE TABLE `u` (`x` int(11))".into()),
        ],
    };
    h.bootstrap(store, &at(100), &snapshot).unwrap();
    h
}

#[test]
fn changes_replay_up_to_a_position_and_later_ones_are_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let mut h = bootstrapped(&store);
    assert_eq!(
        h.catalog().databases["app"].charset.as_deref(),
        Some("utf8mb4"),
        "executable comments count"
    );
    h.apply(&store, &at(200), "app", "ALTER TABLE t ADD a INT")
        .unwrap();
    h.apply(&store, &at(300), "app", "GRANT SELECT ON app.* TO x")
        .unwrap();
    h.apply(&store, &at(400), "app", "ALTER TABLE t ADD b INT")
        .unwrap();
    assert_eq!(columns(&h, "t"), ["id", "a", "b"]);
    assert_eq!(
        store.scan(b"schema/").unwrap().len(),
        3,
        "bootstrap and two ALTERs; the GRANT changed nothing"
    );

    // Each entry holds only what its statement changed.
    let entries = store.scan(b"schema/").unwrap();
    let alter = String::from_utf8(entries[1].1.clone()).unwrap();
    assert!(
        alter.contains("\"name\":\"t\"") && !alter.contains("\"name\":\"u\""),
        "{alter}"
    );
    assert!(
        alter.contains("\"version\":\"1\""),
        "values carry their format version"
    );

    // A restart whose checkpoint is at 250 decodes with what was in force there.
    drop(h);
    let h = History::load(&store, Some(&at(250))).unwrap();
    assert_eq!(columns(&h, "t"), ["id", "a"]);
    assert_eq!(columns(&h, "u"), ["x"]);
    assert_eq!(
        store.scan(b"schema/").unwrap().len(),
        2,
        "the change at 400 is read again later"
    );
    drop(h);
    assert_eq!(
        columns(&History::load(&store, None).unwrap(), "t"),
        ["id", "a"]
    );
}

#[test]
fn a_statement_it_cannot_apply_names_statement_and_position_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let mut h = bootstrapped(&store);
    let e = h
        .apply(&store, &at(500), "app", "ALTER TABLE t DROP COLUMN nope")
        .unwrap_err();
    assert!(matches!(e, HistoryError::Ddl { .. }));
    let shown = e.to_string();
    assert!(shown.contains("binlog.000001:500"), "{shown}");
    assert!(shown.contains("ALTER TABLE t DROP COLUMN nope"), "{shown}");
    assert_eq!(columns(&h, "t"), ["id"]);
    assert_eq!(store.scan(b"schema/").unwrap().len(), 1);
    // The operator decides to pass over it: recorded, nothing else changes.
    h.skip(&store, &at(500), "ALTER TABLE t DROP COLUMN nope")
        .unwrap();
    let entries = store.scan(b"schema/").unwrap();
    assert_eq!(entries.len(), 2);
    assert!(String::from_utf8_lossy(&entries[1].1)
        .contains("skipped by the operator: ALTER TABLE t DROP COLUMN nope"));
    assert_eq!(columns(&History::load(&store, None).unwrap(), "t"), ["id"]);
}

#[test]
fn renames_drops_and_recreations_survive_a_reload() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let mut h = bootstrapped(&store);
    h.apply(&store, &at(200), "app", "RENAME TABLE u TO u2")
        .unwrap();
    h.apply(&store, &at(300), "app", "DROP TABLE t").unwrap();
    h.apply(&store, &at(400), "app", "CREATE TABLE t (other VARCHAR(5))")
        .unwrap();
    let reloaded = History::load(&store, None).unwrap();
    assert_eq!(reloaded.catalog(), h.catalog());
    assert_eq!(columns(&reloaded, "t"), ["other"]);
    assert!(reloaded.catalog().table("app", "u").is_none());
    assert_eq!(columns(&reloaded, "u2"), ["x"]);
}

#[test]
fn gtid_states_order_entries_when_coordinates_mean_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let mut h = bootstrapped(&store);
    // After a failover the new upstream's files restart at binlog.000001, with the GTIDs
    // still rising: the change at 0-1-200 is before the checkpoint at 0-1-300 although its
    // coordinates (binlog.000005:900) are after.
    let change = Position {
        coords: BinlogCoords::new("binlog.000005", 900),
        gtids: Some("0-1-200".parse().unwrap()),
    };
    h.apply(&store, &change, "app", "ALTER TABLE t ADD a INT")
        .unwrap();
    let checkpoint = Position {
        coords: BinlogCoords::new("binlog.000001", 400),
        gtids: Some("0-1-300".parse().unwrap()),
    };
    drop(h);
    assert_eq!(
        columns(&History::load(&store, Some(&checkpoint)).unwrap(), "t"),
        ["id", "a"]
    );
}

#[test]
fn bootstrap_only_once_and_never_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let mut h = bootstrapped(&store);
    let e = h
        .bootstrap(&store, &at(900), &Snapshot::default())
        .unwrap_err();
    assert!(
        e.to_string().contains("bootstrap only a new data-dir"),
        "{e}"
    );
    drop(h);
    let e = History::load(&store, Some(&at(50))).unwrap_err();
    assert!(e.to_string().contains("before the bootstrap"), "{e}");
    assert_eq!(
        store.scan(b"schema/").unwrap().len(),
        1,
        "the bootstrap entry stays"
    );
    assert_eq!(
        History::load(&store, None)
            .unwrap()
            .catalog()
            .server
            .charset
            .as_deref(),
        Some("latin1"),
        "the server default survives a reload"
    );
}

#[test]
fn staged_statements_apply_at_once_and_are_recorded_at_the_commit() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let mut h = bootstrapped(&store);
    let all = |_: &str, _: &str| true;

    // A transaction that rolls back: its statements are undone.
    h.stage("app", "ALTER TABLE t ADD a INT", SqlMode::default(), &all)
        .unwrap();
    h.stage("app", "CREATE TABLE v (id INT)", SqlMode::default(), &all)
        .unwrap();
    assert_eq!(columns(&h, "t"), ["id", "a"], "in force at once");
    h.discard_staged();
    assert_eq!(columns(&h, "t"), ["id"]);
    assert!(h.catalog().table("app", "v").is_none());

    // One that commits: recorded at its commit position, replayed from there on only.
    h.stage(
        "app",
        "CREATE TABLE w (id INT, s TEXT)",
        SqlMode::default(),
        &all,
    )
    .unwrap();
    assert_eq!(columns(&h, "w"), ["id", "s"]);
    let err = h
        .stage(
            "app",
            "ALTER TABLE nope ADD c INT",
            SqlMode::default(),
            &all,
        )
        .unwrap_err();
    assert!(err.to_string().contains("nope"), "{err}");
    h.stage_skip("ALTER TABLE nope ADD c INT");
    h.commit_staged(&store, &at(500)).unwrap();
    h.discard_staged();
    assert_eq!(columns(&h, "w"), ["id", "s"], "a commit is not undone");

    let before = History::at(&store, &at(499)).unwrap();
    assert!(before.catalog().table("app", "w").is_none());
    let after = History::load(&store, Some(&at(500))).unwrap();
    assert_eq!(columns(&after, "w"), ["id", "s"]);
}
