//! `riverwatch report`: the monthly attainment report of the boundary sections (WATER.md §8.1),
//! from the data the daemon stored, as Markdown, CSV or HTML with an inline SVG chart.
//!
//! Fed by the config (the boundary sections, their targets and cities, `[influxdb]`) and by
//! InfluxDB; judged by the pure `domain::attainment`. Months are calendar months in China
//! Standard Time (UTC+8). For each month and each parameter with class limits, one InfluxQL
//! statement asks for the mean of the validated values (`<key>_qc` neither 3 suspect nor 4
//! fail) per section; the same for the month a year earlier (上年同期).
//!
//! Query path: InfluxQL through the store's [`QueryClient`] (`/query` for both APIs; v2 through
//! its v1-compatibility endpoint and the bucket's DBRP mapping). The handover column assumes
//! the operating city is the upstream one (true of the configured sections).

use crate::config::{Config, InfluxApi, InfluxConfig};
use crate::domain::attainment::{self, SectionMonth};
use crate::domain::gb3838::{self, Class, WaterBody};
use crate::domain::network::{Network, Station};
use crate::domain::param::Param;
use crate::store::influx::query::{QueryClient, QueryError};
use chrono::{DateTime, Datelike, NaiveDate, TimeZone, Utc};
use std::collections::HashMap;
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
    /// First month, as YYYY-MM (or a date in it).
    #[arg(long)]
    pub from: String,
    /// Last month, as YYYY-MM (or a date in it).
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
            | ReportError::NoBoundarySection => true,
            ReportError::Client(e) => {
                matches!(e, BuildError::Password(_) | BuildError::Token(_))
            }
            ReportError::Query(_) => false,
        }
    }
}

/// The `[influxdb]` section `report` reads from: the config's, its URL replaced by
/// `--influx-url` when given; with only `--influx-url`, the v1 API and database "water".
fn influx_source(cfg: &Config, influx_url: Option<&str>) -> Result<InfluxConfig, ReportError> {
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
    /// `2026-11` or `2026-11-26`.
    ///
    /// # Errors
    /// [`ReportError::Month`] for any other text.
    pub fn parse(text: &str) -> Result<Month, ReportError> {
        let date = NaiveDate::parse_from_str(text, "%Y-%m-%d")
            .or_else(|_| NaiveDate::parse_from_str(&format!("{text}-01"), "%Y-%m-%d"))
            .map_err(|_| ReportError::Month(text.to_owned()))?;
        Ok(Month {
            year: date.year(),
            month: date.month(),
        })
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

    fn year_before(self) -> Month {
        Month {
            year: self.year - 1,
            ..self
        }
    }

    /// The first instant of the month in UTC+8.
    fn start(self) -> DateTime<Utc> {
        crate::domain::hj212::cst()
            .with_ymd_and_hms(self.year, self.month, 1, 0, 0, 0)
            .single()
            .map_or(DateTime::<Utc>::MIN_UTC, |t| t.with_timezone(&Utc))
    }

    fn label(self) -> String {
        format!("{:04}-{:02}", self.year, self.month)
    }
}

/// The months from `from` to `to`, both included.
pub fn months(from: Month, to: Month) -> Vec<Month> {
    let mut out = Vec::new();
    let mut m = from;
    while m <= to && out.len() < 1200 {
        out.push(m);
        m = m.next();
    }
    out
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

/// Monthly means of validated values per (station, parameter).
async fn means(
    source: &QueryClient,
    sections: &[&Station],
    month: Month,
) -> Result<HashMap<(String, Param), f64>, QueryError> {
    let ids: Vec<&str> = sections.iter().map(|s| s.id.as_str()).collect();
    let (from, to) = (month.start(), month.next().start());
    let params = judged_params();
    let statements: Vec<String> = params
        .iter()
        .map(|p| {
            let k = p.key();
            format!(
                "SELECT mean(\"{k}\") FROM \"water_quality\" WHERE \"station\" =~ /^({})$/ AND \"{k}_qc\" != 3 AND \"{k}_qc\" != 4 AND time >= '{}' AND time < '{}' GROUP BY \"station\"",
                ids.join("|"),
                from.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                to.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            )
        })
        .collect();
    let results = source.influxql(&statements).await?;
    let mut out = HashMap::new();
    for (p, r) in params.iter().zip(&results) {
        for series in r["series"].as_array().into_iter().flatten() {
            let station = series["tags"]["station"].as_str().unwrap_or_default();
            if let Some(v) = series["values"][0][1].as_f64() {
                out.insert((station.to_string(), *p), v);
            }
        }
    }
    Ok(out)
}

/// One row of the report.
pub struct Row<'a> {
    pub month: Month,
    pub station: &'a Station,
    pub result: SectionMonth,
    pub year_before: Option<Class>,
}

/// Reads and judges every boundary section for every month in the range.
pub async fn build<'a>(
    net: &'a Network,
    source: &QueryClient,
    range: &[Month],
) -> Result<Vec<Row<'a>>, ReportError> {
    let sections: Vec<&Station> = net.stations.iter().filter(|s| s.boundary).collect();
    if sections.is_empty() {
        return Err(ReportError::NoBoundarySection);
    }
    let mut rows = Vec::new();
    for &month in range {
        let now = means(source, &sections, month).await?;
        let before = means(source, &sections, month.year_before()).await?;
        for s in &sections {
            let pick = |m: &HashMap<(String, Param), f64>| -> Vec<(Param, f64)> {
                judged_params()
                    .into_iter()
                    .filter_map(|p| m.get(&(s.id.clone(), p)).map(|v| (p, *v)))
                    .collect()
            };
            rows.push(Row {
                month,
                station: s,
                result: attainment::assess(s, month.start(), &pick(&now)),
                year_before: attainment::assess(s, month.year_before().start(), &pick(&before))
                    .class,
            });
        }
    }
    Ok(rows)
}

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

fn met_text(met: Option<bool>) -> &'static str {
    match met {
        Some(true) => "是 yes",
        Some(false) => "否 no",
        None => "— not evaluated",
    }
}

fn handover(net: &Network, s: &Station) -> String {
    let name = |id: &str| net.bureau(id).map_or(id.to_string(), |b| b.name.clone());
    let others: Vec<String> = net
        .bureaus
        .iter()
        .filter(|b| b.id != s.city)
        .map(|b| b.name.clone())
        .collect();
    format!("{}→{}", name(&s.city), others.join("、"))
}

/// 达标率 per city (operating bureau) and overall: (label, per-month rates, period rate).
pub fn rates(
    net: &Network,
    rows: &[Row],
    range: &[Month],
) -> Vec<(String, Vec<Option<f64>>, Option<f64>)> {
    let mut groups: Vec<(String, Option<String>)> = net
        .bureaus
        .iter()
        .filter(|b| rows.iter().any(|r| r.station.city == b.id))
        .map(|b| (b.name.clone(), Some(b.id.clone())))
        .collect();
    groups.push(("全部 overall".into(), None));
    groups
        .into_iter()
        .map(|(label, city)| {
            let of = |r: &&Row| city.as_ref().is_none_or(|c| *c == r.station.city);
            let per_month = range
                .iter()
                .map(|m| {
                    attainment::rate(
                        rows.iter()
                            .filter(of)
                            .filter(|r| r.month == *m)
                            .map(|r| &r.result),
                    )
                })
                .collect();
            let period = attainment::rate(rows.iter().filter(of).map(|r| &r.result));
            (label, per_month, period)
        })
        .collect()
}

fn pct(v: Option<f64>) -> String {
    v.map_or("—".into(), |v| format!("{v:.1}%"))
}

/// The Markdown report.
pub fn markdown(net: &Network, rows: &[Row], range: &[Month]) -> String {
    let mut out = String::new();
    let span = format!(
        "{} – {}",
        range.first().map_or(String::new(), |m| m.label()),
        range.last().map_or(String::new(), |m| m.label())
    );
    let _ = writeln!(
        out,
        "# 跨界断面水质达标情况 Boundary-section attainment, {span}\n"
    );
    let _ = writeln!(
        out,
        "Class of each month: single-factor (GB 3838-2002) on the month's mean of validated values (UTC+8 months). Exceeding items: item/multiple (C − C_target)/C_target.\n"
    );
    for &m in range {
        let _ = writeln!(out, "## {}\n", m.label());
        let _ = writeln!(out, "| 责任城市 City | 交接断面 Section | 所处河流 River | 交接关系 Handover | 水质目标 Target | 水质类别 Class | 上年同期 Year before | 达标 Met | 主要超标项目 Main exceeding items |");
        let _ = writeln!(out, "|---|---|---|---|---|---|---|---|---|");
        for r in rows.iter().filter(|r| r.month == m) {
            let s = r.station;
            let city = net
                .bureau(&s.city)
                .map_or(s.city.as_str(), |b| b.name.as_str());
            let river = net
                .river(&s.river)
                .map_or(s.river.as_str(), |x| x.name.as_str());
            let _ = writeln!(
                out,
                "| {city} | {} ({}) | {river} | {} | {} | {} | {} | {} | {} |",
                s.name,
                s.id,
                handover(net, s),
                s.target.roman(),
                class_text(r.result.class),
                class_text(r.year_before),
                met_text(r.result.met),
                items_text(&r.result, true),
            );
        }
        let _ = writeln!(out);
    }
    let _ = writeln!(out, "## 达标率 Attainment rate\n");
    let mut header = "| | ".to_string();
    for m in range {
        header.push_str(&format!("{} | ", m.label()));
    }
    header.push_str("period |");
    let _ = writeln!(out, "{header}");
    let _ = writeln!(out, "|---|{}---|", "---|".repeat(range.len()));
    for (label, per_month, period) in rates(net, rows, range) {
        let cells: Vec<String> = per_month.iter().map(|v| pct(*v)).collect();
        let _ = writeln!(out, "| {label} | {} | {} |", cells.join(" | "), pct(period));
    }
    out
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// CSV: one `section` row per section-month, then one `rate` row per city and the overall
/// rate for the whole period.
pub fn csv(net: &Network, rows: &[Row], range: &[Month]) -> String {
    let mut out = String::from(
        "kind,month,city,station,name,river,target_class,class,class_year_before,met,exceeding,rate_percent\n",
    );
    let num = |c: Option<Class>| c.map_or(String::new(), |c| c.number().to_string());
    for r in rows {
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
        let _ = writeln!(
            out,
            "section,{},{},{},{},{},{},{},{},{},{},",
            r.month.label(),
            s.city,
            s.id,
            csv_field(&s.name),
            s.river,
            s.target.number(),
            num(r.result.class),
            num(r.year_before),
            r.result.met.map_or(String::new(), |m| m.to_string()),
            exceeding.join(";"),
        );
    }
    let span = format!(
        "{}..{}",
        range.first().map_or(String::new(), |m| m.label()),
        range.last().map_or(String::new(), |m| m.label())
    );
    for (label, _, period) in rates(net, rows, range) {
        let city = net
            .bureaus
            .iter()
            .find(|b| b.name == label)
            .map_or("all", |b| b.id.as_str());
        let _ = writeln!(
            out,
            "rate,{span},{city},,,,,,,,,{}",
            period.map_or(String::new(), |v| format!("{v:.1}"))
        );
    }
    out
}

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

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The class-per-month chart: one row per section, one cell per month, coloured by class,
/// outlined in red where the target was missed.
pub fn svg(rows: &[Row], range: &[Month]) -> String {
    let mut sections: Vec<&Station> = Vec::new();
    for r in rows {
        if !sections.iter().any(|s| s.id == r.station.id) {
            sections.push(r.station);
        }
    }
    let (left, top, cell) = (180, 30, 48);
    let width = left + cell * range.len() + 10;
    let height = top + cell * sections.len() + 10;
    let mut out = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" role=\"img\" aria-label=\"class per month per section\" font-family=\"sans-serif\" font-size=\"12\">"
    );
    for (i, m) in range.iter().enumerate() {
        let _ = write!(
            out,
            "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">{}</text>",
            left + cell * i + cell / 2,
            top - 10,
            m.label()
        );
    }
    for (j, s) in sections.iter().enumerate() {
        let y = top + cell * j;
        let _ = write!(
            out,
            "<text x=\"{}\" y=\"{}\" text-anchor=\"end\">{} (目标 {})</text>",
            left - 8,
            y + cell / 2 + 4,
            escape(&s.name),
            s.target.roman()
        );
        for (i, m) in range.iter().enumerate() {
            let r = rows.iter().find(|r| r.month == *m && r.station.id == s.id);
            let class = r.and_then(|r| r.result.class);
            let missed = r.is_some_and(|r| r.result.met == Some(false));
            let stroke = if missed { "#C4162A" } else { "#FFFFFF" };
            let _ = write!(
                out,
                "<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"{}\" stroke=\"{stroke}\" stroke-width=\"3\"><title>{} {}: {}</title></rect><text x=\"{}\" y=\"{}\" text-anchor=\"middle\">{}</text>",
                left + cell * i + 2,
                y + 2,
                cell - 4,
                cell - 4,
                class_colour(class),
                escape(&s.name),
                m.label(),
                class_text(class),
                left + cell * i + cell / 2,
                y + cell / 2 + 4,
                class_text(class)
            );
        }
    }
    out.push_str("</svg>");
    out
}

/// HTML: the chart, then the Markdown tables as HTML tables.
pub fn html(net: &Network, rows: &[Row], range: &[Month]) -> String {
    let mut out = String::from(
        "<!DOCTYPE html>\n<html lang=\"zh-CN\"><head><meta charset=\"utf-8\"><title>riverwatch attainment report</title><style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse;margin-bottom:1.5em}td,th{border:1px solid #ccc;padding:4px 8px}</style></head><body>\n",
    );
    let md = markdown(net, rows, range);
    let mut in_table = false;
    for line in md.lines() {
        if let Some(h) = line.strip_prefix("# ") {
            let _ = writeln!(out, "<h1>{}</h1>\n{}", escape(h), svg(rows, range));
        } else if let Some(h) = line.strip_prefix("## ") {
            let _ = writeln!(out, "<h2>{}</h2>", escape(h));
        } else if line.starts_with("|---") {
            continue;
        } else if let Some(cells) = line.strip_prefix('|') {
            let tag = if in_table { "td" } else { "th" };
            if !in_table {
                out.push_str("<table>\n");
                in_table = true;
            }
            let cells: Vec<String> = cells
                .trim_end_matches('|')
                .split('|')
                .map(|c| format!("<{tag}>{}</{tag}>", escape(c.trim())))
                .collect();
            let _ = writeln!(out, "<tr>{}</tr>", cells.concat());
        } else {
            if in_table {
                out.push_str("</table>\n");
                in_table = false;
            }
            if !line.is_empty() {
                let _ = writeln!(out, "<p>{}</p>", escape(line));
            }
        }
    }
    if in_table {
        out.push_str("</table>\n");
    }
    out.push_str("</body></html>\n");
    out
}

/// Runs the command: reads, judges, prints.
///
/// # Errors
/// [`ReportError`]: a bad option, a config without what the report needs, or a failed query.
pub async fn run(cfg: &Config, o: &Options) -> Result<String, ReportError> {
    let (from, to) = (Month::parse(&o.from)?, Month::parse(&o.to)?);
    if from > to {
        return Err(ReportError::Backwards {
            from: o.from.clone(),
            to: o.to.clone(),
        });
    }
    let range = months(from, to);
    let influx = influx_source(cfg, o.influx_url.as_deref())?;
    let source = QueryClient::new(&influx)?;
    let rows = build(&cfg.network, &source, &range).await?;
    Ok(match o.format {
        Format::Md => markdown(&cfg.network, &rows, &range),
        Format::Csv => csv(&cfg.network, &rows, &range),
        Format::Html => html(&cfg.network, &rows, &range),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::network::fixtures::station;
    use crate::domain::network::{Bureau, River};

    fn net() -> Network {
        let mut s = station("shijiao", "qingyuan", 2, true);
        s.name = "石角(界牌)".into();
        s.river = "bei".into();
        Network {
            bureaus: vec![
                Bureau {
                    id: "guangzhou".into(),
                    name: "广州市生态环境局".into(),
                    duty: Default::default(),
                    operators: None,
                    escalation: None,
                },
                Bureau {
                    id: "qingyuan".into(),
                    name: "清远市生态环境局".into(),
                    duty: Default::default(),
                    operators: None,
                    escalation: None,
                },
            ],
            rivers: vec![River {
                id: "bei".into(),
                name: "北江".into(),
            }],
            stations: vec![s],
            index: Default::default(),
        }
    }

    #[test]
    fn months_run_across_the_year_end_in_china_time() {
        let range = months(
            Month::parse("2025-11").expect("month"),
            Month::parse("2026-02-14").expect("date"),
        );
        let labels: Vec<String> = range.iter().map(|m| m.label()).collect();
        assert_eq!(labels, ["2025-11", "2025-12", "2026-01", "2026-02"]);
        assert_eq!(
            range[2].start().to_rfc3339(),
            "2025-12-31T16:00:00+00:00",
            "1 January 00:00 in UTC+8"
        );
        assert!(Month::parse("November").is_err());
    }

    #[test]
    fn markdown_golden() {
        let n = net();
        let s = &n.stations[0];
        let range = [
            Month {
                year: 2026,
                month: 10,
            },
            Month {
                year: 2026,
                month: 11,
            },
        ];
        let rows = vec![
            Row {
                month: range[0],
                station: s,
                result: attainment::assess(
                    s,
                    range[0].start(),
                    &[(Param::Nh3n, 0.4), (Param::Do, 7.0)],
                ),
                year_before: None,
            },
            Row {
                month: range[1],
                station: s,
                result: attainment::assess(
                    s,
                    range[1].start(),
                    &[(Param::Nh3n, 1.3), (Param::Tp, 0.16)],
                ),
                year_before: Class::new(3),
            },
        ];
        let md = markdown(&n, &rows, &range);
        assert!(md.contains("| 清远市生态环境局 | 石角(界牌) (shijiao) | 北江 | 清远市生态环境局→广州市生态环境局 | Ⅱ | Ⅱ | — | 是 yes |  |"), "{md}");
        assert!(md.contains("| 清远市生态环境局 | 石角(界牌) (shijiao) | 北江 | 清远市生态环境局→广州市生态环境局 | Ⅱ | Ⅳ | Ⅲ | 否 no | 氨氮/1.6、总磷/0.6 |"), "{md}");
        assert!(
            md.contains("| 清远市生态环境局 | 100.0% | 0.0% | 50.0% |"),
            "{md}"
        );
        assert!(
            md.contains("| 全部 overall | 100.0% | 0.0% | 50.0% |"),
            "{md}"
        );
        let csv = csv(&n, &rows, &range);
        assert!(
            csv.contains(
                "section,2026-11,qingyuan,shijiao,石角(界牌),bei,2,4,3,false,nh3n/1.60;tp/0.60,\n"
            ),
            "{csv}"
        );
        assert!(
            csv.contains("rate,2026-10..2026-11,all,,,,,,,,,50.0\n"),
            "{csv}"
        );
        let html = html(&n, &rows, &range);
        assert!(
            html.contains("<svg") && html.contains("<td>否 no</td>"),
            "{html}"
        );
        assert_eq!(html.matches("<rect").count(), 2);
    }
}
