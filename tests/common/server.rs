//! The real `chorus serve` binary as a test peer: started on a free SIP port, its log kept for
//! assertions, stopped with SIGTERM when dropped.

use std::io::Read;
use std::net::UdpSocket;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub struct Server {
    child: Child,
    pub dir: PathBuf,
    pub sip_port: u16,
    /// Everything the server logged so far (stderr).
    log: Arc<Mutex<String>>,
}

impl Server {
    /// Starts a server on a free UDP port (read back from its startup log) with media on the
    /// given port range.
    pub fn start(name: &str, media: &str) -> Server {
        let dir = std::env::temp_dir().join(format!("chorus-sip-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let mut child = Command::new(env!("CARGO_BIN_EXE_chorus"))
            .args([
                "serve",
                "--sip",
                "udp:127.0.0.1:0",
                "--media-ports",
                media,
                "--data-dir",
                dir.to_str().unwrap(),
                "--cores",
                "2",
                "--pin-cores",
                "false",
            ])
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
        let sip_port: u16 = log
            .split("sip=\"udp:127.0.0.1:")
            .nth(1)
            .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("bound SIP port not in the log: {log}"));
        // Keep draining the log so the server never blocks on a full pipe.
        let log = Arc::new(Mutex::new(log));
        let sink = log.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n @ 1..) = err.read(&mut buf) {
                sink.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        Server {
            child,
            dir,
            sip_port,
            log,
        }
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

    /// The log so far.
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
}

impl Drop for Server {
    fn drop(&mut self) {
        // SAFETY: kill with the pid of our own child.
        unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
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
