//! Session keys of the AEAD_AES_128_GCM / AEAD_AES_256_GCM transform
//! (RFC 7714) for one of SRTP or SRTCP, on ring.

use ring::aead::{Aad, Algorithm, LessSafeKey, Nonce, Tag, UnboundKey};

use super::error::SrtpError;

/// GCM authentication tag length in bytes (RFC 7714 §12).
pub(crate) const GCM_TAG_LEN: usize = 16;

/// GCM IV (and session salt) length in bytes.
pub(crate) const GCM_IV_LEN: usize = 12;

/// The expanded GCM key and the 96-bit session salt.
pub(crate) struct GcmSession {
    /// AES-GCM key, schedule and GHASH table precomputed by ring.
    key: LessSafeKey,
    /// Session salt, XORed into every IV.
    salt: [u8; GCM_IV_LEN],
}

impl GcmSession {
    /// Builds the session from a session key and salt.
    pub(crate) fn new(
        algorithm: &'static Algorithm,
        key: &[u8],
        salt: [u8; GCM_IV_LEN],
    ) -> Result<Self, SrtpError> {
        let key = UnboundKey::new(algorithm, key).map_err(|_| SrtpError::BadKeyLength)?;
        Ok(GcmSession {
            key: LessSafeKey::new(key),
            salt,
        })
    }

    /// The SRTP IV of RFC 7714 §8.1:
    /// `(00 00 || SSRC || ROC || SEQ) XOR salt`.
    pub(crate) fn rtp_iv(&self, ssrc: u32, roc: u32, seq: u16) -> [u8; GCM_IV_LEN] {
        let mut iv = [0u8; GCM_IV_LEN];
        iv[2..6].copy_from_slice(&ssrc.to_be_bytes());
        iv[6..10].copy_from_slice(&roc.to_be_bytes());
        iv[10..12].copy_from_slice(&seq.to_be_bytes());
        self.salted(iv)
    }

    /// The SRTCP IV of RFC 7714 §9.1:
    /// `(00 00 || SSRC || 00 00 || 0 || SRTCP index) XOR salt`.
    pub(crate) fn rtcp_iv(&self, ssrc: u32, srtcp_index: u32) -> [u8; GCM_IV_LEN] {
        let mut iv = [0u8; GCM_IV_LEN];
        iv[2..6].copy_from_slice(&ssrc.to_be_bytes());
        iv[8..12].copy_from_slice(&(srtcp_index & 0x7fff_ffff).to_be_bytes());
        self.salted(iv)
    }

    fn salted(&self, mut iv: [u8; GCM_IV_LEN]) -> [u8; GCM_IV_LEN] {
        for (b, s) in iv.iter_mut().zip(self.salt) {
            *b ^= s;
        }
        iv
    }

    /// Encrypts `plaintext` in place and returns the tag.
    pub(crate) fn seal(
        &self,
        iv: [u8; GCM_IV_LEN],
        aad: &[u8],
        plaintext: &mut [u8],
    ) -> Result<[u8; GCM_TAG_LEN], SrtpError> {
        let tag = self
            .key
            .seal_in_place_separate_tag(Nonce::assume_unique_for_key(iv), Aad::from(aad), plaintext)
            // Only inputs beyond GCM's 2^36-byte limit fail; no packet is.
            .map_err(|_| SrtpError::Malformed)?;
        let mut out = [0u8; GCM_TAG_LEN];
        out.copy_from_slice(tag.as_ref());
        Ok(out)
    }

    /// Verifies `tag` over `aad` and `ciphertext`, then decrypts
    /// `ciphertext` in place.
    pub(crate) fn open(
        &self,
        iv: [u8; GCM_IV_LEN],
        aad: &[u8],
        ciphertext: &mut [u8],
        tag: &[u8],
    ) -> Result<(), SrtpError> {
        let tag = Tag::try_from(tag).map_err(|_| SrtpError::AuthFailed)?;
        self.key
            .open_in_place_separate_tag(
                Nonce::assume_unique_for_key(iv),
                Aad::from(aad),
                tag,
                ciphertext,
                0..,
            )
            .map(|_| ())
            .map_err(|_| SrtpError::AuthFailed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::srtp::unhex;

    /// RFC 7714 §16.1.1: the salt is "Quid pro quo" and the packet has
    /// SSRC 5501a0b2, ROC 0, SEQ f17b; the RFC's IV is
    /// 51 75 3c 65 80 c2 72 6f 20 71 84 14.
    #[test]
    fn rfc7714_rtp_iv() {
        let s = GcmSession::new(
            &ring::aead::AES_128_GCM,
            &unhex("000102030405060708090a0b0c0d0e0f"),
            *b"Quid pro quo",
        )
        .unwrap();
        assert_eq!(
            s.rtp_iv(0x5501_a0b2, 0, 0xf17b).to_vec(),
            unhex("51753c6580c2726f20718414")
        );
    }

    #[test]
    fn wrong_key_length_is_refused() {
        assert!(GcmSession::new(&ring::aead::AES_128_GCM, &[0; 32], [0; 12]).is_err());
        assert!(GcmSession::new(&ring::aead::AES_256_GCM, &[0; 16], [0; 12]).is_err());
    }

    #[test]
    fn seal_then_open() {
        let s = GcmSession::new(&ring::aead::AES_256_GCM, &[9; 32], [1; 12]).unwrap();
        let iv = s.rtcp_iv(7, 0x8000_0005);
        assert_eq!(iv, s.rtcp_iv(7, 5), "the E bit is not part of the IV");
        let mut data = *b"sixteen byte msg";
        let tag = s.seal(iv, b"aad", &mut data).unwrap();
        assert_ne!(&data, b"sixteen byte msg");
        assert_eq!(
            s.open(iv, b"aaD", &mut data.clone(), &tag),
            Err(SrtpError::AuthFailed)
        );
        s.open(iv, b"aad", &mut data, &tag).unwrap();
        assert_eq!(&data, b"sixteen byte msg");
    }
}
