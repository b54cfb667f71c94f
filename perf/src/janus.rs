//! Callers set up through Janus AudioBridge's HTTP API (`--target janus`), for a
//! comparison with a peer server driven by the same callers.
//!
//! Before the ramp: one Janus session, a control handle on the AudioBridge plugin, and a
//! room per conference (`create` with the conference ID as the room, 8 kHz mixing for G.711
//! and 16 kHz for Opus, plain-RTP participants allowed, no recording, no audio-level
//! events). Per caller: a handle (`attach`) that `join`s the room as a plain-RTP participant
//! (`"rtp": {ip, port, payload_type}` of the caller's leg, `"codec"`); Janus answers in the
//! `joined` event with the RTP address it expects, which becomes the leg's remote. Hang-up
//! is `leave` and `detach`. One long poll (`GET /janus/SESSION?maxev=N`) carries every
//! handle's events; keepalives at a third of the session timeout Janus states in its
//! `info` (at most 15 s apart) keep the session alive. After the run the rooms and the
//! session are destroyed.
//!
//! HTTP is `http.rs`'s small HTTP/1.1 client with keep-alive connections (Janus's
//! transport answers POSTs chunked and long polls with a Content-Length). Each
//! request runs as its own task, so a slow answer holds up nobody; what comes back reaches
//! the driver as an [`Input`] on one channel, in order per caller (a caller's `Attached`
//! goes out before its `join` does, so before the `joined` event can come back).

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use chorus_engine::rtp::Pt;
use chorus_signaling::sdp::{Codec, Direction, Negotiated, NegotiatedCodec};
use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::http::{HttpConn, Response, Stale};
use crate::run::{CallSetup, Dial, SetupEvent};
use crate::{CodecArg, RunArgs};

/// Janus's HTTP transport's default base path, used when the URL names none.
const DEFAULT_PATH: &str = "/janus";
/// Janus's HTTP transport's default port.
const DEFAULT_PORT: u16 = 8088;
/// How long an ordinary request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a long poll may take (Janus answers an idle one with a keepalive after 30 s).
const POLL_TIMEOUT: Duration = Duration::from_secs(45);
/// Keepalives at most this far apart (Janus's default session timeout is 60 s).
const KEEPALIVE_EVERY: Duration = Duration::from_secs(15);
/// Events per long-poll answer.
const POLL_MAX_EVENTS: u32 = 100;
/// How long the end of a run waits for the last hang-ups.
const LINGER: Duration = Duration::from_secs(5);

/// Where Janus's HTTP transport listens: `http://IP[:PORT][/PATH]` (port 8088 and path
/// `/janus` by default, as Janus's own; `localhost` is 127.0.0.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JanusUrl {
    /// The transport's address.
    pub addr: SocketAddr,
    /// The API's base path, without a trailing slash.
    pub path: String,
}

impl JanusUrl {
    /// Parses `--janus-url`; `Err` is one line naming the flag.
    pub fn parse(s: &str) -> Result<JanusUrl, String> {
        let bad =
            |why: &str| format!("--janus-url {s:?}: {why} (e.g. http://127.0.0.1:8088/janus)");
        let rest = s
            .strip_prefix("http://")
            .ok_or_else(|| bad("need an http:// URL (https is not supported)"))?;
        let (host_port, path) = rest.find('/').map_or((rest, ""), |i| rest.split_at(i));
        let path = path.trim_end_matches('/');
        let path = if path.is_empty() { DEFAULT_PATH } else { path };
        if !path
            .bytes()
            .all(|b| b.is_ascii_graphic() && b != b'?' && b != b'#')
        {
            return Err(bad("the path must be plain"));
        }
        let port = |p: &str| {
            p.parse::<u16>()
                .map_err(|_| bad("the port is not a number"))
        };
        let (host, port) = match host_port.strip_prefix('[') {
            // [IPv6] or [IPv6]:PORT
            Some(v6) => match v6.split_once(']') {
                Some((h, "")) => (h, DEFAULT_PORT),
                Some((h, p)) => (h, port(p.strip_prefix(':').unwrap_or(p))?),
                None => return Err(bad("unclosed [")),
            },
            None => match host_port.split_once(':') {
                Some((h, p)) => (h, port(p)?),
                None => (host_port, DEFAULT_PORT),
            },
        };
        let ip: IpAddr = if host == "localhost" {
            Ipv4Addr::LOCALHOST.into()
        } else {
            host.parse()
                .map_err(|_| bad("the host must be an IP address or localhost"))?
        };
        Ok(JanusUrl {
            addr: SocketAddr::new(ip, port),
            path: path.to_string(),
        })
    }
}

/// Janus's HTTP API: requests over a pool of keep-alive connections, each answer checked
/// for a Janus error.
#[derive(Clone)]
struct Client {
    url: Arc<JanusUrl>,
    idle: Arc<Mutex<Vec<HttpConn>>>,
    transactions: Arc<AtomicU64>,
}

impl Client {
    fn new(url: JanusUrl) -> Client {
        Client {
            url: Arc::new(url),
            idle: Arc::new(Mutex::new(Vec::new())),
            transactions: Arc::new(AtomicU64::new(1)),
        }
    }

    /// POSTs `body` (a `transaction` added if it has none) to the base path plus `suffix`;
    /// the answer, or `Err` for HTTP and Janus errors.
    async fn post(&self, suffix: &str, mut body: Value) -> Result<Value> {
        if body.get("transaction").is_none() {
            let t = self.transactions.fetch_add(1, Ordering::Relaxed);
            body["transaction"] = json!(format!("t{t}"));
        }
        self.send("POST", suffix, &body.to_string().into_bytes())
            .await
    }

    /// GETs the base path plus `suffix` (e.g. `/info`); as `post`.
    async fn get(&self, suffix: &str) -> Result<Value> {
        self.send("GET", suffix, b"").await
    }

    /// One request on a pooled connection (a new one when the pool is empty, and once more
    /// on a new one when a pooled one turns out closed).
    async fn send(&self, method: &str, suffix: &str, bytes: &[u8]) -> Result<Value> {
        let path = format!("{}{suffix}", self.url.path);
        let reused = self.idle.lock().ok().and_then(|mut idle| idle.pop());
        let fresh = reused.is_none();
        let mut conn = match reused {
            Some(c) => c,
            None => HttpConn::connect(self.url.addr).await?,
        };
        let r = tokio::time::timeout(
            REQUEST_TIMEOUT,
            conn.request(method, self.url.addr, &path, bytes),
        )
        .await;
        let response = match r {
            Err(_) => bail!("no answer from Janus in {} s", REQUEST_TIMEOUT.as_secs()),
            Ok(Err(e)) if !fresh && e.is::<Stale>() => {
                // The server closed the idle connection: once more on a new one.
                conn = HttpConn::connect(self.url.addr).await?;
                tokio::time::timeout(
                    REQUEST_TIMEOUT,
                    conn.request(method, self.url.addr, &path, bytes),
                )
                .await
                .map_err(|_| anyhow!("no answer from Janus in {} s", REQUEST_TIMEOUT.as_secs()))??
            }
            Ok(r) => r?,
        };
        if response.keep_alive
            && let Ok(mut idle) = self.idle.lock()
        {
            idle.push(conn);
        }
        janus_answer(response)
    }

    /// One long poll for the session's events, on its own connection (`conn`, opened when
    /// `None`, left `None` when it cannot be reused): the events (Janus's keepalive when
    /// there were none for 30 s).
    async fn poll(&self, conn: &mut Option<HttpConn>, session: u64) -> Result<Vec<Value>> {
        let mut c = match conn.take() {
            Some(c) => c,
            None => HttpConn::connect(self.url.addr).await?,
        };
        let path = format!("{}/{session}?maxev={POLL_MAX_EVENTS}", self.url.path);
        let response =
            tokio::time::timeout(POLL_TIMEOUT, c.request("GET", self.url.addr, &path, b""))
                .await
                .map_err(|_| {
                    anyhow!(
                        "no answer to the event poll in {} s",
                        POLL_TIMEOUT.as_secs()
                    )
                })??;
        if response.keep_alive {
            *conn = Some(c);
        }
        Ok(match janus_answer(response)? {
            Value::Array(events) => events,
            one => vec![one],
        })
    }
}

/// The JSON of a Janus answer; `Err` for an HTTP error status, bad JSON, or
/// `"janus": "error"`.
fn janus_answer(response: Response) -> Result<Value> {
    if response.status != 200 {
        bail!("Janus answered HTTP {}", response.status);
    }
    let v: Value = serde_json::from_slice(&response.body).context("Janus's answer is not JSON")?;
    if v["janus"] == "error" {
        let e = &v["error"];
        bail!(
            "Janus error {}: {}",
            e["code"].as_u64().unwrap_or(0),
            e["reason"].as_str().unwrap_or("(no reason)")
        );
    }
    Ok(v)
}

/// The AudioBridge's answer in a synchronous plugin response; `Err` when it refused.
fn plugin_answer(v: &Value) -> Result<&Value> {
    let data = &v["plugindata"]["data"];
    if let Some(code) = data["error_code"].as_u64() {
        bail!(
            "AudioBridge error {code}: {}",
            data["error"].as_str().unwrap_or("(no reason)")
        );
    }
    if data.is_null() {
        bail!("Janus answered without plugin data: {v}");
    }
    Ok(data)
}

/// The `data.id` of a `create` or `attach` answer.
fn new_id(v: &Value) -> Result<u64> {
    v["data"]["id"]
        .as_u64()
        .ok_or_else(|| anyhow!("Janus answered without an id: {v}"))
}

/// What the request tasks and the event poll hand the driver.
#[derive(Debug)]
enum Input {
    /// A caller has its plugin handle (its `join` goes out next).
    Attached { caller: usize, handle: u64 },
    /// A caller's setup failed before Janus took its join.
    Refused { caller: usize, reason: String },
    /// Events from the long poll.
    Events(Vec<Value>),
    /// A hang-up (leave and detach) is done.
    HungUp,
    /// The long poll failed (it tries again).
    PollFailed(String),
}

/// One caller's place with Janus.
#[derive(Debug, Default)]
struct Call {
    handle: Option<u64>,
    joined: bool,
    hung_up: bool,
}

/// Callers as Janus AudioBridge plain-RTP participants.
pub struct Janus {
    client: Client,
    session: u64,
    /// The handle that created the rooms (and destroys them).
    control: u64,
    rooms: Vec<u64>,
    codec: Codec,
    /// The codec's name in a join, and the payload type callers send it with.
    codec_name: &'static str,
    pt: u8,
    inputs_tx: mpsc::UnboundedSender<Input>,
    inputs: mpsc::UnboundedReceiver<Input>,
    handles: HashMap<u64, usize>,
    calls: HashMap<usize, Call>,
    events: VecDeque<(usize, SetupEvent)>,
    /// Hang-ups not yet done.
    hanging_up: usize,
    next_keepalive: Instant,
    /// Keepalives this often: a third of Janus's session timeout, at most `KEEPALIVE_EVERY`.
    keepalive_every: Duration,
    poll_failures: u64,
    poller: tokio::task::JoinHandle<()>,
}

/// Janus's name of the codec, its payload type here, and the room's mixing rate.
fn codec_of(codec: CodecArg) -> Result<(Codec, &'static str, u8, u32)> {
    Ok(match codec {
        CodecArg::Pcmu => (Codec::Pcmu, "pcmu", 0, 8_000),
        CodecArg::Pcma => (Codec::Pcma, "pcma", 8, 8_000),
        CodecArg::Opus => (Codec::Opus, "opus", 111, 16_000),
        CodecArg::G722 => bail!("AudioBridge has no G.722"),
    })
}

/// Connects to Janus's HTTP port before anything else starts, so an unreachable Janus is
/// one clear line.
pub fn preflight(args: &RunArgs) -> Result<()> {
    let url = JanusUrl::parse(&args.janus_url).map_err(|e| anyhow!(e))?;
    std::net::TcpStream::connect_timeout(&url.addr, Duration::from_secs(2))
        .map(|_| ())
        .map_err(|e| unreachable(&url, e))
}

fn unreachable(url: &JanusUrl, why: impl std::fmt::Display) -> anyhow::Error {
    anyhow!(
        "Janus at http://{}{} does not answer ({why}); is janus running with its HTTP transport there?",
        url.addr,
        url.path
    )
}

impl Janus {
    /// Opens the session, attaches the control handle and creates a room per conference
    /// (a leftover room of the same ID is destroyed first); `Err` is one line (Janus
    /// unreachable, a refused room).
    pub async fn connect(args: &RunArgs) -> Result<Janus> {
        let url = JanusUrl::parse(&args.janus_url).map_err(|e| anyhow!(e))?;
        let (codec, codec_name, pt, rate) = codec_of(args.codec)?;
        let client = Client::new(url.clone());
        let session = client
            .post("", json!({"janus": "create"}))
            .await
            .and_then(|v| new_id(&v))
            .map_err(|e| unreachable(&url, format!("{e:#}")))?;
        // Janus says its session timeout in its info (0: none); keepalives go out at a
        // third of it.
        let info = client
            .get("/info")
            .await
            .context("asking Janus for its info")?;
        let keepalive_every = match info["session-timeout"].as_u64() {
            Some(t) if t > 0 => KEEPALIVE_EVERY.min(Duration::from_secs(t) / 3),
            _ => KEEPALIVE_EVERY,
        };
        let control = attach(&client, session)
            .await
            .context("attaching to AudioBridge")?;
        let conferences = args.users.div_ceil(args.conference_size);
        let mut rooms = Vec::new();
        for k in 0..u64::from(conferences) {
            let room = args.conference_base + k;
            let create = json!({
                "request": "create",
                "room": room,
                "description": format!("chorus-load {room}"),
                "is_private": true,
                "permanent": false,
                "sampling_rate": rate,
                "allow_rtp_participants": true,
                "record": false,
                "audiolevel_ext": false,
                "audiolevel_event": false,
            });
            let path = format!("/{session}/{control}");
            let first = client
                .post(&path, json!({"janus": "message", "body": create}))
                .await?;
            // 486: the room exists (a run that did not clean up): replace it.
            if plugin_answer(&first).is_err() && first["plugindata"]["data"]["error_code"] == 486 {
                let destroy = json!({"request": "destroy", "room": room});
                let v = client
                    .post(&path, json!({"janus": "message", "body": destroy}))
                    .await?;
                plugin_answer(&v)
                    .with_context(|| format!("destroying the leftover room {room}"))?;
                let v = client
                    .post(&path, json!({"janus": "message", "body": create}))
                    .await?;
                plugin_answer(&v).with_context(|| format!("creating room {room}"))?;
            } else {
                plugin_answer(&first).with_context(|| format!("creating room {room}"))?;
            }
            rooms.push(room);
        }
        let (inputs_tx, inputs) = mpsc::unbounded_channel();
        let poller = tokio::spawn(poll_events(client.clone(), session, inputs_tx.clone()));
        Ok(Janus {
            client,
            session,
            control,
            rooms,
            codec,
            codec_name,
            pt,
            inputs_tx,
            inputs,
            handles: HashMap::new(),
            calls: HashMap::new(),
            events: VecDeque::new(),
            hanging_up: 0,
            next_keepalive: Instant::now() + keepalive_every,
            keepalive_every,
            poll_failures: 0,
            poller,
        })
    }

    /// Leave and detach `handle` in the background; `HungUp` when done.
    fn release(&mut self, handle: u64, leave: bool) {
        self.hanging_up += 1;
        let (client, tx, session) = (self.client.clone(), self.inputs_tx.clone(), self.session);
        tokio::spawn(async move {
            let path = format!("/{session}/{handle}");
            if leave {
                let body = json!({"janus": "message", "body": {"request": "leave"}});
                let _ = client.post(&path, body).await;
            }
            let _ = client.post(&path, json!({"janus": "detach"})).await;
            let _ = tx.send(Input::HungUp);
        });
    }

    fn take(&mut self, input: Input) {
        match input {
            Input::Attached { caller, handle } => {
                self.handles.insert(handle, caller);
                let call = self.calls.entry(caller).or_default();
                call.handle = Some(handle);
                if call.hung_up {
                    // Hung up while attaching: its join may be on the way; leave as well.
                    self.release(handle, true);
                }
            }
            Input::Refused { caller, reason } => {
                let Some(call) = self.calls.get_mut(&caller) else {
                    return;
                };
                if !call.hung_up {
                    call.hung_up = true;
                    self.events
                        .push_back((caller, SetupEvent::Failed { status: 0, reason }));
                    if let Some(h) = call.handle {
                        self.release(h, false);
                    }
                }
            }
            Input::Events(events) => {
                for ev in &events {
                    self.on_event(ev);
                }
            }
            Input::HungUp => self.hanging_up = self.hanging_up.saturating_sub(1),
            Input::PollFailed(why) => {
                self.poll_failures += 1;
                if self.poll_failures == 1 {
                    eprintln!("chorus-load: Janus's event poll failed ({why}); trying again");
                }
            }
        }
    }

    /// One event from the long poll.
    fn on_event(&mut self, ev: &Value) {
        match ev["janus"].as_str() {
            // The session is gone: every call in it ended.
            Some("timeout") => {
                let ended: Vec<usize> = (self.calls.iter())
                    .filter(|(_, c)| c.joined && !c.hung_up)
                    .map(|(&i, _)| i)
                    .collect();
                for i in ended {
                    if let Some(c) = self.calls.get_mut(&i) {
                        c.hung_up = true;
                    }
                    let reason = "Janus timed the session out".to_string();
                    self.events.push_back((i, SetupEvent::Ended { reason }));
                }
            }
            Some("event") => {
                let Some(&caller) = ev["sender"].as_u64().and_then(|h| self.handles.get(&h)) else {
                    return;
                };
                let data = &ev["plugindata"]["data"];
                let ours = ev["transaction"].as_str() == Some(join_transaction(caller).as_str());
                let Some(call) = self.calls.get_mut(&caller) else {
                    return;
                };
                if call.hung_up {
                    return;
                }
                if ours && let Some(code) = data["error_code"].as_u64() {
                    call.hung_up = true;
                    let reason = data["error"].as_str().unwrap_or("join refused").to_string();
                    let status = u16::try_from(code).unwrap_or(0);
                    self.events
                        .push_back((caller, SetupEvent::Failed { status, reason }));
                    if let Some(h) = call.handle {
                        self.release(h, false);
                    }
                } else if ours && data["audiobridge"] == "joined" && !call.joined {
                    match joined_rtp(data, self.pt) {
                        Some((remote, pt)) => {
                            call.joined = true;
                            let negotiated = negotiated(self.codec, remote, pt);
                            self.events
                                .push_back((caller, SetupEvent::Answered(Box::new(negotiated))));
                        }
                        None => {
                            call.hung_up = true;
                            // Janus joins the participant even when it cannot bind a port
                            // for it (its log says so).
                            let reason = "Janus joined it without an RTP address (out of \
                                          plain-RTP ports? see Janus's log)"
                                .to_string();
                            self.events
                                .push_back((caller, SetupEvent::Failed { status: 0, reason }));
                            if let Some(h) = call.handle {
                                self.release(h, true);
                            }
                        }
                    }
                } else if data["audiobridge"] == "destroyed" && call.joined {
                    call.hung_up = true;
                    let reason = "Janus destroyed the room".to_string();
                    self.events
                        .push_back((caller, SetupEvent::Ended { reason }));
                }
            }
            Some("hangup" | "detached") => {
                let Some(&caller) = ev["sender"].as_u64().and_then(|h| self.handles.get(&h)) else {
                    return;
                };
                if let Some(call) = self.calls.get_mut(&caller)
                    && call.joined
                    && !call.hung_up
                {
                    call.hung_up = true;
                    let reason = format!(
                        "Janus: {}",
                        ev["reason"]
                            .as_str()
                            .unwrap_or(ev["janus"].as_str().unwrap_or(""))
                    );
                    self.events
                        .push_back((caller, SetupEvent::Ended { reason }));
                }
            }
            _ => {}
        }
    }
}

/// The transaction of caller `caller`'s join, which Janus puts on the `joined` event.
fn join_transaction(caller: usize) -> String {
    format!("join-{caller}")
}

/// Where Janus expects the participant's RTP, and the payload type it uses, from a
/// `joined` event's `rtp` (`fallback_pt` when it names none).
fn joined_rtp(data: &Value, fallback_pt: u8) -> Option<(SocketAddr, u8)> {
    let rtp = &data["rtp"];
    let ip: IpAddr = rtp["ip"].as_str()?.parse().ok()?;
    let port = u16::try_from(rtp["port"].as_u64()?)
        .ok()
        .filter(|&p| p != 0)?;
    let pt = match rtp["payload_type"].as_u64() {
        Some(pt) => u8::try_from(pt).ok().filter(|&pt| pt < 128)?,
        None => fallback_pt,
    };
    Some((SocketAddr::new(ip, port), pt))
}

/// The media of a joined participant as a negotiation would give it: plain RTP both ways to
/// Janus's port (RTCP on the same port: Janus's next port is another participant's), the
/// codec at 20 ms, no RFC 4733 events, no comfort noise.
fn negotiated(codec: Codec, remote: SocketAddr, pt: u8) -> Negotiated {
    Negotiated {
        media_index: 0,
        remote_rtp: remote,
        remote_rtcp: remote,
        rtcp_mux: true,
        codec: NegotiatedCodec {
            codec,
            payload_type: Pt(pt),
            clock_rate: codec.clock_rate(),
            sample_rate: codec.sample_rate(),
            channels: if codec == Codec::Opus { 2 } else { 1 },
            ptime_ms: 20,
            fmtp: None,
        },
        telephone_event: None,
        comfort_noise: None,
        direction: Direction::SendRecv,
        srtp: None,
        remote_ssrc: None,
        remote_max_bitrate_bps: None,
        video: None,
    }
}

async fn attach(client: &Client, session: u64) -> Result<u64> {
    let v = client
        .post(
            &format!("/{session}"),
            json!({"janus": "attach", "plugin": "janus.plugin.audiobridge"}),
        )
        .await?;
    new_id(&v)
}

/// The session's long poll, until the driver is gone.
async fn poll_events(client: Client, session: u64, tx: mpsc::UnboundedSender<Input>) {
    let mut conn = None;
    while !tx.is_closed() {
        let input = match client.poll(&mut conn, session).await {
            Ok(events) => Input::Events(events),
            Err(e) => {
                tokio::time::sleep(Duration::from_millis(500)).await;
                Input::PollFailed(format!("{e:#}"))
            }
        };
        if tx.send(input).is_err() {
            return;
        }
    }
}

impl CallSetup for Janus {
    fn dial(&mut self, _now: Instant, caller: usize, dial: Dial) -> Result<(), String> {
        let join = json!({
            "janus": "message",
            "transaction": join_transaction(caller),
            "body": {
                "request": "join",
                "room": dial.conference,
                "display": format!("load{}", dial.user),
                "codec": self.codec_name,
                "rtp": {
                    "ip": dial.local_rtp.ip().to_string(),
                    "port": dial.local_rtp.port(),
                    "payload_type": self.pt,
                },
            },
        });
        self.calls.insert(caller, Call::default());
        let (client, tx, session) = (self.client.clone(), self.inputs_tx.clone(), self.session);
        tokio::spawn(async move {
            let handle = match attach(&client, session).await {
                Ok(h) => h,
                Err(e) => {
                    let reason = format!("attaching to AudioBridge: {e:#}");
                    let _ = tx.send(Input::Refused { caller, reason });
                    return;
                }
            };
            let _ = tx.send(Input::Attached { caller, handle });
            // An ack now; the `joined` event (or the refusal) comes through the poll.
            if let Err(e) = client.post(&format!("/{session}/{handle}"), join).await {
                let reason = format!("join: {e:#}");
                let _ = tx.send(Input::Refused { caller, reason });
            }
        });
        Ok(())
    }

    fn hangup(&mut self, _now: Instant, caller: usize) {
        let Some(call) = self.calls.get_mut(&caller) else {
            return;
        };
        if call.hung_up {
            return;
        }
        call.hung_up = true;
        // Without a handle yet, the hang-up goes out when it comes (`Input::Attached`).
        if let Some(h) = call.handle {
            self.release(h, true);
        }
    }

    fn flush(&mut self) {}

    fn poll_event(&mut self) -> Option<(usize, SetupEvent)> {
        while self.events.is_empty() {
            match self.inputs.try_recv() {
                Ok(input) => self.take(input),
                Err(_) => break,
            }
        }
        self.events.pop_front()
    }

    fn poll_timeout(&mut self) -> Option<Instant> {
        Some(self.next_keepalive)
    }

    fn handle_timeout(&mut self, now: Instant) {
        if now < self.next_keepalive {
            return;
        }
        self.next_keepalive = now + self.keepalive_every;
        let (client, session) = (self.client.clone(), self.session);
        tokio::spawn(async move {
            let _ = client
                .post(&format!("/{session}"), json!({"janus": "keepalive"}))
                .await;
        });
    }

    async fn recv(&mut self) -> Result<()> {
        // The driver holds a sender, so the channel never closes while it runs.
        let input = self
            .inputs
            .recv()
            .await
            .ok_or_else(|| anyhow!("Janus's input channel closed"))?;
        self.take(input);
        Ok(())
    }

    /// Waits for the last leaves and detaches, then destroys the rooms and the session.
    async fn linger(&mut self) {
        let end = tokio::time::Instant::now() + LINGER;
        while self.hanging_up > 0 {
            match tokio::time::timeout_at(end, self.inputs.recv()).await {
                Ok(Some(input)) => self.take(input),
                _ => break,
            }
        }
        let path = format!("/{}/{}", self.session, self.control);
        for &room in &self.rooms {
            let body = json!({"janus": "message", "body": {"request": "destroy", "room": room}});
            if let Err(e) = self.client.post(&path, body).await {
                eprintln!("chorus-load: destroying Janus room {room}: {e:#}");
            }
        }
        let _ = (self.client)
            .post(&format!("/{}", self.session), json!({"janus": "destroy"}))
            .await;
        self.poller.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse_with_janus_defaults_and_refuse_clearly() {
        let u = JanusUrl::parse("http://127.0.0.1:18088/janus").unwrap();
        assert_eq!(u.addr, "127.0.0.1:18088".parse().unwrap());
        assert_eq!(u.path, "/janus");
        let u = JanusUrl::parse("http://localhost/").unwrap();
        assert_eq!(u.addr, "127.0.0.1:8088".parse().unwrap());
        assert_eq!(u.path, "/janus");
        let u = JanusUrl::parse("http://[::1]:9000/api/").unwrap();
        assert_eq!(u.addr, "[::1]:9000".parse().unwrap());
        assert_eq!(u.path, "/api");
        let u = JanusUrl::parse("http://[::1]").unwrap();
        assert_eq!(u.addr, "[::1]:8088".parse().unwrap());
        assert!(
            JanusUrl::parse("http://[::1/janus")
                .unwrap_err()
                .contains("unclosed")
        );
        assert!(JanusUrl::parse("http://::1/janus").is_err());
        assert!(
            JanusUrl::parse("https://127.0.0.1/janus")
                .unwrap_err()
                .contains("http://")
        );
        assert!(
            JanusUrl::parse("http://janus.example/janus")
                .unwrap_err()
                .contains("IP")
        );
        assert!(
            JanusUrl::parse("http://127.0.0.1:x/janus")
                .unwrap_err()
                .contains("port")
        );
    }

    #[test]
    fn janus_answers_and_refusals_are_told_apart() {
        let ok = |body: &str| Response {
            status: 200,
            body: body.as_bytes().to_vec(),
            used: 0,
            keep_alive: true,
        };
        let v = janus_answer(ok(r#"{"janus":"success","data":{"id":42}}"#)).unwrap();
        assert_eq!(new_id(&v).unwrap(), 42);
        let e = janus_answer(ok(
            r#"{"janus":"error","error":{"code":458,"reason":"No such session"}}"#,
        ));
        assert!(format!("{:#}", e.unwrap_err()).contains("458: No such session"));
        let refused = json!({"plugindata": {"data": {"audiobridge": "event", "error_code": 486, "error": "Room 7000 already exists"}}});
        assert!(format!("{:#}", plugin_answer(&refused).unwrap_err()).contains("486"));
        assert!(
            janus_answer(Response {
                status: 500,
                ..ok("")
            })
            .is_err()
        );
        assert!(janus_answer(ok("not json")).is_err());
    }

    #[test]
    fn a_joined_event_gives_the_leg_its_remote() {
        let data = json!({"audiobridge": "joined", "room": 7000, "id": 1, "participants": [],
            "rtp": {"ip": "127.0.0.1", "port": 54000, "payload_type": 0}});
        let (remote, pt) = joined_rtp(&data, 8).unwrap();
        assert_eq!((remote, pt), ("127.0.0.1:54000".parse().unwrap(), 0));
        let n = negotiated(Codec::Pcmu, remote, pt);
        assert_eq!(
            (n.remote_rtp, n.rtcp_mux, n.codec.clock_rate),
            (remote, true, 8_000)
        );
        let no_pt = json!({"rtp": {"ip": "127.0.0.1", "port": 54002}});
        assert_eq!(joined_rtp(&no_pt, 111).unwrap().1, 111);
        for bad in [
            json!({"audiobridge": "joined"}),
            json!({"rtp": {"ip": "nowhere", "port": 54000}}),
            json!({"rtp": {"ip": "127.0.0.1", "port": 70000}}),
            json!({"rtp": {"ip": "127.0.0.1", "port": 54000, "payload_type": 200}}),
        ] {
            assert_eq!(joined_rtp(&bad, 0), None, "{bad}");
        }
    }

    #[test]
    fn answers_refusals_and_ends_become_setup_events_for_the_right_caller() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let _guard = rt.enter();
        let (inputs_tx, inputs) = mpsc::unbounded_channel();
        let url = JanusUrl::parse("http://127.0.0.1:9/janus").unwrap();
        let mut j = Janus {
            client: Client::new(url),
            session: 1,
            control: 2,
            rooms: Vec::new(),
            codec: Codec::Pcmu,
            codec_name: "pcmu",
            pt: 0,
            inputs_tx,
            inputs,
            handles: HashMap::new(),
            calls: HashMap::new(),
            events: VecDeque::new(),
            hanging_up: 0,
            next_keepalive: Instant::now(),
            keepalive_every: KEEPALIVE_EVERY,
            poll_failures: 0,
            poller: tokio::spawn(async {}),
        };
        for caller in 0..4 {
            j.calls.insert(caller, Call::default());
            let handle = 100 + caller as u64;
            j.take(Input::Attached { caller, handle });
        }
        let joined = |caller: usize, port: u16| {
            json!({"janus": "event", "sender": 100 + caller as u64,
                "transaction": join_transaction(caller),
                "plugindata": {"data": {"audiobridge": "joined", "room": 7000, "id": 5,
                    "participants": [],
                    "rtp": {"ip": "127.0.0.1", "port": port, "payload_type": 0}}}})
        };
        // Another participant's arrival, told on caller 0's handle, is not its answer.
        let other = json!({"janus": "event", "sender": 100, "plugindata": {"data":
            {"audiobridge": "joined", "room": 7000, "participants": [{"id": 9}]}}});
        j.take(Input::Events(vec![other, joined(0, 54_000)]));
        match j.poll_event() {
            Some((0, SetupEvent::Answered(n))) => {
                assert_eq!(n.remote_rtp, "127.0.0.1:54000".parse().unwrap());
            }
            e => panic!("{e:?}"),
        }
        assert!(j.poll_event().is_none());
        // A refused join: its status and reason, and its handle is detached.
        let refused = json!({"janus": "event", "sender": 101,
            "transaction": join_transaction(1), "plugindata": {"data":
            {"audiobridge": "event", "error_code": 485, "error": "No such room (7000)"}}});
        j.take(Input::Events(vec![refused]));
        match j.poll_event() {
            Some((1, SetupEvent::Failed { status, reason })) => {
                assert_eq!(status, 485);
                assert!(reason.contains("No such room"), "{reason}");
            }
            e => panic!("{e:?}"),
        }
        assert_eq!(j.hanging_up, 1);
        // Hung up before its answer came: the answer is not passed on.
        j.hangup(Instant::now(), 2);
        j.take(Input::Events(vec![joined(2, 54_002)]));
        assert!(j.poll_event().is_none());
        // The room destroyed under a joined caller, then the session timed out.
        j.take(Input::Events(vec![joined(3, 54_004)]));
        assert!(matches!(j.poll_event(), Some((3, SetupEvent::Answered(_)))));
        let destroyed = json!({"janus": "event", "sender": 103, "plugindata": {"data":
            {"audiobridge": "destroyed", "room": 7000}}});
        j.take(Input::Events(vec![destroyed]));
        assert!(matches!(
            j.poll_event(),
            Some((3, SetupEvent::Ended { .. }))
        ));
        j.take(Input::Events(vec![
            json!({"janus": "timeout", "session_id": 1}),
        ]));
        assert!(matches!(
            j.poll_event(),
            Some((0, SetupEvent::Ended { .. }))
        ));
        assert!(j.poll_event().is_none());
    }
}
