//! `drainer` processes for tests: a generated configuration, the real binary, its exit
//! code and output.

use std::ffi::OsString;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, SystemTime};

use conf::Config;
use tempfile::TempDir;

use crate::eventually::poll_until;
use crate::mariadb::{
    die_with_parent, free_port, signal, MariaDb, APPLY_PASSWORD, APPLY_USER, PUMP_PASSWORD,
    PUMP_USER,
};
use crate::HarnessError;

/// A configuration for the direction `upstream` → `downstream`, logging in as the harness
/// users, with its data directory in `data_dir`, and safe mode for the first 300 s after
/// a start (the whole of a test: its REPLACE statements stay under test, as they were
/// while 300 was the default). Tests change fields as they need.
pub fn config_for(
    upstream: &MariaDb,
    downstream: &MariaDb,
    data_dir: &Path,
) -> Result<Config, HarnessError> {
    let text = format!(
        r#"
        addr = "127.0.0.1:{http_port}"
        [pump]
        host = "{up_host}"
        port = {up_port}
        user = "{PUMP_USER}"
        password = "{PUMP_PASSWORD}"
        server-id = {pump_id}
        [syncer.to]
        host = "{down_host}"
        port = {down_port}
        user = "{APPLY_USER}"
        password = "{APPLY_PASSWORD}"
        "#,
        http_port = free_port()?,
        up_host = upstream.host(),
        up_port = upstream.port(),
        pump_id = 10_000 + upstream.server_id(),
        down_host = downstream.host(),
        down_port = downstream.port(),
    );
    let mut config = Config::parse(&text, Path::new("<harness>"))
        .expect("the harness writes a valid configuration");
    config.data_dir = data_dir.to_owned();
    config.syncer.safe_mode_after_start_s = 300;
    Ok(config)
}

/// [`config_for`] with loopback control on channel 1 and safe mode off: how the
/// exactly-once tests run a direction (nothing but the apply record keeps a restart exact).
pub fn marked_config_for(
    upstream: &MariaDb,
    downstream: &MariaDb,
    data_dir: &Path,
) -> Result<Config, HarnessError> {
    let mut config = config_for(upstream, downstream, data_dir)?;
    config.syncer.loopback_control = true;
    config.syncer.channel_id = 1;
    config.syncer.safe_mode_after_start_s = 0;
    Ok(config)
}

/// Starts `drainer --config` for `config` and waits until it replicates.
pub async fn replicating(
    config: &Config,
    timeout: Duration,
) -> Result<DrainerProcess, HarnessError> {
    DrainerCommand::new()?
        .config(config)?
        .spawn_replicating(timeout)
        .await
}

/// Runs `drainer check-config` for `config` to its end.
pub async fn check_config(
    config: &Config,
    timeout: Duration,
) -> Result<DrainerOutput, HarnessError> {
    DrainerCommand::new()?
        .arg("check-config")
        .config(config)?
        .output(timeout)
        .await
}

/// Starts `drainer --config` for `config`, armed to die at `failpoint` (see the drainer's
/// `failpoint` module), and waits until it replicates.
pub async fn replicating_with_failpoint(
    config: &Config,
    failpoint: &str,
    timeout: Duration,
) -> Result<DrainerProcess, HarnessError> {
    DrainerCommand::new()?
        .config(config)?
        .env("DRAINER_FAILPOINT", failpoint)
        .spawn_replicating(timeout)
        .await
}

/// Where the `drainer` binary is: `$DRAINER_BIN`, else in `target/<profile>/`, beside
/// this package's binaries and above its tests (`target/<profile>/deps/`); `cargo test
/// --workspace` builds it first.
/// A binary older than its sources is refused: `cargo test -p integration` alone does not
/// rebuild it, and a stale binary would test old code.
pub fn drainer_binary() -> Result<PathBuf, HarnessError> {
    if let Some(path) = std::env::var_os("DRAINER_BIN") {
        return Ok(PathBuf::from(path));
    }
    let exe =
        std::env::current_exe().map_err(|e| HarnessError::io("find the test executable", e))?;
    // target/<profile>/<bin> or target/<profile>/deps/<test> → target/<profile>/drainer
    let dir = exe.parent();
    let binary = [dir, dir.and_then(Path::parent)]
        .into_iter()
        .flatten()
        .map(|dir| dir.join("drainer"))
        .find(|p| p.is_file())
        .ok_or_else(|| {
            HarnessError::Missing(format!(
                "the drainer binary is not beside {}: run `cargo test --workspace` \
                 (or `cargo build -p drainer`, with `--release` for a release program, and \
                 `--features failpoints` for the crash tests), or set DRAINER_BIN",
                exe.display()
            ))
        })?;
    let built = modified(&binary).unwrap_or(SystemTime::UNIX_EPOCH);
    // The checkout cargo runs the tests in (the build may have happened in another).
    let manifest = std::env::var_os("CARGO_MANIFEST_DIR")
        .map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from);
    let workspace = manifest.parent().unwrap_or(Path::new("."));
    let sources = [
        "drainer",
        "conf",
        "link",
        "pump-reader",
        "schema",
        "checkpoint",
    ]
    .iter()
    .map(|krate| workspace.join(krate).join("src"))
    .chain([workspace.join("Cargo.lock")]);
    if let Some(newer) = sources
        .filter_map(|p| newest(&p))
        .filter(|(t, _)| *t > built)
        .map(|(_, p)| p)
        .next()
    {
        return Err(HarnessError::Missing(format!(
            "{} is older than {}: run `cargo test --workspace` (or `cargo build -p drainer` \
             first) so the tests run the current code",
            binary.display(),
            newer.display()
        )));
    }
    Ok(binary)
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// The newest modification time under `path` (a file or a directory tree), with its file.
fn newest(path: &Path) -> Option<(SystemTime, PathBuf)> {
    let own = modified(path).map(|t| (t, path.to_owned()));
    let Ok(entries) = std::fs::read_dir(path) else {
        return own;
    };
    entries
        .flatten()
        .filter_map(|e| newest(&e.path()))
        .chain(own.filter(|_| path.is_file()))
        .max_by_key(|(t, _)| *t)
}

/// A `drainer` invocation being put together.
pub struct DrainerCommand {
    dir: TempDir,
    args: Vec<OsString>,
    env: Vec<(String, String)>,
    netns: Option<String>,
}

/// What a finished `drainer` run left: exit code and output.
#[derive(Debug, Clone)]
pub struct DrainerOutput {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl DrainerOutput {
    /// The exit code; `None` if a signal ended the process.
    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }
}

impl DrainerCommand {
    pub fn new() -> Result<DrainerCommand, HarnessError> {
        let dir = tempfile::Builder::new()
            .prefix("drainer-run-")
            .tempdir()
            .map_err(|e| HarnessError::io("create a drainer run directory", e))?;
        Ok(DrainerCommand {
            dir,
            args: Vec::new(),
            env: Vec::new(),
            netns: None,
        })
    }

    /// The run's own directory (configuration, output files; a good `data-dir` parent).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn arg(mut self, arg: impl Into<OsString>) -> Self {
        self.args.push(arg.into());
        self
    }

    /// Runs the process in the network namespace named `ns` (see [`crate::Netns`]).
    pub fn netns(mut self, ns: &str) -> Self {
        self.netns = Some(ns.to_owned());
        self
    }

    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.to_owned(), value.to_owned()));
        self
    }

    /// Writes `config` to `drainer.toml` and passes `--config`. The file holds the
    /// passwords redacted, so they travel in `DRAINER_PUMP_PASSWORD` / `DRAINER_TO_PASSWORD`,
    /// as an operator would pass them.
    pub fn config(self, config: &Config) -> Result<Self, HarnessError> {
        let text = toml::to_string(config).map_err(|e| {
            HarnessError::Usage(format!("cannot write the configuration as TOML: {e}"))
        })?;
        let pump = config.pump.password.expose().to_owned();
        let to = config.syncer.to.password.expose().to_owned();
        Ok(self
            .config_text(&text)?
            .env(conf::PUMP_PASSWORD_ENV, &pump)
            .env(conf::TO_PASSWORD_ENV, &to))
    }

    /// Writes `text` as `drainer.toml` and passes `--config`.
    pub fn config_text(self, text: &str) -> Result<Self, HarnessError> {
        let path = self.dir.path().join("drainer.toml");
        std::fs::write(&path, text)
            .map_err(|e| HarnessError::io(format!("write {}", path.display()), e))?;
        Ok(self.arg("--config").arg(path))
    }

    /// Starts the process in the background.
    pub fn spawn(self) -> Result<DrainerProcess, HarnessError> {
        let out = File::create(self.dir.path().join("stdout"))
            .map_err(|e| HarnessError::io("create stdout file", e))?;
        let err = File::create(self.dir.path().join("stderr"))
            .map_err(|e| HarnessError::io("create stderr file", e))?;
        let mut command = match &self.netns {
            Some(ns) => crate::netns::exec_in(ns, drainer_binary()?),
            None => Command::new(drainer_binary()?),
        };
        // In its own directory: a relative path of a configuration (TiDB's `data-dir =
        // "data.drainer"`, `log-file`) lands there, not in the source tree.
        command
            .current_dir(self.dir.path())
            .args(&self.args)
            .env_remove("DRAINER_LOG")
            .env_remove(conf::PUMP_PASSWORD_ENV)
            .env_remove(conf::TO_PASSWORD_ENV)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err);
        die_with_parent(&mut command);
        let child = command
            .spawn()
            .map_err(|e| HarnessError::io("spawn drainer", e))?;
        Ok(DrainerProcess {
            child: Some(child),
            dir: self.dir,
        })
    }

    /// Starts the process and waits until it logs that it replicates (preflight and
    /// bootstrap done); the timeout's error carries its log so far.
    pub async fn spawn_replicating(
        self,
        timeout: Duration,
    ) -> Result<DrainerProcess, HarnessError> {
        self.spawn_until("replicating", timeout).await
    }

    /// Starts the process and waits until its log says `text`; the timeout's error carries
    /// its log so far.
    pub async fn spawn_until(
        self,
        text: &str,
        timeout: Duration,
    ) -> Result<DrainerProcess, HarnessError> {
        let process = self.spawn()?;
        poll_until(&format!("the log to say {text:?}"), timeout, || {
            let log = process.stderr();
            async move {
                if log.contains(text) {
                    Ok(())
                } else {
                    Err(log)
                }
            }
        })
        .await?;
        Ok(process)
    }

    /// Runs to completion (killed after `timeout`) and returns the exit code and output.
    pub async fn output(self, timeout: Duration) -> Result<DrainerOutput, HarnessError> {
        let mut process = self.spawn()?;
        process.wait(timeout).await
    }
}

/// A running (or finished) `drainer`; killed when dropped.
pub struct DrainerProcess {
    child: Option<Child>,
    dir: TempDir,
}

impl DrainerProcess {
    /// The run's directory: `drainer.toml`, `stdout`, `stderr`.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The process's peak resident memory so far (`VmHWM`), in bytes.
    pub fn peak_rss(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()?)).ok()?;
        let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
        let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kib * 1024)
    }

    pub fn stdout(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("stdout")).unwrap_or_default()
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("stderr")).unwrap_or_default()
    }

    /// Sends SIGTERM (graceful stop) or another signal.
    pub fn signal(&self, sig: libc::c_int) {
        if let Some(child) = &self.child {
            signal(child, sig);
        }
    }

    /// Waits for the process to exit on its own; kills it after `timeout` and fails.
    pub async fn wait(&mut self, timeout: Duration) -> Result<DrainerOutput, HarnessError> {
        let Some(child) = self.child.as_mut() else {
            return Err(HarnessError::Usage("drainer was already waited for".into()));
        };
        let waited = poll_until("drainer to exit", timeout, || {
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
        match waited {
            Ok(status) => {
                self.child = None;
                Ok(DrainerOutput {
                    status,
                    stdout: self.stdout(),
                    stderr: self.stderr(),
                })
            }
            Err(mut timeout) => {
                self.kill();
                timeout.last = format!("still running; stderr so far:\n{}", self.stderr());
                Err(timeout.into())
            }
        }
    }

    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().ok();
            child.wait().ok();
        }
    }
}

impl Drop for DrainerProcess {
    /// Kills the process. In a failing test its log's last lines are printed (the test's
    /// output shows them), and with `DRAINER_KEEP_TEST_DIRS` set its directory is kept.
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            let log = self.stderr();
            let tail: Vec<&str> = log.lines().rev().take(80).collect();
            eprintln!(
                "drainer run {} ends its log with:\n{}",
                self.dir.path().display(),
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            );
        }
        if std::env::var_os("DRAINER_KEEP_TEST_DIRS").is_some() {
            let dir = std::mem::replace(
                &mut self.dir,
                tempfile::tempdir().expect("a temporary directory"),
            );
            eprintln!("kept drainer run directory {}", dir.keep().display());
        }
    }
}

/// One line of `check-config`'s preflight table.
#[derive(Debug)]
pub struct Row {
    pub result: String,
    pub expected: String,
    pub actual: String,
}

/// The report line of `setting` on `server`, split into its columns (separated by two or
/// more spaces; the first two columns by one).
pub fn row(out: &DrainerOutput, server: &str, setting: &str) -> Row {
    for line in out.stdout.lines() {
        let mut words = line
            .splitn(3, char::is_whitespace)
            .filter(|w| !w.is_empty());
        let (Some(result), Some(rest)) = (
            words.next(),
            line.split_once(' ').map(|(_, r)| r.trim_start()),
        ) else {
            continue;
        };
        let Some(rest) = rest.strip_prefix(server).and_then(|r| r.strip_prefix(' ')) else {
            continue;
        };
        let columns: Vec<&str> = rest
            .split("  ")
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .collect();
        if let [found, expected, actual] = columns[..] {
            if found == setting {
                return Row {
                    result: result.to_owned(),
                    expected: expected.to_owned(),
                    actual: actual.to_owned(),
                };
            }
        }
    }
    panic!("no {server} {setting} line in:\n{}", out.stdout)
}

/// Asserts the result and that the ACTUAL column contains `actual`.
pub fn assert_line(out: &DrainerOutput, server: &str, setting: &str, result: &str, actual: &str) {
    let r = row(out, server, setting);
    assert_eq!(
        r.result, result,
        "{server} {setting}: {r:?}\n{}",
        out.stdout
    );
    assert!(
        r.actual.contains(actual),
        "{server} {setting}: actual {:?} lacks {actual:?}",
        r.actual
    );
}
