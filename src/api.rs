//! The HTTP API's view of the running pipeline (SPEC §8): each station's latest values, class,
//! QC flags and firing alerts; the firing alerts; acknowledgements and silences.
//!
//! Fed by the judging task (`alerts`), which hands over each judged message once and
//! asks, before queueing notifications, whether a transition or incident event is muted and
//! by which silence (and, on its timer, whether that silence is still in force and the alert
//! still open); read and written by the endpoints in `http`. A silence is checked against the
//! rules of `domain::silence` (a matcher, at most `[alerts] max_silence`, orange and red only
//! when named, an author); `DELETE` ends it, and it stays listed, ended, for a day. Acknowledgements and silences are kept in `<[spool] dir>/api.json`
//! (written atomically on every change), so they survive a restart like the alert state does;
//! the firing alerts are rebuilt at start from the saved alert episodes. Write endpoints need
//! `Authorization: Bearer <token>`, compared in constant time: the `[http] token` is the
//! operator's and may act for any bureau (an acknowledgement then names its `bureau`); a
//! bureau's own token (`[[bureau]] api_token_env`) acts as that bureau only.
//!
//! Acknowledgements are per bureau, with who and a comment: an alert or incident is
//! `acknowledged` once every bureau it went to has acknowledged it (then no more reminders).
//! For escalation the view keeps one watch per (yellow-or-above alert or incident, bureau
//! with an `escalation`) from the bureau's first notification until it acknowledges or the
//! alert ends, with the text it was sent; the judging task asks which are due
//! ([`Live::escalations_due`], decided by `domain::escalation`) and records each one sent
//! ([`Live::escalated`]) after its notifications are in the outbox. Watches live in `api.json`
//! too, so a restart neither repeats nor forgets an escalation.

use crate::config::secret::Secret;
use crate::domain::alert::{Kind, Level, Rule, Saved, Transition};
use crate::domain::escalation::{self, Due};
use crate::domain::flow::Judged;
use crate::domain::incident::{Arrival, EventKind, Incident};
use crate::domain::message::Text;
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
    /// Per parameter, the time of its latest valid value (QARTOD flag other than fail or
    /// missing, so judged against GB 3838) since start: a sensor that still reports but only
    /// fails shows here while `last_reading` stays fresh.
    pub last_valid: BTreeMap<&'static str, DateTime<Utc>>,
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
    /// The bureaus told of it, which each acknowledge it.
    pub bureaus: Vec<String>,
    /// The bureaus' acknowledgements, oldest first.
    pub acks: Vec<Ack>,
    /// Whether every bureau in `bureaus` acknowledged it.
    pub acknowledged: bool,
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
        bureaus: Vec::new(),
        acks: Vec::new(),
        acknowledged: false,
    }
}

/// [`incident_view`] with the bureaus told of the incident.
fn incident_view_in(net: &Network, i: &Incident, last_event: &str, ended: bool) -> IncidentView {
    let mut v = incident_view(i, last_event, ended);
    v.bureaus = net
        .incident_recipients(i)
        .into_iter()
        .map(|b| b.id.clone())
        .collect();
    v
}

/// The ids of the bureaus an alert of `rule` at `station` goes to.
fn alert_bureaus(net: &Network, station: &str, rule: Rule) -> Vec<String> {
    net.station(station)
        .map(|s| {
            net.recipients(s, rule)
                .into_iter()
                .map(|b| b.id.clone())
                .collect()
        })
        .unwrap_or_default()
}

/// One bureau's acknowledgement of an alert or incident.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ack {
    pub bureau: String,
    /// Who acknowledged (the duty officer's name).
    pub by: String,
    #[serde(default)]
    pub comment: String,
    pub at: DateTime<Utc>,
}

/// Who a request acts as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Actor {
    /// The `[http] token`: any bureau.
    Operator,
    /// A bureau's own token: that bureau (its id).
    Bureau(String),
}

/// The body of `POST /api/v1/alerts/{id}/ack` and `POST /api/v1/incidents/{id}/ack`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AckRequest {
    /// Who acknowledges; required.
    pub by: String,
    #[serde(default)]
    pub comment: String,
    /// For which bureau: required with the operator's token, optional (and then its own)
    /// with a bureau's.
    pub bureau: Option<String>,
}

/// The longest `by` and `comment` an acknowledgement keeps, in characters.
const ACK_BY_MAX: usize = 100;
const ACK_COMMENT_MAX: usize = 2000;

/// One bureau's wait for its acknowledgement, with the text it was last sent (what an
/// escalation forwards).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct KeptWatch {
    /// The alert's or incident's id.
    target: String,
    incident: bool,
    bureau: String,
    level: String,
    station: String,
    since: DateTime<Utc>,
    sent: u32,
    last: Option<DateTime<Utc>>,
    subject: String,
    body: String,
    short: String,
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
    /// Whether every bureau in `bureaus` acknowledged it.
    pub acknowledged: bool,
    /// The bureaus it goes to.
    pub bureaus: Vec<String>,
    /// The bureaus' acknowledgements, oldest first.
    pub acks: Vec<Ack>,
}

/// What `api.json` holds.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Kept {
    /// Alerts acknowledged by every bureau they went to.
    acknowledged: Vec<String>,
    silences: Vec<KeptSilence>,
    /// Acknowledgements by alert or incident id.
    #[serde(default)]
    acks: BTreeMap<String, Vec<Ack>>,
    /// The escalation watches.
    #[serde(default)]
    watches: Vec<KeptWatch>,
}

/// A silence as `api.json` keeps it and `GET /api/v1/silences` lists it (with `active`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct KeptSilence {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub station: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub param: Option<String>,
    /// The levels it mutes (`data` … `red`); files written before levels existed hold none,
    /// which means [`silence::DEFAULT_LEVELS`].
    #[serde(default)]
    pub levels: Vec<String>,
    /// When it was created; the epoch in files written before it was recorded.
    #[serde(default)]
    pub starts: DateTime<Utc>,
    /// When it ends, or ended: `DELETE` sets it to the moment it was ended.
    pub until: DateTime<Utc>,
    /// Who asked for it; empty in files written before it was recorded.
    #[serde(default)]
    pub author: String,
    pub reason: String,
}

/// A silence as the API shows it: what is kept, and whether it is in force now.
#[derive(Debug, Clone, Serialize)]
pub struct SilenceView {
    #[serde(flatten)]
    pub silence: KeptSilence,
    pub active: bool,
}

/// How long an ended silence stays listed (as `"active": false`) before it is forgotten.
pub const ENDED_SILENCE_KEPT: chrono::Duration = chrono::Duration::hours(24);

/// The default `[alerts] max_silence`.
pub const MAX_SILENCE: chrono::Duration = chrono::Duration::days(7);

impl KeptSilence {
    fn to_domain(&self) -> Option<Silence> {
        let levels = if self.levels.is_empty() {
            silence::DEFAULT_LEVELS.to_vec()
        } else {
            self.levels
                .iter()
                .map(|l| Level::ALL.into_iter().find(|x| x.key() == l))
                .collect::<Option<Vec<_>>>()?
        };
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
            levels,
            starts: self.starts,
            until: self.until,
            author: self.author.clone(),
            reason: self.reason.clone(),
        })
    }

    fn of(s: &Silence) -> KeptSilence {
        KeptSilence {
            id: s.id.clone(),
            station: s.station.clone(),
            rule: s.rule.map(|r| r.key().to_string()),
            param: s.param.map(|p| p.key().to_string()),
            levels: s.levels.iter().map(|l| l.key().to_string()).collect(),
            starts: s.starts,
            until: s.until,
            author: s.author.clone(),
            reason: s.reason.clone(),
        }
    }

    fn view(&self, now: DateTime<Utc>) -> SilenceView {
        SilenceView {
            silence: self.clone(),
            active: self.starts <= now && now < self.until,
        }
    }
}

/// A duration as the config writes one: `7d`, `36h`, `90m`, `45s`.
fn duration_text(d: chrono::Duration) -> String {
    let s = d.num_seconds();
    match s {
        _ if s % 86_400 == 0 => format!("{}d", s / 86_400),
        _ if s % 3_600 == 0 => format!("{}h", s / 3_600),
        _ if s % 60 == 0 => format!("{}m", s / 60),
        _ => format!("{s}s"),
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
    acks: BTreeMap<String, Vec<Ack>>,
    watches: Vec<KeptWatch>,
}

pub struct Live {
    inner: Mutex<Inner>,
    path: PathBuf,
    token: Option<Secret>,
    /// `[alerts] max_silence`: no silence lasts longer.
    max_silence: chrono::Duration,
    /// Each bureau's own token, by bureau id.
    bureau_tokens: Vec<(String, Secret)>,
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
        last_valid: BTreeMap::new(),
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
                    bureaus: alert_bureaus(net, &s.key.station, s.key.rule),
                    acks: Vec::new(),
                },
            );
        }
        let incidents: BTreeMap<String, IncidentView> = incidents
            .iter()
            .map(|i| (i.id.clone(), incident_view_in(net, i, "opened", false)))
            .collect();
        // What ended while the daemon was down leaves nothing behind.
        let current = |id: &String| alerts.contains_key(id) || incidents.contains_key(id);
        let mut acks = kept.acks;
        acks.retain(|id, _| current(id));
        let mut watches = kept.watches;
        watches.retain(|w| current(&w.target));
        Ok(Live {
            inner: Mutex::new(Inner {
                stations,
                alerts,
                incidents,
                ended: Default::default(),
                acked,
                silences: kept.silences,
                acks,
                watches,
            }),
            path,
            token,
            max_silence: MAX_SILENCE,
            bureau_tokens: Vec::new(),
        })
    }

    /// The bureaus' own API tokens (bureau id, token), resolved at start.
    pub fn with_bureau_tokens(mut self, tokens: Vec<(String, Secret)>) -> Live {
        self.bureau_tokens = tokens;
        self
    }

    /// The same view, whose silences last at most `max` (`[alerts] max_silence`).
    pub fn with_max_silence(mut self, max: std::time::Duration) -> Live {
        self.max_silence = chrono::Duration::from_std(max).unwrap_or(MAX_SILENCE);
        self
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
            changed |= Self::transition(&mut inner, net, t);
        }
        for e in &judged.incidents {
            let ended = e.kind == EventKind::Ended;
            let v = incident_view_in(net, &e.incident, e.kind.key(), ended);
            if ended {
                changed |= Self::forget(&mut inner, &v.id);
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
            .map(|mut v| {
                v.acks = inner.acks.get(&v.id).cloned().unwrap_or_default();
                v.acknowledged = all_acknowledged(&v.bureaus, &v.acks);
                v
            })
            .collect()
    }

    /// Drops the acknowledgements and escalation watches of an alert or incident that ended;
    /// true when there were any (the kept state changed).
    fn forget(inner: &mut Inner, id: &str) -> bool {
        let before = inner.watches.len();
        inner.watches.retain(|w| w.target != id);
        let acks = inner.acks.remove(id).is_some();
        acks | (inner.watches.len() != before) | inner.acked.remove(id)
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
            if f.is_judgeable() {
                v.last_valid.insert(p.key(), r.ts);
            }
        }
        if v.qc.len() != qc.len() {
            v.qc.retain(|k, _| qc.iter().any(|(p, _)| p.key() == *k));
        }
        v.class = j.overall.map(|c| c.number());
    }

    /// Records an alert transition: firing alerts are listed, resolved ones leave the list.
    fn transition(inner: &mut Inner, net: &Network, t: &Transition) -> bool {
        let firing = t.kind != Kind::Resolved;
        if let Some(st) = inner.stations.get_mut(&t.station) {
            st.alerts.retain(|id| *id != t.alert_id);
            if firing {
                st.alerts.push(t.alert_id.clone());
            }
        }
        if !firing {
            inner.alerts.remove(&t.alert_id);
            return Self::forget(inner, &t.alert_id);
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
                bureaus: alert_bureaus(net, &t.station, t.rule),
                acks: Vec::new(),
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

    /// The id of the silence in force at `now` that matches `subject`, if one does: its
    /// notifications are held until that silence ends (see `alerts`).
    pub fn silencing(&self, subject: &silence::Subject<'_>, now: DateTime<Utc>) -> Option<String> {
        let inner = self.lock();
        let silences: Vec<Silence> = inner
            .silences
            .iter()
            .filter_map(KeptSilence::to_domain)
            .collect();
        silence::silencing(subject, &silences, now).map(|s| s.id.clone())
    }

    /// Whether the silence `id` is in force at `now` (false when it ended, was deleted or was
    /// forgotten).
    pub fn silence_active(&self, id: &str, now: DateTime<Utc>) -> bool {
        self.lock()
            .silences
            .iter()
            .any(|s| s.id == id && s.starts <= now && now < s.until)
    }

    /// Whether `id` names an alert that fires or an incident that is open.
    pub fn is_open(&self, id: &str) -> bool {
        let inner = self.lock();
        inner.alerts.contains_key(id) || inner.incidents.contains_key(id)
    }

    pub fn stations(&self) -> Vec<StationView> {
        self.lock().stations.values().cloned().collect()
    }

    pub fn alerts(&self) -> Vec<AlertView> {
        let inner = self.lock();
        inner
            .alerts
            .values()
            .map(|a| Self::alert_with_acks(&inner, a))
            .collect()
    }

    /// An alert's view with its acknowledgements.
    fn alert_with_acks(inner: &Inner, a: &AlertView) -> AlertView {
        let mut v = a.clone();
        v.acks = inner.acks.get(&v.id).cloned().unwrap_or_default();
        v.acknowledged = inner.acked.contains(&v.id) || all_acknowledged(&v.bureaus, &v.acks);
        v
    }

    /// The silences in force and those that ended within [`ENDED_SILENCE_KEPT`], oldest first.
    pub fn silences(&self, now: DateTime<Utc>) -> Vec<SilenceView> {
        let inner = self.lock();
        inner
            .silences
            .iter()
            .filter(|s| now < s.until + ENDED_SILENCE_KEPT)
            .map(|s| s.view(now))
            .collect()
    }

    /// Who an `Authorization` header value's bearer token is: the operator (`[http] token`)
    /// or a bureau (its own token). Every configured token is compared, each in constant time.
    pub fn authorize(&self, header: Option<&str>) -> Result<Actor, Refusal> {
        if self.token.is_none() && self.bureau_tokens.is_empty() {
            return Err((
                401,
                "no [http] token nor bureau token is configured; write endpoints are disabled"
                    .into(),
            ));
        }
        let given = header.and_then(|h| h.strip_prefix("Bearer ")).ok_or((
            401,
            "an Authorization: Bearer token is required".to_string(),
        ))?;
        let given = given.trim().as_bytes();
        let mut actor = None;
        if let Some(token) = &self.token {
            if same_secret(given, token.expose().as_bytes()) {
                actor = Some(Actor::Operator);
            }
        }
        for (bureau, token) in &self.bureau_tokens {
            if same_secret(given, token.expose().as_bytes()) && actor.is_none() {
                actor = Some(Actor::Bureau(bureau.clone()));
            }
        }
        actor.ok_or((401, "the bearer token is not valid".into()))
    }

    /// `GET /api/v1/whoami`: `{"role": "operator"|"bureau", "bureau": null|id, "name": …}`
    /// (the bureau's display name, or "operator").
    pub fn whoami(net: &Network, actor: &Actor) -> serde_json::Value {
        match actor {
            Actor::Operator => {
                serde_json::json!({ "role": "operator", "bureau": null, "name": "operator" })
            }
            Actor::Bureau(id) => serde_json::json!({
                "role": "bureau",
                "bureau": id,
                "name": net.bureau(id).map_or(id.as_str(), |b| b.name.as_str()),
            }),
        }
    }

    /// The acknowledgement `request` makes as `actor` for one of `bureaus` (those the alert
    /// or incident went to), at `now`: 400 without `by` or with a bureau it did not go to
    /// (operator), 403 for another bureau than the token's.
    fn ack_of(
        actor: &Actor,
        request: AckRequest,
        bureaus: &[String],
        now: DateTime<Utc>,
    ) -> Result<Ack, Refusal> {
        let by = request.by.trim().to_string();
        if by.is_empty() {
            return Err((400, "`by` (who acknowledges) is required".into()));
        }
        if by.chars().count() > ACK_BY_MAX || request.comment.chars().count() > ACK_COMMENT_MAX {
            return Err((
                400,
                format!("`by` is at most {ACK_BY_MAX} characters, `comment` {ACK_COMMENT_MAX}"),
            ));
        }
        let bureau = match (actor, request.bureau) {
            (Actor::Operator, None) => {
                return Err((
                    400,
                    "`bureau` is required with the operator's token: which bureau acknowledges"
                        .into(),
                ))
            }
            (Actor::Operator, Some(b)) => b,
            (Actor::Bureau(own), Some(b)) if b != *own => {
                return Err((
                    403,
                    format!("this token acts for bureau {own:?}, not {b:?}"),
                ))
            }
            (Actor::Bureau(own), _) => own.clone(),
        };
        if !bureaus.contains(&bureau) {
            let status = if *actor == Actor::Operator { 400 } else { 403 };
            return Err((status, format!("it was not sent to bureau {bureau:?}")));
        }
        Ok(Ack {
            bureau,
            by,
            comment: request.comment.trim().to_string(),
            at: now,
        })
    }

    /// Records `ack` of the firing alert `id`: its bureau's escalation watch ends; once every
    /// bureau acknowledged it, no more reminders.
    fn ack_alert(inner: &mut Inner, id: &str, ack: &Ack) {
        inner
            .watches
            .retain(|w| !(w.target == id && w.bureau == ack.bureau));
        inner
            .acks
            .entry(id.to_string())
            .or_default()
            .push(ack.clone());
        let all = inner.alerts.get(id).is_some_and(|a| {
            all_acknowledged(&a.bureaus, inner.acks.get(id).map_or(&[][..], |v| v))
        });
        if all {
            inner.acked.insert(id.to_string());
        }
    }

    /// Acknowledges a firing alert for a bureau (see [`AckRequest`]); kept in `api.json`
    /// before the answer. Returns the alert's view and the acknowledgement (for the store).
    pub fn acknowledge(
        &self,
        id: &str,
        actor: &Actor,
        request: AckRequest,
        now: DateTime<Utc>,
    ) -> Result<(AlertView, Ack), Refusal> {
        let mut inner = self.lock();
        let inner = &mut *inner;
        let Some(alert) = inner.alerts.get(id) else {
            return Err((404, format!("no firing alert {id:?}")));
        };
        let ack = Self::ack_of(actor, request, &alert.bureaus, now)?;
        Self::ack_alert(inner, id, &ack);
        self.keep(inner).map_err(|e| (500, e.to_string()))?;
        let view = inner
            .alerts
            .get(id)
            .map(|a| Self::alert_with_acks(inner, a))
            .ok_or((404, format!("no firing alert {id:?}")))?;
        Ok((view, ack))
    }

    /// Acknowledges an open incident for a bureau, and with it the incident's firing alerts
    /// that went to that bureau. Returns the incident's view, the acknowledgement and the
    /// alerts acknowledged with it (for the store).
    pub fn acknowledge_incident(
        &self,
        id: &str,
        actor: &Actor,
        request: AckRequest,
        now: DateTime<Utc>,
    ) -> Result<(IncidentView, Ack, Vec<AlertView>), Refusal> {
        let mut inner = self.lock();
        let inner = &mut *inner;
        let Some(incident) = inner.incidents.get(id) else {
            return Err((404, format!("no open incident {id:?}")));
        };
        let ack = Self::ack_of(actor, request, &incident.bureaus, now)?;
        let members = incident.alerts.clone();
        inner
            .watches
            .retain(|w| !(w.target == id && w.bureau == ack.bureau));
        inner
            .acks
            .entry(id.to_string())
            .or_default()
            .push(ack.clone());
        let mut alerts = Vec::new();
        for m in &members {
            if inner
                .alerts
                .get(m)
                .is_some_and(|a| a.bureaus.contains(&ack.bureau))
            {
                Self::ack_alert(inner, m, &ack);
                if let Some(a) = inner.alerts.get(m) {
                    alerts.push(Self::alert_with_acks(inner, a));
                }
            }
        }
        self.keep(inner).map_err(|e| (500, e.to_string()))?;
        let mut view = inner
            .incidents
            .get(id)
            .cloned()
            .ok_or((404, format!("no open incident {id:?}")))?;
        view.acks = inner.acks.get(id).cloned().unwrap_or_default();
        view.acknowledged = all_acknowledged(&view.bureaus, &view.acks);
        Ok((view, ack, alerts))
    }

    /// Starts or updates the escalation watches of what `judged` notified at wall time `now`:
    /// each yellow-or-above alert (not muted, not told through an incident) and incident, for
    /// each bureau told of it that has an `escalation` and has not acknowledged it. True when
    /// the kept state changed (the caller [`persist`](Self::persist)s it).
    pub fn watch(&self, net: &Network, judged: &Judged, now: DateTime<Utc>) -> bool {
        // Called for every message: most change nothing, and need neither the lock nor the
        // silences' copy below.
        if judged.transitions.is_empty() && judged.incidents.is_empty() {
            return false;
        }
        let mut inner = self.lock();
        let inner = &mut *inner;
        let mut changed = false;
        let silences: Vec<Silence> = inner
            .silences
            .iter()
            .filter_map(KeptSilence::to_domain)
            .collect();
        for t in &judged.transitions {
            if t.incident.is_some() {
                // Told through its incident from now on: the incident is watched instead.
                let before = inner.watches.len();
                inner.watches.retain(|w| w.target != t.alert_id);
                changed |= inner.watches.len() != before;
                continue;
            }
            let told = matches!(t.kind, Kind::Fired | Kind::Escalated)
                && t.rule.notifies()
                && escalation::is_watched(t.level)
                && silence::muted(t, &silences, &inner.acked, now).is_none();
            let (true, Some(text)) = (told, crate::domain::message::text(t, net)) else {
                continue;
            };
            let Some(station) = net.station(&t.station) else {
                continue;
            };
            for b in net.recipients(station, t.rule) {
                changed |= Self::upsert(
                    inner,
                    b,
                    &t.alert_id,
                    false,
                    t.level,
                    &t.station,
                    &text,
                    now,
                );
            }
        }
        for e in &judged.incidents {
            if e.kind == EventKind::Ended || !escalation::is_watched(e.incident.level) {
                continue;
            }
            let Some(text) = crate::domain::message::incident::text(e, net) else {
                continue;
            };
            for b in net.incident_recipients(&e.incident) {
                changed |= Self::upsert(
                    inner,
                    b,
                    &e.incident.id,
                    true,
                    e.incident.level,
                    &e.incident.origin,
                    &text,
                    now,
                );
            }
        }
        changed
    }

    /// Starts `bureau`'s watch of `target` at `now`, or updates its level and text; nothing
    /// for a bureau without escalation or that acknowledged it already. True when changed.
    #[allow(clippy::too_many_arguments)]
    fn upsert(
        inner: &mut Inner,
        bureau: &crate::domain::network::Bureau,
        target: &str,
        incident: bool,
        level: Level,
        station: &str,
        text: &Text,
        now: DateTime<Utc>,
    ) -> bool {
        if bureau.escalation.is_none()
            || inner
                .acks
                .get(target)
                .is_some_and(|v| v.iter().any(|a| a.bureau == bureau.id))
        {
            return false;
        }
        if let Some(w) = inner
            .watches
            .iter_mut()
            .find(|w| w.target == target && w.bureau == bureau.id)
        {
            w.level = level.key().into();
            w.subject.clone_from(&text.subject);
            w.body.clone_from(&text.body);
            w.short.clone_from(&text.short);
            return true;
        }
        inner.watches.push(KeptWatch {
            target: target.into(),
            incident,
            bureau: bureau.id.clone(),
            level: level.key().into(),
            station: station.into(),
            since: now,
            sent: 0,
            last: None,
            subject: text.subject.clone(),
            body: text.body.clone(),
            short: text.short.clone(),
        });
        true
    }

    /// The escalations due at wall time `now` (see `domain::escalation::due`), with the
    /// re-notify interval `renotify`.
    pub fn escalations_due(
        &self,
        net: &Network,
        renotify: Option<chrono::Duration>,
        now: DateTime<Utc>,
    ) -> Vec<Due> {
        let inner = self.lock();
        inner
            .watches
            .iter()
            .filter_map(|w| {
                let after = net.bureau(&w.bureau)?.escalation.as_ref()?.after;
                let after = chrono::Duration::from_std(after).ok()?;
                let acked = inner
                    .acks
                    .get(&w.target)
                    .is_some_and(|v| v.iter().any(|a| a.bureau == w.bureau));
                let watch = escalation::Watch {
                    since: w.since,
                    sent: w.sent,
                    last: w.last,
                };
                escalation::due(&watch, acked, after, renotify, now).then(|| Due {
                    target: w.target.clone(),
                    incident: w.incident,
                    bureau: w.bureau.clone(),
                    level: w.level.clone(),
                    station: w.station.clone(),
                    since: w.since,
                    nth: w.sent + 1,
                    text: Text {
                        subject: w.subject.clone(),
                        body: w.body.clone(),
                        short: w.short.clone(),
                    },
                })
            })
            .collect()
    }

    /// Records the escalations `sent` (their notifications are in the outbox) at `now`, and
    /// keeps them in `api.json`: a blocking call. Until it is kept, a restart renders the same
    /// escalation again under the same keys, and the outbox drops the copy.
    pub fn escalated(&self, sent: &[Due], now: DateTime<Utc>) -> Result<(), KeptError> {
        let mut inner = self.lock();
        for d in sent {
            if let Some(w) = inner
                .watches
                .iter_mut()
                .find(|w| w.target == d.target && w.bureau == d.bureau && w.sent + 1 == d.nth)
            {
                w.sent = d.nth;
                w.last = Some(now);
            }
        }
        self.keep(&inner)
    }

    /// Adds a silence after checking its fields against the network and the rules of
    /// [`silence::Draft::check`]; 400 with the reason when refused.
    pub fn silence(
        &self,
        net: &Network,
        request: SilenceRequest,
        now: DateTime<Utc>,
    ) -> Result<SilenceView, Refusal> {
        let bad = |m: String| Err((400, m));
        if let Some(s) = &request.station {
            if net.station(s).is_none() {
                return bad(format!("station {s:?} is not configured"));
            }
        }
        let rule = match &request.rule {
            None => None,
            Some(r) => match Rule::ALL.into_iter().find(|x| x.key() == r) {
                Some(rule) => Some(rule),
                None => return bad(format!("rule {r:?} is not a rule")),
            },
        };
        let param = match &request.param {
            None => None,
            Some(p) => match Param::from_key(p) {
                Some(param) => Some(param),
                None => return bad(format!("param {p:?} is not a parameter key")),
            },
        };
        let levels = match &request.levels {
            None => None,
            Some(keys) => {
                let mut levels = Vec::new();
                for k in keys {
                    match Level::ALL.into_iter().find(|l| l.key() == k) {
                        Some(l) => levels.push(l),
                        None => {
                            return bad(format!(
                                "level {k:?} is not a level (data, blue, yellow, orange, red)"
                            ))
                        }
                    }
                }
                Some(levels)
            }
        };
        let Ok(duration) = crate::config::units::parse_duration(&request.duration) else {
            return bad(format!(
                "duration {:?} is not a duration like \"2h\"",
                request.duration
            ));
        };
        // A duration beyond chrono's range is longer than any maximum.
        let duration = chrono::Duration::from_std(duration).unwrap_or(chrono::Duration::MAX);
        let draft = silence::Draft {
            station: request.station,
            rule,
            param,
            levels,
            duration,
            author: request.author.unwrap_or_default(),
            reason: request.reason,
        };
        let mut inner = self.lock();
        let inner = &mut *inner;
        inner
            .silences
            .retain(|s| now < s.until + ENDED_SILENCE_KEPT);
        let mut id = format!("silence-{}", now.format("%Y%m%dT%H%M%S%3fZ"));
        while inner.silences.iter().any(|s| s.id == id) {
            id.push('x');
        }
        let silence = draft
            .check(id, now, self.max_silence, &duration_text(self.max_silence))
            .map_err(|why| (400, why.to_string()))?;
        let kept = KeptSilence::of(&silence);
        inner.silences.push(kept.clone());
        self.keep(inner).map_err(|e| (500, e.to_string()))?;
        Ok(kept.view(now))
    }

    /// Ends the silence `id` at `now`: it stays listed, ended, for [`ENDED_SILENCE_KEPT`]; what
    /// it held is notified by the judging task on its next tick. 404 when unknown; a silence
    /// that already ended is answered as it is.
    pub fn end_silence(&self, id: &str, now: DateTime<Utc>) -> Result<SilenceView, Refusal> {
        let mut inner = self.lock();
        let inner = &mut *inner;
        let Some(s) = inner.silences.iter_mut().find(|s| s.id == id) else {
            return Err((404, format!("no silence {id:?}")));
        };
        if now < s.until {
            s.until = now.max(s.starts);
        }
        let out = s.view(now);
        self.keep(inner).map_err(|e| (500, e.to_string()))?;
        Ok(out)
    }

    /// Writes the acknowledgements and silences to `api.json`.
    fn keep(&self, inner: &Inner) -> Result<(), KeptError> {
        let mut acknowledged: Vec<String> = inner.acked.iter().cloned().collect();
        acknowledged.sort();
        let kept = Kept {
            acknowledged,
            silences: inner.silences.clone(),
            acks: inner.acks.clone(),
            watches: inner.watches.clone(),
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

/// Whether each of `bureaus` (at least one) acknowledged, per `acks`.
fn all_acknowledged(bureaus: &[String], acks: &[Ack]) -> bool {
    !bureaus.is_empty() && bureaus.iter().all(|b| acks.iter().any(|a| a.bureau == *b))
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
    /// The levels it mutes; absent: data, blue and yellow (orange and red only when named).
    pub levels: Option<Vec<String>>,
    /// How long, like "2h"; at most `[alerts] max_silence`.
    pub duration: String,
    /// Who asks for it (required; an `Option` so that its absence is refused with a reason).
    pub author: Option<String>,
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

    /// The fixture network with escalation for both bureaus after 30 min.
    fn escalating() -> Network {
        let mut net = crate::domain::message::tests::named();
        for b in &mut net.bureaus {
            b.escalation = Some(crate::domain::network::Escalation {
                after: std::time::Duration::from_secs(1800),
                to: crate::domain::network::Contacts {
                    email: vec![format!("chief@{}.example.org", b.id)],
                    ..Default::default()
                },
            });
        }
        net
    }

    fn ack(by: &str, bureau: Option<&str>) -> AckRequest {
        AckRequest {
            by: by.into(),
            comment: "on it".into(),
            bureau: bureau.map(String::from),
        }
    }

    #[test]
    fn who_may_acknowledge_for_which_bureau() {
        let now = chrono::DateTime::from_timestamp(1_795_658_400, 0).expect("time");
        let gz = Actor::Bureau("guangzhou".into());
        let both = ["guangzhou".to_string(), "qingyuan".to_string()];
        let qy_only = ["qingyuan".to_string()];
        // (actor, request, bureaus it went to, status or the bureau acknowledging)
        type Case<'a> = (&'a Actor, AckRequest, &'a [String], Result<&'a str, u16>);
        let table: [Case; 9] = [
            (&gz, ack("陈工", None), &both, Ok("guangzhou")),
            (&gz, ack("陈工", Some("guangzhou")), &both, Ok("guangzhou")),
            (&gz, ack("陈工", Some("qingyuan")), &both, Err(403)),
            (&gz, ack("陈工", None), &qy_only, Err(403)),
            (&gz, ack("  ", None), &both, Err(400)),
            (&Actor::Operator, ack("值班长", None), &both, Err(400)),
            (
                &Actor::Operator,
                ack("值班长", Some("qingyuan")),
                &both,
                Ok("qingyuan"),
            ),
            (
                &Actor::Operator,
                ack("值班长", Some("guangzhou")),
                &qy_only,
                Err(400),
            ),
            (&gz, ack(&"x".repeat(ACK_BY_MAX + 1), None), &both, Err(400)),
        ];
        for (actor, request, bureaus, expected) in table {
            let what = format!("{actor:?} {request:?} {bureaus:?}");
            let got = Live::ack_of(actor, request, bureaus, now);
            match expected {
                Ok(b) => assert_eq!(got.map(|a| a.bureau).as_deref(), Ok(b), "{what}"),
                Err(status) => assert_eq!(got.map_err(|e| e.0).err(), Some(status), "{what}"),
            }
        }
    }

    #[test]
    fn an_unacknowledged_alert_escalates_once_per_bureau_and_survives_a_restart() {
        let net = escalating();
        let dir = tempfile::tempdir().expect("temp dir");
        let token = |t: &str| Secret::new(t);
        let open = || {
            Live::open(&net, &[], &[], dir.path(), Some(token("op")))
                .expect("live view")
                .with_bureau_tokens(vec![("guangzhou".into(), token("gz"))])
        };
        let live = open();
        assert_eq!(live.authorize(Some("Bearer op")), Ok(Actor::Operator));
        assert_eq!(
            live.authorize(Some("Bearer gz")),
            Ok(Actor::Bureau("guangzhou".into()))
        );
        assert_eq!(live.authorize(Some("Bearer qy")).map_err(|e| e.0), Err(401));
        assert_eq!(live.authorize(None).map_err(|e| e.0), Err(401));

        // A yellow exceedance at the boundary section, told to both bureaus at t0.
        let t = crate::domain::message::tests::firing();
        let t0 = chrono::DateTime::from_timestamp(1_795_658_400, 0).expect("time");
        let judged = Judged {
            transitions: vec![t.clone()],
            ..Judged::default()
        };
        assert!(live.watch(&net, &judged, t0));
        live.observe(&net, &judged);
        let at = |m: i64| t0 + chrono::Duration::minutes(m);
        assert!(live.escalations_due(&net, None, at(29)).is_empty());
        // Guangzhou acknowledges; Qingyuan does not.
        let gz = Actor::Bureau("guangzhou".into());
        let (view, _) = live
            .acknowledge(&t.alert_id, &gz, ack("陈工", None), at(5))
            .expect("acknowledged");
        assert!(!view.acknowledged, "Qingyuan has not");
        let due = live.escalations_due(&net, None, at(30));
        let who: Vec<(&str, u32)> = due.iter().map(|d| (d.bureau.as_str(), d.nth)).collect();
        assert_eq!(who, [("qingyuan", 1)]);
        assert!(
            due[0].text.subject.contains("黄色预警"),
            "{:?}",
            due[0].text
        );
        live.escalated(&due, at(30)).expect("kept");
        assert!(live.escalations_due(&net, None, at(600)).is_empty(), "once");
        // With re-notify every hour, again an hour after the last.
        let hourly = Some(chrono::Duration::hours(1));
        assert!(live.escalations_due(&net, hourly, at(89)).is_empty());
        assert_eq!(live.escalations_due(&net, hourly, at(90))[0].nth, 2);

        // A restart keeps the acknowledgement and what was sent.
        drop(live);
        let saved = Saved {
            key: crate::domain::alert::AlertKey {
                station: t.station.clone(),
                rule: t.rule,
                param: t.param,
            },
            last_ts: Some(t.evidence.ts),
            recent: Vec::new(),
            firing: Some(crate::domain::alert::SavedFiring {
                id: t.alert_id.clone(),
                since: t.since,
                level: t.level,
                notified_at: t.evidence.ts,
                clearing: 0,
                peak: t.peak,
            }),
        };
        let live = Live::open(&net, std::slice::from_ref(&saved), &[], dir.path(), None)
            .expect("reopened");
        assert!(
            live.escalations_due(&net, None, at(600)).is_empty(),
            "not repeated"
        );
        let alert = live.alerts().into_iter().next().expect("the alert");
        assert_eq!(alert.acks.len(), 1);
        assert_eq!(alert.acks[0].by, "陈工");
        // Qingyuan acknowledges through the operator: acknowledged by every bureau.
        let (view, _) = live
            .acknowledge(
                &t.alert_id,
                &Actor::Operator,
                ack("值班长", Some("qingyuan")),
                at(700),
            )
            .expect("acknowledged");
        assert!(view.acknowledged);
        assert!(live.escalations_due(&net, hourly, at(6000)).is_empty());
    }

    #[test]
    fn tokens_compare_whole() {
        assert!(same_secret(b"s3cret", b"s3cret"));
        assert!(!same_secret(b"s3creT", b"s3cret"));
        assert!(!same_secret(b"s3cre", b"s3cret"));
        assert!(!same_secret(b"", b"s3cret"));
    }
}
