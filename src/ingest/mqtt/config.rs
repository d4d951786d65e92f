//! The `[mqtt]` section: the broker URL, client identity, credentials, TLS files, keep-alive,
//! this instance's shard, and the topics riverwatch publishes to (SPEC §3), validated into
//! [`MqttConfig`].
//!
//! Fed by `config`, which deserializes the table into [`RawMqtt`] and calls [`validate`];
//! feeds [`super::options`], [`super::filters`], the source's status announcements and the
//! `mqtt` notification channel (`notify::mqtt`).

use crate::settings::secret::SecretSource;
use crate::settings::{duration, host_port, secret_source, Problems};
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The MQTT source's settings.
#[derive(Debug, Clone, PartialEq)]
pub struct MqttConfig {
    pub host: String,
    pub port: u16,
    /// `mqtts://`: TLS with the system roots, or with `ca_file` when given.
    pub tls: bool,
    /// Fixed, so the broker keeps our persistent session across restarts.
    pub client_id: String,
    pub username: Option<String>,
    pub password: Option<SecretSource>,
    pub ca_file: Option<PathBuf>,
    /// Client certificate and key, for brokers that authenticate clients by certificate.
    pub client_cert: Option<(PathBuf, PathBuf)>,
    pub keep_alive: Duration,
    /// This instance's share of the stations, when several instances split them.
    pub shard: Option<crate::domain::network::Shard>,
    /// Subscribe through `$share/<group>/…` (for brokers whose shared-subscription strategy
    /// keeps a topic on one member).
    pub shared_group: Option<String>,
    /// Where the daemon's status is retained (`online`, `offline` by the last will):
    /// `riverwatch/status` unless `[mqtt] status_topic` says otherwise.
    pub status_topic: String,
    /// The prefix of the alert topics, `<alerts_topic>/<station>`: `riverwatch/alerts` unless
    /// `[mqtt] alerts_topic` says otherwise.
    pub alerts_topic: String,
    /// Whether alert transitions and incident events are published (`[mqtt] publish_alerts`,
    /// default true).
    pub publish_alerts: bool,
    /// `[mqtt] required = true`: `run` exits 69 when the broker does not accept a connection
    /// at start, instead of starting and retrying (SPEC §2, §10). Default false.
    pub required: bool,
}

/// The default of `[mqtt] status_topic` (SPEC §3).
pub const STATUS_TOPIC: &str = "riverwatch/status";
/// The default of `[mqtt] alerts_topic` (SPEC §3).
pub const ALERTS_TOPIC: &str = "riverwatch/alerts";

/// The `[mqtt]` table as written; every key is optional.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawMqtt {
    url: Option<String>,
    client_id: Option<String>,
    username: Option<String>,
    password_env: Option<String>,
    password_file: Option<String>,
    ca_file: Option<String>,
    client_cert_file: Option<String>,
    client_key_file: Option<String>,
    keep_alive: Option<String>,
    shard: Option<RawShard>,
    shared_group: Option<String>,
    status_topic: Option<String>,
    alerts_topic: Option<String>,
    publish_alerts: Option<bool>,
    required: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawShard {
    index: i64,
    count: i64,
}

/// Validates `[mqtt]` (all of it optional: an absent table is [`RawMqtt::default`]), every
/// problem recorded under `mqtt.<key>`; relative paths are resolved against `base`.
pub fn validate(raw: RawMqtt, base: &Path, p: &mut Problems) -> MqttConfig {
    let url = raw.url.as_deref().unwrap_or("mqtt://127.0.0.1:1883");
    let (host, port, scheme) = host_port(
        url,
        &[
            ("mqtt", 1883),
            ("tcp", 1883),
            ("mqtts", 8883),
            ("ssl", 8883),
        ],
        "mqtt.url",
        p,
    )
    .unwrap_or_default();
    let tls = scheme == "mqtts" || scheme == "ssl";
    let client_id = raw.client_id.unwrap_or_else(|| "riverwatch".into());
    if client_id.is_empty() || client_id.len() > 64 {
        p.add("mqtt.client_id", "must be 1 to 64 characters");
    }
    let password = secret_source(
        raw.password_env,
        raw.password_file,
        "mqtt.password",
        base,
        p,
    );
    if password.is_some() && raw.username.is_none() {
        p.add("mqtt.username", "a password is configured but no username");
    }
    let ca_file = raw.ca_file.map(|f| base.join(f));
    if ca_file.is_some() && !tls {
        p.add(
            "mqtt.ca_file",
            format!("is only used with mqtts:// (url is {url:?})"),
        );
    }
    let client_cert = match (raw.client_cert_file, raw.client_key_file) {
        (Some(c), Some(k)) => Some((base.join(c), base.join(k))),
        (None, None) => None,
        _ => {
            p.add(
                "mqtt.client_cert_file",
                "client_cert_file and client_key_file go together",
            );
            None
        }
    };
    let keep_alive = duration(raw.keep_alive.as_deref(), "30s", "mqtt.keep_alive", p);
    let shard = match raw.shard {
        None => None,
        Some(RawShard { index, count })
            if (1..=1024).contains(&count) && (0..count).contains(&index) =>
        {
            Some(crate::domain::network::Shard {
                index: index as u32,
                count: count as u32,
            })
        }
        // A count or index of the wrong type is reported at its own key, once.
        Some(_) if p.is_broken("mqtt.shard.count") || p.is_broken("mqtt.shard.index") => None,
        Some(RawShard { index, count }) => {
            p.add(
                "mqtt.shard",
                format!("index {index} of count {count}: count must be 1 to 1024 and index 0 to count − 1"),
            );
            None
        }
    };
    if let Some(g) = &raw.shared_group {
        if g.is_empty() || g.contains(['/', '+', '#']) {
            p.add(
                "mqtt.shared_group",
                format!("{g:?} must be a non-empty name without /, + or #"),
            );
        }
    }
    let status_topic = raw.status_topic.unwrap_or_else(|| STATUS_TOPIC.into());
    check_topic(&status_topic, "mqtt.status_topic", p);
    let alerts_topic = raw.alerts_topic.unwrap_or_else(|| ALERTS_TOPIC.into());
    check_topic(&alerts_topic, "mqtt.alerts_topic", p);
    if alerts_topic.ends_with('/') {
        p.add(
            "mqtt.alerts_topic",
            format!("{alerts_topic:?} is a prefix: the station id follows after a /, so it must not end with one"),
        );
    }
    MqttConfig {
        host,
        port,
        tls,
        client_id,
        username: raw.username,
        password,
        ca_file,
        client_cert,
        keep_alive,
        shard,
        shared_group: raw.shared_group,
        status_topic,
        alerts_topic,
        publish_alerts: raw.publish_alerts.unwrap_or(true),
        required: raw.required.unwrap_or(false),
    }
}

/// A topic riverwatch publishes to: not empty, no wildcard (`+`, `#`), no NUL, not a broker's
/// own `$` topic, and short enough that topic and payload stay far below any broker's limit.
fn check_topic(topic: &str, key: &str, p: &mut Problems) {
    let why = if topic.is_empty() {
        "must not be empty"
    } else if topic.contains(['+', '#', '\0']) {
        "must not hold a wildcard (+, #) or NUL: it is a topic to publish to"
    } else if topic.starts_with('$') {
        "must not start with $ (topics the broker keeps for itself)"
    } else if topic.len() > 200 {
        "must be at most 200 bytes"
    } else {
        return;
    };
    p.add(key, format!("{topic:?} {why}"));
}
