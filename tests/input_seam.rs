//! The input-source and channel seams together, end to end against the real servers of
//! `tests/run.sh`: a source defined in this test (`input_seam/replay.rs`) is the daemon's
//! only input, a channel defined in the channel-seam test (`channel_seam/room.rs`) is added to
//! the channels `run` registers, and the readings the source plays go through the screen to
//! the real InfluxDB, fire a boundary exceedance whose incident is heard in the room by both bureaus, and have
//! every receipt answered back to the source in the order it played them — the refused
//! payload's too.

mod common;
#[path = "input_seam/replay.rs"]
mod replay;
#[path = "channel_seam/room.rs"]
mod room;

use common::*;
use std::sync::Arc;
use std::time::Duration;

#[test]
fn a_source_defined_outside_the_crate_feeds_the_store_and_a_test_channel() {
    let Some((servers, _serial, dir)) = real_test("input_seam") else {
        return;
    };
    let db = fresh_database(&servers, "rw_input_seam");
    let path = two_station_config(&servers, "inseam", dir.path(), &v1_store(&servers, &db));
    let cfg = riverwatch::config::load(&path).expect("config");

    // A compliant reading, a payload that is not JSON, then NH3-N at 1.2 mg/L (class Ⅳ against
    // the boundary section's class-Ⅱ target) twice, which fires the exceedance.
    let mut messages = Vec::new();
    for (ago, nh3n) in [(30, "0.3"), (25, "oops"), (20, "1.2"), (10, "1.2")] {
        let (ts, _) = ts_minutes_ago(ago);
        let payload = if nh3n == "oops" {
            "{not json".to_string()
        } else {
            format!(r#"{{"ts":"{ts}","values":{{"ph":7.3,"do":7.0,"nh3n":{nh3n}}}}}"#)
        };
        messages.push(("wq/bei/shijiao/reading".to_string(), payload));
    }
    let played = messages.len();
    let source = replay::Replay::new(messages);
    let answered = source.answered();
    let room = room::Room::for_duty_of(&cfg.network.bureaus);
    let heard = room.heard();

    let runtime = riverwatch::app::runtime().expect("runtime");
    let running = runtime.block_on(async {
        let mut outputs = riverwatch::app::outputs(&cfg).expect("outputs");
        outputs.channels.push(Arc::new(room));
        let inputs = riverwatch::app::Inputs {
            mqtt: None,
            more: vec![Box::new(source)],
        };
        riverwatch::app::start(&cfg, inputs, outputs).expect("started")
    });

    let stored = || influx_count(&servers.influx_v1, &db, "nh3n", "water_quality");
    let count = wait_for(Duration::from_secs(20), "three readings stored", || {
        let n = stored();
        (n >= 3).then_some(n)
    });
    wait_for(Duration::from_secs(20), "every receipt answered", || {
        (answered.lock().unwrap_or_else(|p| p.into_inner()).len() >= played).then_some(())
    });
    wait_for(
        Duration::from_secs(20),
        "the room's exceedance notices",
        || {
            let items = heard.lock().unwrap_or_else(|p| p.into_inner());
            let n = items
                .iter()
                // The exceedance opens an incident, which is what the bureaus are told.
                .filter(|i| i.alert_id.contains("-incident-"))
                .count();
            (n >= 2).then_some(())
        },
    );
    let refused =
        std::fs::read_to_string(dir.path().join("spool/deadletter.jsonl")).unwrap_or_default();
    assert!(
        runtime.block_on(running.stop(Duration::from_secs(10))),
        "clean stop"
    );

    assert_eq!(count, 3, "the three valid readings, nothing else");
    let tokens: Vec<Option<u64>> = answered
        .lock()
        .expect("answered")
        .iter()
        .map(|r| r.token)
        .collect();
    let expected: Vec<Option<u64>> = (0..played as u64).map(Some).collect();
    assert_eq!(
        tokens, expected,
        "each receipt answered once, in play order"
    );
    assert!(
        refused.contains("not json") || refused.contains("JSON"),
        "the refused payload is dead-lettered: {refused}"
    );
    let mut bureaus: Vec<String> = heard
        .lock()
        .expect("room")
        .iter()
        .filter(|i| i.alert_id.contains("-incident-"))
        .map(|i| i.bureau.clone())
        .collect();
    bureaus.sort();
    assert_eq!(bureaus, ["guangzhou", "qingyuan"]);
}
