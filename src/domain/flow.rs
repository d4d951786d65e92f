//! What travels between the daemon's stages: a message's [`Decoded`] readings with its
//! custody [`Receipt`], and the screen's verdict on them, [`Judged`].
//!
//! Made by the ingest's decoder from a source's transport message (`Decoded`), turned into
//! `Judged` by the screen (the domain rules), encoded and put in custody by the store, whose ledger then
//! releases each `Receipt` back to the source that issued it. The receipt is opaque to every
//! stage but that source: the screen and the store carry it without knowing the transport, so
//! no broker or socket type travels the pipeline (an MQTT packet id, a TCP connection).

use super::alert::Transition;
use super::param::Param;
use super::qc::Flag;
use super::reading::{Judgement, Reading};
use chrono::{DateTime, Utc};

/// An input source's proof of receipt of one transport message, answered (acknowledged) once
/// everything the message caused is in custody, in receive order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receipt {
    /// Which source issued it: the index of the source in the daemon's source list.
    pub source: usize,
    /// The source's own handle of the message (for MQTT: connection generation, packet id
    /// and QoS); `None` when the message needs no acknowledgement (MQTT QoS 0, the offline
    /// timer's alert points).
    pub token: Option<u64>,
    /// What to send back once the message is in custody: the HJ 212 data acknowledgement
    /// (CN=9014), which tells a data logger its data is safe.
    pub reply: Option<Reply>,
}

impl Receipt {
    /// The receipt of what no source delivered (the offline timer's alert points): the store
    /// releases it in order and answers nobody.
    pub fn none() -> Receipt {
        Receipt {
            source: usize::MAX,
            token: None,
            reply: None,
        }
    }
}

impl Default for Receipt {
    fn default() -> Receipt {
        Receipt::none()
    }
}

/// A reply sent back through the source once its message is in custody.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// Where to, in the source's terms (for MQTT, the topic; a connection-bound source ignores
    /// it).
    pub to: String,
    pub payload: Vec<u8>,
}

/// Answers a source's receipts on its transport; the store calls it as its ledger releases
/// them, in receive order. It must not wait: it queues the acknowledgement (and any reply) for
/// the source's connection and returns, so releasing a receipt is no hand-off to another task.
/// Implemented by each input source (the shell); declared here, beside [`Receipt`], so the
/// store answers receipts without knowing any source.
pub trait Acknowledge: Send + Sync {
    fn answer(&self, receipt: Receipt);
}

/// One transport message decoded: the valid readings of one station, in reading-time order,
/// and the receipt that acknowledges the message. A message whose payload was refused whole
/// still travels, with no readings, so its receipt is answered in order.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Decoded {
    /// The message's origin (for MQTT, its topic), named by dead-letter records of points the
    /// database rejects.
    pub origin: String,
    /// The station's position in [`Network::stations`](super::network::Network::stations);
    /// `None` when the message named no configured station.
    pub station: Option<usize>,
    pub readings: Vec<Reading>,
    pub receipt: Receipt,
}

/// One reading with what the screen made of it.
#[derive(Debug, Clone, PartialEq)]
pub struct JudgedReading {
    pub reading: Reading,
    /// The QARTOD flag of each value, as stored in `<key>_qc`.
    pub qc: Vec<(Param, Flag)>,
    /// Flags of the station's earlier values that this reading settled: (parameter, that
    /// reading's time, its final flag).
    pub revised: Vec<(Param, DateTime<Utc>, Flag)>,
    pub judgement: Judgement,
}

/// A message after the screen: its judged readings and the alert transitions they (or the
/// offline timer) caused, with the receipt still attached.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Judged {
    pub origin: String,
    /// The station's position in the network, as in [`Decoded`]; `None` for the offline
    /// timer's transitions, which may span stations.
    pub station: Option<usize>,
    pub readings: Vec<JudgedReading>,
    pub transitions: Vec<Transition>,
    /// What the transitions did to the incidents, in order.
    pub incidents: Vec<super::incident::IncidentEvent>,
    pub receipt: Receipt,
}
