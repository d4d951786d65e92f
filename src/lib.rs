//! riverwatch: water-quality early warning for the rivers Guangzhou (广州) and Qingyuan (清远)
//! share — the Bei (北江), the Pa (潖江) and the Lepai (乐排河).
//!
//! # Code map
//!
//! ```text
//!  stations ─MQTT─▶ ingest ──Inbound──▶ alerts ─────Judged─────▶ store ──▶ InfluxDB, or the spool
//!  JSON or HJ 212   (a Source:         (decode, refusals;        (encode,      ──▶ drainer ──▶ InfluxDB
//!                    mqtt)              the screen: QC, rules;    batch,
//!                                       outbox + alerts.json)     ledger) ──Receipt──▶ the source's
//!                                          │                                   Acknowledge (PUBACK,
//!                                          └──▶ outbox ──▶ notify ──▶ channels  HJ 212 data ack)
//!                                                                   (email, sms)
//! ```
//!
//! Modules, in flow order:
//! - [`domain`]: the pure core — parameters, GB 3838 classes and profiles, the network, HJ 212
//!   frames, QARTOD QC, trend statistics, the alert rules (one file each) and lifecycle,
//!   incidents (the alerts of one pollution event along a reach), the digests of data-level
//!   alerts, message rendering, and what travels between the stages
//!   ([`domain::flow`]).
//! - [`config`]: the TOML file → validated domain types; each adapter validates its own section
//!   (a `config.rs` in its folder) from the shared parts in [`settings`] (problems, secrets,
//!   units).
//! - [`ingest`]: input sources behind the `Source` seam (MQTT, whose connection also keeps
//!   the retained `riverwatch/status` with its last will; HJ 212 over TCP) and the shared
//!   decoder.
//! - [`screen`]: `Decoded` → `Judged`, the domain rules and the incidents, nothing else.
//! - [`alerts`]: the judging task — runs the screen, makes transitions durable, collects
//!   station faults and offline into per-bureau digests and releases them on its timer, keeps
//!   the API view.
//! - [`store`]: encodes and puts judged messages in custody behind the `Backend` seam
//!   (InfluxDB v1/v2, a file), answers receipts in order.
//! - [`notify`]: the outbox and its delivery workers, one per channel behind the `Channel`
//!   seam (email, SMS, WeCom and DingTalk robots, signed webhooks, and the MQTT feed of
//!   every transition to `riverwatch/alerts/<station>` for other systems).
//! - [`app`]: the only place that wires stages together (sources and channels are registered
//!   there); [`http`]: `/healthz`, `/readyz`, `/metrics` and the API, whose view of the
//!   pipeline (stations, alerts, incidents, acknowledgements, silences) is [`api`], and the
//!   duty console at `/`, a page compiled into the binary ([`console`]).
//! - [`deadletter`], [`telemetry`]: refused input and counted events; [`state`]: the alert
//!   episodes, open incidents and pending digests kept across restarts; [`json`]: JSON helpers;
//!   [`outbound`]: the one builder of outbound HTTP clients (HTTP/1.1 only);
//!   [`systemd`]: readiness, watchdog and stopping notifications for `Type=notify` units.
//! - [`commands`]: `demo`, `simulate`, `assess`, `hj212 decode` and `report`.
//!
//! # Architecture invariants
//!
//! - `domain` does no I/O and reads no clock; time is an argument (`tests/tidy.rs` checks its
//!   imports).
//! - A message is acknowledged to the broker only after its readings are in custody (written,
//!   synced to the spool, or refused and dead-lettered) and the notifications of its
//!   transitions are in the outbox, in the order messages arrived.
//! - Input never panics the daemon: every refusal is a value with a reason.

pub mod domain;

pub mod settings;

pub mod config;

// The stages, in flow order; one group each, so the declarations keep that order.
pub mod ingest;

pub mod screen;

pub mod alerts;

pub mod store;

pub mod notify;

pub mod app;

pub mod api;
pub mod console;
pub mod http;

pub mod deadletter;
pub mod json;
pub mod outbound;
pub mod state;
pub mod systemd;
pub mod telemetry;

pub mod commands;
