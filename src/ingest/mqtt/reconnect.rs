//! When the MQTT source reconnects, and when a lost connection means that another client took
//! our session over: pure logic, given how long the connection was up, how it ended and a
//! random fraction; it returns how long to wait and whether a takeover episode began.
//!
//! Fed by the source's poll loop (`super::drive`) on every ConnAck and every connection error;
//! feeds its sleeps, its one log line per episode and `riverwatch_mqtt_takeovers_total`.
//!
//! Back-off: exponential with full jitter (the wait is uniform between zero and a ceiling that
//! starts at [`BASE`] and doubles per failure up to [`CAP`]; "Exponential Backoff And Jitter",
//! AWS Architecture Blog, 2015), so that many clients that lost one broker do not return in
//! step. It resets once a connection has stayed up for [`STABLE`], not on every ConnAck: a
//! broker that accepts us and then closes the connection must not be hammered either.
//!
//! Takeover: MQTT lets one session have one connection; a broker that gets a CONNECT with a
//! client id already connected closes the older connection (MQTT 3.1.1 §3.1.4; mosquitto logs
//! "Client X already connected, closing old connection"). Two instances with one
//! `[mqtt] client_id` therefore close each other's connection on every reconnect. Seen from
//! one of them: the broker closes the connection (end of stream or reset, not a keep-alive
//! timeout of ours) soon after accepting it, again and again. [`TAKEOVER_AFTER`] such closes
//! in a row, each before the connection became stable, begin an episode; during it every
//! wait is between half the cap and the cap, since reconnecting sooner only takes the session
//! back from the other instance, which then does the same. The episode ends when a connection
//! stays up for [`STABLE`]; [`STABLE`] is twice the cap, so that the other instance's longest
//! wait cannot end an episode by itself.

use std::time::Duration;

/// The first back-off ceiling.
pub const BASE: Duration = Duration::from_millis(100);
/// The largest wait between two connection attempts.
pub const CAP: Duration = Duration::from_secs(30);
/// How long a connection must stay up before the back-off resets and an episode ends.
pub const STABLE: Duration = Duration::from_secs(60);
/// Closes by the broker in a row, each within [`STABLE`] of its ConnAck, that make a
/// takeover episode.
pub const TAKEOVER_AFTER: u32 = 3;

/// How a connection (or an attempt to make one) ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// The connection was up for this long and the broker closed it (end of stream, reset).
    ClosedByBroker(Duration),
    /// The connection was up for this long and failed otherwise (keep-alive, protocol error).
    Failed(Duration),
    /// No connection was made (refused, unreachable, TLS, CONNACK refused).
    NotConnected,
}

/// What the poll loop does after a loss.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Next {
    /// How long to wait before the next attempt.
    pub wait: Duration,
    /// A takeover episode began with this loss: log it (once) and count it.
    pub takeover_began: bool,
}

/// The reconnection state of one source.
#[derive(Debug, Default)]
pub struct Reconnect {
    /// Losses since the last stable connection: the back-off ceiling is `BASE · 2^failures`.
    failures: u32,
    /// Connections in a row that the broker closed before they became stable.
    early_closes: u32,
    /// In a takeover episode: its begin was logged; waits stay near the cap.
    takeover: bool,
}

impl Reconnect {
    /// Whether a takeover episode is going on (the poll loop logs connects at debug then).
    pub fn in_takeover(&self) -> bool {
        self.takeover
    }

    /// The current connection has stayed up for [`STABLE`]: the back-off resets. Returns
    /// whether this ended a takeover episode.
    pub fn held(&mut self) -> bool {
        self.failures = 0;
        self.early_closes = 0;
        std::mem::take(&mut self.takeover)
    }

    /// A connection or an attempt ended as `ended`; `random` is uniform in [0, 1).
    pub fn lost(&mut self, ended: Ended, random: f64) -> Next {
        match ended {
            Ended::ClosedByBroker(up) | Ended::Failed(up) if up >= STABLE => {
                self.held();
            }
            Ended::ClosedByBroker(_) => self.early_closes += 1,
            Ended::Failed(_) | Ended::NotConnected => self.early_closes = 0,
        }
        let takeover_began = !self.takeover && self.early_closes >= TAKEOVER_AFTER;
        self.takeover |= takeover_began;
        let random = random.clamp(0.0, 1.0);
        let wait = if self.takeover {
            CAP.mul_f64(0.5 + 0.5 * random)
        } else {
            // 100 ms · 2^9 = 51 s is past the cap: the exponent needs no more range.
            let ceiling = BASE.saturating_mul(1 << self.failures.min(9)).min(CAP);
            ceiling.mul_f64(random)
        };
        self.failures = self.failures.saturating_add(1);
        Next {
            wait,
            takeover_began,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const MS: fn(u64) -> Duration = Duration::from_millis;

    /// Sequences of losses (with random = 1, the ceiling itself) and the waits and episode
    /// beginnings they give.
    #[test]
    fn waits_and_episodes_follow_the_losses() {
        use Ended::*;
        let short = ClosedByBroker(MS(300));
        // (what, losses, (wait in ms, episode began) after each)
        type Case<'a> = (&'a str, &'a [Ended], &'a [(u64, bool)]);
        let cases: &[Case] = &[
            (
                "broker down: doubling to the cap",
                &[NotConnected; 11],
                &[
                    (100, false),
                    (200, false),
                    (400, false),
                    (800, false),
                    (1_600, false),
                    (3_200, false),
                    (6_400, false),
                    (12_800, false),
                    (25_600, false),
                    (30_000, false),
                    (30_000, false),
                ],
            ),
            (
                "takeover: the third early close begins an episode, at the cap",
                &[short, short, short, short],
                &[(100, false), (200, false), (30_000, true), (30_000, false)],
            ),
            (
                "a stable connection in between: no episode, back-off reset",
                &[short, short, ClosedByBroker(STABLE), short, short],
                &[
                    (100, false),
                    (200, false),
                    (100, false),
                    (200, false),
                    (400, false),
                ],
            ),
            (
                "a keep-alive failure breaks the streak",
                &[short, short, Failed(MS(300)), short, short],
                &[
                    (100, false),
                    (200, false),
                    (400, false),
                    (800, false),
                    (1_600, false),
                ],
            ),
            (
                "an unreachable broker breaks the streak",
                &[short, short, NotConnected, short, short, short],
                &[
                    (100, false),
                    (200, false),
                    (400, false),
                    (800, false),
                    (1_600, false),
                    (30_000, true),
                ],
            ),
        ];
        for (what, losses, expected) in cases {
            let mut r = Reconnect::default();
            let got: Vec<(u64, bool)> = losses
                .iter()
                .map(|e| {
                    let n = r.lost(*e, 1.0);
                    (n.wait.as_millis() as u64, n.takeover_began)
                })
                .collect();
            assert_eq!(&got, expected, "{what}");
        }
    }

    #[test]
    fn a_connection_that_holds_ends_the_episode_once() {
        let mut r = Reconnect::default();
        for _ in 0..TAKEOVER_AFTER {
            r.lost(Ended::ClosedByBroker(MS(50)), 0.0);
        }
        assert!(r.in_takeover());
        assert!(r.held());
        assert!(!r.held());
        assert!(!r.in_takeover());
        assert_eq!(r.lost(Ended::NotConnected, 1.0).wait, BASE);
    }

    /// Two instances with one client id, simulated: each connect closes the other's
    /// connection. Whatever the random draws, the first instance's episode begins within its
    /// first few connects, fewer than 20 connects happen in 15 s, and no wait passes the cap.
    #[test]
    fn two_instances_with_one_client_id_settle_at_the_cap() {
        proptest!(ProptestConfig::with_cases(256), |(draws in prop::collection::vec(0.0f64..1.0, 64))| {
            let mut draws = draws.into_iter();
            let mut policy = [Reconnect::default(), Reconnect::default()];
            // Instance 0 connected at 0, instance 1 at 10 ms (closing 0's connection).
            let mut connected_at = [0.0f64, 0.01];
            let mut now = 0.01;
            let mut connects = 2;
            let mut began = [None, None];
            let mut closed = 0;
            while now < 15.0 {
                let up = Duration::from_secs_f64(now - connected_at[closed]);
                let next = policy[closed].lost(Ended::ClosedByBroker(up), draws.next().unwrap_or(0.5));
                prop_assert!(next.wait <= CAP);
                if next.takeover_began {
                    began[closed] = Some(now);
                }
                now += next.wait.as_secs_f64();
                connected_at[closed] = now;
                if now < 15.0 {
                    connects += 1;
                }
                closed = 1 - closed;
            }
            prop_assert!(connects < 20, "{} connects", connects);
            prop_assert!(began[0].is_some_and(|t| t < 15.0), "{:?}", began);
        });
    }
}
