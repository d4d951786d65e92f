//! A test-only notification channel, "room": a chat room per bureau (`room-<bureau id>`)
//! that keeps what it is sent in memory. It implements `riverwatch::notify::Channel` from
//! outside the crate, as a WeCom or DingTalk robot would from its own folder, and is
//! registered the way `run` registers email and SMS: one more entry in `Outputs::channels`.
//!
//! Its first attempt fails transiently, so the test also sees a new channel retried by the
//! same worker and counted under the same metric names.

use riverwatch::domain::message::Text;
use riverwatch::domain::network::Bureau;
use riverwatch::notify::outbox::Item;
use riverwatch::notify::{Channel, Draft, Names, SendError, Sending};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

#[derive(Default)]
pub struct Room {
    /// Every item delivered, in delivery order; shared with the test.
    heard: Arc<Mutex<Vec<Item>>>,
    /// Set by the first attempt, which fails transiently.
    tried: AtomicBool,
}

impl Room {
    /// What the room has been sent so far, readable after the channel moved into the daemon.
    pub fn heard(&self) -> Arc<Mutex<Vec<Item>>> {
        Arc::clone(&self.heard)
    }
}

impl Channel for Room {
    fn names(&self) -> Names {
        Names::of("room")
    }

    fn recipients(&self, bureau: &Bureau) -> Vec<String> {
        vec![format!("room-{}", bureau.id)]
    }

    /// The short text (the SMS wording), once per bureau.
    fn drafts(&self, text: &Text, to: Vec<String>) -> Vec<Draft> {
        vec![Draft {
            suffix: "room".into(),
            to,
            subject: String::new(),
            text: text.short.clone(),
        }]
    }

    fn send<'a>(&'a self, item: &'a Item) -> Sending<'a> {
        Box::pin(async move {
            if !self.tried.swap(true, Ordering::SeqCst) {
                return Err(SendError::Transient("the room is still opening".into()));
            }
            self.heard
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(item.clone());
            Ok(())
        })
    }
}
