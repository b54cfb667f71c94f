//! Building a compound RTCP packet into one caller-owned buffer.

use crate::rtcp::RtcpError;

/// Appends RTCP packets one after another into a caller-owned buffer.
///
/// Each packet type's `write` function is handed the rest of the buffer:
///
/// ```
/// use chorus_engine::rtcp::{CompoundBuilder, ReceiverReport, SourceDescription};
/// use chorus_engine::rtp::Ssrc;
///
/// let mut buf = [0u8; 1500];
/// let mut b = CompoundBuilder::new(&mut buf);
/// b.append(|out| ReceiverReport::write(out, Ssrc(1), &[]))?
///     .append(|out| SourceDescription::write_cname(out, Ssrc(1), b"leg-1@chorus"))?;
/// let len = b.len();
/// assert_eq!(len, 8 + 24);
/// # Ok::<(), chorus_engine::rtcp::RtcpError>(())
/// ```
#[derive(Debug)]
pub struct CompoundBuilder<'a> {
    buf: &'a mut [u8],
    len: usize,
}

impl<'a> CompoundBuilder<'a> {
    /// A builder writing from the start of `buf`.
    pub fn new(buf: &'a mut [u8]) -> Self {
        Self { buf, len: 0 }
    }

    /// Calls `write` with the unused rest of the buffer and keeps the bytes it reports
    /// written. On error nothing is kept.
    pub fn append(
        &mut self,
        write: impl FnOnce(&mut [u8]) -> Result<usize, RtcpError>,
    ) -> Result<&mut Self, RtcpError> {
        let rest = self.buf.get_mut(self.len..).unwrap_or(&mut []);
        let room = rest.len();
        let n = write(rest)?;
        // A writer never reports more than it was given; clamp in case one does.
        self.len += n.min(room);
        Ok(self)
    }

    /// Bytes written so far.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether nothing was written yet.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The compound packet written so far.
    pub fn as_bytes(&self) -> &[u8] {
        self.buf.get(..self.len).unwrap_or(&[])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rtcp::{ReceiverReport, parse_rtcp_compound};
    use crate::rtp::Ssrc;

    #[test]
    fn appends_and_keeps_nothing_on_error() {
        let mut buf = [0u8; 20];
        let mut b = CompoundBuilder::new(&mut buf);
        assert!(b.is_empty());
        b.append(|o| ReceiverReport::write(o, Ssrc(1), &[]))
            .unwrap();
        b.append(|o| ReceiverReport::write(o, Ssrc(2), &[]))
            .unwrap();
        assert_eq!(b.len(), 16);
        assert!(matches!(
            b.append(|o| ReceiverReport::write(o, Ssrc(3), &[])),
            Err(RtcpError::BufferTooSmall { need: 8, have: 4 })
        ));
        assert_eq!(b.len(), 16);
        assert_eq!(parse_rtcp_compound(b.as_bytes()).count(), 2);
    }
}
