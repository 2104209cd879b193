//! TLS checks, pure: what each connection negotiated against what its `ssl-mode` asks,
//! certificates close to expiry, and logins that cross the network unencrypted.

use conf::SslMode;
use link::relay::LinkInfo;
use link::x509::CertInfo;
use link::Server;

use super::facts::TlsInUse;
use super::rules::{Check, Outcome, Side};

/// A certificate that expires within this many days is warned of.
pub const EXPIRY_WARNING_DAYS: i64 = 30;

/// What one connection's TLS is checked against.
pub struct TlsSide<'a> {
    pub side: Side,
    pub server: &'a Server,
    /// The client-library session's TLS (`None`: the server was not reached).
    pub session: Option<Option<&'a TlsInUse>>,
    /// The replication connection's TLS (upstream only).
    pub replication: Option<Result<Option<TlsInUse>, String>>,
    /// Unix seconds now.
    pub now: i64,
}

pub fn tls_checks(t: &TlsSide<'_>) -> Vec<Check> {
    let mut checks = Vec::new();
    if let Some(session) = t.session {
        checks.push(in_use(t, "tls (session)", Ok(session.cloned())));
    }
    if let Some(replication) = &t.replication {
        checks.push(in_use(
            t,
            "tls (replication connection)",
            replication.clone(),
        ));
    }
    for (key, info) in &t.server.tls.certificates {
        checks.push(expiry(t.side, key, info, t.now));
    }
    checks
}

fn in_use(t: &TlsSide<'_>, setting: &str, tls: Result<Option<TlsInUse>, String>) -> Check {
    let settings = t.server.tls.settings();
    let mode = settings.mode;
    let expected = match mode {
        SslMode::Disabled => "off (ssl-mode = disabled)".to_owned(),
        SslMode::Preferred => "on where the server offers it (ssl-mode = preferred)".to_owned(),
        SslMode::Required => "on, unverified (ssl-mode = required)".to_owned(),
        SslMode::VerifyCa => "on, chain checked against ssl-ca (verify-ca)".to_owned(),
        SslMode::VerifyIdentity => format!(
            "on, chain and name {} checked (verify-identity)",
            t.server.host
        ),
    };
    match tls {
        Err(e) => Check::new(t.side, setting, expected, e, false),
        Ok(Some(tls)) => Check::new(
            t.side,
            setting,
            expected,
            format!("{} {}", tls.version, tls.cipher),
            true,
        ),
        Ok(None) if !is_loopback(&t.server.host) => Check {
            outcome: Outcome::Warn,
            ..Check::new(
                t.side,
                setting,
                expected,
                format!(
                    "off: the login{} and every row cross {} unencrypted",
                    if t.server.password.is_empty() {
                        ""
                    } else {
                        " (password scramble)"
                    },
                    t.server.host
                ),
                true,
            )
        },
        Ok(None) => Check::new(t.side, setting, expected, "off (loopback)".into(), true),
    }
}

/// The link to a relay (`[pump] relay`): made, TLS 1.3, the relay's certificate checked;
/// certificates near expiry warned of.
pub fn relay_link_checks(
    addr: &str,
    link: &Result<LinkInfo, String>,
    own: &[(String, CertInfo)],
    now: i64,
) -> Vec<Check> {
    let side = Side::Upstream;
    let expected = format!("TLS 1.3 to {addr}, both certificates checked");
    let mut checks = vec![match link {
        Ok(info) => Check::new(
            side,
            "relay link",
            expected,
            format!("{} {}", info.version, info.cipher),
            true,
        ),
        Err(e) => Check::new(side, "relay link", expected, e.clone(), false),
    }];
    if let Ok(LinkInfo {
        certificate: Some(info),
        ..
    }) = link
    {
        checks.push(expiry(side, "relay certificate", info, now));
    }
    checks.extend(own.iter().map(|(key, info)| expiry(side, key, info, now)));
    checks
}

pub fn expiry(side: Side, key: &str, info: &CertInfo, now: i64) -> Check {
    let days = (info.not_after - now).div_euclid(86_400);
    let check = Check::new(
        side,
        &format!("{key} expiry"),
        format!("valid {EXPIRY_WARNING_DAYS} days or more"),
        format!("{info} ({days} days)"),
        true,
    );
    if days < EXPIRY_WARNING_DAYS {
        Check {
            outcome: Outcome::Warn,
            ..check
        }
    } else {
        check
    }
}

/// Whether `host` names this machine: nothing crosses a network to it.
pub fn is_loopback(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn server(host: &str, mode: SslMode) -> Server {
        let mut s = Server::plain(host, 3306, "drainer", "pw");
        if mode != SslMode::Disabled {
            let settings = conf::ServerTls {
                section: "pump",
                mode,
                ca: None,
                cert: None,
                key: None,
            };
            s.tls = Arc::new(link::ClientTls::load(&settings).unwrap());
        }
        s
    }

    fn side<'a>(server: &'a Server, session: Option<&'a TlsInUse>) -> TlsSide<'a> {
        TlsSide {
            side: Side::Upstream,
            server,
            session: Some(session),
            replication: None,
            now: 0,
        }
    }

    #[test]
    fn plain_tcp_across_the_network_is_warned_of() {
        let remote = server("db.example", SslMode::Preferred);
        let checks = tls_checks(&side(&remote, None));
        assert_eq!(checks[0].outcome, Outcome::Warn);
        assert!(checks[0].actual.contains("cross db.example unencrypted"));
        let local = server("127.0.0.1", SslMode::Preferred);
        let checks = tls_checks(&side(&local, None));
        assert_eq!(checks[0].outcome, Outcome::Pass);
        assert_eq!(checks[0].actual, "off (loopback)");
    }

    #[test]
    fn tls_in_use_shows_version_and_cipher() {
        let remote = server("db.example", SslMode::Required);
        let tls = TlsInUse {
            version: "TLSv1.3".into(),
            cipher: "TLS_AES_256_GCM_SHA384".into(),
        };
        let checks = tls_checks(&side(&remote, Some(&tls)));
        assert_eq!(checks[0].outcome, Outcome::Pass);
        assert_eq!(checks[0].actual, "TLSv1.3 TLS_AES_256_GCM_SHA384");
        assert!(checks[0].expected.contains("required"));
    }

    #[test]
    fn a_refused_replication_connection_fails() {
        let remote = server("db.example", SslMode::Required);
        let mut t = side(&remote, None);
        t.replication = Some(Err("invalid peer certificate: UnknownIssuer".into()));
        let checks = tls_checks(&t);
        assert_eq!(checks[1].outcome, Outcome::Fail);
        assert!(checks[1].actual.contains("UnknownIssuer"));
    }

    #[test]
    fn certificates_close_to_expiry_are_warned_of() {
        let info = CertInfo {
            common_name: Some("relay-a".into()),
            alt_names: vec![],
            has_alt_names: false,
            not_before: 0,
            not_after: 20 * 86_400,
        };
        let soon = expiry(Side::Upstream, "pump.ssl-cert", &info, 0);
        assert_eq!(soon.outcome, Outcome::Warn);
        assert!(soon.actual.contains("(20 days)"), "{}", soon.actual);
        let later = expiry(Side::Upstream, "pump.ssl-cert", &info, -20 * 86_400);
        assert_eq!(later.outcome, Outcome::Pass);
    }
}
