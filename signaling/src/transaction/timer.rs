//! The RFC 3261 section 17 transaction timers, and why a layer timeout is due.

use super::timer_table::TimerSlot;
use super::transaction_id::TransactionId;

/// A transaction timer (RFC 3261 17 and Table 4; L and M from RFC 6026).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Timer {
    /// INVITE client: request retransmission (unreliable transports).
    A,
    /// INVITE client: transaction timeout in Calling.
    B,
    /// INVITE client: wait for response retransmissions in Completed.
    D,
    /// Non-INVITE client: request retransmission (unreliable transports).
    E,
    /// Non-INVITE client: transaction timeout.
    F,
    /// INVITE server: final response retransmission (unreliable transports).
    G,
    /// INVITE server: wait for ACK in Completed.
    H,
    /// INVITE server: wait for ACK retransmissions in Confirmed.
    I,
    /// Non-INVITE server: wait for request retransmissions in Completed.
    J,
    /// Non-INVITE client: wait for response retransmissions in Completed.
    K,
    /// INVITE server (RFC 6026): wait for INVITE retransmissions in Accepted.
    L,
    /// INVITE client (RFC 6026): wait for 2xx retransmissions in Accepted.
    M,
    /// INVITE server: send `100 Trying` if the TU has not responded (RFC 3261 17.2.1).
    Trying100,
}

/// Number of [`Timer`] variants (the size of a transaction's timer table).
pub const TIMER_COUNT: usize = 13;

impl Timer {
    /// Every timer, in index order.
    pub const ALL: [Timer; TIMER_COUNT] = [
        Timer::A,
        Timer::B,
        Timer::D,
        Timer::E,
        Timer::F,
        Timer::G,
        Timer::H,
        Timer::I,
        Timer::J,
        Timer::K,
        Timer::L,
        Timer::M,
        Timer::Trying100,
    ];
}

impl TimerSlot for Timer {
    fn index(self) -> usize {
        self as usize
    }
}

/// Why [`TransactionLayer::poll_timeout`](super::TransactionLayer::poll_timeout) asks to be
/// woken: which timer of which transaction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimerReason {
    /// The transaction the timer belongs to.
    pub id: TransactionId,
    /// The timer.
    pub timer: Timer,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_is_in_index_order() {
        for (i, t) in Timer::ALL.iter().enumerate() {
            assert_eq!(t.index(), i);
        }
    }
}
