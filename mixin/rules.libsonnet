// prometheusRules: the group cdn-usage, the recording rules and then the spend alerts that read
// them. They share one group on purpose: Prometheus evaluates a group's rules in order, so the
// alerts see this evaluation's recorded values; in a group of their own they would race the
// recording rules and could read a forecast one evaluation old.
local f = import 'lib/forecast.libsonnet';
local u = import 'lib/util.libsonnet';

{
  prometheusRules+:: {
    local c = $._config,
    local runbook(alert) = c.runbookUrlPattern % std.asciiLower(alert),
    groups+: [
      {
        name: 'cdn-usage',
        rules: [
          // The share of the current UTC month that has passed, from 0 to 1.
          {
            record: 'cdn:month_elapsed:ratio',
            expr: u.monthElapsed,
          },
          // Warning threshold of the budget alerts (_config.budgetWarningRatio).
          {
            record: 'cdn:budget_warning:ratio',
            expr: 'vector(%s)' % u.num(c.budgetWarningRatio),
          },
          // Our own month-end forecast and its 80 % interval (docs/alerts.md, "The forecast"),
          // independent of the provider's estimate so that a wrong estimate is caught.
        ] + f.rules + [
          // Spend and bandwidth added over the last 24 hours (negative across the month's reset).
          {
            record: 'cdn:billing_spend_usd:increase1d',
            expr: |||
              max by (provider, account) (cdn_billing_month_to_date_spend_usd)
              - max by (provider, account) (cdn_billing_month_to_date_spend_usd offset 1d)
            |||,
          },
          {
            record: 'cdn:bandwidth_bytes:increase1d',
            expr: |||
              sum by (provider, account) (max by (provider, account, product, domain) (cdn_month_to_date_bandwidth_bytes))
              - sum by (provider, account) (max by (provider, account, product, domain) (cdn_month_to_date_bandwidth_bytes offset 1d))
            |||,
          },
          {
            alert: 'CdnEstimatedSpendNearBudget',
            expr: |||
              max by (provider, account) (cdn_billing_estimated_month_spend_usd)
              > max by (provider, account) (cdn_billing_budget_usd) * scalar(cdn:budget_warning:ratio)
              and max by (provider, account) (cdn_billing_estimated_month_spend_usd)
              <= max by (provider, account) (cdn_billing_budget_usd)
            |||,
            'for': c.estimatedSpendFor,
            labels: { severity: 'warning' },
            annotations: {
              summary: '{{ $labels.account }} ({{ $labels.provider }}) is estimated to spend close to its monthly budget',
              description: 'The month-end estimate of {{ $labels.provider }} account {{ $labels.account }} (the provider\'s, or priced from its contract) is ${{ $value | printf "%.2f" }}, close to its budget.',
              runbook: runbook('CdnEstimatedSpendNearBudget'),
            },
          },
          {
            // Where the provider gives its estimate an interval (CloudFront: Cost Explorer's
            // 80 % prediction interval), its low end: the alert does not page on the noise of
            // an estimate whose interval still reaches below the budget.
            alert: 'CdnEstimatedSpendOverBudget',
            expr: |||
              (
                max by (provider, account) (cdn_billing_estimated_month_spend_low_usd)
                or max by (provider, account) (cdn_billing_estimated_month_spend_usd)
              )
              > max by (provider, account) (cdn_billing_budget_usd)
            |||,
            'for': c.estimatedSpendFor,
            labels: { severity: 'critical' },
            annotations: {
              summary: '{{ $labels.account }} ({{ $labels.provider }}) is estimated to spend over its monthly budget',
              description: 'The month-end estimate of {{ $labels.provider }} account {{ $labels.account }} (the provider\'s, or priced from its contract; the low end of the provider\'s interval where it gives one) is ${{ $value | printf "%.2f" }}, over its budget.',
              runbook: runbook('CdnEstimatedSpendOverBudget'),
            },
          },
          {
            // The month's billable 95th percentile so far is over the contract's commitment
            // (bandwidth_commit_mbps): past it the overage is billed, and the percentile only
            // falls back as the month's slices pile up.
            alert: 'CdnBandwidthP95OverCommit',
            expr: |||
              max by (provider, account) (cdn_month_to_date_account_p95_bandwidth_bytes_per_second)
              > max by (provider, account) (cdn_bandwidth_commit_bytes_per_second)
            |||,
            'for': c.bandwidthCommitFor,
            labels: { severity: 'warning' },
            annotations: {
              summary: '{{ $labels.account }} ({{ $labels.provider }}) is over its committed bandwidth this month',
              description: "The 95th percentile of {{ $labels.provider }} account {{ $labels.account }}'s 5-minute bandwidth this month is {{ $value | humanize }}B/s, over the commitment configured as bandwidth_commit_mbps.",
              runbook: runbook('CdnBandwidthP95OverCommit'),
            },
          },
          {
            // The low end of the forecast's 80 % interval over the budget: early in the month,
            // or with little history, the interval is wide and the low end stays near the
            // spend to date, so no early-month guard is needed.
            alert: 'CdnForecastSpendOverBudget',
            expr: |||
              cdn:billing_spend_usd:forecast_low > max by (provider, account) (cdn_billing_budget_usd)
            |||,
            'for': c.forecastSpendFor,
            labels: { severity: 'warning' },
            annotations: {
              summary: '{{ $labels.account }} ({{ $labels.provider }}) is on course to spend over its monthly budget',
              description: "Even the low end of our forecast's 80 % interval says {{ $labels.provider }} account {{ $labels.account }} will spend ${{ $value | printf \"%.2f\" }} by month end, over its budget (cdn:billing_spend_usd:forecast has the expected figure).",
              runbook: runbook('CdnForecastSpendOverBudget'),
            },
          },
          {
            // Today's spend more than doubles yesterday's and is worth a look. Both days must
            // be positive: the month's reset makes a day negative, and that is no jump.
            alert: 'CdnSpendJump',
            expr: |||
              cdn:billing_spend_usd:increase1d > 2 * (cdn:billing_spend_usd:increase1d offset 1d)
              and (cdn:billing_spend_usd:increase1d offset 1d) > 0
              and cdn:billing_spend_usd:increase1d > %s
            ||| % u.num(c.spendJumpMinUsd),
            'for': c.jumpFor,
            labels: { severity: 'warning' },
            annotations: {
              summary: '{{ $labels.account }} ({{ $labels.provider }}) spent more than twice as much as the day before',
              description: '{{ $labels.provider }} account {{ $labels.account }} added ${{ $value | printf "%.2f" }} over the last 24 hours, more than twice the 24 hours before.',
              runbook: runbook('CdnSpendJump'),
            },
          },
          {
            alert: 'CdnBandwidthJump',
            expr: |||
              cdn:bandwidth_bytes:increase1d > 2 * (cdn:bandwidth_bytes:increase1d offset 1d)
              and (cdn:bandwidth_bytes:increase1d offset 1d) > 0
              and cdn:bandwidth_bytes:increase1d > %s
            ||| % u.num(c.bandwidthJumpMinBytes),
            'for': c.jumpFor,
            labels: { severity: 'warning' },
            annotations: {
              summary: '{{ $labels.account }} ({{ $labels.provider }}) moved more than twice the bandwidth of the day before',
              description: '{{ $labels.provider }} account {{ $labels.account }} transferred {{ $value | humanize1024 }}B over the last 24 hours, more than twice the 24 hours before.',
              runbook: runbook('CdnBandwidthJump'),
            },
          },
        ],
      },
    ],
  },
}
