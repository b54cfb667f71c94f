//! Fuzzes the SIP message parser, the error-response path taken for what fails to parse,
//! re-serialization of what parses, and the stream framer fed in small pieces.
#![no_main]

use chorus_signaling::message::{Limits, SipMessage, StreamFramer};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match SipMessage::parse(data) {
        Ok(m) => {
            let bytes = m.to_bytes();
            // What we write, we can read back.
            SipMessage::parse(&bytes).expect("serialized message re-parses");
            if m.is_request() {
                let _ = SipMessage::response_to(&m, 200, "OK").to_bytes();
            }
        }
        Err(e) => {
            let _ = e.status();
            let _ = SipMessage::error_response(data, &e).map(|r| r.to_bytes());
        }
    }
    let mut framer = StreamFramer::new(Limits::default());
    for chunk in data.chunks(7) {
        framer.push(chunk);
        while let Some(frame) = framer.poll() {
            if frame.is_err() {
                return;
            }
        }
    }
});
