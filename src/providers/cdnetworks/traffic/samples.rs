//! Writing a poll's figures as samples, the same for live polling and backfill.

use crate::families::FamilyId;
use crate::job::Sample;

use super::Figures;

/// The samples of `figures` for `domains` (in the order the figures have them), and the
/// commitment (bytes per second) if configured. Live polling and backfill write the same.
pub fn samples(domains: &[String], figures: Figures, commit_bytes: Option<f64>) -> Vec<Sample> {
    let mut samples = Vec::with_capacity(domains.len() * 4 + 4);
    for (domain, (bytes, requests, peak, p)) in domains.iter().zip(figures.domains) {
        samples.push(Sample::new(FamilyId::MonthToDateBandwidthBytes, bytes).label("domain", domain.clone()));
        samples.push(Sample::new(FamilyId::MonthToDateRequests, requests).label("domain", domain.clone()));
        samples
            .push(Sample::new(FamilyId::MonthToDatePeakBandwidthBytesPerSecond, peak).label("domain", domain.clone()));
        samples.push(Sample::new(FamilyId::MonthToDateP95BandwidthBytesPerSecond, p).label("domain", domain.clone()));
    }
    samples.push(Sample::new(FamilyId::MonthToDateAccountPeakBandwidthBytesPerSecond, figures.account_peak));
    samples.push(Sample::new(FamilyId::MonthToDateAccountP95BandwidthBytesPerSecond, figures.account_p95));
    if let Some(t) = figures.settled_until {
        samples.push(Sample::new(FamilyId::TrafficSettledTimestampSeconds, t as f64));
    }
    if let Some(c) = commit_bytes {
        samples.push(Sample::new(FamilyId::BandwidthCommitBytesPerSecond, c));
    }
    samples
}
