//! HJ 212 (2005, 2017, 2025) communication packets: framing, the standard's CRC16, the data
//! segment and its CP area, the pollutant-code map, split-packet reassembly and the encoder
//! (WATER.md §4).
//!
//! Fed by the ingest (one frame per MQTT message) and by `riverwatch hj212 decode`; feeds them
//! decoded frames, or a [`FrameError`] saying precisely why a frame was refused. Pure: the
//! reassembly of split packets takes the time as an argument, and nothing here logs.
//!
//! A frame is `##` + a 4-digit data length + the data segment + a 4-hex-digit CRC16 + CRLF.
//! The CRC covers the data segment only and is HJ 212's own variant (shift, then XOR: not
//! Modbus); it is compared case-insensitively and written in upper case.
//!
//! Real loggers bend the standard; where the meaning is clear, the frame is accepted:
//! - a lowercase CRC;
//! - a 17-digit `DataTime` with milliseconds (the milliseconds are dropped);
//! - text that is not ASCII (UTF-8 or GBK) in CP, e.g. `i12001-Info=正常`: [`parse`] works on
//!   bytes, the CRC is checked over the bytes as sent, the length may count bytes or
//!   characters, and such text goes to [`Data::info`], never among the values;
//! - an empty `-Rtd=` beside valid values (that value alone is refused, in [`Data::bad`]);
//! - split packets with PNUM/PNO but without Flag bit 1, reassembled like the standard's
//!   ([`Reassembly`]);
//! - Flag version bits 2 in frames made before HJ 212-2025 existed, read as 2017
//!   ([`Version`]).

use super::param::{DataFlag, Param};
use chrono::{DateTime, FixedOffset, NaiveDateTime, TimeZone};
use std::collections::BTreeMap;
use std::fmt;

/// The longest data segment the standard allows.
pub const MAX_SEGMENT: usize = 1024;

/// HJ 212's CRC16 over `data` (WATER.md §4.2): check value 0x2F80 for "123456789".
pub fn crc16(data: &[u8]) -> u16 {
    let mut crc: u16 = 0xFFFF;
    for &b in data {
        crc = (crc >> 8) ^ u16::from(b);
        for _ in 0..8 {
            let lsb = crc & 1;
            crc >>= 1;
            if lsb == 1 {
                crc ^= 0xA001;
            }
        }
    }
    crc
}

/// The standard a frame follows, read from the version bits of its Flag (bits 2–7) and, for
/// version bits 2, from when the frame was made (WATER.md §4, §4.3):
///
/// | version bits | frame dated (QN, else DataTime) | label |
/// |---|---|---|
/// | 0 (or no Flag) | any | 2005 |
/// | 1 | any | 2017 |
/// | 2 | before 2025-06-06 | 2017 ([`Version::VendorPre2025`]) |
/// | 2 | from 2025-06-06, or undated | 2025 |
/// | 3–63 | any | unknown (n), still decoded |
///
/// HJ 212-2025 gave version bits 2 their meaning when it was issued on 2025-06-06 (WATER.md
/// §4 status). Loggers sent Flag 8 and 9 years before that (WATER.md §4.3 cites real frames
/// from 2020–21): those bits were a vendor's choice, and such frames follow HJ 212-2017, so
/// they are read as 2017. The raw bits are kept ([`Frame::version_bits`]), and the data
/// acknowledgement mirrors them, whatever the label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    V2005,
    V2017,
    /// Version bits 2 in a frame made before HJ 212-2025 existed: HJ 212-2017 with a vendor's
    /// Flag.
    VendorPre2025,
    V2025,
    /// A version number this code does not know; the frame is still decoded.
    Other(u8),
}

/// The day HJ 212-2025 was issued (WATER.md §4), before which version bits 2 meant no
/// standard.
const ISSUED_2025: Option<chrono::NaiveDate> = chrono::NaiveDate::from_ymd_opt(2025, 6, 6);

impl Version {
    /// The standard's year, as the decoder's output labels it; `"unknown (n)"` for version
    /// bits it does not know.
    pub fn name(self) -> String {
        match self {
            Version::V2005 => "2005".into(),
            Version::V2017 | Version::VendorPre2025 => "2017".into(),
            Version::V2025 => "2025".into(),
            Version::Other(n) => format!("unknown ({n})"),
        }
    }
}

/// Why a frame was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrameError(pub String);

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn err<T>(message: impl Into<String>) -> Result<T, FrameError> {
    Err(FrameError(message.into()))
}

/// A checked frame: the fields of its data segment, with CP kept as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub qn: Option<String>,
    pub st: String,
    pub cn: String,
    pub pw: Option<String>,
    pub mn: String,
    /// Absent in some 2005-style frames, which then mean version 2005 and no answer.
    pub flag: Option<u8>,
    pub pnum: Option<u32>,
    pub pno: Option<u32>,
    /// The CP area between `CP=&&` and the closing `&&`.
    pub cp: String,
}

impl Frame {
    /// The Flag's version bits (2–7) as sent; 0 when the frame has no Flag.
    pub fn version_bits(&self) -> u8 {
        self.flag.unwrap_or(0) >> 2
    }

    /// The standard this frame follows, labelled as [`Version`] says.
    pub fn version(&self) -> Version {
        match self.version_bits() {
            0 => Version::V2005,
            1 => Version::V2017,
            2 => match (self.made_on(), ISSUED_2025) {
                (Some(day), Some(issued)) if day < issued => Version::VendorPre2025,
                _ => Version::V2025,
            },
            n => Version::Other(n),
        }
    }

    /// The day the frame was made: QN's date (the request's own time), else the date of CP's
    /// `DataTime`; `None` when neither reads as a date.
    fn made_on(&self) -> Option<chrono::NaiveDate> {
        let day = |digits: &str| {
            digits
                .get(..8)
                .and_then(|d| chrono::NaiveDate::parse_from_str(d, "%Y%m%d").ok())
        };
        self.qn.as_deref().and_then(day).or_else(|| {
            self.cp
                .split([';', ','])
                .find_map(|item| item.strip_prefix("DataTime="))
                .and_then(day)
        })
    }

    /// Flag bit 0: the sender expects an answer (for data, the CN=9014 acknowledgement).
    pub fn needs_ack(&self) -> bool {
        self.flag.is_some_and(|f| f & 1 == 1)
    }

    /// Flag bit 1: one packet of a message split over several (PNUM/PNO present).
    pub fn is_split(&self) -> bool {
        self.flag.is_some_and(|f| f & 2 == 2)
    }

    /// The data segment as it is framed: the fields in the standard's order.
    pub fn segment(&self) -> String {
        let mut s = String::new();
        if let Some(qn) = &self.qn {
            s.push_str(&format!("QN={qn};"));
        }
        s.push_str(&format!("ST={};CN={};", self.st, self.cn));
        if let Some(pw) = &self.pw {
            s.push_str(&format!("PW={pw};"));
        }
        s.push_str(&format!("MN={};", self.mn));
        if let Some(flag) = self.flag {
            s.push_str(&format!("Flag={flag};"));
        }
        if let Some(pnum) = self.pnum {
            s.push_str(&format!("PNUM={pnum};"));
        }
        if let Some(pno) = self.pno {
            s.push_str(&format!("PNO={pno};"));
        }
        s.push_str(&format!("CP=&&{}&&", self.cp));
        s
    }

    /// The complete frame, `##` to CRLF, with an upper-case CRC over the segment's UTF-8
    /// bytes. The length field counts characters, as the standard says (for the ASCII frames
    /// riverwatch sends, characters and bytes are the same).
    pub fn encode(&self) -> String {
        let segment = self.segment();
        format!(
            "##{:04}{segment}{:04X}\r\n",
            segment.chars().count(),
            crc16(segment.as_bytes())
        )
    }

    /// The CN=9014 data acknowledgement for this frame: ST=91, the same QN, PW and MN, and a
    /// Flag that carries this frame's version bits unchanged (whatever [`Frame::version`]
    /// labels them) and asks for no answer.
    pub fn data_ack(&self) -> Frame {
        Frame {
            qn: self.qn.clone(),
            st: "91".into(),
            cn: "9014".into(),
            pw: self.pw.clone(),
            mn: self.mn.clone(),
            // The frame's own version bits, as sent: a logger expects its own version back.
            flag: Some(self.flag.unwrap_or(0) & !3),
            pnum: None,
            pno: None,
            cp: String::new(),
        }
    }
}

/// Checks the framing, length and CRC of one frame and splits its data segment. A trailing
/// CR LF is optional (a line read from a file has lost it).
///
/// Works on the bytes as sent, so text in CP may be in any encoding:
/// - the CRC is computed over the data segment's bytes exactly as they arrived;
/// - the 4-digit length counts the data segment's characters, which the standard assumes are
///   ASCII (one byte each). A logger that writes Chinese text counts either bytes or
///   characters, so the length is accepted when it equals the segment's byte count or its
///   character count: UTF-8 characters when the segment is valid UTF-8, otherwise GBK
///   characters (a byte from 0x81 to 0xFE followed by one from 0x40 to 0xFE, 0x7F excepted,
///   is one character; any other byte is one);
/// - non-ASCII bytes are allowed in CP only; the fields before it (QN, ST, CN, PW, MN, Flag,
///   PNUM, PNO) are ASCII by the standard and a non-ASCII byte there refuses the frame;
/// - CP that is not valid UTF-8 (GBK text, which this crate does not decode) is kept with each
///   undecodable byte replaced by U+FFFD. No separator (`;` `,` `=` `&`) can be a GBK byte,
///   so items still split correctly; only the text of such items is lost, and re-encoding such
///   a frame does not give back its bytes.
///
/// Errors: a [`FrameError`] naming the first check that failed (header, length field,
/// segment over [`MAX_SEGMENT`] characters, truncated or bad length, CRC field, CRC mismatch,
/// malformed data segment or CP, a field out of its format).
pub fn parse(bytes: &[u8]) -> Result<Frame, FrameError> {
    let bytes = bytes.strip_suffix(b"\n").unwrap_or(bytes);
    let bytes = bytes.strip_suffix(b"\r").unwrap_or(bytes);
    if !bytes.starts_with(b"##") {
        return err("does not start with ##");
    }
    if bytes.len() < 10 {
        return err(format!(
            "truncated: {} characters, a frame needs at least ## + length + CRC",
            bytes.len()
        ));
    }
    let length_field = &bytes[2..6];
    if !length_field.iter().all(u8::is_ascii_digit) {
        return err(format!(
            "bad length field {:?}",
            String::from_utf8_lossy(length_field)
        ));
    }
    let declared = length_field
        .iter()
        .fold(0usize, |n, d| n * 10 + usize::from(d - b'0'));
    if declared > MAX_SEGMENT {
        return err(format!(
            "data segment of {declared} characters exceeds the {MAX_SEGMENT} allowed"
        ));
    }
    let (segment, crc_field) = bytes[6..].split_at(bytes.len() - 10);
    let carried = segment.len();
    if carried != declared {
        let ascii = segment.is_ascii();
        let chars = if ascii { carried } else { characters(segment) };
        if chars != declared {
            let what = if carried < declared {
                "truncated"
            } else {
                "bad length"
            };
            let carries = if ascii {
                format!("{carried}")
            } else {
                format!("{carried} bytes ({chars} characters)")
            };
            return err(format!(
                "{what}: length field says {declared} characters, frame carries {carries}"
            ));
        }
    }
    let crc_text = String::from_utf8_lossy(crc_field);
    let crc = std::str::from_utf8(crc_field)
        .ok()
        .filter(|t| t.bytes().all(|b| b.is_ascii_hexdigit()))
        .and_then(|t| u16::from_str_radix(t, 16).ok())
        .ok_or_else(|| FrameError(format!("bad CRC field {crc_text:?}")))?;
    let computed = crc16(segment);
    if crc != computed {
        return err(format!(
            "crc mismatch: frame says {}, computed {computed:04X}",
            crc_text.to_uppercase()
        ));
    }
    parse_segment(segment)
}

/// The characters of a data segment that is not all ASCII: UTF-8 characters when it is valid
/// UTF-8, otherwise GBK characters (see [`parse`]).
fn characters(segment: &[u8]) -> usize {
    if let Ok(text) = std::str::from_utf8(segment) {
        return text.chars().count();
    }
    let mut count = 0;
    let mut i = 0;
    while i < segment.len() {
        let double = (0x81..=0xFE).contains(&segment[i])
            && segment
                .get(i + 1)
                .is_some_and(|b| (0x40..=0xFE).contains(b) && *b != 0x7F);
        i += if double { 2 } else { 1 };
        count += 1;
    }
    count
}

fn parse_segment(segment: &[u8]) -> Result<Frame, FrameError> {
    // CP comes last and may itself hold ';' and '=': split it off before anything else.
    let Some(cp_at) = segment.windows(5).position(|w| w == b"CP=&&") else {
        return err("malformed data segment: no CP=&&");
    };
    let (head, cp) = segment.split_at(cp_at);
    if let Some(pos) = head.iter().position(|b| !b.is_ascii()) {
        return err(format!(
            "non-ASCII byte 0x{:02X} at offset {} in the fields before CP (only CP may carry text)",
            head[pos],
            6 + pos
        ));
    }
    // ASCII, checked just above.
    let head = std::str::from_utf8(head).map_err(|e| FrameError(e.to_string()))?;
    let Some(cp) = cp[b"CP=&&".len()..].strip_suffix(b"&&") else {
        return err("malformed CP: it does not end with &&");
    };
    let cp = String::from_utf8_lossy(cp);
    let mut fields: BTreeMap<&str, &str> = BTreeMap::new();
    for item in head.split(';').filter(|i| !i.is_empty()) {
        let Some((key, value)) = item.split_once('=') else {
            return err(format!("malformed data segment field {item:?}"));
        };
        if fields.insert(key, value).is_some() {
            return err(format!("field {key} appears twice"));
        }
    }
    if let Some(key) = fields.keys().find(|k| {
        !matches!(
            **k,
            "QN" | "ST" | "CN" | "PW" | "MN" | "Flag" | "PNUM" | "PNO"
        )
    }) {
        return err(format!("unknown data segment field {key:?}"));
    }
    let required = |key: &str| -> Result<String, FrameError> {
        fields
            .get(key)
            .map(|v| v.to_string())
            .ok_or_else(|| FrameError(format!("missing {key}")))
    };
    let number = |key: &str, digits: usize| -> Result<Option<String>, FrameError> {
        match fields.get(key) {
            None => Ok(None),
            Some(v) if v.len() == digits && v.bytes().all(|b| b.is_ascii_digit()) => {
                Ok(Some(v.to_string()))
            }
            Some(v) => err(format!("{key}={v:?} is not {digits} digits")),
        }
    };
    let st = number("ST", 2)?.ok_or_else(|| FrameError("missing ST".into()))?;
    let cn = number("CN", 4)?.ok_or_else(|| FrameError("missing CN".into()))?;
    if !known_command(&cn) {
        return err(format!("unknown command code CN={cn}"));
    }
    let qn = number("QN", 17)?;
    let mn = required("MN")?;
    if mn.is_empty() || mn.len() > 24 {
        return err(format!("MN {mn:?} is not 1 to 24 characters"));
    }
    let flag = match fields.get("Flag") {
        None => None,
        Some(v) => Some(
            v.parse::<u8>()
                .map_err(|_| FrameError(format!("Flag={v:?} is not an integer 0–255")))?,
        ),
    };
    let count = |key: &str| -> Result<Option<u32>, FrameError> {
        fields
            .get(key)
            .map(|v| {
                v.parse::<u32>()
                    .map_err(|_| FrameError(format!("{key}={v:?} is not a number")))
            })
            .transpose()
    };
    let (pnum, pno) = (count("PNUM")?, count("PNO")?);
    let frame = Frame {
        qn,
        st,
        cn,
        pw: fields.get("PW").map(|v| v.to_string()),
        mn,
        flag,
        pnum,
        pno,
        cp: cp.into_owned(),
    };
    match (frame.pnum, frame.pno) {
        (Some(n), Some(i)) if n >= 1 && (1..=n).contains(&i) => {}
        _ if frame.is_split() => {
            return err("split packet (Flag bit 1) without a valid PNUM/PNO");
        }
        // Old-style split packets carry PNUM and PNO without Flag bit 1: they must agree.
        (Some(n), Some(i)) => return err(format!("PNO={i} is not within 1 to PNUM={n}")),
        _ => {}
    }
    Ok(frame)
}

/// Command codes of HJ 212-2017 and 2025 (WATER.md §4.4).
fn known_command(cn: &str) -> bool {
    matches!(
        cn,
        "1000"
            | "1011"
            | "1012"
            | "1013"
            | "1014"
            | "1061"
            | "1062"
            | "1063"
            | "1064"
            | "1072"
            | "2011"
            | "2012"
            | "2013"
            | "2021"
            | "2022"
            | "2031"
            | "2041"
            | "2051"
            | "2061"
            | "2062"
            | "2081"
            | "9011"
            | "9012"
            | "9013"
            | "9014"
            | "9015"
    ) || ("3011".."3025").contains(&cn)
}

/// The CP area, parsed.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Cp {
    /// `DataTime`, in China Standard Time (the frame does not say; UTC+8 is the convention).
    pub data_time: Option<DateTime<FixedOffset>>,
    /// Per-pollutant items: (code, field, value as written), e.g. ("w21003", "Rtd", "0.182").
    pub items: Vec<(String, String, String)>,
    /// Other items, e.g. `RtdInterval=30` or `QnRtn=1`.
    pub other: Vec<(String, String)>,
}

/// China Standard Time, in which HJ 212 times are written.
pub fn cst() -> FixedOffset {
    FixedOffset::east_opt(8 * 3600).unwrap_or_else(|| FixedOffset::east_opt(0).expect("UTC"))
}

/// A `DataTime` value: `YYYYMMDDhhmmss` in China Standard Time, as the standard writes it, or
/// `YYYYMMDDhhmmsszzz` with milliseconds, as some loggers and public libraries write it
/// (xiaoyao9184/hj-t212-parser, chenqi92/alltobs-hj212): the meaning is clear, and the
/// milliseconds are dropped (readings are stamped to the second). Any other length is refused.
fn data_time(value: &str) -> Result<DateTime<FixedOffset>, FrameError> {
    let digits = value.bytes().all(|b| b.is_ascii_digit());
    let seconds = match value.len() {
        14 if digits => value,
        17 if digits => &value[..14],
        _ => {
            return err(format!(
                "DataTime={value:?} is not YYYYMMDDhhmmss (14 digits) or YYYYMMDDhhmmsszzz (17, with milliseconds)"
            ))
        }
    };
    let naive = NaiveDateTime::parse_from_str(seconds, "%Y%m%d%H%M%S")
        .map_err(|_| FrameError(format!("DataTime={value:?} is not a valid time")))?;
    cst()
        .from_local_datetime(&naive)
        .single()
        .ok_or_else(|| FrameError(format!("DataTime={value:?} is not a valid time")))
}

/// Splits CP into groups (`;`) and items (`,`), each `key=value`.
pub fn parse_cp(cp: &str) -> Result<Cp, FrameError> {
    let mut out = Cp::default();
    for item in cp.split([';', ',']).filter(|i| !i.is_empty()) {
        let Some((key, value)) = item.split_once('=') else {
            return err(format!("malformed CP item {item:?}"));
        };
        if key == "DataTime" {
            out.data_time = Some(data_time(value)?);
        } else if let Some((code, field)) = key.split_once('-') {
            if code.is_empty() || field.is_empty() {
                return err(format!("malformed CP item {item:?}"));
            }
            out.items
                .push((code.to_string(), field.to_string(), value.to_string()));
        } else {
            out.other.push((key.to_string(), value.to_string()));
        }
    }
    Ok(out)
}

/// Where a pollutant code goes: a parameter key, and the factor that brings the value to the
/// parameter's unit (0.001 for codes sent in µg/L).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CodeTarget {
    pub param: Param,
    pub scale: f64,
}

/// Pollutant code → parameter map: HJ 212-2017 Table B.1 codes, the 2005 codes, and the
/// de-facto surface-water codes for turbidity and chlorophyll (WATER.md §4.5, §1.1 note 3);
/// overridable per station for vendors that differ.
#[derive(Debug, Clone, PartialEq)]
pub struct CodeMap {
    map: BTreeMap<String, CodeTarget>,
}

const MG: f64 = 1.0;
const UG: f64 = 0.001;

impl Default for CodeMap {
    fn default() -> Self {
        use Param::*;
        let entries: &[(&str, Param, f64)] = &[
            // HJ 212-2017
            ("w01001", Ph, MG),
            ("w01009", Do, MG),
            ("w01010", Temp, MG),
            ("w01014", Cond, MG),
            ("w01003", Turb, MG),
            ("w01016", Chla, MG),
            ("w01017", Bod5, MG),
            ("w01018", Cod, MG),
            ("w01019", Codmn, MG),
            ("w02003", Fcoli, MG),
            ("w21001", Tn, MG),
            ("w21003", Nh3n, MG),
            ("w21011", Tp, MG),
            ("w21016", Cn, MG),
            ("w21017", F, MG),
            ("w21019", S2, MG),
            ("w22001", Oil, MG),
            ("w23002", Phenol, MG),
            ("w19002", Las, MG),
            ("w20122", Cu, MG),
            ("w20138", Cu, MG),
            ("w20123", Zn, MG),
            ("w20139", Zn, MG),
            ("w20140", Se, MG),
            ("w20141", As, MG),
            ("w20144", Pb, MG),
            // Sent in µg/L: divided by 1000 to meet GB 3838's mg/L.
            ("w20111", Hg, UG),
            ("w20115", Cd, UG),
            ("w20117", Cr6, UG),
            ("w20119", As, UG),
            ("w20120", Pb, UG),
            ("w20128", Se, UG),
            ("w20142", Hg, UG),
            ("w20143", Cd, UG),
            // HJ/T 212-2005
            ("001", Ph, MG),
            ("010", Bod5, MG),
            ("011", Cod, MG),
            ("060", Nh3n, MG),
            ("065", Tn, MG),
            ("101", Tp, MG),
            ("070", Cn, MG),
            ("071", S2, MG),
            ("072", F, MG),
            ("080", Oil, MG),
            ("110", Phenol, MG),
            ("520", Las, MG),
            ("550", Fcoli, MG),
        ];
        CodeMap {
            map: entries
                .iter()
                .map(|&(code, param, scale)| (code.to_string(), CodeTarget { param, scale }))
                .collect(),
        }
    }
}

/// The HJ 212-2017 code a station sends for `param` (in the parameter's own unit), for
/// encoding frames: the first mg/L code of the standard map.
pub fn code_for(param: Param) -> Option<String> {
    CodeMap::default()
        .map
        .into_iter()
        .find(|(code, t)| t.param == param && t.scale == MG && code.starts_with('w'))
        .map(|(code, _)| code)
}

impl CodeMap {
    /// The default map with a station's overrides applied.
    pub fn with_overrides<'a>(
        overrides: impl IntoIterator<Item = &'a (String, CodeTarget)>,
    ) -> CodeMap {
        let mut m = CodeMap::default();
        for (code, target) in overrides {
            m.map.insert(code.clone(), *target);
        }
        m
    }

    pub fn get(&self, code: &str) -> Option<CodeTarget> {
        self.map.get(code).copied()
    }
}

/// The measured values a data frame carries.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Data {
    pub data_time: Option<DateTime<FixedOffset>>,
    /// Converted values per parameter, with the flag the frame gave each.
    pub values: BTreeMap<Param, (f64, Option<DataFlag>)>,
    /// Pollutant codes the map does not know, with their value.
    pub unknown: BTreeMap<String, f64>,
    /// Values that could not be read, as (`code-field`, why): an empty `-Rtd=` (a logger's
    /// way of saying "no result"), or text that is not a number. The frame's other values
    /// stand (SPEC §5a).
    pub bad: Vec<(String, String)>,
    /// Text the frame carries beside its values, as written (GBK text with its bytes replaced
    /// by U+FFFD, see [`parse`]): every `-Info` item by its code (`i12001` → `正常`), and any
    /// other item whose text is not ASCII, by its key (`w01001-EFlag`, `Remark`). Never a
    /// value and never a refusal: a status in Chinese says nothing against the numbers.
    pub info: BTreeMap<String, String>,
}

/// The field that carries a command's value: `-Rtd` for real-time data (2011), `-Avg` for
/// period data (minute, hourly, daily).
fn value_field(cn: &str) -> &'static str {
    if cn == "2011" {
        "Rtd"
    } else {
        "Avg"
    }
}

/// Extracts the measured values of a frame through `map`.
pub fn data(frame: &Frame, map: &CodeMap) -> Result<Data, FrameError> {
    let cp = parse_cp(&frame.cp)?;
    let field = value_field(&frame.cn);
    let mut out = Data {
        data_time: cp.data_time,
        ..Data::default()
    };
    for (key, value) in &cp.other {
        if !value.is_ascii() {
            out.info.insert(key.clone(), value.clone());
        }
    }
    let mut flags: BTreeMap<&str, DataFlag> = BTreeMap::new();
    for (code, f, value) in &cp.items {
        if f == "Info" {
            out.info.insert(code.clone(), value.clone());
        } else if f != field && !value.is_ascii() {
            out.info.insert(format!("{code}-{f}"), value.clone());
        }
        if f == "Flag" {
            let letter = value.chars().next().unwrap_or('?');
            let flag = DataFlag::parse(value).unwrap_or(DataFlag::Other(letter));
            flags.insert(code, flag);
        }
    }
    for (code, f, value) in &cp.items {
        if f != field {
            continue;
        }
        let Some(v) = value.parse::<f64>().ok().filter(|v| v.is_finite()) else {
            let why = if value.is_empty() {
                format!("{code}-{f} is empty (no result)")
            } else {
                format!("{code}-{f}={value:?} is not a number")
            };
            out.bad.push((format!("{code}-{f}"), why));
            continue;
        };
        match map.get(code) {
            Some(t) => {
                out.values
                    .insert(t.param, (v * t.scale, flags.get(code.as_str()).copied()));
            }
            None => {
                out.unknown.insert(code.clone(), v);
            }
        }
    }
    Ok(out)
}

/// Reassembles messages split over several packets. A packet is part of a split message when
/// it carries PNUM and PNO: with Flag bit 1, as HJ 212-2017 says, or without it (an older
/// style, and loggers that send no Flag at all). Packets belong together when MN, CN and QN
/// agree; a packet without QN is keyed by its CP's `DataTime` instead (such loggers stamp
/// every packet of one message with the same `DataTime`), and one with neither is passed on
/// alone, as it cannot be matched. A message whose packets do not all arrive within the
/// timeout is given up ([`Reassembly::expire`]).
#[derive(Debug, Default)]
pub struct Reassembly {
    pending: BTreeMap<Key, Partial>,
}

/// Which message a packet belongs to: MN, CN, and `QN=…` or, without QN, `DataTime=…`.
type Key = (String, String, String);

#[derive(Debug)]
struct Partial {
    /// When the first packet arrived: the timeout runs from here.
    first_seen: DateTime<chrono::Utc>,
    /// PNUM as the first packet gave it; every packet must say the same.
    pnum: u32,
    /// `DataTime` as written, from the first packet that has one; every packet that has one
    /// must say the same.
    data_time: Option<String>,
    parts: BTreeMap<u32, Frame>,
}

/// The `DataTime` items of a CP area, as written.
fn data_times(cp: &str) -> impl Iterator<Item = &str> {
    cp.split([';', ','])
        .filter_map(|item| item.strip_prefix("DataTime="))
}

impl Reassembly {
    /// Takes one packet; returns the whole message once its last packet is in, `Ok(None)`
    /// while packets are missing. Frames without PNUM/PNO pass straight through.
    ///
    /// The whole message has the first packet's fields, no PNUM/PNO, Flag bit 1 cleared, and
    /// the CP areas joined in packet order with one `DataTime` in front (each packet's own
    /// copy removed). Errors, after which the message's packets are dropped: a packet whose
    /// PNUM or `DataTime` disagrees with its message's earlier packets.
    pub fn push(
        &mut self,
        frame: Frame,
        now: DateTime<chrono::Utc>,
    ) -> Result<Option<Frame>, FrameError> {
        let (Some(pnum), Some(pno)) = (frame.pnum, frame.pno) else {
            return Ok(Some(frame));
        };
        let time = data_times(&frame.cp).next().map(str::to_string);
        let id = match (&frame.qn, &time) {
            (Some(qn), _) => format!("QN={qn}"),
            (None, Some(t)) => format!("DataTime={t}"),
            (None, None) => return Ok(Some(frame)),
        };
        let key = (frame.mn.clone(), frame.cn.clone(), id);
        let partial = self.pending.entry(key.clone()).or_insert_with(|| Partial {
            first_seen: now,
            pnum,
            data_time: None,
            parts: BTreeMap::new(),
        });
        let disagreement = if partial.pnum != pnum {
            Some(format!(
                "packet PNO={pno} says PNUM={pnum}, an earlier packet said {}",
                partial.pnum
            ))
        } else {
            match (&partial.data_time, &time) {
                (Some(first), Some(this)) if first != this => Some(format!(
                    "packet PNO={pno} says DataTime={this}, an earlier packet said {first}"
                )),
                _ => None,
            }
        };
        if let Some(why) = disagreement {
            self.pending.remove(&key);
            return err(format!(
                "split message {} of MN {}: {why}; its packets are dropped",
                key.2, key.0
            ));
        }
        if partial.data_time.is_none() {
            partial.data_time = time;
        }
        partial.parts.insert(pno, frame);
        if partial.parts.len() < pnum as usize {
            return Ok(None);
        }
        let Some(partial) = self.pending.remove(&key) else {
            return Ok(None);
        };
        let mut groups: Vec<String> = partial
            .data_time
            .iter()
            .map(|t| format!("DataTime={t}"))
            .collect();
        for part in partial.parts.values() {
            for group in part.cp.split(';') {
                let items: Vec<&str> = group
                    .split(',')
                    .filter(|i| !i.is_empty() && !i.starts_with("DataTime="))
                    .collect();
                if !items.is_empty() {
                    groups.push(items.join(","));
                }
            }
        }
        let Some(mut whole) = partial.parts.into_values().next() else {
            return Ok(None);
        };
        whole.cp = groups.join(";");
        whole.flag = whole.flag.map(|f| f & !2);
        whole.pnum = None;
        whole.pno = None;
        Ok(Some(whole))
    }

    /// Drops messages whose first packet is older than `timeout`; returns each one's MN and
    /// what keyed it (`QN=…` or `DataTime=…`).
    pub fn expire(
        &mut self,
        now: DateTime<chrono::Utc>,
        timeout: chrono::Duration,
    ) -> Vec<(String, String)> {
        let old: Vec<Key> = self
            .pending
            .iter()
            .filter(|(_, p)| now - p.first_seen > timeout)
            .map(|(k, _)| k.clone())
            .collect();
        for k in &old {
            self.pending.remove(k);
        }
        old.into_iter().map(|(mn, _, id)| (mn, id)).collect()
    }

    /// How many split messages wait for packets.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }
}

#[cfg(test)]
pub(crate) mod tests;
