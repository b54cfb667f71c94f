//! The selective forwarding unit's core (sans-IO): see the module docs written with the
//! router.

pub mod h264;
pub mod vp8;
