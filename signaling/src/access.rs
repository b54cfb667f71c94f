//! Who may place calls: per-trunk IP allow-lists and digest authentication of configured users
//! (RFC 3261 22, RFC 8760: SHA-256 and MD5 challenges, SHA-256 first).
//!
//! A new INVITE from an address on a trunk's allow-list is that trunk's call. Anything else is
//! decided by the mode: `Open` lets it in (the default, so a phone on the same host just
//! works), `Challenge` asks for credentials of a configured user (401 with one
//! `WWW-Authenticate` per configured algorithm, preferred first), `Reject` answers 403. Nonces are stateless (see
//! [`NonceIssuer`]), so 10,000 callers keep no table here.
//!
//! Sans-IO: the caller passes the wall-clock seconds used in nonces.

use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use crate::digest::{Algorithm, AuthError, Credentials, NonceIssuer};
use crate::message::SipMessage;

/// What happens to a caller from an address no trunk allows.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum AuthMode {
    /// Anyone may call.
    #[default]
    Open,
    /// Callers must authenticate as a configured user (digest).
    Challenge,
    /// Callers are refused with 403.
    Reject,
}

impl FromStr for AuthMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "open" => Ok(AuthMode::Open),
            "challenge" => Ok(AuthMode::Challenge),
            "reject" => Ok(AuthMode::Reject),
            _ => Err(format!(
                "{s:?} is not an auth mode (expected open, challenge or reject)"
            )),
        }
    }
}

/// An address prefix such as `203.0.113.0/24`, `2001:db8::/32` or a single address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    net: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// Whether `ip` is inside the prefix (IPv4-mapped IPv6 addresses match IPv4 prefixes).
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        match (self.net, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(n) & mask == u32::from(a) & mask
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(n) & mask == u128::from(a) & mask
            }
            _ => false,
        }
    }
}

impl FromStr for Cidr {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("{s:?} is not an address or prefix (e.g. 203.0.113.0/24)");
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let net: IpAddr = addr.trim().parse().map_err(|_| bad())?;
        let max = if net.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) => p.trim().parse::<u8>().map_err(|_| bad())?,
            None => max,
        };
        if prefix > max {
            return Err(bad());
        }
        Ok(Cidr { net, prefix })
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.net, self.prefix)
    }
}

/// A trunk's inbound side: the addresses its calls come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrunkAcl {
    /// The trunk's name (logs, call records).
    pub name: String,
    /// Source prefixes.
    pub allow: Vec<Cidr>,
}

/// Access settings.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AccessConfig {
    /// Callers no trunk allows.
    pub mode: AuthMode,
    /// Digest realm.
    pub realm: String,
    /// Trunks and their allow-lists.
    pub trunks: Vec<TrunkAcl>,
    /// Users (name, password) who may authenticate.
    pub users: Vec<(String, String)>,
    /// Digest algorithms challenged with, most preferred first (empty: SHA-256, MD5). Some
    /// clients (sipp among them) only read the first challenge and know only MD5.
    pub algorithms: Vec<Algorithm>,
}

/// Who a caller was admitted as.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Caller {
    /// From a trunk's allow-list.
    Trunk(String),
    /// An authenticated user.
    User(String),
    /// Not identified (open mode).
    Anonymous,
}

/// The decision for one request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Go on.
    Allowed(Caller),
    /// Answer 401 with these `WWW-Authenticate` values.
    Challenge(Vec<String>),
    /// Answer 403.
    Forbidden(&'static str),
}

/// Counters for operators.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AccessStats {
    /// Requests challenged (no or stale credentials).
    pub challenged: u64,
    /// Credentials that did not verify (wrong password, unknown user, forged nonce).
    pub failed: u64,
    /// Requests refused by the allow-lists in reject mode.
    pub rejected: u64,
}

/// The access check.
pub struct Access {
    cfg: AccessConfig,
    users: HashMap<String, String>,
    realm: String,
    /// One issuer per algorithm, the preferred first (RFC 8760 2.4).
    issuers: Vec<(Algorithm, NonceIssuer)>,
    stats: AccessStats,
}

impl Access {
    /// An access check signing nonces with `key` (random per process).
    pub fn new(cfg: AccessConfig, key: [u8; 32]) -> Self {
        let realm = if cfg.realm.is_empty() {
            "chorus".to_string()
        } else {
            cfg.realm.clone()
        };
        let algorithms = if cfg.algorithms.is_empty() {
            vec![Algorithm::Sha256, Algorithm::Md5]
        } else {
            cfg.algorithms.clone()
        };
        Access {
            users: cfg.users.iter().cloned().collect(),
            issuers: algorithms
                .into_iter()
                .map(|a| (a, NonceIssuer::new(&realm, key, a)))
                .collect(),
            realm,
            cfg,
            stats: AccessStats::default(),
        }
    }

    /// Counters so far.
    pub fn stats(&self) -> AccessStats {
        self.stats
    }

    fn challenges(&self, unix_secs: u64, stale: bool) -> Vec<String> {
        self.issuers
            .iter()
            .map(|(_, i)| i.challenge(unix_secs, stale).to_string())
            .collect()
    }

    /// Decides whether `request` from `source` may start a call.
    pub fn check(&mut self, unix_secs: u64, source: IpAddr, request: &SipMessage) -> Verdict {
        if let Some(t) = self
            .cfg
            .trunks
            .iter()
            .find(|t| t.allow.iter().any(|c| c.contains(source)))
        {
            return Verdict::Allowed(Caller::Trunk(t.name.clone()));
        }
        match self.cfg.mode {
            AuthMode::Open => Verdict::Allowed(Caller::Anonymous),
            AuthMode::Reject => {
                self.stats.rejected += 1;
                Verdict::Forbidden("Forbidden - source not allowed")
            }
            AuthMode::Challenge => self.authenticate(unix_secs, request),
        }
    }

    fn authenticate(&mut self, unix_secs: u64, request: &SipMessage) -> Verdict {
        // A phone may answer each of our challenges; take the one for our realm.
        let creds = request
            .headers()
            .all("Authorization")
            .filter_map(|v| Credentials::parse(v).ok())
            .find(|c| c.realm == self.realm);
        let Some(creds) = creds else {
            self.stats.challenged += 1;
            return Verdict::Challenge(self.challenges(unix_secs, false));
        };
        let method = request.method().map_or("", |m| m.as_str());
        let Some(password) = self.users.get(&creds.username) else {
            self.stats.failed += 1;
            return Verdict::Forbidden("Forbidden - unknown user or wrong password");
        };
        let Some((_, issuer)) = self.issuers.iter().find(|(a, _)| *a == creds.algorithm) else {
            self.stats.challenged += 1;
            return Verdict::Challenge(self.challenges(unix_secs, false));
        };
        match issuer.verify(&creds, password, method, request.body(), unix_secs) {
            Ok(()) => Verdict::Allowed(Caller::User(creds.username)),
            Err(AuthError::Stale) => {
                self.stats.challenged += 1;
                Verdict::Challenge(self.challenges(unix_secs, true))
            }
            Err(_) => {
                self.stats.failed += 1;
                Verdict::Forbidden("Forbidden - unknown user or wrong password")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::digest::Challenge;

    fn invite(auth: Option<&str>) -> SipMessage {
        let auth = auth
            .map(|a| format!("Authorization: {a}\r\n"))
            .unwrap_or_default();
        let text = format!(
            "INVITE sip:1000@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.9:5060;branch=z9hG4bK1\r\nFrom: <sip:alice@10.0.0.9>;tag=1\r\nTo: <sip:1000@127.0.0.1>\r\nCall-ID: c1\r\nCSeq: 1 INVITE\r\nMax-Forwards: 70\r\n{auth}Content-Length: 0\r\n\r\n"
        );
        SipMessage::parse(text.as_bytes()).unwrap()
    }

    fn access(mode: AuthMode) -> Access {
        Access::new(
            AccessConfig {
                mode,
                realm: "chorus.test".into(),
                trunks: vec![TrunkAcl {
                    name: "carrier".into(),
                    allow: vec!["203.0.113.0/24".parse().unwrap()],
                }],
                users: vec![("alice".into(), "secret".into())],
                algorithms: vec![],
            },
            [7; 32],
        )
    }

    #[test]
    fn prefixes() {
        let c: Cidr = "203.0.113.0/24".parse().unwrap();
        assert!(c.contains("203.0.113.77".parse().unwrap()));
        assert!(c.contains("::ffff:203.0.113.1".parse().unwrap()));
        assert!(!c.contains("203.0.114.1".parse().unwrap()));
        let one: Cidr = "198.51.100.7".parse().unwrap();
        assert!(one.contains("198.51.100.7".parse().unwrap()));
        assert!(!one.contains("198.51.100.8".parse().unwrap()));
        let all: Cidr = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains("192.0.2.1".parse().unwrap()));
        let v6: Cidr = "2001:db8::/32".parse().unwrap();
        assert!(v6.contains("2001:db8::1".parse().unwrap()));
        assert!(!v6.contains("10.0.0.1".parse().unwrap()));
        for bad in ["10.0.0.0/33", "nonsense", "::/129", "10.0.0.0/x"] {
            assert!(bad.parse::<Cidr>().is_err(), "{bad}");
        }
    }

    #[test]
    fn trunks_pass_others_follow_the_mode() {
        let trunk_ip = "203.0.113.5".parse().unwrap();
        let other = "10.0.0.9".parse().unwrap();
        let mut open = access(AuthMode::Open);
        assert_eq!(
            open.check(0, trunk_ip, &invite(None)),
            Verdict::Allowed(Caller::Trunk("carrier".into()))
        );
        assert_eq!(
            open.check(0, other, &invite(None)),
            Verdict::Allowed(Caller::Anonymous)
        );
        let mut reject = access(AuthMode::Reject);
        assert!(matches!(
            reject.check(0, other, &invite(None)),
            Verdict::Forbidden(_)
        ));
        assert_eq!(reject.stats().rejected, 1);
    }

    /// Answers the challenge as a phone would.
    fn answer(challenge: &str, user: &str, password: &str) -> String {
        let ch = Challenge::parse(challenge).unwrap();
        Credentials::answer(
            &ch,
            user,
            password,
            "INVITE",
            "sip:1000@127.0.0.1",
            b"",
            "0a4f113b",
            1,
        )
        .to_string()
    }

    #[test]
    fn digest_challenge_and_answers() {
        let other = "10.0.0.9".parse().unwrap();
        let mut a = access(AuthMode::Challenge);
        let now = 1_800_000_000;
        let Verdict::Challenge(chs) = a.check(now, other, &invite(None)) else {
            panic!("challenged")
        };
        assert_eq!(chs.len(), 2);
        assert!(chs[0].contains("SHA-256") && chs[1].contains("MD5"));
        for ch in &chs {
            let good = answer(ch, "alice", "secret");
            assert_eq!(
                a.check(now + 1, other, &invite(Some(&good))),
                Verdict::Allowed(Caller::User("alice".into())),
                "{ch}"
            );
            let wrong = answer(ch, "alice", "guess");
            assert!(matches!(
                a.check(now + 1, other, &invite(Some(&wrong))),
                Verdict::Forbidden(_)
            ));
            let stranger = answer(ch, "mallory", "secret");
            assert!(matches!(
                a.check(now + 1, other, &invite(Some(&stranger))),
                Verdict::Forbidden(_)
            ));
            // An old nonce with the right password: challenged again with stale=true.
            let Verdict::Challenge(again) = a.check(now + 100_000, other, &invite(Some(&good)))
            else {
                panic!("stale")
            };
            assert!(again[0].to_ascii_lowercase().contains("stale=true"));
        }
        assert_eq!(a.stats().failed, 4);
        // Garbage credentials are a challenge, never a panic.
        assert!(matches!(
            a.check(now, other, &invite(Some("Digest ,,,=\""))),
            Verdict::Challenge(_)
        ));
    }
}
