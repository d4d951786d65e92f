//! The InfluxDB query client: InfluxQL through `/query`, for both APIs — the one way the
//! project reads stored data back.
//!
//! Fed by `report` with InfluxQL statements; answers with InfluxDB's JSON, one result per
//! statement. With `api = "v1"` the endpoint is InfluxDB 1.x's own (database, optional user and
//! password); with `api = "v2"` it is InfluxDB 2's v1-compatibility endpoint, with the token
//! and the bucket's DBRP mapping (the compose file creates it). InfluxQL rather than Flux: one
//! query language and one answer format for both APIs, the same queries the Grafana dashboards
//! use, and no Flux CSV parsing.

use super::config::{InfluxApi, InfluxConfig};
use super::{BuildError, Credentials};
use std::time::Duration;

/// Why a query gave no answer.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    #[error("cannot reach InfluxDB at {url}: {source}")]
    Unreachable { url: String, source: reqwest::Error },
    #[error("InfluxDB answered {status} with no JSON: {source}")]
    NotJson {
        status: reqwest::StatusCode,
        source: reqwest::Error,
    },
    /// InfluxDB's own message, for the request or for one of its statements.
    #[error("InfluxDB: {0}")]
    Refused(String),
}

/// Reads `[influxdb]`'s database (v1) or bucket (v2) with InfluxQL.
pub struct QueryClient {
    client: reqwest::Client,
    /// `<url>/query`.
    url: String,
    /// The database, or with v2 the bucket (through its DBRP mapping).
    db: String,
    credentials: Credentials,
}

impl QueryClient {
    /// From `[influxdb]`, resolving its secrets. The timeout is `[influxdb] timeout` but at
    /// least 30 s: a write timeout suits one batch, while a query may scan a month of points.
    pub fn new(influx: &InfluxConfig) -> Result<QueryClient, BuildError> {
        let credentials = Credentials::resolve(&influx.api)?;
        let client = crate::outbound::client_builder(influx.timeout.max(Duration::from_secs(30)))
            .build()
            .map_err(BuildError::Http)?;
        let db = match &influx.api {
            InfluxApi::V1 { database, .. } => database.clone(),
            InfluxApi::V2 { bucket, .. } => bucket.clone(),
        };
        Ok(QueryClient {
            client,
            url: format!("{}/query", influx.url.trim_end_matches('/')),
            db,
            credentials,
        })
    }

    /// Runs `statements` (joined by `;`, so one request) and returns one answer per
    /// statement: InfluxDB's `results[i]` objects, whose `series` hold `tags` and `values`.
    /// An error in any statement fails the whole query.
    pub async fn influxql(
        &self,
        statements: &[String],
    ) -> Result<Vec<serde_json::Value>, QueryError> {
        let q = statements.join(";");
        let mut req = self
            .client
            .post(&self.url)
            .form(&[("db", self.db.as_str()), ("q", q.as_str())]);
        if let Some((u, p)) = &self.credentials.basic {
            req = req.basic_auth(u, Some(p.expose()));
        }
        if let Some(t) = &self.credentials.token {
            req = req.header(
                reqwest::header::AUTHORIZATION,
                format!("Token {}", t.expose()),
            );
        }
        let resp = req.send().await.map_err(|source| QueryError::Unreachable {
            url: self.url.clone(),
            source,
        })?;
        let status = resp.status();
        let body: serde_json::Value = resp
            .json()
            .await
            .map_err(|source| QueryError::NotJson { status, source })?;
        if let Some(e) = body["error"].as_str() {
            return Err(QueryError::Refused(e.to_string()));
        }
        let results = body["results"].as_array().cloned().unwrap_or_default();
        for r in &results {
            if let Some(e) = r["error"].as_str() {
                return Err(QueryError::Refused(e.to_string()));
            }
        }
        Ok(results)
    }
}
