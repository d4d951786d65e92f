//! The dead-letter file: every refused payload and every point the database rejected, one JSON
//! object per line, so an operator can inspect and replay them.
//!
//! Fed by the screen stage (refusals), the sources that refuse input themselves, the store
//! (rejected points) and the notification workers (permanent refusals); feeds nothing but the
//! operator, and the `riverwatch_dead_letters_*` counters of [`Metrics`].
//!
//! Record: `{"time", "topic", "reason", "index"?, "payload", "payload_len"?,
//! "payload_sha256"?, "topic_len"?}`. The payload is in base64, because a refused payload may
//! not be valid UTF-8. A payload longer than [`PAYLOAD_KEPT`] (1 KiB) is kept as its first KiB,
//! with `payload_len` (its whole length in bytes) and `payload_sha256` (lowercase hex SHA-256
//! of the whole payload), so a 3 MB refusal costs a line of about 2 KiB and can still be
//! matched against the sender's copy; a topic longer than [`TOPIC_KEPT`] bytes is cut at a
//! character boundary, with `topic_len`. The reason is always kept whole: it is ours, and it is
//! what the operator reads. With a reason under 1.5 KiB as written in JSON, a line is under
//! 4 KiB.
//!
//! Bound: the file rotates when the next line would take it past `[spool]
//! dead_letter_max_size` (64 MiB by default): `deadletter.jsonl` becomes `deadletter.jsonl.1`,
//! `.1` becomes `.2`, and so on; [`GENERATIONS`] old files are kept, the oldest dropped, so
//! dead letters hold at most (1 + [`GENERATIONS`]) × the limit on disk. Every file is created
//! readable by the service alone (mode 0600; a rename keeps the mode).
//!
//! Each record is appended with one `write` call under a lock, so records from two stages never
//! interleave. The append (and a rotation, two renames) is a short blocking call on an async
//! worker: records are small and rare, and a dedicated task would add a channel that must
//! itself be bounded.

use crate::telemetry::Metrics;
use base64::Engine;
use chrono::{SecondsFormat, Utc};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// Bytes of a payload kept in a record; a longer payload is summarised by length and SHA-256.
pub const PAYLOAD_KEPT: usize = 1024;

/// Bytes of a topic (or other origin) kept in a record: SPEC §3 topics are under 100 bytes, but
/// MQTT allows 65,535-byte ones, and a topic refused as malformed comes from the sender.
pub const TOPIC_KEPT: usize = 128;

/// Rotated files kept beside the live one: `deadletter.jsonl.1` (newest) to `.3` (oldest).
pub const GENERATIONS: u32 = 3;

/// The default of `[spool] dead_letter_max_size`: 64 MiB, a few hundred thousand records.
pub const DEFAULT_MAX_SIZE: u64 = 64 << 20;

/// The smallest `[spool] dead_letter_max_size` accepted: one record of the largest ordinary
/// size fits.
pub const MIN_MAX_SIZE: u64 = 4 << 10;

/// The live file and its size in bytes, under the lock.
struct Live {
    file: File,
    size: u64,
}

pub struct DeadLetter {
    path: PathBuf,
    /// The size at which the live file rotates, in bytes.
    max_size: u64,
    file: Mutex<Live>,
    /// Where records, bytes, summarised payloads, rotations and failed writes are counted.
    metrics: Arc<Metrics>,
}

impl DeadLetter {
    /// Opens (creating folder and file as needed) the file for appending, with the default
    /// limit ([`DEFAULT_MAX_SIZE`]) and counters of its own (for tests and tools that read
    /// no metrics).
    pub fn open(path: &Path) -> std::io::Result<DeadLetter> {
        DeadLetter::open_with(path, DEFAULT_MAX_SIZE, Arc::new(Metrics::default()))
    }

    /// Opens the file for appending; it rotates past `max_size` bytes, and `metrics` counts
    /// what is written.
    ///
    /// # Errors
    /// The folder cannot be created or the file cannot be opened or read.
    pub fn open_with(
        path: &Path,
        max_size: u64,
        metrics: Arc<Metrics>,
    ) -> std::io::Result<DeadLetter> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let file = open_append(path)?;
        let size = file.metadata()?.len();
        Ok(DeadLetter {
            path: path.to_path_buf(),
            max_size,
            file: Mutex::new(Live { file, size }),
            metrics,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends one record, rotating first when it would take the file past its limit. A
    /// failure to write is logged and counted, not returned: a full disk must not stop good
    /// readings from flowing, and the refusal is still counted and logged.
    pub fn record(&self, topic: &str, reason: &str, index: Option<usize>, payload: &[u8]) {
        let time = Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true);
        let line = line(&time, topic, reason, index, payload);
        let mut live = match self.file.lock() {
            Ok(live) => live,
            Err(poisoned) => poisoned.into_inner(),
        };
        let len = line.len() as u64;
        // An empty file takes any line, so a record larger than the limit is still written.
        if live.size > 0 && live.size + len > self.max_size {
            match rotate(&self.path) {
                Ok(file) => {
                    *live = Live { file, size: 0 };
                    Metrics::add(&self.metrics.dead_letter_rotations, 1);
                    tracing::info!(path = %self.path.display(), limit = self.max_size, "dead-letter file rotated");
                }
                Err(e) => {
                    // Not written, so that the file stays bounded; the refusal itself is
                    // already logged and counted by its caller.
                    Metrics::add(&self.metrics.dead_letters_failed, 1);
                    tracing::error!(path = %self.path.display(), error = %e, "cannot rotate the dead-letter file; the record is not written");
                    return;
                }
            }
        }
        match live.file.write_all(line.as_bytes()) {
            Ok(()) => {
                live.size += len;
                Metrics::add(&self.metrics.dead_letters_written, 1);
                Metrics::add(&self.metrics.dead_letter_bytes, len);
                if payload.len() > PAYLOAD_KEPT {
                    Metrics::add(&self.metrics.dead_letters_truncated, 1);
                }
            }
            Err(e) => {
                Metrics::add(&self.metrics.dead_letters_failed, 1);
                tracing::error!(path = %self.path.display(), error = %e, "cannot append to the dead-letter file");
            }
        }
    }
}

/// Opens `path` for appending, created with mode 0600: a refused payload may hold what it
/// should not show (an HJ 212 frame carries its logger's password).
fn open_append(path: &Path) -> std::io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)
}

/// `path` with `.n` appended (`deadletter.jsonl.2`).
fn generation(path: &Path, n: u32) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(format!(".{n}"));
    PathBuf::from(name)
}

/// Shifts the rotated files up by one (the oldest is overwritten), moves the live file to
/// `.1` and opens a new, empty one.
fn rotate(path: &Path) -> std::io::Result<File> {
    for n in (1..GENERATIONS).rev() {
        match std::fs::rename(generation(path, n), generation(path, n + 1)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
    }
    std::fs::rename(path, generation(path, 1))?;
    open_append(path)
}

/// One record as a JSON line (with its newline); see the module docs for the fields.
pub fn line(time: &str, topic: &str, reason: &str, index: Option<usize>, payload: &[u8]) -> String {
    let kept_topic = prefix_at_char(topic, TOPIC_KEPT);
    let kept = &payload[..payload.len().min(PAYLOAD_KEPT)];
    let mut record = serde_json::json!({
        "time": time,
        "topic": kept_topic,
        "reason": reason,
        "payload": base64::engine::general_purpose::STANDARD.encode(kept),
    });
    if let Some(i) = index {
        record["index"] = i.into();
    }
    if kept.len() < payload.len() {
        record["payload_len"] = payload.len().into();
        record["payload_sha256"] = sha256_hex(payload).into();
    }
    if kept_topic.len() < topic.len() {
        record["topic_len"] = topic.len().into();
    }
    let mut line = record.to_string();
    line.push('\n');
    line
}

/// The longest prefix of `text` of at most `max` bytes that ends on a character boundary.
fn prefix_at_char(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// Lowercase hex SHA-256 of `bytes` (FIPS 180-4).
fn sha256_hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    let digest = ring::digest::digest(&ring::digest::SHA256, bytes);
    let mut out = String::with_capacity(64);
    for b in digest.as_ref() {
        let _ = write!(out, "{b:02x}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn parse(text: &str) -> Vec<serde_json::Value> {
        text.lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    #[test]
    fn records_are_json_lines_with_base64_payload() {
        let dir = tempfile::tempdir().unwrap();
        let dl = DeadLetter::open(&dir.path().join("sub/dl.jsonl")).unwrap();
        dl.record("wq/bei/x/reading", "not JSON", None, b"\xff\x00garbage");
        dl.record("wq/bei/x/reading", "bad value", Some(2), b"{}");
        let lines = parse(&std::fs::read_to_string(dl.path()).unwrap());
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0]["reason"], "not JSON");
        assert_eq!(lines[0]["payload"], "/wBnYXJiYWdl");
        assert!(lines[0].get("index").is_none());
        assert!(lines[0].get("payload_len").is_none());
        assert!(lines[0].get("payload_sha256").is_none());
        assert_eq!(lines[1]["index"], 2);
    }

    const LONG_TOPIC: &str = concat!(
        "wq/0123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890",
        "123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456/x",
    );

    /// Payload and topic lengths around their limits: what is kept, and when the summary
    /// fields appear.
    #[test]
    fn long_payloads_and_topics_are_cut_and_summarised() {
        // (payload bytes, topic, kept payload bytes, payload_len, kept topic bytes, topic_len)
        type Row<'a> = (usize, &'a str, usize, Option<usize>, usize, Option<usize>);
        let table: &[Row] = &[
            (0, "t", 0, None, 1, None),
            (1024, "t", 1024, None, 1, None),
            (1025, "t", 1024, Some(1025), 1, None),
            (3_000_000, "t", 1024, Some(3_000_000), 1, None),
            (0, LONG_TOPIC, 0, None, 128, Some(192)),
        ];
        for &(n, topic, kept, len, kept_topic, topic_len) in table {
            let payload: Vec<u8> = (0..n).map(|i| (i % 251) as u8).collect();
            let v: serde_json::Value = serde_json::from_str(&line(
                "2026-11-29T00:00:00.000Z",
                topic,
                "r",
                None,
                &payload,
            ))
            .unwrap();
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(v["payload"].as_str().unwrap())
                .unwrap();
            assert_eq!(decoded, payload[..kept], "{n}");
            assert_eq!(v["payload_len"].as_u64(), len.map(|l| l as u64), "{n}");
            assert_eq!(v["payload_sha256"].is_string(), len.is_some(), "{n}");
            assert_eq!(v["topic"].as_str().unwrap().len(), kept_topic);
            assert_eq!(v["topic_len"].as_u64(), topic_len.map(|l| l as u64));
        }
        // A topic of 300 bytes of three-byte characters is cut at a boundary below 128 bytes.
        let topic = "水".repeat(100);
        let v: serde_json::Value =
            serde_json::from_str(&line("t", &topic, "r", None, b"")).unwrap();
        assert_eq!(v["topic"].as_str().unwrap(), "水".repeat(42));
        assert_eq!(v["topic_len"], 300);
    }

    /// The SHA-256 of a known input (FIPS 180-2 appendix B.1, "abc").
    #[test]
    fn the_digest_is_sha256() {
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Any payload and topic, with any reason under 1 KiB: the line is one JSON object
        /// under 4 KiB, the reason is whole, the kept payload is the payload's start, and
        /// length and SHA-256 describe the whole payload.
        #[test]
        fn any_payload_makes_a_short_line_with_the_whole_reason(
            payload in prop::collection::vec(any::<u8>(), 0..4096),
            filler in 0usize..3_000_000,
            topic in ".{0,400}",
            reason in ".{0,250}",
            index in prop::option::of(any::<usize>()),
        ) {
            // Long payloads without generating millions of random bytes: the random head
            // followed by `filler` bytes.
            let mut payload = payload;
            payload.resize(payload.len() + filler, b'x');
            let text = line("2026-11-29T00:00:00.000Z", &topic, &reason, index, &payload);
            prop_assert!(text.len() < 4096, "{} bytes", text.len());
            prop_assert!(text.ends_with('\n') && text.matches('\n').count() == 1);
            let v: serde_json::Value = serde_json::from_str(&text).unwrap();
            prop_assert_eq!(v["reason"].as_str().unwrap(), reason.as_str());
            let kept = base64::engine::general_purpose::STANDARD
                .decode(v["payload"].as_str().unwrap())
                .unwrap();
            prop_assert!(payload.starts_with(&kept));
            if payload.len() > PAYLOAD_KEPT {
                prop_assert_eq!(kept.len(), PAYLOAD_KEPT);
                prop_assert_eq!(v["payload_len"].as_u64(), Some(payload.len() as u64));
                let sha = ring::digest::digest(&ring::digest::SHA256, &payload);
                let hex: String = sha.as_ref().iter().map(|b| format!("{b:02x}")).collect();
                prop_assert_eq!(v["payload_sha256"].as_str().unwrap(), hex.as_str());
            } else {
                prop_assert_eq!(kept, payload);
                prop_assert!(v.get("payload_len").is_none());
            }
            prop_assert!(topic.starts_with(v["topic"].as_str().unwrap()));
        }
    }

    /// A small limit: the live file never passes it, the rotated files are `.1` to `.3`, the
    /// oldest dropped, every file mode 0600, and the counters say what happened.
    #[test]
    fn the_file_rotates_at_its_limit_and_keeps_three_generations() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("deadletter.jsonl");
        let metrics = Arc::new(Metrics::default());
        let limit = 4096;
        let dl = DeadLetter::open_with(&path, limit, Arc::clone(&metrics)).unwrap();
        let one = line(
            "2026-11-29T00:00:00.000Z",
            "wq/bei/x/reading",
            "r 0",
            None,
            &[7; 600],
        );
        let per_file = (limit as usize) / one.len();
        let records = per_file * 6;
        for i in 0..records {
            dl.record("wq/bei/x/reading", &format!("r {i}"), None, &[7; 600]);
            let size = std::fs::metadata(&path).unwrap().len();
            assert!(size <= limit, "{size} bytes after record {i}");
        }
        let names: Vec<String> = {
            let mut n: Vec<String> = std::fs::read_dir(dir.path())
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
            n.sort();
            n
        };
        assert_eq!(
            names,
            [
                "deadletter.jsonl",
                "deadletter.jsonl.1",
                "deadletter.jsonl.2",
                "deadletter.jsonl.3"
            ]
        );
        // Newest records in the live file, older ones in .1, .2, .3, in order, none repeated.
        let mut reasons = Vec::new();
        for name in names.iter().skip(1).rev().chain(names.iter().take(1)) {
            let p = dir.path().join(name);
            assert_eq!(
                std::fs::metadata(&p).unwrap().permissions().mode() & 0o777,
                0o600,
                "{name}"
            );
            for v in parse(&std::fs::read_to_string(&p).unwrap()) {
                reasons.push(v["reason"].as_str().unwrap().to_string());
            }
        }
        let expected: Vec<String> = (records - reasons.len()..records)
            .map(|i| format!("r {i}"))
            .collect();
        assert_eq!(reasons, expected);
        assert_eq!(reasons.len(), 4 * per_file);
        assert_eq!(Metrics::get(&metrics.dead_letter_rotations), 5);
        assert_eq!(Metrics::get(&metrics.dead_letters_written), records as u64);
        assert_eq!(Metrics::get(&metrics.dead_letters_failed), 0);
    }

    /// A reopened file continues from its size: the limit holds across restarts.
    #[test]
    fn a_reopened_file_counts_what_it_holds() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("deadletter.jsonl");
        let metrics = Arc::new(Metrics::default());
        {
            let dl = DeadLetter::open_with(&path, 4096, Arc::clone(&metrics)).unwrap();
            for _ in 0..5 {
                dl.record("t", "r", None, &[1; 500]);
            }
        }
        let dl = DeadLetter::open_with(&path, 4096, Arc::clone(&metrics)).unwrap();
        for _ in 0..5 {
            dl.record("t", "r", None, &[1; 500]);
        }
        assert!(std::fs::metadata(&path).unwrap().len() <= 4096);
        assert_eq!(Metrics::get(&metrics.dead_letter_rotations), 1);
    }
}
