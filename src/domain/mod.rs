//! The pure domain core: parameters, GB 3838 judgement, the network, alert lifecycle,
//! incidents, the digests of data-level alerts and message rendering.
//!
//! Architecture invariant: nothing here does I/O, reads a clock, spawns a task or logs. Every
//! function takes plain data (time included) and returns a decision, so the whole core is
//! tested with tables. A test in `tests/tidy.rs` checks that these files import no I/O crate.

pub mod alert;
pub mod attainment;
pub mod digest;
pub mod escalation;
pub mod flow;
pub mod gb3838;
pub mod hj212;
pub mod incident;
pub mod ledger;
pub mod message;
pub mod network;
pub mod param;
pub mod profile;
pub mod qc;
pub mod quiet;
pub mod reading;
pub mod ring;
pub mod rules;
pub mod silence;
pub mod trend;
