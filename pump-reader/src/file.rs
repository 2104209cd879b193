//! Binlog files on disk: the same transactions as the replication stream.
//!
//! Events are framed here (magic number, header, size, checksum) before any decoder sees
//! them, so a file whose last event is cut (a server that crashed mid-write, a copy still
//! being made) gives an error naming the byte offset, never a panic.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

use bytes::Bytes;

use crate::assemble::{Assembler, RawEvent};
use crate::checksum::Checksums;
use crate::event::{kind, EventHeader};
use crate::position::{BinlogCoords, Position};
use crate::txn::{Collector, Txn, TxnEvent};
use crate::Error;

/// Every binlog file starts with these four bytes.
pub const MAGIC: [u8; 4] = [0xfe, b'b', b'i', b'n'];
/// Refuse events larger than this (MariaDB's max_allowed_packet ceiling is 1 GiB).
const MAX_EVENT: u32 = 1 << 30;

/// The events of one binlog file, framed and checksum-verified.
pub struct EventFile {
    path: PathBuf,
    reader: BufReader<File>,
    /// Offset of the next event.
    offset: u64,
    /// The checksum the events carry, known from the format description.
    checksums: Checksums,
    /// The format description was read (it must come first).
    seen_format: bool,
}

impl EventFile {
    pub fn open(path: &Path) -> Result<EventFile, Error> {
        let file = File::open(path).map_err(|source| Error::Io {
            path: path.to_owned(),
            source,
        })?;
        let mut events = EventFile {
            path: path.to_owned(),
            reader: BufReader::with_capacity(1 << 16, file),
            offset: 0,
            checksums: Checksums::default(),
            seen_format: false,
        };
        let mut magic = [0u8; 4];
        let n = events.read_up_to(&mut magic)?;
        if n < 4 || magic != MAGIC {
            return Err(events.file_error(0, "not a binlog file (no magic number)".into()));
        }
        events.offset = 4;
        Ok(events)
    }

    /// The file's name as the server knows it (`binlog.000042`).
    pub fn name(&self) -> String {
        self.path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    }

    /// The next event, `None` at a clean end of file.
    pub fn next_event(&mut self) -> Result<Option<RawEvent>, Error> {
        let at = self.offset;
        let mut head = [0u8; EventHeader::LEN];
        match self.read_up_to(&mut head)? {
            0 => return Ok(None),
            n if n < EventHeader::LEN => {
                return Err(self.file_error(
                    at,
                    format!("the last event is cut: {n} of its 19 header bytes"),
                ));
            }
            _ => {}
        }
        let header = EventHeader::decode(&head).map_err(|e| self.file_error(at, e.to_string()))?;
        if header.size < EventHeader::LEN as u32 + 4 || header.size > MAX_EVENT {
            return Err(self.file_error(at, format!("implausible event size {}", header.size)));
        }
        let mut raw = vec![0u8; header.size as usize - EventHeader::LEN];
        let n = self.read_up_to(&mut raw)?;
        if n < raw.len() {
            return Err(self.file_error(
                at,
                format!("the last event is cut: {n} of its {} body bytes", raw.len()),
            ));
        }
        self.offset += u64::from(header.size);
        if !self.seen_format && header.kind != kind::FORMAT_DESCRIPTION {
            return Err(self.file_error(at, "the first event is not a format description".into()));
        }
        self.seen_format = true;
        let body = self
            .checksums
            .strip(&head, &header, Bytes::from(raw))
            .map_err(|reason| self.file_error(at, reason))?;
        Ok(Some(RawEvent { header, body }))
    }

    /// Reads until `buf` is full or the file ends; returns how much was read.
    fn read_up_to(&mut self, buf: &mut [u8]) -> Result<usize, Error> {
        let mut filled = 0;
        while filled < buf.len() {
            match self.reader.read(&mut buf[filled..]) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(source) => {
                    return Err(Error::Io {
                        path: self.path.clone(),
                        source,
                    })
                }
            }
        }
        Ok(filled)
    }

    fn file_error(&self, offset: u64, reason: String) -> Error {
        Error::File {
            path: self.path.clone(),
            offset,
            reason,
        }
    }
}

/// Transactions from one binlog file.
pub struct FileReader {
    events: EventFile,
    assembler: Assembler,
    pending: std::collections::VecDeque<TxnEvent>,
    scratch: Vec<TxnEvent>,
    collector: Collector,
    /// Set by the first error: the reader hands out nothing after it.
    failed: Option<String>,
}

impl FileReader {
    pub fn open(path: &Path) -> Result<FileReader, Error> {
        let events = EventFile::open(path)?;
        let start = Position {
            coords: BinlogCoords::new(events.name(), BinlogCoords::FIRST_EVENT),
            gtids: None,
        };
        Ok(FileReader {
            events,
            assembler: Assembler::new(start),
            pending: Default::default(),
            scratch: Vec::new(),
            collector: Collector::default(),
            failed: None,
        })
    }

    /// The next piece of the transaction stream; `None` at the end of the file. A file
    /// that ends inside a transaction is an error (after that transaction's `Begin` and
    /// changes were handed out): no `Commit` is ever made up.
    pub fn next_event(&mut self) -> Result<Option<TxnEvent>, Error> {
        if let Some(first) = &self.failed {
            return Err(self.events.file_error(
                self.events.offset,
                format!("stopped after an earlier error: {first}"),
            ));
        }
        let result = self.next_event_inner();
        if let Err(e) = &result {
            self.failed = Some(e.to_string());
        }
        result
    }

    fn next_event_inner(&mut self) -> Result<Option<TxnEvent>, Error> {
        loop {
            if let Some(e) = self.pending.pop_front() {
                return Ok(Some(e));
            }
            let Some(event) = self.events.next_event()? else {
                if let Some(start) = self.assembler.open_start() {
                    return Err(self.events.file_error(
                        self.events.offset,
                        format!("the file ends inside the transaction that starts at {start}"),
                    ));
                }
                return Ok(None);
            };
            self.assembler.push(&event, &mut self.scratch)?;
            self.pending.extend(self.scratch.drain(..));
        }
    }

    /// The next whole transaction; `None` at the end of the file. Do not mix with
    /// [`FileReader::next_event`] inside one transaction.
    pub fn next_txn(&mut self) -> Result<Option<Txn>, Error> {
        while let Some(event) = self.next_event()? {
            match self.collector.push(event) {
                Ok(Some(txn)) => return Ok(Some(txn)),
                Ok(None) => {}
                Err(reason) => {
                    self.failed = Some(reason.clone());
                    return Err(self.events.file_error(self.events.offset, reason));
                }
            }
        }
        Ok(None)
    }

    /// The position after the last transaction read.
    pub fn position(&self) -> &Position {
        self.assembler.position()
    }
}
