//! The spool: an on-disk write-ahead queue of line-protocol batches that could not be written
//! to InfluxDB, so their MQTT messages can be acknowledged without waiting for the database.
//!
//! Fed by the store's batcher ([`Spool::append`], synced to disk before the acknowledgements
//! are released); drained by the store's drainer in append order ([`Spool::peek`], then
//! [`Spool::commit`] once the batch is written). Files live under `<[spool] dir>/wal/`.
//!
//! Format: numbered segment files `00000000000000000001.seg`, each a sequence of records
//! `[length u32 LE][CRC-32 u32 LE][body]`. A segment is only ever appended to, and a new one is
//! started at each start and after [`SEGMENT_BYTES`], so a record once synced is never
//! touched again; a fully drained segment is deleted. A crash during an append leaves at most
//! a torn last record in the newest segment: its length runs past the end of the file or its
//! CRC does not match, and the reader logs it and skips to the next segment. Its messages
//! were not acknowledged (the sync had not returned), so the broker redelivers them.
//!
//! Why a hand-made log rather than an embedded database: the spool needs exactly append,
//! sync, read in order and delete whole files; a segmented log does that with one `fsync` per
//! batch and no compaction, and its crash behaviour is visible in forty lines. The drain
//! position is kept in memory only: after a crash the oldest segment is drained again from
//! its start, which rewrites points InfluxDB already holds (same series and time overwrite).

use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// A segment is closed once it holds this many bytes.
pub const SEGMENT_BYTES: u64 = 16 << 20;

const HEADER: u64 = 8;

#[derive(Debug)]
struct Segment {
    number: u64,
    /// Bytes written (for the active segment) or found (for older ones).
    size: u64,
}

#[derive(Debug)]
struct Inner {
    /// Oldest first; the last one is the active segment when `active` is set.
    segments: VecDeque<Segment>,
    active: Option<File>,
    /// Bytes of all segments still on disk.
    bytes: u64,
    /// Records appended and not yet drained.
    records: u64,
    /// Offset of the next record to drain in the oldest segment.
    read_offset: u64,
    next_number: u64,
}

/// One record read for draining.
#[derive(Debug)]
pub struct Record {
    pub body: Vec<u8>,
    segment: u64,
    end: u64,
}

/// How full the spool is, for metrics and readiness.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Depth {
    pub bytes: u64,
    pub records: u64,
    pub max_bytes: u64,
}

#[derive(Debug)]
pub struct Spool {
    dir: PathBuf,
    max_bytes: u64,
    inner: Mutex<Inner>,
}

fn segment_path(dir: &Path, number: u64) -> PathBuf {
    dir.join(format!("{number:020}.seg"))
}

/// A torn or corrupt record, at a byte offset of its segment; the segment's rest is skipped.
#[derive(Debug, thiserror::Error)]
enum TornRecord {
    #[error("a record header is cut at byte {0}")]
    CutHeader(u64),
    #[error("cannot read at byte {offset}: {source}")]
    Unreadable { offset: u64, source: io::Error },
    #[error("the record at byte {offset} says {len} bytes, but the file ends first")]
    CutBody { offset: u64, len: u64 },
    #[error("the record at byte {0} fails its CRC")]
    Crc(u64),
}

/// Reads the record at `offset` of `file` (`size` bytes long). `Ok(None)` at a clean end.
fn read_record(file: &mut File, offset: u64, size: u64) -> Result<Option<Vec<u8>>, TornRecord> {
    if offset >= size {
        return Ok(None);
    }
    if offset + HEADER > size {
        return Err(TornRecord::CutHeader(offset));
    }
    let unreadable = |source| TornRecord::Unreadable { offset, source };
    let mut header = [0u8; HEADER as usize];
    file.seek(SeekFrom::Start(offset))
        .and_then(|_| file.read_exact(&mut header))
        .map_err(unreadable)?;
    let len = u64::from(u32::from_le_bytes([
        header[0], header[1], header[2], header[3],
    ]));
    let crc = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
    if offset + HEADER + len > size {
        return Err(TornRecord::CutBody { offset, len });
    }
    let mut body = vec![0u8; len as usize];
    file.read_exact(&mut body).map_err(unreadable)?;
    if crc32fast::hash(&body) != crc {
        return Err(TornRecord::Crc(offset));
    }
    Ok(Some(body))
}

impl Spool {
    /// Opens (creating) the spool under `dir`, counting what earlier runs left. Torn records
    /// found now are logged here and skipped when drained.
    pub fn open(dir: &Path, max_bytes: u64) -> io::Result<Spool> {
        fs::create_dir_all(dir)?;
        let mut numbers: Vec<u64> = fs::read_dir(dir)?
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let name = e.file_name().into_string().ok()?;
                name.strip_suffix(".seg")?.parse().ok()
            })
            .collect();
        numbers.sort_unstable();
        let mut segments = VecDeque::new();
        let (mut bytes, mut records) = (0, 0);
        for number in numbers {
            let path = segment_path(dir, number);
            let mut file = File::open(&path)?;
            let size = file.metadata()?.len();
            let mut offset = 0;
            loop {
                match read_record(&mut file, offset, size) {
                    Ok(Some(body)) => {
                        records += 1;
                        offset += HEADER + body.len() as u64;
                    }
                    Ok(None) => break,
                    Err(why) => {
                        tracing::warn!(segment = %path.display(), %why, "spool: torn record found; it and the rest of its segment are skipped (its messages were never acknowledged)");
                        break;
                    }
                }
            }
            bytes += size;
            segments.push_back(Segment { number, size });
        }
        if records > 0 {
            tracing::info!(
                records,
                bytes,
                "spool: batches from an earlier run will be drained"
            );
        }
        let next_number = segments.back().map_or(1, |s| s.number + 1);
        Ok(Spool {
            dir: dir.to_path_buf(),
            max_bytes,
            inner: Mutex::new(Inner {
                segments,
                active: None,
                bytes,
                records,
                read_offset: 0,
                next_number,
            }),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave a half-written record in memory: the
        // state is only updated after each file operation succeeded.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn depth(&self) -> Depth {
        let inner = self.lock();
        Depth {
            bytes: inner.bytes,
            records: inner.records,
            max_bytes: self.max_bytes,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.lock().records == 0
    }

    /// Appends one batch and syncs it to disk. `Ok(false)` when it would exceed the size
    /// bound: the caller keeps the batch and its messages unacknowledged.
    pub fn append(&self, body: &[u8]) -> io::Result<bool> {
        let mut inner = self.lock();
        let need = HEADER + body.len() as u64;
        if inner.bytes + need > self.max_bytes {
            return Ok(false);
        }
        let full = inner
            .segments
            .back()
            .is_some_and(|s| s.size >= SEGMENT_BYTES);
        if inner.active.is_none() || full {
            let number = inner.next_number;
            let file = OpenOptions::new()
                .create_new(true)
                .append(true)
                .open(segment_path(&self.dir, number))?;
            // The new file's name must survive a crash too.
            File::open(&self.dir)?.sync_all()?;
            inner.next_number += 1;
            inner.segments.push_back(Segment { number, size: 0 });
            inner.active = Some(file);
        }
        let len = u32::try_from(body.len())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "batch over 4 GiB"))?;
        let mut record = Vec::with_capacity(need as usize);
        record.extend_from_slice(&len.to_le_bytes());
        record.extend_from_slice(&crc32fast::hash(body).to_le_bytes());
        record.extend_from_slice(body);
        let written = match inner.active.as_mut() {
            Some(file) => file.write_all(&record).and_then(|_| file.sync_data()),
            None => Err(io::Error::other("no active segment")),
        };
        if let Err(e) = written {
            // The segment may now end in a partial record: close it, so the next append
            // starts a clean one and the reader skips the tear.
            inner.active = None;
            return Err(e);
        }
        if let Some(s) = inner.segments.back_mut() {
            s.size += need;
        }
        inner.bytes += need;
        inner.records += 1;
        Ok(true)
    }

    /// The oldest record not yet drained, without consuming it. Drained and torn segments
    /// are deleted on the way.
    pub fn peek(&self) -> io::Result<Option<Record>> {
        let mut inner = self.lock();
        loop {
            let Some(seg) = inner.segments.front() else {
                return Ok(None);
            };
            let (number, size) = (seg.number, seg.size);
            let is_active = inner.active.is_some() && inner.segments.len() == 1;
            let path = segment_path(&self.dir, number);
            let offset = inner.read_offset;
            let mut file = File::open(&path)?;
            match read_record(&mut file, offset, size) {
                Ok(Some(body)) => {
                    let end = offset + HEADER + body.len() as u64;
                    return Ok(Some(Record {
                        body,
                        segment: number,
                        end,
                    }));
                }
                Ok(None) if is_active => {
                    // Everything appended so far is drained: retire the active segment so
                    // the disk is empty between outages.
                    inner.active = None;
                }
                Ok(None) => {}
                Err(why) => {
                    tracing::warn!(segment = %path.display(), %why, "spool: skipping a torn record and the rest of its segment");
                    if is_active {
                        inner.active = None;
                    }
                }
            }
            fs::remove_file(&path)?;
            inner.segments.pop_front();
            inner.bytes -= size;
            inner.read_offset = 0;
        }
    }

    /// Marks `record` drained (written to the database).
    pub fn commit(&self, record: &Record) {
        let mut inner = self.lock();
        if inner
            .segments
            .front()
            .is_some_and(|s| s.number == record.segment)
        {
            inner.read_offset = record.end;
            inner.records = inner.records.saturating_sub(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drain(spool: &Spool) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        while let Some(r) = spool.peek().expect("peek") {
            out.push(r.body.clone());
            spool.commit(&r);
        }
        out
    }

    #[test]
    fn drains_in_append_order_across_restarts_and_empties_the_disk() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let s = Spool::open(dir.path(), 1 << 20).expect("open");
            assert!(s.append(b"one\n").expect("append"));
            assert!(s.append(b"two\n").expect("append"));
        }
        let s = Spool::open(dir.path(), 1 << 20).expect("reopen");
        assert!(s.append(b"three\n").expect("append"));
        assert_eq!(s.depth().records, 3);
        assert_eq!(drain(&s), [&b"one\n"[..], b"two\n", b"three\n"]);
        assert_eq!(s.depth().bytes, 0);
        assert_eq!(fs::read_dir(dir.path()).expect("dir").count(), 0);
        // Appending after a full drain starts a fresh segment.
        assert!(s.append(b"four\n").expect("append"));
        assert_eq!(drain(&s), [b"four\n"]);
    }

    #[test]
    fn refuses_beyond_its_bound_and_takes_again_once_drained() {
        let dir = tempfile::tempdir().expect("tempdir");
        let s = Spool::open(dir.path(), 40).expect("open");
        assert!(s.append(&[b'x'; 20]).expect("append"));
        assert!(!s.append(&[b'y'; 20]).expect("append"), "28 + 28 > 40");
        assert_eq!(drain(&s).len(), 1);
        assert!(s.append(&[b'y'; 20]).expect("append"));
    }

    #[test]
    fn a_torn_last_record_is_skipped_and_older_ones_survive() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let s = Spool::open(dir.path(), 1 << 20).expect("open");
            assert!(s.append(b"kept\n").expect("append"));
            assert!(s.append(b"torn away\n").expect("append"));
        }
        let seg = segment_path(dir.path(), 1);
        let len = fs::metadata(&seg).expect("meta").len();
        // A crash in the middle of the second record's body.
        OpenOptions::new()
            .write(true)
            .open(&seg)
            .and_then(|f| f.set_len(len - 4))
            .expect("truncate");
        let s = Spool::open(dir.path(), 1 << 20).expect("reopen");
        assert!(s.append(b"after\n").expect("append"));
        assert_eq!(drain(&s), [&b"kept\n"[..], b"after\n"]);
    }

    #[test]
    fn a_corrupt_record_fails_its_crc() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let s = Spool::open(dir.path(), 1 << 20).expect("open");
            assert!(s.append(b"abcdef\n").expect("append"));
        }
        let seg = segment_path(dir.path(), 1);
        let mut bytes = fs::read(&seg).expect("read");
        bytes[10] ^= 0xff;
        fs::write(&seg, bytes).expect("write");
        let s = Spool::open(dir.path(), 1 << 20).expect("reopen");
        assert!(drain(&s).is_empty());
    }
}
