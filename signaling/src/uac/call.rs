//! One outgoing call: its dialog state (RFC 3261 12.1.2) and what the UAC remembers to
//! cancel, acknowledge, authenticate and end it.

use std::time::Instant;

use crate::message::SipMessage;
use crate::sdp::{LocalSession, Negotiated, OfferAnswerConfig, PendingOffer};
use crate::transaction::TransactionId;

use super::DialCredentials;
use super::request::name_addr;

/// Where a call is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Phase {
    /// INVITE sent, no response yet.
    Calling,
    /// A provisional response arrived (an early dialog if it had a To tag).
    Proceeding,
    /// 2xx received and acknowledged; the call is up.
    Confirmed,
    /// Failed or ended; kept a while so retransmitted 2xx are acknowledged again and the far
    /// end's late requests are answered.
    Done,
}

/// What a call's one pending timer is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum CallTimer {
    /// No final answer within the ring timeout: CANCEL.
    Ring,
    /// No final answer 64*T1 after our CANCEL (RFC 3261 9.1): give up.
    CancelGuard,
    /// The call is over; forget it.
    Linger,
}

/// A call of the UAC.
#[derive(Debug)]
pub(crate) struct Call<P> {
    pub peer: P,
    pub phase: Phase,
    pub call_id: String,
    pub local_tag: String,
    pub remote_tag: Option<String>,
    pub request_uri: String,
    /// Our From value, tag included.
    pub from: String,
    /// The To URI (the Request-URI of the INVITE).
    pub to_uri: String,
    /// The remote target: the Contact of the 18x/2xx (the Request-URI until then).
    pub remote_target: String,
    /// Route set from the Record-Route of the 2xx, reversed (RFC 3261 12.1.2).
    pub route_set: Vec<String>,
    /// Our last CSeq number.
    pub cseq: u32,
    pub contact: String,
    pub credentials: Option<DialCredentials>,
    pub extra_headers: Vec<(String, String)>,
    /// The INVITE as last sent (for CANCEL and the ACK's credentials).
    pub invite: Option<SipMessage>,
    /// Where the INVITE went (TCP when RFC 3261 18.1.1 required it).
    pub invite_peer: P,
    pub invite_tx: Option<TransactionId>,
    /// The ACK for the 2xx, re-sent for each retransmission of it.
    pub ack: Option<SipMessage>,
    pub auth_retried: bool,
    /// Hang up requested before the final answer: the status and reason `Failed` will carry.
    pub cancel: Option<(u16, String)>,
    pub cancel_sent: bool,
    /// TCP failed once for this call's target: stay on UDP.
    pub udp_only: bool,
    pub session: LocalSession,
    pub offer_answer: OfferAnswerConfig,
    pub local_rtp: std::net::SocketAddr,
    pub pending: PendingOffer,
    /// Media from an 18x answer, used if the 2xx repeats no SDP.
    pub early: Option<Negotiated>,
    /// Our offer in a 200 to a re-INVITE without one; its answer comes in the ACK.
    pub reoffer: Option<PendingOffer>,
    pub timer: Option<(Instant, CallTimer)>,
    pub trying_reported: bool,
}

impl<P> Call<P> {
    /// The To value: the target URI with the remote tag once known.
    pub fn to(&self) -> String {
        name_addr(None, &self.to_uri, self.remote_tag.as_deref())
    }

    /// The Request-URI of in-dialog requests.
    pub fn target(&self) -> &str {
        if self.remote_target.is_empty() {
            &self.request_uri
        } else {
            &self.remote_target
        }
    }

    /// Whether the call has not reached a final response yet.
    pub fn is_early(&self) -> bool {
        matches!(self.phase, Phase::Calling | Phase::Proceeding)
    }
}
