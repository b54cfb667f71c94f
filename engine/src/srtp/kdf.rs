//! The SRTP key derivation function, AES-CM PRF (RFC 3711 §4.3).
//!
//! Only a key derivation rate of zero is supported: session keys are derived
//! once, with `r = index DIV kdr = 0`. RFC 7714 §11 keeps this PRF for the
//! GCM suites, with the master key's own AES size and a 96-bit master salt,
//! which (as in libsrtp) is right-padded with zeros to the 112-bit
//! `x * 2^16` layout.

use aes::cipher::consts::U16;
use aes::cipher::{BlockEncrypt, BlockSizeUser};

use super::aes_cm::{BLOCK_LEN, apply_keystream};

/// Key derivation labels (RFC 3711 §4.3.1 and §4.3.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Label {
    /// SRTP encryption key, `k_e`.
    RtpEncryption = 0x00,
    /// SRTP authentication key, `k_a`.
    RtpAuthentication = 0x01,
    /// SRTP salting key, `k_s`.
    RtpSalt = 0x02,
    /// SRTCP encryption key.
    RtcpEncryption = 0x03,
    /// SRTCP authentication key.
    RtcpAuthentication = 0x04,
    /// SRTCP salting key.
    RtcpSalt = 0x05,
}

/// Longest master salt the PRF input has room for (112 bits).
const MAX_MASTER_SALT_LEN: usize = 14;

/// Fills `out` with `PRF_n(k_master, x)` for `label` and `r = 0`.
///
/// `x = key_id XOR master_salt` with `key_id = label || r` right-aligned in
/// the 112-bit salt, so the label lands in byte 7; the AES-CM input is
/// `x * 2^16`. Salt bytes beyond 14 are ignored (callers pass 12 or 14).
pub(crate) fn derive<C>(master: &C, master_salt: &[u8], label: Label, out: &mut [u8])
where
    C: BlockEncrypt + BlockSizeUser<BlockSize = U16>,
{
    let mut iv = [0u8; BLOCK_LEN];
    let salt_len = master_salt.len().min(MAX_MASTER_SALT_LEN);
    // INVARIANT: salt_len <= 14 < BLOCK_LEN and salt_len <= master_salt.len().
    iv[..salt_len].copy_from_slice(&master_salt[..salt_len]);
    iv[7] ^= label as u8;
    out.fill(0);
    apply_keystream(master, &iv, out);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::srtp::unhex;
    use aes::Aes128;
    use aes::cipher::KeyInit;

    /// RFC 3711 Appendix B.3, "Key Derivation Test Vectors", verbatim:
    ///
    /// ```text
    ///       master key:  E1F97A0D3E018BE0D64FA32C06DE4139
    ///       master salt: 0EC675AD498AFEEBB6960B3AABE6
    ///
    ///       cipher key:    C61E7A93744F39EE10734AFE3FF7A087 (AES-CM output)
    ///
    ///       cipher salt:   30CBBC08863D8C85D49DB34A9AE1
    ///
    ///    auth key                           AES input blocks
    ///    CEBE321F6FF7716B6FD4AB49AF256A15   0EC675AD498AFEEAB6960B3AABE60000
    ///    6D38BAA48F0A0ACF3C34E2359E6CDBCE   0EC675AD498AFEEAB6960B3AABE60001
    ///    E049646C43D9327AD175578EF7227098   0EC675AD498AFEEAB6960B3AABE60002
    ///    6371C10C9A369AC2F94A8C5FBCDDDC25   0EC675AD498AFEEAB6960B3AABE60003
    ///    6D6E919A48B610EF17C2041E47403576   0EC675AD498AFEEAB6960B3AABE60004
    ///    6B68642C59BBFC2F34DB60DBDFB2       0EC675AD498AFEEAB6960B3AABE60005
    /// ```
    #[test]
    fn rfc3711_b3_key_derivation() {
        let master = Aes128::new_from_slice(&unhex("E1F97A0D3E018BE0D64FA32C06DE4139")).unwrap();
        let salt = unhex("0EC675AD498AFEEBB6960B3AABE6");

        let mut cipher_key = [0u8; 16];
        derive(&master, &salt, Label::RtpEncryption, &mut cipher_key);
        assert_eq!(
            cipher_key.to_vec(),
            unhex("C61E7A93744F39EE10734AFE3FF7A087")
        );

        let mut cipher_salt = [0u8; 14];
        derive(&master, &salt, Label::RtpSalt, &mut cipher_salt);
        assert_eq!(cipher_salt.to_vec(), unhex("30CBBC08863D8C85D49DB34A9AE1"));

        let mut auth_key = [0u8; 94];
        derive(&master, &salt, Label::RtpAuthentication, &mut auth_key);
        assert_eq!(
            auth_key.to_vec(),
            unhex(
                "CEBE321F6FF7716B6FD4AB49AF256A15
                 6D38BAA48F0A0ACF3C34E2359E6CDBCE
                 E049646C43D9327AD175578EF7227098
                 6371C10C9A369AC2F94A8C5FBCDDDC25
                 6D6E919A48B610EF17C2041E47403576
                 6B68642C59BBFC2F34DB60DBDFB2"
            )
        );

        // The 160-bit HMAC key SRTP uses is the first 20 bytes of the same
        // PRF output: derivation does not depend on the output length.
        let mut hmac_key = [0u8; 20];
        derive(&master, &salt, Label::RtpAuthentication, &mut hmac_key);
        assert_eq!(hmac_key[..], auth_key[..20]);
    }
}
