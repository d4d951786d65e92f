//! The pending digests across restarts: the data-level alert transitions waiting for their
//! bureau's digest ([`crate::domain::digest`]), saved as JSON in `<[spool] dir>/digest.json`
//! and read back at start.
//!
//! Fed by the judging task (`alerts`), which saves after adding entries (before the message
//! that caused them is acknowledged, and before `alerts.json`, so an episode saved as firing
//! always has its entry saved too) and after each release (once the digest's notifications
//! are in the outbox); read by `app` at start. Written like `alerts.json`: a temporary file,
//! synced and renamed, so a crash leaves the old or the new state, never a mix. The domain's
//! plain queues are mirrored here with serde, keeping the core free of serialization.

use super::{read_versioned, write_atomic, LoadError, UnknownKey};
use crate::domain::alert::Rule;
use crate::domain::digest::{Batch, Cause, Change, Entry, Queue};
use crate::domain::param::Param;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::io;
use std::path::{Path, PathBuf};

const VERSION: u32 = 1;

#[derive(Serialize, Deserialize)]
struct File {
    version: u32,
    bureaus: Vec<SavedQueue>,
}

#[derive(Serialize, Deserialize)]
struct SavedQueue {
    bureau: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    released: Option<DateTime<Utc>>,
    /// The last digest's entries, as (alert id, change).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    sent: Vec<(String, String)>,
    #[serde(default)]
    batches: Vec<SavedBatch>,
}

#[derive(Serialize, Deserialize)]
struct SavedBatch {
    opened: DateTime<Utc>,
    entries: Vec<SavedEntry>,
}

#[derive(Serialize, Deserialize)]
struct SavedEntry {
    station: String,
    rule: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    param: Option<String>,
    alert_id: String,
    change: String,
    since: DateTime<Utc>,
    at: DateTime<Utc>,
    /// `station_fault`: why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
    /// `offline`: the last reading's arrival.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    last: Option<DateTime<Utc>>,
}

/// Where the pending digests live under the spool folder.
pub fn path(spool_dir: &Path) -> PathBuf {
    spool_dir.join("digest.json")
}

fn to_entry(e: &Entry) -> SavedEntry {
    let (reason, last) = match &e.cause {
        Cause::None => (None, None),
        Cause::Fault { reason } => (Some(reason.clone()), None),
        Cause::Offline { last } => (None, Some(*last)),
    };
    SavedEntry {
        station: e.station.clone(),
        rule: e.rule.key().to_string(),
        param: e.param.map(|p| p.key().to_string()),
        alert_id: e.alert_id.clone(),
        change: e.change.key().to_string(),
        since: e.since,
        at: e.at,
        reason,
        last,
    }
}

fn from_entry(e: SavedEntry) -> Result<Entry, UnknownKey> {
    let rule = Rule::ALL
        .into_iter()
        .find(|r| r.key() == e.rule)
        .ok_or_else(|| UnknownKey::Rule(e.rule.clone()))?;
    let param = match &e.param {
        None => None,
        Some(p) => Some(Param::from_key(p).ok_or_else(|| UnknownKey::Param(p.clone()))?),
    };
    let change = Change::from_key(&e.change).ok_or_else(|| UnknownKey::Change(e.change.clone()))?;
    let cause = match (e.reason, e.last) {
        (Some(reason), _) => Cause::Fault { reason },
        (None, Some(last)) => Cause::Offline { last },
        (None, None) => Cause::None,
    };
    Ok(Entry {
        station: e.station,
        rule,
        param,
        alert_id: e.alert_id,
        change,
        since: e.since,
        at: e.at,
        cause,
    })
}

/// Saves every bureau's queue (as `Digests::save` gives them).
pub fn save(path: &Path, queues: &[(String, Queue)]) -> io::Result<()> {
    let file = File {
        version: VERSION,
        bureaus: queues
            .iter()
            .map(|(bureau, q)| SavedQueue {
                bureau: bureau.clone(),
                released: q.released,
                sent: q
                    .sent
                    .iter()
                    .map(|(id, change)| (id.clone(), change.key().to_string()))
                    .collect(),
                batches: q
                    .batches
                    .iter()
                    .map(|b| SavedBatch {
                        opened: b.opened,
                        entries: b.entries.iter().map(to_entry).collect(),
                    })
                    .collect(),
            })
            .collect(),
    };
    let json = serde_json::to_vec(&file).map_err(io::Error::other)?;
    write_atomic(path, &json)
}

/// Loads the saved queues; none when the file does not exist yet. Entries naming a rule,
/// parameter or change this version does not know are skipped with a warning; an unreadable
/// file is an error (the caller refuses to start rather than lose notifications silently).
///
/// # Errors
/// [`LoadError`], naming the file.
pub fn load(path: &Path) -> Result<Vec<(String, Queue)>, LoadError> {
    let Some(file) = read_versioned::<File>(path, VERSION, |f| f.version)? else {
        return Ok(Vec::new());
    };
    let mut out = Vec::with_capacity(file.bureaus.len());
    for q in file.bureaus {
        let mut batches = Vec::with_capacity(q.batches.len());
        for b in q.batches {
            let mut entries = Vec::with_capacity(b.entries.len());
            for e in b.entries {
                let alert_id = e.alert_id.clone();
                match from_entry(e) {
                    Ok(e) => entries.push(e),
                    Err(why) => {
                        tracing::warn!(%alert_id, %why, file = %path.display(), "saved digest entry skipped")
                    }
                }
            }
            if !entries.is_empty() {
                batches.push(Batch {
                    opened: b.opened,
                    entries,
                });
            }
        }
        // A change this version does not know cannot match any entry it makes: dropped.
        let sent = q
            .sent
            .into_iter()
            .filter_map(|(id, change)| Change::from_key(&change).map(|c| (id, c)))
            .collect();
        out.push((
            q.bureau,
            Queue {
                released: q.released,
                sent,
                batches,
            },
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn queues_survive_a_save_and_load() {
        let t = |m| {
            Utc.with_ymd_and_hms(2026, 11, 26, 2, m, 0)
                .single()
                .expect("time")
                + chrono::Duration::milliseconds(250)
        };
        let entry = |station: &str, rule, param, change, cause| Entry {
            station: station.into(),
            rule,
            param,
            alert_id: format!("{station}-{}", rule),
            change,
            since: t(0),
            at: t(3),
            cause,
        };
        let queues = vec![
            (
                "guangzhou".to_string(),
                Queue {
                    released: Some(t(1)),
                    sent: vec![("gaoqiao-offline".into(), Change::Resolved)],
                    batches: Vec::new(),
                },
            ),
            (
                "qingyuan".to_string(),
                Queue {
                    released: None,
                    sent: Vec::new(),
                    batches: vec![Batch {
                        opened: t(2),
                        entries: vec![
                            entry(
                                "shijiao",
                                Rule::StationFault,
                                Some(Param::Ph),
                                Change::Fired,
                                Cause::Fault {
                                    reason: "instrument flag D".into(),
                                },
                            ),
                            entry(
                                "gaoqiao",
                                Rule::Offline,
                                None,
                                Change::Fired,
                                Cause::Offline { last: t(0) },
                            ),
                            entry("shiwei", Rule::Offline, None, Change::Resolved, Cause::None),
                        ],
                    }],
                },
            ),
        ];
        let dir = tempfile::tempdir().expect("tempdir");
        let p = path(dir.path());
        assert!(
            load(&p).expect("no file").is_empty(),
            "no file: nothing pending"
        );
        save(&p, &queues).expect("save");
        assert_eq!(load(&p).expect("saved file"), queues);
        std::fs::write(&p, b"{\"version\":1,\"bureaus\":[").expect("write");
        assert!(load(&p).is_err_and(|e| e.to_string().contains("not valid")));
    }
}
