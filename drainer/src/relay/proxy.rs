//! One drainer session at the relay: a MySQL connection between the drainer (its bytes
//! arrive over the link) and the upstream, logged in with the relay's own account.
//!
//! - **Login.** The client gets the upstream's own greeting (TLS and compression taken
//!   out of its capabilities: the link has both), and its login is replaced by the
//!   relay's account, keeping what it asked for (capabilities, character set, schema,
//!   attributes); the upstream's answer goes back to it. A drainer needs no upstream
//!   password: its certificate is what lets it in.
//! - **Replica ids.** A binlog request (`COM_REGISTER_SLAVE`, `COM_BINLOG_DUMP`,
//!   `COM_BINLOG_DUMP_GTID`) is sent with the session's replica id from the relay's range
//!   instead of the drainer's, so two streams never register with one id.
//! - **Position.** The events going to a binlog stream are watched (their headers only)
//!   for `/status`: file, position, GTID and the upstream time of the last one.
//!
//! Everything else passes unchanged, packet by packet: the drainer's checkpoint and apply
//! record decide where a stream resumes; the relay keeps nothing that matters.

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use link::login::{
    login, read_packet, write_packet, Greeting, LoginError, Response, CLIENT_COMPRESS, CLIENT_SSL,
};
use link::Server;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};

use super::state::RelayState;

const COM_BINLOG_DUMP: u8 = 0x12;
const COM_REGISTER_SLAVE: u8 = 0x15;
const COM_BINLOG_DUMP_GTID: u8 = 0x1e;
/// A packet of this length continues in the next.
const CHUNK: usize = 0xFF_FFFF;
/// How often a stream's position is published to `/status`.
const PUBLISH_EVERY: Duration = Duration::from_millis(200);

/// Carries one session until either side ends it.
pub(super) async fn proxy<C>(
    client: C,
    upstream: &Server,
    state: &RelayState,
    id: u64,
) -> io::Result<()>
where
    C: AsyncRead + AsyncWrite + Unpin + Send,
{
    let mut client = client;
    let Some(up) = log_in(&mut client, upstream).await? else {
        return Ok(());
    };
    let (mut client_r, mut client_w) = tokio::io::split(client);
    let (up_r, up_w) = tokio::io::split(up);
    let dumping = AtomicBool::new(false);
    let up_r = BufReader::with_capacity(1 << 16, up_r);
    let ended = tokio::select! {
        r = commands(&mut client_r, up_w, state, id, &dumping) => r,
        r = answers(up_r, &mut client_w, state, id, &dumping) => r.map(|()| Ended::Closed),
    };
    match ended? {
        Ended::Closed => Ok(()),
        // The relay's own refusal, as the server would answer the command.
        Ended::Refused(why) => {
            write_packet(&mut client_w, 1, &error_packet(1040, "08004", &why)).await
        }
    }
}

/// How the client's side of a session ended.
enum Ended {
    /// Either side closed.
    Closed,
    /// The relay refused a command (why).
    Refused(String),
}

/// The login, relayed: `None` when it failed (the client has the reason).
async fn log_in<C>(client: &mut C, upstream: &Server) -> io::Result<Option<link::Stream>>
where
    C: AsyncRead + AsyncWrite + Unpin,
{
    let greeted = match upstream.greet().await {
        Ok(g) => g,
        Err(e) => {
            let why = format!("relay: cannot reach the upstream {upstream:?}: {e}");
            write_packet(client, 0, &error_packet(2003, "HY000", &why)).await?;
            return Ok(None);
        }
    };
    let mut shown = greeted.greeting.clone();
    if shown.first() == Some(&0xFF) {
        // The upstream refused the connection (too many, host blocked): so is the client.
        write_packet(client, 0, &shown).await?;
        return Ok(None);
    }
    clear_capabilities(&mut shown, CLIENT_SSL | CLIENT_COMPRESS);
    write_packet(client, 0, &shown).await?;
    let (asked, seq) = read_packet(client).await?;
    let answer = seq.wrapping_add(1);
    let Some(asked) = Response::parse(&asked) else {
        let why = "relay: the client's login is not MySQL protocol 4.1";
        write_packet(client, answer, &error_packet(1043, "08S01", why)).await?;
        return Ok(None);
    };
    let mut ours = asked.clone();
    ours.user = upstream.user.as_bytes().to_vec();
    ours.flags &= !(CLIENT_SSL | CLIENT_COMPRESS);
    let failed = |e: &dyn std::fmt::Display| {
        error_packet(
            2013,
            "HY000",
            &format!("relay: logging in to the upstream: {e}"),
        )
    };
    let mut opened = match greeted.secure(upstream, &ours).await {
        Ok(opened) => opened,
        Err(e) => {
            write_packet(client, answer, &failed(&e)).await?;
            return Ok(None);
        }
    };
    let greeting = match Greeting::parse(&opened.greeting) {
        Ok(g) => g,
        Err(e) => {
            write_packet(client, answer, &failed(&e)).await?;
            return Ok(None);
        }
    };
    let tls = opened.tls();
    match login(
        &mut opened.stream,
        opened.seq,
        &greeting,
        ours,
        &upstream.password,
        tls,
    )
    .await
    {
        Ok((ok, _)) => {
            write_packet(client, answer, &ok).await?;
            Ok(Some(opened.stream))
        }
        Err(LoginError::Server {
            code,
            state,
            message,
        }) => {
            let why = format!("relay's account: {message}");
            write_packet(client, answer, &error_packet(code, &state, &why)).await?;
            Ok(None)
        }
        Err(e) => {
            write_packet(client, answer, &failed(&e)).await?;
            Ok(None)
        }
    }
}

/// The client's packets to the upstream, binlog requests with the session's replica id.
async fn commands<R, W>(
    mut client: R,
    mut up: W,
    state: &RelayState,
    id: u64,
    dumping: &AtomicBool,
) -> io::Result<Ended>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    loop {
        let (mut payload, seq) = match read_packet(&mut client).await {
            Ok(p) => p,
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(Ended::Closed),
            Err(e) => return Err(e),
        };
        let at = match payload.first() {
            Some(&COM_REGISTER_SLAVE) if seq == 0 => Some(1),
            Some(&COM_BINLOG_DUMP) if seq == 0 => Some(7),
            Some(&COM_BINLOG_DUMP_GTID) if seq == 0 => Some(3),
            _ => None,
        };
        if let Some(at) = at.filter(|at| payload.len() >= at + 4) {
            let Some(rid) = state.replica_id(id) else {
                return Ok(Ended::Refused(
                    "relay: every replica id of its range is taken by another binlog stream \
                     (raise upstream.max-streams)"
                        .into(),
                ));
            };
            payload[at..at + 4].copy_from_slice(&rid.to_le_bytes());
            if payload[0] != COM_REGISTER_SLAVE {
                dumping.store(true, Ordering::Relaxed);
            }
        }
        write_packet(&mut up, seq, &payload).await?;
    }
}

/// The upstream's packets to the client, a binlog stream's events watched.
async fn answers<R, W>(
    mut up: BufReader<R>,
    mut client: W,
    state: &RelayState,
    id: u64,
    dumping: &AtomicBool,
) -> io::Result<()>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut watch = Watch::default();
    let mut head = [0u8; 4];
    let mut payload = Vec::new();
    // Whether the packet read is the first of its payload (not a continuation).
    let mut first = true;
    loop {
        match up.read_exact(&mut head).await {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(()),
            Err(e) => return Err(e),
        }
        let len = usize::from(head[0]) | usize::from(head[1]) << 8 | usize::from(head[2]) << 16;
        payload.resize(len, 0);
        up.read_exact(&mut payload).await?;
        if first && dumping.load(Ordering::Relaxed) {
            watch.event(&payload);
        }
        first = len < CHUNK;
        client.write_all(&head).await?;
        client.write_all(&payload).await?;
        client.flush().await?;
        // Published when the stream pauses (nothing more read ahead), and at least every
        // PUBLISH_EVERY while it flows.
        if watch.changed && (up.buffer().is_empty() || watch.published.elapsed() >= PUBLISH_EVERY) {
            watch.publish(state, id);
        }
    }
}

/// Where a binlog stream stands, from its events' headers.
struct Watch {
    /// Whether events end with a CRC32 (from the stream's FORMAT_DESCRIPTION; `None`
    /// before it).
    checksums: Option<bool>,
    file: String,
    position: u64,
    gtid: String,
    event_time: u32,
    changed: bool,
    published: Instant,
}

impl Default for Watch {
    fn default() -> Self {
        Watch {
            checksums: None,
            file: String::new(),
            position: 0,
            gtid: String::new(),
            event_time: 0,
            changed: false,
            published: Instant::now(),
        }
    }
}

impl Watch {
    /// A packet of a binlog stream: an OK byte, then the event.
    fn event(&mut self, p: &[u8]) {
        if p.first() != Some(&0) || p.len() < 20 {
            return;
        }
        let u32_at = |at: usize| u32::from_le_bytes(p[at..at + 4].try_into().expect("4 bytes"));
        let (timestamp, kind, server_id, log_pos) = (u32_at(1), p[5], u32_at(6), u32_at(14));
        let body = &p[20..];
        match kind {
            // ROTATE: the position in the new file, then its name (and the CRC32, when
            // events carry one: before the FORMAT_DESCRIPTION says, the name is cut at
            // its last digit, as binlog names end in one).
            4 if body.len() > 8 => {
                let name = &body[8..];
                let name = match self.checksums {
                    Some(true) => &name[..name.len().saturating_sub(4)],
                    Some(false) => name,
                    None => {
                        let end = name
                            .iter()
                            .rposition(u8::is_ascii_digit)
                            .map_or(0, |i| i + 1);
                        &name[..end.min(name.len())]
                    }
                };
                self.file = String::from_utf8_lossy(name).into_owned();
                self.position = u64::from_le_bytes(body[..8].try_into().expect("8 bytes"));
            }
            // FORMAT_DESCRIPTION: its checksum algorithm is the byte before its own CRC.
            15 if body.len() >= 5 => {
                self.checksums = Some(body[body.len() - 5] == 1);
            }
            // MariaDB's GTID: sequence number, domain.
            162 if body.len() >= 12 => {
                let seq = u64::from_le_bytes(body[..8].try_into().expect("8 bytes"));
                let domain = u32::from_le_bytes(body[8..12].try_into().expect("4 bytes"));
                self.gtid = format!("{domain}-{server_id}-{seq}");
            }
            _ => {}
        }
        // Heartbeats (27) carry no time of their own.
        if kind != 27 && kind != 4 && log_pos > 0 {
            self.position = u64::from(log_pos);
        }
        if timestamp > 0 && kind != 27 {
            self.event_time = timestamp;
        }
        self.changed = true;
    }

    fn publish(&mut self, state: &RelayState, id: u64) {
        state.update(id, |c| {
            c.file.clone_from(&self.file);
            c.position = self.position;
            c.gtid.clone_from(&self.gtid);
            c.event_time = self.event_time;
        });
        self.changed = false;
        self.published = Instant::now();
    }
}

/// An error packet: code, SQL state, message.
fn error_packet(code: u16, state: &str, message: &str) -> Vec<u8> {
    let mut p = vec![0xFF];
    p.extend(code.to_le_bytes());
    p.push(b'#');
    p.extend(state.as_bytes().iter().take(5));
    p.extend(message.as_bytes());
    p
}

/// Clears capability bits in a protocol-10 greeting, in place.
fn clear_capabilities(greeting: &mut [u8], bits: u32) {
    let Some(nul) = greeting
        .get(1..)
        .and_then(|g| g.iter().position(|b| *b == 0))
    else {
        return;
    };
    let low = nul + 2 + 4 + 8 + 1;
    if let Some(l) = greeting.get_mut(low..low + 2) {
        let v = u16::from_le_bytes([l[0], l[1]]) & !(bits as u16);
        l.copy_from_slice(&v.to_le_bytes());
    }
    let high = low + 5;
    if let Some(h) = greeting.get_mut(high..high + 2) {
        let v = u16::from_le_bytes([h[0], h[1]]) & !((bits >> 16) as u16);
        h.copy_from_slice(&v.to_le_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capabilities_are_cleared_in_place() {
        let mut g = vec![10];
        g.extend(b"10.11.19-MariaDB\0");
        g.extend([1, 0, 0, 0]);
        g.extend(b"abcdefgh");
        g.push(0);
        g.extend(0xFFFFu16.to_le_bytes());
        g.push(45);
        g.extend([2, 0]);
        g.extend(0x00FFu16.to_le_bytes());
        clear_capabilities(&mut g, CLIENT_SSL | CLIENT_COMPRESS);
        let caps = link::server::greeting_capabilities(&g).unwrap();
        assert_eq!(caps & (CLIENT_SSL | CLIENT_COMPRESS), 0);
        assert_eq!(caps | CLIENT_SSL | CLIENT_COMPRESS, 0x00FF_FFFF);
    }

    #[test]
    fn events_move_the_watched_position() {
        let event = |kind: u8, timestamp: u32, log_pos: u32, body: &[u8]| {
            let mut p = vec![0];
            p.extend(timestamp.to_le_bytes());
            p.push(kind);
            p.extend(7u32.to_le_bytes());
            p.extend(((19 + body.len()) as u32).to_le_bytes());
            p.extend(log_pos.to_le_bytes());
            p.extend([0, 0]);
            p.extend(body);
            p
        };
        let mut w = Watch::default();
        // The first ROTATE, before the FORMAT_DESCRIPTION, with its CRC32 (digits, even).
        let mut rotate = 4u64.to_le_bytes().to_vec();
        rotate.extend(b"binlog.000002\x9a\x1b\x00\x00");
        w.event(&event(4, 0, 0, &rotate));
        assert_eq!((w.file.as_str(), w.position), ("binlog.000002", 4));
        let mut fde = vec![0u8; 80];
        fde[75] = 1;
        w.event(&event(15, 0, 0, &fde));
        assert_eq!(w.checksums, Some(true));
        let mut rotate = 4u64.to_le_bytes().to_vec();
        rotate.extend(b"binlog.000003\x39\x31\x32\x33");
        w.event(&event(4, 0, 0, &rotate));
        assert_eq!(w.file, "binlog.000003");
        let mut gtid = 42u64.to_le_bytes().to_vec();
        gtid.extend(3u32.to_le_bytes());
        gtid.push(0);
        w.event(&event(162, 1_700_000_000, 500, &gtid));
        assert_eq!(w.gtid, "3-7-42");
        assert_eq!((w.position, w.event_time), (500, 1_700_000_000));
        w.event(&event(27, 0, 0, b"binlog.000002"));
        assert_eq!(w.event_time, 1_700_000_000);
        w.event(&[0xFF, 1, 2]);
        assert_eq!(w.position, 500);
    }
}
