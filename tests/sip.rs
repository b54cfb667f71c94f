//! The SIP front door with real peers: sipp places calls against the `chorus` binary, an SRTP
//! call's media is echoed, and baresip hears its own tone. (`sipp.rs` has the sipp scenarios
//! and the RFC 4475 messages over UDP and TCP.)
//!
//! Needs `sipp` (Debian package sip-tester), which `scripts/test` installs.

mod common;

use std::time::Duration;

use common::baresip::{Baresip, BaresipCall};
use common::sip::{RawCall, Server, log_field, options, pcmu_packet};

#[test]
fn sipp_calls_are_answered_and_hung_up() {
    let server = Server::start("sipp", "45000-45099");
    let reply = server
        .ask(&options(server.sip_port, "opt1"))
        .expect("OPTIONS answered");
    assert!(reply.starts_with("SIP/2.0 200 OK\r\n"), "{reply}");
    assert!(reply.contains("Allow: INVITE"), "{reply}");

    // sipp's built-in UAC: INVITE with a PCMU offer, ACK, 1 s of call, BYE; 30 calls at
    // 15 per second, 10 at a time. Exit code 0 means every call succeeded.
    let run = server.sipp(
        "uac",
        &[
            "-sn", "uac", "-m", "30", "-r", "15", "-l", "10", "-d", "1000",
        ],
    );
    run.assert_calls(30);
}

/// A call with SDES SRTP (AES_CM_128_HMAC_SHA1_80, what baresip and linphone offer) whose
/// media flows both ways: the caller's SRTP reaches the engine, comes back (echo) under the
/// key from our answer, and decrypts to what was sent. Then BYE.
#[test]
fn srtp_call_media_flows_both_ways() {
    use chorus_engine::srtp::SrtpContext;
    use chorus_engine::srtp::sdes::CryptoAttribute;

    let server = Server::start("media", "45200-45299");
    let ours =
        CryptoAttribute::generate(1, chorus_engine::srtp::SrtpSuite::AesCm128HmacSha1_80).unwrap();
    let sdp = format!(
        "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
         m=audio {{rtp_port}} RTP/SAVP 0 101\r\na=rtpmap:0 PCMU/8000\r\n\
         a=rtpmap:101 telephone-event/8000\r\na=rtcp-mux\r\na=crypto:{ours}\r\n"
    );
    let call = RawCall::place(&server, "media-call-1", &sdp);
    let (rtp, port, body) = (&call.rtp, call.media_port, &call.answer);
    assert!(body.contains("RTP/SAVP"), "{body}");
    let mut buf = [0u8; 65_535];
    let theirs = body
        .lines()
        .find_map(|l| l.strip_prefix("a=crypto:"))
        .map(|c| CryptoAttribute::parse(c.trim()).expect("valid crypto line"))
        .expect("our offer's suite answered with a key");

    // 50 packets of 20 ms PCMU, protected with our key; the echo comes back under theirs.
    let mut tx = SrtpContext::new(
        ours.suite,
        ours.key_material.key(),
        ours.key_material.salt(),
    )
    .unwrap();
    let mut rx = SrtpContext::new(
        theirs.suite,
        theirs.key_material.key(),
        theirs.key_material.salt(),
    )
    .unwrap();
    let mut echoed = 0;
    for seq in 0..50u16 {
        let mut pkt = pcmu_packet(seq);
        let plain = pkt.clone();
        let n = pkt.len();
        pkt.resize(n + 16, 0);
        let len = tx.protect_rtp(&mut pkt, n).unwrap();
        rtp.send_to(&pkt[..len], ("127.0.0.1", port)).unwrap();
        let n = loop {
            let (n, _) = rtp.recv_from(&mut buf).expect("media echoed back");
            // The engine's periodic RTCP report shares the port (rtcp-mux): not the echo.
            if !(200..=206).contains(&buf[1]) {
                break n;
            }
        };
        let len = rx
            .unprotect_rtp(&mut buf[..n])
            .expect("echo authenticates with the answer's key");
        assert_eq!(&buf[12..len], &plain[12..], "payload intact");
        echoed += 1;
    }
    assert_eq!(echoed, 50);

    call.bye();
}

/// Asserts that the call was set up with SDES SRTP and the decoder named (as baresip logs
/// it, e.g. `PCMU 8000Hz`), and that what baresip heard is mostly a loud 440 Hz tone.
fn assert_srtp_call_with(call: &BaresipCall, decoder: &str) {
    let (log, heard) = (&call.log, &call.heard);
    assert!(log.contains("Call established"), "{log}");
    assert!(log.contains("cryptosuite=AES_CM_128_HMAC_SHA1_80"), "{log}");
    assert!(
        log.contains(&format!("Set audio decoder: {decoder}")),
        "{log}"
    );
    let rate = heard.rate as usize;
    let samples = &heard.samples;
    assert!(samples.len() > rate * 4, "{} samples: {log}", samples.len());
    // Skip the first half second (jitter buffer fill), then measure level and pitch.
    let middle = &samples[rate / 2..samples.len() - rate / 4];
    let rms =
        (middle.iter().map(|&s| f64::from(s).powi(2)).sum::<f64>() / middle.len() as f64).sqrt();
    let crossings = middle
        .windows(2)
        .filter(|w| (w[0] < 0) != (w[1] < 0))
        .count();
    let freq = crossings as f64 / 2.0 / (middle.len() as f64 / rate as f64);
    assert!(rms > 8000.0, "tone too quiet: RMS {rms:.0}");
    assert!(
        (420.0..460.0).contains(&freq),
        "heard {freq:.0} Hz, sent 440 Hz"
    );
}

/// baresip calls with SDES SRTP and PCMU, plays a 440 Hz tone and presses 1 and #: the engine
/// echoes the tone, and what baresip decodes is that tone (SRTP works both ways, audio
/// intact); the server reports the two keys, in order, from the RFC 4733 events.
#[test]
fn baresip_srtp_pcmu_call_hears_its_own_tone_and_its_keys_arrive() {
    let server = Server::start("baresip-pcmu", "45300-45399");
    let call = Baresip::echo_call(&server, "PCMU", "46600-46699", "1#");
    assert_srtp_call_with(&call, "PCMU 8000Hz");
    let dtmf = server.wait_log_lines(" DTMF", 2, Duration::from_secs(2));
    let keys: Vec<_> = dtmf
        .iter()
        .map(|l| (log_field(l, "digit"), log_field(l, "source")))
        .collect();
    assert_eq!(
        keys,
        vec![(Some("1"), Some("rfc4733")), (Some("#"), Some("rfc4733"))],
        "{}\n{}",
        server.log(),
        call.events
    );
}

/// The same with Opus (`opus/48000/2` in SDP): negotiated, echoed, decoded as the tone at
/// 48 kHz; a key pressed in an Opus call arrives too.
#[test]
fn baresip_srtp_opus_call_hears_its_own_tone() {
    let server = Server::start("baresip-opus", "47300-47349");
    let call = Baresip::echo_call(&server, "opus/48000/2", "47350-47399", "5");
    assert_srtp_call_with(&call, "opus 48000Hz 2ch");
    assert_eq!(call.heard.rate, 48_000);
    let dtmf = server.wait_log_lines(" DTMF", 1, Duration::from_secs(2));
    assert_eq!(
        dtmf.iter()
            .map(|l| log_field(l, "digit"))
            .collect::<Vec<_>>(),
        vec![Some("5")],
        "{}",
        server.log()
    );
}
