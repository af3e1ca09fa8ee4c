// dashboards/*.json: one file per dashboard (`jsonnet -S -m dashboards`).
local json = import 'lib/json.libsonnet';
local m = import 'mixin.libsonnet';

{
  [name]: json.manifest(m.grafanaDashboards[name]) + '\n'
  for name in std.objectFields(m.grafanaDashboards)
}
