//! riverwatch: water-quality early warning for the rivers Guangzhou (广州) and Qingyuan (清远)
//! share — the Bei (北江), the Pa (潖江) and the Lepai (乐排河).
//!
//! # Code map
//!
//! ```text
//!  stations ──MQTT──▶ ingest ──▶ screen ──▶ store ──▶ InfluxDB, or    (then, in order, ack to
//!   JSON or HJ 212    (mqtt,      (decode, QC, (batch,      the spool     the broker and the
//!                      payload)    judge,      ledger,      ──▶ drainer   HJ 212 data ack)
//!                                  rules)      dead letters)   ──▶ InfluxDB
//!                                    │
//!                                    └──▶ outbox + alerts.json ──▶ notify ──▶ SMTP / SMS gateway
//! ```
//!
//! - [`domain`]: the pure core — parameters, GB 3838 classes and profiles, the network, HJ 212
//!   frames, QARTOD QC, trend statistics, the alert rules and lifecycle, message rendering.
//! - [`config`]: the TOML file → validated domain types.
//! - [`ingest`], [`screen`], [`store`], [`notify`]: the stages, in flow order.
//! - [`app`]: the only place that wires stages together; [`demo`]: the self-contained demo;
//!   [`hj212_cmd`]: `riverwatch hj212 decode`; [`assess`]: offline judgement of a file;
//!   [`simulate`]: the load generator; [`report`]: the monthly attainment report.
//! - [`http`]: `/healthz`, `/readyz`, `/metrics` and the API, whose view of the pipeline
//!   (stations, alerts, acknowledgements, silences) is [`api`].
//! - [`deadletter`], [`telemetry`]: refused input and counted events; [`state`]: the alert
//!   episodes kept across restarts.
//!
//! # Architecture invariants
//!
//! - `domain` does no I/O and reads no clock; time is an argument (`tests/tidy.rs` checks its
//!   imports).
//! - A message is acknowledged to the broker only after its readings are in custody (written,
//!   synced to the spool, or refused and dead-lettered) and the notifications of its
//!   transitions are in the outbox, in the order messages arrived.
//! - Input never panics the daemon: every refusal is a value with a reason.

pub mod alerts;
pub mod api;
pub mod app;
pub mod assess;
pub mod config;
pub mod deadletter;
pub mod demo;
pub mod domain;
pub mod hj212_cmd;
pub mod http;
pub mod ingest;
pub mod json;
pub mod notify;
pub mod report;
pub mod screen;
pub mod simulate;
pub mod state;
pub mod store;
pub mod telemetry;
