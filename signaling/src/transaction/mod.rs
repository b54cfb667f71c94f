//! RFC 3261 section 17 transactions, sans-IO, with timers A-M.
//!
//! [`TransactionLayer`] holds every client and server transaction of an endpoint. It works on
//! [`TxMessage`], a small description the caller extracts from its parsed message (kind,
//! top-Via branch and sent-by, CSeq, Call-ID, tags), carrying the message itself as an opaque
//! payload `M`. The layer needs two messages it cannot get from the TU at the right moment,
//! the ACK for a non-2xx final response and the automatic `100 Trying`; the payload type
//! builds them through [`TxPayload`], so no state machine waits on a round trip to the TU.
//!
//! Run loop: feed input (`handle_request`, `handle_response`, `respond`, `send_request`,
//! `handle_timeout`, `handle_transport_error`), then drain `poll_transmit` and `poll_event`,
//! then sleep until `poll_timeout`. [`Uas2xxRetransmitter`] is the separate machine for the
//! UAS core's 2xx retransmissions (RFC 3261 13.3.1.4), for the dialog layer.
//!
//! Who answers what: a retransmitted request is absorbed and its last response re-sent by the
//! layer; an ACK for a non-2xx is absorbed; an ACK for a 2xx, a merged request (482) and an
//! overloaded table (503) are the TU's, as [`RequestDisposition`] says. RFC 6026 applies: a 2xx
//! moves an INVITE server transaction to Accepted (timer L) and an INVITE client transaction to
//! Accepted (timer M), where every 2xx retransmission still reaches the TU.
//!
//! ```
//! use std::time::Instant;
//! use chorus_signaling::transaction::{
//!     Config, Method, RequestDisposition, TransactionError, TransactionLayer, TxKind,
//!     TxMessage, TxPayload,
//! };
//!
//! /// The caller's message; here just its text.
//! #[derive(Clone)]
//! struct Wire(String);
//!
//! impl TxPayload for Wire {
//!     fn ack_for_non2xx(request: &TxMessage<Self>, response: &TxMessage<Self>) -> Self {
//!         Wire(format!("ACK for {:?}", response.status()))
//!     }
//!     fn trying_for(request: &TxMessage<Self>) -> Self {
//!         Wire("SIP/2.0 100 Trying".into())
//!     }
//! }
//!
//! let mut layer = TransactionLayer::new(Config::default());
//! let now = Instant::now();
//! let options = TxMessage {
//!     kind: TxKind::Request { method: Method::Options },
//!     branch: "z9hG4bK74bf9".into(),
//!     sent_by: "192.0.2.4:5060".into(),
//!     cseq_method: Method::Options,
//!     cseq: 1,
//!     call_id: "a84b4c76e66710".into(),
//!     from_tag: "9fxced76sl".into(),
//!     to_tag: None,
//!     request_uri: "sip:chorus.example".into(),
//!     top_via: String::new(),
//!     payload: Wire("OPTIONS sip:chorus.example SIP/2.0".into()),
//! };
//! if let RequestDisposition::New { id } = layer.handle_request(now, &options, false)? {
//!     let ok = TxMessage {
//!         kind: TxKind::Response { status: 200 },
//!         to_tag: Some("b1".into()),
//!         payload: Wire("SIP/2.0 200 OK".into()),
//!         ..options.clone()
//!     };
//!     layer.respond(now, id, ok)?;
//! }
//! // Drain, then sleep until the next deadline and call handle_timeout.
//! while let Some(transmit) = layer.poll_transmit() {
//!     assert_eq!(transmit.message.status(), Some(200));
//! }
//! while let Some(_event) = layer.poll_event() {}
//! let (deadline, reason) = layer.poll_timeout().expect("timer J");
//! layer.handle_timeout(deadline);
//! assert!(layer.is_empty());
//! # let _ = reason;
//! # Ok::<(), TransactionError>(())
//! ```

mod client_transaction;
mod config;
mod key;
mod layer;
mod message;
mod method;
mod outbox;
mod server_transaction;
mod timer;
mod timer_table;
mod transaction_id;
mod uas_2xx_retransmitter;

pub use client_transaction::ClientState;
pub use config::Config;
pub use key::{ClientKey, MAGIC_COOKIE, MergeKey, Rfc2543Key, ServerKey, is_rfc3261_branch};
pub use layer::{RequestDisposition, TransactionLayer};
pub use message::{TxKind, TxMessage, TxPayload};
pub use method::Method;
pub use outbox::{Transmit, TxEvent};
pub use server_transaction::ServerState;
pub use timer::{Timer, TimerReason};
pub use timer_table::{TimerSlot, TimerTable};
pub use transaction_id::TransactionId;
pub use uas_2xx_retransmitter::{
    AckKey, Uas2xxEvent, Uas2xxRetransmitter, Uas2xxTimer, Uas2xxTransmit,
};

/// Misuse of the transaction layer (bad input from the network is never an `Err`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransactionError {
    /// A response was given where a request was expected.
    #[error("expected a SIP request, got a response")]
    NotARequest,
    /// A request was given where a response was expected.
    #[error("expected a SIP response, got a request")]
    NotAResponse,
    /// A response status outside 100..=699.
    #[error("status {0} is outside 100..=699")]
    InvalidStatus(u16),
    /// No live transaction has this id (it may have terminated).
    #[error("no live transaction {0:?}")]
    UnknownTransaction(TransactionId),
    /// `respond` was called on a client transaction.
    #[error("transaction {0:?} is a client transaction")]
    NotAServerTransaction(TransactionId),
    /// The server transaction cannot send this status in its state (e.g. a second final).
    #[error("transaction {id:?} cannot send status {status} in its current state")]
    WrongState {
        /// The server transaction.
        id: TransactionId,
        /// The status the TU tried to send.
        status: u16,
    },
    /// ACK is never sent through a client transaction.
    #[error("ACK is not sent through a client transaction")]
    AckIsNotATransaction,
    /// A client transaction with this branch and CSeq method already exists.
    #[error("a client transaction with branch {0} already exists")]
    DuplicateBranch(String),
    /// The transaction table is full.
    #[error("transaction table is full ({0} transactions)")]
    Overloaded(usize),
}
