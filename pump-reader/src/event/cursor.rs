//! A bounds-checked reader over an event body: every read that would run past the end is
//! an error naming what was being read, never a panic.

use super::DecodeError;

#[derive(Debug, Clone)]
pub(crate) struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Cursor { buf, pos: 0 }
    }

    pub fn offset(&self) -> usize {
        self.pos
    }

    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    pub fn is_empty(&self) -> bool {
        self.remaining() == 0
    }

    /// The next `n` bytes.
    pub fn bytes(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], DecodeError> {
        if n > self.remaining() {
            return Err(DecodeError::Truncated {
                what,
                offset: self.pos,
                needed: n,
                left: self.remaining(),
            });
        }
        let out = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    /// Everything left, without moving.
    pub fn peek_rest(&self) -> &'a [u8] {
        &self.buf[self.pos..]
    }

    /// Everything left.
    pub fn rest(&mut self) -> &'a [u8] {
        let out = &self.buf[self.pos..];
        self.pos = self.buf.len();
        out
    }

    pub fn skip(&mut self, n: usize, what: &'static str) -> Result<(), DecodeError> {
        self.bytes(n, what).map(drop)
    }

    pub fn u8(&mut self, what: &'static str) -> Result<u8, DecodeError> {
        Ok(self.bytes(1, what)?[0])
    }

    /// An unsigned little-endian integer of `n` bytes (1 to 8).
    pub fn uint_le(&mut self, n: usize, what: &'static str) -> Result<u64, DecodeError> {
        debug_assert!((1..=8).contains(&n));
        Ok(self
            .bytes(n, what)?
            .iter()
            .rev()
            .fold(0u64, |acc, &b| (acc << 8) | u64::from(b)))
    }

    /// An unsigned big-endian integer of `n` bytes (0 to 8).
    pub fn uint_be(&mut self, n: usize, what: &'static str) -> Result<u64, DecodeError> {
        debug_assert!(n <= 8);
        Ok(self
            .bytes(n, what)?
            .iter()
            .fold(0u64, |acc, &b| (acc << 8) | u64::from(b)))
    }

    pub fn u16_le(&mut self, what: &'static str) -> Result<u16, DecodeError> {
        self.uint_le(2, what).map(|v| v as u16)
    }

    pub fn u32_le(&mut self, what: &'static str) -> Result<u32, DecodeError> {
        self.uint_le(4, what).map(|v| v as u32)
    }

    pub fn u64_le(&mut self, what: &'static str) -> Result<u64, DecodeError> {
        self.uint_le(8, what)
    }

    /// A length-encoded integer of the client/server protocol.
    pub fn lenenc(&mut self, what: &'static str) -> Result<u64, DecodeError> {
        match self.u8(what)? {
            n @ 0..=250 => Ok(u64::from(n)),
            0xfc => self.uint_le(2, what),
            0xfd => self.uint_le(3, what),
            0xfe => self.uint_le(8, what),
            other => Err(DecodeError::Invalid {
                what,
                offset: self.pos - 1,
                reason: format!("0x{other:02x} does not start a length-encoded integer"),
            }),
        }
    }

    /// A length as `usize`, refusing one longer than what is left (a corrupt length must
    /// not make us allocate gigabytes).
    pub fn len_within(&self, len: u64, what: &'static str) -> Result<usize, DecodeError> {
        match usize::try_from(len) {
            Ok(n) if n <= self.remaining() => Ok(n),
            _ => Err(DecodeError::Truncated {
                what,
                offset: self.pos,
                needed: usize::try_from(len).unwrap_or(usize::MAX),
                left: self.remaining(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_integers_in_both_byte_orders() {
        let mut c = Cursor::new(&[0x01, 0x02, 0x03, 0x01, 0x02, 0x03]);
        assert_eq!(c.uint_le(3, "x").unwrap(), 0x030201);
        assert_eq!(c.uint_be(3, "x").unwrap(), 0x010203);
        assert!(c.is_empty());
    }

    #[test]
    fn length_encoded_integers() {
        let mut c = Cursor::new(&[
            250, 0xfc, 0x34, 0x12, 0xfd, 1, 2, 3, 0xfe, 1, 0, 0, 0, 0, 0, 0, 0x80,
        ]);
        assert_eq!(c.lenenc("x").unwrap(), 250);
        assert_eq!(c.lenenc("x").unwrap(), 0x1234);
        assert_eq!(c.lenenc("x").unwrap(), 0x030201);
        assert_eq!(c.lenenc("x").unwrap(), 0x8000_0000_0000_0001);
        assert!(Cursor::new(&[0xff]).lenenc("x").is_err());
    }

    #[test]
    fn reading_past_the_end_is_an_error_naming_the_field() {
        let mut c = Cursor::new(&[1, 2]);
        let e = c.u32_le("table id").unwrap_err();
        assert_eq!(
            e.to_string(),
            "truncated at byte 0 reading table id: needed 4 bytes, 2 left"
        );
        assert!(c.len_within(3, "blob").is_err());
        assert!(c.len_within(u64::MAX, "blob").is_err());
        assert_eq!(c.len_within(2, "blob").unwrap(), 2);
    }
}
