//! `riverwatch demo`: the whole pipeline on its embedded default, with no outside servers.
//!
//! Starts an in-process MQTT broker (rumqttd) on a free loopback port, runs the real pipeline
//! against it, and plays simulated stations from `config/demo.toml` in accelerated time: diurnal
//! temperature and DO, noise, and every rule at work — a scripted NH3-N incident at the first
//! station that drains into a boundary section, arriving there after the configured travel
//! time; a slow NH3-N rise (trend) at a looser-target station; a pH probe flagged D for some
//! hours (station fault) on another river; and stations with a cadence under a minute played
//! live in wall time until they fall silent (offline). Stations with an `hj212_mn` send HJ 212
//! hourly frames instead of JSON. A few malformed payloads show refusals. Readings go to a line-protocol file under `--out` (or InfluxDB's v1
//! API with `--influx-url`), emails to `.eml` files, SMS to a JSON-lines log, every alert
//! transition and incident event to `riverwatch/alerts/<station>` on the in-process broker (the
//! status too, on `riverwatch/status`); a summary ends it.
//!
//! Simulated time runs from `now − duration` to `now`, so no reading is in the future.

use crate::app::{self, Outputs};
use crate::config::{self, Config, InfluxApi};
use crate::domain::hj212;
use crate::domain::network::Station;
use crate::domain::param::Param;
use crate::notify::email::EmailSink;
use crate::notify::sms::SmsSink;
use crate::store::backend::Backend;
use crate::store::file::FileWriter;
use crate::store::influx::V1Writer;
use crate::telemetry::Metrics;
use chrono::{DateTime, SecondsFormat, Utc};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

const EMBEDDED_CONFIG: &str = include_str!("../../config/demo.toml");

#[derive(clap::Args, Debug)]
pub struct Options {
    /// Config file (default: the embedded config/demo.toml).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Simulated time span, e.g. "3d" or "36h".
    #[arg(long, default_value = "3d")]
    duration: String,
    /// Simulated seconds per real second (default: the whole span in about 15 s).
    #[arg(long)]
    speed: Option<f64>,
    /// Output folder: outbox/*.eml, sms.jsonl, spool/, summary.json.
    #[arg(long, default_value = "riverwatch-demo")]
    out: PathBuf,
    /// Store readings in InfluxDB through the v1 API at this URL, in the database of the
    /// config's v1 [influxdb] (default "water"), which the demo creates when it is missing.
    #[arg(long, value_name = "URL")]
    influx_url: Option<String>,
}

/// The demo's exit code: 0 when every published message was taken in custody.
pub fn main(opts: Options) -> ExitCode {
    let cfg = match &opts.config {
        Some(path) => config::load(path),
        None => config::parse(
            EMBEDDED_CONFIG,
            Path::new("."),
            Path::new("(embedded) config/demo.toml"),
        ),
    };
    let mut cfg = match cfg {
        Ok(c) => c,
        Err(e) => {
            eprint!("{e}");
            return ExitCode::from(64);
        }
    };
    let span = match config::units::parse_duration(&opts.duration) {
        Ok(d) if d >= Duration::from_secs(3600) => d,
        _ => {
            eprintln!(
                "--duration {:?}: expected a span of at least 1h, like \"3d\"",
                opts.duration
            );
            return ExitCode::from(64);
        }
    };
    let speed = opts.speed.unwrap_or(span.as_secs_f64() / 15.0);
    if !(speed.is_finite() && speed > 0.0) {
        eprintln!("--speed must be a positive number");
        return ExitCode::from(64);
    }
    let Some(runtime) = app::runtime() else {
        return ExitCode::FAILURE;
    };
    match runtime.block_on(run(&mut cfg, &opts, span, speed)) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("demo failed: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Why the demo could not run to its summary.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    /// A file or folder under `--out`.
    #[error("{what} {}: {source}", path.display())]
    File {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    /// The in-process broker did not start.
    #[error("the in-process broker: {0}")]
    Broker(String),
    #[error(transparent)]
    Build(#[from] app::BuildError),
    #[error(transparent)]
    Start(#[from] app::StartError),
    /// The MQTT alert channel on the in-process broker.
    #[error(transparent)]
    Channel(#[from] crate::notify::SetupError),
    /// `--influx-url` cannot be used.
    #[error("--influx-url: {0}")]
    Influx(#[from] crate::store::influx::BuildError),
    /// The database could not be created at `--influx-url`.
    #[error("--influx-url {url}: cannot create the database {database:?}: {why}")]
    CreateDatabase {
        url: String,
        database: String,
        why: String,
    },
    /// The demo's sender address (a constant) does not parse.
    #[error("the demo's sender address: {0}")]
    Sender(#[from] lettre::address::AddressError),
    #[error("the pipeline did not subscribe on the in-process broker")]
    NotSubscribed,
    /// The demo's station client lost the broker.
    #[error("the demo's stations: {0}")]
    Stations(#[from] rumqttc::ClientError),
    #[error("--duration {0:?} is too long")]
    Span(String),
}

/// Creates `database` on the InfluxDB 1.x server at `url` (`CREATE DATABASE` through
/// `POST /query`, a no-op when it exists), so the demo's readings are stored rather than
/// refused with 404 and counted as "stored 0". A server that refuses (auth, not InfluxDB 1.x)
/// or cannot be reached stops the demo before it starts, with the reason.
/// See <https://docs.influxdata.com/influxdb/v1/query_language/manage-database/>.
async fn create_database(url: &str, database: &str) -> Result<(), DemoError> {
    let fail = |why: String| DemoError::CreateDatabase {
        url: url.to_string(),
        database: database.to_string(),
        why,
    };
    let client = crate::outbound::client_builder(Duration::from_secs(10))
        .build()
        .map_err(|e| fail(e.to_string()))?;
    // An identifier in double quotes, its own quotes and backslashes escaped (InfluxQL).
    let quoted = database.replace('\\', "\\\\").replace('"', "\\\"");
    let resp = client
        .post(format!("{}/query", url.trim_end_matches('/')))
        .form(&[("q", format!("CREATE DATABASE \"{quoted}\""))])
        .send()
        .await
        .map_err(|e| fail(format!("cannot reach the server: {e}")))?;
    let status = resp.status();
    let body = resp.text().await.unwrap_or_default();
    if !status.is_success() {
        return Err(fail(format!("HTTP {status}: {}", body.trim())));
    }
    // InfluxDB answers 200 with the statement's error inside `results`.
    let answer: serde_json::Value = serde_json::from_str(&body)
        .map_err(|_| fail(format!("not an InfluxDB 1.x answer: {}", body.trim())))?;
    match answer.pointer("/results/0/error").and_then(|e| e.as_str()) {
        Some(error) => Err(fail(error.to_string())),
        None => Ok(()),
    }
}

/// [`DemoError::File`] for `path`.
fn file_error(what: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> DemoError {
    let path = path.to_path_buf();
    move |source| DemoError::File { what, path, source }
}

fn prepare(out: &Path) -> Result<(), DemoError> {
    for dir in ["outbox", "spool"] {
        let path = out.join(dir);
        std::fs::create_dir_all(&path).map_err(file_error("cannot create", &path))?;
    }
    // Only this demo's own files are removed, so a re-run starts clean.
    let outbox_dir = out.join("outbox");
    let outbox = std::fs::read_dir(&outbox_dir).map_err(file_error("cannot list", &outbox_dir))?;
    for entry in outbox.flatten() {
        if entry.path().extension().is_some_and(|x| x == "eml") {
            let _ = std::fs::remove_file(entry.path());
        }
    }
    for file in [
        "sms.jsonl",
        "summary.json",
        "spool/readings.lp",
        "spool/deadletter.jsonl",
        "spool/alerts.json",
    ] {
        let _ = std::fs::remove_file(out.join(file));
    }
    // Alert state, queued notifications and spooled batches of an earlier demo would carry
    // its alerts into this one.
    for dir in ["spool/outbox", "spool/wal"] {
        let _ = std::fs::remove_dir_all(out.join(dir));
    }
    // SPEC §11: the demo leaves `sms.jsonl`, empty when no SMS went out.
    let sms = out.join("sms.jsonl");
    std::fs::write(&sms, "").map_err(file_error("cannot create", &sms))?;
    Ok(())
}

/// Starts rumqttd on a free loopback port and waits until it accepts connections.
async fn start_broker() -> Result<u16, DemoError> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| DemoError::Broker(format!("cannot find a free port: {e}")))?
        .port();
    let text = format!(
        "id = 0\n[router]\nid = 0\nmax_connections = 100\nmax_outgoing_packet_count = 200\nmax_segment_size = 104857600\nmax_segment_count = 10\n\
         [v4.1]\nname = \"demo\"\nlisten = \"127.0.0.1:{port}\"\nnext_connection_delay_ms = 1\n\
         [v4.1.connections]\nconnection_timeout_ms = 60000\nmax_payload_size = 1048576\nmax_inflight_count = 500\ndynamic_filters = true\n"
    );
    let broker_cfg: rumqttd::Config =
        toml::from_str(&text).map_err(|e| DemoError::Broker(format!("its config: {e}")))?;
    let mut broker = rumqttd::Broker::new(broker_cfg);
    std::thread::Builder::new()
        .name("demo-broker".into())
        .spawn(move || {
            if let Err(e) = broker.start() {
                tracing::error!(error = %e, "the demo broker stopped");
            }
        })
        .map_err(|e| DemoError::Broker(format!("cannot start its thread: {e}")))?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        if tokio::time::Instant::now() > deadline {
            return Err(DemoError::Broker("it did not start within 5 s".into()));
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Ok(port)
}

async fn run(
    cfg: &mut Config,
    opts: &Options,
    span: Duration,
    speed: f64,
) -> Result<bool, DemoError> {
    let out = &opts.out;
    prepare(out)?;
    cfg.spool.dir = out.join("spool");
    let port = start_broker().await?;
    cfg.mqtt.host = "127.0.0.1".into();
    cfg.mqtt.port = port;
    cfg.mqtt.tls = false;
    cfg.mqtt.username = None;
    cfg.mqtt.password = None;
    cfg.mqtt.client_id = "riverwatch-demo".into();
    let writer: Box<dyn Backend> = match &opts.influx_url {
        Some(url) => {
            let database = match cfg.influxdb.as_ref().map(|i| &i.api) {
                Some(InfluxApi::V1 { database, .. }) => database.clone(),
                _ => "water".to_string(),
            };
            create_database(url, &database).await?;
            Box::new(V1Writer::new(
                url,
                &database,
                None,
                None,
                Duration::from_secs(10),
            )?)
        }
        None => Box::new(FileWriter::new(out.join("spool").join("readings.lp"))),
    };
    let from = "riverwatch demo <alerts@riverwatch.invalid>".parse()?;
    let outputs = Outputs {
        writer,
        api_token: None,
        bureau_tokens: Vec::new(),
        // The run's channels in their file modes: emails as .eml files, SMS as log lines; and
        // the MQTT feed on the in-process broker (`riverwatch/alerts/<station>`), as in `run`.
        channels: vec![
            Arc::new(EmailSink::Folder {
                dir: out.join("outbox"),
                from,
            }),
            Arc::new(SmsSink::Log(out.join("sms.jsonl"))),
            crate::notify::mqtt::from_config(&cfg.mqtt)?,
        ],
    };
    let options = app::mqtt_options(cfg)?;
    let running = app::start(cfg, app::Inputs::mqtt(options), outputs)?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !running.session.is_subscribed() {
        if tokio::time::Instant::now() > deadline {
            return Err(DemoError::NotSubscribed);
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    // Whole hours, so readings and alert ids carry round times.
    let now = Utc::now().timestamp();
    let end = DateTime::from_timestamp(now - now % 3600, 0).unwrap_or_else(Utc::now);
    let start = end
        - chrono::Duration::from_std(span).map_err(|_| DemoError::Span(opts.duration.clone()))?;
    let messages = script(cfg, start, end);
    super::say(&format!(
        "riverwatch demo: {} stations, {} of simulated time at {speed:.0}× ({} messages) → {}\n",
        cfg.network.stations.len(),
        opts.duration,
        messages.len(),
        out.display()
    ));
    // The live stations report for the first two fifths of the replay, then fall silent.
    let wall = Duration::from_secs_f64(span.as_secs_f64() / speed);
    let buoys: Vec<Station> = cfg
        .network
        .stations
        .iter()
        .filter(|s| live(s))
        .cloned()
        .collect();
    let has_buoys = !buoys.is_empty();
    let buoys = tokio::spawn(play_live(
        port,
        buoys,
        tokio::time::Instant::now() + wall * 2 / 5,
    ));
    let stations = publish(port, &messages, start, speed).await?;
    let live_acked = buoys.await.unwrap_or(Ok(0))?;
    let published = stations.acked + live_acked;
    let metrics = Arc::clone(&running.metrics);
    settled("storing every message", 30, || {
        Metrics::get(&metrics.messages_acked) >= published
    })
    .await;
    if has_buoys {
        // The silent buoy goes offline on wall time; then its digest and every notification
        // go out before the summary counts them.
        settled("the silent station's offline alert", 30, || {
            metrics
                .alerts_by_level_and_rule()
                .iter()
                .any(|(_, r, n)| *r == crate::domain::alert::Rule::Offline && *n > 0)
        })
        .await;
    }
    // The outbox is counted here (a folder scan), not through its gauge, which only a
    // `/metrics` scrape refreshes: the summary must not count before the last email is out.
    let outbox = Arc::clone(&running.outbox);
    settled("sending the digests and notifications", 30, || {
        Metrics::get(&metrics.digests_pending) == 0 && outbox.count_pending() == 0
    })
    .await;
    let published_alerts = running
        .channels
        .counts(crate::notify::mqtt::NAMES.key)
        .map_or(0, |c| c.sent_total());
    running.stop(Duration::from_secs(10)).await;
    let frames = messages
        .iter()
        .filter(|m| m.topic.ends_with("/hj212"))
        .count();
    let frame_acks = stations.close(frames as u64).await;
    summarise(out, &metrics, published, frame_acks, published_alerts)
}

/// One scheduled publication.
struct Scheduled {
    ts: DateTime<Utc>,
    topic: String,
    payload: String,
}

/// A small deterministic generator (xorshift64*), so every demo run tells the same story.
struct Noise(u64);

impl Noise {
    /// Uniform in [-1, 1).
    fn next(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        let x = self.0.wrapping_mul(0x2545_F491_4F6C_DD1D);
        (x >> 11) as f64 / (1u64 << 52) as f64 - 1.0
    }
}

fn round(v: f64, decimals: i32) -> f64 {
    let f = 10f64.powi(decimals);
    (v * f).round() / f
}

/// Baseline concentrations by target class: cleaner water where the target is stricter.
fn baseline(target: u8) -> [(Param, f64, i32); 9] {
    let (do_, codmn, nh3n, tp, tn, cond) = match target {
        1 | 2 => (7.6, 1.9, 0.22, 0.06, 1.3, 210.0),
        3 => (6.8, 3.2, 0.45, 0.11, 1.8, 260.0),
        _ => (5.2, 5.0, 0.95, 0.18, 2.6, 380.0),
    };
    [
        (Param::Temp, 21.0, 1),
        (Param::Ph, 7.3, 2),
        (Param::Do, do_, 2),
        (Param::Cond, cond, 0),
        (Param::Turb, 14.0, 1),
        (Param::Codmn, codmn, 2),
        (Param::Nh3n, nh3n, 3),
        (Param::Tp, tp, 3),
        (Param::Tn, tn, 2),
    ]
}

/// NH3-N added by the incident at `hours` after its start: a 6 h rise to `peak`, 8 h at the
/// peak, a 6 h fall.
fn incident(hours: f64, peak: f64) -> f64 {
    match hours {
        h if h < 0.0 => 0.0,
        h if h < 6.0 => peak * h / 6.0,
        h if h < 14.0 => peak,
        h if h < 20.0 => peak * (20.0 - h) / 6.0,
        _ => 0.0,
    }
}

/// A station reporting faster than once a minute is played live, in wall time (see [`live`]),
/// not replayed from the script.
fn live(s: &Station) -> bool {
    s.cadence < Duration::from_secs(60)
}

/// Every publication of the demo, in time order.
fn script(cfg: &Config, start: DateTime<Utc>, end: DateTime<Utc>) -> Vec<Scheduled> {
    let net = &cfg.network;
    // The incident starts at the first station whose downstream neighbour is a boundary section.
    let source: Option<&Station> = net.stations.iter().find(|s| {
        s.downstream
            .as_ref()
            .and_then(|d| net.station(&d.station))
            .is_some_and(|d| d.boundary)
    });
    let incident_start = start + (end - start) * 35 / 100;
    let reach: Vec<&str> = source
        .iter()
        .flat_map(|s| {
            [
                Some(s.id.as_str()),
                s.downstream.as_ref().map(|d| d.station.as_str()),
            ]
        })
        .flatten()
        .collect();
    // A slow NH3-N rise (the `trend` early warning) at the first station with a class-Ⅳ or
    // looser target outside the spill's reach, and a probe fault (pH flagged D for some hours:
    // `station_fault`, to the operators' digest) at the first station on another river.
    let trend_at = net
        .stations
        .iter()
        .find(|s| {
            !live(s) && s.target.number() >= 4 && !s.boundary && !reach.contains(&s.id.as_str())
        })
        .map(|s| s.id.as_str());
    let fault_at = net
        .stations
        .iter()
        .find(|s| {
            !live(s)
                && !reach.contains(&s.id.as_str())
                && Some(s.id.as_str()) != trend_at
                && source.is_none_or(|src| src.river != s.river)
        })
        .map(|s| s.id.as_str());
    let (fault_from, fault_to) = (
        start + (end - start) * 45 / 100,
        start + (end - start) * 60 / 100,
    );
    let mut out = Vec::new();
    for (i, s) in net.stations.iter().enumerate().filter(|(_, s)| !live(s)) {
        let mut noise = Noise(0x9E37_79B9_7F4A_7C15 ^ (i as u64 + 1));
        // The incident reaches this station after the travel time, three quarters as strong.
        let arrival = match source {
            Some(src) if src.id == s.id => Some((incident_start, 1.4)),
            Some(src) => src
                .downstream
                .as_ref()
                .filter(|d| d.station == s.id)
                .and_then(|d| chrono::Duration::from_std(d.travel_time).ok())
                .map(|t| (incident_start + t, 1.05)),
            None => None,
        };
        let step = chrono::Duration::from_std(s.cadence).unwrap_or(chrono::Duration::hours(1));
        let mut ts = start + step;
        let mut seq = 0u64;
        while ts <= end {
            let hour = (ts.timestamp() / 60 % 1440) as f64 / 60.0 + 8.0; // local time, UTC+8
            let diurnal = (2.0 * std::f64::consts::PI * (hour - 9.0) / 24.0).sin();
            let bump = arrival.map_or(0.0, |(at, peak)| {
                incident((ts - at).num_minutes() as f64 / 60.0, peak)
            });
            // Half a milligram more by the end: towards the class-Ⅳ limit, not past it.
            let rise = if trend_at == Some(s.id.as_str()) {
                0.45 * (ts - start).num_minutes() as f64 / (end - start).num_minutes().max(1) as f64
            } else {
                0.0
            };
            let faulty = fault_at == Some(s.id.as_str()) && ts >= fault_from && ts < fault_to;
            let mut values = serde_json::Map::new();
            for (param, base, decimals) in baseline(s.target.number()) {
                let n = noise.next();
                let v = match param {
                    Param::Temp => base + 2.5 * diurnal + 0.2 * n,
                    Param::Do => base + 0.6 * diurnal + 0.1 * n - 0.6 * bump,
                    Param::Ph => base + 0.05 * n,
                    Param::Nh3n => base * (1.0 + 0.08 * n) + bump + rise,
                    _ => base * (1.0 + 0.05 * n),
                };
                values.insert(param.key().into(), round(v.max(0.0), decimals).into());
            }
            seq += 1;
            if let Some(mn) = &s.hj212_mn {
                out.push(Scheduled {
                    ts,
                    topic: format!("wq/{}/{}/hj212", s.river, s.id),
                    payload: hourly_frame(mn, ts, &values),
                });
                ts += step;
                continue;
            }
            let mut payload = serde_json::json!({
                "ts": ts.with_timezone(&hj212::cst()).to_rfc3339_opts(SecondsFormat::Secs, true),
                "values": values,
                "seq": seq,
            });
            if faulty {
                payload["flags"] = serde_json::json!({"ph": "D"});
            }
            out.push(Scheduled {
                ts,
                topic: format!("wq/{}/{}/reading", s.river, s.id),
                payload: payload.to_string(),
            });
            ts += step;
        }
    }
    // Three malformed messages from a misbehaving integration, half-way through.
    if let Some(s) = net.stations.first() {
        let at = start + (end - start) / 2;
        let ts = at.to_rfc3339_opts(SecondsFormat::Secs, true);
        for (topic, payload) in [
            (
                format!("wq/{}/{}/reading", s.river, s.id),
                "temp=21.4;ph=7.3".to_string(),
            ),
            (
                format!("wq/{}/not-configured/reading", s.river),
                format!(r#"{{"ts":"{ts}","values":{{"ph":7.1}}}}"#),
            ),
            (
                format!("wq/{}/{}/reading", s.river, s.id),
                format!(r#"{{"ts":"{ts}","values":{{"ph":15.2}}}}"#),
            ),
        ] {
            out.push(Scheduled {
                ts: at,
                topic,
                payload,
            });
        }
    }
    out.sort_by_key(|m| m.ts);
    out
}

/// An HJ 212-2017 hourly-data frame (CN=2061, `-Avg` values, Flag=5: answer requested), as a
/// data logger would send the same values.
fn hourly_frame(
    mn: &str,
    ts: DateTime<Utc>,
    values: &serde_json::Map<String, serde_json::Value>,
) -> String {
    let local = ts
        .with_timezone(&hj212::cst())
        .format("%Y%m%d%H%M%S")
        .to_string();
    let mut cp = format!("DataTime={local}");
    for (key, v) in values {
        let code = Param::from_key(key).and_then(hj212::code_for);
        if let (Some(code), Some(v)) = (code, v.as_f64()) {
            cp.push_str(&format!(";{code}-Avg={v},{code}-Flag=N"));
        }
    }
    hj212::Frame {
        qn: Some(format!("{local}000")),
        st: "21".into(),
        cn: "2061".into(),
        pw: Some("123456".into()),
        mn: mn.to_string(),
        flag: Some(5),
        pnum: None,
        pno: None,
        cp,
    }
    .encode()
}

/// What the simulated stations saw: broker acknowledgements of their publications, and
/// riverwatch's HJ 212 acknowledgements, which keep arriving until the pipeline has drained.
struct Stations {
    acked: u64,
    frame_acks: Arc<AtomicU64>,
    client: AsyncClient,
    poller: tokio::task::JoinHandle<()>,
}

impl Stations {
    /// Waits (at most 5 s) for `expected` CN=9014 acknowledgements, disconnects, and returns
    /// how many arrived.
    async fn close(self, expected: u64) -> u64 {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while self.frame_acks.load(Ordering::Relaxed) < expected
            && tokio::time::Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let _ = self.client.disconnect().await;
        self.poller.abort();
        self.frame_acks.load(Ordering::Relaxed)
    }
}

/// Polls `done` every 20 ms until it holds, for `limit` seconds at most (then logs `what`).
async fn settled(what: &str, limit: u64, done: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(limit);
    while !done() {
        if tokio::time::Instant::now() > deadline {
            tracing::error!("{what} did not happen within {limit} s");
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Plays the live stations (see [`live`]): a current reading from each every cadence until
/// `until`, then silence, so `offline` fires on wall time. Returns the readings the broker
/// acknowledged.
async fn play_live(
    port: u16,
    stations: Vec<Station>,
    until: tokio::time::Instant,
) -> Result<u64, DemoError> {
    let Some(step) = stations.iter().map(|s| s.cadence).min() else {
        return Ok(0);
    };
    let mut options = MqttOptions::new("riverwatch-demo-buoys", "127.0.0.1", port);
    options.set_keep_alive(Duration::from_secs(30));
    let (client, mut eventloop) = AsyncClient::new(options, 100);
    let acked = Arc::new(AtomicU64::new(0));
    let counter = Arc::clone(&acked);
    let poller = tokio::spawn(async move {
        while let Ok(event) = eventloop.poll().await {
            if let Event::Incoming(Packet::PubAck(_)) = event {
                counter.fetch_add(1, Ordering::Relaxed);
            }
        }
    });
    let mut noise = Noise(0x5EED_B00E);
    let mut sent = 0u64;
    while tokio::time::Instant::now() < until {
        for s in &stations {
            let mut values = serde_json::Map::new();
            for (param, base, decimals) in baseline(s.target.number()) {
                values.insert(
                    param.key().into(),
                    round(base * (1.0 + 0.03 * noise.next()), decimals).into(),
                );
            }
            let payload = serde_json::json!({
                "ts": Utc::now().with_timezone(&hj212::cst()).to_rfc3339_opts(SecondsFormat::Secs, true),
                "values": values,
            });
            client
                .publish(
                    format!("wq/{}/{}/reading", s.river, s.id),
                    QoS::AtLeastOnce,
                    false,
                    payload.to_string(),
                )
                .await?;
            sent += 1;
        }
        tokio::time::sleep(step).await;
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while acked.load(Ordering::Relaxed) < sent && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let _ = client.disconnect().await;
    poller.abort();
    Ok(acked.load(Ordering::Relaxed))
}

/// Publishes the script at QoS 1, paced by simulated time, listening for HJ 212
/// acknowledgements as data loggers do.
async fn publish(
    port: u16,
    messages: &[Scheduled],
    start: DateTime<Utc>,
    speed: f64,
) -> Result<Stations, DemoError> {
    let mut options = MqttOptions::new("riverwatch-demo-stations", "127.0.0.1", port);
    options.set_keep_alive(Duration::from_secs(30));
    let (client, mut eventloop) = AsyncClient::new(options, 1000);
    client
        .subscribe("wq/+/+/hj212/ack", QoS::AtLeastOnce)
        .await?;
    let acked = Arc::new(AtomicU64::new(0));
    let frame_acks = Arc::new(AtomicU64::new(0));
    let (counter, frame_counter) = (Arc::clone(&acked), Arc::clone(&frame_acks));
    let poller = tokio::spawn(async move {
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(Packet::PubAck(_))) => {
                    counter.fetch_add(1, Ordering::Relaxed);
                }
                Ok(Event::Incoming(Packet::Publish(p)))
                    if hj212::parse(&p.payload).is_ok_and(|f| f.cn == "9014") =>
                {
                    frame_counter.fetch_add(1, Ordering::Relaxed);
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::debug!(error = %e, "demo publisher connection ended");
                    return;
                }
            }
        }
    });
    let began = tokio::time::Instant::now();
    for m in messages {
        let offset = (m.ts - start).num_milliseconds().max(0) as f64 / 1000.0 / speed;
        tokio::time::sleep_until(began + Duration::from_secs_f64(offset)).await;
        client
            .publish(
                m.topic.as_str(),
                QoS::AtLeastOnce,
                false,
                m.payload.as_bytes(),
            )
            .await?;
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while acked.load(Ordering::Relaxed) < messages.len() as u64
        && tokio::time::Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Ok(Stations {
        acked: acked.load(Ordering::Relaxed),
        frame_acks,
        client,
        poller,
    })
}

/// What was actually sent, per bureau and channel, read back from the demo's channel files:
/// `outbox/<id>.<state>.<bureau>.eml` (a digest's state is `digest`: its email went to the
/// operators) and `sms.jsonl`'s `bureau` field.
fn sent_per_bureau(out: &Path) -> serde_json::Map<String, serde_json::Value> {
    let mut sent: std::collections::BTreeMap<String, std::collections::BTreeMap<&str, u64>> =
        Default::default();
    for entry in std::fs::read_dir(out.join("outbox"))
        .into_iter()
        .flatten()
        .flatten()
    {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(stem) = name.strip_suffix(".eml") else {
            continue;
        };
        let mut parts = stem.rsplitn(3, '.');
        let (Some(bureau), Some(state)) = (parts.next(), parts.next()) else {
            continue;
        };
        let channel = if state == "digest" {
            "digest_email"
        } else {
            "email"
        };
        *sent
            .entry(bureau.to_string())
            .or_default()
            .entry(channel)
            .or_default() += 1;
    }
    let log = std::fs::read_to_string(out.join("sms.jsonl")).unwrap_or_default();
    for line in log.lines() {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        let bureau = v["bureau"].as_str().unwrap_or("?").to_string();
        let channel = if v["state"] == "digest" {
            "digest_sms"
        } else {
            "sms"
        };
        *sent.entry(bureau).or_default().entry(channel).or_default() += 1;
    }
    sent.into_iter()
        .map(|(b, c)| (b, serde_json::json!(c)))
        .collect()
}

/// Prints the summary and writes `summary.json`; true when every message was taken in custody
/// and the scripted incident was told by email.
fn summarise(
    out: &Path,
    m: &Metrics,
    published: u64,
    frame_acks: u64,
    mqtt_alerts: u64,
) -> Result<bool, DemoError> {
    let emails = std::fs::read_dir(out.join("outbox"))
        .map(|d| {
            d.flatten()
                .filter(|e| e.path().extension().is_some_and(|x| x == "eml"))
                .count()
        })
        .unwrap_or(0);
    let sms = std::fs::read_to_string(out.join("sms.jsonl"))
        .map(|t| t.lines().count())
        .unwrap_or(0);
    // Alerts by the rules that notify (`class` is recorded, never sent), and by rule.
    let mut alerts = serde_json::Map::new();
    let mut rules = serde_json::Map::new();
    for (level, rule, n) in m.alerts_by_level_and_rule() {
        if n == 0 || !rule.notifies() {
            continue;
        }
        let at = alerts.entry(level.key()).or_insert(0u64.into());
        *at = (at.as_u64().unwrap_or(0) + n).into();
        let r = rules.entry(rule.key()).or_insert(0u64.into());
        *r = (r.as_u64().unwrap_or(0) + n).into();
    }
    let incidents: serde_json::Map<String, serde_json::Value> = m
        .incident_events()
        .into_iter()
        .filter(|(_, n)| *n > 0)
        .map(|(k, n)| (k.to_string(), n.into()))
        .collect();
    let sent = sent_per_bureau(out);
    let summary = serde_json::json!({
        "received": Metrics::get(&m.readings_received),
        "stored": Metrics::get(&m.readings_stored),
        "refused": m.refused_total(),
        "alerts": alerts,
        "alerts_by_rule": rules,
        "resolved": Metrics::get(&m.alerts_resolved),
        "incidents": incidents,
        "sent": sent,
        "emails": emails,
        "sms": sms,
        "messages_published": published,
        "messages_acknowledged": Metrics::get(&m.messages_acked),
        "hj212_acks": frame_acks,
        "mqtt_alerts": mqtt_alerts,
    });
    // A `Value` always serialises.
    let text = serde_json::to_string_pretty(&summary).unwrap_or_default();
    let path = out.join("summary.json");
    std::fs::write(&path, format!("{text}\n")).map_err(file_error("cannot write", &path))?;
    let line = |label: &str, value: String| super::say(&format!("  {label:<28}{value}\n"));
    super::say("\nriverwatch demo summary\n");
    line("messages published", published.to_string());
    line(
        "readings received",
        Metrics::get(&m.readings_received).to_string(),
    );
    line(
        "readings stored",
        Metrics::get(&m.readings_stored).to_string(),
    );
    line(
        "HJ 212 frames acknowledged",
        format!("{frame_acks}  (CN=9014, sent after storage)"),
    );
    let dead = out.join("spool/deadletter.jsonl");
    line(
        "refused",
        format!("{}  ({})", m.refused_total(), dead.display()),
    );
    let list = |map: &serde_json::Map<String, serde_json::Value>| {
        map.iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    line("alerts fired (by rule)", list(&rules));
    line("alerts fired (by level)", list(&alerts));
    line("incident events", list(&incidents));
    for (bureau, channels) in &sent {
        let c = |k: &str| {
            channels
                .get(k)
                .and_then(serde_json::Value::as_u64)
                .unwrap_or(0)
        };
        line(
            &format!("sent to {bureau}"),
            format!(
                "{} emails + {} SMS to duty officers, {} digests to operators",
                c("email"),
                c("sms"),
                c("digest_email")
            ),
        );
    }
    line(
        "alerts resolved",
        Metrics::get(&m.alerts_resolved).to_string(),
    );
    line(
        "emails written",
        format!("{emails}  ({})", out.join("outbox").display()),
    );
    line(
        "SMS logged",
        format!("{sms}  ({})", out.join("sms.jsonl").display()),
    );
    line(
        "MQTT alerts published",
        format!("{mqtt_alerts}  (riverwatch/alerts/<station>, broker PUBACK)"),
    );
    line("summary", out.join("summary.json").display().to_string());
    let all_stored = Metrics::get(&m.messages_acked) >= published;
    if !all_stored {
        eprintln!(
            "demo: {} of {published} messages were taken into custody",
            Metrics::get(&m.messages_acked)
        );
    }
    if emails == 0 {
        eprintln!(
            "demo: no alert email was written; the scripted incident needs a longer span (e.g. --duration 1d)"
        );
    }
    Ok(all_stored && emails > 0)
}
