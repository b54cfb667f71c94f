//! Fuzzes SRTP/SRTCP unprotect and trial authentication with every suite: hostile bytes must
//! give an error, never a panic or an out-of-bounds access.
#![no_main]

use chorus_engine::srtp::{SrtpContext, SrtpSuite};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, packet)) = data.split_first() else {
        return;
    };
    let suite = SrtpSuite::ALL[usize::from(selector) % SrtpSuite::ALL.len()];
    let key = vec![0x42; suite.master_key_len()];
    let salt = vec![0x24; suite.master_salt_len()];
    let mut ctx = SrtpContext::new(suite, &key, &salt).expect("valid key");
    std::hint::black_box(ctx.authenticates_rtp(packet));
    let mut buf = packet.to_vec();
    if selector & 0x80 == 0 {
        let _ = ctx.unprotect_rtp(&mut buf);
    } else {
        let _ = ctx.unprotect_rtcp(&mut buf);
    }
    // Protecting arbitrary bytes as if they were RTP/RTCP must also fail cleanly.
    let mut out = packet.to_vec();
    let len = out.len();
    out.resize(len + 32, 0);
    let _ = ctx.protect_rtp(&mut out, len);
    let _ = ctx.protect_rtcp(&mut out, len);
});
