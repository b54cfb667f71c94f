//! RTP header extension elements (RFC 8285), one-byte and two-byte forms.
//!
//! The RFC 3550 extension block is `profile (16) | length in words (16) | data`. RFC 8285
//! puts a list of elements in the data: one-byte form (profile 0xBEDE) elements are
//! `ID (4) | L (4) | L+1 data bytes`, two-byte form (profile 0x100X, X = 4 "appbits") elements
//! are `ID (8) | length (8) | length data bytes`. Zero bytes between and after elements are
//! padding.

use crate::rtp::RtpError;
use crate::rtp::cursor::Writer;

/// The profile value of the one-byte form (RFC 8285 section 4.2).
pub const ONE_BYTE_PROFILE: u16 = 0xbede;
/// The profile value of the two-byte form with appbits 0 (RFC 8285 section 4.3).
pub const TWO_BYTE_PROFILE: u16 = 0x1000;

/// The one-byte form ID that ends processing of the block (RFC 8285 section 4.2).
const ONE_BYTE_STOP_ID: u8 = 15;

/// One header extension element: a local identifier and its data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Extension<'a> {
    /// The local identifier negotiated with `a=extmap` (never 0, which is padding).
    pub id: u8,
    /// The element's data, without the element header.
    pub data: &'a [u8],
}

/// Which RFC 8285 form an extension block uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ExtensionForm {
    /// Profile 0xBEDE: IDs 1-14, 1-16 data bytes per element.
    #[default]
    OneByte,
    /// Profile 0x100X: IDs 1-255, 0-255 data bytes per element.
    TwoByte {
        /// The 4 application bits in the low nibble of the profile.
        appbits: u8,
    },
}

impl ExtensionForm {
    /// The form a profile value announces, or `None` for a non-RFC 8285 profile.
    pub fn from_profile(profile: u16) -> Option<Self> {
        if profile == ONE_BYTE_PROFILE {
            Some(ExtensionForm::OneByte)
        } else if profile & 0xfff0 == TWO_BYTE_PROFILE {
            Some(ExtensionForm::TwoByte {
                appbits: (profile & 0x000f) as u8,
            })
        } else {
            None
        }
    }

    /// The profile value written on the wire for this form.
    pub fn profile(self) -> u16 {
        match self {
            ExtensionForm::OneByte => ONE_BYTE_PROFILE,
            ExtensionForm::TwoByte { appbits } => TWO_BYTE_PROFILE | u16::from(appbits & 0x0f),
        }
    }

    /// Whether `ext` can be written in this form.
    pub fn fits(self, ext: &Extension<'_>) -> bool {
        match self {
            ExtensionForm::OneByte => {
                (1..ONE_BYTE_STOP_ID).contains(&ext.id) && (1..=16).contains(&ext.data.len())
            }
            ExtensionForm::TwoByte { .. } => ext.id != 0 && ext.data.len() <= 255,
        }
    }

    /// The one-byte form if every element fits it, else the two-byte form (appbits 0).
    pub fn smallest(exts: &[Extension<'_>]) -> Self {
        if exts.iter().all(|e| ExtensionForm::OneByte.fits(e)) {
            ExtensionForm::OneByte
        } else {
            ExtensionForm::TwoByte { appbits: 0 }
        }
    }

    /// Bytes of the element header in this form.
    fn element_header_len(self) -> usize {
        match self {
            ExtensionForm::OneByte => 1,
            ExtensionForm::TwoByte { .. } => 2,
        }
    }

    /// Bytes the whole block takes: the 4-byte profile/length header, the elements, and the
    /// zero padding up to a 32-bit boundary. Zero when `exts` is empty (no block at all).
    pub fn encoded_len(self, exts: &[Extension<'_>]) -> Result<usize, RtpError> {
        if exts.is_empty() {
            return Ok(0);
        }
        let mut body = 0usize;
        for e in exts {
            if e.id == 0 || (self == ExtensionForm::OneByte && e.id >= ONE_BYTE_STOP_ID) {
                return Err(RtpError::ExtensionId { id: e.id });
            }
            if !self.fits(e) {
                return Err(RtpError::ExtensionDataLength {
                    id: e.id,
                    len: e.data.len(),
                });
            }
            body += self.element_header_len() + e.data.len();
        }
        let padded = body.next_multiple_of(4);
        if padded / 4 > usize::from(u16::MAX) {
            return Err(RtpError::ExtensionBlockTooLong { len: padded });
        }
        Ok(4 + padded)
    }

    /// Writes the extension block (profile, length, elements, zero padding) at the start of
    /// `buf` and returns its length; writes nothing and returns 0 when `exts` is empty.
    pub fn write(self, exts: &[Extension<'_>], buf: &mut [u8]) -> Result<usize, RtpError> {
        let total = self.encoded_len(exts)?;
        if total == 0 {
            return Ok(0);
        }
        let mut w = Writer::new(buf);
        w.reserve(total)?;
        w.put_u16(self.profile())?;
        // encoded_len checked the word count fits 16 bits.
        w.put_u16(((total - 4) / 4) as u16)?;
        for e in exts {
            match self {
                ExtensionForm::OneByte => {
                    // fits() checked 1 <= len <= 16 and id <= 14.
                    w.put_u8((e.id << 4) | (e.data.len() - 1) as u8)?;
                }
                ExtensionForm::TwoByte { .. } => {
                    w.put_u8(e.id)?;
                    // fits() checked len <= 255.
                    w.put_u8(e.data.len() as u8)?;
                }
            }
            w.put_slice(e.data)?;
        }
        w.put_zeros(total - w.pos())?;
        Ok(total)
    }
}

/// An iterator over the elements of an RFC 8285 extension block.
///
/// Skips padding bytes, stops at a one-byte-form ID 15, and yields one `Err` (then ends) when
/// an element overruns the block. Never reads past the block.
#[derive(Debug, Clone)]
pub struct ExtensionIter<'a> {
    form: ExtensionForm,
    rest: &'a [u8],
}

impl<'a> ExtensionIter<'a> {
    /// Iterates the extension data `data` (after the 4-byte profile/length header) of a block
    /// with profile `profile`.
    pub fn new(profile: u16, data: &'a [u8]) -> Result<Self, RtpError> {
        let form = ExtensionForm::from_profile(profile)
            .ok_or(RtpError::UnknownExtensionProfile(profile))?;
        Ok(Self { form, rest: data })
    }

    /// An iterator that yields nothing (a packet without an extension block).
    pub const fn empty() -> Self {
        Self {
            form: ExtensionForm::OneByte,
            rest: &[],
        }
    }

    /// The form of the block being iterated.
    pub fn form(&self) -> ExtensionForm {
        self.form
    }

    fn fail(&mut self, e: RtpError) -> Option<Result<Extension<'a>, RtpError>> {
        self.rest = &[];
        Some(Err(e))
    }
}

impl<'a> Iterator for ExtensionIter<'a> {
    type Item = Result<Extension<'a>, RtpError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let (&first, after) = self.rest.split_first()?;
            if first == 0 {
                self.rest = after;
                continue;
            }
            let (id, len, data_start) = match self.form {
                ExtensionForm::OneByte => {
                    let id = first >> 4;
                    if id == ONE_BYTE_STOP_ID {
                        self.rest = &[];
                        return None;
                    }
                    if id == 0 {
                        return self.fail(RtpError::ExtensionPaddingNotZero(first));
                    }
                    (id, usize::from(first & 0x0f) + 1, after)
                }
                ExtensionForm::TwoByte { .. } => {
                    let Some((&len, data_start)) = after.split_first() else {
                        return self.fail(RtpError::ExtensionElementOverrun {
                            id: first,
                            len: 0,
                            available: 0,
                        });
                    };
                    (first, usize::from(len), data_start)
                }
            };
            if len > data_start.len() {
                return self.fail(RtpError::ExtensionElementOverrun {
                    id,
                    len,
                    available: data_start.len(),
                });
            }
            let (data, rest) = data_start.split_at(len);
            self.rest = rest;
            return Some(Ok(Extension { id, data }));
        }
    }
}

impl std::iter::FusedIterator for ExtensionIter<'_> {}

#[cfg(test)]
mod tests {
    use super::*;

    fn collect(profile: u16, data: &[u8]) -> Vec<Result<(u8, Vec<u8>), RtpError>> {
        ExtensionIter::new(profile, data)
            .unwrap()
            .map(|r| r.map(|e| (e.id, e.data.to_vec())))
            .collect()
    }

    #[test]
    fn one_byte_form_with_padding_between_and_after() {
        // RFC 8285 section 4.2 example layout: id 1 len 1, id 2 len 2 after a padding byte.
        let data = [0x10, 0xaa, 0x00, 0x21, 0xbb, 0xcc, 0x00, 0x00];
        assert_eq!(
            collect(0xbede, &data),
            vec![Ok((1, vec![0xaa])), Ok((2, vec![0xbb, 0xcc]))]
        );
    }

    #[test]
    fn one_byte_id_15_stops_processing() {
        let data = [0x10, 0xaa, 0xf0, 0x21, 0xbb, 0xcc, 0, 0];
        assert_eq!(collect(0xbede, &data), vec![Ok((1, vec![0xaa]))]);
    }

    #[test]
    fn one_byte_overrun_is_an_error_and_ends() {
        let data = [0x10, 0xaa, 0x23, 0xbb, 0xcc];
        assert_eq!(
            collect(0xbede, &data),
            vec![
                Ok((1, vec![0xaa])),
                Err(RtpError::ExtensionElementOverrun {
                    id: 2,
                    len: 4,
                    available: 2
                })
            ]
        );
    }

    #[test]
    fn one_byte_id_zero_with_length_is_rejected() {
        assert_eq!(
            collect(0xbede, &[0x05, 0, 0, 0]),
            vec![Err(RtpError::ExtensionPaddingNotZero(0x05))]
        );
    }

    #[test]
    fn two_byte_form_zero_length_and_padding() {
        let data = [0x01, 0x00, 0x00, 0xff, 0x02, 0xde, 0xad, 0x00];
        assert_eq!(
            collect(0x1003, &data),
            vec![Ok((1, vec![])), Ok((255, vec![0xde, 0xad]))]
        );
        // ID 15 is an ordinary ID in the two-byte form.
        assert_eq!(collect(0x1000, &[15, 1, 9, 0]), vec![Ok((15, vec![9]))]);
    }

    #[test]
    fn two_byte_overruns() {
        assert_eq!(
            collect(0x1000, &[0x07]),
            vec![Err(RtpError::ExtensionElementOverrun {
                id: 7,
                len: 0,
                available: 0
            })]
        );
        assert_eq!(
            collect(0x1000, &[0x07, 3, 1, 2]),
            vec![Err(RtpError::ExtensionElementOverrun {
                id: 7,
                len: 3,
                available: 2
            })]
        );
    }

    #[test]
    fn unknown_profile_rejected() {
        assert_eq!(
            ExtensionIter::new(0xabcd, &[]).err(),
            Some(RtpError::UnknownExtensionProfile(0xabcd))
        );
        assert_eq!(ExtensionForm::from_profile(0x1010), None);
        assert_eq!(
            ExtensionForm::from_profile(0x100f),
            Some(ExtensionForm::TwoByte { appbits: 15 })
        );
    }

    #[test]
    fn write_one_byte_round_trip() {
        let exts = [
            Extension {
                id: 1,
                data: &[0x85],
            },
            Extension {
                id: 14,
                data: &[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16],
            },
        ];
        let form = ExtensionForm::smallest(&exts);
        assert_eq!(form, ExtensionForm::OneByte);
        let mut buf = [0xffu8; 64];
        let n = form.write(&exts, &mut buf).unwrap();
        // 4 header + 2 + 17 = 23 -> padded to 24 + 4.
        assert_eq!(n, 4 + 20);
        assert_eq!(&buf[..4], &[0xbe, 0xde, 0x00, 0x05]);
        assert_eq!(buf[4], 0x10);
        assert_eq!(buf[6], 0xef);
        assert_eq!(buf[n - 1], 0);
        let got: Vec<_> = ExtensionIter::new(0xbede, &buf[4..n])
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(got, exts);
    }

    #[test]
    fn write_two_byte_round_trip() {
        let big = [7u8; 200];
        let exts = [
            Extension { id: 3, data: &[] },
            Extension {
                id: 200,
                data: &big,
            },
        ];
        let form = ExtensionForm::smallest(&exts);
        assert_eq!(form, ExtensionForm::TwoByte { appbits: 0 });
        let mut buf = [0u8; 300];
        let n = form.write(&exts, &mut buf).unwrap();
        assert_eq!(n % 4, 0);
        assert_eq!(&buf[..2], &[0x10, 0x00]);
        let got: Vec<_> = ExtensionIter::new(0x1000, &buf[4..n])
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(got, exts);
        let appbits = ExtensionForm::TwoByte { appbits: 0x5 };
        assert_eq!(appbits.profile(), 0x1005);
    }

    #[test]
    fn write_rejects_bad_ids_lengths_and_small_buffers() {
        let one = ExtensionForm::OneByte;
        let two = ExtensionForm::TwoByte { appbits: 0 };
        let e = |id, data| [Extension { id, data }];
        assert_eq!(
            one.encoded_len(&e(15, &[1])),
            Err(RtpError::ExtensionId { id: 15 })
        );
        assert_eq!(
            two.encoded_len(&e(0, &[1])),
            Err(RtpError::ExtensionId { id: 0 })
        );
        assert_eq!(
            one.encoded_len(&e(1, &[])),
            Err(RtpError::ExtensionDataLength { id: 1, len: 0 })
        );
        assert_eq!(
            one.encoded_len(&e(1, &[0; 17])),
            Err(RtpError::ExtensionDataLength { id: 1, len: 17 })
        );
        assert_eq!(
            two.encoded_len(&e(1, &[0; 256])),
            Err(RtpError::ExtensionDataLength { id: 1, len: 256 })
        );
        assert_eq!(one.encoded_len(&[]), Ok(0));
        let mut small = [0u8; 7];
        assert_eq!(
            one.write(&e(1, &[1, 2]), &mut small),
            Err(RtpError::BufferTooSmall { need: 8, have: 7 })
        );
        assert_eq!(small, [0; 7], "nothing written on refusal");
    }
}
