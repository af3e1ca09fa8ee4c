// Everything a user may want to change, in one place. Override in your own jsonnet:
//   (import 'cdn-usage-exporter/mixin.libsonnet') + { _config+:: { cdnExporterSelector: 'job="cdn"' } }
{
  _config+:: {
    // Selects the exporter's scrape targets among all of Prometheus' `up` series, for
    // CdnExporterDown (the one rule that reads a series every job has). Every other rule reads
    // series only this exporter exports, and the dashboards pick the job with their `job`
    // variable, so neither depends on the job's name.
    cdnExporterSelector: 'job=~"cdn-usage-exporter.*"',

    // The budget alerts warn from this share of budget_usd (0.8 = 80 %); also the orange
    // threshold of the dashboards' budget gauge.
    budgetWarningRatio: 0.8,
    // The day-over-day jump alerts ignore days below these.
    spendJumpMinUsd: 10,
    bandwidthJumpMinBytes: 1e9,
    // Window of the poll-error and dropped-series alerts.
    errorWindow: '30m',

    // How long each condition must hold before its alert fires.
    estimatedSpendFor: '1h',
    forecastSpendFor: '2h',
    bandwidthCommitFor: '1h',
    jumpFor: '1h',
    jobFailingFor: '30m',
    dataStaleFor: '5m',
    exporterDownFor: '5m',

    // Runbook annotation; %s is the alert's name in lower case (a Markdown anchor).
    runbookUrlPattern: 'docs/alerts.md#%s',

    // Dashboards.
    dashboardTags: ['cdn', 'cdn-usage-exporter'],
    dashboardRefresh: '5m',
    dashboardTimezone: 'utc',
    dashboardTimeFrom: 'now-7d',
    dashboardUidPrefix: 'cdn-usage-',
  },
}
