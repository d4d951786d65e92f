//! Writers: send one line-protocol body to InfluxDB (v1 or v2 API) or to local files, and sort
//! every failure into retry or reject.
//!
//! Fed by the batcher with encoded bodies; reports [`WriteError`]s it acts on. Classification
//! (SPEC §6, after Telegraf's): connection errors, timeouts, 5xx and 429 are retried, honouring
//! `Retry-After` where the response is visible; 401, 403 and 404 (bad credentials, missing
//! database or bucket) are retried too, because they concern every point and dead-lettering
//! every reading over an expired token would turn an operator's fix into data loss; any other
//! 4xx is a [`WriteError::Reject`], which the batcher narrows down to the offending points.
//!
//! The v2 path goes through the `influxdb2` crate, which reports the status and body of a
//! failed write but not its headers, so `Retry-After` is honoured on the v1 path only; the v2
//! path falls back to the batcher's exponential backoff.

use crate::config::secret::Secret;
use bytes::Bytes;
use std::path::PathBuf;
use std::time::Duration;

/// Why a write did not land.
#[derive(Debug, Clone, PartialEq)]
pub enum WriteError {
    /// Try the same body again later (after `after` when the server said so).
    Retry {
        reason: String,
        after: Option<Duration>,
    },
    /// The server refused the content; retrying it unchanged cannot succeed.
    Reject { status: u16, message: String },
}

/// Sorts an HTTP status into the reaction it needs.
pub fn classify(status: u16, body: &str, retry_after: Option<Duration>) -> WriteError {
    let message = body.trim().chars().take(500).collect::<String>();
    match status {
        429 | 500..=599 => WriteError::Retry {
            reason: format!("HTTP {status}: {message}"),
            after: retry_after,
        },
        401 | 403 => WriteError::Retry {
            reason: format!("HTTP {status} (check the credentials): {message}"),
            after: None,
        },
        404 => WriteError::Retry {
            reason: format!("HTTP 404 (does the database or bucket exist?): {message}"),
            after: None,
        },
        _ => WriteError::Reject { status, message },
    }
}

/// Parses `Retry-After` given in seconds (the form InfluxDB sends); dates are ignored.
fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let text = headers.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?;
    text.trim().parse::<u64>().ok().map(Duration::from_secs)
}

/// InfluxDB 1.x `/write` with `precision=ms`.
pub struct V1Writer {
    client: reqwest::Client,
    url: String,
    params: Vec<(&'static str, String)>,
    auth: Option<(String, Secret)>,
}

impl V1Writer {
    pub fn new(
        url: &str,
        database: &str,
        retention_policy: Option<&str>,
        auth: Option<(String, Secret)>,
        timeout: Duration,
    ) -> Result<V1Writer, String> {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
        let mut params = vec![
            ("db", database.to_string()),
            ("precision", "ms".to_string()),
        ];
        if let Some(rp) = retention_policy {
            params.push(("rp", rp.to_string()));
        }
        Ok(V1Writer {
            client,
            url: format!("{}/write", url.trim_end_matches('/')),
            params,
            auth,
        })
    }

    pub async fn write(&self, body: Bytes) -> Result<(), WriteError> {
        let mut req = self.client.post(&self.url).query(&self.params).body(body);
        if let Some((user, password)) = &self.auth {
            req = req.basic_auth(user, Some(password.expose()));
        }
        let resp = req.send().await.map_err(|e| WriteError::Retry {
            reason: format!("cannot reach InfluxDB: {e}"),
            after: None,
        })?;
        let status = resp.status();
        if status.is_success() {
            return Ok(());
        }
        let after = retry_after(resp.headers());
        let text = resp.text().await.unwrap_or_default();
        Err(classify(status.as_u16(), &text, after))
    }
}

/// `/api/v2/write` through the `influxdb2` client, with `precision=ms`.
pub struct V2Writer {
    client: influxdb2::Client,
    org: String,
    bucket: String,
}

impl V2Writer {
    pub fn new(
        url: &str,
        org: &str,
        bucket: &str,
        token: Option<&Secret>,
        timeout: Duration,
    ) -> Result<V2Writer, String> {
        let builder = reqwest::Client::builder().timeout(timeout);
        // The URL was validated by config, so the builder's URL parse cannot panic.
        let client = influxdb2::ClientBuilder::with_builder(
            builder,
            url,
            org,
            token.map(Secret::expose).unwrap_or_default(),
        )
        .build()
        .map_err(|e| format!("cannot build the InfluxDB client: {e}"))?;
        Ok(V2Writer {
            client,
            org: org.to_string(),
            bucket: bucket.to_string(),
        })
    }

    pub async fn write(&self, body: Bytes) -> Result<(), WriteError> {
        use influxdb2::api::write::TimestampPrecision;
        use influxdb2::RequestError;
        match self
            .client
            .write_line_protocol_with_precision(
                &self.org,
                &self.bucket,
                body,
                TimestampPrecision::Milliseconds,
            )
            .await
        {
            Ok(()) => Ok(()),
            Err(RequestError::Http { status, text }) => Err(classify(status.as_u16(), &text, None)),
            Err(e) => Err(WriteError::Retry {
                reason: format!("cannot reach InfluxDB: {e}"),
                after: None,
            }),
        }
    }
}

/// Appends line protocol to a file: the demo's store when no InfluxDB is given.
pub struct FileWriter {
    path: PathBuf,
}

impl FileWriter {
    pub fn new(path: PathBuf) -> FileWriter {
        FileWriter { path }
    }

    pub async fn write(&self, body: Bytes) -> Result<(), WriteError> {
        use tokio::io::AsyncWriteExt;
        let result = async {
            let mut f = tokio::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&self.path)
                .await?;
            f.write_all(&body).await?;
            f.sync_data().await
        }
        .await;
        result.map_err(|e| WriteError::Retry {
            reason: format!("cannot append to {}: {e}", self.path.display()),
            after: None,
        })
    }
}

/// Where readings are stored.
pub enum Writer {
    V1(V1Writer),
    V2(V2Writer),
    File(FileWriter),
}

impl Writer {
    pub async fn write(&self, body: Bytes) -> Result<(), WriteError> {
        match self {
            Writer::V1(w) => w.write(body).await,
            Writer::V2(w) => w.write(body).await,
            Writer::File(w) => w.write(body).await,
        }
    }

    pub fn describe(&self) -> String {
        match self {
            Writer::V1(w) => format!("InfluxDB v1 API at {}", w.url),
            Writer::V2(w) => format!("InfluxDB v2 API (org {}, bucket {})", w.org, w.bucket),
            Writer::File(w) => format!("line-protocol file {}", w.path.display()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_classification() {
        let retry = |s| matches!(classify(s, "", None), WriteError::Retry { .. });
        for s in [429, 500, 502, 503, 504, 401, 403, 404] {
            assert!(retry(s), "{s} should be retried");
        }
        for s in [400, 413, 422] {
            assert!(!retry(s), "{s} should be rejected");
        }
        assert_eq!(
            classify(400, "  partial write: field type conflict \n", None),
            WriteError::Reject {
                status: 400,
                message: "partial write: field type conflict".into()
            }
        );
        let WriteError::Retry { after, .. } = classify(429, "", Some(Duration::from_secs(7)))
        else {
            panic!()
        };
        assert_eq!(after, Some(Duration::from_secs(7)));
    }
}
