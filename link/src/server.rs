//! Reaching a MariaDB/MySQL server: client-library sessions (mysql_async) and connections
//! for this project's own protocol code (the replication connection), TLS per `ssl-mode`.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use conf::SslMode;
use mysql_async::{ClientIdentity, Conn, DriverError, OptsBuilder, SslOpts};
use rustls::pki_types::ServerName;
use tokio::net::{TcpStream, UnixStream};
use tokio_rustls::TlsConnector;

use crate::client::ClientTls;
use crate::login::{read_packet, write_packet, Response, CLIENT_SSL};
use crate::stream::Stream;
use crate::x509::CertInfo;

/// One server and how to log in to it.
#[derive(Clone)]
pub struct Server {
    pub host: String,
    pub port: u16,
    /// A local socket to connect to instead of `host:port` (a relay's [`crate::relay::Tunnel`]).
    pub socket: Option<PathBuf>,
    pub user: String,
    pub password: String,
    pub tls: Arc<ClientTls>,
}

impl fmt::Debug for Server {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.socket {
            Some(socket) => write!(f, "{}@{}", self.user, socket.display()),
            None => write!(f, "{}@{}:{}", self.user, self.host, self.port),
        }
    }
}

/// A connection opened for this project's own protocol code: the server's greeting read
/// and, where the mode asks and the server offers it, TLS started (the `SSLRequest` sent
/// with the caller's capability flags), so that the login goes only through it.
#[derive(Debug)]
pub struct Opened {
    /// The server's greeting packet (its payload).
    pub greeting: Vec<u8>,
    pub stream: Stream,
    /// The sequence number of the client's next packet (the login).
    pub seq: u8,
}

impl Opened {
    /// Whether the connection is encrypted.
    pub fn tls(&self) -> bool {
        matches!(self.stream, Stream::Tls(_))
    }
}

/// Why a connection could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("{0}")]
    Io(#[from] io::Error),
    #[error("the server offers no TLS, and {section}.ssl-mode = {mode:?} needs it (is have_ssl YES there?)")]
    NoTls {
        section: &'static str,
        mode: &'static str,
    },
    #[error("TLS with the server failed: {0}")]
    Handshake(#[source] io::Error),
    #[error("the server's greeting is not MySQL protocol 10: {0}")]
    Protocol(String),
}

impl Server {
    /// A server reached in plain TCP (`ssl-mode = "disabled"`).
    pub fn plain(host: &str, port: u16, user: &str, password: &str) -> Server {
        Server {
            host: host.to_owned(),
            port,
            socket: None,
            user: user.to_owned(),
            password: password.to_owned(),
            tls: Arc::new(ClientTls::disabled("server")),
        }
    }

    /// Client-library options for this server: address and login, no TLS yet (see
    /// [`Server::session`]), never a local socket.
    pub fn opts(&self) -> OptsBuilder {
        OptsBuilder::default()
            .ip_or_hostname(self.host.as_str())
            .tcp_port(self.port)
            .socket(self.socket.as_deref().and_then(Path::to_str))
            .user(Some(self.user.as_str()))
            .pass(Some(self.password.as_str()))
            .prefer_socket(false)
    }

    /// A client-library session with `opts` (from [`Server::opts`]), TLS as `ssl-mode`
    /// says: `preferred` falls back to plain TCP only when the server offers no TLS.
    pub async fn session(&self, opts: OptsBuilder) -> Result<Conn, mysql_async::Error> {
        match self.tls.mode() {
            SslMode::Disabled => Conn::new(opts).await,
            SslMode::Preferred => match Conn::new(opts.clone().ssl_opts(self.ssl_opts(None))).await
            {
                Err(mysql_async::Error::Driver(DriverError::NoClientSslFlagFromServer)) => {
                    Conn::new(opts).await
                }
                other => other,
            },
            SslMode::Required | SslMode::VerifyIdentity => {
                Conn::new(opts.ssl_opts(self.ssl_opts(None))).await
            }
            // The client library checks the name whatever it is told (mysql_async 0.37.1
            // recognises a name mismatch by rustls' old message), so it is given a name
            // the server's certificate is for, learned through this crate's own
            // handshake, which checked the certificate's chain against ssl-ca. A new
            // certificate with other names is learned again.
            SslMode::VerifyCa => {
                let known = self.tls.learned_name.lock().expect("not poisoned").clone();
                let name = match known {
                    Some(name) => name,
                    None => self.learn_name().await?,
                };
                let first = Conn::new(opts.clone().ssl_opts(self.ssl_opts(Some(name)))).await;
                match first {
                    Err(e) if e.to_string().contains("not valid for name") => {
                        let name = self.learn_name().await?;
                        Conn::new(opts.ssl_opts(self.ssl_opts(Some(name)))).await
                    }
                    other => other,
                }
            }
        }
    }

    fn ssl_opts(&self, name: Option<String>) -> SslOpts {
        let settings = self.tls.settings();
        let mut opts = SslOpts::default().with_disable_built_in_roots(true);
        if settings.mode.verifies() {
            if let Some(ca) = &settings.ca {
                opts = opts.with_root_certs(vec![ca.clone().into()]);
            }
        } else {
            opts = opts
                .with_danger_accept_invalid_certs(true)
                .with_danger_skip_domain_validation(true);
        }
        if let (Some(cert), Some(key)) = (&settings.cert, &settings.key) {
            opts = opts.with_client_identity(Some(ClientIdentity::new(
                cert.clone().into(),
                key.clone().into(),
            )));
        }
        opts.with_danger_tls_hostname_override(name)
    }

    /// Connects with this crate's handshake (chain checked against ssl-ca) and keeps a
    /// name of the server's certificate for the client library.
    async fn learn_name(&self) -> Result<String, mysql_async::Error> {
        let opened = self
            .open(&Response::new(0, ""))
            .await
            .map_err(|e| match e {
                OpenError::Io(e) => e,
                OpenError::Handshake(e) if e.kind() != io::ErrorKind::InvalidData => e,
                e => refused(format!("{self:?}: {e}")),
            })?;
        let Stream::Tls(tls) = &opened.stream else {
            return Err(refused(format!("{self:?}: no TLS")).into());
        };
        let info = tls
            .get_ref()
            .1
            .peer_certificates()
            .and_then(|certs| certs.first())
            .and_then(|cert| CertInfo::parse(cert));
        let name = info.as_ref().and_then(|i| i.alt_names.first().cloned());
        let Some(name) = name else {
            return Err(refused(format!(
                "{self:?}: the server's certificate ({}) has no subjectAltName, which \
                 {}.ssl-mode = \"verify-ca\" needs here (rustls checks no common name); \
                 give it one, or use \"required\"",
                info.map_or("unreadable".to_owned(), |i| i.to_string()),
                self.tls.settings().section,
            ))
            .into());
        };
        *self.tls.learned_name.lock().expect("not poisoned") = Some(name.clone());
        Ok(name)
    }

    /// Opens a connection for this project's own protocol code: TCP, the greeting, and
    /// TLS as the mode says. `response` is the login that will follow: its first bytes
    /// are the `SSLRequest` when TLS starts.
    pub async fn open(&self, response: &Response) -> Result<Opened, OpenError> {
        self.greet().await?.secure(self, response).await
    }

    /// Connects and reads the server's greeting, TLS not started yet (see
    /// [`Greeted::secure`]): the relay answers its client's greeting before it knows
    /// what that client's login announces.
    pub async fn greet(&self) -> Result<Greeted, OpenError> {
        let mut stream = match &self.socket {
            Some(path) => Stream::Unix(UnixStream::connect(path).await?),
            None => {
                let tcp = TcpStream::connect((self.host.as_str(), self.port)).await?;
                tcp.set_nodelay(true)?;
                Stream::Plain(tcp)
            }
        };
        let (greeting, seq) = read_packet(&mut stream).await?;
        if greeting.len() > 1 << 16 {
            return Err(OpenError::Protocol(format!(
                "a greeting of {} bytes: is this a MySQL server?",
                greeting.len()
            )));
        }
        Ok(Greeted {
            greeting,
            stream,
            seq,
        })
    }
}

/// A connection whose greeting was read.
pub struct Greeted {
    pub greeting: Vec<u8>,
    stream: Stream,
    seq: u8,
}

impl Greeted {
    /// Starts TLS as `server`'s mode says (the `SSLRequest` is `response`'s first bytes).
    pub async fn secure(self, server: &Server, response: &Response) -> Result<Opened, OpenError> {
        let Greeted {
            greeting,
            stream,
            seq,
        } = self;
        let plain = |stream| Opened {
            greeting: greeting.clone(),
            stream,
            seq: seq.wrapping_add(1),
        };
        let offers_tls = greeting_capabilities(&greeting).is_some_and(|c| c & CLIENT_SSL != 0);
        let mode = server.tls.mode();
        let config = match server.tls.config() {
            Some(config) if offers_tls => config.clone(),
            _ if mode == SslMode::Disabled || mode == SslMode::Preferred => {
                return Ok(plain(stream))
            }
            // The server refused the connection outright: its reason says more.
            _ if greeting.first() == Some(&0xFF) => return Ok(plain(stream)),
            _ => {
                return Err(OpenError::NoTls {
                    section: server.tls.settings().section,
                    mode: mode.as_str(),
                })
            }
        };
        let Stream::Plain(mut tcp) = stream else {
            return Err(OpenError::Protocol(
                "TLS on a local socket: set ssl-mode = \"disabled\"".into(),
            ));
        };
        // SSLRequest: the login's first 32 bytes, before any name or password.
        write_packet(&mut tcp, seq.wrapping_add(1), &response.ssl_request()).await?;
        let name = ServerName::try_from(server.host.clone()).map_err(|e| {
            OpenError::Handshake(io::Error::other(format!("{:?}: {e}", server.host)))
        })?;
        let tls = TlsConnector::from(config)
            .connect(name, tcp)
            .await
            .map_err(OpenError::Handshake)?;
        Ok(Opened {
            greeting,
            stream: Stream::Tls(Box::new(tls)),
            seq: seq.wrapping_add(2),
        })
    }
}

/// A TLS refusal that no retry mends (a certificate refused, no TLS where the mode needs
/// it), carried inside the client library's I/O error.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct Refused(String);

fn refused(why: String) -> io::Error {
    io::Error::other(Refused(why))
}

/// Whether a client-library error is TLS refusing the server (its certificate, its
/// lack of TLS), which no retry mends, rather than a network failure.
pub fn refused_by_tls(e: &mysql_async::Error) -> bool {
    match e {
        mysql_async::Error::Io(mysql_async::IoError::Tls(_)) => true,
        mysql_async::Error::Io(mysql_async::IoError::Io(e)) => e
            .get_ref()
            .is_some_and(|inner| inner.is::<rustls::Error>() || inner.is::<Refused>()),
        mysql_async::Error::Driver(DriverError::NoClientSslFlagFromServer) => true,
        _ => false,
    }
}

/// The capability flags of a protocol-10 greeting, `None` if it is not one.
pub fn greeting_capabilities(greeting: &[u8]) -> Option<u32> {
    if greeting.first() != Some(&10) {
        return None;
    }
    let nul = greeting[1..].iter().position(|b| *b == 0)? + 1;
    // Version, its NUL, the connection id (4), the nonce's first part (8), a filler (1).
    let at = nul + 1 + 4 + 8 + 1;
    let low = greeting.get(at..at + 2)?;
    // Charset (1), status (2), then the upper half.
    let high = greeting.get(at + 5..at + 7);
    let high = high.map_or(0, |h| u32::from(u16::from_le_bytes([h[0], h[1]])));
    Some(u32::from(u16::from_le_bytes([low[0], low[1]])) | high << 16)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capabilities_of_a_greeting() {
        let mut greeting = vec![10];
        greeting.extend(b"10.11.19-MariaDB\0");
        greeting.extend([1, 0, 0, 0]);
        greeting.extend([b'n'; 8]);
        greeting.push(0);
        greeting.extend(0xFFFEu16.to_le_bytes());
        greeting.push(45);
        greeting.extend([2, 0]);
        greeting.extend(0x81BFu16.to_le_bytes());
        assert_eq!(greeting_capabilities(&greeting), Some(0x81BF_FFFE));
        assert_ne!(0x81BF_FFFE & CLIENT_SSL, 0);
        greeting[32] = 0xF7; // the low half's upper byte, without CLIENT_SSL
        assert_eq!(
            greeting_capabilities(&greeting).map(|c| c & CLIENT_SSL),
            Some(0)
        );
        assert_eq!(greeting_capabilities(&greeting[..20]), None);
        assert_eq!(greeting_capabilities(&[0xFF, 1, 2]), None);
    }
}
