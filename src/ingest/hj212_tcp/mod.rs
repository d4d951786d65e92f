//! The HJ 212 TCP source: data loggers (数采仪) that push HJ 212 over a plain TCP connection, as
//! the standard describes (SPEC §5a), one logger per connection.
//!
//! Registered as a [`Source`] by `run` when `[hj212_tcp]` is configured (`app::Inputs`); feeds
//! the judging task with one [`Inbound`] per frame, under the station's SPEC §3 topic
//! (`wq/<river>/<station>/hj212`), so a frame goes through exactly the decode → screen → store
//! path of a frame that came over MQTT. The store answers this source's receipts once the
//! readings are in custody; only then does [`Acknowledger`] queue the data acknowledgement
//! (CN=9014, which the decoder put in the receipt when the frame's Flag asks for one) for the
//! connection the frame came on. A frame refused before that (no ack) is sent again by the
//! logger, which is what the standard expects of data that was not acknowledged.
//!
//! Per connection: frames are lines ending in LF (CR LF as the standard writes them). Each is
//! checked here before it goes on — framing and CRC ([`hj212::parse`]), the MN against the
//! configured stations, the access password (`PW`) against the station's `hj212_pw_env` /
//! `hj212_pw_file` — because a refusal at this point is about the connection (who is
//! talking), not the data: it is recorded like every refusal (logged, counted by reason,
//! dead-lettered), and `max_refusals` of them in a row close the connection. The first valid
//! frame binds the connection to its MN; a frame of another MN on it is refused, and a new
//! connection of the same MN closes the older one (a logger that reconnected without closing).
//!
//! A frame sent again after its acknowledgement was lost (the logger reset the connection, or
//! riverwatch was killed just after writing it) is recognised from the [`acked`] record,
//! which is synced before any acknowledgement is written: it is acknowledged again and not
//! stored a second time.
//!
//! Bounds, each closing the connection with a counted reason ([`CloseReason`]): a line longer
//! than any frame ([`MAX_LINE`]), a frame not whole within `frame_timeout` of its first byte
//! (slowloris), nothing for `idle_timeout`, acknowledgements the client does not read. At
//! `max_connections` a new connection is closed at once (`capacity`): the loggers already
//! connected are never pushed out by newcomers. A connection sending faster than
//! `max_frame_rate` is paused (TCP then slows the sender) rather than cut off, since a logger
//! flushing its backlog after an outage is not hostile. Every connection runs in its own task,
//! so a slow, silent or hostile one never stalls the others.

pub mod acked;
pub mod config;

use super::{record_refusal, Inbound, Phase, Running, Source, SourceIo};
use crate::deadletter::DeadLetter;
use crate::domain::flow::{Acknowledge, Receipt};
use crate::domain::hj212::{self, MAX_SEGMENT};
use crate::domain::network::Network;
use crate::settings::secret::{Secret, SecretError};
use crate::telemetry::{CloseReason, Metrics, RefusalKind};
use acked::Acked;
use config::Hj212TcpConfig;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch, Notify};
use tokio::task::JoinSet;
use tokio::time::Instant;

/// The longest line a frame can make: `##`, the 4-digit length, 1,024 data characters of up
/// to 4 bytes each (a logger that counted UTF-8 characters), the CRC and CR LF. A longer line
/// is not a frame.
pub const MAX_LINE: usize = 2 + 4 + 4 * MAX_SEGMENT + 4 + 2;

/// Acknowledgements a connection may have queued and not yet written; a client that lets
/// this many pile up is not reading them, and is closed.
const REPLY_QUEUE: usize = 256;

/// How long writing one acknowledgement may take before the client counts as not reading.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// How long, once the daemon stops, a connection may take to write its last
/// acknowledgements.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(2);

/// Why the listener cannot start; each names the config key at fault.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// A station's logger password cannot be read.
    #[error("{key}: {source}")]
    Password { key: String, source: SecretError },
    /// A station's logger password is empty: it would let frames without a PW in.
    #[error("{key}: the password is empty (a logger must send its PW; set a non-empty one)")]
    EmptyPassword { key: String },
    /// The record of acknowledged frames under `[spool] dir` cannot be opened.
    #[error("cannot open {}: {source}", path.display())]
    Record {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    /// The listen address cannot be bound (in use, or not this machine's).
    #[error("hj212_tcp.listen {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// A logger the listener knows, by its MN.
struct Logger {
    station: String,
    /// The SPEC §3 topic its frames travel under (`wq/<river>/<station>/hj212`).
    topic: String,
    /// `None` when the station has no password configured: its frames are refused.
    password: Option<Secret>,
}

/// One open connection, as the acknowledger and newer connections see it.
struct Conn {
    replies: mpsc::Sender<Ack>,
    /// Keys ([`acked::key`]) of the frames handed on and not yet answered, by sequence number.
    inflight: HashMap<u32, String>,
    /// The MN the connection's first valid frame named.
    mn: Option<String>,
    /// Told when the connection must close: replaced by a newer one, or not reading.
    close: Arc<Notify>,
}

/// An acknowledgement to write: the key of the frame it acknowledges, recorded before it is
/// written (`None` for a frame already on record), and its bytes.
type Ack = (Option<String>, Vec<u8>);

/// What the source and its connections share.
struct Shared {
    acked: Arc<Acked>,
    cfg: Hj212TcpConfig,
    loggers: HashMap<String, Logger>,
    conns: Mutex<HashMap<u64, Conn>>,
    /// Why a [`Conn::close`] was told, by connection.
    kicked: Mutex<HashMap<u64, CloseReason>>,
    /// Refusals recorded per peer address in the current minute (see [`Shared::record`]).
    recorded: Mutex<HashMap<std::net::IpAddr, (Instant, u32)>>,
}

/// Refusals of one peer address recorded (logged and dead-lettered) per minute; past it they
/// are only counted. A client that reconnects to send garbage would otherwise fill the disk
/// with dead letters and the log with warnings.
const RECORDED_PER_MINUTE: u32 = 20;

impl Shared {
    fn conns(&self) -> MutexGuard<'_, HashMap<u64, Conn>> {
        self.conns.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Closes connection `id` for `reason` (its task notices and ends).
    fn kick(&self, id: u64, reason: CloseReason) {
        let close = self.conns().get(&id).map(|c| Arc::clone(&c.close));
        if let Some(close) = close {
            self.kicked
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(id, reason);
            close.notify_one();
        }
    }

    /// Whether a refusal from `ip` at `now` is still to be recorded in full (logged,
    /// dead-lettered), and whether it is the first one past the limit (said once).
    fn record(&self, ip: std::net::IpAddr, now: Instant) -> (bool, bool) {
        let mut map = self.recorded.lock().unwrap_or_else(|p| p.into_inner());
        let minute = Duration::from_secs(60);
        if map.len() > 10_000 {
            map.retain(|_, (since, _)| now.saturating_duration_since(*since) < minute);
        }
        let entry = map.entry(ip).or_insert((now, 0));
        if now.saturating_duration_since(entry.0) >= minute {
            *entry = (now, 0);
        }
        entry.1 += 1;
        (
            entry.1 <= RECORDED_PER_MINUTE,
            entry.1 == RECORDED_PER_MINUTE + 1,
        )
    }

    fn kicked_for(&self, id: u64) -> CloseReason {
        self.kicked
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&id)
            .unwrap_or(CloseReason::Replaced)
    }
}

/// The listener, bound and ready to run.
pub struct Hj212Tcp {
    listener: TcpListener,
    shared: Arc<Shared>,
}

impl Hj212Tcp {
    /// Binds `cfg.listen` and resolves every station's logger password.
    ///
    /// # Errors
    /// [`SetupError`]: a password that cannot be read, or an address that cannot be bound.
    pub async fn bind(
        cfg: &Hj212TcpConfig,
        net: &Network,
        passwords: &[config::LoggerPassword],
        state_dir: &std::path::Path,
    ) -> Result<Hj212Tcp, SetupError> {
        let acked = Acked::open(state_dir, chrono::Utc::now().timestamp()).map_err(|source| {
            SetupError::Record {
                path: state_dir.join("hj212_tcp_acked.log"),
                source,
            }
        })?;
        let mut loggers = HashMap::new();
        for station in &net.stations {
            let Some(mn) = &station.hj212_mn else {
                continue;
            };
            let password = match passwords.iter().find(|p| p.station == station.id) {
                None => {
                    tracing::warn!(station = %station.id, "the station has an hj212_mn but no hj212_pw_env/hj212_pw_file: its frames over TCP are refused");
                    None
                }
                Some(p) => {
                    let pw = p.source.resolve().map_err(|source| match source {
                        // Said as before: an empty PW would let frames without one in.
                        SecretError::EmptyVariable(_) | SecretError::EmptyFile(_) => {
                            SetupError::EmptyPassword { key: p.key.clone() }
                        }
                        source => SetupError::Password {
                            key: p.key.clone(),
                            source,
                        },
                    })?;
                    if pw.expose().is_empty() {
                        return Err(SetupError::EmptyPassword { key: p.key.clone() });
                    }
                    Some(pw)
                }
            };
            loggers.insert(
                mn.clone(),
                Logger {
                    station: station.id.clone(),
                    topic: format!("wq/{}/{}/hj212", station.river, station.id),
                    password,
                },
            );
        }
        let listener = TcpListener::bind(cfg.listen)
            .await
            .map_err(|source| SetupError::Bind {
                addr: cfg.listen,
                source,
            })?;
        Ok(Hj212Tcp {
            listener,
            shared: Arc::new(Shared {
                acked: Arc::new(acked),
                cfg: cfg.clone(),
                loggers,
                conns: Mutex::default(),
                kicked: Mutex::default(),
                recorded: Mutex::default(),
            }),
        })
    }

    /// The address it listens on (the port chosen when `listen` said 0).
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }
}

/// Queues each released receipt's reply (the CN=9014 acknowledgement) for the connection the
/// frame came on; never waits. A connection that is gone drops it: its logger sends the frame
/// again and it is stored again, over the same point.
struct Acknowledger(Arc<Shared>);

impl Acknowledge for Acknowledger {
    fn answer(&self, receipt: Receipt) {
        let Some(token) = receipt.token else {
            return;
        };
        let (id, seq) = untoken(token);
        let full = match self.0.conns().get_mut(&id) {
            None => false,
            Some(conn) => {
                let key = conn.inflight.remove(&seq);
                match receipt.reply {
                    None => false,
                    Some(reply) => matches!(
                        conn.replies.try_send((key, reply.payload)),
                        Err(mpsc::error::TrySendError::Full(_))
                    ),
                }
            }
        };
        if full {
            self.0.kick(id, CloseReason::Unresponsive);
        }
    }
}

impl Source for Hj212Tcp {
    fn name(&self) -> &'static str {
        "hj212_tcp"
    }

    fn acknowledger(&self) -> Arc<dyn Acknowledge> {
        Arc::new(Acknowledger(Arc::clone(&self.shared)))
    }

    fn run(self: Box<Self>, io: SourceIo) -> Running {
        Box::pin(accept(*self, io))
    }
}

/// Accepts connections until the daemon drains, then waits for every connection to write its
/// last acknowledgements and close.
async fn accept(tcp: Hj212Tcp, io: SourceIo) {
    let SourceIo {
        index,
        messages,
        mut phase,
        metrics,
        deadletter,
    } = io;
    let Hj212Tcp { listener, shared } = tcp;
    let next_id = AtomicU64::new(1);
    let mut tasks = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        // Out of file descriptors, mostly: wait rather than spin.
                        tracing::warn!(error = %e, "HJ 212 TCP: cannot accept a connection");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                Metrics::add(&metrics.tcp_accepted, 1);
                if shared.conns().len() >= shared.cfg.max_connections {
                    // Full: make room by closing the oldest connection that never sent a
                    // valid frame (no logger of ours, or not yet); when every connection is
                    // a logger, the newcomer is the one refused.
                    let oldest_unbound = shared
                        .conns()
                        .iter()
                        .filter(|(_, c)| c.mn.is_none())
                        .map(|(id, _)| *id)
                        .min();
                    match oldest_unbound {
                        Some(id) => shared.kick(id, CloseReason::Evicted),
                        None => {
                            metrics.tcp_closed(CloseReason::Capacity);
                            tracing::warn!(%peer, max_connections = shared.cfg.max_connections, "HJ 212 TCP connection refused: every connection is a logger's, at hj212_tcp.max_connections");
                            drop(stream);
                            continue;
                        }
                    }
                }
                let id = next_id.fetch_add(1, Ordering::Relaxed);
                let conn = Connection::open(id, peer, index, &shared, &metrics, &deadletter);
                tasks.spawn(conn.serve(stream, messages.clone(), phase.clone()));
            }
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
            changed = phase.changed() => {
                if changed.is_err() || *phase.borrow() != Phase::Running {
                    break;
                }
            }
        }
    }
    // Draining: no new connections; the connections stop reading and hand on nothing more.
    drop(listener);
    drop(messages);
    while !tasks.is_empty() {
        tokio::select! {
            _ = tasks.join_next() => {}
            changed = phase.changed() => {
                if changed.is_err() {
                    break;
                }
            }
        }
    }
}

/// A receipt's token: the connection id (high bits) and the frame's sequence number on it (24
/// bits, wrapping; far more than a connection has in flight).
fn token(id: u64, seq: u32) -> u64 {
    (id << 24) | u64::from(seq & 0xff_ffff)
}

/// The (connection id, sequence number) a token packs.
fn untoken(token: u64) -> (u64, u32) {
    (token >> 24, (token & 0xff_ffff) as u32)
}

/// One logger's connection.
struct Connection {
    id: u64,
    peer: SocketAddr,
    /// This source's index, stamped on every receipt.
    source: usize,
    shared: Arc<Shared>,
    metrics: Arc<Metrics>,
    deadletter: Arc<DeadLetter>,
    replies: mpsc::Receiver<Ack>,
    /// A sender to this connection's own writer, for frames already acknowledged.
    again: mpsc::Sender<Ack>,
    close: Arc<Notify>,
    /// Refused frames in a row.
    refusals: u32,
    /// The last frame's sequence number.
    seq: u32,
}

/// What the reading side of a connection ended with.
enum Ended {
    Closed(CloseReason),
    /// The daemon is draining: stop reading, keep writing acknowledgements.
    Draining,
}

impl Connection {
    fn open(
        id: u64,
        peer: SocketAddr,
        source: usize,
        shared: &Arc<Shared>,
        metrics: &Arc<Metrics>,
        deadletter: &Arc<DeadLetter>,
    ) -> Connection {
        let (tx, rx) = mpsc::channel(REPLY_QUEUE);
        let close = Arc::new(Notify::new());
        shared.conns().insert(
            id,
            Conn {
                replies: tx.clone(),
                inflight: HashMap::new(),
                mn: None,
                close: Arc::clone(&close),
            },
        );
        Metrics::set(&metrics.tcp_connections, shared.conns().len() as u64);
        Connection {
            id,
            peer,
            source,
            shared: Arc::clone(shared),
            metrics: Arc::clone(metrics),
            deadletter: Arc::clone(deadletter),
            replies: rx,
            again: tx,
            close,
            refusals: 0,
            seq: 0,
        }
    }

    /// Reads frames and writes acknowledgements until one side ends; then closes.
    async fn serve(
        mut self,
        stream: TcpStream,
        messages: mpsc::Sender<Inbound>,
        mut phase: watch::Receiver<Phase>,
    ) {
        // Acknowledgements are a few dozen bytes each: send them at once, not after the
        // previous one is acknowledged by the peer's TCP.
        let _ = stream.set_nodelay(true);
        let (read, write) = stream.into_split();
        let mut replies = std::mem::replace(&mut self.replies, mpsc::channel(1).1);
        // The reply queue ends when its last sender goes: the map's (removed at the end) and
        // this one, which only the reading side holds.
        let again = std::mem::replace(&mut self.again, mpsc::channel(1).0);
        let metrics = Arc::clone(&self.metrics);
        let acked = Arc::clone(&self.shared.acked);
        let writer = write_replies(write, &mut replies, &metrics, &acked);
        tokio::pin!(writer);
        let close = Arc::clone(&self.close);
        let shared = Arc::clone(&self.shared);
        let id = self.id;
        let ended = tokio::select! {
            ended = self.read_frames(again, read, messages, phase.clone()) => ended,
            reason = &mut writer => Ended::Closed(reason),
            _ = close.notified() => Ended::Closed(shared.kicked_for(id)),
        };
        let reason = match ended {
            Ended::Closed(reason) => reason,
            Ended::Draining => {
                // The store releases the last receipts before the sources are told to
                // disconnect: keep writing until then.
                tokio::select! {
                    reason = &mut writer => reason,
                    _ = close.notified() => self.shared.kicked_for(self.id),
                    _ = disconnect(&mut phase) => {
                        // Every receipt is answered by now: write what is queued, then close.
                        self.shared.conns().remove(&self.id);
                        let _ = tokio::time::timeout(FLUSH_TIMEOUT, &mut writer).await;
                        CloseReason::Shutdown
                    }
                }
            }
        };
        self.shared.conns().remove(&self.id);
        Metrics::set(
            &self.metrics.tcp_connections,
            self.shared.conns().len() as u64,
        );
        self.metrics.tcp_closed(reason);
        match reason {
            CloseReason::Peer | CloseReason::Shutdown => {
                tracing::debug!(peer = %self.peer, reason = reason.key(), "HJ 212 TCP connection closed")
            }
            _ => {
                tracing::info!(peer = %self.peer, reason = reason.key(), "HJ 212 TCP connection closed")
            }
        }
    }

    /// Reads lines, checks each frame and hands the good ones on, until the connection must
    /// close or the daemon drains.
    async fn read_frames(
        &mut self,
        again: mpsc::Sender<Ack>,
        mut read: OwnedReadHalf,
        messages: mpsc::Sender<Inbound>,
        mut phase: watch::Receiver<Phase>,
    ) -> Ended {
        let cfg = self.shared.cfg.clone();
        let mut buf: Vec<u8> = Vec::with_capacity(1024);
        let mut chunk = vec![0u8; 4096];
        let mut last_read = Instant::now();
        // Idleness counts from the last line that was not blank: CR LF alone keeps nothing
        // open.
        let mut last_line = last_read;
        // When the first byte of the frame now in `buf` arrived.
        let mut frame_began: Option<Instant> = None;
        let mut rate = Rate::new(cfg.max_frame_rate);
        loop {
            while let Some(end) = buf.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = buf.drain(..=end).collect();
                frame_began = (!buf.is_empty()).then_some(last_read);
                if line.iter().all(|b| b.is_ascii_whitespace()) {
                    continue;
                }
                last_line = last_read;
                if let Some(wait) = rate.take(Instant::now()) {
                    Metrics::add(&self.metrics.tcp_throttled, 1);
                    tokio::time::sleep(wait).await;
                }
                match self.check(&line) {
                    Ok(Checked::Again(ack)) => {
                        // Already stored and acknowledged: the acknowledgement was lost.
                        self.refusals = 0;
                        Metrics::add(&self.metrics.tcp_duplicates, 1);
                        if again.try_send((None, ack)).is_err() {
                            return Ended::Closed(CloseReason::Unresponsive);
                        }
                    }
                    Ok(Checked::New { topic, key }) => {
                        self.refusals = 0;
                        Metrics::add(&self.metrics.tcp_frames, 1);
                        self.seq = self.seq.wrapping_add(1) & 0xff_ffff;
                        if let Some(key) = key {
                            if let Some(c) = self.shared.conns().get_mut(&self.id) {
                                c.inflight.insert(self.seq, key);
                            }
                        }
                        let inbound = Inbound {
                            topic,
                            payload: line.into(),
                            receipt: Receipt {
                                source: self.source,
                                token: Some(token(self.id, self.seq)),
                                reply: None,
                            },
                        };
                        if messages.send(inbound).await.is_err() {
                            return Ended::Draining;
                        }
                    }
                    Err((kind, reason)) => {
                        let origin = format!("hj212_tcp://{}", self.peer);
                        match self.shared.record(self.peer.ip(), Instant::now()) {
                            (true, _) => record_refusal(
                                &self.deadletter,
                                &self.metrics,
                                &origin,
                                &reason,
                                kind,
                                None,
                                &line,
                            ),
                            (false, first) => {
                                self.metrics.refused(kind);
                                if first {
                                    tracing::warn!(peer = %self.peer.ip(), limit = RECORDED_PER_MINUTE, "HJ 212 TCP: more refusals from this address this minute are counted, not logged or dead-lettered");
                                }
                            }
                        }
                        self.refusals += 1;
                        if self.refusals >= cfg.max_refusals {
                            return Ended::Closed(CloseReason::Refused);
                        }
                    }
                }
                if *phase.borrow() != Phase::Running {
                    return Ended::Draining;
                }
            }
            if buf.len() > MAX_LINE {
                return Ended::Closed(CloseReason::TooLong);
            }
            let idle_until = last_line + cfg.idle_timeout;
            let (deadline, late) = match frame_began {
                Some(began) if began + cfg.frame_timeout < idle_until => {
                    (began + cfg.frame_timeout, CloseReason::SlowFrame)
                }
                _ => (idle_until, CloseReason::Idle),
            };
            tokio::select! {
                got = tokio::time::timeout_at(deadline, read.read(&mut chunk)) => match got {
                    Err(_) => return Ended::Closed(late),
                    Ok(Ok(0)) | Ok(Err(_)) => return Ended::Closed(CloseReason::Peer),
                    Ok(Ok(n)) => {
                        last_read = Instant::now();
                        frame_began.get_or_insert(last_read);
                        buf.extend_from_slice(&chunk[..n]);
                    }
                },
                changed = phase.changed() => {
                    if changed.is_err() || *phase.borrow() != Phase::Running {
                        return Ended::Draining;
                    }
                }
            }
        }
    }

    /// Checks one line as a frame from this connection's logger: framing and CRC, a known
    /// MN, its password, the MN the connection is bound to, and whether it was acknowledged
    /// before. Returns what to do with it, or the refusal (kind, reason).
    fn check(&self, line: &[u8]) -> Result<Checked, (RefusalKind, String)> {
        let frame = hj212::parse(line)
            .map_err(|e| (RefusalKind::BadFrame, format!("HJ 212 frame refused: {e}")))?;
        let Some(logger) = self.shared.loggers.get(&frame.mn) else {
            return Err((
                RefusalKind::UnknownMn,
                format!("MN {:?} is no configured station's hj212_mn", frame.mn),
            ));
        };
        let sent = frame.pw.as_deref().unwrap_or("");
        match &logger.password {
            None => {
                return Err((
                    RefusalKind::BadPassword,
                    format!(
                        "station {:?} has no hj212_pw_env or hj212_pw_file, so its logger cannot be authenticated",
                        logger.station
                    ),
                ))
            }
            Some(pw) if !same_bytes(pw.expose().as_bytes(), sent.as_bytes()) => {
                return Err((
                    RefusalKind::BadPassword,
                    format!(
                        "wrong PW for station {:?} (MN {:?})",
                        logger.station, frame.mn
                    ),
                ))
            }
            Some(_) => {}
        }
        let mut conns = self.shared.conns();
        let bound = conns.get(&self.id).and_then(|c| c.mn.clone());
        match bound {
            Some(mn) if mn != frame.mn => {
                return Err((
                    RefusalKind::MnMismatch,
                    format!(
                        "this connection carries MN {mn:?}; a frame of MN {:?} needs its own connection (one logger per connection)",
                        frame.mn
                    ),
                ))
            }
            Some(_) => {}
            None => {
                // The logger connected again without closing its old connection: the old
                // one can only be stale.
                let older: Vec<u64> = conns
                    .iter()
                    .filter(|(id, c)| **id != self.id && c.mn.as_deref() == Some(&frame.mn))
                    .map(|(id, _)| *id)
                    .collect();
                if let Some(c) = conns.get_mut(&self.id) {
                    c.mn = Some(frame.mn.clone());
                }
                drop(conns);
                for id in older {
                    self.shared.kick(id, CloseReason::Replaced);
                }
                tracing::debug!(peer = %self.peer, mn = %frame.mn, station = %logger.station, "HJ 212 TCP logger connected");
            }
        }
        if !frame.needs_ack() {
            return Ok(Checked::New {
                topic: logger.topic.clone(),
                key: None,
            });
        }
        let text = String::from_utf8_lossy(line);
        let crc = text.trim_end_matches(['\r', '\n']);
        let crc = crc.get(crc.len().saturating_sub(4)..).unwrap_or("");
        let key = acked::key(&frame, crc);
        if self
            .shared
            .acked
            .contains(&key, chrono::Utc::now().timestamp())
        {
            return Ok(Checked::Again(frame.data_ack().encode().into_bytes()));
        }
        Ok(Checked::New {
            topic: logger.topic.clone(),
            key: Some(key),
        })
    }
}

/// A checked frame.
enum Checked {
    /// To hand on under the station's topic; `key` ([`acked::key`]) when it asks for an
    /// acknowledgement.
    New { topic: String, key: Option<String> },
    /// Acknowledged before: its acknowledgement, to write again.
    Again(Vec<u8>),
}

/// Writes queued acknowledgements until the queue closes (the connection is done) or the
/// client stops reading; returns why it stopped. The frames they acknowledge are recorded
/// (synced, [`Acked::record`]) first, all that are queued at once, so a frame whose
/// acknowledgement left is never stored again.
async fn write_replies(
    mut write: OwnedWriteHalf,
    replies: &mut mpsc::Receiver<Ack>,
    metrics: &Metrics,
    acked: &Arc<Acked>,
) -> CloseReason {
    while let Some(first) = replies.recv().await {
        let mut batch = vec![first];
        while let Ok(more) = replies.try_recv() {
            batch.push(more);
        }
        let keys: Vec<String> = batch.iter().filter_map(|(k, _)| k.clone()).collect();
        let record = Arc::clone(acked);
        let now = chrono::Utc::now().timestamp();
        let recorded = tokio::task::spawn_blocking(move || record.record(&keys, now)).await;
        if !matches!(recorded, Ok(Ok(()))) {
            // Unrecorded, an acknowledgement could let a frame sent again be stored twice;
            // without it the logger sends the frame again, which is safe.
            tracing::error!("cannot record acknowledged HJ 212 frames (hj212_tcp_acked.log); their acknowledgements are not sent");
            continue;
        }
        for (_, bytes) in batch {
            match tokio::time::timeout(WRITE_TIMEOUT, write.write_all(&bytes)).await {
                Ok(Ok(())) => Metrics::add(&metrics.tcp_acks, 1),
                Ok(Err(_)) => return CloseReason::Peer,
                Err(_) => return CloseReason::Unresponsive,
            }
        }
    }
    let _ = write.shutdown().await;
    CloseReason::Shutdown
}

/// Resolves once the daemon says [`Phase::Disconnect`] (or is gone).
async fn disconnect(phase: &mut watch::Receiver<Phase>) {
    while *phase.borrow() != Phase::Disconnect {
        if phase.changed().await.is_err() {
            return;
        }
    }
}

/// Compares a password in time independent of where it differs.
fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A token bucket: `per_second` frames a second, with a burst of as many.
struct Rate {
    per_second: f64,
    tokens: f64,
    at: Instant,
}

impl Rate {
    fn new(per_second: f64) -> Rate {
        Rate {
            per_second,
            tokens: per_second.max(1.0),
            at: Instant::now(),
        }
    }

    /// Takes one token at `now`; `Some(wait)` when the frame must wait that long for it.
    fn take(&mut self, now: Instant) -> Option<Duration> {
        let burst = self.per_second.max(1.0);
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.per_second).min(burst);
        self.at = now;
        self.tokens -= 1.0;
        (self.tokens < 0.0).then(|| Duration::from_secs_f64(-self.tokens / self.per_second))
    }
}

#[cfg(test)]
mod tests;
