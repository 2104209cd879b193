//! Preflight: named checks of both servers, each reported as setting / expected / actual.
//!
//! [`run`] connects to the upstream and the downstream as the configured users, gathers
//! what the checks need ([`facts`]) and judges it with pure rules ([`rules`], privileges
//! by [`grants`]), so the rules
//! are unit-tested without a server and the SQL is tested against real ones.

mod facts;
mod grants;
mod rules;
mod tls;

use std::fmt::Write as _;

use conf::Config;

use conf::RelayConfig;
use drainer::servers::Servers;
use link::files::Named;
use link::x509::CertInfo;
use link::Server;
use rules::{downstream_checks, relay_upstream_checks, upstream_checks, Check, Outcome, Side};
use tls::{expiry, relay_link_checks, tls_checks, TlsSide};

/// Every check of both servers, in the order they are printed.
#[derive(Debug, Clone)]
pub struct Report {
    pub checks: Vec<Check>,
}

impl Report {
    pub fn passed(&self) -> bool {
        self.checks.iter().all(|c| c.outcome != Outcome::Fail)
    }

    pub fn failures(&self) -> impl Iterator<Item = &Check> {
        self.checks.iter().filter(|c| c.outcome == Outcome::Fail)
    }

    pub fn warnings(&self) -> impl Iterator<Item = &Check> {
        self.checks.iter().filter(|c| c.outcome == Outcome::Warn)
    }

    /// A fixed-width table: RESULT, SERVER, SETTING, EXPECTED, ACTUAL.
    pub fn render(&self) -> String {
        let width = |f: fn(&Check) -> &str, title: &str| {
            self.checks
                .iter()
                .map(|c| f(c).chars().count())
                .max()
                .unwrap_or(0)
                .max(title.len())
        };
        let w_setting = width(|c| &c.setting, "SETTING");
        let w_expected = width(|c| &c.expected, "EXPECTED");
        let mut out = String::new();
        let mut row = |result: &str, side: &str, setting: &str, expected: &str, actual: &str| {
            let line = format!(
                "{result:<6} {side:<10} {setting:<w_setting$}  {expected:<w_expected$}  {actual}"
            );
            let _ = writeln!(out, "{}", line.trim_end());
        };
        row("RESULT", "SERVER", "SETTING", "EXPECTED", "ACTUAL");
        for c in &self.checks {
            let result = match c.outcome {
                Outcome::Pass => "ok",
                Outcome::Fail => "FAIL",
                Outcome::Skip => "skip",
                Outcome::Warn => "WARN",
            };
            row(result, c.side.as_str(), &c.setting, &c.expected, &c.actual);
        }
        out
    }
}

/// Connects to both servers (concurrently) and runs every check.
pub async fn run(config: &Config, servers: &Servers) -> Report {
    let now = now();
    let mut checks = Vec::new();
    if let (Some(tunnel), Some(tls)) = (&servers.relay, &config.pump.tls) {
        let link = tunnel.check().await.map_err(|e| e.to_string());
        let mut own = certificates("pump.tls.cert", &tls.cert);
        own.extend(certificates("pump.tls.ca", &tls.ca));
        checks.extend(relay_link_checks(&tunnel.relay, &link, &own, now));
    }
    let (up, down, replication) = tokio::join!(
        facts::gather(&servers.upstream),
        facts::gather(&servers.downstream),
        facts::replication_tls(&servers.upstream),
    );
    checks.extend(upstream_checks(config, &up));
    if servers.relay.is_none() {
        checks.extend(tls_checks(&TlsSide {
            side: Side::Upstream,
            server: &servers.upstream,
            session: up.as_ref().ok().map(|f| f.tls.as_ref()),
            replication: Some(replication),
            now,
        }));
    }
    checks.extend(downstream_checks(config, up.as_ref().ok(), &down));
    checks.extend(tls_checks(&TlsSide {
        side: Side::Downstream,
        server: &servers.downstream,
        session: down.as_ref().ok().map(|f| f.tls.as_ref()),
        replication: None,
        now,
    }));
    Report { checks }
}

/// `drainer relay check-config`: the relay's certificates and its upstream, as the relay
/// sees it.
pub async fn relay(config: &RelayConfig, upstream: &Server) -> Report {
    let now = now();
    let (up, replication) = tokio::join!(facts::gather(upstream), facts::replication_tls(upstream));
    let mut checks = relay_upstream_checks(config, &up);
    checks.extend(tls_checks(&TlsSide {
        side: Side::Upstream,
        server: upstream,
        session: up.as_ref().ok().map(|f| f.tls.as_ref()),
        replication: Some(replication),
        now,
    }));
    for (key, info) in certificates("tls.cert", &config.tls.cert)
        .into_iter()
        .chain(certificates("tls.ca", &config.tls.ca))
    {
        checks.push(expiry(Side::Relay, &key, &info, now));
    }
    Report { checks }
}

/// The certificates of a PEM file, by key (none when it cannot be read: loading the
/// configuration already refused such a file).
fn certificates(key: &str, path: &std::path::Path) -> Vec<(String, CertInfo)> {
    Named { key, path }
        .certificates()
        .unwrap_or_default()
        .iter()
        .filter_map(|c| Some((key.to_owned(), CertInfo::parse(c)?)))
        .collect()
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}
