//! RFC 4475 torture tests.
