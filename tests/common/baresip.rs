//! baresip (a real SIP phone, headless, `-n 127.0.0.1`) driven over its `ctrl_tcp` socket:
//! it plays a tone file as its microphone, records what it decodes, dials, and keys DTMF
//! (RFC 4733) on a schedule.

use std::io::{Read, Write};
use std::net::UdpSocket;
use std::process::Command;
use std::time::{Duration, Instant};

use super::sip::Server;

/// A 16-bit mono 8 kHz WAV, `secs` long, of a sine tone from `talk.0` to `talk.1` seconds and
/// silence around it.
pub fn tone_wav(freq_hz: f64, secs: f64, talk: (f64, f64)) -> Vec<u8> {
    let n = (8000.0 * secs) as u32;
    let mut w = Vec::with_capacity(44 + 2 * n as usize);
    w.extend_from_slice(b"RIFF");
    w.extend_from_slice(&(36 + 2 * n).to_le_bytes());
    w.extend_from_slice(b"WAVEfmt ");
    w.extend_from_slice(&16u32.to_le_bytes());
    w.extend_from_slice(&1u16.to_le_bytes());
    w.extend_from_slice(&1u16.to_le_bytes());
    w.extend_from_slice(&8000u32.to_le_bytes());
    w.extend_from_slice(&16000u32.to_le_bytes());
    w.extend_from_slice(&2u16.to_le_bytes());
    w.extend_from_slice(&16u16.to_le_bytes());
    w.extend_from_slice(b"data");
    w.extend_from_slice(&(2 * n).to_le_bytes());
    for i in 0..n {
        let t = f64::from(i) / 8000.0;
        let on = (talk.0..talk.1).contains(&t);
        let s = (t * freq_hz * std::f64::consts::TAU).sin() * if on { 16_000.0 } else { 0.0 };
        w.extend_from_slice(&(s as i16).to_le_bytes());
    }
    w
}

/// A 16-bit PCM WAV: its sample rate and its first channel.
pub struct Wav {
    /// Samples per second.
    pub rate: u32,
    /// The first channel.
    pub samples: Vec<i16>,
}

impl Wav {
    /// The share of the energy of `samples[from_s..to_s]` (seconds) at `freq` (Goertzel): about
    /// 1 for a pure tone, 1/k for one of k equal tones, near 0 when absent.
    pub fn tone_share(&self, freq: f64, from_s: f64, to_s: f64) -> f64 {
        let rate = f64::from(self.rate);
        let a = ((from_s * rate) as usize).min(self.samples.len());
        let b = ((to_s * rate) as usize).min(self.samples.len());
        let pcm = &self.samples[a..b];
        let w = std::f64::consts::TAU * freq / rate;
        let (mut s1, mut s2) = (0.0f64, 0.0f64);
        for &x in pcm {
            let s0 = f64::from(x) + 2.0 * w.cos() * s1 - s2;
            s2 = s1;
            s1 = s0;
        }
        let power = s1 * s1 + s2 * s2 - 2.0 * w.cos() * s1 * s2;
        let energy: f64 = pcm.iter().map(|&x| f64::from(x) * f64::from(x)).sum();
        2.0 * power / (pcm.len().max(1) as f64 * energy.max(1.0))
    }

    /// RMS level of `samples[from_s..to_s]`.
    pub fn rms(&self, from_s: f64, to_s: f64) -> f64 {
        let rate = f64::from(self.rate);
        let a = ((from_s * rate) as usize).min(self.samples.len());
        let b = ((to_s * rate) as usize).min(self.samples.len());
        let pcm = &self.samples[a..b];
        (pcm.iter().map(|&s| f64::from(s).powi(2)).sum::<f64>() / pcm.len().max(1) as f64).sqrt()
    }

    /// Half a second per line: the time, each of `freqs`' share in percent and the RMS level,
    /// for a failure message that shows what was heard when.
    pub fn timeline(&self, freqs: &[f64]) -> String {
        let mut out = String::new();
        let halves = (self.secs() * 2.0).ceil() as usize;
        for k in 0..halves {
            let (a, b) = (k as f64 / 2.0, (k + 1) as f64 / 2.0);
            let shares: Vec<String> = (freqs.iter())
                .map(|&f| format!("{f:.0} Hz {:3.0}%", 100.0 * self.tone_share(f, a, b)))
                .collect();
            out += &format!(
                "{a:5.1} s  {}  rms {:5.0}\n",
                shares.join("  "),
                self.rms(a, b)
            );
        }
        out
    }

    /// Seconds recorded.
    pub fn secs(&self) -> f64 {
        self.samples.len() as f64 / f64::from(self.rate)
    }
}

/// Reads a 16-bit PCM WAV (baresip records decoded audio at the codec's rate and channel
/// count: 8000/1 for PCMU, 48000/2 for Opus) with the codecs crate's reader; keeps the first
/// channel.
pub fn read_wav(bytes: &[u8]) -> Wav {
    let wav = chorus_engine::codecs::wav::read_wav(bytes).expect("a 16-bit PCM WAV");
    let channels = usize::from(wav.channels.max(1));
    Wav {
        rate: wav.sample_rate,
        samples: wav.samples.iter().step_by(channels).copied().collect(),
    }
}

/// Frames per second decoded, from a status line's `efps=ENCODED/DECODED`; 0 without one.
fn decoded_fps(status: &str) -> f64 {
    (status.split("efps=").nth(1))
        .and_then(|s| s.split('/').nth(1))
        .and_then(|s| s.split_whitespace().next())
        .and_then(|s| s.parse::<f64>().ok())
        .unwrap_or(0.0)
}

/// What a baresip call left behind.
pub struct BaresipCall {
    /// baresip's own log, without its once-a-tick bit rate lines.
    pub log: String,
    /// The last of those lines: `[0:00:09] audio=64000/64000 video=17125/17125 (bit/s)
    /// efps=15.0/15.0` (sent/received; efps: frames per second encoded/decoded).
    pub status: String,
    /// Events from its control socket (JSON, in order).
    pub events: String,
    /// What it decoded from the server, as recorded.
    pub heard: Wav,
}

impl BaresipCall {
    /// Panics (with its log and `server_log`) unless the call decoded the others' 320x240
    /// VP8 picture and still decoded more than 10 frames per second at the end.
    pub fn assert_decodes_video(&self, who: &str, server_log: &str) {
        let context = || {
            format!(
                "{who}:\n{}\n{}\nserver:\n{server_log}",
                self.status, self.log
            )
        };
        assert!(
            self.log
                .contains("video: receiving with resolution 320 x 240"),
            "{who} decodes no video: {}",
            context()
        );
        let decoded = decoded_fps(&self.status);
        assert!(
            decoded > 10.0,
            "{who} decodes {decoded} fps at the end: {}",
            context()
        );
    }
}

/// Kills baresip if the test fails while it runs.
struct Reap(std::process::Child);

impl Drop for Reap {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A netstring-framed JSON command for baresip's `ctrl_tcp`.
fn ctrl_command(command: &str, params: &str) -> Vec<u8> {
    let json = format!(r#"{{"command":"{command}","params":"{params}","token":"{command}"}}"#);
    format!("{}:{json},", json.len()).into_bytes()
}

/// Reads control events until `done` holds for all read so far, or `until`.
fn read_events(
    ctrl: &mut std::net::TcpStream,
    events: &mut Vec<u8>,
    until: Instant,
    done: impl Fn(&str) -> bool,
) -> bool {
    let mut buf = [0u8; 4096];
    while !done(&String::from_utf8_lossy(events)) {
        if Instant::now() >= until {
            return false;
        }
        if let Ok(n @ 1..) = ctrl.read(&mut buf) {
            events.extend_from_slice(&buf[..n]);
        }
    }
    true
}

/// One scripted baresip call.
pub struct Baresip<'a> {
    /// Names its directory under the server's.
    pub name: &'a str,
    /// The Request-URI user dialed.
    pub user: &'a str,
    /// The only codec offered (baresip's name: `PCMU`, `opus/48000/2`).
    pub codec: &'a str,
    /// The microphone: a sine at this frequency, from `talk.0` to `talk.1` seconds after
    /// baresip starts (silence around it).
    pub freq: f64,
    /// See `freq`; `(0.0, f64::INFINITY)` for the whole call.
    pub talk: (f64, f64),
    /// baresip's own RTP port range.
    pub rtp_ports: &'a str,
    /// baresip exits after this many seconds (`-t`), ending the call.
    pub secs: u32,
    /// Keys to press (RFC 4733), each this many milliseconds after the call is established.
    pub keys: &'a [(u64, &'a str)],
    /// Offer video too: VP8 from baresip's `fakevideo` source (a moving 320x240 test
    /// picture), decoded into its `fakevideo` display.
    pub video: bool,
}

impl Baresip<'_> {
    /// The echo test with SDES SRTP (mandatory): a 440 Hz tone, `keys` half a second in.
    pub fn echo_call(server: &Server, codec: &str, rtp_ports: &str, keys: &str) -> BaresipCall {
        let keys = [(500, keys)];
        Baresip {
            name: &format!("baresip-{}", codec.replace('/', "-")),
            user: "echo",
            codec,
            freq: 440.0,
            talk: (0.0, f64::INFINITY),
            rtp_ports,
            secs: 9,
            keys: if keys[0].1.is_empty() { &[] } else { &keys },
            video: false,
        }
        .call(server)
    }

    /// Runs `callers`' calls at the same time, each to its end; what each left, in order.
    pub fn call_together(callers: &[Baresip], server: &Server) -> Vec<BaresipCall> {
        std::thread::scope(|s| {
            let running: Vec<_> = (callers.iter())
                .map(|c| s.spawn(|| c.call(server)))
                .collect();
            running.into_iter().map(|h| h.join().unwrap()).collect()
        })
    }

    /// Runs the call to its end (baresip exits after `secs`) and returns what it left.
    pub fn call(&self, server: &Server) -> BaresipCall {
        let dir = server.dir.join(self.name);
        let (cfg, rec) = (dir.join("cfg"), dir.join("rec"));
        std::fs::create_dir_all(&cfg).unwrap();
        std::fs::create_dir_all(&rec).unwrap();
        std::fs::write(
            dir.join("tone.wav"),
            tone_wav(self.freq, f64::from(self.secs) + 2.0, self.talk),
        )
        .unwrap();
        let free_port = || {
            UdpSocket::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port()
        };
        let (ua_port, ctrl_port) = (free_port(), free_port());
        std::fs::write(
            cfg.join("config"),
            format!(
                "poll_method epoll\nsip_listen 127.0.0.1:{ua_port}\n\
                 audio_player aufile,{rec}/play.wav\naudio_source aufile,{dir}/tone.wav\n\
                 audio_alert aufile,/dev/null\nausrc_srate 8000\nauplay_srate 8000\n\
                 ausrc_channels 1\nauplay_channels 1\nmodule_path /usr/lib/baresip/modules\n\
                 module g711.so\nmodule opus.so\nmodule aufile.so\nmodule srtp.so\n\
                 module sndfile.so\nsnd_path {rec}\nmodule_app menu.so\nmodule_app account.so\n\
                 module_app ctrl_tcp.so\nctrl_tcp_listen 127.0.0.1:{ctrl_port}\n\
                 rtp_ports {rtp_ports}\n{video}",
                rec = rec.display(),
                dir = dir.display(),
                rtp_ports = self.rtp_ports,
                video = if self.video {
                    "module vp8.so\nmodule fakevideo.so\nvideo_source fakevideo,nil\n\
                     video_display fakevideo,nil\nvideo_size 320x240\nvideo_bitrate 300000\n\
                     video_fps 15\n"
                } else {
                    ""
                },
            ),
        )
        .unwrap();
        std::fs::write(
            cfg.join("accounts"),
            format!(
                "<sip:{name}@127.0.0.1:{ua_port}>;regint=0;audio_codecs={codec};mediaenc=srtp-mand\n",
                name = self.name.replace(|c: char| !c.is_ascii_alphanumeric(), ""),
                codec = self.codec
            ),
        )
        .unwrap();
        std::fs::write(cfg.join("contacts"), "").unwrap();
        let log_path = dir.join("baresip.log");
        let log_file = std::fs::File::create(&log_path).unwrap();
        let child = Command::new("baresip")
            .args(["-n", "127.0.0.1", "-f"])
            .arg(&cfg)
            .args(["-t", &self.secs.to_string()])
            .stdout(log_file.try_clone().unwrap())
            .stderr(log_file)
            .spawn()
            .expect("baresip runs (apt-get install baresip-core)");
        let mut child = Reap(child);
        let log = || std::fs::read_to_string(&log_path).unwrap_or_default();

        // Dial over the control socket (so no event is missed), wait for the call, send keys.
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut ctrl = loop {
            match std::net::TcpStream::connect(("127.0.0.1", ctrl_port)) {
                Ok(s) => break s,
                Err(e) if Instant::now() > deadline => panic!("baresip ctrl_tcp: {e}\n{}", log()),
                Err(_) => std::thread::sleep(Duration::from_millis(50)),
            }
        };
        ctrl.set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        let dial = format!("sip:{}@127.0.0.1:{}", self.user, server.sip_port);
        ctrl.write_all(&ctrl_command("dial", &dial)).unwrap();
        let mut events = Vec::new();
        let soon = |s| Instant::now() + Duration::from_secs(s);
        let established = read_events(&mut ctrl, &mut events, soon(5), |e| {
            e.contains(r#""type":"CALL_ESTABLISHED""#)
        });
        if established {
            let at = Instant::now();
            for &(after_ms, keys) in self.keys {
                let when = at + Duration::from_millis(after_ms);
                std::thread::sleep(when.saturating_duration_since(Instant::now()));
                ctrl.write_all(&ctrl_command("sndcode", keys)).unwrap();
            }
        }
        read_events(
            &mut ctrl,
            &mut events,
            soon(u64::from(self.secs) + 1),
            |e| e.contains(r#""type":"CALL_CLOSED""#),
        );
        let _ = child.0.wait();
        // Its status line ("[0:00:03] audio=64320/55040 (bit/s)") comes many times a second.
        let status = (log().split(['\n', '\r']))
            .rfind(|l| l.contains("audio="))
            .map(str::to_owned)
            .unwrap_or_default();
        let log: String = (log().split(['\n', '\r']))
            .filter(|l| !l.trim().is_empty() && !l.contains("audio="))
            .map(|l| format!("{l}\n"))
            .collect();
        let heard = std::fs::read_dir(&rec)
            .unwrap()
            .flatten()
            .find(|e| e.file_name().to_string_lossy().ends_with("-dec.wav"))
            .map(|e| read_wav(&std::fs::read(e.path()).unwrap()))
            .unwrap_or_else(|| panic!("baresip recorded nothing: {log}"));
        BaresipCall {
            log,
            status,
            events: String::from_utf8_lossy(&events).into_owned(),
            heard,
        }
    }
}
