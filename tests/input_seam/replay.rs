//! A test-only input source, "replay": plays a list of (topic, payload) messages as a data
//! logger's connection would deliver them, and records every receipt the store answers. It
//! implements `riverwatch::ingest::Source` from outside the crate, as the HJ 212 TCP listener
//! will from its own folder, and is registered the way `run` registers MQTT: one more entry
//! in `app::Inputs`.

use riverwatch::domain::flow::{Acknowledge, Receipt};
use riverwatch::ingest::{Inbound, Phase, Running, Source, SourceIo};
use std::sync::{Arc, Mutex};

pub struct Replay {
    messages: Vec<(String, String)>,
    /// The receipts answered, in the order the store answered them; shared with the test.
    answered: Arc<Mutex<Vec<Receipt>>>,
}

impl Replay {
    pub fn new(messages: Vec<(String, String)>) -> Replay {
        Replay {
            messages,
            answered: Arc::default(),
        }
    }

    /// The receipts answered so far, readable after the source moved into the daemon.
    pub fn answered(&self) -> Arc<Mutex<Vec<Receipt>>> {
        Arc::clone(&self.answered)
    }
}

/// Keeps each answered receipt, as a logger keeps the acknowledgements it waits for.
struct Recorder(Arc<Mutex<Vec<Receipt>>>);

impl Acknowledge for Recorder {
    fn answer(&self, receipt: Receipt) {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(receipt);
    }
}

impl Source for Replay {
    fn name(&self) -> &'static str {
        "replay"
    }

    fn acknowledger(&self) -> Arc<dyn Acknowledge> {
        Arc::new(Recorder(Arc::clone(&self.answered)))
    }

    fn run(self: Box<Self>, io: SourceIo) -> Running {
        let SourceIo {
            index,
            messages,
            mut phase,
            ..
        } = io;
        Box::pin(async move {
            // Each message's token is its position, so the test can check the order answered.
            for (i, (topic, payload)) in self.messages.into_iter().enumerate() {
                let msg = Inbound {
                    topic,
                    payload: payload.into_bytes().into(),
                    receipt: Receipt {
                        source: index,
                        token: Some(i as u64),
                        reply: None,
                    },
                };
                if messages.send(msg).await.is_err() {
                    return;
                }
            }
            // A source ends at `Disconnect`; until `Draining` it keeps its sender, as a
            // connection that could still deliver.
            while *phase.borrow() == Phase::Running {
                if phase.changed().await.is_err() {
                    return;
                }
            }
            drop(messages);
            while *phase.borrow() != Phase::Disconnect {
                if phase.changed().await.is_err() {
                    return;
                }
            }
        })
    }
}
