//! Reading and writing inside block payloads: little-endian fields, LEB128 varints
//! (`doc/format.md` §2), length-prefixed chunks; every read is bounds-checked.

use crate::error::{Error, Result};

/// Appends `v` as an unsigned LEB128 varint.
pub(crate) fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// A bounds-checked reader over a payload.
pub(crate) struct PayloadReader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> PayloadReader<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        PayloadReader { buf, pos: 0 }
    }

    pub(crate) fn bytes(&mut self, n: usize) -> Result<&'a [u8]> {
        if self.buf.len() - self.pos < n {
            return Err(Error::truncated("block payload ends early"));
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    pub(crate) fn varint(&mut self) -> Result<u64> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.bytes(1)?[0];
            v |= ((b & 0x7f) as u64) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(Error::corrupt("varint too long"))
    }

    /// A varint that counts or places something in memory: one past `usize` (on a 32-bit
    /// machine) is refused, not truncated to another that a 64-bit machine would not read.
    pub(crate) fn size(&mut self) -> Result<usize> {
        usize::try_from(self.varint()?).map_err(|_| Error::corrupt("a size beyond this machine's"))
    }

    /// A length-prefixed slice.
    pub(crate) fn chunk(&mut self) -> Result<&'a [u8]> {
        let len = self.size()?;
        self.bytes(len)
    }

    pub(crate) fn rest(&self) -> &'a [u8] {
        &self.buf[self.pos..]
    }
}
