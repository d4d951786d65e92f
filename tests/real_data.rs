//! Judgement on real data in the running daemon, against the real servers `tests/run.sh`
//! starts: the national real-time publication's rows (../shared/data, README there) stored with
//! the publication's own classes, and partial and censored readings — a `null`, an empty HJ 212
//! `-Rtd=`, `<0.025` — keeping their other values, acknowledged, with the bad value
//! dead-lettered alone.
//!
//! Outside the runner (no RIVERWATCH_TEST_* variables) each test returns at once and says so,
//! except the check of the public HJ 212 frames (`hj212 decode` over
//! ../shared/data/hj212_public.jsonl), which needs no server.

mod common;

use common::{fresh_database, influxql, real_test, ts_minutes_ago, wait_for, Daemon};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// The shared real data folder beside the checkout.
fn data_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data")
}

/// Publishes every (topic, payload) at QoS 1 through one rumqttc client, and returns once the
/// broker acknowledged them all (mosquitto_pub would start a process per message).
fn publish_all(port: u16, messages: &[(String, String)]) {
    let mut opts = rumqttc::MqttOptions::new("rw-test-real-data-pub", "127.0.0.1", port);
    opts.set_keep_alive(Duration::from_secs(30));
    let (client, mut connection) = rumqttc::Client::new(opts, 64);
    let count = messages.len();
    let publisher = {
        let messages = messages.to_vec();
        std::thread::spawn(move || {
            for (topic, payload) in messages {
                client
                    .publish(
                        topic,
                        rumqttc::QoS::AtLeastOnce,
                        false,
                        payload.into_bytes(),
                    )
                    .expect("queued");
            }
            client
        })
    };
    let mut acked = 0;
    for event in connection.iter() {
        if let rumqttc::Event::Incoming(rumqttc::Packet::PubAck(_)) = event.expect("MQTT") {
            acked += 1;
            if acked == count {
                break;
            }
        }
    }
    let client = publisher.join().expect("publisher");
    let _ = client.disconnect();
}

fn base_config(servers: &common::Servers, dir: &std::path::Path, db: &str) -> String {
    format!(
        "[mqtt]\nurl = \"mqtt://127.0.0.1:{mqtt}\"\nclient_id = \"rw-test-{db}\"\n\
         [influxdb]\nurl = \"{influx}\"\napi = \"v1\"\ndatabase = \"{db}\"\nflush_interval = \"200ms\"\n\
         [spool]\ndir = \"{dir}/spool\"\n[http]\nlisten = \"127.0.0.1:0\"\n\
         [smtp]\nurl = \"smtp://127.0.0.1:{smtp}\"\nfrom = \"riverwatch test <rw@example.org>\"\n",
        mqtt = servers.mqtt_port,
        influx = servers.influx_v1,
        smtp = servers.smtp_port,
        dir = dir.display(),
    )
}

/// The daemon, fed the national publication's 1,099 rows over MQTT, stores for each the class
/// the publication gave it (`wq_class`), with the shipped default QC.
#[test]
fn the_daemon_stores_the_national_publications_classes() {
    let Some((servers, _serial, dir)) = real_test("national_publication") else {
        return;
    };
    let db = fresh_database(&servers, "rw_national");

    let expected = std::fs::read_to_string(data_dir().join("cnemc2026_expected.csv"))
        .expect("../shared/data/cnemc2026_expected.csv");
    let mut want: BTreeMap<(String, i64), u64> = BTreeMap::new();
    let mut bodies: BTreeMap<String, String> = BTreeMap::new();
    for row in csv::Reader::from_reader(expected.as_bytes()).deserialize() {
        let row: BTreeMap<String, String> = row.unwrap();
        let ts = chrono::DateTime::parse_from_rfc3339(&row["ts"]).unwrap();
        want.insert(
            (row["station"].clone(), ts.timestamp_millis()),
            row["published_class"].parse().unwrap(),
        );
        bodies.insert(row["station"].clone(), row["water_body"].clone());
    }

    // Target Ⅴ and a rare re-notify keep the alert mail small; the classes do not depend on it.
    // The rows are from August 2026: a maximum age of ten years admits them for years to come.
    let mut config = base_config(&servers, dir.path(), &db);
    config.push_str("[ingest]\nmax_age = \"3650d\"\n");
    config.push_str(
        "[[bureau]]\nid = \"b\"\nname = \"b\"\nemail = [\"national@example.org\"]\n\
         [[river]]\nid = \"r\"\nname = \"r\"\n",
    );
    for (s, body) in &bodies {
        config.push_str(&format!(
            "[[station]]\nid = \"{s}\"\nname = \"{s}\"\nriver = \"r\"\ncity = \"b\"\nwater_body = \"{body}\"\ntarget_class = 5\ncadence = \"4h\"\nprofile = \"national_realtime\"\n"
        ));
    }
    let path = dir.path().join("riverwatch.toml");
    std::fs::write(&path, config).unwrap();

    // One JSON array per station: a station flushing its backlog (SPEC §4).
    let input = std::fs::read_to_string(data_dir().join("cnemc2026_input.csv")).unwrap();
    let mut reader = csv::Reader::from_reader(input.as_bytes());
    let header: Vec<String> = reader.headers().unwrap().iter().map(String::from).collect();
    let mut per_station: BTreeMap<String, Vec<serde_json::Value>> = BTreeMap::new();
    for record in reader.records() {
        let record = record.unwrap();
        let mut values = serde_json::Map::new();
        for (key, cell) in header.iter().zip(record.iter()).skip(2) {
            if let Ok(v) = cell.parse::<f64>() {
                values.insert(key.clone(), serde_json::json!(v));
            }
        }
        per_station
            .entry(record[0].to_string())
            .or_default()
            .push(serde_json::json!({"ts": record[1].to_string(), "values": values}));
    }
    let messages: Vec<(String, String)> = per_station
        .iter()
        .map(|(s, readings)| {
            (
                format!("wq/r/{s}/reading"),
                serde_json::Value::Array(readings.clone()).to_string(),
            )
        })
        .collect();

    let mut daemon = Daemon::start(&path, &dir.path().join("daemon.log"));
    daemon.wait_log("subscribed", Duration::from_secs(30));
    publish_all(servers.mqtt_port, &messages);
    let total = want.len() as u64;
    wait_for(Duration::from_secs(60), "every row stored", || {
        (common::influx_count(&servers.influx_v1, &db, "wq_class", "water_quality") >= total)
            .then_some(())
    });
    let (status, _) = daemon.terminate();
    assert!(status.success());

    let v = influxql(
        &servers.influx_v1,
        &db,
        "SELECT station, wq_class FROM water_quality",
    );
    let rows = v["results"][0]["series"][0]["values"]
        .as_array()
        .expect("rows");
    let mut got: BTreeMap<(String, i64), u64> = BTreeMap::new();
    for row in rows {
        let t = chrono::DateTime::parse_from_rfc3339(row[0].as_str().unwrap()).unwrap();
        got.insert(
            (row[1].as_str().unwrap().to_string(), t.timestamp_millis()),
            row[2].as_u64().unwrap(),
        );
    }
    let wrong: Vec<_> = want
        .iter()
        .filter(|(k, c)| got.get(*k) != Some(c))
        .map(|(k, c)| format!("{k:?}: published {c}, stored {:?}", got.get(k)))
        .collect();
    assert!(
        wrong.is_empty(),
        "{} of {total} differ: {wrong:#?}",
        wrong.len()
    );
    let dead =
        std::fs::read_to_string(dir.path().join("spool/deadletter.jsonl")).unwrap_or_default();
    assert!(dead.is_empty(), "nothing refused:\n{dead}");
}

/// A `null` (not measured), an empty HJ 212 `-Rtd=` and a value below the detection limit: the
/// reading's other values are stored and judged, the frame is acknowledged, the bad value alone
/// is dead-lettered, and the censored one is stored as the limit with `<key>_bdl`.
#[test]
fn partial_and_censored_readings_keep_their_other_values() {
    use riverwatch::domain::hj212;
    let Some((servers, _serial, dir)) = real_test("partial_readings") else {
        return;
    };
    let (db, daemon, acks) = common::hj212_daemon(&servers, "partial", dir.path());

    let (ts, ts_ms) = ts_minutes_ago(30);
    let frame = common::shijiao_frame(
        &ts,
        "w01001-Rtd=7.32,w01001-Flag=N;w01009-Rtd=6.85,w01009-Flag=N;w21003-Rtd=,w21003-Flag=D",
    );
    servers.publish("wq/bei/shijiao/hj212", &frame.encode());
    servers.publish(
        "wq/bei/qixinggang/reading",
        &format!(
            r#"{{"ts":"{ts}","values":{{"ph":7.2,"do":6.5,"nh3n":null,"tp":"<0.01","codmn":-1}}}}"#
        ),
    );

    let ack = acks
        .recv_timeout(Duration::from_secs(20))
        .expect("the frame with an empty -Rtd= is acknowledged");
    assert_eq!(hj212::parse(&ack).expect("a valid frame").cn, "9014");
    let rows = wait_for(Duration::from_secs(20), "both readings", || {
        let v = influxql(
            &servers.influx_v1,
            &db,
            "SELECT station, ph, \"do\", nh3n, tp, tp_bdl, codmn, wq_class FROM water_quality",
        );
        let rows = v["results"][0]["series"][0]["values"].as_array().cloned()?;
        (rows.len() >= 2).then_some(rows)
    });
    let (status, _) = daemon.terminate();
    assert!(status.success());
    let by_station: BTreeMap<&str, &serde_json::Value> =
        rows.iter().map(|r| (r[1].as_str().unwrap(), r)).collect();
    let frame_row = by_station["shijiao"];
    assert_eq!(
        (frame_row[2].as_f64(), frame_row[3].as_f64()),
        (Some(7.32), Some(6.85))
    );
    assert!(frame_row[4].is_null(), "no NH3-N stored: {frame_row}");
    assert_eq!(
        frame_row[8].as_u64(),
        Some(2),
        "pH and DO judged: {frame_row}"
    );
    let json_row = by_station["qixinggang"];
    assert_eq!(
        (json_row[2].as_f64(), json_row[3].as_f64()),
        (Some(7.2), Some(6.5))
    );
    assert!(json_row[4].is_null() && json_row[7].is_null(), "{json_row}");
    // TP below its detection limit: stored as the limit, marked, judged as half (class Ⅰ).
    assert_eq!(
        (json_row[5].as_f64(), json_row[6].as_bool()),
        (Some(0.01), Some(true))
    );
    assert_eq!(json_row[8].as_u64(), Some(2), "{json_row}");
    let stored_at = chrono::DateTime::parse_from_rfc3339(json_row[0].as_str().unwrap()).unwrap();
    assert_eq!(stored_at.timestamp_millis(), ts_ms);

    let dead = std::fs::read_to_string(dir.path().join("spool/deadletter.jsonl")).unwrap();
    let reasons: BTreeSet<String> = dead
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["reason"].to_string())
        .collect();
    assert_eq!(reasons.len(), 2, "{dead}");
    assert!(dead.contains("w21003-Rtd is empty"), "{dead}");
    assert!(dead.contains("codmn = -1 is negative"), "{dead}");
}

/// Numbers of a decoded object equal to those wanted, to the last few bits (µg/L values are
/// divided by 1000), with the same keys.
fn same_numbers(got: &serde_json::Value, want: &serde_json::Value) -> bool {
    let (Some(got), Some(want)) = (got.as_object(), want.as_object()) else {
        return false;
    };
    got.len() == want.len()
        && want.iter().all(|(k, w)| {
            let (Some(g), Some(w)) = (got.get(k).and_then(|v| v.as_f64()), w.as_f64()) else {
                return false;
            };
            (g - w).abs() <= 1e-12 * w.abs().max(1.0)
        })
}

/// `riverwatch hj212 decode` over the 40 frames that public HJ 212 libraries test with
/// (../shared/data/hj212_public.jsonl, README there): each valid one decoded to the fields,
/// values, flags and unmapped codes it should give, each invalid one refused with one of the
/// words it should be refused with. Needs no server: it always runs.
#[test]
fn public_frames_are_decoded_or_refused_as_expected() {
    use std::io::Write;
    let text = std::fs::read_to_string(data_dir().join("hj212_public.jsonl"))
        .expect("../shared/data/hj212_public.jsonl");
    let cases: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(cases.len(), 40);
    let input: String = cases.iter().map(|c| c["frame"].as_str().unwrap()).collect();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_riverwatch"))
        .args(["hj212", "decode"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let answers: Vec<serde_json::Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(answers.len(), cases.len(), "one answer per frame");

    let mut wrong = Vec::new();
    for (case, got) in cases.iter().zip(&answers) {
        let id = case["id"].as_str().unwrap();
        let fine = match case["expect"].as_str().unwrap() {
            "ok" => {
                let want = &case["want"];
                got["ok"] == true
                    && ["qn", "st", "cn", "mn", "flag", "data_time", "flags"]
                        .iter()
                        .all(|k| got[k] == want[k])
                    && same_numbers(&got["values"], &want["values"])
                    && same_numbers(&got["codes"], &want["codes"])
            }
            _ => {
                let error = got["error"].as_str().unwrap_or_default().to_lowercase();
                got["ok"] == false
                    && case["reason_any"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .any(|w| error.contains(&w.as_str().unwrap().to_lowercase()))
            }
        };
        if !fine {
            wrong.push(format!("{id}: {got}"));
        }
    }
    assert!(
        wrong.is_empty(),
        "{} of {} frames not as expected:\n{}",
        wrong.len(),
        cases.len(),
        wrong.join("\n")
    );
}
