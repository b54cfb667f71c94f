//! The SIP front door with real peers: sipp places calls against the `chorus` binary, and the
//! RFC 4475 torture messages are sent over UDP to a running server, which keeps answering.
//!
//! Needs `sipp` (Debian package sip-tester), which `scripts/test` installs.

use std::io::Read;
use std::net::UdpSocket;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Server {
    child: Child,
    dir: PathBuf,
    sip_port: u16,
}

impl Server {
    fn start(name: &str, sip_port: u16, media: &str) -> Server {
        let dir = std::env::temp_dir().join(format!("chorus-sip-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let mut child = Command::new(env!("CARGO_BIN_EXE_chorus"))
            .args([
                "serve",
                "--sip",
                &format!("127.0.0.1:{sip_port}"),
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
        // Keep draining the log so the server never blocks on a full pipe.
        std::thread::spawn(move || {
            let mut sink = [0u8; 4096];
            while matches!(err.read(&mut sink), Ok(n) if n > 0) {}
        });
        Server {
            child,
            dir,
            sip_port,
        }
    }

    /// Sends one datagram and waits for the response (None on timeout).
    fn ask(&self, msg: &[u8]) -> Option<String> {
        let s = UdpSocket::bind("127.0.0.1:0").unwrap();
        s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        s.send_to(msg, ("127.0.0.1", self.sip_port)).unwrap();
        let mut buf = [0u8; 65_535];
        let (n, _) = s.recv_from(&mut buf).ok()?;
        Some(String::from_utf8_lossy(&buf[..n]).into_owned())
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

fn options(port: u16, branch: &str) -> Vec<u8> {
    format!(
        "OPTIONS sip:chorus@127.0.0.1:{port} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bK{branch}\r\nFrom: <sip:probe@127.0.0.1>;tag=p\r\nTo: <sip:chorus@127.0.0.1>\r\nCall-ID: {branch}@probe\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    )
    .into_bytes()
}

#[test]
fn sipp_calls_are_answered_and_hung_up() {
    let server = Server::start("sipp", 15_160, "45000-45099");
    let reply = server
        .ask(&options(15_160, "opt1"))
        .expect("OPTIONS answered");
    assert!(reply.starts_with("SIP/2.0 200 OK\r\n"), "{reply}");
    assert!(reply.contains("Allow: INVITE"), "{reply}");

    // sipp's built-in UAC: INVITE with a PCMU offer, ACK, 1 s of call, BYE; 30 calls at
    // 15 per second, 10 at a time. Exit code 0 means every call succeeded.
    let out = Command::new("sipp")
        .args([
            "127.0.0.1:15160",
            "-sn",
            "uac",
            "-i",
            "127.0.0.1",
            "-p",
            "15170",
            "-m",
            "30",
            "-r",
            "15",
            "-l",
            "10",
            "-d",
            "1000",
            "-timeout",
            "60s",
            "-nostdin",
            "-trace_err",
            "-error_file",
        ])
        .arg(server.dir.join("sipp-errors.log"))
        .current_dir(std::env::temp_dir())
        .output()
        .expect("sipp runs (apt-get install sip-tester)");
    let errors = std::fs::read_to_string(server.dir.join("sipp-errors.log")).unwrap_or_default();
    assert!(
        out.status.success(),
        "sipp reported failed calls: {:?}\n{}\n{errors}",
        out.status,
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .rev()
            .take(40)
            .collect::<Vec<_>>()
            .join("\n")
    );
}

#[test]
fn torture_messages_over_udp_leave_the_server_healthy() {
    let server = Server::start("torture", 15_260, "45100-45199");
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/testdata/rfc4475");
    let mut answered = 0;
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("RFC 4475 messages beside the checkout")
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "dat"))
        .collect();
    files.sort_by_key(|e| e.path());
    assert!(files.len() >= 49);
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    for f in &files {
        let bytes = std::fs::read(f.path()).unwrap();
        sock.send_to(&bytes, ("127.0.0.1", server.sip_port))
            .unwrap();
        let mut buf = [0u8; 65_535];
        while let Ok((n, _)) = sock.recv_from(&mut buf) {
            let text = String::from_utf8_lossy(&buf[..n]);
            assert!(
                text.starts_with("SIP/2.0 "),
                "{}: {text}",
                f.path().display()
            );
            answered += 1;
        }
    }
    // Some messages are responses or have no Via to answer to; most requests get an answer.
    assert!(answered >= 30, "only {answered} answers");
    let reply = server
        .ask(&options(15_260, "after"))
        .expect("still answering");
    assert!(reply.starts_with("SIP/2.0 200 OK\r\n"), "{reply}");
}
