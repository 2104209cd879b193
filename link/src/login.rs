//! The MySQL login, spoken by this project's own code (the replication connection, the
//! relay's upstream sessions): the server's greeting, the client's handshake response, the
//! password scrambles, and the exchange up to the server's OK.
//!
//! Plugins: `mysql_native_password` (MariaDB's default) and `caching_sha2_password` (MySQL
//! 8: its fast path, and over TLS the full exchange); any other is a refusal naming it.

use std::io;

use sha1::{Digest, Sha1};
use sha2::Sha256;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

pub const CLIENT_LONG_PASSWORD: u32 = 1;
pub const CLIENT_CONNECT_WITH_DB: u32 = 1 << 3;
pub const CLIENT_COMPRESS: u32 = 1 << 5;
pub const CLIENT_PROTOCOL_41: u32 = 1 << 9;
pub const CLIENT_SSL: u32 = 1 << 11;
pub const CLIENT_TRANSACTIONS: u32 = 1 << 13;
pub const CLIENT_SECURE_CONNECTION: u32 = 1 << 15;
pub const CLIENT_PLUGIN_AUTH: u32 = 1 << 19;
pub const CLIENT_CONNECT_ATTRS: u32 = 1 << 20;
pub const CLIENT_PLUGIN_AUTH_LENENC: u32 = 1 << 21;

/// Why a login failed.
#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    #[error("{0}")]
    Io(#[from] io::Error),
    /// The server's error packet.
    #[error("ERROR {code} ({state}): {message}")]
    Server {
        code: u16,
        state: String,
        message: String,
    },
    /// A login this code cannot make (an authentication plugin it does not speak, a
    /// password exchange that needs a secure channel).
    #[error("{0}")]
    Refused(String),
    /// A packet that is not what the protocol says comes next.
    #[error("{0}")]
    Protocol(String),
}

impl LoginError {
    /// The fields of a server's error packet (the payload, from its 0xFF).
    pub fn from_packet(p: &[u8]) -> LoginError {
        let code = p.get(1..3).map_or(0, |b| u16::from_le_bytes([b[0], b[1]]));
        let (state, message) = match p.get(3) {
            Some(b'#') if p.len() >= 9 => (
                String::from_utf8_lossy(&p[4..9]).into_owned(),
                String::from_utf8_lossy(&p[9..]).into_owned(),
            ),
            _ => (
                "HY000".into(),
                String::from_utf8_lossy(p.get(3..).unwrap_or_default()).into_owned(),
            ),
        };
        LoginError::Server {
            code,
            state,
            message,
        }
    }
}

/// A server's greeting (protocol 10), the fields a login needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Greeting {
    pub version: String,
    pub capabilities: u32,
    /// The nonce the password is scrambled with (20 bytes on current servers).
    pub nonce: Vec<u8>,
    /// The server's default authentication plugin (empty on servers without plugins).
    pub plugin: String,
}

impl Greeting {
    pub fn parse(p: &[u8]) -> Result<Greeting, LoginError> {
        if p.first() == Some(&0xFF) {
            return Err(LoginError::from_packet(p));
        }
        if p.first() != Some(&10) {
            return Err(LoginError::Protocol(format!(
                "an unknown handshake protocol {:?}",
                p.first()
            )));
        }
        let bad = || LoginError::Protocol("a handshake cut short".into());
        let (version, at) = c_string(p, 1).ok_or_else(bad)?;
        // Connection id (4), then the first 8 bytes of the nonce, a filler.
        let mut nonce = p.get(at + 4..at + 12).ok_or_else(bad)?.to_vec();
        let mut i = at + 13;
        let low = p.get(i..i + 2).ok_or_else(bad)?;
        let low = u32::from(u16::from_le_bytes([low[0], low[1]]));
        // Charset (1), status (2), capabilities' upper half (2), nonce length (1),
        // reserved (10).
        let high = p.get(i + 5..i + 7).ok_or_else(bad)?;
        let capabilities = low | u32::from(u16::from_le_bytes([high[0], high[1]])) << 16;
        let nonce_len = usize::from(*p.get(i + 7).ok_or_else(bad)?);
        i += 18;
        if capabilities & CLIENT_SECURE_CONNECTION != 0 {
            let n = nonce_len.saturating_sub(8).max(13);
            let part = p.get(i..i + n).ok_or_else(bad)?;
            // The nonce's second part ends with a NUL that is not part of it.
            nonce.extend(part.strip_suffix(&[0]).unwrap_or(part));
            i += n;
        }
        let plugin = match capabilities & CLIENT_PLUGIN_AUTH {
            0 => String::new(),
            _ => c_string(p, i).map_or_else(String::new, |(name, _)| {
                String::from_utf8_lossy(name).into_owned()
            }),
        };
        Ok(Greeting {
            version: String::from_utf8_lossy(version).into_owned(),
            capabilities,
            nonce,
            plugin,
        })
    }
}

/// A client's handshake response (protocol 4.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub flags: u32,
    pub max_packet: u32,
    pub charset: u8,
    /// The 23 reserved bytes; MariaDB's extended capabilities are the last 4.
    pub reserved: [u8; 23],
    pub user: Vec<u8>,
    pub auth: Vec<u8>,
    pub database: Option<Vec<u8>>,
    pub plugin: Option<Vec<u8>>,
    /// The connection attributes as sent (length-encoded), if any.
    pub attributes: Option<Vec<u8>>,
}

impl Response {
    /// A response announcing `flags`, for `user`; its scramble is filled in by [`login`].
    pub fn new(flags: u32, user: &str) -> Response {
        Response {
            flags: flags | CLIENT_PROTOCOL_41 | CLIENT_SECURE_CONNECTION | CLIENT_PLUGIN_AUTH,
            max_packet: 1 << 30,
            charset: 45, // utf8mb4_general_ci
            reserved: [0; 23],
            user: user.as_bytes().to_vec(),
            auth: Vec::new(),
            database: None,
            plugin: None,
            attributes: None,
        }
    }

    /// Reads a client's response; `None` if it is not a protocol-4.1 one.
    pub fn parse(p: &[u8]) -> Option<Response> {
        let flags = u32::from_le_bytes(p.get(0..4)?.try_into().ok()?);
        if flags & CLIENT_PROTOCOL_41 == 0 {
            return None;
        }
        let max_packet = u32::from_le_bytes(p.get(4..8)?.try_into().ok()?);
        let charset = *p.get(8)?;
        let reserved: [u8; 23] = p.get(9..32)?.try_into().ok()?;
        let (user, mut at) = c_string(p, 32)?;
        let auth = if flags & CLIENT_PLUGIN_AUTH_LENENC != 0 {
            let (len, after) = lenenc(p, at)?;
            at = after.checked_add(len)?;
            p.get(after..at)?
        } else if flags & CLIENT_SECURE_CONNECTION != 0 {
            let len = usize::from(*p.get(at)?);
            at += 1 + len;
            p.get(at - len..at)?
        } else {
            let (auth, after) = c_string(p, at)?;
            at = after;
            auth
        };
        let mut database = None;
        if flags & CLIENT_CONNECT_WITH_DB != 0 {
            let (db, after) = c_string(p, at)?;
            database = Some(db.to_vec());
            at = after;
        }
        let mut plugin = None;
        if flags & CLIENT_PLUGIN_AUTH != 0 {
            if let Some((name, after)) = c_string(p, at) {
                plugin = Some(name.to_vec());
                at = after;
            }
        }
        let attributes = match flags & CLIENT_CONNECT_ATTRS {
            0 => None,
            _ => p.get(at..).filter(|a| !a.is_empty()).map(<[u8]>::to_vec),
        };
        Some(Response {
            flags,
            max_packet,
            charset,
            reserved,
            user: user.to_vec(),
            auth: auth.to_vec(),
            database,
            plugin,
            attributes,
        })
    }

    /// The response as sent: its flags say which fields follow.
    pub fn encode(&self) -> Vec<u8> {
        let mut flags = self.flags & !CLIENT_PLUGIN_AUTH_LENENC;
        if self.database.is_none() {
            flags &= !CLIENT_CONNECT_WITH_DB;
        }
        if self.attributes.is_none() {
            flags &= !CLIENT_CONNECT_ATTRS;
        }
        flags |= CLIENT_SECURE_CONNECTION;
        let mut out = Vec::with_capacity(64 + self.user.len() + self.auth.len());
        out.extend(flags.to_le_bytes());
        out.extend(self.max_packet.to_le_bytes());
        out.push(self.charset);
        out.extend(self.reserved);
        out.extend(&self.user);
        out.push(0);
        out.push(self.auth.len() as u8);
        out.extend(&self.auth);
        if let Some(db) = &self.database {
            out.extend(db);
            out.push(0);
        }
        if flags & CLIENT_PLUGIN_AUTH != 0 {
            out.extend(self.plugin.as_deref().unwrap_or(b"mysql_native_password"));
            out.push(0);
        }
        if let Some(attributes) = &self.attributes {
            out.extend(attributes);
        }
        out
    }

    /// The first 32 bytes, as an `SSLRequest` (TLS starts after it).
    pub fn ssl_request(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(32);
        out.extend((self.flags | CLIENT_SSL).to_le_bytes());
        out.extend(self.max_packet.to_le_bytes());
        out.push(self.charset);
        out.extend(self.reserved);
        out
    }
}

/// Logs in on `stream`, whose greeting was `greeting` and whose next packet has sequence
/// number `seq`: `response` goes out with `password` scrambled for the greeting's plugin,
/// then any plugin switch or further exchange is answered. Returns the server's OK
/// packet and the sequence number after it.
pub async fn login<S>(
    stream: &mut S,
    seq: u8,
    greeting: &Greeting,
    mut response: Response,
    password: &str,
    tls: bool,
) -> Result<(Vec<u8>, u8), LoginError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut plugin = if greeting.plugin.is_empty() {
        "mysql_native_password".to_owned()
    } else {
        greeting.plugin.clone()
    };
    response.auth = auth_response(&plugin, password, &greeting.nonce)?;
    response.plugin = Some(plugin.as_bytes().to_vec());
    if tls {
        response.flags |= CLIENT_SSL;
    }
    write_packet(stream, seq, &response.encode()).await?;
    loop {
        // Each answer goes out with the number after the server's packet.
        let (p, at) = read_packet(stream).await?;
        let seq = at.wrapping_add(1);
        match p.first() {
            Some(0x00) => return Ok((p, seq)),
            Some(0xFF) => return Err(LoginError::from_packet(&p)),
            // Authentication switch: another plugin, with a new nonce.
            Some(0xFE) => {
                let (name, at) = c_string(&p, 1).unwrap_or((&[], p.len()));
                plugin = String::from_utf8_lossy(name).into_owned();
                let data = p.get(at..).unwrap_or_default();
                let nonce = data.strip_suffix(&[0]).unwrap_or(data);
                let auth = auth_response(&plugin, password, nonce)?;
                write_packet(stream, seq, &auth).await?;
            }
            // More data: caching_sha2_password's fast path succeeded (3), or it wants the
            // password in full (4), which takes a secure channel: TLS is one.
            Some(0x01) if plugin == "caching_sha2_password" => match p.get(1) {
                Some(3) => {}
                Some(4) if tls => {
                    let mut full = password.as_bytes().to_vec();
                    full.push(0);
                    write_packet(stream, seq, &full).await?;
                }
                _ => {
                    return Err(LoginError::Refused(
                        "caching_sha2_password wants the full password exchange, which is \
                         not made in plain TCP: use TLS (ssl-mode), log in once with a \
                         client so the server caches it, or give the user \
                         mysql_native_password"
                            .into(),
                    ))
                }
            },
            other => {
                return Err(LoginError::Protocol(format!(
                    "an unexpected answer {other:?} to the login"
                )))
            }
        }
    }
}

/// One packet of at most 16 MiB (the login's are small): its payload and sequence
/// number.
pub async fn read_packet<S: AsyncRead + Unpin>(stream: &mut S) -> io::Result<(Vec<u8>, u8)> {
    let mut head = [0u8; 4];
    stream.read_exact(&mut head).await?;
    let len = usize::from(head[0]) | usize::from(head[1]) << 8 | usize::from(head[2]) << 16;
    let mut payload = vec![0u8; len];
    stream.read_exact(&mut payload).await?;
    Ok((payload, head[3]))
}

/// Writes one packet (of under 16 MiB) and flushes it.
pub async fn write_packet<S: AsyncWrite + Unpin>(
    stream: &mut S,
    seq: u8,
    payload: &[u8],
) -> io::Result<()> {
    let mut packet = Vec::with_capacity(4 + payload.len());
    packet.extend(&(payload.len() as u32).to_le_bytes()[..3]);
    packet.push(seq);
    packet.extend(payload);
    stream.write_all(&packet).await?;
    stream.flush().await
}

/// A NUL-terminated string at `at`; returns it and the index after the NUL.
fn c_string(p: &[u8], at: usize) -> Option<(&[u8], usize)> {
    let rest = p.get(at..)?;
    let end = rest.iter().position(|&b| b == 0)?;
    Some((&rest[..end], at + end + 1))
}

/// A length-encoded integer at `at`; returns it and the index after it.
fn lenenc(p: &[u8], at: usize) -> Option<(usize, usize)> {
    let first = *p.get(at)?;
    let (len, width) = match first {
        0..=0xFA => return Some((usize::from(first), at + 1)),
        0xFC => (2, 2),
        0xFD => (3, 3),
        0xFE => (8, 8),
        _ => return None,
    };
    let bytes = p.get(at + 1..at + 1 + len)?;
    let mut value = 0u64;
    for (i, b) in bytes.iter().enumerate() {
        value |= u64::from(*b) << (8 * i);
    }
    Some((usize::try_from(value).ok()?, at + 1 + width))
}

/// `mysql_native_password`: SHA1(password) XOR SHA1(nonce + SHA1(SHA1(password))).
fn native_password(password: &[u8], nonce: &[u8]) -> Vec<u8> {
    if password.is_empty() {
        return Vec::new();
    }
    let stage1 = Sha1::digest(password);
    let stage2 = Sha1::digest(stage1);
    let mut h = Sha1::new();
    h.update(nonce);
    h.update(stage2);
    let mix = h.finalize();
    stage1.iter().zip(mix).map(|(a, b)| a ^ b).collect()
}

/// `caching_sha2_password`'s scramble: SHA256(password) XOR SHA256(SHA256(SHA256(password))
/// + nonce).
fn sha2_password(password: &[u8], nonce: &[u8]) -> Vec<u8> {
    if password.is_empty() {
        return Vec::new();
    }
    let stage1 = Sha256::digest(password);
    let stage2 = Sha256::digest(stage1);
    let mut h = Sha256::new();
    h.update(stage2);
    h.update(nonce);
    let mix = h.finalize();
    stage1.iter().zip(mix).map(|(a, b)| a ^ b).collect()
}

/// The answer to an authentication request of `plugin` with `nonce`.
fn auth_response(plugin: &str, password: &str, nonce: &[u8]) -> Result<Vec<u8>, LoginError> {
    match plugin {
        "mysql_native_password" | "" => Ok(native_password(password.as_bytes(), nonce)),
        "caching_sha2_password" => Ok(sha2_password(password.as_bytes(), nonce)),
        other => Err(LoginError::Refused(format!(
            "the server asks for the authentication plugin {other}, which this connection \
             does not speak: give the user mysql_native_password (MariaDB) or \
             caching_sha2_password (MySQL)"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_scrambles_as_the_servers_compute_them() {
        // Known answers: the server stores SHA1(SHA1(password)) and checks
        // SHA1(nonce + stored) XOR response == SHA1(password).
        let nonce = b"01234567890123456789";
        let response = native_password(b"secret", nonce);
        let stage1 = Sha1::digest(b"secret");
        let stored = Sha1::digest(stage1);
        let mut h = Sha1::new();
        h.update(nonce);
        h.update(stored);
        let back: Vec<u8> = response
            .iter()
            .zip(h.finalize())
            .map(|(a, b)| a ^ b)
            .collect();
        assert_eq!(back, stage1.to_vec());
        assert!(native_password(b"", nonce).is_empty());
        assert_eq!(sha2_password(b"secret", nonce).len(), 32);
        assert!(matches!(
            auth_response("client_ed25519", "x", nonce),
            Err(LoginError::Refused(m)) if m.contains("client_ed25519")
        ));
    }

    #[test]
    fn server_errors_keep_code_state_and_message() {
        let mut p = vec![0xFF, 0x15, 0x04, b'#'];
        p.extend(b"28000Access denied");
        match LoginError::from_packet(&p) {
            LoginError::Server {
                code,
                state,
                message,
            } => {
                assert_eq!(
                    (code, state.as_str(), message.as_str()),
                    (1045, "28000", "Access denied")
                );
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_response_reads_back_as_written() {
        let mut r = Response::new(CLIENT_LONG_PASSWORD | CLIENT_TRANSACTIONS, "drainer");
        r.auth = vec![7; 20];
        r.database = Some(b"app".to_vec());
        r.flags |= CLIENT_CONNECT_WITH_DB | CLIENT_CONNECT_ATTRS;
        r.plugin = Some(b"mysql_native_password".to_vec());
        r.attributes = Some(vec![5, 1, b'a', 2, b'b', b'c']);
        r.reserved[22] = 9;
        let back = Response::parse(&r.encode()).unwrap();
        assert_eq!(back, r);
        // A client's length-encoded scramble reads the same.
        let mut lenenc = r.encode();
        lenenc[2] |= (CLIENT_PLUGIN_AUTH_LENENC >> 16) as u8;
        assert_eq!(Response::parse(&lenenc).unwrap().auth, vec![7; 20]);
        assert_eq!(Response::parse(&[0, 0, 0, 0]), None);
        // A length-encoded scramble claiming 2^64 - 1 bytes: refused, not an overflow.
        let mut huge = r.encode()[..32].to_vec();
        huge[2] |= (CLIENT_PLUGIN_AUTH_LENENC >> 16) as u8;
        huge.extend(b"u\0");
        huge.push(0xFE);
        huge.extend([0xFF; 8]);
        assert_eq!(Response::parse(&huge), None);
    }

    #[test]
    fn a_greeting_gives_nonce_and_plugin() {
        let mut g = vec![10];
        g.extend(b"10.11.19-MariaDB\0");
        g.extend([7, 0, 0, 0]);
        g.extend(b"abcdefgh");
        g.push(0);
        let caps = CLIENT_PROTOCOL_41 | CLIENT_SECURE_CONNECTION | CLIENT_PLUGIN_AUTH | CLIENT_SSL;
        g.extend((caps as u16).to_le_bytes());
        g.push(45);
        g.extend([2, 0]);
        g.extend(((caps >> 16) as u16).to_le_bytes());
        g.push(21);
        g.extend([0; 10]);
        g.extend(b"ijklmnopqrst\0");
        g.extend(b"mysql_native_password\0");
        let greeting = Greeting::parse(&g).unwrap();
        assert_eq!(greeting.nonce, b"abcdefghijklmnopqrst");
        assert_eq!(greeting.plugin, "mysql_native_password");
        assert_eq!(greeting.capabilities, caps);
        assert!(matches!(
            Greeting::parse(&g[..20]),
            Err(LoginError::Protocol(_))
        ));
    }
}
