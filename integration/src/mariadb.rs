//! Real MariaDB servers for tests: one `mariadbd` per [`MariaDb`], in a temporary directory,
//! on a free loopback port, with its own `server_id` and `gtid_domain_id`, binlog on in ROW
//! format. Dropping the value kills the server and removes its directory, also when the
//! test panics; the server is also killed when the thread that started it dies
//! (`PR_SET_PDEATHSIG`), so a killed test run leaves no server behind.

use std::collections::hash_map::DefaultHasher;
use std::fs::File;
use std::hash::{Hash, Hasher};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

use mysql_async::prelude::{FromRow, Queryable};
use mysql_async::{Conn, Opts, OptsBuilder};
use tempfile::TempDir;

use crate::eventually::poll_until;
use crate::HarnessError;

/// The replication user every harness server has: what `[pump]` logs in as.
pub const PUMP_USER: &str = "drainer_pump";
pub const PUMP_PASSWORD: &str = "pump-secret";
/// The applying user every harness server has: what `[syncer.to]` logs in as.
pub const APPLY_USER: &str = "drainer_to";
pub const APPLY_PASSWORD: &str = "to-secret";

/// Users created once in the template data directory (so they are in no binlog).
/// The bootstrap runs with grant tables off; `FLUSH PRIVILEGES` turns them on.
const TEMPLATE_SQL: &str = "\
FLUSH PRIVILEGES;
CREATE USER 'drainer_pump'@'127.0.0.1' IDENTIFIED BY 'pump-secret';
GRANT REPLICATION SLAVE, BINLOG MONITOR, SELECT ON *.* TO 'drainer_pump'@'127.0.0.1';
CREATE USER 'drainer_to'@'127.0.0.1' IDENTIFIED BY 'to-secret';
GRANT SELECT, INSERT, UPDATE, DELETE, CREATE, DROP, ALTER, INDEX, BINLOG REPLAY, TRIGGER, CREATE VIEW, SHOW VIEW, CREATE ROUTINE, ALTER ROUTINE, EVENT, SET USER ON *.* TO 'drainer_to'@'127.0.0.1';
";

/// InnoDB settings shared by the template's install and every server (small, fast).
const INNODB_ARGS: &[&str] = &[
    "--innodb-log-file-size=16M",
    "--innodb-buffer-pool-size=64M",
];

const START_TIMEOUT: Duration = Duration::from_secs(90);
/// How long one readiness probe (connect and ask) may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);
const STOP_TIMEOUT: Duration = Duration::from_secs(60);
/// How often a start is retried when another process took the chosen port meanwhile.
const PORT_ATTEMPTS: usize = 5;

const INSTALL_HINT: &str = "integration tests need MariaDB's server binaries: \
    install Debian's mariadb-server (`apt-get install mariadb-server`), \
    or set MARIADBD and MARIADB_INSTALL_DB to their paths";

/// Numbers handed out to servers of this process, for distinct ids.
static NEXT_SERVER: AtomicU32 = AtomicU32::new(1);

/// Settings of a server to start; see [`MariaDb::builder`].
#[derive(Debug, Clone)]
pub struct MariaDbBuilder {
    server_id: Option<u32>,
    gtid_domain_id: Option<u32>,
    binlog: bool,
    args: Vec<String>,
    netns: Option<String>,
}

impl MariaDbBuilder {
    /// `server_id`; default: a number unique in this test process.
    pub fn server_id(mut self, id: u32) -> Self {
        self.server_id = Some(id);
        self
    }

    /// `gtid_domain_id`; default: the same number as the default server id.
    pub fn gtid_domain_id(mut self, id: u32) -> Self {
        self.gtid_domain_id = Some(id);
        self
    }

    /// Whether the binlog is on (default: on).
    pub fn binlog(mut self, on: bool) -> Self {
        self.binlog = on;
        self
    }

    /// `auto_increment_increment` and `auto_increment_offset`: a site of several that
    /// write, each with its own keys.
    pub fn auto_increment(self, increment: u32, offset: u32) -> Self {
        self.arg(format!("--auto-increment-increment={increment}"))
            .arg(format!("--auto-increment-offset={offset}"))
    }

    /// Runs the server in network namespace `ns` (see [`crate::Netns`]): it listens on
    /// that namespace's loopback only; the harness reaches it through its Unix socket.
    pub fn netns(mut self, ns: &crate::Netns) -> Self {
        self.netns = Some(ns.name.clone());
        self
    }

    /// Another `mariadbd` option, after the harness's own (so it wins), e.g.
    /// `--binlog-format=STATEMENT`.
    pub fn arg(mut self, arg: impl Into<String>) -> Self {
        self.args.push(arg.into());
        self
    }

    pub async fn start(self) -> Result<MariaDb, HarnessError> {
        let n = NEXT_SERVER.fetch_add(1, Ordering::Relaxed);
        let server_id = self.server_id.unwrap_or(n);
        let gtid_domain_id = self.gtid_domain_id.unwrap_or(n);
        let template = template()?;
        let mut dir = tempfile::Builder::new()
            .prefix("drainer-mariadb-")
            .tempdir()
            .map_err(|e| HarnessError::io("create a server directory", e))?;
        let data = dir.path().join("data");
        copy_dir(template, &data).map_err(|e| {
            HarnessError::io(
                format!("copy {} to {}", template.display(), data.display()),
                e,
            )
        })?;

        let mut last_error = None;
        for _ in 0..PORT_ATTEMPTS {
            let mut server = MariaDb {
                port: free_port()?,
                server_id,
                gtid_domain_id,
                dir,
                binlog: self.binlog,
                extra_args: self.args.clone(),
                netns: self.netns.clone(),
                child: None,
            };
            let log_before = server.error_log().len();
            match server.launch().await {
                Ok(()) => return Ok(server),
                Err(e)
                    if server
                        .error_log()
                        .get(log_before..)
                        .is_some_and(|new| new.contains("Address already in use")) =>
                {
                    last_error = Some(e);
                    dir = server.take_dir();
                }
                Err(e) => return Err(e),
            }
        }
        Err(last_error.expect("at least one attempt"))
    }
}

/// A running `mariadbd`, killed and removed when dropped.
#[derive(Debug)]
pub struct MariaDb {
    port: u16,
    server_id: u32,
    gtid_domain_id: u32,
    dir: TempDir,
    binlog: bool,
    extra_args: Vec<String>,
    netns: Option<String>,
    child: Option<Child>,
}

impl MariaDb {
    pub fn builder() -> MariaDbBuilder {
        MariaDbBuilder {
            server_id: None,
            gtid_domain_id: None,
            binlog: true,
            args: Vec::new(),
            netns: None,
        }
    }

    /// A server with the default settings: binlog on, ROW format, FULL row image.
    pub async fn start() -> Result<MariaDb, HarnessError> {
        MariaDb::builder().start().await
    }

    pub fn host(&self) -> &'static str {
        "127.0.0.1"
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn server_id(&self) -> u32 {
        self.server_id
    }

    pub fn gtid_domain_id(&self) -> u32 {
        self.gtid_domain_id
    }

    /// The server's data directory (binlogs are there too).
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// The server's error log so far.
    pub fn error_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("error.log")).unwrap_or_default()
    }

    /// Connection options for `user` over TCP (through the server's Unix socket when it
    /// runs in a network namespace of its own).
    pub fn opts(&self, user: &str, password: &str) -> Opts {
        let socket = self.dir.path().join("mariadbd.sock");
        OptsBuilder::default()
            .ip_or_hostname(self.host())
            .tcp_port(self.port)
            .socket(self.netns.as_ref().and(socket.to_str()))
            .user(Some(user))
            .pass(Some(password))
            .prefer_socket(false)
            .into()
    }

    /// Connection options for `root` (all privileges, no password).
    pub fn root_opts(&self) -> Opts {
        self.opts("root", "")
    }

    /// A new connection as `root`.
    pub async fn conn(&self) -> Result<Conn, HarnessError> {
        // A loaded machine (many servers, drainers with many workers) may reset a
        // connection while it is being set up: try again a few times.
        let mut attempt = 0;
        loop {
            match Conn::new(self.root_opts()).await {
                Ok(conn) => return Ok(conn),
                Err(mysql_async::Error::Io(_)) if attempt < 5 => {
                    attempt += 1;
                    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                }
                Err(e) => return Err(self.sql_error("connect", e)),
            }
        }
    }

    /// Runs statements as `root`, one after another.
    pub async fn exec(&self, statements: &[&str]) -> Result<(), HarnessError> {
        let mut conn = self.conn().await?;
        for sql in statements {
            conn.query_drop(*sql)
                .await
                .map_err(|e| self.sql_error(sql, e))?;
        }
        conn.disconnect().await.ok();
        Ok(())
    }

    /// Runs one query as `root` and returns its rows.
    pub async fn query<T: FromRow + Send + 'static>(
        &self,
        sql: &str,
    ) -> Result<Vec<T>, HarnessError> {
        let mut conn = self.conn().await?;
        let rows = conn.query(sql).await.map_err(|e| self.sql_error(sql, e))?;
        conn.disconnect().await.ok();
        Ok(rows)
    }

    /// Stops the server gracefully (SIGTERM, then waits), keeping its data.
    pub async fn stop(&mut self) -> Result<(), HarnessError> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        signal(&child, libc::SIGTERM);
        let what = format!("mariadbd on port {} to stop", self.port);
        let status = poll_until(&what, STOP_TIMEOUT, || {
            let exited = child.try_wait();
            async move {
                match exited {
                    Ok(Some(status)) => Ok(status),
                    Ok(None) => Err("still running".to_owned()),
                    Err(e) => Err(e.to_string()),
                }
            }
        })
        .await;
        if status.is_err() {
            child.kill().ok();
            child.wait().ok();
        }
        status.map(drop).map_err(HarnessError::from)
    }

    /// The server's process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Freezes the server (SIGSTOP): connections stay open, nothing answers. A hung
    /// server, as a client sees one.
    pub fn freeze(&self) {
        if let Some(child) = &self.child {
            signal(child, libc::SIGSTOP);
        }
    }

    /// Lets a frozen server run again (SIGCONT).
    pub fn thaw(&self) {
        if let Some(child) = &self.child {
            signal(child, libc::SIGCONT);
        }
    }

    /// Starts the stopped server again on the same port and data directory.
    pub async fn restart(&mut self) -> Result<(), HarnessError> {
        self.stop().await?;
        self.launch().await
    }

    fn args(&self) -> Vec<String> {
        let dir = self.dir.path();
        let data = dir.join("data");
        let mut args = vec![
            "--no-defaults".to_owned(),
            format!("--datadir={}", data.display()),
            format!("--port={}", self.port),
            "--bind-address=127.0.0.1".to_owned(),
            format!("--socket={}", dir.join("mariadbd.sock").display()),
            format!("--pid-file={}", dir.join("mariadbd.pid").display()),
            format!("--log-error={}", dir.join("error.log").display()),
            // Its own: at start mariadbd deletes every `#sql*` file in its tmpdir, which
            // in a shared /tmp are the temporary tables of the servers already running
            // (they then fail queries, or crash).
            format!("--tmpdir={}", dir.join("tmp").display()),
            "--skip-name-resolve".to_owned(),
            format!("--server-id={}", self.server_id),
            format!("--gtid-domain-id={}", self.gtid_domain_id),
            "--character-set-server=utf8mb4".to_owned(),
            "--max-connections=500".to_owned(),
        ];
        args.extend(INNODB_ARGS.iter().map(|a| a.to_string()));
        if self.binlog {
            args.push(format!("--log-bin={}", data.join("binlog").display()));
            args.push("--binlog-format=ROW".to_owned());
            args.push("--binlog-row-image=FULL".to_owned());
            // Stored functions replicate without SUPER (docs/operations.md §1).
            args.push("--log-bin-trust-function-creators=1".to_owned());
        }
        if is_root() {
            args.push("--user=root".to_owned());
        }
        args.extend(self.extra_args.iter().cloned());
        args
    }

    /// Spawns `mariadbd` and waits until it accepts a login.
    async fn launch(&mut self) -> Result<(), HarnessError> {
        std::fs::create_dir_all(self.dir.path().join("tmp"))
            .map_err(|e| HarnessError::io("create tmp", e))?;
        let log = File::create(self.dir.path().join("mariadbd.out"))
            .map_err(|e| HarnessError::io("create mariadbd.out", e))?;
        let log2 = log
            .try_clone()
            .map_err(|e| HarnessError::io("dup mariadbd.out", e))?;
        let mariadbd = binary("MARIADBD", &["mariadbd", "mysqld"])?;
        let mut command = match &self.netns {
            Some(ns) => crate::netns::exec_in(ns, &mariadbd),
            None => Command::new(&mariadbd),
        };
        command
            .args(self.args())
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2);
        die_with_parent(&mut command);
        let child = command
            .spawn()
            .map_err(|e| HarnessError::io("spawn mariadbd", e))?;
        self.child = Some(child);

        let opts = self.root_opts();
        let what = format!(
            "mariadbd (server_id {}) to accept logins on port {}",
            self.server_id, self.port
        );
        // Another process's server may hold the port for a moment: only ours counts.
        let pid_file = self.dir.path().join("mariadbd.pid").display().to_string();
        let child = self.child.as_mut().expect("just spawned");
        let ready = poll_until(&what, START_TIMEOUT, || {
            let exited = child.try_wait();
            let opts = opts.clone();
            let pid_file = pid_file.clone();
            async move {
                if let Ok(Some(status)) = exited {
                    return Ok(Some(status));
                }
                let answer = tokio::time::timeout(PROBE_TIMEOUT, async {
                    let mut conn = Conn::new(opts).await?;
                    let theirs: Option<String> = conn.query_first("SELECT @@pid_file").await?;
                    conn.disconnect().await.ok();
                    Ok::<_, mysql_async::Error>(theirs)
                })
                .await;
                match answer {
                    Ok(Ok(Some(theirs))) if theirs == pid_file => Ok(None),
                    Ok(Ok(theirs)) => Err(format!(
                        "another server answers on the port (pid file {theirs:?})"
                    )),
                    Ok(Err(e)) => Err(e.to_string()),
                    Err(_) => Err(format!("no answer within {PROBE_TIMEOUT:?}")),
                }
            }
        })
        .await;
        let reason = match ready {
            Ok(None) => return Ok(()),
            Ok(Some(status)) => {
                self.child = None;
                format!("it exited with {status}")
            }
            Err(timeout) => timeout.to_string(),
        };
        Err(HarnessError::Start {
            server_id: self.server_id,
            port: self.port,
            reason,
            log: tail(&self.error_log(), 40),
        })
    }

    fn sql_error(&self, sql: &str, source: mysql_async::Error) -> HarnessError {
        HarnessError::Sql {
            server: format!(
                "{}:{} (server_id {})",
                self.host(),
                self.port,
                self.server_id
            ),
            sql: sql.to_owned(),
            source,
        }
    }

    /// Takes the directory out of a server that failed to start, for another attempt.
    fn take_dir(mut self) -> TempDir {
        self.kill();
        let placeholder = tempfile::tempdir().expect("a temporary directory");
        std::mem::replace(&mut self.dir, placeholder)
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().ok();
            child.wait().ok();
        }
    }
}

impl Drop for MariaDb {
    fn drop(&mut self) {
        // A server that died on its own (a crash) leaves its story in the error log:
        // shown, since the directory goes away.
        if let Some(child) = &mut self.child {
            if let Ok(Some(status)) = child.try_wait() {
                let log = self.error_log();
                let tail: Vec<&str> = log.lines().rev().take(60).collect();
                eprintln!(
                    "mariadbd (server_id {}) exited on its own ({status}); its error log ends:\n{}",
                    self.server_id,
                    tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                );
            }
        }
        self.kill();
        if std::env::var_os("DRAINER_KEEP_TEST_DIRS").is_some() {
            let dir = std::mem::replace(
                &mut self.dir,
                tempfile::tempdir().expect("a temporary directory"),
            );
            eprintln!("kept mariadbd directory {}", dir.keep().display());
        }
    }
}

/// The template data directory: `mariadb-install-db` once per machine and server version,
/// with the harness users; every server starts from a copy of it.
fn template() -> Result<&'static Path, HarnessError> {
    static TEMPLATE: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    TEMPLATE
        .get_or_init(|| make_template().map_err(|e| e.to_string()))
        .as_deref()
        .map_err(|e| HarnessError::Template(e.clone()))
}

fn make_template() -> Result<PathBuf, HarnessError> {
    let mariadbd = binary("MARIADBD", &["mariadbd", "mysqld"])?;
    let install_db = binary(
        "MARIADB_INSTALL_DB",
        &["mariadb-install-db", "mysql_install_db"],
    )?;
    let version = Command::new(&mariadbd)
        .arg("--version")
        .output()
        .map_err(|e| HarnessError::io(format!("run {} --version", mariadbd.display()), e))?;
    let mut hasher = DefaultHasher::new();
    (version.stdout, TEMPLATE_SQL, INNODB_ARGS).hash(&mut hasher);
    // Per user: another user's template would not be writable by this one's servers.
    // SAFETY: geteuid has no preconditions and cannot fail.
    let uid = unsafe { libc::geteuid() };
    let root = std::env::temp_dir().join(format!("drainer-harness-{uid}"));
    let path = root.join(format!("template-{:016x}", hasher.finish()));
    if path.join("ready").exists() {
        return Ok(path.join("data"));
    }
    std::fs::create_dir_all(&root)
        .map_err(|e| HarnessError::io(format!("create {}", root.display()), e))?;
    let work = tempfile::Builder::new()
        .prefix("template-work-")
        .tempdir_in(&root)
        .map_err(|e| HarnessError::io("create the template work directory", e))?;
    let data = work.path().join("data");
    let extra = work.path().join("users.sql");
    std::fs::write(&extra, TEMPLATE_SQL).map_err(|e| HarnessError::io("write users.sql", e))?;
    let mut install = Command::new(&install_db);
    install
        .arg("--no-defaults")
        .arg(format!("--datadir={}", data.display()))
        .arg("--auth-root-authentication-method=normal")
        .arg("--skip-test-db")
        .arg(format!("--extra-file={}", extra.display()))
        .args(INNODB_ARGS);
    if let Some(dir) = mariadbd.parent().and_then(Path::parent) {
        install.arg(format!("--basedir={}", dir.display()));
    }
    if is_root() {
        install.arg("--user=root");
    }
    let out = install
        .output()
        .map_err(|e| HarnessError::io(format!("run {}", install_db.display()), e))?;
    if !out.status.success() {
        return Err(HarnessError::Template(format!(
            "{} failed with {}:\n{}{}",
            install_db.display(),
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )));
    }
    std::fs::write(work.path().join("ready"), b"")
        .map_err(|e| HarnessError::io("mark the template ready", e))?;
    // Another process may have finished first; its template is as good as ours.
    if std::fs::rename(work.path(), &path).is_err() && !path.join("ready").exists() {
        return Err(HarnessError::Template(format!(
            "could not move the template into {}",
            path.display()
        )));
    }
    Ok(path.join("data"))
}

/// Finds a server binary: the environment variable `env`, else the first of `names` on
/// `PATH` or in the sbin directories (which a non-root `PATH` often lacks).
fn binary(env: &str, names: &[&str]) -> Result<PathBuf, HarnessError> {
    if let Some(path) = std::env::var_os(env) {
        return Ok(PathBuf::from(path));
    }
    let path_var = std::env::var_os("PATH").unwrap_or_default();
    let dirs: Vec<PathBuf> = std::env::split_paths(&path_var)
        .chain(
            [
                "/usr/sbin",
                "/usr/local/sbin",
                "/usr/bin",
                "/usr/local/mysql/bin",
            ]
            .map(PathBuf::from),
        )
        .collect();
    names
        .iter()
        .flat_map(|name| dirs.iter().map(move |d| d.join(name)))
        .find(|p| p.is_file())
        .ok_or_else(|| HarnessError::Missing(format!("{} not found; {INSTALL_HINT}", names[0])))
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// Asks the kernel to SIGKILL the child when the thread that spawned it exits, so an
/// aborted test run leaves no server behind; and puts it in its own process group, so a
/// terminal's Ctrl-C reaches only the harness's process, which stops its children in order
/// (the demo waits for both sites to match before it stops the drainers).
pub(crate) fn die_with_parent(command: &mut Command) {
    command.process_group(0);
    // SAFETY: prctl is async-signal-safe; nothing else runs between fork and exec here.
    unsafe {
        command.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
}

pub(crate) fn signal(child: &Child, sig: libc::c_int) {
    if let Ok(pid) = libc::pid_t::try_from(child.id()) {
        // SAFETY: kill has no memory-safety preconditions; pid is our own child.
        unsafe {
            libc::kill(pid, sig);
        }
    }
}

/// A loopback port nobody listens on now, not handed out before in this process.
pub fn free_port() -> Result<u16, HarnessError> {
    static HANDED_OUT: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    let mut handed_out = HANDED_OUT.lock().unwrap_or_else(|e| e.into_inner());
    for _ in 0..100 {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")
            .map_err(|e| HarnessError::io("bind a loopback port", e))?;
        let port = listener
            .local_addr()
            .map_err(|e| HarnessError::io("read a bound port", e))?
            .port();
        if !handed_out.contains(&port) {
            handed_out.push(port);
            return Ok(port);
        }
    }
    Err(HarnessError::Usage(
        "no free loopback port after 100 tries".into(),
    ))
}

fn copy_dir(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), target)?;
        }
    }
    Ok(())
}

pub(crate) fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
