//! Parallel apply keeps the upstream order of transactions that touch the same row (by
//! primary key or by a unique key, in the before or the after image) or rows linked by a
//! foreign key, while independent ones spread over the workers. The workload is written while no drainer runs, so the
//! drainer starts with a backlog and every worker is busy at once.

use std::time::Duration;

use integration::{
    eventually, mark_counter, marked_config_for, two_sites, DrainerCommand, DrainerProcess, MariaDb,
};

const WAIT: Duration = Duration::from_secs(120);
const ROUNDS: usize = 200;
const KEYS: usize = 10;
const SLOTS: usize = 5;

fn spawn(config: &conf::Config) -> DrainerProcess {
    DrainerCommand::new()
        .unwrap()
        .config(config)
        .unwrap()
        .spawn()
        .unwrap()
}

/// Stops the drainer with SIGTERM; it must exit cleanly.
async fn stop(mut drainer: DrainerProcess) {
    drainer.signal(libc::SIGTERM);
    let out = drainer.wait(WAIT).await.unwrap();
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
}

async fn dump(server: &MariaDb) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    for sql in [
        "SELECT CONCAT_WS(' ', 'counter', id, n) FROM app.counter ORDER BY id",
        "SELECT CONCAT_WS(' ', 'kv', id, v) FROM app.kv ORDER BY id",
        "SELECT CONCAT_WS(' ', 'slot', id, IFNULL(owner, '-')) FROM app.slot ORDER BY id",
        "SELECT CONCAT_WS(' ', 'other', COUNT(*), SUM(v)) FROM app.other",
        "SELECT CONCAT_WS(' ', 'parent', COUNT(*), IFNULL(SUM(id), 0)) FROM app.parent",
        "SELECT CONCAT_WS(' ', 'child', COUNT(*), IFNULL(SUM(id), 0)) FROM app.child",
        "SELECT CONCAT_WS(' ', 'nk', COUNT(*), COUNT(a), IFNULL(SUM(a), 0), SUM(b)) FROM app.nk",
    ] {
        let rows: Vec<String> = server.query(sql).await.map_err(|e| e.to_string())?;
        out.extend(rows);
    }
    Ok(out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conflicting_transactions_keep_their_order_under_parallel_apply() {
    keep_their_order(8, 20).await;
}

/// With `txn-batch = 1` each upstream transaction is its own downstream one, and a
/// worker sends what it has queued in one round trip: the order holds with one worker,
/// four and thirty-two.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_downstream_transaction_each_keeps_the_order_with_1_4_and_32_workers() {
    for workers in [1, 4, 32] {
        keep_their_order(workers, 1).await;
    }
}

async fn keep_their_order(workers: u32, txn_batch: u32) {
    let mut setup = vec![
        "CREATE DATABASE app".to_owned(),
        "CREATE TABLE app.counter (id INT PRIMARY KEY, n INT NOT NULL)".to_owned(),
        "INSERT INTO app.counter VALUES (1, 0)".to_owned(),
        "CREATE TABLE app.kv (id INT PRIMARY KEY, v VARCHAR(40) NOT NULL)".to_owned(),
        "CREATE TABLE app.slot (id INT PRIMARY KEY, owner INT NULL, UNIQUE KEY (owner))".to_owned(),
        "CREATE TABLE app.other (id INT PRIMARY KEY, v INT NOT NULL)".to_owned(),
        "CREATE TABLE app.parent (id INT PRIMARY KEY) ENGINE=InnoDB".to_owned(),
        "CREATE TABLE app.child (id INT PRIMARY KEY, parent_id INT NOT NULL, \
         FOREIGN KEY (parent_id) REFERENCES app.parent (id)) ENGINE=InnoDB"
            .to_owned(),
        // No primary key, a nullable unique key: a row inserted with a NULL there is
        // known only by its table until an update gives it a value.
        "CREATE TABLE app.nk (a INT NULL, b INT NOT NULL, UNIQUE KEY (a))".to_owned(),
    ];
    setup.extend((0..KEYS).map(|k| format!("INSERT INTO app.kv VALUES ({k}, 'start')")));
    setup.extend((0..SLOTS).map(|s| format!("INSERT INTO app.slot VALUES ({s}, NULL)")));
    let setup: Vec<&str> = setup.iter().map(String::as_str).collect();
    let (a, b) = two_sites(&setup).await.unwrap();

    // The drainer starts where the workload begins, after it is written.
    let start: Vec<String> = a.query("SELECT @@gtid_binlog_pos").await.unwrap();
    let mut written = 0u64;
    for i in 0..ROUNDS {
        let k = i % KEYS;
        let s = i % SLOTS;
        for sql in [
            // One row updated by every round: its after image holds the absolute count,
            // so any reordering leaves the wrong value.
            "UPDATE app.counter SET n = n + 1 WHERE id = 1".to_owned(),
            // Independent work, for the other workers.
            format!("INSERT INTO app.other VALUES ({i}, {i})"),
            // A key deleted and inserted again, in separate transactions.
            format!("DELETE FROM app.kv WHERE id = {k}"),
            format!("INSERT INTO app.kv VALUES ({k}, 'round {i}')"),
            // A unique value moving between rows: only the unique key (the before image
            // of the first, the after image of the second) links the two.
            "UPDATE app.slot SET owner = NULL WHERE owner = 7".to_owned(),
            format!("UPDATE app.slot SET owner = 7 WHERE id = {s}"),
            // A parent and its child come and go: only the foreign key links the
            // child's rows to the parent's (a child inserted after its parent is gone,
            // or a parent deleted before its child, is refused downstream).
            format!("INSERT INTO app.parent VALUES ({i})"),
            format!("INSERT INTO app.child VALUES ({i}, {i})"),
            format!("DELETE FROM app.child WHERE id = {i}"),
            format!("DELETE FROM app.parent WHERE id = {i}"),
            // A row inserted with a NULL unique value, then given one: the update must
            // find the row, so it must not run first.
            format!("INSERT INTO app.nk VALUES (NULL, {i})"),
            format!("UPDATE app.nk SET a = {i} WHERE b = {i}"),
        ] {
            a.exec(&[&sql]).await.unwrap();
            written += 1;
        }
        // The same inside one transaction (one step of its statements, unless ordered).
        let j = 1000 + i;
        a.exec(&[
            "BEGIN",
            &format!("INSERT INTO app.nk VALUES (NULL, {j})"),
            &format!("UPDATE app.nk SET a = {j} WHERE b = {j}"),
            "COMMIT",
        ])
        .await
        .unwrap();
        written += 1;
    }
    // The first round's "owner = NULL" finds no row: no binlog event, no transaction.
    written -= 1;

    let dir = tempfile::tempdir().unwrap();
    let mut config = marked_config_for(&a, &b, dir.path()).unwrap();
    config.syncer.worker_count = workers;
    config.syncer.txn_batch = txn_batch;
    config.pump.initial_gtid = start[0].clone();
    let drainer = spawn(&config);
    // Every transaction applied (the mark counter moves once per transaction), then
    // the tables compared: a dump taken earlier could match by chance, as the slot rows
    // pass through their final state on the way.
    eventually("every transaction applied", WAIT, || async {
        let marks = mark_counter(&b, 1).await.map_err(|e| e.to_string())?;
        if marks >= written {
            Ok(())
        } else {
            Err(format!("{marks} of {written}"))
        }
    })
    .await;
    let got = dump(&b).await.unwrap();
    assert_eq!(got, dump(&a).await.unwrap());
    assert_eq!(mark_counter(&b, 1).await.unwrap(), written);
    assert!(got.contains(&format!("counter 1 {ROUNDS}")), "{got:?}");
    let nk: usize = (0..ROUNDS).map(|i| i + 1000 + i).sum();
    assert!(
        got.contains(&format!("nk {} {} {nk} {nk}", 2 * ROUNDS, 2 * ROUNDS)),
        "every row of app.nk found by its update: {got:?}"
    );
    let last_round = |key: usize| (0..ROUNDS).filter(|i| i % KEYS == key).max().unwrap();
    for k in 0..KEYS {
        assert!(
            got.contains(&format!("kv {k} round {}", last_round(k))),
            "key {k} must end present, from the last round: {got:?}"
        );
    }
    assert!(
        got.contains(&format!("slot {} 7", (ROUNDS - 1) % SLOTS)),
        "{got:?}"
    );
    // The work did spread: several workers' mark rows moved.
    let busy: Vec<u64> = b
        .query("SELECT COUNT(*) FROM retl._drainer_repl_mark WHERE channel_id = 1 AND val > 0")
        .await
        .unwrap();
    assert!(
        busy[0] >= 2 || workers == 1,
        "only {} worker(s) of {workers} applied anything",
        busy[0]
    );
    stop(drainer).await;
}

/// `app.u` in one line: rows, and sums that tell which row holds which value.
async fn summary(server: &MariaDb) -> Result<Vec<String>, String> {
    let sql = "SELECT CONCAT_WS(' ', COUNT(*), SUM(v), SUM(id * v), SUM(e + 0)) FROM app.u";
    server.query(sql).await.map_err(|e| e.to_string())
}

/// Rows the keys say are apart, which a unique key only the downstream has links: the
/// multi-row statements are refused, and the transaction applies with a statement per
/// row change in upstream order — on a worker, and streamed on the pipeline's session.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multi_row_statements_the_downstream_refuses_apply_row_by_row() {
    const ROWS: u64 = 25_000; // past the 20,000 rows at which a transaction streams
    let fill = format!("INSERT INTO app.u (id, v) SELECT seq, seq FROM app.seq_1_to_{ROWS}");
    let setup = [
        "CREATE DATABASE app",
        // Member 2 is named '1': a multi-row UPDATE that turned the member number into
        // text would store member 1.
        "CREATE TABLE app.u (id INT PRIMARY KEY, v INT NOT NULL, \
         e ENUM('2', '1') NOT NULL DEFAULT '1')",
        fill.as_str(),
    ];
    let (a, b) = two_sites(&setup).await.unwrap();
    b.exec(&["ALTER TABLE app.u ADD UNIQUE KEY (v)"])
        .await
        .unwrap();
    let start: Vec<String> = a.query("SELECT @@gtid_binlog_pos").await.unwrap();
    a.exec(&[
        // Row 2 gives up v = 2, then row 1 takes it: a multi-row UPDATE sets row 1 first.
        "BEGIN",
        "UPDATE app.u SET v = 0 WHERE id = 2",
        "UPDATE app.u SET v = 2 WHERE id = 1",
        "COMMIT",
        // Every other row moves up one, the highest first (streamed).
        "UPDATE app.u SET v = v + 1 WHERE id > 2 ORDER BY id DESC",
        // No value shared: multi-row statements, streamed and on a worker.
        "UPDATE app.u SET v = v + 100000 WHERE id > 2",
        "DELETE FROM app.u WHERE id % 3 = 0",
    ])
    .await
    .unwrap();

    let dir = tempfile::tempdir().unwrap();
    let mut config = marked_config_for(&a, &b, dir.path()).unwrap();
    config.pump.initial_gtid = start[0].clone();
    let drainer = spawn(&config);
    let want = summary(&a).await.unwrap();
    eventually("every transaction applied", WAIT, || async {
        let marks = mark_counter(&b, 1).await.map_err(|e| e.to_string())?;
        let got = summary(&b).await?;
        if marks == 4 && got == want {
            Ok(())
        } else {
            Err(format!(
                "{marks} of 4 transactions; {got:?} against {want:?}"
            ))
        }
    })
    .await;
    let log = drainer.stderr();
    for path in [
        "refused as multi-row statements; building it again with a statement per row change",
        "refused as multi-row statements; applying the transaction again with a statement per row change",
    ] {
        assert_eq!(log.matches(path).count(), 1, "{path:?} once in the log:\n{log}");
    }
    stop(drainer).await;
}
