//! Events in, transactions out: the one state machine behind the live reader and the file
//! reader.
//!
//! MariaDB opens every event group with a GTID event: a transaction runs to its XID (or a
//! `COMMIT` query, for non-transactional engines); a standalone group (DDL) is the GTID and
//! one QUERY. MySQL opens a transaction with a GTID (or ANONYMOUS_GTID) event and a
//! `BEGIN` query, and a standalone statement with a GTID event and the statement. Both may
//! end a group with `ROLLBACK`.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;

use crate::event::{
    self, decode_gtid_list, decode_previous_gtids, kind, rows, EventHeader, FormatDescription,
    KindName, MariaGtidEvent, MysqlGtidEvent, Query, QueryControl, Rotate, RowsKind, TableMap,
};
use crate::position::{BinlogCoords, Gtid, GtidSet, MariaGtidList, MysqlGtidSet, Position};
use crate::txn::{Change, Rows, Statement, TxnEvent, TxnStart};
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
}

/// Turns binlog events, in order, into [`TxnEvent`]s.
#[derive(Debug)]
pub struct Assembler {
    file: String,
    /// 6-byte table ids, or 4 for binlogs of servers before 5.1.4.
    table_id_len: usize,
    maps: HashMap<u64, Arc<TableMap>>,
    open: Option<Open>,
    /// The position after the last committed transaction (or heartbeat while idle).
    last: Position,
}

impl Assembler {
    /// Starts at `position`: the binlog file the next events belong to, and the GTID state
    /// before them (`None` when unknown; GTID_LIST / PREVIOUS_GTIDS events fill it in).
    pub fn new(position: Position) -> Assembler {
        Assembler {
            file: position.coords.file.clone(),
            table_id_len: 6,
            maps: HashMap::new(),
            open: None,
            last: position,
        }
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
                if gtid.is_xa() {
                    return Err(self.stream_error(&h, "XA transactions are not supported".into()));
                }
                let in_begin = !gtid.is_standalone();
                self.begin(
                    &h,
                    Some(Gtid::MariaDb(gtid.gtid(h.server_id))),
                    in_begin,
                    out,
                )?;
            }
            kind::MYSQL_GTID | kind::MYSQL_ANONYMOUS_GTID => {
                let anonymous = h.kind == kind::MYSQL_ANONYMOUS_GTID;
                let e = MysqlGtidEvent::decode(body, anonymous)
                    .map_err(|e| self.decode_error(&h, e))?;
                self.begin(&h, e.gtid.map(Gtid::MySql), false, out)?;
            }
            kind::QUERY => {
                let query = Query::decode(body).map_err(|e| self.decode_error(&h, e))?;
                self.query(&h, query, out)?;
            }
            kind::XID => {
                event::decode_xid(body).map_err(|e| self.decode_error(&h, e))?;
                self.commit(&h, out)?;
            }
            kind::TABLE_MAP => {
                self.require_open(&h)?;
                let map = TableMap::decode(body, self.table_id_len)
                    .map_err(|e| self.decode_error(&h, e))?;
                self.maps.insert(map.table_id, Arc::new(map));
            }
            code if RowsKind::of(code).is_some() => {
                self.require_open(&h)?;
                let table_id = rows::table_id(body, self.table_id_len)
                    .map_err(|e| self.decode_error(&h, e))?;
                let Some(table) = self.maps.get(&table_id).cloned() else {
                    return Err(self.stream_error(
                        &h,
                        format!("rows of table id {table_id} without its TABLE_MAP"),
                    ));
                };
                let changed = rows::decode(code, body, self.table_id_len, &table)
                    .map_err(|e| self.decode_error(&h, e))?;
                let (rows_kind, _) = RowsKind::of(code).expect("matched above");
                out.push(TxnEvent::Change(Change::Rows(Rows {
                    table,
                    kind: rows_kind,
                    rows: changed,
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
            kind::XA_PREPARE => {
                return Err(self.stream_error(&h, "XA transactions are not supported".into()))
            }
            kind::MYSQL_GTID_TAGGED => {
                return Err(
                    self.stream_error(&h, "tagged GTIDs (MySQL 8.3+) are not supported yet".into())
                )
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

    fn begin(
        &mut self,
        h: &EventHeader,
        gtid: Option<Gtid>,
        in_begin: bool,
        out: &mut Vec<TxnEvent>,
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
        };
        out.push(TxnEvent::Begin(start.clone()));
        self.open = Some(Open { start, in_begin });
        Ok(())
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
                    self.begin(h, None, true, out)?;
                }
            },
            Some(QueryControl::Commit) => self.commit(h, out)?,
            Some(QueryControl::Rollback) => {
                self.require_open(h)?;
                // The group is consumed upstream (its GTID is used), so the position moves on.
                out.push(TxnEvent::Rollback);
                self.finish(h);
                out.push(TxnEvent::Idle {
                    position: self.last.clone(),
                });
            }
            Some(QueryControl::Xa) => {
                return Err(self.stream_error(h, "XA transactions are not supported".into()));
            }
            None => {
                let text = query.statement.trim();
                let savepoint =
                    starts_with_word(text, "SAVEPOINT") || starts_with_word(text, "ROLLBACK TO");
                let standalone = match &self.open {
                    Some(open) if open.in_begin => false,
                    Some(_) => true,
                    None => {
                        self.begin(h, None, false, out)?;
                        true
                    }
                };
                if !savepoint {
                    out.push(TxnEvent::Change(Change::Statement(Statement {
                        schema: query.schema,
                        text: query.statement,
                    })));
                }
                if standalone {
                    self.commit(h, out)?;
                }
            }
        }
        Ok(())
    }

    fn commit(&mut self, h: &EventHeader, out: &mut Vec<TxnEvent>) -> Result<(), Error> {
        self.require_open(h)?;
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
        if let Some(gtid) = open.start.gtid {
            let state = self.last.gtids.get_or_insert_with(|| match gtid {
                Gtid::MariaDb(_) => GtidSet::MariaDb(MariaGtidList::new()),
                Gtid::MySql(_) => GtidSet::MySql(MysqlGtidSet::new()),
            });
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

fn starts_with_word(text: &str, word: &str) -> bool {
    text.get(..word.len())
        .is_some_and(|p| p.eq_ignore_ascii_case(word))
        && text[word.len()..].starts_with(|c: char| c.is_whitespace())
}
