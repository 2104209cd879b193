//! The harness itself, against real MariaDB servers.

use std::collections::HashSet;
use std::sync::Mutex;
use std::time::Duration;

use integration::{eventually, MariaDb, PUMP_PASSWORD, PUMP_USER};
use mysql_async::prelude::Queryable;
use mysql_async::Conn;

async fn variables(server: &MariaDb) -> (u32, u32, String, String, String) {
    server
        .query(
            "SELECT @@server_id, @@gtid_domain_id, @@log_bin, @@binlog_format, @@binlog_row_image",
        )
        .await
        .unwrap()
        .pop()
        .map(
            |(id, domain, log_bin, format, image): (u32, u32, u8, String, String)| {
                (id, domain, log_bin.to_string(), format, image)
            },
        )
        .unwrap()
}

#[tokio::test]
async fn several_servers_run_at_once_with_their_own_ids_and_a_row_binlog() {
    let (a, b, c) = tokio::join!(MariaDb::start(), MariaDb::start(), MariaDb::start());
    let servers = [a.unwrap(), b.unwrap(), c.unwrap()];
    let mut ids = HashSet::new();
    let mut domains = HashSet::new();
    let mut ports = HashSet::new();
    for server in &servers {
        let (id, domain, log_bin, format, image) = variables(server).await;
        assert_eq!((id, domain), (server.server_id(), server.gtid_domain_id()));
        assert_eq!(
            (log_bin.as_str(), format.as_str(), image.as_str()),
            ("1", "ROW", "FULL")
        );
        ids.insert(id);
        domains.insert(domain);
        ports.insert(server.port());
    }
    assert_eq!(
        (ids.len(), domains.len(), ports.len()),
        (3, 3, 3),
        "distinct ids, domains and ports"
    );

    // Writes land in each server's own binlog, with its own GTID domain.
    let a = &servers[0];
    a.exec(&[
        "CREATE DATABASE app",
        "CREATE TABLE app.t (id INT PRIMARY KEY)",
        "INSERT INTO app.t VALUES (1)",
    ])
    .await
    .unwrap();
    let pos: Vec<String> = a.query("SELECT @@gtid_binlog_pos").await.unwrap();
    assert!(
        pos[0].starts_with(&format!("{}-{}-", a.gtid_domain_id(), a.server_id())),
        "{pos:?}"
    );
}

#[tokio::test]
async fn the_harness_users_can_log_in_with_their_privileges() {
    let server = MariaDb::start().await.unwrap();
    let mut conn = Conn::new(server.opts(PUMP_USER, PUMP_PASSWORD))
        .await
        .unwrap();
    let grants: Vec<String> = conn.query("SHOW GRANTS").await.unwrap();
    assert!(grants[0].contains("REPLICATION SLAVE"), "{grants:?}");
    let wrong = Conn::new(server.opts(PUMP_USER, "wrong")).await;
    assert!(wrong.is_err(), "a wrong password is refused");
}

#[tokio::test]
async fn options_are_passed_to_mariadbd_and_binlog_can_be_off() {
    let statement = MariaDb::builder()
        .server_id(77)
        .gtid_domain_id(7)
        .arg("--binlog-format=STATEMENT")
        .start()
        .await
        .unwrap();
    let (id, domain, log_bin, format, _) = variables(&statement).await;
    assert_eq!(
        (id, domain, log_bin.as_str(), format.as_str()),
        (77, 7, "1", "STATEMENT")
    );

    let no_binlog = MariaDb::builder().binlog(false).start().await.unwrap();
    let (_, _, log_bin, _, _) = variables(&no_binlog).await;
    assert_eq!(log_bin, "0");
}

#[tokio::test]
async fn dropping_a_server_stops_it_and_removes_its_directory() {
    let server = MariaDb::start().await.unwrap();
    let opts = server.root_opts();
    let dir = server.data_dir();
    assert!(dir.is_dir());
    drop(server);
    assert!(!dir.exists(), "{} is removed", dir.display());
    assert!(
        Conn::new(opts).await.is_err(),
        "nothing answers on the port any more"
    );
}

#[test]
fn a_panicking_test_still_stops_its_server() {
    let seen: Mutex<Option<(u16, std::path::PathBuf)>> = Mutex::new(None);
    let result = std::thread::scope(|scope| {
        scope
            .spawn(|| {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                runtime.block_on(async {
                    let server = MariaDb::start().await.unwrap();
                    *seen.lock().unwrap() = Some((server.port(), server.data_dir()));
                    panic!("the test fails while its server runs");
                })
            })
            .join()
    });
    assert!(result.is_err(), "the thread panicked");
    let (port, dir) = seen.lock().unwrap().take().expect("the server had started");
    assert!(!dir.exists(), "{} is removed", dir.display());
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
        "nothing listens on port {port} any more"
    );
}

#[tokio::test]
async fn a_restarted_server_keeps_its_data_and_port() {
    let mut server = MariaDb::start().await.unwrap();
    server
        .exec(&[
            "CREATE DATABASE app",
            "CREATE TABLE app.t (id INT PRIMARY KEY)",
            "INSERT INTO app.t VALUES (42)",
        ])
        .await
        .unwrap();
    let port = server.port();
    server.stop().await.unwrap();
    assert!(server.conn().await.is_err(), "stopped");
    server.restart().await.unwrap();
    assert_eq!(server.port(), port);
    let rows: Vec<i32> = server.query("SELECT id FROM app.t").await.unwrap();
    assert_eq!(rows, [42]);
}

#[tokio::test]
#[should_panic(expected = "timed out after")]
async fn eventually_panics_with_what_it_waited_for() {
    eventually(
        "a condition that never holds",
        Duration::from_millis(100),
        || async { Err::<(), _>("not yet".to_owned()) },
    )
    .await;
}
