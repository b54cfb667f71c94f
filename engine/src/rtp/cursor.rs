//! Bounds-checked big-endian cursors over caller-owned byte slices.
//!
//! Parsers read through [`Reader`] (every read returns `None` past the end instead of
//! panicking); builders write through [`Writer`] (every write returns [`Overflow`] instead of
//! panicking). Neither allocates. Shared by the RTP and RTCP modules.

/// A write ran past the end of the output buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Overflow {
    /// Bytes the writer needed at least (position after the failed write).
    pub(crate) need: usize,
    /// Bytes the buffer has.
    pub(crate) have: usize,
}

/// A forward-only reader of big-endian fields.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    pub(crate) const fn new(buf: &'a [u8]) -> Self {
        Self { rest: buf }
    }

    /// Bytes not read yet.
    pub(crate) const fn remaining(&self) -> usize {
        self.rest.len()
    }

    /// The unread bytes.
    pub(crate) const fn rest(&self) -> &'a [u8] {
        self.rest
    }

    pub(crate) fn array<const N: usize>(&mut self) -> Option<&'a [u8; N]> {
        let (head, tail) = self.rest.split_first_chunk::<N>()?;
        self.rest = tail;
        Some(head)
    }

    pub(crate) fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if n > self.rest.len() {
            return None;
        }
        let (head, tail) = self.rest.split_at(n);
        self.rest = tail;
        Some(head)
    }

    pub(crate) fn u8(&mut self) -> Option<u8> {
        let (&b, tail) = self.rest.split_first()?;
        self.rest = tail;
        Some(b)
    }

    pub(crate) fn u16(&mut self) -> Option<u16> {
        self.array::<2>().map(|b| u16::from_be_bytes(*b))
    }

    pub(crate) fn u32(&mut self) -> Option<u32> {
        self.array::<4>().map(|b| u32::from_be_bytes(*b))
    }

    pub(crate) fn u64(&mut self) -> Option<u64> {
        self.array::<8>().map(|b| u64::from_be_bytes(*b))
    }
}

/// A forward-only writer of big-endian fields into a caller-owned buffer.
#[derive(Debug)]
pub(crate) struct Writer<'a> {
    buf: &'a mut [u8],
    pos: usize,
}

impl<'a> Writer<'a> {
    pub(crate) fn new(buf: &'a mut [u8]) -> Self {
        Self { buf, pos: 0 }
    }

    /// Bytes written so far.
    pub(crate) const fn pos(&self) -> usize {
        self.pos
    }

    /// Fails with [`Overflow`] unless `total` bytes fit in the buffer; lets a builder that
    /// knows its length up front refuse before writing anything.
    pub(crate) fn reserve(&self, total: usize) -> Result<(), Overflow> {
        if total > self.buf.len() {
            return Err(Overflow {
                need: total,
                have: self.buf.len(),
            });
        }
        Ok(())
    }

    fn slot(&mut self, n: usize) -> Result<&mut [u8], Overflow> {
        let have = self.buf.len();
        let end = self.pos.checked_add(n).ok_or(Overflow {
            need: usize::MAX,
            have,
        })?;
        let slot = self
            .buf
            .get_mut(self.pos..end)
            .ok_or(Overflow { need: end, have })?;
        self.pos = end;
        Ok(slot)
    }

    pub(crate) fn put_slice(&mut self, bytes: &[u8]) -> Result<(), Overflow> {
        self.slot(bytes.len())?.copy_from_slice(bytes);
        Ok(())
    }

    pub(crate) fn put_u8(&mut self, v: u8) -> Result<(), Overflow> {
        self.put_slice(&[v])
    }

    pub(crate) fn put_u16(&mut self, v: u16) -> Result<(), Overflow> {
        self.put_slice(&v.to_be_bytes())
    }

    pub(crate) fn put_u32(&mut self, v: u32) -> Result<(), Overflow> {
        self.put_slice(&v.to_be_bytes())
    }

    pub(crate) fn put_u64(&mut self, v: u64) -> Result<(), Overflow> {
        self.put_slice(&v.to_be_bytes())
    }

    pub(crate) fn put_zeros(&mut self, n: usize) -> Result<(), Overflow> {
        self.slot(n)?.fill(0);
        Ok(())
    }

    /// Overwrites two bytes already written at `at` (used to back-fill length fields).
    pub(crate) fn patch_u16(&mut self, at: usize, v: u16) -> Result<(), Overflow> {
        let have = self.buf.len();
        let end = at.saturating_add(2);
        if end > self.pos {
            return Err(Overflow { need: end, have });
        }
        let slot = self
            .buf
            .get_mut(at..end)
            .ok_or(Overflow { need: end, have })?;
        slot.copy_from_slice(&v.to_be_bytes());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reader_stops_at_end_without_panicking() {
        let mut r = Reader::new(&[1, 2, 3]);
        assert_eq!(r.u16(), Some(0x0102));
        assert_eq!(r.u16(), None);
        assert_eq!(r.remaining(), 1);
        assert_eq!(r.u8(), Some(3));
        assert_eq!(r.u8(), None);
        assert_eq!(r.take(1), None);
        assert_eq!(r.take(0), Some(&[][..]));
        let mut r = Reader::new(&[0; 8]);
        assert_eq!(r.u64(), Some(0));
        assert_eq!(r.u32(), None);
    }

    #[test]
    fn writer_reports_overflow_and_patches() {
        let mut buf = [0u8; 5];
        let mut w = Writer::new(&mut buf);
        w.put_u32(0xdead_beef).unwrap();
        assert_eq!(w.put_u16(1), Err(Overflow { need: 6, have: 5 }));
        assert_eq!(w.pos(), 4);
        w.patch_u16(1, 0x0102).unwrap();
        assert!(w.patch_u16(3, 0).is_err());
        assert!(w.reserve(5).is_ok());
        assert!(w.reserve(6).is_err());
        w.put_zeros(1).unwrap();
        assert_eq!(buf, [0xde, 1, 2, 0xef, 0]);
    }
}
