//! Dial-in conferencing end to end: an operator creates a conference with the CLI, real phones
//! (baresip, SDES SRTP) call the IVR number, hear the prompts, key the conference ID and PIN,
//! and talk; each hears the others and not itself, and a caller who mutes is no longer heard.

mod common;

use common::baresip::{Baresip, read_wav};
use common::sip::Server;

/// Conference 4711 with PIN 2468 is created with `chorus conference create` while the server
/// runs (ad-hoc conferences off). Three callers with distinct tones (350, 620 and 1,100 Hz;
/// the third on Opus, the others on PCMU) dial `conf`, listen to the welcome prompt, key
/// `4711#` and `2468#`, and stay 17 s; the third presses `*6` 11 s in.
#[test]
fn three_callers_hear_each_other_through_the_ivr_and_mute_works() {
    let server = Server::start_with(
        "conference",
        "45400-45499",
        false,
        &["--allow-adhoc", "false"],
    );
    let created = std::process::Command::new(env!("CARGO_BIN_EXE_chorus"))
        .args([
            "conference",
            "create",
            "4711",
            "--pin",
            "2468",
            "--record",
            "--data-dir",
        ])
        .arg(&server.dir)
        .output()
        .unwrap();
    assert!(created.status.success(), "{created:?}");
    let script = |name, codec, freq, rtp_ports, keys| Baresip {
        name,
        user: "conf",
        codec,
        freq,
        talk: (0.0, f64::INFINITY),
        rtp_ports,
        secs: 17,
        keys,
        video: false,
    };
    let callers = [
        script(
            "a",
            "PCMU",
            350.0,
            "46000-46099",
            &[(2_500, "4711#"), (4_000, "2468#")][..],
        ),
        script(
            "b",
            "PCMU",
            620.0,
            "46100-46199",
            &[(2_500, "4711#"), (4_000, "2468#")][..],
        ),
        script(
            "c",
            "opus/48000/2",
            1_100.0,
            "46200-46299",
            &[(2_500, "4711#"), (4_000, "2468#"), (11_000, "*6")][..],
        ),
    ];
    let calls = Baresip::call_together(&callers, &server);
    let log = server.log();
    // What the caller heard when, the server's account, then the caller's (the start of a
    // failure message survives truncation best).
    let freqs: Vec<f64> = callers.iter().map(|c| c.freq).collect();
    let brief: String = (log.lines())
        .filter(|l| !l.contains("DEBUG"))
        .map(|l| format!("{}\n", l.get(11..).unwrap_or(l)))
        .collect();
    let context = |i: usize| {
        let heard = calls[i].heard.timeline(&freqs);
        format!(
            "caller {i} heard:\n{heard}server:\n{brief}caller {i}:\n{}",
            calls[i].log
        )
    };
    for (i, call) in calls.iter().enumerate() {
        assert!(call.log.contains("Call established"), "{}", context(i));
        assert!(
            call.log.contains("cryptosuite=AES_CM_128_HMAC_SHA1_80"),
            "{}",
            context(i)
        );
        assert!(
            call.heard.secs() > 12.0,
            "{:.1} s recorded: {}",
            call.heard.secs(),
            context(i)
        );
        // Before the keys: the welcome prompt (speech), none of the tones.
        let h = &call.heard;
        assert!(
            h.rms(0.4, 2.0) > 300.0,
            "prompt level {:.0}: {}",
            h.rms(0.4, 2.0),
            context(i)
        );
        for c in &callers {
            assert!(h.tone_share(c.freq, 0.4, 2.0) < 0.05, "{}", context(i));
        }
    }
    assert_eq!(log.matches("joined conference 4711").count(), 3, "{log}");
    // Together (after the announcements), before the mute: the other two tones, not its own.
    for (i, call) in calls.iter().enumerate() {
        for (j, c) in callers.iter().enumerate() {
            let share = call.heard.tone_share(c.freq, 8.0, 10.8);
            if i == j {
                assert!(
                    share < 0.02,
                    "caller {i} hears itself ({share:.3}): {}",
                    context(i)
                );
            } else {
                assert!(
                    share > 0.15,
                    "caller {i} hears {j} at {share:.3}: {}",
                    context(i)
                );
            }
        }
    }
    // After the third muted itself: the first two no longer hear it, and it still hears them.
    for i in 0..2 {
        let share = calls[i].heard.tone_share(1_100.0, 12.5, 15.5);
        assert!(
            share < 0.02,
            "caller {i} still hears the muted caller ({share:.3}): {}",
            context(i)
        );
        let other = callers[1 - i].freq;
        assert!(
            calls[i].heard.tone_share(other, 12.5, 15.5) > 0.3,
            "{}",
            context(i)
        );
    }
    for c in &callers[..2] {
        assert!(
            calls[2].heard.tone_share(c.freq, 12.5, 15.5) > 0.15,
            "{}",
            context(2)
        );
    }
    assert!(log.contains("muted"), "{log}");

    // The conference was recorded from its start (the --record flag): the file in the data
    // directory holds the mix, every talker's tone while all three talked.
    let recordings: Vec<_> = std::fs::read_dir(server.dir.join("recordings"))
        .unwrap_or_else(|e| panic!("no recordings directory ({e}): {log}"))
        .flatten()
        .map(|e| e.path())
        .collect();
    assert_eq!(recordings.len(), 1, "{recordings:?}");
    let wav = read_wav(&std::fs::read(&recordings[0]).unwrap());
    assert_eq!(wav.rate, 16_000);
    assert!(wav.secs() > 10.0, "{:.1} s recorded", wav.secs());
    // The recording starts when the first caller joins, about 5 s into the calls; the third
    // caller mutes about 6 s later.
    let (from, to) = (2.0, 5.0);
    for c in &callers {
        let share = wav.tone_share(c.freq, from, to);
        assert!(share > 0.1, "{} Hz at {share:.3} in the recording", c.freq);
    }
}

/// With `--span-after 1` a conference takes its second caller on whatever core the call is on
/// (the server spreads calls over its two cores) and spans the cores, exchanging partial mixes
/// each tick: two callers on different cores still hear each other and not themselves.
#[test]
fn callers_on_two_cores_hear_each_other_when_the_conference_spans_them() {
    let server = Server::start_with(
        "conference-span",
        "45500-45599",
        false,
        &["--span-after", "1"],
    );
    let script = |name, freq, rtp_ports| Baresip {
        name,
        user: "conf",
        codec: "PCMU",
        freq,
        talk: (0.0, f64::INFINITY),
        rtp_ports,
        secs: 10,
        keys: &[(1_500, "5151#")],
        video: false,
    };
    let callers = [
        script("span-a", 350.0, "46300-46399"),
        script("span-b", 620.0, "46400-46499"),
    ];
    let calls = Baresip::call_together(&callers, &server);
    let log = server.log();
    assert!(log.contains("spans cores"), "{log}");
    assert!(!log.contains("moving media leg"), "{log}");
    for (i, call) in calls.iter().enumerate() {
        let own = callers[i].freq;
        let other = callers[1 - i].freq;
        let (mine, theirs) = (
            call.heard.tone_share(own, 6.0, 9.0),
            call.heard.tone_share(other, 6.0, 9.0),
        );
        let context = || {
            let heard = call.heard.timeline(&[own, other]);
            format!(
                "caller {i} heard:\n{heard}server:\n{log}\ncaller {i}:\n{}",
                call.log
            )
        };
        assert!(
            mine < 0.02,
            "caller {i} hears itself ({mine:.3}): {}",
            context()
        );
        assert!(
            theirs > 0.3,
            "caller {i} hears the other at {theirs:.3}: {}",
            context()
        );
    }
}

/// The active speaker's picture with real video phones: three baresips send VP8 and key the
/// conference; A talks first and stops, then B talks, C never does. C (a SIP endpoint, one
/// stream) is switched from A's picture to B's, at a key frame, and keeps decoding.
#[test]
fn a_video_phone_follows_the_active_speaker() {
    let server = Server::start_with("conference-speaker", "46500-46549", false, &[]);
    let script = |name, freq, talk, rtp_ports| Baresip {
        name,
        user: "conf",
        codec: "PCMU",
        freq,
        talk,
        rtp_ports,
        secs: 16,
        keys: &[(2_500, "5353#")],
        video: true,
    };
    let callers = [
        script("speaker-a", 350.0, (0.0, 9.0), "46550-46565"),
        script("speaker-b", 620.0, (10.0, f64::INFINITY), "46566-46581"),
        script("speaker-c", 1_100.0, (0.0, 0.0), "46582-46597"),
    ];
    let calls = Baresip::call_together(&callers, &server);
    let log = server.log();
    // Which leg is whose: "video negotiated leg=legN ... remote=127.0.0.1:PORT", PORT in the
    // caller's range.
    let leg_of = |caller: usize| -> String {
        let (lo, hi) = callers[caller].rtp_ports.split_once('-').unwrap();
        let range = lo.parse::<u16>().unwrap()..=hi.parse::<u16>().unwrap();
        (log.lines())
            .filter(|l| l.contains("video negotiated"))
            .find(|l| {
                common::sip::log_field(l, "remote")
                    .and_then(|r| r.rsplit(':').next()?.parse::<u16>().ok())
                    .is_some_and(|p| range.contains(&p))
            })
            .and_then(|l| common::sip::log_field(l, "leg"))
            .unwrap_or_else(|| panic!("caller {caller}'s video: {log}"))
            .to_owned()
    };
    let (a, b, c) = (leg_of(0), leg_of(1), leg_of(2));
    let sources: Vec<String> = (log.lines())
        .filter(|l| l.contains("video switched") && common::sip::log_field(l, "leg") == Some(&c))
        .filter_map(|l| common::sip::log_field(l, "source").map(str::to_owned))
        .collect();
    let first_a = sources.iter().position(|s| *s == a);
    let b_after_a = first_a.is_some_and(|i| sources[i..].contains(&b));
    assert!(
        b_after_a,
        "C ({c}) follows A ({a}) then B ({b}): switched to {sources:?}\n{log}"
    );
    calls[2].assert_decodes_video("C", &log);
}

/// Video through the SFU with real video phones: two baresips send VP8 (its `fakevideo`
/// test picture, 320x240 at 15 fps, SDES SRTP on its own m=video) and a third calls with
/// audio only; all three key the conference ID in the IVR. Each video caller decodes the
/// other's picture (a SIP endpoint with one m=video gets the active speaker's), the phone
/// caller and the video callers hear each other through the mixer, and the server's final
/// counters show video in from and out to both video legs and none for the phone.
#[test]
fn video_phones_see_each_other_and_a_phone_caller_hears_them() {
    let server = Server::start_with("conference-video", "36000-36049", false, &[]);
    let script = |name, freq, rtp_ports, video| Baresip {
        name,
        user: "conf",
        codec: "PCMU",
        freq,
        talk: (0.0, f64::INFINITY),
        rtp_ports,
        secs: 12,
        keys: &[(2_500, "5252#")],
        video,
    };
    let callers = [
        script("video-a", 350.0, "36050-36065", true),
        script("video-b", 620.0, "36066-36081", true),
        script("phone-c", 1_100.0, "36082-36097", false),
    ];
    let calls = Baresip::call_together(&callers, &server);
    let log = server.log();
    for (i, call) in calls.iter().enumerate() {
        let context = || format!("caller {i}:\n{}\n{}\nserver:\n{log}", call.status, call.log);
        for (j, other) in callers.iter().enumerate().filter(|(j, _)| *j != i) {
            let heard = call.heard.tone_share(other.freq, 7.0, 11.0);
            assert!(
                heard > 0.1,
                "caller {i} hears {j} at {heard:.3}: {}",
                context()
            );
        }
        if !callers[i].video {
            continue;
        }
        call.assert_decodes_video(&format!("caller {i}"), &log);
    }
    let removed = server.wait_log_lines("media leg removed", 3, std::time::Duration::from_secs(3));
    let field = |line: &str, key: &str| {
        common::sip::log_field(line, key)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or_else(|| panic!("{key} in {line}"))
    };
    let with_video = removed
        .iter()
        .filter(|l| field(l, "video_rtp_in") > 100 && field(l, "video_out") > 100)
        .count();
    let without = removed
        .iter()
        .filter(|l| field(l, "video_rtp_in") == 0 && field(l, "video_out") == 0)
        .count();
    assert_eq!((with_video, without), (2, 1), "{removed:?}\n{log}");
}
