//! Golden tests from WATER.md §4.2 (the standard's example, a real surface-water frame, a
//! 2005-style frame, acknowledgements, and the project's synthetic frames), refusals, and the
//! encode → decode round trip.

use super::*;
use chrono::Utc;
use proptest::prelude::*;

const STANDARD_EXAMPLE: &str = "##0101QN=20160801085857223;ST=32;CN=1062;PW=100000;MN=010000A8900016F000169DC0;Flag=5;CP=&&RtdInterval=30&&1C80";
const SURFACE_WATER: &str = "##0435QN=20210301111100112;ST=21;CN=2011;PW=123456;MN=ZLDSZ20210127;Flag=8;CP=&&DataTime=20210301111100;w01001-Rtd=8.33,w01001-Flag=N;w01009-Rtd=10.15,w01009-Flag=N;w01010-Rtd=9.7,w01010-Flag=N;w01014-Rtd=1425,w01014-Flag=N;w01003-Rtd=13.10,w01003-Flag=N;w21011-Rtd=0,w21011-Flag=N;w21001-Rtd=3.563168,w21001-Flag=N;w21003-Rtd=0.09055002,w21003-Flag=N;w01019-Rtd=4.102818,w01019-Flag=N;w01008-Rtd=0,w01008-Flag=N;w23002-Rtd=0,w23002-Flag=N&&7d00";
const STYLE_2005: &str = "##0178ST=32;CN=2011;PW=123456;MN=0873HHMZWSLH02;CP=&&DataTime=20160103133030;060-Rtd=3.0943,060-Flag=N;011-Rtd=18.0412,011-Flag=N;001-Rtd=8.2137,001-Flag=N;B01-Rtd=10.9890,B01-Flag=N&&a9c1";
const ACK_2025_WITH_ANSWER: &str =
    "##0078QN=20201008154743635;ST=91;CN=9014;PW=123456;MN=SD000001;Flag=9;CP=&&QnRtn=1&&71c0";
const ACK_2025: &str =
    "##0075QN=20260706103512345;ST=91;CN=9014;PW=123456;MN=A110000_0001;Flag=8;CP=&&&&0140";
pub const SYNTHETIC_RTD: &str = "##0372QN=20250601100000000;ST=21;CN=2011;PW=123456;MN=QY-BJ-SJ-0001;Flag=5;CP=&&DataTime=20250601100000;w01010-Rtd=26.4,w01010-Flag=N;w01001-Rtd=7.32,w01001-Flag=N;w01009-Rtd=6.85,w01009-Flag=N;w01014-Rtd=215.0,w01014-Flag=N;w01003-Rtd=18.6,w01003-Flag=N;w01019-Rtd=2.41,w01019-Flag=N;w21003-Rtd=0.182,w21003-Flag=N;w21011-Rtd=0.071,w21011-Flag=N;w21001-Rtd=1.65,w21001-Flag=N&&8641\r\n";
pub const SYNTHETIC_ACK: &str =
    "##0076QN=20250601100000000;ST=91;CN=9014;PW=123456;MN=QY-BJ-SJ-0001;Flag=4;CP=&&&&DD01\r\n";
const SYNTHETIC_HOURLY: &str = "##0226QN=20250601110000000;ST=21;CN=2061;PW=123456;MN=QY-BJ-SJ-0001;Flag=5;CP=&&DataTime=20250601100000;w21003-Min=0.170,w21003-Avg=0.182,w21003-Max=0.201,w21003-Flag=N;w01009-Min=6.70,w01009-Avg=6.85,w01009-Max=7.02,w01009-Flag=N&&3900\r\n";

fn frame(text: &str) -> Frame {
    parse(text.as_bytes()).unwrap_or_else(|e| panic!("{text}: {e}"))
}

#[test]
fn crc_check_values() {
    assert_eq!(crc16(b"123456789"), 0x2F80);
    let table = [
        (STANDARD_EXAMPLE, 0x1C80),
        (SURFACE_WATER, 0x7D00),
        (STYLE_2005, 0xA9C1),
        (ACK_2025_WITH_ANSWER, 0x71C0),
        (ACK_2025, 0x0140),
    ];
    for (text, crc) in table {
        let segment = &text[6..text.len() - 4];
        assert_eq!(crc16(segment.as_bytes()), crc, "{text}");
    }
}

#[test]
fn golden_frames_decode() {
    // (frame, CN, version, needs ack, MN)
    let table = [
        (
            STANDARD_EXAMPLE,
            "1062",
            Version::V2017,
            true,
            "010000A8900016F000169DC0",
        ),
        (
            SURFACE_WATER,
            "2011",
            Version::V2025,
            false,
            "ZLDSZ20210127",
        ),
        (STYLE_2005, "2011", Version::V2005, false, "0873HHMZWSLH02"),
        (
            ACK_2025_WITH_ANSWER,
            "9014",
            Version::V2025,
            true,
            "SD000001",
        ),
        (ACK_2025, "9014", Version::V2025, false, "A110000_0001"),
        (SYNTHETIC_RTD, "2011", Version::V2017, true, "QY-BJ-SJ-0001"),
        (
            SYNTHETIC_ACK,
            "9014",
            Version::V2017,
            false,
            "QY-BJ-SJ-0001",
        ),
        (
            SYNTHETIC_HOURLY,
            "2061",
            Version::V2017,
            true,
            "QY-BJ-SJ-0001",
        ),
    ];
    for (text, cn, version, ack, mn) in table {
        let f = frame(text);
        assert_eq!(
            (f.cn.as_str(), f.version(), f.needs_ack(), f.mn.as_str()),
            (cn, version, ack, mn),
            "{text}"
        );
    }
    assert_eq!(frame(STYLE_2005).qn, None);
    assert_eq!(frame(STYLE_2005).flag, None);
}

#[test]
fn surface_water_values_and_unknown_codes() {
    let d = data(&frame(SURFACE_WATER), &CodeMap::default()).unwrap();
    let v = |p: Param| d.values.get(&p).map(|(v, _)| *v);
    assert_eq!(v(Param::Ph), Some(8.33));
    assert_eq!(v(Param::Do), Some(10.15));
    assert_eq!(v(Param::Temp), Some(9.7));
    assert_eq!(v(Param::Cond), Some(1425.0));
    assert_eq!(v(Param::Turb), Some(13.10));
    assert_eq!(v(Param::Tp), Some(0.0));
    assert_eq!(v(Param::Nh3n), Some(0.09055002));
    assert_eq!(v(Param::Codmn), Some(4.102818));
    assert_eq!(v(Param::Phenol), Some(0.0));
    assert_eq!(d.values[&Param::Ph].1, Some(DataFlag::N));
    // w01008 is not a surface-water parameter of SPEC §4: kept, not mapped.
    assert_eq!(d.unknown.get("w01008"), Some(&0.0));
    assert_eq!(
        d.data_time.unwrap().to_rfc3339(),
        "2021-03-01T11:11:00+08:00"
    );
}

#[test]
fn synthetic_frames_and_their_ack() {
    let rtd = frame(SYNTHETIC_RTD);
    let d = data(&rtd, &CodeMap::default()).unwrap();
    assert_eq!(d.values.len(), 9);
    assert_eq!(d.values[&Param::Nh3n].0, 0.182);
    assert_eq!(
        d.data_time.unwrap().with_timezone(&Utc).to_rfc3339(),
        "2025-06-01T02:00:00+00:00"
    );
    // The acknowledgement is the golden ack frame, byte for byte.
    assert_eq!(rtd.data_ack().encode(), SYNTHETIC_ACK);
    // Hourly data take the -Avg values.
    let hourly = data(&frame(SYNTHETIC_HOURLY), &CodeMap::default()).unwrap();
    assert_eq!(hourly.values[&Param::Nh3n].0, 0.182);
    assert_eq!(hourly.values[&Param::Do].0, 6.85);
}

#[test]
fn encoder_reproduces_golden_frames() {
    for text in [
        STANDARD_EXAMPLE,
        SURFACE_WATER,
        ACK_2025,
        SYNTHETIC_RTD,
        SYNTHETIC_HOURLY,
    ] {
        let encoded = frame(text).encode();
        let original = text.trim_end();
        assert_eq!(
            encoded.trim_end().to_uppercase(),
            original.to_uppercase(),
            "{text}"
        );
        assert!(encoded.ends_with("\r\n"));
    }
}

#[test]
fn microgram_codes_are_converted() {
    let segment = "QN=20250601100000000;ST=21;CN=2011;PW=123456;MN=M1;Flag=4;CP=&&DataTime=20250601100000;w20111-Rtd=0.08,w20120-Rtd=12,w20122-Rtd=0.02&&";
    let text = format!(
        "##{:04}{segment}{:04X}",
        segment.len(),
        crc16(segment.as_bytes())
    );
    let d = data(&frame(&text), &CodeMap::default()).unwrap();
    assert!((d.values[&Param::Hg].0 - 0.00008).abs() < 1e-12);
    assert!((d.values[&Param::Pb].0 - 0.012).abs() < 1e-12);
    assert_eq!(d.values[&Param::Cu].0, 0.02);
    // A station override: this vendor sends w20122 (copper) in µg/L.
    let map = CodeMap::with_overrides(&[(
        "w20122".to_string(),
        CodeTarget {
            param: Param::Cu,
            scale: 0.001,
        },
    )]);
    assert!((data(&frame(&text), &map).unwrap().values[&Param::Cu].0 - 0.00002).abs() < 1e-12);
}

#[test]
fn refusals_say_why() {
    let good = SYNTHETIC_RTD.trim_end();
    let bad_crc = format!("{}4980", &good[..good.len() - 4]);
    let lower_crc = format!(
        "{}{}",
        &good[..good.len() - 4],
        good[good.len() - 4..].to_lowercase()
    );
    let long_segment = format!(
        "QN=20250601100000000;ST=21;CN=2011;MN=M;Flag=4;CP=&&{}&&",
        "a=1;".repeat(260)
    );
    let oversize = format!(
        "##{:04}{long_segment}{:04X}",
        long_segment.len(),
        crc16(long_segment.as_bytes())
    );
    let reframe = |segment: &str| {
        format!(
            "##{:04}{segment}{:04X}",
            segment.len(),
            crc16(segment.as_bytes())
        )
    };
    let table: Vec<(String, &str)> = vec![
        (bad_crc, "crc mismatch: frame says 4980, computed 8641"),
        (
            good.replacen("##0372", "##0370", 1),
            "bad length: length field says 370 characters, frame carries 372",
        ),
        (
            good[..200].to_string(),
            "truncated: length field says 372 characters, frame carries 190",
        ),
        (
            good.replacen("##0372", "##03x2", 1),
            "bad length field \"03x2\"",
        ),
        ("hello".into(), "does not start with ##"),
        ("##01".into(), "truncated"),
        (oversize, "exceeds the 1024 allowed"),
        (good.replacen("MN=QY", "MN=青Y", 1), "non-ASCII byte 0xE9"),
        (
            reframe("QN=20250601100000000;ST=21;CN=2011;MN=M;Flag=4;CP=&&w21003-Rtd=1"),
            "malformed CP",
        ),
        (
            reframe("QN=20250601100000000;ST=21;CN=7777;MN=M;Flag=4;CP=&&&&"),
            "unknown command code CN=7777",
        ),
        (
            reframe("QN=20250601100000000;ST=21;CN=2011;Flag=4;CP=&&&&"),
            "missing MN",
        ),
        (reframe("ST=21;CN=2011;MN=M;Flag=6;CP=&&&&"), "split packet"),
        (
            reframe("ST=21;CN=2011;MN=M;Flag=4;XX=1;CP=&&&&"),
            "unknown data segment field",
        ),
    ];
    for (text, needle) in table {
        let e = parse(text.as_bytes()).expect_err(&text);
        assert!(e.0.contains(needle), "{text}: {e}");
    }
    assert!(
        parse(lower_crc.as_bytes()).is_ok(),
        "CRC compared case-insensitively"
    );
    let not_a_number =
        reframe("ST=21;CN=2011;MN=M;Flag=4;CP=&&DataTime=20250601100000;w21003-Rtd=abc&&");
    // A value that is not a number refuses that value alone; the frame's others stand.
    let d = data(&frame(&not_a_number), &CodeMap::default()).unwrap();
    assert!(d.values.is_empty());
    let e = &d.bad[0].1;
    assert!(e.contains("w21003-Rtd=\"abc\" is not a number"), "{e}");
}

#[test]
fn split_packets_are_reassembled_by_qn() {
    let part = |pno: u32, cp: &str| Frame {
        qn: Some("20250601100000000".into()),
        st: "21".into(),
        cn: "2011".into(),
        pw: Some("123456".into()),
        mn: "M1".into(),
        flag: Some(4 | 2 | 1),
        pnum: Some(2),
        pno: Some(pno),
        cp: cp.into(),
    };
    let now = chrono::TimeZone::with_ymd_and_hms(&Utc, 2025, 6, 1, 2, 0, 0).unwrap();
    let mut r = Reassembly::default();
    assert_eq!(r.push(part(2, "w21011-Rtd=0.07"), now), None);
    assert_eq!(r.pending(), 1);
    let whole = r
        .push(part(1, "DataTime=20250601100000;w21003-Rtd=0.18"), now)
        .unwrap();
    assert_eq!(
        whole.cp,
        "DataTime=20250601100000;w21003-Rtd=0.18;w21011-Rtd=0.07"
    );
    assert!(!whole.is_split() && whole.needs_ack());
    assert_eq!(data(&whole, &CodeMap::default()).unwrap().values.len(), 2);
    assert_eq!(r.push(part(1, "w21003-Rtd=0.2"), now), None);
    assert_eq!(
        r.expire(
            now + chrono::Duration::seconds(61),
            chrono::Duration::seconds(60)
        )
        .len(),
        1
    );
    assert_eq!(r.pending(), 0);
}

fn arb_frame() -> impl Strategy<Value = Frame> {
    let code = prop::sample::select(vec![
        "w01001", "w21003", "w21011", "w01009", "w20111", "B01",
    ]);
    let item = (
        code,
        -1000.0f64..1000.0,
        prop::sample::select(vec!["N", "M", "T", "D"]),
    );
    (
        proptest::option::of("[0-9]{17}"),
        prop::sample::select(vec!["2011", "2051", "2061"]),
        "[A-Za-z0-9_-]{1,24}",
        proptest::option::of(0u8..=255),
        proptest::collection::vec(item, 0..12),
    )
        .prop_map(|(qn, cn, mn, flag, items)| {
            let mut cp = String::from("DataTime=20250601100000");
            for (code, v, f) in items {
                cp.push_str(&format!(";{code}-Rtd={v},{code}-Avg={v},{code}-Flag={f}"));
            }
            Frame {
                qn,
                st: "21".into(),
                cn: cn.into(),
                pw: Some("123456".into()),
                mn,
                // Split frames need PNUM/PNO; the round trip covers whole frames.
                flag: flag.map(|f| f & !2),
                pnum: None,
                pno: None,
                cp,
            }
        })
}

proptest! {
    #![proptest_config(ProptestConfig { failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn encode_then_parse_is_identity(f in arb_frame()) {
        let text = f.encode();
        prop_assume!(text.len() <= MAX_SEGMENT + 12);
        let back = parse(text.as_bytes()).map_err(|e| TestCaseError::fail(e.0))?;
        prop_assert_eq!(&back, &f);
        prop_assert!(data(&back, &CodeMap::default()).is_ok());
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        if let Ok(f) = parse(&bytes) {
            let _ = data(&f, &CodeMap::default());
        }
    }
}

#[test]
fn every_parameter_with_a_standard_code_round_trips() {
    let map = CodeMap::default();
    for p in Param::ALL {
        if let Some(code) = code_for(p) {
            assert_eq!(
                map.get(&code).map(|t| (t.param, t.scale)),
                Some((p, 1.0)),
                "{code}"
            );
        }
    }
    assert_eq!(code_for(Param::Nh3n).as_deref(), Some("w21003"));
    assert_eq!(
        code_for(Param::Hg).as_deref(),
        None,
        "mercury only has µg/L codes"
    );
}
