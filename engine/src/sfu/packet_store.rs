//! The bounded packet store of one incoming stream, for retransmissions.

use crate::rtp::SeqNo;

/// A ring of the last `capacity` packets of one incoming stream, indexed by extended
/// sequence number modulo the capacity (a power of two). Memory is allocated once; storing a
/// packet copies it into its slot and overwrites whatever older packet had that index.
///
/// One store per producer encoding serves every consumer of it: a consumer's send history
/// remembers which source packet each of its sequence numbers carried, and a retransmission
/// reads the bytes here.
#[derive(Debug)]
pub struct PacketStore {
    slot_len: usize,
    mask: u64,
    data: Box<[u8]>,
    slots: Box<[Slot]>,
}

#[derive(Debug, Clone, Copy, Default)]
struct Slot {
    /// Extended sequence number + 1 of the packet held (0: empty).
    seq_plus_one: u64,
    len: u16,
}

impl PacketStore {
    /// A store for `capacity` packets (rounded up to a power of two, at least 1) of at most
    /// `slot_len` bytes each.
    pub fn new(capacity: usize, slot_len: usize) -> Self {
        let capacity = capacity.max(1).next_power_of_two();
        let slot_len = slot_len.min(usize::from(u16::MAX));
        Self {
            slot_len,
            mask: capacity as u64 - 1,
            data: vec![0; capacity * slot_len].into_boxed_slice(),
            slots: vec![Slot::default(); capacity].into_boxed_slice(),
        }
    }

    /// How many packets the store holds at most.
    pub fn capacity(&self) -> usize {
        self.slots.len()
    }

    fn index(&self, seq: SeqNo) -> usize {
        // The mask keeps the value below capacity, which fits usize.
        (seq.0 & self.mask) as usize
    }

    /// Stores `packet` as sequence number `seq`. Refuses (false) a packet longer than a slot.
    pub fn insert(&mut self, seq: SeqNo, packet: &[u8]) -> bool {
        if packet.len() > self.slot_len {
            return false;
        }
        let i = self.index(seq);
        let start = i * self.slot_len;
        let (Some(dst), Some(slot)) = (
            self.data.get_mut(start..start + packet.len()),
            self.slots.get_mut(i),
        ) else {
            return false;
        };
        dst.copy_from_slice(packet);
        *slot = Slot {
            seq_plus_one: seq.0.wrapping_add(1),
            // slot_len <= u16::MAX, checked in new().
            len: packet.len() as u16,
        };
        true
    }

    /// The packet stored as `seq`, if it is still held.
    pub fn get(&self, seq: SeqNo) -> Option<&[u8]> {
        let i = self.index(seq);
        let slot = self.slots.get(i)?;
        if slot.seq_plus_one != seq.0.wrapping_add(1) {
            return None;
        }
        let start = i * self.slot_len;
        self.data.get(start..start + usize::from(slot.len))
    }

    /// Whether `seq` is held.
    pub fn contains(&self, seq: SeqNo) -> bool {
        self.get(seq).is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_the_last_capacity_packets_across_the_16_bit_wrap() {
        let mut s = PacketStore::new(100, 32);
        assert_eq!(s.capacity(), 128);
        let start = 65_500u64;
        for i in 0..1_000u64 {
            let seq = SeqNo(start + i);
            assert!(s.insert(seq, &seq.0.to_be_bytes()));
        }
        let last = start + 999;
        for seq in start..=last {
            let held = s.get(SeqNo(seq));
            if seq + 128 > last {
                assert_eq!(held, Some(&seq.to_be_bytes()[..]));
            } else {
                assert_eq!(held, None, "{seq} was overwritten");
            }
        }
        // Same slot, other cycle: not a false hit.
        assert!(!s.contains(SeqNo(last + 128)));
        assert!(!s.insert(SeqNo(1), &[0; 33]));
        assert!(s.insert(SeqNo(1), &[]));
        assert_eq!(s.get(SeqNo(1)), Some(&[][..]));
    }
}
