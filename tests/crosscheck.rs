//! riverwatch's statistics against the reference implementations, through fixtures those
//! produced (the generator scripts sit beside the fixtures): QC flags against ioos_qc 3.0.

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
        let values: Vec<f64> = case["values"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect();
        let times: Vec<i64> = case["times"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_i64().unwrap())
            .collect();
        let expected: Vec<u8> = case["flags"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as u8)
            .collect();
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

#[test]
fn mann_kendall_and_sen_equal_pymannkendall() {
    use riverwatch::domain::trend;
    let cases: Vec<Value> =
        serde_json::from_str(include_str!("fixtures/mk_pymannkendall.json")).unwrap();
    assert!(cases.len() >= 8);
    for case in cases {
        let x: Vec<f64> = case["values"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect();
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
