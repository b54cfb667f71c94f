//! The conference service on the control side, sans-IO: where each answered call goes (echo
//! test, a conference directly, or the IVR), the IVR dialogue (conference ID, PIN, retries,
//! lockout), the rooms (which core mixes them, who is in them, locked, moderators) and the
//! in-call keys.
//!
//! Inputs: `call_started`, `call_ended`, `dtmf`, `play_done`, `lookup_result`, `pin_result`,
//! `call_moved`, `handle_timeout`. Outputs (`poll_output`): engine commands, hang-ups (with a
//! [`HangupCause`]), leg moves, directory questions (`Lookup`, `CheckPin`) that the driver
//! answers off the control thread (argon2 is slow on purpose) by calling
//! `lookup_result`/`pin_result`, and what the call records need: `Joined`, `Left`,
//! `RoomOpened`, `RoomClosed`.
//!
//! Routing of a new call by the Request-URI user part:
//! 1. the echo user (default `echo`): media back to the caller (a line test);
//! 2. a live room's ID or a conference in the directory: that conference (PIN asked if set);
//! 3. anything else (a dial-in number): the IVR asks for the conference ID; an unknown ID
//!    creates an ad-hoc room without PIN when `allow_adhoc` is on.
//!
//! Keys in a conference (`*` then a digit within 3 s): `*1` participant count, `*6` mute or
//! unmute yourself; moderators also `*7` lock or unlock, `*8` mute everyone else, `*9` end the
//! conference for everyone.

pub mod service;

pub use service::{
    CallInfo, ConferenceInfo, ConferenceService, HangupCause, Output, PinAnswer, ServiceConfig,
};
