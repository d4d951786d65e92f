//! The InfluxDB 1.x write backend: `/write` with `precision=ms`, over reqwest.
//!
//! Fed by the store with line-protocol bodies; feeds InfluxDB 1.x (or anything speaking its
//! `/write`). Failures are sorted by [`classify`], honouring the server's `Retry-After`.

use super::{classify, BuildError};
use crate::settings::secret::Secret;
use crate::store::backend::{Backend, WriteError, WriteFuture};
use bytes::Bytes;
use std::time::Duration;

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
    ) -> Result<V1Writer, BuildError> {
        let client = crate::outbound::client_builder(timeout)
            .build()
            .map_err(BuildError::Http)?;
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

    async fn send(&self, body: Bytes) -> Result<(), WriteError> {
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

impl Backend for V1Writer {
    fn write(&self, body: Bytes) -> WriteFuture<'_> {
        Box::pin(self.send(body))
    }

    fn describe(&self) -> String {
        format!("InfluxDB v1 API at {}", self.url)
    }
}
