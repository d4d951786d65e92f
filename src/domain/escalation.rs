//! Escalation when a bureau does not acknowledge (SPEC §7, §10): whether a yellow-or-above
//! alert or incident that a bureau was told of, and has not acknowledged, is due to go to the
//! bureau's `escalation` recipients now.
//!
//! Fed by the API's view (`api::Live`), which keeps one [`Watch`] per (alert or incident,
//! bureau) from the moment the bureau is notified until it acknowledges or the alert ends,
//! and asked by the judging task on its timer, with the wall time; what is due ([`Due`]) goes
//! to `notify::render_escalation`. Pure: `now` is an argument. The first escalation goes
//! `after` the bureau was first told; later ones follow the re-notify interval
//! (`[alerts] renotify`), and there are none when re-notify is off.

use super::alert::Level;
use super::message::Text;
use chrono::{DateTime, Duration, Utc};

/// One bureau's wait for its acknowledgement of one alert or incident.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Watch {
    /// When the bureau was first notified (wall time).
    pub since: DateTime<Utc>,
    /// How many escalations went out already.
    pub sent: u32,
    /// When the last one went out.
    pub last: Option<DateTime<Utc>>,
}

/// An escalation due now: its notifications are rendered from this (`notify::render_escalation`).
#[derive(Debug, Clone, PartialEq)]
pub struct Due {
    /// The alert's or incident's id.
    pub target: String,
    pub incident: bool,
    pub bureau: String,
    pub level: String,
    pub station: String,
    /// When the bureau was first told.
    pub since: DateTime<Utc>,
    /// 1 for the first escalation, then 2, …
    pub nth: u32,
    /// What the bureau was last sent about it.
    pub text: Text,
}

/// Whether the level asks for an acknowledgement: yellow and above (blue and data levels are
/// early warnings and digests, which nobody is paged for).
pub fn is_watched(level: Level) -> bool {
    level >= Level::Yellow
}

/// Whether the escalation numbered `w.sent` is due at `now`: first `after` past `w.since`,
/// then every `renotify` past the last one (never again without re-notify). An acknowledged
/// alert never escalates.
pub fn due(
    w: &Watch,
    acknowledged: bool,
    after: Duration,
    renotify: Option<Duration>,
    now: DateTime<Utc>,
) -> bool {
    if acknowledged {
        return false;
    }
    match w.last {
        None => now - w.since >= after,
        Some(last) => renotify.is_some_and(|r| r > Duration::zero() && now - last >= r),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn an_unacknowledged_alert_escalates_once_then_as_renotify_says() {
        let t0 = Utc
            .with_ymd_and_hms(2026, 11, 26, 2, 0, 0)
            .single()
            .expect("time");
        let m = Duration::minutes;
        let fresh = Watch {
            since: t0,
            sent: 0,
            last: None,
        };
        let once = Watch {
            since: t0,
            sent: 1,
            last: Some(t0 + m(30)),
        };
        // (watch, acknowledged, renotify, minutes after t0, due)
        let table = [
            (fresh, false, None, 0, false),
            (fresh, false, None, 29, false),
            (fresh, false, None, 30, true),
            (fresh, false, None, 600, true),
            (fresh, true, None, 30, false),
            (fresh, true, Some(m(60)), 600, false),
            (once, false, None, 31, false),
            (once, false, None, 6000, false),
            (once, false, Some(m(60)), 89, false),
            (once, false, Some(m(60)), 90, true),
            (once, true, Some(m(60)), 90, false),
            (once, false, Some(Duration::zero()), 6000, false),
        ];
        for (w, acked, renotify, at, expected) in table {
            assert_eq!(
                due(&w, acked, m(30), renotify, t0 + m(at)),
                expected,
                "{w:?} acknowledged={acked} renotify={renotify:?} at +{at} min"
            );
        }
    }

    #[test]
    fn yellow_and_above_wait_for_an_acknowledgement() {
        for (level, watched) in [
            (Level::Data, false),
            (Level::Blue, false),
            (Level::Yellow, true),
            (Level::Orange, true),
            (Level::Red, true),
        ] {
            assert_eq!(is_watched(level), watched, "{level:?}");
        }
    }
}
