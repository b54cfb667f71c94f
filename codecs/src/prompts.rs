//! The IVR's spoken prompts: what callers hear while they dial in and when a conference control
//! is used.
//!
//! The prompts are recorded speech in `prompts/<id>.wav` at the repository root (16 kHz, mono,
//! 16-bit PCM), made by `scripts/prompts` with espeak-ng and sox. The binary carries them:
//! [`PromptSet::embedded`] decodes the copies compiled in with `include_bytes!`, so a server
//! started from any directory has its prompts. [`PromptSet::load`] reads the same file names
//! from a directory instead, for operators who record their own voice. Either way every prompt
//! is decoded once, at start, into an `Arc<[i16]>` that legs share while they play it.
//!
//! Counts are spoken by composing number words: [`number`] turns 123 into "one hundred twenty
//! three", and [`participant_count`] wraps it in "There are ... participants in the
//! conference.".
//!
//! ```
//! use chorus_codecs::prompts::{Prompt, PromptSet};
//! let prompts = PromptSet::embedded();
//! let welcome = prompts.get(Prompt::Welcome);
//! assert!(welcome.len() > 16_000 / 2);
//! ```

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::wav::{WavError, read_wav};

/// The rate every prompt is stored at, in Hz.
pub const SAMPLE_RATE: u32 = 16_000;

/// Why a prompt set cannot be loaded.
#[derive(Debug, thiserror::Error)]
pub enum PromptError {
    /// A prompt's file is missing or unreadable.
    #[error("prompt file {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// What the file system said.
        source: std::io::Error,
    },
    /// A prompt's file is not a WAV file of 16-bit PCM.
    #[error("prompt file {}: {source}", path.display())]
    Wav {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        source: WavError,
    },
    /// A prompt is not at 16 kHz.
    #[error(
        "prompt file {}: {rate} Hz, prompts must be 16000 Hz (sox IN -r 16000 -c 1 -b 16 OUT)",
        path.display()
    )]
    SampleRate {
        /// The file.
        path: PathBuf,
        /// Its rate.
        rate: u32,
    },
    /// A prompt is not mono.
    #[error(
        "prompt file {}: {channels} channels, prompts must be mono (sox IN -r 16000 -c 1 -b 16 OUT)",
        path.display()
    )]
    Channels {
        /// The file.
        path: PathBuf,
        /// Its channel count.
        channels: u16,
    },
    /// A prompt holds no samples.
    #[error("prompt file {}: no samples", path.display())]
    Empty {
        /// The file.
        path: PathBuf,
    },
}

/// Declares the prompt table once: the enum, each prompt's id (its file name without `.wav`),
/// its text (as spoken by `scripts/prompts`, which holds the same list) and its embedded file.
macro_rules! prompt_table {
    ($($variant:ident => $id:literal, $text:literal;)*) => {
        /// One spoken prompt. The documentation of each variant is its text.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Prompt {
            $(
                #[doc = concat!("\"", $text, "\" (`prompts/", $id, ".wav`)")]
                $variant,
            )*
        }

        impl Prompt {
            /// Every prompt, in declaration order (the order of the discriminants).
            pub const ALL: &'static [Prompt] = &[$(Prompt::$variant),*];

            /// The prompt's id: its file name without `.wav`.
            pub fn id(self) -> &'static str {
                match self {
                    $(Prompt::$variant => $id,)*
                }
            }

            /// The words the prompt speaks.
            pub fn text(self) -> &'static str {
                match self {
                    $(Prompt::$variant => $text,)*
                }
            }

            /// The committed WAV file, compiled into the binary.
            fn embedded_wav(self) -> &'static [u8] {
                match self {
                    $(Prompt::$variant => include_bytes!(concat!(
                        env!("CARGO_MANIFEST_DIR"), "/../prompts/", $id, ".wav"
                    )),)*
                }
            }
        }
    };
}

prompt_table! {
    Welcome => "welcome", "Welcome to the conference service.";
    EnterConferenceId => "enter_conference_id",
        "Please enter your conference ID, followed by the pound key.";
    EnterPin => "enter_pin", "Please enter the conference PIN, followed by the pound key.";
    InvalidId => "invalid_id", "That conference ID is not valid.";
    InvalidPin => "invalid_pin", "That PIN is not valid.";
    Goodbye => "goodbye", "Goodbye.";
    FirstParticipant => "first_participant", "You are the first participant.";
    OnlyParticipant => "only_participant", "You are the only participant.";
    ParticipantCountPre => "participant_count_pre", "There are";
    ParticipantCountPost => "participant_count_post", "participants in the conference.";
    Muted => "muted", "You are now muted.";
    Unmuted => "unmuted", "You are no longer muted.";
    Locked => "locked", "The conference is now locked.";
    Unlocked => "unlocked", "The conference is now unlocked.";
    ConferenceLocked => "conference_locked", "This conference is locked.";
    ConferenceFull => "conference_full", "This conference is full.";
    WaitingForModerator => "waiting_for_moderator", "Please wait for the moderator to join.";
    RecordingStarted => "recording_started", "This conference is being recorded.";
    RecordingStopped => "recording_stopped", "Recording has stopped.";
    Ended => "ended", "The conference has ended.";
    TooManyAttempts => "too_many_attempts", "Too many attempts. Please try again later.";
    Zero => "n0", "zero";
    One => "n1", "one";
    Two => "n2", "two";
    Three => "n3", "three";
    Four => "n4", "four";
    Five => "n5", "five";
    Six => "n6", "six";
    Seven => "n7", "seven";
    Eight => "n8", "eight";
    Nine => "n9", "nine";
    Ten => "n10", "ten";
    Eleven => "n11", "eleven";
    Twelve => "n12", "twelve";
    Thirteen => "n13", "thirteen";
    Fourteen => "n14", "fourteen";
    Fifteen => "n15", "fifteen";
    Sixteen => "n16", "sixteen";
    Seventeen => "n17", "seventeen";
    Eighteen => "n18", "eighteen";
    Nineteen => "n19", "nineteen";
    Twenty => "n20", "twenty";
    Thirty => "n30", "thirty";
    Forty => "n40", "forty";
    Fifty => "n50", "fifty";
    Sixty => "n60", "sixty";
    Seventy => "n70", "seventy";
    Eighty => "n80", "eighty";
    Ninety => "n90", "ninety";
    Hundred => "hundred", "hundred";
    Thousand => "thousand", "thousand";
    Million => "million", "million";
    Billion => "billion", "billion";
}

impl Prompt {
    /// The prompt whose id is `id`, if any.
    pub fn from_id(id: &str) -> Option<Prompt> {
        Prompt::ALL.iter().copied().find(|p| p.id() == id)
    }

    /// Position in [`Prompt::ALL`] and in a [`PromptSet`].
    fn index(self) -> usize {
        self as usize
    }
}

/// The words for 0 to 20, indexed by value.
const SMALL: [Prompt; 21] = [
    Prompt::Zero,
    Prompt::One,
    Prompt::Two,
    Prompt::Three,
    Prompt::Four,
    Prompt::Five,
    Prompt::Six,
    Prompt::Seven,
    Prompt::Eight,
    Prompt::Nine,
    Prompt::Ten,
    Prompt::Eleven,
    Prompt::Twelve,
    Prompt::Thirteen,
    Prompt::Fourteen,
    Prompt::Fifteen,
    Prompt::Sixteen,
    Prompt::Seventeen,
    Prompt::Eighteen,
    Prompt::Nineteen,
    Prompt::Twenty,
];

/// The words for 20, 30, ... 90, indexed by tens minus 2.
const TENS: [Prompt; 8] = [
    Prompt::Twenty,
    Prompt::Thirty,
    Prompt::Forty,
    Prompt::Fifty,
    Prompt::Sixty,
    Prompt::Seventy,
    Prompt::Eighty,
    Prompt::Ninety,
];

/// Appends the words for `n` in 1..=999.
fn push_below_thousand(n: u32, out: &mut Vec<Prompt>) {
    let hundreds = n / 100;
    let rest = n % 100;
    if hundreds > 0 {
        // INVARIANT: n <= 999, so hundreds <= 9 < SMALL.len().
        out.push(SMALL[hundreds as usize]);
        out.push(Prompt::Hundred);
    }
    if rest == 0 {
        return;
    }
    if rest <= 20 {
        // INVARIANT: rest <= 20 < SMALL.len().
        out.push(SMALL[rest as usize]);
    } else {
        // INVARIANT: 21 <= rest <= 99, so rest / 10 - 2 is in 0..=7 < TENS.len(), and
        // rest % 10 <= 9 < SMALL.len().
        out.push(TENS[(rest / 10 - 2) as usize]);
        if !rest.is_multiple_of(10) {
            out.push(SMALL[(rest % 10) as usize]);
        }
    }
}

/// The words that speak `n`, in US English without "and": 0 is "zero", 21 "twenty one", 115
/// "one hundred fifteen", 2,000,005 "two million five".
pub fn number(n: u32) -> Vec<Prompt> {
    let mut out = Vec::new();
    if n == 0 {
        out.push(Prompt::Zero);
        return out;
    }
    let groups = [
        (n / 1_000_000_000, Some(Prompt::Billion)),
        (n / 1_000_000 % 1_000, Some(Prompt::Million)),
        (n / 1_000 % 1_000, Some(Prompt::Thousand)),
        (n % 1_000, None),
    ];
    for (group, scale) in groups {
        if group > 0 {
            push_below_thousand(group, &mut out);
            out.extend(scale);
        }
    }
    out
}

/// What a caller hears when told how many are in the conference: "You are the only
/// participant." for one, otherwise "There are N participants in the conference.".
pub fn participant_count(n: u32) -> Vec<Prompt> {
    if n == 1 {
        return vec![Prompt::OnlyParticipant];
    }
    let mut out = vec![Prompt::ParticipantCountPre];
    out.extend(number(n));
    out.push(Prompt::ParticipantCountPost);
    out
}

/// Every prompt decoded, at [`SAMPLE_RATE`], mono.
#[derive(Debug, Clone)]
pub struct PromptSet {
    /// Indexed by [`Prompt::index`]; one entry per prompt in [`Prompt::ALL`].
    samples: Vec<Arc<[i16]>>,
}

impl PromptSet {
    /// Decodes the prompts compiled into the binary (the files committed in `prompts/`).
    ///
    /// Decodes every file (about a minute of audio in all), so call it once at start and
    /// share the set.
    pub fn embedded() -> PromptSet {
        let samples = Prompt::ALL
            .iter()
            .map(|p| {
                let path = PathBuf::from(format!("(embedded) prompts/{}.wav", p.id()));
                // INVARIANT: the committed files are 16 kHz mono PCM; the test
                // `embedded_prompts_match_the_committed_files` decodes every one of them.
                decode(&path, p.embedded_wav()).expect("embedded prompt is a valid 16 kHz WAV")
            })
            .collect();
        PromptSet { samples }
    }

    /// Reads `<dir>/<id>.wav` for every prompt, to replace the embedded voice. Every file must
    /// be there and be 16-bit PCM, 16 kHz, mono; the error names the first one that is not.
    /// Other files in `dir` are ignored.
    pub fn load(dir: impl AsRef<Path>) -> Result<PromptSet, PromptError> {
        let dir = dir.as_ref();
        let samples = Prompt::ALL
            .iter()
            .map(|p| {
                let path = dir.join(format!("{}.wav", p.id()));
                let bytes = std::fs::read(&path).map_err(|source| PromptError::Read {
                    path: path.clone(),
                    source,
                })?;
                decode(&path, &bytes)
            })
            .collect::<Result<_, _>>()?;
        Ok(PromptSet { samples })
    }

    /// The samples of `prompt` at [`SAMPLE_RATE`], shared (cloning the `Arc` copies nothing).
    pub fn get(&self, prompt: Prompt) -> Arc<[i16]> {
        // INVARIANT: both constructors build one entry per Prompt::ALL, in discriminant order.
        Arc::clone(&self.samples[prompt.index()])
    }
}

/// Decodes one prompt file and checks that it is 16 kHz mono with samples.
fn decode(path: &Path, bytes: &[u8]) -> Result<Arc<[i16]>, PromptError> {
    let wav = read_wav(bytes).map_err(|source| PromptError::Wav {
        path: path.to_path_buf(),
        source,
    })?;
    if wav.sample_rate != SAMPLE_RATE {
        return Err(PromptError::SampleRate {
            path: path.to_path_buf(),
            rate: wav.sample_rate,
        });
    }
    if wav.channels != 1 {
        return Err(PromptError::Channels {
            path: path.to_path_buf(),
            channels: wav.channels,
        });
    }
    if wav.samples.is_empty() {
        return Err(PromptError::Empty {
            path: path.to_path_buf(),
        });
    }
    Ok(wav.samples.into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wav::WavWriter;
    use std::collections::BTreeSet;

    /// The committed prompts, `prompts/` at the repository root.
    fn prompts_dir() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../prompts")
    }

    /// A fresh scratch directory for one test.
    fn scratch(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("chorus-prompts-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    /// A copy of the committed prompts in a scratch directory.
    fn copy_of_prompts(name: &str) -> PathBuf {
        let dir = scratch(name);
        for p in Prompt::ALL {
            let file = format!("{}.wav", p.id());
            std::fs::copy(prompts_dir().join(&file), dir.join(&file)).unwrap();
        }
        dir
    }

    fn write_wav(path: &Path, rate: u32, channels: u16, samples: &[i16]) {
        let file = std::fs::File::create(path).unwrap();
        let mut writer = WavWriter::new(std::io::BufWriter::new(file), rate, channels).unwrap();
        writer.write_samples(samples).unwrap();
        writer.finish().unwrap();
    }

    #[test]
    fn every_committed_prompt_is_16k_mono_speech_of_sensible_length() {
        for p in Prompt::ALL {
            let path = prompts_dir().join(format!("{}.wav", p.id()));
            let wav = read_wav(&std::fs::read(&path).unwrap()).unwrap();
            let name = path.display();
            assert_eq!((wav.sample_rate, wav.channels), (16_000, 1), "{name}");
            let ms = wav.duration_ms();
            assert!((300..=6_000).contains(&ms), "{name}: {ms} ms");
            let rms = (wav
                .samples
                .iter()
                .map(|&s| f64::from(s).powi(2))
                .sum::<f64>()
                / wav.samples.len() as f64)
                .sqrt();
            // Speech normalized to -3 dBFS peak has an RMS of a few thousand; 1,000 is -30 dBFS.
            assert!(rms > 1_000.0, "{name}: RMS {rms:.0}");
            let peak = wav
                .samples
                .iter()
                .map(|s| s.unsigned_abs())
                .max()
                .unwrap_or(0);
            assert!(
                (16_000..=25_000).contains(&peak),
                "{name}: peak {peak} (-3 dBFS is 23,197)"
            );
        }
    }

    #[test]
    fn prompt_files_match_the_table() {
        let on_disk: BTreeSet<String> = std::fs::read_dir(prompts_dir())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        let in_table: BTreeSet<String> = Prompt::ALL
            .iter()
            .map(|p| format!("{}.wav", p.id()))
            .collect();
        let missing: Vec<_> = in_table.difference(&on_disk).collect();
        let extra: Vec<_> = on_disk.difference(&in_table).collect();
        assert!(
            missing.is_empty(),
            "in the table, not in prompts/: {missing:?}"
        );
        assert!(extra.is_empty(), "in prompts/, not in the table: {extra:?}");
    }

    #[test]
    fn the_script_speaks_the_table() {
        let script = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/prompts"),
        )
        .unwrap();
        let list = script
            .split_once("PROMPTS='\n")
            .and_then(|(_, rest)| rest.split_once("\n'"))
            .map(|(list, _)| list)
            .expect("scripts/prompts holds PROMPTS='...'");
        let in_script: Vec<(&str, &str)> = list
            .lines()
            .map(|line| line.split_once('|').expect("id|text"))
            .collect();
        let in_table: Vec<(&str, &str)> = Prompt::ALL.iter().map(|p| (p.id(), p.text())).collect();
        assert_eq!(in_script, in_table);
    }

    #[test]
    fn embedded_prompts_match_the_committed_files() {
        let embedded = PromptSet::embedded();
        let loaded = PromptSet::load(prompts_dir()).unwrap();
        for &p in Prompt::ALL {
            assert_eq!(embedded.get(p), loaded.get(p), "{p:?}");
            assert_eq!(Prompt::from_id(p.id()), Some(p));
        }
        assert_eq!(Prompt::from_id("nope"), None);
        // Shared, not copied.
        let a = embedded.get(Prompt::Welcome);
        assert!(Arc::ptr_eq(&a, &embedded.get(Prompt::Welcome)));
    }

    #[test]
    fn load_names_the_missing_file() {
        let dir = copy_of_prompts("missing");
        std::fs::remove_file(dir.join("enter_pin.wav")).unwrap();
        let err = PromptSet::load(&dir).unwrap_err();
        assert!(matches!(err, PromptError::Read { .. }));
        assert!(err.to_string().contains("enter_pin.wav"), "{err}");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn load_refuses_other_rates_stereo_empty_and_garbage() {
        let dir = copy_of_prompts("bad");
        let target = dir.join("goodbye.wav");
        write_wav(&target, 8_000, 1, &[1; 800]);
        let err = PromptSet::load(&dir).unwrap_err();
        assert!(
            matches!(err, PromptError::SampleRate { rate: 8_000, .. }),
            "{err}"
        );
        assert!(err.to_string().contains("goodbye.wav: 8000 Hz"), "{err}");
        write_wav(&target, 16_000, 2, &[1; 800]);
        let err = PromptSet::load(&dir).unwrap_err();
        assert!(
            matches!(err, PromptError::Channels { channels: 2, .. }),
            "{err}"
        );
        write_wav(&target, 16_000, 1, &[]);
        assert!(matches!(
            PromptSet::load(&dir),
            Err(PromptError::Empty { .. })
        ));
        std::fs::write(&target, b"not a wav").unwrap();
        let err = PromptSet::load(&dir).unwrap_err();
        assert!(matches!(err, PromptError::Wav { .. }), "{err}");
        assert!(
            err.to_string()
                .contains("goodbye.wav: not a RIFF/WAVE file"),
            "{err}"
        );
        // An operator's own voice: any 16 kHz mono file replaces the embedded one.
        write_wav(&target, 16_000, 1, &[7; 1_600]);
        let own = PromptSet::load(&dir).unwrap();
        assert_eq!(&*own.get(Prompt::Goodbye), &[7; 1_600][..]);
        std::fs::remove_dir_all(dir).unwrap();
    }

    /// Reads a list of number words back into a value, the way a listener does.
    fn value_of(words: &[Prompt]) -> u64 {
        let (mut total, mut current) = (0u64, 0u64);
        for &w in words {
            match w {
                Prompt::Hundred => current *= 100,
                Prompt::Thousand => (total, current) = (total + current * 1_000, 0),
                Prompt::Million => (total, current) = (total + current * 1_000_000, 0),
                Prompt::Billion => (total, current) = (total + current * 1_000_000_000, 0),
                w => {
                    let small = SMALL.iter().position(|&s| s == w);
                    let tens = TENS.iter().position(|&t| t == w).map(|i| (i + 2) * 10);
                    current += small.or(tens).expect("a number word") as u64;
                }
            }
        }
        total + current
    }

    fn spoken(n: u32) -> String {
        number(n)
            .iter()
            .map(|p| p.text())
            .collect::<Vec<_>>()
            .join(" ")
    }

    #[test]
    fn numbers_are_spoken_as_words() {
        assert_eq!(spoken(0), "zero");
        assert_eq!(spoken(7), "seven");
        assert_eq!(spoken(20), "twenty");
        assert_eq!(spoken(21), "twenty one");
        assert_eq!(spoken(40), "forty");
        assert_eq!(spoken(100), "one hundred");
        assert_eq!(spoken(115), "one hundred fifteen");
        assert_eq!(spoken(1_000), "one thousand");
        assert_eq!(spoken(10_000), "ten thousand");
        assert_eq!(spoken(2_000_005), "two million five");
        assert_eq!(
            spoken(u32::MAX),
            "four billion two hundred ninety four million nine hundred sixty seven thousand \
             two hundred ninety five"
        );
    }

    #[test]
    fn every_number_reads_back_to_itself() {
        let samples = (0..=100_000u32)
            .chain((0..32).map(|b| 1u32 << b))
            .chain((0..32).map(|b| (1u32 << b) - 1))
            .chain([
                999_999,
                1_000_000,
                1_000_001,
                999_999_999,
                1_000_000_000,
                u32::MAX,
            ]);
        for n in samples {
            let words = number(n);
            assert_eq!(value_of(&words), u64::from(n), "{n}: {}", spoken(n));
            assert_eq!(words.contains(&Prompt::Zero), n == 0, "{n}");
        }
    }

    #[test]
    fn participant_counts_are_sentences() {
        assert_eq!(participant_count(1), [Prompt::OnlyParticipant]);
        assert_eq!(
            participant_count(23),
            [
                Prompt::ParticipantCountPre,
                Prompt::Twenty,
                Prompt::Three,
                Prompt::ParticipantCountPost
            ]
        );
        assert_eq!(participant_count(0)[1], Prompt::Zero);
    }
}
