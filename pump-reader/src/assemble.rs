//! Events in, transactions out: the one state machine behind the live reader and the file
//! reader.
//!
//! MariaDB opens every event group with a GTID event: a transaction runs to its XID (or a
//! `COMMIT` query, for non-transactional engines); a standalone group (DDL) is the GTID and
//! one QUERY. MySQL opens a transaction with a GTID (or ANONYMOUS_GTID) event and a
//! `BEGIN` query, and a standalone statement with a GTID event and the statement. Both may
//! end a group with `ROLLBACK`.
//!
//! XA: a group that prepares an XA transaction (MariaDB flags its GTID; MySQL starts it
//! with `XA START`) ends with an XA_PREPARE event, handed out as its `Commit` (its
//! [`TxnStart::xa`] says so); `XA COMMIT` or `XA ROLLBACK` of it comes later as a group of
//! its own, handed out as a [`Change::Xa`]. `XA COMMIT … ONE PHASE` commits like any
//! transaction. `SAVEPOINT` and `ROLLBACK TO` inside a transaction are handed out in place
//! ([`Change::Savepoint`]).

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;

use crate::event::{
    self, decode_gtid_list, decode_previous_gtids, kind, rows, EventHeader, FormatDescription,
    KindName, MariaGtidEvent, MysqlGtidEvent, Query, QueryControl, Rotate, RowsKind, TableMap,
};
use crate::position::{BinlogCoords, Gtid, GtidSet, Position};
use crate::txn::{Change, RawRows, Rows, Savepoint, Statement, TxnEvent, TxnStart, XaOutcome, Xid};
use crate::Error;

/// A whole event: its header and its body with the checksum removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawEvent {
    pub header: EventHeader,
    pub body: Bytes,
}

/// The group being read.
#[derive(Debug)]
struct Open {
    start: TxnStart,
    /// A `BEGIN` was seen (MySQL), or the GTID event said "transaction" (MariaDB): the
    /// group runs to XID or COMMIT. Otherwise the first statement ends it.
    in_begin: bool,
    /// Its `Begin` was handed out. A MySQL group's waits for its first event: an
    /// `XA START` there makes it an XA group.
    announced: bool,
}

/// At most this many table maps are kept decoded (see `Assembler::decoded`).
const DECODED_MAPS: usize = 4096;

/// Turns binlog events, in order, into [`TxnEvent`]s.
#[derive(Debug)]
pub struct Assembler {
    file: String,
    /// 6-byte table ids, or 4 for binlogs of servers before 5.1.4.
    table_id_len: usize,
    /// The table maps in force, decoded and as written.
    maps: HashMap<u64, (Arc<TableMap>, Arc<RawEvent>)>,
    /// Table maps decoded earlier, by table id, with the body each was decoded from: the
    /// server writes a table's map into every transaction, and comparing its bytes costs
    /// less than decoding them again.
    decoded: HashMap<u64, (Bytes, Arc<TableMap>)>,
    /// The FORMAT_DESCRIPTION of the events being read, as written.
    format: Option<Arc<RawEvent>>,
    open: Option<Open>,
    /// The position after the last committed transaction (or heartbeat while idle).
    last: Position,
    /// Hand out statement annotations ([`Change::Annotation`]); binlog files hold them
    /// whether the reader wants them or not.
    annotate: bool,
}

impl Assembler {
    /// Starts at `position`: the binlog file the next events belong to, and the GTID state
    /// before them (`None` when unknown; GTID_LIST / PREVIOUS_GTIDS events fill it in).
    pub fn new(position: Position) -> Assembler {
        Assembler {
            file: position.coords.file.clone(),
            table_id_len: 6,
            maps: HashMap::new(),
            decoded: HashMap::new(),
            format: None,
            open: None,
            last: position,
            annotate: false,
        }
    }

    /// Hands out statement annotations too ([`Change::Annotation`]).
    pub fn annotating(mut self, on: bool) -> Assembler {
        self.annotate = on;
        self
    }

    /// The position after the last transaction handed out: where to resume.
    pub fn position(&self) -> &Position {
        &self.last
    }

    pub fn in_transaction(&self) -> bool {
        self.open.is_some()
    }

    /// Where the open transaction starts, if one is open.
    pub fn open_start(&self) -> Option<&BinlogCoords> {
        self.open.as_ref().map(|o| &o.start.start)
    }

    /// Forgets a transaction in progress (the connection was lost): its events will be
    /// read again from its start.
    pub fn abandon(&mut self) -> bool {
        self.maps.clear();
        self.open.take().is_some()
    }

    /// Feeds one event and appends what it completes to `out`.
    pub fn push(&mut self, event: &RawEvent, out: &mut Vec<TxnEvent>) -> Result<(), Error> {
        let h = event.header;
        let body = &event.body;
        match h.kind {
            kind::FORMAT_DESCRIPTION => {
                let fde = FormatDescription::decode(body).map_err(|e| self.decode_error(&h, e))?;
                self.table_id_len = if fde.post_header_len(kind::TABLE_MAP) == Some(6) {
                    4
                } else {
                    6
                };
                self.format = Some(Arc::new(event.clone()));
                self.decoded.clear();
            }
            kind::ROTATE => {
                let rotate = Rotate::decode(body).map_err(|e| self.decode_error(&h, e))?;
                if self.open.is_some() && !h.is_artificial() {
                    return Err(self.stream_error(&h, "ROTATE inside an open transaction".into()));
                }
                self.file = rotate.next_file;
                self.maps.clear();
                // A real ROTATE ends a file: the position moves to the next one. The
                // artificial one that opens every stream only names the file (a GTID start
                // learns its file from it).
                if self.open.is_none() && (!h.is_artificial() || self.last.coords.file.is_empty()) {
                    self.last.coords = BinlogCoords::new(self.file.clone(), rotate.pos);
                }
            }
            kind::MARIA_GTID => {
                let gtid = MariaGtidEvent::decode(body).map_err(|e| self.decode_error(&h, e))?;
                if gtid.is_alter_phase() {
                    return Err(self.stream_error(
                        &h,
                        "two-phase ALTER (binlog_alter_two_phase = ON) is not supported".into(),
                    ));
                }
                let in_begin = !gtid.is_standalone();
                let xa = gtid.prepares().cloned();
                self.begin(
                    &h,
                    Some(Gtid::MariaDb(gtid.gtid(h.server_id))),
                    in_begin,
                    xa,
                    out,
                )?;
                self.announce(out);
            }
            kind::MYSQL_GTID | kind::MYSQL_ANONYMOUS_GTID => {
                let anonymous = h.kind == kind::MYSQL_ANONYMOUS_GTID;
                let e = MysqlGtidEvent::decode(body, anonymous)
                    .map_err(|e| self.decode_error(&h, e))?;
                // Announced at its first event: an `XA START` there makes it an XA group.
                self.begin(&h, e.gtid.map(Gtid::MySql), false, None, out)?;
            }
            kind::QUERY => {
                let query = Query::decode(body).map_err(|e| self.decode_error(&h, e))?;
                self.query(&h, query, out)?;
            }
            kind::XID => {
                event::decode_xid(body).map_err(|e| self.decode_error(&h, e))?;
                self.announce(out);
                self.commit(&h, out)?;
            }
            kind::XA_PREPARE => {
                self.require_open(&h)?;
                // MySQL ends `XA COMMIT … ONE PHASE` with this event too, its first byte
                // set: an ordinary commit.
                if body.first() == Some(&1) {
                    self.one_phase(out);
                    return self.commit(&h, out);
                }
                self.announce(out);
                if self.open.as_ref().is_some_and(|o| o.start.xa.is_none()) {
                    return Err(self.stream_error(
                        &h,
                        "XA_PREPARE ends a group that did not start an XA transaction".into(),
                    ));
                }
                self.commit(&h, out)?;
            }
            kind::TABLE_MAP => {
                self.require_open(&h)?;
                self.announce(out);
                let id = rows::table_id(body, self.table_id_len)
                    .map_err(|e| self.decode_error(&h, e))?;
                let map = match self.decoded.get(&id) {
                    Some((seen, map)) if seen[..] == body[..] => Arc::clone(map),
                    _ => {
                        let map = TableMap::decode(body, self.table_id_len)
                            .map_err(|e| self.decode_error(&h, e))?;
                        if self.decoded.len() >= DECODED_MAPS {
                            self.decoded.clear();
                        }
                        let map = Arc::new(map);
                        self.decoded
                            .insert(id, (Bytes::copy_from_slice(body), Arc::clone(&map)));
                        map
                    }
                };
                self.maps
                    .insert(map.table_id, (map, Arc::new(event.clone())));
            }
            code if RowsKind::of(code).is_some() => {
                self.require_open(&h)?;
                self.announce(out);
                let table_id = rows::table_id(body, self.table_id_len)
                    .map_err(|e| self.decode_error(&h, e))?;
                let Some((table, table_map)) = self.maps.get(&table_id).cloned() else {
                    return Err(self.stream_error(
                        &h,
                        format!("rows of table id {table_id} without its TABLE_MAP"),
                    ));
                };
                let changed = rows::decode(code, body, self.table_id_len, &table)
                    .map_err(|e| self.decode_error(&h, e))?;
                let flags =
                    rows::flags(body, self.table_id_len).map_err(|e| self.decode_error(&h, e))?;
                let (rows_kind, _) = RowsKind::of(code).expect("matched above");
                out.push(TxnEvent::Change(Change::Rows(Rows {
                    table,
                    kind: rows_kind,
                    rows: changed,
                    flags,
                    raw: RawRows {
                        format: self.format.clone(),
                        table_map,
                        rows: event.clone(),
                        table_id_len: self.table_id_len,
                    },
                })));
            }
            kind::MARIA_GTID_LIST => {
                let list = decode_gtid_list(body).map_err(|e| self.decode_error(&h, e))?;
                match &mut self.last.gtids {
                    Some(GtidSet::MariaDb(state)) => state.merge(&list),
                    None => self.last.gtids = Some(GtidSet::MariaDb(list)),
                    Some(GtidSet::MySql(_)) => {
                        return Err(
                            self.stream_error(&h, "a MariaDB GTID_LIST in a MySQL binlog".into())
                        )
                    }
                }
            }
            kind::MYSQL_PREVIOUS_GTIDS => {
                let set = decode_previous_gtids(body).map_err(|e| self.decode_error(&h, e))?;
                match &mut self.last.gtids {
                    Some(GtidSet::MySql(state)) => state.union(&set),
                    None => self.last.gtids = Some(GtidSet::MySql(set)),
                    Some(GtidSet::MariaDb(_)) => {
                        return Err(self
                            .stream_error(&h, "a MySQL PREVIOUS_GTIDS in a MariaDB binlog".into()))
                    }
                }
            }
            kind::HEARTBEAT => {
                if self.open.is_none() && h.log_pos != 0 {
                    if !body.is_empty() {
                        self.file = String::from_utf8_lossy(body).into_owned();
                    }
                    self.last.coords = BinlogCoords::new(self.file.clone(), u64::from(h.log_pos));
                    out.push(TxnEvent::Idle {
                        position: self.last.clone(),
                    });
                }
            }
            kind::INCIDENT => {
                return Err(self.stream_error(
                    &h,
                    "the upstream logged an INCIDENT: its binlog misses changes, so this \
                     replica cannot be consistent; re-seed it"
                        .into(),
                ))
            }
            kind::MARIA_QUERY_COMPRESSED
            | kind::MARIA_ROWS_COMPRESSED_FIRST..=kind::MARIA_ROWS_COMPRESSED_LAST => {
                return Err(self.stream_error(
                    &h,
                    "compressed events (log_bin_compress = ON) are not supported".into(),
                ))
            }
            kind::MARIA_START_ENCRYPTION => {
                return Err(self.stream_error(&h, "encrypted binlogs are not supported".into()))
            }
            kind::TRANSACTION_PAYLOAD => return Err(self.stream_error(
                &h,
                "compressed transactions (binlog_transaction_compression = ON) are not supported"
                    .into(),
            )),
            kind::PARTIAL_UPDATE_ROWS => return Err(self.stream_error(
                &h,
                "partial JSON updates (binlog_row_value_options = PARTIAL_JSON) are not supported"
                    .into(),
            )),
            kind::MYSQL_GTID_TAGGED => {
                return Err(
                    self.stream_error(&h, "tagged GTIDs (MySQL 8.3+) are not supported yet".into())
                )
            }
            // The statement of the rows that follow, inside a transaction.
            kind::MARIA_ANNOTATE_ROWS | kind::ROWS_QUERY
                if self.annotate && self.open.is_some() =>
            {
                self.announce(out);
                let text = if h.kind == kind::ROWS_QUERY {
                    // One length byte (which the server itself ignores), then the text.
                    String::from_utf8_lossy(body.get(1..).unwrap_or_default()).into_owned()
                } else {
                    crate::event::decode_annotate_rows(body)
                };
                out.push(TxnEvent::Change(Change::Annotation(text)));
            }
            // Statement-based helpers, annotations and markers: nothing to do in ROW format.
            kind::MARIA_ANNOTATE_ROWS
            | kind::ROWS_QUERY
            | kind::MARIA_BINLOG_CHECKPOINT
            | kind::INTVAR
            | kind::RAND
            | kind::USER_VAR
            | kind::STOP
            | kind::IGNORABLE
            | kind::TRANSACTION_CONTEXT
            | kind::VIEW_CHANGE
            | kind::HEARTBEAT_V2 => {}
            // LOG_EVENT_IGNORABLE_F: the server says a reader may skip it.
            _ if h.flags & EventHeader::FLAG_IGNORABLE != 0 => {}
            other => return Err(self.stream_error(&h, format!("unknown event type {other}"))),
        }
        Ok(())
    }

    /// Opens a group; its `Begin` goes out with [`Assembler::announce`].
    fn begin(
        &mut self,
        h: &EventHeader,
        gtid: Option<Gtid>,
        in_begin: bool,
        xa: Option<Xid>,
        _out: &mut Vec<TxnEvent>,
    ) -> Result<(), Error> {
        if self.open.is_some() {
            return Err(self.stream_error(
                h,
                "a new transaction starts before the previous one ended".into(),
            ));
        }
        let start = TxnStart {
            gtid,
            server_id: h.server_id,
            start: self.start_of(h),
            xa,
        };
        self.open = Some(Open {
            start,
            in_begin,
            announced: false,
        });
        Ok(())
    }

    /// Hands out the open group's `Begin`, once.
    fn announce(&mut self, out: &mut Vec<TxnEvent>) {
        if let Some(open) = &mut self.open {
            if !open.announced {
                open.announced = true;
                out.push(TxnEvent::Begin(open.start.clone()));
            }
        }
    }

    fn query(
        &mut self,
        h: &EventHeader,
        query: Query,
        out: &mut Vec<TxnEvent>,
    ) -> Result<(), Error> {
        match query.control() {
            Some(QueryControl::Begin) => match &mut self.open {
                Some(open) if !open.in_begin => open.in_begin = true,
                Some(_) => {
                    return Err(self.stream_error(h, "BEGIN inside an open transaction".into()))
                }
                None => {
                    self.begin(h, None, true, None, out)?;
                }
            },
            Some(QueryControl::Commit) => {
                self.announce(out);
                self.commit(h, out)?
            }
            Some(QueryControl::Rollback) => {
                self.require_open(h)?;
                self.announce(out);
                // The group is consumed upstream (its GTID is used), so the position moves on.
                out.push(TxnEvent::Rollback);
                self.finish(h);
                out.push(TxnEvent::Idle {
                    position: self.last.clone(),
                });
            }
            Some(QueryControl::Xa) => self.xa(h, &query.statement, out)?,
            None => {
                let text = query.statement.trim();
                let rollback = starts_with_word(text, "ROLLBACK TO")
                    || starts_with_word(text, "ROLLBACK WORK TO");
                if rollback || starts_with_word(text, "SAVEPOINT") {
                    // Inside a transaction: run where it stands.
                    self.require_open(h)?;
                    self.announce(out);
                    out.push(TxnEvent::Change(Change::Savepoint(Savepoint {
                        text: savepoint_statement(text, rollback),
                        rollback,
                    })));
                    return Ok(());
                }
                let standalone = match &self.open {
                    Some(open) if open.in_begin => false,
                    Some(_) => true,
                    None => {
                        self.begin(h, None, false, None, out)?;
                        true
                    }
                };
                self.announce(out);
                let undecodable = query.text().err();
                out.push(TxnEvent::Change(Change::Statement(Statement {
                    schema: query.schema,
                    text: query.statement,
                    undecodable,
                    bytes: query.bytes,
                    vars: query.vars,
                    timestamp: h.timestamp,
                })));
                if standalone {
                    self.commit(h, out)?;
                }
            }
        }
        Ok(())
    }

    /// `XA START` (MySQL: it opens the group's XA transaction), `XA END` (nothing to do),
    /// `XA COMMIT … ONE PHASE` (an ordinary commit), `XA COMMIT` / `XA ROLLBACK` of a
    /// transaction prepared earlier (a group of its own).
    fn xa(&mut self, h: &EventHeader, text: &str, out: &mut Vec<TxnEvent>) -> Result<(), Error> {
        let words: Vec<&str> = text.split_whitespace().collect();
        let verb = words
            .get(1)
            .map(|w| w.to_ascii_uppercase())
            .unwrap_or_default();
        let at = self.at(h);
        let bad = |reason: &str| Error::Stream {
            at: at.clone(),
            reason: format!("`{text}`: {reason}"),
        };
        let rest = text
            .trim_start()
            .get(3..)
            .unwrap_or_default()
            .trim_start()
            .get(verb.len()..)
            .unwrap_or_default();
        match verb.as_str() {
            "START" | "BEGIN" => {
                let xid = parse_xid(rest).map_err(|r| bad(&r))?;
                match &mut self.open {
                    Some(open) if !open.announced => {
                        open.start.xa = Some(xid);
                        open.in_begin = true;
                    }
                    Some(open) if open.start.xa.is_some() => {}
                    _ => return Err(bad("XA START outside a new event group")),
                }
                self.announce(out);
            }
            "END" => {
                self.require_open(h)?;
                self.announce(out);
            }
            "COMMIT" | "ROLLBACK" => {
                self.require_open(h)?;
                self.announce(out);
                let one_phase = rest.to_ascii_uppercase().contains("ONE PHASE");
                let xid = parse_xid(rest.split_whitespace().next().unwrap_or_default())
                    .map_err(|r| bad(&r))?;
                let open = self.open.as_ref().expect("required above");
                if one_phase || open.start.xa.as_ref() == Some(&xid) {
                    // The group's own XA transaction ends here: an ordinary commit.
                    self.one_phase(out);
                } else {
                    out.push(TxnEvent::Change(Change::Xa(XaOutcome {
                        xid,
                        commit: verb == "COMMIT",
                    })));
                }
                self.commit(h, out)?;
            }
            _ => return Err(bad("an XA statement the reader does not know")),
        }
        Ok(())
    }

    /// The open group's own XA transaction ends in one phase: the group is an ordinary
    /// transaction, told the consumer if its begin went out as an XA one.
    fn one_phase(&mut self, out: &mut Vec<TxnEvent>) {
        self.announce(out);
        if let Some(open) = &mut self.open {
            if open.start.xa.take().is_some() {
                out.push(TxnEvent::Change(Change::XaOnePhase));
            }
        }
    }

    fn commit(&mut self, h: &EventHeader, out: &mut Vec<TxnEvent>) -> Result<(), Error> {
        self.require_open(h)?;
        self.announce(out);
        self.finish(h);
        out.push(TxnEvent::Commit {
            position: self.last.clone(),
            timestamp: h.timestamp,
        });
        Ok(())
    }

    /// Closes the open group at the end of event `h`: the position and the GTID state move
    /// past it.
    fn finish(&mut self, h: &EventHeader) {
        let Some(open) = self.open.take() else {
            return;
        };
        self.maps.clear();
        self.last.coords = BinlogCoords::new(self.file.clone(), u64::from(h.log_pos));
        // A state is only advanced, never made up from one GTID: a state of just
        // {uuid:N} (MySQL, started by coordinates mid-file) would later make the server
        // resend uuid:1..N-1. Without a known state, positions carry coordinates only.
        if let (Some(gtid), Some(state)) = (open.start.gtid, self.last.gtids.as_mut()) {
            // A GTID of the other flavour cannot occur: its events were refused earlier.
            let _ = state.advance(&gtid);
        }
    }

    fn require_open(&self, h: &EventHeader) -> Result<(), Error> {
        match self.open {
            Some(_) => Ok(()),
            None => {
                Err(self.stream_error(h, format!("{} outside a transaction", KindName(h.kind))))
            }
        }
    }

    fn start_of(&self, h: &EventHeader) -> BinlogCoords {
        BinlogCoords::new(
            self.file.clone(),
            u64::from(h.log_pos.saturating_sub(h.size)),
        )
    }

    fn at(&self, h: &EventHeader) -> BinlogCoords {
        self.start_of(h)
    }

    fn decode_error(&self, h: &EventHeader, source: event::DecodeError) -> Error {
        Error::Decode {
            at: self.at(h),
            event: KindName(h.kind).to_string(),
            source,
        }
    }

    fn stream_error(&self, h: &EventHeader, reason: String) -> Error {
        Error::Stream {
            at: self.at(h),
            reason,
        }
    }
}

/// An xid as XA statements write it: `X'6131',X'',1`, or quoted strings
/// (`'a1','',1`); the branch qualifier and format id (1) may be left out.
/// A SAVEPOINT or ROLLBACK TO statement written again with its name in backticks: it
/// runs in the drainer's session, not in the SQL mode it was logged in (`"s1"` is a name
/// only under ANSI_QUOTES). As logged when its name cannot be read.
fn savepoint_statement(text: &str, rollback: bool) -> String {
    let name = text.split_whitespace().last().and_then(|last| {
        // The name is the last word (a quoted name has no space in what servers write).
        let quoted = |q: char| {
            let inner = last.strip_prefix(q)?.strip_suffix(q)?;
            Some(inner.replace(&format!("{q}{q}"), &q.to_string()))
        };
        quoted('`').or_else(|| quoted('"')).or_else(|| {
            last.chars()
                .all(|c| c.is_alphanumeric() || c == '_' || c == '$')
                .then(|| last.to_owned())
        })
    });
    match name {
        Some(name) if !name.is_empty() => {
            let verb = if rollback {
                "ROLLBACK TO SAVEPOINT"
            } else {
                "SAVEPOINT"
            };
            format!("{verb} `{}`", name.replace('`', "``"))
        }
        _ => text.to_owned(),
    }
}

fn parse_xid(text: &str) -> Result<Xid, String> {
    let mut parts = Vec::new();
    let mut rest = text.trim();
    while !rest.is_empty() {
        let (part, after) = if let Some(hex) = rest.strip_prefix("X'").or(rest.strip_prefix("x'")) {
            let end = hex.find('\'').ok_or("an unterminated hex string")?;
            let digits = &hex.as_bytes()[..end];
            if digits.len() % 2 != 0 || !digits.iter().all(u8::is_ascii_hexdigit) {
                return Err(format!("X'{}' is not hex bytes", &hex[..end]));
            }
            let value = |d: u8| (d as char).to_digit(16).expect("checked hex digit") as u8;
            let bytes = digits
                .chunks(2)
                .map(|pair| value(pair[0]) << 4 | value(pair[1]))
                .collect();
            (bytes, &hex[end + 1..])
        } else if let Some(quoted) = rest.strip_prefix('\'') {
            let end = quoted.find('\'').ok_or("an unterminated string")?;
            (quoted.as_bytes()[..end].to_vec(), &quoted[end + 1..])
        } else {
            let end = rest.find(',').unwrap_or(rest.len());
            (rest[..end].trim().as_bytes().to_vec(), &rest[end..])
        };
        parts.push(part);
        rest = after.trim_start();
        rest = rest.strip_prefix(',').unwrap_or(rest).trim_start();
        if parts.len() == 3 {
            break;
        }
    }
    let format_id = match parts.get(2) {
        Some(n) => std::str::from_utf8(n)
            .ok()
            .and_then(|n| n.trim().parse().ok())
            .ok_or("a format id that is not a number")?,
        None => 1,
    };
    let mut parts = parts.into_iter();
    Ok(Xid {
        gtrid: parts.next().ok_or("no xid")?,
        bqual: parts.next().unwrap_or_default(),
        format_id,
    })
}

fn starts_with_word(text: &str, word: &str) -> bool {
    text.get(..word.len())
        .is_some_and(|p| p.eq_ignore_ascii_case(word))
        && text[word.len()..].starts_with(|c: char| c.is_whitespace())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Cell, MariaGtidFlags};

    /// Builds events with consecutive positions in one file.
    struct Events {
        pos: u32,
    }

    impl Events {
        fn new() -> Self {
            Events { pos: 4 }
        }

        fn event(&mut self, kind: u8, body: Vec<u8>) -> RawEvent {
            let size = (EventHeader::LEN + body.len() + 4) as u32;
            self.pos += size;
            RawEvent {
                header: EventHeader {
                    timestamp: 1_700_000_000,
                    kind,
                    server_id: 7,
                    size,
                    log_pos: self.pos,
                    flags: 0,
                },
                body: Bytes::from(body),
            }
        }

        fn maria_gtid(&mut self, seq: u64, flags: u8) -> RawEvent {
            let mut b = seq.to_le_bytes().to_vec();
            b.extend(0u32.to_le_bytes());
            b.push(flags);
            self.event(kind::MARIA_GTID, b)
        }

        fn query(&mut self, text: &str) -> RawEvent {
            let mut b = vec![0; 8];
            b.push(3);
            b.extend([0, 0, 0, 0]);
            b.extend(b"app\0");
            b.extend(text.as_bytes());
            self.event(kind::QUERY, b)
        }

        fn table_map(&mut self, id_len: usize) -> RawEvent {
            let mut b = 9u64.to_le_bytes()[..id_len].to_vec();
            b.extend([0, 0, 3]);
            b.extend(b"app\0");
            b.push(1);
            b.extend(b"t\0");
            b.extend([1, 1, 0, 0]); // one TINYINT column, no metadata, NOT NULL
            self.event(kind::TABLE_MAP, b)
        }

        fn write_row(&mut self, id_len: usize, value: u8) -> RawEvent {
            let mut b = 9u64.to_le_bytes()[..id_len].to_vec();
            b.extend([0, 0, 1, 0b1, 0, value]);
            self.event(kind::WRITE_ROWS_V1, b)
        }

        fn xid(&mut self) -> RawEvent {
            self.event(kind::XID, 1u64.to_le_bytes().to_vec())
        }
    }

    fn start(gtids: Option<&str>) -> Assembler {
        Assembler::new(Position {
            coords: BinlogCoords::new("binlog.000001", 4),
            gtids: gtids.map(|g| g.parse().unwrap()),
        })
    }

    fn run(a: &mut Assembler, events: &[RawEvent]) -> Result<Vec<TxnEvent>, Error> {
        let mut out = Vec::new();
        for e in events {
            a.push(e, &mut out)?;
        }
        Ok(out)
    }

    fn shape(out: &[TxnEvent]) -> String {
        out.iter()
            .map(|e| match e {
                TxnEvent::Begin(_) => 'B',
                TxnEvent::Change(Change::Rows(_)) => 'r',
                TxnEvent::Change(Change::Statement(_)) => 's',
                TxnEvent::Change(Change::Savepoint(_)) => 'p',
                TxnEvent::Change(Change::Xa(_)) => 'x',
                TxnEvent::Change(Change::XaOnePhase) => '1',
                TxnEvent::Change(Change::Annotation(_)) => 'a',
                TxnEvent::Commit { .. } => 'C',
                TxnEvent::Rollback => 'R',
                TxnEvent::Idle { .. } => 'i',
            })
            .collect()
    }

    #[test]
    fn mariadb_transaction_and_standalone_statement() {
        let mut ev = Events::new();
        let mut a = start(Some("0-7-4"));
        let events = [
            ev.maria_gtid(5, MariaGtidFlags::TRANSACTIONAL),
            ev.table_map(6),
            ev.write_row(6, 42),
            ev.xid(),
            ev.maria_gtid(6, MariaGtidFlags::STANDALONE | MariaGtidFlags::DDL),
            ev.query("ALTER TABLE t ADD c INT"),
        ];
        let out = run(&mut a, &events).unwrap();
        assert_eq!(shape(&out), "BrCBsC");
        let TxnEvent::Commit { position, .. } = &out[2] else {
            unreachable!()
        };
        assert_eq!(
            position.to_string(),
            format!("binlog.000001:{} (gtid 0-7-5)", events[3].header.log_pos)
        );
        assert_eq!(
            a.position().to_string(),
            format!("binlog.000001:{} (gtid 0-7-6)", ev.pos)
        );
        let TxnEvent::Change(Change::Rows(rows)) = &out[1] else {
            unreachable!()
        };
        assert_eq!(
            rows.rows[0].after.as_ref().unwrap()[0],
            Cell::Int { bits: 42, bytes: 1 }
        );
    }

    #[test]
    fn a_table_map_seen_before_is_not_decoded_again_and_a_changed_one_is() {
        let mut ev = Events::new();
        let mut a = start(Some("0-7-1"));
        let mut events = Vec::new();
        for seq in 2..=4 {
            events.push(ev.maria_gtid(seq, MariaGtidFlags::TRANSACTIONAL));
            events.push(ev.table_map(6));
            events.push(ev.write_row(6, seq as u8));
            events.push(ev.xid());
        }
        // The third names another table under the same id (ids are reused).
        let mut body = events[9].body.to_vec();
        assert_eq!(&body[14..16], b"t\0");
        body[14] = b'u';
        events[9].body = Bytes::from(body);
        let out = run(&mut a, &events).unwrap();
        let tables: Vec<&Arc<TableMap>> = out
            .iter()
            .filter_map(|e| match e {
                TxnEvent::Change(Change::Rows(rows)) => Some(&rows.table),
                _ => None,
            })
            .collect();
        assert_eq!(tables.len(), 3);
        assert!(Arc::ptr_eq(tables[0], tables[1]), "decoded once");
        assert_eq!(
            (tables[1].table.as_str(), tables[2].table.as_str()),
            ("t", "u")
        );
    }

    #[test]
    fn mysql_begin_without_gtid_and_no_invented_state() {
        let mut ev = Events::new();
        let mut a = start(None);
        let events = [
            ev.query("BEGIN"),
            ev.table_map(6),
            ev.write_row(6, 1),
            ev.xid(),
        ];
        assert_eq!(shape(&run(&mut a, &events).unwrap()), "BrC");
        assert_eq!(a.position().gtids, None);
        // A GTID with no known state does not make one up.
        let mut a = start(None);
        let events = [
            ev.maria_gtid(9, MariaGtidFlags::TRANSACTIONAL),
            ev.table_map(6),
            ev.write_row(6, 1),
            ev.xid(),
        ];
        run(&mut a, &events).unwrap();
        assert_eq!(a.position().gtids, None, "no state from a single GTID");
    }

    #[test]
    fn rollback_moves_past_the_group_and_savepoints() {
        let mut ev = Events::new();
        let mut a = start(Some("0-7-1"));
        let events = [
            ev.maria_gtid(2, 0),
            ev.query("SAVEPOINT s1"),
            ev.table_map(6),
            ev.write_row(6, 1),
            ev.query("ROLLBACK"),
        ];
        let out = run(&mut a, &events).unwrap();
        assert_eq!(shape(&out), "BprRi");
        assert_eq!(
            a.position().to_string(),
            format!("binlog.000001:{} (gtid 0-7-2)", ev.pos)
        );
        // A ROLLBACK TO (logged when a non-transactional table changed meanwhile) is
        // handed out in place, as its SAVEPOINT is.
        let mut a = start(Some("0-7-1"));
        let events = [
            ev.maria_gtid(3, 0),
            ev.table_map(6),
            ev.write_row(6, 1),
            ev.query("SAVEPOINT `s1`"),
            ev.table_map(6),
            ev.write_row(6, 2),
            ev.query("ROLLBACK TO `s1`"),
            ev.xid(),
        ];
        let out = run(&mut a, &events).unwrap();
        assert_eq!(shape(&out), "BrprpC");
        let TxnEvent::Change(Change::Savepoint(back)) = &out[4] else {
            unreachable!()
        };
        assert!(back.rollback && back.text == "ROLLBACK TO SAVEPOINT `s1`");
        // Logged under ANSI_QUOTES, run in the drainer's own session.
        assert_eq!(
            savepoint_statement("SAVEPOINT \"a b\"\"c\"", false),
            "SAVEPOINT \"a b\"\"c\""
        );
        assert_eq!(
            savepoint_statement("SAVEPOINT \"s\"\"1\"", false),
            "SAVEPOINT `s\"1`"
        );
        assert_eq!(
            savepoint_statement("ROLLBACK WORK TO SAVEPOINT sp_2", true),
            "ROLLBACK TO SAVEPOINT `sp_2`"
        );
    }

    #[test]
    fn xa_transactions_prepare_then_commit_in_groups_of_their_own() {
        let mut ev = Events::new();
        let mut a = start(Some("0-7-1"));
        let mut prepare = 2u64.to_le_bytes().to_vec();
        prepare.extend(0u32.to_le_bytes());
        prepare.push(MariaGtidFlags::PREPARED_XA | MariaGtidFlags::TRANSACTIONAL);
        prepare.extend(1u32.to_le_bytes()); // format id
        prepare.extend([2, 1]); // gtrid and bqual lengths
        prepare.extend(b"x1b");
        let mut completed = prepare.clone();
        completed[0] = 3;
        completed[12] = MariaGtidFlags::COMPLETED_XA | MariaGtidFlags::TRANSACTIONAL;
        let events = [
            ev.event(kind::MARIA_GTID, prepare),
            ev.table_map(6),
            ev.write_row(6, 1),
            ev.query("XA END X'7831',X'62',1"),
            ev.event(kind::XA_PREPARE, vec![0; 12]),
            ev.event(kind::MARIA_GTID, completed),
            ev.query("XA COMMIT X'7831',X'62',1"),
        ];
        let out = run(&mut a, &events).unwrap();
        assert_eq!(shape(&out), "BrCBxC");
        let xid = Xid {
            format_id: 1,
            gtrid: b"x1".to_vec(),
            bqual: b"b".to_vec(),
        };
        let TxnEvent::Begin(first) = &out[0] else {
            unreachable!()
        };
        assert_eq!(first.xa.as_ref(), Some(&xid), "the first group prepares it");
        let TxnEvent::Change(Change::Xa(outcome)) = &out[4] else {
            unreachable!()
        };
        assert_eq!((&outcome.xid, outcome.commit), (&xid, true));
        assert_eq!(xid.to_string(), "X'7831',X'62',1");
        assert_eq!(
            a.position().to_string(),
            format!("binlog.000001:{} (gtid 0-7-3)", ev.pos)
        );
        // Quoted forms, and the defaults.
        assert_eq!(
            parse_xid("'x1','b',1").unwrap(),
            xid,
            "quoted gtrid and bqual"
        );
        assert_eq!(parse_xid("'x1'").unwrap().bqual, b"");
        assert!(parse_xid("X'zz'").is_err());
        assert!(parse_xid("X'abc'").is_err(), "odd length");
        assert!(parse_xid("X'é1'").is_err(), "not ASCII");
    }

    /// MySQL ends both `XA PREPARE` and `XA COMMIT … ONE PHASE` with an XA_PREPARE
    /// event; its first byte tells them apart. A one-phase group is an ordinary commit.
    #[test]
    fn mysql_one_phase_xa_commits_and_prepared_xa_prepares() {
        let mut ev = Events::new();
        let anonymous = vec![0u8; 25];
        let xa_prepare = |one_phase: u8| {
            let mut body = vec![one_phase];
            body.extend(1u32.to_le_bytes());
            body.extend(2u32.to_le_bytes());
            body.extend(0u32.to_le_bytes());
            body.extend(b"x1");
            body
        };
        for (one_phase, expect_shape, expect_xa) in [(1, "Br1C", false), (0, "BrC", true)] {
            let mut a = start(None);
            let events = [
                ev.event(kind::MYSQL_ANONYMOUS_GTID, anonymous.clone()),
                ev.query("XA START X'7831',X'',1"),
                ev.table_map(6),
                ev.write_row(6, 1),
                ev.query("XA END X'7831',X'',1"),
                ev.event(kind::XA_PREPARE, xa_prepare(one_phase)),
            ];
            let out = run(&mut a, &events).unwrap();
            assert_eq!(shape(&out), expect_shape, "one_phase = {one_phase}");
            let mut collector = crate::txn::Collector::default();
            let mut txns: Vec<_> = out
                .into_iter()
                .filter_map(|e| collector.push(e).unwrap())
                .collect();
            let txn = txns.pop().expect("one transaction");
            assert_eq!(txn.xa.is_some(), expect_xa, "one_phase = {one_phase}");
            assert_eq!(txn.changes.len(), 1, "the row alone");
        }
    }

    #[test]
    fn heartbeats_rotates_and_gtid_lists() {
        let mut ev = Events::new();
        let mut a = start(Some("0-7-5"));
        // A heartbeat while idle names the file and the upstream's position.
        let mut hb = ev.event(kind::HEARTBEAT, b"binlog.000001".to_vec());
        hb.header.log_pos = 9000;
        assert_eq!(shape(&run(&mut a, &[hb.clone()]).unwrap()), "i");
        assert_eq!(a.position().coords.to_string(), "binlog.000001:9000");
        // Inside a transaction it changes nothing.
        let begin = ev.maria_gtid(6, 0);
        let out = run(&mut a, &[begin, hb]).unwrap();
        assert_eq!(shape(&out), "B");
        a.abandon();
        // An artificial ROTATE names the file but keeps a known position.
        let mut fake = ev.event(
            kind::ROTATE,
            [4u64.to_le_bytes().as_slice(), b"binlog.000001"].concat(),
        );
        fake.header.log_pos = 0;
        run(&mut a, &[fake]).unwrap();
        assert_eq!(a.position().coords.to_string(), "binlog.000001:9000");
        // A real one moves to the next file.
        let rotate = ev.event(
            kind::ROTATE,
            [4u64.to_le_bytes().as_slice(), b"binlog.000002"].concat(),
        );
        run(&mut a, &[rotate]).unwrap();
        assert_eq!(a.position().coords.to_string(), "binlog.000002:4");
        // A GTID_LIST merges into the known state.
        let mut list = 2u32.to_le_bytes().to_vec();
        for (d, s, n) in [(0u32, 7u32, 3u64), (1, 2, 7)] {
            list.extend(d.to_le_bytes());
            list.extend(s.to_le_bytes());
            list.extend(n.to_le_bytes());
        }
        run(&mut a, &[ev.event(kind::MARIA_GTID_LIST, list)]).unwrap();
        assert_eq!(
            a.position().gtids.as_ref().unwrap().to_string(),
            "0-7-5,1-2-7"
        );
    }

    #[test]
    fn four_byte_table_ids_of_old_servers() {
        let mut ev = Events::new();
        let mut a = start(Some("0-7-1"));
        let mut fde = 4u16.to_le_bytes().to_vec();
        fde.extend([0u8; 50]);
        fde.extend([0; 4]);
        fde.push(19);
        let mut post = vec![0u8; 30];
        post[usize::from(kind::TABLE_MAP) - 1] = 6;
        fde.extend(post);
        let events = [
            ev.event(kind::FORMAT_DESCRIPTION, fde),
            ev.maria_gtid(2, 0),
            ev.table_map(4),
            ev.write_row(4, 5),
            ev.xid(),
        ];
        assert_eq!(shape(&run(&mut a, &events).unwrap()), "BrC");
    }

    #[test]
    fn events_out_of_order_are_errors() {
        let mut ev = Events::new();
        let mut xa = 2u64.to_le_bytes().to_vec();
        xa.extend(0u32.to_le_bytes());
        xa.push(MariaGtidFlags::PREPARED_XA);
        xa.extend(1u32.to_le_bytes()); // format id
        xa.extend([2, 1]); // gtrid and bqual lengths
        xa.extend(b"abc");
        let xa_gtid = ev.event(kind::MARIA_GTID, xa);
        let cases: Vec<(Vec<RawEvent>, &str)> = vec![
            (
                vec![ev.table_map(6)],
                "TABLE_MAP (19) outside a transaction",
            ),
            (
                vec![ev.maria_gtid(2, 0), ev.write_row(6, 1)],
                "without its TABLE_MAP",
            ),
            (
                vec![ev.maria_gtid(2, 0), ev.maria_gtid(3, 0)],
                "before the previous one ended",
            ),
            (vec![ev.xid()], "XID (16) outside a transaction"),
            (
                vec![
                    ev.maria_gtid(2, 0),
                    ev.table_map(6),
                    ev.event(kind::XA_PREPARE, vec![]),
                ],
                "XA_PREPARE ends a group that did not start an XA transaction",
            ),
            (
                vec![xa_gtid, ev.query("XA FORGET X'61'")],
                "an XA statement the reader does not know",
            ),
            (vec![ev.event(kind::INCIDENT, vec![1, 0, 0])], "INCIDENT"),
            (vec![ev.event(199, vec![])], "unknown event type 199"),
        ];
        for (events, expected) in cases {
            let e = run(&mut start(Some("0-7-1")), &events)
                .unwrap_err()
                .to_string();
            assert!(e.contains(expected), "{expected:?} not in {e}");
        }
    }
}
