//! Helpers the multi-site tests, the demo and the benchmarks share: a pair of servers with
//! the same schema, the loopback mark counter, and a small seeded random source.

use crate::{HarnessError, MariaDb};

/// Two servers started at once, each with `setup` run on it (the same tables on both
/// sites, as the tests of one direction and of two need).
pub async fn two_sites(setup: &[&str]) -> Result<(MariaDb, MariaDb), HarnessError> {
    let (a, b) = tokio::join!(MariaDb::start(), MariaDb::start());
    let (a, b) = (a?, b?);
    for server in [&a, &b] {
        server.exec(setup).await?;
    }
    Ok((a, b))
}

/// The sum of `channel`'s mark rows on `server` (`retl._drainer_repl_mark`): it grows by
/// one with every transaction a drainer of that channel commits there; 0 before any.
pub async fn mark_counter(server: &MariaDb, channel: i64) -> Result<u64, HarnessError> {
    let sum: Vec<Option<u64>> = server
        .query(&format!(
            "SELECT CAST(SUM(val) AS UNSIGNED) FROM retl._drainer_repl_mark \
             WHERE channel_id = {channel}"
        ))
        .await?;
    Ok(sum.first().copied().flatten().unwrap_or(0))
}

/// A small seeded random source (xorshift): workloads vary, and a seed printed with a
/// failure replays it.
pub struct Dice(u64);

impl Dice {
    pub fn new(seed: u64) -> Dice {
        Dice(seed | 1)
    }

    /// A number in `0..n` (`n` > 0).
    pub fn roll(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}
