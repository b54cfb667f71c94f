//! The SIP front door: binds the transports, runs the UAS core on the control thread, and
//! carries its decisions to the sockets and the media cores.
//!
//! One tokio task waits on inbound SIP frames, the UA's next timer, media-core events and
//! shutdown; every input goes through the sans-IO `UserAgent`, and its outputs are sent (never
//! awaited: transports queue and count). Media-core events reach the task through
//! [`forward_engine_events`], a thread that blocks on the engine's event doorbell.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::Result;
use chorus_engine::runtime::{CoreId, Engine, Event};
use chorus_signaling::transport::{InboundFrame, Transports};
use chorus_signaling::ua::{UaOutput, UserAgent};
use tokio::sync::mpsc;

/// Forwards the cores' events to the control task until `stop` is set (run it on its own
/// thread). Wakes on the engine's eventfd, so events arrive without polling delay.
pub fn forward_engine_events(
    engine: &Engine,
    to: mpsc::Sender<(CoreId, Event)>,
    stop: &AtomicBool,
) {
    while !stop.load(Ordering::Relaxed) {
        engine.wait_events(Duration::from_millis(100));
        while let Some(ev) = engine.poll_event() {
            if to.blocking_send(ev).is_err() {
                return;
            }
        }
    }
}

/// Runs the SIP layer until `shutdown` resolves; returns what it resolved with.
pub async fn run<S>(
    engine: &Engine,
    transports: Transports,
    mut inbound: tokio::sync::mpsc::Receiver<chorus_signaling::transport::Inbound>,
    mut ua: UserAgent<chorus_signaling::transport::Peer>,
    mut events: mpsc::Receiver<(CoreId, Event)>,
    shutdown: impl std::future::Future<Output = S>,
) -> Result<S> {
    tokio::pin!(shutdown);
    loop {
        let deadline = ua.poll_timeout();
        let sleep = async {
            match deadline {
                Some(at) => tokio::time::sleep_until(tokio::time::Instant::from_std(at)).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            s = &mut shutdown => return Ok(s),
            frame = inbound.recv() => {
                let Some(frame) = frame else {
                    anyhow::bail!("the SIP transports stopped");
                };
                let now = Instant::now();
                match frame.frame {
                    InboundFrame::Message(msg) => ua.handle_message(now, frame.peer, msg),
                    InboundFrame::Invalid { raw, error } => ua.handle_invalid(frame.peer, &raw, &error),
                }
            }
            _ = sleep => ua.handle_timeout(Instant::now()),
            Some((core, event)) = events.recv() => {
                if let Event::LegRemoved { id, stats } = &event {
                    tracing::info!(leg = %id, rtp_in = stats.rtp_in, rtp_out = stats.rtp_out, lost = stats.lost, dtmf_digits = stats.dtmf_digits, "media leg removed");
                }
                ua.handle_engine_event(Instant::now(), core, event);
            }
        }
        while let Some(out) = ua.poll_output() {
            match out {
                UaOutput::Send { peer, message } => {
                    transports.send(&peer, message.to_bytes().into());
                }
                UaOutput::Engine { core, command } => {
                    if let Err(e) = engine.send(core, command) {
                        tracing::warn!(error = %e, "media core command refused");
                    }
                }
                UaOutput::Dtmf {
                    call_id,
                    digit,
                    duration_ms,
                    source,
                } => {
                    tracing::info!(%call_id, digit = %digit.as_char(), duration_ms, source = source.as_str(), "DTMF");
                }
            }
        }
    }
}
