//! Lifecycle tables and properties: never fires before persistence is met, never resolves
//! before clearing holds, and noise inside a hysteresis band gives one firing per episode.

use super::*;
use chrono::TimeZone;
use proptest::prelude::*;

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 26, 0, 0, 0).unwrap()
}

/// Observations of one episode, 石角's NH3-N exceedance, alone or in its station's list.
trait Feed {
    fn feed(&mut self, ev: Evidence, obs: Obs, policy: Persistence) -> Option<Transition>;
}

/// The NH3-N exceedance observation the tests feed.
fn nh3n_exceedance(evidence: Evidence, obs: Obs, policy: Persistence) -> Observation {
    Observation {
        rule: Rule::Exceedance,
        param: Some(Param::Nh3n),
        evidence,
        obs,
        policy,
        context: Context::None,
    }
}

impl Feed for Episode {
    fn feed(&mut self, ev: Evidence, obs: Obs, policy: Persistence) -> Option<Transition> {
        self.observe("shijiao", nh3n_exceedance(ev, obs, policy))
    }
}

impl Feed for Episodes {
    fn feed(&mut self, ev: Evidence, obs: Obs, policy: Persistence) -> Option<Transition> {
        self.observe("shijiao", nh3n_exceedance(ev, obs, policy))
    }
}

/// Feeds observations 1 h apart: 'y'/'o' breach yellow/orange, '~' hold, '.' clear. Returns
/// one symbol per observation: F fired, E escalated, M reminder, R resolved, '.' nothing.
fn check(obs: &str, policy: Persistence) -> String {
    let mut e = Episode::default();
    let mut out = String::new();
    for (i, c) in obs.chars().enumerate() {
        let o = match c {
            'y' => Obs::Breach(Level::Yellow),
            'o' => Obs::Breach(Level::Orange),
            '~' => Obs::Hold,
            _ => Obs::Clear,
        };
        let ev = Evidence {
            ts: t0() + Duration::hours(i as i64),
            value: i as f64,
            class: None,
        };
        out.push(match e.feed(ev, o, policy).map(|t| t.kind) {
            Some(Kind::Fired) => 'F',
            Some(Kind::Escalated) => 'E',
            Some(Kind::Reminder) => 'M',
            Some(Kind::Resolved) => 'R',
            None => '.',
        });
    }
    out
}

#[test]
fn lifecycle_table() {
    let two = Persistence::default();
    let m_of_n = Persistence {
        fire_after: 2,
        window: 3,
        ..two
    };
    let remind = Persistence {
        renotify: Some(Duration::hours(3)),
        ..two
    };
    let one = Persistence::ONCE;
    let table: &[(&str, Persistence, &str)] = &[
        ("..yy..", two, "...F.R"),
        (".y.y.", two, "....."),
        ("y.y.y", m_of_n, "..F.."),
        ("yy~.~..", two, ".F....R"),
        ("yyo..", two, ".FE.R"),
        ("yyyyyyyy", remind, ".F..M..M"),
        ("y.y.", one, "FRFR"),
    ];
    for &(obs, policy, expected) in table {
        assert_eq!(check(obs, policy), expected, "{obs} with {policy:?}");
    }
}

#[test]
fn ids_are_stable_and_replays_ignored() {
    let mut e = Episode::default();
    let ev = |h: i64| Evidence {
        ts: t0() + Duration::hours(h),
        value: 1.0,
        class: None,
    };
    let p = Persistence::default();
    assert!(e.feed(ev(0), Obs::Breach(Level::Yellow), p).is_none());
    assert!(
        e.feed(ev(0), Obs::Breach(Level::Yellow), p).is_none(),
        "same time again"
    );
    let fired = e.feed(ev(1), Obs::Breach(Level::Yellow), p).unwrap();
    // The episode's start, 00:00 UTC, in China Standard Time as every message shows it.
    assert_eq!(fired.alert_id, "shijiao-exceedance-nh3n-20261126T080000");
    assert!(
        fired
            .alert_id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'),
        "unreserved URL characters only: {}",
        fired.alert_id
    );
    assert_eq!(fired.since, t0());
    e.feed(ev(2), Obs::Clear, p);
    let resolved = e.feed(ev(3), Obs::Clear, p).unwrap();
    assert_eq!(
        (resolved.kind, resolved.alert_id.as_str()),
        (Kind::Resolved, fired.alert_id.as_str())
    );
}

/// Like `check`, with each observation's hour written after it: "y5 .3" breaches at 5 h,
/// then clears at 3 h (a late reading). One symbol per observation, as `check` gives.
fn check_at(obs: &str, policy: Persistence) -> String {
    let mut e = Episode::default();
    let mut out = String::new();
    for token in obs.split_whitespace() {
        let (c, hour) = token.split_at(1);
        let o = match c {
            "y" => Obs::Breach(Level::Yellow),
            "o" => Obs::Breach(Level::Orange),
            "~" => Obs::Hold,
            _ => Obs::Clear,
        };
        let h: i64 = hour.parse().unwrap();
        let ev = Evidence {
            ts: t0() + Duration::hours(h),
            value: h as f64,
            class: None,
        };
        out.push(match e.feed(ev, o, policy).map(|t| t.kind) {
            Some(Kind::Fired) => 'F',
            Some(Kind::Escalated) => 'E',
            Some(Kind::Reminder) => 'M',
            Some(Kind::Resolved) => 'R',
            None => '.',
        });
    }
    out
}

#[test]
fn late_observations_count_for_nothing() {
    let two = Persistence::default();
    let one = Persistence::ONCE;
    let table: &[(&str, Persistence, &str)] = &[
        // Firing at 6 h: clears stamped before (or at) it neither resolve nor count.
        ("y5 y6 .1 .2 .3 .6", two, ".F...."),
        ("y5 y6 .1 .7 .8", two, ".F..R"),
        ("y5 y6 .7 .2 .8", two, ".F..R"),
        ("y5 y6 .4 .5", one, "F..."),
        // A late breach neither escalates nor restarts a clearing streak.
        ("y5 y6 .7 o2 .8", two, ".F..R"),
        // Quiet: a late breach does not count toward firing either.
        ("y5 y1 y6", two, "..F"),
        ("y5 .6 y2 y7", two, "...."),
    ];
    for &(obs, policy, expected) in table {
        assert_eq!(check_at(obs, policy), expected, "{obs} with {policy:?}");
    }
}

fn arb_policy() -> impl Strategy<Value = Persistence> {
    (1u32..4, 0u32..3, 1u32..4).prop_map(|(m, extra, c)| Persistence {
        fire_after: m,
        window: m + extra,
        clear_after: c,
        renotify: None,
    })
}

proptest! {
    #![proptest_config(ProptestConfig { failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn persistence_and_clearing_hold(
        obs in proptest::collection::vec(0u8..3, 1..80),
        policy in arb_policy(),
    ) {
        let mut e = Episode::default();
        let mut firing = false;
        let mut history: Vec<u8> = Vec::new();
        for (i, &o) in obs.iter().enumerate() {
            history.push(o);
            let ob = match o { 0 => Obs::Breach(Level::Yellow), 1 => Obs::Hold, _ => Obs::Clear };
            let ev = Evidence { ts: t0() + Duration::hours(i as i64), value: 0.0, class: None };
            match e.feed(ev, ob, policy).map(|t| t.kind) {
                Some(Kind::Fired) => {
                    prop_assert!(!firing);
                    let window = &history[history.len().saturating_sub(policy.window as usize)..];
                    let breaches = window.iter().filter(|&&x| x == 0).count() as u32;
                    prop_assert!(breaches >= policy.fire_after, "fired with {} of {:?}", breaches, window);
                    prop_assert_eq!(o, 0);
                    firing = true;
                }
                Some(Kind::Resolved) => {
                    prop_assert!(firing);
                    let tail = &history[history.len().saturating_sub(policy.clear_after as usize)..];
                    prop_assert!(tail.len() as u32 == policy.clear_after && tail.iter().all(|&x| x == 2), "resolved after {:?}", tail);
                    firing = false;
                }
                Some(_) => prop_assert!(firing),
                None => {}
            }
        }
    }

    /// A value flapping around a limit: breaches above it, holds inside the hysteresis band
    /// below it. Without a clear reading, it fires at most once.
    #[test]
    fn flapping_inside_the_band_fires_once(
        flaps in proptest::collection::vec(any::<bool>(), 1..100),
        policy in arb_policy(),
    ) {
        let mut e = Episode::default();
        let mut fired = 0;
        for (i, &above) in flaps.iter().enumerate() {
            let ob = if above { Obs::Breach(Level::Yellow) } else { Obs::Hold };
            let ev = Evidence { ts: t0() + Duration::hours(i as i64), value: 0.0, class: None };
            if e.feed(ev, ob, policy).is_some_and(|t| t.kind == Kind::Fired) {
                fired += 1;
            }
        }
        prop_assert!(fired <= 1);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { failure_persistence: None, ..ProptestConfig::default() })]

    /// A restart at any point (save, then restore into a fresh book) changes nothing: the
    /// same observations give the same transitions as without it, and replaying the
    /// observations before the restart (a broker's redelivery) adds none.
    #[test]
    fn a_restart_neither_repeats_nor_forgets(
        obs in proptest::collection::vec(0u8..3, 1..60),
        restart_at in 0usize..60,
        replay in 0usize..5,
        policy in arb_policy(),
    ) {
        let ob = |o: u8| match o { 0 => Obs::Breach(Level::Yellow), 1 => Obs::Hold, _ => Obs::Clear };
        let ev = |i: usize| Evidence { ts: t0() + Duration::hours(i as i64), value: i as f64, class: None };
        let mut straight = Episodes::default();
        let expected: Vec<_> = obs
            .iter()
            .enumerate()
            .filter_map(|(i, &o)| straight.feed(ev(i), ob(o), policy))
            .collect();
        let cut = restart_at.min(obs.len());
        let mut before = Episodes::default();
        let mut got: Vec<_> = obs[..cut]
            .iter()
            .enumerate()
            .filter_map(|(i, &o)| before.feed(ev(i), ob(o), policy))
            .collect();
        let mut after = Episodes::default();
        let saved = |e: &Episodes| {
            let mut out = Vec::new();
            e.save("shijiao", &mut out);
            out
        };
        for s in saved(&before) {
            after.restore(s);
        }
        prop_assert_eq!(saved(&after), saved(&before));
        let from = cut.saturating_sub(replay);
        for (i, &o) in obs.iter().enumerate().take(cut).skip(from) {
            prop_assert_eq!(after.feed(ev(i), ob(o), policy), None);
        }
        for (i, &o) in obs.iter().enumerate().skip(cut) {
            got.extend(after.feed(ev(i), ob(o), policy));
        }
        prop_assert_eq!(got, expected);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { failure_persistence: None, ..ProptestConfig::default() })]

    /// Late observations — of any kind, stamped at or before the newest the episode has seen —
    /// slipped in after any firing produce no transition (never a resolution), and the
    /// stream's own transitions stay exactly as without them.
    #[test]
    fn late_observations_after_a_firing_change_nothing(
        obs in proptest::collection::vec(0u8..3, 1..60),
        late in proptest::collection::vec((0u8..3, 0i64..48), 1..5),
        policy in arb_policy(),
    ) {
        let ob = |o: u8| match o { 0 => Obs::Breach(Level::Orange), 1 => Obs::Hold, _ => Obs::Clear };
        let ev = |h: i64| Evidence { ts: t0() + Duration::hours(h), value: h as f64, class: None };
        let mut straight = Episode::default();
        let expected: Vec<_> = obs
            .iter()
            .enumerate()
            .filter_map(|(i, &o)| straight.feed(ev(i as i64), ob(o), policy))
            .collect();
        let mut e = Episode::default();
        let mut got = Vec::new();
        for (i, &o) in obs.iter().enumerate() {
            let t = e.feed(ev(i as i64), ob(o), policy);
            let fired = t.as_ref().is_some_and(|t| t.kind == Kind::Fired);
            got.extend(t);
            if fired {
                for &(o, back) in &late {
                    prop_assert_eq!(e.feed(ev(i as i64 - back), ob(o), policy), None);
                }
            }
        }
        prop_assert_eq!(got, expected);
    }
}

#[test]
fn only_class_is_recorded_without_a_notification() {
    let silent: Vec<Rule> = Rule::ALL.into_iter().filter(|r| !r.notifies()).collect();
    assert_eq!(silent, [Rule::Class]);
}

/// The `ALL` lists hold the variants once each, in declaration order (which the derived
/// `Ord` follows): counters indexed by position in them line up with the variants.
#[test]
fn the_all_lists_follow_declaration_order() {
    for (i, r) in Rule::ALL.iter().enumerate() {
        assert_eq!(*r as usize, i, "{r}");
    }
    for (i, l) in Level::ALL.iter().enumerate() {
        assert_eq!(*l as usize, i, "{}", l.key());
    }
}

/// Alert ids carry the episode's start in China Standard Time, the time messages show: an
/// evening start in UTC is the next morning's id; station-level rules say `station`.
#[test]
fn ids_carry_china_standard_time() {
    use chrono::TimeZone;
    let utc = |y, mo, d, h, mi, s| Utc.with_ymd_and_hms(y, mo, d, h, mi, s).unwrap();
    for (rule, param, since, id) in [
        (
            Rule::Exceedance,
            Some(Param::Nh3n),
            utc(2026, 11, 25, 20, 0, 0),
            "shijiao-exceedance-nh3n-20261126T040000",
        ),
        (
            Rule::Offline,
            None,
            utc(2026, 12, 31, 16, 30, 5),
            "shijiao-offline-station-20270101T003005",
        ),
    ] {
        assert_eq!(alert_id("shijiao", rule, param, since), id);
    }
}
