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
