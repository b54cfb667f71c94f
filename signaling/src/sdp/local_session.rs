//! Our side of one SDP session: the `o=` we write and its version counter.

use std::net::{IpAddr, SocketAddr};

use chorus_engine::runtime::{LegConfig, LegId};
use chorus_engine::srtp::SrtpSuite;
use chorus_engine::srtp::sdes::{CryptoAttribute, SdesError};

use super::attribute::Attribute;
use super::connection::Connection;
use super::origin::{Origin, SessionVersion};

/// The SSRC a media leg sends with and the CNAME its RTCP carries: `a=ssrc:<ssrc>
/// cname:<cname>` must name the CNAME the sender puts in its SDES packets (RFC 5576 6.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalSource {
    /// The leg's SSRC.
    pub ssrc: u32,
    /// The leg's RTCP CNAME.
    pub cname: String,
}

impl LocalSource {
    /// The source of the leg `id` as the engine creates it (`LegConfig::new`).
    pub fn of_leg(id: LegId) -> Self {
        let cfg = LegConfig::new(id);
        LocalSource {
            ssrc: cfg.local_ssrc,
            cname: cfg.cname,
        }
    }

    /// Its `a=ssrc` line.
    pub(crate) fn attribute(&self) -> Attribute {
        ssrc_line(self.ssrc, &self.cname)
    }
}

/// `a=ssrc:<ssrc> cname:<cname>`.
pub(crate) fn ssrc_line(ssrc: u32, cname: &str) -> Attribute {
    Attribute::new("ssrc", format!("{ssrc} cname:{cname}"))
}

/// One video stream we send: its SSRC and the SSRC of its RFC 4588 retransmissions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VideoSource {
    /// The stream's SSRC.
    pub ssrc: u32,
    /// Its RTX stream's SSRC, if it retransmits over RTX.
    pub rtx: Option<u32>,
}

/// Which of a session's streams an SRTP key belongs to (each m-line has its own SDES key).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stream {
    Audio,
    Video,
}

/// Our session identity for one dialog. Every offer or answer we produce takes a new
/// version (RFC 3264 section 8: the version increases with each new description).
///
/// It also remembers the SRTP key we last put in effect, so a re-INVITE (hold, resume) that
/// keeps the suite keeps our key: the media engine's sending context, its rollover counter
/// and the remote's replay state carry on instead of being rekeyed on every re-offer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalSession {
    /// User name in `o=`.
    pub username: String,
    /// Session id, fixed for the dialog.
    pub session_id: u64,
    /// Address in `o=`.
    pub origin_ip: IpAddr,
    /// The source our media leg sends as, announced as `a=ssrc` (RFC 5576) so that a peer
    /// receiving many calls on one socket can tell them apart without trial decryption.
    pub source: Option<LocalSource>,
    /// Our video address: with `OfferAnswerConfig::video`, offers carry an m=video there and
    /// answers accept the first offered one. None: no video (m=video answered with port 0).
    pub video_rtp: Option<SocketAddr>,
    /// The video streams we send, lowest simulcast layer first, announced as `a=ssrc` with
    /// `a=ssrc-group:SIM` and `FID` (a publisher such as the load generator); empty for the
    /// server, whose forwarded streams are not known in advance.
    pub video_sources: Vec<VideoSource>,
    /// The video last agreed, which our re-offers keep (its format and payload types, its
    /// extension ids, the simulcast layers the peer sends us).
    pub video_current: Option<super::video::NegotiatedVideo>,
    version: SessionVersion,
    written: bool,
    srtp_keys: [Option<CryptoAttribute>; 2],
}

impl LocalSession {
    /// A session whose first description carries version `session_id` (a common choice that
    /// keeps versions increasing when ids come from a clock).
    pub fn new(session_id: u64, origin_ip: IpAddr) -> Self {
        LocalSession {
            username: "chorus".to_owned(),
            session_id,
            origin_ip,
            source: None,
            video_rtp: None,
            video_sources: Vec::new(),
            video_current: None,
            version: SessionVersion(session_id),
            written: false,
            srtp_keys: [None, None],
        }
    }

    /// The version of the last description written (or of the first, before any).
    pub fn version(&self) -> SessionVersion {
        self.version
    }

    /// Our key for `stream` in `suite` with `tag`: the one in effect if its suite matches
    /// (the media engine's context goes on: for video across re-offers, moves between
    /// cores and video taken away and back), else a fresh one. Peers such as baresip keep
    /// their receiving context across a re-INVITE, so a new key there would go unheard.
    pub(crate) fn srtp_key(
        &self,
        stream: Stream,
        tag: u32,
        suite: SrtpSuite,
    ) -> Result<CryptoAttribute, SdesError> {
        match &self.srtp_keys[stream as usize] {
            Some(key) if key.suite == suite => Ok(CryptoAttribute { tag, ..key.clone() }),
            _ => CryptoAttribute::generate(tag, suite),
        }
    }

    /// Records the key an exchange put in effect for `stream` (`None`: plain RTP now).
    pub(crate) fn set_srtp_key(&mut self, stream: Stream, key: Option<&CryptoAttribute>) {
        self.srtp_keys[stream as usize] = key.cloned();
    }

    /// The `o=` for a new description: the first call uses the initial version, each later
    /// call the next one.
    pub fn next_origin(&mut self) -> Origin {
        if self.written {
            self.version = self.version.next();
        }
        self.written = true;
        Origin {
            username: self.username.clone(),
            session_id: self.session_id,
            session_version: self.version.0,
            connection: Connection::from_ip(self.origin_ip),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_increments_per_description() {
        let mut s = LocalSession::new(4242, "192.0.2.5".parse().unwrap());
        let first = s.next_origin();
        assert_eq!((first.session_id, first.session_version), (4242, 4242));
        assert_eq!(first.to_string(), "chorus 4242 4242 IN IP4 192.0.2.5");
        assert_eq!(s.next_origin().session_version, 4243);
        assert_eq!(s.next_origin().session_version, 4244);
        assert_eq!(s.version(), SessionVersion(4244));
    }

    #[test]
    fn key_is_kept_for_the_same_suite_only() {
        let mut s = LocalSession::new(1, "192.0.2.5".parse().unwrap());
        let first = (s.srtp_key(Stream::Audio, 1, SrtpSuite::AesCm128HmacSha1_80)).unwrap();
        s.set_srtp_key(Stream::Audio, Some(&first));
        let again = (s.srtp_key(Stream::Audio, 4, SrtpSuite::AesCm128HmacSha1_80)).unwrap();
        assert_eq!((again.tag, &again.key_material), (4, &first.key_material));
        let other = s
            .srtp_key(Stream::Audio, 1, SrtpSuite::AeadAes128Gcm)
            .unwrap();
        assert_eq!(other.suite, SrtpSuite::AeadAes128Gcm);
        assert_ne!(other.key_material.key(), &first.key_material.key()[..16]);
        let video = (s.srtp_key(Stream::Video, 1, SrtpSuite::AesCm128HmacSha1_80)).unwrap();
        assert_ne!(
            video.key_material, first.key_material,
            "each m-line its own key"
        );
        s.set_srtp_key(Stream::Video, Some(&video));
        let again = (s.srtp_key(Stream::Video, 1, SrtpSuite::AesCm128HmacSha1_80)).unwrap();
        assert_eq!(
            again.key_material, video.key_material,
            "video keeps its key too"
        );
    }
}
