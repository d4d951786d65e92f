//! The one way riverwatch builds its outbound HTTP clients: the InfluxDB writers and queries
//! (`store`), and the SMS gateway, chat robots and webhooks (`notify`) all start from
//! [`client_builder`], so they share one policy. Fed by those modules' setup; feeds reqwest.

use std::time::Duration;

/// A reqwest client builder for one outbound peer: each request ends after `timeout`, and only
/// HTTP/1.1 is spoken (ALPN offers `http/1.1` alone; no HTTP/2 prior knowledge).
///
/// Why HTTP/1.1 only: reqwest 0.11, which influxdb2 0.5.2 requires, always compiles the
/// HTTP/2 stack h2 0.3, which has RUSTSEC-2026-0258 (unbounded empty DATA frames, fixed only
/// in h2 0.4.16). With HTTP/2 never negotiated, a hostile or broken server cannot reach that
/// code. No peer of riverwatch needs HTTP/2: it sends one request per batch or notification.
pub fn client_builder(timeout: Duration) -> reqwest::ClientBuilder {
    reqwest::Client::builder().timeout(timeout).http1_only()
}
