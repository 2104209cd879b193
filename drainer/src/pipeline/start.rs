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
pub(crate) async fn identify(server: &Server) -> Result<ServerIdentity, String> {
    let (host, port) = (&server.host, server.port);
    let ask = async {
        let mut conn = server
            .session(server.opts())
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
pub async fn capture_now(config: &Config, servers: &Servers) -> Result<StartNow, RunError> {
    let filter = Filter::new(&config.syncer).map_err(RunError::Config)?;
    let upstream = upstream(config, servers);
    let reader = LiveReader::connect(upstream, StartAt::Now, LiveOptions::default()).await?;
    let snapshot = read_definitions(&servers.upstream, &filter).await?;
    Ok(StartNow {
        position: reader.position().clone(),
        snapshot,
    })
}

pub(super) fn upstream(config: &Config, servers: &Servers) -> Upstream {
    Upstream {
        server: servers.upstream.clone(),
        server_id: config.pump.server_id,
    }
}

/// The upstream's definitions of the tables `filter` replicates, for a bootstrap.
pub(crate) async fn read_definitions(
    server: &Server,
    filter: &Filter,
) -> Result<schema::Snapshot, RunError> {
    // Bounded: a hung upstream must not hold the start forever (many tables take a
    // while; ten minutes is far beyond what reading definitions needs).
    let read = async {
        let mut conn = server
            .session(server.opts())
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

/// How this direction writes downstream: the server, its loopback mark, the apply record
/// of the channel (in the mark table's schema), conflict policies.
pub(crate) fn downstream_target(
    config: &Config,
    servers: &Servers,
    identity: &Identity,
    status: Option<Arc<Status>>,
) -> Result<Target, RunError> {
    let (mark_schema, mark_table) = config
        .syncer
        .mark_table
        .split_once('.')
        .unwrap_or(("retl", "_drainer_repl_mark"));
    let mark = match config.syncer.loopback_control {
        false => None,
        true => Some(Mark {
            schema: mark_schema.to_owned(),
            table: mark_table.to_owned(),
            channel_id: config.syncer.channel_id,
            rows: config.syncer.worker_count + 1,
            server_id: config.syncer.effective_mark_server_id().ok_or_else(|| {
                RunError::Config("syncer.mark-server-id must be set for this channel-id".into())
            })?,
            comment: (config.syncer.loop_marker == conf::LoopMarker::Comment)
                .then(|| conf::LoopMarker::comment(config.syncer.channel_id)),
        }),
    };
    let record = ApplyRecord {
        schema: mark_schema.to_owned(),
        channel_id: config.syncer.channel_id,
        source: identity
            .upstream
            .uuid
            .clone()
            .unwrap_or_else(|| format!("server_id:{}", identity.upstream.server_id)),
    };
    Ok(Target {
        server: servers.downstream.clone(),
        partial: config.syncer.to.sync_mode == 2,
        mark,
        conflicts: config.syncer.conflict.as_ref().map(|c| {
            let routes = conf::Routes::new(&config.syncer.route);
            Arc::new(Policies::new(
                c,
                &routes,
                mark_schema,
                config.syncer.channel_id,
            ))
        }),
        status,
        record,
        sessions: config.syncer.worker_count + 1,
    })
}

/// Everything before reading: claims data-dir for this pair of servers, reads the
/// downstream's apply record and decides where to resume ([`super::resume`]), loads (or
/// bootstraps) the schema history there, connects the reader and starts the workers.
/// `None`: asked to stop meanwhile.
pub(super) async fn open<'a>(
    config: &'a Config,
    servers: &Servers,
    stop: &mut watch::Receiver<bool>,
    status: &Arc<Status>,
    started_at: Option<StartNow>,
) -> Result<Option<(Run<'a>, LiveReader)>, RunError> {
    let filter = Filter::new(&config.syncer).map_err(RunError::Config)?;
    let pump = &config.pump;
    let to = &config.syncer.to;
    let store = Store::open(&config.data_dir)?;
    let identity = Identity {
        upstream: identify(&servers.upstream)
            .await
            .map_err(RunError::Connect)?,
        downstream: identify(&servers.downstream)
            .await
            .map_err(RunError::Connect)?,
        channel_id: config.syncer.channel_id,
    };
    store.claim(&identity)?;

    let target = downstream_target(config, servers, &identity, Some(Arc::clone(status)))?;
    let (mark, record) = (target.mark.clone(), target.record.clone());
    let mark_schema = record.schema.clone();
    let mut down = Downstream::new(target);
    // A seed that did not finish leaves the downstream partly copied.
    if let Some((_, false)) = crate::seed::state(&store).map_err(RunError::Config)? {
        return Err(RunError::Config(format!(
            "{}: the seed of this direction did not finish: run `drainer seed` with this \
             file again (it resumes), then start the drainer",
            config.data_dir.display()
        )));
    }

    // Where to resume: the data-dir's checkpoint (or bootstrap), unless the downstream's
    // apply record shows later transactions committed (see `resume`).
    let saved = store.checkpoint()?.map(|c| c.position);
    let bootstrap = match &saved {
        Some(_) => None,
        None => History::bootstrap_position(&store)?,
    };
    let Some(recorded) = read_record(&mut down, stop, status).await? else {
        return Ok(None);
    };
    let configured_start = !pump.initial_gtid.is_empty() || !pump.initial_file.is_empty();
    let found = Found {
        configured: match saved.is_none() && bootstrap.is_none() && configured_start {
            true => Some(configured_position(pump)?),
            false => None,
        },
        checkpoint: saved.clone(),
        bootstrap,
        record: recorded,
    };
    let decided = resume::resume(found, &config.data_dir, &record.delete_hint())?;
    if let Some(note) = &decided.note {
        note.log();
    }
    let Resume {
        from: resume,
        past_checkpoint,
        applied_past,
        ..
    } = decided;
    if past_checkpoint {
        let recorded = resume.as_ref().expect("the record's position");
        store.save_checkpoint(recorded, now(), Batch::default())?;
    }
    if !applied_past.is_empty() {
        tracing::info!(
            transactions = applied_past.len(),
            "workers committed transactions past the resume position before the last stop: \
             they will be passed over"
        );
    }
    // The schema history as it stands where reading resumes: what was recorded after it
    // (statements whose transaction did not commit downstream before a crash, even
    // before the first checkpoint) is recorded again when it is read again.
    let history_at = resume.as_ref();
    let mut history = History::load(&store, history_at)?;
    status.lock().checkpoint = if past_checkpoint {
        resume.clone()
    } else {
        saved.clone()
    };
    // A first start begins where the upstream was as the process started, with the
    // definitions read then.
    let started_at =
        started_at.filter(|_| resume.is_none() && !configured_start && history.is_empty());
    let start = match (&resume, &started_at) {
        (Some(p), _) => start_at(p),
        (None, _) if configured_start => start_at(&configured_position(pump)?),
        (None, Some(now)) => start_at(&now.position),
        (None, None) => StartAt::Now,
    };
    // What a seed copied, read before replication begins (the downstream may be
    // restarting: asked until it answers).
    let mut backoff = Duration::from_millis(100);
    let seed = loop {
        let channel = config.syncer.channel_id;
        match crate::seed::window(&servers.downstream, &mark_schema, channel).await {
            Ok(window) => break window,
            Err((true, reason)) => {
                tracing::warn!(%reason, "cannot read the seed's window on the downstream yet; retrying");
                status.failed(format!("reading the seed's window: {reason}"), true);
            }
            Err((false, reason)) => {
                return Err(RunError::Config(format!(
                    "downstream: reading the seed's window: {reason}"
                )))
            }
        }
        tokio::select! {
            _ = stop.changed() => return Ok(None),
            _ = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(Duration::from_secs(10));
    };
    if let Some(window) = &seed {
        tracing::info!(until = %window.last(), "after a seed: row changes the copy holds are passed over until here");
    }
    let upstream = upstream(config, servers);
    // With comment markers, the partner's statements are told apart by their text.
    let options = LiveOptions {
        annotate: config.syncer.loopback_control
            && config.syncer.loop_marker == conf::LoopMarker::Comment,
        ..LiveOptions::default()
    };
    let reader = LiveReader::connect(upstream, start, options).await?;
    if history.is_empty() {
        // First start: the definitions where reading begins.
        let snapshot = match started_at {
            Some(now) => now.snapshot,
            None => read_definitions(&servers.upstream, &filter).await?,
        };
        history.bootstrap(&store, reader.position(), &snapshot)?;
        tracing::info!(tables = history.catalog().tables.len(), position = %reader.position(), "schema bootstrapped");
    }
    tracing::info!(position = %reader.position(), "replicating");
    {
        let mut s = status.lock();
        s.state = State::Running;
        s.upstream = Some(reader.position().clone());
    }

    let ctx = Ctx {
        status: Arc::clone(status),
        metrics: Metrics::new(),
        stop: stop.clone(),
        partial: to.sync_mode == 2,
    };
    // Every writer lists the transactions committed past the watermark before this
    // start until the watermark passes them: a writer's next record replaces its row,
    // and a second crash must still find them.
    down.seed_after(&applied_past);
    let pool = Pool::start(
        config.syncer.worker_count,
        config.syncer.txn_batch,
        &ctx,
        &down,
        reader.position().clone(),
    );
    let mut row_filters: HashMap<String, HashMap<String, crate::rowfilter::Expr>> = HashMap::new();
    for f in &config.syncer.row_filter {
        let condition = crate::rowfilter::Expr::parse(&f.condition).map_err(|e| {
            RunError::Config(format!(
                "syncer.row-filter {}.{}: {e}",
                f.db_name, f.tbl_name
            ))
        })?;
        row_filters
            .entry(f.db_name.clone())
            .or_default()
            .insert(f.tbl_name.clone(), condition);
    }
    let routes = conf::Routes::new(&config.syncer.route);
    let mut run = Run {
        seed,
        row_filters,
        routes,
        config,
        filter,
        store,
        history,
        applier: Applier { down, ctx },
        started: Instant::now(),
        mark,
        verify_schema: mark_schema.clone(),
        saved: resume.clone(),
        last_save: Instant::now(),
        pool,
        applied_past,
        columns_gen: 0,
        idle: false,
        tables: HashMap::new(),
        reading: Reading::default(),
        retries: Retries::default(),
        triggered: std::collections::HashSet::new(),
        triggers_read: Instant::now(),
    };
    run.applier
        .down
        .set_upstream_mariadb(reader.flavor() == pump_reader::Flavor::MariaDb);
    Ok(Some((run, reader)))
}
