//! Waiting on a condition with a deadline, instead of sleeping a fixed time.

use std::future::Future;
use std::time::{Duration, Instant};

/// How often a condition is polled.
const POLL_INTERVAL: Duration = Duration::from_millis(50);

/// A condition that did not come true before its deadline.
#[derive(Debug, thiserror::Error)]
#[error("timed out after {:.1} s waiting for {what}; last answer: {last}", waited.as_secs_f64())]
pub struct Timeout {
    pub what: String,
    pub waited: Duration,
    /// The probe's last `Err`: why the condition was still false.
    pub last: String,
}

/// Polls `probe` until it returns `Ok`, or `timeout` passes. `Err(reason)` means "not yet";
/// the last reason is kept for the error message.
pub async fn poll_until<T, F, Fut>(
    what: &str,
    timeout: Duration,
    mut probe: F,
) -> Result<T, Timeout>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let start = Instant::now();
    loop {
        let last = match probe().await {
            Ok(value) => return Ok(value),
            Err(reason) => reason,
        };
        if start.elapsed() >= timeout {
            return Err(Timeout {
                what: what.to_owned(),
                waited: start.elapsed(),
                last,
            });
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

/// [`poll_until`] for tests: panics with the condition and the last reason on timeout.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    match poll_until(what, timeout, probe).await {
        Ok(value) => value,
        Err(e) => panic!("{e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn returns_once_the_condition_holds() {
        let mut calls = 0;
        let value = poll_until("the third call", Duration::from_secs(5), || {
            calls += 1;
            let n = calls;
            async move {
                if n >= 3 {
                    Ok(n)
                } else {
                    Err(format!("call {n}"))
                }
            }
        })
        .await
        .unwrap();
        assert_eq!(value, 3);
    }

    #[tokio::test]
    async fn times_out_with_the_last_reason() {
        let err = poll_until("never", Duration::from_millis(120), || async {
            Err::<(), _>("still false".to_owned())
        })
        .await
        .unwrap_err();
        assert_eq!(err.what, "never");
        assert_eq!(err.last, "still false");
        assert!(err.waited >= Duration::from_millis(120));
        assert!(err.to_string().contains("still false"), "{err}");
    }
}
