//! The selective forwarding unit's core (sans-IO).

pub mod h264;
