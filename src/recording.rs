//! Conference recordings: a thread per recording drains the engine's `RecordingSink` (the
//! conference's full mix at the engine's mix rate, one frame per tick) into a WAV file in the
//! data directory, so the media core never touches the disk.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::{Context, Result};
use chorus_engine::codecs::wav::WavWriter;
use chorus_engine::mixer::RecordingSink;

/// Frames the sink holds (10 s at 20 ms) before it drops and counts.
const SINK_FRAMES: usize = 500;

/// A running recording.
pub struct Recording {
    /// The engine's end: hand it to `Command::Record`.
    pub sink: Arc<RecordingSink>,
    /// The file.
    pub path: PathBuf,
    writer: Option<JoinHandle<()>>,
}

impl Recording {
    /// Creates `DATA_DIR/recordings/<conference>-<unix ms>.wav` and its writer thread.
    pub fn start(data_dir: &Path, conference: &str, rate: u32) -> Result<Recording> {
        let dir = data_dir.join("recordings");
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis());
        let path = dir.join(format!("{conference}-{ms}.wav"));
        let file =
            std::fs::File::create(&path).with_context(|| format!("creating {}", path.display()))?;
        let sink = Arc::new(RecordingSink::new(rate, SINK_FRAMES));
        let mut wav = WavWriter::new(std::io::BufWriter::new(file), sink.rate(), 1)
            .with_context(|| format!("writing {}", path.display()))?;
        let from = sink.clone();
        let shown = path.clone();
        let writer = std::thread::Builder::new()
            .name(format!("rec-{conference}"))
            .spawn(move || {
                loop {
                    // Closed before this drain: every frame it will ever hold is queued now.
                    let closed = from.is_closed();
                    let mut wrote = false;
                    while let Some(frame) = from.pop() {
                        wrote = true;
                        if let Err(e) = wav.write_samples(&frame) {
                            tracing::warn!(file = %shown.display(), error = %e, "recording stopped: write failed");
                            return;
                        }
                        from.recycle(frame);
                    }
                    if closed {
                        break;
                    }
                    if !wrote {
                        std::thread::sleep(Duration::from_millis(20));
                    }
                }
                match wav.finish() {
                    Ok(_) => tracing::info!(file = %shown.display(), dropped_frames = from.dropped(), "recording finished"),
                    Err(e) => tracing::warn!(file = %shown.display(), error = %e, "recording could not be finished"),
                }
            })
            .context("starting the recording writer")?;
        Ok(Recording {
            sink,
            path,
            writer: Some(writer),
        })
    }

    /// Stops taking frames; the writer finishes the file in the background.
    pub fn stop(mut self) {
        self.sink.close();
        // Detached: it ends on its own once the queue is empty.
        drop(self.writer.take());
    }

    /// Stops and waits for the file to be complete (at shutdown).
    pub fn finish(mut self) {
        self.sink.close();
        if let Some(w) = self.writer.take() {
            let _ = w.join();
        }
    }
}
