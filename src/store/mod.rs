//! Store: batches line protocol, writes it, and releases the acknowledgements of the messages
//! whose readings are now in custody — in receive order.
//!
//! Fed by the screen stage with one [`Entry`] per MQTT message (its encoded points, possibly
//! none for a refused payload, and its ack); feeds the acker. One task owns the batch, so order
//! is kept by construction: entries are acknowledged in the order they arrived, and only after
//! the write that holds them succeeded (or their points were dead-lettered).
//!
//! A batch is written when it holds `batch_size` lines, when `flush_interval` has passed since
//! its first entry, or when input pauses for [`LINGER`]. The pause rule matters: a broker only
//! sends a bounded number of unacknowledged messages (20 by default in mosquitto), so waiting
//! for a full batch or the interval would throttle ingest to that many messages per interval.
//!
//! Failures (see [`influx`]): a retryable failure keeps the batch and tries again with
//! exponential backoff (0.1 s doubling to 30 s, or the server's `Retry-After`), so nothing is
//! acknowledged and the broker keeps the messages; while it retries, no new entries are taken
//! and the bounded channels push back to the broker. A rejected batch is split in halves until
//! the refused lines are isolated; those go to the dead-letter file with the server's message,
//! the rest is written. Rewriting a point is harmless: same series and time overwrite.

pub mod influx;
pub mod line_protocol;
pub mod points;

use crate::deadletter::DeadLetter;
use crate::ingest::mqtt::Ack;
use crate::telemetry::{Metrics, RefusalKind};
use influx::{WriteError, Writer};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// How long input may pause before a partial batch is written.
pub const LINGER: Duration = Duration::from_millis(5);

/// One MQTT message's contribution to a batch.
#[derive(Debug)]
pub struct Entry {
    pub ack: Ack,
    /// Encoded points, each line ending in a newline; empty for a refused payload.
    pub lines: String,
    /// Topic, for dead-letter records of rejected points.
    pub topic: String,
}

pub struct Batcher {
    pub writer: Writer,
    pub batch_size: usize,
    pub flush_interval: Duration,
    pub acks: mpsc::Sender<Ack>,
    pub deadletter: Arc<DeadLetter>,
    pub metrics: Arc<Metrics>,
}

impl Batcher {
    /// Runs until the input closes, then writes what is left and returns.
    pub async fn run(self, mut input: mpsc::Receiver<Entry>) {
        tracing::info!(store = %self.writer.describe(), "store ready");
        let mut closed = false;
        while !closed {
            let Some(first) = input.recv().await else {
                break;
            };
            let started = Instant::now();
            let mut lines = count_lines(&first.lines);
            let mut batch = vec![first];
            while lines < self.batch_size {
                let deadline = (started + self.flush_interval).min(Instant::now() + LINGER);
                match tokio::time::timeout_at(deadline, input.recv()).await {
                    Ok(Some(e)) => {
                        lines += count_lines(&e.lines);
                        batch.push(e);
                    }
                    Ok(None) => {
                        closed = true;
                        break;
                    }
                    Err(_) => break,
                }
            }
            self.flush(batch).await;
        }
    }

    async fn flush(&self, batch: Vec<Entry>) {
        let mut body = String::new();
        for e in &batch {
            body.push_str(&e.lines);
        }
        if !body.is_empty() {
            self.write_isolating_rejects(&body, &batch).await;
        }
        for e in batch {
            if self.acks.send(e.ack).await.is_err() {
                tracing::warn!("acknowledgements are no longer taken; the broker will redeliver");
                return;
            }
        }
    }

    /// Writes `body`, splitting it when the server rejects it, until every line is stored or
    /// dead-lettered.
    async fn write_isolating_rejects(&self, body: &str, batch: &[Entry]) {
        let lines: Vec<&str> = body.lines().collect();
        let mut pending = vec![(0, lines.len())];
        while let Some((from, to)) = pending.pop() {
            let chunk = &lines[from..to];
            let mut text = chunk.join("\n");
            text.push('\n');
            match self.write_retrying(text).await {
                Ok(()) => {
                    let readings = chunk
                        .iter()
                        .filter(|l| l.starts_with(points::READINGS))
                        .count();
                    Metrics::add(&self.metrics.readings_stored, readings as u64);
                }
                Err((status, message)) if chunk.len() == 1 => {
                    let line = chunk[0];
                    let topic = batch
                        .iter()
                        .find(|e| e.lines.contains(line))
                        .map_or("", |e| e.topic.as_str());
                    tracing::warn!(status, %message, %topic, "the database rejected a point; it is in the dead-letter file");
                    self.metrics.refused(RefusalKind::Rejected);
                    self.deadletter.record(
                        topic,
                        &format!("rejected by the database (HTTP {status}): {message}"),
                        None,
                        line.as_bytes(),
                    );
                }
                Err(_) => {
                    // Written first-half-first: the stack pops the last pushed.
                    let mid = from + (to - from) / 2;
                    pending.push((mid, to));
                    pending.push((from, mid));
                }
            }
        }
    }

    /// Retries one body until it is written or rejected.
    async fn write_retrying(&self, text: String) -> Result<(), (u16, String)> {
        let mut backoff = Duration::from_millis(100);
        let mut logged = false;
        loop {
            match self.writer.write(text.clone()).await {
                Ok(()) => {
                    if logged {
                        tracing::info!("store reachable again; writing resumed");
                    }
                    return Ok(());
                }
                Err(WriteError::Reject { status, message }) => return Err((status, message)),
                Err(WriteError::Retry { reason, after }) => {
                    Metrics::add(&self.metrics.write_retries, 1);
                    let wait = after.unwrap_or(backoff);
                    if logged {
                        tracing::debug!(%reason, retry_in = ?wait, "write failed again");
                    } else {
                        tracing::warn!(%reason, retry_in = ?wait, "write failed; readings stay unacknowledged and are retried");
                        logged = true;
                    }
                    tokio::time::sleep(wait).await;
                    backoff = (backoff * 2).min(Duration::from_secs(30));
                }
            }
        }
    }
}

fn count_lines(text: &str) -> usize {
    text.bytes().filter(|&b| b == b'\n').count()
}
