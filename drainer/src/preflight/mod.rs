//! Preflight: named checks of both servers, each reported as setting / expected / actual.
//!
//! [`run`] connects to the upstream and the downstream as the configured users, gathers
//! what the checks need ([`facts`]) and judges it with pure rules ([`rules`], privileges
//! by [`grants`]), so the rules
//! are unit-tested without a server and the SQL is tested against real ones.

mod facts;
mod grants;
mod rules;

use std::fmt::Write as _;

use conf::Config;

use facts::Endpoint;
use rules::{downstream_checks, upstream_checks, Check, Outcome};

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
            };
            row(result, c.side.as_str(), &c.setting, &c.expected, &c.actual);
        }
        out
    }
}

/// Connects to both servers (concurrently) and runs every check.
pub async fn run(config: &Config) -> Report {
    let pump = &config.pump;
    let to = &config.syncer.to;
    let upstream = Endpoint {
        host: &pump.host,
        port: pump.port,
        user: &pump.user,
        password: pump.password.expose(),
    };
    let downstream = Endpoint {
        host: &to.host,
        port: to.port,
        user: &to.user,
        password: to.password.expose(),
    };
    let (up, down) = tokio::join!(facts::gather(&upstream), facts::gather(&downstream));
    let mut checks = upstream_checks(config, &up);
    checks.extend(downstream_checks(config, up.as_ref().ok(), &down));
    Report { checks }
}
