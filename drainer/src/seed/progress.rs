//! How far `drainer seed` got, per table: for the terminal line, `GET /status` and
//! `drainer_seed_rows_total` in `/metrics`.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value as Json};

/// The counter of rows copied, by table.
pub const SEED_ROWS: &str = "drainer_seed_rows_total";

/// One table's copy.
#[derive(Debug, Clone)]
pub struct Table {
    pub name: String,
    /// How it is copied: "by id" (chunks in key order), or whole and why.
    pub by: String,
    /// The server's estimate of its rows (InnoDB's `TABLE_ROWS`).
    pub estimate: u64,
    /// Rows copied, this run and before.
    pub copied: u64,
    /// Rows copied by this run (the rate counts these).
    pub copied_now: u64,
    pub chunks: u32,
    pub started: Option<Instant>,
    pub took: Option<Duration>,
    pub done: bool,
}

impl Table {
    /// Rows a second so far (this run's).
    pub fn rate(&self) -> f64 {
        let secs = match (self.took, self.started) {
            (Some(took), _) => took.as_secs_f64(),
            (None, Some(started)) => started.elapsed().as_secs_f64(),
            (None, None) => 0.0,
        };
        if secs > 0.0 {
            self.copied_now as f64 / secs
        } else {
            0.0
        }
    }

    /// Seconds left at the current rate (`None` until there is one).
    pub fn left(&self) -> Option<u64> {
        let rate = self.rate();
        (!self.done && rate > 0.0)
            .then(|| (self.estimate.saturating_sub(self.copied) as f64 / rate).ceil() as u64)
    }
}

/// The seed's progress, shared with the status page and the terminal line.
#[derive(Debug, Default)]
pub struct Progress {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    state: &'static str,
    tables: Vec<Table>,
    error: Option<String>,
}

impl Progress {
    pub fn new() -> Arc<Progress> {
        let progress = Progress::default();
        progress.set_state("starting");
        Arc::new(progress)
    }

    pub fn set_state(&self, state: &'static str) {
        self.lock().state = state;
    }

    pub fn failed(&self, error: &str) {
        let mut inner = self.lock();
        inner.state = "failed";
        inner.error = Some(error.to_owned());
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds a table about to be copied (`copied` rows already, by an earlier run).
    pub fn table(
        &self,
        name: String,
        by: String,
        estimate: u64,
        (copied, chunks): (u64, u32),
        done: bool,
    ) -> usize {
        let mut inner = self.lock();
        inner.tables.push(Table {
            name,
            by,
            estimate: estimate.max(copied),
            copied,
            copied_now: 0,
            chunks,
            started: None,
            took: None,
            done,
        });
        inner.tables.len() - 1
    }

    pub fn start(&self, table: usize) {
        self.lock().tables[table].started = Some(Instant::now());
    }

    /// `rows` more rows of `table` committed downstream.
    pub fn copied(&self, table: usize, rows: u64, chunk_done: bool) {
        let mut inner = self.lock();
        let t = &mut inner.tables[table];
        t.copied += rows;
        t.copied_now += rows;
        t.estimate = t.estimate.max(t.copied);
        if chunk_done {
            t.chunks += 1;
        }
        metrics::counter!(SEED_ROWS, "table" => t.name.clone()).increment(rows);
    }

    pub fn finish(&self, table: usize) {
        let mut inner = self.lock();
        let t = &mut inner.tables[table];
        t.done = true;
        t.estimate = t.copied;
        t.took = t.started.map(|s| s.elapsed());
    }

    pub fn tables(&self) -> Vec<Table> {
        self.lock().tables.clone()
    }

    /// The terminal line: the table being copied.
    pub fn line(&self) -> Option<String> {
        let inner = self.lock();
        let t = inner
            .tables
            .iter()
            .find(|t| t.started.is_some() && !t.done)?;
        let percent = if t.estimate > 0 {
            t.copied as f64 * 100.0 / t.estimate as f64
        } else {
            0.0
        };
        Some(format!(
            "seed: {}: {} / ~{} rows ({percent:.0}%), {:.0} rows/s, {} left",
            t.name,
            t.copied,
            t.estimate,
            t.rate(),
            t.left().map_or("?".to_owned(), |s| format!("{s} s"))
        ))
    }

    /// `GET /status` while seeding.
    pub fn to_json(&self) -> Json {
        let inner = self.lock();
        json!({
            "state": inner.state,
            "command": "seed",
            "version": env!("CARGO_PKG_VERSION"),
            "tables": inner.tables.iter().map(|t| json!({
                "table": t.name,
                "by": t.by,
                "rows_copied": t.copied,
                "rows_estimated": t.estimate,
                "chunks": t.chunks,
                "rows_per_second": t.rate().round(),
                "seconds_left": t.left(),
                "done": t.done,
            })).collect::<Vec<_>>(),
            "last_error": inner.error,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_counts_rows_and_estimates_time_left() {
        let p = Progress::new();
        let t = p.table("app.t".into(), "by id".into(), 1000, (100, 1), false);
        p.start(t);
        std::thread::sleep(Duration::from_millis(20));
        p.copied(t, 400, true);
        let shown = p.to_json();
        assert_eq!(shown["tables"][0]["rows_copied"], 500);
        assert_eq!(shown["tables"][0]["chunks"], 2);
        assert!(shown["tables"][0]["seconds_left"].as_u64().is_some());
        assert!(p
            .line()
            .unwrap()
            .starts_with("seed: app.t: 500 / ~1000 rows (50%)"));
        p.finish(t);
        assert!(p.line().is_none());
        assert_eq!(p.to_json()["tables"][0]["seconds_left"], Json::Null);
    }
}
