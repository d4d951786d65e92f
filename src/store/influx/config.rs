//! The `[influxdb]` section: the server URL, the write API (v1 database or v2 org and
//! bucket) with its credentials, batching and timeouts, validated into [`InfluxConfig`].
//!
//! Fed by `config`, which deserializes the table into [`RawInflux`] and calls [`validate`];
//! feeds [`super::writer`] and the query client.

use crate::settings::secret::SecretSource;
use crate::settings::{duration, host_port, secret_source, Problems};
use serde::Deserialize;
use std::path::Path;
use std::time::Duration;

/// Which write API, and its credentials.
#[derive(Debug, Clone, PartialEq)]
pub enum InfluxApi {
    /// InfluxDB 1.x `/write`.
    V1 {
        database: String,
        retention_policy: Option<String>,
        username: Option<String>,
        password: Option<SecretSource>,
    },
    /// `/api/v2/write` (InfluxDB 2 and 3, VictoriaMetrics).
    V2 {
        org: String,
        bucket: String,
        token: Option<SecretSource>,
    },
}

/// The InfluxDB backend's settings.
#[derive(Debug, Clone, PartialEq)]
pub struct InfluxConfig {
    pub url: String,
    pub api: InfluxApi,
    /// Lines per write; a batch is also written when `flush_interval` passes or input pauses.
    pub batch_size: usize,
    pub flush_interval: Duration,
    /// Per-request timeout; a write that takes longer is retried.
    pub timeout: Duration,
    /// `[influxdb] required = true`: `run` exits 69 when the server does not accept a
    /// connection at start, instead of spooling until it returns (SPEC §2, §10). Default false.
    pub required: bool,
}

/// The `[influxdb]` table as written; `url` is required.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawInflux {
    url: String,
    api: Option<String>,
    org: Option<String>,
    bucket: Option<String>,
    token_env: Option<String>,
    token_file: Option<String>,
    database: Option<String>,
    retention_policy: Option<String>,
    username: Option<String>,
    password_env: Option<String>,
    password_file: Option<String>,
    batch_size: Option<i64>,
    flush_interval: Option<String>,
    timeout: Option<String>,
    required: Option<bool>,
}

/// Validates `[influxdb]`, every problem recorded under `influxdb.<key>`; `None` when `api`
/// is neither "v1" nor "v2". Relative secret files are resolved against `base`.
pub fn validate(raw: RawInflux, base: &Path, p: &mut Problems) -> Option<InfluxConfig> {
    let url = raw.url.trim_end_matches('/').to_string();
    host_port(&url, &[("http", 8086), ("https", 443)], "influxdb.url", p);
    let api = match raw.api.as_deref().unwrap_or("v2") {
        "v2" => {
            // The influxdb2 client replaces the URL's path, so a prefix would be silently lost.
            if reqwest::Url::parse(&url).is_ok_and(|u| u.path().len() > 1) {
                p.add(
                    "influxdb.url",
                    "the v2 API is reached at the server root; a path prefix is not supported",
                );
            }
            let required = |v: Option<String>, key: &str, p: &mut Problems| {
                v.filter(|s| !s.is_empty()).unwrap_or_else(|| {
                    p.add(format!("influxdb.{key}"), "required with api = \"v2\"");
                    String::new()
                })
            };
            InfluxApi::V2 {
                org: required(raw.org, "org", p),
                bucket: required(raw.bucket, "bucket", p),
                token: secret_source(raw.token_env, raw.token_file, "influxdb.token", base, p),
            }
        }
        "v1" => InfluxApi::V1 {
            database: raw.database.filter(|d| !d.is_empty()).unwrap_or_else(|| {
                p.add("influxdb.database", "required with api = \"v1\"");
                String::new()
            }),
            retention_policy: raw.retention_policy,
            username: raw.username,
            password: secret_source(
                raw.password_env,
                raw.password_file,
                "influxdb.password",
                base,
                p,
            ),
        },
        other => {
            p.add("influxdb.api", format!("{other:?} is not \"v1\" or \"v2\""));
            return None;
        }
    };
    let batch_size = match raw.batch_size.unwrap_or(5000) {
        n @ 1..=100_000 => n as usize,
        n => {
            p.add(
                "influxdb.batch_size",
                format!("{n} is not between 1 and 100000 lines"),
            );
            1
        }
    };
    Some(InfluxConfig {
        url,
        api,
        batch_size,
        flush_interval: duration(
            raw.flush_interval.as_deref(),
            "1s",
            "influxdb.flush_interval",
            p,
        ),
        timeout: duration(raw.timeout.as_deref(), "10s", "influxdb.timeout", p),
        required: raw.required.unwrap_or(false),
    })
}
