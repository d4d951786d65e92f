//! The only wiring: builds the adapters from config, connects the stages with bounded
//! channels, and runs the shutdown sequence.
//!
//! ```text
//!  broker ─▶ ingest::mqtt::drive ─Inbound─▶ screen ─Entry─▶ store (batch, write) ─Ack─▶ acker ─▶ broker
//!                                             │
//!                                             └─Transition─▶ notify (email, SMS)
//! ```
//!
//! Channel bounds and their when-full policy: `Inbound` and `Ack` hold up to the MQTT
//! in-flight bound (see `ingest::mqtt`), so they never fill for QoS 1 traffic; `Entry` (1,024
//! messages) and `Transition` (1,024) make the screen wait, which stops acknowledgements, so
//! excess waits at the broker. Shutdown (mini-redis style, in flow order): the ingest stops
//! handing on messages and drops its sender; each stage drains its input and drops its output;
//! the store writes the last batch and releases its acks; then the client disconnects. A stage
//! still busy when the grace period ends is aborted: what it held was not acknowledged, so the
//! broker redelivers it.

use crate::config::{Config, InfluxApi};
use crate::deadletter::DeadLetter;
use crate::domain::network::Network;
use crate::domain::rules::Rules;
use crate::ingest::mqtt::{self, Phase, Session};
use crate::ingest::payload::PayloadLimits;
use crate::notify::email::EmailSink;
use crate::notify::sms::SmsSink;
use crate::notify::Notifier;
use crate::screen::Screen;
use crate::store::influx::{V1Writer, V2Writer, Writer};
use crate::store::Batcher;
use crate::telemetry::Metrics;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

/// Where the pipeline's results go.
pub struct Outputs {
    pub writer: Writer,
    pub email: EmailSink,
    pub sms: SmsSink,
}

/// Builds the daemon's outputs from config, resolving secrets. Errors name the key.
pub fn outputs(cfg: &Config) -> Result<Outputs, String> {
    let influx = cfg
        .influxdb
        .as_ref()
        .ok_or("[influxdb] is required by `run` (where readings are stored)")?;
    let writer = match &influx.api {
        InfluxApi::V1 {
            database,
            retention_policy,
            username,
            password,
        } => {
            let auth = match (username, password) {
                (Some(u), Some(p)) => Some((
                    u.clone(),
                    p.resolve().map_err(|e| format!("influxdb.password: {e}"))?,
                )),
                _ => None,
            };
            Writer::V1(V1Writer::new(
                &influx.url,
                database,
                retention_policy.as_deref(),
                auth,
                influx.timeout,
            )?)
        }
        InfluxApi::V2 { org, bucket, token } => {
            let token = token
                .as_ref()
                .map(|t| t.resolve().map_err(|e| format!("influxdb.token: {e}")))
                .transpose()?;
            Writer::V2(V2Writer::new(
                &influx.url,
                org,
                bucket,
                token.as_ref(),
                influx.timeout,
            )?)
        }
    };
    let email = match &cfg.smtp {
        Some(smtp) => {
            let password = smtp
                .password
                .as_ref()
                .map(|p| p.resolve().map_err(|e| format!("smtp.password: {e}")))
                .transpose()?;
            EmailSink::smtp(smtp, password)?
        }
        None => return Err("[smtp] is required by `run` (alerts are emailed)".into()),
    };
    let sms = match &cfg.sms {
        Some(sms) => SmsSink::gateway(sms)?,
        None => {
            if cfg.network.bureaus.iter().any(|b| !b.sms.is_empty()) {
                tracing::warn!("bureaus list SMS recipients but no [sms] gateway is configured; SMS are not sent");
            }
            SmsSink::Disabled
        }
    };
    Ok(Outputs { writer, email, sms })
}

/// MQTT client options from config, resolving the password.
pub fn mqtt_options(cfg: &Config) -> Result<rumqttc::MqttOptions, String> {
    let password = cfg
        .mqtt
        .password
        .as_ref()
        .map(|p| p.resolve().map_err(|e| format!("mqtt.password: {e}")))
        .transpose()?;
    mqtt::options(&cfg.mqtt, password.as_ref())
}

/// The multi-threaded runtime every long-running command uses; `None` (after saying why on
/// stderr) when the system refuses threads.
pub fn runtime() -> Option<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| eprintln!("cannot start the runtime: {e}"))
        .ok()
}

/// A started pipeline.
pub struct Running {
    pub metrics: Arc<Metrics>,
    pub session: Arc<Session>,
    phase: watch::Sender<Phase>,
    ingest: JoinHandle<()>,
    acker: JoinHandle<()>,
    screen: JoinHandle<()>,
    store: JoinHandle<()>,
    notify: JoinHandle<()>,
}

/// Starts every stage. Must be called inside a tokio runtime.
pub fn start(
    cfg: &Config,
    options: rumqttc::MqttOptions,
    outputs: Outputs,
) -> Result<Running, String> {
    let metrics = Arc::new(Metrics::default());
    let deadletter = Arc::new(DeadLetter::open(&cfg.deadletter_path()).map_err(|e| {
        format!(
            "cannot open the dead-letter file {}: {e}",
            cfg.deadletter_path().display()
        )
    })?);
    let net: Arc<Network> = Arc::new(cfg.network.clone());
    let (client, eventloop) = mqtt::client(options);
    let session = Arc::new(Session::default());
    let (phase_tx, phase_rx) = watch::channel(Phase::Running);
    let (inbound_tx, inbound_rx) = mpsc::channel(mqtt::INFLIGHT_BOUND);
    let (entry_tx, entry_rx) = mpsc::channel(1024);
    let (ack_tx, ack_rx) = mpsc::channel(mqtt::INFLIGHT_BOUND);
    let (notify_tx, notify_rx) = mpsc::channel(1024);

    let ingest = tokio::spawn(mqtt::drive(
        eventloop,
        client.clone(),
        mqtt::FILTERS.iter().map(|f| f.to_string()).collect(),
        inbound_tx,
        Arc::clone(&session),
        phase_rx,
    ));
    let acker = tokio::spawn(mqtt::acker(
        client,
        ack_rx,
        Arc::clone(&session),
        Arc::clone(&metrics),
    ));
    let limits = PayloadLimits {
        max_payload: cfg.ingest.max_payload,
        max_future_skew: chrono::Duration::from_std(cfg.ingest.max_future_skew)
            .unwrap_or(chrono::Duration::minutes(10)),
    };
    let screen = Screen::new(
        Arc::clone(&net),
        limits,
        Rules::new(cfg.rules),
        Arc::clone(&deadletter),
        Arc::clone(&metrics),
    );
    let screen = tokio::spawn(screen.run(inbound_rx, entry_tx, notify_tx));
    let (batch_size, flush_interval) = cfg
        .influxdb
        .as_ref()
        .map_or((5000, Duration::from_secs(1)), |i| {
            (i.batch_size, i.flush_interval)
        });
    let store = Batcher {
        writer: outputs.writer,
        batch_size,
        flush_interval,
        acks: ack_tx,
        deadletter,
        metrics: Arc::clone(&metrics),
    };
    let store = tokio::spawn(store.run(entry_rx));
    let notifier = Notifier {
        net,
        email: outputs.email,
        sms: outputs.sms,
        metrics: Arc::clone(&metrics),
    };
    let notify = tokio::spawn(notifier.run(notify_rx));
    Ok(Running {
        metrics,
        session,
        phase: phase_tx,
        ingest,
        acker,
        screen,
        store,
        notify,
    })
}

impl Running {
    /// Runs the shutdown sequence within `grace`; returns false when a stage had to be aborted.
    pub async fn stop(self, grace: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + grace;
        let _ = self.phase.send(Phase::Draining);
        let mut clean = true;
        for (name, task) in [
            ("screen", self.screen),
            ("store", self.store),
            ("acker", self.acker),
        ] {
            clean &= finish(name, task, deadline).await;
        }
        let _ = self.phase.send(Phase::Disconnect);
        for (name, task) in [("ingest", self.ingest), ("notify", self.notify)] {
            clean &= finish(name, task, deadline).await;
        }
        clean
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
