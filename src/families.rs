//! Every metric family the exporter serves, declared once: name, type, HELP and the labels it
//! carries beyond `provider` and `account`. The renderer, the docs test and the status of the
//! metric contract all read this one table.

/// The Prometheus type of a family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A value that can go up and down (month-to-date figures reset every month).
    Gauge,
    /// A monotonically increasing count; the name ends in `_total`.
    Counter,
    /// Information about the exporter in its labels, always 1; the name ends in `_info`
    /// (OpenMetrics `info`, a gauge in text format 0.0.4).
    Info,
}

impl Kind {
    /// The word used on a `# TYPE` line.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Gauge => "gauge",
            Kind::Counter => "counter",
            Kind::Info => "info",
        }
    }
}

/// One family's declaration.
#[derive(Debug)]
pub struct Family {
    /// The full sample name, unit and `_total` / `_info` suffixes included.
    pub name: &'static str,
    /// The Prometheus type.
    pub kind: Kind,
    /// The unit as OpenMetrics names it (`bytes`, `seconds`), if the name carries one.
    pub unit: Option<&'static str>,
    /// HELP text: what one sample means, in its unit.
    pub help: &'static str,
    /// Labels beyond the common ones, in the order they are written.
    pub labels: &'static [&'static str],
    /// Whether samples carry `provider` and `account` (all but `build_info` do).
    pub per_account: bool,
}

impl Family {
    /// The name prometheus-client is given: the sample name less the `_total` or `_info` and
    /// the unit suffix that the encoder appends itself.
    pub fn stem(&self) -> &'static str {
        let name: &'static str = self.name;
        let name = match self.kind {
            Kind::Counter => name.strip_suffix("_total"),
            Kind::Info => name.strip_suffix("_info"),
            Kind::Gauge => Some(name),
        }
        .unwrap_or(name);
        match self.unit {
            Some(unit) => name.strip_suffix(unit).and_then(|n| n.strip_suffix('_')).unwrap_or(name),
            None => name,
        }
    }
}

macro_rules! families {
    ($( $(#[$doc:meta])* $id:ident => { $name:literal, $kind:ident, $unit:expr, [$($label:literal),*], $per:literal, $help:literal } )*) => {
        /// Names a family; the discriminant orders families in the exposition.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum FamilyId { $( $(#[$doc])* $id, )* }

        const DEFS: &[Family] = &[ $( Family {
            name: $name,
            kind: Kind::$kind,
            unit: $unit,
            help: $help,
            labels: &[$($label),*],
            per_account: $per,
        }, )* ];

        impl FamilyId {
            /// Every family, in exposition order.
            pub const ALL: &'static [FamilyId] = &[ $( FamilyId::$id, )* ];
        }
    };
}

families! {
    /// usage.summary bandwidth rows (by product), traffic-request (by domain), Fastly usage
    /// stats (by service and area), bunny.net billing summary (by pull zone).
    MonthToDateBandwidthBytes => { "cdn_month_to_date_bandwidth_bytes", Gauge, Some("bytes"), ["product|domain|service_id,area|pull_zone,pull_zone_id|distribution_id,domain"], true,
        "Bytes transferred since the start of the current month (UTC for ScaleEngine, Fastly, bunny.net and CloudFront, the account's time_zone for CDNetworks), by product (ScaleEngine), domain (CDNetworks), service_id and area (Fastly), pull zone (bunny.net) or distribution (CloudFront: bytes downloaded by viewers, from CloudWatch)." }
    /// CloudFront's BytesUploaded (by distribution).
    MonthToDateUploadBytes => { "cdn_month_to_date_upload_bytes", Gauge, Some("bytes"), ["distribution_id", "domain"], true,
        "Bytes viewers sent (POST and PUT bodies) since the start of the current month (UTC), by distribution (CloudFront's BytesUploaded, from CloudWatch)." }
    /// usage.summary request rows (by product), traffic-request (by domain), Fastly usage stats
    /// (by service, area and kind: delivery or Compute), bunny.net statistics (by pull zone).
    MonthToDateRequests => { "cdn_month_to_date_requests", Gauge, None, ["product|domain|service_id,area,kind|pull_zone,pull_zone_id|distribution_id,domain"], true,
        "Requests served since the start of the current month (UTC for ScaleEngine, Fastly, bunny.net and CloudFront, the account's time_zone for CDNetworks), by product (ScaleEngine), domain (CDNetworks), service_id, area and kind (Fastly: delivery, or compute for Compute services), pull zone (bunny.net) or distribution (CloudFront, from CloudWatch)." }
    /// usage.summary SQL query rows.
    MonthToDateSqlQueries => { "cdn_month_to_date_sql_queries", Gauge, None, ["kind"], true,
        "SQL queries run since the start of the current month (UTC), by kind of query." }
    /// usage.summary CPU-hour rows, in seconds.
    MonthToDateCpuSeconds => { "cdn_month_to_date_cpu_seconds", Gauge, Some("seconds"), ["product"], true,
        "CPU time used since the start of the current month (UTC), by product (the provider reports hours)." }
    /// usage.summary origin I/O row.
    MonthToDateOriginIoTransactions => { "cdn_month_to_date_origin_io_transactions", Gauge, None, [], true,
        "Origin storage I/O transactions since the start of the current month (UTC)." }
    /// usage.summary origin memory row.
    MonthToDateOriginMemorySeconds => { "cdn_month_to_date_origin_memory_seconds", Gauge, Some("seconds"), [], true,
        "Origin memory use since the start of the current month (UTC), as the provider's memory-seconds." }
    /// usage.summary origin processes row.
    OriginProcesses => { "cdn_origin_processes", Gauge, None, [], true,
        "Origin processes the provider reports for the account." }
    /// usage.summary rows with no mapping yet.
    MonthToDateUsage => { "cdn_month_to_date_usage", Gauge, None, ["item"], true,
        "A month-to-date usage figure the exporter has no mapping for yet, in the provider's own unit; item is the provider's row name, slugged." }
    /// usage.billing.live price-to-date column.
    BillingMonthToDateCostUsd => { "cdn_billing_month_to_date_cost_usd", Gauge, Some("usd"), ["item"], true,
        "Charges accrued since the start of the current month for one billing item, in US dollars." }
    /// usage.billing.live estimated-total column.
    BillingEstimatedMonthCostUsd => { "cdn_billing_estimated_month_cost_usd", Gauge, Some("usd"), ["item"], true,
        "The provider's estimate of the whole month's charges for one billing item, in US dollars." }
    /// usage.billing.live usage-to-date column.
    BillingMonthToDateUsage => { "cdn_billing_month_to_date_usage", Gauge, None, ["item"], true,
        "Usage since the start of the current month for one billing item, in the provider's billing unit for that item (ScaleEngine: GB for bandwidth and storage, requests and queries as counts, hours for CPU)." }
    /// usage.billing.live estimated-usage column.
    BillingEstimatedMonthUsage => { "cdn_billing_estimated_month_usage", Gauge, None, ["item"], true,
        "The provider's estimate of the whole month's usage for one billing item, in the provider's billing unit for that item (ScaleEngine: GB for bandwidth and storage, requests and queries as counts, hours for CPU)." }
    /// usage.billing.live totals row, price to date.
    BillingMonthToDateSpendUsd => { "cdn_billing_month_to_date_spend_usd", Gauge, Some("usd"), [], true,
        "Total charges accrued since the start of the current month, in US dollars (the provider's totals row)." }
    /// usage.billing.live totals row, estimated total.
    BillingEstimatedMonthSpendUsd => { "cdn_billing_estimated_month_spend_usd", Gauge, Some("usd"), [], true,
        "The provider's estimate of the whole month's total charges, in US dollars (the provider's totals row)." }
    /// The provider's forecast interval, low end (Cost Explorer's 80 % prediction interval).
    BillingEstimatedMonthSpendLowUsd => { "cdn_billing_estimated_month_spend_low_usd", Gauge, Some("usd"), [], true,
        "The low end of the provider's 80 % prediction interval for the whole month's total charges, in US dollars (CloudFront: what was spent before today plus Cost Explorer's lower bound for the rest of the month)." }
    /// The provider's forecast interval, high end.
    BillingEstimatedMonthSpendHighUsd => { "cdn_billing_estimated_month_spend_high_usd", Gauge, Some("usd"), [], true,
        "The high end of the provider's 80 % prediction interval for the whole month's total charges, in US dollars (CloudFront: what was spent before today plus Cost Explorer's upper bound for the rest of the month)." }
    /// The previous month's final total (the provider's bill, or priced from the contract).
    BillingLastMonthSpendUsd => { "cdn_billing_last_month_spend_usd", Gauge, Some("usd"), [], true,
        "Total charges of the previous month, in US dollars: the provider's final figure (ScaleEngine usage.billing, Fastly's last invoice, bunny.net's last monthly record) or the month priced from the contract (CDNetworks); see cdn_billing_spend_source_info." }
    /// The previous month's final charges per item.
    BillingLastMonthCostUsd => { "cdn_billing_last_month_cost_usd", Gauge, Some("usd"), ["item"], true,
        "Charges of the previous month for one billing item, in US dollars, where the provider itemises them or the contract prices them." }
    /// How the account's spend is known.
    BillingSpendSourceInfo => { "cdn_billing_spend_source_info", Info, None, ["source"], true,
        "How the account's spend figures are known: source provider (the provider reports them) or contract (the exporter priced the provider's usage with the account's pricing table); always 1." }
    /// The currency the account is billed in.
    BillingCurrencyInfo => { "cdn_billing_currency_info", Info, None, ["currency"], true,
        "The currency the account is billed in (ISO 4217 code: from the provider's answer where it says so, else from the configuration); its amounts are converted to US dollars at cdn_billing_exchange_rate; always 1." }
    /// The rate the account's amounts were converted at.
    BillingExchangeRate => { "cdn_billing_exchange_rate", Gauge, None, ["currency"], true,
        "US dollars per unit of the account's billing currency, as its last billing poll converted its amounts into the _usd families ([exchange_rates] in the configuration; 1 for USD)." }
    /// The bandwidth figure a contract bills (CDNetworks pricing).
    BillingBandwidthBytesPerSecond => { "cdn_billing_bandwidth_bytes_per_second", Gauge, Some("bytes_per_second"), [], true,
        "The bandwidth the account's contract bills this month so far (pricing.bandwidth_billing: the 95th percentile or the average daily peak of the account's summed 5-minute slices), in bytes per second (multiply by 8 for bits per second)." }
    /// When the account's billing month began, where it is not the UTC month.
    BillingMonthStartTimestampSeconds => { "cdn_billing_month_start_timestamp_seconds", Gauge, Some("seconds"), [], true,
        "When the account's current billing month began, as a Unix time, for accounts billed on another month than the UTC one (CDNetworks: the first second of the month in the account's time_zone; e.g. 2026-11-30T15:00:00Z for a GMT+09:00 December). The forecast rules give no forecast while it and the UTC month differ by more than a day (docs/alerts.md)." }
    /// The configured budget.
    BillingBudgetUsd => { "cdn_billing_budget_usd", Gauge, Some("usd"), [], true,
        "The monthly budget configured for the account (budget_usd), in US dollars." }
    /// bunny.net: the account's prepaid balance.
    BillingPrepaidBalanceUsd => { "cdn_billing_prepaid_balance_usd", Gauge, Some("usd"), [], true,
        "The account's prepaid balance, in US dollars (bunny.net Balance); the provider disables the account's zones when it runs out." }
    /// bunny.net /billing/summary: charges to date per pull zone.
    BillingMonthToDatePullZoneCostUsd => { "cdn_billing_month_to_date_pull_zone_cost_usd", Gauge, Some("usd"), ["pull_zone", "pull_zone_id"], true,
        "Charges accrued since the start of the current month (UTC) by one pull zone, in US dollars (bunny.net /billing/summary); a breakdown of part of the account's spend, kept out of cdn_billing_month_to_date_cost_usd so that summing its items does not count a zone twice." }
    /// disk.usage and domain-usage.
    StorageBytes => { "cdn_storage_bytes", Gauge, Some("bytes"), ["user|domain|storage_zone"], true,
        "Bytes stored, at the newest complete point the provider reports (see cdn_storage_sample_timestamp_seconds)." }
    /// The time of the point `cdn_storage_bytes` shows.
    StorageSampleTimestampSeconds => { "cdn_storage_sample_timestamp_seconds", Gauge, Some("seconds"), ["user|domain|storage_zone"], true,
        "Unix time of the point that cdn_storage_bytes shows for the same series." }
    /// bunny.net /storagezone: files stored per storage zone.
    StorageFiles => { "cdn_storage_files", Gauge, None, ["storage_zone", "storage_zone_id"], true,
        "Files stored, as the provider reports them now (bunny.net FilesStored per storage zone)." }
    /// video.usage bytes, top N per app.
    VideoMonthToDateBytes => { "cdn_video_month_to_date_bytes", Gauge, Some("bytes"), ["app", "url"], true,
        "Bytes served for one video URL or stream since the start of the current month (UTC); the top N URLs per app by bytes, the rest summed under the url __other__." }
    /// video.usage requests, top N per app.
    VideoMonthToDateRequests => { "cdn_video_month_to_date_requests", Gauge, None, ["app", "url"], true,
        "Play, pause and stop commands for one video URL or stream since the start of the current month (UTC); same URLs as cdn_video_month_to_date_bytes." }
    // CDNetworks traffic-request: billable bandwidth (one block, see docs/metrics.md).
    /// The highest complete 5-minute bandwidth of the month so far, per domain.
    MonthToDatePeakBandwidthBytesPerSecond => { "cdn_month_to_date_peak_bandwidth_bytes_per_second", Gauge, Some("bytes_per_second"), ["domain"], true,
        "The highest 5-minute bandwidth of the current month so far (the account's time_zone), in bytes per second (multiply by 8 for the bits per second of a bill); the newest, still-filling slice is left out." }
    /// The 95th percentile of the month's 5-minute bandwidth so far, per domain.
    MonthToDateP95BandwidthBytesPerSecond => { "cdn_month_to_date_p95_bandwidth_bytes_per_second", Gauge, Some("bytes_per_second"), ["domain"], true,
        "The 95th percentile of the current month's 5-minute bandwidth so far, in bytes per second (multiply by 8 for the bits per second of a bill): the value at rank ceil(0.95 n) of the n slices sorted ascending (the top 5 % dropped); the newest, still-filling slice is left out." }
    /// The account's peak over the per-slice sum of its domains.
    MonthToDateAccountPeakBandwidthBytesPerSecond => { "cdn_month_to_date_account_peak_bandwidth_bytes_per_second", Gauge, Some("bytes_per_second"), [], true,
        "The highest 5-minute bandwidth of the current month so far over the sum of the account's domains in each slice, in bytes per second (multiply by 8 for the bits per second of a bill)." }
    /// The account's 95th percentile over the per-slice sum of its domains.
    MonthToDateAccountP95BandwidthBytesPerSecond => { "cdn_month_to_date_account_p95_bandwidth_bytes_per_second", Gauge, Some("bytes_per_second"), [], true,
        "The 95th percentile of the current month's 5-minute bandwidth so far over the sum of the account's domains in each slice (not a sum of percentiles), in bytes per second (multiply by 8 for the bits per second of a bill)." }
    /// The end of the newest settled slice.
    TrafficSettledTimestampSeconds => { "cdn_traffic_settled_timestamp_seconds", Gauge, Some("seconds"), [], true,
        "Unix time at which the newest settled 5-minute slice of the month ends (data up to it is final and not fetched again); absent until a day of the month has settled." }
    /// The configured bandwidth commitment.
    BandwidthCommitBytesPerSecond => { "cdn_bandwidth_commit_bytes_per_second", Gauge, Some("bytes_per_second"), [], true,
        "The committed monthly bandwidth configured for the account (bandwidth_commit_mbps), in bytes per second (multiply by 8 for the bits per second of a bill)." }
    /// Build information.
    ExporterBuildInfo => { "cdn_exporter_build_info", Info, None, ["version", "revision"], false,
        "The exporter's version and source revision; always 1." }
    /// Whether the job's last poll succeeded.
    ExporterPollUp => { "cdn_exporter_poll_up", Gauge, None, ["endpoint"], true,
        "1 if the job's last poll succeeded, 0 if it failed or has not finished yet." }
    /// Last successful poll.
    ExporterLastSuccessTimestampSeconds => { "cdn_exporter_last_success_timestamp_seconds", Gauge, Some("seconds"), ["endpoint"], true,
        "Unix time at which the job's last successful poll finished; absent until one has." }
    /// Duration of the job's last poll.
    ExporterPollDurationSeconds => { "cdn_exporter_poll_duration_seconds", Gauge, Some("seconds"), ["endpoint"], true,
        "How long the job's last poll took, retries and pagination included." }
    /// The job's max_age.
    ExporterMaxAgeSeconds => { "cdn_exporter_max_age_seconds", Gauge, Some("seconds"), ["endpoint"], true,
        "How old the job's samples may grow before they leave /metrics (max_age)." }
    /// Failed polls by reason.
    ExporterPollErrorsTotal => { "cdn_exporter_poll_errors_total", Counter, None, ["endpoint", "reason"], true,
        "Failed polls since the exporter started, by reason (auth, clock_skew, throttled, timeout, http, parse, provider, config)." }
    /// Series exported.
    ExporterSeries => { "cdn_exporter_series", Gauge, None, [], false,
        "Series the exporter serves from provider data and configuration (health and process metrics not counted)." }
    /// Series refused by the cardinality guard.
    ExporterSeriesDroppedTotal => { "cdn_exporter_series_dropped_total", Counter, None, [], false,
        "New series dropped because the exporter already served max_series series." }
    /// Upstream HTTP requests by outcome.
    ExporterUpstreamRequestsTotal => { "cdn_exporter_upstream_requests_total", Counter, None, ["code"], true,
        "HTTP requests sent to the provider's API, by HTTP status code (code error when no response arrived)." }
    /// What the exporter's own requests may cost (Cost Explorer, CloudWatch GetMetricData).
    ExporterUpstreamCostUsdTotal => { "cdn_exporter_upstream_cost_usd_total", Counter, Some("usd"), ["api"], true,
        "What the exporter's requests to a pay-per-request API may have cost, in US dollars, by api (ce: $0.01 a Cost Explorer request, every attempt counted; monitoring: $0.01 per 1,000 CloudWatch metrics requested)." }
    /// This process's shard of the configured accounts.
    ExporterShardInfo => { "cdn_exporter_shard_info", Info, None, ["shard", "shards"], false,
        "The shard of the configured accounts this process polls (--shard shard/shards; 1/1 when not sharded); always 1." }
}

impl FamilyId {
    /// The family's declaration.
    pub fn def(self) -> &'static Family {
        &DEFS[self as usize]
    }

    /// Position in exposition order.
    pub fn index(self) -> usize {
        self as usize
    }

    /// How many families there are.
    pub const COUNT: usize = DEFS.len();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_prometheus_guidelines() {
        for id in FamilyId::ALL {
            let f = id.def();
            assert!(f.name.starts_with("cdn_"), "{}", f.name);
            assert_eq!(f.kind == Kind::Counter, f.name.ends_with("_total"), "{}", f.name);
            assert_eq!(f.kind == Kind::Info, f.name.ends_with("_info"), "{}", f.name);
            if let Some(unit) = f.unit {
                let stem = f.name.trim_end_matches("_total").trim_end_matches("_info");
                assert!(stem.ends_with(unit), "{} must end in its unit {unit}", f.name);
            }
            for bad in ["service", "region", "env", "job", "instance"] {
                assert!(!f.labels.contains(&bad), "{} uses reserved label {bad}", f.name);
            }
            assert!(!f.help.is_empty());
            // HELP is written as is: OpenMetrics would need \" escaped where text 0.0.4 must not.
            assert!(!f.help.contains(['"', '\\', '\n']), "{} HELP needs no escaping", f.name);
            let suffix = match f.kind {
                Kind::Counter => "_total",
                Kind::Info => "_info",
                Kind::Gauge => "",
            };
            let unit = f.unit.map(|u| format!("_{u}")).unwrap_or_default();
            assert_eq!(format!("{}{unit}{suffix}", f.stem()), f.name);
        }
        assert_eq!(FamilyId::ALL.len(), FamilyId::COUNT);
        for (i, id) in FamilyId::ALL.iter().enumerate() {
            assert_eq!(id.index(), i);
        }
    }
}
