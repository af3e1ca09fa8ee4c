// The cdn-usage-exporter monitoring mixin: recording and alerting rules and Grafana dashboards,
// configured by _config (config.libsonnet). Plain jsonnet, no dependencies.
(import 'config.libsonnet')
+ (import 'rules.libsonnet')
+ (import 'alerts.libsonnet')
+ (import 'alerts/balance.libsonnet')
+ (import 'dashboards.libsonnet')
