//! One direction of SRTP/SRTCP keying for one leg, all its SSRCs.

use aes::cipher::KeyInit;
use aes::cipher::consts::U16;
use aes::cipher::generic_array::GenericArray;
use aes::cipher::{BlockEncrypt, BlockSizeUser};
use aes::{Aes128Enc, Aes256Enc};
use ring::aead::{AES_128_GCM, AES_256_GCM, Algorithm};

use super::cm_session::{CmLabels, CmSession};
use super::error::SrtpError;
use super::gcm_session::{GCM_IV_LEN, GCM_TAG_LEN, GcmSession};
use super::kdf::{Label, derive};
use super::replay_window::ReplayWindow;
use super::rollover::{estimate_index, roc_of};
use super::rtcp_header::{RTCP_CLEAR_LEN, RtcpHeader};
use super::rtp_header::RtpHeader;
use super::stream_table::{Stream, StreamTable};
use super::suite::{SRTCP_INDEX_LEN, SrtpSuite};

/// Most SRTP packets one master key may protect (RFC 3711 §9.2).
pub const MAX_SRTP_PACKETS: u64 = 1 << 48;

/// Most SRTCP packets one master key may protect (RFC 3711 §9.2).
pub const MAX_SRTCP_PACKETS: u64 = 1 << 31;

/// Largest SRTCP index (31 bits).
const MAX_SRTCP_INDEX: u32 = 0x7fff_ffff;

/// The E flag in the SRTCP index word: the packet's payload is encrypted.
const SRTCP_E_FLAG: u32 = 0x8000_0000;

/// Longest packet [`SrtpContext::authenticates_rtp`] trial-decrypts for the
/// GCM suites (it copies the packet to the stack to keep `buf` untouched).
/// Longer GCM packets are reported as not authenticating.
pub const GCM_TRIAL_MAX_PACKET_LEN: usize = 2048;

/// The session keys of both SRTP and SRTCP for the context's suite.
enum Transform {
    /// AES-CM with HMAC-SHA1 (both `AES_CM_128_HMAC_SHA1_*` suites).
    AesCm {
        /// SRTP session keys (labels 0, 1, 2).
        rtp: Box<CmSession>,
        /// SRTCP session keys (labels 3, 4, 5).
        rtcp: Box<CmSession>,
    },
    /// AES-GCM, 128 or 256 bits.
    Gcm {
        /// SRTP session key and salt (labels 0, 2).
        rtp: Box<GcmSession>,
        /// SRTCP session key and salt (labels 3, 5).
        rtcp: Box<GcmSession>,
    },
}

/// SRTP and SRTCP state for one direction of one leg: the session keys
/// derived from one master key, and the per-SSRC rollover counters, replay
/// windows and SRTCP indices of every SSRC seen in that direction (at most
/// 16; see [`SrtpError::TooManySsrcs`]).
///
/// An outbound context only protects and an inbound one only unprotects;
/// a leg owns one of each. Everything works in place in the caller's buffer
/// and nothing is allocated per packet.
pub struct SrtpContext {
    suite: SrtpSuite,
    transform: Transform,
    streams: StreamTable,
    rtp_packets_protected: u64,
    rtcp_packets_protected: u64,
    rtp_packet_limit: u64,
    rtcp_packet_limit: u64,
    /// With `allow_repeat_tx`: the tags of recently protected packets.
    sent_tags: Option<Box<[SentTag; SENT_TAGS]>>,
}

/// Recently protected packets remembered for `allow_repeat_tx`, by SSRC and index.
const SENT_TAGS: usize = 256;

/// One protected packet: its SSRC, its index and its tag (zero-padded to 16 bytes).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct SentTag {
    ssrc: u32,
    index: u64,
    tag: [u8; 16],
}

/// Where `(ssrc, index)` is remembered.
fn sent_tag_slot(ssrc: u32, index: u64) -> usize {
    ((index ^ u64::from(ssrc).wrapping_mul(0x9e37_79b9_7f4a_7c15)) % SENT_TAGS as u64) as usize
}

impl std::fmt::Debug for SrtpContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Keys stay out of logs.
        f.debug_struct("SrtpContext")
            .field("suite", &self.suite)
            .field("ssrcs", &self.streams.len())
            .field("rtp_packets_protected", &self.rtp_packets_protected)
            .field("rtcp_packets_protected", &self.rtcp_packets_protected)
            .finish_non_exhaustive()
    }
}

impl SrtpContext {
    /// Derives the session keys of `suite` from a master key and salt
    /// (RFC 3711 §4.3 with a key derivation rate of 0; RFC 7714 §11 for GCM).
    pub fn new(suite: SrtpSuite, master_key: &[u8], master_salt: &[u8]) -> Result<Self, SrtpError> {
        if master_key.len() != suite.master_key_len() {
            return Err(SrtpError::BadKeyLength);
        }
        if master_salt.len() != suite.master_salt_len() {
            return Err(SrtpError::BadSaltLength);
        }
        let transform = match suite {
            SrtpSuite::AesCm128HmacSha1_80 | SrtpSuite::AesCm128HmacSha1_32 => {
                let master = Aes128Enc::new(GenericArray::from_slice(master_key));
                Transform::AesCm {
                    rtp: Box::new(CmSession::derive(
                        &master,
                        master_salt,
                        CmLabels {
                            encryption: Label::RtpEncryption,
                            authentication: Label::RtpAuthentication,
                            salt: Label::RtpSalt,
                        },
                    )?),
                    rtcp: Box::new(CmSession::derive(
                        &master,
                        master_salt,
                        CmLabels {
                            encryption: Label::RtcpEncryption,
                            authentication: Label::RtcpAuthentication,
                            salt: Label::RtcpSalt,
                        },
                    )?),
                }
            }
            SrtpSuite::AeadAes128Gcm => {
                let master = Aes128Enc::new(GenericArray::from_slice(master_key));
                gcm_transform(&master, master_salt, &AES_128_GCM)?
            }
            SrtpSuite::AeadAes256Gcm => {
                let master = Aes256Enc::new(GenericArray::from_slice(master_key));
                gcm_transform(&master, master_salt, &AES_256_GCM)?
            }
        };
        Ok(Self::with_transform(suite, transform))
    }

    fn with_transform(suite: SrtpSuite, transform: Transform) -> Self {
        SrtpContext {
            suite,
            transform,
            streams: StreamTable::default(),
            rtp_packets_protected: 0,
            rtcp_packets_protected: 0,
            rtp_packet_limit: MAX_SRTP_PACKETS,
            rtcp_packet_limit: MAX_SRTCP_PACKETS,
            sent_tags: None,
        }
    }

    /// The context's crypto suite.
    pub fn suite(&self) -> SrtpSuite {
        self.suite
    }

    /// Lowers the master key lifetime to `packets` (the SDES `|2^n|`
    /// lifetime), for SRTP and for SRTCP; the RFC 3711 maxima still apply.
    pub fn set_key_lifetime_packets(&mut self, packets: u64) {
        self.rtp_packet_limit = packets.min(MAX_SRTP_PACKETS);
        self.rtcp_packet_limit = packets.min(MAX_SRTCP_PACKETS);
    }

    /// Lets `protect_rtp` protect an already used index again, for a retransmission of the
    /// same packet (the receiver lost it). Off by default. Protecting two different packets
    /// under one index would reuse keystream (with AES-GCM, the nonce, which gives away the
    /// authentication key), so the context checks it: it remembers the tags of the last
    /// packets it protected and lets a repeat out only if it protects to the same tag, that
    /// is, the same bytes; any other repeat, or one too old to be remembered, is refused as
    /// `Replayed` and its bytes must not be sent. Only packets protected while this is on
    /// are remembered.
    pub fn set_allow_repeat_tx(&mut self, allow: bool) {
        self.sent_tags = allow.then(|| Box::new([SentTag::default(); SENT_TAGS]));
    }

    /// Drops the state of `ssrc` (after BYE or a timeout), freeing its slot.
    /// Returns whether it was tracked.
    pub fn forget_ssrc(&mut self, ssrc: u32) -> bool {
        self.streams.remove(ssrc)
    }

    /// Number of SSRCs the context tracks.
    pub fn ssrc_count(&self) -> usize {
        self.streams.len()
    }

    /// The rollover counter of `ssrc`'s highest SRTP index so far.
    pub fn rollover_counter(&self, ssrc: u32) -> Option<u32> {
        let stream = self.streams.get(self.streams.find(ssrc)?)?;
        stream.rtp.highest().map(roc_of)
    }

    /// SRTP packets protected so far with this master key.
    pub fn rtp_packets_protected(&self) -> u64 {
        self.rtp_packets_protected
    }

    /// SRTCP packets protected so far with this master key.
    pub fn rtcp_packets_protected(&self) -> u64 {
        self.rtcp_packets_protected
    }

    /// Protects the RTP packet in `buf[..len]` in place: encrypts the payload
    /// (everything after the header, CSRCs and extension) and appends the tag.
    /// `buf` needs [`SrtpSuite::rtp_overhead`] spare bytes after `len`.
    /// Returns the SRTP packet length.
    pub fn protect_rtp(&mut self, buf: &mut [u8], len: usize) -> Result<usize, SrtpError> {
        let header = RtpHeader::parse(buf.get(..len).ok_or(SrtpError::BufferTooSmall)?)?;
        let tag_len = self.suite.rtp_tag_len();
        let protected_len = len + tag_len;
        if protected_len > buf.len() {
            return Err(SrtpError::BufferTooSmall);
        }
        if self.rtp_packets_protected >= self.rtp_packet_limit {
            return Err(SrtpError::KeyLifetimeExhausted);
        }
        let slot = self.streams.find(header.ssrc);
        let window = slot
            .and_then(|s| self.streams.get(s))
            .map(|s| s.rtp)
            .unwrap_or_default();
        let index = packet_index(&window, header.seq)?;
        let repeat = match window.check(index) {
            Err(SrtpError::Replayed) if self.sent_tags.is_some() => true,
            checked => {
                checked?;
                false
            }
        };
        let slot = match slot {
            Some(slot) => slot,
            None => self.streams.insert(Stream::new(header.ssrc))?,
        };

        let (head, payload, tail) = split3(buf, header.len, len)?;
        let tag = tail.get_mut(..tag_len).ok_or(SrtpError::BufferTooSmall)?;
        match &self.transform {
            Transform::AesCm { rtp, .. } => {
                rtp.apply_keystream(header.ssrc, index, payload);
                let roc = roc_of(index).to_be_bytes();
                rtp.write_tag(&[head, payload, &roc], tag);
            }
            Transform::Gcm { rtp, .. } => {
                let iv = rtp.rtp_iv(header.ssrc, roc_of(index), header.seq);
                tag.copy_from_slice(&rtp.seal(iv, head, payload)?);
            }
        }
        if let Some(tags) = self.sent_tags.as_mut() {
            let mut padded = [0u8; 16];
            padded[..tag_len].copy_from_slice(tag);
            let this = SentTag {
                ssrc: header.ssrc,
                index,
                tag: padded,
            };
            let remembered = &mut tags[sent_tag_slot(header.ssrc, index)];
            if repeat {
                if *remembered != this {
                    // Other bytes under a used index: never let them out.
                    payload.fill(0);
                    tag.fill(0);
                    return Err(SrtpError::Replayed);
                }
                return Ok(protected_len);
            }
            *remembered = this;
        }

        if let Some(stream) = self.streams.get_mut(slot) {
            stream.rtp.accept(index);
        }
        self.rtp_packets_protected += 1;
        Ok(protected_len)
    }

    /// Verifies and decrypts the SRTP packet that is exactly `buf`, in place.
    /// Returns the length of the RTP packet now at the start of `buf`.
    ///
    /// A packet that fails any check (replay, authentication, table full)
    /// changes no state.
    pub fn unprotect_rtp(&mut self, buf: &mut [u8]) -> Result<usize, SrtpError> {
        let header = RtpHeader::parse(buf)?;
        let body_len = rtp_body_len(buf.len(), header.len, self.suite.rtp_tag_len())?;
        let slot = self.streams.find(header.ssrc);
        let window = slot
            .and_then(|s| self.streams.get(s))
            .map(|s| s.rtp)
            .unwrap_or_default();
        let index = packet_index(&window, header.seq)?;
        window.check(index)?;

        let (head, payload, tag) = split3(buf, header.len, body_len)?;
        match &self.transform {
            Transform::AesCm { rtp, .. } => {
                let roc = roc_of(index).to_be_bytes();
                if !rtp.verify_tag(&[head, payload, &roc], tag) {
                    return Err(SrtpError::AuthFailed);
                }
                rtp.apply_keystream(header.ssrc, index, payload);
            }
            Transform::Gcm { rtp, .. } => {
                let iv = rtp.rtp_iv(header.ssrc, roc_of(index), header.seq);
                rtp.open(iv, head, payload, tag)?;
            }
        }

        self.stream_mut(slot, header.ssrc)?.rtp.accept(index);
        Ok(body_len)
    }

    /// Whether the SRTP packet `buf` authenticates under this context's keys,
    /// without changing `buf` or any state. For an SSRC the context does not
    /// know, the rollover counter is taken to be 0. Replay is not checked.
    ///
    /// For GCM this trial-decrypts a stack copy of the packet; packets longer
    /// than [`GCM_TRIAL_MAX_PACKET_LEN`] return `false`.
    pub fn authenticates_rtp(&self, buf: &[u8]) -> bool {
        let Ok(header) = RtpHeader::parse(buf) else {
            return false;
        };
        let Ok(body_len) = rtp_body_len(buf.len(), header.len, self.suite.rtp_tag_len()) else {
            return false;
        };
        let window = self
            .streams
            .find(header.ssrc)
            .and_then(|s| self.streams.get(s))
            .map(|s| s.rtp)
            .unwrap_or_default();
        let Ok(index) = packet_index(&window, header.seq) else {
            return false;
        };
        match &self.transform {
            Transform::AesCm { rtp, .. } => {
                let Some((authenticated, tag)) = buf.split_at_checked(body_len) else {
                    return false;
                };
                rtp.verify_tag(&[authenticated, &roc_of(index).to_be_bytes()], tag)
            }
            Transform::Gcm { rtp, .. } => {
                let mut copy = [0u8; GCM_TRIAL_MAX_PACKET_LEN];
                let Some(copy) = copy.get_mut(..buf.len()) else {
                    return false;
                };
                copy.copy_from_slice(buf);
                let Ok((head, payload, tag)) = split3(copy, header.len, body_len) else {
                    return false;
                };
                let iv = rtp.rtp_iv(header.ssrc, roc_of(index), header.seq);
                rtp.open(iv, head, payload, tag).is_ok()
            }
        }
    }

    /// Protects the RTCP packet (compound or not) in `buf[..len]` in place:
    /// encrypts from byte 8 on, appends the E flag (always set) with the
    /// SRTCP index, and the tag (RFC 3711 §3.4; RFC 7714 §9 puts the GCM tag
    /// before the index word). `buf` needs [`SrtpSuite::rtcp_overhead`]
    /// spare bytes after `len`. Returns the SRTCP packet length.
    pub fn protect_rtcp(&mut self, buf: &mut [u8], len: usize) -> Result<usize, SrtpError> {
        let header = RtcpHeader::parse(buf.get(..len).ok_or(SrtpError::BufferTooSmall)?)?;
        let protected_len = len + self.suite.rtcp_overhead();
        if protected_len > buf.len() {
            return Err(SrtpError::BufferTooSmall);
        }
        if self.rtcp_packets_protected >= self.rtcp_packet_limit {
            return Err(SrtpError::KeyLifetimeExhausted);
        }
        let slot = self.streams.find(header.ssrc);
        let index = slot
            .and_then(|s| self.streams.get(s))
            .map_or(0, |s| s.next_srtcp_index);
        if index > MAX_SRTCP_INDEX {
            return Err(SrtpError::KeyLifetimeExhausted);
        }
        let slot = match slot {
            Some(slot) => slot,
            None => self.streams.insert(Stream::new(header.ssrc))?,
        };
        let e_index = (SRTCP_E_FLAG | index).to_be_bytes();

        let (head, payload, tail) = split3(buf, RTCP_CLEAR_LEN, len)?;
        match &self.transform {
            Transform::AesCm { rtcp, .. } => {
                rtcp.apply_keystream(header.ssrc, u64::from(index), payload);
                let (index_word, tag) = tail
                    .get_mut(..SRTCP_INDEX_LEN + self.suite.rtcp_tag_len())
                    .ok_or(SrtpError::BufferTooSmall)?
                    .split_at_mut(SRTCP_INDEX_LEN);
                index_word.copy_from_slice(&e_index);
                rtcp.write_tag(&[head, payload, index_word], tag);
            }
            Transform::Gcm { rtcp, .. } => {
                let aad = srtcp_gcm_aad(head, e_index)?;
                let iv = rtcp.rtcp_iv(header.ssrc, index);
                let sealed = rtcp.seal(iv, &aad, payload)?;
                let (tag, index_word) = tail
                    .get_mut(..GCM_TAG_LEN + SRTCP_INDEX_LEN)
                    .ok_or(SrtpError::BufferTooSmall)?
                    .split_at_mut(GCM_TAG_LEN);
                tag.copy_from_slice(&sealed);
                index_word.copy_from_slice(&e_index);
            }
        }

        if let Some(stream) = self.streams.get_mut(slot) {
            stream.next_srtcp_index = index + 1;
        }
        self.rtcp_packets_protected += 1;
        Ok(protected_len)
    }

    /// Verifies and decrypts the SRTCP packet that is exactly `buf`, in
    /// place. Returns the length of the RTCP packet now at the start of
    /// `buf`. Packets sent with the E flag clear (authenticated only) are
    /// accepted too: the flag is covered by the tag, so only a key holder
    /// can clear it.
    ///
    /// A packet that fails any check changes no state.
    pub fn unprotect_rtcp(&mut self, buf: &mut [u8]) -> Result<usize, SrtpError> {
        let header = RtcpHeader::parse(buf)?;
        let tag_len = self.suite.rtcp_tag_len();
        let plain_len = buf
            .len()
            .checked_sub(SRTCP_INDEX_LEN + tag_len)
            .filter(|&n| n >= RTCP_CLEAR_LEN)
            .ok_or(SrtpError::Malformed)?;
        let index_at = if self.suite.is_aead() {
            plain_len + tag_len
        } else {
            plain_len
        };
        let e_index: [u8; SRTCP_INDEX_LEN] = buf
            .get(index_at..index_at + SRTCP_INDEX_LEN)
            .and_then(|b| b.try_into().ok())
            .ok_or(SrtpError::Malformed)?;
        let e_index_word = u32::from_be_bytes(e_index);
        let encrypted = e_index_word & SRTCP_E_FLAG != 0;
        let index = e_index_word & MAX_SRTCP_INDEX;

        let slot = self.streams.find(header.ssrc);
        let window = slot
            .and_then(|s| self.streams.get(s))
            .map(|s| s.rtcp)
            .unwrap_or_default();
        window.check(u64::from(index))?;

        match &self.transform {
            Transform::AesCm { rtcp, .. } => {
                let (authenticated, tag) = buf
                    .split_at_mut_checked(plain_len + SRTCP_INDEX_LEN)
                    .ok_or(SrtpError::Malformed)?;
                if !rtcp.verify_tag(&[authenticated], tag) {
                    return Err(SrtpError::AuthFailed);
                }
                if encrypted {
                    let payload = authenticated
                        .get_mut(RTCP_CLEAR_LEN..plain_len)
                        .ok_or(SrtpError::Malformed)?;
                    rtcp.apply_keystream(header.ssrc, u64::from(index), payload);
                }
            }
            Transform::Gcm { rtcp, .. } => {
                let iv = rtcp.rtcp_iv(header.ssrc, index);
                if encrypted {
                    let (head, payload, rest) = split3(buf, RTCP_CLEAR_LEN, plain_len)?;
                    let aad = srtcp_gcm_aad(head, e_index)?;
                    let tag = rest.get(..GCM_TAG_LEN).ok_or(SrtpError::Malformed)?;
                    rtcp.open(iv, &aad, payload, tag)?;
                } else {
                    // RFC 7714 §9.2: the AAD is the whole RTCP packet followed
                    // by the index word, which on the wire sits after the
                    // tag. Move the word up against the packet to make the
                    // AAD contiguous (the tag is copied out first).
                    let mut tag = [0u8; GCM_TAG_LEN];
                    tag.copy_from_slice(
                        buf.get(plain_len..plain_len + GCM_TAG_LEN)
                            .ok_or(SrtpError::Malformed)?,
                    );
                    let aad = buf
                        .get_mut(..plain_len + SRTCP_INDEX_LEN)
                        .ok_or(SrtpError::Malformed)?;
                    if let Some(word) = aad.get_mut(plain_len..) {
                        word.copy_from_slice(&e_index);
                    }
                    rtcp.open(iv, aad, &mut [], &tag)?;
                }
            }
        }

        self.stream_mut(slot, header.ssrc)?
            .rtcp
            .accept(u64::from(index));
        Ok(plain_len)
    }

    /// The stream in `slot`, or a new one for `ssrc` if `slot` is `None`.
    fn stream_mut(&mut self, slot: Option<usize>, ssrc: u32) -> Result<&mut Stream, SrtpError> {
        let slot = match slot {
            Some(slot) => slot,
            None => self.streams.insert(Stream::new(ssrc))?,
        };
        // A slot from find or insert is always valid; Malformed is
        // unreachable but keeps this panic-free.
        self.streams.get_mut(slot).ok_or(SrtpError::Malformed)
    }
}

/// The extended index of `seq` against the stream's highest index so far,
/// or `seq` itself (ROC 0) for a stream that has none yet.
fn packet_index(window: &ReplayWindow, seq: u16) -> Result<u64, SrtpError> {
    match window.highest() {
        Some(highest) => estimate_index(highest, seq),
        None => Ok(u64::from(seq)),
    }
}

/// Length of header plus payload of an SRTP packet of `packet_len` bytes.
fn rtp_body_len(packet_len: usize, header_len: usize, tag_len: usize) -> Result<usize, SrtpError> {
    packet_len
        .checked_sub(tag_len)
        .filter(|&n| n >= header_len)
        .ok_or(SrtpError::Malformed)
}

/// A buffer cut in three: `(buf[..a], buf[a..b], buf[b..])`.
type Parts<'a> = (&'a mut [u8], &'a mut [u8], &'a mut [u8]);

/// `(buf[..a], buf[a..b], buf[b..])`, or `Malformed` unless `a <= b <= len`.
fn split3(buf: &mut [u8], a: usize, b: usize) -> Result<Parts<'_>, SrtpError> {
    let (first, rest) = buf.split_at_mut_checked(a).ok_or(SrtpError::Malformed)?;
    let (second, third) = rest
        .split_at_mut_checked(b.checked_sub(a).ok_or(SrtpError::Malformed)?)
        .ok_or(SrtpError::Malformed)?;
    Ok((first, second, third))
}

/// The SRTCP AAD of RFC 7714 §9.1 for an encrypted packet: the 8 clear
/// header bytes followed by the E flag and SRTCP index.
fn srtcp_gcm_aad(
    head: &[u8],
    e_index: [u8; SRTCP_INDEX_LEN],
) -> Result<[u8; RTCP_CLEAR_LEN + SRTCP_INDEX_LEN], SrtpError> {
    let mut aad = [0u8; RTCP_CLEAR_LEN + SRTCP_INDEX_LEN];
    let (clear, word) = aad.split_at_mut(RTCP_CLEAR_LEN);
    clear.copy_from_slice(head.get(..RTCP_CLEAR_LEN).ok_or(SrtpError::Malformed)?);
    word.copy_from_slice(&e_index);
    Ok(aad)
}

/// Derives both GCM sessions (labels 0/2 for SRTP, 3/5 for SRTCP) with the
/// master key's AES as PRF.
fn gcm_transform<C>(
    master: &C,
    master_salt: &[u8],
    algorithm: &'static Algorithm,
) -> Result<Transform, SrtpError>
where
    C: BlockEncrypt + BlockSizeUser<BlockSize = U16>,
{
    let session = |key_label: Label, salt_label: Label| -> Result<GcmSession, SrtpError> {
        let mut key = [0u8; 32];
        let key = key
            .get_mut(..algorithm.key_len())
            .ok_or(SrtpError::BadKeyLength)?;
        let mut salt = [0u8; GCM_IV_LEN];
        derive(master, master_salt, key_label, key);
        derive(master, master_salt, salt_label, &mut salt);
        let session = GcmSession::new(algorithm, key, salt);
        key.fill(0);
        session
    };
    Ok(Transform::Gcm {
        rtp: Box::new(session(Label::RtpEncryption, Label::RtpSalt)?),
        rtcp: Box::new(session(Label::RtcpEncryption, Label::RtcpSalt)?),
    })
}

/// Test-only ways in: session keys given directly (the RFC 7714 vectors skip
/// key derivation) and counters set close to their limits.
#[cfg(test)]
impl SrtpContext {
    fn from_gcm_session_keys(suite: SrtpSuite, key: &[u8], salt: [u8; GCM_IV_LEN]) -> Self {
        let algorithm = match suite {
            SrtpSuite::AeadAes256Gcm => &AES_256_GCM,
            _ => &AES_128_GCM,
        };
        let transform = Transform::Gcm {
            rtp: Box::new(GcmSession::new(algorithm, key, salt).unwrap()),
            rtcp: Box::new(GcmSession::new(algorithm, key, salt).unwrap()),
        };
        Self::with_transform(suite, transform)
    }

    fn set_packets_protected(&mut self, rtp: u64, rtcp: u64) {
        self.rtp_packets_protected = rtp;
        self.rtcp_packets_protected = rtcp;
    }

    fn set_next_srtcp_index(&mut self, ssrc: u32, index: u32) {
        let slot = self.streams.find(ssrc);
        self.stream_mut(slot, ssrc).unwrap().next_srtcp_index = index;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::srtp::stream_table::MAX_SSRCS;
    use crate::srtp::unhex;

    const ALL_SUITES: [SrtpSuite; 4] = SrtpSuite::ALL;

    /// Master key and salt used for each suite in the libsrtp oracle vectors.
    fn master(suite: SrtpSuite) -> (Vec<u8>, Vec<u8>) {
        match suite {
            SrtpSuite::AesCm128HmacSha1_80 | SrtpSuite::AesCm128HmacSha1_32 => (
                unhex("e1f97a0d3e018be0d64fa32c06de4139"),
                unhex("0ec675ad498afeebb6960b3aabe6"),
            ),
            SrtpSuite::AeadAes128Gcm => (
                unhex("101112131415161718191a1b1c1d1e1f"),
                unhex("a0a1a2a3a4a5a6a7a8a9aaab"),
            ),
            SrtpSuite::AeadAes256Gcm => (
                unhex("202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f"),
                unhex("b0b1b2b3b4b5b6b7b8b9babb"),
            ),
        }
    }

    fn context(suite: SrtpSuite) -> SrtpContext {
        let (key, salt) = master(suite);
        SrtpContext::new(suite, &key, &salt).unwrap()
    }

    /// Protects `packet` with `ctx` and returns the SRTP bytes.
    fn protect(ctx: &mut SrtpContext, packet: &[u8]) -> Vec<u8> {
        let mut buf = packet.to_vec();
        buf.resize(packet.len() + ctx.suite().rtp_overhead(), 0);
        let len = ctx.protect_rtp(&mut buf, packet.len()).unwrap();
        assert_eq!(len, buf.len());
        buf
    }

    fn unprotect(ctx: &mut SrtpContext, wire: &[u8]) -> Result<Vec<u8>, SrtpError> {
        let mut buf = wire.to_vec();
        let len = ctx.unprotect_rtp(&mut buf)?;
        buf.truncate(len);
        Ok(buf)
    }

    fn protect_rtcp(ctx: &mut SrtpContext, packet: &[u8]) -> Vec<u8> {
        let mut buf = packet.to_vec();
        buf.resize(packet.len() + ctx.suite().rtcp_overhead(), 0);
        let len = ctx.protect_rtcp(&mut buf, packet.len()).unwrap();
        assert_eq!(len, buf.len());
        buf
    }

    fn unprotect_rtcp(ctx: &mut SrtpContext, wire: &[u8]) -> Result<Vec<u8>, SrtpError> {
        let mut buf = wire.to_vec();
        let len = ctx.unprotect_rtcp(&mut buf)?;
        buf.truncate(len);
        Ok(buf)
    }

    /// An RTP packet with two CSRCs, a one-word header extension and a
    /// payload that depends on `seq`.
    fn rtp_with_extension(seq: u16, ssrc: u32, payload_len: usize) -> Vec<u8> {
        let mut p = vec![0x92, 0x6f];
        p.extend_from_slice(&seq.to_be_bytes());
        p.extend_from_slice(&0xdeca_fbadu32.to_be_bytes());
        p.extend_from_slice(&ssrc.to_be_bytes());
        p.extend_from_slice(&[0x11, 0x11, 0x11, 0x11, 0x22, 0x22, 0x22, 0x22]);
        p.extend_from_slice(&[0xbe, 0xde, 0x00, 0x01, 0x10, 0xff, 0x00, 0x00]);
        p.extend((0..payload_len).map(|i| (i as u8) ^ (seq as u8)));
        p
    }

    /// A plain RTP packet: 12-byte header and `payload_len` bytes.
    fn rtp(seq: u16, ssrc: u32, payload_len: usize) -> Vec<u8> {
        let mut p = vec![0x80, 0x00];
        p.extend_from_slice(&seq.to_be_bytes());
        p.extend_from_slice(&u32::from(seq).wrapping_mul(160).to_be_bytes());
        p.extend_from_slice(&ssrc.to_be_bytes());
        p.extend((0..payload_len).map(|i| (i as u8).wrapping_add(seq as u8)));
        p
    }

    /// A sender report (28 bytes) followed by an SDES chunk: a compound RTCP
    /// packet from `ssrc`.
    fn rtcp(ssrc: u32) -> Vec<u8> {
        let mut p = vec![0x80, 0xc8, 0x00, 0x06];
        p.extend_from_slice(&ssrc.to_be_bytes());
        p.extend(0x40u8..0x54);
        p.extend_from_slice(&[0x81, 0xca, 0x00, 0x03]);
        p.extend_from_slice(&ssrc.to_be_bytes());
        p.extend_from_slice(&[0x01, 0x02, b'h', b'i', 0, 0, 0, 0]);
        p
    }

    // ---------------------------------------------------------------------
    // Independent oracle: libsrtp 2 (through pylibsrtp 1.0.0), ssrc_any
    // policies, the master keys of `master()`. libsrtp numbers SRTCP packets
    // from 1, we from 0, so the SRTCP vectors start the index at 1.
    // ---------------------------------------------------------------------

    struct Oracle {
        suite: SrtpSuite,
        /// `800f1234decafbadcafebabe` + 16 x 0xab.
        simple: &'static str,
        /// `920f1235decafbadcafebabe 11111111 22222222 bede0001 10ff0000`
        /// + bytes 00..13.
        extension: &'static str,
        /// `80c80006cafebabe` + bytes 40..53, SRTCP index 1 then 2.
        rtcp: [&'static str; 2],
        /// `800f0000decafbad01020304` + 8 x 0xcd, protected after seq
        /// 65534 and 65535, so with ROC 1.
        wrapped: &'static str,
    }

    const ORACLES: [Oracle; 4] = [
        Oracle {
            suite: SrtpSuite::AesCm128HmacSha1_80,
            simple: "800f1234decafbadcafebabe4e55dc4ce79978d88ca4d215949d2402b78d6acc99ea179b8dbb",
            extension: "920f1235decafbadcafebabe1111111122222222bede000110ff0000ba933651fe6d4d9a\
                        5b7c864965d846440fdfa4279cf836267668df7e0a77",
            rtcp: [
                "80c80006cafebabe9ac2eab30b6954515d1a71a11e91404c2e1541798000000183ab836c69473abda1ba",
                "80c80006cafebabe89f3dd027096613631775245f53e59bbc4a1c4e48000000242776a989e73b7d4e04f",
            ],
            wrapped: "800f0000decafbad01020304ad9ac0942588db1662ffafdcbe7f5da938eb",
        },
        Oracle {
            suite: SrtpSuite::AesCm128HmacSha1_32,
            simple: "800f1234decafbadcafebabe4e55dc4ce79978d88ca4d215949d2402b78d6acc",
            extension: "920f1235decafbadcafebabe1111111122222222bede000110ff0000ba933651fe6d4d9a\
                        5b7c864965d846440fdfa4279cf83626",
            // Same bytes as the _80 suite: SRTCP keeps the 80-bit tag.
            rtcp: [
                "80c80006cafebabe9ac2eab30b6954515d1a71a11e91404c2e1541798000000183ab836c69473abda1ba",
                "80c80006cafebabe89f3dd027096613631775245f53e59bbc4a1c4e48000000242776a989e73b7d4e04f",
            ],
            wrapped: "800f0000decafbad01020304ad9ac0942588db1662ffafdc",
        },
        Oracle {
            suite: SrtpSuite::AeadAes128Gcm,
            simple: "800f1234decafbadcafebabe7620ca09b3ce07d0a374788f0baf8d6339ec7269269d57b6\
                     fe4a1292cc2b2e37",
            extension: "920f1235decafbadcafebabe1111111122222222bede000110ff0000dc9ce6889ba6424c\
                        d13966eeec1f42b51ceb9acf51f61a313de470c8c7b43700e56cd8b7",
            rtcp: [
                "80c80006cafebabe3df41057d10a9ecd52044284bebe230557084316b90183e44f158ee4\
                 da10f2e5f376cbad80000001",
                "80c80006cafebabe12a13a6de56514356383fcc0e49958b034552c666a5f142a6eeda297\
                 236363daee0536a080000002",
            ],
            wrapped: "800f0000decafbad01020304d41e11d55427fe199d3d0fcb6acf0ee8185ef5a9af528914",
        },
        Oracle {
            suite: SrtpSuite::AeadAes256Gcm,
            simple: "800f1234decafbadcafebabe090d50d514d925fbbdbe39eb15c4b6d184e99c64017a9e37\
                     252e3b01d8704955",
            extension: "920f1235decafbadcafebabe1111111122222222bede000110ff0000da4adfecec2ec92e\
                        da9fd165a3e8fc0a89f6a5361eb9e7d05fd19146c254491221c8583f",
            rtcp: [
                "80c80006cafebabe1b49fd3ea91eee7e921fc370f30e1762ac5ea1dc4d4abc2e84616bf8\
                 14365c4704fe3c5e80000001",
                "80c80006cafebabe44f75baaea0106f5168723945c885a047a57cc70924f60e1f8dc91f0\
                 078754b386b160e880000002",
            ],
            wrapped: "800f0000decafbad010203042e7d1064501dca51b88718dfbd2030387af5494ddcf5da98",
        },
    ];

    fn oracle_plain() -> (Vec<u8>, Vec<u8>, Vec<u8>) {
        let mut simple = unhex("800f1234decafbadcafebabe");
        simple.extend_from_slice(&[0xab; 16]);
        let mut extension = unhex("920f1235decafbadcafebabe1111111122222222bede000110ff0000");
        extension.extend(0u8..20);
        let mut rtcp = unhex("80c80006cafebabe");
        rtcp.extend(0x40u8..0x54);
        (simple, extension, rtcp)
    }

    fn wrap_packet(seq: u16) -> Vec<u8> {
        let mut p = vec![0x80, 0x0f];
        p.extend_from_slice(&seq.to_be_bytes());
        p.extend_from_slice(&unhex("decafbad01020304"));
        p.extend_from_slice(&[0xcd; 8]);
        p
    }

    /// The vector given with the task, from libsrtp 2: AES_CM_128_HMAC_SHA1_80
    /// with master key||salt e1f97a0d...aabe6.
    #[test]
    fn libsrtp_oracle_aes_cm_80() {
        let mut tx = context(SrtpSuite::AesCm128HmacSha1_80);
        let mut packet = unhex("800f1234decafbadcafebabe");
        packet.extend_from_slice(&[0xab; 16]);
        assert_eq!(
            protect(&mut tx, &packet),
            unhex("800f1234decafbadcafebabe4e55dc4ce79978d88ca4d215949d2402b78d6acc99ea179b8dbb")
        );
    }

    #[test]
    fn libsrtp_oracle_all_suites_protect() {
        let (simple, extension, rtcp) = oracle_plain();
        for oracle in &ORACLES {
            let suite = oracle.suite;
            let mut tx = context(suite);
            assert_eq!(
                protect(&mut tx, &simple),
                unhex(oracle.simple),
                "{suite} simple"
            );
            assert_eq!(
                protect(&mut tx, &extension),
                unhex(oracle.extension),
                "{suite} ext"
            );
            tx.set_next_srtcp_index(0xcafe_babe, 1);
            for (i, want) in oracle.rtcp.iter().enumerate() {
                assert_eq!(
                    protect_rtcp(&mut tx, &rtcp),
                    unhex(want),
                    "{suite} rtcp {i}"
                );
            }

            let mut tx = context(suite);
            for seq in [65534, 65535] {
                protect(&mut tx, &wrap_packet(seq));
            }
            assert_eq!(
                protect(&mut tx, &wrap_packet(0)),
                unhex(oracle.wrapped),
                "{suite} wrap"
            );
            assert_eq!(tx.rollover_counter(0x0102_0304), Some(1));
        }
    }

    #[test]
    fn libsrtp_oracle_all_suites_unprotect() {
        let (simple, extension, rtcp) = oracle_plain();
        for oracle in &ORACLES {
            let suite = oracle.suite;
            let mut rx = context(suite);
            assert_eq!(
                unprotect(&mut rx, &unhex(oracle.simple)),
                Ok(simple.clone()),
                "{suite}"
            );
            assert_eq!(
                unprotect(&mut rx, &unhex(oracle.extension)),
                Ok(extension.clone())
            );
            for want in oracle.rtcp {
                assert_eq!(
                    unprotect_rtcp(&mut rx, &unhex(want)),
                    Ok(rtcp.clone()),
                    "{suite}"
                );
            }

            // A receiver that saw the sender's last packets before the wrap
            // estimates ROC 1 for seq 0.
            let mut tx = context(suite);
            let mut rx = context(suite);
            for seq in [65534, 65535] {
                let wire = protect(&mut tx, &wrap_packet(seq));
                unprotect(&mut rx, &wire).unwrap();
            }
            assert_eq!(
                unprotect(&mut rx, &unhex(oracle.wrapped)),
                Ok(wrap_packet(0))
            );
            assert_eq!(rx.rollover_counter(0x0102_0304), Some(1));
        }
    }

    // ---------------------------------------------------------------------
    // RFC 7714 §16 and §17. The vectors give session keys, not master keys:
    // "The 16-octet (128-bit) key is 00 01 02 ... 0f, and the 32-octet
    // (256-bit) key is 00 01 02 ... 1f", the salt "51756964 2070726f
    // 2071756f" ("Quid pro quo"), the same for SRTP and SRTCP.
    // ---------------------------------------------------------------------

    fn rfc7714_context(suite: SrtpSuite) -> SrtpContext {
        let key: Vec<u8> = (0..suite.master_key_len() as u8).collect();
        SrtpContext::from_gcm_session_keys(suite, &key, *b"Quid pro quo")
    }

    /// RFC 7714 §16.1.1 "Encrypting the following packet" (header
    /// 8040f17b 8041f8d3 5501a0b2, payload "Gallia est omnis divisa in partes
    /// tres").
    const RFC7714_RTP: &str = "8040f17b 8041f8d3 5501a0b2 47616c6c
                               69612065 7374206f 6d6e6973 20646976
                               69736120 696e2070 61727465 73207472
                               6573";

    /// RFC 7714 §17.1 "Encrypting the following packet" (SRTCP index
    /// 000005d4).
    const RFC7714_RTCP: &str = "81c8000d 4d617273 4e545031 4e545032
                                52545020 0000042a 0000e930 4c756e61
                                deadbeef deadbeef deadbeef deadbeef
                                deadbeef";

    /// RFC 7714 §16.1.1/§16.1.2 (AEAD_AES_128_GCM) and §16.2.1/§16.2.2
    /// (AEAD_AES_256_GCM), "Encrypted and tagged packet".
    #[test]
    fn rfc7714_16_srtp_encryption_and_decryption() {
        let cases = [
            (
                SrtpSuite::AeadAes128Gcm,
                "8040f17b 8041f8d3 5501a0b2 f24de3a3
                 fb34de6c acba861c 9d7e4bca be633bd5
                 0d294e6f 42a5f47a 51c7d19b 36de3adf
                 8833899d 7f27beb1 6a9152cf 765ee439
                 0cce",
            ),
            (
                SrtpSuite::AeadAes256Gcm,
                "8040f17b 8041f8d3 5501a0b2 32b1de78
                 a822fe12 ef9f78fa 332e33aa b1801238
                 9a58e2f3 b50b2a02 76ffae0f 1ba63799
                 b87b7aa3 db36dfff d6b0f9bb 7878d7a7
                 6c13",
            ),
        ];
        for (suite, expected) in cases {
            let mut tx = rfc7714_context(suite);
            assert_eq!(
                protect(&mut tx, &unhex(RFC7714_RTP)),
                unhex(expected),
                "{suite}"
            );
            let mut rx = rfc7714_context(suite);
            assert_eq!(
                unprotect(&mut rx, &unhex(expected)),
                Ok(unhex(RFC7714_RTP)),
                "{suite}"
            );
            assert_eq!(
                unprotect(&mut rx, &unhex(expected)),
                Err(SrtpError::Replayed)
            );
        }
    }

    /// RFC 7714 §17.1 (AEAD_AES_128_GCM) and §17.2 (AEAD_AES_256_GCM):
    /// SRTCP encryption and tagging with SRTCP index 000005d4.
    #[test]
    fn rfc7714_17_srtcp_encryption() {
        let cases = [
            (
                SrtpSuite::AeadAes128Gcm,
                "81c8000d 4d617273 63e94885 dcdab67c
                 a727d766 2f6b7e99 7ff5c0f7 6c06f32d
                 c676a5f1 730d6fda 4ce09b46 86303ded
                 0bb9275b c84aa458 96cf4d2f c5abf872
                 45d9eade 800005d4",
            ),
            (
                SrtpSuite::AeadAes256Gcm,
                "81c8000d 4d617273 d50ae4d1 f5ce5d30
                 4ba297e4 7d470c28 2c3ece5d bffe0a50
                 a2eaa5c1 110555be 8415f658 c61de047
                 6f1b6fad 1d1eb30c 4446839f 57ff6f6c
                 b26ac3be 800005d4",
            ),
        ];
        for (suite, expected) in cases {
            let mut tx = rfc7714_context(suite);
            tx.set_next_srtcp_index(0x4d61_7273, 0x5d4);
            assert_eq!(
                protect_rtcp(&mut tx, &unhex(RFC7714_RTCP)),
                unhex(expected),
                "{suite}"
            );
            let mut rx = rfc7714_context(suite);
            let plain = unprotect_rtcp(&mut rx, &unhex(expected));
            assert_eq!(plain, Ok(unhex(RFC7714_RTCP)), "{suite}");
            let again = unprotect_rtcp(&mut rx, &unhex(expected));
            assert_eq!(again, Err(SrtpError::Replayed), "{suite}");
        }
    }

    /// RFC 7714 §17.3 (AEAD_AES_128_GCM) and §17.4 (AEAD_AES_256_GCM):
    /// SRTCP tagging only (E flag clear). We never send these, but accept
    /// them: the packet stays in the clear and only the tag is checked.
    #[test]
    fn rfc7714_17_srtcp_tagging_only_is_verified() {
        let cases = [
            (
                SrtpSuite::AeadAes128Gcm,
                "81c8000d 4d617273 4e545031 4e545032
                 52545020 0000042a 0000e930 4c756e61
                 deadbeef deadbeef deadbeef deadbeef
                 deadbeef 841dd968 3dd78ec9 2ae58790
                 125f62b3 000005d4",
            ),
            (
                SrtpSuite::AeadAes256Gcm,
                "81c8000d 4d617273 4e545031 4e545032
                 52545020 0000042a 0000e930 4c756e61
                 deadbeef deadbeef deadbeef deadbeef
                 deadbeef 91db4afb feee5a97 8fab4393
                 ed2615fe 000005d4",
            ),
        ];
        for (suite, tagged) in cases {
            let mut rx = rfc7714_context(suite);
            let mut tampered = unhex(tagged);
            tampered[20] ^= 0x01;
            assert_eq!(
                unprotect_rtcp(&mut rx, &tampered),
                Err(SrtpError::AuthFailed)
            );
            assert_eq!(
                unprotect_rtcp(&mut rx, &unhex(tagged)),
                Ok(unhex(RFC7714_RTCP))
            );
        }
    }

    // ---------------------------------------------------------------------
    // Round trips.
    // ---------------------------------------------------------------------

    #[test]
    fn round_trip_every_suite_rtp_and_rtcp() {
        for suite in ALL_SUITES {
            let mut tx = context(suite);
            let mut rx = context(suite);
            for (seq, payload_len) in [(1u16, 0usize), (2, 1), (3, 15), (4, 16), (5, 17), (6, 1200)]
            {
                for packet in [
                    rtp(seq, 0x1111, payload_len),
                    rtp_with_extension(seq, 0x2222, payload_len),
                ] {
                    let wire = protect(&mut tx, &packet);
                    assert_eq!(wire.len(), packet.len() + suite.rtp_overhead());
                    // Header (with CSRCs and extension) in the clear, payload not.
                    let header_len = RtpHeader::parse(&packet).unwrap().len;
                    assert_eq!(wire[..header_len], packet[..header_len]);
                    if payload_len >= 4 {
                        assert_ne!(wire[header_len..packet.len()], packet[header_len..]);
                    }
                    assert!(rx.authenticates_rtp(&wire), "{suite}");
                    assert_eq!(unprotect(&mut rx, &wire), Ok(packet), "{suite}");
                }
            }
            for ssrc in [0x1111, 0x2222, 0x3333] {
                let packet = rtcp(ssrc);
                let wire = protect_rtcp(&mut tx, &packet);
                assert_eq!(wire.len(), packet.len() + suite.rtcp_overhead());
                assert_eq!(wire[..8], packet[..8]);
                assert_ne!(wire[8..packet.len()], packet[8..]);
                assert_eq!(unprotect_rtcp(&mut rx, &wire), Ok(packet), "{suite}");
            }
            assert_eq!(tx.rtp_packets_protected(), 12);
            assert_eq!(tx.rtcp_packets_protected(), 3);
            assert_eq!(rx.ssrc_count(), 3);
        }
    }

    /// Both directions of a context are really one: keys derived from the
    /// same master agree only with themselves.
    #[test]
    fn different_keys_do_not_authenticate() {
        for suite in ALL_SUITES {
            let (key, salt) = master(suite);
            let mut other_key = key.clone();
            other_key[0] ^= 1;
            let mut other_salt = salt.clone();
            other_salt[11] ^= 1;
            let wire = protect(&mut context(suite), &rtp(7, 1, 20));
            for (k, s) in [(&other_key, &salt), (&key, &other_salt)] {
                let mut rx = SrtpContext::new(suite, k, s).unwrap();
                assert!(!rx.authenticates_rtp(&wire));
                assert_eq!(
                    unprotect(&mut rx, &wire),
                    Err(SrtpError::AuthFailed),
                    "{suite}"
                );
            }
        }
    }

    #[test]
    fn bad_master_key_or_salt_length() {
        for suite in ALL_SUITES {
            let (key, salt) = master(suite);
            let short_key = &key[..key.len() - 1];
            assert_eq!(
                SrtpContext::new(suite, short_key, &salt).err(),
                Some(SrtpError::BadKeyLength)
            );
            let long_salt = [salt.clone(), vec![0]].concat();
            assert_eq!(
                SrtpContext::new(suite, &key, &long_salt).err(),
                Some(SrtpError::BadSaltLength)
            );
        }
    }

    // ---------------------------------------------------------------------
    // Rollover counter.
    // ---------------------------------------------------------------------

    #[test]
    fn sequence_wrap_increments_roc_on_both_sides() {
        for suite in ALL_SUITES {
            let mut tx = context(suite);
            let mut rx = context(suite);
            for seq in [65533u16, 65534, 65535, 0, 1] {
                let packet = rtp(seq, 0xabcd, 10);
                let wire = protect(&mut tx, &packet);
                assert_eq!(unprotect(&mut rx, &wire), Ok(packet), "{suite} {seq}");
                let roc = u32::from(seq < 100);
                assert_eq!(tx.rollover_counter(0xabcd), Some(roc));
                assert_eq!(rx.rollover_counter(0xabcd), Some(roc));
            }
        }
    }

    /// Several wraps of the sequence number with packets reordered within
    /// blocks of 8 and every 13th packet lost: every delivered packet
    /// decrypts, and the ROCs agree at the end.
    #[test]
    fn sweep_across_several_wraps_with_reordering() {
        for suite in [SrtpSuite::AesCm128HmacSha1_32, SrtpSuite::AeadAes128Gcm] {
            let mut tx = context(suite);
            let mut rx = context(suite);
            let start: u32 = 65_000;
            let count: u32 = 3 * 65_536 + 2_000;
            let mut block: Vec<(u16, Vec<u8>)> = Vec::with_capacity(8);
            for n in 0..count {
                let seq = (start + n) as u16;
                let wire = protect(&mut tx, &rtp(seq, 0x5eed, 4));
                if n % 13 != 5 {
                    block.push((seq, wire));
                }
                if block.len() == 8 || n + 1 == count {
                    // Deliver the block in a scrambled order: 3, 0, 7, 1, ...
                    let len = block.len();
                    for k in 0..len {
                        let (seq, wire) = &block[(k * 3 + 3) % len];
                        assert_eq!(
                            unprotect(&mut rx, wire),
                            Ok(rtp(*seq, 0x5eed, 4)),
                            "{suite} {n}"
                        );
                    }
                    block.clear();
                }
            }
            let roc = (start + count - 1) >> 16;
            assert_eq!(roc, 4);
            assert_eq!(tx.rollover_counter(0x5eed), Some(roc));
            assert_eq!(rx.rollover_counter(0x5eed), Some(roc));
        }
    }

    /// Packets from before a wrap that arrive after it are decrypted with
    /// ROC - 1.
    #[test]
    fn late_packets_from_before_a_wrap() {
        for suite in ALL_SUITES {
            let mut tx = context(suite);
            let mut rx = context(suite);
            let sent: Vec<(u16, Vec<u8>)> = (65_500u32..65_536 + 40)
                .map(|s| {
                    let seq = s as u16;
                    (seq, protect(&mut tx, &rtp(seq, 0x1a7e, 8)))
                })
                .collect();
            // Deliver everything but 65520..65530, then those, late.
            let late = |seq: u16| (65_520..65_530).contains(&seq);
            for (seq, wire) in sent.iter().filter(|(s, _)| !late(*s)) {
                assert_eq!(unprotect(&mut rx, wire), Ok(rtp(*seq, 0x1a7e, 8)));
            }
            assert_eq!(rx.rollover_counter(0x1a7e), Some(1));
            for (seq, wire) in sent.iter().filter(|(s, _)| late(*s)) {
                assert_eq!(
                    unprotect(&mut rx, wire),
                    Ok(rtp(*seq, 0x1a7e, 8)),
                    "{suite}"
                );
            }
            assert_eq!(rx.rollover_counter(0x1a7e), Some(1));
        }
    }

    // ---------------------------------------------------------------------
    // Replay protection.
    // ---------------------------------------------------------------------

    #[test]
    fn replayed_and_too_old_rtp() {
        for suite in ALL_SUITES {
            let mut tx = context(suite);
            let mut rx = context(suite);
            let wires: Vec<Vec<u8>> = (0..300u16)
                .map(|s| protect(&mut tx, &rtp(s, 9, 10)))
                .collect();
            // Hold back packet 5 and 150.
            for (seq, wire) in wires.iter().enumerate().take(200) {
                if seq != 5 && seq != 150 {
                    unprotect(&mut rx, wire).unwrap();
                }
            }
            assert_eq!(unprotect(&mut rx, &wires[199]), Err(SrtpError::Replayed));
            assert_eq!(unprotect(&mut rx, &wires[100]), Err(SrtpError::Replayed));
            // 199 - 5 >= 128: outside the window.
            assert_eq!(
                unprotect(&mut rx, &wires[5]),
                Err(SrtpError::TooOld),
                "{suite}"
            );
            // 199 - 150 < 128: late but fine, once.
            assert_eq!(unprotect(&mut rx, &wires[150]), Ok(rtp(150, 9, 10)));
            assert_eq!(unprotect(&mut rx, &wires[150]), Err(SrtpError::Replayed));
            assert_eq!(unprotect(&mut rx, &wires[200]), Ok(rtp(200, 9, 10)));
        }
    }

    #[test]
    fn replayed_and_too_old_rtcp() {
        for suite in ALL_SUITES {
            let mut tx = context(suite);
            let mut rx = context(suite);
            let wires: Vec<Vec<u8>> = (0..200).map(|_| protect_rtcp(&mut tx, &rtcp(4))).collect();
            for wire in wires.iter().skip(1).take(150) {
                unprotect_rtcp(&mut rx, wire).unwrap();
            }
            assert_eq!(
                unprotect_rtcp(&mut rx, &wires[150]),
                Err(SrtpError::Replayed)
            );
            assert_eq!(
                unprotect_rtcp(&mut rx, &wires[0]),
                Err(SrtpError::TooOld),
                "{suite}"
            );
            assert_eq!(unprotect_rtcp(&mut rx, &wires[151]), Ok(rtcp(4)));
        }
    }

    #[test]
    fn protecting_an_index_twice_is_refused_unless_allowed() {
        for suite in ALL_SUITES {
            let mut tx = context(suite);
            let packet = rtp(77, 3, 10);
            let first = protect(&mut tx, &packet);
            let mut buf = packet.clone();
            buf.resize(first.len(), 0);
            assert_eq!(
                tx.protect_rtp(&mut buf, packet.len()),
                Err(SrtpError::Replayed)
            );
            // Allowed: the same packet again goes out, byte for byte; other bytes under the
            // same index never do, nor a repeat of a packet protected before it was allowed.
            tx.set_allow_repeat_tx(true);
            let mut buf = packet.clone();
            buf.resize(first.len(), 0);
            assert_eq!(
                tx.protect_rtp(&mut buf, packet.len()),
                Err(SrtpError::Replayed),
                "not remembered"
            );
            let packet = rtp(78, 3, 10);
            let first = protect(&mut tx, &packet);
            assert_eq!(
                protect(&mut tx, &packet),
                first,
                "a retransmission is byte-identical"
            );
            let mut other = packet.clone();
            *other.last_mut().unwrap() ^= 1;
            other.resize(first.len(), 0);
            assert_eq!(
                tx.protect_rtp(&mut other, packet.len()),
                Err(SrtpError::Replayed),
                "different bytes under a used index"
            );
            assert!(
                other[12..].iter().all(|&b| b == 0),
                "nothing of it is left to send"
            );
            let mut marked = packet.clone();
            marked[1] |= 0x80;
            marked.resize(first.len(), 0);
            assert_eq!(
                tx.protect_rtp(&mut marked, packet.len()),
                Err(SrtpError::Replayed),
                "a different header under a used index"
            );
            protect(&mut tx, &rtp(77 + 200, 3, 10));
            buf = packet.clone();
            buf.resize(first.len(), 0);
            assert_eq!(
                tx.protect_rtp(&mut buf, packet.len()),
                Err(SrtpError::TooOld)
            );
        }
    }

    // ---------------------------------------------------------------------
    // Tampering never authenticates and never changes state.
    // ---------------------------------------------------------------------

    #[test]
    fn every_tampered_rtp_byte_fails_and_leaves_state_alone() {
        for suite in ALL_SUITES {
            for packet_kind in 0..2 {
                let mut tx = context(suite);
                let mut rx = context(suite);
                let make = |seq| {
                    if packet_kind == 0 {
                        rtp(seq, 0x7a, 24)
                    } else {
                        rtp_with_extension(seq, 0x7a, 24)
                    }
                };
                unprotect(&mut rx, &protect(&mut tx, &make(100))).unwrap();
                let wire = protect(&mut tx, &make(102));
                let next = protect(&mut tx, &make(103));
                for i in 0..wire.len() {
                    let mut bad = wire.clone();
                    bad[i] ^= 0x01;
                    assert!(!rx.authenticates_rtp(&bad), "{suite} byte {i}");
                    let result = unprotect(&mut rx, &bad);
                    if RtpHeader::parse(&bad)
                        .is_ok_and(|h| h.len + suite.rtp_overhead() <= bad.len())
                    {
                        assert_eq!(result, Err(SrtpError::AuthFailed), "{suite} byte {i}");
                    } else {
                        // Only the extension length byte gets here: the
                        // header then claims more bytes than the packet has.
                        assert_eq!((packet_kind, i), (1, 22));
                        assert_eq!(result, Err(SrtpError::Malformed), "{suite} byte {i}");
                    }
                }
                assert_eq!(rx.ssrc_count(), 1);
                assert_eq!(rx.rollover_counter(0x7a), Some(0));
                assert_eq!(unprotect(&mut rx, &wire), Ok(make(102)));
                assert_eq!(unprotect(&mut rx, &next), Ok(make(103)));
            }
        }
    }

    #[test]
    fn every_tampered_rtcp_byte_fails_and_leaves_state_alone() {
        for suite in ALL_SUITES {
            let mut tx = context(suite);
            let mut rx = context(suite);
            // Index 0 received, 1 lost, 2 tampered with, 3 next: flipping the
            // index's low bit gives an index not yet seen.
            unprotect_rtcp(&mut rx, &protect_rtcp(&mut tx, &rtcp(0x7b))).unwrap();
            protect_rtcp(&mut tx, &rtcp(0x7b));
            let wire = protect_rtcp(&mut tx, &rtcp(0x7b));
            let next = protect_rtcp(&mut tx, &rtcp(0x7b));
            for i in 0..wire.len() {
                for flip in [0x01, 0x80] {
                    let mut bad = wire.clone();
                    bad[i] ^= flip;
                    let result = unprotect_rtcp(&mut rx, &bad);
                    if i == 0 && flip == 0x80 {
                        // Version 2 becomes 3: rejected before any crypto.
                        assert_eq!(result, Err(SrtpError::Malformed));
                    } else {
                        assert_eq!(
                            result,
                            Err(SrtpError::AuthFailed),
                            "{suite} byte {i} ^ {flip:#x}"
                        );
                    }
                }
            }
            assert_eq!(rx.ssrc_count(), 1);
            assert_eq!(unprotect_rtcp(&mut rx, &wire), Ok(rtcp(0x7b)));
            assert_eq!(unprotect_rtcp(&mut rx, &next), Ok(rtcp(0x7b)));
        }
    }

    /// Forged packets for unknown SSRCs take no slot in the table.
    #[test]
    fn forged_new_ssrcs_take_no_state() {
        for suite in ALL_SUITES {
            let mut rx = context(suite);
            for ssrc in 0..100u32 {
                let mut wire = protect(&mut context(suite), &rtp(1, ssrc, 10));
                let last = wire.len() - 1;
                wire[last] ^= 0x40;
                assert_eq!(unprotect(&mut rx, &wire), Err(SrtpError::AuthFailed));
            }
            assert_eq!(rx.ssrc_count(), 0);
        }
    }

    // ---------------------------------------------------------------------
    // Truncated and malformed input: errors, never panics.
    // ---------------------------------------------------------------------

    #[test]
    fn truncated_packets_of_every_length_are_errors() {
        for suite in ALL_SUITES {
            let mut tx = context(suite);
            let mut rx = context(suite);
            let wire = protect(&mut tx, &rtp_with_extension(1, 5, 30));
            let wire_rtcp = protect_rtcp(&mut tx, &rtcp(5));
            for len in 0..wire.len() {
                assert!(!rx.authenticates_rtp(&wire[..len]));
                assert!(
                    unprotect(&mut rx, &wire[..len]).is_err(),
                    "{suite} rtp {len}"
                );
            }
            for len in 0..wire_rtcp.len() {
                assert!(
                    unprotect_rtcp(&mut rx, &wire_rtcp[..len]).is_err(),
                    "{suite} rtcp {len}"
                );
            }
            assert_eq!(rx.ssrc_count(), 0);
            // The untruncated packets still go through.
            unprotect(&mut rx, &wire).unwrap();
            unprotect_rtcp(&mut rx, &wire_rtcp).unwrap();
        }
    }

    #[test]
    fn protect_refuses_short_buffers_and_truncated_plaintext() {
        for suite in ALL_SUITES {
            let mut tx = context(suite);
            let packet = rtp_with_extension(1, 5, 30);
            let full = packet.len() + suite.rtp_overhead();
            for room in 0..full {
                let mut buf = packet.clone();
                buf.resize(full, 0);
                let len = packet.len().min(room);
                let result = tx.protect_rtp(&mut buf[..room], len);
                // Cut into the header: malformed; otherwise no room for the tag.
                let expected = if RtpHeader::parse(&packet[..len]).is_ok() {
                    SrtpError::BufferTooSmall
                } else {
                    SrtpError::Malformed
                };
                assert_eq!(result, Err(expected), "{suite} room {room}");
            }
            assert_eq!(
                tx.protect_rtp(&mut [0u8; 10], 11),
                Err(SrtpError::BufferTooSmall)
            );

            let packet = rtcp(5);
            let full = packet.len() + suite.rtcp_overhead();
            for room in 0..full {
                let mut buf = packet.clone();
                buf.resize(full, 0);
                let len = packet.len().min(room);
                let result = tx.protect_rtcp(&mut buf[..room], len);
                assert!(result.is_err(), "{suite} rtcp room {room}");
            }
            assert_eq!(tx.rtp_packets_protected(), 0);
            assert_eq!(tx.rtcp_packets_protected(), 0);
        }
    }

    // ---------------------------------------------------------------------
    // SRTCP index and E flag.
    // ---------------------------------------------------------------------

    #[test]
    fn srtcp_index_counts_per_ssrc_with_e_flag_set() {
        for suite in ALL_SUITES {
            let mut tx = context(suite);
            let index_at = |wire: &[u8]| {
                let at = if suite.is_aead() {
                    wire.len() - 4
                } else {
                    wire.len() - 4 - 10
                };
                u32::from_be_bytes(wire[at..at + 4].try_into().unwrap())
            };
            for expected in 0..3u32 {
                assert_eq!(
                    index_at(&protect_rtcp(&mut tx, &rtcp(1))),
                    0x8000_0000 | expected
                );
            }
            assert_eq!(index_at(&protect_rtcp(&mut tx, &rtcp(2))), 0x8000_0000);
            assert_eq!(index_at(&protect_rtcp(&mut tx, &rtcp(1))), 0x8000_0003);
        }
    }

    /// AES-CM SRTCP with the E flag clear: authenticated, not decrypted.
    #[test]
    fn srtcp_unencrypted_packets_are_verified_not_decrypted() {
        for suite in [
            SrtpSuite::AesCm128HmacSha1_80,
            SrtpSuite::AesCm128HmacSha1_32,
        ] {
            let SrtpContext {
                transform: Transform::AesCm { rtcp: keys, .. },
                ..
            } = context(suite)
            else {
                unreachable!("AES-CM suite")
            };
            let mut wire = rtcp(6);
            wire.extend_from_slice(&0x0000_0007u32.to_be_bytes());
            let mut tag = [0u8; 10];
            keys.write_tag(&[&wire], &mut tag);
            wire.extend_from_slice(&tag);
            let mut rx = context(suite);
            assert_eq!(unprotect_rtcp(&mut rx, &wire), Ok(rtcp(6)));
            assert_eq!(unprotect_rtcp(&mut rx, &wire), Err(SrtpError::Replayed));
        }
    }

    // ---------------------------------------------------------------------
    // Limits.
    // ---------------------------------------------------------------------

    #[test]
    fn master_key_lifetime_is_enforced() {
        for suite in ALL_SUITES {
            let mut tx = context(suite);
            tx.set_packets_protected(MAX_SRTP_PACKETS - 1, MAX_SRTCP_PACKETS - 1);
            protect(&mut tx, &rtp(1, 1, 10));
            protect_rtcp(&mut tx, &rtcp(1));
            let mut buf = [0u8; 200];
            buf[..22].copy_from_slice(&rtp(2, 1, 10));
            assert_eq!(
                tx.protect_rtp(&mut buf, 22),
                Err(SrtpError::KeyLifetimeExhausted)
            );
            let packet = rtcp(1);
            buf[..packet.len()].copy_from_slice(&packet);
            let result = tx.protect_rtcp(&mut buf, packet.len());
            assert_eq!(result, Err(SrtpError::KeyLifetimeExhausted));

            // The SDES lifetime lowers the limit.
            let mut tx = context(suite);
            tx.set_key_lifetime_packets(2);
            protect(&mut tx, &rtp(1, 1, 10));
            protect(&mut tx, &rtp(2, 1, 10));
            buf[..22].copy_from_slice(&rtp(3, 1, 10));
            assert_eq!(
                tx.protect_rtp(&mut buf, 22),
                Err(SrtpError::KeyLifetimeExhausted)
            );
        }
    }

    #[test]
    fn srtcp_index_exhaustion_and_roc_overflow() {
        for suite in ALL_SUITES {
            let mut tx = context(suite);
            tx.set_next_srtcp_index(1, 0x7fff_ffff);
            let wire = protect_rtcp(&mut tx, &rtcp(1));
            let mut rx = context(suite);
            assert_eq!(unprotect_rtcp(&mut rx, &wire), Ok(rtcp(1)));
            let packet = rtcp(1);
            let mut buf = [0u8; 200];
            buf[..packet.len()].copy_from_slice(&packet);
            let result = tx.protect_rtcp(&mut buf, packet.len());
            assert_eq!(result, Err(SrtpError::KeyLifetimeExhausted));

            // Past ROC 2^32 - 1 nothing more is protected for that SSRC.
            let mut tx = context(suite);
            protect(&mut tx, &rtp(0xfffe, 1, 10));
            let slot = tx.streams.find(1).unwrap();
            tx.streams
                .get_mut(slot)
                .unwrap()
                .rtp
                .accept(super::super::rollover::MAX_SRTP_INDEX - 1);
            protect(&mut tx, &rtp(0xffff, 1, 10));
            buf[..22].copy_from_slice(&rtp(0, 1, 10));
            assert_eq!(
                tx.protect_rtp(&mut buf, 22),
                Err(SrtpError::KeyLifetimeExhausted)
            );
        }
    }

    #[test]
    fn ssrc_table_is_bounded() {
        for suite in ALL_SUITES {
            let mut tx = context(suite);
            let mut rx = context(suite);
            for ssrc in 0..MAX_SSRCS as u32 {
                let wire = protect(&mut tx, &rtp(1, ssrc, 10));
                unprotect(&mut rx, &wire).unwrap();
            }
            let mut buf = [0u8; 200];
            buf[..22].copy_from_slice(&rtp(1, 999, 10));
            assert_eq!(tx.protect_rtp(&mut buf, 22), Err(SrtpError::TooManySsrcs));
            assert!(tx.forget_ssrc(0));
            let wire = protect(&mut tx, &rtp(1, 999, 10));
            // The receiver only admits it once there is room.
            assert!(rx.authenticates_rtp(&wire));
            assert_eq!(unprotect(&mut rx, &wire), Err(SrtpError::TooManySsrcs));
            assert!(rx.forget_ssrc(0));
            assert_eq!(unprotect(&mut rx, &wire), Ok(rtp(1, 999, 10)));
            assert_eq!(rx.ssrc_count(), MAX_SSRCS);
        }
    }

    #[test]
    fn authenticates_rtp_changes_nothing() {
        for suite in ALL_SUITES {
            let mut tx = context(suite);
            let rx = context(suite);
            let wire = protect(&mut tx, &rtp(40_000, 8, 100));
            let copy = wire.clone();
            assert!(rx.authenticates_rtp(&wire));
            assert_eq!(wire, copy);
            assert_eq!(rx.ssrc_count(), 0);
            let mut rx = rx;
            assert_eq!(unprotect(&mut rx, &wire), Ok(rtp(40_000, 8, 100)));
            // Replays still authenticate: only the tag is checked.
            assert!(rx.authenticates_rtp(&wire));
        }
    }

    #[test]
    fn gcm_trial_decrypt_is_bounded() {
        let mut tx = context(SrtpSuite::AeadAes128Gcm);
        let rx = context(SrtpSuite::AeadAes128Gcm);
        let fits = protect(&mut tx, &rtp(1, 1, GCM_TRIAL_MAX_PACKET_LEN - 12 - 16));
        assert!(rx.authenticates_rtp(&fits));
        let too_long = protect(&mut tx, &rtp(2, 1, GCM_TRIAL_MAX_PACKET_LEN - 12 - 15));
        assert!(!rx.authenticates_rtp(&too_long));
    }

    /// The runtime builds contexts on one thread and hands them to a core.
    #[test]
    fn context_is_send() {
        fn assert_send<T: Send>() {}
        assert_send::<SrtpContext>();
    }

    /// Packets per second through protect + unprotect, per suite, for a
    /// 20 ms G.711 packet and a 1200-byte video packet. Run on purpose:
    /// `cargo test --release -p chorus-engine --lib srtp -- --ignored stress_ --nocapture`.
    #[test]
    #[ignore]
    fn stress_throughput() {
        const PACKETS: u32 = 200_000;
        for payload_len in [160, 1200] {
            for suite in ALL_SUITES {
                let mut tx = context(suite);
                let mut rx = context(suite);
                let packet = rtp(0, 0x5757, payload_len);
                let mut buf = [0u8; 1500];
                let started = std::time::Instant::now();
                for n in 0..PACKETS {
                    buf[..packet.len()].copy_from_slice(&packet);
                    buf[2..4].copy_from_slice(&(n as u16).to_be_bytes());
                    let len = tx.protect_rtp(&mut buf, packet.len()).unwrap();
                    let plain = rx.unprotect_rtp(&mut buf[..len]).unwrap();
                    assert_eq!(plain, packet.len());
                }
                let per_packet_ns = started.elapsed().as_nanos() / u128::from(PACKETS);
                println!("{suite} {payload_len} B: {per_packet_ns} ns per protect+unprotect");
            }
        }
    }

    #[test]
    fn debug_output_has_no_key_material() {
        let text = format!("{:?}", context(SrtpSuite::AesCm128HmacSha1_80));
        assert!(text.contains("AesCm128HmacSha1_80"));
        assert!(!text.to_lowercase().contains("e1f97a"));
    }
}
