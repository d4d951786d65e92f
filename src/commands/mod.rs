//! The commands beside `run`, each thin over the stages and the domain core: `demo` (the
//! whole pipeline on an in-process broker), `simulate` (a load generator publishing station
//! readings), `assess` (offline judgement of a file of readings), `hj212` (`hj212 decode`:
//! frames to JSON) and `report` (the monthly attainment report from the database).
//!
//! Fed by `main`'s argument parsing and the validated config; each feeds its own output
//! (stdout, files) and reaches the daemon's stages only through `app` and the domain.

pub mod assess;
pub mod demo;
pub mod hj212;
pub mod report;
pub mod simulate;

/// Writes `text` to standard output. A reader that stops early (`check-config | head -1`,
/// `demo | head`) closes the pipe: that is no failure of the command, so the write error is
/// ignored rather than turned into a panic, as `println!` would.
pub fn say(text: &str) {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes()).and_then(|()| out.flush());
}
