//! The upstream transaction being read, from its begin to its commit: its row changes
//! and statements not yet applied, what becomes of it ([`Fate`]), and whether it streams
//! into an open downstream transaction ([`Stream`]). Bookkeeping only: what it does
//! downstream is the pipeline's.

use pump_reader::{Position, TxnStart, XaOutcome};

use super::statement::Ddl;
use super::stream::Inflight;
use crate::apply::applier::Marker;
use crate::apply::changes::{Ops, RowChange};

/// A transaction whose buffered row changes pass either bound streams: they go into an
/// open downstream transaction, and so does every later batch of that size, so memory
/// stays bounded whatever the transaction's size.
const STREAM_ROWS: usize = 20_000;
const STREAM_BYTES: usize = 32 << 20;

/// The transaction being read.
#[derive(Default)]
pub(super) struct Reading {
    /// How it began: its GTID, where it starts, the XA transaction it prepares.
    pub start: Option<TxnStart>,
    /// The position before it: a streamed transaction whose downstream part is lost is
    /// read again from here.
    pub from: Option<Position>,
    pub fate: Fate,
    /// Its row changes not applied yet (all of them, unless it streams).
    pub rows: Vec<RowChange>,
    /// About how many bytes `rows` hold.
    pub bytes: usize,
    /// Its statements to run downstream, each after the row changes before it.
    pub ddl: Vec<Ddl>,
    /// Its savepoints and rollbacks to them, each after the row changes before it.
    pub markers: Vec<Marker>,
    /// It ends an XA transaction prepared earlier.
    pub xa_outcome: Option<XaOutcome>,
    /// It staged statements in the schema history.
    pub staged: bool,
    /// It changes table definitions (run here or not): the downstream's tables are
    /// looked at again after it.
    pub tables_change: bool,
    /// Its statements that will not run downstream.
    pub ddl_not_run: u64,
    /// Statements of it ran downstream already (before it streamed): what came before
    /// them is committed there, so it can no longer be read again.
    pub ddl_ran: bool,
    pub stream: Stream,
    /// Its `drainer verify` requests (of this channel), answered at its commit.
    pub verify: Vec<crate::verify::chunk::Verdict>,
}

/// What becomes of the transaction being read.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(super) enum Fate {
    /// Applied downstream at its commit (or streamed).
    #[default]
    Apply,
    /// It came from the reverse direction (it carries this channel's mark): dropped
    /// whole; its statements still enter the schema history.
    Looped,
    /// Its XA transaction is prepared downstream already (by a run before a restart):
    /// the rest of it is passed over.
    PreparedBefore,
}

/// Whether the transaction being read streams.
#[derive(Default)]
pub(super) enum Stream {
    /// Its row changes wait for its commit.
    #[default]
    Buffered,
    /// Its row changes go into an open downstream transaction, batch by batch.
    Open {
        /// The batch being applied while the next is read.
        inflight: Option<Inflight>,
        /// The row changes of the batches applied so far.
        ops: Ops,
        /// Begun downstream as an XA transaction, it ends in one phase (MySQL's `XA
        /// COMMIT … ONE PHASE`, known only at its end).
        one_phase: bool,
    },
    /// The open downstream transaction was lost or refused: the transaction is read
    /// again from its start.
    Lost { reason: String },
}

impl Stream {
    pub fn is_open(&self) -> bool {
        matches!(self, Stream::Open { .. })
    }

    pub fn is_lost(&self) -> bool {
        matches!(self, Stream::Lost { .. })
    }

    /// An open stream's row changes applied so far (none for another).
    pub fn ops(&self) -> Ops {
        match self {
            Stream::Open { ops, .. } => *ops,
            _ => Ops::default(),
        }
    }
}

impl Reading {
    /// A transaction beginning as `start` says, after `from`; `looped`: written by this
    /// channel's own sessions (its event group carries the channel's server id).
    pub fn begin(start: TxnStart, from: Position, looped: bool) -> Reading {
        Reading {
            start: Some(start),
            from: Some(from),
            fate: if looped { Fate::Looped } else { Fate::Apply },
            ..Reading::default()
        }
    }

    /// Whether it is dropped whole at its commit (nothing of it needs decoding).
    pub fn dropped(&self) -> bool {
        self.fate != Fate::Apply
    }

    /// A row change of about `bytes` bytes.
    pub fn push(&mut self, change: RowChange, bytes: usize) {
        self.bytes += bytes;
        self.rows.push(change);
    }

    /// It carries this channel's mark: nothing of it is applied.
    pub fn looped(&mut self) {
        self.fate = Fate::Looped;
        self.rows.clear();
        self.bytes = 0;
    }

    /// Its XA transaction is prepared downstream already: nothing more of it applies.
    pub fn prepared_before(&mut self) {
        self.fate = Fate::PreparedBefore;
        self.rows.clear();
        self.bytes = 0;
        self.markers.clear();
    }

    /// Whether the buffered row changes should stream now.
    pub fn large(&self) -> bool {
        !self.dropped() && (self.rows.len() >= STREAM_ROWS || self.bytes >= STREAM_BYTES)
    }

    /// Takes the buffered row changes and the markers among them.
    pub fn take_batch(&mut self) -> (Vec<RowChange>, Vec<Marker>) {
        self.bytes = 0;
        (
            std::mem::take(&mut self.rows),
            std::mem::take(&mut self.markers),
        )
    }

    /// The row changes before `upto` and the statements among them ran downstream (a
    /// statement commits implicitly there): they go, and so do the savepoints before
    /// `upto`, ended by that commit.
    pub fn ran_before(&mut self, upto: usize) {
        self.rows.drain(..upto);
        self.markers.retain(|m| m.at >= upto);
        for m in &mut self.markers {
            m.at -= upto;
        }
        self.ddl_ran = true;
    }

    /// The streamed part before its pending statements committed downstream: they now
    /// come first.
    pub fn piece_committed(&mut self) {
        for ddl in &mut self.ddl {
            ddl.after = 0;
        }
    }

    /// The markers that matter at its commit: all of them where a ROLLBACK TO undoes
    /// part of it, else none.
    pub fn take_markers(&mut self) -> Vec<Marker> {
        let markers = std::mem::take(&mut self.markers);
        if markers.iter().any(|m| m.savepoint.rollback) {
            markers
        } else {
            Vec::new()
        }
    }

    /// Forgets everything of it but how it began (rolled back, or not to be applied);
    /// the stream it had, to be given up by the caller.
    pub fn clear(&mut self) -> Stream {
        let kept = Reading {
            start: self.start.take(),
            from: self.from.take(),
            ..Reading::default()
        };
        std::mem::replace(self, kept).stream
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pump_reader::{BinlogCoords, Savepoint};

    fn start() -> TxnStart {
        TxnStart {
            gtid: None,
            server_id: 1,
            start: BinlogCoords::new("binlog.000001", 100),
            xa: None,
        }
    }

    fn change() -> RowChange {
        RowChange {
            table: crate::apply::test_table("CREATE TABLE t (id INT PRIMARY KEY)"),
            before: None,
            after: Some(vec![Some(schema::Value::Int(1))]),
            checks: Default::default(),
            raw: None,
        }
    }

    fn marker(at: usize, rollback: bool) -> Marker {
        Marker {
            at,
            savepoint: Savepoint {
                text: "SAVEPOINT `s`".into(),
                rollback,
            },
        }
    }

    fn reading() -> Reading {
        Reading::begin(
            start(),
            Position {
                coords: BinlogCoords::new("binlog.000001", 100),
                gtids: None,
            },
            false,
        )
    }

    #[test]
    fn rows_stream_past_either_bound_unless_dropped() {
        let mut r = reading();
        r.push(change(), 10);
        assert!(!r.large());
        r.push(change(), STREAM_BYTES);
        assert!(r.large(), "bytes");
        let (batch, markers) = r.take_batch();
        assert_eq!((batch.len(), markers.len(), r.bytes), (2, 0, 0));
        for _ in 0..STREAM_ROWS {
            r.push(change(), 1);
        }
        assert!(r.large(), "rows");
        r.looped();
        assert!(r.rows.is_empty() && !r.large() && r.dropped());
        let mut r = Reading::begin(start(), r.from.clone().unwrap(), true);
        assert_eq!(r.fate, Fate::Looped);
        r.prepared_before();
        assert_eq!(r.fate, Fate::PreparedBefore);
    }

    #[test]
    fn what_ran_before_a_statement_goes_with_its_savepoints() {
        let mut r = reading();
        for _ in 0..5 {
            r.push(change(), 1);
        }
        r.markers = vec![marker(1, false), marker(3, true)];
        r.ran_before(2);
        assert_eq!(r.rows.len(), 3);
        assert!(r.ddl_ran);
        let at: Vec<usize> = r.markers.iter().map(|m| m.at).collect();
        assert_eq!(at, [1], "the savepoint at 1 ended with the implicit commit");
        assert_eq!(r.take_markers().len(), 1, "a ROLLBACK TO: markers matter");
        r.markers = vec![marker(0, false)];
        assert!(
            r.take_markers().is_empty(),
            "savepoints alone change nothing"
        );
    }

    #[test]
    fn clearing_keeps_how_it_began_and_hands_back_its_stream() {
        let mut r = reading();
        r.push(change(), 1);
        r.staged = true;
        r.stream = Stream::Open {
            inflight: None,
            ops: Ops {
                inserts: 3,
                ..Ops::default()
            },
            one_phase: false,
        };
        assert!(r.stream.is_open());
        assert_eq!(r.stream.ops().inserts, 3);
        let old = r.clear();
        assert!(old.is_open());
        assert!(r.start.is_some() && r.from.is_some());
        assert!(r.rows.is_empty() && !r.staged && !r.stream.is_open());
        r.stream = Stream::Lost {
            reason: "gone".into(),
        };
        assert!(r.stream.is_lost() && r.stream.ops() == Ops::default());
    }
}
