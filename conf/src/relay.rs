//! `relay.toml`: the configuration of `drainer relay`, which reads its site's upstream and
//! serves it to drainers in other sites over mutual TLS.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::load::{parse_toml, valid, ConfigError};
use crate::model::{LogLevel, ServerTls, SslMode};
use crate::validate::{check_host_port, Violations};
use crate::{Secret, Violation};

/// Environment variable that, when set, replaces `[upstream] password` of `relay.toml`.
pub const UPSTREAM_PASSWORD_ENV: &str = "DRAINER_UPSTREAM_PASSWORD";

/// The root of `relay.toml`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct RelayConfig {
    /// `host:port` the relay accepts drainers on: the one port its site opens to others.
    pub listen: String,
    /// HTTP listen address for `/status` and `/metrics`.
    #[serde(default = "default_relay_addr")]
    pub addr: String,
    #[serde(default)]
    pub log_level: LogLevel,
    pub tls: RelayServerTls,
    pub upstream: RelayUpstream,
}

/// `[tls]`: the relay's certificate, and the CA its clients' must chain to.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct RelayServerTls {
    /// PEM file of the CA a drainer's certificate must chain to.
    pub ca: PathBuf,
    /// PEM file of the relay's certificate (chain).
    pub cert: PathBuf,
    /// PEM file of its private key.
    pub key: PathBuf,
    /// If not empty, only client certificates with one of these names are accepted: a
    /// subjectAltName DNS name or IP address (the common name only for a certificate
    /// without a subjectAltName extension).
    #[serde(default)]
    pub allowed_names: Vec<String>,
}

/// `[upstream]`: the local database, with the keys of a drainer's `[pump]`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct RelayUpstream {
    pub host: String,
    pub port: u16,
    pub user: String,
    /// Overridden by `DRAINER_UPSTREAM_PASSWORD` when it is set.
    #[serde(default)]
    pub password: Secret,
    /// The first replica id of the relay's range: each drainer's binlog stream registers
    /// as `server-id + n` (n = 0, 1, … as streams start), so two never share one.
    pub server_id: u32,
    /// How many binlog streams at once (the size of the replica id range).
    #[serde(default = "default_max_streams")]
    pub max_streams: u32,
    #[serde(default, skip_serializing_if = "is_default_mode")]
    pub ssl_mode: SslMode,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssl_ca: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssl_cert: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssl_key: Option<PathBuf>,
}

impl RelayUpstream {
    pub fn tls(&self) -> ServerTls {
        ServerTls {
            section: "upstream",
            mode: self.ssl_mode,
            ca: self.ssl_ca.clone(),
            cert: self.ssl_cert.clone(),
            key: self.ssl_key.clone(),
        }
    }
}

pub const DEFAULT_MAX_STREAMS: u32 = 64;

fn default_relay_addr() -> String {
    "127.0.0.1:8251".to_owned()
}
fn default_max_streams() -> u32 {
    DEFAULT_MAX_STREAMS
}
fn is_default_mode(mode: &SslMode) -> bool {
    *mode == SslMode::default()
}

impl RelayConfig {
    /// Reads `relay.toml`, lets `DRAINER_UPSTREAM_PASSWORD` replace the password, and
    /// validates.
    pub fn load(path: &Path) -> Result<RelayConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let mut config: RelayConfig = parse_toml(&text, path)?;
        match std::env::var(UPSTREAM_PASSWORD_ENV) {
            Ok(p) => config.upstream.password = Secret::new(p),
            Err(std::env::VarError::NotUnicode(_)) => {
                return Err(ConfigError::Env {
                    var: UPSTREAM_PASSWORD_ENV,
                })
            }
            Err(std::env::VarError::NotPresent) => {}
        }
        let violations = config.validate();
        valid(config, violations, path)
    }

    pub fn parse(text: &str, origin: &Path) -> Result<RelayConfig, ConfigError> {
        parse_toml(text, origin)
    }

    /// Every rule this configuration breaks; pure.
    pub fn validate(&self) -> Vec<Violation> {
        let mut v = Violations(Vec::new());
        if let Err(e) = check_host_port(&self.listen) {
            v.add("listen", e);
        }
        if let Err(e) = check_host_port(&self.addr) {
            v.add("addr", e);
        }
        if self.listen == self.addr {
            v.add("addr", "must differ from listen".into());
        }
        for (key, path) in [
            ("tls.ca", &self.tls.ca),
            ("tls.cert", &self.tls.cert),
            ("tls.key", &self.tls.key),
        ] {
            if path.as_os_str().is_empty() {
                v.add(key, "must name a PEM file".into());
            }
        }
        if self.tls.allowed_names.iter().any(|n| n.trim().is_empty()) {
            v.add("tls.allowed-names", "must not hold an empty name".into());
        }
        let up = &self.upstream;
        v.endpoint("upstream", &up.host, up.port, &up.user);
        v.tls(&up.tls());
        if up.server_id == 0 {
            v.add(
                "upstream.server-id",
                "must be between 1 and 4294967295 (0 cannot register as a replica)".into(),
            );
        }
        if up.max_streams == 0 || u64::from(up.server_id) + u64::from(up.max_streams) > 1 << 32 {
            v.add(
                "upstream.max-streams",
                format!(
                    "must be at least 1, and server-id + max-streams must stay under 4294967296 \
                     (is {})",
                    up.max_streams
                ),
            );
        }
        v.0
    }
}
