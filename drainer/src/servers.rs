//! The direction's two servers, each with its TLS loaded once, when the process starts;
//! with `[pump] relay`, the upstream is reached through a [`Tunnel`] to the relay.

use std::sync::Arc;

use conf::{Config, ServerTls};
use link::relay::{Connector, Tunnel};
use link::{ClientTls, FileError, Server};

/// How this direction reaches its upstream (`[pump]`) and downstream (`[syncer.to]`).
#[derive(Clone)]
pub struct Servers {
    pub upstream: Server,
    pub downstream: Server,
    /// The tunnel to the upstream site's relay, when `[pump] relay` is set: every
    /// connection to `upstream` goes through it.
    pub relay: Option<Arc<Tunnel>>,
}

impl std::fmt::Debug for Servers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.relay {
            Some(t) => write!(f, "relay {} → {:?}", t.relay, self.downstream),
            None => write!(f, "{:?} → {:?}", self.upstream, self.downstream),
        }
    }
}

/// Why the servers cannot be reached as configured.
#[derive(Debug, thiserror::Error)]
pub enum ServersError {
    #[error(transparent)]
    File(#[from] FileError),
    #[error("cannot open the local socket of the tunnel to the relay: {0}")]
    Tunnel(std::io::Error),
}

impl Servers {
    /// Reads and checks the TLS files both sections name (a file that cannot be used is an
    /// error naming its key and path: bad configuration, exit 2), and opens the tunnel to
    /// the relay, if there is one (it connects only when used).
    pub async fn load(config: &Config) -> Result<Servers, ServersError> {
        let (pump, to) = (&config.pump, &config.syncer.to);
        let downstream = server(&to.host, to.port, &to.user, to.password.expose(), &to.tls())?;
        let (upstream, relay) = match (&pump.relay, &pump.tls) {
            (Some(relay), Some(tls)) => {
                let tunnel = Tunnel::start(Connector::new(relay, tls)?)
                    .await
                    .map_err(ServersError::Tunnel)?;
                let (host, port) = relay.rsplit_once(':').unwrap_or((relay, "0"));
                let upstream = Server {
                    host: host.to_owned(),
                    port: port.parse().unwrap_or(0),
                    socket: Some(tunnel.socket.clone()),
                    // The relay logs in to the upstream with its own account.
                    user: String::new(),
                    password: String::new(),
                    tls: Arc::new(ClientTls::disabled("pump")),
                };
                (upstream, Some(Arc::new(tunnel)))
            }
            _ => {
                let up = server(
                    &pump.host,
                    pump.port,
                    &pump.user,
                    pump.password.expose(),
                    &pump.tls(),
                )?;
                (up, None)
            }
        };
        Ok(Servers {
            upstream,
            downstream,
            relay,
        })
    }

    /// How the upstream is named in `/status` and messages.
    pub fn upstream_name(&self) -> String {
        match &self.relay {
            Some(t) => format!("relay {}", t.relay),
            None => format!("{}:{}", self.upstream.host, self.upstream.port),
        }
    }
}

fn server(
    host: &str,
    port: u16,
    user: &str,
    password: &str,
    tls: &ServerTls,
) -> Result<Server, FileError> {
    Ok(Server {
        host: host.to_owned(),
        port,
        socket: None,
        user: user.to_owned(),
        password: password.to_owned(),
        tls: Arc::new(ClientTls::load(tls)?),
    })
}
