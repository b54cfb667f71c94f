//! Call detail records written by the real server: calls from sipp and one with RTP placed
//! by the test leave closed records after a clean stop, read back with `chorus cdr --json`.
//! (The conference records are tested at the unit level, in `src/cdr/writer.rs`: joining a
//! conference takes DTMF, which sipp sends only as root.)
//!
//! Needs `sipp` (Debian package sip-tester), which `scripts/test` installs.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::sip::{RawCall, Server, pcmu_packet};
use serde_json::Value;

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("chorus-cdr-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// `chorus cdr --json` on `dir`: one object per leg, newest first.
fn records(dir: &Path) -> Vec<Value> {
    let out = Command::new(env!("CARGO_BIN_EXE_chorus"))
        .args(["cdr", "--json", "--data-dir", dir.to_str().unwrap()])
        .output()
        .expect("chorus cdr runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect()
}

/// One call to the echo test over UDP with a PCMU offer, from `sip:alice@127.0.0.1`: 50 RTP
/// packets of 20 ms, most of them echoed back, then BYE, unless `hang_up` is false.
fn media_call(server: &Server, call_id: &str, hang_up: bool) {
    let call = RawCall::place(
        server,
        call_id,
        "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
         m=audio {rtp_port} RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\n\
         a=rtpmap:101 telephone-event/8000\r\na=rtcp-mux\r\n",
    );
    let (rtp, port) = (&call.rtp, call.media_port);
    let mut buf = [0u8; 2048];
    // Echoes are counted, not waited for one by one: a packet that raced the leg's start
    // must not stall the call.
    rtp.set_read_timeout(Some(Duration::from_millis(20)))
        .unwrap();
    let mut echoed = 0;
    for seq in 0..50u16 {
        let pkt = pcmu_packet(seq);
        rtp.send_to(&pkt, ("127.0.0.1", port)).unwrap();
        // The engine's RTCP reports share the port (rtcp-mux): not the echo.
        while let Ok(n) = rtp.recv(&mut buf) {
            if n > 1 && !(200..=206).contains(&buf[1]) {
                echoed += 1;
            }
        }
    }
    assert!(
        echoed > 25,
        "{call_id}: {echoed} of 50 packets echoed: {}",
        server.log()
    );
    if !hang_up {
        return;
    }
    call.bye();
}

/// Two sipp calls (built-in UAC: PCMU offer, 2 s, BYE; no RTP) and one call of ours with RTP
/// to the echo test, then a clean stop: three closed records, hung up by the caller, with
/// the codec, the caller's From URI, and for our call the packets counted and a MOS.
#[test]
fn answered_calls_leave_closed_records_after_a_clean_stop() {
    let dir = scratch("clean");
    let server = Server::start_in(&dir, "47400-47449", false, &[]);
    let run = server.sipp(
        "uac",
        &[
            "-sn", "uac", "-m", "2", "-l", "2", "-d", "2000", "-mp", "47500",
        ],
    );
    run.assert_calls(2);
    media_call(&server, "cdr-media-1", true);
    let (code, log) = server.stop();
    assert_eq!(code, Some(0), "{log}");
    assert!(log.contains("call records written"), "{log}");

    let rows = records(&dir);
    assert_eq!(rows.len(), 3, "{rows:#?}");
    for row in &rows {
        assert_eq!(row["end_reason"], "caller-hangup", "{row}");
        assert_eq!(row["codec"], "PCMU", "{row}");
        assert_eq!(row["srtp"], Value::Null, "{row}");
        assert_eq!(row["conference"], Value::Null, "{row}");
        assert_eq!(row["role"], "participant", "{row}");
        assert!(row["source"].as_str().unwrap().starts_with("127.0.0.1:"));
        let (joined, left) = (row["joined_at"].as_str(), row["left_at"].as_str());
        // RFC 3339 UTC with milliseconds: ordered as strings.
        assert!(left.unwrap() > joined.unwrap(), "{row}");
    }
    let (ours, sipp): (Vec<&Value>, Vec<&Value>) =
        rows.iter().partition(|r| r["call_id"] == "cdr-media-1");
    let ours = ours[0];
    assert_eq!(ours["caller"], "sip:alice@127.0.0.1");
    assert!(ours["packets_in"].as_u64().unwrap() > 25, "{ours}");
    assert!(ours["packets_out"].as_u64().unwrap() > 25, "{ours}");
    assert_eq!(ours["lost"], 0, "{ours}");
    let mos = ours["mos"].as_f64().expect("a MOS for a call with media");
    assert!((4.0..=4.5).contains(&mos), "{ours}");
    for row in sipp {
        assert!(
            row["caller"].as_str().unwrap().starts_with("sip:sipp@"),
            "{row}"
        );
        // sipp's 2 s pause between ACK and BYE.
        assert!(row["duration_s"].as_f64().unwrap() >= 1.9, "{row}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// A call still up when the server stops is closed as `shutdown`; one up when the server is
/// killed is closed as `interrupted` when the next server starts on the data directory.
#[test]
fn calls_up_at_the_stop_are_closed_as_shutdown_or_interrupted() {
    let dir = scratch("stop");
    let server = Server::start_in(&dir, "47450-47466", false, &[]);
    media_call(&server, "cdr-up-at-stop", false);
    let (code, log) = server.stop();
    assert_eq!(code, Some(0), "{log}");
    let rows = records(&dir);
    assert_eq!(rows.len(), 1, "{rows:#?}");
    assert_eq!(rows[0]["end_reason"], "shutdown", "{}", rows[0]);
    assert!(rows[0]["left_at"].is_string());

    let mut server = Server::start_in(&dir, "47467-47483", false, &[]);
    media_call(&server, "cdr-up-at-kill", false);
    server.kill();
    let rows = records(&dir);
    let killed = rows.iter().find(|r| r["call_id"] == "cdr-up-at-kill");
    assert_eq!(killed.unwrap()["left_at"], Value::Null, "{rows:#?}");
    let server = Server::start_in(&dir, "47484-47499", false, &[]);
    let (code, log) = server.stop();
    assert_eq!(code, Some(0), "{log}");
    let rows = records(&dir);
    let killed = rows
        .iter()
        .find(|r| r["call_id"] == "cdr-up-at-kill")
        .unwrap();
    assert_eq!(killed["end_reason"], "interrupted", "{killed}");
    assert!(killed["left_at"].is_string(), "{killed}");
    let _ = std::fs::remove_dir_all(&dir);
}
