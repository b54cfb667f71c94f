//! SIP digest authentication (RFC 3261 22.4, RFC 8760, computed as RFC 7616 specifies):
//! MD5 and SHA-256, with and without `-sess`, qop `auth` and `auth-int`.
//!
//! Server side ([`NonceIssuer`]): challenges carry stateless nonces, a timestamp signed with
//! HMAC-SHA-256 under a per-process secret, so a server holding 10,000 calls keeps no table of
//! outstanding challenges; an expired nonce answers with `stale=true` so phones retry without
//! asking the user again. Client side ([`Credentials::answer`]): the `Authorization` value for
//! a challenge, for dial-out through trunks that challenge us.
//!
//! Sans-IO: the caller passes the time (`unix_secs`) and the random cnonce.

use std::fmt::{self, Write as _};

use base64::Engine as _;
use hmac::{Hmac, Mac};
use md5::Md5;
use sha2::Sha256;

/// How long a nonce is accepted.
pub const NONCE_LIFETIME_SECS: u64 = 300;

/// A digest algorithm.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Algorithm {
    /// MD5 (RFC 3261's default).
    Md5,
    /// MD5-sess.
    Md5Sess,
    /// SHA-256 (RFC 8760).
    Sha256,
    /// SHA-256-sess.
    Sha256Sess,
}

impl Algorithm {
    /// Parses the `algorithm` parameter (case-insensitive).
    pub fn from_name(name: &str) -> Option<Self> {
        match name.to_ascii_uppercase().as_str() {
            "MD5" => Some(Algorithm::Md5),
            "MD5-SESS" => Some(Algorithm::Md5Sess),
            "SHA-256" => Some(Algorithm::Sha256),
            "SHA-256-SESS" => Some(Algorithm::Sha256Sess),
            _ => None,
        }
    }

    /// The name as written on the wire.
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Md5 => "MD5",
            Algorithm::Md5Sess => "MD5-sess",
            Algorithm::Sha256 => "SHA-256",
            Algorithm::Sha256Sess => "SHA-256-sess",
        }
    }

    fn is_sess(self) -> bool {
        matches!(self, Algorithm::Md5Sess | Algorithm::Sha256Sess)
    }

    /// Lowercase hex of the hash of `parts` joined by ':'.
    fn hash(self, parts: &[&[u8]]) -> String {
        fn run<D: sha2::Digest>(parts: &[&[u8]]) -> Vec<u8> {
            let mut d = D::new();
            for (i, p) in parts.iter().enumerate() {
                if i > 0 {
                    d.update(b":");
                }
                d.update(p);
            }
            d.finalize().to_vec()
        }
        let bytes = match self {
            Algorithm::Md5 | Algorithm::Md5Sess => run::<Md5>(parts),
            Algorithm::Sha256 | Algorithm::Sha256Sess => run::<Sha256>(parts),
        };
        let mut out = String::with_capacity(bytes.len() * 2);
        for b in bytes {
            let _ = write!(out, "{b:02x}");
        }
        out
    }
}

/// Quality of protection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Qop {
    /// Authenticates the request line.
    Auth,
    /// Also the body.
    AuthInt,
}

impl Qop {
    fn name(self) -> &'static str {
        match self {
            Qop::Auth => "auth",
            Qop::AuthInt => "auth-int",
        }
    }
}

/// What is wrong with credentials.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// The header value is not a Digest credential list.
    #[error("malformed digest credentials: {0}")]
    Malformed(&'static str),
    /// A required parameter is missing.
    #[error("digest parameter {0} missing")]
    Missing(&'static str),
    /// The algorithm is not one we support.
    #[error("unsupported digest algorithm {0:?}")]
    Algorithm(String),
    /// The realm is not ours.
    #[error("wrong realm")]
    Realm,
    /// The nonce was not issued by us (or was altered).
    #[error("nonce not issued by this server")]
    Nonce,
    /// The nonce is ours but expired: challenge again with stale=true.
    #[error("nonce expired")]
    Stale,
    /// The response does not match: wrong password or altered request.
    #[error("digest response does not match")]
    Mismatch,
}

/// Splits a `Digest a=b, c="d"` header value into (name, value) pairs: names lowercased,
/// quoted values unescaped. Tolerates whitespace and empty list elements; never panics.
pub fn parse_params(value: &str) -> Result<Vec<(String, String)>, AuthError> {
    let rest = value.trim_start();
    let scheme_end = rest.find(char::is_whitespace).unwrap_or(rest.len());
    if !rest[..scheme_end].eq_ignore_ascii_case("digest") {
        return Err(AuthError::Malformed("scheme is not Digest"));
    }
    let mut rest = &rest[scheme_end..];
    let mut out = Vec::new();
    loop {
        rest = rest.trim_start_matches(|c: char| c.is_whitespace() || c == ',');
        if rest.is_empty() {
            return Ok(out);
        }
        let (name, after) = rest
            .split_once('=')
            .ok_or(AuthError::Malformed("expected name=value"))?;
        let name = name.trim_end();
        if name.is_empty() || name.contains(|c: char| c.is_whitespace() || c == ',') {
            return Err(AuthError::Malformed("expected name=value"));
        }
        let after = after.trim_start();
        let (val, next) = if after.starts_with('"') {
            crate::message::quoted_string(after)
                .ok_or(AuthError::Malformed("unterminated quoted string"))?
        } else {
            let end = after
                .find(|c: char| c == ',' || c.is_whitespace())
                .unwrap_or(after.len());
            (after[..end].to_string(), &after[end..])
        };
        if out.len() >= 32 {
            return Err(AuthError::Malformed("too many parameters"));
        }
        out.push((name.to_ascii_lowercase(), val));
        rest = next;
    }
}

fn quote(s: &str) -> String {
    let mut q = String::with_capacity(s.len() + 2);
    q.push('"');
    for c in s.chars() {
        if c == '"' || c == '\\' {
            q.push('\\');
        }
        q.push(c);
    }
    q.push('"');
    q
}

/// A challenge (`WWW-Authenticate` / `Proxy-Authenticate` value).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Challenge {
    /// Protection space.
    pub realm: String,
    /// Server nonce.
    pub nonce: String,
    /// Opaque value to echo.
    pub opaque: Option<String>,
    /// Algorithm.
    pub algorithm: Algorithm,
    /// Offered qop values (empty: RFC 2069 style, no qop).
    pub qop: Vec<Qop>,
    /// The previous nonce was valid but expired.
    pub stale: bool,
}

impl Challenge {
    /// Parses a challenge header value.
    pub fn parse(value: &str) -> Result<Self, AuthError> {
        let params = parse_params(value)?;
        let get = |n: &str| params.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
        let algorithm = match get("algorithm") {
            Some(a) => Algorithm::from_name(&a).ok_or(AuthError::Algorithm(a))?,
            None => Algorithm::Md5,
        };
        let qop = get("qop")
            .map(|q| {
                q.split(',')
                    .filter_map(|t| match t.trim() {
                        "auth" => Some(Qop::Auth),
                        "auth-int" => Some(Qop::AuthInt),
                        _ => None,
                    })
                    .collect()
            })
            .unwrap_or_default();
        Ok(Challenge {
            realm: get("realm").ok_or(AuthError::Missing("realm"))?,
            nonce: get("nonce").ok_or(AuthError::Missing("nonce"))?,
            opaque: get("opaque"),
            algorithm,
            qop,
            stale: get("stale").is_some_and(|s| s.eq_ignore_ascii_case("true")),
        })
    }
}

impl fmt::Display for Challenge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Digest realm={}, nonce={}, algorithm={}",
            quote(&self.realm),
            quote(&self.nonce),
            self.algorithm.name()
        )?;
        if !self.qop.is_empty() {
            let q: Vec<&str> = self.qop.iter().map(|q| q.name()).collect();
            write!(f, ", qop={}", quote(&q.join(",")))?;
        }
        if let Some(o) = &self.opaque {
            write!(f, ", opaque={}", quote(o))?;
        }
        if self.stale {
            f.write_str(", stale=true")?;
        }
        Ok(())
    }
}

/// Credentials (`Authorization` / `Proxy-Authorization` value).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Credentials {
    /// User name.
    pub username: String,
    /// Realm.
    pub realm: String,
    /// The server nonce answered.
    pub nonce: String,
    /// The digest-uri (the Request-URI as the client wrote it).
    pub uri: String,
    /// The response hash (hex).
    pub response: String,
    /// Algorithm.
    pub algorithm: Algorithm,
    /// Client nonce (with qop).
    pub cnonce: Option<String>,
    /// Echoed opaque.
    pub opaque: Option<String>,
    /// Chosen qop.
    pub qop: Option<Qop>,
    /// Nonce count, 8 hex digits (with qop).
    pub nc: Option<String>,
}

/// The inputs of one digest computation.
struct Input<'a> {
    algorithm: Algorithm,
    username: &'a str,
    realm: &'a str,
    password: &'a str,
    method: &'a str,
    uri: &'a str,
    nonce: &'a str,
    cnonce: &'a str,
    nc: &'a str,
    qop: Option<Qop>,
    body: &'a [u8],
}

fn compute(i: &Input<'_>) -> String {
    let a = i.algorithm;
    let mut ha1 = a.hash(&[
        i.username.as_bytes(),
        i.realm.as_bytes(),
        i.password.as_bytes(),
    ]);
    if a.is_sess() {
        ha1 = a.hash(&[ha1.as_bytes(), i.nonce.as_bytes(), i.cnonce.as_bytes()]);
    }
    let ha2 = match i.qop {
        Some(Qop::AuthInt) => {
            let body = a.hash(&[i.body]);
            a.hash(&[i.method.as_bytes(), i.uri.as_bytes(), body.as_bytes()])
        }
        _ => a.hash(&[i.method.as_bytes(), i.uri.as_bytes()]),
    };
    match i.qop {
        Some(q) => a.hash(&[
            ha1.as_bytes(),
            i.nonce.as_bytes(),
            i.nc.as_bytes(),
            i.cnonce.as_bytes(),
            q.name().as_bytes(),
            ha2.as_bytes(),
        ]),
        None => a.hash(&[ha1.as_bytes(), i.nonce.as_bytes(), ha2.as_bytes()]),
    }
}

impl Credentials {
    /// Parses a credentials header value.
    pub fn parse(value: &str) -> Result<Self, AuthError> {
        let params = parse_params(value)?;
        let get = |n: &str| params.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
        let algorithm = match get("algorithm") {
            Some(a) => Algorithm::from_name(&a).ok_or(AuthError::Algorithm(a))?,
            None => Algorithm::Md5,
        };
        let qop = match get("qop").as_deref() {
            None => None,
            Some("auth") => Some(Qop::Auth),
            Some("auth-int") => Some(Qop::AuthInt),
            Some(_) => return Err(AuthError::Malformed("unknown qop")),
        };
        let creds = Credentials {
            username: get("username").ok_or(AuthError::Missing("username"))?,
            realm: get("realm").ok_or(AuthError::Missing("realm"))?,
            nonce: get("nonce").ok_or(AuthError::Missing("nonce"))?,
            uri: get("uri").ok_or(AuthError::Missing("uri"))?,
            response: get("response").ok_or(AuthError::Missing("response"))?,
            algorithm,
            cnonce: get("cnonce"),
            opaque: get("opaque"),
            qop,
            nc: get("nc"),
        };
        if creds.qop.is_some() && (creds.cnonce.is_none() || creds.nc.is_none()) {
            return Err(AuthError::Missing("cnonce and nc (required with qop)"));
        }
        Ok(creds)
    }

    /// The client's answer to `challenge` for a request (`method`, `uri`, `body`), choosing
    /// qop=auth when offered. `cnonce` should be fresh random text; `nc` counts this nonce's use.
    #[allow(clippy::too_many_arguments)]
    pub fn answer(
        challenge: &Challenge,
        username: &str,
        password: &str,
        method: &str,
        uri: &str,
        body: &[u8],
        cnonce: &str,
        nc: u32,
    ) -> Credentials {
        let qop = if challenge.qop.contains(&Qop::Auth) {
            Some(Qop::Auth)
        } else {
            challenge.qop.first().copied()
        };
        let nc = format!("{nc:08x}");
        let response = compute(&Input {
            algorithm: challenge.algorithm,
            username,
            realm: &challenge.realm,
            password,
            method,
            uri,
            nonce: &challenge.nonce,
            cnonce,
            nc: &nc,
            qop,
            body,
        });
        Credentials {
            username: username.into(),
            realm: challenge.realm.clone(),
            nonce: challenge.nonce.clone(),
            uri: uri.into(),
            response,
            algorithm: challenge.algorithm,
            // -sess folds the cnonce into HA1, so it is sent even without qop.
            cnonce: (qop.is_some() || challenge.algorithm.is_sess()).then(|| cnonce.to_string()),
            opaque: challenge.opaque.clone(),
            qop,
            nc: qop.map(|_| nc),
        }
    }

    /// Whether the response matches `password` for this request (constant time).
    pub fn matches(&self, password: &str, method: &str, body: &[u8]) -> bool {
        let expected = compute(&Input {
            algorithm: self.algorithm,
            username: &self.username,
            realm: &self.realm,
            password,
            method,
            uri: &self.uri,
            nonce: &self.nonce,
            cnonce: self.cnonce.as_deref().unwrap_or(""),
            nc: self.nc.as_deref().unwrap_or(""),
            qop: self.qop,
            body,
        });
        let got = self.response.to_ascii_lowercase();
        constant_time_eq(expected.as_bytes(), got.as_bytes())
    }
}

impl fmt::Display for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Digest username={}, realm={}, nonce={}, uri={}, response={}, algorithm={}",
            quote(&self.username),
            quote(&self.realm),
            quote(&self.nonce),
            quote(&self.uri),
            quote(&self.response),
            self.algorithm.name()
        )?;
        if let Some(q) = self.qop {
            write!(f, ", qop={}", q.name())?;
        }
        if let Some(cn) = &self.cnonce {
            write!(f, ", cnonce={}", quote(cn))?;
        }
        if let Some(nc) = &self.nc {
            write!(f, ", nc={nc}")?;
        }
        if let Some(o) = &self.opaque {
            write!(f, ", opaque={}", quote(o))?;
        }
        Ok(())
    }
}

/// Compares without an early exit, so timing does not reveal how much of a guess was right.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a
        .iter()
        .zip(b)
        .fold(0u8, |acc, (x, y)| std::hint::black_box(acc | (x ^ y)));
    diff == 0
}

/// Issues and checks stateless nonces for one realm.
pub struct NonceIssuer {
    realm: String,
    key: [u8; 32],
    algorithm: Algorithm,
}

const NONCE_MAC_LEN: usize = 16;

impl NonceIssuer {
    /// An issuer for `realm` signing nonces with `key` (random per process is fine: a restart
    /// only makes outstanding nonces fail once).
    pub fn new(realm: &str, key: [u8; 32], algorithm: Algorithm) -> Self {
        NonceIssuer {
            realm: realm.into(),
            key,
            algorithm,
        }
    }

    fn keyed(&self, ts: u64) -> Hmac<Sha256> {
        // INVARIANT: HMAC accepts keys of any length.
        let mut m = Hmac::<Sha256>::new_from_slice(&self.key).expect("any key length");
        m.update(&ts.to_be_bytes());
        m.update(self.realm.as_bytes());
        m
    }

    fn mac(&self, ts: u64) -> [u8; NONCE_MAC_LEN] {
        let full = self.keyed(ts).finalize().into_bytes();
        let mut out = [0u8; NONCE_MAC_LEN];
        out.copy_from_slice(&full[..NONCE_MAC_LEN]);
        out
    }

    /// A challenge issued at `unix_secs` (qop=auth; `stale` after an expired nonce).
    pub fn challenge(&self, unix_secs: u64, stale: bool) -> Challenge {
        let mut raw = Vec::with_capacity(8 + NONCE_MAC_LEN);
        raw.extend_from_slice(&unix_secs.to_be_bytes());
        raw.extend_from_slice(&self.mac(unix_secs));
        Challenge {
            realm: self.realm.clone(),
            nonce: base64::engine::general_purpose::STANDARD_NO_PAD.encode(raw),
            opaque: None,
            algorithm: self.algorithm,
            qop: vec![Qop::Auth],
            stale,
        }
    }

    /// Checks credentials for a request at `unix_secs` against the user's password.
    pub fn verify(
        &self,
        creds: &Credentials,
        password: &str,
        method: &str,
        body: &[u8],
        unix_secs: u64,
    ) -> Result<(), AuthError> {
        if creds.realm != self.realm {
            return Err(AuthError::Realm);
        }
        let raw = base64::engine::general_purpose::STANDARD_NO_PAD
            .decode(creds.nonce.trim_end_matches('='))
            .map_err(|_| AuthError::Nonce)?;
        let (ts, mac) = raw.split_at_checked(8).ok_or(AuthError::Nonce)?;
        let ts = u64::from_be_bytes(ts.try_into().map_err(|_| AuthError::Nonce)?);
        if mac.len() != NONCE_MAC_LEN || self.keyed(ts).verify_truncated_left(mac).is_err() {
            return Err(AuthError::Nonce);
        }
        // Check the response before staleness: a stale answer with the right password earns a
        // stale=true challenge (no password prompt); a wrong one earns a plain rejection.
        if !creds.matches(password, method, body) {
            return Err(AuthError::Mismatch);
        }
        if unix_secs.saturating_sub(ts) > NONCE_LIFETIME_SECS || ts > unix_secs + 60 {
            return Err(AuthError::Stale);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 2617 section 3.5 example (MD5, qop=auth).
    #[test]
    fn rfc2617_example() {
        let c = Credentials::parse(
            r#"Digest username="Mufasa", realm="testrealm@host.com",
               nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", uri="/dir/index.html",
               qop=auth, nc=00000001, cnonce="0a4f113b",
               response="6629fae49393a05397450978507c4ef1",
               opaque="5ccc069c403ebaf9f0171e9517f40e41""#,
        )
        .unwrap();
        assert!(c.matches("Circle Of Life", "GET", b""));
        assert!(!c.matches("circle of life", "GET", b""));
        assert!(!c.matches("Circle Of Life", "POST", b""));
    }

    /// RFC 7616 section 3.9.1 example, both algorithms (the computation RFC 8760 uses for SIP).
    #[test]
    fn rfc7616_examples() {
        let challenge = |alg: &str| {
            Challenge::parse(&format!(
                r#"Digest realm="http-auth@example.org", qop="auth, auth-int", algorithm={alg},
                   nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v",
                   opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS""#
            ))
            .unwrap()
        };
        for (alg, want) in [
            ("MD5", "8ca523f5e9506fed4657c9700eebdbec"),
            (
                "SHA-256",
                "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1",
            ),
        ] {
            let ch = challenge(alg);
            assert_eq!(ch.qop, vec![Qop::Auth, Qop::AuthInt]);
            let c = Credentials::answer(
                &ch,
                "Mufasa",
                "Circle of Life",
                "GET",
                "/dir/index.html",
                b"",
                "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ",
                1,
            );
            assert_eq!(c.response, want, "{alg}");
            assert_eq!(c.nc.as_deref(), Some("00000001"));
            // What we write parses back to the same credentials.
            assert_eq!(Credentials::parse(&c.to_string()).unwrap(), c);
        }
    }

    #[test]
    fn issuer_round_trip_stale_and_forgery() {
        let issuer = NonceIssuer::new("chorus", [7; 32], Algorithm::Sha256);
        let t0 = 1_800_000_000;
        let ch = issuer.challenge(t0, false);
        assert_eq!(Challenge::parse(&ch.to_string()).unwrap(), ch);
        let answer = |pw: &str, ch: &Challenge| {
            Credentials::answer(
                ch,
                "alice",
                pw,
                "INVITE",
                "sip:1000@chorus",
                b"",
                "c0ffee",
                1,
            )
        };
        let good = answer("secret", &ch);
        let creds = Credentials::parse(&good.to_string()).unwrap();
        assert_eq!(
            issuer.verify(&creds, "secret", "INVITE", b"", t0 + 5),
            Ok(())
        );
        assert_eq!(
            issuer.verify(&creds, "wrong", "INVITE", b"", t0 + 5),
            Err(AuthError::Mismatch)
        );
        assert_eq!(
            issuer.verify(&creds, "secret", "BYE", b"", t0 + 5),
            Err(AuthError::Mismatch),
            "bound to the method"
        );
        assert_eq!(
            issuer.verify(
                &creds,
                "secret",
                "INVITE",
                b"",
                t0 + NONCE_LIFETIME_SECS + 1
            ),
            Err(AuthError::Stale)
        );
        // A nonce from another server (another key) is not ours.
        let other = NonceIssuer::new("chorus", [8; 32], Algorithm::Sha256);
        let foreign = answer("secret", &other.challenge(t0, false));
        assert_eq!(
            issuer.verify(&foreign, "secret", "INVITE", b"", t0),
            Err(AuthError::Nonce)
        );
        // Flip one character of the MAC part of the nonce.
        let mut tampered = good.clone();
        let last = tampered.nonce.pop().unwrap();
        tampered.nonce.push(if last == 'A' { 'B' } else { 'A' });
        assert!(
            issuer
                .verify(&tampered, "secret", "INVITE", b"", t0)
                .is_err()
        );
        let mut realm = good;
        realm.realm = "elsewhere".into();
        assert_eq!(
            issuer.verify(&realm, "secret", "INVITE", b"", t0),
            Err(AuthError::Realm)
        );
    }

    #[test]
    fn sess_and_auth_int_and_rfc2069() {
        for alg in [Algorithm::Md5Sess, Algorithm::Sha256Sess] {
            for qop in [vec![Qop::AuthInt], vec![]] {
                let ch = Challenge {
                    realm: "r".into(),
                    nonce: "n".into(),
                    opaque: None,
                    algorithm: alg,
                    qop,
                    stale: false,
                };
                let c = Credentials::answer(&ch, "u", "p", "INVITE", "sip:x", b"v=0", "cn", 3);
                let parsed = Credentials::parse(&c.to_string()).unwrap();
                assert!(parsed.matches("p", "INVITE", b"v=0"));
                let body_bound = parsed.qop == Some(Qop::AuthInt);
                assert_eq!(!parsed.matches("p", "INVITE", b"v=1"), body_bound);
            }
        }
    }

    #[test]
    fn hostile_header_values_are_errors() {
        for bad in [
            "",
            "Basic dXNlcjpwYXNz",
            "Digest",
            "Digest username",
            "Digest username=\"unterminated",
            "Digest =x",
            "Digest username=\"a\\",
            "Digest username=a, realm=b, nonce=c, uri=d, response=e, qop=auth",
            "Digest username=a, realm=b, nonce=c, uri=d, response=e, algorithm=SHA-512",
        ] {
            assert!(Credentials::parse(bad).is_err(), "{bad:?}");
        }
        let long: String = "Digest ".to_string() + &"a=b,".repeat(100);
        assert!(parse_params(&long).is_err());
        // Every truncation of a valid value: an error or a parse, never a panic.
        let full = r#"Digest username="Mufasa", realm="r", nonce="n", uri="/", response="x""#;
        for end in 0..=full.len() {
            if full.is_char_boundary(end) {
                let _ = Credentials::parse(&full[..end]);
                let _ = Challenge::parse(&full[..end]);
            }
        }
    }
}
