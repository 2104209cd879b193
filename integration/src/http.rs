//! A minimal HTTP/1.1 client for a drainer's status server: one `GET`, the status code and
//! body (the server answers with `Connection: close`).

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::HarnessError;

const TIMEOUT: Duration = Duration::from_secs(10);

/// `GET path` from `addr` (`host:port`): the status code and the body.
pub async fn http_get(addr: &str, path: &str) -> Result<(u16, String), HarnessError> {
    let exchange = async {
        let mut stream = TcpStream::connect(addr).await?;
        stream
            .write_all(format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n\r\n").as_bytes())
            .await?;
        let mut response = Vec::new();
        stream.read_to_end(&mut response).await?;
        Ok::<_, std::io::Error>(response)
    };
    let response = tokio::time::timeout(TIMEOUT, exchange)
        .await
        .map_err(|_| {
            HarnessError::io(
                format!("GET http://{addr}{path}"),
                std::io::ErrorKind::TimedOut.into(),
            )
        })?
        .map_err(|e| HarnessError::io(format!("GET http://{addr}{path}"), e))?;
    let text = String::from_utf8_lossy(&response);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let code = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| {
            HarnessError::Usage(format!(
                "GET http://{addr}{path}: not an HTTP response: {head:?}"
            ))
        })?;
    Ok((code, body.to_owned()))
}

/// A drainer's `GET /status`, parsed.
pub async fn drainer_status(config: &conf::Config) -> Result<serde_json::Value, HarnessError> {
    let (code, body) = http_get(&config.addr, "/status").await?;
    if code != 200 {
        return Err(HarnessError::Usage(format!(
            "GET /status on {} answered {code}: {body}",
            config.addr
        )));
    }
    serde_json::from_str(&body).map_err(|e| {
        HarnessError::Usage(format!(
            "GET /status on {}: not JSON ({e}): {body}",
            config.addr
        ))
    })
}

/// One sample of Prometheus text: metric name, labels, value.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: Vec<(String, String)>,
    pub value: f64,
}

/// Parses Prometheus text exposition (version 0.0.4) strictly: `# HELP` / `# TYPE` lines
/// name a metric and a known type; every other line is `name{label="value",…} number`.
pub fn parse_prometheus(text: &str) -> Result<Vec<Sample>, String> {
    let valid_name = |n: &str| {
        !n.is_empty()
            && n.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
            && !n.starts_with(|c: char| c.is_ascii_digit())
    };
    let mut samples = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let bad = |why: &str| format!("line {}: {why}: {line:?}", i + 1);
        if line.trim().is_empty() {
            continue;
        }
        if let Some(rest) = line.strip_prefix("# ") {
            let mut parts = rest.splitn(3, ' ');
            match (parts.next(), parts.next(), parts.next()) {
                (Some("HELP"), Some(name), _) if valid_name(name) => {}
                (Some("TYPE"), Some(name), Some(kind)) if valid_name(name) => {
                    if !["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind) {
                        return Err(bad("unknown type"));
                    }
                }
                _ => return Err(bad("a comment that is neither HELP nor TYPE")),
            }
            continue;
        }
        let (series, value) = line.rsplit_once(' ').ok_or_else(|| bad("no value"))?;
        let value: f64 = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            v => v.parse().map_err(|_| bad("the value is not a number"))?,
        };
        let (name, labels) = match series.split_once('{') {
            None => (series, Vec::new()),
            Some((name, rest)) => {
                let inner = rest
                    .strip_suffix('}')
                    .ok_or_else(|| bad("unclosed labels"))?;
                let mut labels = Vec::new();
                for pair in inner.split(',').filter(|p| !p.is_empty()) {
                    let (k, v) = pair
                        .split_once('=')
                        .ok_or_else(|| bad("a label without ="))?;
                    let v = v
                        .strip_prefix('"')
                        .and_then(|v| v.strip_suffix('"'))
                        .ok_or_else(|| bad("an unquoted label value"))?;
                    if !valid_name(k) {
                        return Err(bad("a bad label name"));
                    }
                    labels.push((k.to_owned(), v.to_owned()));
                }
                (name, labels)
            }
        };
        if !valid_name(name) {
            return Err(bad("a bad metric name"));
        }
        samples.push(Sample {
            name: name.to_owned(),
            labels,
            value,
        });
    }
    Ok(samples)
}

/// The value of the sample `name` with exactly `labels` (in any order).
pub fn sample(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    samples
        .iter()
        .find(|s| {
            s.name == name
                && s.labels.len() == labels.len()
                && labels
                    .iter()
                    .all(|(k, v)| s.labels.iter().any(|(sk, sv)| sk == k && sv == v))
        })
        .map(|s| s.value)
}
