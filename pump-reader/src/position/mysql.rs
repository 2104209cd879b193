//! MySQL GTIDs (`uuid:seq`, MySQL 8.3+ also `uuid:tag:seq`) and GTID sets
//! (`uuid:1-100:200-300,…`).

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use super::PositionError;

/// A server UUID (MySQL's `server_uuid`, the source id of its GTIDs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Uuid(pub [u8; 16]);

impl fmt::Display for Uuid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, b) in self.0.iter().enumerate() {
            if matches!(i, 4 | 6 | 8 | 10) {
                f.write_str("-")?;
            }
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl FromStr for Uuid {
    type Err = PositionError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || PositionError::new("UUID", s, "expected 8-4-4-4-12 hexadecimal digits");
        let groups: Vec<&str> = s.split('-').collect();
        if groups.iter().map(|g| g.len()).collect::<Vec<_>>() != [8, 4, 4, 4, 12] {
            return Err(bad());
        }
        let hex: String = groups.concat();
        let mut bytes = [0u8; 16];
        for (i, byte) in bytes.iter_mut().enumerate() {
            *byte = u8::from_str_radix(hex.get(2 * i..2 * i + 2).ok_or_else(bad)?, 16)
                .map_err(|_| bad())?;
        }
        Ok(Uuid(bytes))
    }
}

/// One MySQL GTID: transaction `seq` of source `uuid`, in the tag's sequence (MySQL 8.3+;
/// the empty tag is the untagged sequence).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MysqlGtid {
    pub uuid: Uuid,
    pub tag: String,
    pub seq: u64,
}

impl fmt::Display for MysqlGtid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.tag.is_empty() {
            write!(f, "{}:{}", self.uuid, self.seq)
        } else {
            write!(f, "{}:{}:{}", self.uuid, self.tag, self.seq)
        }
    }
}

/// A set of MySQL GTIDs, as in `@@gtid_executed`: per source and tag, sorted, merged,
/// inclusive intervals.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct MysqlGtidSet {
    /// (source, tag) → disjoint, non-adjacent inclusive intervals in ascending order.
    sets: BTreeMap<(Uuid, String), Vec<(u64, u64)>>,
}

impl MysqlGtidSet {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn is_empty(&self) -> bool {
        self.sets.is_empty()
    }

    pub fn contains(&self, gtid: &MysqlGtid) -> bool {
        self.sets
            .get(&(gtid.uuid, gtid.tag.clone()))
            .is_some_and(|ivs| ivs.iter().any(|&(a, b)| a <= gtid.seq && gtid.seq <= b))
    }

    /// Adds one GTID.
    pub fn add(&mut self, gtid: &MysqlGtid) {
        self.add_interval(gtid.uuid, &gtid.tag, gtid.seq, gtid.seq);
    }

    /// Adds `first..=last` of a source and tag. `first` must be at least 1 and not above `last`.
    pub fn add_interval(&mut self, uuid: Uuid, tag: &str, first: u64, last: u64) {
        debug_assert!(1 <= first && first <= last);
        let ivs = self.sets.entry((uuid, tag.to_owned())).or_default();
        ivs.push((first, last));
        ivs.sort_unstable();
        let mut merged: Vec<(u64, u64)> = Vec::with_capacity(ivs.len());
        for &(a, b) in ivs.iter() {
            match merged.last_mut() {
                Some(last) if a <= last.1.saturating_add(1) => last.1 = last.1.max(b),
                _ => merged.push((a, b)),
            }
        }
        *ivs = merged;
    }

    /// Adds every GTID of `other`.
    pub fn union(&mut self, other: &MysqlGtidSet) {
        for ((uuid, tag), ivs) in &other.sets {
            for &(a, b) in ivs {
                self.add_interval(*uuid, tag, a, b);
            }
        }
    }

    /// Whether every GTID of `self` is in `other`.
    pub fn is_subset(&self, other: &MysqlGtidSet) -> bool {
        self.sets.iter().all(|(key, ivs)| {
            let Some(theirs) = other.sets.get(key) else {
                return false;
            };
            ivs.iter()
                .all(|&(a, b)| theirs.iter().any(|&(c, d)| c <= a && b <= d))
        })
    }

    /// (source, tag, intervals) in order, for encoding.
    pub fn iter(&self) -> impl Iterator<Item = (Uuid, &str, &[(u64, u64)])> {
        self.sets
            .iter()
            .map(|((uuid, tag), ivs)| (*uuid, tag.as_str(), ivs.as_slice()))
    }
}

impl PartialOrd for MysqlGtidSet {
    /// Set inclusion: `Less` for a proper subset, `Greater` for a proper superset, `None`
    /// when each has a GTID the other lacks.
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        match (self.is_subset(other), other.is_subset(self)) {
            (true, true) => Some(Ordering::Equal),
            (true, false) => Some(Ordering::Less),
            (false, true) => Some(Ordering::Greater),
            (false, false) => None,
        }
    }
}

impl fmt::Display for MysqlGtidSet {
    /// MySQL's own form: `uuid:1-5:7:tag:1-3,uuid2:…`, sources in order, the untagged
    /// intervals of a source before its tags.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut previous: Option<Uuid> = None;
        for ((uuid, tag), ivs) in &self.sets {
            if previous != Some(*uuid) {
                if previous.is_some() {
                    f.write_str(",")?;
                }
                write!(f, "{uuid}")?;
                previous = Some(*uuid);
            }
            if !tag.is_empty() {
                write!(f, ":{tag}")?;
            }
            for &(a, b) in ivs {
                if a == b {
                    write!(f, ":{a}")?;
                } else {
                    write!(f, ":{a}-{b}")?;
                }
            }
        }
        Ok(())
    }
}

impl FromStr for MysqlGtidSet {
    type Err = PositionError;

    /// `uuid:1-5:7[:tag:1-3],…`; `""` is the empty set. Whitespace around entries (MySQL
    /// prints newlines after commas) is ignored; UUIDs in any case.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = |why: String| PositionError::new("MySQL GTID set", s, &why);
        let mut set = MysqlGtidSet::new();
        if s.trim().is_empty() {
            return Ok(set);
        }
        for entry in s.split(',') {
            let mut parts = entry.trim().split(':');
            let uuid: Uuid = parts
                .next()
                .unwrap_or_default()
                .parse()
                .map_err(|e: PositionError| bad(e.why))?;
            let mut tag = String::new();
            let mut any_interval = false;
            for part in parts {
                if let Some((a, b)) = parse_interval(part) {
                    if a == 0 || a > b {
                        return Err(bad(format!(
                            "interval {part:?} must be first-last with 1 <= first <= last"
                        )));
                    }
                    set.add_interval(uuid, &tag, a, b);
                    any_interval = true;
                } else if is_tag(part) {
                    tag = part.to_ascii_lowercase();
                } else {
                    return Err(bad(format!("{part:?} is neither an interval nor a tag")));
                }
            }
            if !any_interval {
                return Err(bad(format!("{uuid} has no interval")));
            }
        }
        Ok(set)
    }
}

/// `a-b` or `a`, each at most 2^63 − 1 (MySQL's largest GTID number).
fn parse_interval(part: &str) -> Option<(u64, u64)> {
    let number = |s: &str| s.parse::<u64>().ok().filter(|n| *n <= i64::MAX as u64);
    match part.split_once('-') {
        Some((a, b)) => Some((number(a)?, number(b)?)),
        None => number(part).map(|n| (n, n)),
    }
}

/// A GTID tag: a letter or `_`, then up to 31 letters, digits or `_`.
fn is_tag(part: &str) -> bool {
    let mut chars = part.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && part.len() <= 32
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "3e11fa47-71ca-11e1-9e33-c80aa9429562";
    const B: &str = "4e11fa47-71ca-11e1-9e33-c80aa9429562";

    fn s(text: &str) -> MysqlGtidSet {
        text.parse().unwrap()
    }

    #[test]
    fn round_trips_merging_and_sorting_intervals() {
        for text in [
            "",
            &format!("{A}:1-5:7:9-11"),
            &format!("{A}:1,{B}:1-3"),
            &format!("{A}:1-2:tag_x:1-3"),
        ] {
            assert_eq!(s(text).to_string(), *text);
        }
        let messy = format!("{}:7:1-3:4-5:2,\n{A}:9", B.to_uppercase());
        assert_eq!(s(&messy).to_string(), format!("{A}:9,{B}:1-5:7"));
    }

    #[test]
    fn rejects_malformed_sets() {
        for text in [
            A.to_string(),
            format!("{A}:0-3"),
            format!("{A}:5-1"),
            format!("{A}:1-x"),
            format!("{A}:tag"),
            "3e11fa47:1".to_string(),
            format!("{A}:1,"),
            format!("{A}:-1"),
            format!("{A}:1-9223372036854775808"),
        ] {
            let e = text.parse::<MysqlGtidSet>().unwrap_err();
            assert!(e.to_string().contains("MySQL GTID set"), "{e}");
        }
    }

    #[test]
    fn add_union_and_contains() {
        let uuid: Uuid = A.parse().unwrap();
        let mut set = s(&format!("{A}:1-3"));
        set.add(&MysqlGtid {
            uuid,
            tag: String::new(),
            seq: 5,
        });
        assert_eq!(set.to_string(), format!("{A}:1-3:5"));
        set.add(&MysqlGtid {
            uuid,
            tag: String::new(),
            seq: 4,
        });
        assert_eq!(set.to_string(), format!("{A}:1-5"));
        set.union(&s(&format!("{B}:2,{A}:6-8")));
        assert_eq!(set.to_string(), format!("{A}:1-8,{B}:2"));
        assert!(set.contains(&MysqlGtid {
            uuid,
            tag: String::new(),
            seq: 8
        }));
        assert!(!set.contains(&MysqlGtid {
            uuid,
            tag: String::new(),
            seq: 9
        }));
        assert!(!set.contains(&MysqlGtid {
            uuid,
            tag: "t".into(),
            seq: 1
        }));
    }

    #[test]
    fn compares_by_inclusion() {
        let small = s(&format!("{A}:1-5"));
        let big = s(&format!("{A}:1-9,{B}:1"));
        assert!(small < big);
        assert!(big > small);
        assert_eq!(small.partial_cmp(&small.clone()), Some(Ordering::Equal));
        assert_eq!(
            s(&format!("{A}:1-5")).partial_cmp(&s(&format!("{A}:1-4,{B}:1"))),
            None
        );
        assert_eq!(
            s(&format!("{A}:1-3:5")).partial_cmp(&s(&format!("{A}:1-4"))),
            None
        );
        assert!(MysqlGtidSet::new() < small);
    }
}
