//! The persistent outbox: one file per notification (transition × bureau × channel ×
//! recipient) under `<[spool] dir>/outbox/`, written before the message that caused the
//! transition is acknowledged, removed only once delivered.
//!
//! Fed by the judging task (`alerts`) ([`Outbox::enqueue`], synchronously, right after the
//! transitions are decided); drained by one delivery worker per channel (`notify::Worker`), in
//! enqueue order. Layout: `pending/<seq>-<channel>-<key>.json` waiting, `sent/<key>` delivered
//! (kept 30 days, so a transition produced again — a redelivered message after a crash — is
//! recognised and not sent twice), `failed/<seq>-<channel>-<key>.json` refused permanently (also in
//! the dead-letter file). Each file is written to a temporary name, synced and renamed, so a crash
//! leaves whole files only.
//!
//! The idempotency key is derived from the alert id, the transition (kind and reading time),
//! the bureau, the channel and the recipient's position, so the same transition always gets
//! the same key. It travels with the delivery (email Message-ID, the SMS gateway's and the
//! webhook's `Idempotency-Key` header; WeCom and DingTalk robots take none), for the rare copy
//! sent twice: delivered, then a crash before the file moved to `sent/`. A chat robot's item
//! names it by label (`guangzhou.wecom[0]`), never by its URL, which holds a secret.

use crate::state::replace_synced;
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

/// Size at which `delivered.log` starts again (see [`Outbox::delivered`]).
const LOG_LIMIT: u64 = 1 << 20;

/// How long delivered keys are remembered.
const KEEP_SENT: Duration = Duration::from_secs(30 * 24 * 3600);

/// One notification, rendered: everything its delivery needs, so a restart needs neither
/// the transition nor the config that produced it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Item {
    pub key: String,
    /// The key of the channel that delivers it (`email`, `sms`, …; see `notify::Channel::key`).
    pub channel: String,
    pub alert_id: String,
    /// `firing` or `resolved`.
    pub state: String,
    /// The alert's level (`blue` … `red`), where the notification has one (the webhook
    /// sends it); absent in files written before it was recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub level: Option<String>,
    /// The alert's station, where the notification has one (the webhook sends it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub station: Option<String>,
    pub bureau: String,
    pub bureau_name: String,
    /// Email addresses (one email to all of a bureau's addresses), one phone number, or one
    /// robot's or endpoint's label (`guangzhou.wecom[0]`; never its URL, which is secret).
    pub to: Vec<String>,
    /// Email subject; empty for SMS.
    #[serde(default)]
    pub subject: String,
    /// Email body or SMS text.
    pub text: String,
}

/// A pending notification and its file.
#[derive(Debug, Clone)]
pub struct Pending {
    pub path: PathBuf,
    pub item: Item,
}

#[derive(Debug)]
pub struct Outbox {
    pending: PathBuf,
    sent: PathBuf,
    failed: PathBuf,
    inner: Mutex<Inner>,
    /// `delivered.log`: one key per line, appended and synced the moment a server accepted a
    /// notification ([`Outbox::delivered`]). One small synced append is the shortest durable
    /// record there is: every instant between the acceptance and this record is one in which
    /// a kill sends the notification again. The `sent/` marker and the removal of the pending
    /// file follow unsynced; [`Outbox::open`] completes them from this log after a crash.
    log: Mutex<fs::File>,
}

#[derive(Debug)]
struct Inner {
    next_seq: u64,
    /// Keys pending or sent: a key here is never enqueued again.
    known: HashSet<String>,
}

/// Keeps a key usable as a file name.
fn file_safe(key: &str) -> String {
    key.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// `<seq>-<channel>-<key>.json` → (seq, channel, key). Channel keys hold no `-`, so the
/// second `-` ends the channel whatever the idempotency key holds.
fn parse_name(name: &str) -> Option<(u64, &str, &str)> {
    let (seq, rest) = name.split_once('-')?;
    let (channel, key) = rest.split_once('-')?;
    if channel.is_empty() {
        return None;
    }
    Some((seq.parse().ok()?, channel, key.strip_suffix(".json")?))
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    fs::File::open(dir)?.sync_all()
}

impl Outbox {
    /// Opens (creating) the outbox under `dir`, forgetting delivered keys older than 30 days.
    pub fn open(dir: &Path) -> io::Result<Outbox> {
        let (pending, sent, failed) = (dir.join("pending"), dir.join("sent"), dir.join("failed"));
        for d in [&pending, &sent, &failed] {
            fs::create_dir_all(d)?;
        }
        // A kill mid-write leaves a temporary file (`*.tmp`, never renamed): the item it held
        // was not enqueued, so its message was not acknowledged and comes again.
        for d in [&pending, &sent] {
            for e in fs::read_dir(d)?.filter_map(Result::ok) {
                if e.file_name().to_string_lossy().ends_with(".tmp") {
                    let _ = fs::remove_file(e.path());
                }
            }
        }
        // Deliveries recorded in the log whose marker or removal a crash cut short.
        let log_path = dir.join("delivered.log");
        let logged: HashSet<String> = match fs::read_to_string(&log_path) {
            Ok(text) => text
                .lines()
                .filter(|l| !l.is_empty())
                .map(str::to_string)
                .collect(),
            Err(e) if e.kind() == io::ErrorKind::NotFound => HashSet::new(),
            Err(e) => return Err(e),
        };
        if !logged.is_empty() {
            for key in &logged {
                // An existing marker keeps its time (the delivery's), which `sent/`'s expiry
                // reads.
                let marker = sent.join(key);
                if !marker.exists() {
                    fs::File::create(&marker)?.sync_all()?;
                }
            }
            sync_dir(&sent)?;
            for e in fs::read_dir(&pending)?.filter_map(Result::ok) {
                let name = e.file_name().to_string_lossy().into_owned();
                if parse_name(&name).is_some_and(|(_, _, key)| logged.contains(key)) {
                    fs::remove_file(e.path())?;
                }
            }
            sync_dir(&pending)?;
        }
        fs::File::create(&log_path)?.sync_all()?;
        sync_dir(dir)?;
        // Appending: every write lands at the end, also after the log starts again.
        let log = fs::OpenOptions::new().append(true).open(&log_path)?;
        let mut known = HashSet::new();
        let mut next_seq = 1;
        for e in fs::read_dir(&pending)?.filter_map(Result::ok) {
            let name = e.file_name().to_string_lossy().into_owned();
            if let Some((seq, _, key)) = parse_name(&name) {
                next_seq = next_seq.max(seq + 1);
                known.insert(key.to_string());
            }
        }
        let now = SystemTime::now();
        for e in fs::read_dir(&sent)?.filter_map(Result::ok) {
            let old = e
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| now.duration_since(t).ok())
                .is_some_and(|age| age > KEEP_SENT);
            if old {
                let _ = fs::remove_file(e.path());
            } else {
                known.insert(e.file_name().to_string_lossy().into_owned());
            }
        }
        for e in fs::read_dir(&failed)?.filter_map(Result::ok) {
            if let Some((seq, _, _)) = parse_name(&e.file_name().to_string_lossy()) {
                next_seq = next_seq.max(seq + 1);
            }
        }
        Ok(Outbox {
            pending,
            sent,
            failed,
            inner: Mutex::new(Inner { next_seq, known }),
            log: Mutex::new(log),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Writes each item not seen before, durably; returns how many were new.
    pub fn enqueue(&self, items: &[Item]) -> io::Result<usize> {
        let mut inner = self.lock();
        let mut added = 0;
        for item in items {
            let key = file_safe(&item.key);
            if inner.known.contains(&key) {
                continue;
            }
            let json = serde_json::to_vec(item).map_err(io::Error::other)?;
            let path = self.pending.join(format!(
                "{:016}-{}-{key}.json",
                inner.next_seq, item.channel
            ));
            replace_synced(&path, &json)?;
            inner.next_seq += 1;
            inner.known.insert(key);
            added += 1;
        }
        if added > 0 {
            sync_dir(&self.pending)?;
        }
        Ok(added)
    }

    /// Pending items of `channel`, oldest first. A file that cannot be parsed is moved to
    /// `failed/` with a log line.
    pub fn pending(&self, channel: &str) -> io::Result<Vec<Pending>> {
        let mut named: Vec<(u64, PathBuf)> = fs::read_dir(&self.pending)?
            .filter_map(Result::ok)
            .filter_map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                parse_name(&name)
                    .filter(|(_, c, _)| *c == channel)
                    .map(|(seq, _, _)| (seq, e.path()))
            })
            .collect();
        named.sort();
        let mut out = Vec::new();
        for (_, path) in named {
            let parsed = fs::read(&path)
                .map_err(|e| e.to_string())
                .and_then(|b| serde_json::from_slice::<Item>(&b).map_err(|e| e.to_string()));
            match parsed {
                Ok(item) => out.push(Pending { path, item }),
                Err(why) => {
                    tracing::error!(file = %path.display(), %why, "unreadable outbox file moved to failed/");
                    self.move_to(&path, &self.failed)?;
                }
            }
        }
        Ok(out)
    }

    /// Number of notifications waiting, all channels.
    pub fn count_pending(&self) -> usize {
        fs::read_dir(&self.pending)
            .map(|d| {
                d.filter_map(Result::ok)
                    .filter(|e| e.file_name().to_string_lossy().ends_with(".json"))
                    .count()
            })
            .unwrap_or(0)
    }

    /// Records a delivery, first durably in `delivered.log` (one synced append), then: the
    /// file leaves `pending/`, its key stays known in `sent/`. Call it right after the server
    /// accepted the notification, before anything else.
    pub fn delivered(&self, p: &Pending) -> io::Result<()> {
        use std::io::Write;
        let key = file_safe(&p.item.key);
        let mut log = self.log.lock().unwrap_or_else(|e| e.into_inner());
        log.write_all(format!("{key}\n").as_bytes())?;
        log.sync_data()?;
        fs::File::create(self.sent.join(&key))?;
        fs::remove_file(&p.path)?;
        // The log only bridges a crash until the markers and removals are on disk: once they
        // are synced, it starts again (checked every 1 MiB of keys, some 10,000 deliveries).
        if log.metadata()?.len() > LOG_LIMIT {
            sync_dir(&self.sent)?;
            sync_dir(&self.pending)?;
            log.set_len(0)?;
            log.sync_all()?;
        }
        Ok(())
    }

    /// Records a permanent refusal: the file moves to `failed/`.
    pub fn failed(&self, p: &Pending) -> io::Result<()> {
        self.move_to(&p.path, &self.failed)
    }

    fn move_to(&self, path: &Path, dir: &Path) -> io::Result<()> {
        let name = path.file_name().unwrap_or_default();
        fs::rename(path, dir.join(name))?;
        sync_dir(&self.pending)?;
        sync_dir(dir)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// An item of `channel` with key `key`, for tests of the channels.
    pub(crate) fn item(key: &str, channel: &str) -> Item {
        Item {
            key: key.into(),
            channel: channel.into(),
            alert_id: "a".into(),
            state: "firing".into(),
            level: None,
            station: None,
            bureau: "guangzhou".into(),
            bureau_name: "广州市生态环境局".into(),
            to: vec!["duty@gz.example.org".into()],
            subject: "s".into(),
            text: "t".into(),
        }
    }

    #[test]
    fn each_key_is_delivered_once_across_reopens() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let o = Outbox::open(dir.path()).expect("open");
            let items = [
                item("k1", "email"),
                item("k2", "sms"),
                item("k3:x", "email"),
            ];
            assert_eq!(o.enqueue(&items).expect("enqueue"), 3);
            assert_eq!(o.enqueue(&items).expect("enqueue"), 0, "same keys again");
        }
        let o = Outbox::open(dir.path()).expect("reopen");
        assert_eq!(o.count_pending(), 3);
        let email = o.pending("email").expect("pending");
        let keys: Vec<_> = email.iter().map(|p| p.item.key.as_str()).collect();
        assert_eq!(keys, ["k1", "k3:x"], "in enqueue order, email only");
        o.delivered(&email[0]).expect("delivered");
        o.failed(&email[1]).expect("failed");
        assert_eq!(o.count_pending(), 1);
        let o = Outbox::open(dir.path()).expect("reopen");
        assert_eq!(o.enqueue(&[item("k1", "email")]).expect("enqueue"), 0);
        assert!(o.pending("email").expect("pending").is_empty());
        assert_eq!(o.enqueue(&[item("k4", "email")]).expect("enqueue"), 1);
        let names: Vec<_> = o
            .pending("email")
            .expect("pending")
            .iter()
            .map(|p| p.path.file_name().map(|n| n.to_string_lossy().into_owned()))
            .collect();
        assert_eq!(
            names,
            [Some("0000000000000004-email-k4.json".to_string())],
            "numbering continues after the failed file"
        );
    }

    /// Files queued before channels became a seam (`"channel":"sms"`, `<seq>-sms-<key>.json`)
    /// are read as they were; a file of a channel no longer registered keeps its place in
    /// the numbering and is left alone.
    #[test]
    fn files_already_in_an_outbox_are_read_as_before() {
        let dir = tempfile::tempdir().expect("tempdir");
        let pending = dir.path().join("pending");
        std::fs::create_dir_all(&pending).expect("mkdir");
        let old = r#"{"key":"a.fired.20261126t000000z.qingyuan.sms0","channel":"sms","alert_id":"a","state":"firing","bureau":"qingyuan","bureau_name":"清远市生态环境局","to":["+8613800000000"],"text":"t"}"#;
        std::fs::write(
            pending.join("0000000000000007-sms-a.fired.20261126t000000z.qingyuan.sms0.json"),
            old,
        )
        .expect("write");
        std::fs::write(pending.join("0000000000000009-pager-k9.json"), "{}").expect("write");
        let o = Outbox::open(dir.path()).expect("open");
        let sms = o.pending("sms").expect("pending");
        assert_eq!(sms.len(), 1);
        assert_eq!(sms[0].item.channel, "sms");
        assert_eq!(sms[0].item.subject, "", "absent subject defaults to empty");
        assert_eq!(sms[0].item.to, ["+8613800000000"]);
        assert!(o.pending("email").expect("pending").is_empty());
        assert_eq!(
            o.count_pending(),
            2,
            "the unregistered channel's file stays"
        );
        assert_eq!(o.enqueue(&[item("k10", "email")]).expect("enqueue"), 1);
        let written = o.pending("email").expect("pending");
        let name = written[0]
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned());
        assert_eq!(name.as_deref(), Some("0000000000000010-email-k10.json"));
        let json = std::fs::read_to_string(&written[0].path).expect("read");
        assert!(json.contains(r#""channel":"email""#), "{json}");
    }

    /// A kill right after the synced log line: the pending file and the missing marker are
    /// what a crash leaves; reopening completes the record, so the key is not sent again. A
    /// temporary file from a kill mid-enqueue is removed.
    #[test]
    fn a_delivery_logged_before_a_crash_is_completed_on_open() {
        let dir = tempfile::tempdir().expect("tempdir");
        let o = Outbox::open(dir.path()).expect("open");
        o.enqueue(&[item("k1", "email"), item("k2", "email")])
            .expect("enqueue");
        drop(o);
        std::fs::write(dir.path().join("delivered.log"), "k1\n").expect("the log line");
        let torn = dir
            .path()
            .join("pending/0000000000000003-email-k3.json.tmp");
        std::fs::write(&torn, "{").expect("a torn write");
        let o = Outbox::open(dir.path()).expect("reopen");
        let keys: Vec<_> = o
            .pending("email")
            .expect("pending")
            .into_iter()
            .map(|p| p.item.key)
            .collect();
        assert_eq!(keys, ["k2"], "k1 was delivered");
        assert!(dir.path().join("sent/k1").exists());
        assert!(!torn.exists());
        assert_eq!(o.enqueue(&[item("k1", "email")]).expect("enqueue"), 0);
        assert_eq!(
            std::fs::read_to_string(dir.path().join("delivered.log")).expect("log"),
            "",
            "the log starts again once its records are complete"
        );
        let p = o.pending("email").expect("pending").remove(0);
        o.delivered(&p).expect("delivered");
        assert_eq!(
            std::fs::read_to_string(dir.path().join("delivered.log")).expect("log"),
            "k2\n"
        );
        assert_eq!(o.count_pending(), 0);
    }
}
