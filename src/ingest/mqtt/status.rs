//! The daemon's status on `[mqtt] status_topic` (SPEC §3, `riverwatch/status` by default):
//! retained, QoS 1, `online` while the ingest connection is up, `offline` otherwise.
//!
//! Built by `app::start` with the start time; the MQTT source sets [`Status::will`] as its
//! connection's last will, publishes [`Status::payload`]`(Online)` on every ConnAck and
//! `Offline` before a clean DISCONNECT. The broker publishes the will when the connection
//! ends any other way (a SIGKILL, a crash, a lost network, a missed keep-alive), so a
//! subscriber always reads the truth from the retained message. The ingest connection carries
//! it because it is the one whose loss matters: while it is down no reading is taken in.
//!
//! Payload (JSON, one object): `{"state":"online"|"offline","version":"<crate version>",
//! "started_at":"<RFC 3339, UTC>","client_id":"<[mqtt] client_id>"}`.

use chrono::{DateTime, SecondsFormat, Utc};
use rumqttc::{LastWill, QoS};

/// What the status says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Online,
    Offline,
}

impl State {
    pub fn key(self) -> &'static str {
        match self {
            State::Online => "online",
            State::Offline => "offline",
        }
    }
}

/// The status announcements of one daemon run.
#[derive(Debug, Clone, PartialEq)]
pub struct Status {
    /// `[mqtt] status_topic`.
    pub topic: String,
    /// `[mqtt] client_id`, so a subscriber tells instances apart.
    pub client_id: String,
    /// When this run started.
    pub started_at: DateTime<Utc>,
}

impl Status {
    /// The retained JSON payload saying `state`.
    pub fn payload(&self, state: State) -> Vec<u8> {
        serde_json::json!({
            "state": state.key(),
            "version": env!("CARGO_PKG_VERSION"),
            "started_at": self.started_at.to_rfc3339_opts(SecondsFormat::Secs, true),
            "client_id": self.client_id,
        })
        .to_string()
        .into_bytes()
    }

    /// The last will: `offline`, retained, QoS 1.
    pub fn will(&self) -> LastWill {
        LastWill::new(
            &self.topic,
            self.payload(State::Offline),
            QoS::AtLeastOnce,
            true,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn the_payloads_say_the_state_and_who() {
        let s = Status {
            topic: "riverwatch/status".into(),
            client_id: "riverwatch".into(),
            started_at: Utc
                .with_ymd_and_hms(2026, 11, 29, 2, 0, 0)
                .single()
                .expect("time"),
        };
        for state in [State::Online, State::Offline] {
            let v: serde_json::Value = serde_json::from_slice(&s.payload(state)).expect("json");
            assert_eq!(
                v,
                serde_json::json!({
                    "state": state.key(),
                    "version": env!("CARGO_PKG_VERSION"),
                    "started_at": "2026-11-29T02:00:00Z",
                    "client_id": "riverwatch",
                })
            );
        }
        let will = s.will();
        assert_eq!(
            (will.topic.as_str(), will.retain, will.qos),
            ("riverwatch/status", true, QoS::AtLeastOnce)
        );
        assert_eq!(&will.message[..], &s.payload(State::Offline)[..]);
    }
}
