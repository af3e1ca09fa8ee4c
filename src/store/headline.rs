//! The headline figures the status page summarises per account: label-less billing totals and
//! budget, and the account's billable bandwidth and commitment, kept per job as it polls.

use std::collections::BTreeMap;

use super::Store;
use crate::families::FamilyId;
use crate::job::Sample;
use crate::spend::AccountSpend;

/// Families the status page summarises per account: label-less billing totals and budget, and
/// the account's billable bandwidth and commitment.
pub(super) const HEADLINE: [FamilyId; 6] = [
    FamilyId::BillingMonthToDateSpendUsd,
    FamilyId::BillingEstimatedMonthSpendUsd,
    FamilyId::BillingBudgetUsd,
    FamilyId::MonthToDateAccountP95BandwidthBytesPerSecond,
    FamilyId::MonthToDateAccountPeakBandwidthBytesPerSecond,
    FamilyId::BandwidthCommitBytesPerSecond,
];

/// The [`HEADLINE`] values among a job's kept samples.
pub(super) fn of(kept: &[Sample]) -> Vec<(FamilyId, f64)> {
    kept.iter().filter(|s| s.labels.is_empty() && HEADLINE.contains(&s.family)).map(|s| (s.family, s.value)).collect()
}

impl Store {
    /// Per account, the billing totals and budget it serves now (for the status page).
    pub fn spend(&self) -> Vec<AccountSpend> {
        let inner = self.lock();
        let mut accounts: BTreeMap<(&str, &str), AccountSpend> = BTreeMap::new();
        for (key, entry) in &inner.jobs {
            for &(family, value) in &entry.headline {
                let a = accounts.entry((key.provider, &key.account)).or_insert_with(|| AccountSpend {
                    provider: key.provider.to_owned(),
                    account: key.account.to_string(),
                    ..AccountSpend::default()
                });
                let slot = match family {
                    FamilyId::BillingMonthToDateSpendUsd => &mut a.spend,
                    FamilyId::BillingEstimatedMonthSpendUsd => &mut a.estimate,
                    FamilyId::BillingBudgetUsd => &mut a.budget,
                    FamilyId::MonthToDateAccountP95BandwidthBytesPerSecond => &mut a.p95,
                    FamilyId::MonthToDateAccountPeakBandwidthBytesPerSecond => &mut a.peak,
                    _ => &mut a.commit,
                };
                *slot = Some(value);
            }
        }
        accounts.into_values().collect()
    }
}
