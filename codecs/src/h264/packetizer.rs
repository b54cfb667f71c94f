//! [`Packetizer`]: RFC 6184 packetization mode 1 (non-interleaved), access units into RTP
//! payloads.

use super::{AccessUnit, FU_A, H264Error, STAP_A, nal_type};

/// One RTP payload and the marker bit its packet carries (set on the last packet of an
/// access unit, RFC 6184 section 5.1).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Payload {
    /// The RTP payload bytes.
    pub data: Vec<u8>,
    /// The RTP marker bit.
    pub marker: bool,
}

/// Splits access units into RTP payloads of at most `max_payload` bytes (RFC 6184 mode 1):
///
/// - consecutive NAL units that fit together go into one STAP-A (section 5.7.1: a 1-byte
///   header whose F bit is the OR and NRI the maximum of the aggregated units', then each unit
///   after its 16-bit size), which is how SPS and PPS travel with a key frame's first packet;
/// - a NAL unit that fits but has no neighbour to share with is a single NAL unit packet
///   (section 5.6), the NAL unit itself;
/// - a NAL unit larger than `max_payload` is cut into FU-A fragments (section 5.8): FU
///   indicator (F and NRI of the unit, type 28), FU header (S on the first, E on the last,
///   the unit's type), then a piece of the unit without its header byte.
#[derive(Debug, Clone, Copy)]
pub struct Packetizer {
    max_payload: usize,
}

impl Packetizer {
    /// Smallest payload size: an FU-A with one byte of data.
    pub const MIN_PAYLOAD: usize = 3;
    /// Largest payload size: a STAP-A unit size is 16 bits.
    pub const MAX_PAYLOAD: usize = 65_535;

    /// A packetizer whose payloads are at most `max_payload` bytes (the path MTU less the IP,
    /// UDP, RTP and SRTP overheads; 1,200 is a common choice).
    pub fn new(max_payload: usize) -> Result<Self, H264Error> {
        if !(Self::MIN_PAYLOAD..=Self::MAX_PAYLOAD).contains(&max_payload) {
            return Err(H264Error::PayloadSize(max_payload));
        }
        Ok(Packetizer { max_payload })
    }

    /// The largest payload it makes, in bytes.
    pub fn max_payload(&self) -> usize {
        self.max_payload
    }

    /// Appends the payloads of `au` to `out`, the last with the marker bit; returns how many
    /// were appended. An access unit with no NAL unit, or with a NAL unit of type 0 or
    /// 24..=31, is refused and nothing is appended.
    pub fn packetize(&self, au: &AccessUnit, out: &mut Vec<Payload>) -> Result<usize, H264Error> {
        let n = au.nal_count();
        if n == 0 {
            return Err(H264Error::EmptyAccessUnit);
        }
        if let Some(bad) = au.nals().find(|n| !(1..=23).contains(&nal_type(n[0]))) {
            return Err(H264Error::NalType(nal_type(bad[0])));
        }
        let before = out.len();
        let max = self.max_payload;
        let len = |i: usize| au.nal(i).map_or(0, <[u8]>::len);
        let mut i = 0;
        while i < n {
            // INVARIANT: i < nal_count, and an access unit holds no empty NAL unit.
            let nal = au.nal(i).expect("index in range");
            if nal.len() > max {
                self.fragment(nal, out);
                i += 1;
                continue;
            }
            // Aggregate the following units while the STAP-A still fits.
            let mut size = 1 + 2 + nal.len();
            let mut j = i + 1;
            while j < n && size + 2 + len(j) <= max {
                size += 2 + len(j);
                j += 1;
            }
            if j - i >= 2 {
                let mut data = Vec::with_capacity(size);
                data.push(0);
                let (mut f, mut nri) = (0, 0);
                for k in i..j {
                    // INVARIANT: k < j <= nal_count.
                    let unit = au.nal(k).expect("index in range");
                    f |= unit[0] & 0x80;
                    nri = nri.max(unit[0] & 0x60);
                    data.extend_from_slice(&(unit.len() as u16).to_be_bytes());
                    data.extend_from_slice(unit);
                }
                data[0] = f | nri | STAP_A;
                out.push(Payload {
                    data,
                    marker: false,
                });
            } else {
                out.push(Payload {
                    data: nal.to_vec(),
                    marker: false,
                });
            }
            i = j;
        }
        if let Some(last) = out.last_mut() {
            last.marker = true;
        }
        Ok(out.len() - before)
    }

    /// FU-A fragments of `nal` (longer than the payload size).
    fn fragment(&self, nal: &[u8], out: &mut Vec<Payload>) {
        let header = nal[0];
        let indicator = (header & 0xE0) | FU_A;
        let body = &nal[1..];
        let piece = self.max_payload - 2;
        let count = body.len().div_ceil(piece);
        for (k, chunk) in body.chunks(piece).enumerate() {
            let mut fu_header = nal_type(header);
            if k == 0 {
                fu_header |= 0x80;
            }
            if k + 1 == count {
                fu_header |= 0x40;
            }
            let mut data = Vec::with_capacity(chunk.len() + 2);
            data.extend_from_slice(&[indicator, fu_header]);
            data.extend_from_slice(chunk);
            out.push(Payload {
                data,
                marker: false,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn au(nals: &[&[u8]]) -> AccessUnit {
        let mut au = AccessUnit::default();
        for n in nals {
            au.push_nal(n);
        }
        au
    }

    #[test]
    fn small_units_aggregate_into_one_stap_a() {
        // SPS (NRI 3), PPS (NRI 3), SEI (NRI 0), exactly as RFC 6184 section 5.7.1 lays out.
        let sps = [0x67, 0x42, 0xC0, 0x1F];
        let pps = [0x68, 0xCE, 0x3C, 0x80];
        let sei = [0x06, 0x05, 0x01];
        let mut out = Vec::new();
        let n = Packetizer::new(100)
            .unwrap()
            .packetize(&au(&[&sps, &pps, &sei]), &mut out)
            .unwrap();
        assert_eq!(n, 1);
        let expected = [
            0x78, 0x00, 0x04, 0x67, 0x42, 0xC0, 0x1F, 0x00, 0x04, 0x68, 0xCE, 0x3C, 0x80, 0x00,
            0x03, 0x06, 0x05, 0x01,
        ];
        assert_eq!(out[0].data, expected);
        assert!(out[0].marker);
    }

    #[test]
    fn large_units_fragment_and_small_ones_stay_single() {
        let sps = [0x67, 1, 2, 3];
        let pps = [0x68, 4];
        let mut idr = vec![0x65];
        idr.extend((0..25u8).map(|b| b.wrapping_mul(7)));
        let p = Packetizer::new(10).unwrap();
        let mut out = Vec::new();
        p.packetize(&au(&[&sps, &pps, &idr]), &mut out).unwrap();
        // STAP-A of SPS + PPS (1 + 6 + 4 = 11 > 10: no), so SPS single, PPS single... then
        // the 26-byte IDR in FU-A pieces of 8 bytes: 25 body bytes -> 4 fragments.
        assert_eq!(out[0].data, sps);
        assert_eq!(out[1].data, pps);
        let frags = &out[2..];
        assert_eq!(frags.len(), 4);
        let mut body = Vec::new();
        for (k, f) in frags.iter().enumerate() {
            assert!(f.data.len() <= 10);
            assert_eq!(f.data[0], 0x60 | FU_A);
            assert_eq!(f.data[1] & 0x1F, 5);
            assert_eq!(f.data[1] & 0x80 != 0, k == 0, "S bit");
            assert_eq!(f.data[1] & 0x40 != 0, k == 3, "E bit");
            assert_eq!(f.data[1] & 0x20, 0, "R bit");
            body.extend_from_slice(&f.data[2..]);
        }
        assert_eq!(body, idr[1..]);
        let markers: Vec<bool> = out.iter().map(|p| p.marker).collect();
        assert_eq!(markers, [false, false, false, false, false, true]);
    }

    #[test]
    fn a_unit_exactly_the_payload_size_is_single() {
        let nal: Vec<u8> = std::iter::once(0x41).chain(0..99).collect();
        let mut out = Vec::new();
        Packetizer::new(100)
            .unwrap()
            .packetize(&au(&[&nal]), &mut out)
            .unwrap();
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].data, nal);
        let mut out = Vec::new();
        Packetizer::new(99)
            .unwrap()
            .packetize(&au(&[&nal]), &mut out)
            .unwrap();
        assert_eq!(out.len(), 2);
        assert!(out.iter().all(|p| p.data.len() <= 99));
    }

    #[test]
    fn bad_settings_and_empty_units_are_refused() {
        assert!(Packetizer::new(2).is_err());
        assert!(Packetizer::new(65_536).is_err());
        let mut out = Vec::new();
        assert_eq!(
            Packetizer::new(1_200)
                .unwrap()
                .packetize(&AccessUnit::default(), &mut out),
            Err(H264Error::EmptyAccessUnit)
        );
        for t in [0u8, 24, 28, 31] {
            assert_eq!(
                Packetizer::new(1_200)
                    .unwrap()
                    .packetize(&au(&[&[0x67, 1], &[0x60 | t, 2]]), &mut out),
                Err(H264Error::NalType(t))
            );
        }
        assert!(out.is_empty());
    }
}
