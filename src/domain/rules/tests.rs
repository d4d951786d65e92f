//! Rule scenarios on the pure core: a slow rise warns (blue trend) before the exceedance; a
//! lone spike raises neither a station fault nor a water-quality alert, a persistent fault a
//! station fault; an upstream exceedance warns the
//! downstream station with its arrival time; a silent station goes offline once and resolves;
//! a value flapping around a limit fires once; red needs the upstream neighbour's confirmation.

use super::*;
use crate::domain::alert::Context;
use crate::domain::network::fixtures::reach_network;
use crate::domain::param::{DataFlag, Param};
use chrono::TimeZone;

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 1, 0, 0, 0).unwrap()
}

/// The fixture network with 七星岗 draining into 石角(界牌) in 10 h.
fn net() -> Network {
    reach_network()
}

fn reading(station: &str, ts: DateTime<Utc>, values: &[(Param, f64)]) -> Reading {
    Reading::of_values(station, ts, values)
}

/// (station, hours after t0, values)
type Feed<'a> = (&'a str, i64, Vec<(Param, f64)>);

/// Feeds readings in order; returns every transition.
fn run(rules: &mut Rules, net: &Network, feed: &[Feed]) -> Vec<Transition> {
    let mut all = Vec::new();
    for (station, h, values) in feed {
        let ts = t0() + Duration::hours(*h);
        let s = net.station(station).unwrap();
        all.extend(
            rules
                .reading(net, s, &reading(station, ts, values), ts)
                .transitions,
        );
    }
    all
}

fn fired(ts: &[Transition], rule: Rule) -> Vec<&Transition> {
    ts.iter()
        .filter(|t| t.rule == rule && t.kind == Kind::Fired)
        .collect()
}

#[test]
fn slow_rise_warns_before_the_exceedance() {
    let net = net();
    let mut rules = Rules::new(RuleConfig::default());
    // NH3-N rising 0.01 mg/L every 4 h from 0.20, with a little alternating noise.
    let feed: Vec<_> = (0..40)
        .map(|i| {
            let noise = if i % 2 == 0 { 0.004 } else { -0.004 };
            (
                "shijiao",
                i * 4,
                vec![(Param::Nh3n, 0.20 + 0.01 * i as f64 + noise)],
            )
        })
        .collect();
    let all = run(&mut rules, &net, &feed);
    let trend = fired(&all, Rule::Trend);
    let exceed = fired(&all, Rule::Exceedance);
    assert_eq!(trend.len(), 1, "{all:#?}");
    assert_eq!(exceed.len(), 1);
    assert!(
        trend[0].evidence.ts < exceed[0].evidence.ts,
        "the trend warns first"
    );
    assert_eq!(trend[0].level, Level::Blue);
    let Context::Trend {
        crossing,
        slope_per_day,
        ..
    } = trend[0].context
    else {
        panic!()
    };
    assert!((slope_per_day - 0.06).abs() < 0.01, "{slope_per_day}");
    assert!(
        crossing > trend[0].evidence.ts && crossing - trend[0].evidence.ts <= Duration::days(3)
    );
    // Where the rise started (the Sen line at the window's first value, 0.20 at t0) and the
    // test that found it: Hamed–Rao's, the default.
    let Context::Trend {
        test,
        baseline,
        from,
        points,
        ..
    } = trend[0].context
    else {
        panic!()
    };
    assert_eq!(test, crate::domain::trend::TrendTest::HamedRao);
    assert_eq!(from, t0());
    assert!((baseline - 0.20).abs() < 0.01, "{baseline}");
    assert!(points >= RuleConfig::default().trend_min_points, "{points}");
    assert!(
        crossing <= exceed[0].evidence.ts + Duration::hours(12),
        "projection close to the real crossing"
    );
}

#[test]
fn a_slow_rise_in_five_minute_data_also_warns_before_the_exceedance() {
    // The same rise, 0.06 mg/L a day, at a probe's 5-minute cadence: 2,300 values over 8
    // days. The trend window averages them per bucket, so it spans the 2 days the rule needs
    // (200 raw values would cover under 17 h).
    let net = net();
    let mut rules = Rules::new(RuleConfig::default());
    let s = net.station("shijiao").unwrap();
    let mut all = Vec::new();
    for i in 0..2300i64 {
        let noise = if i % 2 == 0 { 0.004 } else { -0.004 };
        let ts = t0() + Duration::minutes(5 * i);
        let value = 0.20 + 0.06 * (i as f64 * 5.0 / 1440.0) + noise;
        let out = rules.reading(
            &net,
            s,
            &reading("shijiao", ts, &[(Param::Nh3n, value)]),
            ts,
        );
        all.extend(out.transitions);
    }
    let trend = fired(&all, Rule::Trend);
    let exceed = fired(&all, Rule::Exceedance);
    assert_eq!(trend.len(), 1, "{trend:#?}");
    assert_eq!(exceed.len(), 1);
    assert!(
        trend[0].evidence.ts < exceed[0].evidence.ts,
        "the trend warns first"
    );
    let Context::Trend { slope_per_day, .. } = trend[0].context else {
        panic!()
    };
    assert!((slope_per_day - 0.06).abs() < 0.01, "{slope_per_day}");
}

#[test]
fn a_one_sample_analyser_slug_is_pollution_not_a_fault() {
    // At analyser spacing (4 h) a one-sample slug is as likely a real plume as a fault: it is
    // judged (劣Ⅴ), exceeds, and carries the QC note; no station fault (WATER.md §5.5).
    let net = net();
    let mut rules = Rules::new(RuleConfig::default());
    let s = net.station("shijiao").unwrap();
    let mut all = Vec::new();
    let mut classes = Vec::new();
    for (i, v) in [0.30, 0.31, 0.30, 0.32, 2.6, 0.31, 0.30, 0.31]
        .iter()
        .enumerate()
    {
        let ts = t0() + Duration::hours(4 * i as i64);
        let out = rules.reading(&net, s, &reading("shijiao", ts, &[(Param::Nh3n, *v)]), ts);
        classes.push(out.judgement.overall.map(Class::number));
        all.extend(out.transitions);
    }
    assert_eq!(classes[4], Some(6), "the slug is 劣Ⅴ");
    assert!(fired(&all, Rule::StationFault).is_empty(), "{all:#?}");
}

#[test]
fn an_outage_does_not_hide_a_spill() {
    // The case: NH3-N 0.40, 0.45, 0.42 four hours apart, four days of maintenance,
    // then 2.50 and 2.60 — an exceedance, no fault, and a class for both new readings.
    let net = net();
    let mut rules = Rules::new(RuleConfig::default());
    let s = net.station("shijiao").unwrap();
    let mut all = Vec::new();
    let mut classes = Vec::new();
    let hours = [0, 4, 8, 8 + 96, 8 + 100];
    for (h, v) in hours.iter().zip([0.40, 0.45, 0.42, 2.50, 2.60]) {
        let ts = t0() + Duration::hours(*h);
        let out = rules.reading(&net, s, &reading("shijiao", ts, &[(Param::Nh3n, v)]), ts);
        assert!(out.qc.iter().all(|(_, f)| *f == Flag::Good), "{:?}", out.qc);
        classes.push(out.judgement.overall.map(Class::number));
        all.extend(out.transitions);
    }
    assert_eq!(&classes[3..], [Some(6), Some(6)]);
    assert!(fired(&all, Rule::StationFault).is_empty(), "{all:#?}");
    assert_eq!(fired(&all, Rule::Exceedance).len(), 1, "{all:#?}");
}

#[test]
fn anoxic_water_is_judged_and_alerts_with_the_qc_note() {
    let net = net();
    let mut rules = Rules::new(RuleConfig::default());
    let s = net.station("shijiao").unwrap();
    let mut all = Vec::new();
    for i in 0..3 {
        let ts = t0() + Duration::hours(4 * i);
        let out = rules.reading(&net, s, &reading("shijiao", ts, &[(Param::Do, 0.04)]), ts);
        assert_eq!(out.judgement.overall, Some(Class::WORSE_THAN_V));
        all.extend(out.transitions);
    }
    let exceed = fired(&all, Rule::Exceedance);
    assert_eq!(exceed.len(), 1, "{all:#?}");
    assert!(
        matches!(exceed[0].context, Context::Suspect { .. }),
        "{:?}",
        exceed[0].context
    );
}

#[test]
fn a_run_at_the_detection_limit_is_class_one_and_no_fault() {
    let net = net();
    let mut rules = Rules::new(RuleConfig::default());
    let s = net.station("shijiao").unwrap();
    let mut all = Vec::new();
    for i in 0..30 {
        let ts = t0() + Duration::hours(4 * i);
        let out = rules.reading(
            &net,
            s,
            &reading("shijiao", ts, &[(Param::Nh3n, 0.025)]),
            ts,
        );
        assert_eq!(out.judgement.overall.map(Class::number), Some(1));
        assert!(out.qc.iter().all(|(_, f)| *f == Flag::Good), "{:?}", out.qc);
        all.extend(out.transitions);
    }
    assert!(fired(&all, Rule::StationFault).is_empty(), "{all:#?}");
}

#[test]
fn a_lone_probe_spike_is_flagged_but_is_neither_a_station_fault_nor_pollution() {
    let net = net();
    let mut rules = Rules::new(RuleConfig::default());
    let s = net.station("shijiao").unwrap();
    let mut all = Vec::new();
    let mut revised = Vec::new();
    for (i, v) in [0.30, 0.31, 0.30, 0.32, 2.6, 0.31, 0.30, 0.31]
        .iter()
        .enumerate()
    {
        // A 5-minute probe: an isolated spike fails QC.
        let ts = t0() + Duration::minutes(5 * i as i64);
        let out = rules.reading(&net, s, &reading("shijiao", ts, &[(Param::Nh3n, *v)]), ts);
        all.extend(out.transitions);
        revised.extend(out.revised);
    }
    assert!(fired(&all, Rule::Exceedance).is_empty(), "{all:#?}");
    // A lone spike is QC's business: flagged in the data, not a fault anyone must visit. It
    // fails three values (itself and both neighbours), fewer than the fault persistence.
    assert!(fired(&all, Rule::StationFault).is_empty(), "{all:#?}");
    // The spike's stored flag is corrected to FAIL when the next reading settles it.
    assert!(
        revised.contains(&(Param::Nh3n, t0() + Duration::minutes(20), Flag::Fail)),
        "{revised:?}"
    );
}

#[test]
fn a_persistent_probe_fault_fires_once_for_the_operators() {
    let net = net();
    let mut rules = Rules::new(RuleConfig::default());
    let s = net.station("shijiao").unwrap();
    let mut all = Vec::new();
    // A probe stuck far outside NH3-N's reporting range (gross range fail) from the third
    // reading on: the fourth failing value fires, once.
    for (i, v) in [0.30, 0.31, 150.0, 150.0, 150.0, 150.0, 150.0, 150.0]
        .iter()
        .enumerate()
    {
        let ts = t0() + Duration::minutes(5 * i as i64);
        let out = rules.reading(&net, s, &reading("shijiao", ts, &[(Param::Nh3n, *v)]), ts);
        let faults = fired(&out.transitions, Rule::StationFault).len();
        assert_eq!(faults, usize::from(i == 5), "reading {i}: {out:#?}");
        all.extend(out.transitions);
    }
    let faults = fired(&all, Rule::StationFault);
    assert_eq!(faults[0].level, Level::Data);
    assert_eq!(faults[0].since, t0() + Duration::minutes(10));
    assert!(
        matches!(&faults[0].context, Context::Fault { reason } if reason.to_string().contains("gross_range"))
    );
    assert!(
        fired(&all, Rule::Exceedance).is_empty(),
        "failed values are not judged"
    );
    // Operators only, even at a boundary section.
    assert_eq!(net.recipients(s, Rule::StationFault).len(), 1);
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig { failure_persistence: None, ..Default::default() })]

    /// One spike of any size at any place in a noisy probe series (pH, 1-minute readings)
    /// never raises a station fault.
    #[test]
    fn one_spike_never_raises_a_station_fault(
        noise in proptest::collection::vec(-0.05f64..0.05, 12..40),
        at in 1usize..11,
        size in proptest::prop_oneof![0.2f64..6.0, -6.0f64..-0.2],
    ) {
        let net = net();
        let mut rules = Rules::new(RuleConfig::default());
        let s = net.station("shijiao").unwrap();
        for (i, n) in noise.iter().enumerate() {
            let v = (7.2 + n + if i == at { size } else { 0.0 }).clamp(0.0, 14.0);
            let ts = t0() + Duration::minutes(i as i64);
            let out = rules.reading(&net, s, &reading("shijiao", ts, &[(Param::Ph, v)]), ts);
            proptest::prop_assert!(
                fired(&out.transitions, Rule::StationFault).is_empty(),
                "reading {i} ({v}): {:?}", out.transitions
            );
        }
    }
}

#[test]
fn upstream_exceedance_warns_downstream_with_arrival_time() {
    let net = net();
    let mut rules = Rules::new(RuleConfig::default());
    let all = run(
        &mut rules,
        &net,
        &[
            ("qixinggang", 0, vec![(Param::Nh3n, 1.2)]),
            ("qixinggang", 4, vec![(Param::Nh3n, 1.3)]),
            ("shijiao", 12, vec![(Param::Nh3n, 0.9)]),
            ("shijiao", 16, vec![(Param::Nh3n, 0.95)]),
            ("qixinggang", 20, vec![(Param::Nh3n, 0.2)]),
            ("qixinggang", 24, vec![(Param::Nh3n, 0.2)]),
        ],
    );
    let up = fired(&all, Rule::Upstream);
    assert_eq!(up.len(), 1, "{all:#?}");
    assert_eq!(up[0].station, "shijiao");
    let Context::Upstream { from, arrival, .. } = &up[0].context else {
        panic!()
    };
    assert_eq!(from, "qixinggang");
    // Counted from the first exceeding reading (hour 0), not the confirming one (hour 4).
    assert_eq!(*arrival, t0() + Duration::hours(10));
    let Context::Upstream {
        earliest, latest, ..
    } = &up[0].context
    else {
        panic!()
    };
    let tolerance = RuleConfig::default().arrival_tolerance;
    assert_eq!(
        (*earliest, *latest),
        (*arrival - tolerance, *arrival + tolerance)
    );
    // Routed to both bureaus: 石角 is a boundary section (信息互通).
    let shijiao = net.station("shijiao").unwrap();
    assert_eq!(
        net.recipients(shijiao, Rule::Upstream)
            .iter()
            .map(|b| b.id.as_str())
            .collect::<Vec<_>>(),
        ["guangzhou", "qingyuan"]
    );
    // The downstream exceedance refers to the upstream event.
    let down = fired(&all, Rule::Exceedance)
        .into_iter()
        .find(|t| t.station == "shijiao")
        .unwrap();
    let upstream_alert = &fired(&all, Rule::Exceedance)[0].alert_id;
    assert_eq!(
        down.follows,
        Some(("qixinggang".to_string(), upstream_alert.clone()))
    );
    // The upstream warning resolves with the upstream exceedance, saying which one ended.
    let ended = all
        .iter()
        .find(|t| t.rule == Rule::Upstream && t.kind == Kind::Resolved)
        .expect("the warning resolves");
    assert!(
        matches!(&ended.context, Context::Upstream { from, from_alert, .. }
            if from == "qixinggang" && from_alert == upstream_alert),
        "{:?}",
        ended.context
    );
}

/// The early warnings carry what their messages state: the shift's baseline (mean, spread,
/// period), the rate's window change and steepest step, the trend's start and test.
#[test]
fn early_warnings_carry_what_their_messages_state() {
    let net = net();
    // Shift: 30 baseline values alternating 0.20 and 0.22 hourly, then a step to 0.40.
    let mut rules = Rules::new(RuleConfig::default());
    let feed: Vec<_> = (0..36)
        .map(|i| {
            let v = if i < 30 {
                [0.20, 0.22][i as usize % 2]
            } else {
                0.40
            };
            ("shijiao", i, vec![(Param::Nh3n, v)])
        })
        .collect();
    let all = run(&mut rules, &net, &feed);
    let shift = fired(&all, Rule::Shift);
    assert_eq!(shift.len(), 1, "{all:#?}");
    let Context::Shift {
        up,
        baseline,
        sd,
        baseline_from,
        baseline_to,
        ..
    } = shift[0].context
    else {
        panic!("{:?}", shift[0].context)
    };
    assert!(up);
    assert!((baseline - 0.21).abs() < 1e-9, "{baseline}");
    assert!((sd - 0.010171).abs() < 1e-5, "{sd}");
    assert_eq!(
        (baseline_from, baseline_to),
        (t0(), t0() + Duration::hours(29))
    );

    // Rate: NH3-N 0.2 → 0.3 → 1.1 at 4-hourly readings: the window averages 0.1125 mg/L/h,
    // the last step rose 0.2 mg/L/h.
    let mut rules = Rules::new(RuleConfig::default());
    let all = run(
        &mut rules,
        &net,
        &[
            ("shijiao", 0, vec![(Param::Nh3n, 0.2)]),
            ("shijiao", 4, vec![(Param::Nh3n, 0.3)]),
            ("shijiao", 8, vec![(Param::Nh3n, 1.1)]),
        ],
    );
    let rate = fired(&all, Rule::Rate);
    assert_eq!(rate.len(), 1, "{all:#?}");
    let Context::Rate {
        per_hour,
        change,
        from,
        steepest,
        params,
    } = rate[0].context
    else {
        panic!("{:?}", rate[0].context)
    };
    assert!((per_hour - 0.1125).abs() < 1e-9 && (change - 0.9).abs() < 1e-9);
    assert_eq!((from, params), (t0(), 1));
    assert_eq!(
        (steepest.from, steepest.to),
        (t0() + Duration::hours(4), t0() + Duration::hours(8))
    );
    assert!((steepest.per_hour - 0.2).abs() < 1e-9, "{steepest:?}");
}

#[test]
fn a_silent_station_goes_offline_once_and_comes_back() {
    let net = net();
    let mut rules = Rules::new(RuleConfig::default());
    rules.start(&net, t0());
    // Cadence 4 h, factor 2: silent for more than 8 h.
    assert!(rules.tick(&net, t0() + Duration::hours(8)).is_empty());
    let first = rules.tick(&net, t0() + Duration::hours(8) + Duration::seconds(1));
    assert_eq!(first.len(), 2, "both stations are silent");
    assert!(first
        .iter()
        .all(|t| t.rule == Rule::Offline && t.kind == Kind::Fired && t.level == Level::Data));
    assert!(
        rules.tick(&net, t0() + Duration::hours(12)).is_empty(),
        "once, not every tick"
    );
    let back = t0() + Duration::hours(13);
    let s = net.station("shijiao").unwrap();
    let out = rules.reading(
        &net,
        s,
        &reading("shijiao", back, &[(Param::Ph, 7.2)]),
        back,
    );
    let resolved: Vec<_> = out
        .transitions
        .iter()
        .filter(|t| t.rule == Rule::Offline)
        .collect();
    assert_eq!(resolved.len(), 1);
    assert_eq!(resolved[0].kind, Kind::Resolved);
}

#[test]
fn flapping_around_the_limit_fires_once_per_episode() {
    let net = net();
    // Two of the last three readings above the limit fire (with two of two, alternating values
    // never would); the hysteresis then keeps the dips just below the limit from resolving.
    let cfg = RuleConfig {
        persistence: Persistence {
            fire_after: 2,
            window: 3,
            ..Persistence::default()
        },
        ..RuleConfig::default()
    };
    let mut rules = Rules::new(cfg);
    // Limit 0.5; hysteresis 10 %: clearing needs ≤ 0.45.
    let mut feed: Vec<_> = (0..20)
        .map(|i| {
            (
                "shijiao",
                i * 4,
                vec![(Param::Nh3n, if i % 2 == 0 { 0.53 } else { 0.48 })],
            )
        })
        .collect();
    feed.push(("shijiao", 80, vec![(Param::Nh3n, 0.52)]));
    let all = run(&mut rules, &net, &feed);
    assert_eq!(fired(&all, Rule::Exceedance).len(), 1, "{all:#?}");
    assert!(!all
        .iter()
        .any(|t| t.rule == Rule::Exceedance && t.kind == Kind::Resolved));
    let more = run(
        &mut rules,
        &net,
        &[
            ("shijiao", 84, vec![(Param::Nh3n, 0.3)]),
            ("shijiao", 88, vec![(Param::Nh3n, 0.3)]),
        ],
    );
    assert!(more
        .iter()
        .any(|t| t.rule == Rule::Exceedance && t.kind == Kind::Resolved));
}

#[test]
fn red_needs_a_sudden_change_upstream_first() {
    let net = net();
    let calm = vec![(Param::Nh3n, 0.2), (Param::Tp, 0.05), (Param::Codmn, 2.0)];
    // Each rises by more than half its class Ⅱ limit (0.5, 0.1, 4).
    let jump = vec![(Param::Nh3n, 0.6), (Param::Tp, 0.2), (Param::Codmn, 4.5)];
    // Only downstream: blue.
    let mut alone = Rules::new(RuleConfig::default());
    let all = run(
        &mut alone,
        &net,
        &[("shijiao", 0, calm.clone()), ("shijiao", 4, jump.clone())],
    );
    let rates = fired(&all, Rule::Rate);
    assert_eq!(rates.len(), 3);
    assert!(rates.iter().all(|t| t.level == Level::Blue));
    // Upstream first, then downstream 10 h later: red.
    let mut both = Rules::new(RuleConfig::default());
    let all = run(
        &mut both,
        &net,
        &[
            ("qixinggang", 0, calm.clone()),
            ("qixinggang", 4, jump.clone()),
            ("shijiao", 10, calm),
            ("shijiao", 14, jump),
        ],
    );
    let red: Vec<_> = fired(&all, Rule::Rate)
        .into_iter()
        .filter(|t| t.station == "shijiao")
        .collect();
    assert_eq!(red.len(), 3, "{all:#?}");
    assert!(red.iter().all(|t| t.level == Level::Red));
}

/// The fixture network with 石角 reporting every 10 s (offline after 20 s), as in the issue.
fn fast_net() -> Network {
    let mut n = net();
    if let Some(s) = n.stations.iter_mut().find(|s| s.id == "shijiao") {
        s.cadence = std::time::Duration::from_secs(10);
    }
    n
}

fn offline_of(ts: &[Transition], station: &str) -> Vec<Kind> {
    ts.iter()
        .filter(|t| t.rule == Rule::Offline && t.station == station)
        .map(|t| t.kind)
        .collect()
}

#[test]
fn only_a_current_reading_resolves_offline() {
    // Cadence 4 h, factor 2: a reading stamped up to 8 h before now is current. Future
    // stamps (within the ingest's skew) are current too.
    let table: &[(Duration, &[Kind])] = &[
        (Duration::zero(), &[Kind::Resolved]),
        (Duration::hours(2), &[Kind::Resolved]),
        (Duration::hours(8), &[Kind::Resolved]),
        (Duration::minutes(-5), &[Kind::Resolved]),
        (Duration::hours(8) + Duration::seconds(1), &[]),
        (Duration::days(30), &[]),
    ];
    let net = net();
    let s = net.station("shijiao").unwrap();
    for &(ago, expected) in table {
        let mut rules = Rules::new(RuleConfig::default());
        rules.start(&net, t0());
        let fired = rules.tick(&net, t0() + Duration::hours(9));
        assert_eq!(offline_of(&fired, "shijiao"), [Kind::Fired]);
        let now = t0() + Duration::hours(10);
        let out = rules.reading(
            &net,
            s,
            &reading("shijiao", now - ago, &[(Param::Ph, 7.2)]),
            now,
        );
        assert_eq!(offline_of(&out.transitions, "shijiao"), expected, "{ago}");
    }
}

#[test]
fn a_backfilled_reading_does_not_restart_the_offline_clock() {
    let net = net();
    let s = net.station("shijiao").unwrap();
    // (how long before `now` the reading is stamped, whether offline fires at 8 h + 1 s)
    for (ago, fires) in [(Duration::hours(10), true), (Duration::hours(1), false)] {
        let mut rules = Rules::new(RuleConfig::default());
        rules.start(&net, t0());
        let now = t0() + Duration::hours(7);
        rules.reading(
            &net,
            s,
            &reading("shijiao", now - ago, &[(Param::Ph, 7.2)]),
            now,
        );
        let later = rules.tick(&net, t0() + Duration::hours(8) + Duration::seconds(1));
        let expected: &[Kind] = if fires { &[Kind::Fired] } else { &[] };
        assert_eq!(offline_of(&later, "shijiao"), expected, "{ago}");
    }
}

/// Issue 12, item 5: a 10 s station goes silent, `offline` fires; a reading stamped 2 h ago
/// arrives. Before, it resolved `offline`, which fired again 20 s later: three messages for
/// one outage. Now the outage is one firing and, at the first current reading, one resolution.
#[test]
fn a_backfill_during_an_outage_neither_resolves_it_nor_fires_it_again() {
    let net = fast_net();
    let s = net.station("shijiao").unwrap();
    let mut rules = Rules::new(RuleConfig::default());
    rules.start(&net, t0());
    let mut all = Vec::new();
    let at = |secs: i64| t0() + Duration::seconds(secs);
    // Ticks every second; readings arrive between two ticks.
    for sec in 0..25 {
        all.extend(rules.tick(&net, at(sec)));
    }
    assert_eq!(offline_of(&all, "shijiao"), [Kind::Fired]);
    let backfill = reading("shijiao", at(25) - Duration::hours(2), &[(Param::Ph, 7.2)]);
    let out = rules.reading(&net, s, &backfill, at(25));
    assert_eq!(out.judgement.overall, Some(Class::I), "stored and judged");
    all.extend(out.transitions);
    for sec in 26..=120 {
        all.extend(rules.tick(&net, at(sec)));
    }
    assert_eq!(offline_of(&all, "shijiao"), [Kind::Fired], "{all:#?}");
    let out = rules.reading(
        &net,
        s,
        &reading("shijiao", at(121), &[(Param::Ph, 7.2)]),
        at(121),
    );
    all.extend(out.transitions);
    assert_eq!(
        offline_of(&all, "shijiao"),
        [Kind::Fired, Kind::Resolved],
        "one outage, two messages"
    );
}

/// A reading of `station` at `h` hours after t0, its values flagged `flag`.
fn flagged(station: &str, h: i64, values: &[(Param, f64)], flag: Option<DataFlag>) -> Reading {
    let mut r = reading(station, t0() + Duration::hours(h), values);
    for m in &mut r.values {
        m.flag = flag;
    }
    r
}

/// Feeds readings received at wall time `now`; returns every transition.
fn feed_at(
    rules: &mut Rules,
    net: &Network,
    feed: &[Reading],
    now: DateTime<Utc>,
) -> Vec<Transition> {
    let mut all = Vec::new();
    for r in feed {
        let s = net.station(&r.station).unwrap();
        all.extend(rules.reading(net, s, r, now.max(r.ts)).transitions);
    }
    all
}

fn is_firing(rules: &Rules, station: &str, rule: Rule, param: Option<Param>) -> bool {
    rules.index.get(station).is_some_and(|&k| {
        rules.stations[k]
            .episodes
            .get(rule, param)
            .is_some_and(|e| e.is_firing())
    })
}

/// For every rule that readings raise: once newer readings fired it, readings stamped before
/// them — each of which would clear the alert if it were current — neither resolve it nor
/// count toward resolving it. The same readings stamped after the firing ones do resolve it
/// (where a few readings can: CUSUM forgets a shift slowly), so the late ones were refused for
/// their time, not for their values.
#[test]
fn a_late_reading_never_clears_what_newer_readings_raised() {
    let calm = vec![(Param::Nh3n, 0.2), (Param::Tp, 0.05), (Param::Codmn, 2.0)];
    let jump = vec![(Param::Nh3n, 0.6), (Param::Tp, 0.2), (Param::Codmn, 4.5)];
    let nh3n = |h: i64, v: f64| flagged("shijiao", h, &[(Param::Nh3n, v)], None);
    // A slow NH3-N rise (as in `slow_rise_warns_before_the_exceedance`), stopped before it
    // exceeds.
    let rise: Vec<Reading> = (0..28)
        .map(|i| {
            nh3n(
                i * 4,
                0.20 + 0.01 * i as f64 + if i % 2 == 0 { 0.004 } else { -0.004 },
            )
        })
        .collect();
    // 30 baseline values, then a sustained step (below the limit, slower than the rate rule).
    let shifted: Vec<Reading> = (0..36)
        .map(|i| {
            nh3n(
                i,
                if i < 30 {
                    [0.20, 0.22][i as usize % 2]
                } else {
                    0.40
                },
            )
        })
        .collect();
    struct Case {
        name: &'static str,
        station: &'static str,
        rule: Rule,
        param: Option<Param>,
        fire: Vec<Reading>,
        /// Values of readings that would clear the alert if they were current.
        clearing: Vec<Vec<(Param, f64)>>,
        /// The station that reports them (the upstream one, for `upstream`).
        late_station: &'static str,
        /// Whether the clearing readings, stamped after the firing ones, resolve it.
        resolves_when_current: bool,
    }
    let cases = vec![
        Case {
            name: "exceedance",
            station: "shijiao",
            rule: Rule::Exceedance,
            param: Some(Param::Nh3n),
            fire: vec![nh3n(10, 0.8), nh3n(11, 0.8)],
            clearing: vec![vec![(Param::Nh3n, 0.1)]; 3],
            late_station: "shijiao",
            resolves_when_current: true,
        },
        Case {
            name: "class",
            station: "shijiao",
            rule: Rule::Class,
            param: None,
            fire: vec![nh3n(10, 0.8), nh3n(11, 0.8)],
            clearing: vec![vec![(Param::Nh3n, 0.1)]; 3],
            late_station: "shijiao",
            resolves_when_current: true,
        },
        Case {
            name: "rate",
            station: "shijiao",
            rule: Rule::Rate,
            param: Some(Param::Tp),
            fire: vec![
                flagged("shijiao", 0, &calm, None),
                flagged("shijiao", 4, &jump, None),
            ],
            clearing: vec![calm.clone(); 3],
            late_station: "shijiao",
            resolves_when_current: true,
        },
        Case {
            name: "station_fault",
            station: "shijiao",
            rule: Rule::StationFault,
            param: Some(Param::Nh3n),
            fire: (7..=10)
                .map(|h| flagged("shijiao", h, &[(Param::Nh3n, 0.3)], Some(DataFlag::D)))
                .collect(),
            clearing: vec![vec![(Param::Nh3n, 0.3)]; 3],
            late_station: "shijiao",
            resolves_when_current: true,
        },
        Case {
            name: "trend",
            station: "shijiao",
            rule: Rule::Trend,
            param: Some(Param::Nh3n),
            fire: rise,
            clearing: vec![vec![(Param::Nh3n, 0.1)]; 3],
            late_station: "shijiao",
            resolves_when_current: true,
        },
        Case {
            name: "shift",
            station: "shijiao",
            rule: Rule::Shift,
            param: Some(Param::Nh3n),
            fire: shifted,
            clearing: vec![vec![(Param::Nh3n, 0.21)]; 3],
            late_station: "shijiao",
            resolves_when_current: false,
        },
        Case {
            name: "upstream",
            station: "shijiao",
            rule: Rule::Upstream,
            param: Some(Param::Nh3n),
            fire: vec![
                flagged("qixinggang", 10, &[(Param::Nh3n, 1.2)], None),
                flagged("qixinggang", 11, &[(Param::Nh3n, 1.3)], None),
            ],
            clearing: vec![vec![(Param::Nh3n, 0.2)]; 3],
            late_station: "qixinggang",
            resolves_when_current: true,
        },
    ];
    let net = net();
    for case in cases {
        let name = case.name;
        let newest = case.fire.iter().map(|r| r.ts).max().unwrap();
        let mut rules = Rules::new(RuleConfig::default());
        let fired = feed_at(&mut rules, &net, &case.fire, t0());
        assert!(
            is_firing(&rules, case.station, case.rule, case.param),
            "{name}: not firing after {fired:#?}"
        );
        // Stamped an hour apart, ending an hour before the newest firing reading, and
        // received after it.
        let n = case.clearing.len() as i64;
        let stamp = |k: i64, base: DateTime<Utc>| {
            let ts = base + Duration::hours(k);
            reading(case.late_station, ts, &case.clearing[k as usize])
        };
        let late: Vec<Reading> = (0..n)
            .map(|k| stamp(k, newest - Duration::hours(n)))
            .collect();
        let out = feed_at(&mut rules, &net, &late, newest + Duration::hours(1));
        assert!(
            !out.iter().any(|t| t.kind == Kind::Resolved),
            "{name}: a late reading resolved {out:#?}"
        );
        assert!(
            is_firing(&rules, case.station, case.rule, case.param),
            "{name}: no longer firing"
        );
        if case.resolves_when_current {
            let current: Vec<Reading> = (0..n)
                .map(|k| stamp(k, newest + Duration::hours(1)))
                .collect();
            let out = feed_at(&mut rules, &net, &current, newest + Duration::hours(1));
            assert!(
                out.iter().any(|t| t.kind == Kind::Resolved
                    && t.station == case.station
                    && t.rule == case.rule
                    && t.param == case.param),
                "{name}: current clearing readings did not resolve: {out:#?}"
            );
        }
    }
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig { failure_persistence: None, ..Default::default() })]

    /// Any stream of readings, with old readings (any values, any flag) slipped in after each
    /// firing: none of the old ones resolves an alert that a newer reading fired.
    #[test]
    fn old_readings_after_a_firing_never_resolve_it(
        values in proptest::collection::vec((0.05f64..1.5, 0.01f64..0.4, proptest::bool::weighted(0.1)), 2..60),
        old in proptest::collection::vec((1i64..72, 0.05f64..1.5, 0.01f64..0.4, proptest::bool::weighted(0.2)), 1..6),
    ) {
        let net = net();
        let s = net.station("shijiao").unwrap();
        let mut rules = Rules::new(RuleConfig::default());
        for (i, &(nh3n, tp, fault)) in values.iter().enumerate() {
            let flag = fault.then_some(DataFlag::D);
            let r = flagged("shijiao", 4 * i as i64, &[(Param::Nh3n, nh3n), (Param::Tp, tp)], flag);
            let now = r.ts;
            let fired: Vec<Transition> = rules
                .reading(&net, s, &r, now)
                .transitions
                .into_iter()
                .filter(|t| t.kind == Kind::Fired)
                .collect();
            if fired.is_empty() {
                continue;
            }
            for &(hours_before, nh3n, tp, fault) in &old {
                let mut o = flagged("shijiao", 0, &[(Param::Nh3n, nh3n), (Param::Tp, tp)], fault.then_some(DataFlag::D));
                o.ts = r.ts - Duration::hours(hours_before);
                let out = rules.reading(&net, s, &o, now);
                for t in out.transitions.iter().filter(|t| t.kind == Kind::Resolved) {
                    proptest::prop_assert!(
                        !fired.iter().any(|f| f.alert_id == t.alert_id),
                        "an old reading resolved {} fired at {}", t.alert_id, r.ts
                    );
                }
            }
        }
    }
}
