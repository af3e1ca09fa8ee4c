// CDN exporter health: is the exporter polling?
local d = import '../lib/dashboard.libsonnet';

function(c)
  local s = d.account;
  // Series of the exporter process itself (and Prometheus' up): no provider or account label.
  local t = d.target;
  local jobs = 'max by (provider, account, endpoint, domain) (cdn_exporter_poll_up{%s})' % s;
  d.dashboard(
    c,
    'exporter-health',
    'CDN exporter health',
    'Is the exporter polling? Success, errors by reason, durations, staleness, upstream requests, series, and the process.',
    [
      d.stat('Jobs up', [0, 0, 6, 4], 'sum(%s)' % jobs, 'up', 'short'),
      d.stat('Jobs failing', [6, 0, 6, 4], 'count(%s == 0) or vector(0)' % jobs, 'failing', 'short')
      + d.thresholds([['green', null], ['red', 1]]),
      d.stat('Series served', [12, 0, 6, 4], 'sum(cdn_exporter_series{%s})' % t, 'series', 'short'),
      d.stat('Exporter targets up', [18, 0, 6, 4], 'sum(up{%s})' % t, 'up', 'short'),
      d.timeseries('Poll success by job', [0, 4, 12, 8], [
        d.query(jobs, '{{provider}} {{account}} {{endpoint}} {{domain}}'),
      ], 'bool_yes_no'),
      d.timeseries('Poll errors by reason', [12, 4, 12, 8], [
        d.query('sum by (reason) (increase(cdn_exporter_poll_errors_total{%s}[$__rate_interval]))' % s, '{{reason}}'),
      ], 'short'),
      d.timeseries('Poll duration', [0, 12, 12, 8], [
        d.query(
          'max by (provider, account, endpoint, domain) (cdn_exporter_poll_duration_seconds{%s})' % s,
          '{{provider}} {{account}} {{endpoint}} {{domain}}'
        ),
      ], 's'),
      d.timeseries('Time since last success, and max_age', [12, 12, 12, 8], [
        d.query(
          'time() - max by (provider, account, endpoint, domain) (cdn_exporter_last_success_timestamp_seconds{%s})' % s,
          '{{account}} {{endpoint}} {{domain}}'
        ),
        d.query(
          'max by (provider, account, endpoint, domain) (cdn_exporter_max_age_seconds{%s})' % s,
          'max_age {{account}} {{endpoint}} {{domain}}'
        ),
      ], 's'),
      d.timeseries('Upstream requests by status', [0, 20, 12, 8], [
        d.query(
          'sum by (provider, code) (rate(cdn_exporter_upstream_requests_total{%s}[$__rate_interval]))' % s,
          '{{provider}} {{code}}'
        ),
      ], 'reqps'),
      d.timeseries('Series served and dropped', [12, 20, 12, 8], [
        d.query('sum(cdn_exporter_series{%s})' % t, 'served'),
        d.query('sum(rate(cdn_exporter_series_dropped_total{%s}[$__rate_interval]))' % t, 'dropped per second'),
      ], 'short'),
      d.timeseries('Exporter memory', [0, 28, 12, 8], [
        d.query('process_resident_memory_bytes{%s}' % t, '{{instance}} RSS'),
      ], 'bytes'),
      d.timeseries('Exporter CPU', [12, 28, 12, 8], [
        d.query('rate(process_cpu_seconds_total{%s}[$__rate_interval])' % t, '{{instance}}'),
      ], 'percentunit'),
      // Pay-per-request APIs (Cost Explorer $0.01 a request, CloudWatch GetMetricData $0.01 per
      // 1,000 metrics): what the exporter's own polling may have cost over the last day.
      d.timeseries('Exporter API spend, last 24h', [0, 36, 12, 8], [
        d.query(
          'sum by (provider, account, api) (increase(cdn_exporter_upstream_cost_usd_total{%s}[1d]))' % s,
          '{{provider}} {{account}} {{api}}'
        ),
      ], 'currencyUSD'),
    ],
  )
