//! `chorus conference` and `chorus cdr` as an operator runs them: the real binary on a
//! scratch data directory, alone and next to a running `chorus serve` on the same directory
//! (which holds the directory's lock; these subcommands must not need it), and the call
//! records a crash left open, closed as interrupted by the next start.
//!
//! Media ports 46800-46899 are this file's.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::sip::Server;
use rusqlite::Connection;

const MEDIA: &str = "46800-46899";

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("chorus-conf-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// `chorus ARGS --data-dir DIR`.
fn chorus(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_chorus"))
        .args(args)
        .arg("--data-dir")
        .arg(dir)
        .output()
        .expect("chorus runs")
}

fn out(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn err(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Exit 2 with one readable line on stderr containing `needle`, no panic.
fn assert_refused(o: &Output, needle: &str) {
    let e = err(o);
    assert_eq!(o.status.code(), Some(2), "stderr: {e}");
    assert!(e.contains(needle), "{needle:?} not in: {e}");
    assert_eq!(e.trim_end().lines().count(), 1, "one line: {e}");
    assert!(e.starts_with("chorus: "), "{e}");
    assert!(!e.contains("panicked"), "{e}");
}

#[test]
fn create_list_show_duplicate_delete() {
    let dir = scratch("lifecycle");
    // PINs of 5 and 6 digits: no timestamp printed can contain them by chance.
    let o = chorus(
        &dir,
        &[
            "conference",
            "create",
            "4711",
            "--pin",
            "97531",
            "--moderator-pin",
            "864208",
            "--name",
            "Weekly sync",
            "--max",
            "20",
            "--record",
        ],
    );
    assert!(o.status.success(), "{}", err(&o));
    assert!(out(&o).contains("conference 4711 created"), "{}", out(&o));
    let o = chorus(&dir, &["conference", "create", "12"]);
    assert!(o.status.success(), "{}", err(&o));

    let list = chorus(&dir, &["conference", "list"]);
    assert!(list.status.success(), "{}", err(&list));
    let text = out(&list);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "header and two rows: {text}");
    assert!(
        lines[0].starts_with("ID") && lines[0].contains("PIN"),
        "{text}"
    );
    assert!(lines[1].starts_with("12 "), "{text}");
    assert!(
        lines[2].starts_with("4711")
            && lines[2].contains("Weekly sync")
            && lines[2].contains("set"),
        "{text}"
    );
    assert!(lines[2].contains("record"), "{text}");

    let show = chorus(&dir, &["conference", "show", "4711"]);
    assert!(show.status.success(), "{}", err(&show));
    let text = out(&show);
    for line in [
        "conference: 4711",
        "name: Weekly sync",
        "pin: set",
        "moderator pin: set",
        "max participants: 20",
        "record: yes",
        "wait for moderator: no",
    ] {
        assert!(text.lines().any(|l| l == line), "{line:?} not in:\n{text}");
    }
    // --data-dir also goes before the subcommand.
    let show12 = Command::new(env!("CARGO_BIN_EXE_chorus"))
        .args([
            "conference",
            "--data-dir",
            dir.to_str().unwrap(),
            "show",
            "12",
        ])
        .output()
        .unwrap();
    assert!(out(&show12).contains("pin: none"), "{}", err(&show12));
    // PINs are never printed, nor stored in clear.
    let db = std::fs::read(dir.join("chorus.db")).unwrap();
    for pin in ["97531", "864208"] {
        assert!(
            !text.contains(pin) && !out(&list).contains(pin),
            "{pin} printed"
        );
        assert!(
            !db.windows(pin.len()).any(|w| w == pin.as_bytes()),
            "{pin} stored in clear"
        );
    }

    assert_refused(
        &chorus(&dir, &["conference", "create", "4711"]),
        "conference 4711 already exists",
    );
    let o = chorus(&dir, &["conference", "delete", "4711"]);
    assert!(o.status.success(), "{}", err(&o));
    assert!(out(&o).contains("conference 4711 deleted"));
    assert_refused(
        &chorus(&dir, &["conference", "show", "4711"]),
        "no conference 4711",
    );
    assert_refused(
        &chorus(&dir, &["conference", "delete", "4711"]),
        "no conference 4711",
    );
    let text = out(&chorus(&dir, &["conference", "list"]));
    assert!(!text.contains("4711") && text.contains("12"), "{text}");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn bad_input_is_one_line_and_exit_2() {
    let dir = scratch("bad");
    let create = |extra: &[&str]| {
        let mut args = vec!["conference", "create"];
        args.extend_from_slice(extra);
        chorus(&dir, &args)
    };
    assert_refused(
        &create(&["99", "--pin", "12"]),
        "PIN must be 3 to 12 digits",
    );
    assert_refused(
        &create(&["99", "--pin", "1234567890123"]),
        "PIN must be 3 to 12 digits",
    );
    assert_refused(
        &create(&["99", "--moderator-pin", "12ab"]),
        "moderator PIN must be digits only",
    );
    assert_refused(
        &create(&["99", "--pin", "1234", "--moderator-pin", "1234"]),
        "must differ",
    );
    assert_refused(&create(&["12a"]), "must be digits only");
    assert_refused(
        &create(&["123456789012345678901"]),
        "must be at most 20 digits",
    );
    assert_refused(&create(&["99", "--max", "0"]), "max participants");
    assert_refused(
        &chorus(&dir, &["conference", "show", "x1"]),
        "must be digits only",
    );
    assert_refused(
        &chorus(&dir, &["cdr", "--conference", "abc"]),
        "must be digits only",
    );
    // Nothing was created by the refusals, not even an empty database.
    assert!(!dir.join("chorus.db").exists());
    assert_eq!(
        out(&chorus(&dir, &["conference", "list"])).trim(),
        "no conferences"
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn conference_created_while_the_server_runs_is_seen_at_once() {
    let dir = scratch("live");
    let server = Server::start_in(&dir, MEDIA, false, &["--io", "syscalls"]);
    assert!(
        server.log().contains("no call records left open"),
        "{}",
        server.log()
    );
    // The server holds the data directory's lock and has the database open...
    let db = Connection::open(dir.join("chorus.db")).unwrap();
    let count = |id: &str| -> i64 {
        db.query_row(
            "SELECT count(*) FROM conferences WHERE id = ?1",
            [id],
            |r| r.get(0),
        )
        .unwrap()
    };
    assert_eq!(count("555"), 0);
    // ...and the subcommands work all the same, without its lock.
    let o = chorus(&dir, &["conference", "create", "555", "--pin", "5555"]);
    assert!(o.status.success(), "{}", err(&o));
    // Another connection (as the server's lookups are) sees it at once: no restart, no cache.
    assert_eq!(count("555"), 1);
    let journal: String = db
        .pragma_query_value(None, "journal_mode", |r| r.get(0))
        .unwrap();
    assert_eq!(journal, "wal");
    let list = out(&chorus(&dir, &["conference", "list"]));
    assert!(list.contains("555"), "{list}");
    let o = chorus(&dir, &["conference", "delete", "555"]);
    assert!(o.status.success(), "{}", err(&o));
    assert_eq!(count("555"), 0);
    assert!(out(&chorus(&dir, &["cdr"])).starts_with("ID"));

    let (code, log) = server.stop();
    assert_eq!(code, Some(0), "{log}");
    assert!(log.contains("stopped cleanly"), "{log}");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn records_left_open_by_a_crash_are_closed_at_the_next_start() {
    let dir = scratch("interrupted");
    // A database as a server that crashed mid-call leaves it: a conference instance and two
    // legs still open (one in the conference, one still in the IVR), one leg closed.
    let o = chorus(&dir, &["conference", "create", "4711"]);
    assert!(o.status.success(), "{}", err(&o));
    {
        let db = Connection::open(dir.join("chorus.db")).unwrap();
        db.execute_batch(
            "INSERT INTO cdr_conferences (conference_id, started_at) VALUES ('4711', 1700000000000);
             INSERT INTO cdr_legs (leg_id, call_id, caller, source, conference_id, role, joined_at,
                 last_seen_at, codec, srtp_suite, packets_in, packets_out)
             VALUES (1, 'a@test', 'sip:alice@example.test', '127.0.0.1:5071', '4711',
                 'moderator', 1700000000000, 1700000060000, 'PCMU', 'AEAD_AES_128_GCM', 3000, 2990);
             INSERT INTO cdr_legs (leg_id, call_id, caller, source, joined_at, codec)
             VALUES (2, 'b@test', 'sip:bob@example.test', '127.0.0.1:5072', 1700000010000, 'opus');
             INSERT INTO cdr_legs (leg_id, call_id, caller, source, conference_id, joined_at,
                 left_at, codec, end_reason)
             VALUES (3, 'c@test', 'sip:carol@example.test', '127.0.0.1:5073', '4711',
                 1700000001000, 1700000030000, 'G722', 'caller-hangup');",
        )
        .unwrap();
    }
    let before = out(&chorus(&dir, &["cdr"]));
    assert_eq!(before.lines().count(), 4, "{before}");
    assert_eq!(before.matches("(open)").count(), 2, "{before}");

    let server = Server::start_in(&dir, MEDIA, false, &["--io", "syscalls"]);
    let (code, log) = server.stop();
    assert_eq!(code, Some(0), "{log}");
    let line = log
        .lines()
        .find(|l| l.contains("closed call records left open"))
        .unwrap_or_else(|| panic!("no count of closed records in the log: {log}"));
    assert!(
        line.contains("legs=2") && line.contains("conferences=1"),
        "{line}"
    );

    // The table: newest first, the two open legs now interrupted at their last known time.
    let table = out(&chorus(&dir, &["cdr"]));
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 4, "{table}");
    assert!(lines[0].starts_with("ID") && lines[0].contains("CALLER"));
    assert!(lines[1].contains("sip:carol@example.test") && lines[1].contains("caller-hangup"));
    assert!(lines[2].contains("sip:bob@example.test") && lines[2].contains("interrupted"));
    assert!(lines[3].contains("sip:alice@example.test") && lines[3].contains("interrupted"));
    assert!(
        lines[3].contains("60.0"),
        "alice's last checkpoint: {table}"
    );
    assert!(!table.contains("(open)"), "{table}");

    // JSON lines, filtered and limited.
    let json = chorus(&dir, &["cdr", "--json", "--conference", "4711"]);
    assert!(json.status.success(), "{}", err(&json));
    let rows: Vec<serde_json::Value> = out(&json)
        .lines()
        .map(|l| serde_json::from_str(l).expect("each line is one JSON object"))
        .collect();
    assert_eq!(rows.len(), 2, "conference 4711's legs only: {rows:?}");
    let alice = &rows[1];
    assert_eq!(alice["caller"], "sip:alice@example.test");
    assert_eq!(alice["conference"], "4711");
    assert_eq!(alice["role"], "moderator");
    assert_eq!(alice["joined_at"], "2023-11-14T22:13:20.000Z");
    assert_eq!(alice["left_at"], "2023-11-14T22:14:20.000Z");
    assert_eq!(alice["duration_s"], 60.0);
    assert_eq!(alice["srtp"], "AEAD_AES_128_GCM");
    assert_eq!(alice["packets_in"], 3000);
    assert_eq!(alice["end_reason"], "interrupted");
    assert_eq!(alice["mos"], serde_json::Value::Null);
    let one = out(&chorus(&dir, &["cdr", "--json", "--limit", "1"]));
    assert_eq!(one.lines().count(), 1, "{one}");
    assert!(one.contains("carol"), "{one}");

    let confs = out(&chorus(&dir, &["cdr", "--conferences", "--json"]));
    let c: serde_json::Value = serde_json::from_str(confs.trim()).unwrap();
    assert_eq!(c["conference"], "4711");
    assert_eq!(c["end_reason"], "interrupted");
    assert_eq!(c["ended_at"], "2023-11-14T22:14:20.000Z");
    assert_eq!(c["participants_total"], 2);

    // A clean restart finds nothing left open.
    let server = Server::start_in(&dir, MEDIA, false, &["--io", "syscalls"]);
    let (code, log) = server.stop();
    assert_eq!(code, Some(0), "{log}");
    assert!(log.contains("no call records left open"), "{log}");
    let _ = std::fs::remove_dir_all(dir);
}
