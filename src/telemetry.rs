//! Logging setup and the daemon's counters: one place that names every notable event.
//!
//! Every stage reports through [`Metrics`]; `/metrics` (and the demo's summary) read it. A
//! counter is bumped where the event is decided, next to its single log line, so nothing is
//! logged twice or counted without a log. The Prometheus names and help texts live here
//! too ([`Metrics::prometheus_counters`]), beside the counters they name; each notification
//! channel's are in `notify::metrics`.

use crate::domain::alert::{Level, Rule};
use crate::domain::incident::EventKind;
use std::sync::atomic::{AtomicU64, Ordering};
use tracing_subscriber::EnvFilter;

pub mod process;

/// `riverwatch_build_info`: 1, labelled with the version, so a dashboard shows which build
/// runs and an upgrade is visible as a change of label.
pub fn prometheus_build_info(out: &mut String) {
    use std::fmt::Write as _;
    let _ = writeln!(
        out,
        "# HELP riverwatch_build_info The running build: 1, with its version as a label.\n# TYPE riverwatch_build_info gauge\nriverwatch_build_info{{version=\"{}\"}} 1",
        env!("CARGO_PKG_VERSION")
    );
}

/// How log lines are written on stderr (`--log-format`, `RIVERWATCH_LOG_FORMAT`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum LogFormat {
    /// One human-readable line per event; coloured only on a terminal.
    #[default]
    Text,
    /// One JSON object per line with stable keys: `timestamp` (RFC 3339, UTC), `level`
    /// (`ERROR` … `TRACE`), `target` (the Rust module, e.g. `riverwatch::store`), `message`,
    /// and each of the event's own fields (`station`, `error`, …) beside them.
    Json,
}

/// The log filter used when neither `RIVERWATCH_LOG` nor `RUST_LOG` says otherwise. The
/// demo's in-process broker (rumqttd) is silenced: its connection chatter is not the
/// operator's concern.
pub const DEFAULT_LOG_FILTER: &str = "info,rumqttd=off,rumqttc=warn";

/// Which variable sets the log filter, and its text: `RIVERWATCH_LOG` first (this program's
/// own), then `RUST_LOG` (the Rust convention), then [`DEFAULT_LOG_FILTER`]. An empty
/// variable counts as unset.
pub fn log_directives<'a>(
    riverwatch_log: Option<&'a str>,
    rust_log: Option<&'a str>,
) -> (Option<&'static str>, &'a str) {
    match (
        riverwatch_log.filter(|v| !v.trim().is_empty()),
        rust_log.filter(|v| !v.trim().is_empty()),
    ) {
        (Some(v), _) => (Some("RIVERWATCH_LOG"), v),
        (None, Some(v)) => (Some("RUST_LOG"), v),
        (None, None) => (None, DEFAULT_LOG_FILTER),
    }
}

/// Whether log lines carry ANSI colour: only when stderr is a terminal, and never when
/// `NO_COLOR` is set to a non-empty value (<https://no-color.org>). journald and pipes get
/// plain text.
pub fn colour_wanted(stderr_is_terminal: bool, no_color: Option<&std::ffi::OsStr>) -> bool {
    stderr_is_terminal && no_color.is_none_or(|v| v.is_empty())
}

/// Installs the log subscriber on stderr in `format`, filtered by `RIVERWATCH_LOG` or
/// `RUST_LOG` (e.g. `debug`, `riverwatch=debug,rumqttc=warn`; see [`log_directives`]). A
/// filter that does not parse is reported once and [`DEFAULT_LOG_FILTER`] is used.
pub fn init_logging(format: LogFormat) {
    use std::io::IsTerminal;
    let riverwatch_log = std::env::var("RIVERWATCH_LOG").ok();
    let rust_log = std::env::var("RUST_LOG").ok();
    let (variable, directives) = log_directives(riverwatch_log.as_deref(), rust_log.as_deref());
    let (filter, refused) = match EnvFilter::try_new(directives) {
        Ok(f) => (f, None),
        Err(e) => (EnvFilter::new(DEFAULT_LOG_FILTER), Some(e)),
    };
    let ansi = colour_wanted(
        std::io::stderr().is_terminal(),
        std::env::var_os("NO_COLOR").as_deref(),
    );
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    // A second call (tests) keeps the first subscriber.
    let _ = match format {
        LogFormat::Text => builder.with_ansi(ansi).try_init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .with_ansi(false)
            .try_init(),
    };
    if let (Some(variable), Some(e)) = (variable, refused) {
        tracing::warn!(
            variable,
            error = %e,
            "cannot parse the log filter; logging with the default ({DEFAULT_LOG_FILTER})"
        );
    }
}

/// Why a payload or a reading was refused; the key is the metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefusalKind {
    TooLarge,
    NotJson,
    WrongType,
    MissingTs,
    BadTs,
    FutureTs,
    /// Stamped longer ago than `ingest.max_age`, or before 2000: a backlog too old to
    /// store as live data, or a clock never set.
    TooOld,
    NoValues,
    UnknownParam,
    BadValue,
    BadFlag,
    BadTopic,
    UnknownStation,
    RiverMismatch,
    /// The database refused the point itself (a 4xx other than auth or missing database).
    Rejected,
    /// An HJ 212 frame failed its framing, length, CRC or data-segment checks.
    BadFrame,
    /// An HJ 212 frame's MN is not the station's configured `hj212_mn`.
    MnMismatch,
    /// An HJ 212 frame that carries no data upload (CN other than 2011, 2051, 2061).
    NotData,
    /// An HJ 212 frame over TCP whose MN is no configured station's `hj212_mn`.
    UnknownMn,
    /// An HJ 212 frame over TCP whose access password (PW) is not its station's, or for a
    /// station with no password configured.
    BadPassword,
}

impl RefusalKind {
    pub const ALL: [RefusalKind; 20] = [
        RefusalKind::TooLarge,
        RefusalKind::NotJson,
        RefusalKind::WrongType,
        RefusalKind::MissingTs,
        RefusalKind::BadTs,
        RefusalKind::FutureTs,
        RefusalKind::TooOld,
        RefusalKind::NoValues,
        RefusalKind::UnknownParam,
        RefusalKind::BadValue,
        RefusalKind::BadFlag,
        RefusalKind::BadTopic,
        RefusalKind::UnknownStation,
        RefusalKind::RiverMismatch,
        RefusalKind::Rejected,
        RefusalKind::BadFrame,
        RefusalKind::MnMismatch,
        RefusalKind::NotData,
        RefusalKind::UnknownMn,
        RefusalKind::BadPassword,
    ];

    pub fn key(self) -> &'static str {
        match self {
            RefusalKind::TooLarge => "too_large",
            RefusalKind::NotJson => "not_json",
            RefusalKind::WrongType => "wrong_type",
            RefusalKind::MissingTs => "missing_ts",
            RefusalKind::BadTs => "bad_ts",
            RefusalKind::FutureTs => "future_ts",
            RefusalKind::TooOld => "too_old",
            RefusalKind::NoValues => "no_values",
            RefusalKind::UnknownParam => "unknown_param",
            RefusalKind::BadValue => "bad_value",
            RefusalKind::BadFlag => "bad_flag",
            RefusalKind::BadTopic => "bad_topic",
            RefusalKind::UnknownStation => "unknown_station",
            RefusalKind::RiverMismatch => "river_mismatch",
            RefusalKind::Rejected => "rejected_by_database",
            RefusalKind::BadFrame => "bad_frame",
            RefusalKind::MnMismatch => "mn_mismatch",
            RefusalKind::NotData => "not_data",
            RefusalKind::UnknownMn => "unknown_mn",
            RefusalKind::BadPassword => "bad_password",
        }
    }
}

/// Why the HJ 212 TCP listener closed a logger's connection; the key is the metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    /// The logger closed it (or the connection broke).
    Peer,
    /// Nothing received for `idle_timeout`.
    Idle,
    /// A frame did not arrive whole within `frame_timeout` of its first byte (slowloris).
    SlowFrame,
    /// A line longer than any HJ 212 frame can be (garbage, or a client that never sends CR LF).
    TooLong,
    /// `max_refusals` frames in a row refused (bad framing, unknown MN, wrong PW).
    Refused,
    /// Accepted while `max_connections` were open, all of them loggers': closed at once.
    Capacity,
    /// Closed to make room at `max_connections`: the oldest connection that had sent no
    /// valid frame.
    Evicted,
    /// The same logger (MN) connected again: its older connection is closed.
    Replaced,
    /// The logger did not read its acknowledgements (the write timed out or its queue filled).
    Unresponsive,
    /// The daemon is stopping.
    Shutdown,
}

impl CloseReason {
    pub const ALL: [CloseReason; 10] = [
        CloseReason::Peer,
        CloseReason::Idle,
        CloseReason::SlowFrame,
        CloseReason::TooLong,
        CloseReason::Refused,
        CloseReason::Capacity,
        CloseReason::Evicted,
        CloseReason::Replaced,
        CloseReason::Unresponsive,
        CloseReason::Shutdown,
    ];

    pub fn key(self) -> &'static str {
        match self {
            CloseReason::Peer => "peer",
            CloseReason::Idle => "idle",
            CloseReason::SlowFrame => "slow_frame",
            CloseReason::TooLong => "too_long",
            CloseReason::Refused => "refused",
            CloseReason::Capacity => "capacity",
            CloseReason::Evicted => "evicted",
            CloseReason::Replaced => "replaced",
            CloseReason::Unresponsive => "unresponsive",
            CloseReason::Shutdown => "shutdown",
        }
    }
}

/// Counters shared by every stage. Relaxed atomics: each counter is independent and read only
/// for reporting.
#[derive(Debug, Default)]
pub struct Metrics {
    /// MQTT messages handed to the pipeline.
    pub messages_received: AtomicU64,
    /// Readings decoded from them (valid ones).
    pub readings_received: AtomicU64,
    /// Readings written to the store.
    pub readings_stored: AtomicU64,
    /// Refused readings or payloads, by [`RefusalKind`] (index = position in `ALL`).
    refused: [AtomicU64; RefusalKind::ALL.len()],
    /// Writes that failed and were retried.
    pub write_retries: AtomicU64,
    /// Alerts fired, by level and rule (indexes = positions in `Level::ALL`, `Rule::ALL`).
    alerts_fired: [[AtomicU64; Rule::ALL.len()]; Level::ALL.len()],
    pub alerts_resolved: AtomicU64,
    /// Incident events, by kind (index = position in `EventKind::KEYS`).
    incident_events: [AtomicU64; EventKind::KEYS.len()],
    /// Messages acknowledged to the broker.
    pub messages_acked: AtomicU64,
    /// Messages the broker sent again (DUP set): delivered before, not acknowledged then.
    pub redeliveries: AtomicU64,
    /// Batches appended to the spool, and drained from it into the database.
    pub spool_appended: AtomicU64,
    pub spool_drained: AtomicU64,
    /// 1 while a batch waits because the spool is full (acknowledgements are paused).
    pub spool_full: AtomicU64,
    /// 1 while the database refuses writes and live batches go to the spool.
    pub store_down: AtomicU64,
    /// Spool depth as last seen by the store (bytes, records).
    pub spool_bytes: AtomicU64,
    pub spool_records: AtomicU64,
    /// Notifications waiting in the outbox, and those that failed permanently.
    pub outbox_pending: AtomicU64,
    /// 1 while a digest of station faults and offline stations waits for its interval.
    pub digests_pending: AtomicU64,
    /// Database write latency histogram: counts per bucket of `WRITE_BUCKETS`, plus the sum.
    write_latency: [AtomicU64; WRITE_BUCKETS.len() + 1],
    write_latency_sum_us: AtomicU64,
    /// HJ 212 TCP: connections open now, accepted in all, closed by [`CloseReason`] (index =
    /// position in `ALL`), frames handed to the pipeline, acknowledgements written back, and
    /// times a connection was paused by its frame rate.
    pub tcp_connections: AtomicU64,
    pub tcp_accepted: AtomicU64,
    tcp_closed: [AtomicU64; CloseReason::ALL.len()],
    pub tcp_frames: AtomicU64,
    pub tcp_acks: AtomicU64,
    pub tcp_throttled: AtomicU64,
    /// Frames sent again whose acknowledgement had been written: acknowledged again, not stored.
    pub tcp_duplicates: AtomicU64,
    /// Dead-letter records written and their bytes, records whose payload was cut to its first
    /// KiB, rotations of the file, and records that could not be written (`deadletter`).
    pub dead_letters_written: AtomicU64,
    pub dead_letter_bytes: AtomicU64,
    pub dead_letters_truncated: AtomicU64,
    pub dead_letter_rotations: AtomicU64,
    pub dead_letters_failed: AtomicU64,
    /// MQTT connections the broker accepted (ConnAcks), and client-id takeover episodes: the
    /// broker closing connections again and again right after accepting them (`ingest::mqtt`).
    pub mqtt_connects: AtomicU64,
    pub mqtt_takeovers: AtomicU64,
}

/// Upper bounds (seconds) of the write latency histogram buckets; the last bucket is +Inf.
pub const WRITE_BUCKETS: [f64; 8] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0];

impl Metrics {
    pub fn refused(&self, kind: RefusalKind) {
        if let Some(i) = RefusalKind::ALL.iter().position(|k| *k == kind) {
            self.refused[i].fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn refused_by_kind(&self) -> Vec<(RefusalKind, u64)> {
        RefusalKind::ALL
            .iter()
            .zip(&self.refused)
            .map(|(k, c)| (*k, c.load(Ordering::Relaxed)))
            .collect()
    }

    pub fn refused_total(&self) -> u64 {
        self.refused.iter().map(|c| c.load(Ordering::Relaxed)).sum()
    }

    /// Counts one TCP connection closed for `reason`.
    pub fn tcp_closed(&self, reason: CloseReason) {
        if let Some(i) = CloseReason::ALL.iter().position(|k| *k == reason) {
            self.tcp_closed[i].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Closed TCP connections by reason, zeros included.
    pub fn tcp_closed_by_reason(&self) -> Vec<(CloseReason, u64)> {
        CloseReason::ALL
            .iter()
            .zip(&self.tcp_closed)
            .map(|(k, c)| (*k, c.load(Ordering::Relaxed)))
            .collect()
    }

    pub fn alert_fired(&self, level: Level, rule: Rule) {
        let l = Level::ALL.iter().position(|x| *x == level);
        let r = Rule::ALL.iter().position(|x| *x == rule);
        if let (Some(l), Some(r)) = (l, r) {
            self.alerts_fired[l][r].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Counts one incident event of kind `key` (an [`EventKind::key`]).
    pub fn incident_event(&self, key: &str) {
        if let Some(i) = EventKind::KEYS.iter().position(|k| *k == key) {
            self.incident_events[i].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Incident events by kind, zeros included.
    pub fn incident_events(&self) -> Vec<(&'static str, u64)> {
        EventKind::KEYS
            .iter()
            .zip(&self.incident_events)
            .map(|(k, c)| (*k, c.load(Ordering::Relaxed)))
            .collect()
    }

    pub fn alerts_by_level(&self) -> Vec<(Level, u64)> {
        Level::ALL
            .iter()
            .zip(&self.alerts_fired)
            .map(|(l, row)| (*l, row.iter().map(|c| c.load(Ordering::Relaxed)).sum()))
            .collect()
    }

    /// Every (level, rule) pair with its count, zeros included.
    pub fn alerts_by_level_and_rule(&self) -> Vec<(Level, Rule, u64)> {
        let mut out = Vec::new();
        for (l, row) in Level::ALL.iter().zip(&self.alerts_fired) {
            for (r, c) in Rule::ALL.iter().zip(row) {
                out.push((*l, *r, c.load(Ordering::Relaxed)));
            }
        }
        out
    }

    /// Records one database write (successful or not) that took `took`.
    pub fn write_took(&self, took: std::time::Duration) {
        let secs = took.as_secs_f64();
        let i = WRITE_BUCKETS
            .iter()
            .position(|b| secs <= *b)
            .unwrap_or(WRITE_BUCKETS.len());
        self.write_latency[i].fetch_add(1, Ordering::Relaxed);
        self.write_latency_sum_us
            .fetch_add(took.as_micros() as u64, Ordering::Relaxed);
    }

    /// Per-bucket (not cumulative) counts and the sum in seconds.
    pub fn write_latency(&self) -> (Vec<u64>, f64) {
        (
            self.write_latency
                .iter()
                .map(|c| c.load(Ordering::Relaxed))
                .collect(),
            self.write_latency_sum_us.load(Ordering::Relaxed) as f64 / 1e6,
        )
    }

    pub fn set(gauge: &AtomicU64, value: u64) {
        gauge.store(value, Ordering::Relaxed);
    }

    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }

    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }
}

impl Metrics {
    /// The counters and gauges above in Prometheus text format, each with its name and help
    /// (the names live here, beside the counters): appended to `out`.
    pub fn prometheus_counters(&self, out: &mut String) {
        use std::fmt::Write;
        let plain: &[(&str, &str, &str, &std::sync::atomic::AtomicU64)] = &[
            (
                "riverwatch_messages_received_total",
                "counter",
                "MQTT messages handed to the pipeline.",
                &self.messages_received,
            ),
            (
                "riverwatch_messages_acked_total",
                "counter",
                "MQTT messages acknowledged to the broker.",
                &self.messages_acked,
            ),
            (
                "riverwatch_redeliveries_total",
                "counter",
                "MQTT messages the broker delivered again (DUP set).",
                &self.redeliveries,
            ),
            (
                "riverwatch_readings_received_total",
                "counter",
                "Valid readings decoded.",
                &self.readings_received,
            ),
            (
                "riverwatch_readings_stored_total",
                "counter",
                "Readings written to the database (directly or from the spool).",
                &self.readings_stored,
            ),
            (
                "riverwatch_write_retries_total",
                "counter",
                "Database writes that failed retryably.",
                &self.write_retries,
            ),
            (
                "riverwatch_store_down",
                "gauge",
                "1 while the database refuses writes and batches go to the spool.",
                &self.store_down,
            ),
            (
                "riverwatch_spool_bytes",
                "gauge",
                "Bytes in the spool.",
                &self.spool_bytes,
            ),
            (
                "riverwatch_spool_batches",
                "gauge",
                "Batches in the spool waiting to be written.",
                &self.spool_records,
            ),
            (
                "riverwatch_spool_full",
                "gauge",
                "1 while a batch waits because the spool is full (acknowledgements paused).",
                &self.spool_full,
            ),
            (
                "riverwatch_spool_appended_total",
                "counter",
                "Batches appended to the spool.",
                &self.spool_appended,
            ),
            (
                "riverwatch_spool_drained_total",
                "counter",
                "Batches written from the spool to the database.",
                &self.spool_drained,
            ),
            (
                "riverwatch_alerts_resolved_total",
                "counter",
                "Alerts resolved.",
                &self.alerts_resolved,
            ),
            (
                "riverwatch_outbox_pending",
                "gauge",
                "Notifications waiting for delivery.",
                &self.outbox_pending,
            ),
            (
                "riverwatch_digests_pending",
                "gauge",
                "1 while a digest of station faults and offline stations waits for its interval.",
                &self.digests_pending,
            ),
            (
                "riverwatch_hj212_tcp_connections",
                "gauge",
                "HJ 212 TCP connections open.",
                &self.tcp_connections,
            ),
            (
                "riverwatch_hj212_tcp_accepted_total",
                "counter",
                "HJ 212 TCP connections accepted.",
                &self.tcp_accepted,
            ),
            (
                "riverwatch_hj212_tcp_frames_total",
                "counter",
                "HJ 212 frames received over TCP and handed to the pipeline (MN and PW checked).",
                &self.tcp_frames,
            ),
            (
                "riverwatch_hj212_tcp_acks_total",
                "counter",
                "HJ 212 data acknowledgements (CN=9014) written back over TCP after custody.",
                &self.tcp_acks,
            ),
            (
                "riverwatch_hj212_tcp_throttled_total",
                "counter",
                "Times an HJ 212 TCP connection was paused by its frame rate (max_frame_rate).",
                &self.tcp_throttled,
            ),
            (
                "riverwatch_hj212_tcp_duplicates_total",
                "counter",
                "HJ 212 frames sent again after their acknowledgement: acknowledged again, not stored twice.",
                &self.tcp_duplicates,
            ),
            (
                "riverwatch_dead_letters_written_total",
                "counter",
                "Records appended to the dead-letter file.",
                &self.dead_letters_written,
            ),
            (
                "riverwatch_dead_letters_written_bytes_total",
                "counter",
                "Bytes appended to the dead-letter file.",
                &self.dead_letter_bytes,
            ),
            (
                "riverwatch_dead_letters_truncated_total",
                "counter",
                "Dead-letter records whose payload was over 1 KiB: kept as its first KiB with length and SHA-256.",
                &self.dead_letters_truncated,
            ),
            (
                "riverwatch_dead_letters_rotations_total",
                "counter",
                "Rotations of the dead-letter file at [spool] dead_letter_max_size.",
                &self.dead_letter_rotations,
            ),
            (
                "riverwatch_dead_letters_failed_total",
                "counter",
                "Dead-letter records that could not be written (disk full, rotation failed).",
                &self.dead_letters_failed,
            ),
            (
                "riverwatch_mqtt_connects_total",
                "counter",
                "Connections the MQTT broker accepted (ConnAck).",
                &self.mqtt_connects,
            ),
            (
                "riverwatch_mqtt_takeovers_total",
                "counter",
                "Episodes of the broker closing our connection right after accepting it, again and again: another client with the same client_id.",
                &self.mqtt_takeovers,
            ),
        ];
        for (name, kind, help, value) in plain {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {}",
                Metrics::get(value)
            );
        }
        let _ = writeln!(
            out,
            "# HELP riverwatch_readings_refused_total Refused readings or payloads, by reason.\n# TYPE riverwatch_readings_refused_total counter"
        );
        for (kind, n) in self.refused_by_kind() {
            let _ = writeln!(
                out,
                "riverwatch_readings_refused_total{{reason=\"{}\"}} {n}",
                kind.key()
            );
        }
        let _ = writeln!(
            out,
            "# HELP riverwatch_hj212_tcp_closed_total HJ 212 TCP connections closed, by reason.\n# TYPE riverwatch_hj212_tcp_closed_total counter"
        );
        for (reason, n) in self.tcp_closed_by_reason() {
            let _ = writeln!(
                out,
                "riverwatch_hj212_tcp_closed_total{{reason=\"{}\"}} {n}",
                reason.key()
            );
        }
        let _ = writeln!(
            out,
            "# HELP riverwatch_alerts_fired_total Alerts fired, by level and rule.\n# TYPE riverwatch_alerts_fired_total counter"
        );
        for (level, rule, n) in self.alerts_by_level_and_rule() {
            let _ = writeln!(
                out,
                "riverwatch_alerts_fired_total{{level=\"{}\",rule=\"{}\"}} {n}",
                level.key(),
                rule.key()
            );
        }
        let _ = writeln!(
            out,
            "# HELP riverwatch_incident_events_total Incident events (opened, escalated, spread, arrival confirmed or not, ended).\n# TYPE riverwatch_incident_events_total counter"
        );
        for (event, n) in self.incident_events() {
            let _ = writeln!(
                out,
                "riverwatch_incident_events_total{{event=\"{event}\"}} {n}"
            );
        }
    }

    /// The database write latency histogram in Prometheus text format, appended to `out`.
    pub fn prometheus_latency(&self, out: &mut String) {
        use std::fmt::Write;
        let (buckets, sum) = self.write_latency();
        let _ = writeln!(
            out,
            "# HELP riverwatch_write_seconds Database write latency.\n# TYPE riverwatch_write_seconds histogram"
        );
        let mut cumulative = 0;
        for (i, n) in buckets.iter().enumerate() {
            cumulative += n;
            let le = WRITE_BUCKETS
                .get(i)
                .map_or("+Inf".to_string(), |b| b.to_string());
            let _ = writeln!(
                out,
                "riverwatch_write_seconds_bucket{{le=\"{le}\"}} {cumulative}"
            );
        }
        let _ = writeln!(out, "riverwatch_write_seconds_sum {sum}");
        let _ = writeln!(out, "riverwatch_write_seconds_count {cumulative}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_log_filter_comes_from_riverwatch_log_then_rust_log_then_the_default() {
        let cases = [
            (
                Some("debug"),
                Some("warn"),
                (Some("RIVERWATCH_LOG"), "debug"),
            ),
            (None, Some("warn"), (Some("RUST_LOG"), "warn")),
            (Some(""), Some("warn"), (Some("RUST_LOG"), "warn")),
            (Some(" "), None, (None, DEFAULT_LOG_FILTER)),
            (None, None, (None, DEFAULT_LOG_FILTER)),
        ];
        for (riverwatch_log, rust_log, want) in cases {
            assert_eq!(
                log_directives(riverwatch_log, rust_log),
                want,
                "{riverwatch_log:?} {rust_log:?}"
            );
        }
    }

    #[test]
    fn colour_only_on_a_terminal_without_no_color() {
        use std::ffi::OsStr;
        let cases = [
            (true, None, true),
            (true, Some(""), true),
            (true, Some("1"), false),
            (false, None, false),
            (false, Some("1"), false),
        ];
        for (terminal, no_color, want) in cases {
            assert_eq!(
                colour_wanted(terminal, no_color.map(OsStr::new)),
                want,
                "{terminal} {no_color:?}"
            );
        }
    }

    /// Every level, rule and refusal has its counter: the arrays are sized from the `ALL`
    /// lists the counting functions search, so a new variant is counted, never out of bounds.
    #[test]
    fn every_variant_has_a_counter() {
        let m = Metrics::default();
        for level in Level::ALL {
            for rule in Rule::ALL {
                m.alert_fired(level, rule);
            }
        }
        let counts = m.alerts_by_level_and_rule();
        assert_eq!(counts.len(), Level::ALL.len() * Rule::ALL.len());
        assert!(counts.iter().all(|&(_, _, n)| n == 1), "{counts:?}");
        assert!(m
            .alerts_by_level()
            .iter()
            .all(|&(_, n)| n == Rule::ALL.len() as u64));
        for kind in RefusalKind::ALL {
            m.refused(kind);
        }
        assert!(m.refused_by_kind().iter().all(|&(_, n)| n == 1));
        assert_eq!(m.refused_total(), RefusalKind::ALL.len() as u64);
        for reason in CloseReason::ALL {
            m.tcp_closed(reason);
        }
        assert!(m.tcp_closed_by_reason().iter().all(|&(_, n)| n == 1));
    }
}
