//! The outcome of offer/answer for one leg: everything the media engine needs.

use std::net::{IpAddr, SocketAddr};

use chorus_engine::rtp::{Pt, Ssrc};
use chorus_engine::srtp::SrtpSuite;
use chorus_engine::srtp::sdes::CryptoAttribute;

use super::bandwidth::BandwidthKind;
use super::codec::{Codec, is_telephone_event};
use super::direction::Direction;
use super::error::SdpError;
use super::media::MediaDescription;
use super::session::SessionDescription;
use super::video::VideoSession;

/// The audio codec chosen for the leg.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NegotiatedCodec {
    /// Which codec.
    pub codec: Codec,
    /// Its payload type (the offer's number when we answer, the answer's when we offer).
    pub payload_type: Pt,
    /// RTP clock rate (8000 for G.722).
    pub clock_rate: u32,
    /// Audio sample rate (16000 for G.722).
    pub sample_rate: u32,
    /// Channels as negotiated in rtpmap (2 for Opus).
    pub channels: u8,
    /// Packet time in milliseconds.
    pub ptime_ms: u32,
    /// The remote's `a=fmtp` parameters for it, if any.
    pub fmtp: Option<String>,
}

/// RFC 4733 events negotiated on the leg.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TelephoneEvent {
    /// Payload type of the events.
    pub payload_type: Pt,
    /// Their clock rate: 8000 or 48000.
    pub clock_rate: u32,
}

/// SDES SRTP keys of the leg.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SrtpKeys {
    /// The remote's attribute: suite and key for unprotecting what it sends.
    pub remote: CryptoAttribute,
    /// Ours, same tag and suite, fresh key: for protecting what we send.
    pub local: CryptoAttribute,
}

impl SrtpKeys {
    /// The suite both directions use.
    pub fn suite(&self) -> SrtpSuite {
        self.remote.suite
    }
}

/// What one offer/answer exchange settled for the leg's audio stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Negotiated {
    /// Index of the audio m-line in the offer (and answer).
    pub media_index: usize,
    /// Where to send RTP. With an RFC 2543 hold address (`0.0.0.0`) it is that address and
    /// `direction` does not send.
    pub remote_rtp: SocketAddr,
    /// Where to send RTCP: `remote_rtp` under rtcp-mux, else `a=rtcp`, else RTP port + 1.
    pub remote_rtcp: SocketAddr,
    /// RTP and RTCP share one port (RFC 5761).
    pub rtcp_mux: bool,
    /// The audio codec.
    pub codec: NegotiatedCodec,
    /// RFC 4733 events, when both sides have them.
    pub telephone_event: Option<TelephoneEvent>,
    /// RFC 3389 comfort noise at the codec's clock (its payload type), when both sides have
    /// it: the remote may send CN during silence instead of audio.
    pub comfort_noise: Option<Pt>,
    /// Our direction: whether we send and whether we receive.
    pub direction: Direction,
    /// SRTP keys, `None` for plain RTP.
    pub srtp: Option<SrtpKeys>,
    /// The remote's first `a=ssrc`, if it announced one.
    pub remote_ssrc: Option<Ssrc>,
    /// The remote's bandwidth limit in bit/s (`b=TIAS`, else `b=AS` times 1000), if any.
    pub remote_max_bitrate_bps: Option<u64>,
    /// The video m-line agreed, if any (`OfferAnswerConfig::video`).
    pub video: Option<VideoSession>,
}

/// Remote RTP and RTCP addresses of media section `index`, whether RTCP is muxed, and
/// whether the address is the RFC 2543 hold address.
pub(crate) struct RemoteTransport {
    pub(crate) rtp: SocketAddr,
    pub(crate) rtcp: SocketAddr,
    pub(crate) rtcp_mux: bool,
    pub(crate) hold_address: bool,
}

impl RemoteTransport {
    /// The direction `sdp` gives m-line `index` (session level included); an RFC 2543 hold
    /// address cannot receive, as if its sender had removed `recv`.
    pub(crate) fn direction(&self, sdp: &SessionDescription, index: usize) -> Direction {
        let direction = sdp.media_direction(index);
        if self.hold_address {
            direction.intersect(Direction::SendOnly)
        } else {
            direction
        }
    }

    pub(crate) fn of(
        sdp: &SessionDescription,
        index: usize,
        media: &MediaDescription,
        mux_allowed: bool,
    ) -> Result<Self, SdpError> {
        let connection = sdp
            .media_connection(index)
            .ok_or(SdpError::NoConnectionAddress)?;
        let ip = connection.ip().ok_or(SdpError::NoConnectionAddress)?;
        let rtp = SocketAddr::new(ip, media.port);
        let rtcp_mux = mux_allowed && media.rtcp_mux();
        let rtcp = if rtcp_mux {
            rtp
        } else if let Some(attr) = media.rtcp() {
            let rtcp_ip: IpAddr = attr.connection.and_then(|c| c.ip()).unwrap_or(ip);
            SocketAddr::new(rtcp_ip, attr.port)
        } else {
            SocketAddr::new(ip, media.port.checked_add(1).unwrap_or(media.port))
        };
        Ok(RemoteTransport {
            rtp,
            rtcp,
            rtcp_mux,
            hold_address: connection.is_hold(),
        })
    }
}

/// The remote's bandwidth limit in bit/s, media level first.
pub(crate) fn max_bitrate_bps(sdp: &SessionDescription, media: &MediaDescription) -> Option<u64> {
    bitrate_bps(&media.bandwidths).or_else(|| bitrate_bps(&sdp.bandwidths))
}

/// The limit in bit/s that `b=` lines give: `b=TIAS`, else `b=AS` times 1000.
pub(crate) fn bitrate_bps(bw: &[super::bandwidth::Bandwidth]) -> Option<u64> {
    let find = |k: BandwidthKind| bw.iter().find(|b| b.kind == k).map(|b| b.value);
    find(BandwidthKind::Tias)
        .or_else(|| find(BandwidthKind::As).map(|kbps| kbps.saturating_mul(1000)))
}

/// The first offered codec in `preference` order: `(codec, pt)`.
pub(crate) fn pick_codec(media: &MediaDescription, preference: &[Codec]) -> Option<(Codec, Pt)> {
    let rtpmaps = media.rtpmaps();
    let offered: Vec<Pt> = media.payload_types();
    preference.iter().find_map(|&codec| {
        offered
            .iter()
            .find(|&&pt| codec.matches(pt, rtpmaps.iter().find(|r| r.payload_type == pt)))
            .map(|&pt| (codec, pt))
    })
}

/// The `telephone-event` to use with a codec at `clock_rate`: the one at the same rate if
/// offered (RFC 4733 section 2.1), else any rate we take.
pub(crate) fn pick_telephone_event(
    media: &MediaDescription,
    clock_rate: u32,
) -> Option<TelephoneEvent> {
    let offered = media.payload_types();
    let events: Vec<TelephoneEvent> = media
        .rtpmaps()
        .into_iter()
        .filter(|r| is_telephone_event(r) && offered.contains(&r.payload_type))
        .map(|r| TelephoneEvent {
            payload_type: r.payload_type,
            clock_rate: r.clock_rate,
        })
        .collect();
    events
        .iter()
        .find(|e| e.clock_rate == clock_rate)
        .or(events.first())
        .copied()
}

/// The RFC 3389 comfort noise payload type to use with a codec at `clock_rate`: a `CN`
/// rtpmap at that rate, or the static type 13 (CN/8000, RFC 3551) offered without one.
pub(crate) fn pick_comfort_noise(media: &MediaDescription, clock_rate: u32) -> Option<Pt> {
    let offered = media.payload_types();
    let rtpmaps = media.rtpmaps();
    offered
        .iter()
        .copied()
        .find(|&pt| match rtpmaps.iter().find(|r| r.payload_type == pt) {
            Some(r) => r.encoding.eq_ignore_ascii_case("CN") && r.clock_rate == clock_rate,
            None => pt == Pt(13) && clock_rate == 8_000,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    const OFFER: &str = "v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\n\
        b=AS:80\r\n\
        m=audio 5004 RTP/AVP 96 0 101 102\r\n\
        a=rtpmap:96 opus/48000/2\r\na=rtpmap:101 telephone-event/8000\r\n\
        a=rtpmap:102 telephone-event/48000\r\na=rtcp:6000 IN IP4 10.0.0.2\r\na=ssrc:7 cname:x\r\n";

    #[test]
    fn transport_codec_and_events() {
        let sdp: SessionDescription = OFFER.parse().unwrap();
        let m = &sdp.media[0];
        let t = RemoteTransport::of(&sdp, 0, m, true).unwrap();
        assert_eq!(t.rtp, "10.0.0.1:5004".parse().unwrap());
        assert_eq!(t.rtcp, "10.0.0.2:6000".parse().unwrap());
        assert!(!t.rtcp_mux && !t.hold_address);
        assert_eq!(
            pick_codec(m, &[Codec::Pcmu, Codec::Opus]),
            Some((Codec::Pcmu, Pt(0)))
        );
        assert_eq!(pick_codec(m, &[Codec::Opus]), Some((Codec::Opus, Pt(96))));
        assert_eq!(pick_codec(m, &[Codec::G722]), None);
        assert_eq!(
            pick_telephone_event(m, 48_000).unwrap().payload_type,
            Pt(102)
        );
        assert_eq!(
            pick_telephone_event(m, 8_000).unwrap().payload_type,
            Pt(101)
        );
        assert_eq!(max_bitrate_bps(&sdp, m), Some(80_000));
    }
}
