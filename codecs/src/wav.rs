//! WAV (RIFF/WAVE) files of 16-bit linear PCM, mono or stereo, at any sample rate: the IVR
//! prompts are read with [`read_wav`], conference recordings are written with [`WavWriter`].
//!
//! The reader walks the RIFF chunks: it takes the first `fmt ` and `data` chunks in either
//! order, skips every other chunk (`LIST`, `fact`, `cue `, ...), and honours the pad byte after
//! a chunk of odd size. It accepts `WAVE_FORMAT_PCM` and `WAVE_FORMAT_EXTENSIBLE` with the PCM
//! sub-format, 16 bits per sample, one or two channels; anything else is refused with an error
//! that says what the file holds. Every length is checked against the input, so truncated or
//! garbage input gives an error, never a panic.
//!
//! The writer writes a 44-byte header with zero sizes, appends samples, and patches the RIFF
//! and `data` sizes when it is finished ([`WavWriter::finish`]) or, failing that, dropped.
//!
//! ```
//! use chorus_codecs::wav::{read_wav, WavWriter};
//! let mut file = std::io::Cursor::new(Vec::new());
//! let mut writer = WavWriter::new(&mut file, 16_000, 1).unwrap();
//! writer.write_samples(&[0, 1000, -1000]).unwrap();
//! writer.finish().unwrap();
//! let wav = read_wav(file.get_ref()).unwrap();
//! assert_eq!((wav.sample_rate, wav.channels), (16_000, 1));
//! assert_eq!(wav.samples, [0, 1000, -1000]);
//! ```

use std::io::{self, Seek, SeekFrom, Write};

/// `WAVE_FORMAT_PCM`: integer PCM.
const FORMAT_PCM: u16 = 0x0001;
/// `WAVE_FORMAT_EXTENSIBLE`: the real format is the GUID in the extension.
const FORMAT_EXTENSIBLE: u16 = 0xFFFE;
/// Bytes 2..16 of `KSDATAFORMAT_SUBTYPE_*` GUIDs as stored in a file; bytes 0..2 hold the
/// format tag (`0x0001` for PCM).
const SUBTYPE_GUID_TAIL: [u8; 14] = [
    0x00, 0x00, 0x00, 0x00, 0x10, 0x00, 0x80, 0x00, 0x00, 0xAA, 0x00, 0x38, 0x9B, 0x71,
];
/// Size of the plain PCM `fmt ` chunk body.
const FMT_PCM_LEN: usize = 16;
/// Size of the `WAVE_FORMAT_EXTENSIBLE` `fmt ` chunk body: 16 + cbSize (2) + 22.
const FMT_EXTENSIBLE_LEN: usize = 40;
/// Size of the header [`WavWriter`] writes: RIFF (12) + fmt chunk (8 + 16) + data header (8).
const HEADER_LEN: u32 = 44;
/// Largest `data` size a RIFF size (u32) can describe with this header, in whole samples.
const MAX_DATA_BYTES: u32 = (u32::MAX - (HEADER_LEN - 8)) & !1;

/// A decoded WAV file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wav {
    /// Samples per second per channel, in Hz.
    pub sample_rate: u32,
    /// 1 (mono) or 2 (stereo).
    pub channels: u16,
    /// The samples, interleaved when stereo (left first).
    pub samples: Vec<i16>,
}

impl Wav {
    /// Number of frames (samples per channel).
    pub fn frames(&self) -> usize {
        self.samples.len() / usize::from(self.channels.max(1))
    }

    /// Length in milliseconds.
    pub fn duration_ms(&self) -> u64 {
        if self.sample_rate == 0 {
            return 0;
        }
        self.frames() as u64 * 1000 / u64::from(self.sample_rate)
    }
}

/// Why a WAV file cannot be read or written.
#[derive(Debug, thiserror::Error)]
pub enum WavError {
    /// The input does not start with a `RIFF` header of type `WAVE`.
    #[error("not a RIFF/WAVE file")]
    NotWave,
    /// A chunk header or body runs past the end of the input.
    #[error("truncated: the {0} chunk runs past the end of the file")]
    Truncated(String),
    /// There is no `fmt ` chunk.
    #[error("no fmt chunk")]
    MissingFmt,
    /// There is no `data` chunk.
    #[error("no data chunk")]
    MissingData,
    /// The `fmt ` chunk is shorter than its format needs.
    #[error("fmt chunk of {0} bytes is too short for its format")]
    ShortFmt(usize),
    /// The format tag is not PCM or extensible PCM (e.g. 0x0003 float, 0x0006 A-law).
    #[error("format 0x{0:04x} is not supported (16-bit PCM only)")]
    Format(u16),
    /// A `WAVE_FORMAT_EXTENSIBLE` file whose sub-format is not PCM.
    #[error("extensible format with a sub-format other than PCM")]
    SubFormat,
    /// The samples are not 16 bits wide.
    #[error("{0} bits per sample is not supported (16 only)")]
    BitsPerSample(u16),
    /// Neither mono nor stereo.
    #[error("{0} channels is not supported (1 or 2 only)")]
    Channels(u16),
    /// A sample rate of zero.
    #[error("sample rate of 0 Hz")]
    SampleRate,
    /// The block alignment does not match 16-bit samples on this many channels.
    #[error("block align {0} does not match 16-bit samples")]
    BlockAlign(u16),
    /// The `data` chunk does not hold a whole number of frames.
    #[error("data chunk of {0} bytes is not a whole number of frames")]
    PartialFrame(usize),
    /// Samples written do not fill whole frames, or would make the file larger than RIFF's 4 GiB.
    #[error("cannot write: {0}")]
    Write(&'static str),
    /// The underlying writer failed.
    #[error("i/o: {0}")]
    Io(#[from] io::Error),
}

/// Reads a chunk's little-endian u16 at `at`; `None` past the end.
fn u16_at(bytes: &[u8], at: usize) -> Option<u16> {
    let b = bytes.get(at..at.checked_add(2)?)?;
    Some(u16::from_le_bytes([b[0], b[1]]))
}

/// Reads a little-endian u32 at `at`; `None` past the end.
fn u32_at(bytes: &[u8], at: usize) -> Option<u32> {
    let b = bytes.get(at..at.checked_add(4)?)?;
    Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}

/// The parts of a `fmt ` chunk the reader needs.
struct Format {
    sample_rate: u32,
    channels: u16,
}

/// Checks a `fmt ` chunk body and returns its rate and channels.
fn parse_fmt(body: &[u8]) -> Result<Format, WavError> {
    let short = || WavError::ShortFmt(body.len());
    let tag = u16_at(body, 0).ok_or_else(short)?;
    if tag != FORMAT_PCM && tag != FORMAT_EXTENSIBLE {
        return Err(WavError::Format(tag));
    }
    if body.len() < FMT_PCM_LEN {
        return Err(short());
    }
    let channels = u16_at(body, 2).ok_or_else(short)?;
    let sample_rate = u32_at(body, 4).ok_or_else(short)?;
    let block_align = u16_at(body, 12).ok_or_else(short)?;
    let bits = u16_at(body, 14).ok_or_else(short)?;
    if tag == FORMAT_EXTENSIBLE {
        if body.len() < FMT_EXTENSIBLE_LEN {
            return Err(short());
        }
        // INVARIANT: body.len() >= 40 was checked just above.
        let guid = &body[24..40];
        if guid[..2] != FORMAT_PCM.to_le_bytes() || guid[2..] != SUBTYPE_GUID_TAIL {
            return Err(WavError::SubFormat);
        }
    }
    if bits != 16 {
        return Err(WavError::BitsPerSample(bits));
    }
    if channels != 1 && channels != 2 {
        return Err(WavError::Channels(channels));
    }
    if sample_rate == 0 {
        return Err(WavError::SampleRate);
    }
    if block_align != channels * 2 {
        return Err(WavError::BlockAlign(block_align));
    }
    Ok(Format {
        sample_rate,
        channels,
    })
}

/// Reads a whole WAV file of 16-bit PCM from memory.
///
/// The RIFF size in the header is not trusted (streaming writers leave it zero or wrong); the
/// chunks are walked to the end of `bytes`, stopping once both `fmt ` and `data` are found.
pub fn read_wav(bytes: &[u8]) -> Result<Wav, WavError> {
    if bytes.get(0..4) != Some(b"RIFF") || bytes.get(8..12) != Some(b"WAVE") {
        return Err(WavError::NotWave);
    }
    let mut at = 12usize;
    let mut format = None;
    let mut data = None;
    while at < bytes.len() && (format.is_none() || data.is_none()) {
        let id = bytes.get(at..at + 4);
        let size = u32_at(bytes, at + 4);
        let (Some(id), Some(size)) = (id, size) else {
            // A few stray bytes after the last chunk (some writers pad the file).
            break;
        };
        let name = String::from_utf8_lossy(id).into_owned();
        let body_start = at + 8;
        let body = usize::try_from(size)
            .ok()
            .and_then(|size| body_start.checked_add(size))
            .and_then(|end| bytes.get(body_start..end))
            .ok_or(WavError::Truncated(name))?;
        match id {
            b"fmt " if format.is_none() => format = Some(parse_fmt(body)?),
            b"data" if data.is_none() => data = Some(body),
            _ => {}
        }
        // Chunks start on even offsets: an odd-sized body is followed by one pad byte, which
        // may be missing at the very end of the file.
        at = body_start + body.len() + (body.len() & 1);
    }
    let format = format.ok_or(WavError::MissingFmt)?;
    let data = data.ok_or(WavError::MissingData)?;
    let frame_bytes = usize::from(format.channels) * 2;
    if !data.len().is_multiple_of(frame_bytes) {
        return Err(WavError::PartialFrame(data.len()));
    }
    let samples = data
        .chunks_exact(2)
        .map(|b| i16::from_le_bytes([b[0], b[1]]))
        .collect();
    Ok(Wav {
        sample_rate: format.sample_rate,
        channels: format.channels,
        samples,
    })
}

/// Writes a WAV file of 16-bit PCM as samples arrive: the header first, then samples, then the
/// sizes patched in at [`finish`](Self::finish) (or on drop, ignoring errors, so a recording
/// cut short by an error is still a readable file).
///
/// Wrap a file in a `BufWriter`; the writer issues one small write per call.
#[derive(Debug)]
pub struct WavWriter<W: Write + Seek> {
    /// `None` once finished.
    inner: Option<W>,
    /// Where the header starts in `inner`.
    start: u64,
    /// Channels, to check that writes are whole frames.
    channels: u16,
    /// Bytes of samples written so far.
    data_bytes: u32,
}

impl<W: Write + Seek> WavWriter<W> {
    /// Writes the header for `sample_rate` Hz and `channels` (1 or 2) at the current position
    /// of `inner`.
    pub fn new(mut inner: W, sample_rate: u32, channels: u16) -> Result<Self, WavError> {
        if channels != 1 && channels != 2 {
            return Err(WavError::Channels(channels));
        }
        if sample_rate == 0 {
            return Err(WavError::SampleRate);
        }
        let start = inner.stream_position()?;
        let block_align = channels * 2;
        let byte_rate = sample_rate
            .checked_mul(u32::from(block_align))
            .ok_or(WavError::Write("sample rate too high for a RIFF byte rate"))?;
        let mut header = [0u8; HEADER_LEN as usize];
        header[0..4].copy_from_slice(b"RIFF");
        header[4..8].copy_from_slice(&(HEADER_LEN - 8).to_le_bytes());
        header[8..12].copy_from_slice(b"WAVE");
        header[12..16].copy_from_slice(b"fmt ");
        header[16..20].copy_from_slice(&(FMT_PCM_LEN as u32).to_le_bytes());
        header[20..22].copy_from_slice(&FORMAT_PCM.to_le_bytes());
        header[22..24].copy_from_slice(&channels.to_le_bytes());
        header[24..28].copy_from_slice(&sample_rate.to_le_bytes());
        header[28..32].copy_from_slice(&byte_rate.to_le_bytes());
        header[32..34].copy_from_slice(&block_align.to_le_bytes());
        header[34..36].copy_from_slice(&16u16.to_le_bytes());
        header[36..40].copy_from_slice(b"data");
        inner.write_all(&header)?;
        Ok(Self {
            inner: Some(inner),
            start,
            channels,
            data_bytes: 0,
        })
    }

    /// Appends samples (interleaved when stereo; a whole number of frames per call).
    pub fn write_samples(&mut self, samples: &[i16]) -> Result<(), WavError> {
        if !samples.len().is_multiple_of(usize::from(self.channels)) {
            return Err(WavError::Write("samples do not fill whole frames"));
        }
        let added = u32::try_from(samples.len())
            .ok()
            .and_then(|n| n.checked_mul(2))
            .and_then(|n| n.checked_add(self.data_bytes))
            .filter(|&n| n <= MAX_DATA_BYTES)
            .ok_or(WavError::Write("recording longer than a WAV file can hold"))?;
        let inner = self
            .inner
            .as_mut()
            .ok_or(WavError::Write("writer already finished"))?;
        let mut buf = [0u8; 1024];
        for chunk in samples.chunks(buf.len() / 2) {
            for (out, s) in buf.chunks_exact_mut(2).zip(chunk) {
                out.copy_from_slice(&s.to_le_bytes());
            }
            // INVARIANT: chunk.len() <= buf.len() / 2 by `chunks`.
            inner.write_all(&buf[..chunk.len() * 2])?;
        }
        self.data_bytes = added;
        Ok(())
    }

    /// Frames (samples per channel) written so far.
    pub fn frames(&self) -> u64 {
        u64::from(self.data_bytes) / (2 * u64::from(self.channels))
    }

    /// Patches the sizes into the header, flushes, and returns the inner writer positioned at
    /// the end of the file.
    pub fn finish(mut self) -> Result<W, WavError> {
        self.patch_sizes()?;
        self.inner
            .take()
            .ok_or(WavError::Write("writer already finished"))
    }

    /// Writes the RIFF and data sizes into the header and seeks back to the end.
    fn patch_sizes(&mut self) -> Result<(), WavError> {
        let Some(inner) = self.inner.as_mut() else {
            return Ok(());
        };
        let riff_size = HEADER_LEN - 8 + self.data_bytes;
        inner.seek(SeekFrom::Start(self.start + 4))?;
        inner.write_all(&riff_size.to_le_bytes())?;
        inner.seek(SeekFrom::Start(self.start + u64::from(HEADER_LEN) - 4))?;
        inner.write_all(&self.data_bytes.to_le_bytes())?;
        inner.seek(SeekFrom::Start(
            self.start + u64::from(HEADER_LEN) + u64::from(self.data_bytes),
        ))?;
        inner.flush()?;
        Ok(())
    }
}

impl<W: Write + Seek> Drop for WavWriter<W> {
    fn drop(&mut self) {
        // Best effort: a recording ended by an error elsewhere still gets its sizes.
        let _ = self.patch_sizes();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    /// Builds a chunk: id, little-endian size, body, pad byte when the body is odd.
    fn chunk(id: &[u8; 4], body: &[u8]) -> Vec<u8> {
        let mut out = id.to_vec();
        out.extend_from_slice(&(body.len() as u32).to_le_bytes());
        out.extend_from_slice(body);
        if body.len() % 2 == 1 {
            out.push(0);
        }
        out
    }

    /// A RIFF/WAVE file of the given chunks, with a correct RIFF size.
    fn riff(chunks: &[Vec<u8>]) -> Vec<u8> {
        let body: Vec<u8> = chunks.concat();
        let mut out = b"RIFF".to_vec();
        out.extend_from_slice(&(body.len() as u32 + 4).to_le_bytes());
        out.extend_from_slice(b"WAVE");
        out.extend_from_slice(&body);
        out
    }

    /// A plain PCM fmt chunk body.
    fn fmt_pcm(tag: u16, channels: u16, rate: u32, bits: u16) -> Vec<u8> {
        let align = channels * bits / 8;
        let mut b = Vec::new();
        b.extend_from_slice(&tag.to_le_bytes());
        b.extend_from_slice(&channels.to_le_bytes());
        b.extend_from_slice(&rate.to_le_bytes());
        b.extend_from_slice(&(rate * u32::from(align)).to_le_bytes());
        b.extend_from_slice(&align.to_le_bytes());
        b.extend_from_slice(&bits.to_le_bytes());
        b
    }

    /// A WAVE_FORMAT_EXTENSIBLE fmt chunk body with the given sub-format tag.
    fn fmt_extensible(channels: u16, rate: u32, subformat: u16) -> Vec<u8> {
        let mut b = fmt_pcm(FORMAT_EXTENSIBLE, channels, rate, 16);
        b.extend_from_slice(&22u16.to_le_bytes()); // cbSize
        b.extend_from_slice(&16u16.to_le_bytes()); // valid bits
        b.extend_from_slice(&(if channels == 2 { 3u32 } else { 4u32 }).to_le_bytes()); // mask
        b.extend_from_slice(&subformat.to_le_bytes());
        b.extend_from_slice(&SUBTYPE_GUID_TAIL);
        b
    }

    fn pcm_bytes(samples: &[i16]) -> Vec<u8> {
        samples.iter().flat_map(|s| s.to_le_bytes()).collect()
    }

    #[test]
    fn round_trip_at_every_rate_and_channel_count() {
        for rate in [8_000, 16_000, 48_000, 44_100] {
            for channels in [1u16, 2] {
                let samples: Vec<i16> = (0..960i32)
                    .map(|i| ((i * 7919) % 65_536 - 32_768) as i16)
                    .chain([i16::MIN, i16::MAX, 0, -1])
                    .collect();
                let mut writer = WavWriter::new(Cursor::new(Vec::new()), rate, channels).unwrap();
                // Written in pieces, as a recorder does tick by tick.
                for piece in samples.chunks(160) {
                    writer.write_samples(piece).unwrap();
                }
                assert_eq!(writer.frames(), samples.len() as u64 / u64::from(channels));
                let bytes = writer.finish().unwrap().into_inner();
                assert_eq!(bytes.len(), 44 + samples.len() * 2);
                let wav = read_wav(&bytes).unwrap();
                assert_eq!(wav.sample_rate, rate);
                assert_eq!(wav.channels, channels);
                assert_eq!(wav.samples, samples);
            }
        }
    }

    #[test]
    fn header_is_the_canonical_44_bytes() {
        let bytes = WavWriter::new(Cursor::new(Vec::new()), 16_000, 1)
            .unwrap()
            .finish()
            .unwrap()
            .into_inner();
        assert_eq!(
            bytes,
            riff(&[
                chunk(b"fmt ", &fmt_pcm(1, 1, 16_000, 16)),
                chunk(b"data", &[])
            ])
        );
    }

    #[test]
    fn drop_patches_the_sizes() {
        let mut file = Cursor::new(Vec::new());
        {
            let mut writer = WavWriter::new(&mut file, 8_000, 1).unwrap();
            writer.write_samples(&[1, 2, 3]).unwrap();
        }
        let wav = read_wav(file.get_ref()).unwrap();
        assert_eq!(wav.samples, [1, 2, 3]);
        assert_eq!(u32_at(file.get_ref(), 4), Some(36 + 6));
    }

    #[test]
    fn writer_starts_where_the_stream_is() {
        let mut file = Cursor::new(b"prefix".to_vec());
        file.seek(SeekFrom::End(0)).unwrap();
        let mut writer = WavWriter::new(file, 48_000, 2).unwrap();
        writer.write_samples(&[5, -5]).unwrap();
        let bytes = writer.finish().unwrap().into_inner();
        assert_eq!(&bytes[..6], b"prefix");
        assert_eq!(read_wav(&bytes[6..]).unwrap().samples, [5, -5]);
    }

    #[test]
    fn writer_refuses_partial_frames_and_bad_formats() {
        let mut writer = WavWriter::new(Cursor::new(Vec::new()), 48_000, 2).unwrap();
        assert!(matches!(
            writer.write_samples(&[1, 2, 3]),
            Err(WavError::Write(_))
        ));
        assert!(matches!(
            WavWriter::new(Cursor::new(Vec::new()), 8_000, 3),
            Err(WavError::Channels(3))
        ));
        assert!(matches!(
            WavWriter::new(Cursor::new(Vec::new()), 0, 1),
            Err(WavError::SampleRate)
        ));
    }

    #[test]
    fn list_and_odd_chunks_before_data_are_skipped() {
        // A LIST/INFO chunk of odd size (with its pad byte), then an unknown chunk, then data;
        // fmt after a junk chunk.
        let info = chunk(b"LIST", b"INFOISFT\x05\0\0\0sox!\0");
        assert_eq!(info.len() % 2, 0);
        let bytes = riff(&[
            chunk(b"JUNK", &[0; 3]),
            chunk(b"fmt ", &fmt_pcm(1, 1, 8_000, 16)),
            info,
            chunk(b"fact", &[0; 4]),
            chunk(b"data", &pcm_bytes(&[10, -20, 30])),
            chunk(b"LIST", b"x"),
        ]);
        let wav = read_wav(&bytes).unwrap();
        assert_eq!(wav.samples, [10, -20, 30]);
        assert_eq!(wav.sample_rate, 8_000);
    }

    #[test]
    fn data_before_fmt_and_wrong_riff_size_are_read() {
        let mut bytes = riff(&[
            chunk(b"data", &pcm_bytes(&[1, 2, 3, 4])),
            chunk(b"fmt ", &fmt_pcm(1, 2, 48_000, 16)),
        ]);
        // Streaming writers that never finished leave the RIFF size at zero or all ones.
        for size in [0u32, u32::MAX] {
            bytes[4..8].copy_from_slice(&size.to_le_bytes());
            let wav = read_wav(&bytes).unwrap();
            assert_eq!((wav.channels, wav.frames()), (2, 2));
        }
    }

    #[test]
    fn extensible_pcm_is_accepted_other_subformats_refused() {
        let data = chunk(b"data", &pcm_bytes(&[7, 8]));
        let pcm = riff(&[chunk(b"fmt ", &fmt_extensible(2, 48_000, 1)), data.clone()]);
        let wav = read_wav(&pcm).unwrap();
        assert_eq!((wav.sample_rate, wav.channels), (48_000, 2));
        assert_eq!(wav.samples, [7, 8]);
        let float = riff(&[chunk(b"fmt ", &fmt_extensible(2, 48_000, 3)), data.clone()]);
        assert!(matches!(read_wav(&float), Err(WavError::SubFormat)));
        // Extensible tag but no extension.
        let short = riff(&[
            chunk(b"fmt ", &fmt_pcm(FORMAT_EXTENSIBLE, 1, 8_000, 16)),
            data,
        ]);
        assert!(matches!(read_wav(&short), Err(WavError::ShortFmt(16))));
    }

    #[test]
    fn unsupported_formats_say_why() {
        let data = chunk(b"data", &[0; 8]);
        let cases = [
            (
                fmt_pcm(3, 1, 8_000, 32),
                "format 0x0003 is not supported (16-bit PCM only)",
            ),
            (
                fmt_pcm(6, 1, 8_000, 8),
                "format 0x0006 is not supported (16-bit PCM only)",
            ),
            (
                fmt_pcm(1, 1, 8_000, 8),
                "8 bits per sample is not supported (16 only)",
            ),
            (
                fmt_pcm(1, 1, 8_000, 24),
                "24 bits per sample is not supported (16 only)",
            ),
            (
                fmt_pcm(1, 6, 48_000, 16),
                "6 channels is not supported (1 or 2 only)",
            ),
            (fmt_pcm(1, 1, 0, 16), "sample rate of 0 Hz"),
        ];
        for (fmt, want) in cases {
            let err = read_wav(&riff(&[chunk(b"fmt ", &fmt), data.clone()])).unwrap_err();
            assert_eq!(err.to_string(), want);
        }
        let err = read_wav(&riff(&[chunk(b"fmt ", &fmt_pcm(1, 1, 8_000, 16))])).unwrap_err();
        assert!(matches!(err, WavError::MissingData));
        let err = read_wav(&riff(std::slice::from_ref(&data))).unwrap_err();
        assert!(matches!(err, WavError::MissingFmt));
        let odd = riff(&[
            chunk(b"fmt ", &fmt_pcm(1, 2, 8_000, 16)),
            chunk(b"data", &[0; 6]),
        ]);
        assert!(matches!(read_wav(&odd), Err(WavError::PartialFrame(6))));
    }

    #[test]
    fn every_truncation_is_an_error_not_a_panic() {
        let mut writer = WavWriter::new(Cursor::new(Vec::new()), 16_000, 1).unwrap();
        writer.write_samples(&[1, 2, 3, 4]).unwrap();
        let whole = writer.finish().unwrap().into_inner();
        for len in 0..whole.len() {
            assert!(read_wav(&whole[..len]).is_err(), "prefix of {len} bytes");
        }
        let err = read_wav(&whole[..whole.len() - 2]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "truncated: the data chunk runs past the end of the file"
        );
        assert!(matches!(
            read_wav(b"RIFX\0\0\0\0WAVE"),
            Err(WavError::NotWave)
        ));
    }

    #[test]
    fn random_bytes_never_panic() {
        // xorshift64*: a fixed seed, so a failure reproduces.
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = move || {
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            state.wrapping_mul(0x2545_F491_4F6C_DD1D)
        };
        let valid = riff(&[
            chunk(b"fmt ", &fmt_extensible(1, 16_000, 1)),
            chunk(b"LIST", b"abc"),
            chunk(b"data", &pcm_bytes(&[1, 2, 3, 4, 5])),
        ]);
        for round in 0..20_000 {
            let bytes: Vec<u8> = if round % 2 == 0 {
                // Pure garbage behind a valid RIFF/WAVE tag, so the chunk walk is exercised.
                let len = (next() % 96) as usize;
                let mut b = b"RIFF\0\0\0\0WAVE".to_vec();
                b.extend((0..len).map(|_| next() as u8));
                b
            } else {
                // A valid file with a few bytes flipped (sizes, tags, GUID).
                let mut b = valid.clone();
                for _ in 0..1 + next() % 4 {
                    let at = (next() as usize) % b.len();
                    b[at] = next() as u8;
                }
                b.truncate(b.len() - (next() % 4) as usize);
                b
            };
            let _ = read_wav(&bytes);
        }
    }
}
