//! A leg's video stream as its core holds it: addresses, sockets, flow keys, SRTP contexts,
//! and its place in its conference's router.

use std::net::SocketAddr;

use super::command::VideoConfig;
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

impl LegVideo {
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
        // and sequence number, so its context must protect an index again. That reuses no
        // keystream on different data: the router rebuilds a retransmission from the same
        // stored packet with the same rewrite (SSRC, PT, sequence number, timestamp, VP8
        // picture IDs) as the first send, so the bytes protected, and the SRTP packet, are
        // identical (libsrtp's `allow_repeat_tx` serves the same case).
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

    /// Whether a packet that arrived with this flow key is the leg's video.
    pub fn owns(&self, key: &FlowKey) -> bool {
        self.flow_rtp == *key || self.flow_rtcp.as_ref() == Some(key)
    }
}
