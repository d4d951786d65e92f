//! Growth policy for the rule core's ring buffers (`VecDeque`s of recent values).
//!
//! Used by `qc` and `rules`, whose windows hold a few hundred values each for every
//! station and parameter. A `VecDeque` doubles its capacity when full, so a window of 289
//! values (a day at 5 minutes) sits in room for 512; across a 1,000-station network that
//! slack was most of the daemon's memory. Here a full buffer grows by a quarter instead, so
//! a window settles within about 25 % of its length.

use std::collections::VecDeque;

/// Appends `x`, growing a full buffer by a quarter (at least 4) rather than doubling it.
pub fn push<T>(d: &mut VecDeque<T>, x: T) {
    if d.len() == d.capacity() {
        d.reserve_exact((d.len() / 4).max(4));
    }
    d.push_back(x);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_window_settles_within_a_quarter_of_its_length() {
        let mut d = VecDeque::new();
        for i in 0..10_000u32 {
            push(&mut d, i);
            while d.len() > 289 {
                d.pop_front();
            }
        }
        assert_eq!(d.len(), 289);
        assert!(d.capacity() >= 290, "{}", d.capacity());
        assert!(d.capacity() <= 290 * 5 / 4 + 4, "{}", d.capacity());
        assert_eq!(d.front(), Some(&(10_000 - 289)));
    }
}
