//! The listener over real loopback sockets, with the pipeline replaced by the test: it reads
//! the [`Inbound`] messages the listener hands on and answers their receipts as the store
//! would, so each bound (refusals, timeouts, capacity, replacement) is seen from a client.

use super::*;
use crate::domain::flow::Reply;
use std::io::ErrorKind;
use tokio::io::AsyncBufReadExt;

const MN: &str = "QY-BJ-SJ-0001";
const MN2: &str = "QY-BJ-FLX-0003";
const PW: &str = "837201";

struct Harness {
    addr: SocketAddr,
    inbound: mpsc::Receiver<Inbound>,
    ack: Arc<dyn Acknowledge>,
    phase: watch::Sender<Phase>,
    metrics: Arc<Metrics>,
    task: tokio::task::JoinHandle<()>,
    _dir: tempfile::TempDir,
}

/// A listener for one station (石角, MN [`MN`], password [`PW`] in a file) and a second
/// station without a password; `tcp` adds keys to `[hj212_tcp]`. Built without `config`,
/// which imports this module.
async fn harness(tcp: &str) -> Harness {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("pw"), format!("{PW}\n")).expect("password file");
    let raw: config::RawHj212Tcp =
        toml::from_str(&format!("listen = \"127.0.0.1:0\"\n{tcp}")).expect("[hj212_tcp]");
    let mut problems = crate::settings::Problems::default();
    let tcp = config::validate(raw, &mut problems).expect("valid [hj212_tcp]");
    assert!(problems.0.is_empty(), "{problems}");
    // 石角 has its logger's MN and password; 七星岗 an MN and no password.
    let mut net = crate::domain::network::fixtures::network();
    net.stations[0].hj212_mn = Some(MN.into());
    net.stations[1].hj212_mn = Some("QY-BJ-FLX-0002".into());
    // A second logger with a password, 飞来峡, for tests that need two.
    let mut second = net.stations[1].clone();
    second.id = "feilaixia".into();
    second.hj212_mn = Some(MN2.into());
    net.stations.push(second);
    let pw = |key: &str, station: &str| config::LoggerPassword {
        key: key.into(),
        station: station.into(),
        source: crate::settings::secret::SecretSource::File(dir.path().join("pw")),
    };
    let passwords = [
        pw("station[0].hj212_pw", "shijiao"),
        pw("station[2].hj212_pw", "feilaixia"),
    ];
    let listener = Hj212Tcp::bind(&tcp, &net, &passwords, dir.path())
        .await
        .expect("bound");
    let addr = listener.local_addr().expect("address");
    let ack = listener.acknowledger();
    let metrics = Arc::new(Metrics::default());
    let deadletter =
        Arc::new(DeadLetter::open(&dir.path().join("deadletter.jsonl")).expect("dead letters"));
    let (tx, inbound) = mpsc::channel(64);
    let (phase, phase_rx) = watch::channel(Phase::Running);
    let task = tokio::spawn(Box::new(listener).run(SourceIo {
        index: 0,
        messages: tx,
        phase: phase_rx,
        metrics: Arc::clone(&metrics),
        deadletter,
    }));
    Harness {
        addr,
        inbound,
        ack,
        phase,
        metrics,
        task,
        _dir: dir,
    }
}

/// A real-time data frame of `mn` with password `pw`, asking for an acknowledgement.
fn frame(mn: &str, pw: &str, minute: u32) -> hj212::Frame {
    hj212::Frame {
        qn: Some(format!("20261129100{minute}00000")),
        st: "21".into(),
        cn: "2011".into(),
        pw: Some(pw.into()),
        mn: mn.into(),
        flag: Some(5),
        pnum: None,
        pno: None,
        cp: format!("DataTime=20261129100{minute}00;w21003-Rtd=0.182,w21003-Flag=N"),
    }
}

async fn connect(addr: SocketAddr) -> TcpStream {
    TcpStream::connect(addr).await.expect("connected")
}

/// Waits (at most 5 s) until the server closes `stream`: reads until end of file.
async fn closed(stream: &mut TcpStream) -> bool {
    let mut sink = Vec::new();
    matches!(
        tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut sink)).await,
        Ok(Ok(_)) | Ok(Err(_))
    )
}

async fn next_inbound(h: &mut Harness) -> Inbound {
    tokio::time::timeout(Duration::from_secs(5), h.inbound.recv())
        .await
        .expect("a frame within 5 s")
        .expect("the listener runs")
}

fn refused(h: &Harness, kind: RefusalKind) -> u64 {
    h.metrics
        .refused_by_kind()
        .into_iter()
        .find(|(k, _)| *k == kind)
        .map_or(0, |(_, n)| n)
}

fn closed_for(h: &Harness, reason: CloseReason) -> u64 {
    h.metrics
        .tcp_closed_by_reason()
        .into_iter()
        .find(|(k, _)| *k == reason)
        .map_or(0, |(_, n)| n)
}

/// Polls `check` every 10 ms for at most 5 s.
async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !check() {
        assert!(Instant::now() < deadline, "{what} within 5 s");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn a_frame_goes_on_under_its_topic_and_its_ack_is_written_only_when_answered() {
    let mut h = harness("").await;
    let mut client = connect(h.addr).await;
    let sent = frame(MN, PW, 1).encode();
    client.write_all(sent.as_bytes()).await.expect("sent");
    let got = next_inbound(&mut h).await;
    assert_eq!(got.topic, "wq/bei/shijiao/hj212");
    assert_eq!(&got.payload[..], sent.as_bytes());
    // Nothing comes back before the store answers the receipt.
    let mut byte = [0u8; 1];
    assert_eq!(
        client.try_read(&mut byte).map_err(|e| e.kind()),
        Err(ErrorKind::WouldBlock)
    );
    let ack = frame(MN, PW, 1).data_ack().encode();
    let mut receipt = got.receipt;
    receipt.reply = Some(Reply {
        to: String::new(),
        payload: ack.clone().into_bytes(),
    });
    h.ack.answer(receipt);
    let mut lines = tokio::io::BufReader::new(client).lines();
    let line = tokio::time::timeout(Duration::from_secs(5), lines.next_line())
        .await
        .expect("the ack within 5 s")
        .expect("readable")
        .expect("a line");
    assert_eq!(format!("{line}\n"), ack.replace("\r\n", "\n"));
    eventually("the ack counted", || Metrics::get(&h.metrics.tcp_acks) == 1).await;
    assert_eq!(Metrics::get(&h.metrics.tcp_frames), 1);
}

#[tokio::test]
async fn refusals_are_counted_and_max_refusals_in_a_row_close_the_connection() {
    let mut h = harness("max_refusals = 3").await;
    let mut client = connect(h.addr).await;
    for bad in [
        frame(MN, "000000", 1).encode(),
        frame("NOBODY-0001", PW, 2).encode(),
        // A station that has no password configured.
        frame("QY-BJ-FLX-0002", PW, 3).encode(),
    ] {
        client.write_all(bad.as_bytes()).await.expect("sent");
    }
    assert!(closed(&mut client).await, "closed after three refusals");
    assert_eq!(refused(&h, RefusalKind::BadPassword), 2);
    assert_eq!(refused(&h, RefusalKind::UnknownMn), 1);
    eventually("the close counted", || {
        closed_for(&h, CloseReason::Refused) == 1
    })
    .await;
    assert!(h.inbound.try_recv().is_err(), "nothing refused went on");

    // A good frame between refusals resets the count; garbage is refused as a bad frame.
    let mut client = connect(h.addr).await;
    for line in [
        "garbage\r\n".to_string(),
        "##0010ABCDEFGHIJ0000\r\n".to_string(),
        frame(MN, PW, 4).encode(),
        "garbage\r\n".to_string(),
    ] {
        client.write_all(line.as_bytes()).await.expect("sent");
    }
    let got = next_inbound(&mut h).await;
    assert_eq!(got.topic, "wq/bei/shijiao/hj212");
    eventually("three bad frames counted", || {
        refused(&h, RefusalKind::BadFrame) == 3
    })
    .await;
    assert_eq!(closed_for(&h, CloseReason::Refused), 1, "still open");
}

#[tokio::test]
async fn a_connection_carries_one_logger() {
    let mut h = harness("").await;
    let mut first = connect(h.addr).await;
    first
        .write_all(frame(MN, PW, 1).encode().as_bytes())
        .await
        .expect("sent");
    next_inbound(&mut h).await;
    // The same logger reconnects without closing the first connection: the first is stale.
    let mut second = connect(h.addr).await;
    second
        .write_all(frame(MN, PW, 2).encode().as_bytes())
        .await
        .expect("sent");
    next_inbound(&mut h).await;
    assert!(closed(&mut first).await, "the older connection is closed");
    eventually("the replacement counted", || {
        closed_for(&h, CloseReason::Replaced) == 1
    })
    .await;
}

#[tokio::test]
async fn slow_silent_and_endless_clients_are_closed_while_others_are_served() {
    let mut h = harness("idle_timeout = \"400ms\"\nframe_timeout = \"200ms\"").await;
    let mut silent = connect(h.addr).await;
    let mut slow = connect(h.addr).await;
    slow.write_all(b"##0101QN=2016").await.expect("sent");
    let mut endless = connect(h.addr).await;
    let junk = vec![b'#'; MAX_LINE + 10];
    let _ = endless.write_all(&junk).await;
    // A normal logger is served meanwhile.
    let mut normal = connect(h.addr).await;
    normal
        .write_all(frame(MN, PW, 1).encode().as_bytes())
        .await
        .expect("sent");
    next_inbound(&mut h).await;
    for (client, what) in [
        (&mut silent, "silent"),
        (&mut slow, "slowloris"),
        (&mut endless, "endless"),
    ] {
        assert!(closed(client).await, "the {what} client is closed");
    }
    eventually("each close counted by its reason", || {
        closed_for(&h, CloseReason::SlowFrame) == 1
            && closed_for(&h, CloseReason::TooLong) == 1
            && closed_for(&h, CloseReason::Idle) >= 1
    })
    .await;
}

#[tokio::test]
async fn at_max_connections_the_oldest_stranger_makes_room_and_loggers_stay() {
    let mut h = harness("max_connections = 2").await;
    let mut logger = connect(h.addr).await;
    logger
        .write_all(frame(MN, PW, 1).encode().as_bytes())
        .await
        .expect("sent");
    next_inbound(&mut h).await;
    // A connection that never sends a valid frame, then a newcomer: the stranger goes.
    let mut stranger = connect(h.addr).await;
    eventually("two connections open", || {
        Metrics::get(&h.metrics.tcp_connections) == 2
    })
    .await;
    let mut second = connect(h.addr).await;
    assert!(closed(&mut stranger).await, "the stranger is closed");
    eventually("the eviction counted", || {
        closed_for(&h, CloseReason::Evicted) == 1
    })
    .await;
    second
        .write_all(frame(MN2, PW, 1).encode().as_bytes())
        .await
        .expect("sent");
    assert_eq!(next_inbound(&mut h).await.topic, "wq/bei/feilaixia/hj212");
    // Both connections are loggers' now: one more is the one refused.
    let mut third = connect(h.addr).await;
    assert!(closed(&mut third).await, "the third is closed at once");
    assert_eq!(closed_for(&h, CloseReason::Capacity), 1);
    logger
        .write_all(frame(MN, PW, 2).encode().as_bytes())
        .await
        .expect("sent");
    assert_eq!(next_inbound(&mut h).await.topic, "wq/bei/shijiao/hj212");
}

/// Blank lines are no activity: a client sending only CR LF is closed as idle.
#[tokio::test]
async fn blank_lines_do_not_keep_a_connection_open() {
    let h = harness("idle_timeout = \"300ms\"").await;
    let mut client = connect(h.addr).await;
    let began = Instant::now();
    // CR LF every 50 ms, well within the idle timeout, until the listener closes.
    let closed_at = loop {
        if client.write_all(b"\r\n").await.is_err() {
            break Instant::now();
        }
        let mut byte = [0u8; 1];
        match tokio::time::timeout(Duration::from_millis(50), client.read(&mut byte)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break Instant::now(),
            _ => {}
        }
        assert!(
            began.elapsed() < Duration::from_secs(5),
            "still open after 5 s"
        );
    };
    assert!(closed_at.duration_since(began) >= Duration::from_millis(300));
    eventually("closed as idle", || closed_for(&h, CloseReason::Idle) == 1).await;
}

/// A peer sending garbage over and over: its refusals are all counted, but only the first
/// [`RECORDED_PER_MINUTE`] of a minute are logged and dead-lettered.
#[tokio::test]
async fn a_flood_of_refusals_is_counted_but_not_all_dead_lettered() {
    let h = harness("max_refusals = 1").await;
    for _ in 0..(RECORDED_PER_MINUTE + 10) {
        let mut client = connect(h.addr).await;
        client.write_all(b"garbage\r\n").await.expect("sent");
        assert!(closed(&mut client).await);
    }
    eventually("every refusal counted", || {
        refused(&h, RefusalKind::BadFrame) == u64::from(RECORDED_PER_MINUTE) + 10
    })
    .await;
    let dead =
        std::fs::read_to_string(h._dir.path().join("deadletter.jsonl")).expect("dead letters");
    assert_eq!(dead.lines().count(), RECORDED_PER_MINUTE as usize);
}

/// An empty password would let frames without PW in: the listener refuses to start.
#[tokio::test]
async fn an_empty_password_stops_the_start() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("pw"), "\n").expect("empty password file");
    let raw: config::RawHj212Tcp = toml::from_str("listen = \"127.0.0.1:0\"").expect("raw");
    let mut problems = crate::settings::Problems::default();
    let tcp = config::validate(raw, &mut problems).expect("valid");
    let mut net = crate::domain::network::fixtures::network();
    net.stations[0].hj212_mn = Some(MN.into());
    let passwords = [config::LoggerPassword {
        key: "station[0].hj212_pw".into(),
        station: "shijiao".into(),
        source: crate::settings::secret::SecretSource::File(dir.path().join("pw")),
    }];
    let err = Hj212Tcp::bind(&tcp, &net, &passwords, dir.path())
        .await
        .err()
        .expect("refused");
    assert!(
        err.to_string()
            .starts_with("station[0].hj212_pw: the password is empty"),
        "{err}"
    );
}

#[tokio::test]
async fn on_shutdown_the_last_acks_are_written_before_the_connection_closes() {
    let mut h = harness("").await;
    let mut client = connect(h.addr).await;
    client
        .write_all(frame(MN, PW, 1).encode().as_bytes())
        .await
        .expect("sent");
    let got = next_inbound(&mut h).await;
    h.phase.send(Phase::Draining).expect("draining");
    let ack = frame(MN, PW, 1).data_ack().encode();
    let mut receipt = got.receipt;
    receipt.reply = Some(Reply {
        to: String::new(),
        payload: ack.clone().into_bytes(),
    });
    h.ack.answer(receipt);
    h.phase.send(Phase::Disconnect).expect("disconnect");
    let mut rest = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), client.read_to_end(&mut rest))
        .await
        .expect("closed within 5 s")
        .expect("readable");
    assert_eq!(String::from_utf8_lossy(&rest), ack);
    tokio::time::timeout(Duration::from_secs(5), h.task)
        .await
        .expect("the source ends")
        .expect("no panic");
}

#[test]
fn the_frame_rate_pauses_beyond_its_burst() {
    let start = Instant::now();
    let mut rate = Rate {
        per_second: 2.0,
        tokens: 2.0,
        at: start,
    };
    assert_eq!(rate.take(start), None);
    assert_eq!(rate.take(start), None);
    assert_eq!(rate.take(start), Some(Duration::from_millis(500)));
    // After a second two more tokens came, minus the one borrowed.
    let later = start + Duration::from_secs(1);
    assert_eq!(rate.take(later), None);
    assert_eq!(rate.take(later), Some(Duration::from_millis(500)));
}

#[test]
fn passwords_compare_whole() {
    for (a, b, same) in [
        ("837201", "837201", true),
        ("837201", "837200", false),
        ("837201", "83720", false),
        ("", "", true),
    ] {
        assert_eq!(same_bytes(a.as_bytes(), b.as_bytes()), same, "{a} {b}");
    }
}

#[tokio::test]
async fn a_frame_sent_again_after_its_ack_is_acknowledged_again_not_handed_on() {
    let mut h = harness("").await;
    let client = connect(h.addr).await;
    let sent = frame(MN, PW, 1).encode();
    let (read, mut write) = client.into_split();
    let mut lines = tokio::io::BufReader::new(read).lines();
    write.write_all(sent.as_bytes()).await.expect("sent");
    let got = next_inbound(&mut h).await;
    let ack = frame(MN, PW, 1).data_ack().encode();
    let mut receipt = got.receipt;
    receipt.reply = Some(Reply {
        to: String::new(),
        payload: ack.clone().into_bytes(),
    });
    h.ack.answer(receipt);
    assert_eq!(
        format!("{}\r\n", next_line(&mut lines).await.trim_end()),
        ack
    );
    // The logger lost that acknowledgement and sends the frame again.
    write.write_all(sent.as_bytes()).await.expect("sent again");
    assert_eq!(
        format!("{}\r\n", next_line(&mut lines).await.trim_end()),
        ack
    );
    assert!(h.inbound.try_recv().is_err(), "not handed on twice");
    assert_eq!(Metrics::get(&h.metrics.tcp_duplicates), 1);
    let record =
        std::fs::read_to_string(h._dir.path().join("hj212_tcp_acked.log")).expect("the record");
    assert!(
        record.contains(&format!("{MN} 2011 20261129100100000")),
        "{record}"
    );
}

async fn next_line(lines: &mut tokio::io::Lines<tokio::io::BufReader<OwnedReadHalf>>) -> String {
    tokio::time::timeout(Duration::from_secs(5), lines.next_line())
        .await
        .expect("a line within 5 s")
        .expect("readable")
        .expect("a line")
}
