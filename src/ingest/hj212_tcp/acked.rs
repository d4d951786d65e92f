//! The frames this listener has acknowledged, kept on disk so that a frame a logger sends again
//! after its acknowledgement was lost is acknowledged again without being stored twice.
//!
//! Why: a logger keeps every frame it has no acknowledgement for and sends it again (补发).
//! An acknowledgement written just before riverwatch is killed, or on a connection the logger
//! then resets, can be lost in the logger's receive buffer: the reading is stored, but the
//! logger sends it again. Without this record that second copy would be written again —
//! harmless in InfluxDB (the same point), a second sample in engines that keep both.
//!
//! Fed by the connection writers ([`Acked::record`], synced before the acknowledgements are
//! written, so a frame whose acknowledgement left is always on record) and read by the
//! connection readers ([`Acked::contains`]) before a frame goes on. A frame is known by its
//! MN, command, QN and CRC: the same bytes sent again. Entries are kept for [`KEEP`]; the file
//! (`<[spool] dir>/hj212_tcp_acked.log`, one `<unix seconds> <key>` line each) is compacted
//! when opened and whenever it holds twice the live entries.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, Write};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

/// How long an acknowledged frame is remembered: loggers resend within minutes of
/// reconnecting, and a backlog of days is frames that were never acknowledged.
pub const KEEP: i64 = 2 * 24 * 3600;

/// The key of a frame: `MN CN QN CRC` (QN `-` when absent).
pub fn key(frame: &crate::domain::hj212::Frame, crc: &str) -> String {
    format!(
        "{} {} {} {}",
        frame.mn,
        frame.cn,
        frame.qn.as_deref().unwrap_or("-"),
        crc.to_ascii_uppercase()
    )
}

/// The record of acknowledged frames.
#[derive(Debug)]
pub struct Acked {
    path: PathBuf,
    inner: Mutex<Inner>,
}

#[derive(Debug)]
struct Inner {
    file: File,
    /// Key → when it was recorded (unix seconds).
    keys: HashMap<String, i64>,
    /// Lines in the file, live or expired.
    lines: usize,
    /// When `lines` reaches this, expired keys are dropped (and the file rewritten if it is
    /// mostly expired lines): every 1,024 records.
    next_check: usize,
}

impl Acked {
    /// Opens (or creates) the record in `dir`, dropping entries older than [`KEEP`] at `now`
    /// (unix seconds).
    ///
    /// # Errors
    /// The file cannot be read or written.
    pub fn open(dir: &Path, now: i64) -> io::Result<Acked> {
        std::fs::create_dir_all(dir)?;
        let path = dir.join("hj212_tcp_acked.log");
        let mut keys = HashMap::new();
        if let Ok(f) = File::open(&path) {
            for line in io::BufReader::new(f).lines() {
                let line = line?;
                // A torn last line (a crash mid-append) has no key or no time: skipped.
                let Some((at, key)) = line.split_once(' ') else {
                    continue;
                };
                if let Ok(at) = at.parse::<i64>() {
                    if now - at <= KEEP {
                        keys.insert(key.to_string(), at);
                    }
                }
            }
        }
        let file = rewrite(&path, &keys)?;
        let lines = keys.len();
        Ok(Acked {
            path,
            inner: Mutex::new(Inner {
                file,
                keys,
                lines,
                next_check: lines + 1024,
            }),
        })
    }

    fn inner(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether the frame `key` was acknowledged within [`KEEP`] of `now`.
    pub fn contains(&self, key: &str, now: i64) -> bool {
        self.inner()
            .keys
            .get(key)
            .is_some_and(|&at| now - at <= KEEP)
    }

    /// Records `keys` at `now` and syncs the file. Blocking: call it off the runtime's
    /// worker.
    ///
    /// # Errors
    /// The file cannot be written or synced; the caller then must not acknowledge.
    pub fn record(&self, keys: &[String], now: i64) -> io::Result<()> {
        if keys.is_empty() {
            return Ok(());
        }
        let mut inner = self.inner();
        let mut text = String::new();
        for key in keys {
            text.push_str(&format!("{now} {key}\n"));
            inner.keys.insert(key.clone(), now);
        }
        inner.file.write_all(text.as_bytes())?;
        inner.file.sync_data()?;
        inner.lines += keys.len();
        if inner.lines >= inner.next_check {
            inner.keys.retain(|_, at| now - *at <= KEEP);
            if inner.lines > 2 * inner.keys.len().max(1024) {
                inner.file = rewrite(&self.path, &inner.keys)?;
                inner.lines = inner.keys.len();
            }
            inner.next_check = inner.lines + 1024;
        }
        Ok(())
    }
}

/// Writes `keys` to `path` atomically and returns the file opened for appending.
fn rewrite(path: &Path, keys: &HashMap<String, i64>) -> io::Result<File> {
    let mut text = String::new();
    for (key, at) in keys {
        text.push_str(&format!("{at} {key}\n"));
    }
    crate::state::write_atomic(path, text.as_bytes())?;
    OpenOptions::new().append(true).open(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acknowledged_frames_are_remembered_across_a_restart_and_forgotten_after_keep() {
        let dir = tempfile::tempdir().unwrap();
        let acked = Acked::open(dir.path(), 1_000).unwrap();
        assert!(!acked.contains("MN 2011 QN 1C80", 1_000));
        acked
            .record(
                &["MN 2011 QN 1C80".into(), "MN 2061 QN2 0140".into()],
                1_000,
            )
            .unwrap();
        assert!(acked.contains("MN 2011 QN 1C80", 1_001));
        drop(acked);
        // A torn line from a crash mid-append is skipped.
        let path = dir.path().join("hj212_tcp_acked.log");
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(b"1000").unwrap();
        let acked = Acked::open(dir.path(), 1_000 + KEEP).unwrap();
        assert!(acked.contains("MN 2061 QN2 0140", 1_000 + KEEP));
        assert!(!acked.contains("MN 2061 QN2 0140", 1_001 + KEEP));
        let acked = Acked::open(dir.path(), 1_001 + KEEP).unwrap();
        assert!(!acked.contains("MN 2011 QN 1C80", 1_001 + KEEP));
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "");
    }

    #[test]
    fn the_file_is_compacted_as_entries_expire() {
        let dir = tempfile::tempdir().unwrap();
        let acked = Acked::open(dir.path(), 0).unwrap();
        // One frame every 100 s: about 1,728 are live at a time.
        for i in 0..5000 {
            acked
                .record(&[format!("MN 2011 {i} 0000")], i * 100)
                .unwrap();
        }
        let lines = std::fs::read_to_string(dir.path().join("hj212_tcp_acked.log"))
            .unwrap()
            .lines()
            .count();
        assert!(lines < 5000, "compacted: {lines} lines");
        assert!(!acked.contains("MN 2011 0 0000", 499_900));
        assert!(acked.contains("MN 2011 4999 0000", 499_900));
    }
}
