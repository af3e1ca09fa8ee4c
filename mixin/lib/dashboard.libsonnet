// Plain-object builders for Grafana 10 dashboards (schema 39): no grafonnet, nothing to fetch.
{
  local ds = { type: 'prometheus', uid: '${datasource}' },

  // The label matchers of the job and instance variables; every exporter series is filtered by them.
  target:: 'job=~"$job", instance=~"$instance"',
  // ...and of the provider and account variables too, for series that carry those labels.
  account:: self.target + ', provider=~"$provider", account=~"$account"',

  // A query variable over label_values(); "All" matches every non-empty value.
  variable(name, label, query):: {
    name: name,
    label: label,
    type: 'query',
    datasource: ds,
    query: { query: query, refId: name },
    definition: query,
    includeAll: true,
    multi: true,
    allValue: '.+',
    current: { text: 'All', value: '$__all' },
    refresh: 2,
    sort: 1,
  },

  // datasource, job, instance, provider and account: the variables every dashboard starts with.
  variables:: [
    {
      name: 'datasource',
      label: 'Data source',
      type: 'datasource',
      query: 'prometheus',
      current: {},
      hide: 0,
      refresh: 1,
    },
    self.variable('job', 'Job', 'label_values(cdn_exporter_build_info, job)'),
    self.variable('instance', 'Instance', 'label_values(cdn_exporter_build_info{job=~"$job"}, instance)'),
    self.variable('provider', 'Provider', 'label_values(cdn_exporter_poll_up{%s}, provider)' % self.target),
    self.variable(
      'account', 'Account', 'label_values(cdn_exporter_poll_up{%s, provider=~"$provider"}, account)' % self.target
    ),
  ],

  // One query of a panel; instant ones feed stats, gauges and tables.
  query(expr, legend='', instant=false):: {
    datasource: ds,
    expr: expr,
    legendFormat: legend,
  } + (if instant then { instant: true, range: false } else {}),

  // pos: [x, y, w, h] on Grafana's 24-column grid.
  panel(type, title, pos, queries, unit, description=''):: {
    type: type,
    title: title,
    description: description,
    gridPos: { x: pos[0], y: pos[1], w: pos[2], h: pos[3] },
    datasource: ds,
    targets: [
      queries[i] { refId: std.char(std.codepoint('A') + i) }
      for i in std.range(0, std.length(queries) - 1)
    ],
    fieldConfig: { defaults: { unit: unit }, overrides: [] },
  },

  local reduce = { calcs: ['lastNotNull'], fields: '', values: false },

  stat(title, pos, expr, legend, unit, description=''):: self.panel(
    'stat', title, pos, [self.query(expr, legend, instant=true)], unit, description
  ) + {
    options: { reduceOptions: reduce, colorMode: 'value', graphMode: 'none', textMode: 'auto' },
  },

  timeseries(title, pos, queries, unit, description=''):: self.panel(
    'timeseries', title, pos, queries, unit, description
  ),

  bargauge(title, pos, query, unit, displayMode='basic', description=''):: self.panel(
    'bargauge', title, pos, [query], unit, description
  ) + {
    options: { orientation: 'horizontal', displayMode: displayMode, reduceOptions: reduce },
  },

  table(title, pos, query, unit, description=''):: self.panel(
    'table', title, pos, [query], unit, description
  ) + {
    options: { showHeader: true, sortBy: [{ displayName: 'Value', desc: true }] },
  },

  thresholds(steps):: {
    fieldConfig+: { defaults+: { thresholds: {
      mode: 'absolute',
      steps: [{ color: s[0], value: s[1] } for s in steps],
    } } },
  },

  // A whole dashboard: panels are numbered in order.
  dashboard(config, uid, title, description, panels, extraVariables=[]):: {
    uid: config.dashboardUidPrefix + uid,
    title: title,
    description: description,
    tags: config.dashboardTags,
    editable: true,
    schemaVersion: 39,
    version: 1,
    graphTooltip: 1,
    refresh: config.dashboardRefresh,
    timezone: config.dashboardTimezone,
    time: { from: config.dashboardTimeFrom, to: 'now' },
    templating: { list: $.variables + extraVariables },
    panels: [panels[i] { id: i + 1 } for i in std.range(0, std.length(panels) - 1)],
    annotations: { list: [] },
    links: [],
  },
}
