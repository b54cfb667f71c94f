//! SDES keying (RFC 4568): the value of an `a=crypto:` SDP attribute.
//!
//! ```text
//! a=crypto:<tag> <crypto-suite> inline:<base64 key||salt>[|<lifetime>][|<MKI>:<length>] [session params]
//! ```
//!
//! What we accept, and why:
//! - Suites of [`SrtpSuite`] only; an unknown suite is [`SdesError::UnknownSuite`]
//!   so the caller moves on to the offer's next crypto line.
//! - The key is standard-alphabet base64, padded or not; we always emit it
//!   padded.
//! - A lifetime (`2^n` or decimal, at most 2^48 packets) is kept and applied
//!   by [`CryptoAttribute::context`].
//! - MKI is refused ([`SdesError::MkiUnsupported`]): we put no MKI in packets.
//!   So are several `inline:` keys, which RFC 4568 only allows with MKI.
//! - Session parameters (RFC 4568 §6.3): `KDR=0` is tolerated (it is what a
//!   zero rate would mean; RFC 4568 itself only defines 1..24), any other
//!   `KDR` is [`SdesError::KdrUnsupported`]; `UNENCRYPTED_SRTP`,
//!   `UNENCRYPTED_SRTCP` and `UNAUTHENTICATED_SRTP` are refused, each with
//!   its own error, since we always encrypt and authenticate; `WSH` (a hint,
//!   our window is 128) and `FEC_ORDER` (we do no FEC) are ignored;
//!   `FEC_KEY` and any parameter we do not know are refused: a session
//!   parameter changes how the packets must be processed, so ignoring one we
//!   do not understand could mean processing them wrongly.

use std::fmt;

use base64::Engine;
use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use ring::rand::{SecureRandom, SystemRandom};

use super::context::{MAX_SRTP_PACKETS, SrtpContext};
use super::error::SrtpError;
use super::suite::SrtpSuite;

/// Why an `a=crypto:` attribute was not usable.
#[derive(thiserror::Error, Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SdesError {
    /// The attribute lacks a tag, suite or key parameter, or a field is not
    /// in RFC 4568 syntax.
    #[error("malformed crypto attribute")]
    Malformed,
    /// The tag is not a 1 to 9 digit decimal number.
    #[error("bad crypto attribute tag")]
    BadTag,
    /// The crypto suite is not one we support.
    #[error("unsupported SRTP crypto suite")]
    UnknownSuite,
    /// The key method is not `inline:`.
    #[error("unsupported key method (only inline: is defined)")]
    UnsupportedKeyMethod,
    /// The key is not valid standard-alphabet base64.
    #[error("key is not valid base64")]
    BadBase64,
    /// The decoded key and salt do not have the suite's length.
    #[error("key and salt length do not match the crypto suite")]
    WrongKeyLength,
    /// The lifetime is not `2^n` or a decimal number in 1..=2^48.
    #[error("unparsable or out of range key lifetime")]
    BadLifetime,
    /// The key carries an MKI, which we do not support in packets.
    #[error("MKI is not supported")]
    MkiUnsupported,
    /// Several `inline:` keys (only meaningful with MKI).
    #[error("multiple keys in one crypto attribute are not supported")]
    MultipleKeys,
    /// A `KDR` session parameter asks for a nonzero key derivation rate.
    #[error("nonzero key derivation rate (KDR) is not supported")]
    KdrUnsupported,
    /// The `UNENCRYPTED_SRTP` session parameter: we always encrypt SRTP.
    #[error("UNENCRYPTED_SRTP is not supported")]
    UnencryptedSrtp,
    /// The `UNENCRYPTED_SRTCP` session parameter: we always encrypt SRTCP.
    #[error("UNENCRYPTED_SRTCP is not supported")]
    UnencryptedSrtcp,
    /// The `UNAUTHENTICATED_SRTP` session parameter: we always authenticate.
    #[error("UNAUTHENTICATED_SRTP is not supported")]
    UnauthenticatedSrtp,
    /// A known session parameter we cannot honour (`FEC_KEY`), or a known
    /// one with a malformed value.
    #[error("unsupported or malformed session parameter")]
    UnsupportedSessionParam,
    /// A session parameter RFC 4568 does not define.
    #[error("unknown session parameter")]
    UnknownSessionParam,
    /// The system random number generator failed.
    #[error("random number generator failed")]
    RandomFailed,
}

/// Longest master key plus salt of any suite (AES-256 key, 96-bit salt).
const MAX_KEY_SALT_LEN: usize = 44;

/// Longest base64 `inline:` key we look at (padded length of 48 bytes).
const MAX_KEY_BASE64_LEN: usize = 64;

/// Largest tag: RFC 4568 allows 1 to 9 digits.
const MAX_TAG: u32 = 999_999_999;

/// Standard alphabet; decoding accepts the key with or without padding.
const BASE64_ANY_PADDING: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Standard alphabet, padded, for what we emit.
const BASE64_PADDED: GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// A master key and master salt, sized for one suite. `Debug` does not
/// show the bytes.
#[derive(Clone, PartialEq, Eq)]
pub struct KeyMaterial {
    bytes: [u8; MAX_KEY_SALT_LEN],
    key_len: usize,
    salt_len: usize,
}

impl KeyMaterial {
    /// Key material from a master key and salt of `suite`'s lengths.
    pub fn new(suite: SrtpSuite, key: &[u8], salt: &[u8]) -> Result<Self, SdesError> {
        if key.len() != suite.master_key_len() || salt.len() != suite.master_salt_len() {
            return Err(SdesError::WrongKeyLength);
        }
        let mut material = KeyMaterial {
            bytes: [0; MAX_KEY_SALT_LEN],
            key_len: key.len(),
            salt_len: salt.len(),
        };
        let (k, rest) = material.bytes.split_at_mut(key.len());
        k.copy_from_slice(key);
        rest.get_mut(..salt.len())
            .ok_or(SdesError::WrongKeyLength)?
            .copy_from_slice(salt);
        Ok(material)
    }

    /// Fresh random key material for `suite`, from the system CSPRNG.
    pub fn generate(suite: SrtpSuite) -> Result<Self, SdesError> {
        let mut material = KeyMaterial {
            bytes: [0; MAX_KEY_SALT_LEN],
            key_len: suite.master_key_len(),
            salt_len: suite.master_salt_len(),
        };
        SystemRandom::new()
            .fill(material.key_and_salt_mut())
            .map_err(|_| SdesError::RandomFailed)?;
        Ok(material)
    }

    /// The master key.
    pub fn key(&self) -> &[u8] {
        // INVARIANT: key_len + salt_len <= MAX_KEY_SALT_LEN (checked when
        // built, all suites fit).
        &self.bytes[..self.key_len]
    }

    /// The master salt.
    pub fn salt(&self) -> &[u8] {
        // INVARIANT: as in `key`.
        &self.bytes[self.key_len..self.key_len + self.salt_len]
    }

    /// Key followed by salt, as SDES carries them.
    pub fn key_and_salt(&self) -> &[u8] {
        // INVARIANT: as in `key`.
        &self.bytes[..self.key_len + self.salt_len]
    }

    fn key_and_salt_mut(&mut self) -> &mut [u8] {
        // INVARIANT: as in `key`.
        &mut self.bytes[..self.key_len + self.salt_len]
    }
}

impl fmt::Debug for KeyMaterial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyMaterial")
            .field("key_len", &self.key_len)
            .field("salt_len", &self.salt_len)
            .finish_non_exhaustive()
    }
}

/// One parsed (or generated) `a=crypto:` attribute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CryptoAttribute {
    /// The tag that pairs an answer's attribute with the offer's.
    pub tag: u32,
    /// The crypto suite.
    pub suite: SrtpSuite,
    /// Master key and salt.
    pub key_material: KeyMaterial,
    /// Master key lifetime in packets, if the attribute gives one.
    pub lifetime_packets: Option<u64>,
}

impl CryptoAttribute {
    /// Parses the value of an `a=crypto:` attribute (the `a=crypto:` prefix
    /// itself is accepted and skipped). See the module docs for what is
    /// refused.
    pub fn parse(value: &str) -> Result<Self, SdesError> {
        let value = value.trim();
        let value = value.strip_prefix("a=crypto:").unwrap_or(value);
        let mut fields = value.split_ascii_whitespace();
        let tag = parse_tag(fields.next().ok_or(SdesError::Malformed)?)?;
        let suite = SrtpSuite::from_sdes_name(fields.next().ok_or(SdesError::Malformed)?)
            .ok_or(SdesError::UnknownSuite)?;
        let key_params = fields.next().ok_or(SdesError::Malformed)?;
        if key_params.contains(';') {
            return Err(SdesError::MultipleKeys);
        }
        let key_info = key_params
            .strip_prefix("inline:")
            .ok_or(SdesError::UnsupportedKeyMethod)?;
        let mut parts = key_info.split('|');
        let key_base64 = parts.next().ok_or(SdesError::Malformed)?;
        let mut lifetime_packets = None;
        match (parts.next(), parts.next(), parts.next()) {
            (None, _, _) => {}
            (Some(mki), None, _) if mki.contains(':') => return Err(mki_error(mki)),
            (Some(lifetime), None, _) => lifetime_packets = Some(parse_lifetime(lifetime)?),
            (Some(lifetime), Some(mki), None) => {
                parse_lifetime(lifetime)?;
                return Err(mki_error(mki));
            }
            (Some(_), Some(_), Some(_)) => return Err(SdesError::Malformed),
        }
        let key_material = decode_key(suite, key_base64)?;
        for param in fields {
            check_session_param(param)?;
        }
        Ok(CryptoAttribute {
            tag,
            suite,
            key_material,
            lifetime_packets,
        })
    }

    /// A new attribute for `suite` with fresh random key material and no
    /// lifetime (so the RFC 3711 maximum applies).
    pub fn generate(tag: u32, suite: SrtpSuite) -> Result<Self, SdesError> {
        if tag > MAX_TAG {
            return Err(SdesError::BadTag);
        }
        Ok(CryptoAttribute {
            tag,
            suite,
            key_material: KeyMaterial::generate(suite)?,
            lifetime_packets: None,
        })
    }

    /// An SRTP context keyed with this attribute's master key and salt, its
    /// lifetime applied.
    pub fn context(&self) -> Result<SrtpContext, SrtpError> {
        let mut context = SrtpContext::new(
            self.suite,
            self.key_material.key(),
            self.key_material.salt(),
        )?;
        if let Some(packets) = self.lifetime_packets {
            context.set_key_lifetime_packets(packets);
        }
        Ok(context)
    }
}

/// The attribute value, `tag SUITE inline:KEY[|LIFETIME]`, key in padded
/// base64, lifetime as `2^n` when it is a power of two.
impl fmt::Display for CryptoAttribute {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut encoded = [0u8; MAX_KEY_BASE64_LEN];
        let len = BASE64_PADDED
            .encode_slice(self.key_material.key_and_salt(), &mut encoded)
            .map_err(|_| fmt::Error)?;
        let key = encoded
            .get(..len)
            .and_then(|b| std::str::from_utf8(b).ok())
            .ok_or(fmt::Error)?;
        write!(f, "{} {} inline:{key}", self.tag, self.suite.sdes_name())?;
        match self.lifetime_packets {
            Some(n) if n.is_power_of_two() => write!(f, "|2^{}", n.trailing_zeros()),
            Some(n) => write!(f, "|{n}"),
            None => Ok(()),
        }
    }
}

fn parse_tag(field: &str) -> Result<u32, SdesError> {
    if field.is_empty() || field.len() > 9 || !field.bytes().all(|b| b.is_ascii_digit()) {
        return Err(SdesError::BadTag);
    }
    field.parse().map_err(|_| SdesError::BadTag)
}

/// `2^n` or a decimal count; 1..=2^48 packets.
fn parse_lifetime(field: &str) -> Result<u64, SdesError> {
    let packets = match field.strip_prefix("2^") {
        Some(exponent) => {
            let exponent = parse_decimal(exponent, 2)
                .and_then(|e| u32::try_from(e).ok())
                .ok_or(SdesError::BadLifetime)?;
            1u64.checked_shl(exponent).ok_or(SdesError::BadLifetime)?
        }
        None => parse_decimal(field, 15).ok_or(SdesError::BadLifetime)?,
    };
    if packets == 0 || packets > MAX_SRTP_PACKETS {
        return Err(SdesError::BadLifetime);
    }
    Ok(packets)
}

/// Checks the `value:length` syntax of an MKI (value up to 128 digits,
/// length 1..=128) and refuses it: well-formed MKIs are unsupported.
fn mki_error(field: &str) -> SdesError {
    let well_formed = field.split_once(':').is_some_and(|(value, length)| {
        !value.is_empty()
            && value.len() <= 128
            && value.bytes().all(|b| b.is_ascii_digit())
            && parse_decimal(length, 3).is_some_and(|n| (1..=128).contains(&n))
    });
    if well_formed {
        SdesError::MkiUnsupported
    } else {
        SdesError::Malformed
    }
}

/// A decimal of 1..=`max_digits` ASCII digits.
fn parse_decimal(field: &str, max_digits: usize) -> Option<u64> {
    if field.is_empty() || field.len() > max_digits || !field.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    field.parse().ok()
}

fn decode_key(suite: SrtpSuite, key_base64: &str) -> Result<KeyMaterial, SdesError> {
    if key_base64.len() > MAX_KEY_BASE64_LEN {
        return Err(SdesError::WrongKeyLength);
    }
    let mut decoded = [0u8; MAX_KEY_BASE64_LEN];
    let len = BASE64_ANY_PADDING
        .decode_slice(key_base64, &mut decoded)
        .map_err(|_| SdesError::BadBase64)?;
    let key_and_salt = decoded.get(..len).ok_or(SdesError::BadBase64)?;
    if key_and_salt.len() != suite.master_key_len() + suite.master_salt_len() {
        return Err(SdesError::WrongKeyLength);
    }
    let (key, salt) = key_and_salt.split_at(suite.master_key_len());
    let material = KeyMaterial::new(suite, key, salt);
    decoded.fill(0);
    material
}

fn check_session_param(param: &str) -> Result<(), SdesError> {
    let (name, value) = match param.split_once('=') {
        Some((name, value)) => (name, Some(value)),
        None => (param, None),
    };
    match (name, value) {
        ("KDR", Some(rate)) => match parse_decimal(rate, 2) {
            Some(0) => Ok(()),
            Some(1..=24) => Err(SdesError::KdrUnsupported),
            _ => Err(SdesError::UnsupportedSessionParam),
        },
        ("UNENCRYPTED_SRTP", None) => Err(SdesError::UnencryptedSrtp),
        ("UNENCRYPTED_SRTCP", None) => Err(SdesError::UnencryptedSrtcp),
        ("UNAUTHENTICATED_SRTP", None) => Err(SdesError::UnauthenticatedSrtp),
        ("WSH", Some(window)) => match parse_decimal(window, 20) {
            Some(n) if n >= 64 => Ok(()),
            _ => Err(SdesError::UnsupportedSessionParam),
        },
        ("FEC_ORDER", Some("FEC_SRTP" | "SRTP_FEC")) => Ok(()),
        ("FEC_ORDER" | "FEC_KEY" | "KDR" | "WSH", _)
        | ("UNENCRYPTED_SRTP" | "UNENCRYPTED_SRTCP" | "UNAUTHENTICATED_SRTP", Some(_)) => {
            Err(SdesError::UnsupportedSessionParam)
        }
        _ => Err(SdesError::UnknownSessionParam),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(bytes: &[u8]) -> String {
        BASE64_PADDED.encode(bytes)
    }

    /// The example attribute of RFC 4568 §4 (with MKI 1 of length 32), and
    /// the same key without the MKI.
    #[test]
    fn rfc4568_example() {
        let line = "a=crypto:1 AES_CM_128_HMAC_SHA1_80 \
                    inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR|2^20|1:32";
        assert_eq!(CryptoAttribute::parse(line), Err(SdesError::MkiUnsupported));

        let value =
            "1 AES_CM_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR|2^20";
        let attr = CryptoAttribute::parse(value).unwrap();
        assert_eq!(attr.tag, 1);
        assert_eq!(attr.suite, SrtpSuite::AesCm128HmacSha1_80);
        assert_eq!(attr.lifetime_packets, Some(1 << 20));
        let decoded = BASE64_PADDED
            .decode("PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR")
            .unwrap();
        assert_eq!(attr.key_material.key(), &decoded[..16]);
        assert_eq!(attr.key_material.salt(), &decoded[16..]);
        assert_eq!(attr.to_string(), value);
    }

    #[test]
    fn every_suite_parses_padded_and_unpadded_keys() {
        for suite in SrtpSuite::ALL {
            let bytes: Vec<u8> =
                (0..(suite.master_key_len() + suite.master_salt_len()) as u8).collect();
            let padded = b64(&bytes);
            let unpadded = padded.trim_end_matches('=');
            for key in [padded.as_str(), unpadded] {
                let attr = CryptoAttribute::parse(&format!("7 {suite} inline:{key}")).unwrap();
                assert_eq!(attr.suite, suite);
                assert_eq!(attr.key_material.key_and_salt(), &bytes[..]);
                assert_eq!(attr.lifetime_packets, None);
                // Emitted always padded.
                assert_eq!(attr.to_string(), format!("7 {suite} inline:{padded}"));
            }
        }
        // GCM keys are the ones whose base64 needs padding at all.
        let gcm_key = b64(&[0u8; 28]);
        assert!(gcm_key.ends_with("=="), "{gcm_key}");
    }

    #[test]
    fn generated_attributes_round_trip_and_key_a_context() {
        for suite in SrtpSuite::ALL {
            let attr = CryptoAttribute::generate(3, suite).unwrap();
            let other = CryptoAttribute::generate(3, suite).unwrap();
            assert_ne!(attr.key_material, other.key_material, "fresh randomness");
            let parsed = CryptoAttribute::parse(&attr.to_string()).unwrap();
            assert_eq!(parsed, attr);
            assert_eq!(parsed.context().unwrap().suite(), suite);
            assert!(!format!("{attr:?}").contains(&b64(attr.key_material.key())));
        }
        let err = CryptoAttribute::generate(1_000_000_000, SrtpSuite::AeadAes128Gcm);
        assert_eq!(err, Err(SdesError::BadTag));
    }

    #[test]
    fn lifetimes() {
        let key = b64(&[1u8; 30]);
        let parse = |lifetime: &str| {
            CryptoAttribute::parse(&format!(
                "1 AES_CM_128_HMAC_SHA1_32 inline:{key}|{lifetime}"
            ))
            .map(|a| a.lifetime_packets)
        };
        assert_eq!(parse("2^31"), Ok(Some(1 << 31)));
        assert_eq!(parse("2^48"), Ok(Some(1 << 48)));
        assert_eq!(parse("1000"), Ok(Some(1000)));
        assert_eq!(parse("281474976710656"), Ok(Some(1 << 48)));
        for bad in [
            "2^49",
            "2^64",
            "2^",
            "2^x",
            "0",
            "",
            "-5",
            "1e9",
            "281474976710657",
            "2^100",
        ] {
            assert_eq!(parse(bad), Err(SdesError::BadLifetime), "{bad}");
        }
        // Lifetime then MKI: lifetime checked, then the MKI refused.
        let with_mki = format!("1 AES_CM_128_HMAC_SHA1_80 inline:{key}|2^20|12:4");
        assert_eq!(
            CryptoAttribute::parse(&with_mki),
            Err(SdesError::MkiUnsupported)
        );
        let mki_only = format!("1 AES_CM_128_HMAC_SHA1_80 inline:{key}|5:1");
        assert_eq!(
            CryptoAttribute::parse(&mki_only),
            Err(SdesError::MkiUnsupported)
        );
        let bad_mki = format!("1 AES_CM_128_HMAC_SHA1_80 inline:{key}|5:999");
        assert_eq!(CryptoAttribute::parse(&bad_mki), Err(SdesError::Malformed));
        let too_many = format!("1 AES_CM_128_HMAC_SHA1_80 inline:{key}|2^20|1:4|x");
        assert_eq!(CryptoAttribute::parse(&too_many), Err(SdesError::Malformed));

        // The lifetime reaches the context.
        let attr =
            CryptoAttribute::parse(&format!("1 AES_CM_128_HMAC_SHA1_80 inline:{key}|2")).unwrap();
        let mut ctx = attr.context().unwrap();
        let mut buf = [0u8; 64];
        for seq in 0..3u8 {
            buf[..13].copy_from_slice(&[0x80, 0, 0, seq, 0, 0, 0, 0, 0, 0, 0, 1, 0xab]);
            let result = ctx.protect_rtp(&mut buf, 13);
            assert_eq!(result.is_ok(), seq < 2);
        }
    }

    #[test]
    fn refusals() {
        let cm = b64(&[2u8; 30]);
        let cases: Vec<(String, SdesError)> = vec![
            (String::new(), SdesError::Malformed),
            ("1".into(), SdesError::Malformed),
            ("1 AES_CM_128_HMAC_SHA1_80".into(), SdesError::Malformed),
            (
                format!("x AES_CM_128_HMAC_SHA1_80 inline:{cm}"),
                SdesError::BadTag,
            ),
            (
                format!("1234567890 AES_CM_128_HMAC_SHA1_80 inline:{cm}"),
                SdesError::BadTag,
            ),
            (
                format!("1 AES_256_CM_HMAC_SHA1_80 inline:{cm}"),
                SdesError::UnknownSuite,
            ),
            (
                format!("1 F8_128_HMAC_SHA1_80 inline:{cm}"),
                SdesError::UnknownSuite,
            ),
            (
                format!("1 AES_CM_128_HMAC_SHA1_80 uri:{cm}"),
                SdesError::UnsupportedKeyMethod,
            ),
            (
                format!("1 AES_CM_128_HMAC_SHA1_80 inline:{cm};inline:{cm}"),
                SdesError::MultipleKeys,
            ),
            (
                "1 AES_CM_128_HMAC_SHA1_80 inline:!!!!".into(),
                SdesError::BadBase64,
            ),
            (
                "1 AES_CM_128_HMAC_SHA1_80 inline:A".into(),
                SdesError::BadBase64,
            ),
            (
                format!("1 AEAD_AES_128_GCM inline:{cm}"),
                SdesError::WrongKeyLength,
            ),
            (
                format!("1 AES_CM_128_HMAC_SHA1_80 inline:{}", b64(&[0; 29])),
                SdesError::WrongKeyLength,
            ),
            (
                format!("1 AES_CM_128_HMAC_SHA1_80 inline:{}", "A".repeat(400)),
                SdesError::WrongKeyLength,
            ),
            (
                format!("1 AES_CM_128_HMAC_SHA1_80 inline:{cm} KDR=1"),
                SdesError::KdrUnsupported,
            ),
            (
                format!("1 AES_CM_128_HMAC_SHA1_80 inline:{cm} KDR=24"),
                SdesError::KdrUnsupported,
            ),
            (
                format!("1 AES_CM_128_HMAC_SHA1_80 inline:{cm} KDR=25"),
                SdesError::UnsupportedSessionParam,
            ),
            (
                format!("1 AES_CM_128_HMAC_SHA1_80 inline:{cm} KDR"),
                SdesError::UnsupportedSessionParam,
            ),
            (
                format!("1 AES_CM_128_HMAC_SHA1_80 inline:{cm} UNENCRYPTED_SRTP"),
                SdesError::UnencryptedSrtp,
            ),
            (
                format!("1 AES_CM_128_HMAC_SHA1_80 inline:{cm} UNENCRYPTED_SRTCP"),
                SdesError::UnencryptedSrtcp,
            ),
            (
                format!("1 AES_CM_128_HMAC_SHA1_80 inline:{cm} UNAUTHENTICATED_SRTP"),
                SdesError::UnauthenticatedSrtp,
            ),
            (
                format!("1 AES_CM_128_HMAC_SHA1_80 inline:{cm} FEC_KEY=inline:{cm}"),
                SdesError::UnsupportedSessionParam,
            ),
            (
                format!("1 AES_CM_128_HMAC_SHA1_80 inline:{cm} FEC_ORDER=BOTH"),
                SdesError::UnsupportedSessionParam,
            ),
            (
                format!("1 AES_CM_128_HMAC_SHA1_80 inline:{cm} WSH=32"),
                SdesError::UnsupportedSessionParam,
            ),
            (
                format!("1 AES_CM_128_HMAC_SHA1_80 inline:{cm} NEW_PARAM=1"),
                SdesError::UnknownSessionParam,
            ),
            (
                format!("1 AES_CM_128_HMAC_SHA1_80 inline:{cm} -x"),
                SdesError::UnknownSessionParam,
            ),
        ];
        for (line, error) in cases {
            assert_eq!(CryptoAttribute::parse(&line), Err(error), "{line}");
        }
    }

    #[test]
    fn tolerated_session_params() {
        let cm = b64(&[2u8; 30]);
        for params in [
            "KDR=0",
            "WSH=64",
            "WSH=1024 FEC_ORDER=SRTP_FEC",
            "FEC_ORDER=FEC_SRTP",
        ] {
            let line =
                format!("a=crypto:9  AES_CM_128_HMAC_SHA1_80  inline:{cm}|2^31 {params}\r\n");
            let attr = CryptoAttribute::parse(&line).unwrap();
            assert_eq!(
                (attr.tag, attr.lifetime_packets),
                (9, Some(1 << 31)),
                "{params}"
            );
        }
    }

    #[test]
    fn key_material_lengths_are_checked() {
        let suite = SrtpSuite::AeadAes256Gcm;
        assert!(KeyMaterial::new(suite, &[0; 32], &[0; 12]).is_ok());
        assert_eq!(
            KeyMaterial::new(suite, &[0; 16], &[0; 12]),
            Err(SdesError::WrongKeyLength)
        );
        assert_eq!(
            KeyMaterial::new(suite, &[0; 32], &[0; 14]),
            Err(SdesError::WrongKeyLength)
        );
    }
}
