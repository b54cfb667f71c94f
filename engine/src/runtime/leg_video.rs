//! A leg's video stream as its core holds it: addresses, sockets, flow keys, SRTP contexts,
//! and its place in its conference's router.

use std::net::SocketAddr;

use super::command::{SrtpKey, VideoConfig};
use super::flow::FlowKey;
use super::io::SockId;
use super::leg::context;
use crate::sfu::{ConsumerId, ProducerId};
use crate::srtp::{SrtpContext, SrtpError};

/// A leg's video: set by `Command::SetVideo`, dropped with the leg or by `SetVideo(None)`.
pub(crate) struct LegVideo {
    /// What was negotiated (producer and consumer parameters, addresses).
    pub config: VideoConfig,
    /// The local socket video RTP arrives on and leaves from.
    pub rtp_sock: SockId,
    /// The local socket video RTCP arrives on and leaves from (`rtp_sock` with rtcp-mux).
    pub rtcp_sock: SockId,
    /// Where video RTCP goes.
    pub remote_rtcp: SocketAddr,
    /// The flow-table keys of its RTP and (without rtcp-mux) RTCP.
    pub flow_rtp: FlowKey,
    /// See `flow_rtp`.
    pub flow_rtcp: Option<FlowKey>,
    /// Decrypts what the remote sends.
    pub srtp_in: Option<SrtpContext>,
    /// Encrypts what goes to the remote.
    pub srtp_out: Option<SrtpContext>,
    /// Its producer in the conference's router, if it publishes and is in one.
    pub producer: Option<ProducerId>,
    /// Its consumers in the conference's router.
    pub consumers: Vec<ConsumerId>,
}

/// A leg's video SRTP contexts with their keys, kept on the leg while it has no video on a
/// core (taken away, or moving to another core), so video given again under the same keys
/// continues them (RFC 4568 7.1.4): a new context under a used key would start its indexes
/// over and reuse keystream.
#[derive(Default)]
pub(crate) struct VideoSrtp {
    key_in: Option<SrtpKey>,
    srtp_in: Option<SrtpContext>,
    key_out: Option<SrtpKey>,
    srtp_out: Option<SrtpContext>,
}

impl LegVideo {
    /// Its SRTP contexts and their keys, for [`LegVideo::resume_srtp`].
    pub fn into_srtp(self) -> VideoSrtp {
        VideoSrtp {
            key_in: self.config.srtp_in,
            srtp_in: self.srtp_in,
            key_out: self.config.srtp_out,
            srtp_out: self.srtp_out,
        }
    }

    /// Takes the contexts of `parked` whose keys are this video's keys.
    pub fn resume_srtp(&mut self, parked: &mut VideoSrtp) {
        if parked.key_in.is_some() && parked.key_in == self.config.srtp_in {
            self.srtp_in = parked.srtp_in.take();
            parked.key_in = None;
        }
        if parked.key_out.is_some() && parked.key_out == self.config.srtp_out {
            self.srtp_out = parked.srtp_out.take();
            parked.key_out = None;
        }
    }

    /// A leg's video on the given sockets (the RTCP socket is the RTP one with rtcp-mux).
    pub fn new(
        config: VideoConfig,
        rtp_sock: SockId,
        rtcp_sock: SockId,
    ) -> Result<Self, SrtpError> {
        let rtcp_sock = if config.rtcp_mux { rtp_sock } else { rtcp_sock };
        let rtp = config.remote_rtp;
        let remote_rtcp = match (config.rtcp_mux, config.remote_rtcp) {
            (true, _) => rtp,
            (false, Some(r)) => r,
            (false, None) => SocketAddr::new(rtp.ip(), rtp.port().wrapping_add(1)),
        };
        let mut srtp_out = context(&config.srtp_out)?;
        // A receiver without RTX for some codec gets retransmissions with the original SSRC
        // and sequence number, so its context must protect an index again. The router
        // rebuilds a retransmission from the same stored packet with the same rewrite, so the
        // bytes are normally the first ones; the context checks it (it lets a repeat out only
        // with the tag it gave that index before) and refuses anything else, so no keystream
        // or GCM nonce is ever used on other bytes.
        if let Some(ctx) = srtp_out.as_mut()
            && config.receive.iter().any(|c| c.rtx_pt.is_none())
        {
            ctx.set_allow_repeat_tx(true);
        }
        Ok(LegVideo {
            srtp_in: context(&config.srtp_in)?,
            srtp_out,
            rtp_sock,
            rtcp_sock,
            remote_rtcp,
            flow_rtp: FlowKey {
                sock: rtp_sock,
                remote: rtp,
            },
            flow_rtcp: (!config.rtcp_mux).then_some(FlowKey {
                sock: rtcp_sock,
                remote: remote_rtcp,
            }),
            config,
            producer: None,
            consumers: Vec::new(),
        })
    }

    /// Its flow-table keys: RTP, and RTCP without rtcp-mux.
    pub fn flow_keys(&self) -> impl Iterator<Item = FlowKey> + use<> {
        std::iter::once(self.flow_rtp).chain(self.flow_rtcp)
    }

    /// Whether a packet that arrived with this flow key is the leg's video.
    pub fn owns(&self, key: &FlowKey) -> bool {
        self.flow_rtp == *key || self.flow_rtcp.as_ref() == Some(key)
    }
}
