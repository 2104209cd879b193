//! Reading `drainer.toml`: file, then password environment variables, then validation.

use std::path::{Path, PathBuf};

use crate::{Config, Secret, Violation};

/// Environment variable that, when set, replaces `[pump] password`.
pub const PUMP_PASSWORD_ENV: &str = "DRAINER_PUMP_PASSWORD";
/// Environment variable that, when set, replaces `[syncer.to] password`.
pub const TO_PASSWORD_ENV: &str = "DRAINER_TO_PASSWORD";

/// Why a configuration could not be used. Every variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read configuration file {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Not TOML, an unknown key, a wrong type or a missing key; `message` names the key.
    #[error("configuration file {}: {message}", path.display())]
    Parse { path: PathBuf, message: String },
    #[error("environment variable {var} is not valid UTF-8")]
    Env { var: &'static str },
    #[error("configuration file {} is invalid:{}", path.display(), list(violations))]
    Invalid {
        path: PathBuf,
        violations: Vec<Violation>,
    },
}

/// A TOML or type error as `line L, column C: key `a.b`: message`. The source line is not
/// quoted, and neither is the value of a password key (serde quotes values it rejects).
fn describe(text: &str, key: Option<&str>, e: &toml::de::Error) -> String {
    let mut out = String::new();
    let mut line_text = "";
    if let Some(span) = e.span() {
        let before = &text[..span.start.min(text.len())];
        let line = before.matches('\n').count() + 1;
        let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        line_text = text.lines().nth(line - 1).unwrap_or_default();
        out.push_str(&format!("line {line}, column {column}: "));
    }
    let duplicate;
    let key = match key.filter(|k| !k.is_empty() && *k != ".") {
        // The TOML parser names no key for a duplicate: it is the one at the error.
        None if e.message().contains("duplicate key") => {
            duplicate = e.span().map(|span| key_at(text, span.start));
            duplicate.as_deref()
        }
        key => key,
    };
    if let Some(key) = key {
        out.push_str(&format!("key `{key}`: "));
    }
    let secret = key.is_some_and(|k| k.ends_with("password"))
        || line_text.trim_start().starts_with("password");
    if secret {
        out.push_str("must be a quoted string (the value is not shown: it is a password)");
    } else {
        out.push_str(e.message().trim());
    }
    out
}

/// The dotted path of the key or table header that starts at byte `at` of `text`: a
/// header's own name (`syncer.to`), or a key under the header above it
/// (`pump.server-id`).
fn key_at(text: &str, at: usize) -> String {
    let at = at.min(text.len());
    let line_start = text[..at].rfind('\n').map_or(0, |i| i + 1);
    let line = text[line_start..].lines().next().unwrap_or_default().trim();
    let header = |l: &str| {
        l.strip_prefix('[').map(|h| {
            h.trim_start_matches('[')
                .split(']')
                .next()
                .unwrap_or_default()
                .trim()
                .to_owned()
        })
    };
    if let Some(name) = header(line) {
        return name;
    }
    let key = text[at..]
        .lines()
        .next()
        .unwrap_or_default()
        .split('=')
        .next()
        .unwrap_or_default()
        .trim();
    let section = text[..line_start]
        .lines()
        .rev()
        .find_map(|l| header(l.trim()));
    match section {
        Some(section) if !section.is_empty() => format!("{section}.{key}"),
        _ => key.to_owned(),
    }
}

fn list(violations: &[Violation]) -> String {
    violations.iter().map(|v| format!("\n  {v}")).collect()
}

/// Where a password in the effective configuration came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PasswordSource {
    /// The environment variable named.
    Env(&'static str),
    File,
}

/// `config`, unless it breaks a rule: then every violation, naming the file.
pub(crate) fn valid<T>(
    config: T,
    violations: Vec<Violation>,
    path: &Path,
) -> Result<T, ConfigError> {
    if violations.is_empty() {
        Ok(config)
    } else {
        Err(ConfigError::Invalid {
            path: path.to_owned(),
            violations,
        })
    }
}

/// Parses a TOML file of one of this crate's models; errors name the key and the line.
pub(crate) fn parse_toml<T: serde::de::DeserializeOwned>(
    text: &str,
    origin: &Path,
) -> Result<T, ConfigError> {
    let parse_error = |message: String| ConfigError::Parse {
        path: origin.to_owned(),
        message,
    };
    let deserializer =
        toml::Deserializer::parse(text).map_err(|e| parse_error(describe(text, None, &e)))?;
    serde_path_to_error::deserialize(deserializer).map_err(|e| {
        let path = e.path().to_string();
        parse_error(describe(text, Some(&path), e.inner()))
    })
}

impl Config {
    /// Reads `path`, applies `DRAINER_PUMP_PASSWORD` / `DRAINER_TO_PASSWORD` when set, and
    /// validates. The one way the binary loads its configuration.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let mut config = Config::parse(&text, path)?;
        for var in [PUMP_PASSWORD_ENV, TO_PASSWORD_ENV] {
            if std::env::var_os(var).is_some_and(|v| v.to_str().is_none()) {
                return Err(ConfigError::Env { var });
            }
        }
        config.apply_password_env(|name| std::env::var(name).ok());
        let mut violations = config.adopt_tidb();
        violations.extend(config.validate());
        valid(config, violations, path)
    }

    /// Parses TOML `text` read from `origin` (named in errors). No environment, no validation.
    pub fn parse(text: &str, origin: &Path) -> Result<Config, ConfigError> {
        parse_toml(text, origin)
    }

    /// Replaces each password whose environment variable `lookup` finds (an empty value
    /// included: it means "no password").
    pub fn apply_password_env(&mut self, lookup: impl Fn(&str) -> Option<String>) {
        if let Some(p) = lookup(PUMP_PASSWORD_ENV) {
            self.pump.password = Secret::new(p);
        }
        if let Some(p) = lookup(TO_PASSWORD_ENV) {
            self.syncer.to.password = Secret::new(p);
        }
    }
}

impl PasswordSource {
    /// Where the pump's (`pump = true`) or the downstream's password comes from now.
    pub fn current(pump: bool) -> PasswordSource {
        let var = if pump {
            PUMP_PASSWORD_ENV
        } else {
            TO_PASSWORD_ENV
        };
        if std::env::var_os(var).is_some() {
            PasswordSource::Env(var)
        } else {
            PasswordSource::File
        }
    }
}
