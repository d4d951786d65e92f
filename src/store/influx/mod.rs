//! InfluxDB: the v1 and v2 write backends, the query client `report` reads with, and what
//! they share — resolving `[influxdb]`'s secrets and sorting every failed write into retry or
//! reject.
//!
//! Fed by the store's custody code with encoded bodies (through [`Backend`]), and by `report`
//! with InfluxQL statements ([`query`]); feeds InfluxDB. [`writer`] builds the write backend
//! from `[influxdb]`; `v1.rs` and `v2.rs` hold one write API each.
//!
//! Classification (SPEC §6, after Telegraf's): connection errors, timeouts, 5xx and 429 are
//! retried, honouring `Retry-After` where the response is visible; 401, 403 and 404 (bad
//! credentials, missing database or bucket) are retried too, because they concern every point
//! and dead-lettering every reading over an expired token would turn an operator's fix into
//! data loss; any other 4xx is a [`WriteError::Reject`], which the store narrows down to the
//! offending points.
//!
//! The v2 path goes through the `influxdb2` crate, which reports the status and body of a
//! failed write but not its headers, so `Retry-After` is honoured on the v1 path only; the v2
//! path falls back to the batcher's exponential backoff.

pub mod config;
pub mod query;
mod v1;
mod v2;

pub use v1::V1Writer;
pub use v2::V2Writer;

use crate::settings::secret::Secret;
use crate::store::backend::{Backend, WriteError};
use config::{InfluxApi, InfluxConfig};
use std::time::Duration;

/// Why an InfluxDB client could not be built. The messages name the config key.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("influxdb.password: {0}")]
    Password(crate::settings::secret::SecretError),
    #[error("influxdb.token: {0}")]
    Token(crate::settings::secret::SecretError),
    #[error("cannot build the HTTP client: {0}")]
    Http(reqwest::Error),
    #[error("cannot build the InfluxDB client: {0}")]
    Client(influxdb2::BuildError),
}

/// `[influxdb]`'s secrets, resolved once for the writers and the query client alike: user and
/// password for v1 (only when both are given), the token for v2.
struct Credentials {
    basic: Option<(String, Secret)>,
    token: Option<Secret>,
}

impl Credentials {
    fn resolve(api: &InfluxApi) -> Result<Credentials, BuildError> {
        match api {
            InfluxApi::V1 {
                username, password, ..
            } => {
                let basic = match (username, password) {
                    (Some(u), Some(p)) => {
                        Some((u.clone(), p.resolve().map_err(BuildError::Password)?))
                    }
                    _ => None,
                };
                Ok(Credentials { basic, token: None })
            }
            InfluxApi::V2 { token, .. } => {
                let token = token
                    .as_ref()
                    .map(|t| t.resolve().map_err(BuildError::Token))
                    .transpose()?;
                Ok(Credentials { basic: None, token })
            }
        }
    }
}

/// The write backend `[influxdb]` asks for, with its secrets resolved.
pub fn writer(influx: &InfluxConfig) -> Result<Box<dyn Backend>, BuildError> {
    let credentials = Credentials::resolve(&influx.api)?;
    Ok(match &influx.api {
        InfluxApi::V1 {
            database,
            retention_policy,
            ..
        } => Box::new(V1Writer::new(
            &influx.url,
            database,
            retention_policy.as_deref(),
            credentials.basic,
            influx.timeout,
        )?),
        InfluxApi::V2 { org, bucket, .. } => Box::new(V2Writer::new(
            &influx.url,
            org,
            bucket,
            credentials.token.as_ref(),
            influx.timeout,
        )?),
    })
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
