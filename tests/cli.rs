//! The command line as users run it: `check-config` on the shipped and on broken files, `run`
//! refusing a broken config before connecting, and the demo producing stored readings and
//! emails without any outside server.

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

const BROKEN: &str = r#"
[mqtt]
url = "mqtt://127.0.0.1:1883"
password = "written inline"

[influxdb]
url = "http://127.0.0.1:8086"
api = "v2"
batch_size = 0

[[bureau]]
id = "qingyuan"
name = "清远市生态环境局"
email = ["duty@qy.example.org"]

[[river]]
id = "bei"
name = "北江"

[[station]]
id = "shijiao"
name = "石角"
river = "bei"
city = "qingyuan"
target_class = 2

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
"#;

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
    // 7 stations × 72 hourly readings, all stored; the 3 malformed messages refused.
    assert_eq!(summary["received"], 504, "{summary}");
    assert_eq!(summary["stored"], 504, "{summary}");
    assert_eq!(summary["refused"], 3, "{summary}");
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
            .count(),
        504
    );
    // The boundary section's alert reached both bureaus.
    let names: Vec<String> = std::fs::read_dir(out_dir.join("outbox"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        names
            .iter()
            .any(|n| n.starts_with("shijiao-") && n.ends_with(".firing.guangzhou.eml")),
        "{names:?}"
    );
    assert!(
        names
            .iter()
            .any(|n| n.starts_with("shijiao-") && n.ends_with(".firing.qingyuan.eml")),
        "{names:?}"
    );
    assert!(stdout.contains("riverwatch demo summary"), "{stdout}");
}
