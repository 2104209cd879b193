//! What a QUERY event records of the session that ran its statement (its status
//! variables), and the statement's text in the session's character set.
//!
//! A replica runs each statement in the session context its event carries: SQL mode,
//! character sets, time zone, foreign-key and unique checks, auto-increment settings. The
//! same statement in another context can mean something else (`"t"` is a name under
//! `ANSI_QUOTES` and a string otherwise; a TIMESTAMP literal is another instant in
//! another time zone), so the drainer replays and parses it with this context.

use std::fmt;

use super::{Cursor, DecodeError};

/// A QUERY event's status variables, as far as they are known (see [`SessionVars::decode`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SessionVars {
    /// The session's `OPTION_*` bits (`flags2`): see [`SessionVars::foreign_key_checks`] and
    /// [`SessionVars::unique_checks`].
    pub flags2: Option<u32>,
    /// `sql_mode` as the server's bitmask.
    pub sql_mode: Option<u64>,
    /// `auto_increment_increment` and `auto_increment_offset`.
    pub auto_increment: Option<(u16, u16)>,
    /// `character_set_client`, `collation_connection` and `collation_server`, as
    /// collation ids.
    pub charset: Option<[u16; 3]>,
    /// `time_zone`, written when the statement used it (`+05:00`, `Europe/Paris`,
    /// `SYSTEM`).
    pub time_zone: Option<String>,
    /// `lc_time_names`, as the server's locale number.
    pub lc_time_names: Option<u16>,
    /// `collation_database`, as a collation id.
    pub collation_database: Option<u16>,
    /// MySQL's `explicit_defaults_for_timestamp`.
    pub explicit_defaults_for_timestamp: Option<bool>,
    /// The microseconds of the statement's start time (MariaDB), after the header's
    /// seconds.
    pub micros: Option<u32>,
    /// A status variable this reader does not know, after which nothing more could be
    /// read (the ones before it are kept).
    pub unknown: Option<u8>,
}

/// `flags2` bits (`OPTION_*` of the server).
const OPTION_NO_FOREIGN_KEY_CHECKS: u32 = 1 << 26;
const OPTION_RELAXED_UNIQUE_CHECKS: u32 = 1 << 27;
const OPTION_AUTO_IS_NULL: u32 = 1 << 14;

/// `sql_mode` bits (the same in MariaDB and MySQL).
pub const MODE_ANSI_QUOTES: u64 = 1 << 2;
pub const MODE_NO_BACKSLASH_ESCAPES: u64 = 1 << 20;
/// MariaDB's `sql_mode = ORACLE`: another grammar.
pub const MODE_ORACLE: u64 = 1 << 9;

impl SessionVars {
    /// Reads the status variables block of a QUERY event. A variable this reader does not
    /// know ends the reading (their lengths are not written): what came before is kept,
    /// and [`SessionVars::unknown`] names it.
    pub fn decode(block: &[u8]) -> Result<SessionVars, DecodeError> {
        let mut v = SessionVars::default();
        let mut c = Cursor::new(block);
        while !c.is_empty() {
            let code = c.u8("status variable code")?;
            match code {
                0 => v.flags2 = Some(c.u32_le("flags2")?),
                1 => v.sql_mode = Some(c.u64_le("sql_mode")?),
                // Catalog (old servers): length, name, NUL.
                2 => {
                    let n = usize::from(c.u8("catalog length")?);
                    c.skip(n + 1, "catalog")?;
                }
                3 => {
                    let increment = c.u16_le("auto_increment_increment")?;
                    let offset = c.u16_le("auto_increment_offset")?;
                    v.auto_increment = Some((increment, offset));
                }
                4 => {
                    v.charset = Some([
                        c.u16_le("character_set_client")?,
                        c.u16_le("collation_connection")?,
                        c.u16_le("collation_server")?,
                    ])
                }
                5 => {
                    let n = usize::from(c.u8("time zone length")?);
                    let name = c.bytes(n, "time zone")?;
                    v.time_zone = Some(String::from_utf8_lossy(name).into_owned());
                }
                6 => {
                    let n = usize::from(c.u8("catalog length")?);
                    c.skip(n, "catalog")?;
                }
                7 => v.lc_time_names = Some(c.u16_le("lc_time_names")?),
                8 => v.collation_database = Some(c.u16_le("collation_database")?),
                9 => c.skip(8, "table map for update")?,
                10 => c.skip(4, "master data written")?,
                // The definer of a routine or view statement: user, then host.
                11 => {
                    for what in ["invoker user", "invoker host"] {
                        let n = usize::from(c.u8(what)?);
                        c.skip(n, what)?;
                    }
                }
                // The databases a statement changed: a count (254: too many), then names.
                12 => {
                    let count = c.u8("updated databases count")?;
                    if count != 254 {
                        for _ in 0..count {
                            let rest = c.peek_rest();
                            let end = rest.iter().position(|&b| b == 0).ok_or(
                                DecodeError::Truncated {
                                    what: "updated database name",
                                    offset: c.offset(),
                                    needed: rest.len() + 1,
                                    left: rest.len(),
                                },
                            )?;
                            c.skip(end + 1, "updated database name")?;
                        }
                    }
                }
                13 => c.skip(3, "microseconds")?,
                // MySQL: commit timestamps (obsolete), explicit_defaults_for_timestamp,
                // DDL logged with an xid, the utf8mb4 default collation, sql_require_primary_key,
                // default_table_encryption.
                14 => c.skip(8, "commit timestamp")?,
                15 => c.skip(8, "commit timestamp")?,
                16 => v.explicit_defaults_for_timestamp = Some(c.u8("explicit_defaults")? != 0),
                17 => c.skip(8, "ddl xid")?,
                18 => c.skip(2, "default utf8mb4 collation")?,
                19 => c.skip(1, "sql_require_primary_key")?,
                20 => c.skip(1, "default_table_encryption")?,
                // MariaDB: the start time's microseconds, an xid, more GTID flags.
                128 => v.micros = Some(c.uint_le(3, "microseconds")? as u32),
                129 => c.skip(8, "xid")?,
                // More GTID flags; with a two-phase ALTER's commit or rollback (flags 4,
                // 8), the sequence number of its start.
                130 => {
                    if c.u8("gtid flags3")? & (4 | 8) != 0 {
                        c.skip(8, "start alter sequence number")?;
                    }
                }
                // character_set_collations (MariaDB 11.2 and later): a count, then pairs
                // of a character set and its default collation. Not replayed: the
                // downstream's own defaults apply (docs/operations.md §7).
                131 => {
                    let count = usize::from(c.u8("character set collations count")?);
                    c.skip(4 * count, "character set collations")?;
                }
                other => {
                    v.unknown = Some(other);
                    break;
                }
            }
        }
        Ok(v)
    }

    /// Whether the session checked foreign keys (`foreign_key_checks`).
    pub fn foreign_key_checks(&self) -> bool {
        self.flags2
            .is_none_or(|f| f & OPTION_NO_FOREIGN_KEY_CHECKS == 0)
    }

    /// Whether the session checked unique keys strictly (`unique_checks`).
    pub fn unique_checks(&self) -> bool {
        self.flags2
            .is_none_or(|f| f & OPTION_RELAXED_UNIQUE_CHECKS == 0)
    }

    /// `sql_auto_is_null`.
    pub fn auto_is_null(&self) -> bool {
        self.flags2.is_some_and(|f| f & OPTION_AUTO_IS_NULL != 0)
    }

    /// Whether `mode` (one of the `MODE_*` bits) was on.
    pub fn sql_mode_has(&self, mode: u64) -> bool {
        self.sql_mode.is_some_and(|m| m & mode != 0)
    }

    /// The client character set's name (`latin1`), when known.
    pub fn client_charset(&self) -> Option<&'static str> {
        charset_of(self.charset?[0])
    }
}

/// The character set of collation `id` (MariaDB's and MySQL's numbering; MariaDB's
/// NO PAD variants are the base id + 1024, its UCA 14.0 ones 2048 and up).
pub fn charset_of(id: u16) -> Option<&'static str> {
    const CLASSIC: &[(&str, &[u16])] = &[
        ("big5", &[1, 84]),
        ("latin2", &[2, 9, 21, 27, 77]),
        ("dec8", &[3, 69]),
        ("cp850", &[4, 80]),
        ("latin1", &[5, 8, 15, 31, 47, 48, 49, 94]),
        ("hp8", &[6, 72]),
        ("koi8r", &[7, 74]),
        ("swe7", &[10, 82]),
        ("ascii", &[11, 65]),
        ("ujis", &[12, 91]),
        ("sjis", &[13, 88]),
        ("cp1251", &[14, 23, 50, 51, 52]),
        ("hebrew", &[16, 71]),
        ("tis620", &[18, 89]),
        ("euckr", &[19, 85]),
        ("latin7", &[20, 41, 42, 79]),
        ("koi8u", &[22, 75]),
        ("gb2312", &[24, 86]),
        ("greek", &[25, 70]),
        ("cp1250", &[26, 34, 44, 66, 99]),
        ("gbk", &[28, 87]),
        ("cp1257", &[29, 58, 59]),
        ("latin5", &[30, 78]),
        ("armscii8", &[32, 64]),
        ("utf8mb3", &[33, 83]),
        ("ucs2", &[35, 90]),
        ("cp866", &[36, 68]),
        ("keybcs2", &[37, 73]),
        ("macce", &[38, 43]),
        ("macroman", &[39, 53]),
        ("cp852", &[40, 81]),
        ("utf8mb4", &[45, 46]),
        ("utf16", &[54, 55]),
        ("utf16le", &[56, 62]),
        ("cp1256", &[57, 67]),
        ("utf32", &[60, 61]),
        ("binary", &[63]),
        ("geostd8", &[92, 93]),
        ("cp932", &[95, 96]),
        ("eucjpms", &[97, 98]),
    ];
    let id = match id {
        2048..=2303 => return Some("utf8mb3"),
        2304..=2559 => return Some("utf8mb4"),
        2560..=2815 => return Some("ucs2"),
        2816..=3071 => return Some("utf16"),
        3072..=3327 => return Some("utf32"),
        1024..=2047 => id - 1024,
        other => other,
    };
    match id {
        // The UCA collations of the Unicode sets, and MySQL 8's utf8mb4 ones.
        101..=124 => Some("utf16"),
        128..=159 => Some("ucs2"),
        160..=183 => Some("utf32"),
        192..=223 => Some("utf8mb3"),
        224..=247 | 255..=323 => Some("utf8mb4"),
        576..=578 => Some("utf8mb3"),
        608..=610 => Some("utf8mb4"),
        640..=642 => Some("ucs2"),
        672..=674 => Some("utf16"),
        736..=738 => Some("utf32"),
        _ => CLASSIC
            .iter()
            .find(|(_, ids)| ids.contains(&id))
            .map(|(name, _)| *name),
    }
}

/// Why a statement's bytes could not be read as text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Undecodable {
    pub charset: String,
}

impl fmt::Display for Undecodable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the statement's bytes are not valid text in its session's character set ({})",
            self.charset
        )
    }
}

/// `bytes`, sent by a client whose `character_set_client` is collation `client`, as
/// UTF-8. ASCII and UTF-8 text stays as it is; the single- and multi-byte sets a client
/// can use are converted; bytes invalid in their set are an error (never replaced).
pub fn decode_text(bytes: &[u8], client: Option<u16>) -> Result<String, Undecodable> {
    let charset = client.and_then(charset_of);
    if bytes.is_ascii() {
        return Ok(String::from_utf8(bytes.to_vec()).expect("ASCII is UTF-8"));
    }
    let undecodable = || Undecodable {
        charset: charset.map_or_else(
            || format!("collation id {}", client.unwrap_or(0)),
            str::to_owned,
        ),
    };
    let encoding = match charset {
        // Without the variable (old servers), and for the Unicode sets and binary
        // clients: the bytes as they are, which must be UTF-8.
        None | Some("utf8mb3" | "utf8mb4" | "binary" | "ascii") => {
            return String::from_utf8(bytes.to_vec()).map_err(|_| undecodable())
        }
        // MariaDB's and MySQL's latin1 is Windows-1252.
        Some("latin1") => encoding_rs::WINDOWS_1252,
        Some("latin2") => encoding_rs::ISO_8859_2,
        Some("latin5") => encoding_rs::WINDOWS_1254,
        Some("latin7") => encoding_rs::ISO_8859_13,
        Some("greek") => encoding_rs::ISO_8859_7,
        Some("hebrew") => encoding_rs::ISO_8859_8,
        Some("cp1250") => encoding_rs::WINDOWS_1250,
        Some("cp1251") => encoding_rs::WINDOWS_1251,
        Some("cp1256") => encoding_rs::WINDOWS_1256,
        Some("cp1257") => encoding_rs::WINDOWS_1257,
        Some("cp866") => encoding_rs::IBM866,
        Some("koi8r") => encoding_rs::KOI8_R,
        Some("koi8u") => encoding_rs::KOI8_U,
        Some("macroman") => encoding_rs::MACINTOSH,
        Some("tis620") => encoding_rs::WINDOWS_874,
        Some("big5") => encoding_rs::BIG5,
        Some("gbk" | "gb2312") => encoding_rs::GBK,
        Some("sjis" | "cp932") => encoding_rs::SHIFT_JIS,
        Some("ujis" | "eucjpms") => encoding_rs::EUC_JP,
        Some("euckr") => encoding_rs::EUC_KR,
        Some(_) => return Err(undecodable()),
    };
    encoding
        .decode_without_bom_handling_and_without_replacement(bytes)
        .map(|text| text.into_owned())
        .ok_or_else(undecodable)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_variables_of_a_mariadb_ddl_event() {
        let mut block = vec![0];
        block.extend((1u32 << 26).to_le_bytes()); // foreign_key_checks = 0
        block.push(1);
        block.extend((MODE_ANSI_QUOTES | MODE_NO_BACKSLASH_ESCAPES).to_le_bytes());
        block.push(3);
        block.extend([2, 0, 1, 0]);
        block.push(4);
        block.extend([8, 0, 8, 0, 45, 0]);
        block.push(5);
        block.push(6);
        block.extend(b"+05:00");
        block.push(11);
        block.extend([4]);
        block.extend(b"root");
        block.extend([9]);
        block.extend(b"localhost");
        block.push(12);
        block.extend([2]);
        block.extend(b"a\0bb\0");
        block.push(128);
        block.extend([0x40, 0xe2, 0x01]); // 123456
        let v = SessionVars::decode(&block).unwrap();
        assert!(!v.foreign_key_checks() && v.unique_checks());
        assert!(v.sql_mode_has(MODE_ANSI_QUOTES) && v.sql_mode_has(MODE_NO_BACKSLASH_ESCAPES));
        assert_eq!(v.auto_increment, Some((2, 1)));
        assert_eq!(v.charset, Some([8, 8, 45]));
        assert_eq!(v.client_charset(), Some("latin1"));
        assert_eq!(v.time_zone.as_deref(), Some("+05:00"));
        assert_eq!(v.micros, Some(123_456));
        assert_eq!(v.unknown, None);
        // MariaDB 11.5 writes character_set_collations first; a two-phase ALTER's commit
        // carries its start's sequence number after the flags.
        let mut block = vec![131, 2];
        block.extend([45, 0, 0x00, 0x09, 33, 0, 0x00, 0x08]);
        block.extend([130, 4]);
        block.extend(7u64.to_le_bytes());
        block.extend([4, 45, 0, 45, 0, 45, 0]);
        let v = SessionVars::decode(&block).unwrap();
        assert_eq!((v.charset, v.unknown), (Some([45, 45, 45]), None));
        // An unknown code stops reading, keeping what came before.
        let v = SessionVars::decode(&[1, 0, 0, 0, 0, 0, 0, 0, 0, 99, 7, 7]).unwrap();
        assert_eq!((v.sql_mode, v.unknown), (Some(0), Some(99)));
        assert!(SessionVars::decode(&[4, 8, 0]).is_err(), "cut short");
    }

    #[test]
    fn collation_ids_name_their_charsets() {
        for (id, name) in [
            (8, "latin1"),
            (33, "utf8mb3"),
            (45, "utf8mb4"),
            (224, "utf8mb4"),
            (255, "utf8mb4"),
            (63, "binary"),
            (1032, "latin1"),
            (2305, "utf8mb4"),
            (28, "gbk"),
        ] {
            assert_eq!(charset_of(id), Some(name), "{id}");
        }
        assert_eq!(charset_of(0), None);
    }

    #[test]
    fn statements_become_utf8_from_their_client_charset() {
        assert_eq!(
            decode_text(b"ALTER TABLE t", Some(8)).unwrap(),
            "ALTER TABLE t"
        );
        // latin1 (Windows-1252) é, è, à, and the euro sign.
        assert_eq!(
            decode_text(&[0xe9, 0xe8, 0xe0, 0x80], Some(8)).unwrap(),
            "éèà€"
        );
        assert_eq!(decode_text("é".as_bytes(), Some(45)).unwrap(), "é");
        assert_eq!(decode_text("é".as_bytes(), None).unwrap(), "é");
        assert!(decode_text(&[0xe9], Some(45)).is_err(), "not UTF-8");
        let e = decode_text(&[0xe9], Some(3)).unwrap_err();
        assert_eq!(e.charset, "dec8");
        assert_eq!(decode_text(&[0xc4, 0xe3], Some(28)).unwrap(), "你");
    }
}
