//! What the direction is doing, for people and tools: the shared [`Status`] the pipeline
//! keeps current, and a small HTTP server on `addr` that answers `GET /status` with it as
//! JSON and `GET /metrics` with Prometheus text ([`crate::metrics`]); every other path:
//! 404; another method on those two paths: 405.
//!
//! - Lag is the seconds between now and the upstream commit time of the oldest transaction
//!   still in flight (read, not yet committed downstream), else of the last transaction
//!   handled (applied, or dropped as a loop), and 0 while the upstream has nothing more to
//!   send (its heartbeat says so). Before either is known it is `null`.
//! - The server is plain HTTP/1.1, one request per connection (`Connection: close`): a
//!   request head over 8 KiB, or one not sent within 5 seconds, is answered or dropped
//!   without holding anything. A stuck client never blocks the pipeline: the pipeline
//!   only takes a short lock to update counters.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use metrics_exporter_prometheus::PrometheusHandle;
use pump_reader::Position;
use serde_json::{json, Value as Json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// The direction's state, as `/status` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Preflight, schema bootstrap, connecting.
    Starting,
    Running,
    /// A transient failure: waiting to try the transaction again.
    Retrying,
    /// Stopped (asked to, or after a definite error; see `last_error`).
    Stopped,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Starting => "starting",
            State::Running => "running",
            State::Retrying => "retrying",
            State::Stopped => "stopped",
        }
    }
}

/// Counters and positions, behind [`Status`]'s lock.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub state: State,
    /// Where the reader is: after the last transaction (or heartbeat) read.
    pub upstream: Option<Position>,
    /// The last position saved in the checkpoint.
    pub checkpoint: Option<Position>,
    /// Where the committed prefix ends: every upstream transaction before it is applied
    /// (or dropped) downstream (the checkpoint saves it every `checkpoint-interval-ms`).
    pub applied_to: Option<Position>,
    /// Upstream commit time (unix seconds) of the last transaction applied or dropped.
    pub last_commit: Option<u32>,
    /// Upstream commit time of the oldest transaction handed to the workers and not yet
    /// committed downstream (`None`: none in flight).
    pub pending_since: Option<u32>,
    /// The upstream had nothing more to send at the last look (a heartbeat came).
    pub caught_up: bool,
    /// Upstream transactions applied (the growth of the channel's mark counter).
    pub applied: u64,
    /// Upstream transactions dropped because they carry this channel's mark.
    pub loops_dropped: u64,
    /// DDL statements run downstream.
    pub ddl_applied: u64,
    /// DDL statements tracked in the schema history but not run downstream (`sync-ddl =
    /// false`, or named by `skip-ddl`).
    pub ddl_skipped: u64,
    /// The last failure (transient or definite) and when (unix seconds).
    pub last_error: Option<(u64, String)>,
    /// When the checkpoint was last saved.
    pub checkpoint_saved: Option<Instant>,
}

/// The shared status of one direction.
pub struct Status {
    started: Instant,
    upstream_addr: String,
    downstream_addr: String,
    channel_id: i64,
    inner: Mutex<Snapshot>,
    /// The Prometheus recorder's handle, for `/metrics` (none: 404).
    prometheus: Option<PrometheusHandle>,
}

impl std::fmt::Debug for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Status")
            .field("upstream", &self.upstream_addr)
            .field("downstream", &self.downstream_addr)
            .field("snapshot", &*self.lock())
            .finish_non_exhaustive()
    }
}

/// Seconds since the epoch.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn position_json(p: &Option<Position>) -> Json {
    match p {
        None => Json::Null,
        Some(p) => json!({
            "file": (!p.coords.file.is_empty()).then_some(&p.coords.file),
            "pos": (!p.coords.file.is_empty()).then_some(p.coords.pos),
            "gtid": p.gtids.as_ref().map(|g| g.to_string()),
        }),
    }
}

impl Status {
    pub fn new(
        upstream_addr: String,
        downstream_addr: String,
        channel_id: i64,
        prometheus: Option<PrometheusHandle>,
    ) -> Arc<Status> {
        Arc::new(Status {
            started: Instant::now(),
            upstream_addr,
            downstream_addr,
            channel_id,
            prometheus,
            inner: Mutex::new(Snapshot {
                state: State::Starting,
                upstream: None,
                checkpoint: None,
                applied_to: None,
                last_commit: None,
                pending_since: None,
                caught_up: false,
                applied: 0,
                loops_dropped: 0,
                ddl_applied: 0,
                ddl_skipped: 0,
                last_error: None,
                checkpoint_saved: None,
            }),
        })
    }

    /// Since the process started (when the status was made).
    pub fn uptime(&self) -> Duration {
        self.started.elapsed()
    }

    /// The counters, to change them. A panic elsewhere while holding the lock leaves them
    /// usable: they are plain numbers.
    pub fn lock(&self) -> MutexGuard<'_, Snapshot> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn set_state(&self, state: State) {
        self.lock().state = state;
    }

    /// Records a failure; `retrying` says whether it is transient.
    pub fn failed(&self, message: impl std::fmt::Display, retrying: bool) {
        let mut s = self.lock();
        s.last_error = Some((unix_now(), message.to_string()));
        s.state = if retrying {
            State::Retrying
        } else {
            State::Stopped
        };
    }

    /// The lag in seconds at `now` (unix seconds): `None` before anything is known.
    pub fn lag(snapshot: &Snapshot, now: u64) -> Option<u64> {
        if snapshot.caught_up {
            return Some(0);
        }
        snapshot
            .pending_since
            .or(snapshot.last_commit)
            .map(|t| now.saturating_sub(u64::from(t)))
    }

    /// `/status` as JSON.
    pub fn to_json(&self) -> Json {
        let s = self.lock().clone();
        let now = unix_now();
        json!({
            "state": s.state.as_str(),
            "version": env!("CARGO_PKG_VERSION"),
            "uptime_seconds": self.started.elapsed().as_secs(),
            "upstream": self.upstream_addr,
            "downstream": self.downstream_addr,
            "channel_id": self.channel_id,
            "upstream_position": position_json(&s.upstream),
            "checkpoint_position": position_json(&s.checkpoint),
            "applied_position": position_json(&s.applied_to),
            "last_commit_timestamp": s.last_commit,
            "lag_seconds": Status::lag(&s, now),
            "transactions_applied": s.applied,
            "transactions_loop_dropped": s.loops_dropped,
            "ddl_applied": s.ddl_applied,
            "ddl_skipped": s.ddl_skipped,
            "last_error": s.last_error.as_ref().map(|(at, message)| json!({
                "message": message,
                "unix_time": at,
                "seconds_ago": now.saturating_sub(*at),
            })),
        })
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
pub async fn serve(listener: TcpListener, status: Arc<Status>) {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                let status = Arc::clone(&status);
                tokio::spawn(async move {
                    if let Err(e) = answer(stream, &status).await {
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
fn route(head: &[u8], status: &Status) -> (u16, &'static str, String) {
    let line = head.split(|b| *b == b'\n').next().unwrap_or_default();
    let line = String::from_utf8_lossy(line);
    let mut parts = line.trim_end().split(' ');
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let path = target.split('?').next().unwrap_or("");
    let text = "text/plain; charset=utf-8";
    match (method, path) {
        ("GET" | "HEAD", "/status") => {
            let mut body = status.to_json().to_string();
            body.push('\n');
            (200, "application/json", body)
        }
        ("GET" | "HEAD", "/metrics") if status.prometheus.is_some() => {
            let handle = status.prometheus.as_ref().expect("checked above");
            (
                200,
                "text/plain; version=0.0.4; charset=utf-8",
                crate::metrics::render(handle, status),
            )
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

async fn answer(mut stream: TcpStream, status: &Status) -> std::io::Result<()> {
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
        Ok(Ok(true)) => route(&head, status),
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

    fn status() -> Arc<Status> {
        Status::new("up:1".into(), "down:2".into(), 7, None)
    }

    #[test]
    fn lag_is_unknown_then_counts_then_zero_when_caught_up() {
        let s = status();
        assert_eq!(Status::lag(&s.lock(), 1_000), None);
        s.lock().last_commit = Some(990);
        assert_eq!(Status::lag(&s.lock(), 1_000), Some(10));
        assert_eq!(
            Status::lag(&s.lock(), 980),
            Some(0),
            "a clock behind is not negative"
        );
        s.lock().caught_up = true;
        assert_eq!(Status::lag(&s.lock(), 1_000), Some(0));
    }

    #[test]
    fn routes_status_and_refuses_the_rest() {
        let s = status();
        s.lock().applied = 3;
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

    #[test]
    fn failures_set_the_state_and_the_last_error() {
        let s = status();
        s.failed("deadlock", true);
        assert_eq!(s.lock().state, State::Retrying);
        s.failed("table gone", false);
        let json = s.to_json();
        assert_eq!(json["state"], "stopped");
        assert_eq!(json["last_error"]["message"], "table gone");
    }
}
