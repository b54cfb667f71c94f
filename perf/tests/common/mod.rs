//! What the end-to-end tests share: the binaries and a `chorus serve` to run against.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub fn load_bin() -> &'static str {
    env!("CARGO_BIN_EXE_chorus-load")
}

/// The `chorus` binary next to `chorus-load` (built by `cargo test --workspace`).
pub fn chorus_bin() -> PathBuf {
    let path = Path::new(load_bin()).with_file_name("chorus");
    assert!(
        path.exists(),
        "{} is missing: run the workspace tests (cargo test --workspace) or cargo build --bin chorus",
        path.display()
    );
    path
}

/// A running `chorus serve` on a free UDP port (and a TLS one); killed on drop.
pub struct Serve {
    pub child: Child,
    pub port: u16,
    pub tls_port: u16,
    pub dir: PathBuf,
}

impl Serve {
    pub fn start(name: &str, media: &str) -> Serve {
        Serve::start_on(name, media, 1)
    }

    /// As `start`, on `cores` media cores (a caller placed on another core than its
    /// conference's is moved there with a re-INVITE).
    pub fn start_on(name: &str, media: &str, cores: u32) -> Serve {
        let dir = std::env::temp_dir().join(format!("chorus-load-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let mut child = Command::new(chorus_bin())
            .args([
                "serve",
                "--sip",
                "udp:127.0.0.1:0",
                "--sip",
                "tls:127.0.0.1:0",
            ])
            .args(["--media-ports", media])
            .args([
                "--cores",
                &cores.to_string(),
                "--pin-cores",
                "false",
                "--data-dir",
            ])
            .arg(&dir)
            .stderr(Stdio::piped())
            .spawn()
            .expect("chorus starts");
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let deadline = Instant::now() + Duration::from_secs(10);
        let (mut port, mut tls_port) = (None, None);
        let after = |line: &str, key: &str| -> Option<u16> {
            let at = line.find(key)?;
            let rest = &line[at + key.len()..];
            rest.split(|c: char| !c.is_ascii_digit())
                .next()?
                .parse()
                .ok()
        };
        while port.is_none() && Instant::now() < deadline {
            let Some(Ok(line)) = lines.next() else { break };
            port = after(&line, "sip=\"udp:127.0.0.1:");
            tls_port = after(&line, "tls:127.0.0.1:");
        }
        // Keep draining the log so the server never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        Serve {
            child,
            port: port.expect("chorus serve announced its SIP port"),
            tls_port: tls_port.expect("chorus serve announced its TLS port"),
            dir,
        }
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
