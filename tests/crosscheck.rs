//! riverwatch's statistics against the reference implementations, through fixtures those
//! produced (the generator scripts sit beside the fixtures): QC flags against ioos_qc 3.0;
//! Mann–Kendall, Hamed–Rao and Sen against pymannkendall 1.4.3, and the `trend` rule's false
//! alarms on trend-free autocorrelated series against pymannkendall's.

use riverwatch::domain::qc::{self, FlatLine, GrossRange, RateOfChange, Spike, Tests};
use serde_json::Value;

fn tests_from(v: &Value) -> Tests {
    let pair = |v: &Value| (v[0].as_f64().unwrap(), v[1].as_f64().unwrap());
    let f = |v: &Value| v.as_f64();
    Tests {
        gross_range: v.get("gross_range_test").map(|g| GrossRange {
            fail_span: pair(&g["fail_span"]),
            suspect_span: g.get("suspect_span").map(pair),
        }),
        spike: v.get("spike_test").map(|s| Spike {
            suspect_threshold: f(&s["suspect_threshold"]),
            fail_threshold: f(&s["fail_threshold"]),
        }),
        rate_of_change: v.get("rate_of_change_test").map(|r| RateOfChange {
            threshold: r["threshold"].as_f64().unwrap(),
            fail_threshold: r.get("fail_threshold").and_then(Value::as_f64),
        }),
        flat_line: v.get("flat_line_test").map(|l| FlatLine {
            tolerance: l["tolerance"].as_f64().unwrap(),
            suspect_threshold: l["suspect_threshold"].as_f64().unwrap(),
            fail_threshold: l["fail_threshold"].as_f64().unwrap(),
        }),
    }
}

#[test]
fn qc_flags_equal_ioos_qc() {
    let cases: Vec<Value> = serde_json::from_str(include_str!("fixtures/qc_ioos.json")).unwrap();
    assert!(cases.len() >= 4);
    for case in cases {
        let values = numbers(&case["values"]);
        let times = array(&case["times"], Value::as_i64);
        let expected: Vec<u8> = array(&case["flags"], |v| v.as_u64().map(|f| f as u8));
        let got: Vec<u8> = qc::run(
            &values,
            &times,
            &qc::Plan::uniform(tests_from(&case["tests"])),
            None,
        )
        .iter()
        .map(|f| f.code())
        .collect();
        assert_eq!(got, expected, "{}", case["name"]);
    }
}

/// The JSON array `v`, each element read by `element`; panics where `v` is no array or an
/// element is not of the type read.
fn array<T>(v: &Value, element: impl Fn(&Value) -> Option<T>) -> Vec<T> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|v| element(v).unwrap())
        .collect()
}

fn numbers(v: &Value) -> Vec<f64> {
    array(v, Value::as_f64)
}

/// Checks riverwatch's Hamed–Rao test of `x` at α = 0.05 against pymannkendall's `expected`
/// ({var_s, z, p, trend}; z and p null where pymannkendall has NaN).
fn check_hamed_rao(x: &[f64], expected: &Value) {
    use riverwatch::domain::trend;
    let hr = trend::hamed_rao(x, 0.05).unwrap();
    let var_s = expected["var_s"].as_f64().unwrap();
    assert!(
        (hr.var_s - var_s).abs() < 1e-6,
        "var_s {} vs {var_s} for {x:?}",
        hr.var_s
    );
    for (name, got) in [("z", hr.z), ("p", hr.p)] {
        match (got, expected[name].as_f64()) {
            (Some(a), Some(b)) => assert!((a - b).abs() < 1e-6, "{name} {a} vs {b} for {x:?}"),
            (None, None) => {}
            (a, b) => panic!("{name} {a:?} vs {b:?} for {x:?}"),
        }
    }
    assert_eq!(
        hr.direction(0.05).word(),
        expected["trend"].as_str().unwrap(),
        "{x:?}"
    );
}

#[test]
fn mann_kendall_and_sen_equal_pymannkendall() {
    use riverwatch::domain::trend;
    let cases: Vec<Value> =
        serde_json::from_str(include_str!("fixtures/mk_pymannkendall.json")).unwrap();
    assert!(cases.len() >= 20);
    // The fixture covers both sides of the correction and its undefined case.
    let hr = |c: &Value, k: &str| c["hamed_rao"][k].as_f64();
    assert!(cases.iter().any(|c| hr(c, "var_s") > c["var_s"].as_f64()));
    assert!(cases.iter().any(|c| hr(c, "var_s") < c["var_s"].as_f64()));
    assert!(cases.iter().any(|c| hr(c, "z").is_none()));
    for case in cases {
        let x = numbers(&case["values"]);
        check_hamed_rao(&x, &case["hamed_rao"]);
        let mk = trend::mann_kendall(&x).unwrap();
        let num = |k: &str| case[k].as_f64().unwrap();
        assert_eq!(mk.s as f64, num("s"), "{x:?}");
        assert!(
            (mk.var_s - num("var_s")).abs() < 1e-6,
            "var_s {} vs {}",
            mk.var_s,
            num("var_s")
        );
        assert!((mk.z - num("z")).abs() < 1e-6, "z {} vs {}", mk.z, num("z"));
        assert!((mk.p - num("p")).abs() < 1e-6, "p {} vs {}", mk.p, num("p"));
        assert_eq!(mk.direction(0.05).word(), case["trend"].as_str().unwrap());
        // 4-hourly readings: 6 steps a day.
        let times: Vec<i64> = (0..x.len() as i64)
            .map(|i| 1_767_225_600 + i * 4 * 3600)
            .collect();
        let per_day = trend::sen(&times, &x).unwrap().per_day();
        assert!(
            (per_day - 6.0 * num("slope_per_step")).abs() < 1e-9,
            "slope {per_day} vs {}",
            6.0 * num("slope_per_step")
        );
    }
}

/// 200 trend-free AR(1) series (φ = 0.8, a week of 4-hourly values): every trend called is a
/// false alarm. The default `trend` rule must call no more of them than pymannkendall's
/// Hamed–Rao test, and riverwatch's Hamed–Rao must call exactly the series pymannkendall's
/// does.
#[test]
fn the_default_trend_rule_calls_no_more_false_trends_than_hamed_rao() {
    use riverwatch::domain::rules::RuleConfig;
    use riverwatch::domain::trend::{self, Direction};
    let fixture: Value =
        serde_json::from_str(include_str!("fixtures/mk_ar1_false_alarms.json")).unwrap();
    let draw = fixture["draw"].as_array().unwrap();
    assert_eq!(draw.len(), 200);
    let count = |k: &str| fixture[k].as_u64().unwrap() as usize;
    let (py_original, py_hamed_rao) = (count("original_trends"), count("hamed_rao_trends"));
    let cfg = RuleConfig::default();
    let (mut ours_original, mut ours_hamed_rao, mut rule) = (0, 0, 0);
    for case in draw {
        let x = numbers(&case["values"]);
        assert_eq!(x.len(), 42);
        check_hamed_rao(&x, &case["hamed_rao"]);
        let original = trend::mann_kendall(&x).unwrap().direction(0.05);
        assert_eq!(original.word(), case["original_trend"].as_str().unwrap());
        ours_original += usize::from(original != Direction::NoTrend);
        let hr = trend::hamed_rao(&x, 0.05).unwrap().direction(0.05);
        ours_hamed_rao += usize::from(hr != Direction::NoTrend);
        // The significance test exactly as `trend_decision` runs it, in either direction.
        let verdict = cfg.trend_verdict(&x).unwrap();
        let called = verdict.direction != Direction::NoTrend
            && verdict.p.is_some_and(|p| p < cfg.trend_alpha);
        rule += usize::from(called);
    }
    println!(
        "200 trend-free AR(1) series: the default trend rule calls {rule} a trend; \
         pymannkendall original_test {py_original}, hamed_rao_modification_test {py_hamed_rao}"
    );
    assert_eq!(
        (ours_original, ours_hamed_rao),
        (py_original, py_hamed_rao),
        "trends called in 200 trend-free AR(1) series: riverwatch original {ours_original}, \
         Hamed–Rao {ours_hamed_rao}; pymannkendall original {py_original}, Hamed–Rao \
         {py_hamed_rao}"
    );
    assert!(
        rule <= py_hamed_rao,
        "the default trend rule calls {rule}/200 trend-free AR(1) series a trend, \
         pymannkendall's Hamed–Rao {py_hamed_rao}/200 (original test {py_original}/200)"
    );
    assert!(
        rule < py_original,
        "the default rule ({rule}/200) is no better than the original test ({py_original}/200)"
    );
}
