//! `chorus`: the Chorus conferencing media server.

use std::fs::File;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, Result};
use chorus_engine::runtime::{CoreId, Engine, Metric};
use chorus_signaling::transport::{ListenSpec, Transport, TransportConfig, Transports};
use chorus_signaling::ua::UserAgent;
use chorus_signaling::uac::{Uac, UacConfig};
use clap::{Args, Parser, Subcommand};
use mimalloc::MiMalloc;

mod admin;
mod cdr;
mod conference;
mod config;
mod directory;
mod recording;
mod sip;
use config::{KEYS, ServeConfig, SipTransport};

#[global_allocator]
static GLOBAL: MiMalloc = MiMalloc;

/// Chorus: a SIP conferencing media engine (audio mixer and video SFU), thread-per-core.
#[derive(Parser, Debug)]
#[command(name = "chorus", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

// Parsed once at start: the size of the largest variant costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand, Debug)]
enum Cmd {
    /// Run the server: start the media cores and serve until SIGINT or SIGTERM.
    Serve(ServeArgs),
    /// Manage the conference directory (DATA_DIR/chorus.db); works while a server runs.
    Conference(admin::ConferenceArgs),
    /// Print call detail records: one per leg (or per conference), newest first.
    Cdr(admin::CdrArgs),
}

/// Settings for `serve`. Each is also a key of the `--config` file (same name with `_`);
/// a flag overrides the file, the file overrides the default.
#[derive(Args, Debug, Default)]
struct ServeArgs {
    /// TOML configuration file. Keys: sip, media_ip, media_ports, data_dir, cores, io,
    /// log_level, tick_ms, pairs_per_core, queue_capacity, pin_cores, gso, tls_cert, tls_key,
    /// rtp_timeout_s, answer_delay_ms, codecs, srtp, max_calls, calls_per_s,
    /// calls_per_s_per_source, session_expires_s, min_se_s, auth, realm, digest_algorithms,
    /// user (list of NAME:PASSWORD), trunk (list of [[trunk]] tables or specs).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// SIP listening address, repeatable: udp:IP:PORT, tcp:IP:PORT, tls:IP:PORT, or a bare
    /// IP:PORT for both UDP and TCP [default: 127.0.0.1:5060 and tls:127.0.0.1:5061]
    #[arg(long, value_name = "ADDR")]
    sip: Vec<String>,
    /// IP address media sockets bind to and SDP advertises [default: 127.0.0.1]
    #[arg(long, value_name = "IP")]
    media_ip: Option<String>,
    /// UDP port range for media, LO-HI; each core takes RTP/RTCP pairs from it (ports in use
    /// are skipped) [default: 20000-39999]
    #[arg(long, value_name = "LO-HI")]
    media_ports: Option<String>,
    /// Directory for the server's own files; locked so two servers cannot share it
    /// [default: ./chorus-data]
    #[arg(long, value_name = "DIR")]
    data_dir: Option<String>,
    /// Number of media cores (threads); 0 means one per CPU [default: 0]
    #[arg(long, value_name = "N")]
    cores: Option<String>,
    /// Packet I/O backend: uring (io_uring; falls back to syscalls with a warning where it is
    /// blocked) or syscalls (recvmmsg/sendmmsg with epoll) [default: uring]
    #[arg(long, value_name = "uring|syscalls")]
    io: Option<String>,
    /// Log level: error, warn, info, debug or trace [default: info]
    #[arg(long, value_name = "LEVEL")]
    log_level: Option<String>,
    /// Media tick in milliseconds: 20 or 10 [default: 20]
    #[arg(long, value_name = "MS")]
    tick_ms: Option<String>,
    /// RTP/RTCP socket pairs per core [default: 2]
    #[arg(long, value_name = "N")]
    pairs_per_core: Option<String>,
    /// Capacity of each core's command and event queue [default: 4096]
    #[arg(long, value_name = "N")]
    queue_capacity: Option<String>,
    /// Pin each media core to its own CPU: true or false [default: true]
    #[arg(long, value_name = "BOOL")]
    pin_cores: Option<String>,
    /// Send a run of equal-size datagrams to one destination (a video frame's packets to a
    /// receiver) as one UDP GSO send: true or false [default: true]
    #[arg(long, value_name = "BOOL")]
    gso: Option<String>,
    /// Certificate chain (PEM) for SIP over TLS, with --tls-key [default: a self-signed pair
    /// generated into DATA_DIR/tls/ on first start]
    #[arg(long, value_name = "FILE")]
    tls_cert: Option<String>,
    /// Private key (PEM) of --tls-cert
    #[arg(long, value_name = "FILE")]
    tls_key: Option<String>,
    /// End a call after this many seconds without RTP or RTCP from the caller (BYE with a
    /// Reason) [default: 60]
    #[arg(long, value_name = "SECONDS")]
    rtp_timeout_s: Option<String>,
    /// Ring (180 Ringing) this long before answering a call, in milliseconds [default: 0]
    #[arg(long, value_name = "MS")]
    answer_delay_ms: Option<String>,
    /// Audio codecs in order of preference, comma-separated: opus, g722, pcmu, pcma
    /// [default: opus,g722,pcmu,pcma]
    #[arg(long, value_name = "LIST")]
    codecs: Option<String>,
    /// SRTP policy: optional (SRTP when the caller offers it), required (plain RTP refused
    /// with 488) or off [default: optional]
    #[arg(long, value_name = "POLICY")]
    srtp: Option<String>,
    /// Concurrent calls at most; more get 503 with Retry-After [default: 10000]
    #[arg(long, value_name = "N")]
    max_calls: Option<String>,
    /// New calls per second, all callers together; more get 503 [default: 500]
    #[arg(long, value_name = "RATE")]
    calls_per_s: Option<String>,
    /// New calls per second from one source address; more get 503 [default: 100]
    #[arg(long, value_name = "RATE")]
    calls_per_s_per_source: Option<String>,
    /// Session interval (RFC 4028 session timers) asked of callers that name none, seconds
    /// [default: 1800]
    #[arg(long, value_name = "SECONDS")]
    session_expires_s: Option<String>,
    /// Smallest session interval accepted (smaller gets 422), seconds [default: 90]
    #[arg(long, value_name = "SECONDS")]
    min_se_s: Option<String>,
    /// Callers from addresses no trunk allows: open (anyone may call), challenge (digest
    /// authentication as a --user) or reject (403) [default: open]
    #[arg(long, value_name = "MODE")]
    auth: Option<String>,
    /// Digest realm [default: chorus]
    #[arg(long, value_name = "REALM")]
    realm: Option<String>,
    /// An unknown conference ID keyed in the IVR creates an ad-hoc conference without PIN:
    /// true or false [default: true; set false in production]
    #[arg(long, value_name = "BOOL")]
    allow_adhoc: Option<String>,
    /// The number (Request-URI user) of the echo test [default: echo]
    #[arg(long, value_name = "USER")]
    echo_user: Option<String>,
    /// Seconds the IVR waits for keys after asking; keys without # are taken then [default: 10]
    #[arg(long, value_name = "SECONDS")]
    ivr_digit_timeout_s: Option<String>,
    /// Members from which a conference spans cores instead of moving newcomers' calls to its
    /// core [default: 100]
    #[arg(long, value_name = "N")]
    span_after: Option<String>,
    /// Talkers a conference mixes at most (the loudest, with hysteresis) [default: 3]
    #[arg(long, value_name = "N")]
    talkers: Option<String>,
    /// The rate conferences mix at, Hz: 16000 (wideband) or 8000 (every caller G.711: no
    /// resampling, less CPU and about 20 ms less delay) [default: 16000]
    #[arg(long, value_name = "HZ")]
    mix_rate: Option<String>,
    /// Accept and offer video, forwarded by the SFU: true or false [default: true]
    #[arg(long, value_name = "BOOL")]
    video: Option<String>,
    /// Forward only the video of each conference's N most recent speakers (last-N); 0:
    /// everyone's [default: 0]
    #[arg(long, value_name = "N")]
    video_last_n: Option<String>,
    /// Digest algorithms challenged with, preferred first: SHA-256, MD5 [default:
    /// SHA-256,MD5; some phones read only the first challenge and know only MD5]
    #[arg(long, value_name = "LIST")]
    digest_algorithms: Option<String>,
    /// A user who may authenticate, NAME:PASSWORD; repeatable
    #[arg(long, value_name = "NAME:PASSWORD")]
    user: Vec<String>,
    /// A trunk, repeatable: name=NAME;address=[udp:|tcp:|tls:]IP:PORT;allow=CIDR,CIDR;
    /// username=U;password=P (calls from its address or allow-list are its calls)
    #[arg(long, value_name = "SPEC")]
    trunk: Vec<String>,
}

impl ServeArgs {
    /// Defaults, then the file, then the flags.
    fn resolve(&self) -> Result<ServeConfig, String> {
        let mut cfg = ServeConfig::default();
        if let Some(path) = &self.config {
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("{}: cannot read configuration: {e}", path.display()))?;
            cfg.apply_toml(&text, path)?;
        }
        if !self.sip.is_empty() {
            let mut all = Vec::new();
            for s in &self.sip {
                all.extend(config::parse_sip(s).map_err(|e| format!("--sip: {e}"))?);
            }
            cfg.sip = all;
        }
        for (key, values) in [("user", &self.user), ("trunk", &self.trunk)] {
            if !values.is_empty() {
                if key == "user" {
                    cfg.users.clear();
                } else {
                    cfg.trunks.clear();
                }
                for v in values {
                    cfg.set(key, v).map_err(|e| format!("--{key}: {e}"))?;
                }
            }
        }
        let flags: [(&str, &Option<String>); 33] = [
            ("media_ip", &self.media_ip),
            ("media_ports", &self.media_ports),
            ("data_dir", &self.data_dir),
            ("cores", &self.cores),
            ("io", &self.io),
            ("log_level", &self.log_level),
            ("tick_ms", &self.tick_ms),
            ("pairs_per_core", &self.pairs_per_core),
            ("queue_capacity", &self.queue_capacity),
            ("pin_cores", &self.pin_cores),
            ("gso", &self.gso),
            ("tls_cert", &self.tls_cert),
            ("tls_key", &self.tls_key),
            ("rtp_timeout_s", &self.rtp_timeout_s),
            ("answer_delay_ms", &self.answer_delay_ms),
            ("codecs", &self.codecs),
            ("srtp", &self.srtp),
            ("max_calls", &self.max_calls),
            ("calls_per_s", &self.calls_per_s),
            ("calls_per_s_per_source", &self.calls_per_s_per_source),
            ("session_expires_s", &self.session_expires_s),
            ("min_se_s", &self.min_se_s),
            ("auth", &self.auth),
            ("realm", &self.realm),
            ("digest_algorithms", &self.digest_algorithms),
            ("allow_adhoc", &self.allow_adhoc),
            ("echo_user", &self.echo_user),
            ("ivr_digit_timeout_s", &self.ivr_digit_timeout_s),
            ("span_after", &self.span_after),
            ("talkers", &self.talkers),
            ("mix_rate", &self.mix_rate),
            ("video", &self.video),
            ("video_last_n", &self.video_last_n),
        ];
        debug_assert_eq!(flags.len() + 3, KEYS.len());
        for (key, value) in flags {
            if let Some(v) = value {
                cfg.set(key, v)
                    .map_err(|e| format!("--{}: {e}", key.replace('_', "-")))?;
            }
        }
        cfg.validate()?;
        Ok(cfg)
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Cmd::Serve(args) => {
            let cfg = match args.resolve() {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("chorus: {e}");
                    return ExitCode::from(2);
                }
            };
            init_logging(&cfg.log_level);
            match serve(cfg) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("chorus: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
        Cmd::Conference(args) => admin::conference(args),
        Cmd::Cdr(args) => admin::cdr(args),
    }
}

fn init_logging(level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("CHORUS_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}

/// Takes an exclusive lock on the data directory, so two servers never share one.
fn lock_data_dir(dir: &std::path::Path) -> Result<File> {
    std::fs::create_dir_all(dir)
        .with_context(|| format!("cannot create data directory {}", dir.display()))?;
    let path = dir.join("chorus.lock");
    let file = File::create(&path).with_context(|| format!("cannot open {}", path.display()))?;
    file.try_lock().map_err(|e| {
        anyhow::anyhow!(
            "data directory {} is in use by another chorus server ({e}); give each server its \
             own --data-dir",
            dir.display()
        )
    })?;
    Ok(file)
}

fn serve(cfg: ServeConfig) -> Result<()> {
    let _lock = lock_data_dir(&cfg.data_dir)?;
    // The directory's connection for this server: closes what the last run left open, then
    // goes to the call record writer's thread (its calls block: fsync).
    let mut directory =
        directory::Directory::open(&cfg.data_dir).context("opening the conference directory")?;
    admin::close_interrupted(&mut directory).context("closing interrupted call records")?;
    tracing::info!(
        db = %directory.path().display(),
        schema = directory.schema_version().context("reading the schema version")?,
        "conference directory and call records"
    );
    let started = Instant::now();
    let mut tls_config = None;
    if cfg.wants_tls() {
        let configured = cfg.tls_cert.as_deref().zip(cfg.tls_key.as_deref());
        let mut names = vec!["localhost".to_string(), cfg.media_ip.to_string()];
        names.extend(cfg.sip.iter().map(|l| l.addr.ip().to_string()));
        names.sort();
        names.dedup();
        let tls = chorus_signaling::tls::load_or_generate(&cfg.data_dir, configured, &names)
            .context("TLS certificate for SIP over TLS")?;
        tls_config = Some(
            chorus_signaling::tls::server_config(&tls)
                .context("TLS certificate for SIP over TLS")?,
        );
        tracing::info!(origin = ?tls.origin, cert = %tls.cert_path.display(), "TLS certificate ready");
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the control runtime")?;
    // Handlers first: a signal that arrives while the engine starts still stops it cleanly.
    let signals = runtime.block_on(async { Signals::install() })?;
    let engine = Engine::start(cfg.engine()).context("starting the media engine")?;
    let io: Vec<String> = (0..engine.core_count())
        .filter_map(|i| engine.io_kind(CoreId(i as u16)).map(|k| k.to_string()))
        .collect();
    let listen: Vec<ListenSpec> = cfg
        .sip
        .iter()
        .map(|l| ListenSpec {
            transport: match l.transport {
                SipTransport::Udp => Transport::Udp,
                SipTransport::Tcp => Transport::Tcp,
                SipTransport::Tls => Transport::Tls,
            },
            addr: l.addr,
        })
        .collect();
    let (transports, inbound) = runtime
        .block_on(Transports::bind(TransportConfig {
            listen,
            tls: tls_config,
            ..TransportConfig::default()
        }))
        .context("binding the SIP listeners")?;
    let sip: Vec<String> = transports
        .local_addrs()
        .iter()
        .map(|(t, a)| format!("{t:?}:{a}").to_ascii_lowercase())
        .collect();
    tracing::info!(
        cores = engine.core_count(),
        io = io.join(","),
        media_ip = %cfg.media_ip,
        media_ports = %cfg.media_ports,
        data_dir = %cfg.data_dir.display(),
        sip = sip.join(","),
        "chorus media engine running; answering SIP"
    );
    let cores = (0..engine.core_count())
        .map(|i| engine.media_addrs(CoreId(i as u16)).to_vec())
        .collect();
    let ua = UserAgent::new(
        cfg.ua(format!("chorus/{}", env!("CARGO_PKG_VERSION"))),
        cores,
        Instant::now(),
    );
    // Dial-out: the UAC shares the control task; the dial control arrives with conferencing.
    let (_dialer, dial_out, _dial_events) = sip::dial_out(
        Uac::new(UacConfig {
            user_agent: format!("chorus/{}", env!("CARGO_PKG_VERSION")),
            ..UacConfig::default()
        }),
        1024,
    );
    let conferencing = sip::Conferencing {
        service: conference::ConferenceService::new(
            conference::ServiceConfig {
                cores: engine.core_count(),
                ..cfg.conference()
            },
            chorus_engine::codecs::prompts::PromptSet::embedded(),
        ),
        data_dir: cfg.data_dir.clone(),
        recorder: cdr::Recorder::new(
            Instant::now(),
            directory::UnixMs::now(),
            cdr::CHECKPOINT_EVERY,
            cdr::REMOVAL_WAIT,
        ),
        records: cdr::Writer::start(directory, CDR_QUEUE)
            .context("starting the call record writer")?,
    };
    let (events_tx, events_rx) = tokio::sync::mpsc::channel(4096);
    let stop_events = std::sync::atomic::AtomicBool::new(false);
    let signal = std::thread::scope(|s| {
        let bridge = s.spawn(|| sip::forward_engine_events(&engine, events_tx, &stop_events));
        let served = runtime.block_on(sip::run(
            &engine,
            transports,
            inbound,
            ua,
            events_rx,
            dial_out,
            conferencing,
            signals.next(),
        ));
        stop_events.store(true, std::sync::atomic::Ordering::Relaxed);
        let _ = bridge.join();
        served
    })?;
    tracing::info!(signal, "shutting down");
    let cores = || (0..engine.core_count()).map(|i| CoreId(i as u16));
    let total = |m: Metric| -> u64 { cores().map(|c| engine.counters(c).get(m)).sum() };
    let (rx, forwarded, tx) = (
        total(Metric::RxPackets),
        total(Metric::Forwarded),
        total(Metric::TxPackets),
    );
    let (commands_refused, events_dropped) = cores()
        .map(|c| engine.queue_overflows(c))
        .fold((0, 0), |(a, b), (c, e)| (a + c, b + e));
    engine.shutdown();
    tracing::info!(
        uptime_s = started.elapsed().as_secs(),
        rx_packets = rx,
        forwarded,
        tx_packets = tx,
        commands_refused,
        events_dropped,
        "stopped cleanly"
    );
    Ok(())
}

/// Call record writes that may wait for the writer thread; a burst beyond this (the disk
/// stalled) drops records rather than stall SIP.
const CDR_QUEUE: usize = 65_536;

/// SIGTERM and SIGINT, the two ways an operator or init system stops the server.
struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

impl Signals {
    fn install() -> Result<Signals> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Signals {
            term: signal(SignalKind::terminate()).context("installing SIGTERM handler")?,
            int: signal(SignalKind::interrupt()).context("installing SIGINT handler")?,
        })
    }

    async fn next(mut self) -> &'static str {
        tokio::select! {
            _ = self.term.recv() => "SIGTERM",
            _ = self.int.recv() => "SIGINT",
        }
    }
}
