//! `riverwatch simulate`: publishes station readings to a real broker at QoS 1 — the load
//! generator of the benchmarks and the fault tests, and a scenario player.
//!
//! With `--tcp HOST:PORT` instead of `--broker` it plays the stations' data loggers over HJ 212
//! TCP (SPEC §5a): one connection per station, each frame asking for the data acknowledgement
//! (Flag=5) and carrying the station's configured access password, and exits once every frame
//! is acknowledged (CN=9014, matched by QN).
//!
//! Fed by the config (its stations and rivers) and the command line; feeds the broker. Readings
//! go round-robin over the stations, each station's timestamps `--interval` apart (a minute
//! by default) and unique, the newest `--newest-minutes-ago` before the start, so nothing is
//! refused as from the future. The
//! command exits once the broker has acknowledged every message (PUBACK), and prints the count
//! and the rate achieved as one JSON line on stdout. `--params` chooses the parameters a
//! reading carries (a station's probes and its 4-hourly analysers report apart).
//!
//! Scenarios: `normal` (compliant values with a little deterministic noise); `ammonia-spill`
//! (NH3-N rising at the first station with a downstream neighbour during the middle third of
//! the run, then at that neighbour after the travel time); `sensor-fault` (the last station's
//! DO stuck at one value, with a spike every 50 readings); `outage` (the last station stops
//! publishing halfway).

use crate::config::Config;
use crate::domain::hj212;
use crate::domain::network::Station;
use chrono::{DateTime, Duration as ChronoDuration, Utc};
use rumqttc::{AsyncClient, Event, MqttOptions, Outgoing, Packet, QoS};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Scenario {
    /// Diurnal temperature and DO with noise, every station within its target.
    Normal,
    /// An NH3-N pulse at the first station with a downstream, arriving there after the
    /// configured travel time.
    AmmoniaSpill,
    /// The last station's DO probe spikes to 30 mg/L every 50th reading.
    SensorFault,
    /// The last station falls silent halfway through.
    Outage,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// The JSON reading payload (SPEC §4).
    Json,
    /// A raw HJ 212-2017 frame (SPEC §5).
    Hj212,
}

#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("target").required(true).args(["broker", "tcp"])))]
pub struct Options {
    /// Broker, as mqtt://host:port.
    #[arg(long)]
    pub broker: Option<String>,
    /// Play data loggers over HJ 212 TCP to this address (the daemon's `[hj212_tcp] listen`),
    /// one connection per station, instead of publishing to a broker; implies `--format hj212`.
    #[arg(long, value_name = "HOST:PORT")]
    pub tcp: Option<String>,
    /// With `--tcp`: give up when no acknowledgement came for this long, like "30s".
    #[arg(long, default_value = "30s", value_parser = crate::config::units::parse_duration)]
    pub ack_timeout: Duration,
    /// Messages to publish.
    #[arg(long, default_value_t = 1000)]
    pub count: u64,
    /// Messages per second; 0 = as fast as the broker takes them.
    #[arg(long, default_value_t = 0.0, value_parser = rate)]
    pub rate: f64,
    /// Publish for only the first N stations of the config.
    #[arg(long)]
    pub stations: Option<usize>,
    /// What the readings show: normal diurnal water, or a scripted event (see the values).
    #[arg(long, value_enum, default_value = "normal")]
    pub scenario: Scenario,
    /// Payload: the JSON reading (SPEC §4) or a raw HJ 212-2017 frame (SPEC §5).
    #[arg(long, value_enum, default_value = "json")]
    pub format: Format,
    /// The newest reading of each station is this many minutes before now (the others a
    /// minute apart before it); runs with different values publish distinct readings.
    #[arg(long, default_value_t = 1)]
    pub newest_minutes_ago: i64,
    /// Time between a station's readings, like "1m" or "5m".
    #[arg(long, default_value = "1m")]
    pub interval: String,
    /// MQTT client id of the publisher.
    #[arg(long, default_value = "riverwatch-simulate")]
    pub client_id: String,
    /// Parameters each reading carries, comma-separated keys, of: temp, ph, do, cond, turb,
    /// codmn, nh3n, tp, tn. For instance "temp,ph,do,cond,turb" for a station's probes and
    /// "codmn,nh3n,tp,tn" for its 4-hourly analysers.
    #[arg(
        long,
        default_value = "temp,ph,do,codmn,nh3n,tp",
        value_delimiter = ','
    )]
    pub params: Vec<String>,
}

/// A small deterministic generator (xorshift), so runs are repeatable without a dependency.
struct Noise(u64);

impl Noise {
    /// Uniform in [-1, 1).
    fn next(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 11) as f64 / (1u64 << 52) as f64 - 1.0
    }
}

/// The parameters `simulate` can publish.
const KEYS: [&str; 9] = [
    "temp", "ph", "do", "cond", "turb", "codmn", "nh3n", "tp", "tn",
];

/// The values of one reading: (parameter key, value).
fn values(
    scenario: Scenario,
    stations: &[Arc<Station>],
    s: usize,
    i: u64,
    per_station: u64,
    noise: &mut Noise,
) -> Vec<(&'static str, f64)> {
    let mut v = vec![
        ("temp", 22.0 + noise.next()),
        ("ph", 7.4 + 0.1 * noise.next()),
        ("do", 7.5 + 0.3 * noise.next()),
        ("cond", 350.0 + 10.0 * noise.next()),
        ("turb", 12.0 + 2.0 * noise.next()),
        ("codmn", 2.5 + 0.3 * noise.next()),
        ("nh3n", 0.25 + 0.05 * noise.next()),
        ("tp", 0.05 + 0.01 * noise.next()),
        ("tn", 0.8 + 0.05 * noise.next()),
    ];
    let mut set = |key: &str, x: f64| {
        if let Some(slot) = v.iter_mut().find(|(k, _)| *k == key) {
            slot.1 = x;
        }
    };
    let third = per_station / 3;
    match scenario {
        Scenario::Normal | Scenario::Outage => {}
        Scenario::AmmoniaSpill => {
            let source = stations.iter().position(|st| st.downstream.is_some());
            let lag = source
                .and_then(|k| stations[k].downstream.as_ref())
                .map_or(0, |d| d.travel_time.as_secs() / 60);
            let downstream = source.and_then(|k| {
                let d = stations[k].downstream.as_ref()?;
                stations.iter().position(|st| st.id == d.station)
            });
            let start = if Some(s) == source {
                Some(third)
            } else if Some(s) == downstream {
                Some(third + lag)
            } else {
                None
            };
            if let Some(start) = start {
                if i >= start && i < start + third {
                    let k = (i - start) as f64 / third.max(1) as f64;
                    set("nh3n", 0.25 + 1.5 * (std::f64::consts::PI * k).sin());
                }
            }
        }
        Scenario::SensorFault if s + 1 == stations.len() => {
            set("do", if i % 50 == 49 { 30.0 } else { 6.0 });
        }
        Scenario::SensorFault => {}
    }
    v
}

fn json_payload(ts: DateTime<Utc>, values: &[(&str, f64)]) -> Vec<u8> {
    let mut map = serde_json::Map::new();
    for (k, x) in values {
        map.insert((*k).into(), ((x * 1000.0).round() / 1000.0).into());
    }
    serde_json::json!({
        "ts": ts.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        "values": map,
    })
    .to_string()
    .into_bytes()
}

/// One CN=2011 frame in the 2017 version with the standard codes, from a logger whose
/// password is `pw`; `Flag=5` (answer wanted) when `ack`, else `Flag=4`.
fn hj212_frame(
    station: &Station,
    ts: DateTime<Utc>,
    values: &[(&str, f64)],
    pw: &str,
    ack: bool,
) -> hj212::Frame {
    let local = ts.with_timezone(&hj212::cst());
    let mut cp = format!("DataTime={}", local.format("%Y%m%d%H%M%S"));
    for (k, x) in values {
        if let Some(code) = crate::domain::param::Param::from_key(k).and_then(hj212::code_for) {
            cp.push_str(&format!(";{code}-Rtd={x:.3},{code}-Flag=N"));
        }
    }
    hj212::Frame {
        qn: Some(format!("{}000", local.format("%Y%m%d%H%M%S"))),
        st: "21".into(),
        cn: "2011".into(),
        pw: Some(pw.into()),
        mn: station
            .hj212_mn
            .clone()
            .unwrap_or_else(|| station.id.clone()),
        flag: Some(if ack { 5 } else { 4 }),
        pnum: None,
        pno: None,
        cp,
    }
}

/// One CN=2011 frame asking for no answer, as a station publishes it over MQTT.
fn hj212_payload(station: &Station, ts: DateTime<Utc>, values: &[(&str, f64)]) -> Vec<u8> {
    hj212_frame(station, ts, values, "123456", false)
        .encode()
        .into_bytes()
}

/// Whether the `outage` scenario silences message `k` (of `n` stations, `per_station` each):
/// the last station stops halfway.
fn silenced(scenario: Scenario, k: u64, n: u64, per_station: u64) -> bool {
    scenario == Scenario::Outage && n > 1 && k % n == n - 1 && k / n >= per_station / 2
}

/// Why `simulate` stopped before every message was acknowledged.
#[derive(Debug, thiserror::Error)]
pub enum SimulateError {
    /// `--broker` is not an `mqtt://host:port` URL.
    #[error("{0}")]
    Broker(#[from] crate::settings::Problems),
    /// The config has no station to play.
    #[error("the config lists no stations")]
    NoStations,
    /// `--tcp`: no station of the config has an `hj212_mn`, so there is no logger to play.
    #[error("no station has an hj212_mn: there is no data logger to play over TCP")]
    NoLoggers,
    /// `--interval` is not a positive duration.
    #[error("--interval {0:?} is not a positive duration")]
    Interval(String),
    /// `--params` names a key the simulator does not produce.
    #[error("--params: {key:?} is not one of {known}")]
    Param { key: String, known: String },
    /// A logger's TCP connection failed, or closed before every frame was acknowledged.
    #[error("HJ 212 TCP {addr}: {why} ({acked} of {expected} frames acknowledged)")]
    Tcp {
        addr: String,
        why: String,
        acked: u64,
        expected: u64,
    },
    /// A station's logger password cannot be read.
    #[error("{key}: {source}")]
    Password {
        key: String,
        source: crate::settings::secret::SecretError,
    },
    /// The broker connection failed part way.
    #[error("broker connection failed after {acked} of {expected} acknowledgements ({published} sent): {source}")]
    Connection {
        acked: u64,
        expected: u64,
        published: u64,
        source: Box<rumqttc::ConnectionError>,
    },
}

impl SimulateError {
    /// Whether the operator's options are at fault (a bad `--broker`, `--interval`,
    /// `--params`, or a selection with no station or logger to play), as opposed to the
    /// broker or a logger connection: exit 64 rather than 1.
    pub fn is_usage(&self) -> bool {
        matches!(
            self,
            SimulateError::Broker(_)
                | SimulateError::NoStations
                | SimulateError::NoLoggers
                | SimulateError::Interval(_)
                | SimulateError::Param { .. }
        )
    }
}

/// Reads `--rate`: a finite number of messages per second, 0 or more.
fn rate(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(r) if r.is_finite() && r >= 0.0 => Ok(r),
        _ => Err(format!(
            "{text:?} is not a rate: messages per second, 0 or more (0 = as fast as the broker takes them)"
        )),
    }
}

/// Publishes and waits for every PUBACK; returns (published, seconds).
///
/// # Errors
/// [`SimulateError`]: a bad option, or the broker connection lost before the last PUBACK.
pub async fn run(cfg: &Config, o: &Options) -> Result<(u64, f64), SimulateError> {
    if let Some(addr) = &o.tcp {
        return run_tcp(cfg, o, addr).await;
    }
    let (host, port) = crate::config::broker_address(o.broker.as_deref().unwrap_or_default())?;
    let plan = Plan::new(&cfg.network.stations, o)?;
    let expected = plan.len();
    let mut opts = MqttOptions::new(&o.client_id, host, port);
    opts.set_keep_alive(Duration::from_secs(30))
        .set_inflight(1000)
        .set_max_packet_size(1 << 20, 1 << 20);
    let (client, mut eventloop) = AsyncClient::new(opts, 10_000);
    let format = o.format;
    let rate = o.rate;
    let publisher = tokio::spawn(async move {
        let began = tokio::time::Instant::now();
        for (k, reading) in plan.enumerate() {
            if rate > 0.0 {
                tokio::time::sleep_until(began + Duration::from_secs_f64(k as f64 / rate)).await;
            }
            let (topic, payload) = reading.message(format);
            if client
                .publish(topic, QoS::AtLeastOnce, false, payload)
                .await
                .is_err()
            {
                return;
            }
        }
    });
    let started = Instant::now();
    let mut acked = 0;
    let mut published = 0;
    while acked < expected {
        match eventloop.poll().await {
            Ok(Event::Incoming(Packet::PubAck(_))) => acked += 1,
            Ok(Event::Outgoing(Outgoing::Publish(_))) => published += 1,
            Ok(_) => {}
            Err(source) => {
                publisher.abort();
                return Err(SimulateError::Connection {
                    acked,
                    expected,
                    published,
                    source: Box::new(source),
                });
            }
        }
    }
    let _ = publisher.await;
    Ok((acked, started.elapsed().as_secs_f64()))
}

/// The readings `o` asks for, in sending order, made as they are sent (a load run may ask for
/// millions): round-robin over the first `--stations` stations, each station's timestamps
/// `--interval` apart and unique, the newest `--newest-minutes-ago` before the start; those
/// the scenario silences are skipped.
struct Plan {
    stations: Vec<Arc<Station>>,
    scenario: Scenario,
    params: Vec<String>,
    count: u64,
    per_station: u64,
    newest: DateTime<Utc>,
    step: ChronoDuration,
    /// The next message number, silenced ones included.
    k: u64,
    noise: Noise,
}

/// One planned reading.
struct Planned {
    /// The station's position among those played.
    position: usize,
    station: Arc<Station>,
    ts: DateTime<Utc>,
    values: Vec<(&'static str, f64)>,
}

impl Planned {
    /// The MQTT topic and payload of this reading in `format`.
    fn message(&self, format: Format) -> (String, Vec<u8>) {
        let st = &self.station;
        match format {
            Format::Json => (
                format!("wq/{}/{}/reading", st.river, st.id),
                json_payload(self.ts, &self.values),
            ),
            Format::Hj212 => (
                format!("wq/{}/{}/hj212", st.river, st.id),
                hj212_payload(st, self.ts, &self.values),
            ),
        }
    }
}

impl Plan {
    /// The plan over the first `--stations` of `stations`.
    ///
    /// # Errors
    /// [`SimulateError`]: no station, a bad `--interval` or `--params`.
    fn new<'a>(
        stations: impl IntoIterator<Item = &'a Station>,
        o: &Options,
    ) -> Result<Plan, SimulateError> {
        let stations: Vec<Arc<Station>> = stations
            .into_iter()
            .take(o.stations.unwrap_or(usize::MAX))
            .map(|s| Arc::new(s.clone()))
            .collect();
        if stations.is_empty() {
            return Err(SimulateError::NoStations);
        }
        let step = crate::config::units::parse_duration(&o.interval)
            .ok()
            .and_then(|d| ChronoDuration::from_std(d).ok())
            .filter(|d| *d > ChronoDuration::zero())
            .ok_or_else(|| SimulateError::Interval(o.interval.clone()))?;
        if let Some(bad) = o.params.iter().find(|p| !KEYS.contains(&p.as_str())) {
            return Err(SimulateError::Param {
                key: bad.clone(),
                known: KEYS.join(", "),
            });
        }
        Ok(Plan {
            per_station: o.count.div_ceil(stations.len() as u64),
            stations,
            scenario: o.scenario,
            params: o.params.clone(),
            count: o.count,
            newest: Utc::now() - ChronoDuration::minutes(o.newest_minutes_ago),
            step,
            k: 0,
            noise: Noise(0x9e37_79b9_7f4a_7c15),
        })
    }

    /// How many readings the plan holds (the silenced ones not counted).
    fn len(&self) -> u64 {
        let n = self.stations.len() as u64;
        (0..self.count)
            .filter(|&k| !silenced(self.scenario, k, n, self.per_station))
            .count() as u64
    }
}

impl Iterator for Plan {
    type Item = Planned;

    fn next(&mut self) -> Option<Planned> {
        let n = self.stations.len() as u64;
        while self.k < self.count {
            let k = self.k;
            self.k += 1;
            if silenced(self.scenario, k, n, self.per_station) {
                continue;
            }
            let (s, i) = ((k % n) as usize, k / n);
            let ts = self.newest - self.step * (self.per_station - 1 - i) as i32;
            let mut values = values(
                self.scenario,
                &self.stations,
                s,
                i,
                self.per_station,
                &mut self.noise,
            );
            values.retain(|(key, _)| self.params.iter().any(|p| p == key));
            return Some(Planned {
                position: s,
                station: Arc::clone(&self.stations[s]),
                ts,
                values,
            });
        }
        None
    }
}

/// Plays each station's data logger over HJ 212 TCP: one connection per station, frames sent
/// round-robin at `--rate`, and waits until the daemon acknowledged every one (CN=9014 with
/// the frame's QN); returns (acknowledged, seconds).
async fn run_tcp(cfg: &Config, o: &Options, addr: &str) -> Result<(u64, f64), SimulateError> {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    // Only a station with an MN has a logger to play; the others are said and left out.
    let (loggers, without): (Vec<&Station>, Vec<&Station>) = cfg
        .network
        .stations
        .iter()
        .partition(|s| s.hj212_mn.is_some());
    if !without.is_empty() {
        let ids: Vec<&str> = without.iter().map(|s| s.id.as_str()).collect();
        eprintln!(
            "simulate: stations without hj212_mn are not played over TCP: {}",
            ids.join(", ")
        );
    }
    let plan = Plan::new(loggers, o).map_err(|e| match e {
        SimulateError::NoStations => SimulateError::NoLoggers,
        e => e,
    })?;
    let mut passwords = std::collections::HashMap::new();
    for p in &cfg.hj212_passwords {
        let secret = p
            .source
            .resolve()
            .map_err(|source| SimulateError::Password {
                key: p.key.clone(),
                source,
            })?;
        passwords.insert(p.station.clone(), secret);
    }
    // A station without a configured password sends the standard's example password.
    let pw = |st: &Station| {
        passwords
            .get(&st.id)
            .map_or_else(|| "123456".to_string(), |s| s.expose().to_string())
    };
    let stations = plan.stations.clone();
    let expected = plan.len();
    let failed = |why: String, acked: u64| SimulateError::Tcp {
        addr: addr.to_string(),
        why,
        acked,
        expected,
    };
    let (acks_tx, mut acks_rx) = tokio::sync::mpsc::unbounded_channel::<Result<(), String>>();
    let mut writers = Vec::new();
    for _ in &stations {
        let stream = tokio::net::TcpStream::connect(addr)
            .await
            .map_err(|e| failed(format!("cannot connect: {e}"), 0))?;
        let _ = stream.set_nodelay(true);
        let (read, write) = stream.into_split();
        writers.push(write);
        let tx = acks_tx.clone();
        tokio::spawn(async move {
            let mut lines = BufReader::new(read).lines();
            loop {
                match lines.next_line().await {
                    Ok(Some(line)) => {
                        let acked = hj212::parse(line.as_bytes()).is_ok_and(|f| f.cn == "9014");
                        if acked && tx.send(Ok(())).is_err() {
                            return;
                        }
                    }
                    Ok(None) => {
                        let _ = tx.send(Err("the daemon closed the connection".into()));
                        return;
                    }
                    Err(e) => {
                        let _ = tx.send(Err(e.to_string()));
                        return;
                    }
                }
            }
        });
    }
    drop(acks_tx);
    let started = Instant::now();
    let began = tokio::time::Instant::now();
    let mut acked = 0;
    for (k, reading) in plan.enumerate() {
        if o.rate > 0.0 {
            tokio::time::sleep_until(began + Duration::from_secs_f64(k as f64 / o.rate)).await;
        }
        let frame = hj212_frame(
            &reading.station,
            reading.ts,
            &reading.values,
            &pw(&reading.station),
            true,
        );
        writers[reading.position]
            .write_all(frame.encode().as_bytes())
            .await
            .map_err(|e| failed(format!("cannot send: {e}"), acked))?;
        while let Ok(ack) = acks_rx.try_recv() {
            ack.map_err(|why| failed(why, acked))?;
            acked += 1;
        }
    }
    while acked < expected {
        match tokio::time::timeout(o.ack_timeout, acks_rx.recv()).await {
            Ok(Some(Ok(()))) => acked += 1,
            Ok(Some(Err(why))) => return Err(failed(why, acked)),
            Ok(None) => return Err(failed("every connection closed".into(), acked)),
            Err(_) => {
                return Err(failed(
                    format!(
                        "no acknowledgement for {} s; the daemon's log says why it refused frames (a wrong PW, an unknown MN)",
                        o.ack_timeout.as_secs()
                    ),
                    acked,
                ))
            }
        }
    }
    Ok((acked, started.elapsed().as_secs_f64()))
}
