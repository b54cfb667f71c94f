//! `chorus-load`: the Chorus load generator.
//!
//! The SIP callers with SRTP media and their measurements arrive with the load-generator
//! issue; this binary is the place they go. Until then it only identifies itself.

use clap::Parser;
use mimalloc::MiMalloc;

#[global_allocator]
static GLOBAL: MiMalloc = MiMalloc;

/// chorus-load: places SIP calls with real SRTP media against a Chorus server and measures
/// what callers would hear (not yet implemented: see the load-generator issue).
#[derive(Parser, Debug)]
#[command(name = "chorus-load", version, about)]
struct Cli {}

fn main() {
    let _ = Cli::parse();
    eprintln!("chorus-load: no load modes yet; `chorus-load --help` lists what exists");
    std::process::exit(2);
}
