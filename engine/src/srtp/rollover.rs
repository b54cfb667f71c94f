//! Packet index estimation from the 16-bit sequence number (RFC 3711 §3.3.1
//! and Appendix A).

use super::error::SrtpError;

/// Largest valid SRTP packet index, `2^48 - 1`.
pub(crate) const MAX_SRTP_INDEX: u64 = (1 << 48) - 1;

/// The 48-bit index `v * 2^16 + SEQ` of RFC 3711 Appendix A, where `v` is
/// ROC-1, ROC or ROC+1 relative to the highest index seen so far (`s_l` and
/// ROC are its low 16 and high 32 bits).
///
/// Fails with `TooOld` when the guess would be `ROC - 1` with ROC = 0 (a
/// packet from before the stream began), and with `KeyLifetimeExhausted`
/// when the ROC would pass 2^32 - 1.
pub(crate) fn estimate_index(highest: u64, seq: u16) -> Result<u64, SrtpError> {
    const HALF: u16 = 0x8000;
    let roc = highest >> 16;
    // Truncation intended: s_l is the low 16 bits of the index.
    let s_l = highest as u16;
    let v = if s_l < HALF {
        if seq > s_l && seq - s_l > HALF {
            roc.checked_sub(1).ok_or(SrtpError::TooOld)?
        } else {
            roc
        }
    } else if s_l - HALF > seq {
        roc + 1
    } else {
        roc
    };
    let index = (v << 16) | u64::from(seq);
    if index > MAX_SRTP_INDEX {
        return Err(SrtpError::KeyLifetimeExhausted);
    }
    Ok(index)
}

/// The rollover counter of a packet index.
pub(crate) fn roc_of(index: u64) -> u32 {
    // Truncation intended: indices are at most 48 bits, so this is exact.
    (index >> 16) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The reference: of the three candidate indices, the one nearest the
    /// highest index seen, ties going to the current ROC (Appendix A's
    /// inequalities are strict); `None` if that ROC is out of range.
    fn nearest(highest: u64, seq: u16) -> Option<u64> {
        let roc = i64::try_from(highest >> 16).unwrap();
        let highest = i64::try_from(highest).unwrap();
        let (v, candidate) = [roc, roc - 1, roc + 1]
            .into_iter()
            .map(|v| (v, v * 65_536 + i64::from(seq)))
            .min_by_key(|&(_, c)| (c - highest).abs())?;
        (0..=i64::from(u32::MAX))
            .contains(&v)
            .then(|| u64::try_from(candidate).unwrap())
    }

    /// Every sequence number against highest indices `(roc, s_l)`, checked
    /// against the nearest-candidate reference.
    fn sweep(rocs: &[u64], s_ls: &[u16]) {
        for &roc in rocs {
            for &s_l in s_ls {
                let highest = (roc << 16) | u64::from(s_l);
                for seq in 0..=u16::MAX {
                    let got = estimate_index(highest, seq);
                    match nearest(highest, seq) {
                        Some(want) if want <= MAX_SRTP_INDEX => {
                            assert_eq!(got, Ok(want), "highest {highest:#x} seq {seq:#x}")
                        }
                        _ => assert!(got.is_err(), "highest {highest:#x} seq {seq:#x}"),
                    }
                }
            }
        }
    }

    /// Exhaustive over the sequence number, for a spread of `s_l` around
    /// the wrap and half-way points and the first, an ordinary and the last
    /// ROC.
    #[test]
    fn sweep_matches_nearest_candidate() {
        let mut s_ls: Vec<u16> = (0..=u16::MAX).step_by(4099).collect();
        s_ls.extend([0, 1, 0x7ffe, 0x7fff, 0x8000, 0x8001, 0xfffe, 0xffff]);
        sweep(&[0, 0x1234, u64::from(u32::MAX)], &s_ls);
    }

    /// Every `(s_l, seq)` pair, 2^32 cases: run on purpose with
    /// `cargo test --release -- --ignored stress_`.
    #[test]
    #[ignore]
    fn stress_sweep_every_s_l() {
        let s_ls: Vec<u16> = (0..=u16::MAX).collect();
        sweep(&[0, 1, u64::from(u32::MAX)], &s_ls);
    }

    #[test]
    fn appendix_a_edges() {
        // Just past a wrap: an old packet from the previous ROC.
        assert_eq!(estimate_index(0x1_0002, 0xfffe), Ok(0xfffe));
        // Just before a wrap: the next packet starts the next ROC.
        assert_eq!(estimate_index(0x0_fffe, 0x0001), Ok(0x1_0001));
        // Exactly half a cycle apart stays in the same ROC.
        assert_eq!(estimate_index(0x1_0000, 0x8000), Ok(0x1_8000));
        assert_eq!(estimate_index(0x1_8000, 0x0000), Ok(0x1_0000));
        // ROC 0 cannot go back.
        assert_eq!(estimate_index(0x0_0010, 0xfff0), Err(SrtpError::TooOld));
        // ROC cannot pass 2^32 - 1.
        assert_eq!(
            estimate_index(MAX_SRTP_INDEX, 0x0000),
            Err(SrtpError::KeyLifetimeExhausted)
        );
        assert_eq!(roc_of(0xabcd_1234_5678), 0xabcd_1234);
    }
}
