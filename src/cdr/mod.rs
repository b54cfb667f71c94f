//! Call detail records written by `chorus serve`: one `cdr_legs` row per answered call, one
//! `cdr_conferences` row per conference instance (see `directory` for the tables).
//!
//! Two halves, so the control task never waits on SQLite:
//!
//! - [`Recorder`] (sans-IO, on the control task): fed the UA's `CallAnswered`, `CallMoved`,
//!   `CallEnded`, the conference service's `Hangup`, `Joined`, `Left`, `RoomOpened`,
//!   `RoomClosed`, and the cores' `LegStats`/`LegRemoved`; gives ordered [`Write`]s and
//!   `QueryLeg` requests. A leg's row opens at the answer, gets its conference and role at
//!   the join, and closes at the call's end with the end reason and the leg's final counters
//!   (which the core reports after the call ended; after [`REMOVAL_WAIT`] without them, the
//!   row closes with the last known ones). Every [`CHECKPOINT_EVERY`] the open legs' counters
//!   are asked for and saved with the time, so rows a crash leaves open are closed by
//!   `Directory::close_interrupted` at a realistic time. [`Recorder::shutdown`] closes every
//!   open row (`shutdown`) when the server stops cleanly.
//! - [`Writer`]: one thread with its own `Directory` connection, a bounded queue (a full
//!   queue drops and counts, never blocks), writes applied in order and batched into one
//!   transaction per wake-up; `finish` drains the queue before the process exits.
//!
//! Each closed leg gets a MOS estimate from a simplified E-model ([`emodel`], in the signaling
//! crate, shared with chorus-load).

pub use chorus_signaling::emodel;
mod recorder;
mod writer;

pub use recorder::{Answered, CHECKPOINT_EVERY, REMOVAL_WAIT, Recorder};
pub use writer::Writer;
