//! Tokens for tags, branches and Call-IDs, and random values for what must be unpredictable.
//!
//! Tags, branches and Call-IDs need to be unique, not secret (RFC 3261 19.3 asks for global
//! uniqueness and some randomness): a keyed hash of a counter gives both for the price of one
//! hash. Digest cnonces and nonce keys come from the system's CSPRNG ([`random_bytes`]).

use std::hash::{BuildHasher, Hasher};

/// A source of unique, random-looking tokens (one per user agent).
#[derive(Debug)]
pub struct Tokens {
    seed: u64,
    counter: u64,
}

impl Default for Tokens {
    fn default() -> Self {
        Self::new()
    }
}

impl Tokens {
    /// Seeded from the process's random hasher keys.
    pub fn new() -> Self {
        Tokens {
            seed: std::collections::hash_map::RandomState::new()
                .build_hasher()
                .finish(),
            counter: 0,
        }
    }

    /// The next value.
    pub fn next_u64(&mut self) -> u64 {
        self.counter += 1;
        let mut h = std::collections::hash_map::DefaultHasher::new();
        h.write_u64(self.seed);
        h.write_u64(self.counter);
        h.finish()
    }

    /// The next value as 16 hex digits (a tag, a branch suffix, a Call-ID's local part).
    pub fn next_hex(&mut self) -> String {
        format!("{:016x}", self.next_u64())
    }
}

/// `N` bytes from the system's CSPRNG; zeros (and an error log) if it fails, which on Linux
/// it does not once the kernel has entropy.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut out = [0u8; N];
    if let Err(e) = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut out) {
        tracing::error!(error = %e, "no system randomness");
    }
    out
}

/// `N` random bytes as hex (digest cnonces).
pub fn random_hex<const N: usize>() -> String {
    random_bytes::<N>()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_unique_and_random_looking() {
        let mut a = Tokens::new();
        let seen: std::collections::HashSet<_> = (0..10_000).map(|_| a.next_hex()).collect();
        assert_eq!(seen.len(), 10_000);
        let mut b = Tokens::new();
        assert_ne!(a.next_hex(), b.next_hex(), "two agents, two sequences");
        assert_eq!(random_hex::<8>().len(), 16);
        assert_ne!(random_bytes::<16>(), random_bytes::<16>());
    }
}
