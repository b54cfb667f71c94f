//! `chorus-load --video` against a real `chorus serve`: two conferences of three video
//! callers, each publishing the simulcast H.264 clip (180p/360p/720p) and taking the other
//! two's streams. In each conference the first subscriber's path loses 3% of packets and
//! the last one's is capped to 300 kbit/s five seconds in. Every subscriber must get video
//! with no frame broken after retransmission; the lossy ones must have NACKed and been
//! repaired over RTX; the capped ones must end on a lower layer than the clean ones.

mod common;

use std::process::Command;

use common::{Serve, load_bin};

#[test]
fn video_rooms_repair_loss_and_fit_capped_subscribers() {
    // Two cores: callers placed on the other core are moved to their conference's with a
    // re-INVITE, whose video must keep its format, simulcast and layout.
    let server = Serve::start_on("video", "63300-63399", 2);
    let json = server.dir.join("video.json");
    let out = Command::new(load_bin())
        .args(["run", "--server", &format!("127.0.0.1:{}", server.port)])
        .args(["--users", "6", "--conference-size", "3", "--talkers", "1"])
        .args(["--duration", "16s", "--ramp", "10/s", "--dial", "ivr"])
        .args([
            "--media-ports",
            "63400-63449",
            "--video-ports",
            "63450-63499",
        ])
        .args(["--video", "--video-loss", "3", "--video-lossy", "1"])
        .args(["--video-bandwidth", "300", "--video-limited", "1"])
        .args(["--video-limit-after", "5s", "--progress", "false", "--json"])
        .arg(&json)
        .output()
        .expect("chorus-load runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}{stderr}");
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(v["established"].as_u64(), Some(6), "{stdout}");
    let video = &v["video"];
    let subs = video["subscribers"].as_array().unwrap();
    assert_eq!(subs.len(), 6, "{stdout}");
    let u = |s: &serde_json::Value, k: &str| s[k].as_u64().unwrap_or(0);
    for s in subs {
        // Two other publishers: two streams, each with frames, none broken.
        assert_eq!(s["streams"].as_array().map(Vec::len), Some(2), "{s}");
        assert!(u(s, "frames") > 300, "{s}");
        assert_eq!(u(s, "broken"), 0, "{s}");
    }
    for conference in [7_000, 7_001] {
        let room: Vec<&serde_json::Value> = (subs.iter())
            .filter(|s| s["conference"].as_u64() == Some(conference))
            .collect();
        let [lossy, clean, capped] = room[..] else {
            panic!("conference {conference}: {room:?}");
        };
        assert_eq!(lossy["loss_pct"].as_f64(), Some(3.0), "{lossy}");
        assert!(u(lossy, "dropped_loss") > 20, "{lossy}");
        assert!(
            u(lossy, "nacked") > 0 && u(lossy, "rtx_received") > 0,
            "{lossy}"
        );
        assert_eq!(u(lossy, "rtx_unmatched"), 0, "{lossy}");
        assert_eq!(capped["limit_kbps"].as_u64(), Some(300), "{capped}");
        let (h_capped, h_clean) = (u(capped, "final_height"), u(clean, "final_height"));
        assert!(
            h_capped < h_clean,
            "capped {h_capped}p, clean {h_clean}p: {stdout}"
        );
        assert!(
            !capped["switch_ms"].as_array().unwrap().is_empty(),
            "{capped}"
        );
    }
    let p50 = video["switch_ms"]["p50"].as_f64().unwrap();
    assert!(p50 < 2_000.0, "switch p50 {p50} ms");
    assert!(
        stdout.contains("video callers         6 (6 publishing)"),
        "{stdout}"
    );
}

#[test]
fn video_flags_are_refused_in_one_line() {
    let refused = |args: &[&str]| {
        let out = Command::new(load_bin()).args(args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        String::from_utf8_lossy(&out.stderr).trim().to_owned()
    };
    assert_eq!(
        refused(&["run", "--video-loss", "3"]),
        "chorus-load: --video-loss needs --video"
    );
    assert_eq!(
        refused(&["run", "--video", "--video-limited", "2"]),
        "chorus-load: --video-limited needs --video-bandwidth KBPS"
    );
    assert_eq!(
        refused(&[
            "run",
            "--video",
            "--conference-size",
            "3",
            "--video-publishers",
            "5"
        ]),
        "chorus-load: --video-publishers 5 is more than --conference-size 3"
    );
    assert_eq!(
        refused(&["run", "--video", "--target", "janus", "--srtp", "none"]),
        "chorus-load: --video works with --target sip only (AudioBridge has no video)"
    );
}
