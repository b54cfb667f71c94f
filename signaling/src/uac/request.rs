//! The requests a UAC sends, written as text and parsed back into [`SipMessage`]s: the initial
//! INVITE and its digest retry (RFC 3261 8.1.1), CANCEL (9.1), the ACK for a 2xx (13.2.2.4)
//! and in-dialog requests such as BYE (12.2.1.1).

use std::fmt::Write as _;
use std::net::SocketAddr;

use crate::message::SipMessage;

/// Everything one request is made of; the builder writes it in RFC 3261 order.
#[derive(Debug)]
pub(crate) struct RequestParts<'a> {
    /// Method name.
    pub method: &'a str,
    /// Request-URI.
    pub uri: &'a str,
    /// Via transport ("UDP", "TCP", "TLS").
    pub transport: &'a str,
    /// Via sent-by.
    pub sent_by: SocketAddr,
    /// Via branch (with the magic cookie).
    pub branch: &'a str,
    /// Route headers, in order.
    pub routes: &'a [String],
    /// The whole From value, tag included.
    pub from: &'a str,
    /// The whole To value, tag included when there is one.
    pub to: &'a str,
    /// Call-ID.
    pub call_id: &'a str,
    /// CSeq number.
    pub cseq: u32,
    /// CSeq method (the method, except for nothing we send).
    pub cseq_method: &'a str,
    /// Further headers (Contact, Authorization, Reason, the dial request's extras...).
    pub headers: &'a [(&'a str, &'a str)],
    /// Content type and body.
    pub body: Option<(&'a str, &'a str)>,
    /// User-Agent value.
    pub user_agent: &'a str,
}

impl RequestParts<'_> {
    /// The request, or `None` if the parts do not make a valid message (a bad URI or header
    /// value supplied by the application or the network).
    pub(crate) fn build(&self) -> Option<SipMessage> {
        let mut text = String::with_capacity(512 + self.body.map_or(0, |(_, b)| b.len()));
        // Writing to a String cannot fail.
        let _ = write!(
            text,
            "{} {} SIP/2.0\r\nVia: SIP/2.0/{} {};branch={};rport\r\nMax-Forwards: 70\r\n",
            self.method, self.uri, self.transport, self.sent_by, self.branch
        );
        for r in self.routes {
            let _ = write!(text, "Route: {r}\r\n");
        }
        let _ = write!(
            text,
            "From: {}\r\nTo: {}\r\nCall-ID: {}\r\nCSeq: {} {}\r\n",
            self.from, self.to, self.call_id, self.cseq, self.cseq_method
        );
        for (name, value) in self.headers {
            if name.contains([':', '\r', '\n']) || value.contains(['\r', '\n']) {
                return None;
            }
            let _ = write!(text, "{name}: {value}\r\n");
        }
        let _ = write!(text, "User-Agent: {}\r\n", self.user_agent);
        match self.body {
            Some((content_type, body)) => {
                let _ = write!(
                    text,
                    "Content-Type: {content_type}\r\nContent-Length: {}\r\n\r\n{body}",
                    body.len()
                );
            }
            None => text.push_str("Content-Length: 0\r\n\r\n"),
        }
        SipMessage::parse(text.as_bytes()).ok()
    }
}

/// `"Display" <uri>;tag=...` with the display name quoted (RFC 3261 25.1 quoted-string).
pub(crate) fn name_addr(display: Option<&str>, uri: &str, tag: Option<&str>) -> String {
    let mut out = String::with_capacity(uri.len() + 40);
    if let Some(name) = display.filter(|n| !n.is_empty()) {
        out.push('"');
        for c in name.chars().filter(|c| !c.is_control()) {
            if c == '"' || c == '\\' {
                out.push('\\');
            }
            out.push(c);
        }
        out.push_str("\" ");
    }
    out.push('<');
    out.push_str(uri);
    out.push('>');
    if let Some(tag) = tag {
        out.push_str(";tag=");
        out.push_str(tag);
    }
    out
}

/// The CANCEL for `invite` (RFC 3261 9.1): its Request-URI, top Via, Route, From, To, Call-ID
/// and CSeq number, method CANCEL. `None` if the INVITE lacks one of them.
pub(crate) fn cancel_for(invite: &SipMessage, user_agent: &str) -> Option<SipMessage> {
    let h = invite.headers();
    let mut text = format!("CANCEL {} SIP/2.0\r\n", invite.uri()?);
    let _ = write!(text, "Via: {}\r\n", h.list("Via").first()?);
    for r in h.list("Route") {
        let _ = write!(text, "Route: {r}\r\n");
    }
    let _ = write!(
        text,
        "Max-Forwards: 70\r\nFrom: {}\r\nTo: {}\r\nCall-ID: {}\r\nCSeq: {} CANCEL\r\nUser-Agent: {user_agent}\r\nContent-Length: 0\r\n\r\n",
        h.get("From")?,
        h.get("To")?,
        h.get("Call-ID")?,
        invite.cseq()?.seq
    );
    SipMessage::parse(text.as_bytes()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts<'a>(headers: &'a [(&'a str, &'a str)]) -> RequestParts<'a> {
        RequestParts {
            method: "INVITE",
            uri: "sip:1000@192.0.2.9",
            transport: "UDP",
            sent_by: "192.0.2.1:5060".parse().unwrap(),
            branch: "z9hG4bKabc",
            routes: &[],
            from: "<sip:chorus@192.0.2.1>;tag=f1",
            to: "<sip:1000@192.0.2.9>",
            call_id: "c1@chorus",
            cseq: 1,
            cseq_method: "INVITE",
            headers,
            body: Some(("application/sdp", "v=0\r\n")),
            user_agent: "chorus",
        }
    }

    #[test]
    fn builds_a_parsable_invite() {
        let m = parts(&[("Contact", "<sip:chorus@192.0.2.1:5060>")])
            .build()
            .unwrap();
        assert_eq!(m.call_id(), Some("c1@chorus"));
        assert_eq!(m.top_via().unwrap().branch(), Some("z9hG4bKabc"));
        assert_eq!(m.body().as_ref(), b"v=0\r\n");
        assert_eq!(m.content_type(), Some("application/sdp"));
    }

    #[test]
    fn refuses_header_injection() {
        assert!(parts(&[("X-A", "1\r\nX-B: 2")]).build().is_none());
        assert!(parts(&[("X-A: b", "1")]).build().is_none());
    }

    #[test]
    fn quotes_display_names() {
        assert_eq!(
            name_addr(Some("Conf \"A\""), "sip:a@b", Some("t")),
            "\"Conf \\\"A\\\"\" <sip:a@b>;tag=t"
        );
        assert_eq!(name_addr(None, "sip:a@b", None), "<sip:a@b>");
    }

    #[test]
    fn cancel_copies_the_invite() {
        let invite = parts(&[("Route", "<sip:proxy;lr>")]).build().unwrap();
        let c = cancel_for(&invite, "chorus").unwrap();
        assert_eq!(c.method().unwrap().as_str(), "CANCEL");
        assert_eq!(c.top_via(), invite.top_via());
        assert_eq!(c.cseq().unwrap().seq, 1);
        assert_eq!(c.headers().get("Route"), Some("<sip:proxy;lr>"));
        assert!(c.body().is_empty());
    }
}
