//! `riverwatch assess`: offline judgement of a file of readings with the daemon's own domain
//! code — QC, the station's profile and classes, exceedance multiples, and Mann–Kendall / Sen
//! trends — printed as JSON lines or CSV (SPEC §11).
//!
//! Fed by a CSV file (header `station,ts,<param>...`, an empty cell is a missing value) or
//! JSON lines in the payload format with a `station` key; the config gives the stations. Input
//! rows that cannot be read are reported on stderr with file, line and reason, and skipped;
//! the command then exits 1. QC runs over each station's whole series, as ioos_qc would, so a
//! file of readings can be cross-checked offline against the reference implementation.

use crate::config::Config;
use crate::domain::gb3838;
use crate::domain::network::{Profile, Station};
use crate::domain::param::Param;
use crate::domain::qc::{self, Flag};
use crate::domain::reading::{judge, measure, BadValue, Reading, Reported};
use crate::domain::trend;
use crate::ingest::payload::{decode_json, PayloadLimits};
use crate::json::Object;
use chrono::{DateTime, SecondsFormat, Utc};
use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::path::Path;

/// Minimum number of valid values for a trend object (WATER.md §6.1: the normal approximation
/// holds from 10).
pub const MIN_TREND_POINTS: usize = 10;

/// Significance level of the trend word.
pub const ALPHA: f64 = 0.05;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    Json,
    Csv,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ProfileChoice {
    Full,
    /// The config's spelling, `national_realtime`.
    #[value(name = "national_realtime")]
    NationalRealtime,
}

/// A problem with one input row.
#[derive(Debug, Clone, PartialEq)]
pub struct RowError {
    pub line: usize,
    pub reason: String,
}

/// Reads the input file into readings per station; rows that cannot be read become errors.
pub fn read_input(text: &str, cfg: &Config) -> (Vec<Reading>, Vec<RowError>) {
    let first = text.trim_start().chars().next();
    if first == Some('{') || first == Some('[') {
        read_json_lines(text, cfg)
    } else {
        read_csv(text, cfg)
    }
}

fn limits() -> PayloadLimits {
    // Offline data may be any age and any size; only the shape is checked.
    PayloadLimits {
        max_payload: usize::MAX,
        max_future_skew: chrono::Duration::days(365 * 1000),
        max_age: None,
    }
}

fn read_json_lines(text: &str, cfg: &Config) -> (Vec<Reading>, Vec<RowError>) {
    let mut readings = Vec::new();
    let mut errors = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line_no = i + 1;
        if line.trim().is_empty() {
            continue;
        }
        let mut object: serde_json::Map<String, serde_json::Value> =
            match serde_json::from_str(line) {
                Ok(serde_json::Value::Object(o)) => o,
                Ok(_) => {
                    errors.push(RowError {
                        line: line_no,
                        reason: "not a JSON object".into(),
                    });
                    continue;
                }
                Err(e) => {
                    errors.push(RowError {
                        line: line_no,
                        reason: format!("not JSON: {e}"),
                    });
                    continue;
                }
            };
        let station = match object.remove("station") {
            Some(serde_json::Value::String(s)) if cfg.network.station(&s).is_some() => s,
            Some(serde_json::Value::String(s)) => {
                errors.push(RowError {
                    line: line_no,
                    reason: format!("station {s:?} is not configured"),
                });
                continue;
            }
            _ => {
                errors.push(RowError {
                    line: line_no,
                    reason: "missing \"station\"".into(),
                });
                continue;
            }
        };
        let payload = serde_json::Value::Object(object).to_string();
        let Some(configured) = cfg.network.station(&station) else {
            continue;
        };
        let decoded = decode_json(configured, payload.as_bytes(), Utc::now(), limits());
        readings.extend(decoded.readings);
        errors.extend(decoded.refused.into_iter().map(|(_, r)| RowError {
            line: line_no,
            reason: r.reason,
        }));
    }
    (readings, errors)
}

fn read_csv(text: &str, cfg: &Config) -> (Vec<Reading>, Vec<RowError>) {
    let mut errors = Vec::new();
    let mut reader = csv::ReaderBuilder::new()
        .flexible(false)
        .from_reader(text.as_bytes());
    let headers = match reader.headers() {
        Ok(h) => h.clone(),
        Err(e) => {
            return (
                Vec::new(),
                vec![RowError {
                    line: 1,
                    reason: format!("cannot read the header: {e}"),
                }],
            )
        }
    };
    if headers.get(0) != Some("station") || headers.get(1) != Some("ts") {
        return (
            Vec::new(),
            vec![RowError {
                line: 1,
                reason: "the header must start with station,ts".into(),
            }],
        );
    }
    let mut params = Vec::new();
    for h in headers.iter().skip(2) {
        match Param::from_key(h) {
            Some(p) => params.push(p),
            None => {
                return (
                    Vec::new(),
                    vec![RowError {
                        line: 1,
                        reason: format!("column {h:?} is not a parameter key"),
                    }],
                )
            }
        }
    }
    let mut readings = Vec::new();
    for (i, record) in reader.records().enumerate() {
        let line = i + 2;
        let record = match record {
            Ok(r) => r,
            Err(e) => {
                errors.push(RowError {
                    line,
                    reason: e.to_string(),
                });
                continue;
            }
        };
        let station = record.get(0).unwrap_or_default();
        if cfg.network.station(station).is_none() {
            errors.push(RowError {
                line,
                reason: format!("station {station:?} is not configured"),
            });
            continue;
        }
        let ts_text = record.get(1).unwrap_or_default();
        let ts = match DateTime::parse_from_rfc3339(ts_text) {
            Ok(t) => t.with_timezone(&Utc),
            Err(_) => {
                errors.push(RowError {
                    line,
                    reason: format!("ts {ts_text:?} is not RFC 3339 with an offset"),
                });
                continue;
            }
        };
        let Some(configured) = cfg.network.station(station) else {
            continue;
        };
        // A bad cell is listed and skipped; the row's other values stand (SPEC §4).
        let mut values = Vec::new();
        let mut bad_cells = 0;
        for (cell, &param) in record.iter().skip(2).zip(&params) {
            if cell.trim().is_empty() {
                continue;
            }
            let measured = Reported::parse(cell, true)
                .ok_or_else(|| {
                    format!(
                        "{param} = {cell:?} is not a number or a result below the detection \
                         limit (0.025L, <0.025, ND)"
                    )
                })
                .and_then(|r| measure(configured, param, r, None).map_err(|BadValue(why)| why));
            match measured {
                Ok(m) => values.push(m),
                Err(why) => {
                    bad_cells += 1;
                    errors.push(RowError {
                        line,
                        reason: format!("{why}: the cell is skipped, the row's other values kept"),
                    });
                }
            }
        }
        if values.is_empty() {
            if bad_cells == 0 {
                errors.push(RowError {
                    line,
                    reason: "no values".into(),
                });
            }
            continue;
        }
        values.sort_by_key(|m| m.param);
        readings.push(Reading {
            station: station.to_string(),
            ts,
            values,
            seq: None,
        });
    }
    (readings, errors)
}

/// One reading's assessment.
pub struct ReadingResult {
    pub reading: Reading,
    pub class: Vec<(Param, u8)>,
    pub overall: Option<u8>,
    pub target: u8,
    pub exceed: Vec<(Param, f64)>,
    pub qc: Vec<(Param, Flag)>,
}

/// One station and parameter's trend.
pub struct TrendResult {
    pub station: String,
    pub param: Param,
    pub mk: trend::MannKendall,
    /// The autocorrelation-corrected test the `trend` rule uses by default, at `ALPHA`.
    pub hamed_rao: trend::HamedRao,
    pub sen_per_day: f64,
}

fn with_profile(station: &Station, choice: Option<ProfileChoice>, cfg: &Config) -> Station {
    let mut s = station.clone();
    match choice {
        Some(ProfileChoice::Full) => s.profile = Profile::Full,
        Some(ProfileChoice::NationalRealtime) => {
            s.profile = Profile::NationalRealtime(cfg.national_precision)
        }
        None => {}
    }
    s
}

/// Assesses every reading and every (station, parameter) series.
pub fn assess(
    readings: Vec<Reading>,
    cfg: &Config,
    profile: Option<ProfileChoice>,
    mut progress: impl FnMut(usize),
) -> (Vec<ReadingResult>, Vec<TrendResult>) {
    let mut by_station: BTreeMap<String, Vec<Reading>> = BTreeMap::new();
    for r in readings {
        by_station.entry(r.station.clone()).or_default().push(r);
    }
    let mut results = Vec::new();
    let mut trends = Vec::new();
    let mut done = 0;
    for (id, mut series) in by_station {
        let Some(configured) = cfg.network.station(&id) else {
            continue;
        };
        let station = with_profile(configured, profile, cfg);
        series.sort_by_key(|r| r.ts);
        // QC over each parameter's whole series, as ioos_qc runs it.
        let mut flags: BTreeMap<(usize, Param), Flag> = BTreeMap::new();
        let params: Vec<Param> = Param::ALL
            .into_iter()
            .filter(|p| {
                series
                    .iter()
                    .any(|r| r.values.iter().any(|m| m.param == *p))
            })
            .collect();
        for &p in &params {
            let points: Vec<(usize, i64, f64)> = series
                .iter()
                .enumerate()
                .filter_map(|(i, r)| {
                    r.values
                        .iter()
                        .find(|m| m.param == p)
                        .map(|m| (i, r.ts.timestamp(), m.value))
                })
                .collect();
            let values: Vec<f64> = points.iter().map(|x| x.2).collect();
            let times: Vec<i64> = points.iter().map(|x| x.1).collect();
            let series_flags = qc::run(
                &values,
                &times,
                &station.qc_plan(p),
                station.detection_limit(p),
            );
            for ((i, _, _), flag) in points.iter().zip(series_flags) {
                flags.insert((*i, p), flag);
            }
        }
        let mut valid: BTreeMap<Param, (Vec<i64>, Vec<f64>)> = BTreeMap::new();
        for (i, r) in series.iter().enumerate() {
            let qc: Vec<(Param, Flag)> = r
                .values
                .iter()
                .map(|m| (m.param, flags[&(i, m.param)]))
                .collect();
            let judged_input = Reading {
                values: r
                    .values
                    .iter()
                    .filter(|m| flags[&(i, m.param)].is_judgeable())
                    .copied()
                    .collect(),
                ..r.clone()
            };
            for m in judged_input.values.iter().filter(|m| m.is_judgeable()) {
                let slot = valid.entry(m.param).or_default();
                slot.0.push(r.ts.timestamp());
                slot.1.push(m.judged_value());
            }
            let j = judge(&station, &judged_input);
            let exceed = j
                .exceeding(station.target)
                .filter_map(|x| {
                    gb3838::exceedance(x.param, station.water_body, x.value, station.target)
                        .map(|e| (x.param, e))
                })
                .collect();
            results.push(ReadingResult {
                reading: r.clone(),
                class: j
                    .judged
                    .iter()
                    .map(|x| (x.param, x.class.number()))
                    .collect(),
                overall: j.overall.map(|c| c.number()),
                target: station.target.number(),
                exceed,
                qc,
            });
            done += 1;
            progress(done);
        }
        for (param, (times, values)) in valid {
            if values.len() < MIN_TREND_POINTS {
                continue;
            }
            if let (Some(mk), Some(hamed_rao), Some(line)) = (
                trend::mann_kendall(&values),
                trend::hamed_rao(&values, ALPHA),
                trend::sen(&times, &values),
            ) {
                trends.push(TrendResult {
                    station: id.clone(),
                    param,
                    mk,
                    hamed_rao,
                    sen_per_day: line.per_day(),
                });
            }
        }
    }
    (results, trends)
}

fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

/// Exceedance multiples are printed to 6 decimals: enough for reports (which use 1) without
/// binary noise such as 0.6399999999999999.
fn round6(v: f64) -> f64 {
    (v * 1e6).round() / 1e6
}

pub fn json_lines(
    results: &[ReadingResult],
    trends: &[TrendResult],
    out: &mut impl Write,
) -> std::io::Result<()> {
    for r in results {
        let class = r
            .class
            .iter()
            .fold(Object::new(), |o, (p, c)| o.put(p.key(), *c));
        let exceed = r
            .exceed
            .iter()
            .fold(Object::new(), |o, (p, e)| o.put(p.key(), round6(*e)));
        let qc =
            r.qc.iter()
                .fold(Object::new(), |o, (p, f)| o.put(p.key(), f.code()));
        let line = Object::new()
            .put("kind", "reading")
            .put("station", r.reading.station.clone())
            .put("ts", ts(r.reading.ts))
            .nest("class", class)
            .put("overall_class", r.overall)
            .put("target_class", r.target)
            .nest("exceed", exceed)
            .nest("qc", qc)
            .line();
        writeln!(out, "{line}")?;
    }
    for t in trends {
        let hr = &t.hamed_rao;
        // z and p are null where the corrected variance is not positive (no test possible).
        let hamed_rao = Object::new()
            .put("var_s", hr.var_s)
            .put("z", hr.z)
            .put("p", hr.p)
            .put("trend", hr.direction(ALPHA).word());
        let line = Object::new()
            .put("kind", "trend")
            .put("station", t.station.clone())
            .put("param", t.param.key())
            .put("n", t.mk.n)
            .put("s", t.mk.s)
            .put("var_s", t.mk.var_s)
            .put("z", t.mk.z)
            .put("p", t.mk.p)
            .put("sen_slope_per_day", t.sen_per_day)
            .put("trend", t.mk.direction(ALPHA).word())
            .nest("hamed_rao", hamed_rao)
            .line();
        writeln!(out, "{line}")?;
    }
    Ok(())
}

/// CSV with stable columns: one row per (reading, parameter), then one per trend. Columns are
/// only ever appended, so scripts that read them by position keep working.
pub const CSV_COLUMNS: [&str; 20] = [
    "kind",
    "station",
    "ts",
    "param",
    "class",
    "overall_class",
    "target_class",
    "exceed",
    "qc",
    "n",
    "s",
    "var_s",
    "z",
    "p",
    "sen_slope_per_day",
    "trend",
    "hr_var_s",
    "hr_z",
    "hr_p",
    "hr_trend",
];

pub fn csv_rows(
    results: &[ReadingResult],
    trends: &[TrendResult],
    out: impl Write,
) -> Result<(), csv::Error> {
    let mut w = csv::Writer::from_writer(out);
    w.write_record(CSV_COLUMNS)?;
    let opt = |v: Option<String>| v.unwrap_or_default();
    for r in results {
        for (param, flag) in &r.qc {
            let class = r
                .class
                .iter()
                .find(|(p, _)| p == param)
                .map(|(_, c)| c.to_string());
            let exceed = r
                .exceed
                .iter()
                .find(|(p, _)| p == param)
                .map(|(_, e)| round6(*e).to_string());
            w.write_record([
                "reading".to_string(),
                r.reading.station.clone(),
                ts(r.reading.ts),
                param.key().to_string(),
                opt(class),
                opt(r.overall.map(|c| c.to_string())),
                r.target.to_string(),
                opt(exceed),
                flag.code().to_string(),
                String::new(),
                String::new(),
                String::new(),
                String::new(),
                String::new(),
                String::new(),
                String::new(),
                String::new(),
                String::new(),
                String::new(),
                String::new(),
            ])?;
        }
    }
    for t in trends {
        w.write_record([
            "trend".to_string(),
            t.station.clone(),
            String::new(),
            t.param.key().to_string(),
            String::new(),
            String::new(),
            String::new(),
            String::new(),
            String::new(),
            t.mk.n.to_string(),
            t.mk.s.to_string(),
            t.mk.var_s.to_string(),
            t.mk.z.to_string(),
            t.mk.p.to_string(),
            t.sen_per_day.to_string(),
            t.mk.direction(ALPHA).word().to_string(),
            t.hamed_rao.var_s.to_string(),
            opt(t.hamed_rao.z.map(|z| z.to_string())),
            opt(t.hamed_rao.p.map(|p| p.to_string())),
            t.hamed_rao.direction(ALPHA).word().to_string(),
        ])?;
    }
    w.flush()?;
    Ok(())
}

/// Why `assess` stopped: the input could not be read or the output not written (rows that
/// cannot be read are not errors: they are listed and counted).
#[derive(Debug, thiserror::Error)]
pub enum AssessError {
    #[error("{}: cannot read: {source}", path.display())]
    Input {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write the assessment: {0}")]
    Output(#[from] std::io::Error),
    #[error("cannot write the assessment: {0}")]
    Csv(#[from] csv::Error),
}

/// The command: reads `input`, writes the assessment to stdout; returns the number of input
/// rows that could not be read.
///
/// # Errors
/// [`AssessError`] when `input` cannot be read or stdout not written.
pub fn run(
    input: &Path,
    cfg: &Config,
    profile: Option<ProfileChoice>,
    format: OutputFormat,
) -> Result<usize, AssessError> {
    let text = std::fs::read_to_string(input).map_err(|source| AssessError::Input {
        path: input.to_path_buf(),
        source,
    })?;
    let (readings, errors) = read_input(&text, cfg);
    for e in &errors {
        eprintln!("{}:{}: {}", input.display(), e.line, e.reason);
    }
    let total = readings.len();
    let show_progress = std::io::stderr().is_terminal() && total >= 10_000;
    let (results, trends) = assess(readings, cfg, profile, |done| {
        if show_progress && (done % 5_000 == 0 || done == total) {
            eprint!("\rassess: {done}/{total} readings");
            if done == total {
                eprintln!();
            }
        }
    });
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    match format {
        OutputFormat::Json => json_lines(&results, &trends, &mut out)?,
        OutputFormat::Csv => csv_rows(&results, &trends, &mut out)?,
    }
    out.flush()?;
    Ok(errors.len())
}
