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

/// The standard a frame follows, from the version bits of its Flag (bits 2–7).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    V2005,
    V2017,
    V2025,
    /// A version number this code does not know; the frame is still decoded.
    Other(u8),
}

impl Version {
    fn bits(self) -> u8 {
        match self {
            Version::V2005 => 0,
            Version::V2017 => 1,
            Version::V2025 => 2,
            Version::Other(n) => n,
        }
    }

    pub fn name(self) -> String {
        match self {
            Version::V2005 => "2005".into(),
            Version::V2017 => "2017".into(),
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
    pub fn version(&self) -> Version {
        match self.flag.unwrap_or(0) >> 2 {
            0 => Version::V2005,
            1 => Version::V2017,
            2 => Version::V2025,
            n => Version::Other(n),
        }
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
        if let (Some(pnum), Some(pno)) = (self.pnum, self.pno) {
            s.push_str(&format!("PNUM={pnum};PNO={pno};"));
        }
        s.push_str(&format!("CP=&&{}&&", self.cp));
        s
    }

    /// The complete frame, `##` to CRLF, with an upper-case CRC.
    pub fn encode(&self) -> String {
        let segment = self.segment();
        format!(
            "##{:04}{segment}{:04X}\r\n",
            segment.len(),
            crc16(segment.as_bytes())
        )
    }

    /// The CN=9014 data acknowledgement for this frame: ST=91, the same QN, PW and MN, and a
    /// Flag that carries this frame's version and asks for no answer.
    pub fn data_ack(&self) -> Frame {
        Frame {
            qn: self.qn.clone(),
            st: "91".into(),
            cn: "9014".into(),
            pw: self.pw.clone(),
            mn: self.mn.clone(),
            flag: Some(self.version().bits() << 2),
            pnum: None,
            pno: None,
            cp: String::new(),
        }
    }
}

/// Checks the framing, length and CRC of one frame and splits its data segment. A trailing
/// CR LF is optional (a line read from a file has lost it).
pub fn parse(bytes: &[u8]) -> Result<Frame, FrameError> {
    if let Some(pos) = bytes.iter().position(|b| !b.is_ascii()) {
        return err(format!(
            "non-ASCII byte 0x{:02X} at offset {pos}",
            bytes[pos]
        ));
    }
    // Checked ASCII above, so this is valid UTF-8.
    let text = std::str::from_utf8(bytes).map_err(|e| FrameError(e.to_string()))?;
    let text = text.strip_suffix('\n').unwrap_or(text);
    let text = text.strip_suffix('\r').unwrap_or(text);
    if !text.starts_with("##") {
        return err("does not start with ##");
    }
    if text.len() < 10 {
        return err(format!(
            "truncated: {} characters, a frame needs at least ## + length + CRC",
            text.len()
        ));
    }
    let length_field = &text[2..6];
    if !length_field.bytes().all(|b| b.is_ascii_digit()) {
        return err(format!("bad length field {length_field:?}"));
    }
    let declared: usize = length_field
        .parse()
        .map_err(|_| FrameError(format!("bad length field {length_field:?}")))?;
    if declared > MAX_SEGMENT {
        return err(format!(
            "data segment of {declared} characters exceeds the {MAX_SEGMENT} allowed"
        ));
    }
    let carried = text.len() - 10;
    if carried != declared {
        let what = if carried < declared {
            "truncated"
        } else {
            "bad length"
        };
        return err(format!(
            "{what}: length field says {declared} characters, frame carries {carried}"
        ));
    }
    let segment = &text[6..6 + declared];
    let crc_text = &text[6 + declared..];
    let crc = u16::from_str_radix(crc_text, 16)
        .ok()
        .filter(|_| crc_text.bytes().all(|b| b.is_ascii_hexdigit()))
        .ok_or_else(|| FrameError(format!("bad CRC field {crc_text:?}")))?;
    let computed = crc16(segment.as_bytes());
    if crc != computed {
        return err(format!(
            "crc mismatch: frame says {}, computed {computed:04X}",
            crc_text.to_uppercase()
        ));
    }
    parse_segment(segment)
}

fn parse_segment(segment: &str) -> Result<Frame, FrameError> {
    // CP comes last and may itself hold ';' and '=': split it off before anything else.
    let Some(cp_at) = segment.find("CP=&&") else {
        return err("malformed data segment: no CP=&&");
    };
    let (head, cp) = segment.split_at(cp_at);
    let cp = &cp["CP=&&".len()..];
    let Some(cp) = cp.strip_suffix("&&") else {
        return err("malformed CP: it does not end with &&");
    };
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
        cp: cp.to_string(),
    };
    if frame.is_split() {
        match (frame.pnum, frame.pno) {
            (Some(n), Some(i)) if n >= 1 && (1..=n).contains(&i) => {}
            _ => return err("split packet (Flag bit 1) without a valid PNUM/PNO"),
        }
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

/// Splits CP into groups (`;`) and items (`,`), each `key=value`.
pub fn parse_cp(cp: &str) -> Result<Cp, FrameError> {
    let mut out = Cp::default();
    for item in cp.split([';', ',']).filter(|i| !i.is_empty()) {
        let Some((key, value)) = item.split_once('=') else {
            return err(format!("malformed CP item {item:?}"));
        };
        if key == "DataTime" {
            let naive = NaiveDateTime::parse_from_str(value, "%Y%m%d%H%M%S")
                .map_err(|_| FrameError(format!("DataTime={value:?} is not YYYYMMDDhhmmss")))?;
            let local = cst()
                .from_local_datetime(&naive)
                .single()
                .ok_or_else(|| FrameError(format!("DataTime={value:?} is not a valid time")))?;
            out.data_time = Some(local);
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
    let mut flags: BTreeMap<&str, DataFlag> = BTreeMap::new();
    for (code, f, value) in &cp.items {
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

/// Reassembles messages split over several packets (Flag bit 1), keyed by QN. A message whose
/// packets do not all arrive within the timeout is given up.
#[derive(Debug, Default)]
pub struct Reassembly {
    pending: BTreeMap<(String, String), Partial>,
}

#[derive(Debug)]
struct Partial {
    first_seen: DateTime<chrono::Utc>,
    parts: BTreeMap<u32, Frame>,
}

impl Reassembly {
    /// Takes one packet; returns the whole message once its last packet is in (CP areas joined
    /// in packet order), `None` while packets are missing. Unsplit frames pass straight
    /// through.
    pub fn push(&mut self, frame: Frame, now: DateTime<chrono::Utc>) -> Option<Frame> {
        let (Some(pnum), Some(pno)) = (frame.pnum, frame.pno) else {
            return Some(frame);
        };
        if !frame.is_split() {
            return Some(frame);
        }
        let key = (frame.mn.clone(), frame.qn.clone().unwrap_or_default());
        let partial = self.pending.entry(key.clone()).or_insert_with(|| Partial {
            first_seen: now,
            parts: BTreeMap::new(),
        });
        partial.parts.insert(pno, frame);
        if partial.parts.len() < pnum as usize {
            return None;
        }
        let partial = self.pending.remove(&key)?;
        let mut parts = partial.parts.into_values();
        let mut whole = parts.next()?;
        for p in parts {
            if !whole.cp.is_empty() && !p.cp.is_empty() {
                whole.cp.push(';');
            }
            whole.cp.push_str(&p.cp);
        }
        whole.flag = whole.flag.map(|f| f & !2);
        whole.pnum = None;
        whole.pno = None;
        Some(whole)
    }

    /// Drops messages whose first packet is older than `timeout`; returns their (MN, QN).
    pub fn expire(
        &mut self,
        now: DateTime<chrono::Utc>,
        timeout: chrono::Duration,
    ) -> Vec<(String, String)> {
        let old: Vec<_> = self
            .pending
            .iter()
            .filter(|(_, p)| now - p.first_seen > timeout)
            .map(|(k, _)| k.clone())
            .collect();
        for k in &old {
            self.pending.remove(k);
        }
        old
    }

    pub fn pending(&self) -> usize {
        self.pending.len()
    }
}

#[cfg(test)]
pub(crate) mod tests;
