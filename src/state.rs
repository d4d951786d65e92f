//! Alert state across restarts: the alert episodes of the domain core, saved as JSON in
//! `<[spool] dir>/alerts.json` and read back at start.
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

fn to_file(saved: &[Saved]) -> File {
    let episodes = saved
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
    }
}

/// Why one saved episode is skipped: it names something this version does not know (a file
/// written by a newer version, or edited by hand).
#[derive(Debug, thiserror::Error)]
enum UnknownKey {
    #[error("unknown rule {0:?}")]
    Rule(String),
    #[error("unknown parameter {0:?}")]
    Param(String),
    #[error("unknown level {0:?}")]
    Level(String),
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

/// Saves the episodes.
pub fn save(path: &Path, saved: &[Saved]) -> io::Result<()> {
    let json = serde_json::to_vec(&to_file(saved)).map_err(io::Error::other)?;
    write_atomic(path, &json)
}

/// Loads saved episodes; none when the file does not exist yet. Episodes naming a rule or
/// parameter this version does not know are skipped with a warning; an unreadable file is an
/// error (the caller refuses to start rather than forget alerts silently).
///
/// # Errors
/// [`LoadError`], naming the file.
pub fn load(path: &Path) -> Result<Vec<Saved>, LoadError> {
    let bytes = match fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(LoadError::Unreadable {
                path: path.to_path_buf(),
                source,
            })
        }
    };
    let file: File = serde_json::from_slice(&bytes).map_err(|source| LoadError::Invalid {
        path: path.to_path_buf(),
        source,
    })?;
    if file.version != VERSION {
        return Err(LoadError::Version {
            path: path.to_path_buf(),
            version: file.version,
        });
    }
    let mut out = Vec::with_capacity(file.episodes.len());
    for e in file.episodes {
        let station = e.station.clone();
        match from_episode(e) {
            Ok(s) => out.push(s),
            Err(why) => {
                tracing::warn!(%station, %why, file = %path.display(), "saved alert episode skipped")
            }
        }
    }
    Ok(out)
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
    #[error("{} has version {version}, this build reads {VERSION}", path.display())]
    Version { path: PathBuf, version: u32 },
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
            Vec::new(),
            "no file yet: nothing saved"
        );
        save(&p, &saved).expect("save");
        assert_eq!(load(&p).expect("saved file"), saved);
        fs::write(&p, b"{\"version\":1,\"episodes\":[").expect("write");
        assert!(load(&p).is_err_and(|e| e.to_string().contains("not valid alert state")));
    }
}
