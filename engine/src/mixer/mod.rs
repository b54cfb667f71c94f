//! The audio mixer's per-stream pieces: what each incoming leg feeds the 20 ms tick.

pub mod jitter_buffer;
