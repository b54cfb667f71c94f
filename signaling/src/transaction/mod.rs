//! RFC 3261 section 17 transactions, sans-IO, with timers A-K.
