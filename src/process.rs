//! The `process_*` metrics every Prometheus exporter serves (as client_golang's process
//! collector does), read from `/proc/self` on Linux. Elsewhere the section is empty.

use std::fmt::Write as _;

/// USER_HZ: the unit of CPU times in `/proc/<pid>/stat`, 100 on every Linux architecture.
const CLOCK_TICKS_PER_SECOND: f64 = 100.0;

/// The process metrics as exposition text.
pub fn render() -> String {
    let mut out = String::with_capacity(1024);
    let Some(stat) = std::fs::read_to_string("/proc/self/stat").ok() else { return out };
    // Fields after the command name (which may contain spaces) start at state, field 3.
    let Some(rest) = stat.rfind(')').map(|i| &stat[i + 2..]) else { return out };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field = |n: usize| fields.get(n - 3).and_then(|v| v.parse::<f64>().ok());
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kib = |key: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
    };
    let boot_time = std::fs::read_to_string("/proc/stat")
        .ok()
        .and_then(|s| s.lines().find_map(|l| l.strip_prefix("btime ").and_then(|v| v.trim().parse::<f64>().ok())));
    let open_fds = std::fs::read_dir("/proc/self/fd").map(|d| d.count() as f64).ok();
    let max_fds = std::fs::read_to_string("/proc/self/limits").ok().and_then(|s| {
        s.lines()
            .find(|l| l.starts_with("Max open files"))
            .and_then(|l| l.split_whitespace().nth(3))
            .and_then(|v| v.parse::<f64>().ok())
    });
    let mut metric = |name: &str, kind: &str, help: &str, value: Option<f64>| {
        if let Some(v) = value {
            let _ = write!(out, "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {v}\n");
        }
    };
    let cpu = match (field(14), field(15)) {
        (Some(user), Some(system)) => Some((user + system) / CLOCK_TICKS_PER_SECOND),
        _ => None,
    };
    metric("process_cpu_seconds_total", "counter", "Total user and system CPU time spent in seconds.", cpu);
    metric("process_open_fds", "gauge", "Number of open file descriptors.", open_fds);
    metric("process_max_fds", "gauge", "Maximum number of open file descriptors.", max_fds);
    metric(
        "process_virtual_memory_bytes",
        "gauge",
        "Virtual memory size in bytes.",
        kib("VmSize:").map(|k| k * 1024.0),
    );
    metric(
        "process_resident_memory_bytes",
        "gauge",
        "Resident memory size in bytes.",
        kib("VmRSS:").map(|k| k * 1024.0),
    );
    let start = match (field(22), boot_time) {
        (Some(ticks), Some(boot)) => Some(boot + ticks / CLOCK_TICKS_PER_SECOND),
        _ => None,
    };
    metric("process_start_time_seconds", "gauge", "Start time of the process since unix epoch in seconds.", start);
    out
}

#[cfg(test)]
mod tests {
    #[test]
    #[cfg(target_os = "linux")]
    fn reads_this_process() {
        let text = super::render();
        for name in [
            "process_cpu_seconds_total",
            "process_open_fds",
            "process_max_fds",
            "process_virtual_memory_bytes",
            "process_resident_memory_bytes",
            "process_start_time_seconds",
        ] {
            let line =
                text.lines().find(|l| l.starts_with(&format!("{name} "))).unwrap_or_else(|| panic!("{name} in {text}"));
            let value: f64 = line.split(' ').nth(1).unwrap().parse().unwrap();
            assert!(value >= 0.0, "{line}");
        }
        let rss = text.lines().find_map(|l| l.strip_prefix("process_resident_memory_bytes ")).unwrap();
        assert!(rss.parse::<f64>().unwrap() > 1e6, "a test process uses more than 1 MB: {rss}");
        let start = text.lines().find_map(|l| l.strip_prefix("process_start_time_seconds ")).unwrap();
        let age = crate::timeutil::now_unix() as f64 - start.parse::<f64>().unwrap();
        assert!((-5.0..3600.0).contains(&age), "started {age} s ago");
    }
}
