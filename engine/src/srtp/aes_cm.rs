//! AES in counter mode as SRTP uses it (RFC 3711 §4.1.1).
//!
//! Our own CTR on top of a block cipher whose key schedule was expanded once
//! per session: the keystream is produced [`PAR_BLOCKS`] counter blocks at a
//! time with `encrypt_blocks`, so AES-NI can pipeline them, and nothing is
//! allocated.

use aes::cipher::consts::U16;
use aes::cipher::generic_array::GenericArray;
use aes::cipher::{BlockEncrypt, BlockSizeUser};

/// AES block length in bytes.
pub(crate) const BLOCK_LEN: usize = 16;

/// Counter blocks encrypted per `encrypt_blocks` call.
const PAR_BLOCKS: usize = 8;

/// The AES-CM IV of RFC 3711 §4.1.1:
/// `IV = (k_s * 2^16) XOR (SSRC * 2^64) XOR (i * 2^16)`.
///
/// `index` is the 48-bit SRTP packet index (or the 31-bit SRTCP index).
pub(crate) fn iv(session_salt: &[u8; 14], ssrc: u32, index: u64) -> [u8; BLOCK_LEN] {
    let mut iv = [0u8; BLOCK_LEN];
    iv[..14].copy_from_slice(session_salt);
    for (byte, s) in iv[4..8].iter_mut().zip(ssrc.to_be_bytes()) {
        *byte ^= s;
    }
    // The index occupies bits 16..64 of the IV, i.e. bytes 8..14.
    for (byte, s) in iv[8..14].iter_mut().zip(&index.to_be_bytes()[2..]) {
        *byte ^= s;
    }
    iv
}

/// XORs the AES-CM keystream starting at counter block `iv` into `data`.
///
/// Block `j` of the keystream is `E(k, iv + j)`, the addition taken modulo
/// 2^128, which is the SRTP definition (the low 16 bits of an SRTP IV are
/// zero, so packets up to 2^16 blocks never carry into the index bits).
pub(crate) fn apply_keystream<C>(cipher: &C, iv: &[u8; BLOCK_LEN], data: &mut [u8])
where
    C: BlockEncrypt + BlockSizeUser<BlockSize = U16>,
{
    let base = u128::from_be_bytes(*iv);
    let mut counter: u128 = 0;
    let mut blocks: [GenericArray<u8, U16>; PAR_BLOCKS] = Default::default();
    for chunk in data.chunks_mut(PAR_BLOCKS * BLOCK_LEN) {
        let used_blocks = chunk.len().div_ceil(BLOCK_LEN);
        // INVARIANT: chunk.len() <= PAR_BLOCKS * BLOCK_LEN, so
        // used_blocks <= PAR_BLOCKS.
        let keystream = &mut blocks[..used_blocks];
        for block in keystream.iter_mut() {
            block.copy_from_slice(&base.wrapping_add(counter).to_be_bytes());
            counter = counter.wrapping_add(1);
        }
        cipher.encrypt_blocks(keystream);
        for (bytes, key_block) in chunk.chunks_mut(BLOCK_LEN).zip(keystream.iter()) {
            xor_block(bytes, key_block);
        }
    }
}

/// `bytes ^= key_block[..bytes.len()]`, 16 bytes at once when whole.
#[inline(always)]
fn xor_block(bytes: &mut [u8], key_block: &GenericArray<u8, U16>) {
    let key: [u8; BLOCK_LEN] = (*key_block).into();
    match <&mut [u8; BLOCK_LEN]>::try_from(&mut *bytes) {
        Ok(whole) => {
            let x = u128::from_ne_bytes(*whole) ^ u128::from_ne_bytes(key);
            *whole = x.to_ne_bytes();
        }
        Err(_) => {
            for (b, k) in bytes.iter_mut().zip(key) {
                *b ^= k;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::srtp::unhex;
    use aes::Aes128;
    use aes::cipher::KeyInit;

    /// RFC 3711 Appendix B.2, "AES-CM Test Vectors", verbatim:
    ///
    /// ```text
    ///     Keystream segment length: 1044512 octets (65282 AES blocks)
    ///     Session Key:      2B7E151628AED2A6ABF7158809CF4F3C
    ///     Rollover Counter: 00000000
    ///     Sequence Number:  0000
    ///     SSRC:             00000000
    ///     Session Salt:     F0F1F2F3F4F5F6F7F8F9FAFBFCFD0000 (already shifted)
    ///     Offset:           F0F1F2F3F4F5F6F7F8F9FAFBFCFD0000
    ///
    ///     Counter                            Keystream
    ///
    ///     F0F1F2F3F4F5F6F7F8F9FAFBFCFD0000   E03EAD0935C95E80E166B16DD92B4EB4
    ///     F0F1F2F3F4F5F6F7F8F9FAFBFCFD0001   D23513162B02D0F72A43A2FE4A5F97AB
    ///     F0F1F2F3F4F5F6F7F8F9FAFBFCFD0002   41E95B3BB0A2E8DD477901E4FCA894C0
    ///     ...                                ...
    ///     F0F1F2F3F4F5F6F7F8F9FAFBFCFDFEFF   EC8CDF7398607CB0F2D21675EA9EA1E4
    ///     F0F1F2F3F4F5F6F7F8F9FAFBFCFDFF00   362B7C3C6773516318A077D7FC5073AE
    ///     F0F1F2F3F4F5F6F7F8F9FAFBFCFDFF01   6A2CC3787889374FBEB4C81B17BA6C44
    /// ```
    #[test]
    fn rfc3711_b2_aes_cm_keystream() {
        let cipher = Aes128::new_from_slice(&unhex("2B7E151628AED2A6ABF7158809CF4F3C")).unwrap();
        let salt: [u8; 14] = unhex("F0F1F2F3F4F5F6F7F8F9FAFBFCFD").try_into().unwrap();
        let iv = iv(&salt, 0x0000_0000, 0);
        assert_eq!(iv.to_vec(), unhex("F0F1F2F3F4F5F6F7F8F9FAFBFCFD0000"));

        let mut keystream = vec![0u8; 1_044_512];
        apply_keystream(&cipher, &iv, &mut keystream);
        assert_eq!(keystream.len() / BLOCK_LEN, 65_282);
        assert_eq!(
            keystream[..48],
            unhex(
                "E03EAD0935C95E80E166B16DD92B4EB4
                 D23513162B02D0F72A43A2FE4A5F97AB
                 41E95B3BB0A2E8DD477901E4FCA894C0"
            )
        );
        assert_eq!(
            keystream[keystream.len() - 48..],
            unhex(
                "EC8CDF7398607CB0F2D21675EA9EA1E4
                 362B7C3C6773516318A077D7FC5073AE
                 6A2CC3787889374FBEB4C81B17BA6C44"
            )
        );
    }

    /// Any split of the data gives the same keystream as one call over the
    /// whole: partial blocks and partial batches line up with the counter.
    #[test]
    fn keystream_is_independent_of_length() {
        let cipher = Aes128::new_from_slice(&[7u8; 16]).unwrap();
        let iv = iv(&[3u8; 14], 0x1234_5678, 0x0001_0002_0003);
        let mut whole = [0u8; 300];
        apply_keystream(&cipher, &iv, &mut whole);
        for len in 0..whole.len() {
            let mut part = vec![0u8; len];
            apply_keystream(&cipher, &iv, &mut part);
            assert_eq!(part[..], whole[..len], "len {len}");
        }
    }

    #[test]
    fn iv_places_ssrc_and_index() {
        let iv = iv(&[0u8; 14], 0xdead_beef, 0xaabb_ccdd_eeff);
        assert_eq!(iv.to_vec(), unhex("00000000deadbeefaabbccddeeff0000"));
    }
}
