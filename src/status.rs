//! The status page at `/`: every job with its last poll, outcome, error and next poll, and each
//! job's recent polls, like blackbox_exporter's "recent probes". Plain HTML, inline CSS, no
//! scripts, no external assets; it shows names, domains and provider messages, never a
//! credential (none reaches the store).

use std::fmt::Write as _;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::html::escape;
use crate::store::{Health, PollLog, Store};

fn unix(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

/// `2026-11-22 10:00:00Z`.
fn clock(t: SystemTime) -> String {
    let secs = unix(t);
    let (y, m, d) = crate::timeutil::civil_from_days(secs.div_euclid(86_400));
    let s = secs.rem_euclid(86_400);
    format!("{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}Z", s / 3600, s % 3600 / 60, s % 60)
}

/// `12s ago`, `in 3m 5s`.
fn relative(t: SystemTime, now: SystemTime) -> String {
    let (d, future) = match t.duration_since(now) {
        Ok(d) => (d, true),
        Err(e) => (e.duration(), false),
    };
    let s = d.as_secs();
    let text = if s < 60 {
        format!("{s}s")
    } else if s < 3600 {
        format!("{}m {}s", s / 60, s % 60)
    } else {
        format!("{}h {}m", s / 3600, s % 3600 / 60)
    };
    if future { format!("in {text}") } else { format!("{text} ago") }
}

fn duration(d: Duration) -> String {
    if d < Duration::from_secs(1) { format!("{} ms", d.as_millis()) } else { format!("{:.2} s", d.as_secs_f64()) }
}

fn outcome(log: &PollLog) -> (String, &'static str, String) {
    match &log.outcome {
        Ok(series) => (format!("ok, {series} series"), "ok", String::new()),
        Err(e) => (format!("failed: {}", e.reason.as_str()), "fail", e.message.to_string()),
    }
}

const STYLE: &str = "body{font:14px/1.4 system-ui,sans-serif;margin:1.5em auto;max-width:110em;padding:0 1em;color:#222}\
h1{font-size:1.4em;margin:0 0 .2em}h2{font-size:1.1em;margin:1.5em 0 .4em}\
table{border-collapse:collapse;width:100%}th,td{text-align:left;padding:.3em .6em;border-bottom:1px solid #ddd;vertical-align:top}\
th{background:#f4f4f4;font-weight:600}td.msg{max-width:40em;word-break:break-word;font-family:ui-monospace,monospace;font-size:.9em}\
.ok{color:#176f2c;font-weight:600}.fail{color:#b3261e;font-weight:600}.pending{color:#8a6d00;font-weight:600}\
.muted{color:#666}nav a{margin-right:1em}details{margin:.3em 0}summary{cursor:pointer}";

/// Renders the page.
pub fn render(store: &Store) -> String {
    let jobs = store.jobs();
    let now = SystemTime::now();
    let up = jobs.iter().filter(|(_, h)| h.polls > 0 && h.up).count();
    let failing = jobs.iter().filter(|(_, h)| h.polls > 0 && !h.up).count();
    let pending = jobs.len() - up - failing;
    let mut out = String::with_capacity(8 * 1024 + jobs.len() * 2048);
    let _ = write!(
        out,
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width\">\
         <title>cdn-usage-exporter</title><style>{STYLE}</style></head><body>\
         <h1>cdn-usage-exporter</h1><p class=\"muted\">version {} (revision {}) · {}</p>\
         <nav><a href=\"/metrics\">Metrics</a><a href=\"/healthz\">Health</a><a href=\"/readyz\">Readiness</a></nav>\
         <p id=\"summary\">{} jobs: <span class=\"ok\">{up} up</span>, <span class=\"fail\">{failing} failing</span>, \
         <span class=\"pending\">{pending} waiting for a first poll</span>; {} series served.</p>",
        escape(store.version()),
        escape(store.revision()),
        clock(now),
        jobs.len(),
        store.series(),
    );
    let (shard, kept, configured) = store.shard();
    if shard.is_sharded() {
        let _ = write!(
            out,
            "<p id=\"shard\">Shard {} of {}: this process polls {kept} of the {configured} configured accounts \
             (<code>--shard {shard}</code>).</p>",
            shard.index(),
            shard.count()
        );
    }
    out.push_str(&crate::spend::render(&store.spend(unix(now)), unix(now)));
    out.push_str(
        "<h2>Jobs</h2><table id=\"jobs\"><thead><tr><th>Provider</th><th>Account</th><th>Endpoint</th><th>Domain</th>\
         <th>Last poll</th><th>Duration</th><th>Outcome</th><th>Last error</th><th>Next poll</th></tr></thead><tbody>",
    );
    for (key, h) in &jobs {
        let (text, class) = status_of(h);
        let last_poll =
            h.last_poll.map(|t| format!("{} <span class=\"muted\">({})</span>", clock(t), relative(t, now)));
        let next = h.next_poll.map(|t| relative(t, now));
        let error = h.last_error.as_ref().map(|e| &*e.message).unwrap_or("");
        let _ = write!(
            out,
            "<tr data-job=\"{}\"><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>\
             <td class=\"{class}\">{}</td><td class=\"msg\">{}</td><td>{}</td></tr>",
            escape(&key.to_string()),
            escape(key.provider),
            escape(&key.account),
            escape(key.endpoint),
            escape(key.domain.as_deref().unwrap_or("")),
            last_poll.unwrap_or_else(|| "—".into()),
            if h.polls > 0 { duration(h.last_duration) } else { "—".into() },
            escape(&text),
            escape(error),
            next.unwrap_or_else(|| "—".into()),
        );
    }
    out.push_str("</tbody></table><h2>Recent polls</h2>");
    for (key, h) in &jobs {
        let _ = write!(
            out,
            "<details{}><summary>{} <span class=\"muted\">({} poll{}, {} shown)</span></summary>\
             <table><thead><tr><th>Finished</th><th>Duration</th><th>Outcome</th><th>Message</th></tr></thead><tbody>",
            if h.polls > 0 && !h.up { " open" } else { "" },
            escape(&key.to_string()),
            h.polls,
            if h.polls == 1 { "" } else { "s" },
            h.recent.len(),
        );
        for log in h.recent.iter().rev() {
            let (text, class, message) = outcome(log);
            let _ = write!(
                out,
                "<tr><td>{}</td><td>{}</td><td class=\"{class}\">{}</td><td class=\"msg\">{}</td></tr>",
                clock(log.at),
                duration(log.duration),
                escape(&text),
                escape(&message)
            );
        }
        out.push_str("</tbody></table></details>");
    }
    out.push_str("</body></html>");
    out
}

fn status_of(h: &Health) -> (String, &'static str) {
    if h.polls == 0 {
        ("waiting for first poll".into(), "pending")
    } else if h.up {
        let mut s = "ok".to_owned();
        if h.dropped > 0 {
            let _ = write!(s, " ({} series dropped by max_series)", h.dropped);
        }
        (s, "ok")
    } else {
        let reason = h.last_error.as_ref().map(|e| e.reason.as_str()).unwrap_or("unknown");
        let mut s = format!("failed: {reason}");
        if h.stale {
            s.push_str(" (samples expired)");
        }
        (s, "fail")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::{JobKey, PollError, Reason, Sample};

    #[test]
    fn shows_healthy_and_failing_jobs_escaped() {
        let store = Store::new("1.2.3", "abc");
        let ok = JobKey::account("scaleengine", "main", "usage.summary");
        let bad = JobKey { domain: Some("x.example".into()), ..JobKey::account("cdnetworks", "cn<b>", "domain-usage") };
        store.register_job(&ok, Duration::from_secs(60));
        store.register_job(&bad, Duration::from_secs(60));
        store.record_success(
            &ok,
            &[Sample::new(crate::families::FamilyId::OriginProcesses, 1.0)],
            Duration::from_millis(12),
        );
        store.record_failure(
            &bad,
            &PollError::new(Reason::Provider, "domain <x> not found"),
            Duration::from_millis(30),
        );
        let page = render(&store);
        assert!(page.contains("<td class=\"ok\">ok</td>"), "{page}");
        assert!(page.contains("<td class=\"fail\">failed: provider</td>"), "{page}");
        assert!(page.contains("domain &lt;x&gt; not found"), "{page}");
        assert!(page.contains("cn&lt;b&gt;") && !page.contains("cn<b>"), "{page}");
        assert!(
            page.contains("2 jobs: <span class=\"ok\">1 up</span>, <span class=\"fail\">1 failing</span>"),
            "{page}"
        );
        assert!(!page.contains("http://") && !page.contains("https://"), "no external assets");
    }
}
