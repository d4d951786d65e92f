//! Screen: runs the domain rules on each decoded message — QC, the GB 3838 judgement, the
//! alert rules and the incidents they group into — and on the offline timer, turning
//! [`Decoded`] into [`Judged`].
//!
//! Fed by the input sources (through the judging task in [`crate::alerts`]) with one
//! `Decoded` per transport message, in receive order; feeds the alerts stage, which makes the
//! transitions durable, and then the store, which encodes and keeps the judged readings. The
//! rule state (QC streams, trend windows, alert episodes, open incidents) is owned here, by one task, so a
//! station's readings are judged in the order they arrive.
//!
//! Must not: do I/O, log, count or read the clock. It imports the domain and nothing else
//! (`tests/tidy.rs` checks), so the whole stage is the domain's decisions in the daemon's
//! order; `now` is an argument.

use crate::domain::alert::Saved;
use crate::domain::flow::{Decoded, Judged, JudgedReading, Receipt};
use crate::domain::incident::{Incident, Incidents, Member};
use crate::domain::network::Network;
use crate::domain::rules::Rules;
use chrono::{DateTime, Utc};
use std::sync::Arc;

pub struct Screen {
    /// Stations, rivers and bureaus: targets and routing for the rules.
    net: Arc<Network>,
    /// QC, judgement and alert rules, with their per-station state.
    rules: Rules,
    /// The open incidents the alerts are grouped into.
    incidents: Incidents,
}

impl Screen {
    pub fn new(net: Arc<Network>, rules: Rules, incidents: Incidents) -> Screen {
        Screen {
            net,
            rules,
            incidents,
        }
    }

    /// Judges one message's readings, in reading-time order (a backlog may arrive out of
    /// order; the alert rules want it sorted). `now` is the wall time of receipt.
    pub fn judge(&mut self, mut decoded: Decoded, now: DateTime<Utc>) -> Judged {
        decoded.readings.sort_by_key(|r| r.ts);
        let mut judged = Judged {
            origin: decoded.origin,
            station: decoded.station,
            readings: Vec::with_capacity(decoded.readings.len()),
            transitions: Vec::new(),
            incidents: Vec::new(),
            receipt: decoded.receipt,
        };
        let net = Arc::clone(&self.net);
        let Some(station) = judged.station.and_then(|i| net.stations.get(i)) else {
            // A source only hands on readings of configured stations; a message without one
            // carries its receipt alone.
            return judged;
        };
        for reading in decoded.readings {
            let mut outcome = self.rules.reading(&net, station, &reading, now);
            // Almost every reading changes no alert while no incident is open: it then skips
            // the incidents (and the copy of its values) altogether.
            if !outcome.transitions.is_empty() || !self.incidents.open().is_empty() {
                let values: Vec<_> = outcome
                    .judgement
                    .judged
                    .iter()
                    .map(|j| (j.param, j.value, j.class))
                    .collect();
                judged.incidents.extend(self.incidents.reading(
                    &net,
                    station,
                    reading.ts,
                    &values,
                    &mut outcome.transitions,
                ));
            }
            judged.transitions.extend(outcome.transitions);
            judged.readings.push(JudgedReading {
                reading,
                qc: outcome.qc,
                revised: outcome.revised,
                judgement: outcome.judgement,
            });
        }
        judged
    }

    /// The `offline` rule and the incidents' arrival windows on wall time: the transitions
    /// of stations silent too long and the arrivals the clock decided, as a `Judged` with no
    /// readings and nothing to acknowledge; `None` when nothing changed.
    pub fn tick(&mut self, now: DateTime<Utc>) -> Option<Judged> {
        let net = Arc::clone(&self.net);
        let mut transitions = self.rules.tick(&net, now);
        let incidents = self.incidents.tick(&net, now, &mut transitions);
        (!transitions.is_empty() || !incidents.is_empty()).then(|| Judged {
            transitions,
            incidents,
            receipt: Receipt::none(),
            ..Judged::default()
        })
    }

    /// The open incidents and the firing alerts in none, as `alerts.json` keeps them.
    pub fn save_incidents(&self) -> (Vec<Incident>, Vec<Member>) {
        self.incidents.save()
    }

    /// The alert episodes as `alerts.json` keeps them.
    pub fn save_alerts(&self) -> Vec<Saved> {
        self.rules.save_alerts()
    }

    /// The network the rules judge against.
    pub fn network(&self) -> &Network {
        &self.net
    }
}
