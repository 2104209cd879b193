//! Outages: a downstream that hangs (SIGSTOP: connections open, nothing answers) while a
//! transaction is in flight is given up on within a bounded time, and once the server is
//! back nothing is lost or applied twice (the connection given up on is killed, if the
//! server has not closed it already, before the apply record is read).

use std::time::{Duration, Instant};

use integration::{eventually, mark_counter, marked_config_for, two_sites, MariaDb};

const WAIT: Duration = Duration::from_secs(90);

async fn rows(server: &MariaDb) -> Result<Vec<String>, String> {
    server
        .query("SELECT CONCAT_WS(' ', n, msg) FROM app.log ORDER BY n, msg")
        .await
        .map_err(|e| e.to_string())
}

/// `app.log` has no key: a transaction applied twice would double its row.
const SETUP: &[&str] = &[
    "CREATE DATABASE app",
    "CREATE TABLE app.log (n INT, msg VARCHAR(40))",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_downstream_is_given_up_and_nothing_doubles() {
    let (a, b) = two_sites(SETUP).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = marked_config_for(&a, &b, dir.path()).unwrap();
    let drainer = integration::replicating(&config, WAIT).await.unwrap();
    a.exec(&["INSERT INTO app.log VALUES (1, 'before')"])
        .await
        .unwrap();
    eventually("the first row downstream", WAIT, || async {
        (rows(&b).await? == ["1 before"])
            .then_some(())
            .ok_or("not yet".to_owned())
    })
    .await;

    b.freeze();
    let frozen = Instant::now();
    for n in 2..=6 {
        a.exec(&[
            "BEGIN",
            &format!("INSERT INTO app.log VALUES ({n}, 'during'), ({n}, 'during too')"),
            "COMMIT",
        ])
        .await
        .unwrap();
    }
    let given_up = eventually(
        "the drainer to give the hung connection up",
        WAIT,
        || async {
            let log = drainer.stderr();
            log.contains("answered none of 3 probes")
                .then(|| frozen.elapsed())
                .ok_or(log)
        },
    )
    .await;
    assert!(given_up < Duration::from_secs(60), "took {given_up:?}");
    b.thaw();

    eventually("every row downstream exactly once", WAIT, || async {
        let (x, y) = (rows(&a).await?, rows(&b).await?);
        (x == y)
            .then_some(())
            .ok_or(format!("{x:?}\n{y:?}\n{}", drainer.stderr()))
    })
    .await;
    assert_eq!(
        mark_counter(&b, 1).await.unwrap(),
        6,
        "each transaction applied once"
    );
}

/// A stop asked for while the downstream is down (the drainer waiting to retry) ends the
/// wait: exit 0 at once, nothing lost; the next start applies what was pending.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_while_the_downstream_is_down_is_graceful() {
    let (a, mut b) = two_sites(SETUP).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = marked_config_for(&a, &b, dir.path()).unwrap();
    let mut drainer = integration::replicating(&config, WAIT).await.unwrap();
    b.stop().await.unwrap();
    a.exec(&["INSERT INTO app.log VALUES (1, 'pending')"])
        .await
        .unwrap();
    eventually("the drainer to wait for the downstream", WAIT, || async {
        let log = drainer.stderr();
        log.contains("retrying").then_some(()).ok_or(log)
    })
    .await;
    drainer.signal(libc::SIGTERM);
    let asked = Instant::now();
    let out = drainer.wait(WAIT).await.unwrap();
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    assert!(
        asked.elapsed() < Duration::from_secs(15),
        "took {:?}",
        asked.elapsed()
    );

    b.restart().await.unwrap();
    let drainer = integration::replicating(&config, WAIT).await.unwrap();
    eventually("the pending row downstream, once", WAIT, || async {
        let (x, y) = (rows(&a).await?, rows(&b).await?);
        (x == y)
            .then_some(())
            .ok_or(format!("{x:?}\n{y:?}\n{}", drainer.stderr()))
    })
    .await;
    assert_eq!(mark_counter(&b, 1).await.unwrap(), 1);
}
