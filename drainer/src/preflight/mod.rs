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

use drainer::servers::Servers;
use rules::{downstream_checks, upstream_checks, Check, Outcome, Side};
use tls::{tls_checks, TlsSide};

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
    let (up, down, replication) = tokio::join!(
        facts::gather(&servers.upstream),
        facts::gather(&servers.downstream),
        facts::replication_tls(&servers.upstream),
    );
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let mut checks = upstream_checks(config, &up);
    checks.extend(tls_checks(&TlsSide {
        side: Side::Upstream,
        server: &servers.upstream,
        session: up.as_ref().ok().map(|f| f.tls.as_ref()),
        replication: Some(replication),
        now,
    }));
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
