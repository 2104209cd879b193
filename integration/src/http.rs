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
