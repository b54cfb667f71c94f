//! The handle naming one transaction.

/// Names one client or server transaction of a [`TransactionLayer`](super::TransactionLayer).
///
/// Ids are never reused within a layer, so a stale id simply finds nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TransactionId(pub u64);
