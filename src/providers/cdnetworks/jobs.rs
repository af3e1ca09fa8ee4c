//! The live jobs of one CDNetworks account: `domain-usage` per configured domain, and
//! `traffic-request` for the whole account (see [`super::traffic`]).

use std::sync::Arc;

use crate::job::{BoxFuture, JobKey, JobSpec, PollContext, PollError, Poller, Reason, Sample};
use crate::timeutil;

use super::config::{CdnetworksAccount, CdnetworksDomain};
use super::{Client, ENDPOINT, PROVIDER, WINDOW_DAYS, traffic, wire};

/// Builds one job per configured domain of the account, and its traffic job, all sharing
/// `client` (and so its rate limiter).
pub fn jobs(account: &CdnetworksAccount, client: Arc<Client>) -> Vec<JobSpec> {
    let name: Arc<str> = account.name.as_str().into();
    let traffic_job = account.traffic.then(|| {
        let key = JobKey::account(PROVIDER, name.clone(), traffic::ENDPOINT);
        let poller = traffic::Traffic::new(
            client.clone(),
            account.domains.iter().map(|d| d.domain.clone()).collect(),
            account.traffic_settle.as_secs() as i64,
            account.bandwidth_commit_mbps,
            account.path.clone(),
        );
        // The first poll of a month walks it day by day through the rate limiter: its
        // interval bounds it like any poll.
        JobSpec::periodic(key, account.traffic_interval, account.timeout, account.traffic_max_age, Arc::new(poller))
    });
    account
        .domains
        .iter()
        .enumerate()
        .map(|(j, d)| {
            let key = JobKey {
                provider: PROVIDER,
                account: name.clone(),
                endpoint: ENDPOINT,
                domain: Some(d.domain.as_str().into()),
            };
            let poller = DomainUsage {
                client: client.clone(),
                domain: d.clone(),
                path: format!("{}.domains[{j}]", account.path),
            };
            // Waiting for the rate limiter is part of a poll; its interval bounds it.
            JobSpec::periodic(key, account.interval, account.timeout, account.max_age, Arc::new(poller))
        })
        .chain(traffic_job)
        .collect()
}

struct DomainUsage {
    client: Arc<Client>,
    domain: CdnetworksDomain,
    path: String,
}

impl Poller for DomainUsage {
    fn poll<'a>(&'a self, ctx: &'a PollContext) -> BoxFuture<'a, Result<Vec<Sample>, PollError>> {
        Box::pin(async move {
            let points = self.client.domain_usage(ctx, &self.domain, &self.path).await?;
            let now = timeutil::now_unix();
            let Some(point) = wire::newest_complete(&points, now) else {
                return Err(PollError::new(
                    Reason::Provider,
                    format!(
                        "no complete point for domain {} in the last {WINDOW_DAYS} days ({} points, none finished)",
                        self.domain.domain,
                        points.len()
                    ),
                ));
            };
            Ok(point.samples(&self.domain.domain).into())
        })
    }
}
