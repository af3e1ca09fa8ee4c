// grafanaDashboards: file name -> dashboard, as Grafana imports them.
{
  grafanaDashboards+:: {
    'cdn-usage-overview.json': (import 'dashboards/overview.libsonnet')($._config),
    'cdn-usage-video.json': (import 'dashboards/video.libsonnet')($._config),
    'cdn-usage-exporter-health.json': (import 'dashboards/health.libsonnet')($._config),
  },
}
