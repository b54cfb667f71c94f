//! Why Chorus parses SIP itself: rsip's verdicts on the RFC 4475 torture messages against
//! ours (whose verdicts are the RFC's, as `message::rfc4475`'s tests check).
//!
//! `cargo run -p chorus-signaling --example rsip_rfc4475` (reads `../shared/testdata/rfc4475/`).

use chorus_signaling::message::SipMessage;

fn main() {
    let dir = format!(
        "{}/../../shared/testdata/rfc4475",
        env!("CARGO_MANIFEST_DIR")
    );
    let mut names: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{dir}: {e}"))
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "dat"))
        .collect();
    names.sort();
    let (mut agree, mut valid_refused, mut malformed_taken) = (0, Vec::new(), Vec::new());
    for path in &names {
        let bytes = std::fs::read(path).expect("readable");
        let name = path.file_stem().unwrap_or_default().to_string_lossy();
        let ours = SipMessage::parse(&bytes).is_ok();
        let theirs = std::panic::catch_unwind(|| rsip::SipMessage::try_from(bytes.as_slice()))
            .map(|r| r.is_ok())
            .unwrap_or(false);
        match (ours, theirs) {
            (a, b) if a == b => agree += 1,
            (true, false) => valid_refused.push(name.to_string()),
            _ => malformed_taken.push(name.to_string()),
        }
    }
    println!(
        "rsip agrees with the RFC 4475 verdict on {agree} of {} messages",
        names.len()
    );
    println!(
        "parseable messages rsip refuses: {}",
        valid_refused.join(", ")
    );
    println!(
        "malformed messages rsip accepts: {}",
        malformed_taken.join(", ")
    );
}
