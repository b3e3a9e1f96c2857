//! The small subset of canonical CBOR (RFC 8949 §4.2.1, "core deterministic
//! encoding") that entries and bundles use: unsigned integers, byte strings,
//! arrays and `null`, all with definite lengths and shortest argument forms.
//!
//! The reader is total: it never panics, never allocates, and distinguishes
//! input that ends too early ([`DecodeError::Incomplete`]) from input that is
//! wrong.

use super::DecodeError;

const MAJOR_UNSIGNED: u8 = 0;
const MAJOR_BYTES: u8 = 2;
const MAJOR_ARRAY: u8 = 4;
/// The one-byte encoding of CBOR `null`.
pub const NULL: u8 = 0xf6;

/// Appends the head of a data item (major type and argument) in shortest form.
pub fn write_head(out: &mut Vec<u8>, major: u8, arg: u64) {
    let m = major << 5;
    match arg {
        0..=23 => out.push(m | arg as u8),
        24..=0xff => out.extend_from_slice(&[m | 24, arg as u8]),
        0x100..=0xffff => {
            out.push(m | 25);
            out.extend_from_slice(&(arg as u16).to_be_bytes());
        }
        0x1_0000..=0xffff_ffff => {
            out.push(m | 26);
            out.extend_from_slice(&(arg as u32).to_be_bytes());
        }
        _ => {
            out.push(m | 27);
            out.extend_from_slice(&arg.to_be_bytes());
        }
    }
}

/// The encoded length of a head with argument `arg` (1, 2, 3, 5 or 9 bytes).
pub fn head_len(arg: u64) -> usize {
    match arg {
        0..=23 => 1,
        24..=0xff => 2,
        0x100..=0xffff => 3,
        0x1_0000..=0xffff_ffff => 5,
        _ => 9,
    }
}

/// Appends an unsigned integer.
pub fn write_uint(out: &mut Vec<u8>, value: u64) {
    write_head(out, MAJOR_UNSIGNED, value);
}

/// Appends a byte string.
pub fn write_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    write_head(out, MAJOR_BYTES, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

/// Appends the head of a byte string of `len` bytes (the body follows).
pub fn write_bytes_head(out: &mut Vec<u8>, len: u64) {
    write_head(out, MAJOR_BYTES, len);
}

/// Appends an array head of `len` items.
pub fn write_array_head(out: &mut Vec<u8>, len: u64) {
    write_head(out, MAJOR_ARRAY, len);
}

/// A cursor over a byte slice that reads canonical CBOR items.
pub struct Reader<'a> {
    input: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    /// Starts reading at the beginning of `input`.
    pub fn new(input: &'a [u8]) -> Self {
        Reader { input, pos: 0 }
    }

    /// How many bytes have been consumed.
    pub fn position(&self) -> usize {
        self.pos
    }

    /// How many bytes are left to read.
    pub fn remaining(&self) -> usize {
        self.input.len() - self.pos
    }

    /// Reads an array head that must declare exactly `len` items.
    pub fn array_of(&mut self, field: &'static str, len: usize) -> Result<(), DecodeError> {
        if self.array_head(field)? != len as u64 {
            return Err(DecodeError::WrongLength { field, expected: len });
        }
        Ok(())
    }

    /// Reads an array head whose items take at least one byte each, so a
    /// declared length above what is left is wrong before any item is read
    /// (a caller may allocate for that many).
    pub fn bounded_array_head(&mut self, field: &'static str) -> Result<usize, DecodeError> {
        let len = self.array_head(field)?;
        usize::try_from(len)
            .ok()
            .filter(|&len| len <= self.remaining())
            .ok_or(DecodeError::Incomplete)
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        let end = self.pos.checked_add(n).ok_or(DecodeError::Incomplete)?;
        let bytes = self.input.get(self.pos..end).ok_or(DecodeError::Incomplete)?;
        self.pos = end;
        Ok(bytes)
    }

    fn peek(&self) -> Result<u8, DecodeError> {
        self.input.get(self.pos).copied().ok_or(DecodeError::Incomplete)
    }

    /// Reads a head of the given major type; `field` names the item in errors.
    fn head(&mut self, major: u8, field: &'static str) -> Result<u64, DecodeError> {
        let initial = self.peek()?;
        if initial >> 5 != major {
            return Err(DecodeError::UnexpectedType { field });
        }
        self.pos += 1;
        let info = initial & 0x1f;
        let (arg, min) = match info {
            0..=23 => return Ok(u64::from(info)),
            24 => (u64::from(self.take(1)?[0]), 24),
            25 => (u64::from(u16::from_be_bytes(self.array()?)), 0x100),
            26 => (u64::from(u32::from_be_bytes(self.array()?)), 0x1_0000),
            27 => (u64::from_be_bytes(self.array()?), 0x1_0000_0000),
            // 28..=30 are reserved; 31 is an indefinite length.
            _ => return Err(DecodeError::NotCanonical { field }),
        };
        if arg < min {
            return Err(DecodeError::NotCanonical { field });
        }
        Ok(arg)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let bytes = self.take(N)?;
        let mut out = [0u8; N];
        out.copy_from_slice(bytes);
        Ok(out)
    }

    /// Reads an unsigned integer.
    pub fn uint(&mut self, field: &'static str) -> Result<u64, DecodeError> {
        self.head(MAJOR_UNSIGNED, field)
    }

    /// Reads an array head and returns its declared length.
    pub fn array_head(&mut self, field: &'static str) -> Result<u64, DecodeError> {
        self.head(MAJOR_ARRAY, field)
    }

    /// Reads a byte string of at most `max` bytes, checking the declared length
    /// against `max` before touching the body.
    pub fn bytes(&mut self, field: &'static str, max: usize) -> Result<&'a [u8], DecodeError> {
        let len = self.head(MAJOR_BYTES, field)?;
        let len = usize::try_from(len)
            .ok()
            .filter(|&len| len <= max)
            .ok_or(DecodeError::TooLong { field, max })?;
        self.take(len)
    }

    /// Reads a byte string of exactly `N` bytes.
    pub fn fixed<const N: usize>(&mut self, field: &'static str) -> Result<[u8; N], DecodeError> {
        let bytes = self.bytes(field, N)?;
        let mut out = [0u8; N];
        if bytes.len() != N {
            return Err(DecodeError::WrongLength { field, expected: N });
        }
        out.copy_from_slice(bytes);
        Ok(out)
    }

    /// Reads a `null` if one comes next (returning true), else reads nothing.
    pub fn null(&mut self) -> Result<bool, DecodeError> {
        let null = self.peek()? == NULL;
        if null {
            self.pos += 1;
        }
        Ok(null)
    }

    /// Reads either `null` (returning `None`) or a byte string of exactly `N` bytes.
    pub fn optional_fixed<const N: usize>(&mut self, field: &'static str) -> Result<Option<[u8; N]>, DecodeError> {
        if self.peek()? == NULL {
            self.pos += 1;
            return Ok(None);
        }
        self.fixed(field).map(Some)
    }

    /// Reads either `null` (returning `None`) or a byte string of at most `max` bytes.
    pub fn optional_bytes(&mut self, field: &'static str, max: usize) -> Result<Option<&'a [u8]>, DecodeError> {
        if self.peek()? == NULL {
            self.pos += 1;
            return Ok(None);
        }
        self.bytes(field, max).map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_use_the_shortest_form() {
        for (value, expected) in [
            (0u64, vec![0x00]),
            (23, vec![0x17]),
            (24, vec![0x18, 24]),
            (255, vec![0x18, 0xff]),
            (256, vec![0x19, 0x01, 0x00]),
            (65536, vec![0x1a, 0, 1, 0, 0]),
            (u64::MAX, vec![0x1b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]),
        ] {
            let mut out = Vec::new();
            write_uint(&mut out, value);
            assert_eq!(out, expected);
            assert_eq!(Reader::new(&out).uint("x"), Ok(value));
        }
    }

    #[test]
    fn longer_than_needed_forms_are_rejected() {
        for bytes in [
            &[0x18, 23][..],
            &[0x19, 0, 255],
            &[0x1a, 0, 0, 255, 255],
            &[0x1b, 0, 0, 0, 0, 255, 255, 255, 255],
        ] {
            assert_eq!(
                Reader::new(bytes).uint("x"),
                Err(DecodeError::NotCanonical { field: "x" })
            );
        }
        // Indefinite-length byte string.
        assert_eq!(
            Reader::new(&[0x5f]).bytes("x", 10),
            Err(DecodeError::NotCanonical { field: "x" })
        );
    }

    #[test]
    fn declared_lengths_are_checked_before_reading() {
        assert_eq!(
            Reader::new(&[0x5b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]).bytes("x", 64),
            Err(DecodeError::TooLong { field: "x", max: 64 })
        );
        assert_eq!(
            Reader::new(&[0x58, 0x20, 1, 2]).bytes("x", 64),
            Err(DecodeError::Incomplete)
        );
    }
}
