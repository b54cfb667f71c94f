//! A video conference on a running engine, over real sockets: one SRTP publisher and
//! receivers that take its H.264. Shared by the `video_forward` measurement and the engine's
//! GSO end-to-end test (`tests/video_gso.rs`).

#![allow(dead_code)] // Each user takes the parts it needs.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use chorus_codecs::AudioCodec;
use chorus_engine::mixer::AudioFormat;
use chorus_engine::rtp::{Pt, Ssrc};
use chorus_engine::runtime::{
    Command, ConferenceId, CoreId, Engine, Event, LegConfig, LegId, SrtpKey, VideoConfig,
    VideoLayout, VideoReceiveCodec,
};
use chorus_engine::sfu::{EncodingConfig, KeyFrameMethod, ProducerConfig, VideoCodec};
use chorus_engine::srtp::{SrtpContext, SrtpSuite};

/// The SRTP suite of every leg.
pub const SUITE: SrtpSuite = SrtpSuite::AeadAes128Gcm;

/// A deterministic key of `SUITE`.
pub fn key(seed: u8) -> SrtpKey {
    SrtpKey {
        suite: SUITE,
        key: (0..SUITE.master_key_len() as u8)
            .map(|i| i ^ seed)
            .collect(),
        salt: (0..SUITE.master_salt_len() as u8)
            .map(|i| i.wrapping_mul(3) ^ seed)
            .collect(),
    }
}

/// An SRTP context for `k`.
pub fn ctx(k: &SrtpKey) -> SrtpContext {
    SrtpContext::new(k.suite, &k.key, &k.salt).expect("valid key")
}

/// 127.0.0.1:`port`.
pub fn local(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// The publishing side: where it sends from, its inbound key, its H.264 stream.
pub struct Publisher {
    /// Its video address (video is not latched: packets must come from here).
    pub addr: SocketAddr,
    /// The key it protects with.
    pub key: SrtpKey,
    /// Its SSRC.
    pub ssrc: u32,
    /// Its H.264 payload type (the receivers take the same).
    pub pt: u8,
}

/// Puts leg 1 (publishing as `publisher`) and legs 2.. (one per receiver address, each with
/// its outbound key) into conference 1 on core 0. Conference members have audio; nobody
/// sends any and the engine sends none. Returns the engine's video address to publish to.
pub fn video_conference(
    engine: &Engine,
    publisher: Publisher,
    receivers: &[SocketAddr],
    receiver_keys: &[SrtpKey],
    audio_base_port: u16,
) -> SocketAddr {
    let core = CoreId(0);
    for id in 1..=receivers.len() as u32 + 1 {
        let is_publisher = id == 1;
        let mut c = LegConfig::new(LegId(id));
        c.remote_rtp = Some(local(audio_base_port + id as u16));
        c.latch = false;
        c.send = false;
        c.audio = Some(AudioFormat {
            codec: AudioCodec::Pcmu,
            pt: Pt(0),
            cn_pt: None,
            audio_level_ext_id: None,
        });
        engine
            .send(core, Command::CreateLeg(Box::new(c)))
            .expect("queue");
        // Receiver index (legs 2..).
        let r = (id as usize).saturating_sub(2);
        let video = VideoConfig {
            remote_rtp: if is_publisher {
                publisher.addr
            } else {
                receivers[r]
            },
            remote_rtcp: None,
            rtcp_mux: true,
            srtp_in: is_publisher.then(|| publisher.key.clone()),
            srtp_out: Some(if is_publisher {
                key(0xee)
            } else {
                receiver_keys[r].clone()
            }),
            pair: None,
            producer: is_publisher.then(|| ProducerConfig {
                codec: VideoCodec::H264,
                pt: Pt(publisher.pt),
                clock_rate: 90_000,
                encodings: vec![EncodingConfig {
                    ssrc: Some(Ssrc(publisher.ssrc)),
                    rid: None,
                    rtx: None,
                    height: 720,
                    max_bitrate_bps: 1_500_000,
                }],
                key_frame_method: KeyFrameMethod::Pli,
                nack: false,
                rid_ext_id: None,
                extensions: Default::default(),
            }),
            receive: if is_publisher {
                Vec::new()
            } else {
                vec![VideoReceiveCodec {
                    codec: VideoCodec::H264,
                    pt: Pt(publisher.pt),
                    rtx_pt: None,
                }]
            },
            layout: VideoLayout::All,
            max_height: 720,
            bandwidth_bps: None,
            extensions: Default::default(),
        };
        let cmd = Command::SetVideo {
            leg: LegId(id),
            video: Some(Box::new(video)),
        };
        engine.send(core, cmd).expect("queue");
        let join = Command::JoinConference {
            leg: LegId(id),
            conference: ConferenceId(1),
        };
        engine.send(core, join).expect("queue");
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        engine.wait_events(Duration::from_millis(50));
        while let Some((_, ev)) = engine.poll_event() {
            match ev {
                Event::VideoReady {
                    id: LegId(1), rtp, ..
                } => return rtp,
                Event::VideoRejected { id, reason } => panic!("video of {id} refused: {reason}"),
                Event::LegRejected { id, reason } => panic!("{id} refused: {reason}"),
                _ => {}
            }
        }
    }
    panic!("the publisher's video was not ready within 5 s")
}
