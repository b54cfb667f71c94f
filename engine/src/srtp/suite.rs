//! The SRTP protection profiles Chorus speaks.

/// An SRTP crypto suite (RFC 4568 names, RFC 3711 and RFC 7714 transforms).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SrtpSuite {
    /// AES-128 counter mode, HMAC-SHA1 with an 80-bit tag (RFC 4568 §6.2.1).
    AesCm128HmacSha1_80,
    /// AES-128 counter mode, HMAC-SHA1 with a 32-bit SRTP tag; SRTCP keeps
    /// the 80-bit tag (RFC 4568 §6.2.2, RFC 5764 §4.1.2; checked against
    /// libsrtp in the context tests).
    AesCm128HmacSha1_32,
    /// AES-128 GCM with a 16-octet tag (RFC 7714).
    AeadAes128Gcm,
    /// AES-256 GCM with a 16-octet tag (RFC 7714).
    AeadAes256Gcm,
}

/// Length of the SRTCP word holding the E flag and the 31-bit index.
pub(crate) const SRTCP_INDEX_LEN: usize = 4;

impl SrtpSuite {
    /// Every suite, in our order of preference for offers.
    pub const ALL: [SrtpSuite; 4] = [
        SrtpSuite::AeadAes128Gcm,
        SrtpSuite::AeadAes256Gcm,
        SrtpSuite::AesCm128HmacSha1_80,
        SrtpSuite::AesCm128HmacSha1_32,
    ];

    /// The suite for an SDES (`a=crypto:`) suite name, case-sensitive.
    pub fn from_sdes_name(name: &str) -> Option<Self> {
        match name {
            "AES_CM_128_HMAC_SHA1_80" => Some(SrtpSuite::AesCm128HmacSha1_80),
            "AES_CM_128_HMAC_SHA1_32" => Some(SrtpSuite::AesCm128HmacSha1_32),
            "AEAD_AES_128_GCM" => Some(SrtpSuite::AeadAes128Gcm),
            "AEAD_AES_256_GCM" => Some(SrtpSuite::AeadAes256Gcm),
            _ => None,
        }
    }

    /// The SDES name of the suite.
    pub fn sdes_name(self) -> &'static str {
        match self {
            SrtpSuite::AesCm128HmacSha1_80 => "AES_CM_128_HMAC_SHA1_80",
            SrtpSuite::AesCm128HmacSha1_32 => "AES_CM_128_HMAC_SHA1_32",
            SrtpSuite::AeadAes128Gcm => "AEAD_AES_128_GCM",
            SrtpSuite::AeadAes256Gcm => "AEAD_AES_256_GCM",
        }
    }

    /// Master (and session encryption) key length in bytes.
    pub fn master_key_len(self) -> usize {
        match self {
            SrtpSuite::AesCm128HmacSha1_80
            | SrtpSuite::AesCm128HmacSha1_32
            | SrtpSuite::AeadAes128Gcm => 16,
            SrtpSuite::AeadAes256Gcm => 32,
        }
    }

    /// Master (and session) salt length in bytes: 112 bits for AES-CM,
    /// 96 bits for GCM (RFC 7714 §12).
    pub fn master_salt_len(self) -> usize {
        if self.is_aead() { 12 } else { 14 }
    }

    /// Bytes `protect_rtp` appends to an RTP packet (the tag).
    pub fn rtp_overhead(self) -> usize {
        self.rtp_tag_len()
    }

    /// Bytes `protect_rtcp` appends to an RTCP packet (E flag and index,
    /// plus the tag).
    pub fn rtcp_overhead(self) -> usize {
        SRTCP_INDEX_LEN + self.rtcp_tag_len()
    }

    /// Whether the suite is an AEAD (GCM) transform.
    pub fn is_aead(self) -> bool {
        matches!(self, SrtpSuite::AeadAes128Gcm | SrtpSuite::AeadAes256Gcm)
    }

    /// SRTP authentication tag length in bytes.
    pub(crate) fn rtp_tag_len(self) -> usize {
        match self {
            SrtpSuite::AesCm128HmacSha1_80 => 10,
            SrtpSuite::AesCm128HmacSha1_32 => 4,
            SrtpSuite::AeadAes128Gcm | SrtpSuite::AeadAes256Gcm => 16,
        }
    }

    /// SRTCP authentication tag length in bytes: 80 bits for both AES-CM
    /// suites, 16 octets for GCM.
    pub(crate) fn rtcp_tag_len(self) -> usize {
        match self {
            SrtpSuite::AesCm128HmacSha1_80 | SrtpSuite::AesCm128HmacSha1_32 => 10,
            SrtpSuite::AeadAes128Gcm | SrtpSuite::AeadAes256Gcm => 16,
        }
    }
}

impl std::fmt::Display for SrtpSuite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.sdes_name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sdes_names_round_trip() {
        for suite in SrtpSuite::ALL {
            assert_eq!(SrtpSuite::from_sdes_name(suite.sdes_name()), Some(suite));
        }
        assert_eq!(SrtpSuite::from_sdes_name("aes_cm_128_hmac_sha1_80"), None);
        assert_eq!(SrtpSuite::from_sdes_name("AES_256_CM_HMAC_SHA1_80"), None);
        assert_eq!(SrtpSuite::from_sdes_name("F8_128_HMAC_SHA1_80"), None);
    }

    #[test]
    fn lengths_and_overheads() {
        use SrtpSuite::*;
        let table = [
            // suite, key, salt, rtp overhead, rtcp overhead
            (AesCm128HmacSha1_80, 16, 14, 10, 14),
            (AesCm128HmacSha1_32, 16, 14, 4, 14),
            (AeadAes128Gcm, 16, 12, 16, 20),
            (AeadAes256Gcm, 32, 12, 16, 20),
        ];
        for (suite, key, salt, rtp, rtcp) in table {
            assert_eq!(suite.master_key_len(), key, "{suite}");
            assert_eq!(suite.master_salt_len(), salt, "{suite}");
            assert_eq!(suite.rtp_overhead(), rtp, "{suite}");
            assert_eq!(suite.rtcp_overhead(), rtcp, "{suite}");
        }
    }
}
