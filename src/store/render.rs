//! Rendering: the body is rebuilt from every job's fragments once per change (re-encoding only
//! the health of jobs that polled since) and published for scrapes to clone; the renderer task
//! ([`renderer`]) decides when.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use super::Store;
use super::health::job_health;
use crate::exposition::{self, Exposition, renderer};
use crate::families::FamilyId;

impl Store {
    /// The current OpenMetrics body (without `# EOF`): a reference-counted clone, no copy
    /// and no encoding.
    pub fn body(&self) -> Bytes {
        self.body.load().openmetrics.plain.clone()
    }

    /// The current exposition, both formats, plain and gzip.
    pub fn exposition(&self) -> Arc<Exposition> {
        self.body.load_full()
    }

    /// Renders the body now, compresses it, and publishes it; the previous exposition (and
    /// its text body, if a scrape derived one) is freed when the last scrape holding it
    /// finishes. Returns the OpenMetrics body.
    pub fn render_now(&self) -> Bytes {
        let exposition = self.render();
        let plain = exposition.openmetrics.plain.clone();
        self.body.store(Arc::new(exposition));
        plain
    }

    /// Waits for changes and renders at most once per `min_gap`, so that a burst of finished
    /// polls costs one render (see [`renderer::run`]). Returns when `shutdown` resolves.
    pub async fn run_renderer(self: Arc<Self>, min_gap: Duration, shutdown: impl std::future::Future<Output = ()>) {
        renderer::run(&*self, min_gap, shutdown).await
    }

    fn render(&self) -> Exposition {
        let mut inner = self.lock();
        // Health is re-encoded only for jobs that polled (or got a new max_age) since.
        for (key, entry) in inner.jobs.iter_mut() {
            let Some(h) = &entry.health else { continue };
            let current = Some((h.polls, entry.max_age));
            if entry.health_encoded != current {
                entry.health_fragments = exposition::encode_health(job_health(key, h, entry.max_age));
                entry.health_encoded = current;
            }
        }
        let capacity = inner
            .jobs
            .values()
            .flat_map(|e| e.fragments.iter().chain(&e.health_fragments))
            .map(|(_, f)| f.len())
            .sum::<usize>()
            + 16 * 1024;
        let mut body = exposition::Builder::with_capacity(capacity);
        for &family in FamilyId::ALL {
            match family {
                FamilyId::ExporterBuildInfo
                | FamilyId::ExporterShardInfo
                | FamilyId::ExporterSeries
                | FamilyId::ExporterSeriesDroppedTotal
                | FamilyId::ExporterUpstreamRequestsTotal
                | FamilyId::ExporterUpstreamCostUsdTotal => {}
                _ if exposition::HEALTH_FAMILIES.contains(&family) => body.family(
                    family,
                    inner.jobs.values().filter_map(|e| exposition::fragment(&e.health_fragments, family)),
                ),
                _ => {
                    body.family(family, inner.jobs.values().filter_map(|e| exposition::fragment(&e.fragments, family)))
                }
            }
        }
        let own = exposition::SelfMetrics {
            version: self.version.clone(),
            revision: self.revision.clone(),
            series: inner.series as u64,
            dropped_total: inner.dropped_total,
            upstream: inner.upstream.iter().map(|((p, a, c), n)| (*p, a.clone(), c.clone(), *n)).collect(),
            upstream_cost: inner
                .upstream_cost
                .iter()
                .map(|((p, a, api), micros)| (*p, a.clone(), *api, *micros as f64 / 1e6))
                .collect(),
            shard: inner.shard.0,
        };
        drop(inner);
        body.families(&exposition::encode_collector(own));
        body.finish()
    }
}

impl renderer::Source for Store {
    fn changed(&self) -> impl std::future::Future<Output = ()> + Send + '_ {
        self.dirty.notified()
    }

    fn expire_stale(&self) -> bool {
        Store::expire_stale(self)
    }

    fn publish(&self) {
        self.render_now();
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use crate::families::FamilyId;
    use crate::job::{JobKey, Sample};
    use crate::store::Store;

    fn key(account: &str, endpoint: &'static str) -> JobKey {
        JobKey::account("scaleengine", account, endpoint)
    }

    #[test]
    fn families_are_grouped_across_jobs_under_one_header() {
        let store = Store::new("1.0", "abc");
        let a = key("a", "usage.summary");
        let b = key("b", "usage.summary");
        let s = |v| vec![Sample::new(FamilyId::MonthToDateRequests, v).label("product", "edge")];
        store.record_success(&a, s(1.0), Duration::from_millis(5));
        store.record_success(&b, s(2.0), Duration::from_millis(5));
        let body = String::from_utf8(store.render_now().to_vec()).unwrap();
        assert_eq!(body.matches("# TYPE cdn_month_to_date_requests gauge").count(), 1);
        assert!(
            body.contains("cdn_month_to_date_requests{provider=\"scaleengine\",account=\"a\",product=\"edge\"} 1\n")
        );
        assert!(
            body.contains("cdn_month_to_date_requests{provider=\"scaleengine\",account=\"b\",product=\"edge\"} 2\n")
        );
        assert!(body.contains("cdn_exporter_build_info{version=\"1.0\",revision=\"abc\"} 1\n"));
    }
}
