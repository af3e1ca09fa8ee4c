//! The `process_*` metrics every Prometheus exporter serves (as client_golang's process
//! collector does), read from `/proc/self` on Linux and encoded by prometheus-client as const
//! metrics. Elsewhere the section is empty.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric as _};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::registry::Unit;

/// USER_HZ: the unit of CPU times in `/proc/<pid>/stat`, 100 on every Linux architecture.
const CLOCK_TICKS_PER_SECOND: f64 = 100.0;

/// What `/proc` says about this process; `None` where it could not be read.
#[derive(Debug, Default)]
struct Process {
    cpu_seconds: Option<f64>,
    open_fds: Option<f64>,
    max_fds: Option<f64>,
    virtual_bytes: Option<f64>,
    resident_bytes: Option<f64>,
    start_time_seconds: Option<f64>,
}

impl Process {
    fn read() -> Option<Process> {
        let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
        // Fields after the command name (which may contain spaces) start at state, field 3.
        let rest = stat.rfind(')').and_then(|i| stat.get(i + 2..))?;
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
        Some(Process {
            cpu_seconds: match (field(14), field(15)) {
                (Some(user), Some(system)) => Some((user + system) / CLOCK_TICKS_PER_SECOND),
                _ => None,
            },
            open_fds: std::fs::read_dir("/proc/self/fd").map(|d| d.count() as f64).ok(),
            max_fds: std::fs::read_to_string("/proc/self/limits").ok().and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("Max open files"))
                    .and_then(|l| l.split_whitespace().nth(3))
                    .and_then(|v| v.parse::<f64>().ok())
            }),
            virtual_bytes: kib("VmSize:").map(|k| k * 1024.0),
            resident_bytes: kib("VmRSS:").map(|k| k * 1024.0),
            start_time_seconds: match (field(22), boot_time) {
                (Some(ticks), Some(boot)) => Some(boot + ticks / CLOCK_TICKS_PER_SECOND),
                _ => None,
            },
        })
    }
}

impl Collector for Process {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        // (name less unit and `_total`, help, unit, type, value), client_golang's names and HELP.
        type Row<'a> = (&'a str, &'a str, Option<Unit>, MetricType, Option<f64>);
        let metrics: [Row; 6] = [
            (
                "process_cpu",
                "Total user and system CPU time spent in seconds.",
                Some(Unit::Seconds),
                MetricType::Counter,
                self.cpu_seconds,
            ),
            ("process_open_fds", "Number of open file descriptors.", None, MetricType::Gauge, self.open_fds),
            ("process_max_fds", "Maximum number of open file descriptors.", None, MetricType::Gauge, self.max_fds),
            (
                "process_virtual_memory",
                "Virtual memory size in bytes.",
                Some(Unit::Bytes),
                MetricType::Gauge,
                self.virtual_bytes,
            ),
            (
                "process_resident_memory",
                "Resident memory size in bytes.",
                Some(Unit::Bytes),
                MetricType::Gauge,
                self.resident_bytes,
            ),
            (
                "process_start_time",
                "Start time of the process since unix epoch in seconds.",
                Some(Unit::Seconds),
                MetricType::Gauge,
                self.start_time_seconds,
            ),
        ];
        for (name, help, unit, kind, value) in &metrics {
            let Some(value) = *value else { continue };
            let mut m = encoder.encode_descriptor(name, help, unit.as_ref(), *kind)?;
            match kind {
                MetricType::Counter => ConstCounter::new(value).encode(m)?,
                // File descriptors and bytes are whole numbers: written as integers.
                _ => crate::exposition::encode_gauge(&mut m, value)?,
            }
        }
        Ok(())
    }
}

/// The process metrics as OpenMetrics text (without `# EOF`); empty where `/proc` is missing.
pub fn render_openmetrics() -> String {
    Process::read().map(crate::exposition::encode_collector).unwrap_or_default()
}

/// The process metrics as text format 0.0.4.
pub fn render() -> String {
    let mut out = String::new();
    crate::exposition::openmetrics_to_text(&render_openmetrics(), &mut out);
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
