//! # drainer: one direction of MySQL/MariaDB replication that never loops
//!
//! The binary only wires the crates together: [`conf`] loads `drainer.toml`, `preflight`
//! checks both servers, and [`drainer::pipeline`] runs the direction: `pump-reader` reads
//! the upstream's binlog, `schema` names and types its rows, the applier writes them
//! downstream and `checkpoint` remembers how far it got.
//!
//! ## Exit codes (DESIGN.md)
//! 0 ok, 1 runtime failure, 2 bad configuration (also bad command-line usage, as clap
//! reports it), 3 failed preflight; 130 when a second SIGINT/SIGTERM arrives while the
//! first is being honoured (the process exits at once).
//!
//! ## What runs
//! `drainer --config FILE` preflights both servers, then replicates until SIGINT/SIGTERM.
//! `check-config`, `schema show` and `checkpoint show|set` inspect and prepare; `seed`
//! copies the upstream into a new downstream, `verify` compares the two, `conflicts
//! show` reads the conflict records, `relay` serves a site to the others.

mod cli;
mod preflight;

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{CommandFactory, Parser};
use conf::{Config, PasswordSource, RelayConfig};
use drainer::servers::{Servers, ServersError};
use drainer::status::Status;

use cli::{CheckpointAction, Cli, Command, ConflictsAction, SchemaAction};

/// Exit codes of DESIGN.md.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Exit {
    Ok = 0,
    Runtime = 1,
    BadConfig = 2,
    FailedPreflight = 3,
}

impl From<Exit> for ExitCode {
    fn from(e: Exit) -> ExitCode {
        ExitCode::from(e as u8)
    }
}

fn main() -> ExitCode {
    release_large_buffers();
    let cli = Cli::parse();
    let Some(path) = cli.config.as_deref() else {
        Cli::command()
            .error(
                clap::error::ErrorKind::MissingRequiredArgument,
                "--config FILE is required (this direction's drainer.toml)",
            )
            .exit();
    };
    if let Some(Command::Relay { action }) = &cli.command {
        return relay(path, action.is_some(), cli.log_json).into();
    }
    let config = match Config::load(path) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("error: {e}");
            return Exit::BadConfig.into();
        }
    };
    for (i, f) in config.syncer.row_filter.iter().enumerate() {
        if let Err(e) = drainer::rowfilter::Expr::parse(&f.condition) {
            eprintln!(
                "error: configuration file {} is invalid:\n  syncer.row-filter[{i}].where: {e}",
                path.display()
            );
            return Exit::BadConfig.into();
        }
    }
    if let Some(Command::Schema {
        action: SchemaAction::Show { table },
    }) = &cli.command
    {
        return schema_show(&config, table.as_deref()).into();
    }
    if let Some(Command::Checkpoint { action }) = &cli.command {
        return match action {
            CheckpointAction::Show => checkpoint_show(&config),
            CheckpointAction::Set { gtid, file, pos } => {
                checkpoint_set(&config, gtid.as_deref(), file.as_deref(), *pos)
            }
        }
        .into();
    }
    if let Err(e) = init_logging(config.log_level, cli.log_json, config.log_file.as_deref()) {
        eprintln!("error: {}: {e}", path.display());
        return Exit::BadConfig.into();
    }
    if let Some(note) = config.tidb_notes() {
        tracing::warn!("{note}");
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return Exit::Runtime.into();
        }
    };
    // TLS files are read and checked once, here: one that cannot be used is bad
    // configuration, named by its key and path.
    let servers = match runtime.block_on(Servers::load(&config)) {
        Ok(servers) => servers,
        Err(ServersError::File(e)) => {
            eprintln!("error: {}: {e}", path.display());
            return Exit::BadConfig.into();
        }
        Err(e @ ServersError::Tunnel(_)) => {
            eprintln!("error: {e}");
            return Exit::Runtime.into();
        }
    };
    if matches!(
        cli.command,
        Some(Command::Verify { .. } | Command::Seed { .. })
    ) && !config.syncer.route.is_empty()
    {
        eprintln!(
            "error: {}: drainer verify and drainer seed do not follow [[syncer.route]] yet \
             (they would compare or copy each table under its upstream name downstream)",
            path.display()
        );
        return Exit::BadConfig.into();
    }
    let exit = match cli.command {
        Some(Command::CheckConfig) => runtime.block_on(check_config(path, &config, &servers)),
        Some(Command::Conflicts {
            action: ConflictsAction::Show { since, limit },
        }) => runtime.block_on(conflicts_show(&config, &servers, &since, limit)),
        Some(Command::Verify {
            tables,
            all: _,
            chunk_rows,
            chunk_time_ms,
            rechecks,
            wait_s,
            json,
            repair,
        }) => {
            let options = drainer::verify::Options {
                tables,
                chunk_rows,
                chunk_time: std::time::Duration::from_millis(chunk_time_ms),
                rechecks,
                wait: std::time::Duration::from_secs(wait_s),
                repair,
            };
            runtime.block_on(verify(&config, &servers, &options, json.as_deref()))
        }
        Some(Command::Seed { tables, chunk_rows }) => {
            let options = drainer::seed::Options { tables, chunk_rows };
            runtime.block_on(seed(&config, &servers, &options))
        }
        Some(Command::Schema { .. } | Command::Checkpoint { .. } | Command::Relay { .. }) => {
            unreachable!("handled before the runtime starts")
        }
        None => runtime.block_on(run(&config, &servers)),
    };
    exit.into()
}

/// `drainer relay --config relay.toml` (serve until SIGINT/SIGTERM) and `drainer relay
/// check-config`.
fn relay(path: &Path, check: bool, json: bool) -> Exit {
    let config = match RelayConfig::load(path) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("error: {e}");
            return Exit::BadConfig;
        }
    };
    let _ = init_logging(config.log_level, json, None);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return Exit::Runtime;
        }
    };
    // Every TLS file is read first: one that cannot be used is bad configuration.
    let files =
        link::relay::server_config(&config.tls).and_then(|_| drainer::relay::upstream(&config));
    let upstream = match files {
        Ok(upstream) => upstream,
        Err(e) => {
            eprintln!("error: {}: {e}", path.display());
            return Exit::BadConfig;
        }
    };
    if check {
        let shown = toml::to_string(&config).unwrap_or_default();
        print!(
            "# effective relay configuration of {} (password redacted)\n{shown}",
            path.display()
        );
        let report = runtime.block_on(preflight::relay(&config, &upstream));
        println!();
        print!("{}", report.render());
        return if report.passed() {
            println!("\npreflight passed");
            Exit::Ok
        } else {
            println!("\npreflight FAILED");
            Exit::FailedPreflight
        };
    }
    runtime.block_on(async {
        let stop_rx = on_signals("stopping the relay");
        match drainer::relay::serve(&config, stop_rx).await {
            Ok(()) => Exit::Ok,
            Err(drainer::relay::RelayError::File(e)) => {
                eprintln!("error: {}: {e}", path.display());
                Exit::BadConfig
            }
            Err(e) => {
                tracing::error!(error = %e, "the relay stopped");
                eprintln!("error: {e}");
                Exit::Runtime
            }
        }
    })
}

/// Keeps glibc from holding on to freed large buffers. After freeing a large block it
/// raises the size above which blocks get their own mapping (up to 32 MiB), so the
/// buffers of a large row (up to that size) then come from the heap and stay resident
/// after use. A fixed threshold gives every buffer over 256 KiB its own mapping, returned
/// to the system when freed.
///
/// The MySQL client library keeps the buffers its connections return in a pool, each cut
/// to `MYSQL_ASYNC_BUFFER_SIZE_CAP` bytes (4 MiB by default): after one large row every
/// session would keep several. 256 KiB is plenty for ordinary statements (an operator's
/// own setting of the variable wins).
fn release_large_buffers() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets an allocator parameter; it is called before any thread
    // starts.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 256 << 10);
    }
    const CAP: &str = "MYSQL_ASYNC_BUFFER_SIZE_CAP";
    if std::env::var_os(CAP).is_none() {
        // Before any thread starts, and before the library reads it.
        std::env::set_var(CAP, (256 << 10).to_string());
    }
}

/// Logs to standard error, or appended to `file` (`log-file`, TiDB Binlog's key).
fn init_logging(level: conf::LogLevel, json: bool, file: Option<&Path>) -> Result<(), String> {
    let filter = tracing_subscriber::EnvFilter::try_from_env("DRAINER_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level.as_str()));
    let file = file
        .map(|path| {
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map_err(|e| format!("log-file {}: {e}", path.display()))
        })
        .transpose()?;
    // Colour only on a terminal: a file, a pipe or journald gets plain text.
    let terminal = file.is_none() && std::io::IsTerminal::is_terminal(&std::io::stderr());
    let writer = match file {
        Some(file) => {
            tracing_subscriber::fmt::writer::BoxMakeWriter::new(std::sync::Mutex::new(file))
        }
        None => tracing_subscriber::fmt::writer::BoxMakeWriter::new(std::io::stderr),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(terminal)
        .with_writer(writer);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
    Ok(())
}

/// `drainer check-config`: print the effective configuration, then preflight both servers.
async fn check_config(path: &Path, config: &Config, servers: &Servers) -> Exit {
    print!("{}", effective_config(path, config));
    if let Some(note) = config.tidb_notes() {
        println!("\nnote: {note}");
    }
    let report = preflight::run(config, servers).await;
    println!();
    print!("{}", report.render());
    if report.passed() {
        println!("\npreflight passed");
        Exit::Ok
    } else {
        let failed: Vec<String> = report
            .failures()
            .map(|c| format!("{} {}", c.side.as_str(), c.setting))
            .collect();
        println!("\npreflight FAILED: {}", failed.join("; "));
        Exit::FailedPreflight
    }
}

/// `drainer --config FILE`: preflight, then replicate until SIGINT/SIGTERM (a second
/// signal exits at once).
async fn run(config: &Config, servers: &Servers) -> Exit {
    if let Err(e) = drainer::failpoint::validate() {
        eprintln!("error: {e}");
        return Exit::BadConfig;
    }
    // A first start replicates from the moment the process started: what is written while
    // the servers are checked is not lost.
    let now = match drainer::pipeline::first_start(config) {
        false => None,
        true => match drainer::pipeline::capture_now(config, servers).await {
            Ok(now) => {
                tracing::info!(position = %now.position(), "first start: the upstream's position now is where reading begins");
                Some(now)
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the upstream's position yet; the first start begins where it is once replication starts");
                None
            }
        },
    };
    let prometheus = match drainer::metrics::install() {
        Ok(handle) => handle,
        Err(e) => {
            eprintln!("error: {e}");
            return Exit::Runtime;
        }
    };
    let status = Status::new(
        servers.upstream_name(),
        format!("{}:{}", config.syncer.to.host, config.syncer.to.port),
        config.syncer.channel_id,
    );
    match drainer::http::bind(&config.addr).await {
        Ok(listener) => {
            tracing::info!(addr = %config.addr, "serving GET /status and /metrics");
            let pages = drainer::http::Pages::drainer(Arc::clone(&status), Some(prometheus));
            tokio::spawn(drainer::http::serve(listener, pages));
        }
        Err(e) => {
            tracing::error!(error = %e, "cannot start the status server");
            eprintln!("error: {e}");
            return Exit::Runtime;
        }
    }
    let report = preflight::run(config, servers).await;
    for c in report.warnings() {
        tracing::warn!(server = c.side.as_str(), setting = %c.setting, actual = %c.actual, "preflight");
    }
    if !report.passed() {
        for c in report.failures() {
            tracing::error!(
                server = c.side.as_str(),
                setting = %c.setting,
                expected = %c.expected,
                actual = %c.actual,
                "preflight check failed"
            );
        }
        status.failed("preflight failed", false);
        return Exit::FailedPreflight;
    }
    let stop_rx =
        on_signals("stopping: finishing the transaction in flight and saving the checkpoint");
    match drainer::pipeline::run(config, servers, stop_rx, Arc::clone(&status), now).await {
        Ok(()) => Exit::Ok,
        Err(e) => {
            status.failed(&e, false);
            metrics::counter!(drainer::metrics::ERRORS, "kind" => "definite").increment(1);
            match e.applying() {
                Some(a) => {
                    tracing::error!(at = %a.at, reason = %a.cause, "replication stopped")
                }
                None => tracing::error!(error = %e, "replication stopped"),
            }
            eprintln!("error: {e}");
            Exit::Runtime
        }
    }
}

/// `drainer verify`: the report on stdout (and as JSON in `json`); 0 when equal.
async fn verify(
    config: &Config,
    servers: &Servers,
    options: &drainer::verify::Options,
    json: Option<&std::path::Path>,
) -> Exit {
    match drainer::verify::verify(config, servers, options).await {
        Ok(report) => {
            print!("{}", report.text());
            if let Some(path) = json {
                let text = format!("{:#}\n", report.json());
                if let Err(e) = std::fs::write(path, text) {
                    eprintln!("error: --json {}: {e}", path.display());
                    return Exit::Runtime;
                }
            }
            if report.equal() {
                Exit::Ok
            } else {
                Exit::Runtime
            }
        }
        Err(e) => {
            eprintln!("error: {e}");
            Exit::Runtime
        }
    }
}

/// `drainer seed`: the copy, with its progress on a terminal and on `addr` (`/status`,
/// `/metrics`).
async fn seed(config: &Config, servers: &Servers, options: &drainer::seed::Options) -> Exit {
    use drainer::seed::{Outcome, Progress, SeedError};
    if let Err(e) = drainer::failpoint::validate() {
        eprintln!("error: {e}");
        return Exit::BadConfig;
    }
    let prometheus = match drainer::metrics::install() {
        Ok(handle) => handle,
        Err(e) => {
            eprintln!("error: {e}");
            return Exit::Runtime;
        }
    };
    let progress = Progress::new();
    match drainer::http::bind(&config.addr).await {
        Ok(listener) => {
            let shown = Arc::clone(&progress);
            let pages = drainer::http::Pages {
                status: Arc::new(move || shown.to_json()),
                metrics: Some(Arc::new(move || {
                    prometheus.run_upkeep();
                    prometheus.render()
                })),
            };
            tokio::spawn(drainer::http::serve(listener, pages));
        }
        Err(e) => {
            eprintln!("error: {e}");
            return Exit::Runtime;
        }
    }
    let report = preflight::run(config, servers).await;
    if !report.passed() {
        print!("{}", report.render());
        eprintln!("error: preflight failed");
        return Exit::FailedPreflight;
    }
    progress.set_state("copying");
    let terminal = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let ticker = terminal.then(|| {
        let shown = Arc::clone(&progress);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(std::time::Duration::from_millis(500)).await;
                if let Some(line) = shown.line() {
                    eprint!("\r\x1b[2K{line}");
                }
            }
        })
    });
    let outcome = drainer::seed::seed(config, servers, options, &progress).await;
    if let Some(ticker) = ticker {
        ticker.abort();
        eprint!("\r\x1b[2K");
    }
    for t in progress.tables() {
        println!(
            "{}: {} rows in {} chunks ({}){}",
            t.name,
            t.copied,
            t.chunks,
            t.by,
            match t.took {
                Some(took) => format!(
                    ", {:.0} rows/s",
                    t.copied_now as f64 / took.as_secs_f64().max(1e-3)
                ),
                None => String::new(),
            }
        );
    }
    match outcome {
        Ok(Outcome::Copied { resume, last }) => {
            progress.set_state("done");
            println!(
                "seed complete: `drainer --config FILE` streams from {resume}; row changes the \
                 copy holds are passed over until {last}"
            );
            Exit::Ok
        }
        Ok(Outcome::AlreadyDone { resume }) => {
            println!("the seed of this direction is complete already (streaming resumes from {resume}): nothing to copy");
            Exit::Ok
        }
        Err(e) => {
            progress.failed(&e.to_string());
            eprintln!("error: {e}");
            match e {
                SeedError::Refused(_) => Exit::BadConfig,
                SeedError::Failed(_) => {
                    eprintln!("(run `drainer seed` again: it resumes at the next chunk)");
                    Exit::Runtime
                }
            }
        }
    }
}

/// `drainer conflicts show`: the recent conflict records from the downstream.
async fn conflicts_show(config: &Config, servers: &Servers, since: &str, limit: u32) -> Exit {
    let since = match drainer::conflicts::Since::parse(since) {
        Ok(since) => since,
        Err(e) => {
            eprintln!("error: {e}");
            return Exit::BadConfig;
        }
    };
    let schema = config
        .syncer
        .mark_table
        .split_once('.')
        .map_or("retl", |(schema, _)| schema);
    let channel = config.syncer.channel_id;
    match drainer::conflicts::show(servers, schema, channel, &since, limit).await {
        Ok(text) => {
            print!("{text}");
            Exit::Ok
        }
        Err(e) => {
            eprintln!("error: {e}");
            Exit::Runtime
        }
    }
}

/// Says `true` at the first SIGINT/SIGTERM (logging `stopping`); a second one exits at
/// once with 130.
fn on_signals(stopping: &'static str) -> tokio::sync::watch::Receiver<bool> {
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        use tokio::signal::unix::{signal, SignalKind};
        let (Ok(mut term), Ok(mut int)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) else {
            return;
        };
        tokio::select! { _ = term.recv() => {}, _ = int.recv() => {} }
        tracing::info!("{stopping}");
        let _ = stop_tx.send(true);
        tokio::select! { _ = term.recv() => {}, _ = int.recv() => {} }
        tracing::warn!("second signal: exiting at once");
        std::process::exit(130);
    });
    stop_rx
}

/// `drainer schema show`: the tracked definitions, from data-dir, without locking it.
fn schema_show(config: &Config, table: Option<&str>) -> Exit {
    let dir = &config.data_dir;
    if !dir.exists() {
        eprintln!(
            "error: data-dir {} does not exist: no drainer has run with this configuration",
            dir.display()
        );
        return Exit::Runtime;
    }
    // At the checkpoint: entries past it belong to statements a stopped run read but did
    // not commit downstream, and are not in force for the next start.
    let history = checkpoint::Store::open_read_only(dir)
        .map_err(|e| e.to_string())
        .and_then(|store| {
            let at = store.checkpoint().map_err(|e| e.to_string())?;
            let history = match &at {
                Some(cp) => schema::History::at(&store, &cp.position),
                None => schema::History::load(&store, None),
            };
            history
                .map(|h| (h, at.map(|cp| cp.position)))
                .map_err(|e| e.to_string())
        });
    let history = match history {
        Ok((h, at)) => {
            match at {
                Some(position) => println!("-- at the checkpoint {position}"),
                None => println!("-- no checkpoint yet: the definitions recorded so far"),
            }
            h
        }
        Err(e) => {
            eprintln!("error: {e}");
            return Exit::Runtime;
        }
    };
    let catalog = history.catalog();
    let tables: Vec<&schema::Table> = match table {
        None => catalog.tables.values().collect(),
        Some(name) => {
            let found = name
                .split_once('.')
                .and_then(|(db, t)| catalog.table(db, t));
            match found {
                Some(t) => vec![t],
                None => {
                    let known: Vec<String> =
                        catalog.tables.values().map(|t| t.qualified()).collect();
                    eprintln!(
                        "error: {name} is not tracked (give db.table); tracked: {}",
                        if known.is_empty() {
                            "none".into()
                        } else {
                            known.join(", ")
                        }
                    );
                    return Exit::Runtime;
                }
            }
        }
    };
    if tables.is_empty() {
        println!("-- no tables are tracked in {}", dir.display());
    }
    for t in tables {
        println!("{};\n", t.create_statement());
    }
    Exit::Ok
}

/// `drainer checkpoint show`.
fn checkpoint_show(config: &Config) -> Exit {
    let dir = &config.data_dir;
    let store = match checkpoint::Store::open_read_only(dir) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e} (has a drainer run with this configuration?)");
            return Exit::Runtime;
        }
    };
    let (cp, identity) = match (store.checkpoint(), store.identity()) {
        (Ok(cp), Ok(id)) => (cp, id),
        (Err(e), _) | (_, Err(e)) => {
            eprintln!("error: {e}");
            return Exit::Runtime;
        }
    };
    println!("data-dir   {}", dir.display());
    match cp {
        None => println!("position   (none saved yet)"),
        Some(cp) => {
            let coords = if cp.position.coords.file.is_empty() {
                "(by GTID only)".to_owned()
            } else {
                cp.position.coords.to_string()
            };
            println!("position   {coords}");
            match &cp.position.gtids {
                Some(g) => println!("gtid       {g}"),
                None => println!("gtid       (none)"),
            }
            println!("saved at   {} (seconds since the epoch)", cp.saved_at);
        }
    }
    if let Some(id) = identity {
        let server = |s: &checkpoint::ServerIdentity| match &s.uuid {
            Some(uuid) => format!("server_id {} ({uuid}) at {}", s.server_id, s.address),
            None => format!("server_id {} at {}", s.server_id, s.address),
        };
        println!("upstream   {}", server(&id.upstream));
        println!("downstream {}", server(&id.downstream));
        println!("channel    {}", id.channel_id);
    }
    Exit::Ok
}

/// `drainer checkpoint set`: only while no drainer holds data-dir.
fn checkpoint_set(
    config: &Config,
    gtid: Option<&str>,
    file: Option<&str>,
    pos: Option<u64>,
) -> Exit {
    let position = match (gtid, file, pos) {
        (Some(g), None, None) => match g.parse::<pump_reader::GtidSet>() {
            Ok(gtids) => pump_reader::Position {
                coords: pump_reader::BinlogCoords::new("", pump_reader::BinlogCoords::FIRST_EVENT),
                gtids: Some(gtids),
            },
            Err(e) => {
                eprintln!("error: --gtid: {e}");
                return Exit::BadConfig;
            }
        },
        (None, Some(f), Some(p)) if p >= 4 && !f.is_empty() => pump_reader::Position {
            coords: pump_reader::BinlogCoords::new(f, p),
            gtids: None,
        },
        (None, Some(_), Some(p)) => {
            eprintln!("error: --file needs a name and --pos at least 4 (is {p})");
            return Exit::BadConfig;
        }
        _ => {
            eprintln!("error: give --gtid, or --file and --pos");
            return Exit::BadConfig;
        }
    };
    let store = match checkpoint::Store::open(&config.data_dir) {
        Ok(s) => s,
        Err(e @ checkpoint::Error::InUse { .. }) => {
            eprintln!("error: {e}: stop the drainer first");
            return Exit::Runtime;
        }
        Err(e) => {
            eprintln!("error: {e}");
            return Exit::Runtime;
        }
    };
    match schema::History::bootstrap_position(&store) {
        Ok(Some(bootstrap)) => {
            let before = match (&bootstrap.gtids, &position.gtids) {
                (Some(b), Some(p)) => p.partial_cmp(b) == Some(std::cmp::Ordering::Less),
                _ => {
                    position.coords.partial_cmp(&bootstrap.coords) == Some(std::cmp::Ordering::Less)
                }
            };
            if before {
                eprintln!(
                    "error: {position} is before the schema history's bootstrap at {bootstrap}: \
                     the table definitions there are unknown; start from a new data-dir instead"
                );
                return Exit::Runtime;
            }
        }
        Ok(None) => {}
        Err(e) => {
            eprintln!("error: {e}");
            return Exit::Runtime;
        }
    }
    let was = store
        .checkpoint()
        .ok()
        .flatten()
        .map(|c| c.position.to_string());
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    if let Err(e) = store.set_checkpoint(&position, now) {
        eprintln!("error: {e}");
        return Exit::Runtime;
    }
    println!(
        "checkpoint set to {position} (was {})",
        was.unwrap_or_else(|| "none".into())
    );
    Exit::Ok
}

/// The configuration as TOML, passwords redacted, with where each password came from.
fn effective_config(path: &Path, config: &Config) -> String {
    let source = |pump: bool| match PasswordSource::current(pump) {
        PasswordSource::Env(var) => format!("from {var}"),
        PasswordSource::File => "from the file".to_owned(),
    };
    let body = toml::to_string_pretty(config)
        .unwrap_or_else(|e| format!("# cannot render the configuration: {e}\n"));
    format!(
        "# effective configuration of {} (passwords redacted: [pump] {}, [syncer.to] {})\n{body}",
        path.display(),
        source(true),
        source(false),
    )
}
