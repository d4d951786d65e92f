//! The command line as users run it: `check-config` on the shipped and on broken files, `run`
//! refusing a broken config before connecting, and the demo producing stored readings and
//! emails without any outside server.

mod common;

use std::process::Command;

fn riverwatch() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_riverwatch"));
    c.env("NO_COLOR", "1").env_remove("RIVERWATCH_CONFIG");
    c
}

#[test]
fn shipped_configs_pass_check_config() {
    for file in ["config/riverwatch.toml", "config/demo.toml"] {
        let out = riverwatch()
            .args(["check-config", "--config", file])
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{file}: {stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            stdout.contains("valid (") && stdout.contains("2 bureaus"),
            "{stdout}"
        );
    }
}

/// The minimal network with broken sections before it and broken stations after it.
const BROKEN: &str = concat!(
    r#"
[mqtt]
url = "mqtt://127.0.0.1:1883"
password = "written inline"

[influxdb]
url = "http://127.0.0.1:8086"
api = "v2"
batch_size = 0

"#,
    include_str!("fixtures/config/minimal.toml"),
    r#"
[[station]]
id = "x"
name = "X"
river = "bei"
city = "qingyuan"
target_class = 2

[[station]]
id = "y"
name = "Y"
river = "bei"
city = "qingyuan"
target_class = 2

[[station]]
id = "z"
name = "Z"
river = "nowhere"
city = "foshan"
target_class = 6
cadence = "often"
"#
);

#[test]
fn broken_config_lists_every_problem_and_exits_64() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("broken.toml");
    std::fs::write(&path, BROKEN).unwrap();
    let out = riverwatch()
        .args(["check-config", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    let stderr = String::from_utf8_lossy(&out.stderr);
    for line in [
        "mqtt.password: secrets are never written in the config file",
        "influxdb.org: required with api = \"v2\"",
        "influxdb.bucket: required with api = \"v2\"",
        "influxdb.batch_size: 0 is not between 1 and 100000 lines",
        "station[3].river: \"nowhere\" is not a configured river",
        "station[3].city: \"foshan\" is not a configured bureau",
        "station[3].target_class: 6 is not a GB 3838 class 1 to 5",
        "station[3].cadence: \"often\" is not a duration",
    ] {
        assert!(stderr.contains(line), "missing {line:?} in:\n{stderr}");
    }
    assert!(stderr.contains("8 problems"), "{stderr}");

    // `run` validates the same way before connecting to anything.
    let out = riverwatch()
        .args(["run", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&out.stderr).contains("station[3].river"));
}

#[test]
fn missing_config_file_is_a_usage_error() {
    let out = riverwatch()
        .args(["check-config", "--config", "/nonexistent/riverwatch.toml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read"));
}

#[test]
fn check_config_names_a_bad_max_age() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("age.toml");
    let network = include_str!("fixtures/config/minimal.toml");
    for (age, why) in [
        ("a year", "ingest.max_age: \"a year\" is not a duration"),
        ("36501d", "ingest.max_age: must be at most 36500d"),
    ] {
        std::fs::write(&path, format!("[ingest]\nmax_age = \"{age}\"\n\n{network}")).unwrap();
        let out = riverwatch()
            .args(["check-config", "--config"])
            .arg(&path)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(64), "{age}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains(&format!("{}: {why}", path.display())),
            "{age}: {stderr}"
        );
    }
    std::fs::write(&path, format!("[ingest]\nmax_age = \"400d\"\n\n{network}")).unwrap();
    let out = riverwatch()
        .args(["check-config", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    common::assert_success(&out, "check-config");
}

#[test]
fn demo_stores_readings_and_writes_alert_emails() {
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("demo");
    let out = riverwatch()
        .args(["demo", "--duration", "3d", "--speed", "100000", "--out"])
        .arg(&out_dir)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out_dir.join("summary.json")).unwrap())
            .unwrap();
    // 7 stations × 72 hourly readings and the live buoy's few, all stored; the 3 malformed
    // messages refused.
    let received = summary["received"].as_u64().unwrap();
    assert!(received > 504, "{summary}");
    assert_eq!(summary["stored"], received, "{summary}");
    assert_eq!(summary["refused"], 3, "{summary}");
    // Every rule shows: the spill (exceedance, upstream, rate), the slow rise (trend), the
    // flagged probe (station_fault) and the silent buoy (offline); `class` is never counted,
    // as it is never sent.
    for rule in [
        "exceedance",
        "upstream",
        "rate",
        "trend",
        "station_fault",
        "offline",
    ] {
        assert!(
            summary["alerts_by_rule"][rule].as_u64() >= Some(1),
            "{rule}: {summary}"
        );
    }
    assert!(summary["alerts_by_rule"]["class"].is_null(), "{summary}");
    assert_eq!(summary["incidents"]["opened"], 1, "{summary}");
    assert_eq!(summary["incidents"]["ended"], 1, "{summary}");
    // What was sent, per bureau and channel: the fault and the silence to Qingyuan's
    // operators in digests, never to the duty officers one by one.
    assert!(
        summary["sent"]["qingyuan"]["digest_email"].as_u64() >= Some(1),
        "{summary}"
    );
    // 石角(界牌) sends HJ 212 frames: each was acknowledged (CN=9014) after storage.
    assert_eq!(summary["hj212_acks"], 72, "{summary}");
    assert!(
        summary["alerts"]["yellow"].as_u64().unwrap() >= 2,
        "{summary}"
    );
    let emails = summary["emails"].as_u64().unwrap();
    assert!(emails >= 3, "{summary}");
    let eml = std::fs::read_dir(out_dir.join("outbox")).unwrap().count() as u64;
    assert_eq!(eml, emails);
    let stored = std::fs::read_to_string(out_dir.join("spool/readings.lp")).unwrap();
    assert_eq!(
        stored
            .lines()
            .filter(|l| l.starts_with("water_quality,"))
            .count() as u64,
        received
    );
    // The incident heading for the boundary section reached both bureaus.
    let names: Vec<String> = std::fs::read_dir(out_dir.join("outbox"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        names
            .iter()
            .any(|n| n.contains("-incident-") && n.ends_with(".opened.guangzhou.eml")),
        "{names:?}"
    );
    assert!(
        names
            .iter()
            .any(|n| n.contains("-incident-") && n.ends_with(".opened.qingyuan.eml")),
        "{names:?}"
    );
    // The spill's own messages (七星岗 and 石角(界牌)) stay within the budget: at most 5 per
    // bureau and channel.
    let spill = |id: &str| id.starts_with("qixinggang-") || id.starts_with("shijiao-");
    for bureau in ["guangzhou", "qingyuan"] {
        let emails = names
            .iter()
            .filter(|n| spill(n) && n.ends_with(&format!(".{bureau}.eml")))
            .count();
        assert!(
            (1..=5).contains(&emails),
            "{bureau}: {emails} emails: {names:?}"
        );
    }
    let sms_log = std::fs::read_to_string(out_dir.join("sms.jsonl")).unwrap();
    for bureau in ["guangzhou", "qingyuan"] {
        let texts = sms_log
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .filter(|v| v["bureau"] == bureau && spill(v["alert_id"].as_str().unwrap()))
            .count();
        assert!((1..=5).contains(&texts), "{bureau}: {texts} SMS");
    }
    assert!(stdout.contains("riverwatch demo summary"), "{stdout}");
}

#[test]
fn hj212_decode_answers_every_line() {
    use std::io::Write;
    let frames = "##0372QN=20250601100000000;ST=21;CN=2011;PW=123456;MN=QY-BJ-SJ-0001;Flag=5;CP=&&DataTime=20250601100000;w01010-Rtd=26.4,w01010-Flag=N;w01001-Rtd=7.32,w01001-Flag=N;w01009-Rtd=6.85,w01009-Flag=N;w01014-Rtd=215.0,w01014-Flag=N;w01003-Rtd=18.6,w01003-Flag=N;w01019-Rtd=2.41,w01019-Flag=N;w21003-Rtd=0.182,w21003-Flag=N;w21011-Rtd=0.071,w21011-Flag=N;w21001-Rtd=1.65,w21001-Flag=N&&8641\r\n\
                  junk\n\
                  ##0101QN=20160801085857223;ST=32;CN=1062;PW=100000;MN=010000A8900016F000169DC0;Flag=5;CP=&&RtdInterval=30&&1C81\n\
                  ##0178ST=32;CN=2011;PW=123456;MN=0873HHMZWSLH02;CP=&&DataTime=20160103133030;060-Rtd=3.0943,060-Flag=N;011-Rtd=18.0412,011-Flag=N;001-Rtd=8.2137,001-Flag=N;B01-Rtd=10.9890,B01-Flag=N&&a9c1\n";
    let mut child = riverwatch()
        .args(["hj212", "decode"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(frames.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let lines: Vec<serde_json::Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 4);
    assert_eq!(lines[0]["version"], "2017");
    assert_eq!(lines[0]["needs_ack"], true);
    assert_eq!(lines[0]["values"]["nh3n"], 0.182);
    assert_eq!(lines[1]["error"], "does not start with ##");
    assert_eq!(
        lines[2]["error"],
        "crc mismatch: frame says 1C81, computed 1C80"
    );
    assert_eq!(lines[3]["version"], "2005");
    assert_eq!(lines[3]["values"]["nh3n"], 3.0943);
    assert_eq!(lines[3]["codes"]["B01"], 10.989);
}

/// A one-station config; `extra` is appended (e.g. QC tables).
fn assess_config(dir: &std::path::Path, extra: &str) -> std::path::PathBuf {
    let text = format!(
        "{extra}\n[[bureau]]\nid = \"qingyuan\"\nname = \"清远市生态环境局\"\nemail = [\"duty@qy.example.org\"]\n\
         [[river]]\nid = \"bei\"\nname = \"北江\"\n\
         [[station]]\nid = \"shijiao\"\nname = \"石角(界牌)\"\nriver = \"bei\"\ncity = \"qingyuan\"\ntarget_class = 2\nboundary = true\n"
    );
    let path = dir.join("assess.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn assess(
    config: &std::path::Path,
    input: &std::path::Path,
    extra: &[&str],
) -> (Vec<serde_json::Value>, String, Option<i32>) {
    let out = riverwatch()
        .args(["assess", "--config"])
        .arg(config)
        .arg("--input")
        .arg(input)
        .args(extra)
        .output()
        .unwrap();
    let lines = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    (
        lines,
        String::from_utf8_lossy(&out.stderr).into_owned(),
        out.status.code(),
    )
}

#[test]
fn check_config_takes_the_trend_test_and_names_a_bad_one() {
    let dir = tempfile::tempdir().unwrap();
    for (test, ok) in [("hamed_rao", true), ("original", true), ("sen", false)] {
        let config = assess_config(dir.path(), &format!("[trend]\ntest = \"{test}\""));
        let out = riverwatch()
            .args(["check-config", "--config"])
            .arg(&config)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        if ok {
            assert!(out.status.success(), "{test}: {stderr}");
            continue;
        }
        assert_eq!(out.status.code(), Some(64), "{stderr}");
        let line = format!(
            "{}: trend.test: \"sen\" is not a trend test (\"hamed_rao\" or \"original\")",
            config.display()
        );
        assert!(stderr.contains(&line), "missing {line:?} in:\n{stderr}");
    }
}

#[test]
fn assess_trends_equal_pymannkendall() {
    let dir = tempfile::tempdir().unwrap();
    // No QC tests on NH3-N, so every value counts, as in pymannkendall; and a detection limit
    // far below the series (0.0 is still censored, to 5e-13), so values are taken as given.
    let config = assess_config(dir.path(), "[qc.nh3n]");
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str("detection_limit = { nh3n = 1e-12 }\n");
    std::fs::write(&config, text).unwrap();
    let cases: Vec<serde_json::Value> =
        serde_json::from_str(include_str!("fixtures/mk_pymannkendall.json")).unwrap();
    for case in cases
        .iter()
        .filter(|c| c["values"].as_array().unwrap().len() >= 10)
    {
        let mut csv = String::from("station,ts,nh3n\n");
        for (i, v) in case["values"].as_array().unwrap().iter().enumerate() {
            let ts =
                chrono::DateTime::from_timestamp(1_767_225_600 + i as i64 * 4 * 3600, 0).unwrap();
            csv.push_str(&format!("shijiao,{},{}\n", ts.to_rfc3339(), v));
        }
        let input = dir.path().join("series.csv");
        std::fs::write(&input, csv).unwrap();
        let (lines, stderr, code) = assess(&config, &input, &[]);
        assert_eq!(code, Some(0), "{stderr}");
        let trend = lines
            .iter()
            .find(|l| l["kind"] == "trend")
            .expect("a trend object");
        let num = |v: &serde_json::Value| v.as_f64().unwrap();
        assert_eq!(num(&trend["s"]), num(&case["s"]));
        assert!((num(&trend["var_s"]) - num(&case["var_s"])).abs() < 1e-6);
        assert!((num(&trend["z"]) - num(&case["z"])).abs() < 1e-6);
        assert!((num(&trend["p"]) - num(&case["p"])).abs() < 1e-6);
        assert_eq!(trend["trend"], case["trend"]);
        // The autocorrelation-corrected test beside it; z and p null where it has none.
        let (hr, expected) = (&trend["hamed_rao"], &case["hamed_rao"]);
        assert!((num(&hr["var_s"]) - num(&expected["var_s"])).abs() < 1e-6);
        for k in ["z", "p"] {
            match (hr[k].as_f64(), expected[k].as_f64()) {
                (Some(a), Some(b)) => assert!((a - b).abs() < 1e-6, "{k}: {a} vs {b}"),
                (a, b) => assert_eq!((a, b), (None, None), "{k}: {hr}"),
            }
        }
        assert_eq!(hr["trend"], expected["trend"]);
        assert!(
            (num(&trend["sen_slope_per_day"]) - 6.0 * num(&case["slope_per_step"])).abs() < 1e-9
        );
        assert_eq!(
            trend["n"].as_u64().unwrap() as usize,
            case["values"].as_array().unwrap().len()
        );
    }
}

#[test]
fn assess_prints_hamed_rao_after_the_original_fields() {
    // The fixture's week whose corrected variance is negative: the original test finds a
    // rise, Hamed–Rao has no z or p and says no trend.
    let dir = tempfile::tempdir().unwrap();
    let config = assess_config(dir.path(), "[qc.nh3n]");
    let cases: Vec<serde_json::Value> =
        serde_json::from_str(include_str!("fixtures/mk_pymannkendall.json")).unwrap();
    let case = cases
        .iter()
        .find(|c| c["hamed_rao"]["z"].is_null())
        .unwrap();
    let mut csv = String::from("station,ts,nh3n\n");
    for (i, v) in case["values"].as_array().unwrap().iter().enumerate() {
        let ts = chrono::DateTime::from_timestamp(1_767_225_600 + i as i64 * 4 * 3600, 0).unwrap();
        csv.push_str(&format!("shijiao,{},{}\n", ts.to_rfc3339(), v));
    }
    let input = dir.path().join("series.csv");
    std::fs::write(&input, csv).unwrap();
    let run = |format: &str| {
        let out = riverwatch()
            .args(["assess", "--format", format, "--config"])
            .arg(&config)
            .arg("--input")
            .arg(&input)
            .output()
            .unwrap();
        assert!(out.status.success());
        String::from_utf8(out.stdout).unwrap()
    };
    let json = run("json");
    let trend = json.lines().last().unwrap();
    // SPEC §11: the original fields in their order, then the nested Hamed–Rao object.
    assert!(
        trend.starts_with(r#"{"kind":"trend","station":"shijiao","param":"nh3n","n":42,"s":367,"var_s":8501.0,"z":"#),
        "{trend}"
    );
    assert!(
        trend.ends_with(r#","trend":"increasing","hamed_rao":{"var_s":-1341.338791483268,"z":null,"p":null,"trend":"no trend"}}"#),
        "{trend}"
    );
    let csv_out = run("csv");
    let row = csv_out.lines().last().unwrap();
    assert!(
        row.starts_with("trend,shijiao,,nh3n,,,,,,42,367,8501,"),
        "{row}"
    );
    assert!(
        row.ends_with(",increasing,-1341.338791483268,,,no trend"),
        "{row}"
    );
}

#[test]
fn assess_reading_objects_and_profiles() {
    let dir = tempfile::tempdir().unwrap();
    let config = assess_config(dir.path(), "");
    let input = dir.path().join("readings.jsonl");
    std::fs::write(
        &input,
        "{\"station\":\"shijiao\",\"ts\":\"2026-11-26T10:00:00+08:00\",\"values\":{\"nh3n\":0.82,\"do\":6.5,\"ph\":7.2}}\n\
         {\"station\":\"shijiao\",\"ts\":\"2026-11-26T14:00:00+08:00\",\"values\":{\"do\":5.995,\"tn\":3.0}}\n\
         {\"station\":\"shijiao\",\"ts\":\"2026-11-26T18:00:00+08:00\",\"values\":{\"do\":5.994}}\n\
         {\"station\":\"nowhere\",\"ts\":\"2026-11-26T18:00:00+08:00\",\"values\":{\"do\":5.994}}\n",
    )
    .unwrap();
    let (lines, stderr, code) = assess(&config, &input, &["--profile", "national_realtime"]);
    assert_eq!(code, Some(1), "one row could not be read");
    assert!(
        stderr.contains("readings.jsonl:4: station \"nowhere\" is not configured"),
        "{stderr}"
    );
    let raw = riverwatch()
        .args(["assess", "--profile", "national_realtime", "--config"])
        .arg(&config)
        .arg("--input")
        .arg(&input)
        .output()
        .unwrap();
    // Exactly SPEC §11's shape and key order.
    assert_eq!(
        String::from_utf8(raw.stdout)
            .unwrap()
            .lines()
            .next()
            .unwrap(),
        r#"{"kind":"reading","station":"shijiao","ts":"2026-11-26T02:00:00Z","class":{"ph":1,"do":2,"nh3n":3},"overall_class":3,"target_class":2,"exceed":{"nh3n":0.64},"qc":{"ph":1,"do":1,"nh3n":1}}"#
    );
    // DO 5.995 rounds to 6.00 (Ⅱ), 5.994 to 5.99 (Ⅲ); TN never counts.
    assert_eq!(lines[1]["overall_class"], 2);
    assert_eq!(lines[2]["overall_class"], 3);
    assert!(lines[1]["class"].get("tn").is_none());
    let (csv_out, _) = {
        let out = riverwatch()
            .args(["assess", "--format", "csv", "--config"])
            .arg(&config)
            .arg("--input")
            .arg(&input)
            .output()
            .unwrap();
        (String::from_utf8(out.stdout).unwrap(), out.status.code())
    };
    assert!(csv_out.starts_with("kind,station,ts,param,class,overall_class,target_class,exceed,qc,n,s,var_s,z,p,sen_slope_per_day,trend,hr_var_s,hr_z,hr_p,hr_trend\n"), "{csv_out}");
    assert!(
        csv_out.contains("reading,shijiao,2026-11-26T02:00:00Z,nh3n,3,3,2,0.64,"),
        "{csv_out}"
    );
}

#[test]
fn assess_csv_with_missing_cells_and_bad_rows() {
    let dir = tempfile::tempdir().unwrap();
    let config = assess_config(dir.path(), "");
    let input = dir.path().join("readings.csv");
    std::fs::write(
        &input,
        "station,ts,ph,do,nh3n,tp\n\
         shijiao,2026-11-26T10:00:00+08:00,7.2,,0.3,\n\
         shijiao,2026-11-26T14:00:00+08:00,,6.1,,0.12\n\
         shijiao,yesterday,7.0,6.0,0.2,0.05\n\
         shijiao,2026-11-26T18:00:00+08:00,7.1,6.2,-1,0.05\n",
    )
    .unwrap();
    let (lines, stderr, code) = assess(&config, &input, &[]);
    assert_eq!(code, Some(1));
    assert!(
        stderr.contains("readings.csv:4: ts \"yesterday\" is not RFC 3339"),
        "{stderr}"
    );
    // A bad cell is listed and skipped; the rest of its row is kept (SPEC §4).
    assert!(
        stderr.contains("readings.csv:5: nh3n = -1 is negative"),
        "{stderr}"
    );
    assert_eq!(lines.len(), 3);
    // Empty cells are missing values, not zeros.
    assert_eq!(lines[0]["class"], serde_json::json!({"ph": 1, "nh3n": 2}));
    assert_eq!(lines[1]["class"], serde_json::json!({"do": 2, "tp": 3}));
    assert_eq!(lines[1]["exceed"]["tp"], 0.2);
    assert_eq!(
        lines[2]["class"],
        serde_json::json!({"ph": 1, "do": 2, "tp": 2})
    );
}

/// The national real-time publication's own classes (../shared/data, README there), with the
/// shipped default QC: every published class is reproduced (WATER.md §2.6, §5.5).
#[test]
fn assess_reproduces_the_national_publication() {
    let data = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data");
    let expected = std::fs::read_to_string(data.join("cnemc2026_expected.csv"))
        .expect("../shared/data/cnemc2026_expected.csv (the shared real data)");
    let mut rows = csv::Reader::from_reader(expected.as_bytes());
    let header = rows.headers().unwrap().clone();
    let col = |name: &str| header.iter().position(|h| h == name).unwrap();
    let (station, class, body) = (col("station"), col("published_class"), col("water_body"));
    let expected: Vec<(String, String, String)> = rows
        .records()
        .map(|r| {
            let r = r.unwrap();
            (
                r[station].to_string(),
                r[class].to_string(),
                r[body].to_string(),
            )
        })
        .collect();
    let mut config = String::from(
        "[[bureau]]\nid = \"b\"\nname = \"b\"\nemail = [\"ops@example.org\"]\n[[river]]\nid = \"r\"\nname = \"r\"\n",
    );
    let mut seen = std::collections::BTreeSet::new();
    for (s, _, body) in &expected {
        if seen.insert(s.clone()) {
            config.push_str(&format!(
                "[[station]]\nid = \"{s}\"\nname = \"{s}\"\nriver = \"r\"\ncity = \"b\"\nwater_body = \"{body}\"\ntarget_class = 3\ncadence = \"4h\"\nprofile = \"national_realtime\"\n"
            ));
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("national.toml");
    std::fs::write(&path, config).unwrap();
    let (lines, stderr, code) = assess(&path, &data.join("cnemc2026_input.csv"), &[]);
    assert_eq!(code, Some(0), "{stderr}");
    let readings: Vec<_> = lines.iter().filter(|l| l["kind"] == "reading").collect();
    assert_eq!(readings.len(), expected.len());
    // assess prints stations in id order and each station's readings in time order, as the
    // input file lists them.
    let wrong: Vec<String> = readings
        .iter()
        .zip(&expected)
        .filter(|(got, (s, class, _))| {
            got["station"] != s.as_str()
                || got["overall_class"]
                    .as_u64()
                    .map(|c| c.to_string())
                    .as_deref()
                    != Some(class.as_str())
        })
        .map(|(got, (s, class, _))| format!("{s}: published {class}, got {got}"))
        .collect();
    assert!(
        wrong.is_empty(),
        "{} of {} classes differ: {wrong:#?}",
        wrong.len(),
        expected.len()
    );
}

#[test]
fn assess_judges_censored_results_as_half_the_detection_limit() {
    let dir = tempfile::tempdir().unwrap();
    let config = assess_config(dir.path(), "");
    let input = dir.path().join("censored.csv");
    // Class Ⅰ NH3-N is ≤ 0.15: a detection limit of 0.2 judged as 0.1 is class Ⅰ, as the
    // limit itself (0.2) would be class Ⅱ.
    std::fs::write(
        &input,
        "station,ts,nh3n,tp\n\
         shijiao,2026-11-26T10:00:00+08:00,<0.2,ND\n\
         shijiao,2026-11-26T14:00:00+08:00,0.2L,0.03L\n\
         shijiao,2026-11-26T18:00:00+08:00,0.2,未检出\n",
    )
    .unwrap();
    let (lines, stderr, code) = assess(&config, &input, &[]);
    assert_eq!(code, Some(0), "{stderr}");
    let classes: Vec<_> = lines.iter().map(|l| l["class"].clone()).collect();
    assert_eq!(
        classes,
        [
            serde_json::json!({"nh3n": 1, "tp": 1}),
            serde_json::json!({"nh3n": 1, "tp": 1}),
            serde_json::json!({"nh3n": 2, "tp": 1}),
        ]
    );
}

/// `simulate --tcp` plays data loggers, so a config whose stations have no MN has none to
/// play: said before anything connects, exit 64 (the options and config are at fault).
#[test]
fn simulate_over_tcp_needs_a_station_with_an_mn() {
    let out = riverwatch()
        .args(["simulate", "--config", "tests/fixtures/config/minimal.toml"])
        .args(["--tcp", "127.0.0.1:9", "--count", "1"])
        .output()
        .expect("riverwatch runs");
    assert_eq!(out.status.code(), Some(64));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("not played over TCP: shijiao"), "{err}");
    assert!(
        err.contains("no station has an hj212_mn: there is no data logger to play over TCP"),
        "{err}"
    );
}

/// A config that `run` accepts and that stops at once without any server: the broker, the
/// database and SMTP on a closed port, and `[http] listen` on a port the caller holds, so the
/// daemon logs (WARN, INFO) and exits 1 with an ERROR line "cannot listen for HTTP".
fn stopping_config(dir: &std::path::Path, http: u16, extra: &str) -> std::path::PathBuf {
    let closed = common::free_port();
    let text = format!(
        "[mqtt]\nurl = \"mqtt://127.0.0.1:{closed}\"\n{extra}\n[influxdb]\nurl = \"http://127.0.0.1:{closed}\"\napi = \"v1\"\ndatabase = \"water\"\n\n[smtp]\nurl = \"smtp://127.0.0.1:{closed}\"\nfrom = \"rw <alerts@example.org>\"\n\n[spool]\ndir = \"spool\"\n\n[http]\nlisten = \"127.0.0.1:{http}\"\n\n{}",
        include_str!("fixtures/config/minimal.toml")
    );
    common::write_config(dir.join("stopping.toml"), &text)
}

fn held_port() -> (std::net::TcpListener, u16) {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    (l, port)
}

#[test]
fn piped_logs_carry_no_colour_and_a_terminal_gets_colour_unless_no_color() {
    let dir = tempfile::tempdir().unwrap();
    let (_held, http) = held_port();
    let config = stopping_config(dir.path(), http, "");
    // journald and pipes: plain text even when TERM says the terminal could do colour.
    let out = riverwatch()
        .env_remove("NO_COLOR")
        .env("TERM", "xterm-256color")
        .args(["run", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("ERROR riverwatch: cannot listen for HTTP"),
        "{stderr}"
    );
    assert!(
        !stderr.contains('\u{1b}'),
        "escape codes in a pipe:\n{stderr}"
    );

    // A terminal (a pseudo-terminal from `script`) gets colour; NO_COLOR turns it off.
    let command = format!(
        "{} run --config {}",
        env!("CARGO_BIN_EXE_riverwatch"),
        config.display()
    );
    for (no_color, coloured) in [(None, true), (Some("1"), false)] {
        let mut c = Command::new("script");
        c.args(["-qec", &command, "/dev/null"])
            .env("TERM", "xterm-256color")
            .env_remove("NO_COLOR");
        if let Some(v) = no_color {
            c.env("NO_COLOR", v);
        }
        let Ok(out) = c.output() else {
            eprintln!("no `script` here: the terminal half is checked by the unit tests only");
            return;
        };
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("cannot listen for HTTP"), "{text}");
        assert_eq!(
            text.contains('\u{1b}'),
            coloured,
            "NO_COLOR={no_color:?}:\n{text}"
        );
    }
}

#[test]
fn json_logs_have_the_documented_fields_and_rust_log_filters() {
    let dir = tempfile::tempdir().unwrap();
    let (_held, http) = held_port();
    let config = stopping_config(dir.path(), http, "");
    for how in ["--log-format", "RIVERWATCH_LOG_FORMAT"] {
        let mut c = riverwatch();
        if how == "--log-format" {
            // A global option: accepted after the subcommand too.
            c.args(["run", "--log-format", "json", "--config"]);
        } else {
            c.env("RIVERWATCH_LOG_FORMAT", "json")
                .args(["run", "--config"]);
        }
        let out = c.arg(&config).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        let lines: Vec<serde_json::Value> = stderr
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{how}: {l:?}: {e}")))
            .collect();
        let error = lines
            .iter()
            .find(|l| l["level"] == "ERROR")
            .unwrap_or_else(|| panic!("{how}: no ERROR line in {stderr}"));
        assert_eq!(error["message"], "cannot listen for HTTP (http.listen)");
        assert_eq!(error["target"], "riverwatch");
        assert_eq!(error["listen"], format!("127.0.0.1:{http}"));
        let ts = error["timestamp"].as_str().unwrap();
        assert!(chrono::DateTime::parse_from_rfc3339(ts).is_ok(), "{ts}");
    }
    // RUST_LOG=error keeps the ERROR line and drops the INFO and WARN ones; RIVERWATCH_LOG,
    // when set, wins over it.
    let levels = |envs: &[(&str, &str)]| {
        let mut c = riverwatch();
        c.env_remove("RUST_LOG").env_remove("RIVERWATCH_LOG");
        for (k, v) in envs {
            c.env(k, v);
        }
        let out = c.args(["run", "--config"]).arg(&config).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr).to_string();
        ["ERROR", "WARN", "INFO"].map(|l| stderr.contains(&format!(" {l} ")))
    };
    assert_eq!(levels(&[]), [true, true, true]);
    assert_eq!(levels(&[("RUST_LOG", "error")]), [true, false, false]);
    assert_eq!(
        levels(&[("RUST_LOG", "error"), ("RIVERWATCH_LOG", "info")]),
        [true, true, true]
    );
}

#[test]
fn usage_errors_exit_64_and_help_and_version_exit_0() {
    for (args, code) in [
        (vec!["run", "--no-such-option"], 64),
        (vec![], 64),
        (vec!["frobnicate"], 64),
        (vec!["simulate"], 64),
        (vec!["--log-format", "xml", "run"], 64),
        (vec!["--help"], 0),
        (vec!["--version"], 0),
        (vec!["report", "--help"], 0),
    ] {
        let out = riverwatch().args(&args).output().unwrap();
        assert_eq!(out.status.code(), Some(code), "{args:?}: {out:?}");
    }
}

/// Every option of every command, as `--help` lists it.
fn options_of(command: &[&str]) -> Vec<(String, bool)> {
    let out = riverwatch().args(command).arg("--help").output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let lines: Vec<&str> = text.lines().collect();
    let mut options = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let trimmed = line.trim_start();
        let Some(at) = trimmed.find("--") else {
            continue;
        };
        if !(trimmed.starts_with('-')) {
            continue;
        }
        let name: String = trimmed[at..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
            .collect();
        if name == "--help" || name == "--version" {
            continue;
        }
        // Help on the same line after two spaces, or on the next, indented further.
        let helped = trimmed.trim_end().contains("  ")
            || lines.get(i + 1).is_some_and(|n| {
                n.len() - n.trim_start().len() > line.len() - trimmed.len() && !n.trim().is_empty()
            });
        options.push((name, helped));
    }
    options
}

#[test]
fn every_option_has_help_and_is_in_the_readme() {
    let readme = std::fs::read_to_string("README.md").unwrap();
    let commands: [&[&str]; 8] = [
        &["run"],
        &["check-config"],
        &["demo"],
        &["assess"],
        &["simulate"],
        &["report"],
        &["hj212", "decode"],
        &[],
    ];
    let mut seen = 0;
    for command in commands {
        for (option, helped) in options_of(command) {
            seen += 1;
            assert!(helped, "{command:?} {option} has no help text");
            assert!(
                readme.contains(&option),
                "README does not mention {command:?} {option}"
            );
        }
    }
    assert!(seen > 20, "only {seen} options found");
}

#[test]
fn run_lists_every_missing_or_empty_secret_at_once_and_reads_systemd_credentials() {
    let dir = tempfile::tempdir().unwrap();
    let (_held, http) = held_port();
    let config = stopping_config(
        dir.path(),
        http,
        "username = \"rw\"\npassword_env = \"RIVERWATCH_TEST_CLI_UNSET\"",
    );
    let text = std::fs::read_to_string(&config).unwrap().replace(
        "[http]\nlisten",
        "[http]\ntoken_env = \"RIVERWATCH_TEST_CLI_EMPTY\"\nlisten",
    );
    std::fs::write(&config, text).unwrap();
    let out = riverwatch()
        .env_remove("RIVERWATCH_TEST_CLI_UNSET")
        .env("RIVERWATCH_TEST_CLI_EMPTY", "")
        .env_remove("CREDENTIALS_DIRECTORY")
        .args(["run", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(64), "{stderr}");
    assert!(stderr.contains("2 secrets cannot be read"), "{stderr}");
    assert!(
        stderr.contains("mqtt.password: environment variable RIVERWATCH_TEST_CLI_UNSET is not set"),
        "{stderr}"
    );
    assert!(
        stderr.contains("http.token: environment variable RIVERWATCH_TEST_CLI_EMPTY is empty"),
        "{stderr}"
    );
    // check-config says the same as notes (the file is valid).
    let out = riverwatch()
        .env_remove("RIVERWATCH_TEST_CLI_UNSET")
        .env("RIVERWATCH_TEST_CLI_EMPTY", "")
        .env_remove("CREDENTIALS_DIRECTORY")
        .args(["check-config", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert_eq!(stdout.matches("(needed by `run`)").count(), 2, "{stdout}");

    // systemd's LoadCredential=: files named after the variables come first.
    let creds = dir.path().join("credentials");
    std::fs::create_dir(&creds).unwrap();
    std::fs::write(creds.join("RIVERWATCH_TEST_CLI_UNSET"), "mqtt-secret\n").unwrap();
    std::fs::write(creds.join("RIVERWATCH_TEST_CLI_EMPTY"), "api-secret").unwrap();
    let out = riverwatch()
        .env_remove("RIVERWATCH_TEST_CLI_UNSET")
        .env("RIVERWATCH_TEST_CLI_EMPTY", "")
        .env("CREDENTIALS_DIRECTORY", &creds)
        .args(["run", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    // Past the secrets: it stops only at the HTTP port the test holds.
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("cannot listen for HTTP"), "{stderr}");
}

#[test]
fn a_required_service_unreachable_at_start_exits_69() {
    let dir = tempfile::tempdir().unwrap();
    let (_held, http) = held_port();
    let config = stopping_config(dir.path(), http, "required = true");
    let out = riverwatch()
        .args(["run", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(69), "{stderr}");
    assert!(stderr.contains("the MQTT broker at 127.0.0.1:"), "{stderr}");
    assert!(stderr.contains("[mqtt] required = true"), "{stderr}");

    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace("required = true", "")
        .replace(
            "database = \"water\"",
            "database = \"water\"\nrequired = true",
        );
    std::fs::write(&config, text).unwrap();
    let out = riverwatch()
        .args(["run", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(69), "{stderr}");
    assert!(stderr.contains("InfluxDB at 127.0.0.1:"), "{stderr}");
    assert!(stderr.contains("[influxdb] required = true"), "{stderr}");
}

#[test]
fn report_with_an_unreadable_secret_is_a_config_problem() {
    let dir = tempfile::tempdir().unwrap();
    let config = common::write_config(
        dir.path().join("report.toml"),
        &format!(
            "[influxdb]\nurl = \"http://127.0.0.1:1\"\napi = \"v2\"\norg = \"o\"\nbucket = \"b\"\ntoken_env = \"RIVERWATCH_TEST_CLI_UNSET\"\n\n{}",
            include_str!("fixtures/config/minimal.toml").replace("target_class = 2", "target_class = 2\nboundary = true")
        ),
    );
    let out = riverwatch()
        .env_remove("RIVERWATCH_TEST_CLI_UNSET")
        .args(["report", "--from", "2026-01", "--to", "2026-02", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(64), "{stderr}");
    assert!(
        stderr
            .contains("influxdb.token: environment variable RIVERWATCH_TEST_CLI_UNSET is not set"),
        "{stderr}"
    );
}

#[test]
fn report_reads_from_influx_url() {
    let Some((servers, _serial, dir)) = common::real_test("report_reads_from_influx_url") else {
        return;
    };
    let db = common::fresh_database(&servers, "cli_report");
    // [influxdb] points at a closed port: only --influx-url can make the report succeed.
    let closed = common::free_port();
    let config = common::write_config(
        dir.path().join("report.toml"),
        &format!(
            "[influxdb]\nurl = \"http://127.0.0.1:{closed}\"\napi = \"v1\"\ndatabase = \"{db}\"\n\n{}",
            include_str!("fixtures/config/minimal.toml").replace("target_class = 2", "target_class = 2\nboundary = true")
        ),
    );
    let report = |extra: &[&str]| {
        riverwatch()
            .args([
                "report", "--from", "2026-01", "--to", "2026-01", "--format", "csv", "--config",
            ])
            .arg(&config)
            .args(extra)
            .output()
            .unwrap()
    };
    let out = report(&[]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let out = report(&["--influx-url", &servers.influx_v1]);
    common::assert_success(&out, "report --influx-url");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("shijiao"),
        "{out:?}"
    );
}

#[test]
fn demo_creates_a_missing_database_and_fails_clearly_without_a_server() {
    let dir = tempfile::tempdir().unwrap();
    let closed = common::free_port();
    let out = riverwatch()
        .args([
            "demo",
            "--duration",
            "3h",
            "--speed",
            "100000",
            "--influx-url",
        ])
        .arg(format!("http://127.0.0.1:{closed}"))
        .arg("--out")
        .arg(dir.path().join("demo"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("cannot create the database \"water\""),
        "{stderr}"
    );

    let Some((servers, _serial, dir)) = common::real_test("demo_creates_a_missing_database") else {
        return;
    };
    let db = format!("cli_demo_{}", std::process::id());
    let config = common::write_config(
        dir.path().join("demo.toml"),
        &std::fs::read_to_string("config/demo.toml")
            .unwrap()
            .replace("database = \"water\"", &format!("database = \"{db}\"")),
    );
    let out = riverwatch()
        .args(["demo", "--duration", "1d", "--speed", "100000", "--config"])
        .arg(&config)
        .arg("--influx-url")
        .arg(&servers.influx_v1)
        .arg("--out")
        .arg(dir.path().join("demo"))
        .output()
        .unwrap();
    common::assert_success(&out, "demo --influx-url to a missing database");
    let stored = common::influx_count(&servers.influx_v1, &db, "ph", "water_quality");
    assert!(stored > 0, "nothing stored in {db}");
}

#[test]
fn spec_example_passes_check_config() {
    let out = riverwatch()
        .args([
            "check-config",
            "--config",
            "tests/fixtures/config/spec_example.toml",
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!stdout.contains("not yet supported"), "{stdout}");
}

#[test]
fn one_wrong_field_is_named_in_operator_words_without_follow_on_errors() {
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "{}\n[[station]]\nid = \"downstream\"\nname = \"D\"\nriver = \"bei\"\ncity = \"qingyuan\"\ntarget_class = 3\ncadence = 4\n\n[[station]]\nid = \"upstream\"\nname = \"U\"\nriver = \"bei\"\ncity = \"qingyuan\"\ntarget_class = 2\ndownstream = \"shijiao\"\ntravel_time = \"10h\"\n",
        include_str!("fixtures/config/minimal.toml").replace("target_class = 2", "target_class = \"two\"")
    );
    let path = common::write_config(dir.path().join("wrong.toml"), &text);
    let out = riverwatch()
        .args(["check-config", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(64), "{stderr}");
    assert!(stderr.contains("2 problems"), "{stderr}");
    assert!(
        stderr.contains("station[0].target_class: must be an integer 1–5 (a GB 3838 class), not a string \"two\""),
        "{stderr}"
    );
    assert!(
        stderr.contains("station[1].cadence: must be a duration like \"30s\", not an integer 4"),
        "{stderr}"
    );
    assert!(!stderr.contains("is not a configured station"), "{stderr}");
    assert!(!stderr.contains("i64"), "{stderr}");
}

/// A reader that stops early closes the pipe: `check-config | head -c 0` exits 0 without a
/// panic. Repeated, since the reader may or may not be gone before the first write.
#[test]
fn a_closed_pipe_on_stdout_is_no_panic() {
    let bin = env!("CARGO_BIN_EXE_riverwatch");
    for _ in 0..5 {
        let out = std::process::Command::new("bash")
            .args([
                "-c",
                &format!(
                    "set -o pipefail; {bin} check-config --config tests/fixtures/config/spec_example.toml | head -c 0"
                ),
            ])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
}

/// `--version` answers after any command too, and bad values of simulate's and report's
/// options are usage errors (64) in plain words, before anything is contacted.
#[test]
fn versions_everywhere_and_bad_option_values_exit_64() {
    for cmd in [
        &["run"][..],
        &["check-config"],
        &["hj212", "decode"],
        &["report"],
    ] {
        let out = riverwatch().args(cmd).arg("--version").output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{cmd:?}");
        assert!(
            String::from_utf8_lossy(&out.stdout).contains(env!("CARGO_PKG_VERSION")),
            "{cmd:?}"
        );
    }
    let config = "config/riverwatch.toml";
    let cases: &[(&[&str], &str)] = &[
        (
            &[
                "simulate",
                "--config",
                config,
                "--broker",
                "mqtt://127.0.0.1:1",
                "--rate=-1",
            ],
            "is not a rate",
        ),
        (
            &[
                "simulate",
                "--config",
                config,
                "--broker",
                "mqtt://127.0.0.1:1",
                "--rate",
                "NaN",
            ],
            "is not a rate",
        ),
        (
            &["simulate", "--config", config, "--broker", "foo://x"],
            "scheme must be one of",
        ),
        (
            &[
                "simulate",
                "--config",
                config,
                "--broker",
                "mqtt://127.0.0.1:1",
                "--interval",
                "0s",
            ],
            "is not a positive duration",
        ),
        (
            &[
                "report",
                "--config",
                config,
                "--from",
                "2026-01",
                "--to",
                "2026-02",
                "--influx-url",
                "notaurl",
            ],
            "must be an http:// or https:// URL",
        ),
    ];
    for (args, says) in cases {
        let out = riverwatch().args(*args).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(64), "{args:?}: {stderr}");
        assert!(stderr.contains(says), "{args:?}: {stderr}");
    }
}
