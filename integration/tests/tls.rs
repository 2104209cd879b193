//! TLS to MariaDB itself, against servers started with certificates this test makes:
//! every connection encrypted and verified as `ssl-mode` says, certificates the mode does
//! not accept refused before any login, and unusable files named with exit code 2.

use std::time::Duration;

use conf::SslMode;
use integration::certs::{Ca, Issued};
use integration::{
    assert_line, config_for, poll_until, replicating, row, DrainerCommand, DrainerOutput, MariaDb,
    APPLY_USER, PUMP_USER,
};
use tempfile::TempDir;

const RUN_TIMEOUT: Duration = Duration::from_secs(60);
const WAIT: Duration = Duration::from_secs(60);

/// A CA with certificates for 127.0.0.1, for the name `db.example` only, and a client; a
/// second CA with a certificate for 127.0.0.1.
struct Pki {
    _dir: TempDir,
    ca: Ca,
    for_ip: Issued,
    for_name: Issued,
    client: Issued,
    other_for_ip: Issued,
}

fn pki() -> Pki {
    let dir = TempDir::new().unwrap();
    let ca = Ca::new(dir.path(), "test-ca").unwrap();
    let other = Ca::new(dir.path(), "other-ca").unwrap();
    Pki {
        for_ip: ca.issue("db-ip", &["IP:127.0.0.1"], 365).unwrap(),
        for_name: ca.issue("db-name", &["DNS:db.example"], 365).unwrap(),
        client: ca.issue("drainer", &[], 365).unwrap(),
        other_for_ip: other.issue("db-other", &["IP:127.0.0.1"], 365).unwrap(),
        ca,
        _dir: dir,
    }
}

/// A server presenting `cert`, whose accounts for the drainer must come over TLS.
async fn tls_server(cert: &Issued, ca: &Ca) -> MariaDb {
    let server = MariaDb::builder()
        .arg(format!("--ssl-cert={}", cert.cert.display()))
        .arg(format!("--ssl-key={}", cert.key.display()))
        .arg(format!("--ssl-ca={}", ca.cert.display()))
        .start()
        .await
        .unwrap();
    server
        .exec(&[
            &format!("ALTER USER '{PUMP_USER}'@'127.0.0.1' REQUIRE SSL"),
            &format!("ALTER USER '{APPLY_USER}'@'127.0.0.1' REQUIRE SSL"),
        ])
        .await
        .unwrap();
    server
}

fn verify(config: &mut conf::Config, up: SslMode, down: SslMode, ca: &Ca) {
    config.pump.ssl_mode = up;
    config.pump.ssl_ca = Some(ca.cert.clone());
    config.syncer.to.ssl_mode = down;
    config.syncer.to.ssl_ca = Some(ca.cert.clone());
}

async fn check_config(config: &conf::Config) -> DrainerOutput {
    DrainerCommand::new()
        .unwrap()
        .arg("check-config")
        .config(config)
        .unwrap()
        .output(RUN_TIMEOUT)
        .await
        .unwrap()
}

async fn count(server: &MariaDb) -> u64 {
    server
        .query::<u64>("SELECT COUNT(*) FROM app.t")
        .await
        .ok()
        .and_then(|v| v.first().copied())
        .unwrap_or(0)
}

/// Rows written upstream arrive downstream.
async fn replicates(up: &MariaDb, down: &MariaDb, config: &conf::Config) {
    for server in [up, down] {
        server
            .exec(&[
                "CREATE DATABASE app",
                "CREATE TABLE app.t (id INT PRIMARY KEY, v TEXT)",
            ])
            .await
            .unwrap();
    }
    let mut drainer = replicating(config, WAIT).await.unwrap();
    for i in 0..20 {
        up.exec(&[&format!("INSERT INTO app.t VALUES ({i}, 'row {i}')")])
            .await
            .unwrap();
    }
    poll_until("the rows to arrive over TLS", WAIT, || async {
        match count(down).await {
            20 => Ok(()),
            n => Err(format!("{n} of 20 rows")),
        }
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", drainer.stderr()));
    drainer.kill();
}

#[tokio::test]
async fn verify_identity_encrypts_and_checks_every_connection() {
    let pki = pki();
    let (up, down) = tokio::join!(
        tls_server(&pki.for_ip, &pki.ca),
        tls_server(&pki.for_ip, &pki.ca)
    );
    let dir = TempDir::new().unwrap();
    let mut config = config_for(&up, &down, &dir.path().join("data")).unwrap();
    verify(
        &mut config,
        SslMode::VerifyIdentity,
        SslMode::VerifyIdentity,
        &pki.ca,
    );
    // A client certificate too, as for accounts that REQUIRE X509.
    config.syncer.to.ssl_cert = Some(pki.client.cert.clone());
    config.syncer.to.ssl_key = Some(pki.client.key.clone());

    let out = check_config(&config).await;
    assert_eq!(out.code(), Some(0), "{}\n{}", out.stdout, out.stderr);
    assert_line(&out, "upstream", "tls (session)", "ok", "TLSv1.3");
    assert_line(
        &out,
        "upstream",
        "tls (replication connection)",
        "ok",
        "TLSv1.3",
    );
    assert_line(&out, "downstream", "tls (session)", "ok", "TLSv1.3");
    assert!(row(&out, "upstream", "tls (session)")
        .expected
        .contains("name 127.0.0.1"));
    assert_line(
        &out,
        "downstream",
        "syncer.to.ssl-cert expiry",
        "ok",
        "drainer",
    );

    // The accounts REQUIRE SSL: a connection in plain TCP would be refused, so rows
    // arriving show every connection (the binlog dump's, the sessions') encrypted.
    replicates(&up, &down, &config).await;
}

#[tokio::test]
async fn certificates_the_mode_does_not_accept_are_refused_before_login() {
    let pki = pki();
    let (other, named, plain) = tokio::join!(
        tls_server(&pki.other_for_ip, &pki.ca),
        tls_server(&pki.for_name, &pki.ca),
        MariaDb::start()
    );
    let plain = plain.unwrap();
    let dir = TempDir::new().unwrap();

    // Another CA's certificate, and a certificate for another name. The passwords are
    // wrong too: the certificate is refused first, so no login is tried.
    let mut config = config_for(&other, &named, &dir.path().join("data")).unwrap();
    verify(
        &mut config,
        SslMode::VerifyCa,
        SslMode::VerifyIdentity,
        &pki.ca,
    );
    config.pump.password = conf::Secret::new("wrong");
    config.syncer.to.password = conf::Secret::new("wrong");
    let out = check_config(&config).await;
    assert_eq!(out.code(), Some(3), "{}\n{}", out.stdout, out.stderr);
    assert_line(&out, "upstream", "connection", "FAIL", "UnknownIssuer");
    assert_line(
        &out,
        "downstream",
        "connection",
        "FAIL",
        "not valid for name",
    );
    assert!(!out.stdout.contains("Access denied"), "{}", out.stdout);
    let run = DrainerCommand::new()
        .unwrap()
        .config(&config)
        .unwrap()
        .output(RUN_TIMEOUT)
        .await
        .unwrap();
    assert_eq!(run.code(), Some(3), "{}", run.stderr);

    // The same name mismatch passes verify-ca (the chain is what it checks), on the
    // replication connection and the client library's sessions alike.
    let mut config = config_for(&named, &plain, &dir.path().join("data2")).unwrap();
    verify(&mut config, SslMode::VerifyCa, SslMode::Preferred, &pki.ca);
    config.syncer.to.ssl_ca = None;
    let out = check_config(&config).await;
    assert_eq!(out.code(), Some(0), "{}\n{}", out.stdout, out.stderr);
    assert_line(
        &out,
        "upstream",
        "tls (replication connection)",
        "ok",
        "TLSv1.3",
    );
    assert_line(&out, "upstream", "tls (session)", "ok", "TLSv1.3");
    // The downstream offers no TLS: preferred falls back to plain TCP, on loopback.
    assert_line(&out, "downstream", "tls (session)", "ok", "off (loopback)");
    replicates(&named, &plain, &config).await;
}

#[tokio::test]
async fn required_against_a_server_without_tls_fails_naming_the_mode() {
    let (up, down) = tokio::join!(MariaDb::start(), MariaDb::start());
    let (up, down) = (up.unwrap(), down.unwrap());
    let dir = TempDir::new().unwrap();
    let mut config = config_for(&up, &down, &dir.path().join("data")).unwrap();
    config.pump.ssl_mode = SslMode::Required;
    let out = check_config(&config).await;
    assert_eq!(out.code(), Some(3), "{}\n{}", out.stdout, out.stderr);
    assert_line(&out, "upstream", "connection", "FAIL", "");
    assert_line(
        &out,
        "upstream",
        "tls (replication connection)",
        "FAIL",
        "pump.ssl-mode = \"required\" needs it",
    );
}

#[tokio::test]
async fn unusable_tls_files_are_named_with_exit_code_2() {
    let pki = pki();
    let dir = pki.ca.cert.parent().unwrap().parent().unwrap().to_owned();
    let expired = pki.ca.issue("expired", &["IP:127.0.0.1"], -3).unwrap();
    let not_pem = dir.join("not.pem");
    std::fs::write(&not_pem, "hello\n").unwrap();
    let missing = dir.join("missing.pem");
    let base = |extra: &str| {
        format!(
            "[pump]\nhost = \"127.0.0.1\"\nport = 1\nuser = \"u\"\nserver-id = 9\n\
             [syncer.to]\nhost = \"127.0.0.1\"\nport = 2\nuser = \"u\"\n{extra}"
        )
    };
    let text = |p: &std::path::Path| p.display().to_string();
    let cases = [
        (
            format!("ssl-mode = \"verify-ca\"\nssl-ca = {:?}\n", text(&missing)),
            vec!["syncer.to.ssl-ca", "missing.pem", "cannot read it"],
        ),
        (
            format!("ssl-mode = \"verify-ca\"\nssl-ca = {:?}\n", text(&not_pem)),
            vec!["syncer.to.ssl-ca", "holds no PEM certificate"],
        ),
        (
            format!(
                "ssl-cert = {:?}\nssl-key = {:?}\n",
                text(&pki.client.cert),
                text(&pki.for_ip.key)
            ),
            vec![
                "syncer.to.ssl-key",
                "is not the private key of syncer.to.ssl-cert",
            ],
        ),
        (
            format!(
                "ssl-cert = {:?}\nssl-key = {:?}\n",
                text(&expired.cert),
                text(&expired.key)
            ),
            vec!["syncer.to.ssl-cert", "expired on"],
        ),
        (
            format!(
                "ssl-cert = {:?}\nssl-key = {:?}\n",
                text(&pki.client.cert),
                text(&not_pem)
            ),
            vec!["syncer.to.ssl-key", "holds no PEM private key"],
        ),
    ];
    for (extra, words) in cases {
        for command in [Some("check-config"), None] {
            let mut run = DrainerCommand::new().unwrap();
            if let Some(c) = command {
                run = run.arg(c);
            }
            let out = run
                .config_text(&base(&extra))
                .unwrap()
                .output(RUN_TIMEOUT)
                .await
                .unwrap();
            assert_eq!(out.code(), Some(2), "{extra}: {}", out.stderr);
            for word in &words {
                assert!(
                    out.stderr.contains(word),
                    "{extra}: {word:?} not in {}",
                    out.stderr
                );
            }
            assert!(!out.stderr.contains("panicked"), "{}", out.stderr);
        }
    }
}
