//! The cardinality guard: every series a job exports is identified by a hash of its family and
//! labels; a new series that would take the total past `max_series` is dropped (series a job
//! already exports are kept), and the global series count follows every replacement.

use std::collections::HashSet;
use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};

use super::{Inner, headline};
use crate::exposition::{self, Fragments};
use crate::families::FamilyId;
use crate::job::{JobKey, Sample};

/// The default of `max_series`.
pub const DEFAULT_MAX_SERIES: usize = 50_000;

/// Replaces a job's fragments and series ids, keeping the global series count right.
pub(super) fn replace_fragments(
    inner: &mut Inner,
    key: &JobKey,
    fragments: Fragments,
    ids: HashSet<u64>,
    headline: Vec<(FamilyId, f64)>,
) {
    let entry = inner.jobs.entry(key.clone()).or_default();
    entry.headline = headline;
    let old = std::mem::replace(&mut entry.ids, ids).len();
    let new = entry.ids.len();
    entry.fragments = fragments;
    inner.series = inner.series - old + new;
}

fn series_id(family: FamilyId, labels: &[(&'static str, String)]) -> u64 {
    let mut h = DefaultHasher::new();
    family.hash(&mut h);
    labels.hash(&mut h);
    h.finish()
}

/// Encodes a job's samples into per-family fragments. Duplicate series are written once (the first
/// wins). A series the job did not export before is dropped when the total would pass
/// `max_series`; series it already exported are kept. Returns the fragments, the ids of the series
/// kept, and how many were dropped.
pub(super) fn prerender(
    key: &JobKey,
    samples: Vec<Sample>,
    previous: Option<&HashSet<u64>>,
    total: usize,
    max_series: usize,
) -> (Fragments, HashSet<u64>, usize, Vec<(FamilyId, f64)>) {
    let known = |id: &u64| previous.is_some_and(|p| p.contains(id));
    let mut room = max_series.saturating_sub(total - previous.map_or(0, HashSet::len));
    let series: Vec<u64> = samples.iter().map(|s| series_id(s.family, &s.labels)).collect();
    let mut keep = vec![false; samples.len()];
    let mut ids = HashSet::with_capacity(samples.len());
    let mut dropped = 0;
    // Series the job already exports go first, so that a full store drops only new ones.
    for pass_known in [true, false] {
        for (i, id) in series.iter().enumerate() {
            if known(id) != pass_known {
                continue;
            }
            if ids.contains(id) {
                tracing::debug!(job = %key, family = samples[i].family.def().name, "Dropping a duplicate series");
            } else if room == 0 {
                dropped += 1;
            } else {
                room -= 1;
                ids.insert(*id);
                keep[i] = true;
            }
        }
    }
    let kept: Vec<Sample> = samples.into_iter().zip(keep).filter_map(|(s, k)| k.then_some(s)).collect();
    let headline = headline::of(&kept);
    let fragments = if kept.is_empty() { Vec::new() } else { exposition::encode_job(key.provider, &key.account, kept) };
    // Kept until the job's next poll: no growth slack.
    ids.shrink_to_fit();
    (fragments, ids, dropped, headline)
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
    fn duplicate_series_are_written_once() {
        let store = Store::new("1.0", "abc");
        let a = key("a", "usage.summary");
        let s = Sample::new(FamilyId::OriginProcesses, 7.0);
        store.record_success(&a, &[s.clone(), s], Duration::ZERO);
        let body = String::from_utf8(store.render_now().to_vec()).unwrap();
        assert_eq!(body.matches("cdn_origin_processes{").count(), 1);
        assert_eq!(store.series(), 1);
    }
}
