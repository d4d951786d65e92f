//! Store: encodes judged messages as line protocol ([`points`]), batches them, puts each batch
//! in custody — written to InfluxDB, or synced to the on-disk spool when the database is
//! unreachable or too slow — and releases the receipts of the messages in custody, in
//! receive order.
//!
//! Fed by the judging task with one [`Judged`] per transport message (its readings and
//! transitions, possibly none for a refused payload, and its receipt); feeds each input
//! source its receipts back, through the source's `Acknowledge` handle. The batcher registers
//! each message in the [`Ledger`] as it arrives and keeps at most [`IN_FLIGHT`] batches in
//! custody at once (futures it polls itself, not tasks), so the next batch gathers while the
//! last one is written; the ledger releases receipts in receive order whatever order the
//! writes finish in. The receipts are opaque here: the store knows no transport.
//!
//! A batch is written when it holds `batch_size` lines, when `flush_interval` has passed since
//! its first entry, or when input pauses for [`LINGER`]. The pause rule matters: a broker only
//! sends a bounded number of unacknowledged messages (20 by default in mosquitto), so waiting
//! for a full batch or the interval would throttle ingest to that many messages per interval.
//!
//! Failures (see [`influx`]): a retryable failure (unreachable, timeout, 5xx, 401/403/404)
//! sends the batch to the [`spool`] and marks the database down, so later batches go straight
//! to the spool without waiting for a timeout each. The drainer task writes spooled batches
//! back in order, with exponential backoff (0.1 s doubling to 30 s, or the server's
//! `Retry-After`) while the database still fails; its first success marks the database up, and
//! live batches are written directly again while the backlog drains beside them. When the
//! spool is full, the batch waits (its messages stay unacknowledged, so the broker keeps them
//! and stops sending at its in-flight limit) until the spool has room or the database is back.
//! A rejected batch is split in halves until the refused lines are isolated; those go to the
//! dead-letter file with the server's message, the rest is written. Rewriting a point is
//! harmless: same series and time overwrite.

pub mod backend;
pub mod file;
pub mod influx;
pub mod line_protocol;
pub mod points;
pub mod spool;

use crate::deadletter::DeadLetter;
use crate::domain::flow::{Acknowledge, Judged, Receipt};
use crate::domain::ledger::Ledger;
use crate::domain::network::Network;
use crate::telemetry::{Metrics, RefusalKind};
use backend::{Backend, WriteError};
use bytes::Bytes;
use futures_util::future::BoxFuture;
use futures_util::stream::{FuturesUnordered, StreamExt};
use spool::Spool;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, Notify};
use tokio::time::Instant;

/// How long input may pause before a partial batch is written.
pub const LINGER: Duration = Duration::from_millis(5);

/// Batches being put in custody at once: one being written while the next gathers.
pub const IN_FLIGHT: usize = 2;

/// One message's contribution to a batch.
#[derive(Debug)]
struct Entry {
    receipt: Receipt,
    /// Encoded points, each line ending in a newline; empty for a refused payload.
    lines: String,
    /// The message's origin (topic), for dead-letter records of rejected points.
    topic: String,
}

/// Encodes a judged message's points: each reading, the QC flags it revised, and each alert
/// transition.
fn encode(net: &Network, judged: Judged) -> Entry {
    // Room for a reading's line at once (about 300 bytes), rather than growing to it.
    let mut lines = String::with_capacity(512);
    if let Some(station) = judged.station.and_then(|i| net.stations.get(i)) {
        for r in &judged.readings {
            points::reading(station, &r.reading, &r.judgement, &r.qc, &mut lines);
            for (param, ts, flag) in &r.revised {
                points::qc_revision(station, *param, *ts, *flag, &mut lines);
            }
        }
    }
    for t in &judged.transitions {
        points::alert(net, t, &mut lines);
    }
    for e in &judged.incidents {
        points::incident(net, e, &mut lines);
    }
    Entry {
        receipt: judged.receipt,
        lines,
        topic: judged.origin,
    }
}

/// Where a message's points sit in its batch's body, kept to name the topic of a rejected
/// line.
#[derive(Debug)]
struct Part {
    topic: String,
    range: std::ops::Range<usize>,
}

/// The offsets just after each newline of `body`: where its next lines start.
fn line_starts(body: &[u8]) -> impl Iterator<Item = usize> + '_ {
    body.iter()
        .enumerate()
        .filter(|&(_, &b)| b == b'\n')
        .map(|(i, _)| i + 1)
}

/// What happens to a chunk the database cannot take now.
#[derive(Debug, Clone, Copy, PartialEq)]
enum OnRetry {
    /// Live batches: into the spool.
    Spool,
    /// Spooled batches: wait and write again.
    Wait,
}

/// The custody side shared by the batcher and the drainer.
pub struct Store {
    writer: Box<dyn Backend>,
    spool: Arc<Spool>,
    deadletter: Arc<DeadLetter>,
    metrics: Arc<Metrics>,
    /// Set while the database fails retryably: live batches then go straight to the spool.
    down: AtomicBool,
    /// Set while a live batch waits because the spool is full (acknowledgements pause); the
    /// `spool_full` gauge mirrors it for the operator, it is never read back.
    full: AtomicBool,
    /// Wakes the drainer after an append.
    appended: Notify,
}

impl Store {
    pub fn new(
        writer: Box<dyn Backend>,
        spool: Arc<Spool>,
        deadletter: Arc<DeadLetter>,
        metrics: Arc<Metrics>,
    ) -> Store {
        let store = Store {
            writer,
            spool,
            deadletter,
            metrics,
            down: AtomicBool::new(false),
            full: AtomicBool::new(false),
            appended: Notify::new(),
        };
        store.publish_depth();
        store
    }

    pub fn describe(&self) -> String {
        self.writer.describe()
    }

    /// Whether the last write failed retryably (the database is down or too slow).
    pub fn is_down(&self) -> bool {
        self.down.load(Ordering::Relaxed)
    }

    pub fn spool(&self) -> &Spool {
        &self.spool
    }

    fn publish_depth(&self) {
        let d = self.spool.depth();
        Metrics::set(&self.metrics.spool_bytes, d.bytes);
        Metrics::set(&self.metrics.spool_records, d.records);
    }

    fn set_down(&self, down: bool) {
        if self.down.swap(down, Ordering::Relaxed) != down {
            Metrics::set(&self.metrics.store_down, u64::from(down));
            if down {
                tracing::warn!("the database is not taking writes; batches go to the spool");
            } else {
                tracing::info!(
                    "the database takes writes again; live batches are written directly"
                );
            }
        }
    }

    /// Puts `body` in custody: written, dead-lettered line by line where the database rejects
    /// it, or spooled. Returns once every line is in one of those places. The body is held
    /// once: each attempt, and each half of a rejected chunk, is a view of it, not a copy.
    async fn custody(&self, body: String, parts: &[Part], on_retry: OnRetry) {
        let mut body = body.into_bytes();
        if body.last().is_some_and(|&b| b != b'\n') {
            body.push(b'\n');
        }
        let body = Bytes::from(body);
        // Start offsets of the lines, and the end: the chunks are line ranges.
        let mut starts: Vec<usize> = std::iter::once(0).chain(line_starts(&body)).collect();
        if starts.last() != Some(&body.len()) {
            starts.push(body.len());
        }
        let lines = starts.len() - 1;
        let mut pending = vec![(0, lines)];
        let mut backoff = Duration::from_millis(100);
        let mut failing = false;
        while let Some((from, to)) = pending.pop() {
            if from >= to {
                continue;
            }
            let text = body.slice(starts[from]..starts[to]);
            if on_retry == OnRetry::Spool && self.is_down() {
                if !self.spool_or_wait(&text).await {
                    pending.push((from, to));
                }
                continue;
            }
            let started = Instant::now();
            let result = self.writer.write(text.clone()).await;
            self.metrics.write_took(started.elapsed());
            match result {
                Ok(()) => {
                    let readings = text
                        .split(|&b| b == b'\n')
                        .filter(|l| l.starts_with(points::READINGS.as_bytes()))
                        .count();
                    Metrics::add(&self.metrics.readings_stored, readings as u64);
                    self.set_down(false);
                    if on_retry == OnRetry::Spool {
                        self.clear_full();
                    }
                }
                Err(WriteError::Reject { status, message }) if to - from == 1 => {
                    self.reject(&text, starts[from], status, &message, parts);
                }
                Err(WriteError::Reject { .. }) => {
                    // Written first-half-first: the stack pops the last pushed.
                    let mid = from + (to - from) / 2;
                    pending.push((mid, to));
                    pending.push((from, mid));
                }
                Err(WriteError::Retry { reason, after }) => {
                    Metrics::add(&self.metrics.write_retries, 1);
                    match on_retry {
                        OnRetry::Spool => {
                            tracing::debug!(%reason, "write failed; spooling the batch");
                            self.set_down(true);
                        }
                        OnRetry::Wait => {
                            let wait = after.unwrap_or(backoff);
                            if failing {
                                tracing::debug!(%reason, retry_in = ?wait, "write failed again");
                            } else {
                                tracing::warn!(%reason, retry_in = ?wait, "spooled batch not written; retrying");
                                failing = true;
                            }
                            self.set_down(true);
                            tokio::time::sleep(wait).await;
                            backoff = (backoff * 2).min(Duration::from_secs(30));
                        }
                    }
                    pending.push((from, to));
                }
            }
        }
    }

    /// Puts lines that come from outside the MQTT flow (an acknowledgement through the API)
    /// in custody: written, or spooled when the database is down.
    pub async fn record(&self, lines: String) {
        self.custody(lines, &[], OnRetry::Spool).await;
    }

    /// Appends `text` to the spool. False (after a pause) when the spool is full or failing:
    /// the caller keeps the chunk and tries again.
    async fn spool_or_wait(&self, text: &Bytes) -> bool {
        let spool = Arc::clone(&self.spool);
        let bytes = text.clone();
        let appended = tokio::task::spawn_blocking(move || spool.append(&bytes)).await;
        let why = match appended {
            Ok(Ok(true)) => {
                Metrics::add(&self.metrics.spool_appended, 1);
                self.clear_full();
                self.publish_depth();
                self.appended.notify_one();
                return true;
            }
            Ok(Ok(false)) => "the spool is full".to_string(),
            Ok(Err(e)) => format!("cannot write to the spool: {e}"),
            Err(e) => format!("the spool task failed: {e}"),
        };
        if !self.full.swap(true, Ordering::Relaxed) {
            let d = self.spool.depth();
            tracing::error!(reason = %why, batch_bytes = text.len(), spool_bytes = d.bytes, max_bytes = d.max_bytes, "batch waits unacknowledged (the broker keeps its messages) until the database returns or the spool drains");
            Metrics::set(&self.metrics.spool_full, 1);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        false
    }

    /// A live batch went into custody: if one was waiting on a full spool, it no longer is.
    fn clear_full(&self) {
        if self.full.swap(false, Ordering::Relaxed) {
            Metrics::set(&self.metrics.spool_full, 0);
            tracing::info!("batches are taken into custody again; acknowledgements resume");
        }
    }

    /// Dead-letters one rejected line, which starts at `offset` of its batch's body.
    fn reject(&self, line: &[u8], offset: usize, status: u16, message: &str, parts: &[Part]) {
        let line = line.strip_suffix(b"\n").unwrap_or(line);
        let topic = parts
            .iter()
            .find(|e| e.range.contains(&offset))
            .map_or("spool", |e| e.topic.as_str());
        tracing::warn!(status, %message, %topic, "the database rejected a point; it is in the dead-letter file");
        self.metrics.refused(RefusalKind::Rejected);
        self.deadletter.record(
            topic,
            &format!("rejected by the database (HTTP {status}): {message}"),
            None,
            line,
        );
    }

    /// Writes spooled batches back to the database in order, forever; abort it to stop (what
    /// is left stays on disk for the next start).
    pub async fn drain(self: Arc<Self>) {
        loop {
            let spool = Arc::clone(&self.spool);
            let record = match tokio::task::spawn_blocking(move || spool.peek()).await {
                Ok(Ok(r)) => r,
                Ok(Err(e)) => {
                    tracing::error!(error = %e, "cannot read the spool; retrying in 5 s");
                    tokio::time::sleep(Duration::from_secs(5)).await;
                    continue;
                }
                Err(e) => {
                    tracing::error!(error = %e, "the spool reader failed; retrying in 5 s");
                    tokio::time::sleep(Duration::from_secs(5)).await;
                    continue;
                }
            };
            self.publish_depth();
            let Some(record) = record else {
                // Nothing spooled: wait for an append. The timeout also lets a database that
                // went down with an empty spool be probed by the next live batch.
                let _ =
                    tokio::time::timeout(Duration::from_secs(1), self.appended.notified()).await;
                continue;
            };
            match String::from_utf8(record.body.clone()) {
                Ok(body) => self.custody(body, &[], OnRetry::Wait).await,
                Err(e) => {
                    tracing::error!(error = %e, "a spooled batch is not UTF-8; it is in the dead-letter file");
                    self.deadletter.record(
                        "spool",
                        "spooled batch is not UTF-8",
                        None,
                        &record.body,
                    );
                }
            }
            self.spool.commit(&record);
            Metrics::add(&self.metrics.spool_drained, 1);
            self.publish_depth();
        }
    }
}

pub struct Batcher {
    pub store: Arc<Store>,
    /// The network, for the tags of encoded points.
    pub net: Arc<Network>,
    pub batch_size: usize,
    pub flush_interval: Duration,
    /// Each input source's acknowledger, by `Receipt::source`.
    pub receipts: Vec<Arc<dyn Acknowledge>>,
}

impl Batcher {
    /// Runs until the input closes, then puts what is left in custody and returns.
    ///
    /// One task: the batches in custody are futures this task polls beside its input, not
    /// tasks of their own, so a message meets no hand-off between its arrival here and the
    /// answer to its receipt. A batch closes when it holds `batch_size` lines, when
    /// `flush_interval` has passed since its first message, or when input pauses for
    /// [`LINGER`]; it goes into custody as soon as fewer than [`IN_FLIGHT`] batches are there,
    /// and keeps taking messages (up to `batch_size` lines) while it waits for that.
    pub async fn run(self, mut input: mpsc::Receiver<Judged>) {
        let net = Arc::clone(&self.net);
        tracing::info!(store = %self.store.describe(), "store ready");
        let mut ledger = Ledger::default();
        let mut inflight: FuturesUnordered<BoxFuture<'static, (u64, u64)>> =
            FuturesUnordered::new();
        let mut batch: Vec<Entry> = Vec::new();
        let mut lines = 0;
        // When the gathering batch closes: the earlier of its flush interval and the linger
        // pause after its last message.
        let mut started = Instant::now();
        let mut closes = Instant::now();
        let mut closed_input = false;
        loop {
            let ready = !batch.is_empty()
                && (lines >= self.batch_size || closed_input || Instant::now() >= closes);
            if ready && inflight.len() < IN_FLIGHT {
                inflight.push(self.custody(&mut ledger, std::mem::take(&mut batch)));
                lines = 0;
                continue;
            }
            if closed_input && batch.is_empty() {
                break;
            }
            tokio::select! {
                Some(done) = inflight.next(), if !inflight.is_empty() => {
                    self.release(&mut ledger, done);
                }
                // Each message is encoded as it is taken, so a batch's size is known in lines.
                msg = input.recv(), if !closed_input && lines < self.batch_size => match msg {
                    Some(j) => {
                        let e = encode(&net, j);
                        let now = Instant::now();
                        if batch.is_empty() {
                            started = now;
                        }
                        closes = (started + self.flush_interval).min(now + LINGER);
                        lines += count_lines(&e.lines);
                        batch.push(e);
                    }
                    None => closed_input = true,
                },
                _ = tokio::time::sleep_until(closes), if !ready && !batch.is_empty() => {}
            }
        }
        while let Some(done) = inflight.next().await {
            self.release(&mut ledger, done);
        }
    }

    /// Registers a batch's messages in the ledger and returns the future that puts its
    /// points in custody, yielding the ledger range it covers.
    fn custody(
        &self,
        ledger: &mut Ledger<Receipt>,
        batch: Vec<Entry>,
    ) -> BoxFuture<'static, (u64, u64)> {
        let from = ledger.next_seq();
        let mut body = String::new();
        let mut parts = Vec::with_capacity(batch.len());
        body.reserve_exact(batch.iter().map(|e| e.lines.len()).sum());
        for e in batch {
            ledger.receive(e.receipt);
            let start = body.len();
            body.push_str(&e.lines);
            parts.push(Part {
                topic: e.topic,
                range: start..body.len(),
            });
        }
        let to = ledger.next_seq();
        let store = Arc::clone(&self.store);
        Box::pin(async move {
            if !body.is_empty() {
                store.custody(body, &parts, OnRetry::Spool).await;
            }
            (from, to)
        })
    }

    /// Records a batch now in custody and answers the receipts it frees, through each
    /// receipt's source.
    fn release(&self, ledger: &mut Ledger<Receipt>, (from, to): (u64, u64)) {
        ledger.custody(from, to);
        for receipt in ledger.release() {
            // `Receipt::none()` (the offline timer's points) names no source: nothing to answer.
            if let Some(source) = self.receipts.get(receipt.source) {
                source.answer(receipt);
            }
        }
    }
}

fn count_lines(text: &str) -> usize {
    text.bytes().filter(|&b| b == b'\n').count()
}

/// Why no backend could be built from config.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    #[error("[influxdb] is required by `run` (where readings are stored)")]
    NotConfigured,
    #[error(transparent)]
    Influx(#[from] influx::BuildError),
}

/// Builds the daemon's backend from config, resolving its secrets.
pub fn build_backend(
    influxdb: Option<&influx::config::InfluxConfig>,
) -> Result<Box<dyn Backend>, BackendError> {
    match influxdb {
        Some(influx) => Ok(influx::writer(influx)?),
        None => Err(BackendError::NotConfigured),
    }
}
