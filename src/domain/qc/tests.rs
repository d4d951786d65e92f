//! QC tables and the invariant that streamed flags, once the next reading is in, equal the
//! batch flags ioos_qc gives the whole series (the batch form is checked against ioos_qc
//! itself in `tests/crosscheck.rs`).

use super::*;
use proptest::prelude::*;

/// The batch flags of configured tests, the same at every spacing, without a detection limit.
fn run(values: &[f64], times: &[i64], tests: &Tests) -> Vec<Flag> {
    super::run(values, times, &Plan::uniform(*tests), None)
}

/// The stream's answer to one value of configured tests, without a detection limit.
fn push(s: &mut Stream, t: i64, v: f64, tests: &Tests) -> Verdict {
    s.push(t, v, &Plan::uniform(*tests), None)
}

fn codes(flags: &[Flag]) -> Vec<u8> {
    flags.iter().map(|f| f.code()).collect()
}

fn hourly(n: usize) -> Vec<i64> {
    (0..n as i64).map(|i| i * 3600).collect()
}

#[test]
fn aggregate_precedence() {
    use Flag::*;
    let table: &[(&[Flag], Flag)] = &[
        (&[Good, Suspect], Suspect),
        (&[Fail, Suspect, Good], Fail),
        (&[Unknown, Good], Good),
        (&[Missing, Unknown], Unknown),
        (&[], Missing),
    ];
    for (flags, expected) in table {
        assert_eq!(aggregate(flags.iter().copied()), *expected, "{flags:?}");
    }
}

#[test]
fn single_tests() {
    let gross = Tests {
        gross_range: Some(GrossRange {
            fail_span: (0.0, 10.0),
            suspect_span: Some((1.0, 9.0)),
        }),
        ..Tests::default()
    };
    assert_eq!(
        codes(&run(&[5.0, 0.5, 9.5, 10.0, 10.1, -0.1], &hourly(6), &gross)),
        [1, 3, 3, 3, 4, 4]
    );
    let spike = Tests {
        spike: Some(Spike {
            suspect_threshold: Some(0.3),
            fail_threshold: Some(0.5),
        }),
        ..Tests::default()
    };
    // Ends are UNKNOWN; a spike flags itself and, by the average method, may flag neighbours.
    assert_eq!(
        codes(&run(&[7.0, 7.0, 7.4, 7.0, 7.0, 7.0], &hourly(6), &spike)),
        [2, 1, 3, 1, 1, 2]
    );
    let roc = Tests {
        rate_of_change: Some(RateOfChange {
            threshold: 1.0 / 3600.0,
            fail_threshold: Some(3.0 / 3600.0),
        }),
        ..Tests::default()
    };
    assert_eq!(
        codes(&run(&[5.0, 5.5, 7.0, 3.0, 3.5], &hourly(5), &roc)),
        [1, 1, 3, 4, 1]
    );
    let flat = Tests {
        flat_line: Some(FlatLine {
            tolerance: 0.01,
            suspect_threshold: 3.0 * 3600.0,
            fail_threshold: 5.0 * 3600.0,
        }),
        ..Tests::default()
    };
    // Flat for 3 h (4 readings) is suspect, for 5 h (6 readings) fail.
    assert_eq!(
        codes(&run(
            &[1.0, 2.0, 2.0, 2.0, 2.0, 2.0, 2.0, 3.0],
            &hourly(8),
            &flat
        )),
        [1, 1, 1, 1, 3, 3, 4, 1]
    );
}

#[test]
fn defaults_never_hide_polluted_water() {
    // Class Ⅴ limits and beyond are plausible water, not suspect data.
    for (param, value) in [
        (Param::Nh3n, 2.5),
        (Param::Tp, 0.45),
        (Param::Ph, 9.6),
        (Param::Ph, 5.5),
        (Param::Do, 1.0),
        (Param::Codmn, 16.0),
    ] {
        let flag = super::run(&[value], &[0], &default_plan(param), None)[0];
        assert!(flag.is_judgeable(), "{param} = {value} flagged {flag:?}");
    }
}

#[test]
fn streaming_revises_the_previous_value_when_its_spike_is_known() {
    let tests = Tests {
        spike: Some(Spike {
            suspect_threshold: Some(0.3),
            fail_threshold: Some(0.5),
        }),
        ..Tests::default()
    };
    let mut s = Stream::default();
    let v: Vec<Verdict> = [7.0, 7.0, 8.0, 7.0]
        .iter()
        .enumerate()
        .map(|(i, &x)| push(&mut s, i as i64 * 3600, x, &tests))
        .collect();
    assert_eq!(
        v[2].flag,
        Flag::Unknown,
        "a new value's spike test waits for the next"
    );
    assert_eq!(v[3].revised, Some((7200, Flag::Fail)), "8.0 was a spike");
    assert_eq!(v[1].revised, None);
}

#[test]
fn a_replayed_value_gets_its_flag_again_and_changes_nothing() {
    let tests = default_plan(Param::Do).analyser;
    let mut s = Stream::default();
    let values = [7.0, 7.2, 9.9, 7.1, 7.0];
    let flags: Vec<Verdict> = values
        .iter()
        .enumerate()
        .map(|(i, &v)| push(&mut s, i as i64 * 3600, v, &tests))
        .collect();
    // The same readings again (a redelivered message): the same final flags, no revisions.
    for (i, &v) in values.iter().enumerate() {
        let again = push(&mut s, i as i64 * 3600, v, &tests);
        let expected = flags
            .iter()
            .skip(i + 1)
            .find_map(|f| {
                f.revised
                    .filter(|(t, _)| *t == i as i64 * 3600)
                    .map(|r| r.1)
            })
            .unwrap_or(flags[i].flag);
        assert_eq!(
            again,
            Verdict {
                flag: expected,
                note: None,
                revised: None
            },
            "reading {i}"
        );
    }
    // And the stream continues as if nothing happened.
    let mut fresh = Stream::default();
    for (i, &v) in values.iter().enumerate() {
        push(&mut fresh, i as i64 * 3600, v, &tests);
    }
    assert_eq!(
        push(&mut s, 5 * 3600, 7.0, &tests),
        push(&mut fresh, 5 * 3600, 7.0, &tests)
    );
}

/// Each value's final flag as a stream gives it: its own flag, replaced by the revision the
/// next value brings.
fn streamed_flags(times: &[i64], values: &[f64], plan: &Plan, floor: Option<f64>) -> Vec<Flag> {
    let mut stream = Stream::default();
    let mut streamed: Vec<Flag> = Vec::new();
    for (&t, &v) in times.iter().zip(values) {
        let verdict = stream.push(t, v, plan, floor);
        if let Some((rt, flag)) = verdict.revised {
            let i = times.iter().position(|&x| x == rt).unwrap();
            streamed[i] = flag;
        }
        streamed.push(verdict.flag);
    }
    streamed
}

/// Times from a start and the steps between values.
fn times_of(steps: &[i64]) -> Vec<i64> {
    steps
        .iter()
        .scan(1_767_225_600i64, |t, s| {
            *t += s;
            Some(*t)
        })
        .collect()
}

/// A 4-hourly series.
fn four_hourly(n: usize) -> Vec<i64> {
    (0..n as i64)
        .map(|i| 1_767_225_600 + i * 4 * 3600)
        .collect()
}

const NH3N_DL: Option<f64> = Some(0.025);

fn default_flags(param: Param, times: &[i64], values: &[f64], floor: Option<f64>) -> Vec<u8> {
    codes(&super::run(values, times, &default_plan(param), floor))
}

#[test]
fn an_outage_restarts_the_time_dependent_tests() {
    // The case: three 4-hourly NH3-N values, four days of maintenance, then a spill.
    let day = 24 * 3600;
    let times = times_of(&[0, 4 * 3600, 4 * 3600, 4 * day, 4 * 3600]);
    let flags = default_flags(
        Param::Nh3n,
        &times,
        &[0.40, 0.45, 0.42, 2.50, 2.60],
        NH3N_DL,
    );
    assert_eq!(
        flags,
        [1, 1, 1, 1, 1],
        "the first values after an outage are judged"
    );
    // pH alike, also after an outage at the start of a station's history.
    for steps in [
        vec![0, 4 * 3600, 4 * 3600, 4 * day, 4 * 3600],
        vec![0, 4 * day, 4 * 3600, 4 * 3600],
    ] {
        let times = times_of(&steps);
        let values: Vec<f64> = (0..times.len())
            .map(|i| {
                if times[i] - times[0] >= 4 * day {
                    9.6
                } else {
                    7.4
                }
            })
            .collect();
        let flags = super::run(&values, &times, &default_plan(Param::Ph), None);
        assert!(
            flags.iter().all(|f| f.is_judgeable()),
            "{values:?} {flags:?}"
        );
        assert!(flags.iter().all(|f| *f != Flag::Fail), "{flags:?}");
    }
}

#[test]
fn anoxic_water_and_extreme_values_are_judged() {
    // Values the national publication classes as 劣Ⅴ: judged (maybe with a note), never failed.
    for (param, value) in [
        (Param::Do, 0.04),
        (Param::Do, 0.003),
        (Param::Ph, 9.6),
        (Param::Ph, 4.5),
        (Param::Nh3n, 5.0),
        (Param::Nh3n, 25.0),
        (Param::Tp, 2.0),
        (Param::Codmn, 40.0),
    ] {
        for spacing in [300, 4 * 3600] {
            let times: Vec<i64> = (0..5).map(|i| i * spacing).collect();
            let flags = super::run(&[value; 5], &times, &default_plan(param), None);
            assert!(
                flags.iter().all(|f| f.is_judgeable()),
                "{param} = {value} every {spacing} s: {flags:?}"
            );
        }
    }
}

#[test]
fn a_run_at_the_detection_limit_is_not_a_flat_line() {
    let times = four_hourly(30);
    assert_eq!(
        default_flags(Param::Nh3n, &times, &[0.025; 30], NH3N_DL),
        [1; 30]
    );
    // TP below its detection limit (stored as the limit): the same.
    assert_eq!(
        default_flags(Param::Tp, &times, &[0.01; 30], Some(0.01)),
        [1; 30]
    );
}

#[test]
fn a_stuck_analyser_still_fails_the_flat_line() {
    // Six identical 4-hourly results above the detection limit: 4th suspect, 6th fail.
    let times = four_hourly(6);
    assert_eq!(
        default_flags(Param::Nh3n, &times, &[0.42; 6], NH3N_DL),
        [1, 1, 1, 3, 3, 4]
    );
}

#[test]
fn sparse_series_are_not_flagged_whole() {
    // Readings 16–20 h apart (the publication's snapshots): no test window holds two readings.
    let steps: Vec<i64> = (0..20).map(|i| (16 + i % 5) * 3600).collect();
    let times = times_of(&steps);
    for param in [Param::Ph, Param::Do, Param::Nh3n, Param::Tp, Param::Codmn] {
        let values: Vec<f64> = (0..20).map(|i| 0.5 + f64::from(i % 2) * 0.0001).collect();
        let values: Vec<f64> = match param {
            Param::Ph => values.iter().map(|v| v + 7.0).collect(),
            Param::Do => values.iter().map(|v| v + 6.0).collect(),
            _ => values,
        };
        let flags = default_flags(param, &times, &values, None);
        assert!(flags.iter().all(|&f| f == 1), "{param}: {flags:?}");
    }
}

/// A 4-hourly DO series over 60 days with an ordinary summer diurnal swing (6 ↔ 9.5 mg/L) and
/// a little analyser noise.
fn diurnal_do() -> (Vec<i64>, Vec<f64>) {
    let times = four_hourly(360);
    let values = times
        .iter()
        .enumerate()
        .map(|(i, &t)| {
            let phase = (t % 86_400) as f64 / 86_400.0 * std::f64::consts::TAU;
            // Deterministic noise of ±0.15 mg/L.
            let noise = ((i * 7919) % 31) as f64 / 100.0 - 0.15;
            7.75 + 1.75 * phase.sin() + noise
        })
        .collect();
    (times, values)
}

#[test]
fn a_diurnal_analyser_series_is_not_flagged_for_breathing() {
    let (times, values) = diurnal_do();
    let flags = default_flags(Param::Do, &times, &values, None);
    let flagged = flags.iter().filter(|&&f| f >= 3).count();
    assert!(
        flagged * 20 < flags.len(),
        "{flagged} of {} flagged",
        flags.len()
    );
}

#[test]
fn an_isolated_probe_spike_is_still_flagged() {
    let times: Vec<i64> = (0..12).map(|i| i * 300).collect();
    let mut values = vec![7.30; 12];
    values[6] = 8.3;
    let flags = default_flags(Param::Ph, &times, &values, None);
    assert_eq!(flags[6], 4, "{flags:?}");
    assert!(flags[..5].iter().all(|&f| f == 1), "{flags:?}");
}

#[test]
fn a_one_sample_analyser_slug_is_judged_not_failed() {
    let times = four_hourly(5);
    let flags = super::run(
        &[0.4, 0.4, 2.5, 0.5, 0.45],
        &times,
        &default_plan(Param::Nh3n),
        NH3N_DL,
    );
    assert_eq!(flags[2], Flag::Suspect, "{flags:?}");
    assert!(flags.iter().all(|f| f.is_judgeable()));
}

#[test]
fn the_note_names_the_test() {
    let mut s = Stream::default();
    let plan = default_plan(Param::Do);
    let v = s.push(0, 0.04, &plan, None);
    assert_eq!((v.flag, v.note), (Flag::Suspect, Some(Test::GrossRange)));
    let v = s.push(4 * 3600, 0.5, &plan, None);
    assert_eq!((v.flag, v.note), (Flag::Good, None));
}

fn arb_plan() -> impl Strategy<Value = Plan> {
    let pick = |d: Tests, (g, s, r, f): (bool, bool, bool, bool)| Tests {
        gross_range: d.gross_range.filter(|_| g),
        spike: d.spike.filter(|_| s),
        rate_of_change: d.rate_of_change.filter(|_| r),
        flat_line: d.flat_line.filter(|_| f),
    };
    (
        any::<(bool, bool, bool, bool)>(),
        any::<(bool, bool, bool, bool)>(),
        any::<bool>(),
    )
        .prop_map(move |(a, b, uniform)| {
            let d = default_plan(Param::Do);
            if uniform {
                Plan::uniform(pick(d.probe, a))
            } else {
                Plan {
                    probe: pick(d.probe, a),
                    analyser: pick(d.analyser, b),
                }
            }
        })
}

/// Steps of minutes to days: mostly a station's cadence, sometimes a gap.
fn arb_steps(len: usize) -> impl Strategy<Value = Vec<i64>> {
    let step = prop_oneof![
        40 => Just(300i64),
        30 => Just(4 * 3600),
        5 => 60i64..7_200,
        5 => 7_200i64..172_800,
        2 => 172_800i64..864_000,
    ];
    proptest::collection::vec(step, len)
}

proptest! {
    #![proptest_config(ProptestConfig { failure_persistence: None, ..ProptestConfig::default() })]

    /// Series with random gaps of minutes to days: after the next value, every streamed flag
    /// is the batch flag `assess` gives, restarts included.
    #[test]
    fn stream_equals_batch_with_gaps(
        values in proptest::collection::vec(prop_oneof![Just(6.0f64), Just(0.02), 0.0f64..22.0], 1..80),
        steps in arb_steps(80),
        plan in arb_plan(),
        floor in prop_oneof![Just(None), Just(Some(0.02))],
    ) {
        let times = times_of(&steps[..values.len()]);
        let batch = super::run(&values, &times, &plan, floor);
        let streamed = streamed_flags(&times, &values, &plan, floor);
        prop_assert_eq!(codes(&streamed), codes(&batch));
    }
}

/// The semantics of the module docs written plainly — the whole history kept, the flat-line
/// run found by walking back over it — as the reference for the compact stream.
fn reference_flags(times: &[i64], values: &[f64], plan: &Plan, floor: Option<f64>) -> Vec<Flag> {
    let mut out: Vec<Flag> = Vec::new();
    let mut pending: Option<Flag> = None;
    // Index of the first value of the current flat-line segment.
    let mut segment = 0usize;
    for (i, (&t, &v)) in times.iter().zip(values).enumerate() {
        let steps: Vec<i64> = times[..=i].windows(2).map(|w| w[1] - w[0]).collect();
        let recent = &steps[steps.len().saturating_sub(SPACING_STEPS)..];
        let spacing = (!recent.is_empty()).then(|| {
            let mut r = recent.to_vec();
            r.sort_unstable();
            let n = r.len();
            if n % 2 == 1 {
                r[n / 2] as f64
            } else {
                ((r[n / 2 - 1] + r[n / 2]) as f64 / 2.0).trunc()
            }
        });
        let tests = plan.at(spacing.map_or(Spacing::Analyser, Spacing::of));
        let near = |s: i64| {
            spacing.is_some_and(|sp| {
                let w = Spacing::of(sp).window();
                s <= w && ((w as f64) / sp) as usize > 1
            })
        };
        let step = (i > 0).then(|| times[i] - times[i - 1]);
        if let (Some(cfg), Some(p), true) = (&tests.spike, pending, i >= 2) {
            let spike = if near(times[i - 1] - times[i - 2]) && near(t - times[i - 1]) {
                spike_flag(values[i - 2], values[i - 1], v, cfg)
            } else {
                Flag::Unknown
            };
            out[i - 1] = aggregate([p, spike]);
        }
        let mut flags = Vec::new();
        if let Some(cfg) = &tests.gross_range {
            flags.push(gross_flag(v, cfg));
        }
        if let Some(cfg) = &tests.rate_of_change {
            flags.push(match step {
                None => Flag::Good,
                Some(s) if near(s) => roc_flag((times[i - 1], values[i - 1]), (t, v), cfg),
                Some(_) => Flag::Unknown,
            });
        }
        if let Some(cfg) = &tests.flat_line {
            if step.is_some_and(|s| s as f64 > cfg.fail_threshold.max(cfg.suspect_threshold)) {
                segment = i;
            }
            if floor.is_some_and(|f| v <= f) {
                segment = i + 1;
                flags.push(Flag::Unknown);
            } else {
                let (mut lo, mut hi, mut run) = (v, v, 0usize);
                for &x in values[segment..=i].iter().rev().take(MAX_RUN as usize) {
                    let (l, h) = (lo.min(x), hi.max(x));
                    if (h - l).abs() >= cfg.tolerance {
                        break;
                    }
                    (lo, hi, run) = (l, h, run + 1);
                }
                flags.push(match spacing {
                    Some(sp) => flat_verdict(run, sp, cfg),
                    None => Flag::Good,
                });
            }
        }
        if tests.flat_line.is_none() {
            segment = i + 1;
        }
        if tests.is_empty() {
            pending = None;
            out.push(Flag::Unknown);
            continue;
        }
        let without_spike = aggregate(flags);
        pending = Some(without_spike);
        out.push(if tests.spike.is_some() {
            aggregate([without_spike, Flag::Unknown])
        } else {
            without_spike
        });
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig { failure_persistence: None, cases: 64, ..ProptestConfig::default() })]

    /// Irregular series with flat stretches and gaps: the compact stream gives exactly the
    /// reference's flags.
    #[test]
    fn compact_stream_matches_the_reference(
        segments in proptest::collection::vec((prop_oneof![Just(6.0f64), Just(0.02), 6.0f64..6.01, 0.0f64..22.0], 1usize..400, 0.0f64..0.015), 1..8),
        steps in arb_steps(900),
        plan in arb_plan(),
        floor in prop_oneof![Just(None), Just(Some(0.02))],
    ) {
        let values: Vec<f64> = segments
            .iter()
            .flat_map(|&(level, len, noise)| (0..len).map(move |k| level + noise * ((k % 3) as f64 - 1.0)))
            .take(900)
            .collect();
        let times = times_of(&steps[..values.len()]);
        let reference = reference_flags(&times, &values, &plan, floor);
        let streamed = streamed_flags(&times, &values, &plan, floor);
        prop_assert_eq!(codes(&streamed), codes(&reference));
    }
}
