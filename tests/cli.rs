//! The `chorus` command line as an operator meets it: version, help, configuration errors that
//! name the key, two servers side by side, and a clean stop on SIGTERM and SIGINT.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

fn chorus() -> Command {
    Command::new(env!("CARGO_BIN_EXE_chorus"))
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("chorus-cli-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn run(args: &[&str]) -> Output {
    chorus().args(args).output().expect("chorus runs")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn version_and_help() {
    let v = run(&["--version"]);
    assert!(v.status.success());
    assert!(String::from_utf8_lossy(&v.stdout).starts_with("chorus "));
    let h = run(&["serve", "--help"]);
    assert!(h.status.success());
    let text = String::from_utf8_lossy(&h.stdout);
    for flag in [
        "--config",
        "--sip",
        "--media-ip",
        "--media-ports",
        "--data-dir",
        "--cores",
        "--io",
        "--log-level",
        "--tick-ms",
        "--pairs-per-core",
        "--queue-capacity",
        "--pin-cores",
        "--tls-cert",
        "--tls-key",
    ] {
        assert!(text.contains(flag), "help lacks {flag}");
    }
}

#[test]
fn bad_settings_are_named() {
    let dir = scratch("bad");
    let cfg = dir.join("c.toml");
    std::fs::write(&cfg, "media_ports = \"30000-30099\"\nspeed = 11\n").unwrap();
    let o = run(&["serve", "--config", cfg.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("key `speed`: unknown key"),
        "{}",
        stderr(&o)
    );

    std::fs::write(&cfg, "io = \"dpdk\"\n").unwrap();
    let o = run(&["serve", "--config", cfg.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("key `io`"), "{}", stderr(&o));

    let o = run(&["serve", "--media-ports", "40000"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("--media-ports"), "{}", stderr(&o));

    let o = run(&["serve", "--sip", "sctp:1.2.3.4:5060"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("--sip"), "{}", stderr(&o));

    let o = run(&["serve", "--tls-cert", "/etc/chorus/cert.pem"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("tls_cert and tls_key"),
        "{}",
        stderr(&o)
    );

    let o = run(&["serve", "--config", "/nonexistent/chorus.toml"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("cannot read configuration"));

    let _ = std::fs::remove_dir_all(dir);
}

fn start(data: &Path, sip: &str, ports: &str, io: &str) -> Child {
    chorus()
        .args([
            "serve",
            "--sip",
            sip,
            "--data-dir",
            data.to_str().unwrap(),
            "--media-ports",
            ports,
            "--cores",
            "2",
            "--io",
            io,
            "--pin-cores",
            "false",
        ])
        .stderr(Stdio::piped())
        .spawn()
        .expect("chorus starts")
}

/// Reads the child's stderr until `needle` appears (or the child exits, or 10 s pass).
fn wait_for_log(child: &mut Child, needle: &str) -> String {
    let mut err = child.stderr.take().unwrap();
    let mut log = String::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut buf = [0u8; 4096];
    while !log.contains(needle) && Instant::now() < deadline {
        match err.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => log.push_str(&String::from_utf8_lossy(&buf[..n])),
        }
    }
    child.stderr = Some(err);
    log
}

fn stop(mut child: Child, signal: libc::c_int) -> (Option<i32>, String) {
    // SAFETY: kill with a valid pid of our own child.
    unsafe { libc::kill(child.id() as libc::pid_t, signal) };
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let mut rest = String::new();
            if let Some(mut e) = child.stderr.take() {
                let _ = e.read_to_string(&mut rest);
            }
            return (status.code(), rest);
        }
        assert!(
            Instant::now() < deadline,
            "chorus did not stop on signal {signal}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn two_servers_side_by_side_stop_cleanly() {
    let dir = scratch("pair");
    let (d1, d2) = (dir.join("a"), dir.join("b"));
    let mut a = start(&d1, "tls:127.0.0.1:15061", "44000-44099", "uring");
    let log_a = wait_for_log(&mut a, "media engine running");
    assert!(log_a.contains("media engine running"), "{log_a}");
    assert!(log_a.contains("uring"), "{log_a}");
    // No certificate configured: a self-signed one was generated into the data directory.
    assert!(log_a.contains("TLS certificate ready"), "{log_a}");
    assert!(d1.join("tls/cert.pem").exists() && d1.join("tls/key.pem").exists());
    // Same media range: the second server skips the ports the first one holds.
    let mut b = start(&d2, "127.0.0.1:15070", "44000-44099", "syscalls");
    let log_b = wait_for_log(&mut b, "media engine running");
    assert!(log_b.contains("media engine running"), "{log_b}");

    // A third server on a data directory in use is refused with a clear message.
    let o = chorus()
        .args(["serve", "--data-dir", d1.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("in use by another chorus server"),
        "{}",
        stderr(&o)
    );

    let (code_a, rest_a) = stop(a, libc::SIGTERM);
    assert_eq!(code_a, Some(0), "{rest_a}");
    assert!(rest_a.contains("stopped cleanly"), "{rest_a}");
    let (code_b, rest_b) = stop(b, libc::SIGINT);
    assert_eq!(code_b, Some(0), "{rest_b}");
    assert!(rest_b.contains("stopped cleanly"), "{rest_b}");
    let _ = std::fs::remove_dir_all(dir);
}

/// Installs a seccomp filter in the child that makes io_uring_setup fail with EPERM, as
/// container runtimes' default profiles do.
#[cfg(target_arch = "x86_64")]
fn block_io_uring(cmd: &mut Command) {
    use std::os::unix::process::CommandExt;
    const NR_IO_URING_SETUP: u32 = 425;
    let filter = [
        // Load the syscall number (seccomp_data.nr at offset 0).
        libc::sock_filter {
            code: 0x20,
            jt: 0,
            jf: 0,
            k: 0,
        },
        // io_uring_setup? then the next instruction, else skip it.
        libc::sock_filter {
            code: 0x15,
            jt: 0,
            jf: 1,
            k: NR_IO_URING_SETUP,
        },
        // Fail with EPERM.
        libc::sock_filter {
            code: 0x06,
            jt: 0,
            jf: 0,
            k: 0x0005_0000 | libc::EPERM as u32,
        },
        // Allow everything else.
        libc::sock_filter {
            code: 0x06,
            jt: 0,
            jf: 0,
            k: 0x7fff_0000,
        },
    ];
    // SAFETY: between fork and exec the closure only makes two prctl calls (async-signal
    // safe) reading `filter`, which the moved closure owns.
    unsafe {
        cmd.pre_exec(move || {
            let prog = libc::sock_fprog {
                len: filter.len() as u16,
                filter: filter.as_ptr().cast_mut(),
            };
            if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0
                || libc::prctl(
                    libc::PR_SET_SECCOMP,
                    libc::SECCOMP_MODE_FILTER,
                    &prog as *const libc::sock_fprog,
                ) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

#[cfg(target_arch = "x86_64")]
#[test]
fn io_uring_blocked_by_seccomp_falls_back_to_syscalls() {
    let dir = scratch("seccomp");
    let mut cmd = chorus();
    cmd.args([
        "serve",
        "--sip",
        "127.0.0.1:15090",
        "--data-dir",
        dir.to_str().unwrap(),
        "--media-ports",
        "44200-44299",
        "--cores",
        "2",
        "--io",
        "uring",
        "--pin-cores",
        "false",
    ])
    .stderr(Stdio::piped());
    block_io_uring(&mut cmd);
    let mut child = cmd.spawn().expect("chorus starts under seccomp");
    let log = wait_for_log(&mut child, "media engine running");
    assert!(log.contains("io_uring unavailable"), "{log}");
    assert!(log.contains("syscalls,syscalls"), "{log}");
    let (code, rest) = stop(child, libc::SIGTERM);
    assert_eq!(code, Some(0), "{rest}");
    let _ = std::fs::remove_dir_all(dir);
}

/// The promise: `chorus serve` with no arguments answers a SIP phone on
/// 127.0.0.1:5060 (here sipp's built-in UAC places a call with media and hangs up), and the
/// TLS listener on 5061 has its self-signed certificate in `./chorus-data/tls/`.
#[test]
fn serve_with_no_arguments_answers_a_phone_on_5060() {
    let dir = scratch("defaults");
    let mut server = chorus()
        .arg("serve")
        .current_dir(&dir)
        .stderr(Stdio::piped())
        .spawn()
        .expect("chorus starts");
    let log = wait_for_log(&mut server, "answering SIP");
    assert!(
        log.contains("udp:127.0.0.1:5060") && log.contains("tls:127.0.0.1:5061"),
        "default listeners: {log}"
    );
    let call = Command::new("sipp")
        .args(["-sn", "uac", "-i", "127.0.0.1", "-p", "15062", "-m", "1"])
        .args(["-d", "500", "-timeout", "20", "-timeout_error", "-nostdin"])
        .args(["-mi", "127.0.0.1", "-mp", "15064", "127.0.0.1:5060"])
        .current_dir(&dir)
        .output()
        .expect("sipp runs (apt-get install sip-tester)");
    let tls = std::net::TcpStream::connect("127.0.0.1:5061");
    let (code, rest) = stop(server, libc::SIGTERM);
    assert!(
        call.status.success(),
        "the call was not answered: {}\n{log}{rest}",
        String::from_utf8_lossy(&call.stdout)
    );
    assert!(tls.is_ok(), "TLS listener on 5061");
    assert!(dir.join("chorus-data/tls/cert.pem").exists());
    assert_eq!(code, Some(0), "{rest}");
}
