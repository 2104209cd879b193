//! The replication connection, spoken directly: the handshake and login, a few
//! statements, the replica's registration, then the binlog dump, read packet by packet.
//!
//! Why not the client library's binlog stream: it holds every event twice while reading
//! it (the packet, then a copy), and a row image can be a gigabyte (an UPDATE of a 64 MiB
//! row is a 128 MiB event). Here an event is read into one buffer of exactly its size
//! and handed out as it is ([`Dump::next_event`]), its checksum checked.
//!
//! The connection and the login are `link`'s ([`link::Server::open`], TLS as `ssl-mode`
//! says; [`link::login::login`]: `mysql_native_password`, `caching_sha2_password`); a
//! plugin it does not speak is a definite error naming it. Every other statement the
//! reader runs (resolving positions, what the server has) goes through the client
//! library on connections of its own.

use std::io;
use std::time::Duration;

use bytes::{BufMut, Bytes};
use link::login::{
    login, Greeting, LoginError, Response, CLIENT_LONG_PASSWORD, CLIENT_TRANSACTIONS,
};
use link::{OpenError, Server, Stream};
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader};

use crate::checksum::Checksums;
use crate::event::EventHeader;

/// The largest packet accepted: MariaDB's and MySQL's own ceiling.
const MAX_PACKET: usize = 1 << 30;
/// A packet's payload at most; a longer one continues in the next.
const CHUNK: usize = 0xFF_FFFF;

/// What the login announces (and, with TLS, the SSLRequest before it).
const FLAGS: u32 = CLIENT_LONG_PASSWORD | CLIENT_TRANSACTIONS;

const COM_QUERY: u8 = 0x03;
const COM_BINLOG_DUMP: u8 = 0x12;
const COM_REGISTER_SLAVE: u8 = 0x15;
const COM_BINLOG_DUMP_GTID: u8 = 0x1e;

/// Why the connection failed: the login's errors, which the dump's own share (`Refused`
/// for a login this reader cannot make: a plugin it does not speak, TLS that `ssl-mode`
/// needs and the server lacks or refuses).
pub(crate) use link::login::LoginError as DumpError;

fn protocol(what: impl Into<String>) -> DumpError {
    DumpError::Protocol(what.into())
}

/// Packets over one connection: a 3-byte length and a sequence number, then the payload;
/// a payload of [`CHUNK`] bytes continues in the next packet.
struct Packets {
    stream: BufReader<Stream>,
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
    fn new(stream: Stream, seq: u8) -> Packets {
        Packets {
            stream: BufReader::with_capacity(1 << 16, stream),
            seq,
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
                        return Err(protocol(format!("a packet of over {MAX_PACKET} bytes")));
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
                // TLS holds what was written until flushed.
                self.stream.get_mut().flush().await?;
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

/// A logged-in replication connection.
pub(crate) struct Dump {
    packets: Packets,
    /// Which checksum the events carry, learned from their FORMAT_DESCRIPTION.
    checksums: Checksums,
}

impl Dump {
    /// Connects, with TLS as the server's `ssl-mode` says, and logs in (within
    /// `timeout`).
    pub async fn login(server: &Server, timeout: Duration) -> Result<Dump, DumpError> {
        let connect = async {
            let response = Response::new(FLAGS, &server.user);
            let mut opened = server.open(&response).await.map_err(|e| match e {
                OpenError::Io(e) => DumpError::Io(e),
                OpenError::Protocol(e) => DumpError::Protocol(e),
                // A certificate refused, or no TLS where it is needed: no retry mends it.
                // A connection lost during the handshake is retried.
                OpenError::Handshake(e) if e.kind() != io::ErrorKind::InvalidData => {
                    DumpError::Io(e)
                }
                e @ (OpenError::NoTls { .. } | OpenError::Handshake(_)) => {
                    DumpError::Refused(e.to_string())
                }
            })?;
            let greeting = Greeting::parse(&opened.greeting)?;
            let tls = opened.tls();
            let (_, seq) = login(
                &mut opened.stream,
                opened.seq,
                &greeting,
                response,
                &server.password,
                tls,
            )
            .await?;
            Ok(Dump {
                packets: Packets::new(opened.stream, seq),
                checksums: Checksums::default(),
            })
        };
        tokio::time::timeout(timeout, connect).await.map_err(|_| {
            DumpError::Io(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("no login within {timeout:?}"),
            ))
        })?
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
            Some(0xFF) => Err(LoginError::from_packet(&p)),
            other => Err(protocol(format!("`{what}` answered {other:?}, not OK"))),
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
            protocol(format!(
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
            Some(0xFF) => return Err(LoginError::from_packet(&p)),
            Some(0xFE) if p.len() < 9 => return Ok(None),
            other => return Err(protocol(format!("a binlog packet starting with {other:?}"))),
        }
        let event = Bytes::from(p).slice(1..);
        if event.len() < EventHeader::LEN {
            return Err(protocol("a binlog event shorter than its header"));
        }
        let header =
            EventHeader::decode(&event[..EventHeader::LEN]).map_err(|e| protocol(e.to_string()))?;
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
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let mut packets = Packets::new(Stream::Plain(tcp), 0);
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
