//! `chorus-load` against a real `chorus serve`: 200 callers in 20 conferences of 10 (3
//! talkers each) dial the IVR number, key their conference ID as RFC 4733 events, hold 20 s
//! with SDES SRTP (AES_CM_128_HMAC_SHA1_80) and PCMU, and hang up; a fifth of the silent
//! callers hang up midway and a new call takes their place. The run must establish
//! every call and see no loss, no silent caller and no SRTP failure; and its errors are one
//! line each.

mod common;

use std::process::Command;

use common::{Serve, load_bin};

#[test]
fn two_hundred_callers_through_the_ivr_hear_their_conferences() {
    let server = Serve::start("ivr", "47600-47699");
    let json = server.dir.join("report.json");
    let plot = server.dir.join("report.png");
    let out = Command::new(load_bin())
        .args(["run", "--server", &format!("127.0.0.1:{}", server.port)])
        .args([
            "--users",
            "200",
            "--conference-size",
            "10",
            "--talkers",
            "3",
        ])
        .args(["--duration", "20s", "--ramp", "50/s", "--codec", "pcmu"])
        .args([
            "--srtp",
            "aes-cm-80",
            "--dial",
            "ivr",
            "--media-ports",
            "47700-47799",
        ])
        .args(["--churn", "20", "--progress", "false", "--json"])
        .arg(&json)
        .arg("--plot")
        .arg(&plot)
        .output()
        .expect("chorus-load runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}{stderr}");
    let report = std::fs::read_to_string(&json).unwrap();
    let v: serde_json::Value = serde_json::from_str(&report).unwrap();
    // A fifth of the silent callers hung up mid-call and dialed again: every call, first or
    // second, was established.
    // Callers 3-9 and 13-19 of each hundred: silent (slots 3-9) and within the fifth.
    assert_eq!(v["churned"].as_u64(), Some(28), "{stdout}");
    assert_eq!(v["attempted"].as_u64(), Some(228), "{stdout}");
    let churned = 28;
    assert_eq!(v["established"], v["attempted"], "{stdout}");
    assert!(stdout.contains("silent callers        0"), "{stdout}");
    // Every caller's audio was checked: each heard its conference's other talkers' bursts
    // and never itself (the verdict fails otherwise), and the bursts' delay was measured.
    assert!(
        stdout.contains(&format!(
            "audio checked         {} callers, 0 wrong",
            200 + churned
        )),
        "{stdout}"
    );
    let p50 = v["audio"]["delay_ms"]["p50"].as_f64().unwrap_or(f64::NAN);
    assert!(p50 > 0.0 && p50 < 200.0, "delay p50 {p50} ms: {stdout}");
    let mos = v["mos"]["p50"].as_f64().unwrap_or(0.0);
    assert!(mos > 4.0, "MOS {mos}: {stdout}");
    let png = std::fs::read(&plot).unwrap();
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 10_000,
        "{stdout}"
    );
}

#[test]
fn errors_are_one_line() {
    // Nobody listens there.
    let out = Command::new(load_bin())
        .args([
            "run",
            "--server",
            "127.0.0.1:9",
            "--users",
            "1",
            "--duration",
            "1s",
        ])
        .args(["--media-ports", "47780-47799"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("does not answer") && err.lines().count() == 1,
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
    // TLS without a certificate to trust.
    assert!(
        refused(&["run", "--transport", "tls"])
            .starts_with("chorus-load: --transport tls needs --tls-ca FILE")
    );
    // A bad combination of flags.
    assert_eq!(
        refused(&["run", "--talkers", "4", "--conference-size", "3"]),
        "chorus-load: --talkers 4 is more than --conference-size 3"
    );
    // Janus: nobody listens there; flags it cannot take.
    let out = Command::new(load_bin())
        .args(["run", "--target", "janus", "--srtp", "none"])
        .args(["--janus-url", "http://127.0.0.1:9/janus", "--users", "1"])
        .args(["--media-ports", "47780-47799"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.starts_with("chorus-load: Janus at http://127.0.0.1:9/janus does not answer")
            && err.lines().count() == 1,
        "{err}"
    );
    assert_eq!(
        refused(&["run", "--target", "janus"]),
        "chorus-load: --target janus takes plain-RTP participants only: add --srtp none"
    );
    assert!(
        refused(&[
            "run",
            "--target",
            "janus",
            "--srtp",
            "none",
            "--janus-url",
            "https://x"
        ])
        .contains("need an http:// URL")
    );
}

/// What chorus-load says when it refuses `args` (exit 2, one line).
fn refused(args: &[&str]) -> String {
    let out = Command::new(load_bin()).args(args).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr).trim().to_owned();
    assert_eq!(out.status.code(), Some(2), "{err}");
    err
}

/// Silence the way gateways and Opus phones send it: talkers fall silent between bursts and
/// the others stay silent, as RFC 3389 comfort noise (PCMU) and as Opus DTX. The server's
/// jitter buffers take the gaps as silence, not loss, and every caller still hears exactly its
/// conference's other talkers. Then callers over SIP over TLS.
#[test]
fn callers_sending_comfort_noise_or_dtx_still_hear_their_talkers() {
    let server = Serve::start("silence", "46700-46749");
    for (codec, silence) in [("pcmu", "cn"), ("opus", "dtx")] {
        let out = Command::new(load_bin())
            .args(["run", "--server", &format!("127.0.0.1:{}", server.port)])
            .args(["--users", "30", "--conference-size", "10", "--talkers", "3"])
            .args(["--duration", "10s", "--ramp", "30/s", "--codec", codec])
            .args([
                "--silence",
                silence,
                "--dial",
                "ivr",
                "--media-ports",
                "46750-46799",
            ])
            .args(["--progress", "false"])
            .output()
            .expect("chorus-load runs");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{codec} {silence}: {stdout}{stderr}");
        assert!(
            stdout.contains("audio checked         30 callers, 0 wrong"),
            "{codec} {silence}: {stdout}"
        );
    }
    // SIP over TLS, the server's generated certificate trusted.
    let out = Command::new(load_bin())
        .args(["run", "--server", &format!("127.0.0.1:{}", server.tls_port)])
        .args(["--transport", "tls", "--tls-ca"])
        .arg(server.dir.join("tls/cert.pem"))
        .args(["--server-pid", &server.child.id().to_string()])
        .args([
            "--users",
            "20",
            "--duration",
            "8s",
            "--ramp",
            "20/s",
            "--dial",
            "ivr",
        ])
        .args(["--media-ports", "46750-46799", "--progress", "false"])
        .output()
        .expect("chorus-load runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "tls: {stdout}{stderr}");
    assert!(
        stdout.contains("calls established     20") && stdout.contains("20 callers, 0 wrong"),
        "tls: {stdout}"
    );
    // A mode that does not fit the codec is one line.
    assert_eq!(
        refused(&["run", "--codec", "pcmu", "--silence", "dtx"]),
        "chorus-load: --silence dtx needs --codec opus (DTX is Opus's)"
    );
}
