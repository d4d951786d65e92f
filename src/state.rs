//! Alert state across restarts: the alert episodes and the open incidents of the domain core,
//! saved together as JSON in `<[spool] dir>/alerts.json` (one file, so a crash never keeps
//! episodes and incidents from different moments) and read back at start.
//!
//! Fed by the judging task (`alerts`), which saves after every batch of transitions (before the message
//! that caused them is acknowledged, and after their notifications are in the outbox), every
//! 30 s while readings change the persistence counters, and at shutdown; read by `app` at
//! start, which hands the episodes to `Rules::restore_alerts`. Written to a temporary file,
//! synced and renamed over the old one, so a crash leaves either the old or the new state,
//! never a mix. The domain's plain `Saved` records are mirrored here with serde, keeping the
//! core free of serialization. The pending digests of data-level alerts are kept the same
//! way, in their own file ([`digest`]).

pub mod digest;

use crate::domain::alert::{AlertKey, Evidence, Level, Rule, Saved, SavedFiring};
use crate::domain::gb3838::Class;
use crate::domain::incident::{Arrival, Incident, Member, Peak, Reach};
use crate::domain::param::Param;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

const VERSION: u32 = 1;

#[derive(Serialize, Deserialize)]
struct File {
    version: u32,
    episodes: Vec<Episode>,
    /// Absent in files written before incidents existed: none open then.
    #[serde(default)]
    incidents: Vec<SavedIncident>,
    /// Firing alerts in no incident, which one may adopt.
    #[serde(default)]
    loose: Vec<SavedMember>,
}

/// Everything `alerts.json` keeps: the episodes, the open incidents and the firing alerts
/// that belong to none.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AlertState {
    pub episodes: Vec<Saved>,
    pub incidents: Vec<Incident>,
    pub loose: Vec<Member>,
}

#[derive(Serialize, Deserialize)]
struct SavedMember {
    alert_id: String,
    station: String,
    rule: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    param: Option<String>,
    level: String,
    firing: bool,
}

#[derive(Serialize, Deserialize)]
struct SavedReach {
    station: String,
    expected: DateTime<Utc>,
    earliest: DateTime<Utc>,
    latest: DateTime<Utc>,
    baseline: Option<f64>,
    /// "pending", "confirmed" (with `confirmed_ts`, `confirmed_value`) or "not_confirmed".
    arrival: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    confirmed_ts: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    confirmed_value: Option<f64>,
    exceeded: bool,
}

#[derive(Serialize, Deserialize)]
struct SavedIncident {
    id: String,
    param: String,
    river: String,
    origin: String,
    since: DateTime<Utc>,
    origin_value: f64,
    level: String,
    members: Vec<SavedMember>,
    reach: Vec<SavedReach>,
    peak_station: String,
    peak_ts: DateTime<Utc>,
    peak_value: f64,
    peak_class: Option<u8>,
    last_ts: DateTime<Utc>,
}

fn to_member(m: &Member) -> SavedMember {
    SavedMember {
        alert_id: m.alert_id.clone(),
        station: m.station.clone(),
        rule: m.rule.key().to_string(),
        param: m.param.map(|p| p.key().to_string()),
        level: m.level.key().to_string(),
        firing: m.firing,
    }
}

fn from_member(m: SavedMember) -> Result<Member, UnknownKey> {
    Ok(Member {
        rule: rule_from_key(&m.rule).ok_or(UnknownKey::Rule(m.rule))?,
        param: match m.param {
            None => None,
            Some(p) => Some(Param::from_key(&p).ok_or(UnknownKey::Param(p))?),
        },
        level: level_from_key(&m.level).ok_or(UnknownKey::Level(m.level))?,
        alert_id: m.alert_id,
        station: m.station,
        firing: m.firing,
    })
}

fn to_incident(i: &Incident) -> SavedIncident {
    SavedIncident {
        id: i.id.clone(),
        param: i.param.key().to_string(),
        river: i.river.clone(),
        origin: i.origin.clone(),
        since: i.since,
        origin_value: i.origin_value,
        level: i.level.key().to_string(),
        members: i.members.iter().map(to_member).collect(),
        reach: i
            .reach
            .iter()
            .map(|r| {
                let (arrival, confirmed_ts, confirmed_value) = match r.arrival {
                    Arrival::Pending => ("pending", None, None),
                    Arrival::Confirmed { ts, value } => ("confirmed", Some(ts), Some(value)),
                    Arrival::NotConfirmed => ("not_confirmed", None, None),
                };
                SavedReach {
                    station: r.station.clone(),
                    expected: r.expected,
                    earliest: r.earliest,
                    latest: r.latest,
                    baseline: r.baseline,
                    arrival: arrival.to_string(),
                    confirmed_ts,
                    confirmed_value,
                    exceeded: r.exceeded,
                }
            })
            .collect(),
        peak_station: i.peak.station.clone(),
        peak_ts: i.peak.ts,
        peak_value: i.peak.value,
        peak_class: i.peak.class.map(Class::number),
        last_ts: i.last_ts,
    }
}

fn from_incident(i: SavedIncident) -> Result<Incident, UnknownKey> {
    let mut reach = Vec::with_capacity(i.reach.len());
    for r in i.reach {
        let arrival = match (r.arrival.as_str(), r.confirmed_ts, r.confirmed_value) {
            ("pending", _, _) => Arrival::Pending,
            ("confirmed", Some(ts), Some(value)) => Arrival::Confirmed { ts, value },
            ("not_confirmed", _, _) => Arrival::NotConfirmed,
            _ => return Err(UnknownKey::Arrival(r.arrival)),
        };
        reach.push(Reach {
            station: r.station,
            expected: r.expected,
            earliest: r.earliest,
            latest: r.latest,
            baseline: r.baseline,
            arrival,
            exceeded: r.exceeded,
        });
    }
    Ok(Incident {
        param: Param::from_key(&i.param).ok_or(UnknownKey::Param(i.param))?,
        level: level_from_key(&i.level).ok_or(UnknownKey::Level(i.level))?,
        members: i
            .members
            .into_iter()
            .map(from_member)
            .collect::<Result<_, _>>()?,
        reach,
        peak: Peak {
            station: i.peak_station,
            ts: i.peak_ts,
            value: i.peak_value,
            class: i.peak_class.and_then(Class::new),
        },
        id: i.id,
        river: i.river,
        origin: i.origin,
        since: i.since,
        origin_value: i.origin_value,
        last_ts: i.last_ts,
    })
}

#[derive(Serialize, Deserialize)]
struct Episode {
    station: String,
    rule: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    param: Option<String>,
    last_ts: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    recent: Vec<(DateTime<Utc>, Option<String>)>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    firing: Option<Firing>,
}

#[derive(Serialize, Deserialize)]
struct Firing {
    id: String,
    since: DateTime<Utc>,
    level: String,
    notified_at: DateTime<Utc>,
    clearing: u32,
    peak_ts: DateTime<Utc>,
    peak_value: f64,
    peak_class: Option<u8>,
}

fn rule_from_key(key: &str) -> Option<Rule> {
    Rule::ALL.into_iter().find(|r| r.key() == key)
}

fn level_from_key(key: &str) -> Option<Level> {
    Level::ALL.into_iter().find(|l| l.key() == key)
}

/// Where the alert state lives under the spool folder.
pub fn path(spool_dir: &Path) -> PathBuf {
    spool_dir.join("alerts.json")
}

fn to_file(state: &AlertState) -> File {
    let episodes = state
        .episodes
        .iter()
        .map(|s| Episode {
            station: s.key.station.clone(),
            rule: s.key.rule.key().to_string(),
            param: s.key.param.map(|p| p.key().to_string()),
            last_ts: s.last_ts,
            recent: s
                .recent
                .iter()
                .map(|(t, l)| (*t, l.map(|l| l.key().to_string())))
                .collect(),
            firing: s.firing.as_ref().map(|f| Firing {
                id: f.id.clone(),
                since: f.since,
                level: f.level.key().to_string(),
                notified_at: f.notified_at,
                clearing: f.clearing,
                peak_ts: f.peak.ts,
                peak_value: f.peak.value,
                peak_class: f.peak.class.map(Class::number),
            }),
        })
        .collect();
    File {
        version: VERSION,
        episodes,
        incidents: state.incidents.iter().map(to_incident).collect(),
        loose: state.loose.iter().map(to_member).collect(),
    }
}

/// Why one saved episode, incident or digest entry is skipped: it names something this
/// version does not know (a file written by a newer version, or edited by hand).
#[derive(Debug, thiserror::Error)]
enum UnknownKey {
    #[error("unknown rule {0:?}")]
    Rule(String),
    #[error("unknown parameter {0:?}")]
    Param(String),
    #[error("unknown level {0:?}")]
    Level(String),
    #[error("unknown arrival state {0:?}")]
    Arrival(String),
    #[error("unknown change {0:?}")]
    Change(String),
}

fn from_episode(e: Episode) -> Result<Saved, UnknownKey> {
    let rule = rule_from_key(&e.rule).ok_or_else(|| UnknownKey::Rule(e.rule.clone()))?;
    let param = match &e.param {
        None => None,
        Some(p) => Some(Param::from_key(p).ok_or_else(|| UnknownKey::Param(p.clone()))?),
    };
    let level = |k: &str| level_from_key(k).ok_or_else(|| UnknownKey::Level(k.to_owned()));
    let mut recent = Vec::with_capacity(e.recent.len());
    for (t, l) in e.recent {
        recent.push((t, l.as_deref().map(level).transpose()?));
    }
    let firing = match e.firing {
        None => None,
        Some(f) => Some(SavedFiring {
            level: level(&f.level)?,
            id: f.id,
            since: f.since,
            notified_at: f.notified_at,
            clearing: f.clearing,
            peak: Evidence {
                ts: f.peak_ts,
                value: f.peak_value,
                class: f.peak_class.and_then(Class::new),
            },
        }),
    };
    Ok(Saved {
        key: AlertKey {
            station: e.station,
            rule,
            param,
        },
        last_ts: e.last_ts,
        recent,
        firing,
    })
}

/// Writes `contents` to `path` whole or not at all: a temporary file, synced, renamed over
/// `path`. The rename itself is durable once the folder is synced (see [`write_atomic`]);
/// callers writing many files sync the folder once.
pub fn replace_synced(path: &Path, contents: &[u8]) -> io::Result<()> {
    // Appended, not swapped for the extension: names with dots must not share a temporary.
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    {
        let mut f = fs::File::create(&tmp)?;
        f.write_all(contents)?;
        f.sync_all()?;
    }
    fs::rename(&tmp, path)
}

/// [`replace_synced`], then a sync of the folder, so the new file survives a crash.
pub fn write_atomic(path: &Path, contents: &[u8]) -> io::Result<()> {
    replace_synced(path, contents)?;
    fs::File::open(path.parent().unwrap_or(Path::new(".")))?.sync_all()
}

/// Saves the episodes and incidents.
pub fn save(path: &Path, state: &AlertState) -> io::Result<()> {
    let json = serde_json::to_vec(&to_file(state)).map_err(io::Error::other)?;
    write_atomic(path, &json)
}

/// Loads saved episodes; none when the file does not exist yet. Episodes naming a rule or
/// parameter this version does not know are skipped with a warning; an unreadable file is an
/// error (the caller refuses to start rather than forget alerts silently).
///
/// # Errors
/// [`LoadError`], naming the file.
pub fn load(path: &Path) -> Result<AlertState, LoadError> {
    let Some(file) = read_versioned::<File>(path, VERSION, |f| f.version)? else {
        return Ok(AlertState::default());
    };
    let mut out = AlertState::default();
    for e in file.episodes {
        let station = e.station.clone();
        match from_episode(e) {
            Ok(s) => out.episodes.push(s),
            Err(why) => {
                tracing::warn!(%station, %why, file = %path.display(), "saved alert episode skipped")
            }
        }
    }
    for i in file.incidents {
        let id = i.id.clone();
        match from_incident(i) {
            Ok(i) => out.incidents.push(i),
            Err(why) => tracing::warn!(%id, %why, file = %path.display(), "saved incident skipped"),
        }
    }
    for m in file.loose {
        let id = m.alert_id.clone();
        match from_member(m) {
            Ok(m) => out.loose.push(m),
            Err(why) => tracing::warn!(%id, %why, file = %path.display(), "saved alert skipped"),
        }
    }
    Ok(out)
}

/// Reads a state file written as JSON with a `version` (which `version_of` reads) that must
/// be `expected`: `None` when it does not exist yet (a first start).
///
/// # Errors
/// [`LoadError`]: unreadable, not such JSON, or another version.
pub(crate) fn read_versioned<T: serde::de::DeserializeOwned>(
    path: &Path,
    expected: u32,
    version_of: impl Fn(&T) -> u32,
) -> Result<Option<T>, LoadError> {
    let bytes = match fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(LoadError::Unreadable {
                path: path.to_path_buf(),
                source,
            })
        }
    };
    let file: T = serde_json::from_slice(&bytes).map_err(|source| LoadError::Invalid {
        path: path.to_path_buf(),
        source,
    })?;
    let version = version_of(&file);
    if version != expected {
        return Err(LoadError::Version {
            path: path.to_path_buf(),
            version,
            expected,
        });
    }
    Ok(Some(file))
}

/// Why the saved alert state cannot be loaded; the daemon then refuses to start rather than
/// forget alerts silently.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read {}: {source}", path.display())]
    Unreadable { path: PathBuf, source: io::Error },
    #[error("{} is not valid alert state: {source}", path.display())]
    Invalid {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("{} has version {version}, this build reads {expected}", path.display())]
    Version {
        path: PathBuf,
        version: u32,
        expected: u32,
    },
}

/// Runs file work (synced writes, renames, directory scans) on tokio's blocking pool, so the
/// runtime's one worker thread keeps serving the pipeline through the fsyncs; a panicked or
/// cancelled job is an I/O error.
pub async fn on_blocking_pool<T: Send + 'static>(
    work: impl FnOnce() -> io::Result<T> + Send + 'static,
) -> io::Result<T> {
    tokio::task::spawn_blocking(work)
        .await
        .unwrap_or_else(|e| Err(io::Error::other(e)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn episodes_survive_a_save_and_load() {
        let t = |h| {
            Utc.with_ymd_and_hms(2026, 11, 26, h, 0, 0)
                .single()
                .expect("time")
        };
        let saved = vec![
            Saved {
                key: AlertKey {
                    station: "shijiao".into(),
                    rule: Rule::Exceedance,
                    param: Some(Param::Nh3n),
                },
                last_ts: Some(t(8)),
                recent: Vec::new(),
                firing: Some(SavedFiring {
                    id: "shijiao-exceedance-nh3n-20261126T040000Z".into(),
                    since: t(4),
                    level: Level::Orange,
                    notified_at: t(4),
                    clearing: 1,
                    peak: Evidence {
                        ts: t(6),
                        value: 2.4,
                        class: Class::new(6),
                    },
                }),
            },
            Saved {
                key: AlertKey {
                    station: "qixinggang".into(),
                    rule: Rule::Offline,
                    param: None,
                },
                last_ts: Some(t(9)),
                recent: vec![(t(8), None), (t(9), Some(Level::Data))],
                firing: None,
            },
        ];
        let dir = tempfile::tempdir().expect("tempdir");
        let p = path(dir.path());
        assert_eq!(
            load(&p).expect("no file"),
            AlertState::default(),
            "no file yet: nothing saved"
        );
        let saved = AlertState {
            episodes: saved,
            ..AlertState::default()
        };
        save(&p, &saved).expect("save");
        assert_eq!(load(&p).expect("saved file"), saved);
        fs::write(&p, b"{\"version\":1,\"episodes\":[").expect("write");
        assert!(load(&p).is_err_and(|e| e.to_string().contains("not valid alert state")));
    }
}

#[cfg(test)]
mod incident_restart {
    //! A restart at any point of an incident, through `alerts.json`'s own encoding, changes
    //! nothing: the events after it are those of a run that never stopped.
    use super::*;
    use crate::domain::incident::tests::Pipeline;
    use crate::domain::incident::{IncidentConfig, IncidentEvent, Incidents};
    use crate::domain::network::fixtures::reach_network;
    use proptest::prelude::*;

    /// Runs `feed` through the rules and the incidents; at step `cut` (if any) the incidents
    /// go through a save to JSON and a load into a fresh engine. Returns every event.
    fn run(feed: &[(&str, i64, f64)], cut: Option<usize>) -> Vec<IncidentEvent> {
        let net = reach_network();
        let mut p = Pipeline::new();
        let dir = tempfile::tempdir().expect("tempdir");
        for (k, (station, hours, v)) in feed.iter().enumerate() {
            if cut == Some(k) {
                let (open, loose) = p.incidents.save();
                let state = AlertState {
                    episodes: Vec::new(),
                    incidents: open,
                    loose,
                };
                let file = path(dir.path());
                save(&file, &state).expect("save");
                let back = load(&file).expect("load");
                assert_eq!(back, state, "the file keeps everything");
                p.incidents = Incidents::new(IncidentConfig::default());
                p.incidents.restore(back.incidents, back.loose);
            }
            p.feed(&net, station, *hours, *v);
        }
        p.events
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]

        #[test]
        fn a_restart_at_any_point_neither_repeats_nor_forgets(
            // Values as stations report them (three decimals), which JSON keeps exactly.
            peak in (600u32..4000).prop_map(|x| f64::from(x) / 1000.0),
            downstream in proptest::collection::vec((0u32..2500).prop_map(|x| f64::from(x) / 1000.0), 8),
            cut in 0usize..20,
        ) {
            let mut feed: Vec<(&str, i64, f64)> = [(0, 0.2), (4, peak), (8, peak), (12, 0.2), (16, 0.2)]
                .iter()
                .map(|&(h, v)| ("qixinggang", h, v))
                .collect();
            feed.extend(downstream.iter().enumerate().map(|(i, v)| ("shijiao", i as i64 * 4 + 2, *v)));
            feed.extend((0..4).map(|i| ("shijiao", 34 + i * 4, 0.2)));
            feed.sort_by_key(|(_, h, _)| *h);
            prop_assert_eq!(run(&feed, Some(cut.min(feed.len()))), run(&feed, None));
        }
    }
}
