//! The only wiring: builds the adapters from config, connects the stages with bounded
//! channels, and runs the shutdown sequence.
//!
//! ```text
//!  broker ─▶ ingest (source) ─Inbound─▶ alerts (decode, screen; outbox, alerts.json) ─Judged─▶ store (encode, batch; write or spool) ─Receipt─▶ source's Acknowledge ─▶ broker
//!                                                    │                                                └─ spool ─▶ drainer ─▶ InfluxDB
//!                                                    └─(synced files)─▶ outbox ─▶ notify workers (email, SMS)
//! ```
//!
//! Hand-offs on a reading's way to its acknowledgement: three — source → judging task
//! (channel), judging task → batcher (channel), batcher → the MQTT event loop (the PUBACK
//! queued on the client's request channel by the source's `Acknowledge` handle). The decode,
//! the screen, the encoding and the write run inside those tasks; batches in custody are
//! futures the batcher polls, not tasks.
//!
//! Channel bounds and their when-full policy: `Inbound` holds up to the MQTT in-flight bound
//! (see `ingest::mqtt`), so it never fills for QoS 1 traffic, and the client's request
//! channel twice that, an acknowledgement and a reply per message; `Judged` (1,024 messages)
//! makes the judging task wait, which stops acknowledgements, so excess waits at the broker. The judging task hands
//! notifications over as outbox files, not through a channel, so they survive a crash.
//! Shutdown (mini-redis style, in flow order): the sources stop handing on messages and drop
//! their senders; each stage drains its input and drops its output; the store puts the last
//! batch in custody and releases its receipts; the drainer stops (the spool keeps the rest);
//! the sources answer the last receipts and disconnect; the notify workers deliver what the
//! outbox holds until the grace period ends. A stage still busy then is aborted: what it held
//! was not acknowledged, so the broker redelivers it, and undelivered notifications stay in
//! the outbox.

use crate::alerts::Alerts;
use crate::config::Config;
use crate::deadletter::DeadLetter;
use crate::domain::digest::Digests;
use crate::domain::incident::{IncidentConfig, Incidents};
use crate::domain::network::Network;
use crate::domain::rules::Rules;
use crate::ingest::hj212_tcp::Hj212Tcp;
use crate::ingest::mqtt::{self, MqttSource, Session};
use crate::ingest::payload::PayloadLimits;
use crate::ingest::{Decoder, Phase, Source, SourceIo};
use crate::notify::metrics::Channels;
use crate::notify::outbox::Outbox;
use crate::notify::{Channel, Worker};
use crate::screen::Screen;
use crate::settings::secret::{resolve_optional, KeyedSecretError};
use crate::store::backend::Backend;
use crate::store::spool::Spool;
use crate::store::{Batcher, Store};
use crate::telemetry::Metrics;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch, Notify};
use tokio::task::JoinHandle;

/// Where the pipeline's results go.
pub struct Outputs {
    pub writer: Box<dyn Backend>,
    /// Bearer token of the API's write endpoints; without one they answer 401.
    pub api_token: Option<crate::config::secret::Secret>,
    /// Each bureau's own API token (`[[bureau]] api_token_env`), by bureau id: requests bearing
    /// one act as that bureau.
    pub bureau_tokens: Vec<(String, crate::config::secret::Secret)>,
    /// The notification channels, one delivery worker each (`notify::channels` for `run`;
    /// the demo and tests bring their own).
    pub channels: Vec<Arc<dyn Channel>>,
}

/// Why the adapters cannot be built from a valid config: a secret, a TLS file or a setting
/// only usable once read. Each names the config key at fault; `run` exits 64 with it.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error(transparent)]
    Secret(#[from] KeyedSecretError),
    #[error(transparent)]
    Store(#[from] crate::store::BackendError),
    #[error(transparent)]
    Channel(#[from] crate::notify::SetupError),
    #[error(transparent)]
    Mqtt(#[from] mqtt::OptionsError),
    #[error(transparent)]
    Hj212Tcp(#[from] crate::ingest::hj212_tcp::SetupError),
    /// A bureau's API token that cannot be read.
    #[error("{key}: {source}")]
    BureauToken {
        key: String,
        source: crate::settings::secret::SecretError,
    },
    /// Two API tokens with the same value: a request could not tell who acts.
    #[error(
        "{0}: the same value as another API token; each bureau and the operator need their own"
    )]
    SharedToken(String),
}

/// Why the pipeline cannot start: a file under the spool folder it cannot open, or saved
/// state it cannot read (it refuses rather than forget alerts silently).
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The dead-letter file, the outbox or the spool.
    #[error("cannot open the {what} {}: {source}", path.display())]
    Open {
        what: &'static str,
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    State(#[from] crate::state::LoadError),
    #[error(transparent)]
    Api(#[from] crate::api::KeptError),
    /// Two channels with one key (a programming error, caught at start).
    #[error(transparent)]
    Channel(#[from] crate::notify::SetupError),
}

/// [`StartError::Open`] for `path`.
fn cannot_open(
    what: &'static str,
    path: &std::path::Path,
) -> impl FnOnce(std::io::Error) -> StartError {
    let path = path.to_path_buf();
    move |source| StartError::Open { what, path, source }
}

/// Builds the daemon's outputs from config, resolving secrets.
///
/// # Errors
/// [`BuildError`], naming the key.
pub fn outputs(cfg: &Config) -> Result<Outputs, BuildError> {
    let writer = crate::store::build_backend(cfg.influxdb.as_ref())?;
    let channels = crate::notify::channels(
        cfg.smtp.as_ref(),
        cfg.sms.as_ref(),
        &cfg.chat,
        &cfg.mqtt,
        &cfg.network,
    )?;
    let api_token = resolve_optional(cfg.http.token.as_ref(), "http.token")?;
    let mut bureau_tokens: Vec<(String, crate::config::secret::Secret)> = Vec::new();
    for t in &cfg.bureau_tokens {
        let secret = t
            .source
            .resolve()
            .map_err(|source| BuildError::BureauToken {
                key: t.key.clone(),
                source,
            })?;
        let taken = api_token.iter().chain(bureau_tokens.iter().map(|(_, s)| s));
        if secret.expose().is_empty() || taken.into_iter().any(|s| s.expose() == secret.expose()) {
            return Err(BuildError::SharedToken(t.key.clone()));
        }
        bureau_tokens.push((t.bureau.clone(), secret));
    }
    Ok(Outputs {
        writer,
        api_token,
        bureau_tokens,
        channels,
    })
}

/// MQTT client options from config, resolving the password.
///
/// # Errors
/// [`BuildError`]: the password, or TLS files that cannot be read.
pub fn mqtt_options(cfg: &Config) -> Result<rumqttc::MqttOptions, BuildError> {
    let password = resolve_optional(cfg.mqtt.password.as_ref(), "mqtt.password")?;
    Ok(mqtt::options(&cfg.mqtt, password.as_ref())?)
}

/// A service the config marks `required = true` that did not accept a connection at start.
#[derive(Debug, thiserror::Error)]
#[error("{service} at {address} is unreachable at start ({why}); [{section}] required = true, so riverwatch stops (exit 69)")]
pub struct Unreachable {
    /// "the MQTT broker" or "InfluxDB".
    pub service: &'static str,
    /// The config section whose `required` asked for the check.
    pub section: &'static str,
    /// `host:port` as configured.
    pub address: String,
    pub why: String,
}

/// Checks that every service marked `[mqtt] required = true` or `[influxdb] required = true`
/// accepts a TCP connection within `timeout`: a broker or database that is down, refused or
/// unresolvable then stops `run` before anything starts, instead of the usual spool-and-retry.
/// A TCP connection is the check because it needs no credentials and says exactly "reachable";
/// a refused login is reported by the adapter itself once running.
///
/// # Errors
/// [`Unreachable`] for the first required service that did not answer.
pub async fn check_required(cfg: &Config, timeout: Duration) -> Result<(), Unreachable> {
    let mut wanted: Vec<(&'static str, &'static str, String, u16)> = Vec::new();
    if cfg.mqtt.required {
        wanted.push((
            "the MQTT broker",
            "mqtt",
            cfg.mqtt.host.clone(),
            cfg.mqtt.port,
        ));
    }
    if let Some(influx) = cfg.influxdb.as_ref().filter(|i| i.required) {
        if let Ok(url) = reqwest::Url::parse(&influx.url) {
            let host = url.host_str().unwrap_or_default();
            let host = host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_string();
            wanted.push((
                "InfluxDB",
                "influxdb",
                host,
                url.port_or_known_default().unwrap_or(8086),
            ));
        }
    }
    for (service, section, host, port) in wanted {
        let address = if host.contains(':') {
            format!("[{host}]:{port}")
        } else {
            format!("{host}:{port}")
        };
        let why = match tokio::time::timeout(
            timeout,
            tokio::net::TcpStream::connect((host.as_str(), port)),
        )
        .await
        {
            Ok(Ok(_)) => continue,
            Ok(Err(e)) => e.to_string(),
            Err(_) => format!("no connection within {} s", timeout.as_secs_f64()),
        };
        return Err(Unreachable {
            service,
            section,
            address,
            why,
        });
    }
    Ok(())
}

/// The runtime every long-running command uses; `None` (after saying why on stderr) when the
/// system refuses threads.
///
/// One worker thread (plus tokio's pool for blocking file work). The daemon is a chain of
/// single tasks, so a second worker adds no parallelism within a stage; it only turns every
/// hand-off between stages into a wake-up of another thread. Measured with
/// `tests/bench.sh` on 2 cores beside mosquitto and InfluxDB: one worker took 10.4–10.8 µs
/// of CPU per reading and kept up with the publisher, two took 12.1 µs and fell behind. One
/// thread runs the pipeline at about twice the broker's ceiling; past that, `[mqtt] shard`
/// spreads stations over instances.
pub fn runtime() -> Option<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .map_err(|e| eprintln!("cannot start the runtime: {e}"))
        .ok()
}

/// Where readings come from: the MQTT broker (`run`, `demo`), and any other sources (the
/// HJ 212 TCP listener of `[hj212_tcp]`, see [`inputs`]) — the one place input sources are
/// registered.
pub struct Inputs {
    pub mqtt: Option<rumqttc::MqttOptions>,
    pub more: Vec<Box<dyn Source>>,
}

/// The inputs `run` reads from config: the broker, and the HJ 212 TCP listener when
/// `[hj212_tcp]` is set (bound here, so a taken port stops the start before anything runs).
/// Must be called inside the runtime.
///
/// # Errors
/// [`BuildError`]: the MQTT password or TLS files, a logger password, or the listen address.
pub async fn inputs(cfg: &Config) -> Result<Inputs, BuildError> {
    let mut inputs = Inputs::mqtt(mqtt_options(cfg)?);
    if let Some(tcp) = &cfg.hj212_tcp {
        let listener =
            Hj212Tcp::bind(tcp, &cfg.network, &cfg.hj212_passwords, &cfg.spool.dir).await?;
        if let Ok(addr) = listener.local_addr() {
            tracing::info!(%addr, "HJ 212 TCP listening for data loggers");
        }
        inputs.more.push(Box::new(listener));
    }
    Ok(inputs)
}

impl Inputs {
    /// The broker alone, as `run` and `demo` use it.
    pub fn mqtt(options: rumqttc::MqttOptions) -> Inputs {
        Inputs {
            mqtt: Some(options),
            more: Vec::new(),
        }
    }
}

/// A started pipeline.
pub struct Running {
    pub metrics: Arc<Metrics>,
    pub session: Arc<Session>,
    /// The store's custody side: database state and spool depth, for readiness.
    pub custody: Arc<Store>,
    pub outbox: Arc<Outbox>,
    /// The notification channels with their counters, for `/metrics` and `/readyz`.
    pub channels: Arc<Channels>,
    /// The API's view: stations, alerts, acknowledgements, silences.
    pub live: Arc<crate::api::Live>,
    pub net: Arc<Network>,
    /// Stops the store's spool drainer; the spool keeps what it has not written.
    drainer: JoinHandle<()>,
    /// Tells the sources to stop handing on messages (`Draining`), then to disconnect.
    phase: watch::Sender<Phase>,
    /// One per source; each ends after it answered its last receipts and disconnected.
    sources: Vec<JoinHandle<()>>,
    /// The judging task (screen and alerts); ends when every source dropped its sender.
    judge: JoinHandle<()>,
    /// The batcher; ends when the judging task ends, after the last batch is in custody.
    store: JoinHandle<()>,
    /// One delivery worker per channel; each ends, once told to stop, when its channel has
    /// nothing pending.
    notify: Vec<JoinHandle<()>>,
    /// Tells the delivery workers the daemon is stopping.
    stopping: watch::Sender<bool>,
}

/// Starts every stage. Must be called inside a tokio runtime.
///
/// # Errors
/// [`StartError`]: a file under the spool folder that cannot be opened, or unreadable state.
pub fn start(cfg: &Config, inputs: Inputs, outputs: Outputs) -> Result<Running, StartError> {
    let metrics = Arc::new(Metrics::default());
    let deadletter_path = cfg.deadletter_path();
    let deadletter = Arc::new(
        DeadLetter::open_with(
            &deadletter_path,
            cfg.spool.dead_letter_max_size,
            Arc::clone(&metrics),
        )
        .map_err(cannot_open("dead-letter file", &deadletter_path))?,
    );
    let net: Arc<Network> = Arc::new(cfg.network.clone());
    let session = Arc::new(Session::default());
    let (phase_tx, phase_rx) = watch::channel(Phase::Running);
    let (inbound_tx, inbound_rx) = mpsc::channel(mqtt::INFLIGHT_BOUND);
    let (judged_tx, judged_rx) = mpsc::channel(1024);
    let limits = PayloadLimits {
        max_payload: cfg.ingest.max_payload,
        max_future_skew: chrono::Duration::from_std(cfg.ingest.max_future_skew)
            .unwrap_or(chrono::Duration::minutes(10)),
        // Validated to at most 100 years, so the conversion holds.
        max_age: Some(
            chrono::Duration::from_std(cfg.ingest.max_age).unwrap_or(chrono::Duration::days(365)),
        ),
    };
    let mut sources: Vec<Box<dyn Source>> = Vec::new();
    if let Some(options) = inputs.mqtt {
        let status = mqtt::status::Status {
            topic: cfg.mqtt.status_topic.clone(),
            client_id: cfg.mqtt.client_id.clone(),
            started_at: chrono::Utc::now(),
        };
        sources.push(Box::new(MqttSource::new(
            options,
            mqtt::filters(&cfg.mqtt, &net),
            status,
            Arc::clone(&session),
            Arc::clone(&metrics),
        )));
    }
    sources.extend(inputs.more);
    let mut receipts = Vec::new();
    let mut source_tasks = Vec::new();
    for (index, source) in sources.into_iter().enumerate() {
        receipts.push(source.acknowledger());
        tracing::debug!(source = source.name(), index, "input source started");
        source_tasks.push(tokio::spawn(source.run(SourceIo {
            index,
            messages: inbound_tx.clone(),
            phase: phase_rx.clone(),
            metrics: Arc::clone(&metrics),
            deadletter: Arc::clone(&deadletter),
        })));
    }
    // The judging task ends when the last source drops its sender.
    drop(inbound_tx);
    let decoder = Decoder::new(
        Arc::clone(&net),
        limits,
        Arc::clone(&deadletter),
        Arc::clone(&metrics),
    );
    let outbox_dir = cfg.spool.dir.join("outbox");
    let outbox = Arc::new(Outbox::open(&outbox_dir).map_err(cannot_open("outbox", &outbox_dir))?);
    let waiting = outbox.count_pending();
    if waiting > 0 {
        tracing::info!(
            waiting,
            "notifications from an earlier run are still to be delivered"
        );
    }
    Metrics::set(&metrics.outbox_pending, waiting as u64);
    let state = crate::state::path(&cfg.spool.dir);
    let mut rules = Rules::new(cfg.rules);
    let saved = crate::state::load(&state)?;
    if !saved.episodes.is_empty() {
        tracing::info!(
            episodes = saved.episodes.len(),
            firing = saved.episodes.iter().filter(|s| s.firing.is_some()).count(),
            incidents = saved.incidents.len(),
            "alert state restored"
        );
    }
    let live = Arc::new(
        crate::api::Live::open(
            &net,
            &saved.episodes,
            &saved.incidents,
            &cfg.spool.dir,
            outputs.api_token,
        )?
        .with_max_silence(cfg.max_silence)
        .with_bureau_tokens(outputs.bureau_tokens),
    );
    rules.restore_alerts(saved.episodes);
    let mut incidents = Incidents::new(IncidentConfig {
        tolerance: cfg.rules.arrival_tolerance,
        confirm_share: cfg.rules.arrival_share,
    });
    incidents.restore(saved.incidents, saved.loose);
    let digest_state = crate::state::digest::path(&cfg.spool.dir);
    let pending = crate::state::digest::load(&digest_state)?;
    let digests = Digests::restore(
        chrono::Duration::from_std(cfg.digest_interval).unwrap_or(chrono::Duration::minutes(15)),
        pending,
    );
    if !digests.is_empty() {
        tracing::info!("digests of station faults and offline stations from an earlier run are still to be sent");
    }
    let held_state = crate::notify::hold::path(&cfg.spool.dir);
    let holds = crate::notify::hold::load(&held_state)?;
    if !holds.is_empty() {
        tracing::info!("notifications held by silences or quiet hours in an earlier run are kept");
    }
    // Offline clocks run only for the stations this instance listens to.
    let shard = cfg.mqtt.shard;
    rules.start_for(
        net.stations
            .iter()
            .filter(|s| shard.is_none_or(|sh| sh.owns(&s.id))),
        chrono::Utc::now(),
    );
    let channels = Arc::new(Channels::new(outputs.channels)?);
    let mut wake = Vec::new();
    let mut notify = Vec::new();
    let (stopping, stopping_rx) = watch::channel(false);
    for channel in channels.iter() {
        let w = Arc::new(Notify::new());
        wake.push(Arc::clone(&w));
        notify.push(tokio::spawn(
            Worker {
                outbox: Arc::clone(&outbox),
                channel: Arc::clone(channel),
                metrics: Arc::clone(&metrics),
                deadletter: Arc::clone(&deadletter),
                wake: w,
                stopping: stopping_rx.clone(),
            }
            .deliver(),
        ));
    }
    let alerts = Alerts {
        outbox: Arc::clone(&outbox),
        wake,
        state,
        digest_state,
        channels: channels.channels(),
        live: Arc::clone(&live),
        held_state,
        quiet_hours: cfg.quiet_hours.clone(),
        metrics: Arc::clone(&metrics),
        renotify: cfg.rules.persistence.renotify,
    };
    let screen = Screen::new(Arc::clone(&net), rules, incidents);
    let judge = tokio::spawn(alerts.run(decoder, screen, digests, holds, inbound_rx, judged_tx));
    let (batch_size, flush_interval) = cfg
        .influxdb
        .as_ref()
        .map_or((5000, Duration::from_secs(1)), |i| {
            (i.batch_size, i.flush_interval)
        });
    let wal = cfg.spool.dir.join("wal");
    let spool = Spool::open(&wal, cfg.spool.max_size).map_err(cannot_open("spool", &wal))?;
    let custody = Arc::new(Store::new(
        outputs.writer,
        Arc::new(spool),
        deadletter,
        Arc::clone(&metrics),
    ));
    let drainer = tokio::spawn(Arc::clone(&custody).drain());
    // The station register (`wq_station`), once per start: the dashboards read their list of
    // boundary sections from the data rather than from a list kept by hand.
    let mut register = String::new();
    let started_ms = chrono::Utc::now().timestamp_millis();
    for station in &net.stations {
        crate::store::points::station(station, started_ms, &mut register);
    }
    let registrar = Arc::clone(&custody);
    tokio::spawn(async move { registrar.record(register).await });
    let batcher = Batcher {
        store: Arc::clone(&custody),
        net: Arc::clone(&net),
        batch_size,
        flush_interval,
        receipts,
    };
    let store = tokio::spawn(batcher.run(judged_rx));
    Ok(Running {
        metrics,
        session,
        custody,
        outbox,
        channels,
        live,
        net,
        drainer,
        phase: phase_tx,
        sources: source_tasks,
        judge,
        store,
        notify,
        stopping,
    })
}

impl Running {
    /// The first stage whose task has ended while the pipeline runs (it returned or panicked),
    /// or `None`. Before [`Running::stop`] every stage runs until told to stop, so an ended one
    /// means the pipeline no longer works; `run` then withholds systemd's watchdog pings.
    pub fn ended_stage(&self) -> Option<&'static str> {
        let stages = [
            ("judging", &self.judge),
            ("store", &self.store),
            ("drainer", &self.drainer),
        ];
        let sources = self.sources.iter().map(|t| ("ingest", t));
        let notify = self.notify.iter().map(|t| ("notify", t));
        stages
            .into_iter()
            .chain(sources)
            .chain(notify)
            .find(|(_, task)| task.is_finished())
            .map(|(name, _)| name)
    }

    /// Runs the shutdown sequence within `grace`; returns false when a stage had to be aborted.
    pub async fn stop(self, grace: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + grace;
        let _ = self.phase.send(Phase::Draining);
        let mut clean = true;
        for (name, task) in [("judging", self.judge), ("store", self.store)] {
            clean &= finish(name, task, deadline).await;
        }
        // The spool keeps what the drainer has not written; the next start drains it.
        self.drainer.abort();
        let _ = self.phase.send(Phase::Disconnect);
        for task in self.sources {
            clean &= finish("ingest", task, deadline).await;
        }
        // The workers deliver what the outbox holds and return when their channel has nothing
        // left; at the end of the grace period what is left stays there for the next start.
        let _ = self.stopping.send(true);
        let mut delivered = true;
        for mut task in self.notify {
            if tokio::time::timeout_at(deadline, &mut task).await.is_err() {
                task.abort();
                delivered = false;
            }
        }
        if !delivered {
            let outbox = Arc::clone(&self.outbox);
            let left = tokio::task::spawn_blocking(move || outbox.count_pending())
                .await
                .unwrap_or_default();
            tracing::warn!(
                left,
                "grace period over; undelivered notifications stay in the outbox for the next start"
            );
        }
        clean && delivered
    }
}

async fn finish(name: &str, mut task: JoinHandle<()>, deadline: tokio::time::Instant) -> bool {
    match tokio::time::timeout_at(deadline, &mut task).await {
        Ok(Ok(())) => true,
        Ok(Err(e)) => {
            tracing::error!(stage = name, error = %e, "stage ended abnormally");
            false
        }
        Err(_) => {
            tracing::warn!(
                stage = name,
                "grace period over; stopping the stage (unacknowledged messages are redelivered)"
            );
            task.abort();
            false
        }
    }
}
