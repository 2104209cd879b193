//! What a certificate says of itself: its names and when it is valid. Read straight
//! from the DER (the few fields needed), for messages, `check-config`'s expiry warning and
//! the relay's list of accepted client names; the chain itself is checked by webpki.

use std::fmt;
use std::net::IpAddr;

/// The names and validity of one certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertInfo {
    /// The subject's common name (CN), if it has one.
    pub common_name: Option<String>,
    /// subjectAltName entries: DNS names and IP addresses, as text.
    pub alt_names: Vec<String>,
    /// Whether it has a subjectAltName extension at all (perhaps of other kinds of name).
    pub has_alt_names: bool,
    /// Unix seconds.
    pub not_before: i64,
    /// Unix seconds.
    pub not_after: i64,
}

impl CertInfo {
    /// Reads a DER certificate; `None` when it is not one.
    pub fn parse(der: &[u8]) -> Option<CertInfo> {
        let (cert, _) = Der::new(der).next(SEQUENCE)?;
        let (tbs, _) = Der::new(cert).next(SEQUENCE)?;
        let mut tbs = Der::new(tbs);
        tbs.skip_if(VERSION);
        tbs.next(INTEGER)?; // serial number
        tbs.next(SEQUENCE)?; // signature algorithm
        tbs.next(SEQUENCE)?; // issuer
        let (validity, _) = tbs.next(SEQUENCE)?;
        let mut validity = Der::new(validity);
        let not_before = validity.time()?;
        let not_after = validity.time()?;
        let (subject, _) = tbs.next(SEQUENCE)?;
        tbs.next(SEQUENCE)?; // public key
        let mut alt_names = None;
        while let Some((tag, body)) = tbs.any() {
            if tag == EXTENSIONS {
                alt_names = subject_alt_names(body);
            }
        }
        Some(CertInfo {
            common_name: common_name(subject),
            has_alt_names: alt_names.is_some(),
            alt_names: alt_names.unwrap_or_default(),
            not_before,
            not_after,
        })
    }

    /// Every name the certificate is for: its subjectAltName DNS names and IP addresses;
    /// the common name only for a certificate without a subjectAltName extension.
    pub fn names(&self) -> Vec<&str> {
        if !self.has_alt_names {
            self.common_name.iter().map(String::as_str).collect()
        } else {
            self.alt_names.iter().map(String::as_str).collect()
        }
    }
}

impl fmt::Display for CertInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names = self.names();
        if names.is_empty() {
            write!(f, "a certificate without names")?;
        } else {
            write!(f, "the certificate of {}", names.join(", "))?;
        }
        write!(f, ", valid until {}", utc(self.not_after))
    }
}

const INTEGER: u8 = 0x02;
const OCTET_STRING: u8 = 0x04;
const OID: u8 = 0x06;
const SEQUENCE: u8 = 0x30;
const SET: u8 = 0x31;
const UTC_TIME: u8 = 0x17;
const GENERALIZED_TIME: u8 = 0x18;
const VERSION: u8 = 0xA0;
const EXTENSIONS: u8 = 0xA3;
const DNS_NAME: u8 = 0x82;
const IP_ADDRESS: u8 = 0x87;
/// 2.5.4.3
const COMMON_NAME: &[u8] = &[0x55, 0x04, 0x03];
/// 2.5.29.17
const SUBJECT_ALT_NAME: &[u8] = &[0x55, 0x1D, 0x11];

/// A cursor over DER elements.
struct Der<'a>(&'a [u8]);

impl<'a> Der<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        Der(bytes)
    }

    /// The next element, whatever its tag.
    fn any(&mut self) -> Option<(u8, &'a [u8])> {
        let (&tag, rest) = self.0.split_first()?;
        let (&first, rest) = rest.split_first()?;
        let (len, rest) = if first < 0x80 {
            (usize::from(first), rest)
        } else {
            let n = usize::from(first & 0x7F);
            if n == 0 || n > 4 || rest.len() < n {
                return None;
            }
            let len = rest[..n]
                .iter()
                .fold(0usize, |acc, b| acc << 8 | usize::from(*b));
            (len, &rest[n..])
        };
        if rest.len() < len {
            return None;
        }
        let (body, rest) = rest.split_at(len);
        self.0 = rest;
        Some((tag, body))
    }

    /// The next element, which must have `tag`; its body and what follows it.
    fn next(&mut self, tag: u8) -> Option<(&'a [u8], &'a [u8])> {
        match self.any()? {
            (t, body) if t == tag => Some((body, self.0)),
            _ => None,
        }
    }

    fn skip_if(&mut self, tag: u8) {
        if self.0.first() == Some(&tag) {
            self.any();
        }
    }

    /// A UTCTime or GeneralizedTime, as unix seconds.
    fn time(&mut self) -> Option<i64> {
        let (tag, body) = self.any()?;
        let text = std::str::from_utf8(body).ok()?.strip_suffix('Z')?;
        let (year, rest) = match tag {
            UTC_TIME => {
                let yy: i64 = text.get(..2)?.parse().ok()?;
                // RFC 5280: two-digit years 50–99 are 19xx.
                (if yy >= 50 { 1900 + yy } else { 2000 + yy }, text.get(2..)?)
            }
            GENERALIZED_TIME => (text.get(..4)?.parse().ok()?, text.get(4..)?),
            _ => return None,
        };
        let field = |i: usize| -> Option<i64> { rest.get(i..i + 2)?.parse().ok() };
        let (month, day) = (field(0)?, field(2)?);
        let (hour, minute, second) = (field(4)?, field(6)?, field(8)?);
        Some(days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second)
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date.
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Unix seconds as `YYYY-MM-DD HH:MM:SS UTC`.
pub fn utc(unix: i64) -> String {
    let (year, month, day, secs) = civil(unix);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

/// Unix seconds as the proleptic Gregorian year, month, day, and seconds into the day.
pub fn civil(unix: i64) -> (i64, i64, i64, i64) {
    let days = unix.div_euclid(86_400);
    let secs = unix.rem_euclid(86_400);
    // The inverse of days_from_civil.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day, secs)
}

fn common_name(name: &[u8]) -> Option<String> {
    let mut rdns = Der::new(name);
    while let Some((tag, set)) = rdns.any() {
        if tag != SET {
            continue;
        }
        let mut set = Der::new(set);
        while let Some((body, _)) = set.next(SEQUENCE) {
            let mut attr = Der::new(body);
            let (oid, _) = attr.next(OID)?;
            if oid == COMMON_NAME {
                let (_, value) = attr.any()?;
                return Some(String::from_utf8_lossy(value).into_owned());
            }
        }
    }
    None
}

fn subject_alt_names(extensions: &[u8]) -> Option<Vec<String>> {
    let (list, _) = Der::new(extensions).next(SEQUENCE)?;
    let mut list = Der::new(list);
    while let Some((ext, _)) = list.next(SEQUENCE) {
        let mut ext = Der::new(ext);
        let (oid, _) = ext.next(OID)?;
        if oid != SUBJECT_ALT_NAME {
            continue;
        }
        ext.skip_if(0x01); // critical
        let (value, _) = ext.next(OCTET_STRING)?;
        let (names, _) = Der::new(value).next(SEQUENCE)?;
        let mut names = Der::new(names);
        let mut out = Vec::new();
        while let Some((tag, body)) = names.any() {
            match tag {
                DNS_NAME => out.push(String::from_utf8_lossy(body).into_owned()),
                IP_ADDRESS => match body.len() {
                    4 => out.push(IpAddr::from(<[u8; 4]>::try_from(body).ok()?).to_string()),
                    16 => out.push(IpAddr::from(<[u8; 16]>::try_from(body).ok()?).to_string()),
                    _ => {}
                },
                _ => {}
            }
        }
        return Some(out);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_convert_both_ways() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        assert_eq!(utc(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(utc(951_782_400 + 3661), "2000-02-29 01:01:01 UTC");
        assert_eq!(utc(4_102_444_800), "2100-01-01 00:00:00 UTC");
    }

    #[test]
    fn times_of_both_encodings() {
        let utc_time = [&[UTC_TIME, 13][..], b"491231235959Z"].concat();
        assert_eq!(Der::new(&utc_time).time(), Some(2_524_607_999));
        let old = [&[UTC_TIME, 13][..], b"700101000000Z"].concat();
        assert_eq!(Der::new(&old).time(), Some(0));
        let generalized = [&[GENERALIZED_TIME, 15][..], b"20500101000000Z"].concat();
        assert_eq!(Der::new(&generalized).time(), Some(2_524_608_000));
    }

    #[test]
    fn garbage_is_not_a_certificate() {
        assert_eq!(CertInfo::parse(b""), None);
        assert_eq!(CertInfo::parse(&[0x30, 0x85, 1, 2, 3, 4, 5]), None);
        assert_eq!(CertInfo::parse(&[0x30, 0x03, 0x02, 0x01]), None);
    }
}
