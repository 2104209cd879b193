//! The HTTP server on `addr`: `GET /status` answers with the direction's
//! [`Status`] as JSON, `GET /metrics` with Prometheus text ([`crate::metrics`]); every
//! other path: 404; another method on those two paths: 405.
//!
//! Plain HTTP/1.1, one request per connection (`Connection: close`): a request head over
//! 8 KiB, or one not sent within 5 seconds, is answered or dropped without holding
//! anything.

use std::sync::Arc;
use std::time::Duration;

use metrics_exporter_prometheus::PrometheusHandle;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::status::Status;

/// What the server answers with: the status as JSON, and the Prometheus text of
/// `/metrics` (none: 404). The drainer's and the relay's ([`crate::relay`]).
#[derive(Clone)]
pub struct Pages {
    pub status: Arc<dyn Fn() -> serde_json::Value + Send + Sync>,
    pub metrics: Option<Arc<dyn Fn() -> String + Send + Sync>>,
}

impl Pages {
    /// A drainer's pages: its [`Status`], and its metrics from the recorder's handle.
    pub fn drainer(status: Arc<Status>, prometheus: Option<PrometheusHandle>) -> Pages {
        let shown = Arc::clone(&status);
        Pages {
            status: Arc::new(move || shown.to_json()),
            metrics: prometheus.map(|handle| {
                Arc::new(move || crate::metrics::render(&handle, &status))
                    as Arc<dyn Fn() -> String + Send + Sync>
            }),
        }
    }
}

/// The longest request head read, and how long a client has to send it.
const MAX_HEAD: usize = 8 * 1024;
const READ_TIMEOUT: Duration = Duration::from_secs(5);

/// Listens on `addr` (`host:port`); the error names the address.
pub async fn bind(addr: &str) -> Result<TcpListener, String> {
    TcpListener::bind(addr)
        .await
        .map_err(|e| format!("addr {addr}: cannot listen for /status: {e}"))
}

/// Answers requests until the process ends.
pub async fn serve(listener: TcpListener, pages: Pages) {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                let pages = pages.clone();
                tokio::spawn(async move {
                    if let Err(e) = answer(stream, &pages).await {
                        tracing::debug!(error = %e, "status request failed");
                    }
                });
            }
            Err(e) => {
                // Out of file descriptors, most likely: wait rather than spin.
                tracing::warn!(error = %e, "status server cannot accept a connection");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// The response to a request head: status line reason, content type and body.
fn route(head: &[u8], pages: &Pages) -> (u16, &'static str, String) {
    let line = head.split(|b| *b == b'\n').next().unwrap_or_default();
    let line = String::from_utf8_lossy(line);
    let mut parts = line.trim_end().split(' ');
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let path = target.split('?').next().unwrap_or("");
    let text = "text/plain; charset=utf-8";
    match (method, path) {
        ("GET" | "HEAD", "/status") => {
            let mut body = (pages.status)().to_string();
            body.push('\n');
            (200, "application/json", body)
        }
        ("GET" | "HEAD", "/metrics") if pages.metrics.is_some() => {
            let render = pages.metrics.as_ref().expect("checked above");
            (200, "text/plain; version=0.0.4; charset=utf-8", render())
        }
        (_, "/status" | "/metrics") => (405, text, "only GET is supported\n".into()),
        ("", _) => (400, text, "bad request\n".into()),
        _ => (
            404,
            text,
            format!("no such page: {path}; there are /status and /metrics\n"),
        ),
    }
}

async fn answer(mut stream: TcpStream, pages: &Pages) -> std::io::Result<()> {
    let mut head = Vec::with_capacity(512);
    let complete = tokio::time::timeout(READ_TIMEOUT, async {
        let mut chunk = [0u8; 1024];
        loop {
            if head.windows(4).any(|w| w == b"\r\n\r\n") || head.windows(2).any(|w| w == b"\n\n") {
                return Ok::<bool, std::io::Error>(true);
            }
            if head.len() > MAX_HEAD {
                return Ok(false);
            }
            let n = stream.read(&mut chunk).await?;
            if n == 0 {
                return Ok(false);
            }
            head.extend_from_slice(&chunk[..n]);
        }
    })
    .await;
    let (code, content_type, body) = match complete {
        Err(_) | Ok(Err(_)) => return Ok(()),
        Ok(Ok(false)) if head.len() > MAX_HEAD => (
            431,
            "text/plain; charset=utf-8",
            "request head too large\n".into(),
        ),
        Ok(Ok(false)) => return Ok(()),
        Ok(Ok(true)) => route(&head, pages),
    };
    let reason = match code {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        _ => "Request Header Fields Too Large",
    };
    let head_only = head.starts_with(b"HEAD ");
    let mut response = format!(
        "HTTP/1.1 {code} {reason}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\
         Cache-Control: no-store\r\nConnection: close\r\n",
        body.len()
    );
    if code == 405 {
        response.push_str("Allow: GET, HEAD\r\n");
    }
    response.push_str("\r\n");
    if !head_only {
        response.push_str(&body);
    }
    tokio::time::timeout(READ_TIMEOUT, async {
        stream.write_all(response.as_bytes()).await?;
        stream.shutdown().await
    })
    .await
    .unwrap_or(Ok(()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value as Json;

    #[test]
    fn routes_status_and_refuses_the_rest() {
        let status = Status::new("up:1".into(), "down:2".into(), 7);
        status.lock().applied = 3;
        let s = Pages::drainer(status, None);
        let (code, kind, body) = route(b"GET /status?pretty HTTP/1.1\r\n\r\n", &s);
        assert_eq!((code, kind), (200, "application/json"));
        let json: Json = serde_json::from_str(&body).unwrap();
        assert_eq!(json["transactions_applied"], 3);
        assert_eq!(json["state"], "starting");
        assert_eq!(json["channel_id"], 7);
        assert_eq!(json["lag_seconds"], Json::Null);
        assert_eq!(route(b"GET /nope HTTP/1.1\r\n\r\n", &s).0, 404);
        assert_eq!(route(b"POST /status HTTP/1.1\r\n\r\n", &s).0, 405);
        assert_eq!(route(b"\r\n\r\n", &s).0, 400);
    }
}
