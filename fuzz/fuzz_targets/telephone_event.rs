//! Fuzzes RFC 4733 handling: the event payload parser and the DTMF receiver fed a stream of
//! packets (timestamp, time step, payload) with timeouts in between. A receiver never panics,
//! reports at most one event per packet or timeout, and is idle after a long silence.
#![no_main]

use std::time::{Duration, Instant};

use chorus_engine::rtp::TelephoneEvent;
use chorus_engine::runtime::DtmfReceiver;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(e) = TelephoneEvent::parse(data) {
        let mut out = [0u8; 4];
        assert_eq!(e.write(&mut out), Ok(4));
        let again = TelephoneEvent::parse(&out).expect("written blocks parse");
        assert_eq!((again.event, again.end, again.duration), (e.event, e.end, e.duration));
    }

    // Records of 8 bytes: 2 timestamp bytes (small range, so events repeat), 1 time step in
    // 10 ms units, 1 length (0-4 payload bytes, so short payloads occur), 4 payload bytes.
    let mut rx = DtmfReceiver::new();
    let mut now = Instant::now();
    let mut inputs = 0usize;
    let mut reports = 0usize;
    for rec in data.chunks_exact(8) {
        now += Duration::from_millis(u64::from(rec[2]) * 10);
        rx.handle_timeout(now);
        let timestamp = u32::from(u16::from_be_bytes([rec[0], rec[1]])) * 160;
        let rate = if rec[3] & 0x80 != 0 { 48_000 } else { 8000 };
        let len = usize::from(rec[3] & 0x07).min(4);
        let _ = rx.handle_packet(now, timestamp, rate, &rec[4..4 + len]);
        inputs += 2;
        while rx.poll_report().is_some() {
            reports += 1;
        }
        assert!(reports <= inputs);
    }
    rx.handle_timeout(now + Duration::from_secs(10));
    while rx.poll_report().is_some() {}
    assert!(!rx.is_open());
});
