//! Fuzzes SDP parsing, re-serialization, and answering whatever parses as an offer.
#![no_main]

use chorus_signaling::sdp::{LocalSession, OfferAnswerConfig, SessionDescription, answer_offer};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(offer) = SessionDescription::parse(data) else {
        return;
    };
    // What parses, re-serializes to something that parses to the same description.
    let again = SessionDescription::parse(offer.to_string().as_bytes()).expect("re-parses");
    assert_eq!(again, offer);
    let mut local = LocalSession::new(1, "127.0.0.1".parse().unwrap());
    let _ = answer_offer(
        &offer,
        &mut local,
        "127.0.0.1:20000".parse().unwrap(),
        &OfferAnswerConfig::default(),
    );
});
