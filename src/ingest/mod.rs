//! Ingest: from the MQTT broker to decoded readings.
//!
//! `mqtt` owns the broker connection and the acknowledgements; `payload` turns topics and
//! bytes into domain readings or refusals.

pub mod mqtt;
pub mod payload;
