//! The minimal description of a SIP message the transaction layer works on.

use super::method::Method;

/// Whether a message is a request or a response, with the one field that says which.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TxKind {
    /// A request with its method (from the Request-Line).
    Request {
        /// The Request-Line method.
        method: Method,
    },
    /// A response with its status code (from the Status-Line).
    Response {
        /// The Status-Line code, 100..=699 for a valid response.
        status: u16,
    },
}

/// What the transaction layer needs to know about a SIP message, extracted by the caller from
/// its parsed message, plus the message itself as an opaque `payload`.
///
/// The layer never looks inside `payload`; it clones it to (re)transmit it and hands it back in
/// events. A cheap-to-clone payload (`bytes::Bytes`, an `Arc`) keeps retransmissions cheap.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TxMessage<M> {
    /// Request or response.
    pub kind: TxKind,
    /// The `branch` parameter of the top Via (empty if absent).
    pub branch: String,
    /// The sent-by (`host[:port]`) of the top Via.
    pub sent_by: String,
    /// The method of the CSeq header.
    pub cseq_method: Method,
    /// The sequence number of the CSeq header.
    pub cseq: u32,
    /// The Call-ID header.
    pub call_id: String,
    /// The From tag (empty if absent, as from an RFC 2543 peer).
    pub from_tag: String,
    /// The To tag, if any.
    pub to_tag: Option<String>,
    /// The Request-URI (requests only; empty for responses). Used only for RFC 2543 matching.
    pub request_uri: String,
    /// The whole top Via header value. Used only for RFC 2543 matching.
    pub top_via: String,
    /// The caller's message (parsed or serialized), opaque to the layer.
    pub payload: M,
}

impl<M> TxMessage<M> {
    /// The request method, if this is a request.
    pub fn method(&self) -> Option<&Method> {
        match &self.kind {
            TxKind::Request { method } => Some(method),
            TxKind::Response { .. } => None,
        }
    }

    /// The status code, if this is a response.
    pub fn status(&self) -> Option<u16> {
        match self.kind {
            TxKind::Request { .. } => None,
            TxKind::Response { status } => Some(status),
        }
    }
}

/// The two messages the layer must build itself, supplied by the message type.
///
/// The layer generates the ACK for a non-2xx final response (RFC 3261 17.1.1.3) and the
/// automatic `100 Trying` (RFC 3261 17.2.1, 8.2.6.1) at moments only it knows. Rather than
/// stalling a state machine on a round trip through the TU (an event asking for the message,
/// then a call handing it back), the message type knows how to derive both: they are pure
/// functions of messages the layer already holds. No closures are stored.
pub trait TxPayload: Clone {
    /// Builds the ACK for a non-2xx final `response` to the INVITE `request` (RFC 3261
    /// 17.1.1.3): Request-URI, Call-ID, From, CSeq number and the single top Via of the
    /// request, the To of the response, CSeq method ACK, the request's Route headers.
    fn ack_for_non2xx(request: &TxMessage<Self>, response: &TxMessage<Self>) -> Self;

    /// Builds `100 Trying` for `request` (RFC 3261 8.2.6.1): From, To (no tag added), Call-ID,
    /// CSeq and all Via headers copied, and Timestamp if present.
    fn trying_for(request: &TxMessage<Self>) -> Self;
}
