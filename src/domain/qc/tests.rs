//! QC tables and the invariant that streamed flags, once the next reading is in, equal the
//! batch flags ioos_qc gives the whole series (the batch form is checked against ioos_qc
//! itself in `tests/crosscheck.rs`).

use super::*;
use proptest::prelude::*;

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
        let tests = default_tests(param);
        let flag = run(&[value], &[0], &tests)[0];
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
        .map(|(i, &x)| s.push(i as i64 * 3600, x, &tests))
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
    let tests = default_tests(Param::Do);
    let mut s = Stream::default();
    let values = [7.0, 7.2, 9.9, 7.1, 7.0];
    let flags: Vec<Verdict> = values
        .iter()
        .enumerate()
        .map(|(i, &v)| s.push(i as i64 * 3600, v, &tests))
        .collect();
    // The same readings again (a redelivered message): the same final flags, no revisions.
    for (i, &v) in values.iter().enumerate() {
        let again = s.push(i as i64 * 3600, v, &tests);
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
                revised: None
            },
            "reading {i}"
        );
    }
    // And the stream continues as if nothing happened.
    let mut fresh = Stream::default();
    for (i, &v) in values.iter().enumerate() {
        fresh.push(i as i64 * 3600, v, &tests);
    }
    assert_eq!(
        s.push(5 * 3600, 7.0, &tests),
        fresh.push(5 * 3600, 7.0, &tests)
    );
}

/// Each value's final flag as a stream gives it: its own flag, replaced by the revision the
/// next value brings.
fn streamed_flags(times: &[i64], values: &[f64], tests: &Tests) -> Vec<Flag> {
    let mut stream = Stream::default();
    let mut streamed: Vec<Flag> = Vec::new();
    for (&t, &v) in times.iter().zip(values) {
        let verdict = stream.push(t, v, tests);
        if let Some((rt, flag)) = verdict.revised {
            let i = times.iter().position(|&x| x == rt).unwrap();
            streamed[i] = flag;
        }
        streamed.push(verdict.flag);
    }
    streamed
}

fn arb_tests() -> impl Strategy<Value = Tests> {
    (any::<bool>(), any::<bool>(), any::<bool>(), any::<bool>()).prop_map(|(g, s, r, f)| {
        let d = default_tests(Param::Do);
        Tests {
            gross_range: d.gross_range.filter(|_| g),
            spike: d.spike.filter(|_| s),
            rate_of_change: d.rate_of_change.filter(|_| r),
            flat_line: d.flat_line.filter(|_| f),
        }
    })
}

proptest! {
    #![proptest_config(ProptestConfig { failure_persistence: None, ..ProptestConfig::default() })]

    /// Regular series: after the next value, every streamed flag is the batch flag.
    #[test]
    fn stream_converges_to_batch(
        values in proptest::collection::vec(prop_oneof![Just(6.0f64), 0.0f64..22.0], 1..60),
        tests in arb_tests(),
    ) {
        let times = hourly(values.len());
        let batch = run(&values, &times, &tests);
        let streamed = streamed_flags(&times, &values, &tests);
        prop_assert_eq!(codes(&streamed), codes(&batch));
    }
}

/// The stream as it was first written — the whole history as (time, value) pairs, the
/// flat-line test walking it for every value — kept as the reference for the compact one.
fn reference_flags(times: &[i64], values: &[f64], tests: &Tests) -> Vec<Flag> {
    let mut history: Vec<(i64, f64)> = Vec::new();
    let mut pending: Option<Flag> = None;
    let mut out: Vec<Flag> = Vec::new();
    let horizon = tests
        .flat_line
        .map_or(0.0, |f| f.fail_threshold.max(f.suspect_threshold));
    for (&t, &v) in times.iter().zip(values) {
        if let (Some(cfg), Some(p), true) = (&tests.spike, pending, history.len() >= 2) {
            let n = history.len();
            // The previous value's final flag, now that its spike test is decided.
            let last = out.len() - 1;
            out[last] = aggregate([p, spike_flag(history[n - 2].1, history[n - 1].1, v, cfg)]);
        }
        history.push((t, v));
        while history.len() > 3 && (t - history[1].0) as f64 > horizon {
            history.remove(0);
        }
        while history.len() > MAX_HISTORY {
            history.remove(0);
        }
        let n = history.len();
        let mut flags = Vec::new();
        if let Some(cfg) = &tests.gross_range {
            flags.push(gross_flag(v, cfg));
        }
        if let Some(cfg) = &tests.rate_of_change {
            flags.push(if n >= 2 {
                roc_flag(history[n - 2], (t, v), cfg)
            } else {
                Flag::Good
            });
        }
        if let Some(cfg) = &tests.flat_line {
            let steps: Vec<i64> = history.iter().map(|p| p.0).collect();
            let window: Vec<f64> = history.iter().map(|p| p.1).collect();
            flags.push(if n < 3 {
                Flag::Good
            } else {
                flat_flag(&window, median_interval(&steps), cfg)
            });
        }
        if tests.is_empty() {
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

    /// Irregular series with flat stretches, long enough that the stream trims its history
    /// to the flat-line horizon: the compact stream gives exactly the reference's flags.
    #[test]
    fn compact_stream_matches_batch_on_long_irregular_series(
        segments in proptest::collection::vec((prop_oneof![Just(6.0f64), 6.0f64..6.01, 0.0f64..22.0], 1usize..400, 0.0f64..0.015), 1..8),
        steps in proptest::collection::vec(prop_oneof![50 => Just(300i64), 3 => Just(600i64), 1 => 60i64..20_000], 900),
        tests in arb_tests(),
    ) {
        // Runs of one level with a little noise (flat lines of up to ~33 h at 5 minutes),
        // between ordinary values.
        let values: Vec<f64> = segments
            .iter()
            .flat_map(|&(level, len, noise)| (0..len).map(move |k| level + noise * ((k % 3) as f64 - 1.0)))
            .take(900)
            .collect();
        let times: Vec<i64> = steps[..values.len()]
            .iter()
            .scan(0i64, |t, s| { *t += s; Some(*t) })
            .collect();
        let reference = reference_flags(&times, &values, &tests);
        let streamed = streamed_flags(&times, &values, &tests);
        prop_assert_eq!(codes(&streamed), codes(&reference));
    }
}
