//! The HTTP API's view of the running pipeline (SPEC §8): each station's latest values, class,
//! QC flags and firing alerts; the firing alerts; acknowledgements and silences.
//!
//! Fed by the judging task (`alerts`), which hands over each judged message once and
//! asks, before queueing notifications, whether a transition is muted; read and written by the
//! endpoints in `http`. Acknowledgements and silences are kept in `<[spool] dir>/api.json`
//! (written atomically on every change), so they survive a restart like the alert state does;
//! the firing alerts are rebuilt at start from the saved alert episodes. Write endpoints need
//! `Authorization: Bearer <[http] token>`, compared in constant time.

use crate::config::secret::Secret;
use crate::domain::alert::{Kind, Rule, Saved, Transition};
use crate::domain::flow::Judged;
use crate::domain::incident::{Arrival, EventKind, Incident};
use crate::domain::network::{Network, Station};
use crate::domain::param::Param;
use crate::domain::qc::Flag;
use crate::domain::reading::{Judgement, Reading};
use crate::domain::silence::{self, Silence};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

#[derive(Debug, Clone, Serialize)]
pub struct StationView {
    pub id: String,
    pub name: String,
    pub river: String,
    pub city: String,
    pub target_class: u8,
    pub boundary: bool,
    /// Time of the latest reading received since start.
    pub last_reading: Option<DateTime<Utc>>,
    pub values: BTreeMap<&'static str, f64>,
    /// QARTOD flag per value (1 pass, 2 not evaluated, 3 suspect, 4 fail, 9 missing).
    pub qc: BTreeMap<&'static str, u8>,
    /// Overall GB 3838 class of the latest reading's validated values (6 = worse than Ⅴ).
    pub class: Option<u8>,
    /// Ids of the station's firing alerts.
    pub alerts: Vec<String>,
}

/// An incident as `GET /api/v1/incidents` shows it: open ones, and the most recent ended
/// ones ([`ENDED_KEPT`]) since start.
#[derive(Debug, Clone, Serialize)]
pub struct IncidentView {
    pub id: String,
    /// `open` or `ended`.
    pub state: String,
    /// The last event: `opened`, `escalated`, `spread`, `arrival_confirmed`,
    /// `arrival_not_confirmed` or `ended`.
    pub last_event: String,
    pub level: String,
    pub param: String,
    pub river: String,
    pub origin: String,
    /// The origin's first exceeding reading.
    pub since: DateTime<Utc>,
    pub updated: DateTime<Utc>,
    /// The stations reached so far, origin first.
    pub stations: Vec<String>,
    /// Each downstream station's expected arrival window and what became of it
    /// (`pending`, `confirmed`, `not_confirmed`).
    pub arrivals: Vec<ArrivalView>,
    /// Ids of the alerts grouped in it.
    pub alerts: Vec<String>,
    pub peak_station: String,
    pub peak_value: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct ArrivalView {
    pub station: String,
    pub earliest: DateTime<Utc>,
    pub latest: DateTime<Utc>,
    pub state: String,
}

/// How many ended incidents the API keeps listing.
pub const ENDED_KEPT: usize = 50;

fn incident_view(i: &Incident, last_event: &str, ended: bool) -> IncidentView {
    IncidentView {
        id: i.id.clone(),
        state: if ended { "ended" } else { "open" }.into(),
        last_event: last_event.into(),
        level: i.level.key().into(),
        param: i.param.key().into(),
        river: i.river.clone(),
        origin: i.origin.clone(),
        since: i.since,
        updated: i.last_ts,
        stations: i.stations_reached().into_iter().map(String::from).collect(),
        arrivals: i
            .reach
            .iter()
            .map(|r| ArrivalView {
                station: r.station.clone(),
                earliest: r.earliest,
                latest: r.latest,
                state: match r.arrival {
                    Arrival::Pending => "pending",
                    Arrival::Confirmed { .. } => "confirmed",
                    Arrival::NotConfirmed => "not_confirmed",
                }
                .into(),
            })
            .collect(),
        alerts: i.members.iter().map(|m| m.alert_id.clone()).collect(),
        peak_station: i.peak.station.clone(),
        peak_value: i.peak.value,
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct AlertView {
    pub id: String,
    pub station: String,
    pub rule: String,
    pub param: Option<String>,
    pub level: String,
    pub since: DateTime<Utc>,
    /// Time of the observation behind the latest transition.
    pub updated: DateTime<Utc>,
    pub value: f64,
    pub acknowledged: bool,
}

/// What `api.json` holds.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Kept {
    acknowledged: Vec<String>,
    silences: Vec<KeptSilence>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct KeptSilence {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub station: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub param: Option<String>,
    pub until: DateTime<Utc>,
    pub reason: String,
}

impl KeptSilence {
    fn to_domain(&self) -> Option<Silence> {
        Some(Silence {
            id: self.id.clone(),
            station: self.station.clone(),
            rule: match &self.rule {
                None => None,
                Some(r) => Some(Rule::ALL.into_iter().find(|x| x.key() == r)?),
            },
            param: match &self.param {
                None => None,
                Some(p) => Some(Param::from_key(p)?),
            },
            until: self.until,
            reason: self.reason.clone(),
        })
    }
}

struct Inner {
    stations: BTreeMap<String, StationView>,
    alerts: BTreeMap<String, AlertView>,
    /// Open incidents by id, then the ended ones, newest last.
    incidents: BTreeMap<String, IncidentView>,
    ended: std::collections::VecDeque<IncidentView>,
    acked: HashSet<String>,
    silences: Vec<KeptSilence>,
}

pub struct Live {
    inner: Mutex<Inner>,
    path: PathBuf,
    token: Option<Secret>,
}

/// A refused API request: status and message.
pub type Refusal = (u16, String);

fn view(s: &Station) -> StationView {
    StationView {
        id: s.id.clone(),
        name: s.name.clone(),
        river: s.river.clone(),
        city: s.city.clone(),
        target_class: s.target.number(),
        boundary: s.boundary,
        last_reading: None,
        values: BTreeMap::new(),
        qc: BTreeMap::new(),
        class: None,
        alerts: Vec::new(),
    }
}

/// Equal-length byte strings compared without an early exit, so the time taken does not tell
/// how much of a guessed token was right.
fn same_secret(given: &[u8], expected: &[u8]) -> bool {
    given.len() == expected.len()
        && given
            .iter()
            .zip(expected)
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}

impl Live {
    /// The view at start: every configured station, the firing alerts of the restored
    /// episodes, and the acknowledgements and silences kept in `api.json` under `spool_dir`.
    pub fn open(
        net: &Network,
        saved: &[Saved],
        incidents: &[Incident],
        spool_dir: &Path,
        token: Option<Secret>,
    ) -> Result<Live, KeptError> {
        let path = spool_dir.join("api.json");
        let kept: Kept = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|source| KeptError::Invalid {
                path: path.clone(),
                source,
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Kept::default(),
            Err(source) => return Err(KeptError::Unreadable { path, source }),
        };
        let mut stations: BTreeMap<String, StationView> = net
            .stations
            .iter()
            .map(|s| (s.id.clone(), view(s)))
            .collect();
        let acked: HashSet<String> = kept.acknowledged.into_iter().collect();
        let mut alerts = BTreeMap::new();
        for s in saved {
            let Some(f) = &s.firing else {
                continue;
            };
            if let Some(st) = stations.get_mut(&s.key.station) {
                st.alerts.push(f.id.clone());
            }
            alerts.insert(
                f.id.clone(),
                AlertView {
                    id: f.id.clone(),
                    station: s.key.station.clone(),
                    rule: s.key.rule.key().into(),
                    param: s.key.param.map(|p| p.key().into()),
                    level: f.level.key().into(),
                    since: f.since,
                    updated: f.notified_at,
                    value: f.peak.value,
                    acknowledged: acked.contains(&f.id),
                },
            );
        }
        let incidents = incidents
            .iter()
            .map(|i| (i.id.clone(), incident_view(i, "opened", false)))
            .collect();
        Ok(Live {
            inner: Mutex::new(Inner {
                stations,
                alerts,
                incidents,
                ended: Default::default(),
                acked,
                silences: kept.silences,
            }),
            path,
            token,
        })
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Takes in what the screen made of one message: its readings, then its transitions,
    /// under one lock. True when an acknowledged alert resolved, so its acknowledgement left
    /// the kept state: the caller then [`persist`](Self::persist)s it, off the runtime thread.
    pub fn observe(&self, net: &Network, judged: &Judged) -> bool {
        let mut inner = self.lock();
        if let Some(station) = judged.station.and_then(|i| net.stations.get(i)) {
            for r in &judged.readings {
                Self::reading(&mut inner, station, &r.reading, &r.qc, &r.judgement);
            }
        }
        let mut changed = false;
        for t in &judged.transitions {
            changed |= Self::transition(&mut inner, t);
        }
        for e in &judged.incidents {
            let ended = e.kind == EventKind::Ended;
            let v = incident_view(&e.incident, e.kind.key(), ended);
            if ended {
                inner.incidents.remove(&v.id);
                if inner.ended.len() >= ENDED_KEPT {
                    inner.ended.pop_front();
                }
                inner.ended.push_back(v);
            } else {
                inner.incidents.insert(v.id.clone(), v);
            }
        }
        changed
    }

    /// Open incidents (by id), then recently ended ones (newest first).
    pub fn incidents(&self) -> Vec<IncidentView> {
        let inner = self.lock();
        inner
            .incidents
            .values()
            .cloned()
            .chain(inner.ended.iter().rev().cloned())
            .collect()
    }

    /// Writes the acknowledgements and silences to `api.json` (synced): a blocking call.
    pub fn persist(&self) -> Result<(), KeptError> {
        let inner = self.lock();
        self.keep(&inner)
    }

    /// Records the latest reading of a station with its QC flags and judgement.
    fn reading(
        inner: &mut Inner,
        station: &Station,
        r: &Reading,
        qc: &[(Param, Flag)],
        j: &Judgement,
    ) {
        let Some(v) = inner.stations.get_mut(&station.id) else {
            return;
        };
        if v.last_reading.is_some_and(|t| t > r.ts) {
            return; // a backlog reading older than the latest one
        }
        v.last_reading = Some(r.ts);
        // Updated in place: a station reports the same parameters reading after reading, so
        // this neither allocates nor frees; parameters the reading lacks leave (only then is
        // the map searched for them).
        for m in &r.values {
            v.values.insert(m.param.key(), m.value);
        }
        if v.values.len() != r.values.len() {
            v.values
                .retain(|k, _| r.values.iter().any(|m| m.param.key() == *k));
        }
        for (p, f) in qc {
            v.qc.insert(p.key(), f.code());
        }
        if v.qc.len() != qc.len() {
            v.qc.retain(|k, _| qc.iter().any(|(p, _)| p.key() == *k));
        }
        v.class = j.overall.map(|c| c.number());
    }

    /// Records an alert transition: firing alerts are listed, resolved ones leave the list.
    fn transition(inner: &mut Inner, t: &Transition) -> bool {
        let firing = t.kind != Kind::Resolved;
        if let Some(st) = inner.stations.get_mut(&t.station) {
            st.alerts.retain(|id| *id != t.alert_id);
            if firing {
                st.alerts.push(t.alert_id.clone());
            }
        }
        if !firing {
            inner.alerts.remove(&t.alert_id);
            return inner.acked.remove(&t.alert_id);
        }
        let acknowledged = inner.acked.contains(&t.alert_id);
        inner.alerts.insert(
            t.alert_id.clone(),
            AlertView {
                id: t.alert_id.clone(),
                station: t.station.clone(),
                rule: t.rule.key().into(),
                param: t.param.map(|p| p.key().into()),
                level: t.level.key().into(),
                since: t.since,
                updated: t.evidence.ts,
                value: t.evidence.value,
                acknowledged,
            },
        );
        false
    }

    /// Why the notifications of `t` are held back (a silence, or an acknowledged alert's
    /// reminder), if they are.
    pub fn muted(&self, t: &Transition, now: DateTime<Utc>) -> Option<String> {
        let inner = self.lock();
        let silences: Vec<Silence> = inner
            .silences
            .iter()
            .filter_map(KeptSilence::to_domain)
            .collect();
        silence::muted(t, &silences, &inner.acked, now)
    }

    pub fn stations(&self) -> Vec<StationView> {
        self.lock().stations.values().cloned().collect()
    }

    pub fn alerts(&self) -> Vec<AlertView> {
        self.lock().alerts.values().cloned().collect()
    }

    pub fn silences(&self, now: DateTime<Utc>) -> Vec<KeptSilence> {
        let inner = self.lock();
        inner
            .silences
            .iter()
            .filter(|s| s.until > now)
            .cloned()
            .collect()
    }

    /// Checks an `Authorization` header value for the configured bearer token.
    pub fn authorize(&self, header: Option<&str>) -> Result<(), Refusal> {
        let Some(token) = &self.token else {
            return Err((
                401,
                "no [http] token is configured; write endpoints are disabled".into(),
            ));
        };
        let given = header.and_then(|h| h.strip_prefix("Bearer ")).ok_or((
            401,
            "an Authorization: Bearer token is required".to_string(),
        ))?;
        if same_secret(given.trim().as_bytes(), token.expose().as_bytes()) {
            Ok(())
        } else {
            Err((401, "the bearer token is not valid".into()))
        }
    }

    /// Acknowledges a firing alert: no more reminders for it.
    pub fn acknowledge(&self, id: &str) -> Result<AlertView, Refusal> {
        let mut inner = self.lock();
        let inner = &mut *inner;
        let Some(alert) = inner.alerts.get_mut(id) else {
            return Err((404, format!("no firing alert {id:?}")));
        };
        alert.acknowledged = true;
        let out = alert.clone();
        inner.acked.insert(id.to_string());
        self.keep(inner).map_err(|e| (500, e.to_string()))?;
        Ok(out)
    }

    /// Adds a silence after checking its fields against the network.
    pub fn silence(
        &self,
        net: &Network,
        request: SilenceRequest,
        now: DateTime<Utc>,
    ) -> Result<KeptSilence, Refusal> {
        let bad = |m: String| Err((400, m));
        if let Some(s) = &request.station {
            if net.station(s).is_none() {
                return bad(format!("station {s:?} is not configured"));
            }
        }
        if let Some(r) = &request.rule {
            if !Rule::ALL.iter().any(|x| x.key() == r) {
                return bad(format!("rule {r:?} is not a rule"));
            }
        }
        if let Some(p) = &request.param {
            if Param::from_key(p).is_none() {
                return bad(format!("param {p:?} is not a parameter key"));
            }
        }
        let Ok(duration) = crate::config::units::parse_duration(&request.duration) else {
            return bad(format!(
                "duration {:?} is not a duration like \"2h\"",
                request.duration
            ));
        };
        let until = chrono::Duration::from_std(duration)
            .ok()
            .and_then(|d| now.checked_add_signed(d))
            .filter(|u| *u > now);
        let Some(until) = until else {
            return bad("duration must be positive".into());
        };
        if request.reason.trim().is_empty() {
            return bad("reason is required".into());
        }
        let mut inner = self.lock();
        let inner = &mut *inner;
        inner.silences.retain(|s| s.until > now);
        let silence = KeptSilence {
            id: format!("silence-{}", now.format("%Y%m%dT%H%M%S%3fZ")),
            station: request.station,
            rule: request.rule,
            param: request.param,
            until,
            reason: request.reason,
        };
        inner.silences.push(silence.clone());
        self.keep(inner).map_err(|e| (500, e.to_string()))?;
        Ok(silence)
    }

    /// Writes the acknowledgements and silences to `api.json`.
    fn keep(&self, inner: &Inner) -> Result<(), KeptError> {
        let mut acknowledged: Vec<String> = inner.acked.iter().cloned().collect();
        acknowledged.sort();
        let kept = Kept {
            acknowledged,
            silences: inner.silences.clone(),
        };
        let json = serde_json::to_vec_pretty(&kept).map_err(std::io::Error::other);
        json.and_then(|json| crate::state::write_atomic(&self.path, &json))
            .map_err(|source| {
                tracing::error!(file = %self.path.display(), error = %source, "cannot save acknowledgements and silences");
                KeptError::Unsaved {
                    path: self.path.clone(),
                    source,
                }
            })
    }
}

/// Why `api.json` (the acknowledgements and silences) cannot be read or saved.
#[derive(Debug, thiserror::Error)]
pub enum KeptError {
    #[error("cannot read {}: {source}", path.display())]
    Unreadable {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{} is not valid: {source}", path.display())]
    Invalid {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("cannot save {}: {source}", path.display())]
    Unsaved {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// The body of `POST /api/v1/silences`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SilenceRequest {
    pub station: Option<String>,
    pub rule: Option<String>,
    pub param: Option<String>,
    /// How long, like "2h".
    pub duration: String,
    pub reason: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_station_shows_exactly_its_latest_readings_values() {
        use crate::domain::network::fixtures::network;
        use crate::domain::reading::judge;
        let net = network();
        let dir = tempfile::tempdir().expect("temp dir");
        let live = Live::open(&net, &[], &[], dir.path(), None).expect("live view");
        let s = &net.stations[0];
        let t0 = chrono::DateTime::from_timestamp(1_795_658_400, 0).expect("time");
        let show = |values: &[(Param, f64)], at: i64| {
            let r = Reading::of_values(&s.id, t0 + chrono::Duration::hours(at), values);
            let qc: Vec<_> = values.iter().map(|&(p, _)| (p, Flag::Good)).collect();
            let judgement = judge(s, &r);
            let judged = Judged {
                station: net.position(&s.id),
                readings: vec![crate::domain::flow::JudgedReading {
                    reading: r,
                    qc,
                    revised: Vec::new(),
                    judgement,
                }],
                ..Judged::default()
            };
            live.observe(&net, &judged);
            let view = live
                .stations()
                .into_iter()
                .find(|v| v.id == s.id)
                .expect("view");
            (
                view.values.into_iter().collect::<Vec<_>>(),
                view.qc.keys().copied().collect::<Vec<_>>(),
            )
        };
        let (values, qc) = show(&[(Param::Ph, 7.1), (Param::Nh3n, 0.3)], 0);
        assert_eq!(values, [("nh3n", 0.3), ("ph", 7.1)]);
        assert_eq!(qc, ["nh3n", "ph"]);
        // A later reading without NH3-N: NH3-N leaves the view.
        let (values, qc) = show(&[(Param::Ph, 7.2), (Param::Do, 6.0)], 1);
        assert_eq!(values, [("do", 6.0), ("ph", 7.2)]);
        assert_eq!(qc, ["do", "ph"]);
        // An older reading changes nothing.
        assert_eq!(show(&[(Param::Ph, 9.0)], 0).0, [("do", 6.0), ("ph", 7.2)]);
    }

    #[test]
    fn tokens_compare_whole() {
        assert!(same_secret(b"s3cret", b"s3cret"));
        assert!(!same_secret(b"s3creT", b"s3cret"));
        assert!(!same_secret(b"s3cre", b"s3cret"));
        assert!(!same_secret(b"", b"s3cret"));
    }
}
