//! `riverwatch report`: the monthly attainment report of the boundary sections (WATER.md §8.1),
//! from the data the daemon stored, as Markdown, CSV or HTML with a class-per-month chart.
//!
//! Fed by the config (the boundary sections, their targets, cadences and operating bureaus,
//! `[influxdb]`, `[report] min_coverage`) and by InfluxDB; judged by the pure
//! `domain::attainment`. Months are calendar months in China Standard Time (UTC+8).
//!
//! The range: `--from` and `--to` are dates (`2026-11-24`) or months (`2026-11`, meaning its
//! first day for `--from` and its last day for `--to`), both included. Each calendar month the
//! range touches is one period; a month the range covers only in part (a date at either edge)
//! is assessed on its covered days only — its data and its expected readings alike — and is
//! labelled with those days. A month not yet over is assessed as a whole month, so it reads
//! 数据不足 until enough of it has been measured.
//!
//! Per period and section, one request to InfluxDB asks for: the mean of the validated values
//! of each parameter with class limits (`<key>_qc` neither 3 suspect nor 4 fail); the cadence
//! slots (intervals of the station's `cadence`, from the period's start) holding a valid
//! reading (one with `wq_class`, i.e. an evaluated parameter that passed QC), which against
//! the slots the cadence promises gives the coverage; and the `wq_incident` points of the
//! period, whose `stations` field names the sections each incident reached. The same means
//! and coverage are read for the same days a year earlier (上年同期). Below the minimum
//! coverage no class, verdict or exceeding item is claimed: the section-month reads 数据不足
//! (insufficient data) with its coverage, and 达标率 leaves it out.
//!
//! Rendering: the rows are turned into cells once ([`cells`]); Markdown, HTML and CSV each
//! write those cells in their own syntax (HTML through one escaping function, CSV through the
//! `csv` crate). The city column shows the operating city, derived from the bureau's name
//! ([`city_name`]). The handover column assumes the operating city is the upstream one (true
//! of the configured sections).
//!
//! Query path: InfluxQL through the store's [`QueryClient`] (`/query` for both APIs; v2 through
//! its v1-compatibility endpoint and the bucket's DBRP mapping).

use crate::config::{Config, InfluxApi, InfluxConfig};
use crate::domain::attainment::{self, Coverage, SectionMonth};
use crate::domain::gb3838::{self, Class, WaterBody};
use crate::domain::network::{Bureau, Network, Station};
use crate::domain::param::Param;
use crate::store::influx::query::{QueryClient, QueryError};
use chrono::{DateTime, Datelike, Days, NaiveDate, TimeZone, Utc};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Write;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Md,
    Csv,
    Html,
}

#[derive(Debug, clap::Args)]
pub struct Options {
    /// Config file (default: $RIVERWATCH_CONFIG, else config/riverwatch.toml).
    #[arg(long)]
    pub config: Option<std::path::PathBuf>,
    /// First day, as YYYY-MM-DD, or a month YYYY-MM (from its first day).
    #[arg(long)]
    pub from: String,
    /// Last day, included, as YYYY-MM-DD, or a month YYYY-MM (to its last day).
    #[arg(long)]
    pub to: String,
    /// Output: Markdown tables, CSV rows, or an HTML page with the class-per-month chart.
    #[arg(long, value_enum, default_value = "md")]
    pub format: Format,
    /// Read from the InfluxDB at this URL instead of `[influxdb] url` (same API, database or
    /// bucket, and credentials); without an `[influxdb]` section, its v1 API and the
    /// database "water", where `demo --influx-url` writes.
    #[arg(long, value_name = "URL")]
    pub influx_url: Option<String>,
    /// The share (0–1) of a section-month's expected readings needed to claim its class;
    /// overrides `[report] min_coverage` (default 0.75).
    #[arg(long, value_parser = share)]
    pub min_coverage: Option<f64>,
}

/// Reads a share between 0 and 1 (`--min-coverage`).
fn share(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(v) if (0.0..=1.0).contains(&v) => Ok(v),
        _ => Err(format!(
            "{text:?} is not a share between 0 and 1 (e.g. 0.75)"
        )),
    }
}

/// Why `report` printed nothing.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// `--from`/`--to` is not a month or a date.
    #[error("{0:?} is not a month like 2026-11 or a date like 2026-11-26")]
    Month(String),
    /// The range runs backwards.
    #[error("--from {from} is after --to {to}")]
    Backwards { from: String, to: String },
    /// `--influx-url` is not an http:// or https:// URL.
    #[error("--influx-url {0:?}: must be an http:// or https:// URL, like http://127.0.0.1:8086")]
    InfluxUrl(String),
    /// The config has no `[influxdb]` section to read from.
    #[error("[influxdb] (or --influx-url) is required by `report` (where the data are read)")]
    NoInfluxdb,
    /// The config has no boundary section to report on.
    #[error("the config has no boundary section (boundary = true)")]
    NoBoundarySection,
    /// The InfluxDB client could not be built (a secret, TLS).
    #[error(transparent)]
    Client(#[from] crate::store::influx::BuildError),
    /// A query failed.
    #[error(transparent)]
    Query(#[from] QueryError),
    /// The CSV writer failed (it writes to memory, so only on a bug).
    #[error("writing CSV: {0}")]
    Csv(#[from] csv::Error),
}

impl ReportError {
    /// Whether the operator's options or config are at fault (a bad month, no `[influxdb]`,
    /// no boundary section, a secret that cannot be read), as opposed to the database.
    pub fn is_usage(&self) -> bool {
        use crate::store::influx::BuildError;
        match self {
            ReportError::Month(_)
            | ReportError::Backwards { .. }
            | ReportError::NoInfluxdb
            | ReportError::InfluxUrl(_)
            | ReportError::NoBoundarySection => true,
            ReportError::Client(e) => {
                matches!(e, BuildError::Password(_) | BuildError::Token(_))
            }
            ReportError::Query(_) | ReportError::Csv(_) => false,
        }
    }
}

/// The `[influxdb]` section `report` reads from: the config's, its URL replaced by
/// `--influx-url` when given; with only `--influx-url`, the v1 API and database "water".
fn influx_source(cfg: &Config, influx_url: Option<&str>) -> Result<InfluxConfig, ReportError> {
    if let Some(url) = influx_url {
        let scheme = reqwest::Url::parse(url).map(|u| u.scheme().to_string());
        if !matches!(scheme.as_deref(), Ok("http" | "https")) {
            return Err(ReportError::InfluxUrl(url.to_string()));
        }
    }
    match (cfg.influxdb.clone(), influx_url) {
        (Some(mut influx), Some(url)) => {
            influx.url = url.trim_end_matches('/').to_string();
            Ok(influx)
        }
        (Some(influx), None) => Ok(influx),
        (None, Some(url)) => Ok(InfluxConfig {
            url: url.trim_end_matches('/').to_string(),
            api: InfluxApi::V1 {
                database: "water".into(),
                retention_policy: None,
                username: None,
                password: None,
            },
            batch_size: 1,
            flush_interval: std::time::Duration::from_secs(1),
            timeout: std::time::Duration::from_secs(30),
            required: false,
        }),
        (None, None) => Err(ReportError::NoInfluxdb),
    }
}

/// A calendar month.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Month {
    pub year: i32,
    pub month: u32,
}

impl Month {
    fn of(date: NaiveDate) -> Month {
        Month {
            year: date.year(),
            month: date.month(),
        }
    }

    fn next(self) -> Month {
        if self.month == 12 {
            Month {
                year: self.year + 1,
                month: 1,
            }
        } else {
            Month {
                month: self.month + 1,
                ..self
            }
        }
    }

    fn first_day(self) -> NaiveDate {
        NaiveDate::from_ymd_opt(self.year, self.month, 1).unwrap_or(NaiveDate::MIN)
    }

    fn last_day(self) -> NaiveDate {
        self.next().first_day().pred_opt().unwrap_or(NaiveDate::MAX)
    }

    pub fn label(self) -> String {
        format!("{:04}-{:02}", self.year, self.month)
    }
}

/// The requested days, both included.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Range {
    pub from: NaiveDate,
    pub to: NaiveDate,
}

/// `2026-11-26`, or `2026-11` read as its first (`last` false) or last day.
fn parse_day(text: &str, last: bool) -> Result<NaiveDate, ReportError> {
    if let Ok(date) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        return Ok(date);
    }
    let first = NaiveDate::parse_from_str(&format!("{text}-01"), "%Y-%m-%d")
        .map_err(|_| ReportError::Month(text.to_owned()))?;
    Ok(if last {
        Month::of(first).last_day()
    } else {
        first
    })
}

impl Range {
    /// From `--from` and `--to`.
    ///
    /// # Errors
    /// [`ReportError::Month`] for a text that is neither a date nor a month,
    /// [`ReportError::Backwards`] when `from` is after `to`.
    pub fn parse(from: &str, to: &str) -> Result<Range, ReportError> {
        let range = Range {
            from: parse_day(from, false)?,
            to: parse_day(to, true)?,
        };
        if range.from > range.to {
            return Err(ReportError::Backwards {
                from: from.to_owned(),
                to: to.to_owned(),
            });
        }
        Ok(range)
    }

    /// One period per calendar month the range touches (at most 1200), each clipped to the
    /// range.
    pub fn periods(&self) -> Vec<Period> {
        let mut out = Vec::new();
        let mut m = Month::of(self.from);
        while m <= Month::of(self.to) && out.len() < 1200 {
            out.push(Period {
                month: m,
                first: m.first_day().max(self.from),
                last: m.last_day().min(self.to),
            });
            m = m.next();
        }
        out
    }

    /// Whether the range is made of whole months.
    fn whole_months(&self) -> bool {
        self.from == Month::of(self.from).first_day() && self.to == Month::of(self.to).last_day()
    }

    /// `2026-11` for one whole month, `2026-10 – 2026-11` for several, else the dates.
    pub fn title(&self) -> String {
        let (a, b) = if self.whole_months() {
            (Month::of(self.from).label(), Month::of(self.to).label())
        } else {
            (self.from.to_string(), self.to.to_string())
        };
        if a == b {
            a
        } else {
            format!("{a} – {b}")
        }
    }

    /// The range in CSV's `rate` rows: `2026-10..2026-11`, or dates where a month is partial.
    fn csv_label(&self) -> String {
        if self.whole_months() {
            format!(
                "{}..{}",
                Month::of(self.from).label(),
                Month::of(self.to).label()
            )
        } else {
            format!("{}..{}", self.from, self.to)
        }
    }
}

/// The days of one calendar month that the report assesses: the whole month, or the part of
/// it inside the requested range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Period {
    pub month: Month,
    pub first: NaiveDate,
    /// Included.
    pub last: NaiveDate,
}

/// 00:00 of `day` in UTC+8.
fn day_start(day: NaiveDate) -> DateTime<Utc> {
    crate::domain::hj212::cst()
        .from_local_datetime(&day.and_time(chrono::NaiveTime::MIN))
        .single()
        .map_or(DateTime::<Utc>::MIN_UTC, |t| t.with_timezone(&Utc))
}

/// The same day a year earlier; 29 February becomes the 28th.
fn year_earlier(day: NaiveDate) -> NaiveDate {
    day.with_year(day.year() - 1)
        .or_else(|| day.pred_opt().and_then(|d| d.with_year(d.year() - 1)))
        .unwrap_or(NaiveDate::MIN)
}

impl Period {
    /// The first instant of the period (UTC+8 midnight), in UTC.
    pub fn start(&self) -> DateTime<Utc> {
        day_start(self.first)
    }

    /// The instant after the period's last day.
    pub fn end(&self) -> DateTime<Utc> {
        day_start(
            self.last
                .checked_add_days(Days::new(1))
                .unwrap_or(NaiveDate::MAX),
        )
    }

    /// The period's length in seconds.
    pub fn seconds(&self) -> u64 {
        u64::try_from((self.end() - self.start()).num_seconds()).unwrap_or(0)
    }

    /// Whether the period is its whole calendar month.
    pub fn whole(&self) -> bool {
        self.first == self.month.first_day() && self.last == self.month.last_day()
    }

    /// The same days a year earlier (上年同期).
    pub fn year_before(&self) -> Period {
        Period {
            month: Month {
                year: self.month.year - 1,
                ..self.month
            },
            first: year_earlier(self.first),
            last: year_earlier(self.last),
        }
    }

    /// `2026-11`, or `2026-11 (11-24 – 11-26)` for part of a month.
    pub fn label(&self) -> String {
        if self.whole() {
            self.month.label()
        } else {
            format!(
                "{} ({} – {})",
                self.month.label(),
                self.first.format("%m-%d"),
                self.last.format("%m-%d")
            )
        }
    }
}

/// Parameters with class limits in either water body: the ones worth a monthly mean.
fn judged_params() -> Vec<Param> {
    Param::ALL
        .into_iter()
        .filter(|&p| {
            gb3838::limits(p, WaterBody::River).is_some()
                || gb3838::limits(p, WaterBody::Lake).is_some()
        })
        .collect()
}

/// `a|b|c` of station ids for an InfluxQL regular expression, each character that is not a
/// letter, digit or `_` escaped.
fn id_pattern<'a>(ids: impl IntoIterator<Item = &'a str>) -> String {
    ids.into_iter()
        .map(|id| {
            id.chars().fold(String::new(), |mut out, c| {
                if !(c.is_alphanumeric() || c == '_') {
                    out.push('\\');
                }
                out.push(c);
                out
            })
        })
        .collect::<Vec<_>>()
        .join("|")
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// What InfluxDB holds for the sections in one period.
#[derive(Debug, Default)]
struct Measured {
    /// Mean of the validated values per (station, parameter).
    means: HashMap<(String, Param), f64>,
    /// Cadence slots holding a valid reading, per station.
    slots: HashMap<String, u64>,
    /// Incident ids per station they reached.
    incidents: HashMap<String, BTreeSet<String>>,
}

/// Reads one period: the means, the cadence slots with a valid reading and (where
/// `incidents`) the incidents, in one request.
async fn measure(
    source: &QueryClient,
    sections: &[&Station],
    period: &Period,
    incidents: bool,
) -> Result<Measured, QueryError> {
    let (from, to) = (rfc3339(period.start()), rfc3339(period.end()));
    let window = format!("time >= '{from}' AND time < '{to}'");
    let all = id_pattern(sections.iter().map(|s| s.id.as_str()));
    let params = judged_params();
    let mut statements: Vec<String> = params
        .iter()
        .map(|p| {
            let k = p.key();
            format!(
                "SELECT mean(\"{k}\") FROM \"water_quality\" WHERE \"station\" =~ /^({all})$/ AND \"{k}_qc\" != 3 AND \"{k}_qc\" != 4 AND {window} GROUP BY \"station\""
            )
        })
        .collect();
    // One slot count per cadence: GROUP BY time() needs one interval, offset so that the
    // slots start at the period's start rather than at the Unix epoch.
    let mut by_cadence: BTreeMap<u64, Vec<&str>> = BTreeMap::new();
    for s in sections {
        by_cadence
            .entry(s.cadence.as_secs().max(1))
            .or_default()
            .push(&s.id);
    }
    let start = period.start().timestamp();
    for (cadence, ids) in &by_cadence {
        let offset = start.rem_euclid(i64::try_from(*cadence).unwrap_or(i64::MAX));
        statements.push(format!(
            "SELECT count(\"wq_class\") FROM \"water_quality\" WHERE \"station\" =~ /^({})$/ AND {window} GROUP BY time({cadence}s, {offset}s), \"station\" fill(none)",
            id_pattern(ids.iter().copied())
        ));
    }
    if incidents {
        statements.push(format!(
            "SELECT \"stations\" FROM \"wq_incident\" WHERE {window} GROUP BY \"incident_id\""
        ));
    }
    let results = source.influxql(&statements).await?;
    let mut out = Measured::default();
    let series = |r: &serde_json::Value| r["series"].as_array().cloned().unwrap_or_default();
    for (p, r) in params.iter().zip(&results) {
        for s in series(r) {
            let station = s["tags"]["station"].as_str().unwrap_or_default();
            if let Some(v) = s["values"][0][1].as_f64() {
                out.means.insert((station.to_string(), *p), v);
            }
        }
    }
    for r in results.iter().skip(params.len()).take(by_cadence.len()) {
        for s in series(r) {
            let station = s["tags"]["station"].as_str().unwrap_or_default();
            let filled = s["values"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|v| v[1].as_u64().unwrap_or(0) > 0)
                .count();
            *out.slots.entry(station.to_string()).or_default() += filled as u64;
        }
    }
    if incidents {
        for s in results
            .get(params.len() + by_cadence.len())
            .map(series)
            .unwrap_or_default()
        {
            let id = s["tags"]["incident_id"].as_str().unwrap_or_default();
            for v in s["values"].as_array().into_iter().flatten() {
                for station in v[1].as_str().unwrap_or_default().split(',') {
                    let station = station.trim();
                    if !station.is_empty() {
                        out.incidents
                            .entry(station.to_string())
                            .or_default()
                            .insert(id.to_string());
                    }
                }
            }
        }
    }
    Ok(out)
}

/// One section in one period.
#[derive(Debug, Clone)]
pub struct Row<'a> {
    pub period: Period,
    pub station: &'a Station,
    /// What the report claims: without class, verdict or items where the coverage is below
    /// the minimum ([`attainment::claim`]).
    pub result: SectionMonth,
    pub coverage: Coverage,
    /// The coverage is below the minimum: the row reads 数据不足.
    pub insufficient: bool,
    /// The class of the same days a year earlier, where its coverage reached the minimum.
    pub year_before: Option<Class>,
    /// The year-earlier days hold some data, but too little to claim a class.
    pub year_before_insufficient: bool,
    /// The incidents (ids) that reached the section in the period.
    pub incidents: Vec<String>,
}

/// Everything a rendering needs.
pub struct Report<'a> {
    pub net: &'a Network,
    pub range: Range,
    pub periods: Vec<Period>,
    /// The share of expected readings below which no class is claimed.
    pub min_coverage: f64,
    pub rows: Vec<Row<'a>>,
}

/// The coverage of `station` in `period` from the slots counted there.
fn coverage_of(m: &Measured, station: &Station, period: &Period) -> Coverage {
    Coverage::of(
        m.slots.get(&station.id).copied().unwrap_or(0),
        period.seconds(),
        station.cadence.as_secs(),
    )
}

/// Reads and judges every boundary section for every period of the range.
///
/// # Errors
/// [`ReportError::NoBoundarySection`], or a failed query.
pub async fn build<'a>(
    net: &'a Network,
    source: &QueryClient,
    range: Range,
    min_coverage: f64,
) -> Result<Report<'a>, ReportError> {
    let sections: Vec<&Station> = net.stations.iter().filter(|s| s.boundary).collect();
    if sections.is_empty() {
        return Err(ReportError::NoBoundarySection);
    }
    let periods = range.periods();
    let mut rows = Vec::new();
    for period in &periods {
        let before_period = period.year_before();
        let now = measure(source, &sections, period, true).await?;
        let before = measure(source, &sections, &before_period, false).await?;
        for s in &sections {
            let pick = |m: &Measured| -> Vec<(Param, f64)> {
                judged_params()
                    .into_iter()
                    .filter_map(|p| m.means.get(&(s.id.clone(), p)).map(|v| (p, *v)))
                    .collect()
            };
            let coverage = coverage_of(&now, s, period);
            let before_coverage = coverage_of(&before, s, &before_period);
            let judged = attainment::assess(s, period.start(), &pick(&now));
            let judged_before = attainment::assess(s, before_period.start(), &pick(&before));
            rows.push(Row {
                period: *period,
                station: s,
                result: attainment::claim(judged, coverage, min_coverage),
                coverage,
                insufficient: !coverage.suffices(min_coverage),
                year_before: attainment::claim(judged_before, before_coverage, min_coverage).class,
                year_before_insufficient: before_coverage.valid > 0
                    && !before_coverage.suffices(min_coverage),
                incidents: now
                    .incidents
                    .get(&s.id)
                    .map(|ids| ids.iter().cloned().collect())
                    .unwrap_or_default(),
            });
        }
    }
    Ok(Report {
        net,
        range,
        periods,
        min_coverage,
        rows,
    })
}

/// The operating city's name, for the city column: the bureau's name up to its first 市
/// (广州市生态环境局 → 广州, 清远市生态环境局 → 清远), or the whole name where it holds no 市
/// after its first character (a name in another language).
pub fn city_name(bureau: &Bureau) -> &str {
    match bureau.name.find('市') {
        Some(i) if i > 0 => &bureau.name[..i],
        _ => &bureau.name,
    }
}

/// The city name of the bureau `id`, or the id where no such bureau is configured.
fn city<'n>(net: &'n Network, id: &'n str) -> &'n str {
    net.bureau(id).map_or(id, city_name)
}

/// What a section-month without a claimed class reads.
const INSUFFICIENT: &str = "数据不足 insufficient data";

/// The columns of a section row, in Markdown and HTML (WATER.md §8.1's table, plus coverage
/// and incidents).
pub const COLUMNS: [&str; 11] = [
    "责任城市 City",
    "交接断面 Section",
    "所处河流 River",
    "交接关系 Handover",
    "水质目标 Target",
    "水质类别 Class",
    "上年同期 Year before",
    "达标 Met",
    "主要超标项目 Main exceeding items",
    "覆盖率 Coverage",
    "事件 Incidents",
];

/// The position of the class column in [`COLUMNS`] (HTML colours that cell).
const CLASS_COLUMN: usize = 5;

fn class_text(c: Option<Class>) -> String {
    c.map_or("—".into(), |c| c.roman().to_string())
}

fn items_text(r: &SectionMonth, zh: bool) -> String {
    r.main_items()
        .iter()
        .map(|(p, _, x)| {
            let name = if zh { p.name_zh() } else { p.key() };
            match x {
                Some(x) => format!("{name}/{x:.1}"),
                None => name.to_string(),
            }
        })
        .collect::<Vec<_>>()
        .join("、")
}

fn met_text(row: &Row) -> &'static str {
    match (row.insufficient, row.result.met) {
        (true, _) => "—",
        (false, Some(true)) => "是 yes",
        (false, Some(false)) => "否 no",
        (false, None) => "— not evaluated",
    }
}

fn handover(net: &Network, s: &Station) -> String {
    let others: Vec<&str> = net
        .bureaus
        .iter()
        .filter(|b| b.id != s.city)
        .map(city_name)
        .collect();
    format!("{}→{}", city(net, &s.city), others.join("、"))
}

fn pct(v: Option<f64>) -> String {
    v.map_or("—".into(), |v| format!("{v:.1}%"))
}

/// `96.7% (174/180)`: the share, then valid over expected readings.
fn coverage_text(c: Coverage) -> String {
    format!("{:.1}% ({}/{})", c.ratio() * 100.0, c.valid, c.expected)
}

/// The text of each of [`COLUMNS`] for one row, before any escaping.
pub fn cells(net: &Network, row: &Row) -> [String; 11] {
    let s = row.station;
    let river = net
        .river(&s.river)
        .map_or(s.river.as_str(), |x| x.name.as_str());
    let class = if row.insufficient {
        INSUFFICIENT.to_string()
    } else {
        class_text(row.result.class)
    };
    let year_before = if row.year_before_insufficient {
        INSUFFICIENT.to_string()
    } else {
        class_text(row.year_before)
    };
    [
        city(net, &s.city).to_string(),
        format!("{} ({})", s.name, s.id),
        river.to_string(),
        handover(net, s),
        s.target.roman().to_string(),
        class,
        year_before,
        met_text(row).to_string(),
        items_text(&row.result, true),
        coverage_text(row.coverage),
        row.incidents.len().to_string(),
    ]
}

/// One line of the 达标率 table.
pub struct RateLine {
    /// The bureau id; `None` for all sections together.
    pub city: Option<String>,
    /// The city's name, or `全部 overall`.
    pub label: String,
    /// 达标率 per period, in the report's period order; `None` where none was evaluated.
    pub per_period: Vec<Option<f64>>,
    /// 达标率 over the whole range.
    pub whole: Option<f64>,
}

/// 达标率 per operating city and overall. Section-months without a claimed class (数据不足,
/// no data) are not evaluated and do not count.
pub fn rates(report: &Report) -> Vec<RateLine> {
    let mut groups: Vec<(Option<String>, String)> = report
        .net
        .bureaus
        .iter()
        .filter(|b| report.rows.iter().any(|r| r.station.city == b.id))
        .map(|b| (Some(b.id.clone()), city_name(b).to_string()))
        .collect();
    groups.push((None, "全部 overall".into()));
    groups
        .into_iter()
        .map(|(city, label)| {
            let of = |r: &&Row| city.as_ref().is_none_or(|c| *c == r.station.city);
            let per_period = report
                .periods
                .iter()
                .map(|p| {
                    attainment::rate(
                        report
                            .rows
                            .iter()
                            .filter(of)
                            .filter(|r| r.period == *p)
                            .map(|r| &r.result),
                    )
                })
                .collect();
            let whole = attainment::rate(report.rows.iter().filter(of).map(|r| &r.result));
            RateLine {
                city,
                label,
                per_period,
                whole,
            }
        })
        .collect()
}

/// The method, in one paragraph (Markdown and HTML).
fn method(report: &Report) -> String {
    format!(
        "Class of each month: single-factor (GB 3838-2002) on the month's mean of validated values (UTC+8 months). Exceeding items: item/multiple (C − C_target)/C_target. Coverage: the station's cadence intervals holding a valid reading over those expected in the period; a class and 达标 verdict are claimed only from a coverage of {:.0}%, below it the month reads 数据不足 (insufficient data) and 达标率 leaves it out. Incidents: those that reached the section in the period.",
        report.min_coverage * 100.0
    )
}

fn report_title(report: &Report) -> String {
    format!(
        "跨界断面水质达标情况 Boundary-section attainment, {}",
        report.range.title()
    )
}

/// A Markdown table cell: `|` escaped, line breaks as spaces.
fn md_cell(s: &str) -> String {
    s.replace('|', "\\|").replace(['\r', '\n'], " ")
}

/// The Markdown report.
pub fn markdown(report: &Report) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "# {}\n", report_title(report));
    let _ = writeln!(out, "{}\n", method(report));
    for p in &report.periods {
        let _ = writeln!(out, "## {}\n", p.label());
        let _ = writeln!(out, "| {} |", COLUMNS.join(" | "));
        let _ = writeln!(out, "|{}", "---|".repeat(COLUMNS.len()));
        for r in report.rows.iter().filter(|r| r.period == *p) {
            let cells: Vec<String> = cells(report.net, r).iter().map(|c| md_cell(c)).collect();
            let _ = writeln!(out, "| {} |", cells.join(" | "));
        }
        let _ = writeln!(out);
    }
    let _ = writeln!(out, "## 达标率 Attainment rate\n");
    let labels: Vec<String> = report.periods.iter().map(Period::label).collect();
    let _ = writeln!(out, "| | {} | period |", labels.join(" | "));
    let _ = writeln!(out, "|---|{}---|", "---|".repeat(report.periods.len()));
    for line in rates(report) {
        let cells: Vec<String> = line.per_period.iter().map(|v| pct(*v)).collect();
        let _ = writeln!(
            out,
            "| {} | {} | {} |",
            md_cell(&line.label),
            cells.join(" | "),
            pct(line.whole)
        );
    }
    out
}

/// The CSV columns: `kind` is `section` (one per section-month) or `rate` (one per city and
/// one for all, over the whole range). The first twelve are the original ones; the rest were
/// added after them so that readers by position keep working.
pub const CSV_COLUMNS: [&str; 21] = [
    "kind",
    "month",
    "city",
    "station",
    "name",
    "river",
    "target_class",
    "class",
    "class_year_before",
    "met",
    "exceeding",
    "rate_percent",
    "city_name",
    "period_from",
    "period_to",
    "valid_readings",
    "expected_readings",
    "coverage_percent",
    "insufficient_data",
    "incidents",
    "incident_ids",
];

/// CSV (RFC 4180 through the `csv` crate): [`CSV_COLUMNS`]. Numbers are plain (`class` 1–6,
/// 6 = 劣Ⅴ); `class`, `met` and `exceeding` are empty where no class is claimed.
///
/// # Errors
/// [`ReportError::Csv`] only if the in-memory writer fails.
pub fn csv(report: &Report) -> Result<String, ReportError> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(CSV_COLUMNS)?;
    let num = |c: Option<Class>| c.map_or(String::new(), |c| c.number().to_string());
    for r in &report.rows {
        let s = r.station;
        let exceeding: Vec<String> = r
            .result
            .exceeding
            .iter()
            .map(|(p, _, x)| match x {
                Some(x) => format!("{}/{x:.2}", p.key()),
                None => p.key().to_string(),
            })
            .collect();
        w.write_record([
            "section".to_string(),
            r.period.month.label(),
            s.city.clone(),
            s.id.clone(),
            s.name.clone(),
            s.river.clone(),
            s.target.number().to_string(),
            num(r.result.class),
            num(r.year_before),
            r.result.met.map_or(String::new(), |m| m.to_string()),
            exceeding.join(";"),
            String::new(),
            city(report.net, &s.city).to_string(),
            r.period.first.to_string(),
            r.period.last.to_string(),
            r.coverage.valid.to_string(),
            r.coverage.expected.to_string(),
            format!("{:.1}", r.coverage.ratio() * 100.0),
            r.insufficient.to_string(),
            r.incidents.len().to_string(),
            r.incidents.join(";"),
        ])?;
    }
    let span = report.range.csv_label();
    for line in rates(report) {
        let mut record = vec![String::new(); CSV_COLUMNS.len()];
        record[0] = "rate".into();
        record[1] = span.clone();
        record[2] = line.city.clone().unwrap_or_else(|| "all".into());
        record[11] = line.whole.map_or(String::new(), |v| format!("{v:.1}"));
        record[12] = line.label.clone();
        record[13] = report.range.from.to_string();
        record[14] = report.range.to.to_string();
        w.write_record(&record)?;
    }
    let bytes = w
        .into_inner()
        .map_err(|e| csv::Error::from(e.into_error()))?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// The chart's colour of a class (Grafana's palette, from blue for Ⅰ to red for 劣Ⅴ); grey
/// where no class is claimed.
fn class_colour(c: Option<Class>) -> &'static str {
    match c.map(Class::number) {
        Some(1) => "#1F60C4",
        Some(2) => "#5794F2",
        Some(3) => "#73BF69",
        Some(4) => "#FADE2A",
        Some(5) => "#FF9830",
        Some(_) => "#F2495C",
        None => "#DDDDDD",
    }
}

/// The one escaping function of the HTML: text and attribute values alike.
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The page's style: the chart takes the page's width, its labels wrap; #C4162A is the red
/// border of a section-month that missed its target.
const STYLE: &str = "body{font-family:'Noto Sans CJK SC','Noto Sans SC',sans-serif;margin:2em;color:#222}\
table{border-collapse:collapse;margin-bottom:1.5em}td,th{border:1px solid #ccc;padding:4px 8px;text-align:left;vertical-align:top}\
.legend{display:flex;flex-wrap:wrap;gap:.5em 1.5em;margin:.5em 0 1em}.legend .key{display:inline-flex;align-items:center;gap:.4em}\
.swatch{display:inline-block;width:1.6em;height:1.2em;border:3px solid #fff;outline:1px solid #bbb}.swatch.missed{border-color:#C4162A;outline:none}\
.chart{display:grid;width:100%;gap:4px;align-items:stretch;margin-bottom:2em}\
.chart .label{min-width:0;overflow-wrap:anywhere;white-space:normal;padding:6px 8px 6px 0;text-align:right;align-self:center}\
.chart .month{text-align:center;font-weight:bold;min-width:0;overflow-wrap:anywhere}\
.chart .cell{min-height:2.6em;display:flex;align-items:center;justify-content:center;border:3px solid #fff;font-weight:bold}\
.chart .cell.missed{border-color:#C4162A}";

/// The legend of the chart: each class colour, grey for no class, the red border.
fn legend() -> String {
    let mut out = String::from("<div class=\"legend\" aria-label=\"legend 图例\">");
    let mut key = |colour: &str, extra: &str, text: &str| {
        let _ = write!(
            out,
            "<span class=\"key\"><span class=\"swatch{extra}\" style=\"background:{colour}\"></span>{}</span>",
            escape(text)
        );
    };
    for n in 1..=6 {
        let c = Class::new(n);
        let name = c.map_or(String::new(), |c| {
            format!("{} 类 class {}", c.roman(), c.roman_en())
        });
        key(class_colour(c), "", &name);
    }
    key(
        class_colour(None),
        "",
        "数据不足或无数据 insufficient or no data",
    );
    key(
        "#FFFFFF",
        " missed",
        "红框: 未达标 red border: target missed",
    );
    out.push_str("</div>");
    out
}

/// The class-per-month chart: a grid with one line per section (its full name, wrapped where
/// long) and one cell per period, coloured by class, bordered in red where the target was
/// missed. An HTML grid rather than SVG, so that it takes the page's width and names wrap.
pub fn chart(report: &Report) -> String {
    let mut sections: Vec<&Station> = Vec::new();
    for r in &report.rows {
        if !sections.iter().any(|s| s.id == r.station.id) {
            sections.push(r.station);
        }
    }
    let mut out = format!(
        "<div class=\"chart\" role=\"table\" aria-label=\"水质类别 class per month per section\" style=\"grid-template-columns:minmax(12em,2fr) repeat({},minmax(4em,1fr))\">",
        report.periods.len()
    );
    out.push_str("<div class=\"corner\" role=\"columnheader\"></div>");
    for p in &report.periods {
        let _ = write!(
            out,
            "<div class=\"month\" role=\"columnheader\">{}</div>",
            escape(&p.label())
        );
    }
    for s in sections {
        let _ = write!(
            out,
            "<div class=\"label\" role=\"rowheader\">{} (目标 {})</div>",
            escape(&s.name),
            s.target.roman()
        );
        for p in &report.periods {
            let row = report
                .rows
                .iter()
                .find(|r| r.period == *p && r.station.id == s.id);
            let class = row.and_then(|r| r.result.class);
            let missed = row.is_some_and(|r| r.result.met == Some(false));
            let text = match row {
                Some(r) if r.insufficient => "数据不足".to_string(),
                _ => class_text(class),
            };
            let title = format!(
                "{} {}: {}, {}",
                s.name,
                p.label(),
                text,
                row.map_or(String::new(), |r| coverage_text(r.coverage))
            );
            let _ = write!(
                out,
                "<div class=\"cell{}\" role=\"cell\" style=\"background:{}\" title=\"{}\">{}</div>",
                if missed { " missed" } else { "" },
                class_colour(class),
                escape(&title),
                escape(&text)
            );
        }
    }
    out.push_str("</div>");
    out
}

/// HTML: title, method, legend and chart, then one table per period and the 达标率 table, all
/// from the rows.
pub fn html(report: &Report) -> String {
    let title = report_title(report);
    let mut out = format!(
        "<!DOCTYPE html>\n<html lang=\"zh-CN\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width,initial-scale=1\"><title>{}</title><style>{STYLE}</style></head><body>\n<h1>{}</h1>\n<p>{}</p>\n",
        escape(&title),
        escape(&title),
        escape(&method(report))
    );
    let _ = writeln!(out, "{}\n{}", legend(), chart(report));
    let header: String = COLUMNS
        .iter()
        .map(|c| format!("<th>{}</th>", escape(c)))
        .collect();
    for p in &report.periods {
        let _ = writeln!(
            out,
            "<h2>{}</h2>\n<table>\n<tr>{header}</tr>",
            escape(&p.label())
        );
        for r in report.rows.iter().filter(|r| r.period == *p) {
            out.push_str("<tr>");
            for (i, c) in cells(report.net, r).iter().enumerate() {
                if i == CLASS_COLUMN && r.result.class.is_some() {
                    let _ = write!(
                        out,
                        "<td><span class=\"swatch\" style=\"background:{}\"></span> {}</td>",
                        class_colour(r.result.class),
                        escape(c)
                    );
                } else {
                    let _ = write!(out, "<td>{}</td>", escape(c));
                }
            }
            out.push_str("</tr>\n");
        }
        out.push_str("</table>\n");
    }
    let _ = write!(
        out,
        "<h2>达标率 Attainment rate</h2>\n<table>\n<tr><th></th>"
    );
    for p in &report.periods {
        let _ = write!(out, "<th>{}</th>", escape(&p.label()));
    }
    out.push_str("<th>period</th></tr>\n");
    for line in rates(report) {
        let _ = write!(out, "<tr><th>{}</th>", escape(&line.label));
        for v in &line.per_period {
            let _ = write!(out, "<td>{}</td>", pct(*v));
        }
        let _ = writeln!(out, "<td>{}</td></tr>", pct(line.whole));
    }
    out.push_str("</table>\n</body></html>\n");
    out
}

/// Runs the command: reads, judges, prints.
///
/// # Errors
/// [`ReportError`]: a bad option, a config without what the report needs, or a failed query.
pub async fn run(cfg: &Config, o: &Options) -> Result<String, ReportError> {
    let range = Range::parse(&o.from, &o.to)?;
    let influx = influx_source(cfg, o.influx_url.as_deref())?;
    let source = QueryClient::new(&influx)?;
    let min_coverage = o.min_coverage.unwrap_or(cfg.report.min_coverage);
    let report = build(&cfg.network, &source, range, min_coverage).await?;
    Ok(match o.format {
        Format::Md => markdown(&report),
        Format::Csv => csv(&report)?,
        Format::Html => html(&report),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::network::fixtures::station;
    use crate::domain::network::River;
    use proptest::prelude::*;

    fn bureau(id: &str, name: &str) -> Bureau {
        Bureau {
            id: id.into(),
            name: name.into(),
            duty: Default::default(),
            operators: None,
            escalation: None,
        }
    }

    fn net_named(name: &str) -> Network {
        let mut s = station("shijiao", "qingyuan", 2, true);
        s.name = name.into();
        s.river = "bei".into();
        s.cadence = std::time::Duration::from_secs(4 * 3600);
        Network {
            bureaus: vec![
                bureau("guangzhou", "广州市生态环境局"),
                bureau("qingyuan", "清远市生态环境局"),
            ],
            rivers: vec![River {
                id: "bei".into(),
                name: "北江".into(),
            }],
            stations: vec![s],
            index: Default::default(),
        }
    }

    fn net() -> Network {
        net_named("石角(界牌)")
    }

    fn range(from: &str, to: &str) -> Range {
        Range::parse(from, to).expect("range")
    }

    /// A row judged from `means`, with `valid` of the period's expected 4-hourly slots.
    fn row<'a>(
        s: &'a Station,
        period: Period,
        means: &[(Param, f64)],
        valid: u64,
        min: f64,
    ) -> Row<'a> {
        let coverage = Coverage::of(valid, period.seconds(), s.cadence.as_secs());
        Row {
            period,
            station: s,
            result: attainment::claim(attainment::assess(s, period.start(), means), coverage, min),
            coverage,
            insufficient: !coverage.suffices(min),
            year_before: None,
            year_before_insufficient: false,
            incidents: Vec::new(),
        }
    }

    /// (from, to, period labels, days per period, title)
    type RangeCase<'a> = (&'a str, &'a str, &'a [&'a str], &'a [u64], &'a str);

    #[test]
    fn the_range_is_cut_into_utc8_months_with_partial_edges() {
        let cases: [RangeCase; 6] = [
            (
                "2025-11",
                "2026-02",
                &["2025-11", "2025-12", "2026-01", "2026-02"],
                &[30, 31, 31, 28],
                "2025-11 – 2026-02",
            ),
            ("2026-11", "2026-11", &["2026-11"], &[30], "2026-11"),
            ("2026-11-01", "2026-11-30", &["2026-11"], &[30], "2026-11"),
            (
                "2026-11-24",
                "2026-11-26",
                &["2026-11 (11-24 – 11-26)"],
                &[3],
                "2026-11-24 – 2026-11-26",
            ),
            (
                "2026-10-20",
                "2026-11",
                &["2026-10 (10-20 – 10-31)", "2026-11"],
                &[12, 30],
                "2026-10-20 – 2026-11-30",
            ),
            ("2028-02", "2028-02-29", &["2028-02"], &[29], "2028-02"),
        ];
        for (from, to, labels, days, title) in cases {
            let r = range(from, to);
            let periods = r.periods();
            let got: Vec<String> = periods.iter().map(Period::label).collect();
            assert_eq!(got, labels, "{from}..{to}");
            let got: Vec<u64> = periods.iter().map(|p| p.seconds() / 86_400).collect();
            assert_eq!(got, days, "{from}..{to}");
            assert_eq!(r.title(), title, "{from}..{to}");
        }
        let jan = range("2026-01", "2026-01").periods()[0];
        assert_eq!(
            jan.start().to_rfc3339(),
            "2025-12-31T16:00:00+00:00",
            "1 January 00:00 in UTC+8"
        );
        let leap = range("2028-02-29", "2028-02-29").periods()[0].year_before();
        assert_eq!((leap.first, leap.last), (leap.first, leap.first));
        assert_eq!(leap.first.to_string(), "2027-02-28");
        for (from, to) in [("November", "2026-11"), ("2026-11", "2026-13")] {
            assert!(matches!(Range::parse(from, to), Err(ReportError::Month(_))));
        }
        assert!(matches!(
            Range::parse("2026-11-05", "2026-11-04"),
            Err(ReportError::Backwards { .. })
        ));
    }

    #[test]
    fn the_city_is_the_bureaus_city() {
        for (name, city) in [
            ("广州市生态环境局", "广州"),
            ("清远市生态环境局", "清远"),
            ("Guangzhou EEB", "Guangzhou EEB"),
            ("市生态环境局", "市生态环境局"),
        ] {
            assert_eq!(city_name(&bureau("x", name)), city, "{name}");
        }
    }

    fn two_months(n: &Network, valid_nov: u64) -> Report<'_> {
        let s = &n.stations[0];
        let r = range("2026-10", "2026-11");
        let periods = r.periods();
        let mut november = row(
            s,
            periods[1],
            &[(Param::Nh3n, 1.3), (Param::Tp, 0.16)],
            valid_nov,
            0.75,
        );
        november.year_before = Class::new(3);
        november.incidents = vec!["inc-1".into(), "inc-2".into()];
        Report {
            net: n,
            range: r,
            rows: vec![
                row(
                    s,
                    periods[0],
                    &[(Param::Nh3n, 0.4), (Param::Do, 7.0)],
                    186,
                    0.75,
                ),
                november,
            ],
            periods,
            min_coverage: 0.75,
        }
    }

    #[test]
    fn markdown_and_csv_golden() {
        let n = net();
        let report = two_months(&n, 180);
        let md = markdown(&report);
        assert!(
            md.starts_with(
                "# 跨界断面水质达标情况 Boundary-section attainment, 2026-10 – 2026-11\n"
            ),
            "{md}"
        );
        assert!(md.contains("| 清远 | 石角(界牌) (shijiao) | 北江 | 清远→广州 | Ⅱ | Ⅱ | — | 是 yes |  | 100.0% (186/186) | 0 |"), "{md}");
        assert!(md.contains("| 清远 | 石角(界牌) (shijiao) | 北江 | 清远→广州 | Ⅱ | Ⅳ | Ⅲ | 否 no | 氨氮/1.6、总磷/0.6 | 100.0% (180/180) | 2 |"), "{md}");
        assert!(md.contains("| 清远 | 100.0% | 0.0% | 50.0% |"), "{md}");
        assert!(
            md.contains("| 全部 overall | 100.0% | 0.0% | 50.0% |"),
            "{md}"
        );
        assert!(md.contains("from a coverage of 75%"), "{md}");
        let csv = csv(&report).expect("csv");
        assert!(csv.starts_with("kind,month,city,station,name,river,target_class,class,class_year_before,met,exceeding,rate_percent,city_name,period_from,period_to,valid_readings,expected_readings,coverage_percent,insufficient_data,incidents,incident_ids\n"), "{csv}");
        assert!(
            csv.contains(
                "section,2026-11,qingyuan,shijiao,石角(界牌),bei,2,4,3,false,nh3n/1.60;tp/0.60,,清远,2026-11-01,2026-11-30,180,180,100.0,false,2,inc-1;inc-2\n"
            ),
            "{csv}"
        );
        assert!(
            csv.contains(
                "rate,2026-10..2026-11,all,,,,,,,,,50.0,全部 overall,2026-10-01,2026-11-30,,,,,,\n"
            ),
            "{csv}"
        );
    }

    /// Three days of November at a 4-hourly cadence: 18 of 180 readings, no class claimed.
    #[test]
    fn three_days_of_a_month_claim_no_class() {
        let n = net();
        let report = two_months(&n, 18);
        let md = markdown(&report);
        assert!(md.contains("| 清远 | 石角(界牌) (shijiao) | 北江 | 清远→广州 | Ⅱ | 数据不足 insufficient data | Ⅲ | — |  | 10.0% (18/180) | 2 |"), "{md}");
        assert!(
            md.contains("| 全部 overall | 100.0% | — | 100.0% |"),
            "the insufficient month is not evaluated: {md}"
        );
        let csv = csv(&report).expect("csv");
        assert!(
            csv.contains("section,2026-11,qingyuan,shijiao,石角(界牌),bei,2,,3,,,,清远,2026-11-01,2026-11-30,18,180,10.0,true,2,"),
            "{csv}"
        );
        let html = html(&report);
        assert!(html.contains(">数据不足</div>"), "{html}");
    }

    #[test]
    fn html_is_rendered_from_the_rows() {
        let n = net_named("石角<b>界牌</b> & \"long\"");
        let report = two_months(&n, 180);
        let html = html(&report);
        assert!(html.starts_with("<!DOCTYPE html>"), "{html}");
        assert!(html.contains(
            "<title>跨界断面水质达标情况 Boundary-section attainment, 2026-10 – 2026-11</title>"
        ));
        assert!(html.contains("<div class=\"legend\""), "{html}");
        for n in 1..=6 {
            let c = Class::new(n).expect("class");
            assert!(
                html.contains(&format!(
                    "background:{}\"></span>{} 类",
                    class_colour(Some(c)),
                    c.roman()
                )),
                "legend of class {n}: {html}"
            );
        }
        assert!(html.contains("swatch missed"), "legend of the red border");
        assert_eq!(html.matches("class=\"cell").count(), 2, "{html}");
        assert_eq!(html.matches("class=\"cell missed\"").count(), 1, "{html}");
        assert!(html.contains("石角&lt;b&gt;界牌&lt;/b&gt; &amp; &quot;long&quot;"));
        assert!(!html.contains("<b>"), "no markup from data: {html}");
        assert!(html.contains("<td>清远</td>"), "{html}");
        assert!(!html.contains("<td>清远市生态环境局</td>"), "{html}");
        assert!(!html.contains("<svg") && !html.contains("|---"), "{html}");
        let one = Report {
            periods: range("2026-11", "2026-11").periods(),
            range: range("2026-11", "2026-11"),
            rows: report.rows[1..].to_vec(),
            ..report
        };
        let html = super::html(&one);
        assert!(
            html.contains("<h1>跨界断面水质达标情况 Boundary-section attainment, 2026-11</h1>"),
            "{html}"
        );
    }

    proptest! {
        /// Any station name — commas, quotes, CR, LF, markup — comes back whole from the CSV.
        #[test]
        fn any_station_name_round_trips_through_the_csv(name in "\\PC*|[,\"\r\n a-z石角]{0,12}") {
            let n = net_named(&name);
            let report = two_months(&n, 180);
            let text = csv(&report).expect("csv");
            let mut reader = csv::Reader::from_reader(text.as_bytes());
            let names: Vec<String> = reader
                .records()
                .map(|r| r.expect("a record"))
                .filter(|r| &r[0] == "section")
                .map(|r| r[4].to_string())
                .collect();
            prop_assert_eq!(names, vec![name.clone(), name]);
        }
    }
}
