//! The dead-letter file: every refused payload and every point the database rejected, one JSON
//! object per line, so an operator can inspect and replay them.
//!
//! Fed by the screen stage (refusals) and the store (rejected points); feeds nothing but the
//! operator. Records are `{"time", "topic", "reason", "index"?, "payload"}` with the payload in
//! base64, because a refused payload may not be valid UTF-8. Each record is appended with one
//! `write` call under a lock, so records from two stages never interleave. The append is a
//! short blocking write on an async worker: records are small and rare, and a dedicated task
//! would add a channel that must itself be bounded.

use base64::Engine;
use chrono::{SecondsFormat, Utc};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

pub struct DeadLetter {
    path: PathBuf,
    file: Mutex<File>,
}

impl DeadLetter {
    /// Opens (creating folder and file as needed) the file for appending.
    pub fn open(path: &Path) -> std::io::Result<DeadLetter> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        // Readable by the service alone: a refused payload may hold what it should not show
        // (an HJ 212 frame carries its logger's password).
        use std::os::unix::fs::OpenOptionsExt;
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(path)?;
        Ok(DeadLetter {
            path: path.to_path_buf(),
            file: Mutex::new(file),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends one record. A failure to write is logged, not returned: a full disk must not
    /// stop good readings from flowing, and the refusal is still counted and logged.
    pub fn record(&self, topic: &str, reason: &str, index: Option<usize>, payload: &[u8]) {
        let mut record = serde_json::json!({
            "time": Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true),
            "topic": topic,
            "reason": reason,
            "payload": base64::engine::general_purpose::STANDARD.encode(payload),
        });
        if let Some(i) = index {
            record["index"] = i.into();
        }
        let mut line = record.to_string();
        line.push('\n');
        let result = match self.file.lock() {
            Ok(mut f) => f.write_all(line.as_bytes()),
            Err(poisoned) => poisoned.into_inner().write_all(line.as_bytes()),
        };
        if let Err(e) = result {
            tracing::error!(path = %self.path.display(), error = %e, "cannot append to the dead-letter file");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_are_json_lines_with_base64_payload() {
        let dir = tempfile::tempdir().unwrap();
        let dl = DeadLetter::open(&dir.path().join("sub/dl.jsonl")).unwrap();
        dl.record("wq/bei/x/reading", "not JSON", None, b"\xff\x00garbage");
        dl.record("wq/bei/x/reading", "bad value", Some(2), b"{}");
        let text = std::fs::read_to_string(dl.path()).unwrap();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0]["reason"], "not JSON");
        assert_eq!(lines[0]["payload"], "/wBnYXJiYWdl");
        assert!(lines[0].get("index").is_none());
        assert_eq!(lines[1]["index"], 2);
    }
}
