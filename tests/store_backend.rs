//! The store backend seam, proven from outside the crate: a test-only backend that records the
//! bodies it is given (and fails on cue) sits behind `Store` custody in place of InfluxDB, and
//! each batch ends up written, split down to its refused line and dead-lettered, or spooled and
//! written back by the drainer — the same custody the daemon gives InfluxDB.

use bytes::Bytes;
use riverwatch::deadletter::DeadLetter;
use riverwatch::store::backend::{Backend, WriteError, WriteFuture};
use riverwatch::store::spool::Spool;
use riverwatch::store::Store;
use riverwatch::telemetry::{Metrics, RefusalKind};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Keeps every body it accepts. Refuses (400) a body holding a line with `bad`; fails
/// retryably while `down` is set.
#[derive(Default)]
struct Recording {
    accepted: Mutex<Vec<String>>,
    attempts: Mutex<usize>,
    down: AtomicBool,
}

impl Recording {
    fn accepted(&self) -> Vec<String> {
        self.accepted.lock().expect("lock").clone()
    }
}

/// The store owns its backend; the test keeps a second handle to look inside.
struct Shared(Arc<Recording>);

impl Backend for Shared {
    fn write(&self, body: Bytes) -> WriteFuture<'_> {
        Box::pin(async move {
            *self.0.attempts.lock().expect("lock") += 1;
            if self.0.down.load(Ordering::SeqCst) {
                return Err(WriteError::Retry {
                    reason: "the test backend is down".into(),
                    after: Some(Duration::from_millis(10)),
                });
            }
            let text = String::from_utf8(body.to_vec()).expect("line protocol is UTF-8");
            if text.lines().any(|l| l.contains("bad")) {
                return Err(WriteError::Reject {
                    status: 400,
                    message: "field type conflict".into(),
                });
            }
            self.0.accepted.lock().expect("lock").push(text);
            Ok(())
        })
    }

    fn describe(&self) -> String {
        "the test's recording backend".into()
    }
}

fn store(dir: &Path, backend: &Arc<Recording>) -> (Arc<Store>, Arc<Metrics>) {
    let metrics = Arc::new(Metrics::default());
    let spool = Spool::open(&dir.join("wal"), 1 << 20).expect("spool");
    let deadletter = DeadLetter::open(&dir.join("deadletter.jsonl")).expect("dead letters");
    let store = Store::new(
        Box::new(Shared(Arc::clone(backend))),
        Arc::new(spool),
        Arc::new(deadletter),
        Arc::clone(&metrics),
    );
    (Arc::new(store), metrics)
}

const BATCH: &str = "water_quality,station=shijiao ph=7.1 1764000000000\n\
                     water_quality,station=shijiao ph=7.2 1764000060000\n";

#[tokio::test]
async fn a_batch_in_custody_reaches_the_backend_once_and_whole() {
    let dir = tempfile::tempdir().expect("tempdir");
    let backend = Arc::new(Recording::default());
    let (store, metrics) = store(dir.path(), &backend);
    assert_eq!(store.describe(), "the test's recording backend");

    store.record(BATCH.to_string()).await;

    assert_eq!(backend.accepted(), [BATCH]);
    assert_eq!(Metrics::get(&metrics.readings_stored), 2);
    assert!(!store.is_down());
    assert!(store.spool().is_empty());
}

#[tokio::test]
async fn a_refused_line_is_isolated_and_dead_lettered_while_the_rest_is_written() {
    let dir = tempfile::tempdir().expect("tempdir");
    let backend = Arc::new(Recording::default());
    let (store, metrics) = store(dir.path(), &backend);
    let lines = [
        "water_quality,station=a ph=7.0 1764000000000\n",
        "water_quality,station=b ph=7.1 1764000000000\n",
        "water_quality,station=c ph=\"bad\" 1764000000000\n",
        "water_quality,station=d ph=7.3 1764000000000\n",
    ];

    store.record(lines.concat()).await;

    // Halves, first half first: [a b] is written, [c d] is refused and split again.
    assert_eq!(
        backend.accepted(),
        [lines[0].to_string() + lines[1], lines[3].to_string()]
    );
    assert_eq!(Metrics::get(&metrics.readings_stored), 3);
    let refused: u64 = metrics
        .refused_by_kind()
        .into_iter()
        .filter(|(k, _)| *k == RefusalKind::Rejected)
        .map(|(_, n)| n)
        .sum();
    assert_eq!(refused, 1);
    let dead = std::fs::read_to_string(dir.path().join("deadletter.jsonl")).expect("dead letters");
    let records: Vec<serde_json::Value> = dead
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON record"))
        .collect();
    assert_eq!(records.len(), 1, "{dead}");
    assert_eq!(
        records[0]["reason"],
        "rejected by the database (HTTP 400): field type conflict"
    );
    use base64::Engine;
    let payload = base64::engine::general_purpose::STANDARD
        .decode(records[0]["payload"].as_str().expect("payload"))
        .expect("base64");
    assert_eq!(payload, lines[2].trim_end().as_bytes());
}

#[tokio::test]
async fn a_backend_that_is_down_gets_the_batch_from_the_spool_once_it_is_back() {
    let dir = tempfile::tempdir().expect("tempdir");
    let backend = Arc::new(Recording::default());
    backend.down.store(true, Ordering::SeqCst);
    let (store, metrics) = store(dir.path(), &backend);

    // Custody while the backend fails: the batch is synced to the spool, not lost.
    store.record(BATCH.to_string()).await;
    assert!(store.is_down());
    assert_eq!(store.spool().depth().records, 1);
    assert!(backend.accepted().is_empty());

    // The drainer retries while it is down, then writes the spooled batch once it is back.
    let drainer = tokio::spawn(Arc::clone(&store).drain());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while *backend.attempts.lock().expect("lock") < 3 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the drainer never retried"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    backend.down.store(false, Ordering::SeqCst);
    while !store.spool().is_empty() || backend.accepted().is_empty() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the spooled batch was not written back"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    drainer.abort();

    assert_eq!(backend.accepted(), [BATCH]);
    assert_eq!(Metrics::get(&metrics.readings_stored), 2);
    assert!(!store.is_down());
}
