//! [`AccessUnit`]: the NAL units of one coded picture, without start codes, in one buffer.

use super::{NAL_IDR, NAL_PPS, NAL_SPS, SequenceParameterSet, nal_type};

/// The NAL units of one coded picture (H.264 section 7.4.1.2.3), each without its Annex B
/// start code, kept back to back in one buffer so a reused `AccessUnit` allocates nothing once
/// it has grown to the largest picture.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AccessUnit {
    /// The NAL units' bytes, back to back.
    data: Vec<u8>,
    /// Where each NAL unit ends in `data`.
    ends: Vec<usize>,
    /// The RTP timestamp (90 kHz) of the picture.
    pub timestamp: u32,
}

impl AccessUnit {
    /// Empties it, keeping its capacity.
    pub fn clear(&mut self) {
        self.data.clear();
        self.ends.clear();
        self.timestamp = 0;
    }

    /// Appends a whole NAL unit (header byte first). An empty slice is ignored.
    pub fn push_nal(&mut self, nal: &[u8]) {
        if nal.is_empty() {
            return;
        }
        self.data.extend_from_slice(nal);
        self.ends.push(self.data.len());
    }

    /// Starts a NAL unit with its header byte, to be continued with [`Self::extend_last`]
    /// (FU-A reassembly).
    pub fn start_nal(&mut self, header: u8) {
        self.data.push(header);
        self.ends.push(self.data.len());
    }

    /// Appends bytes to the last NAL unit; without one, starts a NAL unit with them.
    pub fn extend_last(&mut self, bytes: &[u8]) {
        self.data.extend_from_slice(bytes);
        match self.ends.last_mut() {
            Some(end) => *end = self.data.len(),
            None => self.ends.push(self.data.len()),
        }
    }

    /// How many NAL units it holds.
    pub fn nal_count(&self) -> usize {
        self.ends.len()
    }

    /// The `i`th NAL unit, header byte first.
    pub fn nal(&self, i: usize) -> Option<&[u8]> {
        let end = *self.ends.get(i)?;
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        // INVARIANT: `ends` is non-decreasing and its last value is `data.len()`.
        Some(&self.data[start..end])
    }

    /// Its NAL units in order.
    pub fn nals(&self) -> impl Iterator<Item = &[u8]> {
        (0..self.ends.len()).filter_map(|i| self.nal(i))
    }

    /// Total bytes of its NAL units (without start codes).
    pub fn byte_len(&self) -> usize {
        self.data.len()
    }

    /// Whether it is a key frame: it holds an IDR slice.
    pub fn is_key(&self) -> bool {
        self.nals().any(|n| nal_type(n[0]) == NAL_IDR)
    }

    /// Whether it carries both parameter sets (SPS and PPS), as a key frame a decoder can
    /// start from does.
    pub fn has_parameter_sets(&self) -> bool {
        let has = |t| self.nals().any(|n| nal_type(n[0]) == t);
        has(NAL_SPS) && has(NAL_PPS)
    }

    /// Its first sequence parameter set, parsed (key frames carry one); None without a
    /// parsable SPS.
    pub fn sequence_parameter_set(&self) -> Option<SequenceParameterSet> {
        self.nals()
            .find(|n| nal_type(n[0]) == NAL_SPS)
            .and_then(SequenceParameterSet::parse)
    }

    /// Appends it to `out` as an Annex B byte stream (each NAL unit after `00 00 00 01`), the
    /// form decoders take.
    pub fn write_annex_b(&self, out: &mut Vec<u8>) {
        for nal in self.nals() {
            out.extend_from_slice(&[0, 0, 0, 1]);
            out.extend_from_slice(nal);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nals_round_trip_and_fragments_join() {
        let mut au = AccessUnit::default();
        au.push_nal(&[0x67, 1, 2]);
        au.push_nal(&[]);
        au.push_nal(&[0x68, 3]);
        au.start_nal(0x65);
        au.extend_last(&[4, 5]);
        au.extend_last(&[6]);
        let nals: Vec<&[u8]> = au.nals().collect();
        assert_eq!(nals, [&[0x67, 1, 2][..], &[0x68, 3], &[0x65, 4, 5, 6]]);
        assert!(au.is_key());
        assert!(au.has_parameter_sets());
        assert_eq!(au.nal(3), None);
        let mut annex_b = Vec::new();
        au.write_annex_b(&mut annex_b);
        assert_eq!(annex_b.len(), au.byte_len() + 12);
        au.clear();
        assert_eq!(au.nal_count(), 0);
        assert!(!au.is_key());
    }
}
