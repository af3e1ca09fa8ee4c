// prometheusAlerts: the group cdn-exporter-health, alerts on the exporter itself. The spend
// alerts live in prometheusRules beside the recording rules they read (rules.libsonnet says why).
local u = import 'lib/util.libsonnet';

{
  prometheusAlerts+:: {
    local c = $._config,
    local runbook(alert) = c.runbookUrlPattern % std.asciiLower(alert),
    local window = u.humanDuration(c.errorWindow),
    groups+: [
      {
        name: 'cdn-exporter-health',
        rules: [
          {
            alert: 'CdnExporterJobFailing',
            expr: 'max without (instance, pod) (cdn_exporter_poll_up) == 0',
            'for': c.jobFailingFor,
            labels: { severity: 'warning' },
            annotations: {
              summary: 'Polling {{ $labels.endpoint }} of {{ $labels.account }} ({{ $labels.provider }}) has failed for %s' % u.humanDuration(c.jobFailingFor),
              description: 'Every poll of {{ $labels.provider }} account {{ $labels.account }}, endpoint {{ $labels.endpoint }}{{ with $labels.domain }}, domain {{ . }}{{ end }} has failed for ' + u.humanDuration(c.jobFailingFor) + " (cdn_exporter_poll_up = {{ $value }}). The status page of the exporter shows the provider's message.",
              runbook: runbook('CdnExporterJobFailing'),
            },
          },
          {
            alert: 'CdnExporterDataStale',
            expr: |||
              time() - max without (instance, pod) (cdn_exporter_last_success_timestamp_seconds)
              > max without (instance, pod) (cdn_exporter_max_age_seconds)
            |||,
            'for': c.dataStaleFor,
            labels: { severity: 'warning' },
            annotations: {
              summary: 'Data of {{ $labels.account }} ({{ $labels.provider }}, {{ $labels.endpoint }}) is stale',
              description: 'The last successful poll of {{ $labels.provider }} account {{ $labels.account }}, endpoint {{ $labels.endpoint }}{{ with $labels.domain }}, domain {{ . }}{{ end }} was {{ $value | humanizeDuration }} ago, longer than its max_age: its values have left /metrics.',
              runbook: runbook('CdnExporterDataStale'),
            },
          },
          {
            alert: 'CdnExporterCredentialsRejected',
            expr: |||
              increase(cdn_exporter_poll_errors_total{reason="auth"}[%s]) > 0
              and ignoring (reason) cdn_exporter_poll_up == 0
            ||| % c.errorWindow,
            labels: { severity: 'critical' },
            annotations: {
              summary: '{{ $labels.provider }} rejects the credentials of {{ $labels.account }}',
              description: 'Polls of {{ $labels.provider }} account {{ $labels.account }}, endpoint {{ $labels.endpoint }}, fail with reason auth ({{ $value | printf "%.0f" }} in ' + window + '): the key or secret is wrong, revoked, or lacks permission.',
              runbook: runbook('CdnExporterCredentialsRejected'),
            },
          },
          {
            alert: 'CdnExporterClockSkew',
            expr: |||
              increase(cdn_exporter_poll_errors_total{reason="clock_skew"}[%s]) > 0
              and ignoring (reason) cdn_exporter_poll_up == 0
            ||| % c.errorWindow,
            labels: { severity: 'critical' },
            annotations: {
              summary: "{{ $labels.provider }} refuses the exporter's clock ({{ $labels.instance }})",
              description: 'Polls of {{ $labels.provider }} account {{ $labels.account }} fail with reason clock_skew ({{ $value | printf "%.0f" }} in ' + window + '): the clock of {{ $labels.instance }} is off; the providers allow about 5 minutes.',
              runbook: runbook('CdnExporterClockSkew'),
            },
          },
          {
            // `up` exists for every job: the selector picks this exporter's targets.
            alert: 'CdnExporterDown',
            expr: 'up{%s} == 0' % c.cdnExporterSelector,
            'for': c.exporterDownFor,
            labels: { severity: 'critical' },
            annotations: {
              summary: 'cdn-usage-exporter {{ $labels.instance }} is down',
              description: 'Prometheus has failed to scrape {{ $labels.instance }} (job {{ $labels.job }}) for ' + u.humanDuration(c.exporterDownFor) + ' (up = {{ $value }}): no CDN usage or spend is being collected there.',
              runbook: runbook('CdnExporterDown'),
            },
          },
          {
            alert: 'CdnExporterSeriesDropped',
            expr: 'increase(cdn_exporter_series_dropped_total[%s]) > 0' % c.errorWindow,
            labels: { severity: 'warning' },
            annotations: {
              summary: 'cdn-usage-exporter {{ $labels.instance }} drops series at its max_series limit',
              description: '{{ $value | printf "%.0f" }} new series were dropped in ' + window + ' because the exporter already serves max_series series. Raise max_series or lower video_top_n.',
              runbook: runbook('CdnExporterSeriesDropped'),
            },
          },
        ],
      },
    ],
  },
}
