//! sipp against the real `chorus` binary: what a caller notices (response codes, SDP direction
//! attributes, Reason headers) for keepalives, calls with media, hold and resume, hang-up by
//! the server, load, malformed requests, and the RFC 4475 torture messages over UDP and TCP.
//!
//! Scenarios are in `tests/sipp/`. Each sipp run is bounded (`-timeout 60s`, and receive
//! timeouts in the scenarios); exit code 0 and the statistics file say every call succeeded.
//! Media ports 48000-49999 are this file's: servers take 100-port ranges from 48000, sipp's
//! own media sockets (`-mp`) sit at 49000 and up.
//!
//! Needs `sipp` (Debian package sip-tester), which `scripts/test` installs.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream, UdpSocket};
use std::time::Duration;

mod common;
use common::sip::{Server, options, scenarios, torture_messages};

/// Runs `calls` calls of the scenario `xml` of `tests/sipp/` against `server`, sipp's media
/// socket on `media_port`, and asserts that all succeeded.
fn run_scenario(server: &Server, xml: &str, calls: u64, media_port: u16) {
    let sf = scenarios().join(xml).to_string_lossy().into_owned();
    let (m, mp) = (calls.to_string(), media_port.to_string());
    let run = server.sipp(xml, &["-sf", &sf, "-m", &m, "-mp", &mp]);
    run.assert_calls(calls);
}

/// One second of a 440 Hz tone in G.711 mu-law (ITU-T G.711 encoding), for sipp's
/// `rtp_stream`, which plays raw PCMU.
fn tone_ulaw() -> Vec<u8> {
    (0..8000)
        .map(|i| {
            let x = (f64::from(i) * 440.0 * std::f64::consts::TAU / 8000.0).sin() * 8000.0;
            let s = x as i32;
            let sign = if s < 0 { 0x80 } else { 0 };
            let mag = s.unsigned_abs().min(32_635) + 0x84;
            let exp = (7 - (mag << 17).leading_zeros().min(7)) as u8;
            let mantissa = ((mag >> (exp + 3)) & 0x0f) as u8;
            !(sign | (exp << 4) | mantissa)
        })
        .collect()
}

#[test]
fn options_keepalive_is_answered_200_with_allow() {
    let server = Server::start("sipp-options", "48000-48099");
    run_scenario(&server, "options.xml", 3, 49000);
}

/// INVITE/100/200/ACK, 7 s of PCMU from the caller, BYE/200. The server's RTP timeout is 5 s:
/// the call staying up shows the server receives the caller's media.
#[test]
fn call_with_media_hung_up_by_the_caller() {
    let server = Server::start_with("sipp-call", "48100-48199", false, &["--rtp-timeout-s", "5"]);
    std::fs::write(server.dir.join("tone.ulaw"), tone_ulaw()).unwrap();
    run_scenario(&server, "basic_call.xml", 1, 49010);
    let log = server.log();
    assert!(log.contains("reason=RemoteBye"), "{log}");
    assert!(!log.contains("reason=MediaTimeout"), "{log}");
}

/// re-INVITE a=sendonly is answered a=recvonly, a=sendrecv sendrecv, a=inactive inactive.
#[test]
fn reinvite_hold_resume_and_inactive() {
    let server = Server::start("sipp-hold", "48200-48299");
    run_scenario(&server, "reinvite.xml", 1, 49020);
}

/// A caller that sends no media is hung up by the server after its RTP timeout, with a
/// Reason header; the caller answers 200, and its own BYE afterwards finds no dialog (481).
#[test]
fn server_hangs_up_a_silent_call_with_a_reason() {
    let server = Server::start_with("sipp-bye", "48300-48399", false, &["--rtp-timeout-s", "5"]);
    run_scenario(&server, "server_bye.xml", 1, 49030);
    let log = server.log();
    assert!(log.contains("reason=MediaTimeout"), "{log}");
}

/// sipp's built-in UAC: 100 calls started at 20 per second, 1 s each; none may fail.
#[test]
fn hundred_calls_at_twenty_per_second() {
    let server = Server::start("sipp-load", "48400-48499");
    let run = server.sipp(
        "load",
        &[
            "-sn", "uac", "-m", "100", "-r", "20", "-l", "100", "-d", "1000", "-mp", "49040",
        ],
    );
    run.assert_calls(100);
}

/// The status line of a response ("SIP/2.0 400 ..."), or what came instead.
fn status(reply: &str) -> Option<u16> {
    reply.strip_prefix("SIP/2.0 ")?.get(..3)?.parse().ok()
}

/// Malformed requests sipp can send and match answers to (tests/sipp/malformed.xml), then
/// those it cannot (the answer lacks the header sipp matches on, or the transport is TCP).
#[test]
fn malformed_requests_get_the_answers_a_caller_needs() {
    let mut server = Server::start_with("sipp-malformed", "48500-48599", true, &[]);
    run_scenario(&server, "malformed.xml", 1, 49050);

    let good = String::from_utf8(options(server.sip_port, "m1")).unwrap();
    let udp = |what: &str, from: &str, to: &str| {
        let bad = good.replace(from, to);
        assert_ne!(bad, good, "{what}: nothing replaced");
        server.ask(bad.as_bytes())
    };
    // Mandatory headers missing (RFC 3261 8.1.1): 400 naming them.
    for header in ["To", "From", "Call-ID", "CSeq"] {
        let line = good
            .lines()
            .find(|l| l.starts_with(&format!("{header}:")))
            .unwrap();
        let reply = udp(header, &format!("{line}\r\n"), "").unwrap_or_default();
        assert_eq!(status(&reply), Some(400), "missing {header}: {reply}");
        assert!(reply.contains(&format!("missing {header}")), "{reply}");
    }
    // CSeq that is not a number, or names another method: 400 (RFC 4475 scalar02, mismatch01).
    let reply = udp("cseq", "CSeq: 1 OPTIONS", "CSeq: one OPTIONS").unwrap_or_default();
    assert_eq!(status(&reply), Some(400), "{reply}");
    let reply = udp("method", "CSeq: 1 OPTIONS", "CSeq: 1 INVITE").unwrap_or_default();
    assert_eq!(status(&reply), Some(400), "{reply}");
    // No Via: nowhere to answer (RFC 3261 18.2.2); garbage: not SIP. Both dropped silently.
    let via = good.lines().find(|l| l.starts_with("Via:")).unwrap();
    assert_eq!(udp("via", &format!("{via}\r\n"), ""), None);
    assert_eq!(server.ask(b"\x16\x03\x01 not SIP at all\r\n\r\n"), None);

    // TCP: a Content-Length larger than the body, then the stream ends: 400 (RFC 3261 18.3).
    let short = good.replace("SIP/2.0/UDP", "SIP/2.0/TCP").replace(
        "Content-Length: 0\r\n\r\n",
        "Content-Length: 99\r\n\r\nv=0\r\n",
    );
    let reply = server.ask_tcp(short.as_bytes(), true);
    assert_eq!(status(&reply), Some(400), "{reply}");
    assert!(reply.contains("Content-Length"), "{reply}");
    // TCP: no Content-Length at all: framing is lost, 400, and the server closes.
    let port = server.tcp_port.unwrap();
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let unframed = good
        .replace("SIP/2.0/UDP", "SIP/2.0/TCP")
        .replace("Content-Length: 0\r\n", "");
    s.write_all(unframed.as_bytes()).unwrap();
    let mut reply = String::new();
    s.read_to_string(&mut reply).expect("closed by the server");
    assert_eq!(status(&reply), Some(400), "{reply}");
    // TCP: a header section over the 16 KiB limit: 513 (RFC 3261 21.5.14), then closed.
    let huge = good.replace(
        "Max-Forwards: 70\r\n",
        &format!("Max-Forwards: 70\r\nSubject: {}\r\n", "x".repeat(20_000)),
    );
    let reply = server.ask_tcp(huge.as_bytes(), false);
    assert_eq!(status(&reply), Some(513), "{reply}");
    drop(s);

    let reply = server.ask(&options(server.sip_port, "after")).unwrap();
    assert_eq!(status(&reply), Some(200), "{reply}");
    assert!(server.alive());
    assert!(!server.log().contains("panicked"), "{}", server.log());
}

/// What the server answers each RFC 4475 message (section 3), as a UAS that is not a
/// registrar or proxy: the first status it sends back, per transport, or None for silence.
/// Where the RFC speaks of a registrar (unksm2 400, regaut01 401), a UAS that takes no
/// REGISTER answers 405 first (RFC 3261 8.2.1).
fn torture_verdict(name: &str, tcp: bool) -> Option<u16> {
    Some(match name {
        // 3.1.1 valid messages: handled normally.
        "wsinv" => 481, // an INVITE with a To tag: a dialog we do not have (RFC 3261 12.2.2)
        "intmeth" | "esc02" => 501,
        "esc01" | "lwsdisp" | "longreq" | "semiuri" | "transports" => 200,
        "escnull" | "dblreq" | "mpart01" => 405,
        "unreason" | "noreason" => return None, // responses to nothing we sent
        // 3.1.2 invalid messages: 400, 505, or silence for responses.
        "badinv01" | "clerr" | "ncl" | "scalar02" | "quotbal" | "ltgtruri" | "lwsruri"
        | "lwsstart" | "trws" | "escruri" | "baddate" | "regbadct" | "badaspec" | "baddn"
        | "mismatch01" | "mismatch02" => 400,
        "badvers" => 505,
        "scalarlg" | "bigcode" => return None,
        // 3.2 transaction layer.
        "badbranch" => 200,
        // 3.3 application layer.
        "insuf" | "multi01" | "mcl01" => 400,
        "novelsc" => 416,
        // Same method, branch and sent-by as an earlier message (novelsc, escnull, cparam01):
        // over UDP, RFC 3261 17.2.3 makes it a retransmission of that transaction, answered
        // (to its source) with that transaction's response. Over TCP the earlier non-INVITE
        // transaction ended with its response (timer J is 0), so this one is new.
        "unkscm" if !tcp => return None,
        "regescrt" | "cparam02" if !tcp => return None,
        "unkscm" => 416,
        "unksm2" | "regaut01" | "cparam01" | "cparam02" | "regescrt" => 405,
        "bext01" => 420,
        "invut" => 415,
        "sdp01" => 406,
        "bcast" => return None,
        "zeromf" => 200, // Max-Forwards 0 stops proxies, not the UAS it reached
        // 3.4 backward compatibility: fine in a datagram; a stream needs Content-Length.
        "inv2543" if tcp => 400,
        "inv2543" => 200,
        // In the archive, not the RFC: no SIP version and no Via to answer to.
        "test" => return None,
        other => panic!("{other}: no verdict for this RFC 4475 message"),
    })
}

/// Torture messages that repeat an earlier message's method, branch and sent-by; they are
/// sent after the others (see `torture_verdict`).
const REPEATED_BRANCH: [&str; 3] = ["unkscm", "regescrt", "cparam02"];

/// Sends every torture message with `ask` (each on its own socket, in parallel; those of
/// REPEATED_BRANCH after the rest) and checks the first status against `torture_verdict`.
fn check_torture_verdicts(tcp: bool, ask: impl Fn(&[u8]) -> Option<u16> + Sync) {
    let messages = torture_messages();
    assert!(messages.len() >= 49);
    let mut wrong = Vec::new();
    for late in [false, true] {
        let wave: Vec<_> = messages
            .iter()
            .filter(|(name, _)| REPEATED_BRANCH.contains(&name.as_str()) == late)
            .collect();
        std::thread::scope(|scope| {
            let asks: Vec<_> = wave
                .iter()
                .map(|(name, bytes)| (name, scope.spawn(|| ask(bytes))))
                .collect();
            for (name, ask) in asks {
                let (got, want) = (ask.join().unwrap(), torture_verdict(name, tcp));
                if got != want {
                    wrong.push(format!("{name}: got {got:?}, want {want:?}"));
                }
            }
        });
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn torture_messages_over_udp_get_rfc4475_verdicts() {
    let mut server = Server::start("sipp-torture-udp", "48600-48699");
    let port = server.sip_port;
    check_torture_verdicts(false, |bytes| {
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(1500)))
            .unwrap();
        sock.send_to(bytes, ("127.0.0.1", port)).unwrap();
        let mut buf = [0u8; 65_535];
        let (n, _) = sock.recv_from(&mut buf).ok()?;
        status(&String::from_utf8_lossy(&buf[..n]))
    });
    let reply = server.ask(&options(server.sip_port, "after")).unwrap();
    assert_eq!(status(&reply), Some(200), "{reply}");
    assert!(server.alive());
    assert!(!server.log().contains("panicked"), "{}", server.log());
}

#[test]
fn torture_messages_over_tcp_get_rfc4475_verdicts() {
    let mut server = Server::start_with("sipp-torture-tcp", "48700-48799", true, &[]);
    let port = server.tcp_port.unwrap();
    // Each message on its own connection, ended by the client's FIN, so that a body shorter
    // than its Content-Length (clerr) is known to be short.
    check_torture_verdicts(true, |bytes| {
        let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s.write_all(bytes).unwrap();
        s.shutdown(Shutdown::Write).unwrap();
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        // Up to the end of the first response's header section, or the server's close.
        while !got.windows(4).any(|w| w == b"\r\n\r\n") {
            match s.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
        status(&String::from_utf8_lossy(&got))
    });
    let reply = server.ask_tcp(
        String::from_utf8(options(server.sip_port, "after"))
            .unwrap()
            .replace("SIP/2.0/UDP", "SIP/2.0/TCP")
            .as_bytes(),
        true,
    );
    assert_eq!(status(&reply), Some(200), "{reply}");
    assert!(server.alive());
    assert!(!server.log().contains("panicked"), "{}", server.log());
}

/// The caller hangs up while the server rings (`--answer-delay-ms`): 180, CANCEL answered
/// 200, the INVITE answered 487, and the call's leg released without ever answering.
#[test]
fn cancel_while_ringing_gets_487() {
    let server = Server::start_with(
        "sipp-cancel",
        "48500-48599",
        false,
        &["--answer-delay-ms", "3000"],
    );
    run_scenario(&server, "cancel.xml", 1, 49100);
    let log = server.log();
    assert!(log.contains("reason=Cancelled"), "{log}");
    assert!(!log.contains("call answered"), "{log}");
}

/// Access control: with `--auth challenge` a caller authenticates with digest (MD5 first
/// for sipp, which reads only the first challenge); with `--auth reject` a caller outside the
/// trunk's allow-list gets 403 while the trunk's own address is answered.
#[test]
fn digest_challenge_and_trunk_allow_list() {
    let server = Server::start_with(
        "sipp-auth",
        "48600-48699",
        false,
        &[
            "--auth",
            "challenge",
            "--user",
            "alice:secret",
            "--digest-algorithms",
            "MD5",
        ],
    );
    run_scenario_with(
        &server,
        "auth.xml",
        49110,
        &["-au", "alice", "-ap", "secret"],
    )
    .assert_calls(1);
    run_scenario_with(
        &server,
        "auth.xml",
        49112,
        &["-au", "alice", "-ap", "wrong"],
    )
    .assert_failed(1);
    let log = server.log();
    assert!(log.contains("caller=User(\"alice\")"), "{log}");
    assert!(log.contains("wrong password"), "{log}");

    let server = Server::start_with(
        "sipp-reject",
        "48700-48799",
        false,
        &[
            "--auth",
            "reject",
            "--trunk",
            "name=carrier;allow=127.0.0.1",
        ],
    );
    // From 127.0.0.2: not the trunk.
    run_scenario_with(&server, "refused.xml", 49120, &["-i", "127.0.0.2"]).assert_calls(1);
    // From the trunk's address.
    let run = server.sipp(
        "trunk",
        &["-sn", "uac", "-m", "1", "-d", "200", "-mp", "49122"],
    );
    run.assert_calls(1);
    assert!(server.log().contains("caller=Trunk(\"carrier\")"));
}

/// A caller that takes on refreshing the session (Session-Expires 90, refresher=uac) and never
/// does: the server sends BYE with Reason 408 "session timer expired" before 90 s are over
/// (RFC 4028 10: at 90 - 32 s). The RTP timeout is set long so only the session timer acts.
#[test]
fn unrefreshed_session_is_ended_by_the_server() {
    let server = Server::start_with(
        "sipp-session",
        "48800-48899",
        false,
        &["--rtp-timeout-s", "300"],
    );
    let started = std::time::Instant::now();
    run_scenario(&server, "session_expiry.xml", 1, 49130);
    let took = started.elapsed();
    assert!(
        took >= Duration::from_secs(55) && took < Duration::from_secs(75),
        "BYE after {took:?}"
    );
    assert!(server.log().contains("reason=SessionExpired"));
}

/// Runs one call of the scenario `xml` with extra sipp arguments; the caller checks the outcome.
fn run_scenario_with(
    server: &Server,
    xml: &str,
    media_port: u16,
    extra: &[&str],
) -> common::sip::SippRun {
    let sf = scenarios().join(xml).to_string_lossy().into_owned();
    let mp = media_port.to_string();
    let mut args = vec!["-sf", sf.as_str(), "-m", "1", "-mp", mp.as_str()];
    args.extend_from_slice(extra);
    server.sipp(&format!("{xml}-{media_port}"), &args)
}
