//! Fuzzes SDP parsing, re-serialization, and answering whatever parses as an offer: its
//! audio, and each m-line as video (an answer to video must be SDP that parses back the same).
#![no_main]

use chorus_signaling::sdp::{
    Direction, LocalSession, OfferAnswerConfig, SessionDescription, VideoConfig, answer_offer,
    answer_video,
};
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
    let config = VideoConfig::default();
    for m in &offer.media {
        if let Ok((answer, _)) = answer_video(m, Direction::SendRecv, 30_000, &config) {
            // What we answer is well-formed SDP.
            let text = format!(
                "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n{answer}"
            );
            let back = SessionDescription::parse(text.as_bytes()).expect("our answer parses");
            assert_eq!(back.media[0], answer);
        }
    }
});
