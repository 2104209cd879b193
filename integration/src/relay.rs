//! `drainer relay` processes for tests: a relay in front of a harness server, with the
//! certificates a test made, and drainer configurations that read through it.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::drainer::{DrainerCommand, DrainerProcess};
use crate::mariadb::{free_port, MariaDb, PUMP_PASSWORD, PUMP_USER};
use crate::HarnessError;

/// A relay's settings: where it listens, its certificate, whom it accepts.
#[derive(Debug, Clone)]
pub struct RelaySpec {
    /// `127.0.0.1:PORT` drainers connect to.
    pub listen: String,
    /// `127.0.0.1:PORT` of its `/status` and `/metrics`.
    pub addr: String,
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
    pub allowed_names: Vec<String>,
    /// The first replica id of its range.
    pub server_id: u32,
    /// The network namespace it runs in (its site's), if any.
    pub netns: Option<String>,
    /// The password it logs in to the upstream with (the harness's, unless a test
    /// wants it wrong).
    pub password: String,
}

impl RelaySpec {
    /// A relay on free loopback ports.
    pub fn new(ca: &Path, cert: &Path, key: &Path) -> Result<RelaySpec, HarnessError> {
        Ok(RelaySpec {
            listen: format!("127.0.0.1:{}", free_port()?),
            addr: format!("127.0.0.1:{}", free_port()?),
            ca: ca.to_owned(),
            cert: cert.to_owned(),
            key: key.to_owned(),
            allowed_names: Vec::new(),
            server_id: 4001,
            netns: None,
            password: PUMP_PASSWORD.to_owned(),
        })
    }

    /// `relay.toml` for a relay in front of `upstream`, logging in as the harness's
    /// replication user (its password from the environment).
    pub fn config_text(&self, upstream: &MariaDb) -> String {
        let names: Vec<String> = self
            .allowed_names
            .iter()
            .map(|n| format!("{n:?}"))
            .collect();
        format!(
            "listen = {listen:?}\naddr = {addr:?}\n[tls]\nca = {ca:?}\ncert = {cert:?}\n\
             key = {key:?}\nallowed-names = [{names}]\n[upstream]\nhost = {host:?}\n\
             port = {port}\nuser = {PUMP_USER:?}\nserver-id = {id}\n",
            listen = self.listen,
            addr = self.addr,
            ca = self.ca.display().to_string(),
            cert = self.cert.display().to_string(),
            key = self.key.display().to_string(),
            names = names.join(", "),
            host = upstream.host(),
            port = upstream.port(),
            id = self.server_id,
        )
    }

    /// `drainer relay` (or `drainer relay check-config` with `check`) for `upstream`.
    pub fn command(&self, upstream: &MariaDb, check: bool) -> Result<DrainerCommand, HarnessError> {
        let mut command = DrainerCommand::new()?.arg("relay");
        if let Some(ns) = &self.netns {
            command = command.netns(ns);
        }
        if check {
            command = command.arg("check-config");
        }
        Ok(command
            .config_text(&self.config_text(upstream))?
            .env(conf::UPSTREAM_PASSWORD_ENV, &self.password))
    }

    /// Starts the relay and waits until it serves.
    pub async fn start(&self, upstream: &MariaDb) -> Result<DrainerProcess, HarnessError> {
        self.command(upstream, false)?
            .spawn_until("relay serving", Duration::from_secs(30))
            .await
    }

    /// Points `config`'s `[pump]` at this relay, with the drainer's certificate.
    pub fn read_through(&self, config: &mut conf::Config, cert: &Path, key: &Path) {
        let pump = &mut config.pump;
        pump.relay = Some(self.listen.clone());
        pump.tls = Some(conf::RelayClientTls {
            ca: self.ca.clone(),
            cert: cert.to_owned(),
            key: key.to_owned(),
            server_name: None,
        });
        pump.host.clear();
        pump.port = 0;
        pump.user.clear();
        pump.password = conf::Secret::default();
        pump.server_id = 0;
    }
}
