//! The link between a drainer and a relay (`drainer relay`): TLS 1.3 with a certificate on
//! both sides, then frames carrying one MySQL connection's bytes, zstd-compressed.
//!
//! ```text
//! frame = kind (1 byte) · length (4 bytes, little-endian) · payload
//! HELLO     both sides, first: "drainer-relay/1"
//! DATA      the connection's bytes, compressed (one zstd stream per direction, flushed
//!           per frame, so each frame decodes on arrival)
//! HEARTBEAT sent after 5 s without data; a side that hears nothing for 20 s drops the link
//! ```
//! What the upstream or the relay refuses (a login, a binlog position, a replica id when
//! all are taken) reaches the drainer as a MySQL error packet inside the stream, as from
//! the server itself; the link then closes after the last byte is sent.
//!
//! One link carries one MySQL connection: the drainer's client library and its binlog
//! connection each open their own, through [`Tunnel`]'s local socket. Backpressure is TCP's:
//! a side reads from one end only as fast as the other end takes what it wrote.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use conf::{RelayClientTls, RelayServerTls};
use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, DistinguishedName, ServerConfig,
    SignatureScheme,
};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpStream, UnixListener, UnixStream};
use zstd::stream::raw::{Decoder, Encoder, InBuffer, Operation, OutBuffer};

use crate::client::Identity;
use crate::files::{identity, FileError, Named};
use crate::provider;
use crate::x509::CertInfo;

/// What both sides say first.
pub const MAGIC: &[u8] = b"drainer-relay/1";
pub const HELLO: u8 = 1;
pub const DATA: u8 = 2;
pub const HEARTBEAT: u8 = 3;
/// A side sends a heartbeat after this long without data...
pub const HEARTBEAT_EVERY: Duration = Duration::from_secs(5);
/// ... and drops a link it has heard nothing on for this long.
pub const DEAD_AFTER: Duration = Duration::from_secs(20);
/// Connecting, the TLS handshake and the HELLOs may take this long.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Bytes read from the plain side per frame.
const CHUNK: usize = 64 << 10;
/// The largest frame accepted, compressed or not.
const MAX_FRAME: usize = 1 << 20;
/// zstd's level: fast, and most of what a binlog stream gives.
const LEVEL: i32 = 3;
/// The largest zstd window either side uses or accepts (4 MiB): a peer cannot make a
/// link hold more.
const WINDOW_LOG: u32 = 22;

/// Why a link could not be made.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    #[error("relay {addr} does not answer: {source}")]
    NoAnswer {
        addr: String,
        #[source]
        source: io::Error,
    },
    #[error("TLS with relay {addr} failed: {source}")]
    Tls {
        addr: String,
        #[source]
        source: io::Error,
    },
    #[error("{addr} does not speak the relay protocol: {what}")]
    Protocol { addr: String, what: String },
}

/// The relay's TLS: its certificate, client certificates required and checked against
/// its CA (and its list of names), TLS 1.3 only.
pub fn server_config(tls: &RelayServerTls) -> Result<Arc<ServerConfig>, FileError> {
    let provider = provider();
    let ca = Named {
        key: "tls.ca",
        path: &tls.ca,
    };
    let webpki =
        WebPkiClientVerifier::builder_with_provider(Arc::new(ca.roots()?), provider.clone())
            .build()
            .map_err(|e| FileError::Invalid {
                key: ca.key.to_owned(),
                path: tls.ca.clone(),
                what: format!("cannot verify clients with it: {e}"),
            })?;
    let certified = identity(
        Named {
            key: "tls.cert",
            path: &tls.cert,
        },
        Named {
            key: "tls.key",
            path: &tls.key,
        },
        &provider,
    )?;
    let config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .expect("ring supports TLS 1.3")
        .with_client_cert_verifier(Arc::new(NamedClients {
            webpki,
            allowed: tls.allowed_names.clone(),
        }))
        .with_cert_resolver(Arc::new(Certificate(certified)));
    Ok(Arc::new(config))
}

/// A drainer's TLS to a relay: its certificate, the relay's checked against `ca` and its
/// name, TLS 1.3 only.
pub fn client_config(tls: &RelayClientTls) -> Result<Arc<ClientConfig>, FileError> {
    let provider = provider();
    let roots = Named {
        key: "pump.tls.ca",
        path: &tls.ca,
    }
    .roots()?;
    let verifier = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .map_err(|e| FileError::Invalid {
            key: "pump.tls.ca".into(),
            path: tls.ca.clone(),
            what: format!("cannot verify with it: {e}"),
        })?;
    let certified = identity(
        Named {
            key: "pump.tls.cert",
            path: &tls.cert,
        },
        Named {
            key: "pump.tls.key",
            path: &tls.key,
        },
        &provider,
    )?;
    let config = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .expect("ring supports TLS 1.3")
        .with_webpki_verifier(verifier)
        .with_client_cert_resolver(Arc::new(Identity(certified)));
    Ok(Arc::new(config))
}

/// A TLS configuration made from files, made again when one of them changes (size or
/// modification time), so that certificates and CA files can be replaced while links run:
/// new links use the new ones. Files that cannot be used then are logged (once per
/// change) and the last good ones kept.
struct Reloading<T> {
    paths: Vec<PathBuf>,
    /// The files' stamps when last read, and what was made of them.
    state: std::sync::Mutex<(Vec<Stamp>, Arc<T>)>,
}

/// A file's modification time and size (`None`: it cannot be read).
type Stamp = Option<(std::time::SystemTime, u64)>;

impl<T> Reloading<T> {
    fn new(paths: Vec<PathBuf>, config: Arc<T>) -> Self {
        let stamps = stamps(&paths);
        Reloading {
            paths,
            state: std::sync::Mutex::new((stamps, config)),
        }
    }

    fn current(&self, load: impl FnOnce() -> Result<Arc<T>, FileError>) -> Arc<T> {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let now = stamps(&self.paths);
        if now != state.0 {
            state.0 = now;
            match load() {
                Ok(fresh) => {
                    tracing::info!("TLS files changed: new links use them");
                    state.1 = fresh;
                }
                Err(e) => tracing::warn!(error = %e, "keeping the TLS files read before"),
            }
        }
        state.1.clone()
    }
}

fn stamps(paths: &[PathBuf]) -> Vec<Stamp> {
    paths
        .iter()
        .map(|p| {
            let m = std::fs::metadata(p).ok()?;
            Some((m.modified().ok()?, m.len()))
        })
        .collect()
}

/// The relay's TLS, read again when its files change (see [`Reloading`]).
pub struct ServerFiles {
    tls: RelayServerTls,
    config: Reloading<ServerConfig>,
}

impl ServerFiles {
    /// Reads the files once now: an error is bad configuration.
    pub fn load(tls: &RelayServerTls) -> Result<ServerFiles, FileError> {
        let paths = vec![tls.ca.clone(), tls.cert.clone(), tls.key.clone()];
        Ok(ServerFiles {
            tls: tls.clone(),
            config: Reloading::new(paths, server_config(tls)?),
        })
    }

    /// The configuration of the files as they are now, else the last good one.
    pub fn current(&self) -> Arc<ServerConfig> {
        self.config.current(|| server_config(&self.tls))
    }
}

#[derive(Debug)]
struct Certificate(Arc<CertifiedKey>);

impl ResolvesServerCert for Certificate {
    fn resolve(&self, _: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.clone())
    }
}

/// Client certificates that chain to the CA and, if the list is not empty, carry one of
/// its names.
#[derive(Debug)]
struct NamedClients {
    webpki: Arc<dyn ClientCertVerifier>,
    allowed: Vec<String>,
}

impl ClientCertVerifier for NamedClients {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.webpki.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let verified = self
            .webpki
            .verify_client_cert(end_entity, intermediates, now)?;
        if self.allowed.is_empty() {
            return Ok(verified);
        }
        let info = CertInfo::parse(end_entity);
        let allowed = info.as_ref().is_some_and(|i| {
            i.names()
                .iter()
                .any(|n| self.allowed.iter().any(|a| a == n))
        });
        if allowed {
            Ok(verified)
        } else {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::ApplicationVerificationFailure,
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.webpki.supported_verify_schemes()
    }
}

/// Writes one frame.
pub async fn write_frame<W: AsyncWrite + Unpin>(
    w: &mut W,
    kind: u8,
    payload: &[u8],
) -> io::Result<()> {
    let mut head = [0u8; 5];
    head[0] = kind;
    head[1..].copy_from_slice(&(payload.len() as u32).to_le_bytes());
    w.write_all(&head).await?;
    w.write_all(payload).await?;
    w.flush().await
}

/// Reads one frame: its kind and payload.
pub async fn read_frame<R: AsyncRead + Unpin>(r: &mut R) -> io::Result<(u8, Vec<u8>)> {
    let mut head = [0u8; 5];
    r.read_exact(&mut head).await?;
    let len = u32::from_le_bytes(head[1..].try_into().expect("4 bytes")) as usize;
    if len > MAX_FRAME || !matches!(head[0], HELLO | DATA | HEARTBEAT) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("not a relay frame (kind {}, {len} bytes)", head[0]),
        ));
    }
    let mut payload = vec![0u8; len];
    r.read_exact(&mut payload).await?;
    Ok((head[0], payload))
}

/// Byte counts of one link, for `/status` and `/metrics`.
#[derive(Debug, Default)]
pub struct Counters {
    /// Bytes read from the plain side (before compression).
    pub plain_read: AtomicU64,
    /// Bytes written to the plain side (after decompression).
    pub plain_written: AtomicU64,
    /// Bytes sent on the link (frames, before TLS).
    pub link_sent: AtomicU64,
    /// Bytes received on the link.
    pub link_received: AtomicU64,
}

/// Carries one connection's bytes between `plain` (a MySQL connection) and `link` (the
/// TLS stream to the other side) until either ends. `inbound` sees (and may change) what
/// goes to the plain side; `outbound` sees what leaves it.
pub async fn forward<P, L>(
    plain: P,
    link: L,
    mut inbound: impl FnMut(Vec<u8>) -> Vec<u8> + Send,
    mut outbound: impl FnMut(&[u8]) + Send,
    counters: &Counters,
) -> io::Result<()>
where
    P: AsyncRead + AsyncWrite + Send,
    L: AsyncRead + AsyncWrite + Send,
{
    let (mut plain_r, mut plain_w) = tokio::io::split(plain);
    let (mut link_r, mut link_w) = tokio::io::split(link);
    let to_link = async {
        let mut encoder = encoder()?;
        let mut buf = vec![0u8; CHUNK];
        let mut out = Vec::with_capacity(CHUNK);
        loop {
            let n = match tokio::time::timeout(HEARTBEAT_EVERY, plain_r.read(&mut buf)).await {
                Err(_) => {
                    write_frame(&mut link_w, HEARTBEAT, &[]).await?;
                    counters.link_sent.fetch_add(5, Ordering::Relaxed);
                    continue;
                }
                Ok(read) => read?,
            };
            if n == 0 {
                link_w.shutdown().await.ok();
                return Ok::<_, io::Error>(());
            }
            outbound(&buf[..n]);
            compress(&mut encoder, &buf[..n], &mut out)?;
            write_frame(&mut link_w, DATA, &out).await?;
            counters.plain_read.fetch_add(n as u64, Ordering::Relaxed);
            counters
                .link_sent
                .fetch_add(5 + out.len() as u64, Ordering::Relaxed);
        }
    };
    let to_plain = async {
        let mut decoder = decoder()?;
        let mut out = Vec::with_capacity(CHUNK);
        loop {
            let (kind, payload) =
                match tokio::time::timeout(DEAD_AFTER, read_frame(&mut link_r)).await {
                    Err(_) => {
                        return Err(io::Error::new(
                            io::ErrorKind::TimedOut,
                            format!("nothing heard on the link for {} s", DEAD_AFTER.as_secs()),
                        ))
                    }
                    Ok(Err(e)) if e.kind() == io::ErrorKind::UnexpectedEof => {
                        plain_w.shutdown().await.ok();
                        return Ok(());
                    }
                    Ok(frame) => frame?,
                };
            counters
                .link_received
                .fetch_add(5 + payload.len() as u64, Ordering::Relaxed);
            match kind {
                DATA => {
                    decompress(&mut decoder, &payload, &mut out)?;
                    let data = inbound(std::mem::take(&mut out));
                    plain_w.write_all(&data).await?;
                    plain_w.flush().await?;
                    counters
                        .plain_written
                        .fetch_add(data.len() as u64, Ordering::Relaxed);
                    out = data;
                    out.clear();
                }
                HEARTBEAT => {}
                other => {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("an unexpected frame of kind {other}"),
                    ))
                }
            }
        }
    };
    // Whichever ends first ends the connection: the other side's end closes with it.
    tokio::select! {
        r = to_link => r,
        r = to_plain => r,
    }
}

fn encoder() -> io::Result<Encoder<'static>> {
    let mut encoder = Encoder::new(LEVEL)?;
    encoder.set_parameter(zstd::stream::raw::CParameter::WindowLog(WINDOW_LOG))?;
    Ok(encoder)
}

fn decoder() -> io::Result<Decoder<'static>> {
    let mut decoder = Decoder::new()?;
    decoder.set_parameter(zstd::stream::raw::DParameter::WindowLogMax(WINDOW_LOG))?;
    Ok(decoder)
}

fn compress(encoder: &mut Encoder<'_>, input: &[u8], out: &mut Vec<u8>) -> io::Result<()> {
    out.clear();
    let mut input = InBuffer::around(input);
    while input.pos() < input.src.len() {
        out.reserve(CHUNK);
        let pos = out.len();
        encoder.run(&mut input, &mut OutBuffer::around_pos(out, pos))?;
    }
    loop {
        out.reserve(1 << 10);
        let pos = out.len();
        if encoder.flush(&mut OutBuffer::around_pos(out, pos))? == 0 {
            return Ok(());
        }
    }
}

fn decompress(decoder: &mut Decoder<'_>, input: &[u8], out: &mut Vec<u8>) -> io::Result<()> {
    out.clear();
    let mut input = InBuffer::around(input);
    loop {
        out.reserve(CHUNK);
        let pos = out.len();
        decoder.run(&mut input, &mut OutBuffer::around_pos(out, pos))?;
        // All read, and room left over: nothing more is pending in the decoder.
        if input.pos() == input.src.len() && out.len() < out.capacity() {
            return Ok(());
        }
        if out.len() > MAX_FRAME {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "a frame that decompresses to over 1 MiB",
            ));
        }
    }
}

/// A drainer's end: a local socket in a private directory; every connection made to it is
/// carried to the relay over its own TLS link. The client library and the replication
/// connection connect to [`Tunnel::socket`] as if it were the upstream.
pub struct Tunnel {
    pub socket: PathBuf,
    pub relay: String,
    /// Removed when the tunnel is dropped.
    _dir: tempfile::TempDir,
    connector: Connector,
    accept: tokio::task::JoinHandle<()>,
}

/// How to reach the relay. Its files are read again when they change (see
/// [`Reloading`]): certificates and the CA file can be replaced while links run.
#[derive(Clone)]
pub struct Connector {
    pub addr: String,
    server_name: ServerName<'static>,
    tls: RelayClientTls,
    config: Arc<Reloading<ClientConfig>>,
}

/// What a drainer learns of the relay when it connects.
#[derive(Debug, Clone)]
pub struct LinkInfo {
    pub version: String,
    pub cipher: String,
    /// The relay's certificate.
    pub certificate: Option<CertInfo>,
}

impl Connector {
    /// Reads `[pump.tls]` and names the relay.
    pub fn new(relay: &str, tls: &RelayClientTls) -> Result<Connector, FileError> {
        let config = client_config(tls)?;
        let host = tls.server_name.clone().unwrap_or_else(|| host_of(relay));
        let server_name = ServerName::try_from(host.clone()).map_err(|e| FileError::Invalid {
            key: "pump.tls.server-name".into(),
            path: PathBuf::from(&host),
            what: format!("not a DNS name or IP address: {e}"),
        })?;
        Ok(Connector {
            addr: relay.to_owned(),
            server_name,
            tls: tls.clone(),
            config: Arc::new(Reloading::new(
                vec![tls.ca.clone(), tls.cert.clone(), tls.key.clone()],
                config,
            )),
        })
    }

    /// The configuration of the files as they are now, else the last good one.
    fn current(&self) -> Arc<ClientConfig> {
        self.config.current(|| client_config(&self.tls))
    }

    /// A link to the relay, its HELLO answered.
    pub async fn connect(
        &self,
    ) -> Result<(tokio_rustls::client::TlsStream<TcpStream>, LinkInfo), LinkError> {
        let addr = self.addr.clone();
        let tcp = tokio::time::timeout(HANDSHAKE_TIMEOUT, TcpStream::connect(&self.addr))
            .await
            .map_err(|_| LinkError::NoAnswer {
                addr: addr.clone(),
                source: io::Error::new(io::ErrorKind::TimedOut, "no answer within 10 s"),
            })?
            .map_err(|source| LinkError::NoAnswer {
                addr: addr.clone(),
                source,
            })?;
        tcp.set_nodelay(true).ok();
        let handshake =
            tokio_rustls::TlsConnector::from(self.current()).connect(self.server_name.clone(), tcp);
        let mut tls = tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake)
            .await
            .map_err(|_| LinkError::Protocol {
                addr: addr.clone(),
                what: "no TLS handshake within 10 s".into(),
            })?
            .map_err(|source| match source.kind() {
                io::ErrorKind::InvalidData if not_tls(&source) => LinkError::Protocol {
                    addr: addr.clone(),
                    what: format!("its answer is not TLS ({source})"),
                },
                _ => LinkError::Tls {
                    addr: addr.clone(),
                    source,
                },
            })?;
        let hello = async {
            write_frame(&mut tls, HELLO, MAGIC).await?;
            read_frame(&mut tls).await
        };
        let frame = tokio::time::timeout(HANDSHAKE_TIMEOUT, hello)
            .await
            .map_err(|_| LinkError::Protocol {
                addr: addr.clone(),
                what: "no HELLO within 10 s".into(),
            })?;
        match frame {
            Ok((HELLO, magic)) if magic == MAGIC => {}
            Ok((kind, _)) => {
                return Err(LinkError::Protocol {
                    addr,
                    what: format!("a first frame of kind {kind}, not HELLO"),
                })
            }
            // The relay closes a link whose certificate it refused.
            Err(e) => return Err(LinkError::Tls { addr, source: e }),
        }
        let session = tls.get_ref().1;
        let info = LinkInfo {
            version: session
                .protocol_version()
                .map(|v| format!("{v:?}").replace('_', "."))
                .unwrap_or_default(),
            cipher: session
                .negotiated_cipher_suite()
                .map(|s| format!("{:?}", s.suite()))
                .unwrap_or_default(),
            certificate: session
                .peer_certificates()
                .and_then(|c| c.first())
                .and_then(|c| CertInfo::parse(c)),
        };
        Ok((tls, info))
    }
}

/// Whether a handshake failed because the peer does not speak TLS at all.
fn not_tls(e: &io::Error) -> bool {
    e.get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        .is_some_and(|e| {
            matches!(
                e,
                rustls::Error::InvalidMessage(_) | rustls::Error::InappropriateMessage { .. }
            )
        })
}

/// The name of a tunnel's directory starts with this; its socket is [`TUNNEL_SOCKET`].
const TUNNEL_PREFIX: &str = "drainer-relay-";
const TUNNEL_SOCKET: &str = "upstream.sock";
/// A tunnel directory unchanged this long is set up (its socket listens, or never will).
const STALE_AFTER: Duration = Duration::from_secs(60);

/// Removes the tunnel directories in `parent` that a killed drainer left (a drainer
/// stopped in order removes its own): of this user (the owner of `own`, the new one),
/// unchanged for a minute (not one being set up), and whose socket no process listens
/// on (connecting is refused). Anything else is left as it is, and failures are only
/// logged.
fn sweep_stale_tunnels(parent: &Path, own: &Path) {
    use std::os::unix::fs::MetadataExt;
    let Ok(uid) = std::fs::metadata(own).map(|m| m.uid()) else {
        return;
    };
    let Ok(entries) = std::fs::read_dir(parent) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let ours = entry
            .file_name()
            .to_string_lossy()
            .starts_with(TUNNEL_PREFIX)
            && path != own
            && entry.metadata().is_ok_and(|m| {
                m.is_dir()
                    && m.uid() == uid
                    && m.modified()
                        .ok()
                        .and_then(|t| t.elapsed().ok())
                        .is_some_and(|age| age >= STALE_AFTER)
            });
        if !ours {
            continue;
        }
        let refused = matches!(
            std::os::unix::net::UnixStream::connect(path.join(TUNNEL_SOCKET)),
            Err(e) if e.kind() == io::ErrorKind::ConnectionRefused
        );
        if refused {
            match std::fs::remove_dir_all(&path) {
                Ok(()) => {
                    tracing::debug!(dir = %path.display(), "removed a relay tunnel directory a killed drainer left")
                }
                Err(e) => {
                    tracing::debug!(dir = %path.display(), error = %e, "cannot remove a relay tunnel directory a killed drainer left")
                }
            }
        }
    }
}

fn host_of(addr: &str) -> String {
    let host = addr.rsplit_once(':').map_or(addr, |(h, _)| h);
    host.trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned()
}

impl Tunnel {
    /// Opens the local socket (in a new directory only this user can enter) and carries
    /// every connection made to it to the relay.
    pub async fn start(connector: Connector) -> io::Result<Tunnel> {
        // A new directory with a name of its own, mode 0700: nobody else can reach the
        // socket, and no directory left by a killed process is in the way.
        let dir = tempfile::Builder::new().prefix(TUNNEL_PREFIX).tempdir()?;
        if let Some(parent) = dir.path().parent() {
            sweep_stale_tunnels(parent, dir.path());
        }
        let socket = dir.path().join(TUNNEL_SOCKET);
        let listener = UnixListener::bind(&socket)?;
        let carry = connector.clone();
        let accept = tokio::spawn(async move {
            loop {
                match listener.accept().await {
                    Ok((local, _)) => {
                        let connector = carry.clone();
                        tokio::spawn(async move { carry_one(local, &connector).await });
                    }
                    Err(e) => {
                        // Out of file descriptors, most likely: wait rather than spin.
                        tracing::warn!(error = %e, "the relay tunnel cannot accept");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
            }
        });
        Ok(Tunnel {
            socket,
            relay: connector.addr.clone(),
            _dir: dir,
            connector,
            accept,
        })
    }

    /// One link made and closed: whether the relay answers, who it is, and the TLS in use.
    pub async fn check(&self) -> Result<LinkInfo, LinkError> {
        let (mut tls, info) = self.connector.connect().await?;
        tls.shutdown().await.ok();
        Ok(info)
    }

    pub fn socket(&self) -> &Path {
        &self.socket
    }
}

impl Drop for Tunnel {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

/// Carries one local connection; a link that cannot be made closes it (the drainer's
/// client then retries as after any lost connection).
async fn carry_one(local: UnixStream, connector: &Connector) {
    let (tls, _) = match connector.connect().await {
        Ok(link) => link,
        Err(e) => {
            tracing::warn!(error = %e, "cannot reach the relay");
            return;
        }
    };
    let counters = Counters::default();
    if let Err(e) = forward(local, tls, |d| d, |_| {}, &counters).await {
        tracing::debug!(error = %e, relay = %connector.addr, "relay link ended");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tunnel_directories_a_killed_drainer_left_are_removed_and_live_ones_kept() {
        let parent = tempfile::tempdir().unwrap();
        let make = |name: &str| {
            let dir = parent.path().join(format!("{TUNNEL_PREFIX}{name}"));
            std::fs::create_dir(&dir).unwrap();
            dir
        };
        // Left by a killed drainer: the socket file stays, nobody listens.
        let stale = make("stale");
        drop(std::os::unix::net::UnixListener::bind(stale.join(TUNNEL_SOCKET)).unwrap());
        // Another drainer's, running.
        let live = make("live");
        let _listener = std::os::unix::net::UnixListener::bind(live.join(TUNNEL_SOCKET)).unwrap();
        // Being set up (no socket yet), and someone else's name.
        let young = make("young");
        let other = parent.path().join("other-stale");
        std::fs::create_dir(&other).unwrap();
        drop(std::os::unix::net::UnixListener::bind(other.join(TUNNEL_SOCKET)).unwrap());
        // A socket refusing connections in a directory just made: being set up.
        let just = make("just");
        drop(std::os::unix::net::UnixListener::bind(just.join(TUNNEL_SOCKET)).unwrap());
        let old = std::time::SystemTime::now() - 2 * STALE_AFTER;
        for dir in [&stale, &live, &young, &other] {
            std::fs::File::open(dir).unwrap().set_modified(old).unwrap();
        }
        let own = make("own");
        sweep_stale_tunnels(parent.path(), &own);
        assert!(!stale.exists());
        for kept in [&live, &young, &other, &just, &own] {
            assert!(kept.exists(), "{}", kept.display());
        }
    }

    #[test]
    fn compressed_frames_decode_on_arrival() {
        let mut encoder = encoder().unwrap();
        let mut decoder = decoder().unwrap();
        let (mut wire, mut back) = (Vec::new(), Vec::new());
        let mut total_in = 0;
        let mut total_wire = 0;
        for i in 0..50u32 {
            let chunk: Vec<u8> = format!("INSERT INTO t VALUES ({i}, 'a row like the last') ")
                .repeat(40)
                .into_bytes();
            compress(&mut encoder, &chunk, &mut wire).unwrap();
            decompress(&mut decoder, &wire, &mut back).unwrap();
            assert_eq!(back, chunk, "chunk {i}");
            total_in += chunk.len();
            total_wire += wire.len();
        }
        assert!(total_wire * 10 < total_in, "{total_wire} of {total_in}");
        // Garbage is an error, not a panic.
        assert!(decompress(&mut super::decoder().unwrap(), b"not zstd", &mut back).is_err());
    }

    #[tokio::test]
    async fn frames_round_trip_and_garbage_is_refused() {
        let (mut a, mut b) = tokio::io::duplex(1 << 16);
        write_frame(&mut a, HELLO, MAGIC).await.unwrap();
        assert_eq!(read_frame(&mut b).await.unwrap(), (HELLO, MAGIC.to_vec()));
        a.write_all(b"GET / HTTP/1.1\r\n").await.unwrap();
        assert!(read_frame(&mut b).await.is_err());
        assert_eq!(host_of("relay-a.example:8250"), "relay-a.example");
        assert_eq!(host_of("[::1]:8250"), "::1");
    }
}
