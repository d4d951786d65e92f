//! The InfluxDB 2 write backend: `/api/v2/write` with `precision=ms`, through the `influxdb2`
//! crate (also spoken by InfluxDB 3 and VictoriaMetrics).
//!
//! Fed by the store with line-protocol bodies; feeds the bucket. The crate reports the status
//! and body of a failed write but not its headers, so [`classify`] gets no `Retry-After` here
//! and the store's exponential backoff applies.

use super::{classify, BuildError};
use crate::settings::secret::Secret;
use crate::store::backend::{Backend, WriteError, WriteFuture};
use bytes::Bytes;
use std::time::Duration;

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
    ) -> Result<V2Writer, BuildError> {
        let builder = crate::outbound::client_builder(timeout);
        // The URL was validated by config, so the builder's URL parse cannot panic.
        let client = influxdb2::ClientBuilder::with_builder(
            builder,
            url,
            org,
            token.map(Secret::expose).unwrap_or_default(),
        )
        .build()
        .map_err(BuildError::Client)?;
        Ok(V2Writer {
            client,
            org: org.to_string(),
            bucket: bucket.to_string(),
        })
    }

    async fn send(&self, body: Bytes) -> Result<(), WriteError> {
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

impl Backend for V2Writer {
    fn write(&self, body: Bytes) -> WriteFuture<'_> {
        Box::pin(self.send(body))
    }

    fn describe(&self) -> String {
        format!("InfluxDB v2 API (org {}, bucket {})", self.org, self.bucket)
    }
}
