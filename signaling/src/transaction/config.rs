//! Timer values and bounds of a transaction layer.

use std::time::Duration;

/// Timer values (RFC 3261 Table 4) and the table bound of a
/// [`TransactionLayer`](super::TransactionLayer).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// RTT estimate, 500 ms by default.
    pub t1: Duration,
    /// Maximum retransmit interval for non-INVITE requests and INVITE responses, 4 s.
    pub t2: Duration,
    /// Maximum duration a message remains in the network, 5 s.
    pub t4: Duration,
    /// Timer D on unreliable transports (RFC 3261: at least 32 s).
    pub timer_d: Duration,
    /// How long an INVITE server transaction waits for the TU before sending `100 Trying`
    /// itself (RFC 3261 17.2.1: 200 ms).
    pub trying_delay: Duration,
    /// Maximum number of live transactions (client and server together).
    pub max_transactions: usize,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            t1: Duration::from_millis(500),
            t2: Duration::from_secs(4),
            t4: Duration::from_secs(5),
            timer_d: Duration::from_secs(32),
            trying_delay: Duration::from_millis(200),
            max_transactions: 100_000,
        }
    }
}

impl Config {
    /// 64*T1: timers B, F, H, J, L and M.
    pub fn timeout(&self) -> Duration {
        self.t1 * 64
    }
}
