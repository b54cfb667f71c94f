//! Fuzzes the SDES `a=crypto:` attribute parser (RFC 4568) and re-emission of what it accepts.
#![no_main]

use chorus_engine::srtp::sdes::CryptoAttribute;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(attr) = CryptoAttribute::parse(text) {
        // What we accept, we can write back, and it parses to the same thing.
        let again = CryptoAttribute::parse(&attr.to_string()).expect("re-emitted attribute parses");
        assert_eq!(again.suite, attr.suite);
    }
});
