//! RFC 4475 "SIP Torture Test Messages": one test per message of the Appendix A archive, an
//! explicit verdict table, and robustness sweeps (every truncation, seeded byte flips) over the
//! parser, the error-response builder and the stream framer.
//!
//! The verdicts are those of a conferencing server acting as a UAS: where RFC 4475 describes
//! proxy behaviour (zeromf, bcast), the UAS answer is checked instead.

use super::*;

/// What a conferencing UAS does with a torture message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    /// Parses; a request is handled normally (`uas_verdict` gives 200).
    Accept,
    /// Parses; the application answers this status (RFC 4475 section 3.3).
    Answer(u16),
    /// Parses but is a response that must be dropped (bcast: more than one Via).
    DropResponse,
    /// Parse fails; the error response carries this status.
    Reject(u16),
    /// Parse fails and no response can or may be sent (a response, or no Via).
    RejectSilently,
}

use Verdict::*;

/// RFC 4475 section 3 (plus test.dat from the archive), in the README's grouping.
const VERDICTS: [(&str, Verdict); 50] = [
    // 3.1.1 valid messages
    ("wsinv", Accept),
    ("intmeth", Answer(501)),
    ("esc01", Accept),
    ("escnull", Accept),
    ("esc02", Answer(501)),
    ("lwsdisp", Accept),
    ("longreq", Accept),
    ("dblreq", Accept),
    ("semiuri", Accept),
    ("transports", Accept),
    ("mpart01", Accept),
    ("unreason", Accept),
    ("noreason", Accept),
    // 3.1.2 invalid messages
    ("badinv01", Reject(400)),
    ("clerr", Reject(400)),
    ("ncl", Reject(400)),
    ("scalar02", Reject(400)),
    ("scalarlg", RejectSilently),
    ("quotbal", Reject(400)),
    ("ltgtruri", Reject(400)),
    ("lwsruri", Reject(400)),
    ("lwsstart", Reject(400)),
    ("trws", Reject(400)),
    ("escruri", Reject(400)),
    ("baddate", Reject(400)),
    ("regbadct", Reject(400)),
    ("badaspec", Reject(400)),
    ("baddn", Reject(400)),
    ("badvers", Reject(505)),
    ("mismatch01", Reject(400)),
    ("mismatch02", Reject(400)),
    ("bigcode", RejectSilently),
    // 3.2 transaction layer
    ("badbranch", Accept),
    // 3.3 application layer
    ("insuf", Answer(400)),
    ("unkscm", Answer(416)),
    ("novelsc", Answer(416)),
    ("unksm2", Answer(400)),
    ("bext01", Answer(420)),
    ("invut", Answer(415)),
    ("regaut01", Answer(401)),
    ("multi01", Reject(400)),
    ("mcl01", Reject(400)),
    ("bcast", DropResponse),
    ("zeromf", Accept),
    ("cparam01", Accept),
    ("cparam02", Accept),
    ("regescrt", Accept),
    ("sdp01", Answer(406)),
    // 3.4 backward compatibility
    ("inv2543", Accept),
    // Shipped in the archive, not described in the RFC: no SIP version, a header without colon,
    // no Via to answer to.
    ("test", RejectSilently),
];

fn load(name: &str) -> Vec<u8> {
    let path = format!(
        "{}/../../shared/testdata/rfc4475/{name}.dat",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read(&path).unwrap_or_else(|e| {
        panic!(
            "{path}: {e}. The RFC 4475 messages come from the shared/ folder that sits beside \
             the checkout (as in CI and the work tree)."
        )
    })
}

fn verdict_of(name: &str) -> Verdict {
    VERDICTS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, v)| *v)
        .unwrap_or_else(|| panic!("{name} missing from VERDICTS"))
}

/// The checks a conferencing UAS makes after parsing, in RFC 3261 section 8.2 order, using
/// only the message layer's accessors. 200 means "handled normally".
fn uas_verdict(m: &SipMessage) -> u16 {
    const KNOWN: [&str; 7] = [
        "INVITE", "ACK", "BYE", "CANCEL", "OPTIONS", "REGISTER", "MESSAGE",
    ];
    if !m.missing_mandatory().is_empty() {
        return 400;
    }
    // 8.2.1: a method the UAS does not know gets 501.
    if !m.method().is_some_and(|x| KNOWN.contains(&x.as_str())) {
        return 501;
    }
    // 8.2.2.1: 416 is about the Request-URI only.
    if !m.uri().is_some_and(Uri::is_sip) {
        return 416;
    }
    // RFC 4475 3.3.4: other schemes in To/From/Contact parse fine; a registrar answers 400
    // because a REGISTER's To must be a SIP or SIPS address-of-record.
    if m.method().is_some_and(|x| x.as_str() == "REGISTER")
        && !m.to().is_some_and(|t| t.uri.is_sip())
    {
        return 400;
    }
    // 8.2.2.3: Require with unknown options.
    if !m.unsupported_options(&["timer", "100rel"]).is_empty() {
        return 420;
    }
    // 8.2.3: body we cannot process.
    if !m.body().is_empty()
        && !m
            .media_type()
            .is_some_and(|t| t == "application/sdp" || t.starts_with("multipart/"))
    {
        return 415;
    }
    // Answer to an INVITE must carry SDP; Accept must allow it (RFC 3261 21.4.7).
    if m.method() == Some(&Method::Invite) && !m.accepts("application/sdp") {
        return 406;
    }
    // A registrar challenges credentials in a scheme it does not know.
    if m.headers()
        .get("Authorization")
        .is_some_and(|a| !a.to_ascii_lowercase().starts_with("digest "))
    {
        return 401;
    }
    200
}

/// The first raw value of `name:` in the file, for checking what the error response copied.
fn raw_header(raw: &[u8], name: &str) -> Option<String> {
    String::from_utf8_lossy(raw).split("\r\n").find_map(|l| {
        let (n, v) = l.split_once(':')?;
        n.trim()
            .eq_ignore_ascii_case(name)
            .then(|| v.trim().to_owned())
    })
}

/// Parses `name` and checks it against VERDICTS; returns the message when it parsed.
fn check(name: &str) -> Option<SipMessage> {
    let raw = load(name);
    let verdict = verdict_of(name);
    match SipMessage::parse(&raw) {
        Ok(m) => {
            match verdict {
                Accept if m.is_request() => assert_eq!(uas_verdict(&m), 200, "{name}"),
                Accept => assert_eq!(m.vias().len(), 1, "{name}: a response has one Via"),
                Answer(code) => assert_eq!(uas_verdict(&m), code, "{name}"),
                DropResponse => {
                    assert!(!m.is_request(), "{name}");
                    assert!(m.vias().len() > 1, "{name}: RFC 3261 8.1.3.3 drops it");
                }
                Reject(_) | RejectSilently => panic!("{name}: parsed but must be rejected"),
            }
            // Round trip: what we serialize parses to the same message.
            let again = SipMessage::parse(&m.to_bytes()).expect("serialized form parses");
            assert_eq!(
                again.headers().len(),
                m.headers().len() + usize::from(m.headers().get("Content-Length").is_none()),
                "{name}"
            );
            assert_eq!(again.body(), m.body(), "{name}");
            Some(m)
        }
        Err(e) => {
            let resp = SipMessage::error_response(&raw, &e);
            match verdict {
                Reject(code) => {
                    let resp = resp.unwrap_or_else(|| panic!("{name}: {e} but no response"));
                    assert_eq!(resp.status(), Some(code), "{name}: {e}");
                    assert_eq!(
                        resp.call_id().map(str::to_owned),
                        raw_header(&raw, "Call-ID"),
                        "{name}"
                    );
                    assert_eq!(
                        resp.headers().get("CSeq").map(str::to_owned),
                        raw_header(&raw, "CSeq"),
                        "{name}"
                    );
                    assert!(resp.headers().count("Via") >= 1, "{name}");
                    // Via, From, To, Call-ID and CSeq are echoed verbatim (RFC 3261 8.2.6.2), so
                    // the answer may carry the very field that was malformed.
                    let wire = String::from_utf8_lossy(&resp.to_bytes()).into_owned();
                    assert!(wire.starts_with(&format!("SIP/2.0 {code} ")), "{name}");
                    assert!(wire.ends_with("Content-Length: 0\r\n\r\n"), "{name}");
                }
                RejectSilently => assert!(resp.is_none(), "{name}: must not be answered"),
                _ => panic!("{name}: rejected with {e}, expected {verdict:?}"),
            }
            None
        }
    }
}

/// Same verdict when the message arrives over a stream in 7-byte pieces (where the message
/// carries a Content-Length that matches; stream framing needs one).
fn check_stream(name: &str) {
    let raw = load(name);
    let mut framer = StreamFramer::default();
    let mut frames = Vec::new();
    for piece in raw.chunks(7) {
        framer.push(piece);
        frames.extend(std::iter::from_fn(|| framer.poll()));
    }
    match (SipMessage::parse(&raw), frames.first()) {
        // Valid with Content-Length: the stream yields the same message.
        (Ok(m), Some(Ok(Frame::Message(s)))) => assert_eq!(&m, s, "{name}"),
        // Valid without Content-Length (inv2543): framing is lost on a stream.
        (Ok(m), first) if m.content_length().is_none() => {
            assert_eq!(
                first,
                Some(&Err(ParseError::MissingContentLength)),
                "{name}"
            );
        }
        // Content-Length larger than what arrived (clerr): still waiting for bytes.
        (Err(ParseError::BodyTruncated { .. }), first) => assert_eq!(first, None, "{name}"),
        // Other invalid messages: answered (framing intact) or the connection closes.
        (Err(e), Some(Ok(Frame::Invalid { error, .. }))) => assert_eq!(&e, error, "{name}"),
        (Err(_), Some(Err(e))) => assert!(
            e.closes_stream() || matches!(e, ParseError::Header { .. } | ParseError::Duplicate(_)),
            "{name}: {e}"
        ),
        (datagram, first) => panic!("{name}: datagram {datagram:?}, stream {first:?}"),
    }
}

macro_rules! torture {
    ($($name:ident => $body:expr;)*) => {
        $(
            #[test]
            fn $name() {
                let m = check(stringify!($name));
                check_stream(stringify!($name));
                let f: fn(Option<SipMessage>) = $body;
                f(m);
            }
        )*
    };
}

fn no_more(_: Option<SipMessage>) {}

torture! {
    // 3.1.1.1 A short tortuous INVITE.
    wsinv => |m| {
        let m = m.unwrap();
        assert_eq!(m.method(), Some(&Method::Invite));
        assert_eq!(m.uri().unwrap().param("unknownparam"), Some(None));
        assert_eq!(m.to().unwrap().tag(), Some("1918181833n"));
        let from = m.from().unwrap();
        assert_eq!(from.display_name.as_deref(), Some(r#"J Rosenberg \""#));
        assert_eq!(from.tag(), Some("98asjd8"));
        assert_eq!(m.max_forwards(), Some(68));
        assert_eq!(m.cseq(), Some(CSeq { seq: 9, method: Method::Invite }));
        let vias = m.vias();
        let sent: Vec<(&str, &str, Option<&str>)> = vias
            .iter()
            .map(|v| (v.transport.as_str(), v.host.as_str(), v.branch()))
            .collect();
        assert_eq!(sent, [
            ("UDP", "192.0.2.2", Some("390skdjuw")),
            ("TCP", "spindle.example.com", Some("z9hG4bK9ikj8")),
            ("UDP", "192.168.255.111", Some("z9hG4bK30239")),
        ]);
        assert_eq!(m.headers().get("Subject"), Some(""));
        assert_eq!(m.headers().get("newfangledheader"), Some("newfangled value continued newfangled value"));
        assert_eq!(m.headers().get("UnknownHeaderWithUnusualValue"), Some(";;,,;;,;"));
        let contact = &m.contacts()[0];
        assert_eq!(contact.display_name.as_deref(), Some(r#"Quoted string """#));
        assert_eq!(contact.param("newparam"), Some(Some("newvalue")));
        assert_eq!(contact.param("secondparam"), Some(None));
        assert_eq!(contact.param("q"), Some(Some("0.33")));
        assert_eq!(m.headers().list("Route").len(), 1);
        assert_eq!(m.content_length(), Some(150));
        assert_eq!(m.body().len(), 150);
    };
    // 3.1.1.2 Wide range of valid characters.
    intmeth => |m| {
        let m = m.unwrap();
        let method = "!interesting-Method0123456789_*+`.%indeed'~";
        assert_eq!(m.method(), Some(&Method::Extension(method.into())));
        assert_eq!(m.cseq().unwrap().method.as_str(), method);
        let uri = m.uri().unwrap();
        assert_eq!(uri.user(), Some("1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*"));
        assert_eq!(uri.password(), Some("&it+has=1,weird!*pas$wo~d_too.(doesn't-it)"));
        assert_eq!(uri.host(), Some("example.com"));
        assert_eq!(m.to().unwrap().display_name.as_deref(), Some("BEL:\x07 NUL:\0 DEL:\x7f"));
        let from = m.from().unwrap();
        assert_eq!(from.display_name.as_deref(), Some("token1~` token2'+_ token3*%!.-"));
        assert_eq!(from.tag(), Some("_token~1'+`*%!-."));
        assert_eq!(m.call_id(), Some(r#"intmeth.word%ZK-!.*_+'@word`~)(><:\/"][?}{"#));
        assert_eq!(m.max_forwards(), Some(255));
        assert_eq!(m.top_via().unwrap().branch(), Some("z9hG4bK-.!%66*_+`'~"));
        assert_eq!(m.headers().get("extensionHeader-!.%*+_`'~"), Some("\u{feff}大停電"));
    };
    // 3.1.1.3 Valid use of the % escaping mechanism.
    esc01 => |m| {
        let m = m.unwrap();
        let uri = m.uri().unwrap();
        assert_eq!((uri.user(), uri.host()), (Some("sips%3Auser%40example.com"), Some("example.net")));
        assert_eq!(m.to().unwrap().uri.user(), Some("%75se%72"));
        assert_eq!(m.to().unwrap().uri.user_unescaped().unwrap(), b"user");
        assert_eq!(m.from().unwrap().uri.user(), Some("I%20have%20spaces"));
        let contact = m.contact_uri().unwrap();
        assert_eq!(contact.user(), Some("cal%6Cer"));
        assert_eq!(contact.param("%6C%72"), Some(None));
        assert_eq!(contact.param("n%61me"), Some(Some("v%61lue%25%34%31")));
        assert_eq!(m.media_type().as_deref(), Some("application/sdp"));
        assert_eq!(m.call_id(), Some("esc01.239409asdfakjkn23onasd0-3234"));
    };
    // 3.1.1.4 Escaped nulls in URIs.
    escnull => |m| {
        let m = m.unwrap();
        assert_eq!(m.to().unwrap().uri.user(), Some("null-%00-null"));
        assert_eq!(m.to().unwrap().uri.user_unescaped().unwrap(), b"null-\0-null");
        let users: Vec<String> = m.contacts().iter().map(|c| c.uri.user().unwrap_or("").to_owned()).collect();
        assert_eq!(users, ["%00", "%00%00"]);
        assert_eq!(m.content_length(), Some(0));
    };
    // 3.1.1.5 Use of % when it is not an escape: the method is not REGISTER, C%6Fntact is
    // not Contact.
    esc02 => |m| {
        let m = m.unwrap();
        assert_eq!(m.method().unwrap().as_str(), "RE%47IST%45R");
        assert_ne!(m.method(), Some(&Method::Register));
        assert_eq!(m.contacts().len(), 2);
        assert_eq!(m.headers().get("C%6Fntact"), Some("<sip:alias2@host2.example.com>"));
        assert_eq!(m.to().unwrap().display_name.as_deref(), Some("%Z%45"));
        assert_eq!(m.top_via().unwrap().branch(), Some("z9hG4bK209%fzsnel234"));
    };
    // 3.1.1.6 Message with no LWS between display name and <.
    lwsdisp => |m| {
        let from = m.unwrap().from().unwrap();
        assert_eq!(from.display_name.as_deref(), Some("caller"));
        assert_eq!(from.tag(), Some("323"));
    };
    // 3.1.1.7 Long values in header fields.
    longreq => |m| {
        let m = m.unwrap();
        assert!(m.to().unwrap().display_name.unwrap().contains("extremeextreme"));
        assert_eq!(m.to().unwrap().uri.port(), Some(6000));
        assert!(m.from().unwrap().tag().unwrap().len() > 100);
        let vias = m.vias();
        assert_eq!(vias.len(), 34);
        assert_eq!(vias[0].host, "sip33.example.com");
        assert_eq!(vias[33].received(), Some("192.0.2.5"));
        assert!(vias[33].branch().unwrap().ends_with("longbranchvalue"));
        assert!(m.call_id().unwrap().ends_with("reallylongcallid"));
        assert_eq!(m.body().len(), 150);
    };
    // 3.1.1.8 Extra trailing octets in a UDP datagram: only the first message counts.
    dblreq => |m| {
        let m = m.unwrap();
        assert_eq!(m.method(), Some(&Method::Register));
        assert!(m.body().is_empty());
        assert_eq!(m.call_id(), Some("dblreq.0ha0isndaksdj99sdfafnl3lk233412"));
    };
    // 3.1.1.9 Semicolon-separated parameters in URI user part.
    semiuri => |m| {
        let m = m.unwrap();
        let uri = m.uri().unwrap();
        assert_eq!((uri.user(), uri.host()), (Some("user;par=u%40example.net"), Some("example.com")));
        assert!(uri.params().is_empty());
        assert_eq!(m.headers().list("Accept").len(), 6);
        assert!(m.accepts("application/sdp"));
    };
    // 3.1.1.10 Varied and unknown transport types.
    transports => |m| {
        let m = m.unwrap();
        let t: Vec<String> = m.vias().into_iter().map(|v| v.transport).collect();
        assert_eq!(t, ["UDP", "SCTP", "TLS", "UNKNOWN", "TCP"]);
        assert_eq!(m.call_id(), Some("transports.kijh4akdnaqjkwendsasfdj"));
    };
    // 3.1.1.11 Multipart MIME message with binary body.
    mpart01 => |m| {
        let m = m.unwrap();
        assert_eq!(m.method(), Some(&Method::Message));
        assert_eq!(m.body().len(), 553);
        assert_eq!(m.media_type().as_deref(), Some("multipart/mixed"));
        assert_eq!(m.top_via().unwrap().rport(), Some(None));
    };
    // 3.1.1.12 Unusual reason phrase.
    unreason => |m| {
        let m = m.unwrap();
        assert_eq!(m.status(), Some(200));
        assert!(m.reason().unwrap().starts_with("= 2**3 * 5**2 но"));
        assert_eq!(m.body().len(), 154);
    };
    // 3.1.1.13 Empty reason phrase.
    noreason => |m| {
        let m = m.unwrap();
        assert_eq!((m.status(), m.reason()), (Some(100), Some("")));
    };
    // 3.1.2.1 Extraneous header field separators.
    badinv01 => no_more;
    // 3.1.2.2 Content-Length larger than message.
    clerr => no_more;
    // 3.1.2.3 Negative Content-Length.
    ncl => no_more;
    // 3.1.2.4 Request scalar fields with overlarge values: rejected for the CSeq.
    scalar02 => |_| {
        let err = SipMessage::parse(&load("scalar02")).unwrap_err();
        assert!(matches!(err, ParseError::Header { name: "CSeq", .. }), "{err}");
    };
    // 3.1.2.5 Response scalar fields with overlarge values: dropped.
    scalarlg => no_more;
    // 3.1.2.6 Unterminated quoted string in display name.
    quotbal => no_more;
    // 3.1.2.7 <> enclosing Request-URI.
    ltgtruri => no_more;
    // 3.1.2.8 Malformed SIP Request-URI (embedded LWS).
    lwsruri => no_more;
    // 3.1.2.9 Multiple SP separating Request-Line elements.
    lwsstart => no_more;
    // 3.1.2.10 SP characters at end of Request-Line.
    trws => no_more;
    // 3.1.2.11 Escaped headers in SIP Request-URI.
    escruri => no_more;
    // 3.1.2.12 Invalid time zone in Date header field.
    baddate => no_more;
    // 3.1.2.13 Failure to enclose name-addr URI in <>.
    regbadct => no_more;
    // 3.1.2.14 Spaces within addr-spec.
    badaspec => no_more;
    // 3.1.2.15 Non-token characters in display name.
    baddn => no_more;
    // 3.1.2.16 Unknown protocol version: 505.
    badvers => |_| {
        let raw = load("badvers");
        let err = SipMessage::parse(&raw).unwrap_err();
        assert_eq!(err, ParseError::VersionNotSupported("SIP/7.0".into()));
        let resp = SipMessage::error_response(&raw, &err).unwrap();
        assert_eq!(resp.reason(), Some("Version Not Supported"));
        assert_eq!(resp.top_via().unwrap().protocol, "SIP/7.0");
    };
    // 3.1.2.17 Start line and CSeq method mismatch.
    mismatch01 => |_| {
        assert_eq!(SipMessage::parse(&load("mismatch01")), Err(ParseError::CSeqMismatch));
    };
    // 3.1.2.18 Unknown method with CSeq method mismatch.
    mismatch02 => |_| {
        assert_eq!(SipMessage::parse(&load("mismatch02")), Err(ParseError::CSeqMismatch));
    };
    // 3.1.2.19 Overlarge response code.
    bigcode => |_| {
        assert_eq!(SipMessage::parse(&load("bigcode")), Err(ParseError::StatusCode));
    };
    // 3.2.1 Missing transaction identifier: branch is only the magic cookie.
    badbranch => |m| {
        let via = m.unwrap().top_via().unwrap();
        assert_eq!(via.branch(), Some(BRANCH_MAGIC_COOKIE));
        assert!(!via.has_rfc3261_branch());
    };
    // 3.3.1 Missing required header fields.
    insuf => |m| {
        let m = m.unwrap();
        assert_eq!(m.missing_mandatory(), ["To", "From", "Call-ID"]);
        let resp = SipMessage::response_to(&m, 400, "Missing To, From, Call-ID");
        assert_eq!(resp.cseq().unwrap().seq, 193942);
        assert_eq!(resp.top_via().unwrap().branch(), Some("z9hG4bKkdj.insuf"));
    };
    // 3.3.2 Request-URI with unknown scheme.
    unkscm => |m| {
        assert_eq!(m.unwrap().uri().unwrap().scheme(), "nobodyknowsthisscheme");
    };
    // 3.3.3 Request-URI with known but atypical scheme.
    novelsc => |m| {
        assert_eq!(m.unwrap().uri().unwrap().as_str(), "soap.beep://192.0.2.103:3002");
    };
    // 3.3.4 Unknown URI schemes in header fields.
    unksm2 => |m| {
        let m = m.unwrap();
        assert_eq!(m.to().unwrap().uri.scheme(), "isbn");
        assert_eq!(m.from().unwrap().uri.scheme(), "http");
        assert_eq!(m.contact_uri().unwrap().scheme(), "name");
    };
    // 3.3.5 Proxy-Require and Require: a UAS lists the Require tags in Unsupported.
    bext01 => |m| {
        let m = m.unwrap();
        assert_eq!(m.unsupported_options(&["timer"]), ["nothingSupportsThis", "nothingSupportsThisEither"]);
        assert_eq!(m.proxy_require().len(), 2);
        let resp = SipMessage::response_to(&m, 420, "Bad Extension")
            .with_header("Unsupported", &m.unsupported_options(&[]).join(", "));
        assert_eq!(resp.headers().list("Unsupported").len(), 2);
    };
    // 3.3.6 Unknown Content-Type: 415 with Accept.
    invut => |m| {
        assert_eq!(m.unwrap().media_type().as_deref(), Some("application/unknownformat"));
    };
    // 3.3.7 Unknown authorization scheme.
    regaut01 => |m| {
        let m = m.unwrap();
        assert_eq!(m.headers().get("Authorization"), Some("NoOneKnowsThisScheme opaque-data=here"));
        assert_eq!(m.content_length(), Some(0));
    };
    // 3.3.8 Multiple values in single-value required header fields.
    multi01 => |_| {
        assert_eq!(SipMessage::parse(&load("multi01")), Err(ParseError::Duplicate("Call-ID")));
    };
    // 3.3.9 Multiple Content-Length values.
    mcl01 => |_| {
        let raw = load("mcl01");
        assert_eq!(SipMessage::parse(&raw), Err(ParseError::Duplicate("Content-Length")));
        // On a stream the framing is lost too.
        let mut framer = StreamFramer::default();
        framer.push(&raw);
        assert_eq!(framer.poll(), Some(Err(ParseError::Duplicate("Content-Length"))));
    };
    // 3.3.10 200 OK response with broadcast Via header field value.
    bcast => |m| {
        assert_eq!(m.unwrap().vias()[1].host, "255.255.255.255");
    };
    // 3.3.11 Max-Forwards of zero: a proxy answers 483, a UAS answers OPTIONS normally.
    zeromf => |m| {
        let m = m.unwrap();
        assert_eq!(m.max_forwards(), Some(0));
        assert_eq!(m.method(), Some(&Method::Options));
    };
    // 3.3.12 REGISTER with a contact header parameter.
    cparam01 => |m| {
        let c = &m.unwrap().contacts()[0];
        assert_eq!(c.param("unknownparam"), Some(None));
        assert_eq!(c.uri.param("unknownparam"), None);
    };
    // 3.3.13 REGISTER with a URL parameter.
    cparam02 => |m| {
        let c = &m.unwrap().contacts()[0];
        assert_eq!(c.uri.param("unknownparam"), Some(None));
        assert!(c.params.is_empty());
    };
    // 3.3.14 REGISTER with a URL escaped header.
    regescrt => |m| {
        let uri = m.unwrap().contact_uri().unwrap();
        assert_eq!(uri.headers(), Some("Route=%3Csip:sip.example.com%3E"));
    };
    // 3.3.15 Unacceptable Accept offering.
    sdp01 => |m| {
        let m = m.unwrap();
        assert!(!m.accepts("application/sdp"));
        assert!(m.accepts("text/nobodyKnowsThis"));
    };
    // 3.4.1 INVITE with RFC 2543 syntax.
    inv2543 => |m| {
        let m = m.unwrap();
        let via = m.top_via().unwrap();
        assert_eq!((via.host.as_str(), via.branch()), ("iftgw.example.com", None));
        assert!(!via.has_rfc3261_branch());
        assert_eq!(m.max_forwards(), None);
        assert_eq!(m.from().unwrap().tag(), None);
        // A bare addr-spec's `;user=phone` belongs to the header (RFC 3261 section 20).
        assert_eq!(m.to().unwrap().param("user"), Some(Some("phone")));
        assert_eq!(m.content_length(), None);
        assert!(m.body().starts_with(b"v=0"));
    };
    // Archive extra: no SIP version, a header line without colon.
    test => |_| {
        assert!(SipMessage::parse(&load("test")).is_err());
    };
}

#[test]
fn verdict_table_covers_every_file() {
    let dir = format!(
        "{}/../../shared/testdata/rfc4475",
        env!("CARGO_MANIFEST_DIR")
    );
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .expect("RFC 4475 test data")
        .filter_map(|e| {
            e.ok()?
                .file_name()
                .into_string()
                .ok()?
                .strip_suffix(".dat")
                .map(str::to_owned)
        })
        .collect();
    files.sort();
    let mut table: Vec<String> = VERDICTS.iter().map(|(n, _)| (*n).to_owned()).collect();
    table.sort();
    assert_eq!(files, table);
}

/// Deterministic xorshift64 for the byte-flip sweep.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn exercise(bytes: &[u8]) {
    if let Err(e) = SipMessage::parse(bytes) {
        let _ = e.status();
        if let Some(resp) = SipMessage::error_response(bytes, &e) {
            let _ = resp.to_bytes();
        }
    } else if let Ok(m) = SipMessage::parse(bytes) {
        let _ = (
            m.vias(),
            m.from(),
            m.to(),
            m.cseq(),
            m.contacts(),
            m.session_expires(),
        );
        let _ = SipMessage::response_to(&m, 200, "OK")
            .with_to_tag("t")
            .to_bytes();
    }
    let mut framer = StreamFramer::new(Limits {
        max_message_bytes: 2048,
        max_header_bytes: 1024,
    });
    for piece in bytes.chunks(97) {
        framer.push(piece);
        while framer.poll().is_some() {}
    }
}

#[test]
fn every_truncation_never_panics() {
    for (name, _) in VERDICTS {
        let raw = load(name);
        for len in 0..=raw.len() {
            exercise(&raw[..len]);
        }
    }
}

#[test]
fn random_byte_flips_never_panic() {
    let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
    let specials = [
        b'\r', b'\n', b' ', b':', b';', b',', b'"', b'<', b'>', b'\\', b'%', 0x80, 0xff,
    ];
    for (name, _) in VERDICTS {
        let raw = load(name);
        for _ in 0..300 {
            let mut m = raw.clone();
            for _ in 0..=(rng.next() % 6) {
                let at = (rng.next() % m.len() as u64) as usize;
                let r = rng.next();
                m[at] = if r.is_multiple_of(2) {
                    specials[(r >> 8) as usize % specials.len()]
                } else {
                    (r >> 16) as u8
                };
            }
            exercise(&m);
        }
    }
}
