//! Where a direction resumes reading, decided from what it finds at start: the
//! data-dir's checkpoint (or schema bootstrap), the downstream's apply record, and the
//! configured start (`[pump] initial-gtid` or `initial-file`). Pure: the caller reads
//! them, logs the [`Note`] and saves what [`Resume`] says.
//!
//! - The checkpoint may lag (it is saved every `checkpoint-interval-ms`); the apply
//!   record is written in every downstream transaction. Reading resumes after the
//!   further of the two, and the transactions the record lists past it (committed out
//!   of upstream order by the workers) are passed over when read again.
//! - A new data-dir with a configured start resumes at the further of that start and
//!   the record: a start left in the file from the first deployment, after the
//!   data-dir was lost, would otherwise apply everything since again.
//! - A new data-dir with a record and no configured start is refused: the record says
//!   this channel applied the upstream to a point the drainer cannot resume at by
//!   itself, and starting at the upstream's present position would skip what lies
//!   between.
//! - A record and a position that name different binlog histories cannot be ordered:
//!   refused, naming both.

use std::cmp::Ordering;
use std::path::Path;

use pump_reader::Position;

use crate::apply::downstream::{order, past, Applied};
use crate::error::{At, Cause, RunError};

/// What the drainer finds at start.
#[derive(Debug, Clone, Default)]
pub struct Found {
    /// The data-dir's checkpoint.
    pub checkpoint: Option<Position>,
    /// Where the schema history was bootstrapped (a data-dir without a checkpoint yet).
    pub bootstrap: Option<Position>,
    /// The downstream's apply record of this channel.
    pub record: Option<Applied>,
    /// `[pump] initial-gtid` or `initial-file` / `initial-pos`.
    pub configured: Option<Position>,
}

/// Where to resume.
#[derive(Debug, Clone, PartialEq)]
pub struct Resume {
    /// After this position (`None`: nothing says where: the configured start, or the
    /// upstream's position now).
    pub from: Option<Position>,
    /// `from` is the record's, past the checkpoint: the checkpoint moves there now.
    pub past_checkpoint: bool,
    /// Transactions past `from` the workers committed before the last stop: passed
    /// over when read again.
    pub applied_past: Vec<Position>,
    /// What the operator is told.
    pub note: Option<Note>,
}

/// A resume the operator should know about.
#[derive(Debug, Clone, PartialEq)]
pub enum Note {
    /// The downstream committed transactions past the checkpoint.
    PastCheckpoint {
        checkpoint: Position,
        applied: Position,
    },
    /// A new data-dir, and the configured start is past the record: the transactions
    /// between are not applied.
    ConfiguredPastRecord {
        configured: Position,
        applied: Position,
    },
    /// A new data-dir, and the record is at or past the configured start.
    RecordPastConfigured {
        configured: Position,
        applied: Position,
    },
}

impl Note {
    /// Logs it.
    pub fn log(&self) {
        match self {
            Note::PastCheckpoint {
                checkpoint,
                applied,
            } => tracing::info!(
                checkpoint = %checkpoint, applied = %applied,
                "the downstream committed transactions past the checkpoint: resuming after \
                 the last one"
            ),
            Note::ConfiguredPastRecord {
                configured,
                applied,
            } => tracing::warn!(configured = %configured, applied = %applied,
                "data-dir is new, and [pump] initial-gtid / initial-file is past where the \
                 downstream's apply record stands: starting there, as configured (the \
                 transactions between are not applied)"),
            Note::RecordPastConfigured {
                configured,
                applied,
            } => tracing::warn!(configured = %configured, applied = %applied,
                "data-dir is new, and the downstream's apply record is at or past [pump] \
                 initial-gtid / initial-file: resuming after the record (nothing is applied \
                 twice)"),
        }
    }
}

/// Decides where to resume (see the module note). `data_dir` and `delete` (the statement
/// that removes the record) only name things in a refusal.
pub fn resume(found: Found, data_dir: &Path, delete: &str) -> Result<Resume, RunError> {
    let refuse = |cause| RunError::apply(&At::Start, cause);
    let base = found.checkpoint.or(found.bootstrap);
    let (recorded, mut applied_past) = match found.record {
        Some(a) => (Some(a.low), a.after),
        None => (None, Vec::new()),
    };
    let unordered = |recorded: Position, name: &'static str, other: Position| Cause::Unordered {
        recorded,
        name,
        other,
        delete: delete.to_owned(),
    };
    let mut past_checkpoint = false;
    let mut note = None;
    let from = match (base, recorded, found.configured) {
        (base, None, _) => base,
        (Some(base), Some(recorded), _) => match order(&recorded, &base) {
            Some(Ordering::Greater) => {
                note = Some(Note::PastCheckpoint {
                    checkpoint: base,
                    applied: recorded.clone(),
                });
                past_checkpoint = true;
                Some(recorded)
            }
            Some(_) => Some(base),
            None => return Err(refuse(unordered(recorded, "the checkpoint", base))),
        },
        (None, Some(recorded), Some(configured)) => match order(&configured, &recorded) {
            Some(Ordering::Greater) => {
                note = Some(Note::ConfiguredPastRecord {
                    configured: configured.clone(),
                    applied: recorded,
                });
                Some(configured)
            }
            Some(_) => {
                note = Some(Note::RecordPastConfigured {
                    configured,
                    applied: recorded.clone(),
                });
                Some(recorded)
            }
            None => {
                return Err(refuse(unordered(
                    recorded,
                    "[pump] initial-gtid / initial-file",
                    configured,
                )))
            }
        },
        (None, Some(recorded), None) => {
            return Err(refuse(Cause::RecordWithoutCheckpoint {
                data_dir: data_dir.to_owned(),
                recorded,
                delete: delete.to_owned(),
            }))
        }
    };
    match &from {
        Some(r) => applied_past.retain(|p| past(p, r)),
        None => applied_past.clear(),
    }
    Ok(Resume {
        from,
        past_checkpoint,
        applied_past,
        note,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use pump_reader::BinlogCoords;

    fn at(pos: u64) -> Position {
        Position {
            coords: BinlogCoords::new("binlog.000001", pos),
            gtids: None,
        }
    }

    fn gtid(state: &str) -> Position {
        Position {
            coords: BinlogCoords::new("", 4),
            gtids: Some(state.parse().unwrap()),
        }
    }

    fn record(low: u64, after: &[u64]) -> Option<Applied> {
        Some(Applied {
            low: at(low),
            after: after.iter().map(|p| at(*p)).collect(),
        })
    }

    fn decide(found: Found) -> Result<Resume, Box<Cause>> {
        resume(found, Path::new("/var/lib/drainer"), "DELETE …").map_err(|e| match e {
            RunError::Apply(a) if a.at == At::Start => Box::new(a.cause),
            other => panic!("{other}"),
        })
    }

    #[test]
    fn nothing_found_starts_where_configured_or_now() {
        let r = decide(Found::default()).unwrap();
        assert_eq!((r.from, r.past_checkpoint, r.note), (None, false, None));
        let configured = Found {
            configured: Some(at(500)),
            ..Found::default()
        };
        assert_eq!(
            decide(configured).unwrap().from,
            None,
            "the caller starts there"
        );
    }

    /// A crash after a downstream commit, before the checkpoint (crash.rs: every
    /// failpoint): the record is further; what the workers committed past its watermark
    /// is passed over.
    #[test]
    fn a_record_past_the_checkpoint_wins_and_lists_what_to_pass_over() {
        let r = decide(Found {
            checkpoint: Some(at(100)),
            record: record(300, &[250, 400, 500]),
            ..Found::default()
        })
        .unwrap();
        assert_eq!(r.from, Some(at(300)));
        assert!(r.past_checkpoint);
        assert_eq!(
            r.applied_past,
            [at(400), at(500)],
            "only past the resume position"
        );
        assert!(matches!(r.note, Some(Note::PastCheckpoint { .. })));
        // A record behind the checkpoint (the checkpoint covers it): the checkpoint.
        let r = decide(Found {
            checkpoint: Some(at(300)),
            record: record(100, &[200, 400]),
            ..Found::default()
        })
        .unwrap();
        assert_eq!((r.from, r.past_checkpoint), (Some(at(300)), false));
        assert_eq!(r.applied_past, [at(400)]);
    }

    /// crash.rs: a crash at the first DDL, before any checkpoint: the bootstrap position
    /// stands in for the checkpoint.
    #[test]
    fn the_bootstrap_stands_in_for_a_first_checkpoint() {
        let r = decide(Found {
            bootstrap: Some(at(50)),
            record: record(80, &[]),
            ..Found::default()
        })
        .unwrap();
        assert_eq!((r.from, r.past_checkpoint), (Some(at(80)), true));
        let r = decide(Found {
            bootstrap: Some(at(50)),
            ..Found::default()
        })
        .unwrap();
        assert_eq!(r.from, Some(at(50)));
    }

    /// crash.rs: a new data-dir resumes after the record, not at an older configured
    /// start; a configured start past the record is taken as configured.
    #[test]
    fn a_new_data_dir_takes_the_further_of_the_record_and_the_configured_start() {
        let r = decide(Found {
            record: record(300, &[]),
            configured: Some(at(100)),
            ..Found::default()
        })
        .unwrap();
        assert_eq!(r.from, Some(at(300)));
        assert!(matches!(r.note, Some(Note::RecordPastConfigured { .. })));
        assert!(!r.past_checkpoint);
        let r = decide(Found {
            record: record(300, &[350]),
            configured: Some(at(400)),
            ..Found::default()
        })
        .unwrap();
        assert_eq!(r.from, Some(at(400)));
        assert!(r.applied_past.is_empty(), "all behind the configured start");
        assert!(matches!(r.note, Some(Note::ConfiguredPastRecord { .. })));
    }

    #[test]
    fn a_record_without_a_checkpoint_or_a_configured_start_is_refused() {
        let e = decide(Found {
            record: record(300, &[]),
            ..Found::default()
        })
        .unwrap_err();
        let message = e.to_string();
        assert!(matches!(*e, Cause::RecordWithoutCheckpoint { .. }));
        assert!(
            message.contains("/var/lib/drainer") && message.contains("DELETE …"),
            "{message}"
        );
    }

    #[test]
    fn positions_of_different_histories_are_refused() {
        // A record by GTID, a checkpoint by coordinates only: no common order.
        let e = decide(Found {
            checkpoint: Some(at(100)),
            record: Some(Applied {
                low: gtid("0-1-5"),
                after: Vec::new(),
            }),
            ..Found::default()
        })
        .unwrap_err();
        assert!(
            matches!(
                *e,
                Cause::Unordered {
                    name: "the checkpoint",
                    ..
                }
            ),
            "{e}"
        );
        let e = decide(Found {
            record: Some(Applied {
                low: gtid("0-1-5"),
                after: Vec::new(),
            }),
            configured: Some(at(100)),
            ..Found::default()
        })
        .unwrap_err();
        assert!(matches!(*e, Cause::Unordered { .. }));
    }
}
