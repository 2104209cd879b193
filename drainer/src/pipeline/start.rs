//! Before reading: who the servers are, what the downstream's apply record says, where
//! the upstream is as the process starts, and the table definitions a first start
//! bootstraps with.

use super::*;

pub(super) fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// `SELECT @@server_id` (and MySQL's `@@server_uuid`) of a server.
pub(super) async fn identify(
    host: &str,
    port: u16,
    user: &str,
    password: &str,
) -> Result<ServerIdentity, String> {
    let opts = mysql_async::OptsBuilder::default()
        .ip_or_hostname(host)
        .tcp_port(port)
        .user(Some(user))
        .pass(Some(password))
        .prefer_socket(false);
    let ask = async {
        let mut conn = mysql_async::Conn::new(opts)
            .await
            .map_err(|e| format!("{host}:{port}: {e}"))?;
        let server_id: Option<u32> = conn
            .query_first("SELECT @@server_id")
            .await
            .map_err(|e| e.to_string())?;
        let uuid: Option<String> = conn
            .query_first("SELECT @@server_uuid")
            .await
            .ok()
            .flatten();
        conn.disconnect().await.ok();
        Ok(ServerIdentity {
            server_id: server_id.unwrap_or_default(),
            uuid,
            address: format!("{host}:{port}"),
        })
    };
    tokio::time::timeout(Duration::from_secs(30), ask)
        .await
        .map_err(|_| format!("no answer from {host}:{port} within 30 s"))?
}

/// The downstream's apply record, asked until the downstream answers (it may be
/// restarting); `None` when `stop` came first.
pub(super) async fn read_record(
    down: &mut Downstream,
    stop: &mut watch::Receiver<bool>,
    status: &Status,
) -> Result<Option<Option<Applied>>, RunError> {
    let mut backoff = Duration::from_millis(100);
    loop {
        match down.applied().await {
            Ok(record) => return Ok(Some(record)),
            Err(DownstreamError::Transient(reason)) => {
                tracing::warn!(%reason, "cannot read the apply record on the downstream yet; retrying");
                status.failed(format!("reading the apply record: {reason}"), true);
            }
            Err(e) => return Err(RunError::apply(&At::Start, e)),
        }
        tokio::select! {
            _ = stop.changed() => return Ok(None),
            _ = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(Duration::from_secs(10));
    }
}

pub(super) fn start_at(p: &Position) -> StartAt {
    match &p.gtids {
        Some(g) if !g.is_empty() => StartAt::Gtid(g.clone()),
        _ => StartAt::Coords(p.coords.clone()),
    }
}

/// Where `[pump]` says to start without a checkpoint: `initial-gtid`, else `initial-file`
/// and `initial-pos` (the caller knows one is set).
pub(super) fn configured_position(pump: &conf::Pump) -> Result<Position, RunError> {
    if pump.initial_gtid.is_empty() {
        return Ok(Position {
            coords: pump_reader::BinlogCoords::new(pump.initial_file.clone(), pump.initial_pos),
            gtids: None,
        });
    }
    let gtids = pump
        .initial_gtid
        .parse()
        .map_err(|e: pump_reader::PositionError| {
            RunError::Config(format!("pump.initial-gtid: {e}"))
        })?;
    Ok(Position {
        coords: pump_reader::BinlogCoords::new(String::new(), 4),
        gtids: Some(gtids),
    })
}

/// The upstream's position and table definitions as the process started: where a first
/// start (no checkpoint, no apply record, no configured start) begins, so that what is
/// written while the drainer checks the servers is replicated too.
pub struct StartNow {
    pub(super) position: Position,
    pub(super) snapshot: schema::Snapshot,
}

impl StartNow {
    pub fn position(&self) -> &Position {
        &self.position
    }
}

/// Whether the next start of `config` is a first one: no checkpoint nor schema history in
/// data-dir, and no start configured. A data-dir that cannot be read says no (the start
/// reports it).
pub fn first_start(config: &Config) -> bool {
    let pump = &config.pump;
    if !pump.initial_gtid.is_empty() || !pump.initial_file.is_empty() {
        return false;
    }
    if !config.data_dir.exists() {
        return true;
    }
    checkpoint::Store::open_read_only(&config.data_dir).is_ok_and(|store| {
        matches!(store.checkpoint(), Ok(None))
            && matches!(History::bootstrap_position(&store), Ok(None))
    })
}

/// Reads the upstream's current position, then the definitions of the tables the filters
/// replicate (in that order, as a first start's bootstrap does).
pub async fn capture_now(config: &Config) -> Result<StartNow, RunError> {
    let filter = Filter::new(&config.syncer).map_err(RunError::Config)?;
    let reader =
        LiveReader::connect(upstream(&config.pump), StartAt::Now, LiveOptions::default()).await?;
    let snapshot = read_definitions(&config.pump, &filter).await?;
    Ok(StartNow {
        position: reader.position().clone(),
        snapshot,
    })
}

pub(super) fn upstream(pump: &conf::Pump) -> Upstream {
    Upstream {
        host: pump.host.clone(),
        port: pump.port,
        user: pump.user.clone(),
        password: pump.password.expose().to_owned(),
        server_id: pump.server_id,
    }
}

/// The upstream's definitions of the tables `filter` replicates, for a bootstrap.
pub(super) async fn read_definitions(
    pump: &conf::Pump,
    filter: &Filter,
) -> Result<schema::Snapshot, RunError> {
    let opts = mysql_async::OptsBuilder::default()
        .ip_or_hostname(pump.host.as_str())
        .tcp_port(pump.port)
        .user(Some(pump.user.as_str()))
        .pass(Some(pump.password.expose()))
        .prefer_socket(false);
    // Bounded: a hung upstream must not hold the start forever (many tables take a
    // while; ten minutes is far beyond what reading definitions needs).
    let read = async {
        let mut conn = mysql_async::Conn::new(opts)
            .await
            .map_err(|e| RunError::Connect(e.to_string()))?;
        let snapshot = read_upstream(&mut conn, |s, t| filter.wants_table(s, t))
            .await
            .map_err(|e| RunError::Connect(format!("reading table definitions: {e}")))?;
        conn.disconnect().await.ok();
        Ok::<_, RunError>(snapshot)
    };
    tokio::time::timeout(Duration::from_secs(600), read)
        .await
        .map_err(|_| {
            RunError::Connect("reading table definitions: no answer within 600 s".into())
        })?
}
