//! What every applier (the pipeline's own session and each worker) shares besides its
//! session: where it reports (`/status`, the metrics), and when to stop waiting.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::changes::Ops;
use super::downstream::DownstreamError;
use crate::error::{At, RunError};
use crate::metrics::{Metrics, Retry};
use crate::status::{State, Status};

/// What every applier (the pipeline's own session and each worker) shares besides its
/// session: where to report, and when to stop waiting.
#[derive(Clone)]
pub struct Ctx {
    pub status: Arc<Status>,
    pub metrics: Metrics,
    /// Turns true when the drainer is asked to stop (waits between retries end then).
    pub stop: watch::Receiver<bool>,
    /// `sync-mode = 2`: rows apply to the columns the downstream table has.
    pub partial: bool,
}

/// Resolves once `stop` turns true (never, if its sender is gone).
pub async fn stopped(stop: &mut watch::Receiver<bool>) {
    loop {
        if *stop.borrow_and_update() {
            return;
        }
        if stop.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

impl Ctx {
    /// A transient downstream failure of the step `kind` at `here`: logs `message` with
    /// the reason, counts it, shows it in `/status`, and waits `backoff` (doubling it, up
    /// to 10 s) before the caller tries again, unless asked to stop.
    pub async fn retry(
        &mut self,
        here: &At,
        kind: Retry,
        message: &str,
        reason: &str,
        backoff: &mut Duration,
    ) -> Result<(), RunError> {
        tracing::warn!(at = %here, %reason, "{message}");
        self.metrics.retry(kind);
        self.status.failed(format!("{here}: {reason}"), true);
        tokio::select! {
            _ = stopped(&mut self.stop) => Err(RunError::Interrupted),
            _ = tokio::time::sleep(*backoff) => {
                *backoff = (*backoff * 2).min(Duration::from_secs(10));
                Ok(())
            }
        }
    }

    /// Sorts a failed call to the downstream at `here`: a transient failure waits as
    /// [`Ctx::retry`] says (`kind`, `message`) and is `Ok` (call again); a definite one
    /// is the error.
    pub async fn on_failure(
        &mut self,
        here: &At,
        kind: Retry,
        message: &str,
        error: DownstreamError,
        backoff: &mut Duration,
    ) -> Result<(), RunError> {
        match error {
            DownstreamError::Transient(reason) => {
                self.retry(here, kind, message, &reason, backoff).await
            }
            e => Err(RunError::apply(here, e)),
        }
    }

    /// Counts an upstream transaction applied with the row changes `ops` (inserts,
    /// updates, deletes); `timestamp` is its upstream commit time. (A transaction cut by
    /// DDL counts once per downstream piece.)
    pub fn applied(&self, ops: Ops, timestamp: Option<u32>) {
        let mut s = self.status.lock();
        s.applied += 1;
        s.state = State::Running;
        if let Some(t) = timestamp {
            s.last_commit = Some(s.last_commit.map_or(t, |l| l.max(t)));
        }
        drop(s);
        self.metrics.applied();
        self.metrics.rows(ops);
    }
}
