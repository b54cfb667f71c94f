//! The flow table: which leg a received packet belongs to, in O(1), without a socket per leg.
//!
//! A core serves all its legs from a few sockets. A flow is keyed by the socket the packet
//! arrived on and the sender's address. When several legs share one key (a load generator or
//! a gateway sending many calls from one address and port), the entry is shared and the
//! packet's SSRC picks the leg.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::net::SocketAddr;

use super::io::SockId;

/// Index of a leg in its core's slab.
pub type LegSlot = u32;

/// A multiply-rotate hasher for small fixed keys on the packet path (the default SipHash
/// costs several times more and its DoS resistance buys nothing for keys the engine chose).
#[derive(Default, Clone, Copy)]
pub struct FastHasher(u64);

impl Hasher for FastHasher {
    fn finish(&self) -> u64 {
        // Final avalanche so that low bits (used by the table) depend on every input bit.
        let mut h = self.0;
        h ^= h >> 33;
        h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
        h ^= h >> 33;
        h
    }

    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.write_u64(u64::from_le_bytes(word));
        }
    }

    fn write_u64(&mut self, v: u64) {
        self.0 = (self.0.rotate_left(5) ^ v).wrapping_mul(0x517c_c1b7_2722_0a95);
    }

    fn write_u32(&mut self, v: u32) {
        self.write_u64(u64::from(v));
    }

    fn write_u16(&mut self, v: u16) {
        self.write_u64(u64::from(v));
    }

    fn write_u8(&mut self, v: u8) {
        self.write_u64(u64::from(v));
    }

    fn write_usize(&mut self, v: usize) {
        self.write_u64(v as u64);
    }
}

/// Builds [`FastHasher`]s.
pub type FastBuild = BuildHasherDefault<FastHasher>;

/// What identifies a flow.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FlowKey {
    /// The local socket.
    pub sock: SockId,
    /// The remote address.
    pub remote: SocketAddr,
}

#[derive(Debug)]
enum FlowEntry {
    One { leg: LegSlot, ssrc: Option<u32> },
    Shared(HashMap<u32, LegSlot, FastBuild>),
}

/// Where a received packet goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// To this leg.
    Leg(LegSlot),
    /// The address's only leg has learned another SSRC: the packet is either that caller's
    /// new stream (an SSRC change) or a second call from the same address and port (a
    /// gateway, or sipp, sending every call from one socket) whose leg waits to latch.
    OtherSsrc(LegSlot),
    /// No leg receives from this address (with this SSRC).
    Unknown,
}

/// Why a flow could not be added.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FlowError {
    /// Another leg already uses this address and one of the two has no known SSRC, so packets
    /// could not be told apart; the leg must learn its SSRC first.
    #[error("flow shared with a leg whose SSRC is unknown")]
    Ambiguous,
    /// Another leg already receives this SSRC from this address.
    #[error("SSRC already used by another leg on this flow")]
    SsrcTaken,
}

/// The flow table of one core.
#[derive(Debug, Default)]
pub struct FlowTable {
    map: HashMap<FlowKey, FlowEntry, FastBuild>,
}

impl FlowTable {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether the table is empty.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Routes packets from `key` (with `ssrc`, when known) to `leg`.
    pub fn insert(
        &mut self,
        key: FlowKey,
        leg: LegSlot,
        ssrc: Option<u32>,
    ) -> Result<(), FlowError> {
        let Some(entry) = self.map.get_mut(&key) else {
            self.map.insert(key, FlowEntry::One { leg, ssrc });
            return Ok(());
        };
        match entry {
            FlowEntry::One {
                leg: other,
                ssrc: other_ssrc,
            } => {
                if *other == leg {
                    *other_ssrc = ssrc.or(*other_ssrc);
                    return Ok(());
                }
                let (Some(a), Some(b)) = (*other_ssrc, ssrc) else {
                    return Err(FlowError::Ambiguous);
                };
                if a == b {
                    return Err(FlowError::SsrcTaken);
                }
                let mut m = HashMap::with_capacity_and_hasher(4, FastBuild::default());
                m.insert(a, *other);
                m.insert(b, leg);
                *entry = FlowEntry::Shared(m);
                Ok(())
            }
            FlowEntry::Shared(m) => {
                let Some(ssrc) = ssrc else {
                    return Err(FlowError::Ambiguous);
                };
                match m.get(&ssrc) {
                    Some(&l) if l != leg => Err(FlowError::SsrcTaken),
                    _ => {
                        m.insert(ssrc, leg);
                        Ok(())
                    }
                }
            }
        }
    }

    /// Removes `leg`'s route from `key` (no-op if it has none).
    pub fn remove(&mut self, key: FlowKey, leg: LegSlot) {
        let Some(entry) = self.map.get_mut(&key) else {
            return;
        };
        match entry {
            FlowEntry::One { leg: l, .. } => {
                if *l == leg {
                    self.map.remove(&key);
                }
            }
            FlowEntry::Shared(m) => {
                m.retain(|_, l| *l != leg);
                if m.len() == 1 {
                    // INVARIANT: len() == 1, so the iterator yields one item.
                    let (&ssrc, &leg) = m.iter().next().expect("one entry");
                    *entry = FlowEntry::One {
                        leg,
                        ssrc: Some(ssrc),
                    };
                } else if m.is_empty() {
                    self.map.remove(&key);
                }
            }
        }
    }

    /// Where a packet from `key` goes. `ssrc` is read from the packet only when the flow's
    /// leg has learned its SSRC or the flow is shared.
    pub fn lookup(&self, key: &FlowKey, ssrc: impl FnOnce() -> Option<u32>) -> Route {
        match self.map.get(key) {
            None => Route::Unknown,
            Some(FlowEntry::One { leg, ssrc: None }) => Route::Leg(*leg),
            Some(FlowEntry::One {
                leg,
                ssrc: Some(known),
            }) => match ssrc() {
                Some(s) if s != *known => Route::OtherSsrc(*leg),
                _ => Route::Leg(*leg),
            },
            Some(FlowEntry::Shared(m)) => match ssrc().and_then(|s| m.get(&s)) {
                Some(&leg) => Route::Leg(leg),
                None => Route::Unknown,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(port: u16) -> FlowKey {
        FlowKey {
            sock: SockId(0),
            remote: SocketAddr::from(([127, 0, 0, 1], port)),
        }
    }

    #[test]
    fn one_leg_per_address() {
        let mut t = FlowTable::new();
        t.insert(key(1), 7, None).unwrap();
        t.insert(key(2), 8, None).unwrap();
        assert_eq!(t.lookup(&key(1), || None), Route::Leg(7));
        assert_eq!(t.lookup(&key(2), || None), Route::Leg(8));
        assert_eq!(t.lookup(&key(3), || None), Route::Unknown);
        t.remove(key(1), 7);
        assert_eq!(t.lookup(&key(1), || None), Route::Unknown);
    }

    #[test]
    fn shared_address_split_by_ssrc() {
        let mut t = FlowTable::new();
        t.insert(key(1), 1, Some(0xaaaa)).unwrap();
        t.insert(key(1), 2, Some(0xbbbb)).unwrap();
        assert_eq!(t.lookup(&key(1), || Some(0xaaaa)), Route::Leg(1));
        assert_eq!(t.lookup(&key(1), || Some(0xbbbb)), Route::Leg(2));
        assert_eq!(t.lookup(&key(1), || Some(0xcccc)), Route::Unknown);
        assert_eq!(t.lookup(&key(1), || None), Route::Unknown);
        assert_eq!(t.insert(key(1), 3, Some(0xaaaa)), Err(FlowError::SsrcTaken));
        assert_eq!(t.insert(key(1), 3, None), Err(FlowError::Ambiguous));
        t.remove(key(1), 1);
        // Back to a single owner: its own SSRC reaches it, another is flagged (a new stream
        // of the same caller, or a second call from the same address).
        assert_eq!(t.lookup(&key(1), || Some(0xbbbb)), Route::Leg(2));
        assert_eq!(t.lookup(&key(1), || Some(0x1234)), Route::OtherSsrc(2));
        t.remove(key(1), 2);
        assert!(t.is_empty());
    }

    #[test]
    fn unknown_ssrc_cannot_share() {
        let mut t = FlowTable::new();
        t.insert(key(1), 1, None).unwrap();
        assert_eq!(t.insert(key(1), 2, Some(5)), Err(FlowError::Ambiguous));
        // Learning the first leg's SSRC makes sharing possible.
        t.insert(key(1), 1, Some(4)).unwrap();
        t.insert(key(1), 2, Some(5)).unwrap();
        assert_eq!(t.lookup(&key(1), || Some(5)), Route::Leg(2));
    }

    #[test]
    fn hasher_spreads_ports() {
        use std::hash::BuildHasher;
        let b = FastBuild::default();
        let mut low_bits = std::collections::HashSet::new();
        for p in 0..1024u16 {
            low_bits.insert(b.hash_one(key(p)) & 0x3ff);
        }
        // A good spread fills most of the 1024 buckets (random: about 632).
        assert!(low_bits.len() > 550, "{}", low_bits.len());
    }
}
