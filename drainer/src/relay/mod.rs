//! `drainer relay`: runs in the upstream's site, next to its database, and serves it to
//! drainers in other sites over one port: TLS 1.3, a certificate required of every client
//! (chaining to the relay's CA, optionally with a listed name), compressed (zstd), with
//! heartbeats (`link::relay`).
//!
//! Each drainer connection (its binlog stream, its client-library sessions) arrives as its
//! own link and becomes a MySQL connection to the upstream logged in with the relay's
//! account ([`proxy`]): the drainer needs the upstream's binlog, its table definitions and
//! its settings, and gets all of them this way; later commands' upstream-side work
//! (`verify`, `seed`) goes the same way. Binlog streams get replica ids from the relay's
//! range (`[upstream] server-id` and up), so two never share one. The relay keeps nothing
//! that matters: a drainer's checkpoint and apply record decide where it resumes, and a
//! relay killed and started again is just a lost connection to it.
//!
//! Certificates: the relay reads its TLS files again for every new link, so they can be
//! replaced while it runs (links made before keep theirs); files that cannot be used then
//! are logged and the last good ones kept.
//!
//! Backpressure: a session reads from the upstream only as fast as its link takes the
//! bytes, so a slow drainer slows its own stream, never the relay's memory (one packet and
//! the link's buffers per session).

mod proxy;
pub mod state;

use std::sync::Arc;
use std::time::Duration;

use conf::RelayConfig;
use link::relay::{
    forward, read_frame, write_frame, Counters, ServerFiles, HANDSHAKE_TIMEOUT, HELLO, MAGIC,
};
use link::{ClientTls, FileError, Server};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

use crate::http::{self, Pages};
use state::RelayState;

/// Why the relay cannot run.
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    /// A TLS file that cannot be used (bad configuration).
    #[error(transparent)]
    File(#[from] FileError),
    #[error("listen {addr}: {source}")]
    Listen {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Http(String),
}

/// The relay's upstream, as its `[upstream]` says.
pub fn upstream(config: &RelayConfig) -> Result<Server, FileError> {
    let up = &config.upstream;
    Ok(Server {
        host: up.host.clone(),
        port: up.port,
        socket: None,
        user: up.user.clone(),
        password: up.password.expose().to_owned(),
        tls: Arc::new(ClientTls::load(&up.tls())?),
    })
}

/// Serves until `stop`.
pub async fn serve(
    config: &RelayConfig,
    mut stop: watch::Receiver<bool>,
) -> Result<(), RelayError> {
    let files = Arc::new(ServerFiles::load(&config.tls)?);
    let upstream = Arc::new(upstream(config)?);
    let up = &config.upstream;
    let state = Arc::new(RelayState::new(
        format!("{}:{}", up.host, up.port),
        config.listen.clone(),
        up.server_id,
        up.max_streams,
    ));
    let listener =
        TcpListener::bind(&config.listen)
            .await
            .map_err(|source| RelayError::Listen {
                addr: config.listen.clone(),
                source,
            })?;
    let pages = {
        let (status, metrics) = (Arc::clone(&state), Arc::clone(&state));
        Pages {
            status: Arc::new(move || status.to_json()),
            metrics: Some(Arc::new(move || metrics.to_prometheus())),
        }
    };
    let http = http::bind(&config.addr).await.map_err(RelayError::Http)?;
    tokio::spawn(http::serve(http, pages));
    tracing::info!(listen = %config.listen, upstream = ?upstream, status = %config.addr, "relay serving");
    loop {
        let (tcp, peer) = tokio::select! {
            _ = stop.changed() => return Ok(()),
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        tcp.set_nodelay(true).ok();
        let (files, upstream, state) = (files.clone(), upstream.clone(), state.clone());
        tokio::spawn(async move {
            // The files' stamps are checked here, off the accept loop.
            let acceptor = TlsAcceptor::from(files.current());
            session(tcp, peer.to_string(), acceptor, &upstream, &state).await;
        });
    }
}

/// Takes a session out of the state when dropped.
struct Leave<'a>(&'a RelayState, u64);

impl Drop for Leave<'_> {
    fn drop(&mut self) {
        self.0.leave(self.1);
    }
}

/// One link: the client's certificate, the HELLOs, then its MySQL connection.
async fn session(
    tcp: TcpStream,
    peer: String,
    acceptor: TlsAcceptor,
    upstream: &Server,
    state: &RelayState,
) {
    let mut tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
        Ok(Ok(tls)) => tls,
        Ok(Err(e)) => {
            // No certificate, another CA's, a name not listed, or not TLS at all.
            tracing::warn!(client = %peer, error = %e, "refused a client");
            return;
        }
        Err(_) => {
            tracing::warn!(client = %peer, "refused a client: no TLS handshake within 10 s");
            return;
        }
    };
    let name = tls
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|c| c.first())
        .and_then(|c| link::x509::CertInfo::parse(c))
        .and_then(|i| i.names().first().map(|n| n.to_string()))
        .unwrap_or_else(|| "?".into());
    let hello = tokio::time::timeout(HANDSHAKE_TIMEOUT, read_frame(&mut tls)).await;
    match hello {
        Ok(Ok((HELLO, magic))) if magic == MAGIC => {}
        _ => {
            tracing::warn!(client = %peer, name = %name, "refused a client: it does not speak the relay protocol");
            return;
        }
    }
    if write_frame(&mut tls, HELLO, MAGIC).await.is_err() {
        return;
    }
    let counters = Arc::new(Counters::default());
    let id = state.join(name.clone(), peer.clone(), Arc::clone(&counters));
    // The session leaves the state (and frees its replica id) however it ends.
    let _leave = Leave(state, id);
    tracing::info!(client = %peer, name = %name, session = id, "client connected");
    let (near, far) = tokio::io::duplex(256 << 10);
    let forwarding = forward(far, tls, |d| d, |_| {}, &counters);
    tokio::pin!(forwarding);
    let ended = tokio::select! {
        r = &mut forwarding => r,
        r = proxy::proxy(near, upstream, state, id) => {
            // The session is over on the upstream's side (its end of the pipe is closed):
            // the link still sends what it was given (an error packet, the last events)
            // and closes.
            match tokio::time::timeout(Duration::from_secs(10), &mut forwarding).await {
                Ok(sent) => r.and(sent),
                Err(_) => r,
            }
        }
    };
    match ended {
        Ok(()) => tracing::info!(client = %peer, session = id, "client disconnected"),
        Err(e) => tracing::info!(client = %peer, session = id, error = %e, "client link ended"),
    }
}
