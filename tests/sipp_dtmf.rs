//! A basic call from sipp with PCMU RTP and RFC 4733 DTMF: sipp offers PCMU and
//! telephone-event 101, plays a second of PCMU tone and then the key presses 1, 2, # from the
//! pcaps Debian's sip-tester ships, and hangs up. The server must report exactly those keys in
//! that order, echo the media back, and complete the BYE.
//!
//! `play_pcap_audio` sends from a raw socket: sipp needs root (the test says so and skips
//! otherwise).

mod common;

use std::path::Path;
use std::time::Duration;

use common::sip::{Server, log_field};

/// The media port range of this test's server, and sipp's RTP port (outside the server's).
const MEDIA_PORTS: &str = "47200-47249";
const SIPP_RTP_PORT: &str = "47250";
/// Where the key presses come from.
const PCAP_DIR: &str = "/usr/share/sip-tester";

/// A request of the sipp scenario in its dialog: `to_tag` for in-dialog requests, then
/// `rest` (Content-Type, Content-Length and body).
fn sipp_request(method: &str, cseq: u32, to_tag: bool, rest: &str) -> String {
    sipp_request_to("echo", method, cseq, to_tag, rest)
}

/// `sipp_request` to the number `user`.
fn sipp_request_to(user: &str, method: &str, cseq: u32, to_tag: bool, rest: &str) -> String {
    let to_tag = if to_tag { "[peer_tag_param]" } else { "" };
    format!(
        "<![CDATA[
      {method} sip:{user}@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: sipp <sip:sipp@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      To: <sip:{user}@[remote_ip]:[remote_port]>{to_tag}
      Call-ID: [call_id]
      CSeq: {cseq} {method}
      Contact: sip:sipp@[local_ip]:[local_port]
      Max-Forwards: 70
      {rest}
    ]]>"
    )
}

/// A scenario step playing a pcap, then a pause.
fn play(file: &str, pause_ms: u32) -> String {
    format!(
        "<nop><action><exec play_pcap_audio=\"{file}\"/></action></nop>\n  \
         <pause milliseconds=\"{pause_ms}\"/>\n  "
    )
}

/// A key press from the shipped pcaps (`1`, `pound`, ...), then a pause.
fn key(name: &str, pause_ms: u32) -> String {
    play(&format!("{PCAP_DIR}/dtmf_2833_{name}.pcap"), pause_ms)
}

/// sipp's SDP offer: PCMU and telephone-event/8000 at 101.
const OFFER: &str = "Content-Type: application/sdp
      Content-Length: [len]

      v=0
      o=user1 53655765 2353687637 IN IP[local_ip_type] [local_ip]
      s=-
      c=IN IP[media_ip_type] [media_ip]
      t=0 0
      m=audio [media_port] RTP/AVP 0 101
      a=rtpmap:0 PCMU/8000
      a=rtpmap:101 telephone-event/8000
      a=fmtp:101 0-15
      a=ptime:20";

/// A sipp UAC scenario named `name`: INVITE to `user` with `OFFER`, the 200 answered with
/// ACK, then `rest` (the steps after it, up to the closing tag).
fn answered_call(name: &str, user: &str, rest: &str) -> String {
    format!(
        r#"<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="{name}">
  <send retrans="500">{invite}</send>
  <recv response="100" optional="true"/>
  <recv response="180" optional="true"/>
  <recv response="200" rtd="true"/>
  <send>{ack}</send>
  {rest}"#,
        invite = sipp_request_to(user, "INVITE", 1, false, OFFER),
        ack = sipp_request_to(user, "ACK", 1, true, "Content-Length: 0"),
    )
}

/// sipp as UAC: INVITE with PCMU + telephone-event/8000 at 101, ACK, audio, three keys, BYE.
fn scenario(pcmu_pcap: &Path) -> String {
    let audio = play(&pcmu_pcap.display().to_string(), 1200);
    let keys: String = ["1", "2", "pound"].iter().map(|k| key(k, 400)).collect();
    let rest = format!(
        r#"{audio}{keys}<send retrans="500">{bye}</send>
  <recv response="200" crlf="true"/>
</scenario>
"#,
        bye = sipp_request("BYE", 2, true, "Content-Length: 0"),
    );
    answered_call("PCMU call with RFC 4733 DTMF", "echo", &rest)
}

/// G.711 mu-law encoding of one 16-bit sample (ITU-T G.711, with the usual bias of 0x84).
fn mulaw(sample: i16) -> u8 {
    let sign = if sample < 0 { 0x80 } else { 0 };
    let magnitude = (i32::from(sample).abs().min(32_635) + 0x84) as u32;
    let exponent = (31 - magnitude.leading_zeros()).saturating_sub(7).min(7);
    let mantissa = (magnitude >> (exponent + 3)) & 0x0f;
    !(sign | ((exponent as u8) << 4) | mantissa as u8)
}

/// A pcap (Ethernet, IPv4, UDP) of `packets` 20 ms PCMU packets of a 440 Hz tone, in the
/// stream of the shipped DTMF pcaps (SSRC 0x0e05384e) and before their sequence numbers and
/// timestamps, so audio and keys form one stream as a phone sends them.
fn pcmu_pcap(packets: u16) -> Vec<u8> {
    let mut out = Vec::new();
    // Global header: magic, version 2.4, zone, sigfigs, snaplen, LINKTYPE_ETHERNET.
    out.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&4u16.to_le_bytes());
    for v in [0u32, 0, 65_535, 1] {
        out.extend_from_slice(&v.to_le_bytes());
    }
    let first_seq = 7984 - packets - 10;
    for i in 0..packets {
        let mut rtp = vec![0x80, if i == 0 { 0x80 } else { 0x00 }];
        rtp.extend_from_slice(&(first_seq + i).to_be_bytes());
        rtp.extend_from_slice(&(u32::from(i) * 160).to_be_bytes());
        rtp.extend_from_slice(&0x0e05_384e_u32.to_be_bytes());
        rtp.extend((0..160u32).map(|n| {
            let t = f64::from(u32::from(i) * 160 + n) / 8000.0;
            mulaw(((t * 440.0 * std::f64::consts::TAU).sin() * 12_000.0) as i16)
        }));
        let udp_len = 8 + rtp.len() as u16;
        let mut frame = vec![0u8; 12];
        frame.extend_from_slice(&[0x08, 0x00]);
        frame.extend_from_slice(&[0x45, 0, 0, 0]);
        frame[16..18].copy_from_slice(&(20 + udp_len).to_be_bytes());
        frame.extend_from_slice(&[0, 0, 0x40, 0, 64, 17, 0, 0]);
        frame.extend_from_slice(&[127, 0, 0, 1, 127, 0, 0, 1]);
        frame.extend_from_slice(&8000u16.to_be_bytes());
        frame.extend_from_slice(&8002u16.to_be_bytes());
        frame.extend_from_slice(&udp_len.to_be_bytes());
        frame.extend_from_slice(&[0, 0]);
        frame.extend_from_slice(&rtp);
        let micros = u32::from(i) * 20_000;
        for v in [1_000 + micros / 1_000_000, micros % 1_000_000] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        for _ in 0..2 {
            out.extend_from_slice(&(frame.len() as u32).to_le_bytes());
        }
        out.extend_from_slice(&frame);
    }
    out
}

#[test]
fn mulaw_round_trips_within_its_step() {
    // The ends of the scale (ITU-T G.711), then every sample through the standard decoder.
    assert_eq!((mulaw(0), mulaw(-1)), (0xff, 0x7f));
    assert_eq!((mulaw(32_767), mulaw(-32_768)), (0x80, 0x00));
    for x in (i16::MIN..=i16::MAX).step_by(7) {
        let u = !mulaw(x);
        let (exponent, mantissa) = (u32::from(u >> 4) & 7, i32::from(u & 0x0f));
        let magnitude = (((mantissa << 3) + 0x84) << exponent) - 0x84;
        let decoded = if u & 0x80 != 0 { -magnitude } else { magnitude };
        let step = 8 << exponent;
        assert!(
            (decoded - i32::from(x).clamp(-32_635, 32_635)).abs() <= step,
            "{x} -> {decoded}"
        );
    }
}

/// sipp dials the IVR number `conf`, keys the conference ID 23 and then a wrong PIN three
/// times (4, 5, 6; each pcap's key is a distinct RFC 4733 event, and no `#` since the pound
/// pcap repeats the same event: the IVR takes keys after its digit timeout), and expects the
/// server's BYE.
fn wrong_pin_scenario() -> String {
    let keys = [
        key("2", 300),
        key("3", 3_000),
        key("4", 4_000),
        key("5", 4_000),
        key("6", 0),
    ]
    .concat();
    let rest = format!(
        r#"<pause milliseconds="500"/>
  {keys}<recv request="BYE" timeout="20000"/>
  <send><![CDATA[
      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:]
      [last_Call-ID:]
      [last_CSeq:]
      Content-Length: 0
    ]]></send>
</scenario>
"#,
    );
    answered_call("IVR: wrong PIN three times", "conf", &rest)
}

/// Through the IVR with RFC 4733 keys: conference 23 (PIN 987, created with the CLI) is
/// found, three wrong PINs get "That PIN is not valid" twice, then goodbye and the server's
/// BYE with a Reason.
#[test]
fn sipp_ivr_wrong_pin_three_times_gets_goodbye_and_bye() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("SKIPPED: sipp's play_pcap_audio needs root (raw socket)");
        return;
    }
    let server = Server::start_with(
        "sipp-ivr",
        "47300-47349",
        false,
        &["--allow-adhoc", "false", "--ivr-digit-timeout-s", "2"],
    );
    let created = std::process::Command::new(env!("CARGO_BIN_EXE_chorus"))
        .args(["conference", "create", "23", "--pin", "987", "--data-dir"])
        .arg(&server.dir)
        .output()
        .unwrap();
    assert!(created.status.success(), "{created:?}");
    let xml = server.dir.join("ivr.xml");
    std::fs::write(&xml, wrong_pin_scenario()).unwrap();
    let xml = xml.to_string_lossy().into_owned();
    let run = server.sipp(
        "ivr",
        &["-sf", &xml, "-mi", "127.0.0.1", "-mp", "47360", "-m", "1"],
    );
    run.assert_calls(1);
    let log = server.log();
    let keys: Vec<String> = server
        .wait_log_lines(" DTMF", 5, Duration::from_secs(2))
        .iter()
        .filter_map(|l| log_field(l, "digit").map(str::to_string))
        .collect();
    assert_eq!(keys, ["2", "3", "4", "5", "6"], "{log}");
    assert!(log.contains("too many attempts"), "{log}");
    assert!(!log.contains("joined conference"), "{log}");
}

#[test]
fn sipp_pcmu_call_reports_rfc4733_digits_in_order() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("SKIPPED: sipp's play_pcap_audio needs root (raw socket)");
        return;
    }
    let server = Server::start("sipp-dtmf", MEDIA_PORTS);
    std::fs::create_dir_all(&server.dir).unwrap();
    let pcap = server.dir.join("pcmu-440.pcap");
    std::fs::write(&pcap, pcmu_pcap(50)).unwrap();
    let xml = server.dir.join("dtmf.xml");
    std::fs::write(&xml, scenario(&pcap)).unwrap();
    let xml = xml.to_string_lossy().into_owned();
    let run = server.sipp(
        "dtmf",
        &[
            "-sf",
            &xml,
            "-mi",
            "127.0.0.1",
            "-mp",
            SIPP_RTP_PORT,
            "-m",
            "1",
        ],
    );
    run.assert_calls(1);
    let log = server.log();

    // Each key once, in order, from the media path, with the call's Call-ID.
    let dtmf = server.wait_log_lines(" DTMF", 3, Duration::from_secs(3));
    let keys: Vec<(&str, &str, &str)> = dtmf
        .iter()
        .map(|l| {
            (
                log_field(l, "digit").unwrap_or("?"),
                log_field(l, "source").unwrap_or("?"),
                log_field(l, "duration_ms").unwrap_or("?"),
            )
        })
        .collect();
    // The pcaps hold 2240 units (280 ms) per key.
    assert_eq!(
        keys,
        vec![
            ("1", "rfc4733", "280"),
            ("2", "rfc4733", "280"),
            ("#", "rfc4733", "280")
        ],
        "{log}"
    );
    let call_ids: Vec<_> = dtmf.iter().map(|l| log_field(l, "call_id")).collect();
    assert!(
        call_ids.iter().all(|c| c.is_some() && *c == call_ids[0]),
        "{dtmf:?}"
    );

    // BYE completed (sipp exited 0 after the 200) and the leg's final counters show the echo:
    // the 50 audio packets and 30 event packets came in and went back out.
    let removed = server.wait_log_lines("media leg removed", 1, Duration::from_secs(3));
    let line = removed.first().unwrap_or_else(|| panic!("{log}"));
    let count = |k| {
        log_field(line, k)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap()
    };
    assert_eq!(count("rtp_in"), 80, "{line}");
    assert_eq!(count("rtp_out"), 80, "echoed: {line}");
    assert_eq!(count("dtmf_digits"), 3, "{line}");
}
