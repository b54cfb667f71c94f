//! Session keys of the AES-CM / HMAC-SHA1 transform (RFC 3711 §4.1.1,
//! §4.2.1) for one of SRTP or SRTCP.

use aes::Aes128Enc;
use aes::cipher::KeyInit;
use aes::cipher::generic_array::GenericArray;
use hmac::{Hmac, Mac};
use sha1::Sha1;

use super::aes_cm::{apply_keystream, iv};
use super::error::SrtpError;
use super::kdf::{Label, derive};

/// HMAC-SHA1 output length in bytes; tags are its leftmost 4 or 10 bytes.
const HMAC_SHA1_LEN: usize = 20;

/// The derived encryption key (expanded once), salt and pre-keyed HMAC.
#[derive(Clone)]
pub(crate) struct CmSession {
    /// AES-128 with the session encryption key, schedule expanded.
    cipher: Aes128Enc,
    /// Session salting key `k_s`.
    salt: [u8; 14],
    /// HMAC-SHA1 already keyed with the session authentication key; cloned
    /// per packet (a copy of two SHA-1 states, no allocation).
    mac: Hmac<Sha1>,
}

/// The three labels of one direction of keying (SRTP or SRTCP).
pub(crate) struct CmLabels {
    /// Label of the encryption key.
    pub(crate) encryption: Label,
    /// Label of the authentication key.
    pub(crate) authentication: Label,
    /// Label of the salting key.
    pub(crate) salt: Label,
}

impl CmSession {
    /// Derives the session keys for `labels` from the master key and salt.
    pub(crate) fn derive(
        master: &Aes128Enc,
        master_salt: &[u8],
        labels: CmLabels,
    ) -> Result<Self, SrtpError> {
        let mut key = [0u8; 16];
        let mut auth_key = [0u8; HMAC_SHA1_LEN];
        let mut salt = [0u8; 14];
        derive(master, master_salt, labels.encryption, &mut key);
        derive(master, master_salt, labels.authentication, &mut auth_key);
        derive(master, master_salt, labels.salt, &mut salt);
        let session = Self::from_session_keys(&key, salt, &auth_key);
        key.fill(0);
        auth_key.fill(0);
        session
    }

    /// Builds the session from already derived keys.
    pub(crate) fn from_session_keys(
        key: &[u8; 16],
        salt: [u8; 14],
        auth_key: &[u8],
    ) -> Result<Self, SrtpError> {
        Ok(CmSession {
            cipher: Aes128Enc::new(GenericArray::from_slice(key)),
            salt,
            mac: <Hmac<Sha1> as Mac>::new_from_slice(auth_key)
                .map_err(|_| SrtpError::BadKeyLength)?,
        })
    }

    /// En- or decrypts `data` in place for packet `index` of `ssrc`.
    pub(crate) fn apply_keystream(&self, ssrc: u32, index: u64, data: &mut [u8]) {
        apply_keystream(&self.cipher, &iv(&self.salt, ssrc, index), data);
    }

    /// Writes the leftmost `out.len()` bytes (at most 20) of
    /// `HMAC(k_a, parts[0] || parts[1] || ...)` into `out`.
    pub(crate) fn write_tag(&self, parts: &[&[u8]], out: &mut [u8]) {
        let mut mac = self.mac.clone();
        for part in parts {
            mac.update(part);
        }
        let full = mac.finalize().into_bytes();
        for (o, t) in out.iter_mut().zip(full.iter()) {
            *o = *t;
        }
    }

    /// Whether `tag` is the leftmost part of
    /// `HMAC(k_a, parts[0] || parts[1] || ...)`, compared in constant time.
    /// An empty tag never verifies.
    pub(crate) fn verify_tag(&self, parts: &[&[u8]], tag: &[u8]) -> bool {
        let mut mac = self.mac.clone();
        for part in parts {
            mac.update(part);
        }
        mac.verify_truncated_left(tag).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_verify_and_reject() {
        let s = CmSession::from_session_keys(&[1; 16], [2; 14], &[3; 20]).unwrap();
        let mut tag = [0u8; 10];
        s.write_tag(&[b"header and payload", &[0, 0, 0, 1]], &mut tag);
        assert!(s.verify_tag(&[b"header and payload", &[0, 0, 0, 1]], &tag));
        // Where the parts split does not matter, only their concatenation.
        assert!(s.verify_tag(&[b"header ", b"and payload\0\0", &[0, 1]], &tag));
        assert!(s.verify_tag(&[b"header and payload", &[0, 0, 0, 1]], &tag[..4]));
        assert!(!s.verify_tag(&[b"header and payload", &[0, 0, 0, 2]], &tag));
        assert!(!s.verify_tag(&[b"header and paylaod", &[0, 0, 0, 1]], &tag));
        assert!(!s.verify_tag(&[b"header and payload", &[0, 0, 0, 1]], &[]));
    }
}
