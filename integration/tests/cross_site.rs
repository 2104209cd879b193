//! Two sites in two network namespaces, as two data centres: each site's MariaDB listens on
//! its own loopback only, a relay in each site is the one port it opens, and the sites are
//! joined only by a bridge per direction (a `socat` in each namespace and a Unix socket
//! between them). The drainer A→B runs in site B reading relay A; B→A runs in site A
//! reading relay B. Writes on both sites, an ADD COLUMN, the link cut for 20 s and a relay
//! killed mid-load: both sites end equal, every row once.

use std::time::Duration;

use integration::certs::{Ca, Issued};
use integration::{
    direction, free_port, poll_until, Bridge, DrainerCommand, DrainerProcess, MariaDb, Netns,
    RelaySpec,
};
use tempfile::TempDir;

const WAIT: Duration = Duration::from_secs(120);
const ROWS: u32 = 300;

const SETUP: &[&str] = &[
    "CREATE DATABASE app",
    "CREATE TABLE app.t (id INT AUTO_INCREMENT PRIMARY KEY, site CHAR(1), n INT)",
    "CREATE TABLE app.log (site CHAR(1), n INT)",
];

struct Site {
    ns: Netns,
    db: MariaDb,
    relay: RelaySpec,
    cert: Issued,
}

async fn site(name: &str, offset: u32, ca: &Ca) -> Site {
    let ns = Netns::new(name).unwrap();
    let db = MariaDb::builder()
        .auto_increment(2, offset)
        .netns(&ns)
        .start()
        .await
        .unwrap();
    db.exec(SETUP).await.unwrap();
    let relay_cert = ca
        .issue(
            &format!("relay-{name}"),
            &[&format!("DNS:relay-{name}")],
            365,
        )
        .unwrap();
    let mut relay = RelaySpec::new(&ca.cert, &relay_cert.cert, &relay_cert.key).unwrap();
    relay.netns = Some(ns.name.clone());
    let cert = ca
        .issue(
            &format!("drainer-{name}"),
            &[&format!("DNS:drainer-{name}")],
            365,
        )
        .unwrap();
    Site {
        ns,
        db,
        relay,
        cert,
    }
}

async fn count(db: &MariaDb, table: &str) -> u64 {
    db.query::<u64>(&format!("SELECT COUNT(*) FROM app.{table}"))
        .await
        .ok()
        .and_then(|v| v.first().copied())
        .unwrap_or(0)
}

/// Writes `ROWS` rows (keyed and keyless) on `db`, one transaction each.
async fn write(db: &MariaDb, site: &'static str) {
    use mysql_async::prelude::Queryable;
    let mut conn = db.conn().await.unwrap();
    for n in 0..ROWS {
        conn.query_drop(format!(
            "BEGIN; INSERT INTO app.t (site, n) VALUES ('{site}', {n}); \
             INSERT INTO app.log VALUES ('{site}', {n}); COMMIT"
        ))
        .await
        .unwrap();
        tokio::time::sleep(Duration::from_millis(40)).await;
    }
}

async fn rows(db: &MariaDb) -> Vec<(String, u32, Option<i32>)> {
    db.query("SELECT site, n, w FROM app.t ORDER BY id")
        .await
        .unwrap()
}

#[tokio::test]
async fn two_sites_in_two_namespaces_converge_through_their_relays() {
    let dir = TempDir::new().unwrap();
    let ca = Ca::new(dir.path(), "sites-ca").unwrap();
    let (a, b) = tokio::join!(site("a", 1, &ca), site("b", 2, &ca));
    let mut relay_a = a.relay.start(&a.db).await.unwrap();
    let relay_b = b.relay.start(&b.db).await.unwrap();

    // Relay A's port appears in site B (and B's in A) only through a bridge.
    let port = |addr: &str| addr.rsplit_once(':').unwrap().1.parse::<u16>().unwrap();
    let (to_a, to_b) = (free_port().unwrap(), free_port().unwrap());
    let mut bridge_ab =
        Bridge::start(&b.ns, to_a, &a.ns, port(&a.relay.listen), dir.path()).unwrap();
    let _bridge_ba = Bridge::start(&a.ns, to_b, &b.ns, port(&b.relay.listen), dir.path()).unwrap();

    // The database port of A cannot be reached from B at all; from A it can, and B reaches
    // A's relay through the bridge. Were the sites one namespace, the first would connect.
    assert!(a.ns.can_connect(a.db.port()), "the probe itself fails");
    assert!(
        !b.ns.can_connect(a.db.port()),
        "site B reaches site A's database port"
    );
    assert!(
        !a.ns.can_connect(b.db.port()),
        "site A reaches site B's database port"
    );
    assert!(
        b.ns.can_connect(to_a),
        "site B does not reach relay A through the bridge"
    );

    // A→B runs in site B reading relay A (DDL goes this way); B→A in site A reading relay B.
    let mut a_to_b = direction(&a.db, &b.db, 1, true, dir.path());
    let mut through_a = a.relay.clone();
    through_a.listen = format!("127.0.0.1:{to_a}");
    through_a.read_through(&mut a_to_b, &b.cert.cert, &b.cert.key);
    a_to_b.pump.tls.as_mut().unwrap().server_name = Some("relay-a".into());
    let mut b_to_a = direction(&b.db, &a.db, 1, false, dir.path());
    let mut through_b = b.relay.clone();
    through_b.listen = format!("127.0.0.1:{to_b}");
    through_b.read_through(&mut b_to_a, &a.cert.cert, &a.cert.key);
    b_to_a.pump.tls.as_mut().unwrap().server_name = Some("relay-b".into());
    let start = |config: conf::Config, ns: &Netns| {
        let name = ns.name.clone();
        async move {
            DrainerCommand::new()
                .unwrap()
                .netns(&name)
                .config(&config)
                .unwrap()
                .spawn_replicating(WAIT)
                .await
                .unwrap()
        }
    };
    let drainer_ab: DrainerProcess = start(a_to_b, &b.ns).await;
    let drainer_ba: DrainerProcess = start(b_to_a, &a.ns).await;
    let logs = || {
        format!(
            "A→B:\n{}\nB→A:\n{}",
            drainer_ab.stderr(),
            drainer_ba.stderr()
        )
    };

    let load = async {
        tokio::join!(write(&a.db, "a"), write(&b.db, "b"), async {
            tokio::time::sleep(Duration::from_secs(2)).await;
            a.db.exec(&["ALTER TABLE app.t ADD COLUMN w INT DEFAULT 7"])
                .await
                .unwrap();
            // The link between the sites cut for 20 s…
            bridge_ab.down();
            tokio::time::sleep(Duration::from_secs(20)).await;
            bridge_ab.up().unwrap();
            // … and relay A killed and started again.
            tokio::time::sleep(Duration::from_secs(1)).await;
            relay_a.kill();
            tokio::time::sleep(Duration::from_secs(1)).await;
            relay_a = a.relay.start(&a.db).await.unwrap();
        })
    };
    load.await;

    let total = u64::from(ROWS) * 2;
    poll_until("both sites to hold every row once", WAIT, || async {
        let counts = [
            count(&a.db, "t").await,
            count(&b.db, "t").await,
            count(&a.db, "log").await,
            count(&b.db, "log").await,
        ];
        if counts == [total; 4] {
            Ok(())
        } else {
            Err(format!("t on A, B and log on A, B: {counts:?} of {total}"))
        }
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", logs()));

    // The same rows on both sides, the new column included; nothing came back (exactly
    // once: a row looping would show twice in the keyless table).
    assert_eq!(rows(&a.db).await, rows(&b.db).await);
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(count(&a.db, "log").await, total);
    assert_eq!(count(&b.db, "log").await, total);
    drop(relay_b);
}
