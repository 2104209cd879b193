//! Network namespaces for cross-site tests: each site's processes see only their own
//! loopback; [`Bridge`]s join two namespaces through a Unix socket on the shared
//! filesystem, so no routed or private address is ever used and cutting a link is
//! stopping its bridge.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

use crate::mariadb::die_with_parent;
use crate::HarnessError;

/// A network namespace of its own (`ip netns add`), with its loopback up; deleted when
/// dropped.
#[derive(Debug)]
pub struct Netns {
    pub name: String,
}

fn run(args: &[&str]) -> Result<(), HarnessError> {
    let out = Command::new("ip").args(args).output().map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            HarnessError::Missing(
                "the ip command is not installed: apt-get install iproute2 (scripts/setup.sh does)"
                    .into(),
            )
        } else {
            HarnessError::io("run ip", e)
        }
    })?;
    if out.status.success() {
        Ok(())
    } else {
        Err(HarnessError::Missing(format!(
            "`ip {}` failed ({}): network namespaces need root (the tests and CI run as root)",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}

/// `program` run inside namespace `ns` (`ip netns exec`, which execs it: the pid is the
/// program's own).
pub(crate) fn exec_in(ns: &str, program: impl AsRef<OsStr>) -> Command {
    let mut command = Command::new("ip");
    command.args(["netns", "exec", ns]).arg(program);
    command
}

impl Netns {
    /// A new namespace named after this process and `tag`.
    pub fn new(tag: &str) -> Result<Netns, HarnessError> {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "drainer-{}-{tag}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        run(&["netns", "add", &name])?;
        let ns = Netns { name };
        run(&["-n", &ns.name, "link", "set", "lo", "up"])?;
        Ok(ns)
    }

    /// `program` run inside this namespace.
    pub fn command(&self, program: impl AsRef<OsStr>) -> Command {
        exec_in(&self.name, program)
    }

    /// Whether a TCP connection to `127.0.0.1:port` succeeds from inside this namespace.
    pub fn can_connect(&self, port: u16) -> bool {
        self.command("bash")
            .args(["-c", &format!("exec 3<>/dev/tcp/127.0.0.1/{port}")])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "delete", &self.name])
            .status();
    }
}

/// Makes `127.0.0.1:to_port` of one namespace reachable as `127.0.0.1:listen_port` in
/// another, through a Unix socket in `dir`: a `socat` in each namespace.
pub struct Bridge {
    from: String,
    listen_port: u16,
    to: String,
    to_port: u16,
    socket: PathBuf,
    children: Vec<Child>,
}

impl Bridge {
    pub fn start(
        from: &Netns,
        listen_port: u16,
        to: &Netns,
        to_port: u16,
        dir: &Path,
    ) -> Result<Bridge, HarnessError> {
        let mut bridge = Bridge {
            from: from.name.clone(),
            listen_port,
            to: to.name.clone(),
            to_port,
            socket: dir.join(format!("bridge-{listen_port}-{to_port}.sock")),
            children: Vec::new(),
        };
        bridge.up()?;
        Ok(bridge)
    }

    /// Starts the two `socat`s (each in a process group of its own, so that stopping it
    /// also ends the connections it forked for).
    pub fn up(&mut self) -> Result<(), HarnessError> {
        let spawn = |ns: &str, args: &[String]| -> Result<Child, HarnessError> {
            let mut command = exec_in(ns, "socat");
            command
                .args(args)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null());
            std::os::unix::process::CommandExt::process_group(&mut command, 0);
            die_with_parent(&mut command);
            command.spawn().map_err(|e| {
                if e.kind() == std::io::ErrorKind::NotFound {
                    HarnessError::Missing(
                        "socat is not installed: apt-get install socat (scripts/setup.sh does)"
                            .into(),
                    )
                } else {
                    HarnessError::io("spawn socat", e)
                }
            })
        };
        let socket = self.socket.display().to_string();
        let inner = spawn(
            &self.to,
            &[
                format!("UNIX-LISTEN:{socket},fork,unlink-early"),
                format!("TCP:127.0.0.1:{}", self.to_port),
            ],
        )?;
        self.children.push(inner);
        // The inner end's socket exists before the outer end is used.
        for _ in 0..100 {
            if self.socket.exists() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let outer = spawn(
            &self.from,
            &[
                format!(
                    "TCP-LISTEN:{},bind=127.0.0.1,reuseaddr,fork",
                    self.listen_port
                ),
                format!("UNIX-CONNECT:{socket}"),
            ],
        )?;
        self.children.push(outer);
        Ok(())
    }

    /// Cuts the link: both `socat`s and every connection they carry.
    pub fn down(&mut self) {
        for mut child in self.children.drain(..) {
            // SAFETY: kill(2) on the child's own process group.
            unsafe {
                libc::kill(-(child.id() as libc::pid_t), libc::SIGKILL);
            }
            child.wait().ok();
        }
    }
}

impl Drop for Bridge {
    fn drop(&mut self) {
        self.down();
    }
}
