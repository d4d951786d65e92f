//! Scale-out: two instances with `[mqtt] shard = { index, count = 2 }` on one real mosquitto
//! split the stations by a stable hash — every reading is stored once (by the instance that
//! owns its station), every alert is sent once.

mod common;

use common::{influx_count, real_test, simulate, wait_for, Daemon, Servers};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Six stations: four of them hash to shard 0 of 2, two to shard 1 (see the fixed values in
/// `domain::network`'s tests).
fn config(servers: &Servers, dir: &Path, db: &str, index: u32) -> PathBuf {
    let stations: String = [
        ("shijiao", "bei", true),
        ("qixinggang", "bei", false),
        ("gaoqiao", "bei", false),
        ("shiwei", "bei", false),
        ("pa_fogang", "pa", false),
        ("pa_boundary", "pa", true),
    ]
    .iter()
    .map(|(id, river, boundary)| {
        format!(
            "[[station]]\nid = \"{id}\"\nname = \"{id}\"\nriver = \"{river}\"\ncity = \"qingyuan\"\ntarget_class = 2\nboundary = {boundary}\n\n"
        )
    })
    .collect();
    let text = format!(
        r#"
[mqtt]
url = "mqtt://127.0.0.1:{mqtt}"
client_id = "rw-shard-{index}"
shard = {{ index = {index}, count = 2 }}

[influxdb]
url = "{influx}"
api = "v1"
database = "{db}"
flush_interval = "200ms"

[spool]
dir = "{dir}/spool-{index}"

[http]
listen = "127.0.0.1:0"

[smtp]
url = "smtp://127.0.0.1:{smtp}"
from = "riverwatch test <rw@example.org>"

[[bureau]]
id = "guangzhou"
name = "广州市生态环境局"
email = ["gz-shard@example.org"]

[[bureau]]
id = "qingyuan"
name = "清远市生态环境局"
email = ["qy-shard@example.org"]

[[river]]
id = "bei"
name = "北江"

[[river]]
id = "pa"
name = "潖江"

{stations}"#,
        mqtt = servers.mqtt_port,
        influx = servers.influx_v1,
        smtp = servers.smtp_port,
        dir = dir.display(),
    );
    common::write_config(dir.join(format!("shard-{index}.toml")), &text)
}

#[test]
fn two_shards_store_every_reading_once_and_send_every_alert_once() {
    let Some((servers, _serial, dir)) = real_test("shards") else {
        return;
    };
    let db = common::fresh_database(&servers, "rw_shards");
    let configs = [0, 1].map(|i| config(&servers, dir.path(), &db, i));
    let mut daemons: Vec<Daemon> = configs
        .iter()
        .enumerate()
        .map(|(i, c)| Daemon::start(c, &dir.path().join(format!("shard-{i}.log"))))
        .collect();
    for d in &mut daemons {
        d.wait_log("subscribed", Duration::from_secs(15));
    }

    // Ending half an hour ago, so the exceedances below are the newest readings.
    common::finish_simulate(simulate(
        &configs[0],
        servers.mqtt_port,
        &["--count", "600", "--newest-minutes-ago", "30"],
    ));
    let stored = wait_for(Duration::from_secs(30), "600 readings", || {
        let n = influx_count(&servers.influx_v1, &db, "ph", "water_quality");
        (n >= 600).then_some(n)
    });
    assert_eq!(stored, 600);
    // A daemon counts a batch once InfluxDB has answered the write, a moment after the rows
    // are visible to the query above: wait until the counters add up (or the deadline).
    let mut per_instance = Vec::new();
    wait_for(Duration::from_secs(10), "the stored counters", || {
        per_instance = daemons
            .iter_mut()
            .map(|d| d.metric("riverwatch_readings_stored_total"))
            .collect();
        (per_instance.iter().sum::<u64>() >= 600).then_some(())
    });
    // Four stations of six on shard 0, two on shard 1: 400 and 200, and nothing twice.
    assert_eq!(per_instance, [400, 200]);

    // An exceedance at a station of each shard: each bureau hears of each once (as the
    // incident it opens).
    for station in ["shijiao", "pa_boundary"] {
        let river = if station == "shijiao" { "bei" } else { "pa" };
        for ago in [20, 10] {
            let (ts, _) = common::ts_minutes_ago(ago);
            servers.publish(
                &format!("wq/{river}/{station}/reading"),
                &format!(r#"{{"ts":"{ts}","values":{{"nh3n":1.2}}}}"#),
            );
        }
    }
    for address in ["gz-shard@example.org", "qy-shard@example.org"] {
        let ids = wait_for(Duration::from_secs(20), "both incident emails", || {
            let ids: Vec<String> = servers
                .emails_to(address)
                .iter()
                .filter_map(|(h, _)| {
                    h.lines()
                        .find(|l| l.to_ascii_lowercase().starts_with("message-id:"))
                        .map(|l| l[11..].trim().to_string())
                })
                .filter(|id| id.contains("-incident-"))
                .collect();
            let both = ["shijiao", "pa_boundary"]
                .iter()
                .all(|s| ids.iter().any(|id| id.starts_with(&format!("<{s}-"))));
            both.then_some(ids)
        });
        assert_eq!(ids.len(), 2, "{address}: each incident once: {ids:?}");
    }
    let fired: Vec<u64> = daemons
        .iter_mut()
        .map(|d| d.metric("riverwatch_alerts_fired_total"))
        .collect();
    assert!(
        fired.iter().all(|&n| n > 0),
        "both instances fired their own: {fired:?}"
    );
    for d in daemons {
        let (status, _) = d.terminate();
        assert!(status.success());
    }
    eprintln!(
        "shards: 600 readings stored as {per_instance:?}; alerts fired per instance {fired:?}"
    );
}
