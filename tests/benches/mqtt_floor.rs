//! The MQTT client's own cost per message, for `tests/bench.sh`: a subscriber built like the
//! daemon's ingest (rumqttc, QoS 1, manual acknowledgements, a one-worker runtime) that
//! acknowledges each message at once and does nothing else. Its CPU seconds per message are
//! the floor under the daemon's figure (c), measured in the same run against the same broker.
//!
//! `cargo bench --bench mqtt_floor -- PORT COUNT`: subscribes to `wq/#` on 127.0.0.1:PORT,
//! prints "subscribed" on stderr, and after COUNT messages prints one JSON line on stdout.
//! Under `cargo test` (no `--bench` argument) there is no broker to measure, and it returns.

use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use std::time::Duration;

/// User and user-plus-system CPU seconds of this process, from /proc.
fn cpu_seconds() -> Result<(f64, f64), String> {
    let stat = std::fs::read_to_string("/proc/self/stat").map_err(|e| e.to_string())?;
    let after = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or("");
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| -> Result<f64, String> {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .ok_or_else(|| format!("field {i} of /proc/self/stat"))
    };
    // utime and stime (fields 14 and 15), in clock ticks of 1/100 s on Linux.
    let (user, system) = (ticks(11)? / 100.0, ticks(12)? / 100.0);
    Ok((user, user + system))
}

async fn measure(port: u16, count: u64) -> Result<String, String> {
    let mut o = MqttOptions::new("riverwatch-bench-floor", "127.0.0.1", port);
    o.set_manual_acks(true)
        .set_keep_alive(Duration::from_secs(30))
        .set_max_packet_size(1 << 20, 1 << 20);
    let (client, mut eventloop) = AsyncClient::new(o, 10_000);
    let mut got = 0u64;
    let mut cpu0 = (0.0, 0.0);
    while got < count {
        match eventloop.poll().await.map_err(|e| e.to_string())? {
            Event::Incoming(Packet::ConnAck(_)) => client
                .subscribe("wq/#", QoS::AtLeastOnce)
                .await
                .map_err(|e| e.to_string())?,
            Event::Incoming(Packet::SubAck(_)) => {
                cpu0 = cpu_seconds()?;
                eprintln!("subscribed");
            }
            Event::Incoming(Packet::Publish(p)) => {
                client.ack(&p).await.map_err(|e| e.to_string())?;
                got += 1;
            }
            _ => {}
        }
    }
    // Until the last acknowledgements are written.
    let _ = tokio::time::timeout(Duration::from_millis(200), async {
        while eventloop.poll().await.is_ok() {}
    })
    .await;
    let cpu = cpu_seconds()?;
    let per = |s: f64| s * 1e6 / count as f64;
    Ok(format!(
        "{{\"messages\":{count},\"cpu_us_per_message\":{:.2},\"user_us_per_message\":{:.2}}}",
        per(cpu.1 - cpu0.1),
        per(cpu.0 - cpu0.0)
    ))
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if !args.iter().any(|a| a == "--bench") {
        return;
    }
    let numbers: Vec<u64> = args.iter().filter_map(|a| a.parse().ok()).collect();
    let (Some(&port), Some(&count)) = (numbers.first(), numbers.get(1)) else {
        eprintln!("usage: cargo bench --bench mqtt_floor -- PORT COUNT");
        std::process::exit(64);
    };
    let Ok(port) = u16::try_from(port) else {
        eprintln!("{port} is not a port");
        std::process::exit(64);
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build();
    let result = match runtime {
        Ok(rt) => rt.block_on(measure(port, count)),
        Err(e) => Err(e.to_string()),
    };
    match result {
        Ok(line) => println!("{line}"),
        Err(e) => {
            eprintln!("mqtt_floor: {e}");
            std::process::exit(1);
        }
    }
}
