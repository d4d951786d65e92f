//! The notification channel seam, end to end against the real servers of `tests/run.sh`: a
//! channel defined in this test (`channel_seam/room.rs`) is added to the channels `run`
//! registers, the daemon runs in-process, a reading published to mosquitto fires an
//! exceedance at the boundary section, and the test channel receives the rendered
//! notification for both bureaus through the outbox, beside the real email and SMS.

mod common;
#[path = "channel_seam/room.rs"]
mod room;

use common::*;
use riverwatch::notify::outbox::Item;
use std::sync::Arc;
use std::time::Duration;

#[test]
fn a_channel_defined_outside_the_crate_hears_a_boundary_exceedance_for_both_bureaus() {
    let Some((servers, _serial, dir)) = real_test("channel_seam") else {
        return;
    };
    let db = fresh_database(&servers, "rw_seam");
    let path = two_station_config(&servers, "seam", dir.path(), &v1_store(&servers, &db));
    let cfg = riverwatch::config::load(&path).expect("config");
    let runtime = riverwatch::app::runtime().expect("runtime");
    let room = room::Room::for_duty_of(&cfg.network.bureaus);
    let heard = room.heard();

    // Built and started inside the runtime (lettre's pool spawns its task when built); the
    // runtime's worker then runs the daemon while this thread publishes and waits.
    let running = runtime.block_on(async {
        let options = riverwatch::app::mqtt_options(&cfg).expect("MQTT options");
        let mut outputs = riverwatch::app::outputs(&cfg).expect("outputs");
        // Registered beside what `run` registers (email, SMS), the way a new channel is.
        outputs.channels.push(Arc::new(room));
        riverwatch::app::start(&cfg, riverwatch::app::Inputs::mqtt(options), outputs)
            .expect("started")
    });
    wait_for(Duration::from_secs(15), "the subscription", || {
        running.session.is_subscribed().then_some(())
    });

    // As in the v1 pipeline test: a compliant reading, then NH3-N at 1.2 mg/L (class Ⅳ against
    // a class-Ⅱ target) twice, which fires the exceedance.
    for (ago, nh3n) in [(30, 0.3), (20, 1.2), (10, 1.2)] {
        let (ts, _) = ts_minutes_ago(ago);
        servers.publish(
            "wq/bei/shijiao/reading",
            &format!(r#"{{"ts":"{ts}","values":{{"ph":7.3,"do":7.0,"nh3n":{nh3n}}}}}"#),
        );
    }
    let exceedance = |items: &[Item]| -> Vec<Item> {
        items
            .iter()
            // The exceedance opens an incident, which is what the bureaus are told.
            .filter(|i| i.alert_id.contains("-incident-"))
            .cloned()
            .collect()
    };
    wait_for(
        Duration::from_secs(20),
        "the room's exceedance notices",
        || {
            let items = heard.lock().unwrap_or_else(|p| p.into_inner());
            (exceedance(&items).len() >= 2).then_some(())
        },
    );
    wait_for(Duration::from_secs(20), "an empty outbox", || {
        (running.outbox.count_pending() == 0).then_some(())
    });
    let left = running.outbox.count_pending();
    // Counted after the stop, when nothing more can be delivered, so the count and what the
    // room heard describe the same deliveries (a later notice may still arrive before it).
    let channels = Arc::clone(&running.channels);
    assert!(
        runtime.block_on(running.stop(Duration::from_secs(10))),
        "clean stop"
    );
    // Read, and dropped, inside the runtime: the email channel's pool needs it to close.
    let (room_sent, metrics_text) = runtime.block_on(async move {
        let sent = channels
            .counts("room")
            .expect("room registered")
            .sent_total();
        let mut text = String::new();
        channels.prometheus(&mut text);
        (sent, text)
    });

    let items = heard.lock().expect("room").clone();
    let exceedance = exceedance(&items);
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
        assert_eq!((i.channel.as_str(), i.state.as_str()), ("room", "opened"));
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
