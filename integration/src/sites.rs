//! Helpers the multi-site tests, the demo and the benchmarks share: a pair of servers with
//! the same schema, a direction of a topology, where a binlog ends, rows as text, the
//! loopback mark counter, and a small seeded random source.

use std::path::Path;

use crate::{config_for, HarnessError, MariaDb};

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

/// The direction `from` → `to` of a topology, on `channel` with loopback control, safe
/// mode off, a checkpoint every 200 ms, its data-dir under `dir` and its own `[pump]
/// server-id` (two drainers reading one upstream need their own: the server drops a
/// replica's connection when another registers with the same id).
pub fn direction(
    from: &MariaDb,
    to: &MariaDb,
    channel: i64,
    sync_ddl: bool,
    dir: &Path,
) -> conf::Config {
    let name = format!("{}-to-{}", from.server_id(), to.server_id());
    let mut config =
        config_for(from, to, &dir.join(name)).expect("the harness writes a configuration");
    config.pump.server_id = 20_000 + from.server_id() * 100 + to.server_id();
    config.syncer.loopback_control = true;
    config.syncer.channel_id = channel;
    config.syncer.sync_ddl = sync_ddl;
    config.syncer.safe_mode_after_start_s = 0;
    config.syncer.checkpoint_interval_ms = 200;
    config
}

/// Whether every binlog of `sites` stays where it is for two seconds, once writes have
/// stopped: one that keeps moving is a loop (`Err` names it, with both positions). A
/// straggler is allowed for: a drainer that reopens its session after DDL sets it up
/// again (`CREATE … IF NOT EXISTS` is logged), maybe just after the last check. So the
/// binlogs get up to 20 s to fall still, while a loop never does.
pub async fn binlogs_still(sites: &[&MariaDb]) -> Result<(), String> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        match binlogs_still_for_two_seconds(sites).await {
            Err(_) if std::time::Instant::now() < deadline => {}
            result => return result,
        }
    }
}

async fn binlogs_still_for_two_seconds(sites: &[&MariaDb]) -> Result<(), String> {
    let mut before = Vec::new();
    for site in sites {
        before.push(binlog_end(site).await.map_err(|e| e.to_string())?);
    }
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    for (site, then) in sites.iter().zip(before) {
        let now = binlog_end(site).await.map_err(|e| e.to_string())?;
        if now != then {
            return Err(format!(
                "the binlog of server {} still grows ({}:{} then {}:{}): transactions loop",
                site.server_id(),
                then.0,
                then.1,
                now.0,
                now.1
            ));
        }
    }
    Ok(())
}

/// Where `site`'s binlog ends now.
async fn binlog_end(site: &MariaDb) -> Result<(String, u64), HarnessError> {
    let rows: Vec<mysql_async::Row> = site.query("SHOW MASTER STATUS").await?;
    let row = rows
        .first()
        .ok_or_else(|| HarnessError::Usage("the server has no binlog".into()))?;
    match (row.get(0), row.get(1)) {
        (Some(file), Some(pos)) => Ok((file, pos)),
        _ => Err(HarnessError::Usage(
            "SHOW MASTER STATUS without a position".into(),
        )),
    }
}

/// Two servers that both take writes, each handing out its own AUTO_INCREMENT keys
/// (`auto_increment_increment` 2, offsets 1 and 2), with `setup` run on both.
pub async fn two_writable_sites(setup: &[&str]) -> Result<(MariaDb, MariaDb), HarnessError> {
    let start = |offset| MariaDb::builder().auto_increment(2, offset).start();
    let (a, b) = tokio::join!(start(1), start(2));
    let (a, b) = (a?, b?);
    for server in [&a, &b] {
        server.exec(setup).await?;
    }
    Ok((a, b))
}

/// The rows of `sql` on `site`, each as its columns joined with `|` (NULL as `NULL`).
pub async fn text_rows(site: &MariaDb, sql: &str) -> Result<Vec<String>, String> {
    let rows: Vec<mysql_async::Row> = site.query(sql).await.map_err(|e| e.to_string())?;
    Ok(rows
        .iter()
        .map(|r| {
            (0..r.len())
                .map(|i| {
                    r.get::<Option<String>, _>(i)
                        .flatten()
                        .unwrap_or_else(|| "NULL".into())
                })
                .collect::<Vec<_>>()
                .join("|")
        })
        .collect())
}
