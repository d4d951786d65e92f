//! Decodes MQTT topics, JSON reading payloads (SPEC §3, §4) and HJ 212 frames (SPEC §5) into
//! domain readings, refusing anything invalid with a precise reason. Both formats end in the
//! same [`Reading`] and pass the same value checks.
//!
//! Fed by the ingest's `Decoder` with a topic and raw bytes; feeds the screen with
//! [`Reading`]s and [`Refusal`]s. The JSON is parsed into a tree first and each reading of an
//! array checked on its own, so one bad reading never drops the good ones beside it; likewise
//! one bad value refuses that parameter alone (SPEC §4), and `null` means not measured. Every
//! value goes through the domain's `measure` (plausibility and detection limits), as `assess`'s
//! do. Time (`now`, for the future-skew and maximum-age checks) is an argument.

use crate::domain::hj212::{self, CodeMap, Reassembly};
use crate::domain::network::{Network, Station};
use crate::domain::param::{DataFlag, Param};
use crate::domain::reading::{measure, BadValue, Reading, Reported};
use crate::telemetry::RefusalKind;
use chrono::{DateTime, Duration, Utc};
use serde_json::{Map, Value};
use std::fmt;

/// Why something was refused: a metric label and a sentence for logs and the dead-letter file.
#[derive(Debug, Clone, PartialEq)]
pub struct Refusal {
    pub kind: RefusalKind,
    pub reason: String,
    /// The one parameter refused, when the rest of its reading stands.
    pub param: Option<Param>,
}

impl Refusal {
    fn new(kind: RefusalKind, reason: impl Into<String>) -> Refusal {
        Refusal {
            kind,
            reason: reason.into(),
            param: None,
        }
    }

    /// The refusal of one parameter's value; the reading's others stand.
    fn value(kind: RefusalKind, param: Param, reason: impl Into<String>) -> Refusal {
        Refusal {
            param: Some(param),
            ..Refusal::new(kind, reason)
        }
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.reason)
    }
}

/// The payload format a topic carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `wq/<river>/<station>/reading`: JSON, SPEC §4.
    Json,
    /// `wq/<river>/<station>/hj212`: one raw HJ 212 frame, SPEC §5.
    Hj212,
}

/// Resolves `wq/<river>/<station>/reading` or `.../hj212` to its configured station and that
/// station's position in `net.stations`.
pub fn station_for_topic<'n>(
    net: &'n Network,
    topic: &str,
) -> Result<(usize, &'n Station, Format), Refusal> {
    let bad = || {
        Refusal::new(
            RefusalKind::BadTopic,
            format!(
                "topic {topic:?} is not wq/<river>/<station>/reading or wq/<river>/<station>/hj212"
            ),
        )
    };
    let parts: Vec<&str> = topic.split('/').collect();
    let [prefix, river, station, kind] = parts.as_slice() else {
        return Err(bad());
    };
    let format = match (*prefix, *kind) {
        ("wq", "reading") => Format::Json,
        ("wq", "hj212") => Format::Hj212,
        _ => return Err(bad()),
    };
    let Some((position, s)) = net
        .position(station)
        .and_then(|i| Some((i, net.stations.get(i)?)))
    else {
        return Err(Refusal::new(
            RefusalKind::UnknownStation,
            format!("station {station:?} is not configured"),
        ));
    };
    if s.river != *river {
        return Err(Refusal::new(
            RefusalKind::RiverMismatch,
            format!(
                "station {station:?} is on river {:?}, not {river:?}",
                s.river
            ),
        ));
    }
    Ok((position, s, format))
}

/// Limits a payload must respect.
#[derive(Debug, Clone, Copy)]
pub struct PayloadLimits {
    pub max_payload: usize,
    pub max_future_skew: Duration,
    /// Readings stamped longer than this before `now`, or before [`EARLIEST`], are refused
    /// (`ingest.max_age`); `None` accepts any age, for offline files (`assess`).
    pub max_age: Option<Duration>,
}

/// 2000-01-01T00:00:00Z. No live reading is older, whatever `max_age` allows: no station of
/// the network reported before 2000, and a logger whose clock was never set stamps its epoch.
pub const EARLIEST: DateTime<Utc> = DateTime::from_timestamp_nanos(946_684_800_000_000_000);

/// Refuses a reading stamped `ts` (written `shown` in the payload's field `field`) that is too
/// far in the future or, under a `max_age`, too old: both formats check time alike.
fn check_time(
    field: &str,
    shown: &str,
    ts: DateTime<Utc>,
    now: DateTime<Utc>,
    limits: PayloadLimits,
) -> Result<(), Refusal> {
    if ts > now + limits.max_future_skew {
        return Err(Refusal::new(
            RefusalKind::FutureTs,
            format!(
                "{field} {shown} is more than {} s in the future (station clock?)",
                limits.max_future_skew.num_seconds()
            ),
        ));
    }
    let Some(max_age) = limits.max_age else {
        return Ok(());
    };
    if ts < EARLIEST {
        return Err(Refusal::new(
            RefusalKind::TooOld,
            format!(
                "{field} {shown} is before {} (station clock not set?)",
                EARLIEST.format("%Y-%m-%dT%H:%M:%SZ")
            ),
        ));
    }
    if now - ts > max_age {
        return Err(Refusal::new(
            RefusalKind::TooOld,
            format!(
                "{field} {shown} is older than the maximum age of {} (ingest.max_age): the oldest accepted now is {}",
                span(max_age),
                (now - max_age).format("%Y-%m-%dT%H:%M:%SZ")
            ),
        ));
    }
    Ok(())
}

/// A duration as the config writes it, in its largest whole unit: "365d", "36h", "90m", "45s".
fn span(d: Duration) -> String {
    let s = d.num_seconds();
    match s {
        _ if s != 0 && s % 86_400 == 0 => format!("{}d", s / 86_400),
        _ if s != 0 && s % 3600 == 0 => format!("{}h", s / 3600),
        _ if s != 0 && s % 60 == 0 => format!("{}m", s / 60),
        _ => format!("{s}s"),
    }
}

/// A refused reading of an array payload: its index and its own JSON text, so the dead-letter
/// record holds just that reading.
#[derive(Debug, Clone, PartialEq)]
pub struct Element {
    pub index: usize,
    pub json: Vec<u8>,
}

/// What one payload yields: the good readings, and each refusal with the array element it
/// concerns (`None` for a payload that is one reading, or for the whole payload); a refusal
/// with a `param` refused that value alone.
#[derive(Debug, Default, PartialEq)]
pub struct Decoded {
    pub readings: Vec<Reading>,
    pub refused: Vec<(Option<Element>, Refusal)>,
}

/// Decodes a JSON payload (one reading object, or an array of them) for `station`.
pub fn decode_json(
    station: &Station,
    payload: &[u8],
    now: DateTime<Utc>,
    limits: PayloadLimits,
) -> Decoded {
    let mut out = Decoded::default();
    if payload.len() > limits.max_payload {
        out.refused.push((
            None,
            Refusal::new(
                RefusalKind::TooLarge,
                format!(
                    "payload of {} bytes exceeds the limit of {} bytes",
                    payload.len(),
                    limits.max_payload
                ),
            ),
        ));
        return out;
    }
    if let Some(r) = plain_reading(station, payload, now, limits) {
        out.readings.push(r);
        return out;
    }
    decode_tree(station, payload, now, limits, out)
}

/// Decodes any payload through a JSON tree: batches, and every refusal with its reason.
fn decode_tree(
    station: &Station,
    payload: &[u8],
    now: DateTime<Utc>,
    limits: PayloadLimits,
    mut out: Decoded,
) -> Decoded {
    let tree: Value = match serde_json::from_slice(payload) {
        Ok(v) => v,
        Err(e) => {
            out.refused.push((
                None,
                Refusal::new(RefusalKind::NotJson, format!("not JSON: {e}")),
            ));
            return out;
        }
    };
    match tree {
        Value::Array(items) if items.is_empty() => {
            out.refused.push((
                None,
                Refusal::new(RefusalKind::NoValues, "empty array: no readings"),
            ));
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                let (reading, refused) = reading(station, item, now, limits);
                out.readings.extend(reading);
                if !refused.is_empty() {
                    let json = serde_json::to_vec(item).unwrap_or_default();
                    for e in refused {
                        let element = Element {
                            index: i,
                            json: json.clone(),
                        };
                        out.refused.push((Some(element), e));
                    }
                }
            }
        }
        single => {
            let (reading, refused) = reading(station, &single, now, limits);
            out.readings.extend(reading);
            out.refused.extend(refused.into_iter().map(|e| (None, e)));
        }
    }
    out
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn wrong_type(what: &str, expected: &str, got: &Value) -> Refusal {
    Refusal::new(
        RefusalKind::WrongType,
        format!("{what} must be {expected}, got {}", type_name(got)),
    )
}

/// One reading object: the reading (with at least one value) and the refusals — of the
/// whole reading, or of single values beside which the others stand.
fn reading(
    station: &Station,
    item: &Value,
    now: DateTime<Utc>,
    limits: PayloadLimits,
) -> (Option<Reading>, Vec<Refusal>) {
    let mut refused = Vec::new();
    match reading_parts(station, item, now, limits, &mut refused) {
        Ok(r) if r.values.is_empty() => {
            // Every value was refused or null: the refusals say why; with none, say so.
            if refused.is_empty() {
                refused.push(Refusal::new(
                    RefusalKind::NoValues,
                    "\"values\" holds no measured parameter (every value is null)",
                ));
            }
            (None, refused)
        }
        Ok(r) => (Some(r), refused),
        Err(e) => (None, vec![e]),
    }
}

fn reading_parts(
    station: &Station,
    item: &Value,
    now: DateTime<Utc>,
    limits: PayloadLimits,
    refused: &mut Vec<Refusal>,
) -> Result<Reading, Refusal> {
    let Value::Object(obj) = item else {
        return Err(wrong_type("a reading", "a JSON object", item));
    };
    if let Some(key) = obj
        .keys()
        .find(|k| !matches!(k.as_str(), "ts" | "values" | "flags" | "seq"))
    {
        return Err(Refusal::new(
            RefusalKind::WrongType,
            format!("unknown key {key:?} (a reading has ts, values, flags, seq)"),
        ));
    }
    let ts = timestamp(obj, now, limits)?;
    let values = match obj.get("values") {
        None => return Err(Refusal::new(RefusalKind::NoValues, "missing \"values\"")),
        Some(Value::Object(v)) if v.is_empty() => {
            return Err(Refusal::new(
                RefusalKind::NoValues,
                "\"values\" holds no parameter",
            ))
        }
        Some(Value::Object(v)) => v,
        Some(other) => return Err(wrong_type("\"values\"", "an object", other)),
    };
    let seq = match obj.get("seq") {
        None => None,
        Some(v) => Some(
            v.as_u64()
                .ok_or_else(|| wrong_type("\"seq\"", "a non-negative integer", v))?,
        ),
    };
    let flags = match obj.get("flags") {
        None => None,
        Some(Value::Object(flags)) => Some(flags),
        Some(other) => return Err(wrong_type("\"flags\"", "an object", other)),
    };
    let mut measured = Vec::with_capacity(values.len());
    for (key, v) in values {
        let Some(param) = Param::from_key(key) else {
            refused.push(Refusal::new(
                RefusalKind::UnknownParam,
                format!("unknown parameter key {key:?} (its value is not stored)"),
            ));
            continue;
        };
        let reported = match v {
            // Not measured (SPEC §4): nothing to store, nothing to refuse.
            Value::Null => continue,
            Value::Number(n) => n.as_f64().map(Reported::Number),
            Value::String(text) => Reported::parse(text, false),
            _ => None,
        };
        let Some(reported) = reported else {
            refused.push(Refusal::value(
                RefusalKind::WrongType,
                param,
                format!(
                    "values.{key} must be a number, null, or a result below the detection limit \
                     (\"0.025L\", \"<0.025\", \"ND\"), got {}",
                    shown(v)
                ),
            ));
            continue;
        };
        match measure(station, param, reported, None) {
            Ok(m) => measured.push(m),
            Err(BadValue(why)) => {
                refused.push(Refusal::value(
                    RefusalKind::BadValue,
                    param,
                    format!("values.{why}"),
                ));
            }
        }
    }
    for (key, f) in flags.into_iter().flatten() {
        let Some(i) = measured.iter().position(|m| m.param.key() == key) else {
            // A flag beside a null or refused value says nothing more; beside no value at
            // all, the integrator should know.
            if !values.contains_key(key) {
                refused.push(Refusal::new(
                    RefusalKind::BadFlag,
                    format!("flag for {key:?}, which has no value"),
                ));
            }
            continue;
        };
        let flag = match f.as_str() {
            Some(letter) => DataFlag::parse(letter).ok_or_else(|| {
                format!("flags.{key}: {letter:?} is not an HJ 212 data flag (N F M S D C T B)")
            }),
            None => Err(format!(
                "flags.{key} must be a string, got {}",
                type_name(f)
            )),
        };
        match flag {
            Ok(flag) => measured[i].flag = Some(flag),
            // Without its flag a value cannot be trusted: that value is refused.
            Err(why) => {
                let m = measured.remove(i);
                refused.push(Refusal::value(RefusalKind::BadFlag, m.param, why));
            }
        }
    }
    measured.sort_by_key(|m| m.param);
    Ok(Reading {
        station: station.id.clone(),
        ts,
        values: measured,
        seq,
    })
}

/// A JSON value as a refusal quotes it: short strings in full, other kinds by name.
fn shown(v: &Value) -> String {
    match v {
        Value::String(s) if s.chars().count() <= 40 => format!("{s:?}"),
        other => type_name(other).to_string(),
    }
}

fn timestamp(
    obj: &Map<String, Value>,
    now: DateTime<Utc>,
    limits: PayloadLimits,
) -> Result<DateTime<Utc>, Refusal> {
    let raw = match obj.get("ts") {
        None => return Err(Refusal::new(RefusalKind::MissingTs, "missing \"ts\"")),
        Some(Value::String(s)) => s,
        Some(other) => return Err(wrong_type("\"ts\"", "an RFC 3339 string", other)),
    };
    parse_ts(raw, now, limits)
}

fn parse_ts(
    raw: &str,
    now: DateTime<Utc>,
    limits: PayloadLimits,
) -> Result<DateTime<Utc>, Refusal> {
    let ts = DateTime::parse_from_rfc3339(raw)
        .map_err(|e| {
            Refusal::new(
                RefusalKind::BadTs,
                format!("ts {raw:?} is not RFC 3339 with an offset, like 2026-11-26T10:00:00+08:00 ({e})"),
            )
        })?
        .with_timezone(&Utc);
    check_time("ts", raw, ts, now, limits)?;
    Ok(ts)
}

/// The common payload — one reading, text without escapes — read straight into borrowed
/// parts instead of a tree of owned strings and maps (most of the decoding cost). `None` for
/// anything else, valid or not: the tree decoder then reads it and, where it is wrong, says
/// exactly why. So this path only ever accepts what the tree decoder accepts, with the same
/// result.
fn plain_reading(
    station: &Station,
    payload: &[u8],
    now: DateTime<Utc>,
    limits: PayloadLimits,
) -> Option<Reading> {
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Plain<'a> {
        #[serde(borrow)]
        ts: &'a str,
        #[serde(borrow)]
        values: Pairs<'a, f64>,
        // Absent is fine; `null` is not (the tree decoder refuses it), hence no `Option`.
        #[serde(borrow, default)]
        flags: Pairs<'a, &'a str>,
        #[serde(default)]
        seq: Seq,
    }
    /// `seq` when present: a non-negative integer, never `null`.
    #[derive(Default)]
    struct Seq(Option<u64>);
    impl<'de> serde::Deserialize<'de> for Seq {
        fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            u64::deserialize(d).map(|v| Seq(Some(v)))
        }
    }
    // An object only: serde would also read a struct from an array, which is a batch here.
    if payload.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return None;
    }
    let plain: Plain = serde_json::from_slice(payload).ok()?;
    let ts = parse_ts(plain.ts, now, limits).ok()?;
    let mut values = Vec::with_capacity(plain.values.0.len());
    for &(key, value) in &plain.values.0 {
        let param = Param::from_key(key)?;
        values.push(measure(station, param, Reported::Number(value), None).ok()?);
    }
    values.sort_by_key(|m| m.param);
    // A repeated key (the tree keeps the last) or no value at all: the tree decides.
    if values.is_empty() || values.windows(2).any(|w| w[0].param == w[1].param) {
        return None;
    }
    let flags = plain.flags.0;
    for (i, &(key, letter)) in flags.iter().enumerate() {
        if flags[..i].iter().any(|(k, _)| *k == key) {
            return None;
        }
        let slot = values.iter_mut().find(|m| m.param.key() == key)?;
        slot.flag = Some(DataFlag::parse(letter)?);
    }
    Some(Reading {
        station: station.id.clone(),
        ts,
        values,
        seq: plain.seq.0,
    })
}

/// A JSON object's members in order, with borrowed keys: `values` and `flags` of a plain
/// reading.
struct Pairs<'a, T>(Vec<(&'a str, T)>);

impl<T> Default for Pairs<'_, T> {
    fn default() -> Self {
        Pairs(Vec::new())
    }
}

impl<'de: 'a, 'a, T: serde::Deserialize<'de>> serde::Deserialize<'de> for Pairs<'a, T> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit<'a, T>(std::marker::PhantomData<(&'a (), T)>);
        impl<'de: 'a, 'a, T: serde::Deserialize<'de>> serde::de::Visitor<'de> for Visit<'a, T> {
            type Value = Pairs<'a, T>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<M: serde::de::MapAccess<'de>>(
                self,
                mut m: M,
            ) -> Result<Self::Value, M::Error> {
                let mut out = Vec::with_capacity(m.size_hint().unwrap_or(8));
                while let Some(entry) = m.next_entry::<&'de str, T>()? {
                    out.push(entry);
                }
                Ok(Pairs(out))
            }
        }
        d.deserialize_map(Visit(std::marker::PhantomData))
    }
}

/// What one HJ 212 message yields: its readings or refusal, the acknowledgement frame to
/// publish once the readings are in custody (when the frame asked for one), and the pollutant
/// codes the station's map does not know.
#[derive(Debug, Default, PartialEq)]
pub struct Hj212Outcome {
    pub decoded: Decoded,
    pub ack: Option<String>,
    pub unknown_codes: Vec<String>,
    /// True while a split message waits for its other packets.
    pub partial: bool,
}

/// Decodes one HJ 212 frame for `station`. Only data uploads (CN 2011 real-time `-Rtd`, 2051
/// minute and 2061 hourly `-Avg`) become readings; the frame's MN must be the station's.
pub fn decode_hj212(
    station: &Station,
    payload: &[u8],
    now: DateTime<Utc>,
    limits: PayloadLimits,
    map: &CodeMap,
    reassembly: &mut Reassembly,
) -> Hj212Outcome {
    let mut out = Hj212Outcome::default();
    let refuse = |kind, reason: String| {
        let mut o = Hj212Outcome::default();
        o.decoded.refused.push((None, Refusal::new(kind, reason)));
        o
    };
    if payload.len() > limits.max_payload {
        return refuse(
            RefusalKind::TooLarge,
            format!(
                "payload of {} bytes exceeds the limit of {} bytes",
                payload.len(),
                limits.max_payload
            ),
        );
    }
    let frame = match hj212::parse(payload) {
        Ok(f) => f,
        Err(e) => return refuse(RefusalKind::BadFrame, format!("HJ 212 frame refused: {e}")),
    };
    match &station.hj212_mn {
        None => {
            return refuse(
                RefusalKind::MnMismatch,
                format!("station {:?} has no hj212_mn configured", station.id),
            )
        }
        Some(mn) if *mn != frame.mn => {
            return refuse(
                RefusalKind::MnMismatch,
                format!(
                    "frame MN {:?} is not station {:?}'s MN {mn:?}",
                    frame.mn, station.id
                ),
            )
        }
        Some(_) => {}
    }
    if !matches!(frame.cn.as_str(), "2011" | "2051" | "2061") {
        return refuse(
            RefusalKind::NotData,
            format!("CN={} is not a data upload (2011, 2051 or 2061)", frame.cn),
        );
    }
    // Packets of a split message (PNUM/PNO, with or without Flag bit 1) wait here for the
    // others; the last one yields the whole message.
    let frame = match reassembly.push(frame, now) {
        Ok(Some(frame)) => frame,
        Ok(None) => {
            out.partial = true;
            return out;
        }
        Err(e) => return refuse(RefusalKind::BadFrame, format!("HJ 212 frame refused: {e}")),
    };
    // From here the frame is this station's whole data message, so a refusal is about its
    // content: it is dead-lettered, and acknowledged like a stored one when the frame asks.
    // Sending it again cannot make it valid, and a logger keeps what was not acknowledged
    // and sends it on every reconnect, to be refused again each time.
    let ack = frame.needs_ack().then(|| frame.data_ack().encode());
    let refuse = |kind, reason: String| Hj212Outcome {
        ack: ack.clone(),
        ..refuse(kind, reason)
    };
    let data = match hj212::data(&frame, map) {
        Ok(d) => d,
        Err(e) => return refuse(RefusalKind::BadFrame, format!("HJ 212 frame refused: {e}")),
    };
    out.unknown_codes = data.unknown.keys().cloned().collect();
    let Some(local) = data.data_time else {
        return Hj212Outcome {
            unknown_codes: out.unknown_codes,
            ..refuse(
                RefusalKind::MissingTs,
                "the frame's CP has no DataTime".into(),
            )
        };
    };
    let ts = local.with_timezone(&Utc);
    if let Err(r) = check_time("DataTime", &local.to_rfc3339(), ts, now, limits) {
        return refuse(r.kind, r.reason);
    }
    out.ack = ack.clone();
    // A value that cannot be read (an empty `-Rtd=`) or is implausible refuses that value
    // alone; the frame's others are stored, judged and acknowledged (SPEC §4, §5a).
    let mut values = Vec::with_capacity(data.values.len());
    for (field, why) in &data.bad {
        let param = field
            .split('-')
            .next()
            .and_then(|code| map.get(code))
            .map(|t| t.param);
        let kind = RefusalKind::BadValue;
        out.decoded.refused.push((
            None,
            match param {
                Some(p) => Refusal::value(kind, p, why.clone()),
                None => Refusal::new(kind, why.clone()),
            },
        ));
    }
    for (&param, &(value, flag)) in &data.values {
        match measure(station, param, Reported::Number(value), flag) {
            Ok(m) => values.push(m),
            Err(BadValue(why)) => out.decoded.refused.push((
                None,
                Refusal::value(RefusalKind::BadValue, param, format!("values.{why}")),
            )),
        }
    }
    if values.is_empty() {
        if data.values.is_empty() && data.bad.is_empty() {
            return refuse(
                RefusalKind::NoValues,
                "the frame holds no known parameter".into(),
            );
        }
        // Every value was refused: each is dead-lettered, and the frame acknowledged.
        return out;
    }
    out.decoded.readings.push(Reading {
        station: station.id.clone(),
        ts,
        values,
        seq: None,
    });
    out
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::domain::network::fixtures::network;
    use chrono::TimeZone;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 26, 2, 0, 0).unwrap()
    }

    /// A configured station with the national detection limits.
    fn st(id: &str) -> Station {
        crate::domain::network::fixtures::station(id, "qingyuan", 2, true)
    }

    fn limits() -> PayloadLimits {
        PayloadLimits {
            max_payload: 1024,
            max_future_skew: Duration::minutes(10),
            max_age: Some(Duration::days(365)),
        }
    }

    fn decode(payload: &str) -> Decoded {
        decode_json(&st("shijiao"), payload.as_bytes(), now(), limits())
    }

    #[test]
    fn spec_example_decodes() {
        let d = decode(
            r#"{"ts": "2026-11-26T10:00:00+08:00",
                "values": {"temp": 22.5, "ph": 7.42, "do": 6.8, "cond": 310.0, "turb": 12.0,
                           "codmn": 2.1, "nh3n": 0.32, "tp": 0.08, "tn": 1.25},
                "flags": {"nh3n": "M"}, "seq": 1234}"#,
        );
        assert!(d.refused.is_empty(), "{:?}", d.refused);
        let r = &d.readings[0];
        assert_eq!(r.ts, now());
        assert_eq!(r.values.len(), 9);
        assert_eq!(r.seq, Some(1234));
        let nh3n = r.values.iter().find(|m| m.param == Param::Nh3n).unwrap();
        assert_eq!(nh3n.flag, Some(DataFlag::M));
        assert!(!nh3n.is_judgeable());
    }

    #[test]
    fn refusals_table() {
        let ok_ts = r#""ts":"2026-11-26T10:00:00+08:00""#;
        let table: Vec<(String, RefusalKind, &str)> = vec![
            ("garbage".into(), RefusalKind::NotJson, "not JSON"),
            ("[]".into(), RefusalKind::NoValues, "empty array"),
            ("42".into(), RefusalKind::WrongType, "must be a JSON object"),
            (
                r#"{"values":{"ph":7}}"#.into(),
                RefusalKind::MissingTs,
                "missing \"ts\"",
            ),
            (
                r#"{"ts":12,"values":{"ph":7}}"#.into(),
                RefusalKind::WrongType,
                "\"ts\" must be",
            ),
            (
                r#"{"ts":"2026-11-26 10:00","values":{"ph":7}}"#.into(),
                RefusalKind::BadTs,
                "RFC 3339",
            ),
            (
                r#"{"ts":"2026-11-26T10:00:00","values":{"ph":7}}"#.into(),
                RefusalKind::BadTs,
                "with an offset",
            ),
            (
                r#"{"ts":"2026-11-26T11:00:00+08:00","values":{"ph":7}}"#.into(),
                RefusalKind::FutureTs,
                "in the future",
            ),
            (
                format!("{{{ok_ts}}}"),
                RefusalKind::NoValues,
                "missing \"values\"",
            ),
            (
                format!("{{{ok_ts},\"values\":{{}}}}"),
                RefusalKind::NoValues,
                "no parameter",
            ),
            (
                format!("{{{ok_ts},\"values\":{{\"nitrate\":1}}}}"),
                RefusalKind::UnknownParam,
                "\"nitrate\"",
            ),
            (
                format!("{{{ok_ts},\"values\":{{\"ph\":\"7\"}}}}"),
                RefusalKind::WrongType,
                "values.ph must be a number",
            ),
            // `null` is "not measured": a reading of nothing but nulls holds nothing to store.
            (
                format!("{{{ok_ts},\"values\":{{\"ph\":null}}}}"),
                RefusalKind::NoValues,
                "no measured parameter",
            ),
            (
                format!("{{{ok_ts},\"values\":{{\"ph\":15}}}}"),
                RefusalKind::BadValue,
                "outside 0–14",
            ),
            (
                format!("{{{ok_ts},\"values\":{{\"nh3n\":-0.1}}}}"),
                RefusalKind::BadValue,
                "negative",
            ),
            (
                format!("{{{ok_ts},\"values\":{{\"nh3n\":1e999}}}}"),
                RefusalKind::NotJson,
                "not JSON",
            ),
            (
                format!("{{{ok_ts},\"values\":{{\"nh3n\":1}},\"flags\":{{\"nh3n\":\"X\"}}}}"),
                RefusalKind::BadFlag,
                "not an HJ 212 data flag",
            ),
            (
                format!("{{{ok_ts},\"values\":{{\"nh3n\":1}},\"seq\":-1}}"),
                RefusalKind::WrongType,
                "\"seq\"",
            ),
            (
                format!("{{{ok_ts},\"values\":{{\"nh3n\":1}},\"extra\":1}}"),
                RefusalKind::WrongType,
                "unknown key \"extra\"",
            ),
        ];
        for (payload, kind, needle) in table {
            let d = decode(&payload);
            assert!(d.readings.is_empty(), "{payload}");
            let [(_, refusal)] = d.refused.as_slice() else {
                panic!("{payload}: {:?}", d.refused);
            };
            assert_eq!(refusal.kind, kind, "{payload}: {refusal}");
            assert!(refusal.reason.contains(needle), "{payload}: {refusal}");
        }
    }

    #[test]
    fn a_bad_value_refuses_that_parameter_alone() {
        type Row<'a> = (&'a str, &'a [Param], &'a [(RefusalKind, &'a str)]);
        let table: &[Row] = &[
            // `null` is not measured: skipped, nothing refused.
            (
                r#""ph":7.2,"do":6.5,"nh3n":null"#,
                &[Param::Ph, Param::Do],
                &[],
            ),
            (
                r#""ph":15,"do":6.5"#,
                &[Param::Do],
                &[(RefusalKind::BadValue, "outside 0–14")],
            ),
            (
                r#""nh3n":-0.1,"do":6.5"#,
                &[Param::Do],
                &[(RefusalKind::BadValue, "negative")],
            ),
            (
                r#""nh3n":"abc","do":6.5"#,
                &[Param::Do],
                &[(RefusalKind::WrongType, "values.nh3n must be a number")],
            ),
            (
                r#""nh3n":"","do":6.5"#,
                &[Param::Do],
                &[(RefusalKind::WrongType, "values.nh3n must be a number")],
            ),
            (
                r#""nh3n":true,"do":6.5"#,
                &[Param::Do],
                &[(RefusalKind::WrongType, "got a boolean")],
            ),
            (
                r#""nitrate":1,"do":6.5"#,
                &[Param::Do],
                &[(RefusalKind::UnknownParam, "\"nitrate\"")],
            ),
            (
                r#""nh3n":1},"flags":{"tp":"N""#,
                &[Param::Nh3n],
                &[(RefusalKind::BadFlag, "has no value")],
            ),
            (
                r#""nh3n":1,"do":6.5},"flags":{"nh3n":"X""#,
                &[Param::Do],
                &[(RefusalKind::BadFlag, "not an HJ 212 data flag")],
            ),
            // DO has no detection limit, so "ND" cannot be given a value.
            (
                r#""do":"ND","ph":7.0"#,
                &[Param::Ph],
                &[(RefusalKind::BadValue, "no detection_limit")],
            ),
        ];
        for (values, stored, refusals) in table {
            let payload = format!(r#"{{"ts":"2026-11-26T10:00:00+08:00","values":{{{values}}}}}"#);
            let d = decode(&payload);
            let [r] = d.readings.as_slice() else {
                panic!("{payload}: {:?}", d.refused);
            };
            let got: Vec<Param> = r.values.iter().map(|m| m.param).collect();
            assert_eq!(&got, stored, "{payload}");
            assert_eq!(
                d.refused.len(),
                refusals.len(),
                "{payload}: {:?}",
                d.refused
            );
            for ((_, refusal), (kind, needle)) in d.refused.iter().zip(refusals.iter()) {
                assert_eq!(refusal.kind, *kind, "{payload}: {refusal}");
                assert!(refusal.reason.contains(needle), "{payload}: {refusal}");
            }
        }
    }

    #[test]
    fn results_below_the_detection_limit() {
        // (values, param, stored value, below detection)
        let table: &[(&str, Param, f64, bool)] = &[
            (r#""nh3n":"<0.025""#, Param::Nh3n, 0.025, true),
            (r#""nh3n":"0.02L""#, Param::Nh3n, 0.02, true),
            (r#""tp":"ND""#, Param::Tp, 0.01, true),
            (r#""codmn":"未检出""#, Param::Codmn, 0.5, true),
            // A plain number strictly below the limit is censored too; at the limit it is not.
            (r#""nh3n":0.01"#, Param::Nh3n, 0.025, true),
            (r#""nh3n":0.025"#, Param::Nh3n, 0.025, false),
            (r#""tp":0.005"#, Param::Tp, 0.01, true),
            (r#""ph":0.005"#, Param::Ph, 0.005, false),
        ];
        for &(values, param, value, bdl) in table {
            let payload = format!(r#"{{"ts":"2026-11-26T10:00:00+08:00","values":{{{values}}}}}"#);
            let d = decode(&payload);
            assert!(d.refused.is_empty(), "{payload}: {:?}", d.refused);
            let m = d.readings[0].values[0];
            assert_eq!(
                (m.param, m.value, m.below_detection),
                (param, value, bdl),
                "{payload}"
            );
        }
    }

    #[test]
    fn temperature_may_be_negative() {
        let d = decode(r#"{"ts":"2026-11-26T10:00:00+08:00","values":{"temp":-0.5}}"#);
        assert_eq!(d.readings.len(), 1);
    }

    #[test]
    fn one_bad_reading_in_an_array_keeps_the_others() {
        let d = decode(
            r#"[{"ts":"2026-11-26T08:00:00+08:00","values":{"nh3n":0.3}},
                {"ts":"2026-11-26T09:00:00+08:00","values":{"nh3n":"high"}},
                {"ts":"2026-11-26T10:00:00+08:00","values":{"nh3n":0.4}}]"#,
        );
        assert_eq!(d.readings.len(), 2);
        assert_eq!(d.refused.len(), 1);
        let element = d.refused[0].0.as_ref().unwrap();
        assert_eq!(element.index, 1);
        assert_eq!(
            element.json,
            br#"{"ts":"2026-11-26T09:00:00+08:00","values":{"nh3n":"high"}}"#
        );
    }

    #[test]
    fn oversize_payload_is_refused_before_parsing() {
        let big = format!("[{}]", "1,".repeat(600));
        let d = decode(&big);
        assert_eq!(d.refused[0].1.kind, RefusalKind::TooLarge);
    }

    fn hj212_station(mn: Option<&str>) -> Station {
        let mut s = crate::domain::network::fixtures::station("shijiao", "qingyuan", 2, true);
        s.hj212_mn = mn.map(str::to_string);
        s
    }

    fn hj212(station: &Station, frame: &str) -> Hj212Outcome {
        let now = Utc.with_ymd_and_hms(2025, 6, 1, 3, 0, 0).unwrap();
        decode_hj212(
            station,
            frame.as_bytes(),
            now,
            limits_hj212(),
            &CodeMap::default(),
            &mut Reassembly::default(),
        )
    }

    fn limits_hj212() -> PayloadLimits {
        PayloadLimits {
            max_payload: 4096,
            max_future_skew: Duration::minutes(10),
            max_age: Some(Duration::days(365)),
        }
    }

    #[test]
    fn hj212_frame_becomes_a_reading_and_an_ack() {
        use crate::domain::hj212::tests::{SYNTHETIC_ACK, SYNTHETIC_RTD};
        let s = hj212_station(Some("QY-BJ-SJ-0001"));
        let out = hj212(&s, SYNTHETIC_RTD);
        assert!(out.decoded.refused.is_empty(), "{:?}", out.decoded.refused);
        let r = &out.decoded.readings[0];
        assert_eq!(r.ts, Utc.with_ymd_and_hms(2025, 6, 1, 2, 0, 0).unwrap());
        assert_eq!(r.values.len(), 9);
        let nh3n = r.values.iter().find(|m| m.param == Param::Nh3n).unwrap();
        assert_eq!((nh3n.value, nh3n.flag), (0.182, Some(DataFlag::N)));
        assert_eq!(out.ack.as_deref(), Some(SYNTHETIC_ACK));
    }

    #[test]
    fn hj212_refusals() {
        use crate::domain::hj212::tests::SYNTHETIC_RTD;
        let bad_crc = SYNTHETIC_RTD.replace("8641", "8642");
        let cmd = crate::domain::hj212::Frame {
            qn: None,
            st: "21".into(),
            cn: "1062".into(),
            pw: None,
            mn: "QY-BJ-SJ-0001".into(),
            flag: Some(5),
            pnum: None,
            pno: None,
            cp: "RtdInterval=30".into(),
        }
        .encode();
        let future = SYNTHETIC_RTD.replace("DataTime=20250601100000", "DataTime=20250601120000");
        let future =
            crate::domain::hj212::parse(future.trim_end().replace("8641", "0000").as_bytes())
                .err()
                .map(|_| {
                    let mut f = crate::domain::hj212::parse(SYNTHETIC_RTD.as_bytes()).unwrap();
                    f.cp =
                        f.cp.replace("DataTime=20250601100000", "DataTime=20250601120000");
                    f.encode()
                })
                .unwrap();
        // (MN, frame, refusal, reason, acknowledged): a frame that is not this station's data
        // message gets no answer; one whose content is refused is dead-lettered and answered.
        let table: Vec<(Option<&str>, String, RefusalKind, &str, bool)> = vec![
            (
                Some("OTHER-MN"),
                SYNTHETIC_RTD.into(),
                RefusalKind::MnMismatch,
                "is not station \"shijiao\"'s MN",
                false,
            ),
            (
                None,
                SYNTHETIC_RTD.into(),
                RefusalKind::MnMismatch,
                "no hj212_mn configured",
                false,
            ),
            (
                Some("QY-BJ-SJ-0001"),
                bad_crc,
                RefusalKind::BadFrame,
                "crc mismatch: frame says 8642, computed 8641",
                false,
            ),
            (
                Some("QY-BJ-SJ-0001"),
                cmd,
                RefusalKind::NotData,
                "CN=1062 is not a data upload",
                false,
            ),
            (
                Some("QY-BJ-SJ-0001"),
                future,
                RefusalKind::FutureTs,
                "in the future",
                true,
            ),
        ];
        for (mn, frame, kind, needle, acknowledged) in table {
            let out = hj212(&hj212_station(mn), &frame);
            assert!(out.decoded.readings.is_empty(), "{frame}");
            assert_eq!(out.ack.is_some(), acknowledged, "{frame}");
            let [(None, r)] = out.decoded.refused.as_slice() else {
                panic!("{frame}: {:?}", out.decoded.refused)
            };
            assert_eq!(r.kind, kind, "{r}");
            assert!(r.reason.contains(needle), "{r}");
        }
    }

    #[test]
    fn readings_older_than_the_maximum_age_are_refused() {
        // now() is 2026-11-26T02:00:00Z; (ts, max_age, refused with these words)
        type Case<'a> = (&'a str, Option<Duration>, Option<&'a [&'a str]>);
        let year = Some(Duration::days(365));
        let table: &[Case] = &[
            ("2026-11-26T10:00:00+08:00", year, None),
            ("2025-11-26T02:00:00Z", year, None),
            (
                "2025-11-26T01:59:59Z",
                year,
                Some(&[
                    "ts 2025-11-26T01:59:59Z is older",
                    "365d",
                    "2025-11-26T02:00:00Z",
                ]),
            ),
            (
                "2026-11-26T09:00:00+08:00",
                Some(Duration::minutes(30)),
                Some(&[
                    "ts 2026-11-26T09:00:00+08:00",
                    "30m",
                    "2026-11-26T01:30:00Z",
                ]),
            ),
            (
                "1999-12-31T23:59:59Z",
                Some(Duration::days(36_500)),
                Some(&["ts 1999-12-31T23:59:59Z is before 2000-01-01T00:00:00Z"]),
            ),
            ("2000-01-01T00:00:00Z", Some(Duration::days(36_500)), None),
            (
                "1970-01-01T00:00:00Z",
                year,
                Some(&["before 2000-01-01T00:00:00Z"]),
            ),
            // Offline files (assess): any age.
            ("1970-01-01T00:00:00Z", None, None),
        ];
        for &(ts, max_age, refused) in table {
            let payload = format!(r#"{{"ts":"{ts}","values":{{"ph":7.1}}}}"#);
            let limits = PayloadLimits {
                max_age,
                ..limits()
            };
            let d = decode_json(&st("shijiao"), payload.as_bytes(), now(), limits);
            match refused {
                None => assert!(d.refused.is_empty() && d.readings.len() == 1, "{ts}: {d:?}"),
                Some(words) => {
                    assert!(d.readings.is_empty(), "{ts}");
                    let [(None, r)] = d.refused.as_slice() else {
                        panic!("{ts}: {:?}", d.refused)
                    };
                    assert_eq!(r.kind, RefusalKind::TooOld, "{ts}: {r}");
                    for w in words {
                        assert!(r.reason.contains(w), "{ts}: {w:?} not in {r}");
                    }
                }
            }
        }
    }

    #[test]
    fn an_old_reading_in_an_array_is_refused_alone() {
        let d = decode(
            r#"[{"ts":"2024-11-26T10:00:00+08:00","values":{"nh3n":0.3}},
                {"ts":"2026-11-26T10:00:00+08:00","values":{"nh3n":0.4}}]"#,
        );
        assert_eq!(d.readings.len(), 1, "{d:?}");
        assert_eq!(d.readings[0].ts, now());
        let [(Some(element), r)] = d.refused.as_slice() else {
            panic!("{:?}", d.refused)
        };
        assert_eq!((element.index, r.kind), (0, RefusalKind::TooOld));
        assert!(
            r.reason.contains("ts 2024-11-26T10:00:00+08:00 is older"),
            "{r}"
        );
    }

    /// A message split the old way (PNO/PNUM, no QN, no Flag), shaped like a public socket
    /// client's pair, with plausible values and a recent DataTime.
    pub(crate) fn old_style_split() -> [String; 2] {
        use crate::domain::hj212::tests::build_bytes;
        let segments = [
            "ST=21;CN=2011;PW=123456;MN=DM000001;PNO=1;PNUM=2;CP=&&DataTime=20250601105200;w01001-Rtd=7.98,w01001-Flag=N;w01006-Rtd=21.130,w01006-Flag=N;w01010-Rtd=21.97,w01010-Flag=N;w01014-Rtd=38.450,w01014-Flag=N;w21003-Rtd=0.427,w21003-Flag=N;w21011-Rtd=0.097,w21011-Flag=N&&",
            "ST=21;CN=2011;PW=123456;MN=DM000001;PNO=2;PNUM=2;CP=&&DataTime=20250601105200;w01019-Rtd=3.579,w01019-Flag=N;w01003-Rtd=48.624,w01003-Flag=N&&",
        ];
        segments.map(|s| String::from_utf8(build_bytes(s.as_bytes())).unwrap())
    }

    #[test]
    fn old_style_split_packets_become_one_reading() {
        let s = hj212_station(Some("DM000001"));
        let now = Utc.with_ymd_and_hms(2025, 6, 1, 3, 0, 0).unwrap();
        let map = CodeMap::default();
        let mut reassembly = Reassembly::default();
        let mut push = |frame: &str, now| {
            decode_hj212(
                &s,
                frame.as_bytes(),
                now,
                limits_hj212(),
                &map,
                &mut reassembly,
            )
        };
        let [first, second] = old_style_split();
        // The first packet alone: nothing yet, nothing refused.
        let out = push(&first, now);
        assert!(
            out.partial && out.decoded == Decoded::default() && out.ack.is_none(),
            "{out:?}"
        );
        let out = push(&second, now + Duration::seconds(5));
        assert!(!out.partial && out.decoded.refused.is_empty(), "{out:?}");
        let [r] = out.decoded.readings.as_slice() else {
            panic!("one reading: {out:?}")
        };
        let params: Vec<Param> = r.values.iter().map(|m| m.param).collect();
        use Param::*;
        assert_eq!(params, [Temp, Ph, Cond, Turb, Codmn, Nh3n, Tp]);
        assert_eq!(r.ts, Utc.with_ymd_and_hms(2025, 6, 1, 2, 52, 0).unwrap());
        assert_eq!(out.unknown_codes, ["w01006"]);
        // No Flag: the logger asked for no answer.
        assert_eq!(out.ack, None);
        // The timeout still drops an incomplete message: a packet after it starts anew.
        assert!(push(&first, now).partial);
        assert_eq!(
            reassembly.expire(now + Duration::minutes(6), Duration::minutes(5)),
            [(
                "DM000001".to_string(),
                "DataTime=20250601105200".to_string()
            )]
        );
        let out = decode_hj212(
            &s,
            second.as_bytes(),
            now + Duration::minutes(6),
            limits_hj212(),
            &map,
            &mut reassembly,
        );
        assert!(out.partial && out.decoded.readings.is_empty());
    }

    #[test]
    fn quirky_frames_become_readings() {
        use crate::domain::hj212::tests::build_bytes;
        let s = hj212_station(Some("QY-BJ-SJ-0001"));
        let segment = |data_time: &str, status: &[u8]| {
            let mut seg = format!("QN=20250601100000000;ST=21;CN=2011;PW=123456;MN=QY-BJ-SJ-0001;Flag=5;CP=&&DataTime={data_time};w01001-Rtd=7.32,w01001-Flag=N;w21003-Rtd=0.182,w21003-Flag=N;i12001-Info=").into_bytes();
            seg.extend_from_slice(status);
            seg.extend_from_slice(b"&&");
            seg
        };
        // (what, frame)
        let table = [
            (
                "17-digit DataTime",
                build_bytes(&segment("20250601100000123", b"0")),
            ),
            (
                "UTF-8 status",
                build_bytes(&segment("20250601100000", "正常".as_bytes())),
            ),
            (
                "GBK status",
                build_bytes(&segment("20250601100000", &[0xD5, 0xFD, 0xB3, 0xA3])),
            ),
        ];
        for (what, frame) in table {
            let out = decode_hj212(
                &s,
                &frame,
                Utc.with_ymd_and_hms(2025, 6, 1, 3, 0, 0).unwrap(),
                limits_hj212(),
                &CodeMap::default(),
                &mut Reassembly::default(),
            );
            assert!(
                out.decoded.refused.is_empty(),
                "{what}: {:?}",
                out.decoded.refused
            );
            let [r] = out.decoded.readings.as_slice() else {
                panic!("{what}: {out:?}")
            };
            assert_eq!(
                r.ts,
                Utc.with_ymd_and_hms(2025, 6, 1, 2, 0, 0).unwrap(),
                "{what}"
            );
            let values: Vec<(Param, f64)> = r.values.iter().map(|m| (m.param, m.value)).collect();
            assert_eq!(values, [(Param::Ph, 7.32), (Param::Nh3n, 0.182)], "{what}");
            let ack = out.ack.expect(what);
            assert!(
                ack.starts_with("##0076QN=20250601100000000;ST=91;CN=9014;"),
                "{what}: {ack}"
            );
        }
    }

    #[test]
    fn an_hj212_frame_older_than_the_maximum_age_is_refused() {
        use crate::domain::hj212::tests::SYNTHETIC_RTD;
        // A year and an hour before the test's now (2025-06-01T03:00:00Z).
        let mut f = crate::domain::hj212::parse(SYNTHETIC_RTD.as_bytes()).unwrap();
        f.cp =
            f.cp.replace("DataTime=20250601100000", "DataTime=20240601100000");
        let out = hj212(&hj212_station(Some("QY-BJ-SJ-0001")), &f.encode());
        // Dead-lettered and answered: sending it again cannot make it younger.
        assert!(out.decoded.readings.is_empty() && out.ack.is_some());
        let [(None, r)] = out.decoded.refused.as_slice() else {
            panic!("{:?}", out.decoded.refused)
        };
        assert_eq!(r.kind, RefusalKind::TooOld, "{r}");
        assert!(
            r.reason
                .contains("DataTime 2024-06-01T10:00:00+08:00 is older")
                && r.reason.contains("365d"),
            "{r}"
        );
    }

    #[test]
    fn topics() {
        let net = network();
        let table = [
            ("wq/bei/shijiao/reading", None),
            ("wq/pa/shijiao/reading", Some(RefusalKind::RiverMismatch)),
            ("wq/bei/nowhere/reading", Some(RefusalKind::UnknownStation)),
            ("wq/bei/shijiao", Some(RefusalKind::BadTopic)),
            ("wq/bei/shijiao/other", Some(RefusalKind::BadTopic)),
            ("wq/bei/shijiao/hj212", None),
            ("wq/bei/shijiao/hj212/ack", Some(RefusalKind::BadTopic)),
            ("xx/bei/shijiao/reading", Some(RefusalKind::BadTopic)),
        ];
        for (topic, expected) in table {
            let got = station_for_topic(&net, topic).err().map(|r| r.kind);
            assert_eq!(got, expected, "{topic}");
        }
    }
}

#[cfg(test)]
mod properties {
    use super::*;
    use chrono::TimeZone;
    use proptest::prelude::*;

    fn st(id: &str) -> Station {
        crate::domain::network::fixtures::station(id, "qingyuan", 2, true)
    }

    fn limits() -> PayloadLimits {
        PayloadLimits {
            max_payload: 4096,
            max_future_skew: Duration::minutes(10),
            max_age: Some(Duration::days(365)),
        }
    }

    proptest! {
        // Failures are reported in the test output; no regression files in the tree.
        #![proptest_config(ProptestConfig { failure_persistence: None, ..ProptestConfig::default() })]

        /// Any bytes at all decode to readings or refusals, never a panic; every reading has
        /// finite values.
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let now = Utc.with_ymd_and_hms(2026, 11, 26, 0, 0, 0).unwrap();
            let d = decode_json(&st("s"), &bytes, now, limits());
            prop_assert!(d.readings.iter().flat_map(|r| &r.values).all(|m| m.value.is_finite()));
            prop_assert!(!d.readings.is_empty() || !d.refused.is_empty());
        }

        /// Payloads built from a reading's parts, valid or not: whatever the direct path
        /// accepts, the tree decoder accepts with the same reading.
        #[test]
        fn the_direct_path_agrees_with_the_tree(
            ts in prop_oneof![
                10 => Just("\"2026-11-26T08:00:00+08:00\""), 1 => Just("\"2026-11-26T08:00:00\""),
                1 => Just("null"), 1 => Just("17"), 1 => Just("\"2027-01-01T00:00:00Z\""), 1 => Just("\"2026-11-26T07:00:00\\u002B08:00\""),
            ],
            values in proptest::collection::vec((prop_oneof![8 => 0usize..4, 1 => 4usize..6], prop_oneof![8 => Just("7.1"), 8 => Just("0.5"), 1 => Just("-1"), 1 => Just("15"), 1 => Just("\"7\""), 1 => Just("null"), 1 => Just("1e400")]), 0..4),
            flags in proptest::option::of(proptest::collection::vec((prop_oneof![8 => 0usize..4, 1 => 4usize..6], prop_oneof![4 => Just("\"N\""), 4 => Just("\"D\""), 1 => Just("\"Q\""), 1 => Just("3")]), 0..3)),
            seq in prop_oneof![4 => Just(None), 4 => Just(Some("5")), 1 => Just(Some("null")), 1 => Just(Some("-2")), 1 => Just(Some("1.5"))],
            extra in prop_oneof![8 => Just(""), 1 => Just(",\"station\":\"x\""), 1 => Just(",\"ts\":\"2026-11-26T09:00:00+08:00\"")],
            wrap in prop_oneof![4 => Just(("", "")), 1 => Just(("[", "]")), 1 => Just((" ", "\n"))],
        ) {
            let keys = ["ph", "nh3n", "do", "tp", "nitrate", "t\\u0065mp"];
            let members = |pairs: &[(usize, &str)]| {
                pairs.iter().map(|(k, v)| format!("\"{}\":{v}", keys[*k])).collect::<Vec<_>>().join(",")
            };
            let mut body = format!("\"ts\":{ts},\"values\":{{{}}}", members(&values));
            if let Some(f) = &flags {
                body.push_str(&format!(",\"flags\":{{{}}}", members(f)));
            }
            if let Some(q) = seq {
                body.push_str(&format!(",\"seq\":{q}"));
            }
            let payload = format!("{}{{{body}{extra}}}{}", wrap.0, wrap.1);
            let now = Utc.with_ymd_and_hms(2026, 11, 26, 0, 0, 0).unwrap();
            if let Some(direct) = plain_reading(&st("s"), payload.as_bytes(), now, limits()) {
                let tree = decode_tree(&st("s"), payload.as_bytes(), now, limits(), Decoded::default());
                prop_assert!(tree.refused.is_empty(), "{} {:?}", payload, tree.refused);
                prop_assert_eq!(tree.readings, vec![direct]);
            }
        }

        /// JSON-shaped input with random values: every element is either a reading or a
        /// refusal, never both, never lost.
        #[test]
        fn every_array_element_is_accounted_for(
            values in proptest::collection::vec((0usize..4, -5.0f64..20.0), 1..20),
        ) {
            let keys = ["ph", "nh3n", "nitrate", "temp"];
            let items: Vec<String> = values
                .iter()
                .map(|(k, v)| format!(r#"{{"ts":"2026-11-26T08:00:00+08:00","values":{{"{}":{}}}}}"#, keys[*k], v))
                .collect();
            let payload = format!("[{}]", items.join(","));
            let now = Utc.with_ymd_and_hms(2026, 11, 26, 0, 0, 0).unwrap();
            let d = decode_json(&st("s"), payload.as_bytes(), now, limits());
            prop_assert_eq!(d.readings.len() + d.refused.len(), values.len());
        }
    }
}
