//! `drainer relay`: a drainer reads its upstream only through the relay of the upstream's
//! site, over mutual TLS; clients without the right certificate get nothing; a relay
//! killed or frozen mid-load loses and doubles nothing.

use std::time::Duration;

use integration::certs::{Ca, Issued};
use integration::{
    assert_line, direction, http_get, poll_until, replicating, two_sites, DrainerCommand, MariaDb,
    RelaySpec,
};
use link::relay::{Connector, LinkError};
use tempfile::TempDir;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const WAIT: Duration = Duration::from_secs(90);

struct Pki {
    _dir: TempDir,
    ca: Ca,
    relay: Issued,
    drainer: Issued,
    intruder: Issued,
    foreign: Issued,
}

fn pki() -> Pki {
    let dir = TempDir::new().unwrap();
    let ca = Ca::new(dir.path(), "sites-ca").unwrap();
    let other = Ca::new(dir.path(), "other-ca").unwrap();
    Pki {
        relay: ca
            .issue("relay-a", &["IP:127.0.0.1", "DNS:relay-a"], 365)
            .unwrap(),
        drainer: ca.issue("drainer-b", &["DNS:drainer-b"], 365).unwrap(),
        intruder: ca.issue("intruder", &["DNS:intruder"], 365).unwrap(),
        foreign: other.issue("drainer-b", &["DNS:drainer-b"], 365).unwrap(),
        ca,
        _dir: dir,
    }
}

const SETUP: &[&str] = &[
    "CREATE DATABASE app",
    "CREATE TABLE app.t (id INT PRIMARY KEY, v VARCHAR(64))",
    "CREATE TABLE app.log (v VARCHAR(64))",
];

async fn count(server: &MariaDb, table: &str) -> u64 {
    server
        .query::<u64>(&format!("SELECT COUNT(*) FROM app.{table}"))
        .await
        .ok()
        .and_then(|v| v.first().copied())
        .unwrap_or(0)
}

async fn relay_status(spec: &RelaySpec) -> serde_json::Value {
    let (code, body) = http_get(&spec.addr, "/status").await.unwrap();
    assert_eq!(code, 200, "{body}");
    serde_json::from_str(&body).unwrap()
}

fn connector(spec: &RelaySpec, ca: &Ca, client: &Issued) -> Connector {
    Connector::new(
        &spec.listen,
        &conf::RelayClientTls {
            ca: ca.cert.clone(),
            cert: client.cert.clone(),
            key: client.key.clone(),
            server_name: None,
        },
    )
    .unwrap()
}

#[tokio::test]
async fn a_drainer_reads_its_upstream_only_through_the_relay() {
    let pki = pki();
    let (a, b) = two_sites(SETUP).await.unwrap();
    let mut spec = RelaySpec::new(&pki.ca.cert, &pki.relay.cert, &pki.relay.key).unwrap();
    spec.allowed_names = vec!["drainer-b".into()];

    let check = spec.command(&a, true).unwrap().output(WAIT).await.unwrap();
    assert_eq!(check.code(), Some(0), "{}\n{}", check.stdout, check.stderr);
    assert_line(&check, "upstream", "replication privileges", "ok", "");
    assert_line(&check, "relay", "tls.cert expiry", "ok", "relay-a");

    let _relay = spec.start(&a).await.unwrap();
    let dir = TempDir::new().unwrap();
    let mut config = direction(&a, &b, 1, true, dir.path());
    spec.read_through(&mut config, &pki.drainer.cert, &pki.drainer.key);

    let out = DrainerCommand::new()
        .unwrap()
        .arg("check-config")
        .config(&config)
        .unwrap()
        .output(WAIT)
        .await
        .unwrap();
    assert_eq!(out.code(), Some(0), "{}\n{}", out.stdout, out.stderr);
    assert_line(&out, "upstream", "relay link", "ok", "TLSv1.3");
    assert_line(
        &out,
        "upstream",
        "relay certificate expiry",
        "ok",
        "relay-a",
    );
    assert_line(&out, "upstream", "binlog_format", "ok", "ROW");

    let mut drainer = replicating(&config, WAIT).await.unwrap();
    for i in 0..50 {
        a.exec(&[&format!("INSERT INTO app.t VALUES ({i}, 'row {i}')")])
            .await
            .unwrap();
    }
    a.exec(&[
        "ALTER TABLE app.t ADD COLUMN w INT",
        "INSERT INTO app.t VALUES (50, 'w', 7)",
    ])
    .await
    .unwrap();
    poll_until(
        "the rows and the new column through the relay",
        WAIT,
        || async {
            let w: Vec<Option<i32>> = b
                .query("SELECT w FROM app.t WHERE id = 50")
                .await
                .map_err(|e| e.to_string())?;
            match (count(&b, "t").await, w.first()) {
                (51, Some(Some(7))) => Ok(()),
                (n, w) => Err(format!("{n} rows, w = {w:?}")),
            }
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", drainer.stderr()));

    // `drainer verify` does its upstream side through the relay too (the relay's account
    // writes the requests).
    a.exec(&[
        "CREATE DATABASE IF NOT EXISTS retl",
        "GRANT CREATE, INSERT, SELECT ON retl.* TO 'drainer_pump'@'127.0.0.1'",
    ])
    .await
    .unwrap();
    let verified = DrainerCommand::new()
        .unwrap()
        .arg("verify")
        .arg("--tables")
        .arg("app.t")
        .config(&config)
        .unwrap()
        .output(WAIT)
        .await
        .unwrap();
    assert_eq!(
        verified.code(),
        Some(0),
        "{}\n{}",
        verified.stdout,
        verified.stderr
    );
    assert!(
        verified
            .stdout
            .contains("app.t: 51 rows in 1 chunks (by id): equal"),
        "{}",
        verified.stdout
    );

    // A second drainer reads the same relay (a mesh: every other site reads it), into a
    // third server; its stream registers under another replica id of the relay's range,
    // though both drainers' configurations are alike.
    let c = MariaDb::start().await.unwrap();
    c.exec(SETUP).await.unwrap();
    c.exec(&["ALTER TABLE app.t ADD COLUMN w INT"])
        .await
        .unwrap();
    let mut to_c = direction(&a, &c, 2, false, &dir.path().join("c"));
    spec.read_through(&mut to_c, &pki.drainer.cert, &pki.drainer.key);
    let mut second = replicating(&to_c, WAIT).await.unwrap();
    a.exec(&["INSERT INTO app.t VALUES (51, 'both', 8)"])
        .await
        .unwrap();
    poll_until("the row on both targets", WAIT, || async {
        match (count(&b, "t").await, count(&c, "t").await) {
            (52, 1) => Ok(()),
            (nb, nc) => Err(format!("{nb} on B, {nc} on C")),
        }
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", second.stderr()));

    // The relay shows both binlog streams, each under its own replica id.
    let status = relay_status(&spec).await;
    let clients = status["clients"].as_array().unwrap();
    let mut ids: Vec<u64> = clients
        .iter()
        .filter_map(|c| c["replica_id"].as_u64())
        .collect();
    ids.sort();
    assert_eq!(ids, [4001, 4002], "{status}");
    let stream = clients
        .iter()
        .find(|c| c["replica_id"].is_u64())
        .unwrap_or_else(|| panic!("no binlog stream in {status}"));
    assert_eq!(stream["name"], "drainer-b");
    assert!(stream["gtid"].is_string(), "{stream}");
    second.kill();
    assert!(status["bytes_sent"].as_u64().unwrap() > 0);
    let (code, metrics) = http_get(&spec.addr, "/metrics").await.unwrap();
    assert_eq!(code, 200);
    assert!(metrics.contains("drainer_relay_clients"), "{metrics}");
    drainer.kill();
}

#[tokio::test]
async fn clients_without_the_right_certificate_get_nothing() {
    let pki = pki();
    let a = MariaDb::start().await.unwrap();
    let mut spec = RelaySpec::new(&pki.ca.cert, &pki.relay.cert, &pki.relay.key).unwrap();
    spec.allowed_names = vec!["drainer-b".into()];
    let relay = spec.start(&a).await.unwrap();

    // The right certificate: a link, and the upstream's greeting through it.
    connector(&spec, &pki.ca, &pki.drainer)
        .connect()
        .await
        .unwrap();

    // Another CA's certificate, and a certificate whose name is not listed.
    for (who, client) in [
        ("another CA", &pki.foreign),
        ("an unlisted name", &pki.intruder),
    ] {
        match connector(&spec, &pki.ca, client).connect().await {
            Err(LinkError::Tls { .. } | LinkError::Protocol { .. }) => {}
            other => panic!("{who}: {other:?}"),
        }
    }

    // No certificate at all, and a client in plain TCP: the bytes they get back are no
    // MySQL greeting (a TLS alert at most), and the connection closes.
    for first in [
        &b"\x16\x03\x01\x00\x05hello"[..],
        b"GET / HTTP/1.1\r\n\r\n",
        b"\n",
    ] {
        let mut tcp = tokio::net::TcpStream::connect(&spec.listen).await.unwrap();
        tcp.write_all(first).await.unwrap();
        let mut got = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(15), tcp.read_to_end(&mut got)).await;
        assert!(read.is_ok(), "the relay kept a plain client waiting");
        assert!(
            !String::from_utf8_lossy(&got).contains("MariaDB") && got.len() < 64,
            "a plain client got {got:?}"
        );
    }
    assert_eq!(relay_status(&spec).await["clients"], serde_json::json!([]));
    assert!(
        relay.stderr().contains("refused a client"),
        "{}",
        relay.stderr()
    );
}

#[tokio::test]
async fn a_relay_killed_or_frozen_mid_load_loses_and_doubles_nothing() {
    let pki = pki();
    let (a, b) = two_sites(SETUP).await.unwrap();
    let spec = RelaySpec::new(&pki.ca.cert, &pki.relay.cert, &pki.relay.key).unwrap();
    let mut relay = spec.start(&a).await.unwrap();
    let dir = TempDir::new().unwrap();
    let mut config = direction(&a, &b, 1, true, dir.path());
    spec.read_through(&mut config, &pki.drainer.cert, &pki.drainer.key);
    let drainer = replicating(&config, WAIT).await.unwrap();

    let load = {
        let a = a.conn().await.unwrap();
        tokio::spawn(async move {
            use mysql_async::prelude::Queryable;
            let mut a = a;
            for i in 0..600 {
                a.query_drop(format!(
                    "INSERT INTO app.t VALUES ({i}, 'row {i}'); INSERT INTO app.log VALUES ('{i}')"
                ))
                .await
                .unwrap();
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };
    tokio::time::sleep(Duration::from_secs(3)).await;
    relay.kill();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let relay = spec.start(&a).await.unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    // Frozen: the links stay open and silent until the heartbeats give them up.
    relay.signal(libc::SIGSTOP);
    tokio::time::sleep(Duration::from_secs(25)).await;
    relay.signal(libc::SIGCONT);
    load.await.unwrap();

    poll_until(
        "every row once, after the relay's death and freeze",
        WAIT,
        || async {
            match (count(&b, "t").await, count(&b, "log").await) {
                (600, 600) => Ok(()),
                (t, log) => Err(format!("t {t}, log {log} of 600")),
            }
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", drainer.stderr()));
    // Nothing doubled: the keyless table has exactly one row per insert.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(count(&b, "log").await, 600);
}

#[tokio::test]
async fn bad_relays_and_files_are_named_with_exit_codes() {
    let pki = pki();
    let (a, b) = two_sites(SETUP).await.unwrap();
    let dir = TempDir::new().unwrap();
    let spec = RelaySpec::new(&pki.ca.cert, &pki.relay.cert, &pki.relay.key).unwrap();
    let run = |config: conf::Config, check: bool| async move {
        let mut command = DrainerCommand::new().unwrap();
        if check {
            command = command.arg("check-config");
        }
        command.config(&config).unwrap().output(WAIT).await.unwrap()
    };
    let mut config = direction(&a, &b, 1, true, dir.path());
    spec.read_through(&mut config, &pki.drainer.cert, &pki.drainer.key);

    // Nothing listens on the relay's port: exit 3, the link's check says so.
    for check in [true, false] {
        let out = run(config.clone(), check).await;
        assert_eq!(out.code(), Some(3), "{}\n{}", out.stdout, out.stderr);
        if check {
            assert_line(&out, "upstream", "relay link", "FAIL", "does not answer");
        }
    }

    // A MariaDB server where the relay should be: it speaks something else.
    let mut wrong = config.clone();
    wrong.pump.relay = Some(format!("127.0.0.1:{}", a.port()));
    let out = run(wrong, true).await;
    assert_eq!(out.code(), Some(3), "{}\n{}", out.stdout, out.stderr);
    assert_line(
        &out,
        "upstream",
        "relay link",
        "FAIL",
        "does not speak the relay protocol",
    );

    // The drainer's certificate file missing, and a key that is not its certificate's.
    let mut missing = config.clone();
    missing.pump.tls.as_mut().unwrap().cert = dir.path().join("nope.pem");
    let out = run(missing, false).await;
    assert_eq!(out.code(), Some(2), "{}", out.stderr);
    assert!(
        out.stderr.contains("pump.tls.cert") && out.stderr.contains("nope.pem"),
        "{}",
        out.stderr
    );
    let mut mismatched = config.clone();
    mismatched.pump.tls.as_mut().unwrap().key = pki.relay.key.clone();
    let out = run(mismatched, true).await;
    assert_eq!(out.code(), Some(2), "{}", out.stderr);
    assert!(
        out.stderr
            .contains("is not the private key of pump.tls.cert"),
        "{}",
        out.stderr
    );

    // A relay whose own login is refused: the upstream's error reaches the drainer as the
    // server's (not as a lost connection).
    let refused = RelaySpec {
        password: "wrong".into(),
        ..spec.clone()
    };
    let relay = refused.start(&a).await.unwrap();
    let out = run(config.clone(), true).await;
    assert_eq!(out.code(), Some(3), "{}\n{}", out.stdout, out.stderr);
    assert_line(&out, "upstream", "relay link", "ok", "TLSv1.3");
    assert_line(&out, "upstream", "connection", "FAIL", "Access denied");
    drop(relay);

    // The relay's own: an expired certificate, and a relay.toml naming a missing CA.
    let expired = pki.ca.issue("relay-old", &["IP:127.0.0.1"], -2).unwrap();
    let old = RelaySpec {
        cert: expired.cert.clone(),
        key: expired.key.clone(),
        ..spec.clone()
    };
    let out = old.command(&a, false).unwrap().output(WAIT).await.unwrap();
    assert_eq!(out.code(), Some(2), "{}", out.stderr);
    assert!(
        out.stderr.contains("tls.cert") && out.stderr.contains("expired on"),
        "{}",
        out.stderr
    );
    let no_ca = RelaySpec {
        ca: dir.path().join("no-ca.pem"),
        ..spec.clone()
    };
    let out = no_ca.command(&a, true).unwrap().output(WAIT).await.unwrap();
    assert_eq!(out.code(), Some(2), "{}", out.stderr);
    assert!(
        out.stderr.contains("tls.ca") && out.stderr.contains("cannot read it"),
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains("panicked"));
}

/// `drainer seed` reads the upstream through the relay too: a new, empty site copied
/// from A with no database port of A reached, then streamed.
#[tokio::test]
async fn a_new_site_is_seeded_through_the_relay() {
    let pki = pki();
    let (a, b) = tokio::join!(MariaDb::start(), MariaDb::start());
    let (a, b) = (a.unwrap(), b.unwrap());
    a.exec(SETUP).await.unwrap();
    a.exec(&[
        "INSERT INTO app.t SELECT seq, CONCAT('row ', seq) FROM app.seq_1_to_3000",
        "INSERT INTO app.log SELECT CONCAT('line ', seq) FROM app.seq_1_to_500",
    ])
    .await
    .unwrap();
    let spec = RelaySpec::new(&pki.ca.cert, &pki.relay.cert, &pki.relay.key).unwrap();
    let _relay = spec.start(&a).await.unwrap();
    let dir = TempDir::new().unwrap();
    let mut config = direction(&a, &b, 1, true, dir.path());
    spec.read_through(&mut config, &pki.drainer.cert, &pki.drainer.key);
    let out = DrainerCommand::new()
        .unwrap()
        .arg("seed")
        .arg("--chunk-rows")
        .arg("1000")
        .config(&config)
        .unwrap()
        .output(WAIT)
        .await
        .unwrap();
    assert_eq!(out.code(), Some(0), "{}\n{}", out.stdout, out.stderr);
    assert!(
        out.stdout.contains("app.t: 3000 rows in 4 chunks (by id)"),
        "{}",
        out.stdout
    );
    let mut drainer = replicating(&config, WAIT).await.unwrap();
    a.exec(&[
        "INSERT INTO app.t VALUES (5000, 'after')",
        "DELETE FROM app.log LIMIT 10",
    ])
    .await
    .unwrap();
    poll_until("the copy, then the stream", WAIT, || async {
        match (count(&b, "t").await, count(&b, "log").await) {
            (3001, 490) => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", drainer.stderr()));
    drainer.kill();
}
