//! A deterministic xorshift generator for robustness tests (no `rand` dependency).

/// Marsaglia's xorshift64: fast, seeded, reproducible noise for tests.
#[derive(Debug, Clone)]
pub(crate) struct Xorshift(u64);

impl Xorshift {
    pub(crate) fn new(seed: u64) -> Self {
        // A zero state would stay zero forever.
        Self(seed | 1)
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    /// A value in `0..n` (n > 0).
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    /// True with probability `percent` / 100.
    pub(crate) fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    pub(crate) fn fill(&mut self, buf: &mut [u8]) {
        for b in buf {
            *b = self.next_u64() as u8;
        }
    }

    /// Flips 1 to 4 random bytes of `buf` to random values.
    pub(crate) fn mutate(&mut self, buf: &mut [u8]) {
        if buf.is_empty() {
            return;
        }
        for _ in 0..=self.below(4) {
            let i = self.below(buf.len() as u64) as usize;
            buf[i] = self.next_u64() as u8;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn is_deterministic_and_spreads() {
        let mut a = Xorshift::new(7);
        let mut b = Xorshift::new(7);
        let xs: Vec<_> = (0..100).map(|_| a.next_u64()).collect();
        let ys: Vec<_> = (0..100).map(|_| b.next_u64()).collect();
        assert_eq!(xs, ys);
        let mut seen = [false; 10];
        for _ in 0..1_000 {
            seen[a.below(10) as usize] = true;
        }
        assert!(seen.iter().all(|&s| s));
    }
}
