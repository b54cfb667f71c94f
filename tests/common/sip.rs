//! Shared harness of the SIP tests: the real `chorus` binary on free ports, one-shot SIP
//! exchanges over UDP and TCP, and sipp runs with their statistics.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A running `chorus serve`, stopped (SIGTERM) and its data directory removed on drop.
pub struct Server {
    child: Child,
    pub dir: PathBuf,
    /// Remove `dir` on drop.
    owns_dir: bool,
    /// The bound UDP SIP port.
    pub sip_port: u16,
    /// The bound TCP SIP port, when started with `tcp`.
    pub tcp_port: Option<u16>,
    log: Arc<Mutex<String>>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl Server {
    /// Starts a server on a free UDP port (read back from its startup log).
    pub fn start(name: &str, media: &str) -> Server {
        Self::start_with(name, media, false, &[])
    }

    /// Starts a server on a free UDP port, and a free TCP port when `tcp`, with extra flags,
    /// on a fresh data directory removed on drop.
    pub fn start_with(name: &str, media: &str, tcp: bool, extra: &[&str]) -> Server {
        let dir = std::env::temp_dir().join(format!("chorus-sip-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let mut server = Self::start_in(&dir, media, tcp, extra);
        server.owns_dir = true;
        server
    }

    /// Starts a server as `start_with` does, on the data directory `dir` as it is (new or
    /// left by an earlier server), which stays in place on drop.
    pub fn start_in(dir: &Path, media: &str, tcp: bool, extra: &[&str]) -> Server {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_chorus"));
        cmd.args(["serve", "--sip", "udp:127.0.0.1:0"]);
        if tcp {
            cmd.args(["--sip", "tcp:127.0.0.1:0"]);
        }
        let mut child = cmd
            .args([
                "--media-ports",
                media,
                "--data-dir",
                dir.to_str().unwrap(),
                "--cores",
                "2",
                "--pin-cores",
                "false",
            ])
            .args(extra)
            .stderr(Stdio::piped())
            .spawn()
            .expect("chorus starts");
        let mut err = child.stderr.take().unwrap();
        let mut log = String::new();
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut buf = [0u8; 4096];
        while !log.contains("answering SIP") && Instant::now() < deadline {
            match err.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => log.push_str(&String::from_utf8_lossy(&buf[..n])),
            }
        }
        assert!(log.contains("answering SIP"), "server did not start: {log}");
        let port = |transport: &str| -> Option<u16> {
            log.split(&format!("{transport}:127.0.0.1:"))
                .nth(1)
                .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
                .and_then(|p| p.parse().ok())
        };
        let sip_port =
            port("sip=\"udp").unwrap_or_else(|| panic!("bound SIP port not in the log: {log}"));
        let tcp_port = tcp.then(|| port("tcp").expect("bound TCP port in the log"));
        // Keep draining the log so the server never blocks on a full pipe; keep it for checks.
        let log = Arc::new(Mutex::new(log));
        let sink = log.clone();
        let reader = std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = err.read(&mut buf) {
                if n == 0 {
                    break;
                }
                let text = String::from_utf8_lossy(&buf[..n]);
                sink.lock().unwrap().push_str(&text);
            }
        });
        Server {
            child,
            dir: dir.to_path_buf(),
            owns_dir: false,
            sip_port,
            tcp_port,
            log,
            reader: Some(reader),
        }
    }

    /// Stops the server with SIGTERM and returns its exit code and its whole log.
    pub fn stop(mut self) -> (Option<i32>, String) {
        // SAFETY: kill with the pid of our own child, not yet reaped.
        unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
        let status = self.child.wait().expect("chorus exits");
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
        (status.code(), self.log())
    }

    /// Kills the server with SIGKILL (an unclean stop: nothing is closed or flushed) and waits
    /// for it to exit.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// The log lines containing `needle`, waiting up to `timeout` until there are `count`.
    pub fn wait_log_lines(&self, needle: &str, count: usize, timeout: Duration) -> Vec<String> {
        let deadline = Instant::now() + timeout;
        loop {
            let lines: Vec<String> = self
                .log()
                .lines()
                .filter(|l| l.contains(needle))
                .map(str::to_string)
                .collect();
            if lines.len() >= count || Instant::now() >= deadline {
                return lines;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Whether the process is still running.
    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Sends one datagram and waits for the response (None on timeout).
    pub fn ask(&self, msg: &[u8]) -> Option<String> {
        let s = UdpSocket::bind("127.0.0.1:0").unwrap();
        s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        s.send_to(msg, ("127.0.0.1", self.sip_port)).unwrap();
        let mut buf = [0u8; 65_535];
        let (n, _) = s.recv_from(&mut buf).ok()?;
        Some(String::from_utf8_lossy(&buf[..n]).into_owned())
    }

    /// Sends `msg` on a new TCP connection, half-closes it when `close` (so the server sees
    /// the end of the stream), and returns everything the server sent before it closed or
    /// fell silent for a second.
    pub fn ask_tcp(&self, msg: &[u8], close: bool) -> String {
        let port = self.tcp_port.expect("server started with TCP");
        let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
        s.write_all(msg).unwrap();
        if close {
            s.shutdown(Shutdown::Write).unwrap();
        }
        let mut got = Vec::new();
        let mut buf = [0u8; 65_535];
        while let Ok(n) = s.read(&mut buf) {
            if n == 0 {
                break;
            }
            got.extend_from_slice(&buf[..n]);
        }
        String::from_utf8_lossy(&got).into_owned()
    }

    /// Runs sipp against this server's UDP port: `args` name the scenario and the load;
    /// errors and statistics go to files in the data directory, read back into the result.
    pub fn sipp(&self, name: &str, args: &[&str]) -> SippRun {
        let errors = self.dir.join(format!("sipp-{name}-errors.log"));
        let stats = self.dir.join(format!("sipp-{name}-stats.csv"));
        let _ = std::fs::remove_file(&stats);
        let out = Command::new("sipp")
            .arg(format!("127.0.0.1:{}", self.sip_port))
            .args([
                "-i",
                "127.0.0.1",
                "-p",
                "0",
                "-nostdin",
                "-timeout",
                "60s",
                "-s",
                "echo",
            ])
            .args(["-trace_err", "-error_file"])
            .arg(&errors)
            .args(["-trace_stat", "-fd", "1", "-stf"])
            .arg(&stats)
            .args(args)
            .current_dir(&self.dir)
            .output()
            .expect("sipp runs (apt-get install sip-tester)");
        SippRun {
            errors: std::fs::read_to_string(&errors).unwrap_or_default(),
            stats: std::fs::read_to_string(&stats).unwrap_or_default(),
            out,
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // Not once `stop` reaped it: the pid may belong to another process by now.
        if matches!(self.child.try_wait(), Ok(None)) {
            // SAFETY: kill with the pid of our own child, not yet reaped.
            unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
            let _ = self.child.wait();
        }
        // CHORUS_KEEP_TEST_DIRS=1 keeps the directory, with the server's log, the recordings
        // and the peers' logs and captures, for a look afterwards.
        if std::env::var_os("CHORUS_KEEP_TEST_DIRS").is_some() {
            let _ = std::fs::write(self.dir.join("chorus.log"), self.log());
        } else if self.owns_dir {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// What one sipp run left behind.
pub struct SippRun {
    pub out: Output,
    /// `-trace_err`: messages sipp did not expect, failed checks.
    pub errors: String,
    /// `-trace_stat`: CSV, one row per period and a final row.
    pub stats: String,
}

impl SippRun {
    /// A cumulative counter of the final statistics row, by its CSV column name
    /// (`SuccessfulCall(C)`, `FailedCall(C)`, ...).
    pub fn stat(&self, column: &str) -> Option<u64> {
        let mut rows = self.stats.lines().filter(|l| !l.trim().is_empty());
        let header: Vec<&str> = rows.next()?.split(';').collect();
        let at = header.iter().position(|h| *h == column)?;
        rows.next_back()?.split(';').nth(at)?.trim().parse().ok()
    }

    /// Asserts that sipp counted `calls` failed calls and no success (a scenario that must not
    /// get through).
    pub fn assert_failed(&self, calls: u64) {
        let screen = String::from_utf8_lossy(&self.out.stdout);
        assert_eq!(
            self.stat("FailedCall(C)"),
            Some(calls),
            "{screen}\n{}",
            self.errors
        );
        assert_eq!(
            self.stat("SuccessfulCall(C)"),
            Some(0),
            "{screen}\n{}",
            self.errors
        );
    }

    /// Asserts that sipp exited 0 (every call succeeded) and counted `calls` successes and no
    /// failure; the failure message carries sipp's screen and error log.
    pub fn assert_calls(&self, calls: u64) {
        let what = || sipp_report(&self.out, &self.errors);
        assert!(self.out.status.success(), "sipp failed: {}", what());
        assert_eq!(self.stat("SuccessfulCall(C)"), Some(calls), "{}", what());
        assert_eq!(self.stat("FailedCall(C)"), Some(0), "{}", what());
    }
}

/// What a sipp run printed, for a failed assertion: its exit status, the end of its screen,
/// its stderr and its error log.
pub fn sipp_report(out: &Output, errors: &str) -> String {
    let screen = String::from_utf8_lossy(&out.stdout);
    let tail: Vec<&str> = screen.lines().rev().take(40).collect();
    format!(
        "{:?}\n{}\n{}\n{errors}",
        out.status,
        tail.iter().rev().copied().collect::<Vec<_>>().join("\n"),
        String::from_utf8_lossy(&out.stderr),
    )
}

/// An OPTIONS request over UDP from a made-up sender.
pub fn options(port: u16, branch: &str) -> Vec<u8> {
    format!(
        "OPTIONS sip:chorus@127.0.0.1:{port} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bK{branch}\r\nFrom: <sip:probe@127.0.0.1>;tag=p\r\nTo: <sip:chorus@127.0.0.1>\r\nCall-ID: {branch}@probe\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    )
    .into_bytes()
}

/// The folder of the sipp scenarios.
pub fn scenarios() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/sipp"))
}

/// The RFC 4475 torture messages (`NAME.dat`) beside the checkout, sorted by name.
pub fn torture_messages() -> Vec<(String, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/testdata/rfc4475");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("RFC 4475 messages beside the checkout")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "dat"))
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|p| {
            let name = p.file_stem().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read(&p).unwrap())
        })
        .collect()
}

/// The value of `key=` in a log line (quotes stripped).
pub fn log_field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    let at = line.find(&format!(" {key}="))? + key.len() + 2;
    let rest = &line[at..];
    let value = match rest.strip_prefix('"') {
        Some(quoted) => &quoted[..quoted.find('"')?],
        None => rest.split_whitespace().next()?,
    };
    Some(value)
}

/// RTP packet `seq` of a 20 ms PCMU stream (SSRC 0x12345678, timestamp 160 a packet) whose
/// payload differs per packet, so an echo can be told from another packet.
pub fn pcmu_packet(seq: u16) -> Vec<u8> {
    let mut pkt = vec![0x80, 0x00];
    pkt.extend_from_slice(&seq.to_be_bytes());
    pkt.extend_from_slice(&(u32::from(seq) * 160).to_be_bytes());
    pkt.extend_from_slice(&0x1234_5678u32.to_be_bytes());
    pkt.extend((0..160).map(|i| (i as u16 + seq) as u8));
    pkt
}

/// A call placed by hand over UDP to the echo test (From `sip:alice@127.0.0.1`), for tests
/// that check the media themselves: INVITE with `sdp` (its `{rtp_port}` is the call's RTP
/// socket), the 200's answer, ACK; `bye` ends it.
pub struct RawCall {
    sip: UdpSocket,
    server: (&'static str, u16),
    call_id: String,
    to_tag: String,
    /// The call's RTP socket (read timeout 3 s).
    pub rtp: UdpSocket,
    /// The answer's SDP.
    pub answer: String,
    /// The answer's media port.
    pub media_port: u16,
}

impl RawCall {
    /// Places the call and acknowledges the 200; `sdp` gets the RTP port for `{rtp_port}`.
    pub fn place(server: &Server, call_id: &str, sdp: &str) -> RawCall {
        let sip = UdpSocket::bind("127.0.0.1:0").unwrap();
        sip.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
        let rtp = UdpSocket::bind("127.0.0.1:0").unwrap();
        rtp.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
        let sdp = sdp.replace("{rtp_port}", &rtp.local_addr().unwrap().port().to_string());
        let mut call = RawCall {
            sip,
            server: ("127.0.0.1", server.sip_port),
            call_id: call_id.to_string(),
            to_tag: String::new(),
            rtp,
            answer: String::new(),
            media_port: 0,
        };
        let invite = format!(
            "{}Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{sdp}",
            call.headers("INVITE", 1),
            sdp.len()
        );
        call.sip.send_to(invite.as_bytes(), call.server).unwrap();
        let ok = call.reply(|t| !t.starts_with("SIP/2.0 1"), "a response to the INVITE");
        assert!(ok.starts_with("SIP/2.0 200 OK\r\n"), "{ok}");
        call.to_tag = ok
            .lines()
            .find(|l| l.starts_with("To:"))
            .and_then(|l| l.split(";tag=").nth(1))
            .expect("To tag")
            .trim()
            .to_string();
        call.answer = ok[ok.find("\r\n\r\n").unwrap() + 4..].to_string();
        call.media_port = call
            .answer
            .lines()
            .find_map(|l| l.strip_prefix("m=audio "))
            .and_then(|l| l.split(' ').next())
            .and_then(|p| p.parse().ok())
            .expect("m=audio port");
        let ack = format!("{}Content-Length: 0\r\n\r\n", call.headers("ACK", 1));
        call.sip.send_to(ack.as_bytes(), call.server).unwrap();
        call
    }

    fn headers(&self, method: &str, cseq: u32) -> String {
        let port = self.sip.local_addr().unwrap().port();
        let (call_id, to_tag) = (&self.call_id, &self.to_tag);
        let to_tag = if to_tag.is_empty() {
            String::new()
        } else {
            format!(";tag={to_tag}")
        };
        format!(
            "{method} sip:echo@127.0.0.1 SIP/2.0\r\n\
             Via: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bK{method}{cseq}{call_id};rport\r\n\
             From: <sip:alice@127.0.0.1>;tag=alice1\r\nTo: <sip:echo@127.0.0.1>{to_tag}\r\n\
             Call-ID: {call_id}\r\nCSeq: {cseq} {method}\r\n\
             Contact: <sip:alice@127.0.0.1:{port}>\r\nMax-Forwards: 70\r\n"
        )
    }

    /// The first message from the server for which `wanted` holds.
    fn reply(&self, wanted: impl Fn(&str) -> bool, what: &str) -> String {
        let mut buf = [0u8; 65_535];
        loop {
            let (n, _) = self.sip.recv_from(&mut buf).expect(what);
            let text = String::from_utf8_lossy(&buf[..n]).into_owned();
            if wanted(&text) {
                return text;
            }
        }
    }

    /// Sends BYE and asserts its 200 (retransmitted 200s to the INVITE are skipped).
    pub fn bye(&self) {
        let bye = format!("{}Content-Length: 0\r\n\r\n", self.headers("BYE", 2));
        self.sip.send_to(bye.as_bytes(), self.server).unwrap();
        let reply = self.reply(|t| t.contains("CSeq: 2 BYE"), "a response to the BYE");
        assert!(reply.starts_with("SIP/2.0 200 OK\r\n"), "{reply}");
    }
}
