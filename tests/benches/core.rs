//! criterion benchmarks of the pure core, per reading: JSON decode, HJ 212 decode, QC and
//! class with every alert rule (the daemon's per-reading work), Mann–Kendall and Sen on a
//! 180-point window, and line-protocol encoding. `cargo bench --bench core`; under
//! `cargo test` each runs once as a smoke test.

use chrono::{Duration, TimeZone, Utc};
use criterion::{black_box, criterion_group, criterion_main, Criterion};
use riverwatch::domain::hj212::{self, CodeMap, Frame, Reassembly};
use riverwatch::domain::network::Network;
use riverwatch::domain::param::Param;
use riverwatch::domain::reading::{judge, Measured, Reading};
use riverwatch::domain::rules::{RuleConfig, Rules};
use riverwatch::domain::trend;
use riverwatch::ingest::payload::{decode_hj212, decode_json, PayloadLimits};
use riverwatch::store::points;

fn network() -> Network {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config/riverwatch.toml");
    riverwatch::config::load(&path)
        .expect("the shipped config")
        .network
}

fn limits() -> PayloadLimits {
    PayloadLimits {
        max_payload: 256 << 10,
        max_future_skew: Duration::minutes(10),
        max_age: Some(Duration::days(365)),
    }
}

fn reading(i: i64, nh3n: f64) -> Reading {
    let t0 = Utc
        .with_ymd_and_hms(2026, 11, 1, 0, 0, 0)
        .single()
        .expect("time");
    let v = |param, value| Measured {
        param,
        value,
        flag: None,
        below_detection: false,
    };
    Reading {
        station: "shijiao".into(),
        ts: t0 + Duration::minutes(5 * i),
        values: vec![
            v(Param::Temp, 22.0 + 0.1 * (i % 9) as f64),
            v(Param::Ph, 7.4 + 0.01 * (i % 7) as f64),
            v(Param::Do, 7.5 - 0.01 * (i % 5) as f64),
            v(Param::Codmn, 2.5 + 0.02 * (i % 3) as f64),
            v(Param::Nh3n, nh3n),
            v(Param::Tp, 0.05 + 0.001 * (i % 4) as f64),
        ],
        seq: None,
    }
}

fn benches(c: &mut Criterion) {
    let net = network();
    let station = net.station("shijiao").expect("shijiao").clone();
    let now = Utc
        .with_ymd_and_hms(2026, 12, 1, 0, 0, 0)
        .single()
        .expect("time");

    let json = br#"{"ts":"2026-11-26T10:00:00+08:00","values":{"temp":22.1,"ph":7.41,"do":7.6,"codmn":2.4,"nh3n":0.31,"tp":0.052},"flags":{"nh3n":"N"}}"#;
    c.bench_function("json_decode", |b| {
        b.iter(|| decode_json(black_box(&station), black_box(json), now, limits()))
    });

    let frame = Frame {
        qn: Some("20261126100000000".into()),
        st: "21".into(),
        cn: "2011".into(),
        pw: Some("123456".into()),
        mn: station.hj212_mn.clone().unwrap_or_default(),
        flag: Some(5),
        pnum: None,
        pno: None,
        cp: "DataTime=20261126100000;w01010-Rtd=22.1,w01010-Flag=N;w01001-Rtd=7.41,w01001-Flag=N;w01009-Rtd=7.6,w01009-Flag=N;w01019-Rtd=2.4,w01019-Flag=N;w21003-Rtd=0.31,w21003-Flag=N;w21011-Rtd=0.052,w21011-Flag=N".into(),
    }
    .encode();
    let map = CodeMap::default();
    c.bench_function("hj212_decode", |b| {
        b.iter(|| {
            let mut reassembly = Reassembly::default();
            decode_hj212(
                &station,
                black_box(frame.as_bytes()),
                now,
                limits(),
                &map,
                &mut reassembly,
            )
        })
    });
    c.bench_function("hj212_parse_frame", |b| {
        b.iter(|| hj212::parse(black_box(frame.as_bytes())))
    });

    // The daemon's per-reading core: QC, class, and every alert rule, on a station whose QC
    // history is already full (400 readings at 5 min: 33 h); as criterion iterates, the
    // trend window fills to its 7 days and the trend rule runs once per bucket, so the
    // figure includes its amortised cost.
    let mut rules = Rules::new(RuleConfig::default());
    for i in 0..400 {
        rules.reading(&net, &station, &reading(i, 0.3), now);
    }
    let mut i = 400;
    c.bench_function("qc_class_rules_per_reading", |b| {
        b.iter(|| {
            i += 1;
            rules.reading(&net, &station, black_box(&reading(i, 0.3)), now)
        })
    });
    // The same work in the daemon's access pattern: 200 stations in turn, so each reading
    // finds its station's state gone cold in the caches, as in `tests/bench.sh`'s run.
    let mut many = net.clone();
    many.stations = (0..200)
        .map(|k| {
            let mut s = station.clone();
            s.id = format!("s{k:03}");
            s.downstream = None;
            s
        })
        .collect();
    let mut rules = Rules::new(RuleConfig::default());
    let mut k = 0usize;
    c.bench_function("qc_class_rules_per_reading_200_stations", |b| {
        b.iter(|| {
            k += 1;
            let s = &many.stations[k % 200];
            let r = reading((k / 200) as i64, 0.3);
            rules.reading(&many, s, black_box(&r), now)
        })
    });
    let r = reading(1, 0.3);
    c.bench_function("class_only", |b| b.iter(|| judge(&station, black_box(&r))));

    let values: Vec<f64> = (0..180)
        .map(|k| 0.3 + 0.001 * k as f64 + 0.01 * ((k * 7) % 5) as f64)
        .collect();
    let times: Vec<i64> = (0..180).map(|k| k * 4 * 3600).collect();
    c.bench_function("mann_kendall_180", |b| {
        b.iter(|| trend::mann_kendall(black_box(&values)))
    });
    c.bench_function("sen_slope_180", |b| {
        b.iter(|| trend::sen(black_box(&times), black_box(&values)))
    });
    c.bench_function("hamed_rao_180", |b| {
        b.iter(|| trend::hamed_rao(black_box(&values), 0.05))
    });

    let j = judge(&station, &r);
    let qc: Vec<_> = r
        .values
        .iter()
        .map(|m| (m.param, riverwatch::domain::qc::Flag::Good))
        .collect();
    c.bench_function("line_protocol_encode", |b| {
        b.iter(|| {
            let mut out = String::with_capacity(256);
            points::reading(&station, black_box(&r), &j, &qc, &mut out);
            out
        })
    });
}

criterion_group!(core, benches);
criterion_main!(core);
