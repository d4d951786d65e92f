//! A test-only notification channel, "room": a chat room per bureau (`room-<bureau id>`)
//! for its duty officers, as a WeCom or DingTalk group robot is, that keeps what it is sent in
//! memory. It implements `riverwatch::notify::Channel` from
//! outside the crate, as a WeCom or DingTalk robot would from its own folder, and is
//! registered the way `run` registers email and SMS: one more entry in `Outputs::channels`.
//!
//! Its first attempt fails transiently, so the test also sees a new channel retried by the
//! same worker and counted under the same metric names.

use riverwatch::domain::message::Text;
use riverwatch::domain::network::{Bureau, Contacts};
use riverwatch::notify::outbox::Item;
use riverwatch::notify::{Channel, Draft, Names, SendError, Sending};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

pub struct Room {
    /// Each bureau's duty contacts and its room: a channel configured per bureau finds the
    /// bureau's room by its contacts. Other contacts (the station operators) have no room.
    rooms: Vec<(Contacts, String)>,
    /// Every item delivered, in delivery order; shared with the test.
    heard: Arc<Mutex<Vec<Item>>>,
    /// Set by the first attempt, which fails transiently.
    tried: AtomicBool,
}

impl Room {
    /// A room for the duty officers of each of `bureaus`.
    pub fn for_duty_of(bureaus: &[Bureau]) -> Room {
        Room {
            rooms: bureaus
                .iter()
                .map(|b| (b.duty.clone(), format!("room-{}", b.id)))
                .collect(),
            heard: Arc::default(),
            tried: AtomicBool::new(false),
        }
    }

    /// What the room has been sent so far, readable after the channel moved into the daemon.
    pub fn heard(&self) -> Arc<Mutex<Vec<Item>>> {
        Arc::clone(&self.heard)
    }
}

impl Channel for Room {
    fn names(&self) -> Names {
        Names::of("room")
    }

    fn recipients(&self, to: &Contacts) -> Vec<String> {
        self.rooms
            .iter()
            .filter(|(duty, _)| duty == to)
            .map(|(_, room)| room.clone())
            .collect()
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
