//! The headline figures the status page summarises per account: label-less billing totals and
//! budget, and the account's billable bandwidth and commitment, kept per job as it polls.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::Store;
use crate::families::FamilyId;
use crate::job::Sample;
use crate::spend::AccountSpend;

/// Families the status page summarises per account: label-less billing totals and budget, and
/// the account's billable bandwidth and commitment.
pub(super) const HEADLINE: [FamilyId; 11] = [
    FamilyId::BillingMonthToDateSpendUsd,
    FamilyId::BillingEstimatedMonthSpendUsd,
    FamilyId::BillingEstimatedMonthSpendLowUsd,
    FamilyId::BillingEstimatedMonthSpendHighUsd,
    FamilyId::BillingBudgetUsd,
    FamilyId::MonthToDateAccountP95BandwidthBytesPerSecond,
    FamilyId::MonthToDateAccountPeakBandwidthBytesPerSecond,
    FamilyId::BandwidthCommitBytesPerSecond,
    FamilyId::BillingLastMonthSpendUsd,
    // When the account's billing month began, for the forecast.
    FamilyId::BillingMonthStartTimestampSeconds,
    // Kept as 1 when the source is the contract (its one label is read here).
    FamilyId::BillingSpendSourceInfo,
];

/// The [`HEADLINE`] values among a job's kept samples.
pub(super) fn of(kept: &[Sample]) -> Vec<(FamilyId, f64)> {
    kept.iter()
        .filter_map(|s| match s.family {
            FamilyId::BillingSpendSourceInfo => {
                s.labels.iter().any(|(k, v)| *k == "source" && v == "contract").then_some((s.family, 1.0))
            }
            f if s.labels.is_empty() && HEADLINE.contains(&f) => Some((f, s.value)),
            _ => None,
        })
        .collect()
}

impl Store {
    /// Per account, the billing totals and budget it serves now, and our forecast at `now`
    /// (Unix seconds) from the spend seen so far (for the status page).
    pub fn spend(&self, now: i64) -> Vec<AccountSpend> {
        let inner = self.lock();
        let mut accounts: BTreeMap<(&str, &str), AccountSpend> = BTreeMap::new();
        for (key, entry) in &inner.jobs {
            for &(family, value) in &entry.headline {
                let a = accounts.entry((key.provider, &key.account)).or_insert_with(|| AccountSpend {
                    provider: key.provider.to_owned(),
                    account: key.account.to_string(),
                    ..AccountSpend::default()
                });
                if family == FamilyId::BillingSpendSourceInfo {
                    a.priced = true;
                    continue;
                }
                let slot = match family {
                    FamilyId::BillingMonthToDateSpendUsd => &mut a.spend,
                    FamilyId::BillingEstimatedMonthSpendUsd => &mut a.estimate,
                    FamilyId::BillingEstimatedMonthSpendLowUsd => &mut a.estimate_low,
                    FamilyId::BillingEstimatedMonthSpendHighUsd => &mut a.estimate_high,
                    FamilyId::BillingBudgetUsd => &mut a.budget,
                    FamilyId::MonthToDateAccountP95BandwidthBytesPerSecond => &mut a.p95,
                    FamilyId::MonthToDateAccountPeakBandwidthBytesPerSecond => &mut a.peak,
                    FamilyId::BillingLastMonthSpendUsd => &mut a.last_month,
                    FamilyId::BillingMonthStartTimestampSeconds => &mut a.month_start,
                    _ => &mut a.commit,
                };
                *slot = Some(value);
            }
        }
        for ((provider, account), a) in accounts.iter_mut() {
            let Some(spend) = a.spend else { continue };
            let history = inner.spend_history.get(&(*provider, Arc::from(*account)));
            let month_start = a.month_start.filter(|m| m.is_finite()).map(|m| m as i64);
            a.forecast = crate::forecast::forecast(
                history.unwrap_or(&Default::default()),
                spend,
                a.last_month,
                month_start,
                now,
            );
        }
        accounts.into_values().collect()
    }
}
