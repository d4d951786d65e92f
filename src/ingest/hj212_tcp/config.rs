//! The `[hj212_tcp]` section: where the HJ 212 TCP listener listens and the bounds it keeps
//! (connections, idle and frame timeouts, frame rate, refusals before a connection is closed),
//! validated into [`Hj212TcpConfig`].
//!
//! Fed by `config`, which deserializes the table into [`RawHj212Tcp`] and calls [`validate`];
//! feeds the listener ([`super::Hj212Tcp::bind`]).

use crate::settings::secret::SecretSource;
use crate::settings::{duration, Problems};
use serde::Deserialize;
use std::net::SocketAddr;
use std::time::Duration;

/// The listener's settings (SPEC §5a, §10).
#[derive(Debug, Clone, PartialEq)]
pub struct Hj212TcpConfig {
    /// Where loggers connect (`0.0.0.0:9212`); port 0 picks a free port (tests).
    pub listen: SocketAddr,
    /// Connections held at once; one more is accepted and closed at once (counted as
    /// `capacity`): the loggers already connected keep theirs.
    pub max_connections: usize,
    /// A connection that sends nothing for this long is closed (`idle`). Loggers reconnect
    /// when they next have data, so a short value only costs a reconnect.
    pub idle_timeout: Duration,
    /// A frame must arrive whole within this time of its first byte (`slow_frame`): a client
    /// that trickles bytes (slowloris) is closed even though it is never idle.
    pub frame_timeout: Duration,
    /// Frames per second a connection may send, with a burst of as many; beyond it the
    /// listener stops reading that connection until the rate allows (TCP then slows the
    /// sender), so a logger flushing its backlog is slowed, not cut off.
    pub max_frame_rate: f64,
    /// Refused frames in a row (bad framing, unknown MN, wrong PW) after which the
    /// connection is closed (`refused`).
    pub max_refusals: u32,
}

/// Where one station's HJ 212 access password (PW) is read from (`[[station]] hj212_pw_env` /
/// `hj212_pw_file`, collected by `config`).
#[derive(Debug, Clone, PartialEq)]
pub struct LoggerPassword {
    /// The config key, for errors (`station[2].hj212_pw`).
    pub key: String,
    /// The station's id.
    pub station: String,
    pub source: SecretSource,
}

/// The `[hj212_tcp]` table as written; `listen` is required.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHj212Tcp {
    listen: String,
    max_connections: Option<i64>,
    idle_timeout: Option<String>,
    frame_timeout: Option<String>,
    max_frame_rate: Option<f64>,
    max_refusals: Option<i64>,
}

/// Validates `[hj212_tcp]`, every problem recorded under `hj212_tcp.<key>`; `None` when the
/// listen address cannot be used.
pub fn validate(raw: RawHj212Tcp, p: &mut Problems) -> Option<Hj212TcpConfig> {
    let listen = match raw.listen.parse::<SocketAddr>() {
        Ok(a) => Some(a),
        Err(_) => {
            p.add(
                "hj212_tcp.listen",
                format!("{:?} is not an address like \"0.0.0.0:9212\"", raw.listen),
            );
            None
        }
    };
    let max_connections = match raw.max_connections.unwrap_or(256) {
        n @ 1..=100_000 => n as usize,
        n => {
            p.add(
                "hj212_tcp.max_connections",
                format!("{n} must be between 1 and 100000"),
            );
            1
        }
    };
    let max_frame_rate = match raw.max_frame_rate.unwrap_or(20.0) {
        r if r.is_finite() && r > 0.0 => r,
        r => {
            p.add(
                "hj212_tcp.max_frame_rate",
                format!("{r} must be a positive number of frames per second"),
            );
            1.0
        }
    };
    let max_refusals = match raw.max_refusals.unwrap_or(3) {
        n @ 1..=1000 => n as u32,
        n => {
            p.add(
                "hj212_tcp.max_refusals",
                format!("{n} must be between 1 and 1000"),
            );
            1
        }
    };
    Some(Hj212TcpConfig {
        listen: listen?,
        max_connections,
        idle_timeout: duration(
            raw.idle_timeout.as_deref(),
            "10m",
            "hj212_tcp.idle_timeout",
            p,
        ),
        frame_timeout: duration(
            raw.frame_timeout.as_deref(),
            "30s",
            "hj212_tcp.frame_timeout",
            p,
        ),
        max_frame_rate,
        max_refusals,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(toml_text: &str) -> (Option<Hj212TcpConfig>, Vec<String>) {
        let raw: RawHj212Tcp = toml::from_str(toml_text).expect("the table deserializes");
        let mut p = Problems::default();
        let cfg = validate(raw, &mut p);
        (cfg, p.0.into_iter().map(|x| x.key).collect())
    }

    #[test]
    fn defaults_and_bounds() {
        let (cfg, problems) = check(r#"listen = "0.0.0.0:9212""#);
        assert!(problems.is_empty(), "{problems:?}");
        let cfg = cfg.expect("valid");
        assert_eq!(cfg.max_connections, 256);
        assert_eq!(cfg.idle_timeout, Duration::from_secs(600));
        assert_eq!(cfg.frame_timeout, Duration::from_secs(30));
        assert_eq!(cfg.max_refusals, 3);
        for (text, key) in [
            (r#"listen = "somewhere""#, "hj212_tcp.listen"),
            (
                "listen = \"127.0.0.1:0\"\nmax_connections = 0",
                "hj212_tcp.max_connections",
            ),
            (
                "listen = \"127.0.0.1:0\"\nidle_timeout = \"soon\"",
                "hj212_tcp.idle_timeout",
            ),
            (
                "listen = \"127.0.0.1:0\"\nmax_frame_rate = -1.0",
                "hj212_tcp.max_frame_rate",
            ),
            (
                "listen = \"127.0.0.1:0\"\nmax_refusals = 0",
                "hj212_tcp.max_refusals",
            ),
        ] {
            let (_, problems) = check(text);
            assert_eq!(problems, vec![key.to_string()], "{text}");
        }
    }
}
