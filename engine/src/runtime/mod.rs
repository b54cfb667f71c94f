//! The thread-per-core media runtime.
//!
//! [`Engine::start`] binds each core's media sockets, spawns one pinned thread per core and
//! returns a handle the control side uses to talk to the cores: [`Engine::send`] queues a
//! [`Command`] on a core's bounded lock-free queue and rings its eventfd; [`Engine::poll_event`]
//! takes [`Event`]s the cores queued; [`Engine::wait_events`] blocks until there may be some.
//! Nothing on a core's packet path is shared with another thread.
//!
//! ```no_run
//! use chorus_engine::runtime::{Engine, EngineConfig, Command, LegConfig, LegId, CoreId};
//! let engine = Engine::start(EngineConfig::default()).unwrap();
//! engine.send(CoreId(0), Command::CreateLeg(Box::new(LegConfig::new(LegId(1))))).unwrap();
//! engine.wait_events(std::time::Duration::from_secs(1));
//! while let Some((core, event)) = engine.poll_event() {
//!     println!("{core}: {event:?}");
//! }
//! engine.shutdown();
//! ```

use std::io::ErrorKind;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

pub mod command;
pub mod core;
pub mod dtmf_receiver;
pub mod dtmf_sender;
pub mod flow;
pub mod io;
mod leg;
mod leg_video;
pub mod mailbox;
pub mod metrics;
mod seq_rewriter;
pub mod tick;
mod video_room;

pub use command::{
    AudioFormat, Command, ConferenceId, CoreId, Event, LegConfig, LegId, LegStats, LegUpdate,
    MovingLeg, SilenceSend, SrtpKey, TelephoneEventPt, VideoConfig, VideoLayout, VideoReceiveCodec,
};
pub use dtmf_receiver::{DtmfReceiver, DtmfReport};
pub use io::{IoKind, IoSizes};
pub use mailbox::QueueFull;
pub use metrics::{Counters, Metric};

use self::core::{CoreParams, CoreReady, run_core};
use io::sys::{self, EventFd};
use mailbox::Mailbox;
use metrics::CoreMetrics;

/// Why the engine could not start.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The configuration is unusable.
    #[error("invalid engine configuration: {0}")]
    Config(String),
    /// Not enough free ports in the media port range.
    #[error(
        "media port range {lo}-{hi} has no room for {needed} socket pairs (free pairs found: {found})"
    )]
    Ports {
        /// Range start.
        lo: u16,
        /// Range end.
        hi: u16,
        /// Pairs needed.
        needed: usize,
        /// Pairs that could be bound.
        found: usize,
    },
    /// A system call failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The error.
        source: std::io::Error,
    },
    /// A core failed to start.
    #[error("media core failed to start: {0}")]
    Core(String),
}

/// Engine settings.
#[derive(Clone, Debug)]
pub struct EngineConfig {
    /// Media cores (threads). 0 means one per CPU this process may use.
    pub cores: usize,
    /// Packet I/O backend (io_uring falls back to syscalls where it is unavailable).
    pub io: IoKind,
    /// Address the media sockets bind to.
    pub media_ip: IpAddr,
    /// First and last UDP port media sockets may use (RTP on even ports, RTCP on the next).
    pub media_ports: (u16, u16),
    /// RTP/RTCP socket pairs per core.
    pub pairs_per_core: usize,
    /// Media tick period (20 ms or 10 ms).
    pub tick: Duration,
    /// Capacity of each command and event queue.
    pub queue_capacity: usize,
    /// Pin each core thread to its own CPU.
    pub pin_cores: bool,
    /// Buffer counts of the packet I/O backend.
    pub io_sizes: IoSizes,
    /// SO_RCVBUF/SO_SNDBUF of media sockets.
    pub socket_buffer_bytes: usize,
    /// Talkers a conference mixes at most (the loudest, with hysteresis).
    pub talkers: usize,
    /// The rate conferences mix at, Hz: 16,000 (wideband, the default) or 8,000 (for
    /// callers who are all G.711: no resampling, less CPU and delay).
    pub mix_rate: u32,
    /// Forward only the video of a conference's N most recent speakers (last-N); None:
    /// everyone's.
    pub video_last_n: Option<usize>,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            cores: 0,
            io: IoKind::Uring,
            media_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
            media_ports: (20_000, 39_999),
            pairs_per_core: 2,
            tick: Duration::from_millis(20),
            queue_capacity: 4096,
            pin_cores: true,
            io_sizes: IoSizes::default(),
            socket_buffer_bytes: 4 << 20,
            talkers: 3,
            mix_rate: crate::mixer::MIX_RATE,
            video_last_n: None,
        }
    }
}

struct CoreHandle {
    mailbox: Arc<Mailbox>,
    metrics: Arc<CoreMetrics>,
    thread: Option<JoinHandle<()>>,
    io: IoKind,
    addrs: Vec<SocketAddr>,
}

/// A running set of media cores.
pub struct Engine {
    cores: Vec<CoreHandle>,
    events_wake: Arc<EventFd>,
    next_poll: std::sync::atomic::AtomicUsize,
    mix_rate: u32,
}

/// Binds `count` RTP/RTCP pairs from the range, skipping ports already in use.
fn bind_pairs(
    ip: IpAddr,
    (lo, hi): (u16, u16),
    start: &mut u32,
    count: usize,
    buffer_bytes: usize,
) -> Result<Vec<(UdpSocket, UdpSocket)>, EngineError> {
    let mut pairs = Vec::with_capacity(count);
    while pairs.len() < count {
        let port = *start;
        if port + 1 > u32::from(hi) {
            return Err(EngineError::Ports {
                lo,
                hi,
                needed: count,
                found: pairs.len(),
            });
        }
        *start += 2;
        let bind = |p: u32| UdpSocket::bind(SocketAddr::new(ip, p as u16));
        let (rtp, rtcp) = match (bind(port), bind(port + 1)) {
            (Ok(a), Ok(b)) => (a, b),
            (Err(e), _) | (_, Err(e)) if e.kind() == ErrorKind::AddrInUse => continue,
            (Err(source), _) | (_, Err(source)) => {
                return Err(EngineError::Io {
                    what: "binding media socket",
                    source,
                });
            }
        };
        for s in [&rtp, &rtcp] {
            // A smaller buffer than asked (capped by net.core.rmem_max) is not fatal.
            if let Err(e) = sys::set_socket_buffers(s.as_raw_fd(), buffer_bytes) {
                tracing::debug!(error = %e, "socket buffer size not set");
            }
        }
        pairs.push((rtp, rtcp));
    }
    Ok(pairs)
}

impl Engine {
    /// Binds sockets and starts the cores; returns when every core runs.
    pub fn start(cfg: EngineConfig) -> Result<Engine, EngineError> {
        let cpus = sys::allowed_cpus();
        let n = if cfg.cores == 0 {
            cpus.len().max(1)
        } else {
            cfg.cores
        };
        if n > usize::from(u16::MAX) {
            return Err(EngineError::Config(format!("{n} cores is too many")));
        }
        if cfg.pairs_per_core == 0 {
            return Err(EngineError::Config(
                "pairs_per_core must be at least 1".into(),
            ));
        }
        if cfg.tick < Duration::from_millis(1) || cfg.tick > Duration::from_millis(100) {
            return Err(EngineError::Config(format!(
                "tick {:?} out of range (1 ms to 100 ms)",
                cfg.tick
            )));
        }
        if ![8_000, 16_000].contains(&cfg.mix_rate) {
            return Err(EngineError::Config(format!(
                "mix rate {} Hz: 8000 or 16000",
                cfg.mix_rate
            )));
        }
        if !cfg.io_sizes.rx_buffers.is_power_of_two() {
            return Err(EngineError::Config(
                "rx_buffers must be a power of two".into(),
            ));
        }
        let events_wake = Arc::new(EventFd::new(true).map_err(|source| EngineError::Io {
            what: "creating eventfd",
            source,
        })?);
        let (lo, hi) = cfg.media_ports;
        if lo > hi {
            return Err(EngineError::Config(format!(
                "media ports {lo}-{hi}: empty range"
            )));
        }
        let mut next_port = u32::from(lo) + u32::from(lo % 2);
        let mut cores = Vec::with_capacity(n);
        let mut engine_err = None;
        for i in 0..n {
            let core = CoreId(i as u16);
            let sockets = match bind_pairs(
                cfg.media_ip,
                cfg.media_ports,
                &mut next_port,
                cfg.pairs_per_core,
                cfg.socket_buffer_bytes,
            ) {
                Ok(s) => s,
                Err(e) => {
                    engine_err = Some(e);
                    break;
                }
            };
            let addrs = sockets
                .iter()
                .filter_map(|(r, _)| r.local_addr().ok())
                .collect();
            let mailbox = match Mailbox::new(core, cfg.queue_capacity, events_wake.clone()) {
                Ok(m) => Arc::new(m),
                Err(source) => {
                    engine_err = Some(EngineError::Io {
                        what: "creating core mailbox",
                        source,
                    });
                    break;
                }
            };
            let metrics = Arc::new(CoreMetrics::default());
            let params = CoreParams {
                core,
                io: cfg.io,
                sizes: cfg.io_sizes,
                sockets,
                tick: cfg.tick,
                pin_cpu: cfg
                    .pin_cores
                    .then(|| cpus.get(i % cpus.len().max(1)).copied())
                    .flatten(),
                mailbox: mailbox.clone(),
                metrics: metrics.clone(),
                talkers: cfg.talkers,
                mix_rate: cfg.mix_rate,
                video_last_n: cfg.video_last_n,
            };
            let (tx, rx) = std::sync::mpsc::channel::<CoreReady>();
            let thread = std::thread::Builder::new()
                .name(format!("chorus-core{i}"))
                .spawn(move || run_core(params, tx))
                .map_err(|source| EngineError::Io {
                    what: "spawning core thread",
                    source,
                })?;
            let mut handle = CoreHandle {
                mailbox,
                metrics,
                thread: Some(thread),
                io: cfg.io,
                addrs,
            };
            match rx.recv() {
                Ok(Ok((kind, fallback))) => {
                    if let Some(reason) = fallback {
                        tracing::warn!(
                            %core,
                            %reason,
                            "io_uring unavailable (blocked by seccomp or too old a kernel?); \
                             using the syscalls backend"
                        );
                    }
                    handle.io = kind;
                    cores.push(handle);
                }
                Ok(Err(msg)) => {
                    engine_err = Some(EngineError::Core(msg));
                    break;
                }
                Err(_) => {
                    engine_err = Some(EngineError::Core(format!("{core} exited during start")));
                    break;
                }
            }
        }
        let engine = Engine {
            cores,
            events_wake,
            next_poll: Default::default(),
            mix_rate: cfg.mix_rate,
        };
        match engine_err {
            Some(e) => {
                engine.shutdown();
                Err(e)
            }
            None => Ok(engine),
        }
    }

    /// The rate conferences mix at (and recordings are written at), Hz.
    pub fn mix_rate(&self) -> u32 {
        self.mix_rate
    }

    /// Number of cores.
    pub fn core_count(&self) -> usize {
        self.cores.len()
    }

    /// The backend a core actually runs (after any fallback).
    pub fn io_kind(&self, core: CoreId) -> Option<IoKind> {
        self.cores.get(usize::from(core.0)).map(|c| c.io)
    }

    /// A core's RTP socket addresses.
    pub fn media_addrs(&self, core: CoreId) -> &[SocketAddr] {
        self.cores
            .get(usize::from(core.0))
            .map_or(&[], |c| c.addrs.as_slice())
    }

    /// Queues a command on a core and wakes it. A full queue hands the command back.
    pub fn send(&self, core: CoreId, command: Command) -> Result<(), QueueFull> {
        match self.cores.get(usize::from(core.0)) {
            Some(c) => c.mailbox.send(command),
            None => Err(QueueFull { core, command }),
        }
    }

    /// The next event from any core (round-robin over cores).
    pub fn poll_event(&self) -> Option<(CoreId, Event)> {
        let n = self.cores.len();
        let start = self
            .next_poll
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        (0..n).find_map(|k| {
            let i = (start + k) % n;
            self.cores[i]
                .mailbox
                .next_event()
                .map(|e| (CoreId(i as u16), e))
        })
    }

    /// Blocks until a core may have queued events, or `timeout` passes.
    pub fn wait_events(&self, timeout: Duration) -> bool {
        let rung = self.events_wake.wait_readable(timeout).unwrap_or(false);
        if rung {
            self.events_wake.drain();
        }
        rung
    }

    /// The fd that becomes readable when cores queue events (for an async reactor).
    pub fn events_fd(&self) -> std::os::fd::RawFd {
        self.events_wake.as_raw_fd()
    }

    /// A core's last published counters (published once per tick).
    pub fn counters(&self, core: CoreId) -> Counters {
        self.cores
            .get(usize::from(core.0))
            .map(|c| c.metrics.snapshot())
            .unwrap_or_default()
    }

    /// Commands refused and events dropped because a queue was full, per core.
    pub fn queue_overflows(&self, core: CoreId) -> (u64, u64) {
        self.cores.get(usize::from(core.0)).map_or((0, 0), |c| {
            (c.mailbox.commands_full(), c.mailbox.events_full())
        })
    }

    /// The core with the fewest legs (placement for a new leg).
    pub fn least_loaded_core(&self) -> CoreId {
        let i = (0..self.cores.len())
            .min_by_key(|&i| self.cores[i].metrics.snapshot().get(Metric::Legs))
            .unwrap_or(0);
        CoreId(i as u16)
    }

    /// Stops every core and waits for its thread.
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        for c in &self.cores {
            // A full queue means the core is busy: retry until the shutdown gets through.
            let mut cmd = Command::Shutdown;
            for _ in 0..1000 {
                match c.mailbox.send(cmd) {
                    Ok(()) => break,
                    Err(e) => {
                        cmd = e.command;
                        std::thread::sleep(Duration::from_millis(1));
                    }
                }
            }
        }
        for c in &mut self.cores {
            if let Some(t) = c.thread.take() {
                let _ = t.join();
            }
        }
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        self.stop();
    }
}
