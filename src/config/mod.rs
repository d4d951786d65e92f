//! The configuration file (SPEC §10): TOML → validated domain types, every problem at once.
//!
//! Fed by the operator's file; feeds `app` (adapters, stages) and the other commands. Config is
//! inert data: nothing here connects anywhere or reads a secret's value (see [`secret`]), so
//! `check-config` runs on any machine. Each top-level table and each `[[bureau]]`, `[[river]]`
//! and `[[station]]` entry is deserialized on its own, so a type error in one entry does not
//! hide the problems of the others; semantic checks then run over everything that parsed.
//! Relative paths are resolved against the config file's folder, never the working directory.
//!
//! Each adapter owns its section: its raw table, validated type and checks live beside it
//! (`[mqtt]` in `ingest::mqtt::config`, `[influxdb]` in `store::influx::config`, `[smtp]` in
//! `notify::email::config`, `[sms]` in `notify::sms::config`), built from the shared parts in
//! [`crate::settings`]. This module keeps the document: the list of sections, deserializing
//! each table, calling the adapters' `validate` in file order, the sections no single adapter
//! owns (spool, http, ingest limits, the alert rules, profiles, QC) and the network, and the
//! problem list. The adapters' types are re-exported here, so users name `config::MqttConfig`.

pub use crate::ingest::hj212_tcp::config::{Hj212TcpConfig, LoggerPassword};
pub use crate::ingest::mqtt::config::MqttConfig;
pub use crate::notify::email::config::{SmtpConfig, SmtpSecurity};
pub use crate::notify::sms::config::{HeaderSource, SmsConfig};
pub use crate::settings::{secret, units, Problem};
pub use crate::store::influx::config::{InfluxApi, InfluxConfig};

use crate::domain::alert::Persistence;
use crate::domain::gb3838::{self, Class, WaterBody};
use crate::domain::hj212::CodeTarget;
use crate::domain::network::{Bureau, Contacts, Downstream, Network, Profile, River, Station};
use crate::domain::param::Param;
use crate::domain::profile::Precision;
use crate::domain::qc::{FlatLine, GrossRange, RateOfChange, Spike, Tests};
use crate::domain::rules::RuleConfig;
use crate::ingest::hj212_tcp::config::{self as hj212_tcp, RawHj212Tcp};
use crate::ingest::mqtt::config::{self as mqtt, RawMqtt};
use crate::notify::email::config::{self as smtp, RawSmtp};
use crate::notify::sms::config::{self as sms, RawSms};
use crate::settings::{duration, host_port, secret_source, size, Problems};
use crate::store::influx::config::{self as influx, RawInflux};
use secret::SecretSource;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Every problem found in one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: PathBuf,
    pub problems: Vec<Problem>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.problems.len();
        writeln!(
            f,
            "{}: {n} problem{}",
            self.file.display(),
            if n == 1 { "" } else { "s" }
        )?;
        for p in &self.problems {
            writeln!(f, "  {}: {}: {}", self.file.display(), p.key, p.message)?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

#[derive(Debug, Clone, PartialEq)]
pub struct SpoolConfig {
    /// Holds the spool (`wal/`), the alert state, the outbox, the API state and the dead letters.
    pub dir: PathBuf,
    pub max_size: u64,
    /// Bytes at which `deadletter.jsonl` rotates (`[spool] dead_letter_max_size`, default
    /// 64 MiB); `deadletter` keeps three rotated files.
    pub dead_letter_max_size: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct HttpConfig {
    pub listen: SocketAddr,
    pub token: Option<SecretSource>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct IngestConfig {
    /// Payloads larger than this are refused (SPEC §4, default 256 KiB).
    pub max_payload: usize,
    /// Readings stamped further than this in the future are refused (station clock wrong).
    pub max_future_skew: Duration,
    /// Readings stamped longer ago than this are refused (default 365 days); so are any before
    /// 2000, whatever this says.
    pub max_age: Duration,
}

/// `[report]`: how `riverwatch report` judges a section-month.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ReportConfig {
    /// `min_coverage`: the share (0–1, default 0.75) of a section-month's expected readings
    /// (from the station's cadence) that must hold valid data before the report claims a
    /// monthly class or 达标 verdict; below it the month reads 数据不足 (insufficient data).
    pub min_coverage: f64,
}

/// The validated configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub mqtt: MqttConfig,
    /// Required by `run`; the demo can do without (it keeps readings in files).
    pub influxdb: Option<InfluxConfig>,
    pub spool: SpoolConfig,
    pub http: HttpConfig,
    pub smtp: Option<SmtpConfig>,
    pub sms: Option<SmsConfig>,
    pub ingest: IngestConfig,
    /// The alert rules: persistence, hysteresis, trend, shift, rate and offline settings.
    pub rules: RuleConfig,
    /// `[alerts] digest_interval`: a bureau receives at most one digest of station faults and
    /// offline stations per this interval, sent this long after the first transition it holds
    /// (default 15 min, between 1 s and 1 day).
    pub digest_interval: Duration,
    /// `[alerts] max_silence`: the longest silence the API accepts (default 7 days, between
    /// 1 min and 30 days).
    pub max_silence: Duration,
    /// `[[bureau]] quiet_hours`, by bureau id: when its blue and data-level notifications
    /// wait (UTC+8). Bureaus without quiet hours are absent.
    pub quiet_hours: BTreeMap<String, crate::domain::quiet::QuietHours>,
    pub network: Network,
    /// The bureaus' chat robots and webhooks, by the labels their contacts list.
    pub chat: crate::notify::ChatConfig,
    /// Published decimals per parameter for the `national_realtime` profile.
    pub national_precision: Precision,
    /// `[hj212_tcp]`: the listener for data loggers pushing HJ 212 over TCP (SPEC §5a).
    pub hj212_tcp: Option<Hj212TcpConfig>,
    /// The loggers' access passwords (`[[station]] hj212_pw_env` / `hj212_pw_file`), checked
    /// against each TCP frame's `PW`; resolved when the listener is built.
    pub hj212_passwords: Vec<LoggerPassword>,
    /// The bureaus' own API tokens (`[[bureau]] api_token_env` / `api_token_file`), resolved
    /// at start: a request bearing one acts as that bureau (the `[http] token` is the
    /// operator's).
    pub bureau_tokens: Vec<BureauToken>,
    /// `[report]`: the monthly report's minimum coverage.
    pub report: ReportConfig,
}

/// Where one bureau's API token is read from.
#[derive(Debug, Clone, PartialEq)]
pub struct BureauToken {
    pub bureau: String,
    /// `bureau[i].api_token`, for messages.
    pub key: String,
    pub source: SecretSource,
}

impl Config {
    /// The dead-letter file: refused payloads and points the database rejected.
    pub fn deadletter_path(&self) -> PathBuf {
        self.spool.dir.join("deadletter.jsonl")
    }
}

/// Every secret `run` reads at start, each with the name problems call it by
/// (`mqtt.password`, `guangzhou.wecom[0] url`).
pub fn secret_sources(cfg: &Config) -> Vec<(String, &SecretSource)> {
    let mut sources: Vec<(String, &SecretSource)> = Vec::new();
    if let Some(s) = &cfg.mqtt.password {
        sources.push(("mqtt.password".into(), s));
    }
    match cfg.influxdb.as_ref().map(|i| &i.api) {
        Some(InfluxApi::V1 {
            password: Some(s), ..
        }) => sources.push(("influxdb.password".into(), s)),
        Some(InfluxApi::V2 { token: Some(s), .. }) => sources.push(("influxdb.token".into(), s)),
        _ => {}
    }
    if let Some(s) = &cfg.http.token {
        sources.push(("http.token".into(), s));
    }
    if let Some(s) = cfg.smtp.as_ref().and_then(|s| s.password.as_ref()) {
        sources.push(("smtp.password".into(), s));
    }
    for pw in cfg.hj212_tcp.iter().flat_map(|_| &cfg.hj212_passwords) {
        sources.push((pw.key.clone(), &pw.source));
    }
    for t in &cfg.bureau_tokens {
        sources.push((t.key.clone(), &t.source));
    }
    for r in &cfg.chat.wecom {
        sources.push((format!("{} url", r.label), &r.url));
    }
    for r in &cfg.chat.dingtalk {
        sources.push((format!("{} url", r.label), &r.url));
        if let Some(s) = &r.secret {
            sources.push((format!("{} secret", r.label), s));
        }
    }
    for r in &cfg.chat.webhook {
        if let crate::notify::webhook::config::UrlSource::Secret(s) = &r.url {
            sources.push((format!("{} url", r.label), s));
        }
        sources.push((format!("{} secret", r.label), &r.secret));
    }
    for (name, source) in cfg.sms.iter().flat_map(|s| &s.headers) {
        if let HeaderSource::Secret(s) = source {
            sources.push((format!("sms.headers.{name}"), s));
        }
    }
    sources
}

/// Every secret `run` needs that cannot be read here (unset, empty, unreadable), each as
/// `key: why`: `run` lists them all and exits 64 before connecting to anything.
pub fn unreadable_secrets(cfg: &Config) -> Vec<String> {
    secret_sources(cfg)
        .into_iter()
        .filter_map(|(key, s)| s.resolve().err().map(|e| format!("{key}: {e}")))
        .collect()
}

/// What `check-config` notes about a valid file: stations whose HJ 212 logger frames would
/// be refused for want of a password, and secrets the running daemon will need but this
/// machine does not provide (the file itself is valid).
pub fn secret_notes(cfg: &Config) -> Vec<String> {
    let mut notes = Vec::new();
    if cfg.hj212_tcp.is_some() {
        for (i, st) in cfg.network.stations.iter().enumerate() {
            if st.hj212_mn.is_some() && !cfg.hj212_passwords.iter().any(|p| p.station == st.id) {
                notes.push(format!(
                    "station[{i}] ({}): an hj212_mn without hj212_pw_env or hj212_pw_file, so its logger's frames over TCP are refused",
                    st.id
                ));
            }
        }
    }
    notes.extend(
        unreadable_secrets(cfg)
            .into_iter()
            .map(|why| format!("{why} (needed by `run`)")),
    );
    notes
}

// ---- the file format -------------------------------------------------------------------

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawSpool {
    dir: Option<String>,
    max_size: Option<String>,
    dead_letter_max_size: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawHttp {
    listen: Option<String>,
    token_env: Option<String>,
    token_file: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawIngest {
    max_payload: Option<String>,
    max_future_skew: Option<String>,
    max_age: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawAlerts {
    fire_after: Option<i64>,
    window: Option<i64>,
    clear_after: Option<i64>,
    hysteresis: Option<f64>,
    renotify: Option<String>,
    offline_factor: Option<f64>,
    arrival_tolerance: Option<String>,
    arrival_share: Option<f64>,
    fault_fire_after: Option<i64>,
    fault_window: Option<i64>,
    digest_interval: Option<String>,
    max_silence: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawReport {
    min_coverage: Option<f64>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawTrend {
    window: Option<String>,
    min_span: Option<String>,
    alpha: Option<f64>,
    test: Option<String>,
    horizon: Option<String>,
    min_points: Option<i64>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawShift {
    baseline: Option<i64>,
    min_change: Option<f64>,
    cusum_k: Option<f64>,
    cusum_h: Option<f64>,
    ewma_lambda: Option<f64>,
    ewma_l: Option<f64>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawRate {
    window: Option<String>,
    fraction: Option<f64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBureau {
    id: String,
    name: String,
    #[serde(default)]
    email: Vec<String>,
    #[serde(default)]
    sms: Vec<String>,
    /// `operators = { email = [...], sms = [...] }`: the station operators, who receive the
    /// digest of station faults and offline stations.
    operators: Option<RawContacts>,
    /// `wecom = [{ url_env = "…" }]`: WeCom group robots of the duty room.
    #[serde(default)]
    wecom: Vec<crate::notify::wecom::config::RawWecom>,
    /// `dingtalk = [{ url_env = "…", secret_env = "…" }]`: DingTalk robots of the duty room.
    #[serde(default)]
    dingtalk: Vec<crate::notify::dingtalk::config::RawDingtalk>,
    /// `webhook = [{ url = "…", secret_env = "…" }]`: the bureau's own platform.
    #[serde(default)]
    webhook: Vec<crate::notify::webhook::config::RawWebhook>,
    /// `quiet_hours = "22:00-07:00"` (UTC+8): blue and data-level notifications wait. Declared
    /// so the entry's type is checked with the rest; its window is read by `quiet_hours`.
    #[allow(dead_code)]
    quiet_hours: Option<String>,
    /// The bureau's own API token: requests bearing it act as this bureau.
    api_token_env: Option<String>,
    api_token_file: Option<String>,
    /// `escalate_after = "30m"`: a yellow-or-above alert or incident not acknowledged by this
    /// bureau by then also goes to `escalation`.
    escalate_after: Option<String>,
    escalation: Option<RawContacts>,
}

/// A contact list: the bureau's own `email`/`sms`, or its `operators`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawContacts {
    #[serde(default)]
    email: Vec<String>,
    #[serde(default)]
    sms: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRiver {
    id: String,
    name: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStation {
    id: String,
    name: String,
    river: String,
    city: String,
    water_body: Option<String>,
    target_class: i64,
    boundary: Option<bool>,
    cadence: Option<String>,
    downstream: Option<String>,
    travel_time: Option<String>,
    hj212_mn: Option<String>,
    /// The logger's access password (PW), checked on HJ 212 over TCP.
    hj212_pw_env: Option<String>,
    hj212_pw_file: Option<String>,
    hj212_codes: Option<BTreeMap<String, RawCode>>,
    profile: Option<String>,
    evaluate: Option<Vec<String>>,
    qc: Option<BTreeMap<String, RawTests>>,
    /// `detection_limit = { nh3n = 0.025, ... }`: per parameter, in its SPEC §4 unit.
    detection_limit: Option<BTreeMap<String, f64>>,
}

/// QC tests of one parameter, with ioos_qc's names and units (spans in the parameter's
/// unit, rates per second, flat-line thresholds in seconds).
#[derive(Deserialize, Clone)]
#[serde(deny_unknown_fields)]
struct RawTests {
    gross_range_test: Option<RawGrossRange>,
    spike_test: Option<RawSpike>,
    rate_of_change_test: Option<RawRateOfChange>,
    flat_line_test: Option<RawFlatLine>,
}

#[derive(Deserialize, Clone)]
#[serde(deny_unknown_fields)]
struct RawGrossRange {
    fail_span: [f64; 2],
    suspect_span: Option<[f64; 2]>,
}

#[derive(Deserialize, Clone)]
#[serde(deny_unknown_fields)]
struct RawSpike {
    suspect_threshold: Option<f64>,
    fail_threshold: Option<f64>,
}

#[derive(Deserialize, Clone)]
#[serde(deny_unknown_fields)]
struct RawRateOfChange {
    threshold: f64,
    fail_threshold: Option<f64>,
}

#[derive(Deserialize, Clone)]
#[serde(deny_unknown_fields)]
struct RawFlatLine {
    tolerance: f64,
    suspect_threshold: f64,
    fail_threshold: f64,
}

/// A per-station HJ 212 code: `"se"` (a parameter key, value in its SPEC §4 unit) or
/// `{ param = "se", unit = "ug/L" }` for loggers that send micrograms.
#[derive(Deserialize)]
#[serde(untagged)]
enum RawCode {
    Key(String),
    Full { param: String, unit: String },
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawProfiles {
    national_realtime: Option<RawNationalRealtime>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNationalRealtime {
    precision: BTreeMap<String, i64>,
}

const SECTIONS: &[&str] = &[
    "mqtt",
    "influxdb",
    "spool",
    "http",
    "smtp",
    "sms",
    "ingest",
    "alerts",
    "bureau",
    "river",
    "station",
    "profile",
    "qc",
    "trend",
    "shift",
    "rate",
    "hj212_tcp",
    "report",
];

/// Reads and validates a config file.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
        file: path.to_path_buf(),
        problems: vec![Problem {
            key: "(file)".into(),
            message: format!("cannot read: {e}"),
        }],
    })?;
    let base = path.parent().unwrap_or(Path::new("."));
    parse(&text, base, path)
}

/// Validates config text; `base` is the folder relative paths are resolved against and `file`
/// names the source in errors.
pub fn parse(text: &str, base: &Path, file: &Path) -> Result<Config, ConfigError> {
    let mut p = Problems::default();
    let fail = |p: Problems| ConfigError {
        file: file.to_path_buf(),
        problems: p.0,
    };
    let table: toml::Table = match text.parse() {
        Ok(t) => t,
        Err(e) => {
            p.add("(syntax)", one_line(&e.to_string()));
            return Err(fail(p));
        }
    };
    for key in table.keys() {
        if !SECTIONS.contains(&key.as_str()) {
            p.add(
                key,
                format!("unknown section (known: {})", SECTIONS.join(", ")),
            );
        }
    }
    // An absent [mqtt] means every default; a broken one, no MQTT config (the problem is
    // recorded).
    let mqtt = if table.contains_key("mqtt") {
        section::<RawMqtt>(&table, "mqtt", &mut p)
    } else {
        Some(RawMqtt::default())
    }
    .map(|r| mqtt::validate(r, base, &mut p));
    let influxdb = section::<RawInflux>(&table, "influxdb", &mut p)
        .and_then(|r| influx::validate(r, base, &mut p));
    let spool = spool(
        section(&table, "spool", &mut p).unwrap_or_default(),
        base,
        &mut p,
    );
    let http = http(
        section(&table, "http", &mut p).unwrap_or_default(),
        base,
        &mut p,
    );
    let smtp =
        section::<RawSmtp>(&table, "smtp", &mut p).and_then(|r| smtp::validate(r, base, &mut p));
    let sms = section::<RawSms>(&table, "sms", &mut p).and_then(|r| sms::validate(r, base, &mut p));
    let ingest = ingest(
        section(&table, "ingest", &mut p).unwrap_or_default(),
        &mut p,
    );
    let mut raw_alerts: RawAlerts = section(&table, "alerts", &mut p).unwrap_or_default();
    let digest_interval = digest_interval(raw_alerts.digest_interval.take(), &mut p);
    let max_silence = max_silence(raw_alerts.max_silence.take(), &mut p);
    let rules = rules(
        raw_alerts,
        section(&table, "trend", &mut p).unwrap_or_default(),
        section(&table, "shift", &mut p).unwrap_or_default(),
        section(&table, "rate", &mut p).unwrap_or_default(),
        &mut p,
    );
    let profiles: RawProfiles = section(&table, "profile", &mut p).unwrap_or_default();
    let national_precision = precision(profiles, &mut p);
    let raw_qc: BTreeMap<String, RawTests> = section(&table, "qc", &mut p).unwrap_or_default();
    let global_qc = qc_tables(&raw_qc, "qc", &mut p);
    let hj212_tcp = section::<RawHj212Tcp>(&table, "hj212_tcp", &mut p)
        .and_then(|r| hj212_tcp::validate(r, &mut p));
    if let Some(tcp) = &hj212_tcp {
        if tcp.listen.port() != 0 && tcp.listen == http.listen {
            p.add(
                "hj212_tcp.listen",
                format!(
                    "{} is also [http] listen: the two listeners need their own ports",
                    tcp.listen
                ),
            );
        }
    }
    let report = report(
        section(&table, "report", &mut p).unwrap_or_default(),
        &mut p,
    );
    let mut hj212_passwords = Vec::new();
    let mut chat = crate::notify::ChatConfig::default();
    let quiet_hours = quiet_hours(&table, &mut p);
    let bureau_tokens = bureau_tokens(&table, base, &mut p);
    let network = network(
        &table,
        national_precision,
        &global_qc,
        base,
        &mut chat,
        &mut hj212_passwords,
        &mut p,
    );
    if !p.0.is_empty() {
        return Err(fail(p));
    }
    Ok(Config {
        mqtt: mqtt.ok_or_else(|| fail(Problems::default()))?,
        influxdb,
        spool,
        http,
        smtp,
        sms,
        ingest,
        rules,
        digest_interval,
        max_silence,
        quiet_hours,
        network,
        chat,
        national_precision,
        hj212_tcp,
        hj212_passwords,
        bureau_tokens,
        report,
    })
}

/// The bureaus' API token sources (`bureau[i].api_token_env` / `_file`). The entries are read
/// again here, quietly: `network` reports what is wrong with them.
fn bureau_tokens(table: &toml::Table, base: &Path, p: &mut Problems) -> Vec<BureauToken> {
    let raw = entries::<RawBureau>(table, "bureau", &mut Problems::default());
    raw.into_iter()
        .filter_map(|(path, b)| {
            let key = format!("{path}.api_token");
            let source = secret_source(b.api_token_env, b.api_token_file, &key, base, p)?;
            Some(BureauToken {
                bureau: b.id,
                key,
                source,
            })
        })
        .collect()
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Deserializes one top-level table field by field ([`fields::lenient`]); `None` when absent
/// or not a table (the problem is recorded).
fn section<T: DeserializeOwned>(table: &toml::Table, key: &str, p: &mut Problems) -> Option<T> {
    let value = table.get(key)?.clone();
    let value = reject_inline_secrets(value, key, p);
    fields::lenient(value, key, p)
}

/// Deserializes each entry of an array of tables, e.g. `[[station]]`.
fn entries<T: DeserializeOwned>(
    table: &toml::Table,
    key: &str,
    p: &mut Problems,
) -> Vec<(String, T)> {
    let Some(value) = table.get(key) else {
        p.add(key, format!("at least one [[{key}]] is required"));
        return Vec::new();
    };
    let Some(items) = value.as_array() else {
        p.add(
            key,
            format!("must be an array of tables, written [[{key}]]"),
        );
        return Vec::new();
    };
    items
        .iter()
        .enumerate()
        .filter_map(|(i, item)| {
            let path = format!("{key}[{i}]");
            fields::lenient(item.clone(), &path, p).map(|v| (path, v))
        })
        .collect()
}

/// A secret written inline gets a clear message instead of "unknown field".
fn reject_inline_secrets(mut value: toml::Value, key: &str, p: &mut Problems) -> toml::Value {
    if let Some(t) = value.as_table_mut() {
        for secret in ["password", "token"] {
            if t.remove(secret).is_some() {
                p.add(
                    format!("{key}.{secret}"),
                    format!("secrets are never written in the config file: use {secret}_env (a variable's name) or {secret}_file (a path)"),
                );
            }
        }
    }
    value
}

/// A robot or webhook written as a bare string (`wecom = ["https://…?key=…"]`) is a URL with
/// its key inline: said without echoing it, and dropped before the bureau is read (serde's
/// own message would quote the value). Returns the table without such entries.
fn scrub_robot_urls(table: &toml::Table, p: &mut Problems) -> toml::Table {
    let mut table = table.clone();
    let Some(bureaus) = table.get_mut("bureau").and_then(|b| b.as_array_mut()) else {
        return table;
    };
    for (i, bureau) in bureaus.iter_mut().enumerate() {
        let Some(b) = bureau.as_table_mut() else {
            continue;
        };
        for (channel, form) in [
            ("wecom", r#"{ url_env = "…" } or { url_file = "…" }"#),
            ("dingtalk", r#"{ url_env = "…", secret_env = "…" }"#),
            ("webhook", r#"{ url = "…", secret_env = "…" }"#),
        ] {
            let Some(list) = b.get_mut(channel) else {
                continue;
            };
            if list.is_str() {
                *list = toml::Value::Array(Vec::new());
                p.add(
                    format!("bureau[{i}].{channel}"),
                    format!("is a list of tables like [{form}], not a string (the value is not repeated here: a robot's URL holds its key)"),
                );
                continue;
            }
            if let Some(items) = list.as_array_mut() {
                let mut j = 0;
                items.retain(|item| {
                    let keep = !item.is_str();
                    if !keep {
                        p.add(
                            format!("bureau[{i}].{channel}[{j}]"),
                            format!("write {form}: a robot's URL holds its key, so it is read from the environment or a file, never written in the config (the value is not repeated here)"),
                        );
                    }
                    j += 1;
                    keep
                });
            }
        }
    }
    table
}

/// Host and port of a plain `mqtt://` broker URL given on the command line (`simulate`).
///
/// # Errors
/// The [`Problems`] found, under the key `--broker`.
pub fn broker_address(url: &str) -> Result<(String, u16), Problems> {
    let mut p = Problems::default();
    match host_port(url, &[("mqtt", 1883), ("tcp", 1883)], "--broker", &mut p) {
        Some((host, port, _)) if p.0.is_empty() => Ok((host, port)),
        _ => Err(p),
    }
}

fn spool(raw: RawSpool, base: &Path, p: &mut Problems) -> SpoolConfig {
    let dir = match raw.dir.as_deref() {
        Some(dir) => base.join(dir),
        None => default_spool_dir(std::env::var_os("STATE_DIRECTORY").as_deref()),
    };
    let dead_letter_max_size = size(
        raw.dead_letter_max_size.as_deref(),
        "64MiB",
        "spool.dead_letter_max_size",
        p,
    );
    let parsed = raw
        .dead_letter_max_size
        .as_deref()
        .is_some_and(|t| crate::settings::units::parse_size(t).is_ok());
    if parsed && dead_letter_max_size < crate::deadletter::MIN_MAX_SIZE {
        p.add(
            "spool.dead_letter_max_size",
            "must be at least 4KiB (one record must fit)",
        );
    }
    SpoolConfig {
        dir,
        max_size: size(raw.max_size.as_deref(), "2GiB", "spool.max_size", p),
        dead_letter_max_size,
    }
}

/// `[spool] dir` when the file leaves it out: `spool` under systemd's state directory when
/// the unit sets `StateDirectory=` (systemd passes `$STATE_DIRECTORY`, a colon-separated list
/// when several are set; the first is ours, see systemd.exec(5) "Environment variables in
/// spawned processes"), else `/var/lib/riverwatch/spool` (SPEC §10).
fn default_spool_dir(state_directory: Option<&std::ffi::OsStr>) -> PathBuf {
    let first = state_directory
        .and_then(|dirs| dirs.to_str())
        .and_then(|dirs| dirs.split(':').next())
        .filter(|dir| dir.starts_with('/'));
    match first {
        Some(dir) => Path::new(dir).join("spool"),
        None => PathBuf::from("/var/lib/riverwatch/spool"),
    }
}

fn http(raw: RawHttp, base: &Path, p: &mut Problems) -> HttpConfig {
    let text = raw.listen.as_deref().unwrap_or("127.0.0.1:9750");
    let listen = text.parse().unwrap_or_else(|_| {
        p.add(
            "http.listen",
            format!("{text:?} is not an address like \"127.0.0.1:9750\""),
        );
        SocketAddr::from(([127, 0, 0, 1], 9750))
    });
    HttpConfig {
        listen,
        token: secret_source(raw.token_env, raw.token_file, "http.token", base, p),
    }
}

fn ingest(raw: RawIngest, p: &mut Problems) -> IngestConfig {
    let max_payload = size(
        raw.max_payload.as_deref(),
        "256KiB",
        "ingest.max_payload",
        p,
    );
    // A size that did not parse is reported once, by `size`, not again as out of range.
    let parsed = raw
        .max_payload
        .as_deref()
        .is_none_or(|t| crate::settings::units::parse_size(t).is_ok());
    if parsed && (max_payload == 0 || max_payload > 256 << 20) {
        p.add("ingest.max_payload", "must be between 1 B and 256 MiB");
    }
    let max_age = duration(raw.max_age.as_deref(), "365d", "ingest.max_age", p);
    // Readings before 2000 are refused anyway; a longer age only risks overflowing time
    // arithmetic.
    if max_age > MAX_AGE_CEILING {
        p.add(
            "ingest.max_age",
            "must be at most 36500d (readings before 2000 are refused whatever it says)",
        );
    }
    IngestConfig {
        max_payload: usize::try_from(max_payload).unwrap_or(usize::MAX),
        max_future_skew: duration(
            raw.max_future_skew.as_deref(),
            "10m",
            "ingest.max_future_skew",
            p,
        ),
        max_age,
    }
}

/// The longest `ingest.max_age`: 100 years.
const MAX_AGE_CEILING: Duration = Duration::from_secs(36_500 * 86_400);

fn rules(a: RawAlerts, t: RawTrend, s: RawShift, r: RawRate, p: &mut Problems) -> RuleConfig {
    use crate::domain::trend::TrendTest;
    let d = RuleConfig::default();
    let count = |v: Option<i64>, default: u32, key: &str, p: &mut Problems| match v {
        None => default,
        Some(n @ 1..=1000) => n as u32,
        Some(n) => {
            p.add(key, format!("{n} is not between 1 and 1000"));
            default
        }
    };
    let number = |v: Option<f64>,
                  default: f64,
                  range: std::ops::RangeInclusive<f64>,
                  key: &str,
                  p: &mut Problems| match v {
        None => default,
        Some(x) if range.contains(&x) => x,
        Some(x) => {
            p.add(
                key,
                format!("{x} is not between {} and {}", range.start(), range.end()),
            );
            default
        }
    };
    let span = |v: Option<String>, default: chrono::Duration, key: &str, p: &mut Problems| match v {
        None => default,
        Some(text) => {
            chrono::Duration::from_std(duration(Some(&text), "", key, p)).unwrap_or(default)
        }
    };
    let fault_fire_after = count(
        a.fault_fire_after,
        d.fault.fire_after,
        "alerts.fault_fire_after",
        p,
    );
    let fault_window = count(
        a.fault_window,
        d.fault.window.max(fault_fire_after),
        "alerts.fault_window",
        p,
    );
    if fault_window < fault_fire_after {
        p.add(
            "alerts.fault_window",
            format!(
                "{fault_window} readings cannot hold fault_fire_after = {fault_fire_after} faults"
            ),
        );
    }
    let fire_after = count(
        a.fire_after,
        d.persistence.fire_after,
        "alerts.fire_after",
        p,
    );
    let window = count(a.window, fire_after, "alerts.window", p);
    if window < fire_after {
        p.add(
            "alerts.window",
            format!("{window} readings cannot hold fire_after = {fire_after} breaches"),
        );
    }
    RuleConfig {
        persistence: Persistence {
            fire_after,
            window: window.max(fire_after),
            clear_after: count(
                a.clear_after,
                d.persistence.clear_after,
                "alerts.clear_after",
                p,
            ),
            renotify: a
                .renotify
                .map(|text| span(Some(text), chrono::Duration::zero(), "alerts.renotify", p)),
        },
        fault: Persistence {
            fire_after: fault_fire_after,
            window: fault_window.max(fault_fire_after),
            ..d.fault
        },
        hysteresis: number(
            a.hysteresis,
            d.hysteresis,
            0.0..=0.9,
            "alerts.hysteresis",
            p,
        ),
        offline_factor: number(
            a.offline_factor,
            d.offline_factor,
            1.0..=100.0,
            "alerts.offline_factor",
            p,
        ),
        arrival_tolerance: span(
            a.arrival_tolerance,
            d.arrival_tolerance,
            "alerts.arrival_tolerance",
            p,
        ),
        arrival_share: number(
            a.arrival_share,
            d.arrival_share,
            0.01..=1.0,
            "alerts.arrival_share",
            p,
        ),
        trend_window: span(t.window, d.trend_window, "trend.window", p),
        trend_alpha: number(t.alpha, d.trend_alpha, 0.0001..=0.5, "trend.alpha", p),
        trend_test: match t.test.as_deref() {
            None => d.trend_test,
            Some(key) => TrendTest::from_key(key).unwrap_or_else(|| {
                let known: Vec<String> = TrendTest::ALL
                    .iter()
                    .map(|t| format!("{:?}", t.key()))
                    .collect();
                p.add(
                    "trend.test",
                    format!("{key:?} is not a trend test ({})", known.join(" or ")),
                );
                d.trend_test
            }),
        },
        trend_horizon: span(t.horizon, d.trend_horizon, "trend.horizon", p),
        trend_min_span: span(t.min_span, d.trend_min_span, "trend.min_span", p),
        shift_min_change: number(
            s.min_change,
            d.shift_min_change,
            0.0..=10.0,
            "shift.min_change",
            p,
        ),
        trend_min_points: count(
            t.min_points,
            d.trend_min_points as u32,
            "trend.min_points",
            p,
        )
        .max(3) as usize,
        shift_baseline: count(s.baseline, d.shift_baseline as u32, "shift.baseline", p).max(3)
            as usize,
        cusum_k: number(s.cusum_k, d.cusum_k, 0.0..=5.0, "shift.cusum_k", p),
        cusum_h: number(s.cusum_h, d.cusum_h, 0.5..=50.0, "shift.cusum_h", p),
        ewma_lambda: number(
            s.ewma_lambda,
            d.ewma_lambda,
            0.01..=1.0,
            "shift.ewma_lambda",
            p,
        ),
        ewma_l: number(s.ewma_l, d.ewma_l, 0.5..=10.0, "shift.ewma_l", p),
        rate_window: span(r.window, d.rate_window, "rate.window", p),
        rate_fraction: number(
            r.fraction,
            d.rate_fraction,
            0.01..=100.0,
            "rate.fraction",
            p,
        ),
    }
}

/// The shortest and longest `[alerts] digest_interval`: a digest per second is no longer a
/// digest, and one a day is as late as station operators can still act on.
const DIGEST_INTERVAL: (Duration, Duration) = (Duration::from_secs(1), Duration::from_secs(86_400));

fn digest_interval(raw: Option<String>, p: &mut Problems) -> Duration {
    let key = "alerts.digest_interval";
    let interval = duration(raw.as_deref(), "15m", key, p);
    // Zero: the text was refused already, with its reason.
    if !interval.is_zero() && !(DIGEST_INTERVAL.0..=DIGEST_INTERVAL.1).contains(&interval) {
        p.add(key, "must be between 1s and 1d");
    }
    interval.clamp(DIGEST_INTERVAL.0, DIGEST_INTERVAL.1)
}

/// `[report]`: `min_coverage` is a share, 0 (claim a class from any data) to 1 (only from
/// complete months).
fn report(raw: RawReport, p: &mut Problems) -> ReportConfig {
    let min_coverage = raw.min_coverage.unwrap_or(0.75);
    if !(0.0..=1.0).contains(&min_coverage) {
        p.add(
            "report.min_coverage",
            format!("{min_coverage} is not a share between 0 and 1 (e.g. 0.75)"),
        );
    }
    ReportConfig {
        min_coverage: min_coverage.clamp(0.0, 1.0),
    }
}

/// The shortest and longest `[alerts] max_silence`: a silence shorter than a minute mutes
/// nothing, and one longer than a month is a rule change that belongs in the config.
const MAX_SILENCE: (Duration, Duration) =
    (Duration::from_secs(60), Duration::from_secs(30 * 86_400));

fn max_silence(raw: Option<String>, p: &mut Problems) -> Duration {
    let key = "alerts.max_silence";
    let max = duration(raw.as_deref(), "7d", key, p);
    // Zero: the text was refused already, with its reason.
    if !max.is_zero() && !(MAX_SILENCE.0..=MAX_SILENCE.1).contains(&max) {
        p.add(key, "must be between 1m and 30d");
    }
    max.clamp(MAX_SILENCE.0, MAX_SILENCE.1)
}

/// Each `[[bureau]] quiet_hours`, by bureau id, read from the table beside the bureau's other
/// checks (its type is checked with the rest of the entry, so only the window is checked
/// here).
fn quiet_hours(
    table: &toml::Table,
    p: &mut Problems,
) -> BTreeMap<String, crate::domain::quiet::QuietHours> {
    let mut out = BTreeMap::new();
    let bureaus = table.get("bureau").and_then(|b| b.as_array());
    for (i, b) in bureaus.into_iter().flatten().enumerate() {
        let (Some(id), Some(text)) = (
            b.get("id").and_then(|v| v.as_str()),
            b.get("quiet_hours").and_then(|v| v.as_str()),
        ) else {
            continue;
        };
        match crate::domain::quiet::QuietHours::parse(text) {
            Ok(q) => {
                out.insert(id.to_string(), q);
            }
            Err(why) => p.add(format!("bureau[{i}].quiet_hours"), why.to_string()),
        }
    }
    out
}

fn precision(raw: RawProfiles, p: &mut Problems) -> Precision {
    let mut out = Precision::default();
    let Some(nr) = raw.national_realtime else {
        return out;
    };
    for (key, decimals) in nr.precision {
        let path = format!("profile.national_realtime.precision.{key}");
        match (Param::from_key(&key), decimals) {
            (None, _) => p.add(path, format!("{key:?} is not a parameter key")),
            (Some(param), d @ 0..=6) => {
                if !out.set(param, d as u32) {
                    p.add(path, format!("{key:?} is not judged by the national_realtime profile (ph, do, codmn, nh3n, tp)"));
                }
            }
            (Some(_), d) => p.add(path, format!("{d} decimals is not between 0 and 6")),
        }
    }
    out
}

/// Ids appear in MQTT topics and InfluxDB tags, so they are kept to a safe alphabet.
fn check_id(id: &str, key: &str, p: &mut Problems) {
    let ok = !id.is_empty()
        && id.len() <= 64
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if !ok {
        p.add(
            key,
            format!("{id:?} must be 1–64 characters of a-z, A-Z, 0-9, '_' or '-'"),
        );
    }
}

fn check_unique<'a>(
    seen: &mut HashSet<&'a str>,
    id: &'a str,
    what: &str,
    key: &str,
    p: &mut Problems,
) {
    if !seen.insert(id) {
        p.add(key, format!("{what} {id:?} is configured twice"));
    }
}

/// Validates `[qc.<param>]` tables (as ioos_qc would refuse them) into tests per parameter.
fn qc_tables(
    raw: &BTreeMap<String, RawTests>,
    prefix: &str,
    p: &mut Problems,
) -> BTreeMap<Param, Tests> {
    let mut out = BTreeMap::new();
    for (key, t) in raw {
        let path = format!("{prefix}.{key}");
        let Some(param) = Param::from_key(key) else {
            p.add(&path, format!("{key:?} is not a parameter key"));
            continue;
        };
        let span = |s: [f64; 2], what: &str, p: &mut Problems| {
            // Written so that NaN bounds are refused too.
            if s[0].partial_cmp(&s[1]) != Some(std::cmp::Ordering::Less) {
                p.add(
                    format!("{path}.{what}"),
                    format!("[{}, {}] is not [low, high]", s[0], s[1]),
                );
            }
            (s[0], s[1])
        };
        let positive = |v: f64, what: &str, p: &mut Problems| {
            if !(v > 0.0 && v.is_finite()) {
                p.add(
                    format!("{path}.{what}"),
                    format!("{v} must be a positive number"),
                );
            }
            v
        };
        let gross_range = t.gross_range_test.as_ref().map(|g| {
            let fail = span(g.fail_span, "gross_range_test.fail_span", p);
            let suspect = g
                .suspect_span
                .map(|s| span(s, "gross_range_test.suspect_span", p));
            if suspect.is_some_and(|(lo, hi)| lo < fail.0 || hi > fail.1) {
                p.add(
                    format!("{path}.gross_range_test.suspect_span"),
                    "must lie inside fail_span (as ioos_qc requires)",
                );
            }
            GrossRange {
                fail_span: fail,
                suspect_span: suspect,
            }
        });
        let spike = t.spike_test.as_ref().map(|s| Spike {
            suspect_threshold: s
                .suspect_threshold
                .map(|v| positive(v, "spike_test.suspect_threshold", p)),
            fail_threshold: s
                .fail_threshold
                .map(|v| positive(v, "spike_test.fail_threshold", p)),
        });
        let rate_of_change = t.rate_of_change_test.as_ref().map(|r| RateOfChange {
            threshold: positive(r.threshold, "rate_of_change_test.threshold", p),
            fail_threshold: r
                .fail_threshold
                .map(|v| positive(v, "rate_of_change_test.fail_threshold", p)),
        });
        let flat_line = t.flat_line_test.as_ref().map(|f| {
            if f.suspect_threshold > f.fail_threshold {
                p.add(
                    format!("{path}.flat_line_test"),
                    "suspect_threshold must not exceed fail_threshold (seconds)",
                );
            }
            FlatLine {
                tolerance: positive(f.tolerance, "flat_line_test.tolerance", p),
                suspect_threshold: positive(
                    f.suspect_threshold,
                    "flat_line_test.suspect_threshold",
                    p,
                ),
                fail_threshold: positive(f.fail_threshold, "flat_line_test.fail_threshold", p),
            }
        });
        out.insert(
            param,
            Tests {
                gross_range,
                spike,
                rate_of_change,
                flat_line,
            },
        );
    }
    out
}

/// Validates a station's `detection_limit` table: known parameter keys, positive finite limits.
fn detection_limits(
    raw: Option<&BTreeMap<String, f64>>,
    path: &str,
    p: &mut Problems,
) -> BTreeMap<Param, f64> {
    let mut out = BTreeMap::new();
    for (key, &limit) in raw.into_iter().flatten() {
        let at = format!("{path}.detection_limit.{key}");
        match Param::from_key(key) {
            None => p.add(&at, format!("{key:?} is not a parameter key")),
            Some(_) if !(limit > 0.0 && limit.is_finite()) => p.add(
                &at,
                format!("{limit} must be a positive number (the parameter's unit)"),
            ),
            Some(param) => {
                out.insert(param, limit);
            }
        }
    }
    out
}

/// The stations, rivers and bureaus; the bureaus' robot and webhook settings go to `chat`,
/// each station's logger password source to `passwords` (file paths resolved against `base`).
fn network(
    table: &toml::Table,
    precision: Precision,
    global_qc: &BTreeMap<Param, Tests>,
    base: &Path,
    chat: &mut crate::notify::ChatConfig,
    passwords: &mut Vec<LoggerPassword>,
    p: &mut Problems,
) -> Network {
    let scrubbed = scrub_robot_urls(table, p);
    let raw_bureaus = entries::<RawBureau>(&scrubbed, "bureau", p);
    let raw_rivers = entries::<RawRiver>(table, "river", p);
    let raw_stations = entries::<RawStation>(table, "station", p);

    let mut seen = HashSet::new();
    for (path, b) in &raw_bureaus {
        check_id(&b.id, &format!("{path}.id"), p);
        check_unique(&mut seen, &b.id, "bureau", &format!("{path}.id"), p);
        if b.name.trim().is_empty() {
            p.add(format!("{path}.name"), "must not be empty");
        }
        contacts(&b.email, &b.sms, path, p);
        chat_contacts(b, path, base, chat, p);

        let robots = b.wecom.len() + b.dingtalk.len() + b.webhook.len();
        if b.email.is_empty() && b.sms.is_empty() && robots == 0 {
            p.add(
                path.clone(),
                format!(
                    "bureau {:?} has no email or sms recipient (nor wecom, dingtalk, webhook), so its alerts would go nowhere",
                    b.id
                ),
            );
        }
        escalation(b, path, p);
        if let Some(ops) = &b.operators {
            let at = format!("{path}.operators");
            contacts(&ops.email, &ops.sms, &at, p);
            if ops.email.is_empty() && ops.sms.is_empty() {
                p.add(
                    at,
                    "lists no email or sms recipient: leave it out to send the station-fault digest to the bureau's own recipients",
                );
            }
        }
    }
    let mut seen = HashSet::new();
    for (path, r) in &raw_rivers {
        check_id(&r.id, &format!("{path}.id"), p);
        check_unique(&mut seen, &r.id, "river", &format!("{path}.id"), p);
    }
    let bureau_ids: HashSet<&str> = raw_bureaus.iter().map(|(_, b)| b.id.as_str()).collect();
    let river_ids: HashSet<&str> = raw_rivers.iter().map(|(_, r)| r.id.as_str()).collect();
    let station_ids: HashSet<&str> = raw_stations.iter().map(|(_, s)| s.id.as_str()).collect();

    let mut seen = HashSet::new();
    let mut seen_mn = HashSet::new();
    let mut stations = Vec::new();
    for (path, s) in &raw_stations {
        let key = |k: &str| format!("{path}.{k}");
        check_id(&s.id, &key("id"), p);
        check_unique(&mut seen, &s.id, "station", &key("id"), p);
        if !river_ids.contains(s.river.as_str()) {
            p.add(
                key("river"),
                format!("{:?} is not a configured river", s.river),
            );
        }
        if !bureau_ids.contains(s.city.as_str()) {
            p.add(
                key("city"),
                format!("{:?} is not a configured bureau", s.city),
            );
        }
        let water_body = match s.water_body.as_deref().unwrap_or("river") {
            "river" => WaterBody::River,
            "lake" => WaterBody::Lake,
            other => {
                p.add(
                    key("water_body"),
                    format!("{other:?} is not \"river\" or \"lake\""),
                );
                WaterBody::River
            }
        };
        let target = u8::try_from(s.target_class)
            .ok()
            .and_then(Class::target)
            .unwrap_or_else(|| {
                p.add(
                    key("target_class"),
                    format!("{} is not a GB 3838 class 1 to 5", s.target_class),
                );
                Class::III
            });
        let cadence = duration(s.cadence.as_deref(), "4h", &key("cadence"), p);
        let downstream = match (&s.downstream, &s.travel_time) {
            (Some(d), Some(t)) => {
                if d == &s.id {
                    p.add(key("downstream"), "a station cannot be its own downstream");
                } else if !station_ids.contains(d.as_str()) {
                    p.add(
                        key("downstream"),
                        format!("{d:?} is not a configured station"),
                    );
                }
                Some(Downstream {
                    station: d.clone(),
                    travel_time: duration(Some(t), "", &key("travel_time"), p),
                })
            }
            (Some(_), None) => {
                p.add(
                    key("travel_time"),
                    "required with downstream (how long water takes to get there)",
                );
                None
            }
            (None, Some(_)) => {
                p.add(key("travel_time"), "given without downstream");
                None
            }
            (None, None) => None,
        };
        if let Some(mn) = &s.hj212_mn {
            if mn.is_empty() || mn.len() > 24 || !mn.is_ascii() {
                p.add(
                    key("hj212_mn"),
                    format!("{mn:?} is not an HJ 212 MN (1–24 ASCII characters)"),
                );
            } else if mn.contains([';', ',', '=', '&']) {
                // A frame could never carry it: these characters separate its fields.
                p.add(
                    key("hj212_mn"),
                    format!("{mn:?} holds ; , = or &, which separate an HJ 212 frame's fields"),
                );
            }
            if !seen_mn.insert(mn.as_str()) {
                p.add(
                    key("hj212_mn"),
                    format!("MN {mn:?} is used by two stations"),
                );
            }
        }
        let pw_key = key("hj212_pw");
        let pw = secret_source(
            s.hj212_pw_env.clone(),
            s.hj212_pw_file.clone(),
            &pw_key,
            base,
            p,
        );
        if let Some(source) = pw {
            if s.hj212_mn.is_none() {
                p.add(
                    &pw_key,
                    "a logger password needs the station's hj212_mn (frames are matched by MN)",
                );
            }
            passwords.push(LoggerPassword {
                key: pw_key,
                station: s.id.clone(),
                source,
            });
        }
        let mut hj212_codes = Vec::new();
        for (code, raw) in s.hj212_codes.iter().flatten() {
            let path = format!("{path}.hj212_codes.{code}");
            let (key, unit) = match raw {
                RawCode::Key(k) => (k.as_str(), "mg/L"),
                RawCode::Full { param, unit } => (param.as_str(), unit.as_str()),
            };
            let scale = match unit {
                "mg/L" => 1.0,
                "ug/L" | "µg/L" => 0.001,
                other => {
                    p.add(&path, format!("unit {other:?} is not \"mg/L\" or \"ug/L\""));
                    1.0
                }
            };
            match Param::from_key(key) {
                Some(param) => hj212_codes.push((code.clone(), CodeTarget { param, scale })),
                None => p.add(&path, format!("{key:?} is not a parameter key")),
            }
        }
        let profile = match s.profile.as_deref().unwrap_or("full") {
            "full" => Profile::Full,
            "national_realtime" => Profile::NationalRealtime(precision),
            other => {
                p.add(
                    key("profile"),
                    format!("{other:?} is not \"full\" or \"national_realtime\""),
                );
                Profile::Full
            }
        };
        let evaluated = match &s.evaluate {
            None => gb3838::default_evaluated(water_body),
            Some(keys) => keys
                .iter()
                .enumerate()
                .filter_map(|(i, k)| match Param::from_key(k) {
                    Some(param) if gb3838::limits(param, water_body).is_some() => Some(param),
                    Some(_) => {
                        p.add(
                            format!("{path}.evaluate[{i}]"),
                            format!("{k:?} has no GB 3838 class limits"),
                        );
                        None
                    }
                    None => {
                        p.add(
                            format!("{path}.evaluate[{i}]"),
                            format!("{k:?} is not a parameter key"),
                        );
                        None
                    }
                })
                .collect(),
        };
        let mut qc = global_qc.clone();
        if let Some(own) = &s.qc {
            qc.extend(qc_tables(own, &format!("{path}.qc"), p));
        }
        let detection_limits = detection_limits(s.detection_limit.as_ref(), path, p);
        stations.push(Station {
            id: s.id.clone(),
            name: s.name.clone(),
            river: s.river.clone(),
            city: s.city.clone(),
            water_body,
            target,
            boundary: s.boundary.unwrap_or(false),
            cadence,
            downstream,
            hj212_mn: s.hj212_mn.clone(),
            hj212_codes,
            profile,
            evaluated,
            qc,
            detection_limits,
        });
    }
    check_downstream_cycles(&stations, &raw_stations, p);
    Network {
        bureaus: raw_bureaus
            .into_iter()
            .map(|(_, b)| Bureau {
                id: b.id.clone(),
                name: b.name,
                duty: Contacts {
                    email: b.email,
                    sms: b.sms,
                    wecom: labels(&b.id, "wecom", b.wecom.len()),
                    dingtalk: labels(&b.id, "dingtalk", b.dingtalk.len()),
                    webhook: labels(&b.id, "webhook", b.webhook.len()),
                },
                operators: b.operators.map(|o| Contacts {
                    email: o.email,
                    sms: o.sms,
                    ..Contacts::default()
                }),
                escalation: match (&b.escalate_after, b.escalation) {
                    (Some(after), Some(to)) => crate::config::units::parse_duration(after)
                        .ok()
                        .map(|after| crate::domain::network::Escalation {
                            after,
                            to: Contacts {
                                email: to.email,
                                sms: to.sms,
                                ..Contacts::default()
                            },
                        }),
                    _ => None,
                },
            })
            .collect(),
        rivers: raw_rivers
            .into_iter()
            .map(|(_, r)| River {
                id: r.id,
                name: r.name,
            })
            .collect(),
        stations,
        index: Default::default(),
    }
}

/// `<bureau>.<channel>[i]` for each of `n` robots: the non-secret names by which contacts,
/// outbox files and logs refer to a bureau's robots.
fn labels(bureau: &str, channel: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{bureau}.{channel}[{i}]")).collect()
}

/// Validates a bureau's chat robots and webhooks (`<at>.wecom[i]`, …) into `chat`, each
/// under its label.
fn chat_contacts(
    b: &RawBureau,
    at: &str,
    base: &Path,
    chat: &mut crate::notify::ChatConfig,
    p: &mut Problems,
) {
    use crate::notify::{dingtalk, webhook, wecom};
    for (i, r) in b.wecom.iter().enumerate() {
        let label = format!("{}.wecom[{i}]", b.id);
        let key = format!("{at}.wecom[{i}]");
        chat.wecom
            .extend(wecom::config::validate(r, label, &key, base, p));
    }
    for (i, r) in b.dingtalk.iter().enumerate() {
        let label = format!("{}.dingtalk[{i}]", b.id);
        let key = format!("{at}.dingtalk[{i}]");
        chat.dingtalk
            .extend(dingtalk::config::validate(r, label, &key, base, p));
    }
    for (i, r) in b.webhook.iter().enumerate() {
        let label = format!("{}.webhook[{i}]", b.id);
        let key = format!("{at}.webhook[{i}]");
        chat.webhook
            .extend(webhook::config::validate(r, label, &key, base, p));
    }
}

/// Checks a bureau's `escalate_after` and `escalation`: both or neither, a positive duration,
/// at least one valid recipient.
fn escalation(b: &RawBureau, at: &str, p: &mut Problems) {
    match (&b.escalate_after, &b.escalation) {
        (None, None) => {}
        (Some(_), None) => p.add(
            format!("{at}.escalate_after"),
            "needs `escalation = { email = [...], sms = [...] }`: whom to tell when nobody acknowledges",
        ),
        (None, Some(_)) => p.add(
            format!("{at}.escalation"),
            "needs `escalate_after` (like \"30m\"): how long the bureau has to acknowledge",
        ),
        (Some(after), Some(to)) => {
            duration(Some(after), "", &format!("{at}.escalate_after"), p);
            let key = format!("{at}.escalation");
            contacts(&to.email, &to.sms, &key, p);
            if to.email.is_empty() && to.sms.is_empty() {
                p.add(key, "lists no email or sms recipient");
            }
        }
    }
}

/// Checks one contact list's addresses (`<at>.email[i]`, `<at>.sms[i]`).
fn contacts(email: &[String], sms: &[String], at: &str, p: &mut Problems) {
    for (i, e) in email.iter().enumerate() {
        if e.parse::<lettre::Address>().is_err() {
            p.add(
                format!("{at}.email[{i}]"),
                format!("{e:?} is not an email address"),
            );
        }
    }
    for (i, phone) in sms.iter().enumerate() {
        let digits = phone.strip_prefix('+').unwrap_or(phone);
        if !(5..=15).contains(&digits.len()) || !digits.chars().all(|c| c.is_ascii_digit()) {
            p.add(
                format!("{at}.sms[{i}]"),
                format!("{phone:?} is not a phone number like \"+8613800000000\""),
            );
        }
    }
}

/// Water cannot flow in a circle: a cycle would send upstream warnings round for ever.
fn check_downstream_cycles(stations: &[Station], raw: &[(String, RawStation)], p: &mut Problems) {
    for (start, (path, _)) in stations.iter().zip(raw) {
        let mut at = start;
        for _ in 0..stations.len() {
            let Some(next) = at
                .downstream
                .as_ref()
                .and_then(|d| stations.iter().find(|s| s.id == d.station))
            else {
                break;
            };
            if next.id == start.id {
                // A station that names itself is reported once, as its own downstream.
                if at.id != start.id {
                    p.add(
                        format!("{path}.downstream"),
                        format!(
                            "station {:?} is downstream of itself through a cycle",
                            start.id
                        ),
                    );
                }
                break;
            }
            at = next;
        }
    }
}

mod fields;

#[cfg(test)]
mod tests;
