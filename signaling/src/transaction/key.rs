//! Transaction keys: how requests and responses find their transaction (RFC 3261 17.1.3,
//! 17.2.3) and how merged requests are recognised (RFC 3261 8.2.2.2).

use super::message::TxMessage;
use super::method::Method;

/// The branch prefix that marks an RFC 3261 branch (RFC 3261 8.1.1.7).
pub const MAGIC_COOKIE: &str = "z9hG4bK";

/// Whether `branch` is an RFC 3261 branch (starts with the magic cookie).
pub fn is_rfc3261_branch(branch: &str) -> bool {
    branch.starts_with(MAGIC_COOKIE)
}

/// The fields an RFC 2543 peer's request is matched on (RFC 3261 17.2.3, last paragraphs),
/// without the To tag, which is compared after the lookup (see [`ServerKey`]).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Rfc2543Key {
    /// The Request-URI.
    pub request_uri: String,
    /// The From tag (often empty for RFC 2543 peers).
    pub from_tag: String,
    /// The Call-ID.
    pub call_id: String,
    /// The CSeq number (the method is part of [`ServerKey`]).
    pub cseq: u32,
    /// The whole top Via header value.
    pub top_via: String,
}

impl Rfc2543Key {
    /// Extracts the RFC 2543 matching fields from a request.
    pub fn of<M>(msg: &TxMessage<M>) -> Self {
        Self {
            request_uri: msg.request_uri.clone(),
            from_tag: msg.from_tag.clone(),
            call_id: msg.call_id.clone(),
            cseq: msg.cseq,
            top_via: msg.top_via.clone(),
        }
    }

    /// The To tag rule of RFC 3261 17.2.3 for RFC 2543 requests, applied once the rest of the
    /// key matched: a request matches if its To tag equals the original request's; an ACK
    /// matches if its To tag equals the To tag of the response the server transaction sent
    /// (or the request's, for a re-INVITE that already carried one).
    pub fn to_tag_matches(
        is_ack: bool,
        incoming: Option<&str>,
        request_to_tag: Option<&str>,
        response_to_tag: Option<&str>,
    ) -> bool {
        if is_ack {
            incoming == response_to_tag || (request_to_tag.is_some() && incoming == request_to_tag)
        } else {
            incoming == request_to_tag
        }
    }
}

/// The key of a server transaction (RFC 3261 17.2.3).
///
/// ACK is keyed as INVITE so it finds the INVITE server transaction it acknowledges; CANCEL
/// keeps its own method, so it gets its own server transaction, and
/// [`ServerKey::with_method`] gives the key of the INVITE it cancels.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum ServerKey {
    /// RFC 3261: branch (with the magic cookie), sent-by of the top Via, method.
    Branch {
        /// The top Via branch.
        branch: String,
        /// The top Via sent-by.
        sent_by: String,
        /// The method, ACK mapped to INVITE.
        method: Method,
    },
    /// RFC 2543 compatibility: no magic cookie in the branch.
    Rfc2543 {
        /// The matching fields other than the To tag.
        key: Rfc2543Key,
        /// The method, ACK mapped to INVITE.
        method: Method,
    },
}

impl ServerKey {
    /// The key of an incoming request.
    ///
    /// A branch without the magic cookie is matched the RFC 2543 way; the caller then must have
    /// filled in [`TxMessage::request_uri`] and [`TxMessage::top_via`].
    pub fn of_request<M>(msg: &TxMessage<M>) -> Self {
        let method = match msg.method() {
            Some(Method::Ack) | None => Method::Invite,
            Some(m) => m.clone(),
        };
        if is_rfc3261_branch(&msg.branch) {
            Self::Branch {
                branch: msg.branch.clone(),
                sent_by: msg.sent_by.clone(),
                method,
            }
        } else {
            Self::Rfc2543 {
                key: Rfc2543Key::of(msg),
                method,
            }
        }
    }

    /// The same key with another method: a CANCEL's key with `Method::Invite` is the key of the
    /// INVITE it cancels (RFC 3261 9.2).
    pub fn with_method(&self, method: Method) -> Self {
        match self {
            Self::Branch {
                branch, sent_by, ..
            } => Self::Branch {
                branch: branch.clone(),
                sent_by: sent_by.clone(),
                method,
            },
            Self::Rfc2543 { key, .. } => Self::Rfc2543 {
                key: key.clone(),
                method,
            },
        }
    }

    /// Whether this is an RFC 2543 key (the To tag must be checked after lookup).
    pub fn is_rfc2543(&self) -> bool {
        matches!(self, Self::Rfc2543 { .. })
    }
}

/// The key of a client transaction (RFC 3261 17.1.3): top Via branch and CSeq method.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ClientKey {
    /// The branch the client put in its top Via.
    pub branch: String,
    /// The CSeq method.
    pub method: Method,
}

impl ClientKey {
    /// The key of an outgoing request or an incoming response.
    pub fn of<M>(msg: &TxMessage<M>) -> Self {
        Self {
            branch: msg.branch.clone(),
            method: msg.cseq_method.clone(),
        }
    }
}

/// What two requests share when they are the same request forked and merged back (RFC 3261
/// 8.2.2.2): From tag, Call-ID and CSeq, looked at only for requests without a To tag.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct MergeKey {
    /// The From tag.
    pub from_tag: String,
    /// The Call-ID.
    pub call_id: String,
    /// The CSeq number.
    pub cseq: u32,
    /// The CSeq method (a CANCEL shares the rest with its INVITE and is not a merge).
    pub method: Method,
}

impl MergeKey {
    /// The merge key of an out-of-dialog request (no To tag) other than ACK; `None` otherwise.
    pub fn of<M>(msg: &TxMessage<M>) -> Option<Self> {
        if msg.to_tag.is_some() || msg.method() == Some(&Method::Ack) {
            return None;
        }
        Some(Self {
            from_tag: msg.from_tag.clone(),
            call_id: msg.call_id.clone(),
            cseq: msg.cseq,
            method: msg.cseq_method.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transaction::message::TxKind;

    fn request(method: Method, branch: &str) -> TxMessage<()> {
        TxMessage {
            kind: TxKind::Request {
                method: method.clone(),
            },
            branch: branch.into(),
            sent_by: "192.0.2.1:5060".into(),
            cseq_method: method,
            cseq: 7,
            call_id: "c1".into(),
            from_tag: "f1".into(),
            to_tag: None,
            request_uri: "sip:bob@example.com".into(),
            top_via: "SIP/2.0/UDP 192.0.2.1:5060".into(),
            payload: (),
        }
    }

    #[test]
    fn ack_keys_as_invite_and_cancel_finds_its_invite() {
        let invite = ServerKey::of_request(&request(Method::Invite, "z9hG4bKa"));
        let ack = ServerKey::of_request(&request(Method::Ack, "z9hG4bKa"));
        let cancel = ServerKey::of_request(&request(Method::Cancel, "z9hG4bKa"));
        assert_eq!(invite, ack);
        assert_ne!(invite, cancel);
        assert_eq!(cancel.with_method(Method::Invite), invite);
    }

    #[test]
    fn sent_by_is_part_of_the_key() {
        let a = request(Method::Options, "z9hG4bKa");
        let mut b = a.clone();
        b.sent_by = "192.0.2.2:5060".into();
        assert_ne!(ServerKey::of_request(&a), ServerKey::of_request(&b));
    }

    #[test]
    fn cookieless_branch_uses_rfc2543_fields() {
        let a = request(Method::Invite, "1234");
        let key = ServerKey::of_request(&a);
        assert!(key.is_rfc2543());
        let mut b = a.clone();
        b.branch = "5678".into();
        // The branch plays no part; the top Via (which holds it) does.
        assert_eq!(ServerKey::of_request(&b), key);
        b.top_via = "SIP/2.0/UDP 192.0.2.9".into();
        assert_ne!(ServerKey::of_request(&b), key);
    }

    #[test]
    fn rfc2543_to_tag_rule() {
        assert!(Rfc2543Key::to_tag_matches(false, None, None, Some("t")));
        assert!(!Rfc2543Key::to_tag_matches(
            false,
            Some("t"),
            None,
            Some("t")
        ));
        assert!(Rfc2543Key::to_tag_matches(true, Some("t"), None, Some("t")));
        assert!(!Rfc2543Key::to_tag_matches(
            true,
            Some("u"),
            None,
            Some("t")
        ));
        assert!(Rfc2543Key::to_tag_matches(
            true,
            Some("d"),
            Some("d"),
            Some("d")
        ));
    }

    #[test]
    fn merge_key_only_without_to_tag() {
        let mut a = request(Method::Invite, "z9hG4bKa");
        assert!(MergeKey::of(&a).is_some());
        assert!(MergeKey::of(&request(Method::Ack, "z9hG4bKa")).is_none());
        a.to_tag = Some("t".into());
        assert!(MergeKey::of(&a).is_none());
    }
}
