//! Positions as types: binlog coordinates, MariaDB GTID lists, MySQL GTID sets.
//!
//! Every type prints in the server's own notation and parses it back ([`FromStr`] and
//! [`Display`](fmt::Display) round-trip). Comparisons are [`PartialOrd`]: `None` means
//! "incomparable" (files of another server, GTID states that each have something the
//! other lacks), never a guess.

mod coords;
mod mariadb;
mod mysql;
mod record;

use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

pub use coords::BinlogCoords;
pub use mariadb::{MariaGtid, MariaGtidList};
pub use mysql::{MysqlGtid, MysqlGtidSet, Uuid};
pub use record::PositionRecord;

/// Text that is not the position it should be.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {what} {text:?}: {why}")]
pub struct PositionError {
    pub what: &'static str,
    pub text: String,
    pub why: String,
}

impl PositionError {
    pub(crate) fn new(what: &'static str, text: &str, why: &str) -> Self {
        PositionError {
            what,
            text: text.to_owned(),
            why: why.to_owned(),
        }
    }
}

/// The GTID of one transaction, in its server's flavour.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Gtid {
    MariaDb(MariaGtid),
    MySql(MysqlGtid),
}

impl fmt::Display for Gtid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Gtid::MariaDb(g) => g.fmt(f),
            Gtid::MySql(g) => g.fmt(f),
        }
    }
}

/// A GTID state (what has been executed), in one server flavour.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum GtidSet {
    MariaDb(MariaGtidList),
    MySql(MysqlGtidSet),
}

impl GtidSet {
    /// Records `gtid` as executed. A GTID of the other flavour is refused.
    pub fn advance(&mut self, gtid: &Gtid) -> Result<(), PositionError> {
        match (self, gtid) {
            (GtidSet::MariaDb(list), Gtid::MariaDb(g)) => list.advance(*g),
            (GtidSet::MySql(set), Gtid::MySql(g)) => set.add(g),
            (set, gtid) => {
                return Err(PositionError::new(
                    "GTID",
                    &gtid.to_string(),
                    &format!("cannot advance the GTID state {set} of the other server flavour"),
                ))
            }
        }
        Ok(())
    }

    pub fn is_empty(&self) -> bool {
        match self {
            GtidSet::MariaDb(l) => l.is_empty(),
            GtidSet::MySql(s) => s.is_empty(),
        }
    }
}

impl PartialOrd for GtidSet {
    /// As the flavour's own comparison; states of different flavours are incomparable.
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        match (self, other) {
            (GtidSet::MariaDb(a), GtidSet::MariaDb(b)) => a.partial_cmp(b),
            (GtidSet::MySql(a), GtidSet::MySql(b)) => a.partial_cmp(b),
            _ => None,
        }
    }
}

impl fmt::Display for GtidSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GtidSet::MariaDb(l) => l.fmt(f),
            GtidSet::MySql(s) => s.fmt(f),
        }
    }
}

impl FromStr for GtidSet {
    type Err = PositionError;

    /// A MariaDB GTID list or a MySQL GTID set, told apart by their syntax. The empty
    /// string is ambiguous and refused: parse the flavour's own type for an empty state.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.trim().is_empty() {
            return Err(PositionError::new(
                "GTID state",
                s,
                "empty: the server flavour is unknown",
            ));
        }
        let maria = match s.parse::<MariaGtidList>() {
            Ok(list) => return Ok(GtidSet::MariaDb(list)),
            Err(e) => e,
        };
        s.parse::<MysqlGtidSet>()
            .map(GtidSet::MySql)
            .map_err(|mysql| {
                PositionError::new(
                    "GTID state",
                    s,
                    &format!(
                    "neither a MariaDB GTID list (domain-server-seq,…: {}) nor a MySQL GTID set \
                     (uuid:first-last,…: {})",
                    maria.why, mysql.why
                ),
                )
            })
    }
}

/// Where a transaction ends: the binlog coordinates right after its commit event and, when
/// the server uses GTIDs, the GTID state including it. Resuming at a `Position` reads the
/// next transaction, never this one again.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Position {
    pub coords: BinlogCoords,
    pub gtids: Option<GtidSet>,
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.gtids {
            // A GTID start before the stream has named its file.
            Some(g) if self.coords.file.is_empty() => write!(f, "gtid {g}"),
            Some(g) => write!(f, "{} (gtid {})", self.coords, g),
            None => write!(f, "{}", self.coords),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gtid_states_tell_their_flavour_by_syntax() {
        let m: GtidSet = "0-1-5,1-2-3".parse().unwrap();
        assert!(matches!(m, GtidSet::MariaDb(_)));
        let y: GtidSet = "3e11fa47-71ca-11e1-9e33-c80aa9429562:1-5".parse().unwrap();
        assert!(matches!(y, GtidSet::MySql(_)));
        assert_eq!(m.partial_cmp(&y), None);
        let e = "".parse::<GtidSet>().unwrap_err();
        assert!(e.to_string().contains("flavour"), "{e}");
        let e = "0-1".parse::<GtidSet>().unwrap_err();
        assert!(e.to_string().contains("neither a MariaDB GTID list"), "{e}");
    }

    #[test]
    fn advance_keeps_to_the_flavour() {
        let mut m: GtidSet = "0-1-5".parse().unwrap();
        m.advance(&Gtid::MariaDb("0-1-6".parse().unwrap())).unwrap();
        assert_eq!(m.to_string(), "0-1-6");
        let mysql = Gtid::MySql(MysqlGtid {
            uuid: "3e11fa47-71ca-11e1-9e33-c80aa9429562".parse().unwrap(),
            tag: String::new(),
            seq: 1,
        });
        assert!(m.advance(&mysql).is_err());
    }

    #[test]
    fn a_position_prints_coordinates_and_gtids() {
        let p = Position {
            coords: BinlogCoords::new("binlog.000002", 1234),
            gtids: Some("0-1-9".parse().unwrap()),
        };
        assert_eq!(p.to_string(), "binlog.000002:1234 (gtid 0-1-9)");
        let by_gtid = Position {
            coords: BinlogCoords::new("", 4),
            gtids: p.gtids.clone(),
        };
        assert_eq!(by_gtid.to_string(), "gtid 0-1-9");
    }
}
