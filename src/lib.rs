//! riverwatch: water-quality early warning for the rivers Guangzhou (广州) and Qingyuan (清远)
//! share — the Bei (北江), the Pa (潖江) and the Lepai (乐排河).
//!
//! # Code map
//!
//! ```text
//!  stations ──MQTT──▶ ingest ──▶ screen ──▶ store ──▶ InfluxDB         (then ack to the broker)
//!   JSON or HJ 212    (mqtt,      (decode, QC, (batch, line        (and the HJ 212 data ack)
//!                      payload)    judge,      protocol, retry,
//!                                  rules)      dead letters)
//!                                    │
//!                                    └──▶ notify ──▶ SMTP / SMS gateway
//! ```
//!
//! - [`domain`]: the pure core — parameters, GB 3838 classes and profiles, the network, HJ 212
//!   frames, QARTOD QC, trend statistics, the alert rules and lifecycle, message rendering.
//! - [`config`]: the TOML file → validated domain types.
//! - [`ingest`], [`screen`], [`store`], [`notify`]: the stages, in flow order.
//! - [`app`]: the only place that wires stages together; [`demo`]: the self-contained demo;
//!   [`hj212_cmd`]: `riverwatch hj212 decode`; [`assess`]: offline judgement of a file.
//! - [`deadletter`], [`telemetry`]: refused input and counted events.
//!
//! # Architecture invariants
//!
//! - `domain` does no I/O and reads no clock; time is an argument (`tests/tidy.rs` checks its
//!   imports).
//! - A message is acknowledged to the broker only after its readings are written (or refused
//!   and dead-lettered), in the order messages arrived.
//! - Input never panics the daemon: every refusal is a value with a reason.

pub mod app;
pub mod assess;
pub mod config;
pub mod deadletter;
pub mod demo;
pub mod domain;
pub mod hj212_cmd;
pub mod ingest;
pub mod json;
pub mod notify;
pub mod screen;
pub mod store;
pub mod telemetry;
