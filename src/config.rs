//! Server configuration: defaults, then a TOML file (`--config`), then command-line flags.
//!
//! Every setting is both a TOML key and a flag, parsed by the same function, so the two cannot
//! disagree. Unknown keys and bad values are rejected with a message naming the key.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use chorus_engine::runtime::{EngineConfig, IoKind};
use chorus_signaling::access::{AccessConfig, AuthMode, Cidr, TrunkAcl};
use chorus_signaling::admission::AdmissionConfig;
use chorus_signaling::digest::Algorithm;
use chorus_signaling::sdp::{Codec, OfferAnswerConfig, SrtpPolicy, VideoConfig};
use chorus_signaling::session_timer::TimerPolicy;
use chorus_signaling::ua::UaConfig;

/// A SIP transport.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SipTransport {
    /// SIP over UDP.
    Udp,
    /// SIP over TCP.
    Tcp,
    /// SIP over TLS.
    Tls,
}

impl fmt::Display for SipTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SipTransport::Udp => "udp",
            SipTransport::Tcp => "tcp",
            SipTransport::Tls => "tls",
        })
    }
}

/// One SIP listening address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SipListen {
    /// Transport.
    pub transport: SipTransport,
    /// Address.
    pub addr: SocketAddr,
}

impl fmt::Display for SipListen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.transport, self.addr)
    }
}

/// Parses `udp:ADDR`, `tcp:ADDR`, `tls:ADDR` or a bare `ADDR` (UDP and TCP).
pub fn parse_sip(s: &str) -> Result<Vec<SipListen>, String> {
    let (transports, addr): (&[SipTransport], &str) = match s.split_once(':') {
        Some(("udp", rest)) => (&[SipTransport::Udp], rest),
        Some(("tcp", rest)) => (&[SipTransport::Tcp], rest),
        Some(("tls", rest)) => (&[SipTransport::Tls], rest),
        _ => (&[SipTransport::Udp, SipTransport::Tcp], s),
    };
    let addr: SocketAddr = addr.parse().map_err(|_| {
        format!(
            "{s:?} is not a SIP address (expected [udp:|tcp:|tls:]IP:PORT, e.g. 127.0.0.1:5060)"
        )
    })?;
    Ok(transports
        .iter()
        .map(|&transport| SipListen { transport, addr })
        .collect())
}

/// An inclusive UDP port range `LO-HI`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PortRange {
    /// First port.
    pub lo: u16,
    /// Last port.
    pub hi: u16,
}

impl FromStr for PortRange {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("{s:?} is not a port range (expected LO-HI, e.g. 20000-39999)");
        let (lo, hi) = s.split_once('-').ok_or_else(bad)?;
        let lo: u16 = lo.trim().parse().map_err(|_| bad())?;
        let hi: u16 = hi.trim().parse().map_err(|_| bad())?;
        if lo == 0 || hi < lo.saturating_add(1) {
            return Err(format!(
                "port range {s:?} must hold at least two ports, lowest first, and not start at 0"
            ));
        }
        Ok(PortRange { lo, hi })
    }
}

impl fmt::Display for PortRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.lo, self.hi)
    }
}

/// Log level names accepted by `--log-level`.
pub const LOG_LEVELS: &[&str] = &["error", "warn", "info", "debug", "trace"];

/// Everything `chorus serve` is configured with.
#[derive(Clone, Debug, PartialEq)]
pub struct ServeConfig {
    /// SIP listening addresses.
    pub sip: Vec<SipListen>,
    /// IP the media sockets bind to and SDP advertises.
    pub media_ip: IpAddr,
    /// UDP ports for media.
    pub media_ports: PortRange,
    /// Directory for the server's data (lock file, later the SQLite database, TLS keys).
    pub data_dir: PathBuf,
    /// Media cores; 0 = one per CPU.
    pub cores: usize,
    /// Packet I/O backend.
    pub io: IoKind,
    /// Log level.
    pub log_level: String,
    /// Media tick in milliseconds (10 or 20).
    pub tick_ms: u64,
    /// RTP/RTCP socket pairs per core.
    pub pairs_per_core: usize,
    /// Capacity of each core's command and event queue.
    pub queue_capacity: usize,
    /// Pin media cores to CPUs.
    pub pin_cores: bool,
    /// UDP GSO on the media transmit path (where the kernel supports it).
    pub gso: bool,
    /// TLS certificate chain (PEM) for SIP over TLS; with `tls_key`. None: self-signed.
    pub tls_cert: Option<PathBuf>,
    /// TLS private key (PEM); with `tls_cert`.
    pub tls_key: Option<PathBuf>,
    /// End a call after this many seconds without RTP or RTCP from the caller.
    pub rtp_timeout_s: u64,
    /// Ring this long (180 Ringing) before answering, in milliseconds.
    pub answer_delay_ms: u64,
    /// Audio codecs in order of preference.
    pub codecs: Vec<Codec>,
    /// SRTP policy.
    pub srtp: SrtpPolicy,
    /// Concurrent calls at most.
    pub max_calls: usize,
    /// New calls per second, all sources.
    pub calls_per_s: f64,
    /// New calls per second from one source address.
    pub calls_per_s_per_source: f64,
    /// Session interval (RFC 4028) we ask for when a caller names none, seconds.
    pub session_expires_s: u32,
    /// Smallest session interval we accept, seconds.
    pub min_se_s: u32,
    /// Callers no trunk allows: open, challenge or reject.
    pub auth: AuthMode,
    /// Digest realm.
    pub realm: String,
    /// Digest users, `name:password`.
    pub users: Vec<(String, String)>,
    /// Digest algorithms challenged with, preferred first.
    pub digest_algorithms: Vec<Algorithm>,
    /// Trunks.
    pub trunks: Vec<Trunk>,
    /// A conference ID keyed in the IVR that the directory does not know creates an ad-hoc
    /// conference without PIN (on by default; turn off in production).
    pub allow_adhoc: bool,
    /// The Request-URI user that reaches the echo test (media back to the caller).
    pub echo_user: String,
    /// Seconds the IVR waits for keys after asking (keys without `#` are taken then).
    pub ivr_digit_timeout_s: u64,
    /// Members from which a conference spans cores instead of moving callers to its core.
    pub span_after: usize,
    /// Talkers a conference mixes at most.
    pub talkers: usize,
    /// The rate conferences mix at, Hz (16000, or 8000 when every caller is G.711).
    pub mix_rate: u32,
    /// Accept and offer video (the SFU): a call's first m=video is answered on the next
    /// socket pair of its core.
    pub video: bool,
    /// Forward only the video of a conference's N most recent speakers; 0: everyone's.
    pub video_last_n: usize,
}

/// A configured trunk: where its calls come from and how we reach it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Trunk {
    /// Name (logs, call records).
    pub name: String,
    /// Where calls out through the trunk go.
    pub address: Option<SipListen>,
    /// Source prefixes whose calls are this trunk's (its address is always included).
    pub allow: Vec<Cidr>,
    /// Credentials we answer the trunk's challenges with.
    pub username: Option<String>,
    /// Password for `username`.
    pub password: Option<String>,
}

impl Trunk {
    /// Sets one field from its text.
    fn set(&mut self, field: &str, value: &str) -> Result<(), String> {
        match field {
            "name" => self.name = value.to_string(),
            "address" => {
                let mut l = parse_sip(value)?;
                l.truncate(1);
                self.address = l.pop();
            }
            "allow" => {
                for c in value.split(',').filter(|c| !c.trim().is_empty()) {
                    self.allow.push(c.trim().parse()?);
                }
            }
            "username" => self.username = Some(value.to_string()),
            "password" => self.password = Some(value.to_string()),
            _ => {
                return Err(format!(
                    "unknown trunk field {field:?} (known: name, address, allow, username, password)"
                ));
            }
        }
        Ok(())
    }

    fn checked(mut self) -> Result<Trunk, String> {
        if self.name.is_empty() {
            return Err("a trunk needs a name".into());
        }
        if let Some(a) = self.address {
            self.allow.push(Cidr::from_str(&a.addr.ip().to_string())?);
        }
        if self.allow.is_empty() {
            return Err(format!("trunk {:?} needs an address or allow", self.name));
        }
        if self.username.is_some() != self.password.is_some() {
            return Err(format!(
                "trunk {:?}: username and password go together",
                self.name
            ));
        }
        Ok(self)
    }

    /// Parses `name=carrier;address=udp:203.0.113.5:5060;allow=203.0.113.0/24,198.51.100.7;
    /// username=u;password=p`.
    pub fn parse(spec: &str) -> Result<Trunk, String> {
        let mut t = Trunk::default();
        for part in spec.split(';').filter(|p| !p.trim().is_empty()) {
            let (k, v) = part
                .split_once('=')
                .ok_or_else(|| format!("{part:?} is not FIELD=VALUE"))?;
            t.set(k.trim(), v.trim())?;
        }
        t.checked()
    }

    /// Reads a `[[trunk]]` table.
    fn from_table(table: &toml::Table) -> Result<Trunk, String> {
        let mut t = Trunk::default();
        for (k, v) in table {
            match v {
                toml::Value::String(s) => t.set(k, s)?,
                toml::Value::Array(items) => {
                    for item in items {
                        let toml::Value::String(s) = item else {
                            return Err(format!("trunk field {k:?}: expected strings"));
                        };
                        t.set(k, s)?;
                    }
                }
                other => return Err(format!("trunk field {k:?}: unsupported value {other}")),
            }
        }
        t.checked()
    }

    /// The inbound side, for the access check.
    pub fn acl(&self) -> TrunkAcl {
        TrunkAcl {
            name: self.name.clone(),
            allow: self.allow.clone(),
        }
    }
}

/// Parses `name:password`.
fn parse_user(s: &str) -> Result<(String, String), String> {
    match s.split_once(':') {
        Some((u, p)) if !u.is_empty() && !p.is_empty() => Ok((u.into(), p.into())),
        _ => Err(format!("{s:?} is not NAME:PASSWORD")),
    }
}

/// Parses a comma-separated codec list such as `opus,g722,pcmu,pcma`.
fn parse_codecs(s: &str) -> Result<Vec<Codec>, String> {
    let mut out = Vec::new();
    for name in s.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        let c = match name.to_ascii_lowercase().as_str() {
            "opus" => Codec::Opus,
            "g722" => Codec::G722,
            "pcmu" => Codec::Pcmu,
            "pcma" => Codec::Pcma,
            _ => {
                return Err(format!(
                    "{name:?} is not a codec (known: opus, g722, pcmu, pcma)"
                ));
            }
        };
        if !out.contains(&c) {
            out.push(c);
        }
    }
    if out.is_empty() {
        return Err("needs at least one codec".into());
    }
    Ok(out)
}

impl Default for ServeConfig {
    fn default() -> Self {
        ServeConfig {
            sip: ["127.0.0.1:5060", "tls:127.0.0.1:5061"]
                .iter()
                .flat_map(|s| parse_sip(s).unwrap_or_default())
                .collect(),
            media_ip: IpAddr::from([127, 0, 0, 1]),
            media_ports: PortRange {
                lo: 20_000,
                hi: 39_999,
            },
            data_dir: PathBuf::from("./chorus-data"),
            cores: 0,
            io: IoKind::Uring,
            log_level: "info".into(),
            tick_ms: 20,
            pairs_per_core: 2,
            queue_capacity: 4096,
            pin_cores: true,
            gso: true,
            tls_cert: None,
            tls_key: None,
            rtp_timeout_s: 60,
            answer_delay_ms: 0,
            codecs: Codec::DEFAULT_PREFERENCE.to_vec(),
            srtp: SrtpPolicy::Optional,
            max_calls: 10_000,
            calls_per_s: 500.0,
            calls_per_s_per_source: 100.0,
            session_expires_s: 1800,
            min_se_s: 90,
            auth: AuthMode::Open,
            realm: "chorus".into(),
            users: Vec::new(),
            digest_algorithms: vec![Algorithm::Sha256, Algorithm::Md5],
            trunks: Vec::new(),
            allow_adhoc: true,
            echo_user: "echo".into(),
            ivr_digit_timeout_s: 10,
            span_after: 100,
            talkers: 3,
            mix_rate: 16_000,
            video: true,
            video_last_n: 0,
        }
    }
}

/// The keys of the TOML file, each also a flag `--KEY` (with `-` for `_`).
pub const KEYS: &[&str] = &[
    "sip",
    "media_ip",
    "media_ports",
    "data_dir",
    "cores",
    "io",
    "log_level",
    "tick_ms",
    "pairs_per_core",
    "queue_capacity",
    "pin_cores",
    "gso",
    "tls_cert",
    "tls_key",
    "rtp_timeout_s",
    "answer_delay_ms",
    "codecs",
    "srtp",
    "max_calls",
    "calls_per_s",
    "calls_per_s_per_source",
    "session_expires_s",
    "min_se_s",
    "auth",
    "realm",
    "digest_algorithms",
    "allow_adhoc",
    "echo_user",
    "ivr_digit_timeout_s",
    "span_after",
    "talkers",
    "mix_rate",
    "video",
    "video_last_n",
    "user",
    "trunk",
];

fn parse_bool(v: &str) -> Result<bool, String> {
    match v {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(format!("{v:?} is not true or false")),
    }
}

fn parse_num<T: FromStr>(v: &str, what: &str) -> Result<T, String> {
    v.trim()
        .parse()
        .map_err(|_| format!("{v:?} is not a valid {what}"))
}

impl ServeConfig {
    /// Sets one setting from its textual value (a flag's argument or a TOML scalar).
    pub fn set(&mut self, key: &str, value: &str) -> Result<(), String> {
        match key {
            "sip" => self.sip = parse_sip(value)?,
            "media_ip" => {
                self.media_ip = value
                    .parse()
                    .map_err(|_| format!("{value:?} is not an IP address"))?
            }
            "media_ports" => self.media_ports = value.parse()?,
            "data_dir" => {
                if value.is_empty() {
                    return Err("must not be empty".into());
                }
                self.data_dir = PathBuf::from(value)
            }
            "cores" => {
                let n: usize = parse_num(value, "number of cores")?;
                if n > 1024 {
                    return Err(format!("{n} cores is more than 1024"));
                }
                self.cores = n
            }
            "io" => self.io = value.parse()?,
            "log_level" => {
                if !LOG_LEVELS.contains(&value) {
                    return Err(format!(
                        "{value:?} is not a log level (expected one of {})",
                        LOG_LEVELS.join(", ")
                    ));
                }
                self.log_level = value.into()
            }
            "tick_ms" => {
                let ms: u64 = parse_num(value, "tick in milliseconds")?;
                if ms != 10 && ms != 20 {
                    return Err(format!("tick must be 10 or 20 ms, not {ms}"));
                }
                self.tick_ms = ms
            }
            "pairs_per_core" => {
                let n: usize = parse_num(value, "socket pair count")?;
                if !(1..=64).contains(&n) {
                    return Err(format!("{n} is outside 1..=64"));
                }
                self.pairs_per_core = n
            }
            "queue_capacity" => {
                let n: usize = parse_num(value, "queue capacity")?;
                if !(16..=1 << 20).contains(&n) {
                    return Err(format!("{n} is outside 16..=1048576"));
                }
                self.queue_capacity = n
            }
            "pin_cores" => self.pin_cores = parse_bool(value)?,
            "gso" => self.gso = parse_bool(value)?,
            "rtp_timeout_s" => {
                let n: u64 = parse_num(value, "number of seconds")?;
                if !(5..=86_400).contains(&n) {
                    return Err(format!("{n} is outside 5..=86400"));
                }
                self.rtp_timeout_s = n
            }
            "answer_delay_ms" => {
                let n: u64 = parse_num(value, "number of milliseconds")?;
                if n > 60_000 {
                    return Err(format!("{n} is more than 60000"));
                }
                self.answer_delay_ms = n
            }
            "codecs" => self.codecs = parse_codecs(value)?,
            "srtp" => {
                self.srtp = match value {
                    "optional" => SrtpPolicy::Optional,
                    "required" => SrtpPolicy::Required,
                    "off" => SrtpPolicy::Off,
                    _ => {
                        return Err(format!(
                            "{value:?} is not an SRTP policy (expected optional, required or off)"
                        ));
                    }
                }
            }
            "max_calls" => {
                let n: usize = parse_num(value, "number of calls")?;
                if !(1..=1_000_000).contains(&n) {
                    return Err(format!("{n} is outside 1..=1000000"));
                }
                self.max_calls = n
            }
            "calls_per_s" | "calls_per_s_per_source" => {
                let r: f64 = parse_num(value, "rate in calls per second")?;
                if !(r > 0.0 && r <= 1e6) {
                    return Err(format!("{value} is outside (0, 1000000]"));
                }
                if key == "calls_per_s" {
                    self.calls_per_s = r
                } else {
                    self.calls_per_s_per_source = r
                }
            }
            "session_expires_s" | "min_se_s" => {
                let n: u32 = parse_num(value, "number of seconds")?;
                if !(90..=86_400).contains(&n) {
                    return Err(format!("{n} is outside 90..=86400 (RFC 4028 floor is 90)"));
                }
                if key == "min_se_s" {
                    self.min_se_s = n
                } else {
                    self.session_expires_s = n
                }
            }
            "auth" => self.auth = value.parse()?,
            "allow_adhoc" => self.allow_adhoc = parse_bool(value)?,
            "video" => self.video = parse_bool(value)?,
            "video_last_n" => {
                let n: usize = parse_num(value, "number of speakers")?;
                if n > 1_000 {
                    return Err(format!("{n} is outside 0..=1000 (0: everyone)"));
                }
                self.video_last_n = n
            }
            "ivr_digit_timeout_s" => {
                let n: u64 = parse_num(value, "number of seconds")?;
                if !(1..=120).contains(&n) {
                    return Err(format!("{n} is outside 1..=120"));
                }
                self.ivr_digit_timeout_s = n
            }
            "talkers" => {
                let n: usize = parse_num(value, "number of talkers")?;
                if !(1..=16).contains(&n) {
                    return Err(format!("{n} is outside 1..=16"));
                }
                self.talkers = n
            }
            "mix_rate" => {
                let n: u32 = parse_num(value, "rate in Hz")?;
                if ![8_000, 16_000].contains(&n) {
                    return Err(format!("{n} Hz: conferences mix at 8000 or 16000"));
                }
                self.mix_rate = n
            }
            "span_after" => {
                let n: usize = parse_num(value, "number of members")?;
                if !(1..=100_000).contains(&n) {
                    return Err(format!("{n} is outside 1..=100000"));
                }
                self.span_after = n
            }
            "echo_user" => {
                if value.is_empty()
                    || !value
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
                {
                    return Err("must be a non-empty SIP user name (letters, digits, - _ .)".into());
                }
                self.echo_user = value.into()
            }
            "realm" => {
                if value.is_empty() || value.contains('"') {
                    return Err("must be non-empty and without quotes".into());
                }
                self.realm = value.into()
            }
            "digest_algorithms" => {
                let mut algs = Vec::new();
                for name in value.split(',').map(str::trim).filter(|n| !n.is_empty()) {
                    match Algorithm::from_name(name) {
                        Some(a @ (Algorithm::Sha256 | Algorithm::Md5)) if !algs.contains(&a) => {
                            algs.push(a)
                        }
                        _ => {
                            return Err(format!(
                                "{name:?} is not a digest algorithm (expected SHA-256, MD5)"
                            ));
                        }
                    }
                }
                if algs.is_empty() {
                    return Err("needs at least one algorithm".into());
                }
                self.digest_algorithms = algs
            }
            "user" => self.users.push(parse_user(value)?),
            "trunk" => self.trunks.push(Trunk::parse(value)?),
            "tls_cert" | "tls_key" => {
                if value.is_empty() {
                    return Err("must not be empty".into());
                }
                let path = Some(PathBuf::from(value));
                if key == "tls_cert" {
                    self.tls_cert = path
                } else {
                    self.tls_key = path
                }
            }
            _ => {
                return Err(format!("unknown setting (known: {})", KEYS.join(", ")));
            }
        }
        Ok(())
    }

    /// Applies a TOML document. Errors name the file and the key.
    pub fn apply_toml(&mut self, text: &str, origin: &Path) -> Result<(), String> {
        let table: toml::Table = text
            .parse()
            .map_err(|e| format!("{}: not valid TOML: {e}", origin.display()))?;
        for (key, value) in &table {
            let err = |msg: String| format!("{}: key `{key}`: {msg}", origin.display());
            if !KEYS.contains(&key.as_str()) {
                return Err(err(format!(
                    "unknown key (known keys: {})",
                    KEYS.join(", ")
                )));
            }
            match (key.as_str(), value) {
                ("sip", toml::Value::Array(items)) => {
                    let mut all = Vec::new();
                    for item in items {
                        let toml::Value::String(s) = item else {
                            return Err(err(format!("expected strings, found {item}")));
                        };
                        all.extend(parse_sip(s).map_err(err)?);
                    }
                    if all.is_empty() {
                        return Err(err("needs at least one address".into()));
                    }
                    self.sip = all;
                }
                ("trunk", toml::Value::Array(items)) => {
                    for item in items {
                        let t = match item {
                            toml::Value::Table(t) => Trunk::from_table(t),
                            toml::Value::String(s) => Trunk::parse(s),
                            other => Err(format!("expected tables, found {other}")),
                        };
                        self.trunks.push(t.map_err(err)?);
                    }
                }
                ("user", toml::Value::Array(items)) => {
                    for item in items {
                        let toml::Value::String(s) = item else {
                            return Err(err(format!("expected strings, found {item}")));
                        };
                        self.users.push(parse_user(s).map_err(err)?);
                    }
                }
                ("codecs", toml::Value::Array(items)) => {
                    let names: Result<Vec<&str>, String> = items
                        .iter()
                        .map(|i| i.as_str().ok_or(format!("expected strings, found {i}")))
                        .collect();
                    self.codecs = parse_codecs(&names.map_err(err)?.join(",")).map_err(err)?;
                }
                (_, toml::Value::String(s)) => self.set(key, s).map_err(err)?,
                (_, toml::Value::Float(f)) => self.set(key, &f.to_string()).map_err(err)?,
                (_, toml::Value::Integer(i)) => self.set(key, &i.to_string()).map_err(err)?,
                (_, toml::Value::Boolean(b)) => self.set(key, &b.to_string()).map_err(err)?,
                (_, other) => {
                    return Err(err(format!("unsupported value {other}")));
                }
            }
        }
        Ok(())
    }

    /// Checks settings that depend on each other.
    pub fn validate(&self) -> Result<(), String> {
        if self.min_se_s > self.session_expires_s {
            return Err(format!(
                "min_se_s ({}) is larger than session_expires_s ({})",
                self.min_se_s, self.session_expires_s
            ));
        }
        if self.auth == AuthMode::Challenge && self.users.is_empty() {
            return Err("auth = challenge needs at least one user (NAME:PASSWORD)".into());
        }
        match (&self.tls_cert, &self.tls_key) {
            (Some(_), None) | (None, Some(_)) => {
                Err("tls_cert and tls_key must be given together".into())
            }
            _ => Ok(()),
        }
    }

    /// The SIP user agent's settings.
    /// The conference service's settings.
    pub fn conference(&self) -> crate::conference::ServiceConfig {
        crate::conference::ServiceConfig {
            allow_adhoc: self.allow_adhoc,
            echo_user: self.echo_user.clone(),
            digit_timeout: Duration::from_secs(self.ivr_digit_timeout_s),
            span_after: self.span_after,
            ..crate::conference::ServiceConfig::default()
        }
    }

    pub fn ua(&self, server: String) -> UaConfig {
        UaConfig {
            offer_answer: OfferAnswerConfig {
                codecs: self.codecs.clone(),
                srtp: self.srtp,
                video: self.video.then(VideoConfig::default),
                ..OfferAnswerConfig::default()
            },
            admission: AdmissionConfig {
                max_calls: self.max_calls,
                attempts_per_sec: self.calls_per_s,
                burst: (self.calls_per_s * 2.0).max(1.0),
                attempts_per_sec_per_source: self.calls_per_s_per_source,
                burst_per_source: (self.calls_per_s_per_source * 2.0).max(1.0),
                ..AdmissionConfig::default()
            },
            media_ip: self.media_ip,
            inactivity_timeout: Some(Duration::from_secs(self.rtp_timeout_s)),
            server,
            // The conference service connects the echo test itself.
            echo: false,
            answer_delay: Duration::from_millis(self.answer_delay_ms),
            access: AccessConfig {
                mode: self.auth,
                realm: self.realm.clone(),
                trunks: self.trunks.iter().map(Trunk::acl).collect(),
                users: self.users.clone(),
                algorithms: self.digest_algorithms.clone(),
            },
            session_timer: TimerPolicy {
                session_expires_secs: self.session_expires_s,
                min_se_secs: self.min_se_s,
            },
        }
    }

    /// Whether any SIP listener uses TLS.
    pub fn wants_tls(&self) -> bool {
        self.sip.iter().any(|l| l.transport == SipTransport::Tls)
    }

    /// The media engine's settings.
    pub fn engine(&self) -> EngineConfig {
        EngineConfig {
            cores: self.cores,
            io: self.io,
            media_ip: self.media_ip,
            media_ports: (self.media_ports.lo, self.media_ports.hi),
            pairs_per_core: self.pairs_per_core,
            tick: Duration::from_millis(self.tick_ms),
            queue_capacity: self.queue_capacity,
            pin_cores: self.pin_cores,
            gso: self.gso,
            talkers: self.talkers,
            mix_rate: self.mix_rate,
            video_last_n: (self.video_last_n > 0).then_some(self.video_last_n),
            ..EngineConfig::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sip_addresses() {
        let d = ServeConfig::default();
        assert_eq!(d.sip.len(), 3, "UDP and TCP on 5060, TLS on 5061");
        assert!(d.wants_tls());
        let both = parse_sip("127.0.0.1:5070").unwrap();
        assert_eq!(both.len(), 2);
        assert_eq!(both[0].transport, SipTransport::Udp);
        assert_eq!(both[1].transport, SipTransport::Tcp);
        let tls = parse_sip("tls:127.0.0.1:5061").unwrap();
        assert_eq!(
            tls,
            vec![SipListen {
                transport: SipTransport::Tls,
                addr: "127.0.0.1:5061".parse().unwrap()
            }]
        );
        assert_eq!(parse_sip("udp:[::1]:5060").unwrap()[0].addr.port(), 5060);
        assert!(parse_sip("sctp:127.0.0.1:5060").is_err());
        assert!(parse_sip("127.0.0.1").is_err());
    }

    #[test]
    fn port_ranges() {
        assert_eq!(
            "20000-20099".parse::<PortRange>().unwrap(),
            PortRange {
                lo: 20000,
                hi: 20099
            }
        );
        for bad in ["20000", "9-8", "0-10", "a-b", "5-5", "1-70000"] {
            assert!(bad.parse::<PortRange>().is_err(), "{bad}");
        }
    }

    #[test]
    fn toml_overrides_defaults() {
        let mut c = ServeConfig::default();
        c.apply_toml(
            r#"
sip = ["udp:127.0.0.1:5070", "tls:127.0.0.1:5071"]
media_ports = "30000-30999"
cores = 2
io = "syscalls"
tick_ms = 10
pin_cores = false
gso = false
max_calls = 20000
calls_per_s = 2000
calls_per_s_per_source = 2000
"#,
            Path::new("c.toml"),
        )
        .unwrap();
        assert_eq!(c.sip.len(), 2);
        assert_eq!(c.media_ports.lo, 30000);
        assert_eq!(c.cores, 2);
        assert_eq!(c.io, IoKind::Syscalls);
        assert_eq!(c.tick_ms, 10);
        assert!(!c.pin_cores);
        assert!(!c.gso && !c.engine().gso);
        assert_eq!(
            (c.max_calls, c.calls_per_s, c.calls_per_s_per_source),
            (20_000, 2000.0, 2000.0)
        );
        assert_eq!(c.engine().tick, Duration::from_millis(10));
        assert_eq!(c.engine().video_last_n, None, "0 (the default) is everyone");
        c.apply_toml("video = false\nvideo_last_n = 4", Path::new("c.toml"))
            .unwrap();
        assert_eq!(c.engine().video_last_n, Some(4));
        assert_eq!(c.ua("chorus".into()).offer_answer.video, None);
    }

    #[test]
    fn tls_files_come_in_pairs() {
        let mut c = ServeConfig::default();
        c.apply_toml("tls_cert = \"/etc/chorus/cert.pem\"", Path::new("c.toml"))
            .unwrap();
        assert!(c.validate().unwrap_err().contains("together"));
        c.set("tls_key", "/etc/chorus/key.pem").unwrap();
        c.validate().unwrap();
    }

    #[test]
    fn sip_policy_keys() {
        let mut c = ServeConfig::default();
        c.apply_toml(
            r#"
codecs = ["pcma", "pcmu"]
srtp = "required"
answer_delay_ms = 1500
calls_per_s = 2.5
auth = "challenge"
user = ["alice:secret"]

[[trunk]]
name = "carrier"
address = "udp:203.0.113.5:5060"
allow = ["198.51.100.0/24"]
"#,
            Path::new("c.toml"),
        )
        .unwrap();
        c.validate().unwrap();
        assert_eq!(c.codecs, [Codec::Pcma, Codec::Pcmu]);
        assert_eq!(c.srtp, SrtpPolicy::Required);
        let ua = c.ua("t".into());
        assert_eq!(ua.answer_delay, Duration::from_millis(1500));
        assert_eq!(ua.admission.attempts_per_sec, 2.5);
        assert_eq!(ua.access.users, [("alice".into(), "secret".into())]);
        let acl = &ua.access.trunks[0];
        assert_eq!(acl.name, "carrier");
        assert!(
            acl.allow
                .iter()
                .any(|a| a.contains("203.0.113.5".parse().unwrap()))
        );
        assert!(
            acl.allow
                .iter()
                .any(|a| a.contains("198.51.100.9".parse().unwrap()))
        );
        // The flag form of a trunk.
        let t = Trunk::parse("name=b;allow=10.0.0.0/8;username=u;password=p").unwrap();
        assert_eq!(t.username.as_deref(), Some("u"));
        assert!(Trunk::parse("name=b;allow=10.0.0.0/8;username=u").is_err());
        // challenge without users is refused up front
        let mut lonely = ServeConfig::default();
        lonely.set("auth", "challenge").unwrap();
        assert!(
            lonely
                .validate()
                .unwrap_err()
                .contains("needs at least one user")
        );
    }

    #[test]
    fn errors_name_the_key() {
        let cases = [
            ("colour = \"blue\"", "key `colour`: unknown key"),
            ("io = \"dpdk\"", "key `io`: unknown I/O backend"),
            ("cores = \"many\"", "key `cores`"),
            ("tick_ms = 15", "key `tick_ms`: tick must be 10 or 20"),
            ("media_ports = \"1-\"", "key `media_ports`"),
            ("sip = [5060]", "key `sip`: expected strings"),
            ("pin_cores = 3", "key `pin_cores`"),
            ("gso = \"yes\"", "key `gso`"),
            ("log_level = \"loud\"", "key `log_level`"),
            (
                "codecs = \"pcmu,amr\"",
                "key `codecs`: \"amr\" is not a codec",
            ),
            ("srtp = \"maybe\"", "key `srtp`"),
            ("min_se_s = 30", "key `min_se_s`: 30 is outside"),
            ("auth = \"sometimes\"", "key `auth`"),
            (
                "user = [\"alice\"]",
                "key `user`: \"alice\" is not NAME:PASSWORD",
            ),
            ("[[trunk]]\nallow = \"10.0.0.0/33\"", "key `trunk`"),
            ("[[trunk]]\nname = \"x\"", "needs an address or allow"),
            ("max_calls = 0", "key `max_calls`: 0 is outside"),
            ("calls_per_s = -1", "key `calls_per_s`"),
            (
                "video = \"yes\"",
                "key `video`: \"yes\" is not true or false",
            ),
            ("video_last_n = 5000", "key `video_last_n`: 5000 is outside"),
        ];
        for (text, want) in cases {
            let err = ServeConfig::default()
                .apply_toml(text, Path::new("c.toml"))
                .unwrap_err();
            assert!(err.contains(want), "{text}: {err}");
            assert!(err.starts_with("c.toml: "), "{err}");
        }
        assert!(
            ServeConfig::default()
                .apply_toml("= nonsense", Path::new("c.toml"))
                .unwrap_err()
                .contains("not valid TOML")
        );
    }
}
