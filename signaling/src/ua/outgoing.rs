//! Messages as the transaction layer carries them: the parsed message and where it goes, plus
//! the fields the layer matches on, read from the message.

use crate::message::SipMessage;
use crate::transaction::{TxKind, TxMessage, TxPayload};

use super::SipPeer;

/// A message and the peer it belongs to.
#[derive(Clone, Debug)]
pub struct Outgoing<P> {
    /// Where it came from or goes to.
    pub peer: P,
    /// The message.
    pub msg: SipMessage,
}

/// The transaction layer's view of `msg`; None when a field it needs (Via, CSeq, Call-ID,
/// From) is missing, in which case the message cannot belong to a transaction.
pub fn tx_message<P: SipPeer>(msg: SipMessage, peer: P) -> Option<TxMessage<Outgoing<P>>> {
    let via = msg.top_via()?;
    let cseq = msg.cseq()?;
    let call_id = msg.call_id()?.to_string();
    let from_tag = msg.from()?.tag().unwrap_or("").to_string();
    let to_tag = msg.to().and_then(|t| t.tag().map(str::to_string));
    let kind = match (msg.method(), msg.status()) {
        (Some(m), _) => TxKind::Request { method: m.clone() },
        (None, Some(status)) => TxKind::Response { status },
        (None, None) => return None,
    };
    let sent_by = match via.port {
        Some(p) => format!("{}:{p}", via.host),
        None => via.host.clone(),
    };
    Some(TxMessage {
        kind,
        branch: via.branch().unwrap_or("").to_string(),
        sent_by,
        cseq_method: cseq.method,
        cseq: cseq.seq,
        call_id,
        from_tag,
        to_tag,
        request_uri: msg.uri().map(|u| u.to_string()).unwrap_or_default(),
        top_via: msg
            .headers()
            .list("Via")
            .first()
            .map(|v| v.to_string())
            .unwrap_or_default(),
        payload: Outgoing { peer, msg },
    })
}

impl<P: SipPeer> TxPayload for Outgoing<P> {
    fn ack_for_non2xx(request: &TxMessage<Self>, response: &TxMessage<Self>) -> Self {
        // RFC 3261 17.1.1.3: Request-URI, Call-ID, From, CSeq number and top Via of the
        // request; To of the response; Route of the request.
        let req = &request.payload.msg;
        let mut text = format!("ACK {} SIP/2.0\r\n", request.request_uri);
        if let Some(v) = req.headers().list("Via").first() {
            text.push_str(&format!("Via: {v}\r\n"));
        }
        for r in req.headers().list("Route") {
            text.push_str(&format!("Route: {r}\r\n"));
        }
        for (name, value) in [
            ("From", req.headers().get("From")),
            ("To", response.payload.msg.headers().get("To")),
            ("Call-ID", req.headers().get("Call-ID")),
        ] {
            if let Some(v) = value {
                text.push_str(&format!("{name}: {v}\r\n"));
            }
        }
        text.push_str(&format!(
            "CSeq: {} ACK\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
            request.cseq
        ));
        Outgoing {
            peer: request.payload.peer.clone(),
            // INVARIANT: built from fields of parsed messages; if it somehow does not parse,
            // the request itself is sent back as a harmless no-op rather than panicking.
            msg: SipMessage::parse(text.as_bytes()).unwrap_or_else(|_| req.clone()),
        }
    }

    fn trying_for(request: &TxMessage<Self>) -> Self {
        Outgoing {
            peer: request.payload.peer.clone(),
            msg: SipMessage::response_to(&request.payload.msg, 100, "Trying"),
        }
    }
}
