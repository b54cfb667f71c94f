//! A conference as its core holds it: its members, talker selection, the tick's mixes and
//! one encoder per distinct (mix, codec), so each mix is encoded once per codec per tick
//! whatever the number of listeners.

use chorus_codecs::resample::Resampler;
use chorus_codecs::{AudioCodec, AudioEncoder};

use std::sync::Arc;

use super::level::Level;
use super::mix::{MixId, Mixes};
use super::player::Player;
use super::recording::RecordingSink;
use super::span::MixBus;
use super::talkers::{TalkerConfig, TalkerSelector};
use crate::runtime::{CoreId, LegId};

/// The rate conferences mix at unless the engine is told otherwise: wideband speech, what
/// G.722 carries and Opus callers get for voice. A deployment whose callers are all G.711
/// (phone trunks) can mix at 8 kHz (`EngineConfig::mix_rate`), which saves resampling
/// every talker up and every mix down: CPU and about 10 ms of delay.
pub const MIX_RATE: u32 = 16_000;

/// The rate of the clips the control side hands the engine (prompts, tones, a load
/// generator's talker signals), whatever the mix rate.
pub const CLIP_RATE: u32 = 16_000;

/// One encoded stream of one mix.
struct MixEncoder {
    mix: MixId,
    codec: AudioCodec,
    encoder: Box<dyn AudioEncoder>,
    /// Conference rate to codec rate; None when equal.
    resampler: Option<Resampler>,
    pcm: Vec<i16>,
    payload: Vec<u8>,
    /// The tick this payload was encoded in.
    tick: u64,
}

/// A conference on one core.
pub struct Conference {
    /// Members, by the core's leg ids.
    pub members: Vec<LegId>,
    selector: TalkerSelector,
    mixes: Mixes,
    encoders: Vec<MixEncoder>,
    /// Scratch for the levels of a tick.
    pub levels: Vec<(LegId, Level)>,
    tick: u64,
    /// Encodes done, for the "at most talkers + 1 per codec per tick" check.
    encodes: u64,
    /// A tone every member hears (join, leave).
    tone: Option<Player>,
    tone_frame: Vec<i16>,
    /// The talkers selected this tick (`select`), mixed by `mix_selected`.
    selected: Vec<LegId>,
    speech_level: Level,
    /// Where the full mix goes while the conference is recorded.
    recording: Option<Arc<RecordingSink>>,
    talkers_changed: bool,
    /// The rate it mixes at.
    mix_rate: u32,
    /// The other cores' partial mixes, when the conference spans cores, and this core's id.
    span: Option<(Arc<MixBus>, CoreId)>,
    remote: Vec<i32>,
}

impl Conference {
    /// An empty conference mixing at `mix_rate` (8 or 16 kHz) with ticks of `tick_ms`.
    pub fn new(talkers: TalkerConfig, tick_ms: u32, mix_rate: u32) -> Self {
        Conference {
            mix_rate,
            members: Vec::new(),
            selector: TalkerSelector::new(talkers),
            mixes: Mixes::new((mix_rate * tick_ms / 1000) as usize),
            encoders: Vec::new(),
            levels: Vec::new(),
            tick: 0,
            encodes: 0,
            tone: None,
            tone_frame: Vec::new(),
            recording: None,
            talkers_changed: false,
            span: None,
            remote: Vec::new(),
            selected: Vec::with_capacity(talkers.max_talkers),
            speech_level: talkers.speech_level,
        }
    }

    /// Plays `clip` (at the mix rate: `ClipCache::at_rate`) to every member, replacing a
    /// tone still playing.
    pub fn play_tone(&mut self, clip: Arc<[i16]>) {
        self.tone = Some(Player::new(clip, 0));
    }

    /// Starts a tick: selects the talkers from `self.levels` (filled by the caller for this
    /// tick). Only their frames are needed at the conference rate; then `mix_selected`.
    pub fn select(&mut self) -> &[LegId] {
        self.tick += 1;
        let talkers = self.selector.select(&self.levels);
        self.talkers_changed = self.selected.as_slice() != talkers;
        self.selected.clear();
        self.selected.extend_from_slice(talkers);
        &self.selected
    }

    /// The talkers `select` chose this tick.
    pub fn talkers_selected(&self) -> &[LegId] {
        &self.selected
    }

    /// Whether this tick's `select` changed the talkers (who is talking, for the operator).
    pub fn talkers_changed(&self) -> bool {
        self.talkers_changed
    }

    /// Mixes the talkers `select` chose this tick; `frame_of` gives a talker's frame at the
    /// conference rate.
    pub fn mix_selected<'a>(&mut self, frame_of: impl Fn(LegId) -> Option<&'a [i16]>) {
        let tone = match &mut self.tone {
            Some(player) => {
                self.tone_frame.clear();
                self.tone_frame.resize(self.mixes.frame(), 0);
                if !player.mix_into(&mut self.tone_frame) {
                    self.tone = None;
                }
                Some(&self.tone_frame[..])
            }
            None => None,
        };
        let talking = (self.selected.iter()).filter_map(|&id| frame_of(id).map(|f| (id, f)));
        match &self.span {
            Some((bus, core)) => {
                self.remote.clear();
                self.remote.resize(self.mixes.frame(), 0);
                bus.collect(*core, &mut self.remote);
                self.mixes.mix_spanning(talking, tone, Some(&self.remote));
                bus.publish(*core, self.mixes.local());
            }
            None => self.mixes.mix_with(talking, tone),
        }
        if let Some(sink) = &self.recording {
            sink.push(self.mixes.pcm(MixId::Full));
        }
    }

    /// Makes this the part on core `core` of a conference spanning cores (None: local only).
    pub fn span(&mut self, bus: Option<Arc<MixBus>>, core: CoreId) {
        self.span = bus.map(|b| (b, core));
    }

    /// Starts (Some) or stops (None) handing each tick's full mix to a recorder.
    pub fn record(&mut self, sink: Option<Arc<RecordingSink>>) {
        if let Some(old) = std::mem::replace(&mut self.recording, sink) {
            old.close();
        }
    }

    /// The level below which `member`'s frames need not be decoded this tick, for
    /// [`LegAudio::pull_skipping`](super::LegAudio::pull_skipping): None for a talker of the
    /// last tick (mixed even while quiet, during its hangover).
    pub fn skip_quieter_than(&self, member: LegId) -> Option<Level> {
        if self.selected.contains(&member) {
            None
        } else {
            Some(self.speech_level)
        }
    }

    /// The mix `listener` hears this tick.
    pub fn mix_for(&self, listener: LegId) -> MixId {
        self.mixes.for_listener(listener)
    }

    /// The samples of a mix this tick.
    pub fn pcm(&self, mix: MixId) -> &[i16] {
        self.mixes.pcm(mix)
    }

    /// The talkers of this tick.
    pub fn talkers(&self) -> &[LegId] {
        self.mixes.talkers()
    }

    /// `mix` encoded with `codec` for this tick, encoded on the first request only; None if
    /// this build cannot encode `codec`.
    pub fn encoded(&mut self, mix: MixId, codec: AudioCodec) -> Option<&[u8]> {
        let i = match self
            .encoders
            .iter()
            .position(|e| e.mix == mix && e.codec == codec)
        {
            Some(i) => i,
            None => {
                let encoder = codec.encoder()?;
                let rate = codec.sample_rate();
                let resampler = if rate == self.mix_rate {
                    None
                } else {
                    Some(Resampler::new(self.mix_rate, rate).ok()?)
                };
                self.encoders.push(MixEncoder {
                    mix,
                    codec,
                    encoder,
                    resampler,
                    pcm: Vec::new(),
                    payload: Vec::new(),
                    tick: 0,
                });
                self.encoders.len() - 1
            }
        };
        let pcm = self.mixes.pcm(mix);
        // INVARIANT: i was found or pushed above.
        let e = &mut self.encoders[i];
        if e.tick != self.tick {
            e.tick = self.tick;
            e.payload.clear();
            let input = match &mut e.resampler {
                Some(r) => {
                    e.pcm.clear();
                    r.process(pcm, &mut e.pcm);
                    &e.pcm[..]
                }
                None => pcm,
            };
            if e.encoder.encode(input, &mut e.payload).is_err() {
                e.payload.clear();
            }
            self.encodes += 1;
        }
        Some(&e.payload)
    }

    /// Encodes done since the start.
    pub fn encodes(&self) -> u64 {
        self.encodes
    }
}

impl std::fmt::Debug for Conference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Conference")
            .field("members", &self.members.len())
            .field("talkers", &self.talkers())
            .finish_non_exhaustive()
    }
}
