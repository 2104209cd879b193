//! The replication connection, spoken directly: the handshake and login, a few
//! statements, the replica's registration, then the binlog dump, read packet by packet.
//!
//! Why not the client library's binlog stream: it holds every event twice while reading
//! it (the packet, then a copy), and a row image can be a gigabyte (an UPDATE of a 64 MiB
//! row is a 128 MiB event). Here an event is read into one buffer of exactly its size
//! and handed out as it is ([`Dump::next_event`]), its checksum checked.
//!
//! Login: `mysql_native_password` (MariaDB's default) and `caching_sha2_password`'s fast
//! path (MySQL 8, once the server has the password cached); any other plugin, or one that
//! needs a secure channel, is a definite error naming it. Every other statement the
//! reader runs (resolving positions, what the server has) goes through the client
//! library on connections of its own.

use std::io;
use std::time::Duration;

use bytes::{BufMut, Bytes};
use sha1::{Digest, Sha1};
use sha2::Sha256;
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use crate::checksum::Checksums;
use crate::event::EventHeader;

/// The largest packet accepted: MariaDB's and MySQL's own ceiling.
const MAX_PACKET: usize = 1 << 30;
/// A packet's payload at most; a longer one continues in the next.
const CHUNK: usize = 0xFF_FFFF;

const CLIENT_LONG_PASSWORD: u32 = 1;
const CLIENT_PROTOCOL_41: u32 = 1 << 9;
const CLIENT_TRANSACTIONS: u32 = 1 << 13;
const CLIENT_SECURE_CONNECTION: u32 = 1 << 15;
const CLIENT_PLUGIN_AUTH: u32 = 1 << 19;

const COM_QUERY: u8 = 0x03;
const COM_BINLOG_DUMP: u8 = 0x12;
const COM_REGISTER_SLAVE: u8 = 0x15;
const COM_BINLOG_DUMP_GTID: u8 = 0x1e;

/// Why the connection failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum DumpError {
    #[error("{0}")]
    Io(#[from] io::Error),
    /// The server's error packet.
    #[error("ERROR {code} ({state}): {message}")]
    Server {
        code: u16,
        state: String,
        message: String,
    },
    /// A login this reader cannot make (an authentication plugin it does not speak).
    #[error("{0}")]
    Login(String),
    /// A packet that is not what the protocol says comes next.
    #[error("{0}")]
    Protocol(String),
}

impl DumpError {
    fn protocol(what: impl Into<String>) -> DumpError {
        DumpError::Protocol(what.into())
    }
}

/// Packets over one connection: a 3-byte length and a sequence number, then the payload;
/// a payload of [`CHUNK`] bytes continues in the next packet.
struct Packets {
    stream: BufReader<TcpStream>,
    seq: u8,
    /// What a cancelled [`Packets::read`] had read: the next call goes on from there.
    partial: Partial,
}

/// A payload being read: the header bytes of the packet under way, or how far its body
/// goes, and the payload so far.
#[derive(Default)]
struct Partial {
    head: [u8; 4],
    head_len: usize,
    /// Where the body of the packet being read ends in `payload`, and whether another
    /// packet follows it; `None` while its header is read.
    body: Option<(usize, bool)>,
    /// The payload's buffer has its final size (see [`Packets::read`]).
    sized: bool,
    payload: Vec<u8>,
}

/// A large event's first bytes: the packet's status byte and the event header, which
/// says how large the event is.
const EVENT_HEAD: usize = 1 + EventHeader::LEN;

impl Packets {
    fn new(stream: TcpStream) -> Packets {
        Packets {
            stream: BufReader::with_capacity(1 << 16, stream),
            seq: 0,
            partial: Partial::default(),
        }
    }

    /// One whole payload. A binlog event's buffer is sized once, from the event's own
    /// header, so even a gigabyte event is never held twice.
    ///
    /// Cancel-safe: every await reads into `partial`, so a call dropped halfway (the
    /// drainer waits for an event and its checkpoint timer at once) loses no byte, and
    /// the next call finishes the payload.
    async fn read(&mut self) -> Result<Vec<u8>, DumpError> {
        let p = &mut self.partial;
        loop {
            let (end, more) = match p.body {
                Some(body) => body,
                None => {
                    while p.head_len < 4 {
                        let n = self.stream.read(&mut p.head[p.head_len..]).await?;
                        if n == 0 {
                            return Err(io::Error::from(io::ErrorKind::UnexpectedEof).into());
                        }
                        p.head_len += n;
                    }
                    p.head_len = 0;
                    let [l0, l1, l2, seq] = p.head;
                    let len = usize::from(l0) | usize::from(l1) << 8 | usize::from(l2) << 16;
                    self.seq = seq.wrapping_add(1);
                    let start = p.payload.len();
                    if start + len > MAX_PACKET {
                        *p = Partial::default();
                        return Err(DumpError::protocol(format!(
                            "a packet of over {MAX_PACKET} bytes"
                        )));
                    }
                    // The first piece of a large event: read its header, which says how
                    // large the event is, before the buffer is made.
                    p.sized = !(start == 0 && len == CHUNK);
                    p.payload
                        .reserve_exact(if p.sized { len } else { EVENT_HEAD });
                    let body = (start + len, len == CHUNK);
                    p.body = Some(body);
                    body
                }
            };
            while p.payload.len() < end {
                let want = if p.sized { end } else { EVENT_HEAD } - p.payload.len();
                let n = self
                    .stream
                    .read_buf(&mut (&mut p.payload).limit(want))
                    .await?;
                if n == 0 {
                    return Err(io::Error::from(io::ErrorKind::UnexpectedEof).into());
                }
                if !p.sized && p.payload.len() == EVENT_HEAD {
                    let size = u32::from_le_bytes(p.payload[10..14].try_into().expect("4 bytes"));
                    let total = if p.payload[0] == 0 {
                        (size as usize + 1).min(MAX_PACKET)
                    } else {
                        end
                    };
                    p.payload.reserve_exact(total.max(end) - p.payload.len());
                    p.sized = true;
                }
            }
            p.body = None;
            if !more {
                return Ok(std::mem::take(&mut p.payload));
            }
        }
    }

    async fn write(&mut self, payload: &[u8]) -> Result<(), DumpError> {
        let mut rest = payload;
        loop {
            let len = rest.len().min(CHUNK);
            let mut packet = Vec::with_capacity(4 + len);
            packet.extend(&(len as u32).to_le_bytes()[..3]);
            packet.push(self.seq);
            packet.extend_from_slice(&rest[..len]);
            self.seq = self.seq.wrapping_add(1);
            self.stream.get_mut().write_all(&packet).await?;
            rest = &rest[len..];
            if len < CHUNK {
                return Ok(());
            }
        }
    }

    /// Sends a command (a new exchange: sequence numbers start again).
    async fn command(&mut self, payload: &[u8]) -> Result<(), DumpError> {
        self.seq = 0;
        self.write(payload).await
    }
}

/// The fields of a server's error packet (after its 0xFF).
fn server_error(p: &[u8]) -> DumpError {
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
    DumpError::Server {
        code,
        state,
        message,
    }
}

/// A NUL-terminated string at `at`; returns it and the index after the NUL.
fn c_string(p: &[u8], at: usize) -> Option<(&[u8], usize)> {
    let rest = p.get(at..)?;
    let end = rest.iter().position(|&b| b == 0)?;
    Some((&rest[..end], at + end + 1))
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
fn auth_response(plugin: &str, password: &str, nonce: &[u8]) -> Result<Vec<u8>, DumpError> {
    match plugin {
        "mysql_native_password" | "" => Ok(native_password(password.as_bytes(), nonce)),
        "caching_sha2_password" => Ok(sha2_password(password.as_bytes(), nonce)),
        other => Err(DumpError::Login(format!(
            "the upstream asks for the authentication plugin {other}, which the replication \
             connection does not speak: give the [pump] user mysql_native_password"
        ))),
    }
}

/// A logged-in replication connection.
pub(crate) struct Dump {
    packets: Packets,
    /// The server's version, from its greeting.
    pub version: String,
    /// Which checksum the events carry, learned from their FORMAT_DESCRIPTION.
    checksums: Checksums,
}

impl Dump {
    /// Connects and logs in (within `timeout`).
    pub async fn login(
        host: &str,
        port: u16,
        user: &str,
        password: &str,
        timeout: Duration,
    ) -> Result<Dump, DumpError> {
        let connect = async {
            let stream = TcpStream::connect((host, port)).await?;
            stream.set_nodelay(true)?;
            let mut dump = Dump {
                packets: Packets::new(stream),
                version: String::new(),
                checksums: Checksums::default(),
            };
            dump.handshake(user, password).await?;
            Ok(dump)
        };
        tokio::time::timeout(timeout, connect).await.map_err(|_| {
            DumpError::Io(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("no login within {timeout:?}"),
            ))
        })?
    }

    async fn handshake(&mut self, user: &str, password: &str) -> Result<(), DumpError> {
        let greeting = self.packets.read().await?;
        if greeting.first() == Some(&0xFF) {
            return Err(server_error(&greeting));
        }
        if greeting.first() != Some(&10) {
            return Err(DumpError::protocol(format!(
                "an unknown handshake protocol {:?}",
                greeting.first()
            )));
        }
        let bad = || DumpError::protocol("a handshake cut short");
        let (version, at) = c_string(&greeting, 1).ok_or_else(bad)?;
        self.version = String::from_utf8_lossy(version).into_owned();
        // Connection id (4), then the first 8 bytes of the nonce, a filler.
        let mut nonce = greeting.get(at + 4..at + 12).ok_or_else(bad)?.to_vec();
        let mut i = at + 13;
        let caps_low = greeting.get(i..i + 2).ok_or_else(bad)?;
        let caps_low = u32::from(u16::from_le_bytes([caps_low[0], caps_low[1]]));
        // Charset (1), status (2), capabilities' upper half (2), nonce length (1),
        // reserved (10).
        let caps_high = greeting.get(i + 5..i + 7).ok_or_else(bad)?;
        let caps = caps_low | u32::from(u16::from_le_bytes([caps_high[0], caps_high[1]])) << 16;
        let nonce_len = usize::from(*greeting.get(i + 7).ok_or_else(bad)?);
        i += 18;
        let mut plugin = String::new();
        if caps & CLIENT_SECURE_CONNECTION != 0 {
            let n = nonce_len.saturating_sub(8).max(13);
            let part = greeting.get(i..i + n).ok_or_else(bad)?;
            // The nonce's second part ends with a NUL that is not part of it.
            nonce.extend(part.strip_suffix(&[0]).unwrap_or(part));
            i += n;
        }
        if caps & CLIENT_PLUGIN_AUTH != 0 {
            if let Some((name, _)) = c_string(&greeting, i) {
                plugin = String::from_utf8_lossy(name).into_owned();
            }
        }
        let flags = CLIENT_LONG_PASSWORD
            | CLIENT_PROTOCOL_41
            | CLIENT_TRANSACTIONS
            | CLIENT_SECURE_CONNECTION
            | CLIENT_PLUGIN_AUTH;
        let auth = auth_response(&plugin, password, &nonce)?;
        let mut response = Vec::with_capacity(64 + user.len() + auth.len());
        response.extend(flags.to_le_bytes());
        response.extend((MAX_PACKET as u32).to_le_bytes());
        response.push(45); // utf8mb4_general_ci
        response.extend([0u8; 23]);
        response.extend(user.as_bytes());
        response.push(0);
        response.push(auth.len() as u8);
        response.extend(&auth);
        let plugin = if plugin.is_empty() {
            "mysql_native_password".to_owned()
        } else {
            plugin
        };
        response.extend(plugin.as_bytes());
        response.push(0);
        self.packets.write(&response).await?;
        self.authenticated(password, &plugin).await
    }

    /// Reads the login's outcome, answering a switch of plugin or a further exchange.
    async fn authenticated(&mut self, password: &str, plugin: &str) -> Result<(), DumpError> {
        let mut plugin = plugin.to_owned();
        loop {
            let p = self.packets.read().await?;
            match p.first() {
                Some(0x00) => return Ok(()),
                Some(0xFF) => return Err(server_error(&p)),
                // Authentication switch: another plugin, with a new nonce.
                Some(0xFE) => {
                    let (name, at) = c_string(&p, 1).unwrap_or((&[], p.len()));
                    plugin = String::from_utf8_lossy(name).into_owned();
                    let data = p.get(at..).unwrap_or_default();
                    let nonce = data.strip_suffix(&[0]).unwrap_or(data);
                    let auth = auth_response(&plugin, password, nonce)?;
                    self.packets.write(&auth).await?;
                }
                // More data: caching_sha2_password's fast path succeeded (3), or it wants
                // the password in full (4), which takes a secure channel.
                Some(0x01) if plugin == "caching_sha2_password" => match p.get(1) {
                    Some(3) => {}
                    _ => {
                        return Err(DumpError::Login(
                            "caching_sha2_password wants the full password exchange, which \
                             the replication connection does not make in plain TCP: log in \
                             once with a client so the server caches it, or give the [pump] \
                             user mysql_native_password"
                                .into(),
                        ))
                    }
                },
                other => {
                    return Err(DumpError::protocol(format!(
                        "an unexpected answer {other:?} to the login"
                    )))
                }
            }
        }
    }

    /// Runs a statement that returns no rows (SET).
    pub async fn execute(&mut self, sql: &str) -> Result<(), DumpError> {
        let mut payload = Vec::with_capacity(1 + sql.len());
        payload.push(COM_QUERY);
        payload.extend(sql.as_bytes());
        self.packets.command(&payload).await?;
        self.ok(sql).await
    }

    async fn ok(&mut self, what: &str) -> Result<(), DumpError> {
        let p = self.packets.read().await?;
        match p.first() {
            Some(0x00) => Ok(()),
            Some(0xFF) => Err(server_error(&p)),
            other => Err(DumpError::protocol(format!(
                "`{what}` answered {other:?}, not OK"
            ))),
        }
    }

    /// Registers as a replica (`SHOW REPLICA HOSTS` lists it).
    pub async fn register(&mut self, server_id: u32) -> Result<(), DumpError> {
        let mut payload = vec![COM_REGISTER_SLAVE];
        payload.extend(server_id.to_le_bytes());
        payload.extend([0, 0, 0]); // host, user, password: empty
        payload.extend(0u16.to_le_bytes()); // port
        payload.extend(0u32.to_le_bytes()); // replication rank
        payload.extend(0u32.to_le_bytes()); // master id
        self.packets.command(&payload).await?;
        self.ok("COM_REGISTER_SLAVE").await
    }

    /// Asks for the binlog from `file` at `pos` (MariaDB by GTID: an empty file, and the
    /// state set before). `annotate`: MariaDB's ANNOTATE_ROWS events too.
    pub async fn dump(
        &mut self,
        server_id: u32,
        file: &str,
        pos: u64,
        annotate: bool,
    ) -> Result<(), DumpError> {
        let pos = u32::try_from(pos).map_err(|_| {
            DumpError::protocol(format!(
                "position {pos} is past what COM_BINLOG_DUMP can ask"
            ))
        })?;
        let mut payload = vec![COM_BINLOG_DUMP];
        payload.extend(pos.to_le_bytes());
        payload.extend(u16::from(annotate).wrapping_mul(2).to_le_bytes());
        payload.extend(server_id.to_le_bytes());
        payload.extend(file.as_bytes());
        self.packets.command(&payload).await
    }

    /// MySQL: asks for the binlog after the GTID set `sids` (encoded as the command wants
    /// it: each server uuid with its intervals, ends exclusive).
    pub async fn dump_gtid(&mut self, server_id: u32, sids: &[u8]) -> Result<(), DumpError> {
        let mut payload = vec![COM_BINLOG_DUMP_GTID];
        payload.extend(4u16.to_le_bytes()); // BINLOG_THROUGH_GTID
        payload.extend(server_id.to_le_bytes());
        payload.extend(0u32.to_le_bytes()); // no file name
        payload.extend(4u64.to_le_bytes());
        payload.extend((sids.len() as u32).to_le_bytes());
        payload.extend(sids);
        self.packets.command(&payload).await
    }

    /// The next binlog event (its checksum checked and removed); `None` when the server
    /// ended the stream.
    pub async fn next_event(&mut self) -> Result<Option<(EventHeader, Bytes)>, DumpError> {
        let p = self.packets.read().await?;
        match p.first() {
            Some(0x00) => {}
            Some(0xFF) => return Err(server_error(&p)),
            Some(0xFE) if p.len() < 9 => return Ok(None),
            other => {
                return Err(DumpError::protocol(format!(
                    "a binlog packet starting with {other:?}"
                )))
            }
        }
        let event = Bytes::from(p).slice(1..);
        if event.len() < EventHeader::LEN {
            return Err(DumpError::protocol(
                "a binlog event shorter than its header",
            ));
        }
        let header = EventHeader::decode(&event[..EventHeader::LEN])
            .map_err(|e| DumpError::protocol(e.to_string()))?;
        let body = self
            .checksums
            .strip(
                &event[..EventHeader::LEN],
                &header,
                event.slice(EventHeader::LEN..),
            )
            .map_err(DumpError::Protocol)?;
        Ok(Some((header, body)))
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
            Err(DumpError::Login(m)) if m.contains("client_ed25519")
        ));
    }

    #[test]
    fn server_errors_keep_code_state_and_message() {
        let mut p = vec![0xFF];
        p.extend(1236u16.to_le_bytes());
        p.extend(b"#HY000Could not find first log file name");
        let DumpError::Server {
            code,
            state,
            message,
        } = server_error(&p)
        else {
            unreachable!()
        };
        assert_eq!((code, state.as_str()), (1236, "HY000"));
        assert!(message.starts_with("Could not find"));
    }

    /// A read cancelled at any point (here: every millisecond, while the server sends in
    /// small pieces) loses nothing: the next call finishes the payload, and the payloads
    /// after it start where they should.
    #[tokio::test]
    async fn a_cancelled_read_goes_on_where_it_stopped() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        // A 20 MiB event (two packets) and a small one.
        let mut large = vec![0u8; 20 << 20];
        let size = (large.len() - 1) as u32;
        large[10..14].copy_from_slice(&size.to_le_bytes());
        for (i, b) in large.iter_mut().enumerate().skip(EVENT_HEAD) {
            *b = (i % 251) as u8;
        }
        let small = b"\0small event".to_vec();
        let mut wire = Vec::new();
        for payload in [&large, &small] {
            let mut seq = 0u8;
            let mut rest = &payload[..];
            loop {
                let len = rest.len().min(CHUNK);
                wire.extend(&(len as u32).to_le_bytes()[..3]);
                wire.push(seq);
                seq = seq.wrapping_add(1);
                wire.extend_from_slice(&rest[..len]);
                rest = &rest[len..];
                if len < CHUNK {
                    break;
                }
            }
        }
        let server = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            // Pieces that split headers and bodies at odd places.
            for piece in wire.chunks(3 + (1 << 19)) {
                s.write_all(piece).await.unwrap();
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            s
        });
        let mut packets = Packets::new(TcpStream::connect(addr).await.unwrap());
        let mut got = Vec::new();
        let mut cancelled = 0;
        while got.len() < 2 {
            match tokio::time::timeout(Duration::from_millis(1), packets.read()).await {
                Ok(payload) => got.push(payload.unwrap()),
                Err(_) => cancelled += 1,
            }
        }
        assert!(cancelled > 10, "only {cancelled} reads were cancelled");
        assert!(got[0] == large, "the large payload came back different");
        assert_eq!(
            got[0].capacity(),
            large.len(),
            "sized once, from its header"
        );
        assert_eq!(got[1], small);
        drop(server.await.unwrap());
    }
}
