//! What the direction is doing, for people and tools: the shared [`Status`] the pipeline
//! keeps current, served as JSON on `GET /status` by [`crate::http`].
//!
//! - Lag is the seconds between now and the upstream commit time of the oldest transaction
//!   still in flight (read, not yet committed downstream), else of the last transaction
//!   handled (applied, or dropped as a loop), and 0 while the upstream has nothing more to
//!   send (its heartbeat says so). Before either is known it is `null`.
//! - A stuck client never blocks the pipeline: the pipeline only takes a short lock to
//!   update counters.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use pump_reader::Position;
use serde_json::{json, Value as Json};

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
    /// Conflicts committed (their records with them), by kind and resolution.
    pub conflicts: std::collections::BTreeMap<(&'static str, &'static str), u64>,
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
    pub fn new(upstream_addr: String, downstream_addr: String, channel_id: i64) -> Arc<Status> {
        Arc::new(Status {
            started: Instant::now(),
            upstream_addr,
            downstream_addr,
            channel_id,
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
                conflicts: Default::default(),
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

    /// Counts a committed conflict of `kind`, resolved as `resolution`.
    pub fn conflict(&self, kind: &'static str, resolution: &'static str) {
        *self.lock().conflicts.entry((kind, resolution)).or_default() += 1;
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
            "conflicts": s.conflicts.iter().fold(serde_json::Map::new(), |mut m, ((kind, resolution), n)| {
                let by_kind = m.entry(kind.to_string()).or_insert_with(|| json!({}));
                by_kind[*resolution] = json!(n);
                m
            }),
            "last_error": s.last_error.as_ref().map(|(at, message)| json!({
                "message": message,
                "unix_time": at,
                "seconds_ago": now.saturating_sub(*at),
            })),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status() -> Arc<Status> {
        Status::new("up:1".into(), "down:2".into(), 7)
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
