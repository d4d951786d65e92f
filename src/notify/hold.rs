//! Notifications held back: by a silence until it ends, and by a bureau's quiet hours until
//! they end (SPEC §7, §8).
//!
//! Fed by the judging task (`alerts`) with the rendered outbox [`Item`]s of each transition,
//! incident event and digest, and with the wall time on its timer; returns what goes to the
//! outbox now. What is held is kept by the judging task in `<[spool] dir>/held.json`
//! (`save`, `load`), so a restart neither forgets nor repeats it. No I/O here.
//!
//! - **Silences.** The latest muted notifications of each alert (or incident) are kept with
//!   the silence that muted them; a later notification of the same alert that goes out, or its
//!   resolution, replaces or drops them. When that silence is no longer in force (it expired or
//!   was deleted) and the alert still fires, they go out once, re-keyed
//!   `released.<silence>.<original key>` (so the outbox, which has seen nothing under the
//!   original key but must not take the release for it, keeps both apart) and marked
//!   "released from silence" in the email's subject and first line; otherwise they are
//!   dropped.
//! - **Quiet hours.** A blue or data-level notification (a digest of station faults counts as
//!   data) for a bureau inside its quiet period waits until the period ends; then all that
//!   waited go out as one summary per bureau and address (one per email list, phone, robot),
//!   keyed `quiet.<bureau>.<end>.<suffix>`, so a summary released again after a crash is
//!   dropped by the outbox. Yellow and above never wait.

use super::outbox::Item;
use super::Channel;
use crate::domain::alert::Level;
use crate::domain::network::Network;
use crate::domain::quiet::{self, Note, QuietHours};
use crate::state::{read_versioned, write_atomic, LoadError};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Everything held, as `held.json` keeps it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Holds {
    /// By alert or incident id: the latest notifications a silence muted.
    #[serde(default)]
    pub silenced: BTreeMap<String, Silenced>,
    /// By bureau id: the notifications waiting for the end of its quiet hours, in arrival order.
    #[serde(default)]
    pub quiet: BTreeMap<String, Vec<Waiting>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Silenced {
    /// The silence that muted them.
    pub silence: String,
    pub items: Vec<Item>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Waiting {
    /// The end of the quiet period it waits for.
    pub until: DateTime<Utc>,
    /// When it would have gone out.
    pub at: DateTime<Utc>,
    pub item: Item,
}

impl Holds {
    pub fn is_empty(&self) -> bool {
        self.silenced.is_empty() && self.quiet.is_empty()
    }

    /// Keeps `items`, the notifications of `id`'s latest change that `silence` muted, in place
    /// of any kept before; true when something changed.
    pub fn silence(&mut self, id: &str, silence: &str, items: Vec<Item>) -> bool {
        let held = Silenced {
            silence: silence.to_string(),
            items,
        };
        if self.silenced.get(id) == Some(&held) {
            return false;
        }
        self.silenced.insert(id.to_string(), held);
        true
    }

    /// Drops what a silence held of `id` (it was told since, or it ended); true when there
    /// was something.
    pub fn forget(&mut self, id: &str) -> bool {
        self.silenced.remove(id).is_some()
    }

    /// Takes out the notifications whose silence is no longer in force (`active` says which
    /// are): those of alerts still `open`, re-keyed and marked as released; the others are
    /// dropped. Returns them with whether anything changed.
    pub fn release_silenced(
        &mut self,
        active: impl Fn(&str) -> bool,
        open: impl Fn(&str) -> bool,
    ) -> (Vec<Item>, bool) {
        let ended: Vec<String> = self
            .silenced
            .iter()
            .filter(|(_, h)| !active(&h.silence))
            .map(|(id, _)| id.clone())
            .collect();
        let mut out = Vec::new();
        for id in &ended {
            let Some(held) = self.silenced.remove(id) else {
                continue;
            };
            if !open(id) {
                continue;
            }
            out.extend(held.items.into_iter().map(|i| released(i, &held.silence)));
        }
        (out, !ended.is_empty())
    }

    /// Holds those of `items` that wait for their bureau's quiet hours at `now`; returns the
    /// others, to send now, with whether anything was held. An item already waiting (the same
    /// key: a message redelivered after a crash) is not held twice.
    pub fn quiet(
        &mut self,
        items: Vec<Item>,
        hours: &BTreeMap<String, QuietHours>,
        now: DateTime<Utc>,
    ) -> (Vec<Item>, bool) {
        let mut send = Vec::new();
        let mut held = false;
        for item in items {
            let until = hours
                .get(&item.bureau)
                .filter(|_| quiet::waits(level(&item)))
                .and_then(|q| q.end_after(now));
            let Some(until) = until else {
                send.push(item);
                continue;
            };
            let waiting = self.quiet.entry(item.bureau.clone()).or_default();
            if !waiting.iter().any(|w| w.item.key == item.key) {
                waiting.push(Waiting {
                    until,
                    at: now,
                    item,
                });
                held = true;
            }
        }
        (send, held)
    }

    /// Releases, at `now`, what waited for quiet periods that ended: one summary per bureau
    /// and address, rendered through the channel the notifications were for. Returns them
    /// with whether anything changed.
    pub fn release_quiet(
        &mut self,
        now: DateTime<Utc>,
        hours: &BTreeMap<String, QuietHours>,
        net: &Network,
        channels: &[Arc<dyn Channel>],
    ) -> (Vec<Item>, bool) {
        let mut out = Vec::new();
        let mut changed = false;
        for (bureau, waiting) in &mut self.quiet {
            let (due, rest): (Vec<Waiting>, Vec<Waiting>) =
                waiting.drain(..).partition(|w| w.until <= now);
            *waiting = rest;
            if due.is_empty() {
                continue;
            }
            changed = true;
            out.extend(summaries(bureau, &due, hours, net, channels));
        }
        self.quiet.retain(|_, w| !w.is_empty());
        (out, changed)
    }
}

/// The level an item carries; `None` for a digest (data level).
fn level(item: &Item) -> Option<Level> {
    let key = item.level.as_deref()?;
    Level::ALL.into_iter().find(|l| l.key() == key)
}

/// A held notification as it goes out after its silence: its own key under
/// `released.<silence>.`, and said so in the email subject.
fn released(mut item: Item, silence: &str) -> Item {
    item.key = format!("released.{silence}.{}", item.key).to_lowercase();
    // Email only: an SMS or chat text is already cut to its limit.
    if !item.subject.is_empty() {
        item.subject = format!("【静默结束后补发 released from silence】{}", item.subject);
        item.text = format!(
            "（静默结束后补发：该告警在静默期间仍在持续 / Released from silence: the alert still fires now that the silence ended）\n\n{}",
            item.text
        );
    }
    item
}

/// The part of an item's key after `<bureau>.`: its channel's address suffix (`email`, `sms0`).
fn suffix(item: &Item) -> &str {
    let marker = format!(".{}.", item.bureau);
    item.key
        .rfind(&marker)
        .map_or(item.channel.as_str(), |i| &item.key[i + marker.len()..])
}

/// A channel key and the addresses of one notification.
type Address<'a> = (&'a str, &'a [String]);

/// One summary per address among `due`, `bureau`'s notifications that waited.
fn summaries(
    bureau: &str,
    due: &[Waiting],
    hours: &BTreeMap<String, QuietHours>,
    net: &Network,
    channels: &[Arc<dyn Channel>],
) -> Vec<Item> {
    let until = due.iter().map(|w| w.until).max().unwrap_or_default();
    let name = net.bureau(bureau).map_or(bureau, |b| b.name.as_str());
    // The window as configured now; a bureau whose quiet hours were removed since is told
    // the period that ended.
    let window = hours.get(bureau).copied();
    // By channel and address, in first-arrival order, so the same held notifications always
    // give the same summaries under the same keys.
    let mut groups: Vec<(Address<'_>, Vec<&Waiting>)> = Vec::new();
    for w in due {
        let k = (w.item.channel.as_str(), w.item.to.as_slice());
        match groups.iter_mut().find(|(g, _)| *g == k) {
            Some((_, ws)) => ws.push(w),
            None => groups.push((k, vec![w])),
        }
    }
    let mut used: Vec<String> = Vec::new();
    let mut out = Vec::new();
    for ((channel_key, to), ws) in groups {
        let Some(channel) = channels.iter().find(|c| c.key() == channel_key) else {
            continue;
        };
        let notes: Vec<Note> = ws
            .iter()
            .map(|w| Note {
                at: w.at,
                headline: if w.item.subject.is_empty() {
                    w.item.text.clone()
                } else {
                    w.item.subject.clone()
                },
                detail: if w.item.subject.is_empty() {
                    String::new()
                } else {
                    w.item.text.clone()
                },
            })
            .collect();
        let text = match window {
            Some(q) => quiet::summary(name, &q, until, &notes),
            None => continue,
        };
        let mut base = format!(
            "quiet.{bureau}.{}.{}",
            until.format("%Y%m%dT%H%M%SZ"),
            suffix(&ws[0].item)
        )
        .to_lowercase();
        let n = used.iter().filter(|u| u.starts_with(&base)).count();
        if n > 0 {
            base = format!("{base}-{n}");
        }
        used.push(base.clone());
        for (i, draft) in channel.drafts(&text, to.to_vec()).into_iter().enumerate() {
            out.push(Item {
                key: if i == 0 {
                    base.clone()
                } else {
                    format!("{base}-{i}")
                },
                channel: channel_key.to_string(),
                alert_id: format!("quiet-{bureau}-{}", until.format("%Y%m%dT%H%M%SZ")),
                state: "quiet_summary".to_string(),
                level: None,
                station: None,
                bureau: bureau.to_string(),
                bureau_name: name.to_string(),
                to: draft.to,
                subject: draft.subject,
                text: draft.text,
            });
        }
    }
    out
}

// ---- `held.json` ----------------------------------------------------------------------

const VERSION: u32 = 1;

/// `held.json`: written like `alerts.json` (a temporary file, synced and renamed), saved
/// after holding (before `alerts.json`, so an episode saved as firing always has its held
/// notifications saved too) and after each release (once what was released is in the
/// outbox).
#[derive(Serialize, Deserialize)]
struct File {
    version: u32,
    #[serde(flatten)]
    holds: Holds,
}

/// Where the held notifications live under the spool folder.
pub fn path(spool_dir: &Path) -> PathBuf {
    spool_dir.join("held.json")
}

/// Saves `holds`, synced.
pub fn save(path: &Path, holds: &Holds) -> io::Result<()> {
    let file = File {
        version: VERSION,
        holds: holds.clone(),
    };
    let json = serde_json::to_vec(&file).map_err(io::Error::other)?;
    write_atomic(path, &json)
}

/// Loads the held notifications; none when the file does not exist yet. An unreadable file is
/// an error (the caller refuses to start rather than lose notifications silently).
///
/// # Errors
/// [`LoadError`], naming the file.
pub fn load(path: &Path) -> Result<Holds, LoadError> {
    Ok(read_versioned::<File>(path, VERSION, |f| f.version)?
        .map(|f| f.holds)
        .unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn item(key: &str, bureau: &str, level: Option<&str>, channel: &str, to: &str) -> Item {
        Item {
            key: format!("{key}.{bureau}.{channel}"),
            channel: channel.into(),
            alert_id: key.into(),
            state: "firing".into(),
            level: level.map(String::from),
            station: None,
            bureau: bureau.into(),
            bureau_name: bureau.into(),
            to: vec![to.into()],
            subject: format!("subject {key}"),
            text: format!("text {key}"),
        }
    }

    fn cst(h: u32, m: u32) -> DateTime<Utc> {
        crate::domain::hj212::cst()
            .with_ymd_and_hms(2026, 11, 26, h, m, 0)
            .single()
            .expect("time")
            .with_timezone(&Utc)
    }

    /// Inside a bureau's quiet hours blue, data and digests wait, yellow and above go; other
    /// bureaus and other times are untouched; at the end one summary per address goes out,
    /// under a key that does not change when the same notifications are released again.
    #[test]
    fn quiet_hours_hold_low_levels_and_release_one_summary_per_address() {
        let net = crate::domain::network::fixtures::network();
        let gz = net.bureaus[0].id.clone();
        let qy = net.bureaus[1].id.clone();
        let hours: BTreeMap<String, QuietHours> = [(
            gz.clone(),
            QuietHours::parse("22:00-07:00").expect("window"),
        )]
        .into();
        let email: Arc<dyn Channel> = Arc::new(super::super::email::EmailSink::Folder {
            dir: std::env::temp_dir(),
            from: "rw <rw@example.org>".parse().expect("mailbox"),
        });
        let channels = [email];
        let items = vec![
            item("a-blue", &gz, Some("blue"), "email", "duty@gz"),
            item("a-data", &gz, Some("data"), "email", "duty@gz"),
            item("digest", &gz, None, "email", "ops@gz"),
            item("a-yellow", &gz, Some("yellow"), "email", "duty@gz"),
            item("a-red", &gz, Some("red"), "email", "duty@gz"),
            item("b-blue", &qy, Some("blue"), "email", "duty@qy"),
        ];
        let mut holds = Holds::default();
        let (send, held) = holds.quiet(items.clone(), &hours, cst(12, 0));
        assert!(!held && send == items, "outside quiet hours nothing waits");
        let (send, held) = holds.quiet(items.clone(), &hours, cst(23, 0));
        let keys: Vec<_> = send.iter().map(|i| i.alert_id.as_str()).collect();
        assert!(held);
        assert_eq!(keys, ["a-yellow", "a-red", "b-blue"]);
        let (_, again) = holds.quiet(items.clone(), &hours, cst(23, 1));
        assert!(!again, "a redelivered notification is not held twice");
        assert_eq!(holds.quiet[&gz].len(), 3);

        let (out, changed) = holds.release_quiet(cst(23, 30), &hours, &net, &channels);
        assert!(out.is_empty() && !changed, "not before the end");
        let mut copy = holds.clone();
        let end = cst(7, 0) + chrono::Duration::days(1);
        let (out, changed) = holds.release_quiet(end, &hours, &net, &channels);
        assert!(changed && holds.is_empty());
        let got: Vec<_> = out
            .iter()
            .map(|i| (i.key.as_str(), i.to.join(",")))
            .collect();
        assert_eq!(
            got,
            [
                (
                    "quiet.guangzhou.20261126t230000z.email",
                    "duty@gz".to_string()
                ),
                (
                    "quiet.guangzhou.20261126t230000z.email-1",
                    "ops@gz".to_string()
                ),
            ]
        );
        assert!(out[0].subject.contains("2条") && out[0].text.contains("subject a-blue"));
        assert_eq!(out[0].state, "quiet_summary");
        let (again, _) = copy.release_quiet(end, &hours, &net, &channels);
        assert_eq!(again, out, "released again after a crash: the same keys");
    }

    /// What a silence held goes out once when the silence is no longer in force and the
    /// alert still fires, under its own key; otherwise it is dropped.
    #[test]
    fn a_silence_releases_what_it_held_once_if_the_alert_still_fires() {
        let mut holds = Holds::default();
        let a = item("a", "guangzhou", Some("yellow"), "email", "duty@gz");
        let b = item("b", "guangzhou", Some("yellow"), "email", "duty@gz");
        assert!(holds.silence("a", "s1", vec![a.clone()]));
        assert!(!holds.silence("a", "s1", vec![a.clone()]), "the same again");
        assert!(holds.silence("b", "s1", vec![b]));
        assert!(holds.silence("c", "s2", vec![a.clone()]));
        let (out, changed) = holds.release_silenced(|_| true, |_| true);
        assert!(out.is_empty() && !changed, "s1 and s2 in force");
        let (out, changed) = holds.release_silenced(|s| s == "s2", |id| id == "a");
        assert!(changed);
        assert_eq!(out.len(), 1, "b no longer fires: dropped");
        assert_eq!(out[0].key, format!("released.s1.{}", a.key));
        assert!(out[0].subject.contains("released from silence"));
        let (out, _) = holds.release_silenced(|_| false, |_| true);
        assert_eq!(out.len(), 1, "c's silence ends later");
        let (out, changed) = holds.release_silenced(|_| false, |_| true);
        assert!(out.is_empty() && !changed && holds.is_empty(), "once");
    }

    #[test]
    fn holds_survive_a_save_and_load() {
        let t = chrono::Utc
            .with_ymd_and_hms(2026, 11, 26, 2, 0, 0)
            .single()
            .expect("time");
        let item = Item {
            key: "a.fired.20261126t020000z.guangzhou.email".into(),
            channel: "email".into(),
            alert_id: "a".into(),
            state: "firing".into(),
            level: Some("blue".into()),
            station: Some("shijiao".into()),
            bureau: "guangzhou".into(),
            bureau_name: "广州市生态环境局".into(),
            to: vec!["duty@gz.example.org".into()],
            subject: "s".into(),
            text: "t".into(),
        };
        let mut holds = Holds::default();
        holds.silenced.insert(
            "a".into(),
            Silenced {
                silence: "silence-1".into(),
                items: vec![item.clone()],
            },
        );
        holds.quiet.insert(
            "guangzhou".into(),
            vec![Waiting {
                until: t,
                at: t,
                item,
            }],
        );
        let dir = tempfile::tempdir().expect("tempdir");
        let p = path(dir.path());
        assert!(load(&p).expect("no file").is_empty());
        save(&p, &holds).expect("save");
        assert_eq!(load(&p).expect("saved file"), holds);
        std::fs::write(&p, b"{\"version\":1,\"silenced\":[").expect("write");
        assert!(load(&p).is_err_and(|e| e.to_string().contains("not valid")));
    }
}
