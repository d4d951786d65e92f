//! The operator's HTTP endpoint (SPEC §8): liveness, readiness with the reason when not ready,
//! Prometheus metrics, the API — stations, alerts, acknowledgements and silences — and the
//! duty console at `/` (its files and headers in `console`).
//!
//! Fed by the running pipeline's shared state (MQTT session, the store's custody side with
//! the spool, the outbox, the counters, the API view in `api`); read by systemd watchdogs,
//! load balancers, Prometheus and the bureaus' own tools. Write endpoints answer 401 without
//! a valid bearer token (the operator's or a bureau's; see `api`), and 403 when a bureau's
//! token acts for another bureau. Served with axum 0.7, which the embedded demo broker already brings, so the
//! build holds no second HTTP server stack. Listens on `[http] listen` (port 0 picks a free
//! port; the bound address is logged).

mod gauges;

use crate::api::{AckRequest, Actor, Live, SilenceRequest};
use crate::app::Running;
use crate::domain::network::Network;
use crate::ingest::mqtt::Session;
use crate::notify::metrics::Channels;
use crate::notify::outbox::Outbox;
use crate::store::Store;
use crate::telemetry::Metrics;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::Router;
use std::net::SocketAddr;
use std::sync::Arc;

/// What the endpoints read.
#[derive(Clone)]
pub struct Shared {
    pub session: Arc<Session>,
    pub store: Arc<Store>,
    pub outbox: Arc<Outbox>,
    pub channels: Arc<Channels>,
    pub metrics: Arc<Metrics>,
    pub live: Arc<Live>,
    pub net: Arc<Network>,
}

impl Shared {
    pub fn of(running: &Running) -> Shared {
        Shared {
            session: Arc::clone(&running.session),
            store: Arc::clone(&running.custody),
            outbox: Arc::clone(&running.outbox),
            channels: Arc::clone(&running.channels),
            metrics: Arc::clone(&running.metrics),
            live: Arc::clone(&running.live),
            net: Arc::clone(&running.net),
        }
    }
}

/// Binds `listen` and serves until the returned task is aborted; returns the bound address.
pub async fn serve(
    listen: SocketAddr,
    shared: Shared,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = tokio::net::TcpListener::bind(listen).await?;
    let addr = listener.local_addr()?;
    let app = Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/api/v1/stations", get(stations))
        .route("/api/v1/alerts", get(alerts))
        .route("/api/v1/incidents", get(incidents))
        .route("/api/v1/alerts/:id/ack", post(acknowledge))
        .route("/api/v1/incidents/:id/ack", post(acknowledge_incident))
        .route("/api/v1/whoami", get(whoami))
        .route("/api/v1/silences", get(silences).post(add_silence))
        .route("/api/v1/silences/:id", axum::routing::delete(end_silence))
        .merge(crate::console::routes())
        .with_state(shared);
    let task = tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error = %e, "the HTTP server stopped");
        }
    });
    Ok((addr, task))
}

/// A JSON answer with its status.
fn json(status: StatusCode, body: serde_json::Value) -> axum::response::Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        format!("{body}\n"),
    )
        .into_response()
}

fn refused((status, message): crate::api::Refusal) -> axum::response::Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    json(status, serde_json::json!({ "error": message }))
}

fn authorized(s: &Shared, headers: &HeaderMap) -> Result<Actor, crate::api::Refusal> {
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    s.live.authorize(given)
}

async fn stations(State(s): State<Shared>) -> axum::response::Response {
    json(StatusCode::OK, serde_json::json!(s.live.stations()))
}

async fn alerts(State(s): State<Shared>) -> axum::response::Response {
    json(StatusCode::OK, serde_json::json!(s.live.alerts()))
}

async fn incidents(State(s): State<Shared>) -> axum::response::Response {
    json(StatusCode::OK, serde_json::json!(s.live.incidents()))
}

async fn silences(State(s): State<Shared>) -> axum::response::Response {
    json(
        StatusCode::OK,
        serde_json::json!(s.live.silences(chrono::Utc::now())),
    )
}

/// `GET /api/v1/whoami`: who the bearer token is (the console's login check).
async fn whoami(State(s): State<Shared>, headers: HeaderMap) -> axum::response::Response {
    match authorized(&s, &headers) {
        Ok(actor) => json(StatusCode::OK, Live::whoami(&s.net, &actor)),
        Err(r) => refused(r),
    }
}

/// The body of an acknowledgement: `{"by", "comment"?, "bureau"?}`.
fn ack_request(body: &[u8]) -> Result<AckRequest, crate::api::Refusal> {
    serde_json::from_slice(body).map_err(|e| {
        (
            400,
            format!("the body is not an acknowledgement {{\"by\", \"comment\", \"bureau\"}}: {e}"),
        )
    })
}

/// Who acknowledges, and what: the caller's token and the body, checked; then `keep` run with
/// them on the blocking pool, since it writes `api.json` synced.
async fn acknowledged<T: Send + 'static>(
    s: &Shared,
    headers: &HeaderMap,
    body: &[u8],
    keep: impl FnOnce(Actor, AckRequest) -> Result<T, crate::api::Refusal> + Send + 'static,
) -> Result<T, crate::api::Refusal> {
    let actor = authorized(s, headers)?;
    let request = ack_request(body)?;
    tokio::task::spawn_blocking(move || keep(actor, request))
        .await
        .unwrap_or_else(|e| Err((500, format!("the acknowledgement failed: {e}"))))
}

/// Puts store points in custody from a task of its own: with the database down and the spool
/// full the points wait, and the answer must not. The acknowledgement is already kept in
/// `api.json`.
fn record(s: &Shared, lines: String) {
    if lines.is_empty() {
        return;
    }
    let store = Arc::clone(&s.store);
    tokio::spawn(async move { store.record(lines).await });
}

/// Appends the `wq_alert` point of `alert`'s acknowledgement `ack`.
fn alert_ack_point(
    net: &Network,
    alert: &crate::api::AlertView,
    ack: &crate::api::Ack,
    out: &mut String,
) {
    if let Some(station) = net.station(&alert.station) {
        crate::store::points::acknowledgement(
            station,
            &alert.rule,
            alert.param.as_deref(),
            &alert.level,
            &alert.id,
            &acked_by(ack),
            out,
        );
    }
}

fn acked_by(ack: &crate::api::Ack) -> crate::store::points::AckedBy<'_> {
    crate::store::points::AckedBy {
        bureau: &ack.bureau,
        by: &ack.by,
        comment: &ack.comment,
        at: ack.at,
    }
}

async fn acknowledge(
    State(s): State<Shared>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> axum::response::Response {
    let (live, alert_id) = (Arc::clone(&s.live), id.clone());
    let done = acknowledged(&s, &headers, &body, move |actor, request| {
        live.acknowledge(&alert_id, &actor, request, chrono::Utc::now())
    })
    .await;
    match done {
        Ok((alert, ack)) => {
            tracing::info!(alert_id = %id, bureau = %ack.bureau, by = %ack.by, "alert acknowledged through the API");
            let mut lines = String::new();
            alert_ack_point(&s.net, &alert, &ack, &mut lines);
            record(&s, lines);
            json(StatusCode::OK, serde_json::json!(alert))
        }
        Err(r) => refused(r),
    }
}

async fn acknowledge_incident(
    State(s): State<Shared>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> axum::response::Response {
    let (live, incident_id) = (Arc::clone(&s.live), id.clone());
    let done = acknowledged(&s, &headers, &body, move |actor, request| {
        live.acknowledge_incident(&incident_id, &actor, request, chrono::Utc::now())
    })
    .await;
    match done {
        Ok((incident, ack, alerts)) => {
            tracing::info!(incident_id = %id, bureau = %ack.bureau, by = %ack.by, alerts = alerts.len(), "incident acknowledged through the API");
            let mut lines = String::new();
            crate::store::points::incident_acknowledgement(
                &incident.id,
                &incident.level,
                &incident.river,
                &incident.stations.join(","),
                &acked_by(&ack),
                &mut lines,
            );
            for alert in &alerts {
                alert_ack_point(&s.net, alert, &ack, &mut lines);
            }
            record(&s, lines);
            json(StatusCode::OK, serde_json::json!(incident))
        }
        Err(r) => refused(r),
    }
}

async fn add_silence(
    State(s): State<Shared>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> axum::response::Response {
    if let Err(r) = authorized(&s, &headers) {
        return refused(r);
    }
    let request: SilenceRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => return refused((400, format!("the body is not a silence: {e}"))),
    };
    let (live, net) = (Arc::clone(&s.live), Arc::clone(&s.net));
    let added =
        tokio::task::spawn_blocking(move || live.silence(&net, request, chrono::Utc::now()))
            .await
            .unwrap_or_else(|e| Err((500, format!("the silence failed: {e}"))));
    match added {
        Ok(silence) => {
            let k = &silence.silence;
            tracing::info!(id = %k.id, until = %k.until, author = %k.author, reason = %k.reason, levels = ?k.levels, "silence added through the API");
            json(StatusCode::CREATED, serde_json::json!(silence))
        }
        Err(r) => refused(r),
    }
}

/// `DELETE /api/v1/silences/{id}`: ends the silence now (it stays listed, ended); what it
/// held and still fires is notified by the judging task on its next tick.
async fn end_silence(
    State(s): State<Shared>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> axum::response::Response {
    if let Err(r) = authorized(&s, &headers) {
        return refused(r);
    }
    // `api.json` is written synced: on the blocking pool.
    let live = Arc::clone(&s.live);
    let silence_id = id.clone();
    let ended =
        tokio::task::spawn_blocking(move || live.end_silence(&silence_id, chrono::Utc::now()))
            .await
            .unwrap_or_else(|e| Err((500, format!("ending the silence failed: {e}"))));
    match ended {
        Ok(silence) => {
            tracing::info!(id = %id, "silence ended through the API");
            json(StatusCode::OK, serde_json::json!(silence))
        }
        Err(r) => refused(r),
    }
}

/// One component's readiness.
fn component(ok: bool, detail: String) -> serde_json::Value {
    serde_json::json!({ "ok": ok, "detail": detail })
}

/// The readiness document: ready when connected and subscribed to the broker and able to take
/// readings into custody (the database, or the spool while it has room).
pub fn readiness(s: &Shared) -> (bool, serde_json::Value) {
    let mqtt_ok = s.session.is_subscribed();
    let mqtt = component(
        mqtt_ok,
        if mqtt_ok {
            "connected and subscribed".into()
        } else if s.session.is_connected() {
            "connected, subscriptions not granted yet".into()
        } else {
            "not connected to the broker; reconnecting".into()
        },
    );
    let down = s.store.is_down();
    let store = component(
        !down,
        if down {
            format!(
                "{} is not taking writes; readings go to the spool",
                s.store.describe()
            )
        } else {
            format!("{} takes writes", s.store.describe())
        },
    );
    let depth = s.store.spool().depth();
    let full = Metrics::get(&s.metrics.spool_full) == 1;
    let mut spool = component(
        !full,
        if full {
            format!(
                "spool full ({} of {} bytes): acknowledgements are paused and the broker keeps new readings until the database returns",
                depth.bytes, depth.max_bytes
            )
        } else if depth.records > 0 {
            format!(
                "{} batches ({} bytes) waiting to be written",
                depth.records, depth.bytes
            )
        } else {
            "empty".into()
        },
    );
    spool["bytes"] = depth.bytes.into();
    spool["records"] = depth.records.into();
    spool["max_bytes"] = depth.max_bytes.into();
    let mut channels = serde_json::Map::new();
    for c in s.channels.readiness() {
        let what = c.noun;
        channels.insert(
            c.component.into(),
            component(
                !c.failing,
                if c.failing {
                    format!("the last {what} delivery failed and is being retried (see the log); notifications wait in the outbox")
                } else {
                    format!("{what} deliveries succeed (or none was needed yet)")
                },
            ),
        );
    }
    let pending = s.outbox.count_pending();
    let mut outbox = component(
        true,
        format!("{pending} notifications waiting for delivery"),
    );
    outbox["pending"] = pending.into();
    let ready = mqtt_ok && !full;
    let mut doc = serde_json::json!({
        "ready": ready,
        "mqtt": mqtt,
        "store": store,
        "spool": spool,
        "outbox": outbox,
    });
    // One object per notification channel, named after the server it depends on.
    if let Some(doc) = doc.as_object_mut() {
        doc.extend(channels);
    }
    (ready, doc)
}

async fn readyz(State(s): State<Shared>) -> impl IntoResponse {
    // The readiness document counts the outbox's files: a directory scan, on the blocking pool.
    let (ready, doc) = tokio::task::spawn_blocking(move || readiness(&s))
        .await
        .unwrap_or_else(|e| {
            let why = format!("the readiness check failed: {e}");
            (false, serde_json::json!({ "error": why }))
        });
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        format!("{doc}\n"),
    )
}

async fn metrics(State(s): State<Shared>) -> impl IntoResponse {
    let depth = s.store.spool().depth();
    Metrics::set(&s.metrics.spool_bytes, depth.bytes);
    Metrics::set(&s.metrics.spool_records, depth.records);
    // A directory scan: on the blocking pool.
    let outbox = Arc::clone(&s.outbox);
    if let Ok(pending) = tokio::task::spawn_blocking(move || outbox.count_pending()).await {
        Metrics::set(&s.metrics.outbox_pending, pending as u64);
    }
    let connected = u64::from(s.session.is_connected());
    let mut text = render(&s.metrics, &s.channels, connected);
    gauges::prometheus(
        &s.live.stations(),
        &s.live.alerts(),
        &s.live.incidents(),
        chrono::Utc::now(),
        &mut text,
    );
    // /proc is read on the blocking pool; without it (not Linux) the process metrics are left out.
    if let Ok(Ok(sample)) = tokio::task::spawn_blocking(crate::telemetry::process::sample).await {
        crate::telemetry::process::prometheus(&sample, &mut text);
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text)
}

/// The Prometheus text exposition of every counter and gauge, the notification channels'
/// included.
pub fn render(m: &Metrics, channels: &Channels, mqtt_connected: u64) -> String {
    let mut out = format!(
        "# HELP riverwatch_mqtt_connected 1 while connected to the broker.\n# TYPE riverwatch_mqtt_connected gauge\nriverwatch_mqtt_connected {mqtt_connected}\n"
    );
    crate::telemetry::prometheus_build_info(&mut out);
    m.prometheus_counters(&mut out);
    channels.prometheus(&mut out);
    m.prometheus_latency(&mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_are_prometheus_text() {
        let m = Metrics::default();
        Metrics::add(&m.readings_stored, 3);
        m.refused(crate::telemetry::RefusalKind::NotJson);
        m.write_took(std::time::Duration::from_millis(7));
        m.write_took(std::time::Duration::from_secs(9));
        let channels = Channels::new(Vec::new()).expect("no channels");
        let text = render(&m, &channels, 1);
        for line in [
            "riverwatch_readings_stored_total 3",
            "riverwatch_readings_refused_total{reason=\"not_json\"} 1",
            "riverwatch_write_seconds_bucket{le=\"0.005\"} 0",
            "riverwatch_write_seconds_bucket{le=\"0.01\"} 1",
            "riverwatch_write_seconds_bucket{le=\"+Inf\"} 2",
            "riverwatch_write_seconds_count 2",
            "riverwatch_mqtt_connected 1",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing {line:?} in\n{text}"
            );
        }
        // Every sample line belongs to a declared metric.
        let declared: Vec<&str> = text
            .lines()
            .filter_map(|l| l.strip_prefix("# TYPE "))
            .filter_map(|l| l.split(' ').next())
            .collect();
        for l in text.lines().filter(|l| !l.starts_with('#')) {
            let name = l.split(['{', ' ']).next().unwrap_or("");
            assert!(
                declared.iter().any(|d| name.starts_with(d)),
                "undeclared {name}"
            );
        }
    }
}
