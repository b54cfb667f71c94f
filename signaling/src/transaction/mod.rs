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
