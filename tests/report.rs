//! `riverwatch report` on the real InfluxDB: months of readings written at the stations'
//! cadence straight into the database with line protocol (the schema of SPEC §6, as the daemon
//! writes it), then the report read as an analyst reads it — CSV through the `csv` crate,
//! Markdown, and the HTML page in headless Chromium (`common::browser`), measured through the
//! WebDriver and kept as `target/test-artifacts/report.png`.
//!
//! The data: 石角 reports hourly (four times as often as its 4-hour cadence) for only 3 days of
//! June 2025, then five more days with every value failed by QC; 大燕河
//! reports every 4 hours for all of June (class Ⅱ, an incident reached it) and all of July
//! (class Ⅳ, missing its class-Ⅱ target).

mod common;

use common::browser::{artifacts, Browser};
use common::*;
use serde_json::{json, Value};
use std::path::Path;
use std::process::{Command, Stdio};

/// A name long enough to need wrapping in the chart, with no space to break it at for its
/// first half.
const LONG_NAME: &str = "大燕河水车头国家地表水水质自动监测站（清远市清城区与广州市花都区交界断面） Dayanhe Shuichetou automatic water-quality station at the Qingyuan–Guangzhou boundary";

fn config(servers: &Servers, db: &str, dir: &Path) -> std::path::PathBuf {
    let text = format!(
        r#"
{store}

[spool]
dir = "{dir}/spool"

[report]
min_coverage = 0.75

[[bureau]]
id = "guangzhou"
name = "广州市生态环境局"
email = ["gz-report@example.org"]

[[bureau]]
id = "qingyuan"
name = "清远市生态环境局"
email = ["qy-report@example.org"]

[[river]]
id = "bei"
name = "北江"

[[station]]
id = "shijiao"
name = "石角(界牌)"
river = "bei"
city = "qingyuan"
target_class = 2
boundary = true
cadence = "4h"

[[station]]
id = "dayanhe"
name = "{LONG_NAME}"
river = "bei"
city = "guangzhou"
target_class = 2
boundary = true
cadence = "4h"
"#,
        store = v1_store(servers, db),
        dir = dir.display(),
    );
    write_config(dir.join("riverwatch.toml"), &text)
}

/// 00:00 of a day in UTC+8, as Unix seconds.
fn cst_midnight(y: i32, m: u32, d: u32) -> i64 {
    use chrono::TimeZone;
    chrono::FixedOffset::east_opt(8 * 3600)
        .expect("UTC+8")
        .with_ymd_and_hms(y, m, d, 0, 0, 0)
        .single()
        .expect("a day")
        .timestamp()
}

/// Line protocol for one station from `from` (Unix s) every `step` s, `n` points.
fn readings(
    out: &mut String,
    city: &str,
    station: &str,
    from: i64,
    step: i64,
    n: i64,
    fields: &str,
) {
    for i in 0..n {
        out.push_str(&format!(
            "water_quality,city={city},river=bei,station={station} {fields} {}\n",
            from + i * step
        ));
    }
}

fn write(servers: &Servers, db: &str, body: &str) {
    let mut child = Command::new("curl")
        .args([
            "-sf",
            "-XPOST",
            &format!("{}/write?db={db}&precision=s", servers.influx_v1),
            "--data-binary",
            "@-",
        ])
        .stdin(Stdio::piped())
        .spawn()
        .expect("curl runs");
    use std::io::Write;
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(body.as_bytes())
        .expect("line protocol sent");
    assert!(child.wait().expect("curl ends").success(), "write to {db}");
}

fn report(config: &Path, format: &str, extra: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_riverwatch"))
        .args([
            "report", "--from", "2025-06", "--to", "2025-07", "--format", format,
        ])
        .args(extra)
        .arg("--config")
        .arg(config)
        .output()
        .expect("report runs");
    assert_success(&out, "report");
    String::from_utf8(out.stdout).expect("UTF-8")
}

/// The `section` rows of the CSV by (station, month), as header → value maps.
fn sections(csv_text: &str) -> Vec<std::collections::HashMap<String, String>> {
    let mut reader = csv::Reader::from_reader(csv_text.as_bytes());
    let header: Vec<String> = reader
        .headers()
        .expect("a header")
        .iter()
        .map(String::from)
        .collect();
    reader
        .records()
        .map(|r| r.expect("a CSV record"))
        .filter(|r| &r[0] == "section")
        .map(|r| {
            header
                .iter()
                .cloned()
                .zip(r.iter().map(String::from))
                .collect()
        })
        .collect()
}

#[test]
fn the_report_claims_a_class_only_from_enough_of_the_month() {
    let Some((servers, _serial, dir)) = real_test("report") else {
        return;
    };
    let db = fresh_database(&servers, "rw_report_coverage");
    let config = config(&servers, &db, dir.path());

    let june = cst_midnight(2025, 6, 1);
    let july = cst_midnight(2025, 7, 1);
    let mut lp = String::new();
    // 石角: hourly for 3 days (72 readings, 18 four-hour slots), then 5 days failed by QC.
    readings(
        &mut lp,
        "qingyuan",
        "shijiao",
        june + 10 * 86_400,
        3600,
        72,
        "nh3n=0.3,nh3n_qc=1i,do=7.0,do_qc=1i,wq_class=2i",
    );
    readings(
        &mut lp,
        "qingyuan",
        "shijiao",
        june + 13 * 86_400,
        3600,
        120,
        "nh3n=9.0,nh3n_qc=4i,do=7.0,do_qc=4i",
    );
    // 大燕河: every 4 hours for all of June (class Ⅱ) and all of July (NH3-N 1.3: class Ⅳ).
    readings(
        &mut lp,
        "guangzhou",
        "dayanhe",
        june,
        4 * 3600,
        180,
        "nh3n=0.4,nh3n_qc=1i,do=6.5,do_qc=1i,wq_class=2i",
    );
    readings(
        &mut lp,
        "guangzhou",
        "dayanhe",
        july,
        4 * 3600,
        186,
        "nh3n=1.3,nh3n_qc=1i,do=6.5,do_qc=1i,wq_class=4i",
    );
    // One incident that reached 大燕河 in June (two transitions).
    for (state, t) in [("opened", june + 5 * 86_400), ("ended", june + 6 * 86_400)] {
        lp.push_str(&format!(
            "wq_incident,incident_id=inc-bei-1,level=orange,river=bei state=\"{state}\",stations=\"qixinggang,dayanhe\",message=\"\" {t}\n"
        ));
    }
    write(&servers, &db, &lp);

    let csv_text = report(&config, "csv", &[]);
    let rows = sections(&csv_text);
    let row = |station: &str, month: &str| {
        rows.iter()
            .find(|r| r["station"] == station && r["month"] == month)
            .unwrap_or_else(|| panic!("{station} {month}:\n{csv_text}"))
    };
    // 3 days of data: the coverage is said, and no class or verdict is claimed.
    let sj = row("shijiao", "2025-06");
    let got: Vec<&str> = [
        "valid_readings",
        "expected_readings",
        "coverage_percent",
        "insufficient_data",
        "class",
        "met",
        "city_name",
    ]
    .iter()
    .map(|k| sj[*k].as_str())
    .collect();
    assert_eq!(
        got,
        ["18", "180", "10.0", "true", "", "", "清远"],
        "{csv_text}"
    );
    let sj_july = row("shijiao", "2025-07");
    assert_eq!(
        (
            sj_july["valid_readings"].as_str(),
            sj_july["expected_readings"].as_str(),
            sj_july["class"].as_str()
        ),
        ("0", "186", ""),
        "{csv_text}"
    );
    // A full month: a class and a verdict, and the incident that reached it.
    let dy = row("dayanhe", "2025-06");
    let got: Vec<&str> = [
        "valid_readings",
        "expected_readings",
        "insufficient_data",
        "class",
        "met",
        "incidents",
        "incident_ids",
        "city_name",
        "name",
    ]
    .iter()
    .map(|k| dy[*k].as_str())
    .collect();
    assert_eq!(
        got,
        [
            "180",
            "180",
            "false",
            "2",
            "true",
            "1",
            "inc-bei-1",
            "广州",
            LONG_NAME
        ],
        "{csv_text}"
    );
    let dy_july = row("dayanhe", "2025-07");
    assert_eq!(
        (
            dy_july["class"].as_str(),
            dy_july["met"].as_str(),
            dy_july["incidents"].as_str()
        ),
        ("4", "false", "0"),
        "{csv_text}"
    );

    let md = report(&config, "md", &[]);
    assert!(
        md.contains("| 清远 | 石角(界牌) (shijiao) | 北江 | 清远→广州 | Ⅱ | 数据不足 insufficient data | — | — |  | 10.0% (18/180) | 0 |"),
        "{md}"
    );
    assert!(
        md.contains("| Ⅱ | Ⅱ | — | 是 yes |  | 100.0% (180/180) | 1 |"),
        "{md}"
    );
    // Only 大燕河's months are evaluated: June met, July missed.
    assert!(
        md.contains("| 全部 overall | 100.0% | 0.0% | 50.0% |"),
        "{md}"
    );
    assert!(
        md.starts_with("# 跨界断面水质达标情况 Boundary-section attainment, 2025-06 – 2025-07\n"),
        "{md}"
    );

    // The minimum is the operator's: at 5 % the 3 days claim June's class.
    let lenient = sections(&report(&config, "csv", &["--min-coverage", "0.05"]));
    let sj = lenient
        .iter()
        .find(|r| r["station"] == "shijiao" && r["month"] == "2025-06")
        .expect("石角 in June");
    assert_eq!((sj["class"].as_str(), sj["met"].as_str()), ("2", "true"));

    // The HTML page in a browser: legend, a chart of at least half the page, names unclipped.
    let page = dir.path().join("report.html");
    std::fs::write(&page, report(&config, "html", &[])).expect("HTML written");
    let browser = Browser::start(dir.path());
    browser.session(
        "POST",
        "/url",
        Some(json!({ "url": format!("file://{}", page.display()) })),
    );
    let measured = browser.session(
        "POST",
        "/execute/sync",
        Some(json!({"script": r#"
            const chart = document.querySelector('.chart');
            const legend = document.querySelector('.legend');
            return {
              title: document.querySelector('h1').textContent,
              page: document.documentElement.clientWidth,
              chart: chart ? chart.getBoundingClientRect().width : 0,
              keys: legend ? [...legend.querySelectorAll('.key')].map(k => k.textContent) : [],
              missedKey: !!(legend && legend.querySelector('.swatch.missed')),
              missedCells: document.querySelectorAll('.chart .cell.missed').length,
              labels: [...document.querySelectorAll('.chart .label')].map(e => ({
                text: e.textContent, scrollWidth: e.scrollWidth, clientWidth: e.clientWidth,
                scrollHeight: e.scrollHeight, clientHeight: e.clientHeight,
                width: e.getBoundingClientRect().width
              })),
            };"#, "args": []})),
    );
    let png = browser.screenshot();
    std::fs::write(artifacts().join("report.png"), &png).expect("screenshot artifact");
    assert!(png.starts_with(b"\x89PNG"), "a PNG screenshot");

    let num = |v: &Value| v.as_f64().unwrap_or(0.0);
    assert_eq!(
        measured["title"], "跨界断面水质达标情况 Boundary-section attainment, 2025-06 – 2025-07",
        "{measured}"
    );
    let keys: Vec<&str> = measured["keys"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    for needle in [
        "Ⅰ 类",
        "Ⅱ 类",
        "Ⅲ 类",
        "Ⅳ 类",
        "Ⅴ 类",
        "劣Ⅴ 类",
        "数据不足",
        "未达标",
    ] {
        assert!(
            keys.iter().any(|k| k.contains(needle)),
            "legend {needle}: {keys:?}"
        );
    }
    assert!(measured["missedKey"] == true, "{measured}");
    assert_eq!(measured["missedCells"], 1, "July at 大燕河: {measured}");
    assert!(
        num(&measured["chart"]) >= num(&measured["page"]) / 2.0,
        "chart {} px on a {} px page",
        measured["chart"],
        measured["page"]
    );
    let labels = measured["labels"].as_array().cloned().unwrap_or_default();
    assert_eq!(labels.len(), 2, "{measured}");
    for l in &labels {
        assert!(
            num(&l["scrollWidth"]) <= num(&l["clientWidth"])
                && num(&l["scrollHeight"]) <= num(&l["clientHeight"]),
            "clipped label: {l}"
        );
    }
    assert!(
        labels
            .iter()
            .any(|l| l["text"].as_str().is_some_and(|t| t.contains(LONG_NAME))),
        "the full name is in the chart: {labels:?}"
    );
    drop(browser);
    influx_exec(&servers.influx_v1, &format!("DROP DATABASE {db}"));
}
