//! `chorus-load`: the Chorus load generator. Each simulated caller is a real SIP UA (the
//! signaling crate's UAC: INVITE with SDP, digest when challenged, ACK, BYE) with a real
//! media leg on the engine's own cores (SRTP, RFC 4733 keys, engine-played talker signals),
//! so thousands of callers share a few sockets. With `--target janus` the same callers join
//! Janus AudioBridge rooms as plain-RTP participants through Janus's HTTP API instead, for
//! a comparison with a peer server in the same run.
//!
//! ```text
//! chorus-load run --server 127.0.0.1:5060 --users 200 --conference-size 10 --talkers 3 \
//!     --duration 20s --ramp 50/s --codec pcmu --srtp aes-cm-80 --dial ivr --json report.json
//! chorus-load run --target janus --janus-url http://127.0.0.1:8088/janus --srtp none ...
//! ```

mod audio;
mod http;
mod janus;
mod plot;
mod proc_cpu;
mod report;
mod run;
mod sip;
mod video;

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use mimalloc::MiMalloc;

#[global_allocator]
static GLOBAL: MiMalloc = MiMalloc;

/// chorus-load: places SIP calls with real media against a Chorus server and measures what
/// callers would hear.
#[derive(Parser, Debug)]
#[command(name = "chorus-load", version, about)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Place calls, hold them, hang up, and report.
    Run(RunArgs),
}

/// The audio codec every caller offers (only it).
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum CodecArg {
    /// G.711 mu-law.
    Pcmu,
    /// G.711 A-law.
    Pcma,
    /// G.722.
    G722,
    /// Opus.
    Opus,
}

/// SDES SRTP every caller requires (or none: plain RTP).
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum SrtpArg {
    /// Plain RTP.
    None,
    /// AES_CM_128_HMAC_SHA1_80.
    #[value(name = "aes-cm-80")]
    AesCm80,
    /// AEAD_AES_128_GCM.
    #[value(name = "aes-gcm-128")]
    AesGcm128,
}

/// SIP transport.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum TransportArg {
    /// UDP.
    Udp,
    /// TCP.
    Tcp,
    /// TLS (the server's certificate checked against `--tls-ca`).
    Tls,
}

/// How callers send silence (the silent callers all the time, talkers between bursts).
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum SilenceArg {
    /// Silent audio frames, a packet every 20 ms.
    Continuous,
    /// RFC 3389 comfort noise: a CN packet when silence starts and every 200 ms (8 kHz-clock
    /// codecs), the way phone-network gateways send it.
    Cn,
    /// Opus DTX: the encoder's discontinuous transmission (with `--codec opus`).
    Dtx,
    /// Nothing from silent callers; talkers send silent frames between bursts.
    None,
}

/// The server under test, and so how callers set up their calls.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum TargetArg {
    /// A SIP server (Chorus): an INVITE per caller to `--server`.
    Sip,
    /// Janus AudioBridge through its HTTP API at `--janus-url`: a room per conference, a
    /// plain-RTP participant per caller (`--srtp none`, `--dial direct`; pcmu, pcma or opus).
    Janus,
}

/// How callers reach their conference.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum DialArg {
    /// Dial the IVR number and key the conference ID (and PIN) as RFC 4733 events.
    Ivr,
    /// Dial the conference ID as the Request-URI user.
    Direct,
}

/// What a video caller receives.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum VideoLayoutArg {
    /// One stream per other publisher (`a=chorus-video-layout:all`).
    All,
    /// One stream following the active speaker.
    Speaker,
}

/// Settings of one run.
#[derive(Args, Debug, Clone)]
pub struct RunArgs {
    /// The server under test: `sip` places SIP calls to `--server`; `janus` joins Janus
    /// AudioBridge rooms (created for the run, IDs from `--conference-base`, 8 kHz mixing for
    /// G.711 and 16 kHz for Opus) as plain-RTP participants through `--janus-url`.
    #[arg(long, value_enum, default_value = "sip")]
    pub target: TargetArg,
    /// With `--target janus`: the base URL of Janus's HTTP transport (plain http).
    #[arg(long, default_value = "http://127.0.0.1:8088/janus")]
    pub janus_url: String,
    /// The server's SIP address.
    #[arg(long, default_value = "127.0.0.1:5060")]
    pub server: SocketAddr,
    /// Callers in all.
    #[arg(long, default_value_t = 10)]
    pub users: u32,
    /// Callers per conference.
    #[arg(long, default_value_t = 10)]
    pub conference_size: u32,
    /// Talkers per conference (the others are silent).
    #[arg(long, default_value_t = 3)]
    pub talkers: u32,
    /// How long each call is held once answered: 500ms, 20s, 5m.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    pub duration: Duration,
    /// Call attempts per second while ramping up: 500/s (or a bare number).
    #[arg(long, default_value = "100/s", value_parser = parse_rate)]
    pub ramp: f64,
    /// The codec callers offer.
    #[arg(long, value_enum, default_value = "pcmu")]
    pub codec: CodecArg,
    /// SRTP callers require.
    #[arg(long, value_enum, default_value = "aes-cm-80")]
    pub srtp: SrtpArg,
    /// SIP transport.
    #[arg(long, value_enum, default_value = "udp")]
    pub transport: TransportArg,
    /// With `--transport tls`: the PEM file of the certificates to trust (the server's own
    /// self-signed one, or its CA).
    #[arg(long)]
    pub tls_ca: Option<PathBuf>,
    /// How callers reach their conference.
    #[arg(long, value_enum, default_value = "direct")]
    pub dial: DialArg,
    /// The IVR number (Request-URI user) with `--dial ivr`.
    #[arg(long, default_value = "conf")]
    pub ivr_number: String,
    /// Conference IDs are this number plus the conference's index (digits).
    #[arg(long, default_value_t = 7_000)]
    pub conference_base: u64,
    /// The PIN callers key when asked (conferences must exist with it).
    #[arg(long)]
    pub pin: Option<String>,
    /// Write the report as JSON to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Media cores of the generator.
    #[arg(long, default_value_t = 1)]
    pub cores: usize,
    /// UDP ports of the generator's media sockets.
    #[arg(long, default_value = "40000-40999", value_parser = parse_ports)]
    pub media_ports: (u16, u16),
    /// The address the generator binds (SIP and media).
    #[arg(long, default_value = "127.0.0.1")]
    pub bind: IpAddr,
    /// Fail the run when RTP loss exceeds this percentage.
    #[arg(long, default_value_t = 0.1)]
    pub max_loss_pct: f64,
    /// Percentage of silent callers that hang up somewhere in the middle half of their hold
    /// and are replaced at once by a new call to the same conference (churn).
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u8).range(0..=100))]
    pub churn: u8,
    /// How callers send silence.
    #[arg(long, value_enum, default_value = "continuous")]
    pub silence: SilenceArg,
    /// Percentage of callers whose audio is checked (which talkers they hear, the delay);
    /// each checked caller decodes what it receives.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u8).range(0..=100))]
    pub audio_checks: u8,
    /// The server's process, for its CPU figures (default: the process holding the server's
    /// UDP port here).
    #[arg(long)]
    pub server_pid: Option<u32>,
    /// Draw calls, loss, delay and server CPU over time into this PNG.
    #[arg(long)]
    pub plot: Option<PathBuf>,
    /// Video too: every caller offers audio and an m=video with simulcast H.264 (a clip
    /// encoded once at 180p/360p/720p and looped), publishes it and checks what it receives.
    #[arg(long)]
    pub video: bool,
    /// With `--video`: UDP ports of the callers' video sockets (one per caller).
    #[arg(long, default_value = "41000-41999", value_parser = parse_ports)]
    pub video_ports: (u16, u16),
    /// With `--video`: what each caller takes, one stream per other publisher (`all`) or one
    /// following the active speaker (`speaker`, the SIP endpoint default).
    #[arg(long, value_enum, default_value = "all")]
    pub video_layout: VideoLayoutArg,
    /// With `--video`: callers per conference that publish (the first ones; default all).
    #[arg(long)]
    pub video_publishers: Option<u32>,
    /// With `--video`: random loss, percent, on the path to each of the `--video-lossy`
    /// subscribers (seeded), to exercise NACK and RTX.
    #[arg(long, default_value_t = 0.0)]
    pub video_loss: f64,
    /// With `--video-loss`: subscribers per conference with the lossy path (the first ones;
    /// default all).
    #[arg(long)]
    pub video_lossy: Option<u32>,
    /// With `--video`: a bandwidth limit, kbit/s, on the path to each of the
    /// `--video-limited` subscribers (a token bucket dropping what is over it, announced in
    /// REMB), to exercise layer selection.
    #[arg(long)]
    pub video_bandwidth: Option<u32>,
    /// With `--video-bandwidth`: subscribers per conference with the limit (the last ones;
    /// default all).
    #[arg(long)]
    pub video_limited: Option<u32>,
    /// With `--video-bandwidth`: the limit starts this long after the call is answered (so
    /// the switch down is seen and timed).
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    pub video_limit_after: Duration,
    /// Progress line every second on stderr.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub progress: bool,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = s
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .map_or((s, "s"), |i| (&s[..i], &s[i..]));
    let n: f64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a duration (e.g. 500ms, 20s, 5m)"))?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" | "min" => n * 60.0,
        _ => return Err(format!("{s:?}: unknown unit {unit:?} (ms, s, m)")),
    };
    if !(0.0..=86_400.0).contains(&secs) {
        return Err(format!("{s:?} is outside 0..24h"));
    }
    Ok(Duration::from_secs_f64(secs))
}

fn parse_rate(s: &str) -> Result<f64, String> {
    let n = s.trim().trim_end_matches("/s");
    let r: f64 = n
        .parse()
        .map_err(|_| format!("{s:?} is not a rate (e.g. 500/s)"))?;
    if !(r > 0.0 && r <= 100_000.0) {
        return Err(format!("{s:?} is outside (0, 100000]/s"));
    }
    Ok(r)
}

fn parse_ports(s: &str) -> Result<(u16, u16), String> {
    let (a, b) = s
        .split_once('-')
        .ok_or_else(|| format!("{s:?} is not a port range (e.g. 40000-40999)"))?;
    let (a, b): (u16, u16) = (
        a.trim()
            .parse()
            .map_err(|_| format!("{a:?} is not a port"))?,
        b.trim()
            .parse()
            .map_err(|_| format!("{b:?} is not a port"))?,
    );
    if a == 0 || b < a + 1 {
        return Err(format!("{s:?}: need at least two ports, low first"));
    }
    Ok((a, b))
}

impl RunArgs {
    /// Checks the combination of settings; one line per problem.
    fn validate(&self) -> Result<(), String> {
        if self.users == 0 {
            return Err("--users must be at least 1".into());
        }
        if self.conference_size == 0 {
            return Err("--conference-size must be at least 1".into());
        }
        if self.talkers as usize > audio::TONES_HZ.len() {
            return Err(format!(
                "--talkers {} is more than the {} distinct talker tones",
                self.talkers,
                audio::TONES_HZ.len()
            ));
        }
        if self.silence == SilenceArg::Dtx && self.codec != CodecArg::Opus {
            return Err("--silence dtx needs --codec opus (DTX is Opus's)".into());
        }
        if self.silence == SilenceArg::Cn && self.codec == CodecArg::Opus {
            return Err(
                "--silence cn needs an 8 kHz-clock codec (pcmu, pcma, g722); Opus has dtx".into(),
            );
        }
        if self.talkers > self.conference_size {
            return Err(format!(
                "--talkers {} is more than --conference-size {}",
                self.talkers, self.conference_size
            ));
        }
        if self.transport == TransportArg::Tls && self.tls_ca.is_none() {
            return Err(
                "--transport tls needs --tls-ca FILE (the server's certificate or its CA; \
                 chorus serve writes a generated one to DATA_DIR/tls/cert.pem)"
                    .into(),
            );
        }
        if let Some(pin) = &self.pin
            && (pin.is_empty() || !pin.bytes().all(|b| b.is_ascii_digit()))
        {
            return Err(format!("--pin {pin:?} must be digits"));
        }
        if self.ivr_number.is_empty() {
            return Err("--ivr-number must not be empty".into());
        }
        self.validate_video()?;
        if self.target == TargetArg::Janus {
            janus::JanusUrl::parse(&self.janus_url)?;
            if self.srtp != SrtpArg::None {
                return Err(
                    "--target janus takes plain-RTP participants only: add --srtp none".into(),
                );
            }
            if self.codec == CodecArg::G722 {
                return Err("--target janus: AudioBridge has pcmu, pcma and opus, not g722".into());
            }
            if self.dial != DialArg::Direct || self.pin.is_some() {
                return Err("--target janus joins rooms directly: --dial direct, no --pin".into());
            }
            if self.silence == SilenceArg::Cn {
                return Err("--target janus: AudioBridge does not take RFC 3389 comfort noise (--silence cn)".into());
            }
        }
        Ok(())
    }
}

impl RunArgs {
    /// The `--video-*` flags: only with `--video`, counts within a conference, sane values.
    fn validate_video(&self) -> Result<(), String> {
        let set = [
            ("--video-publishers", self.video_publishers.is_some()),
            ("--video-loss", self.video_loss != 0.0),
            ("--video-lossy", self.video_lossy.is_some()),
            ("--video-bandwidth", self.video_bandwidth.is_some()),
            ("--video-limited", self.video_limited.is_some()),
            ("--video-layout", self.video_layout != VideoLayoutArg::All),
        ];
        if !self.video {
            if let Some((flag, _)) = set.iter().find(|(_, on)| *on) {
                return Err(format!("{flag} needs --video"));
            }
            return Ok(());
        }
        if self.target == TargetArg::Janus {
            return Err("--video works with --target sip only (AudioBridge has no video)".into());
        }
        if !(0.0..=50.0).contains(&self.video_loss) {
            return Err(format!(
                "--video-loss {} is outside 0..50 (percent)",
                self.video_loss
            ));
        }
        if let Some(kbps) = self.video_bandwidth
            && !(50..=100_000).contains(&kbps)
        {
            return Err(format!(
                "--video-bandwidth {kbps} is outside 50..100000 kbit/s"
            ));
        }
        for (flag, n) in [
            ("--video-publishers", self.video_publishers),
            ("--video-lossy", self.video_lossy),
            ("--video-limited", self.video_limited),
        ] {
            if let Some(n) = n
                && n > self.conference_size
            {
                return Err(format!(
                    "{flag} {n} is more than --conference-size {}",
                    self.conference_size
                ));
            }
        }
        if self.video_lossy.is_some() && self.video_loss == 0.0 {
            return Err("--video-lossy needs --video-loss PCT".into());
        }
        if self.video_limited.is_some() && self.video_bandwidth.is_none() {
            return Err("--video-limited needs --video-bandwidth KBPS".into());
        }
        if self.video_publishers == Some(0) {
            return Err("--video-publishers 0: nobody would send video".into());
        }
        Ok(())
    }
}

fn main() {
    let cli = Cli::parse();
    let Cmd::Run(args) = cli.cmd;
    if let Err(e) = args.validate() {
        eprintln!("chorus-load: {e}");
        std::process::exit(2);
    }
    match run::run(&args) {
        Ok(report) => {
            report.print_table();
            if let Some(path) = &args.json
                && let Err(e) = std::fs::write(path, report.to_json())
            {
                eprintln!("chorus-load: cannot write {}: {e}", path.display());
                std::process::exit(1);
            }
            if let Some(path) = &args.plot {
                let title = format!(
                    "chorus-load: {} callers, conferences of {}, {} talkers, {:?}, SRTP {:?}",
                    args.users, args.conference_size, args.talkers, args.codec, args.srtp
                );
                match plot::render(path, &title, &report.series) {
                    Ok(warnings) => {
                        for w in warnings {
                            eprintln!("chorus-load: plot: {w}");
                        }
                    }
                    Err(e) => {
                        eprintln!("chorus-load: cannot plot to {}: {e:#}", path.display());
                        std::process::exit(1);
                    }
                }
            }
            match report.verdict(args.max_loss_pct) {
                Ok(()) => {}
                Err(why) => {
                    eprintln!("chorus-load: FAILED: {why}");
                    std::process::exit(1);
                }
            }
        }
        Err(e) => {
            eprintln!("chorus-load: {e:#}");
            std::process::exit(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_parse_and_refuse_clearly() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("20s"), Ok(Duration::from_secs(20)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("7"), Ok(Duration::from_secs(7)));
        assert!(parse_duration("2h").unwrap_err().contains("unknown unit"));
        assert_eq!(parse_rate("500/s"), Ok(500.0));
        assert!(parse_rate("0/s").is_err());
        assert_eq!(parse_ports("40000-40099"), Ok((40_000, 40_099)));
        assert!(parse_ports("40000").is_err());
        let cli = Cli::try_parse_from([
            "chorus-load",
            "run",
            "--talkers",
            "5",
            "--conference-size",
            "3",
        ])
        .unwrap();
        let Cmd::Run(args) = cli.cmd;
        assert!(args.validate().unwrap_err().contains("--talkers 5"));
        let video = |extra: &[&str]| {
            let mut argv = vec!["chorus-load", "run", "--conference-size", "3"];
            argv.extend_from_slice(extra);
            let Cmd::Run(args) = Cli::try_parse_from(argv).unwrap().cmd;
            args.validate()
        };
        assert_eq!(
            video(&["--video", "--video-loss", "3", "--video-lossy", "1"]),
            Ok(())
        );
        assert!(
            video(&["--video-loss", "3"])
                .unwrap_err()
                .contains("needs --video")
        );
        assert!(
            video(&["--video", "--video-loss", "60"])
                .unwrap_err()
                .contains("0..50")
        );
        assert!(
            video(&[
                "--video",
                "--video-bandwidth",
                "300",
                "--video-limited",
                "4"
            ])
            .unwrap_err()
            .contains("more than --conference-size 3")
        );
        assert!(
            video(&["--video", "--video-limited", "1"])
                .unwrap_err()
                .contains("needs --video-bandwidth")
        );
        assert!(
            video(&["--video", "--video-bandwidth", "10"])
                .unwrap_err()
                .contains("50..100000")
        );
    }
}
