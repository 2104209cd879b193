//! MariaDB GTIDs (`domain-server-seq`) and GTID lists (one GTID per replication domain).

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use super::PositionError;

/// One MariaDB GTID: `0-1-100` is sequence number 100 of domain 0, written by server 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MariaGtid {
    pub domain: u32,
    pub server: u32,
    pub seq: u64,
}

impl fmt::Display for MariaGtid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}-{}", self.domain, self.server, self.seq)
    }
}

impl FromStr for MariaGtid {
    type Err = PositionError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = |why: &str| PositionError::new("MariaDB GTID", s, why);
        let mut parts = s.split('-');
        let (Some(d), Some(srv), Some(n), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(bad("expected domain-server-seq"));
        };
        Ok(MariaGtid {
            domain: d
                .parse()
                .map_err(|_| bad("the domain is not a 32-bit number"))?,
            server: srv
                .parse()
                .map_err(|_| bad("the server id is not a 32-bit number"))?,
            seq: n
                .parse()
                .map_err(|_| bad("the sequence number is not a 64-bit number"))?,
        })
    }
}

/// A MariaDB GTID position: the last GTID of each replication domain, as in
/// `@@gtid_binlog_pos` or `@@gtid_slave_pos` (`0-1-100,1-2-7`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct MariaGtidList {
    by_domain: BTreeMap<u32, MariaGtid>,
}

impl MariaGtidList {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn is_empty(&self) -> bool {
        self.by_domain.is_empty()
    }

    /// The last GTID of `domain`, if any.
    pub fn get(&self, domain: u32) -> Option<MariaGtid> {
        self.by_domain.get(&domain).copied()
    }

    /// GTIDs in domain order.
    pub fn iter(&self) -> impl Iterator<Item = MariaGtid> + '_ {
        self.by_domain.values().copied()
    }

    /// Records `gtid` as its domain's last transaction (what a replica does after applying it).
    pub fn advance(&mut self, gtid: MariaGtid) {
        self.by_domain.insert(gtid.domain, gtid);
    }

    /// Keeps, for each domain of either list, the GTID with the higher sequence number.
    pub fn merge(&mut self, other: &MariaGtidList) {
        for gtid in other.iter() {
            match self.by_domain.get(&gtid.domain) {
                Some(mine) if mine.seq >= gtid.seq => {}
                _ => self.advance(gtid),
            }
        }
    }
}

impl FromIterator<MariaGtid> for MariaGtidList {
    fn from_iter<I: IntoIterator<Item = MariaGtid>>(iter: I) -> Self {
        let mut list = MariaGtidList::new();
        for gtid in iter {
            list.advance(gtid);
        }
        list
    }
}

impl PartialOrd for MariaGtidList {
    /// Domain by domain on sequence numbers (a missing domain is before any GTID of it):
    /// `Less` when no domain is ahead of `other`, `Greater` when none is behind, `None`
    /// when some are ahead and some behind, or when one sequence number carries two
    /// server ids (diverged histories after a failover).
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        let mut result = Ordering::Equal;
        let domains = self.by_domain.keys().chain(other.by_domain.keys());
        for domain in domains {
            let a = self.get(*domain);
            let b = other.get(*domain);
            let step = match (a, b) {
                (Some(a), Some(b)) if a.seq == b.seq && a.server != b.server => return None,
                (Some(a), Some(b)) => a.seq.cmp(&b.seq),
                (Some(_), None) => Ordering::Greater,
                (None, _) => Ordering::Less,
            };
            result = match (result, step) {
                (r, Ordering::Equal) => r,
                (Ordering::Equal, s) => s,
                (r, s) if r == s => r,
                _ => return None,
            };
        }
        Some(result)
    }
}

impl fmt::Display for MariaGtidList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, gtid) in self.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{gtid}")?;
        }
        Ok(())
    }
}

impl FromStr for MariaGtidList {
    type Err = PositionError;

    /// `0-1-100,1-2-7` (spaces around entries allowed); `""` is the empty list. A domain
    /// may appear once.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut list = MariaGtidList::new();
        if s.trim().is_empty() {
            return Ok(list);
        }
        for entry in s.split(',') {
            let gtid: MariaGtid = entry
                .trim()
                .parse()
                .map_err(|e: PositionError| PositionError::new("MariaDB GTID list", s, &e.why))?;
            if list.get(gtid.domain).is_some() {
                return Err(PositionError::new(
                    "MariaDB GTID list",
                    s,
                    &format!("domain {} appears twice", gtid.domain),
                ));
            }
            list.advance(gtid);
        }
        Ok(list)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn l(s: &str) -> MariaGtidList {
        s.parse().unwrap()
    }

    #[test]
    fn round_trips_in_domain_order() {
        for s in [
            "",
            "0-1-1",
            "0-1-100,1-2-7",
            "0-4294967295-18446744073709551615",
        ] {
            assert_eq!(l(s).to_string(), s);
        }
        assert_eq!(l(" 5-1-3 , 0-2-9").to_string(), "0-2-9,5-1-3");
    }

    #[test]
    fn rejects_malformed_lists() {
        for s in [
            "0-1",
            "0-1-2-3",
            "x-1-2",
            "0-1-2,",
            "-1-1-1",
            "0-1-2,0-3-4",
            "4294967296-1-1",
        ] {
            let e = s.parse::<MariaGtidList>().unwrap_err();
            assert!(e.to_string().contains("MariaDB GTID list"), "{e}");
        }
    }

    #[test]
    fn advance_replaces_the_domains_gtid_and_merge_keeps_the_newest() {
        let mut list = l("0-1-10,1-2-5");
        list.advance("0-3-11".parse().unwrap());
        assert_eq!(list.to_string(), "0-3-11,1-2-5");
        list.merge(&l("0-1-4,1-2-6,2-9-1"));
        assert_eq!(list.to_string(), "0-3-11,1-2-6,2-9-1");
    }

    #[test]
    fn compares_domain_by_domain() {
        assert_eq!(l("0-1-5").partial_cmp(&l("0-1-5")), Some(Ordering::Equal));
        assert!(l("0-1-5") < l("0-1-6"));
        assert!(l("0-1-5,1-1-1") > l("0-1-5"));
        assert!(l("") < l("0-1-1"));
        assert!(l("0-1-5,1-2-3") < l("0-1-6,1-2-3"));
        assert_eq!(
            l("0-1-5,1-2-4").partial_cmp(&l("0-1-6,1-2-3")),
            None,
            "one ahead, one behind"
        );
        assert_eq!(
            l("0-1-5").partial_cmp(&l("0-2-5")),
            None,
            "diverged histories"
        );
    }
}
