//! The notification channel seam, end to end against the real servers of `tests/run.sh`: a
//! channel defined in this test (`channel_seam/room.rs`) is added to the channels `run`
//! registers, the daemon runs in-process, a reading published to mosquitto fires an
//! exceedance at the boundary section, and the test channel receives the rendered
//! notification for both bureaus through the outbox, beside the real email and SMS.

mod common;
#[path = "channel_seam/room.rs"]
mod room;

use common::*;
use std::sync::Arc;
use std::time::Duration;

/// Polls `check` every 20 ms on the runtime until it returns `Some`, or panics after `limit`.
async fn until<T>(limit: Duration, what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {limit:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[test]
fn a_channel_defined_outside_the_crate_hears_a_boundary_exceedance_for_both_bureaus() {
    let Some(servers) = servers_or_skip("channel_seam") else {
        return;
    };
    let _serial = serial();
    let dir = tempfile::tempdir().expect("tempdir");
    let db = format!("rw_seam_{}", std::process::id());
    influx_exec(&servers.influx_v1, &format!("CREATE DATABASE {db}"));
    let store = format!(
        "[influxdb]\nurl = \"{}\"\napi = \"v1\"\ndatabase = \"{db}\"\nflush_interval = \"200ms\"",
        servers.influx_v1
    );
    let path = two_station_config(&servers, "seam", dir.path(), &store);
    let cfg = riverwatch::config::load(&path).expect("config");
    let runtime = riverwatch::app::runtime().expect("runtime");
    let room = room::Room::default();
    let heard = room.heard();

    let (room_sent, metrics_text, left) = runtime.block_on(async {
        let options = riverwatch::app::mqtt_options(&cfg).expect("MQTT options");
        let mut outputs = riverwatch::app::outputs(&cfg).expect("outputs");
        // Registered beside what `run` registers (email, SMS), the way a new channel is.
        outputs.channels.push(Arc::new(room));
        let running = riverwatch::app::start(&cfg, options, outputs).expect("started");
        until(Duration::from_secs(15), "the subscription", || {
            running.session.is_subscribed().then_some(())
        })
        .await;

        // As in the v1 pipeline test: a compliant reading, then NH3-N at 1.2 mg/L (class Ⅳ
        // against a class-Ⅱ target) twice, which fires the exceedance.
        let readings: Vec<String> = [(30, 0.3), (20, 1.2), (10, 1.2)]
            .iter()
            .map(|(ago, nh3n)| {
                let (ts, _) = ts_minutes_ago(*ago);
                format!(r#"{{"ts":"{ts}","values":{{"ph":7.3,"do":7.0,"nh3n":{nh3n}}}}}"#)
            })
            .collect();
        let port = servers.mqtt_port;
        tokio::task::spawn_blocking(move || {
            for r in readings {
                publish_to(port, "wq/bei/shijiao/reading", &r);
            }
        })
        .await
        .expect("published");

        let exceedance = |items: &[riverwatch::notify::outbox::Item]| {
            items
                .iter()
                .filter(|i| i.alert_id.contains("exceedance"))
                .count()
        };
        until(
            Duration::from_secs(20),
            "the room's exceedance notices",
            || {
                let items = heard.lock().unwrap_or_else(|p| p.into_inner());
                (exceedance(&items) >= 2).then_some(())
            },
        )
        .await;
        until(Duration::from_secs(20), "an empty outbox", || {
            (running.outbox.count_pending() == 0).then_some(())
        })
        .await;
        let sent = running
            .channels
            .counts("room")
            .expect("room registered")
            .sent_total();
        let mut text = String::new();
        running.channels.prometheus(&mut text);
        let left = running.outbox.count_pending();
        assert!(running.stop(Duration::from_secs(10)).await, "clean stop");
        (sent, text, left)
    });

    let items = heard.lock().expect("room").clone();
    let exceedance: Vec<_> = items
        .iter()
        .filter(|i| i.alert_id.contains("exceedance"))
        .collect();
    let mut bureaus: Vec<_> = exceedance
        .iter()
        .map(|i| (i.bureau.as_str(), i.to.join(",")))
        .collect();
    bureaus.sort();
    assert_eq!(
        bureaus,
        [
            ("guangzhou", "room-guangzhou".to_string()),
            ("qingyuan", "room-qingyuan".to_string())
        ],
        "one notice per bureau: {items:#?}"
    );
    for i in &exceedance {
        assert_eq!((i.channel.as_str(), i.state.as_str()), ("room", "firing"));
        assert!(i.key.ends_with(&format!(".{}.room", i.bureau)), "{}", i.key);
        assert!(
            i.text.contains("石角") && i.text.contains("氨氮"),
            "the rendered text: {}",
            i.text
        );
    }
    assert_eq!(left, 0, "the outbox ends empty");
    let pending = std::fs::read_dir(dir.path().join("spool/outbox/pending"))
        .expect("outbox")
        .count();
    assert_eq!(pending, 0, "no outbox file left");
    for i in &exceedance {
        assert!(
            dir.path().join("spool/outbox/sent").join(&i.key).exists(),
            "{} went through the outbox",
            i.key
        );
    }
    // Counted under the same names as email and SMS, and retried by the same worker.
    assert_eq!(room_sent, items.len() as u64);
    let line =
        format!(r#"riverwatch_notifications_total{{channel="room",outcome="sent"}} {room_sent}"#);
    assert!(metrics_text.lines().any(|l| l == line), "{metrics_text}");
    let retries = metrics_text
        .lines()
        .find_map(|l| l.strip_prefix("riverwatch_notify_retries_total "))
        .and_then(|n| n.parse::<u64>().ok());
    assert!(retries.is_some_and(|n| n >= 1), "{metrics_text}");
    // The real channels delivered theirs too: the bureaus' emails.
    for address in ["gz-seam@example.org", "qy-seam@example.org"] {
        assert!(
            servers
                .emails_to(address)
                .iter()
                .any(|(_, body)| body.contains("石角")),
            "{address}"
        );
    }
}
