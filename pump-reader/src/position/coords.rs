//! Binlog coordinates: a file name and a byte offset in it.

use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

use super::PositionError;

/// `binlog.000042:1234`: the event starting (or the point right after a transaction ending)
/// at byte 1234 of file `binlog.000042`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct BinlogCoords {
    pub file: String,
    pub pos: u64,
}

impl BinlogCoords {
    /// The first event of every binlog file follows its 4-byte magic number.
    pub const FIRST_EVENT: u64 = 4;

    pub fn new(file: impl Into<String>, pos: u64) -> Self {
        BinlogCoords {
            file: file.into(),
            pos,
        }
    }

    /// The file's base name and sequence number: `binlog.000042` → (`binlog`, 42).
    pub fn file_parts(&self) -> Option<(&str, u64)> {
        let (base, number) = self.file.rsplit_once('.')?;
        if number.is_empty() || !number.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        Some((base, number.parse().ok()?))
    }
}

impl PartialOrd for BinlogCoords {
    /// Coordinates in files of one base name order by file number, then position.
    /// Files of different base names (another server, a renamed log) are incomparable.
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        if self.file == other.file {
            return Some(self.pos.cmp(&other.pos));
        }
        let (base_a, n_a) = self.file_parts()?;
        let (base_b, n_b) = other.file_parts()?;
        (base_a == base_b).then(|| n_a.cmp(&n_b).then(self.pos.cmp(&other.pos)))
    }
}

impl fmt::Display for BinlogCoords {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file, self.pos)
    }
}

impl FromStr for BinlogCoords {
    type Err = PositionError;

    /// `file:pos`; the file name may itself contain `:` (the last one separates).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = |why: &str| PositionError::new("binlog coordinates", s, why);
        let (file, pos) = s.rsplit_once(':').ok_or_else(|| bad("expected file:pos"))?;
        if file.is_empty() {
            return Err(bad("the file name is empty"));
        }
        let pos = pos
            .parse()
            .map_err(|_| bad("the position is not a number"))?;
        Ok(BinlogCoords::new(file, pos))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(s: &str) -> BinlogCoords {
        s.parse().unwrap()
    }

    #[test]
    fn round_trips() {
        for s in [
            "binlog.000001:4",
            "mysql-bin.123456:18446744073709551615",
            "a:b.000001:7",
        ] {
            assert_eq!(c(s).to_string(), s);
        }
        assert_eq!(c("a:b.000001:7").file, "a:b.000001");
    }

    #[test]
    fn rejects_what_is_not_coordinates() {
        for s in [
            "",
            "binlog.000001",
            ":4",
            "binlog.000001:",
            "binlog.000001:-1",
            "binlog.000001:x",
        ] {
            let e = s.parse::<BinlogCoords>().unwrap_err();
            assert!(e.to_string().contains(&format!("{s:?}")), "{e}");
        }
    }

    #[test]
    fn orders_by_file_number_then_position() {
        assert!(c("binlog.000001:900") < c("binlog.000002:4"));
        assert!(c("binlog.000009:4") < c("binlog.000010:4"));
        assert!(
            c("binlog.999999:4") < c("binlog.1000000:4"),
            "numbers, not text"
        );
        assert!(c("binlog.000002:5") > c("binlog.000002:4"));
        assert_eq!(
            c("binlog.000002:4").partial_cmp(&c("binlog.000002:4")),
            Some(Ordering::Equal)
        );
    }

    #[test]
    fn other_base_names_are_incomparable() {
        assert_eq!(c("a.000001:4").partial_cmp(&c("b.000001:4")), None);
        assert_eq!(c("noseq:4").partial_cmp(&c("binlog.000001:4")), None);
        assert_eq!(
            c("noseq:4").partial_cmp(&c("noseq:5")),
            Some(Ordering::Less)
        );
    }
}
