//! The standard Prometheus process metrics of the daemon itself — CPU seconds, resident and
//! virtual memory, open and maximum file descriptors, start time — read from `/proc/self` at
//! each scrape. Fed by the `/metrics` handler; feeds its text exposition. Names as the
//! Prometheus client libraries export them
//! (<https://prometheus.io/docs/instrumenting/writing_clientlibs/#process-metrics>), so
//! stock dashboards and alerts apply.

use std::fmt::Write as _;

/// One reading of `/proc/self`: what the process metrics say.
#[derive(Debug, Clone, PartialEq)]
pub struct ProcessSample {
    /// User and system CPU time, seconds.
    pub cpu_seconds: f64,
    /// Resident set size, bytes.
    pub resident_bytes: u64,
    /// Virtual memory size, bytes.
    pub virtual_bytes: u64,
    /// Open file descriptors (sockets, spool and log files included).
    pub open_fds: u64,
    /// The soft limit on open file descriptors (`RLIMIT_NOFILE`); `None` when unlimited.
    pub max_fds: Option<u64>,
    /// When the process started, seconds since the Unix epoch.
    pub start_time_seconds: f64,
}

/// Reads `/proc/self`; errors are procfs's (no `/proc`, or a field it cannot parse), and the
/// caller then leaves the process metrics out of that scrape.
pub fn sample() -> procfs::ProcResult<ProcessSample> {
    let me = procfs::process::Process::myself()?;
    let stat = me.stat()?;
    let ticks = procfs::ticks_per_second() as f64;
    let max_fds = match me.limits()?.max_open_files.soft_limit {
        procfs::process::LimitValue::Value(n) => Some(n),
        procfs::process::LimitValue::Unlimited => None,
    };
    Ok(ProcessSample {
        cpu_seconds: (stat.utime + stat.stime) as f64 / ticks,
        resident_bytes: stat.rss * procfs::page_size(),
        virtual_bytes: stat.vsize,
        open_fds: me.fd_count()? as u64,
        max_fds,
        start_time_seconds: procfs::boot_time_secs()? as f64 + stat.starttime as f64 / ticks,
    })
}

/// Appends the sample in the Prometheus text format.
pub fn prometheus(s: &ProcessSample, out: &mut String) {
    let mut metric = |name: &str, kind: &str, help: &str, value: String| {
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
        );
    };
    metric(
        "process_cpu_seconds_total",
        "counter",
        "Total user and system CPU time spent in seconds.",
        format!("{:.2}", s.cpu_seconds),
    );
    metric(
        "process_resident_memory_bytes",
        "gauge",
        "Resident memory size in bytes.",
        s.resident_bytes.to_string(),
    );
    metric(
        "process_virtual_memory_bytes",
        "gauge",
        "Virtual memory size in bytes.",
        s.virtual_bytes.to_string(),
    );
    metric(
        "process_open_fds",
        "gauge",
        "Number of open file descriptors.",
        s.open_fds.to_string(),
    );
    if let Some(max) = s.max_fds {
        metric(
            "process_max_fds",
            "gauge",
            "Maximum number of open file descriptors.",
            max.to_string(),
        );
    }
    metric(
        "process_start_time_seconds",
        "gauge",
        "Start time of the process since unix epoch in seconds.",
        format!("{:.2}", s.start_time_seconds),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_test_process_is_sampled_sensibly() {
        let s = sample().expect("/proc/self");
        assert!(s.resident_bytes > 1 << 20, "{s:?}");
        assert!(s.virtual_bytes >= s.resident_bytes, "{s:?}");
        assert!(s.open_fds >= 3, "{s:?}");
        assert!(s.max_fds.is_none_or(|m| m >= s.open_fds), "{s:?}");
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_secs_f64();
        // Started within the last day, not in the future (boot time has second resolution).
        assert!(
            s.start_time_seconds <= now + 1.0 && s.start_time_seconds > now - 86_400.0,
            "{s:?}"
        );
        let mut text = String::new();
        prometheus(&s, &mut text);
        for name in [
            "process_cpu_seconds_total",
            "process_resident_memory_bytes",
            "process_open_fds",
            "process_start_time_seconds",
        ] {
            assert!(text.contains(&format!("\n{name} ")), "{name} in {text}");
        }
    }
}
