//! HJ 212 over TCP with real servers: a logger emulator of the test runner's own
//! (`tests/hj212_logger.py`, with its own framing and CRC) plays three stations' data loggers
//! against the daemon's `[hj212_tcp]` listener. The store is VictoriaMetrics through the v2
//! write API, which keeps every sample written (InfluxDB 1.x would overwrite a point written
//! twice), so "stored once" is counted, not assumed.

mod common;

use common::*;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

/// (station id, MN, access password) of the three loggers.
const LOGGERS: [(&str, &str, &str); 3] = [
    ("qixinggang", "QY-BJ-QXG-0001", "411207"),
    ("shijiao", "QY-BJ-SJ-0001", "837201"),
    ("feilaixia", "QY-BJ-FLX-0002", "290466"),
];

/// A daemon config with the listener on `port` (kept across restarts) and `tcp` added to
/// `[hj212_tcp]`, storing in VictoriaMetrics; each logger's password in a file. The station
/// ids are `<name>_<id>`: the tests share one VictoriaMetrics.
fn config(servers: &Servers, name: &str, dir: &Path, port: u16, tcp: &str) -> PathBuf {
    std::fs::write(dir.join("token"), "test-token\n").expect("token");
    let mut stations = String::new();
    for (id, mn, pw) in LOGGERS {
        std::fs::write(dir.join(format!("{id}.pw")), format!("{pw}\n")).expect("password");
        stations.push_str(&format!(
            "\n[[station]]\nid = \"{name}_{id}\"\nname = \"{id}\"\nriver = \"bei\"\ncity = \"qingyuan\"\ntarget_class = 3\ncadence = \"1h\"\nhj212_mn = \"{mn}\"\nhj212_pw_file = \"{id}.pw\"\n"
        ));
    }
    let text = format!(
        r#"
[mqtt]
url = "mqtt://127.0.0.1:{mqtt}"
client_id = "rw-test-{name}"

[influxdb]
url = "{vm}"
api = "v2"
org = "guangqing"
bucket = "water"
token_file = "token"
flush_interval = "200ms"

[spool]
dir = "{dir}/spool"

[http]
listen = "127.0.0.1:0"

[smtp]
url = "smtp://127.0.0.1:{smtp}"
from = "riverwatch test <rw@example.org>"

[hj212_tcp]
listen = "127.0.0.1:{port}"
{tcp}

[[bureau]]
id = "qingyuan"
name = "清远市生态环境局"
email = ["qy-{name}@example.org"]

[[river]]
id = "bei"
name = "北江"
{stations}"#,
        mqtt = servers.mqtt_port,
        vm = servers.vm,
        smtp = servers.smtp_port,
        dir = dir.display(),
    );
    write_config(dir.join("riverwatch.toml"), &text)
}

fn start(config: &Path, log: &Path) -> Daemon {
    let mut daemon = Daemon::start(config, log);
    daemon.wait_log("HJ 212 TCP listening", Duration::from_secs(15));
    daemon
}

/// One frame of the emulator's spec: its data segment, QN, whether it asks for an answer,
/// and the VictoriaMetrics sample that must exist when it is acknowledged.
fn frame(segment: String, qn: &str, ack: bool, ts_ms: i64) -> serde_json::Value {
    serde_json::json!({"segment": segment, "qn": qn, "ack": ack, "ts_ms": ts_ms,
                       "check": if ack { Some("water_quality_nh3n") } else { None }})
}

/// The CST (UTC+8) `YYYYMMDDhhmmss` of epoch milliseconds.
fn cst(ts_ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ts_ms)
        .expect("a time")
        .with_timezone(&chrono::FixedOffset::east_opt(8 * 3600).expect("UTC+8"))
        .format("%Y%m%d%H%M%S")
        .to_string()
}

/// Each logger's frames: `n` real-time frames (CN=2011) a minute apart ending 10 minutes ago,
/// with NH3-N distinct per frame, and one hourly frame (CN=2061); the fourth real-time frame of
/// the first logger has a 17-digit `DataTime` (milliseconds), of the second a Chinese status
/// field, of the third is split over two packets. Returns (spec stations, every (station,
/// ts_ms) stored).
fn stations(name: &str, n: i64) -> (Vec<serde_json::Value>, Vec<(String, i64)>) {
    let now = chrono::Utc::now().timestamp_millis();
    let newest = now - now % 60_000 - 10 * 60_000;
    let hour = newest - newest % 3_600_000 - 3_600_000;
    let mut out = Vec::new();
    let mut stored = Vec::new();
    for (k, (id, mn, pw)) in LOGGERS.iter().enumerate() {
        let mut frames = Vec::new();
        for i in 0..n {
            let ts = newest - (n - 1 - i) * 60_000;
            let dt = cst(ts);
            let qn = format!("{dt}{:03}", k);
            let nh3n = format!("{:.3}", 0.2 + 0.001 * (i as f64) + 0.1 * k as f64);
            let head = |flag: u8| format!("QN={qn};ST=21;CN=2011;PW={pw};MN={mn};Flag={flag};");
            let values = format!("w21003-Rtd={nh3n},w21003-Flag=N;w01001-Rtd=7.21,w01001-Flag=N");
            if i == 3 && k == 2 {
                frames.push(frame(
                    format!(
                        "{}PNUM=2;PNO=1;CP=&&DataTime={dt};w21003-Rtd={nh3n},w21003-Flag=N&&",
                        head(7)
                    ),
                    &qn,
                    true,
                    ts,
                ));
                frames.push(frame(
                    format!(
                        "{}PNUM=2;PNO=2;CP=&&DataTime={dt};w01001-Rtd=7.21,w01001-Flag=N&&",
                        head(7)
                    ),
                    &qn,
                    false,
                    ts,
                ));
            } else if i == 3 && k == 1 {
                frames.push(frame(
                    format!("{}CP=&&DataTime={dt};{values};i12001-Info=正常&&", head(5)),
                    &qn,
                    true,
                    ts,
                ));
            } else if i == 3 && k == 0 {
                frames.push(frame(
                    format!("{}CP=&&DataTime={dt}123;{values}&&", head(5)),
                    &qn,
                    true,
                    ts,
                ));
            } else {
                frames.push(frame(
                    format!("{}CP=&&DataTime={dt};{values}&&", head(5)),
                    &qn,
                    true,
                    ts,
                ));
            }
            stored.push((format!("{name}_{id}"), ts));
        }
        let dt = cst(hour);
        let qn = format!("{}{:03}", cst(newest), 900 + k);
        frames.push(frame(
            format!("QN={qn};ST=21;CN=2061;PW={pw};MN={mn};Flag=5;CP=&&DataTime={dt};w21003-Min=0.150,w21003-Avg=0.180,w21003-Max=0.210,w21003-Flag=N&&"),
            &qn,
            true,
            hour,
        ));
        stored.push((format!("{name}_{id}"), hour));
        out.push(
            serde_json::json!({"station": format!("{name}_{id}"), "mn": mn, "frames": frames}),
        );
    }
    (out, stored)
}

/// Every sample of `series` per (station, ts_ms) in VictoriaMetrics, of the stations named
/// `<name>_…`.
fn samples(vm: &str, series: &str, name: &str) -> Vec<(String, i64)> {
    let _ = Command::new("curl")
        .args(["-sf", &format!("{vm}/internal/force_flush")])
        .output();
    let out = Command::new("curl")
        .args([
            "-sf",
            &format!("{vm}/api/v1/export"),
            "-d",
            &format!("match[]={series}{{station=~\"{name}_.*\"}}"),
        ])
        .output()
        .expect("curl runs");
    let mut all = Vec::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let v: serde_json::Value = serde_json::from_str(line).expect("export JSON");
        let station = v["metric"]["station"].as_str().unwrap_or("").to_string();
        for ts in v["timestamps"].as_array().into_iter().flatten() {
            all.push((station.clone(), ts.as_i64().unwrap_or(0)));
        }
    }
    all.sort();
    all
}

/// One labelled sample of `/metrics`: `name{label="value"}`.
fn labelled(daemon: &mut Daemon, name: &str, label: &str) -> u64 {
    let (_, text) = daemon.http_get("/metrics");
    let prefix = format!("{name}{{{label}}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix)?.parse::<f64>().ok())
        .unwrap_or(0.0) as u64
}

fn emulator(mode: &str, spec: &Path) -> std::process::Child {
    Command::new("python3")
        .args(["tests/hj212_logger.py", mode])
        .arg(spec)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("python3 runs the emulator")
}

/// Three loggers stream real-time and hourly frames; the daemon is killed (SIGKILL) mid-stream
/// and started again; the loggers reconnect and send what was not acknowledged. Every
/// acknowledgement came after its reading was in the store, every reading is stored, and
/// stored once.
#[test]
fn loggers_over_tcp_are_acknowledged_after_custody_and_stored_once_across_a_kill() {
    let Some((servers, _serial, dir)) = real_test("hj212_tcp_stream") else {
        return;
    };
    let port = free_port();
    let config = config(&servers, "hj212tcp", dir.path(), port, "");
    let daemon = start(&config, &dir.path().join("daemon.log"));
    let (stations, stored) = stations("hj212tcp", 30);
    let spec = dir.path().join("spec.json");
    let body = serde_json::json!({"host": "127.0.0.1", "port": port, "vm": servers.vm,
        "interval": 0.03, "deadline": 90, "reconnect_for": 60, "stations": stations});
    std::fs::write(&spec, body.to_string()).expect("spec");
    let mut logger = emulator("stream", &spec);
    let mut out = std::io::BufReader::new(logger.stdout.take().expect("stdout"));
    // Kill once a third of the frames are acknowledged: the rest are on the wire or queued.
    let mut line = String::new();
    loop {
        line.clear();
        let n = std::io::BufRead::read_line(&mut out, &mut line).expect("emulator output");
        assert!(n > 0, "the emulator ended before the kill");
        if line.trim() == "acked 30" {
            break;
        }
    }
    daemon.kill();
    let mut daemon = start(&config, &dir.path().join("daemon-after-kill.log"));
    let mut rest = String::new();
    out.read_to_string(&mut rest).expect("emulator output");
    let status = logger.wait().expect("the emulator ends");
    let summary: serde_json::Value =
        serde_json::from_str(rest.lines().last().unwrap_or("{}")).expect("summary JSON");
    assert!(status.success(), "{summary}");
    assert_eq!(summary["acked"], summary["expected"], "{summary}");
    eprintln!(
        "acknowledged before VictoriaMetrics showed the reading, shown within 10 s: {}",
        summary["drained"]
    );
    assert_eq!(
        summary["late"],
        serde_json::json!([]),
        "acknowledged, never stored: {summary}"
    );
    assert!(
        summary["resent"].as_u64().unwrap_or(0) > 0,
        "the kill left frames to send again: {summary}"
    );
    let mut want = stored.clone();
    want.sort();
    let got = wait_for(
        Duration::from_secs(20),
        "every reading in VictoriaMetrics",
        || {
            let got = samples(&servers.vm, "water_quality_nh3n", "hj212tcp");
            (got.len() >= want.len()).then_some(got)
        },
    );
    assert_eq!(got, want, "each reading stored, once");
    // The split message was reassembled: its second packet's pH sits beside its NH3-N.
    let ph = samples(&servers.vm, "water_quality_ph", "hj212tcp");
    assert_eq!(
        ph.len(),
        3 * 30,
        "pH of every real-time frame, the split one included"
    );

    // A wrong password and an unknown MN are refused and counted; three refusals close.
    let mut bad = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connected");
    let (_, mn, _) = LOGGERS[1];
    for segment in [
        format!("QN=20260101000000000;ST=21;CN=2011;PW=000000;MN={mn};Flag=5;CP=&&DataTime=20260101000000;w21003-Rtd=0.1&&"),
        "QN=20260101000000000;ST=21;CN=2011;PW=123456;MN=NOBODY;Flag=5;CP=&&DataTime=20260101000000;w21003-Rtd=0.1&&".to_string(),
        "garbage".to_string(),
    ] {
        let data = segment.as_bytes();
        let framed = format!(
            "##{:04}{segment}{:04X}\r\n",
            data.len(),
            riverwatch::domain::hj212::crc16(data)
        );
        bad.write_all(framed.as_bytes()).expect("sent");
    }
    let mut rest = Vec::new();
    let _ = bad.read_to_end(&mut rest);
    assert!(rest.is_empty(), "no acknowledgement for refused frames");
    wait_for(Duration::from_secs(10), "the refusals counted", || {
        (labelled(
            &mut daemon,
            "riverwatch_readings_refused_total",
            "reason=\"bad_password\"",
        ) == 1
            && labelled(
                &mut daemon,
                "riverwatch_readings_refused_total",
                "reason=\"unknown_mn\"",
            ) == 1
            && labelled(
                &mut daemon,
                "riverwatch_hj212_tcp_closed_total",
                "reason=\"refused\"",
            ) == 1)
            .then_some(())
    });
    let dead =
        std::fs::read_to_string(dir.path().join("spool/deadletter.jsonl")).expect("dead letters");
    assert!(
        dead.contains("wrong PW for station \\\"hj212tcp_shijiao\\\""),
        "{dead}"
    );
    let (status, _) = daemon.terminate();
    assert!(status.success());
}

/// 300 idle connections and a slowloris client do not keep a logger from its
/// acknowledgement; at `max_connections` one more connection makes the listener close the
/// oldest connection that never sent a valid frame, and the logger is still served.
#[test]
fn a_crowd_of_idle_and_slow_clients_leaves_a_logger_served() {
    let Some((servers, _serial, dir)) = real_test("hj212_tcp_crowd") else {
        return;
    };
    let port = free_port();
    // 300 idle + the slowloris + the logger = 302, the cap.
    let config = config(
        &servers,
        "hj212crowd",
        dir.path(),
        port,
        "max_connections = 302\nidle_timeout = \"2m\"\nframe_timeout = \"2m\"",
    );
    let mut daemon = start(&config, &dir.path().join("daemon.log"));
    let (stations, _) = stations("hj212crowd", 2);
    let (_, mn, pw) = LOGGERS[0];
    let body = serde_json::json!({"host": "127.0.0.1", "port": port, "idle": 300,
        "slowloris_segment": format!("QN=20260101000000000;ST=21;CN=2011;PW={pw};MN={mn};Flag=5;CP=&&DataTime=20260101000000;w21003-Rtd=0.1&&"),
        "stations": [stations[0]]});
    let spec = dir.path().join("crowd.json");
    std::fs::write(&spec, body.to_string()).expect("spec");
    let out = emulator("crowd", &spec)
        .wait_with_output()
        .expect("the emulator ends");
    assert!(out.status.success());
    let result: serde_json::Value =
        serde_json::from_slice(&out.stdout).expect("the crowd result as JSON");
    let waited = result["ack_seconds"]
        .as_f64()
        .expect("the logger was acknowledged");
    assert!(waited < 5.0, "acknowledged after {waited} s: {result}");
    assert_eq!(result["evicted_oldest_idle"], true, "{result}");
    assert_eq!(result["extra_kept"], true, "{result}");
    assert_eq!(result["served_again"], true, "{result}");
    assert!(
        labelled(
            &mut daemon,
            "riverwatch_hj212_tcp_closed_total",
            "reason=\"evicted\""
        ) >= 1
    );
    let (status, _) = daemon.terminate();
    assert!(status.success());
}

/// `riverwatch simulate --tcp` plays the config's loggers, with their passwords, and ends once
/// the daemon acknowledged every frame.
#[test]
fn simulate_plays_the_loggers_over_tcp() {
    let Some((servers, _serial, dir)) = real_test("hj212_tcp_simulate") else {
        return;
    };
    let port = free_port();
    let config = config(&servers, "hj212sim", dir.path(), port, "");
    let mut daemon = start(&config, &dir.path().join("daemon.log"));
    let out = Command::new(env!("CARGO_BIN_EXE_riverwatch"))
        .args(["simulate", "--config"])
        .arg(&config)
        .args(["--tcp", &format!("127.0.0.1:{port}"), "--count", "30"])
        .args(["--newest-minutes-ago", "5"])
        .output()
        .expect("simulate runs");
    assert_success(&out, "simulate --tcp");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(report["published"], 30);
    assert_eq!(daemon.metric("riverwatch_hj212_tcp_acks_total"), 30);
    let stored = wait_for(Duration::from_secs(20), "30 readings stored", || {
        let got = samples(&servers.vm, "water_quality_nh3n", "hj212sim");
        (got.len() >= 30).then_some(got)
    });
    assert_eq!(stored.len(), 30);
    let (status, _) = daemon.terminate();
    assert!(status.success());
}
