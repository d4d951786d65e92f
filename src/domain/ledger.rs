//! The acknowledgement ledger: releases MQTT acknowledgements in receive order, each only
//! once its message is in custody.
//!
//! Fed by the store, which registers every message as it arrives ([`Ledger::receive`]) and reports
//! custody as writes and spool appends finish, possibly out of order when several batches are in
//! flight ([`Ledger::custody`]); feeds each source's `Acknowledge` with the receipts that may go
//! out ([`Ledger::release`]). MQTT 3.1.1 (§4.6) wants PUBACKs in the order the PUBLISH packets
//! came, and a PUBACK tells the broker it may forget the message, so an acknowledgement leaves only
//! when its own message and every earlier one are safe. Pure and generic over what an
//! acknowledgement is.

use std::collections::VecDeque;

/// Receive-ordered messages awaiting custody.
#[derive(Debug)]
pub struct Ledger<T> {
    /// Sequence number of `slots[0]`.
    base: u64,
    /// One slot per message not yet released: its acknowledgement and whether it is in custody.
    slots: VecDeque<(T, bool)>,
}

impl<T> Default for Ledger<T> {
    fn default() -> Self {
        Ledger {
            base: 0,
            slots: VecDeque::new(),
        }
    }
}

impl<T> Ledger<T> {
    /// Registers a message; returns its sequence number, for `custody`.
    pub fn receive(&mut self, ack: T) -> u64 {
        self.slots.push_back((ack, false));
        self.base + self.slots.len() as u64 - 1
    }

    /// Marks messages `from..to` (sequence numbers) as in custody. Numbers already released or
    /// never given out are ignored: a late or repeated report changes nothing.
    pub fn custody(&mut self, from: u64, to: u64) {
        let start = from.max(self.base);
        let end = to.min(self.base + self.slots.len() as u64);
        for seq in start..end {
            if let Some(slot) = self.slots.get_mut((seq - self.base) as usize) {
                slot.1 = true;
            }
        }
    }

    /// Takes the acknowledgements that may go out now: the longest run of messages in
    /// custody at the front, in receive order.
    pub fn release(&mut self) -> Vec<T> {
        let mut out = Vec::new();
        while self.slots.front().is_some_and(|s| s.1) {
            if let Some((ack, _)) = self.slots.pop_front() {
                out.push(ack);
                self.base += 1;
            }
        }
        out
    }

    /// Messages received and not yet released.
    pub fn pending(&self) -> usize {
        self.slots.len()
    }

    /// The sequence number the next message will get.
    pub fn next_seq(&self) -> u64 {
        self.base + self.slots.len() as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn waits_for_the_oldest_then_releases_the_run() {
        let mut l = Ledger::default();
        for name in ["a", "b", "c", "d"] {
            l.receive(name);
        }
        l.custody(1, 3);
        assert!(l.release().is_empty(), "a is not in custody yet");
        l.custody(0, 1);
        assert_eq!(l.release(), ["a", "b", "c"]);
        assert_eq!(l.pending(), 1);
        l.custody(0, 2); // repeated report of released messages
        assert!(l.release().is_empty());
        l.custody(3, 9); // reaches past the last message given out
        assert_eq!(l.release(), ["d"]);
        assert_eq!(l.next_seq(), 4);
    }

    proptest! {
        #![proptest_config(ProptestConfig { failure_persistence: None, ..ProptestConfig::default() })]

        /// Messages received in batches, batches finishing in any order: every acknowledgement
        /// leaves exactly once, in receive order, and never before its own custody.
        #[test]
        fn releases_in_order_only_after_custody(
            sizes in prop::collection::vec(0usize..5, 1..30),
            order in prop::collection::vec(any::<prop::sample::Index>(), 30),
        ) {
            let mut l = Ledger::default();
            let mut batches = Vec::new();
            for size in &sizes {
                let from = l.next_seq();
                for _ in 0..*size {
                    let seq = l.next_seq();
                    prop_assert_eq!(l.receive(seq), seq);
                }
                batches.push((from, l.next_seq()));
            }
            let total = l.next_seq();
            let mut in_custody = vec![false; total as usize];
            let mut released = Vec::new();
            let mut remaining = batches;
            let mut picks = order.iter().cycle();
            while !remaining.is_empty() {
                let i = picks.next().map_or(0, |ix| ix.index(remaining.len()));
                let (from, to) = remaining.swap_remove(i);
                l.custody(from, to);
                for seq in from..to {
                    in_custody[seq as usize] = true;
                }
                for seq in l.release() {
                    prop_assert!(in_custody[seq as usize], "released {} before custody", seq);
                    released.push(seq);
                }
            }
            prop_assert_eq!(released, (0..total).collect::<Vec<_>>());
            prop_assert_eq!(l.pending(), 0);
        }
    }
}
