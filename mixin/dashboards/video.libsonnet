// CDN video top-N: bytes and requests per video URL or stream.
local d = import '../lib/dashboard.libsonnet';

function(c)
  local s = d.account + ', app=~"$app"';
  d.dashboard(
    c,
    'video',
    'CDN video top-N',
    'Bytes and requests per video URL or stream: the top video_top_n per app, the rest summed as __other__.',
    [
      d.bargauge('Top URLs by bytes this month', [0, 0, 12, 10], d.query(
        'topk(10, max by (account, app, url) (cdn_video_month_to_date_bytes{%s, url!="__other__"}))' % s,
        '{{app}} {{url}}',
        instant=true
      ), 'decbytes'),
      d.bargauge('Top URLs by requests this month', [12, 0, 12, 10], d.query(
        'topk(10, max by (account, app, url) (cdn_video_month_to_date_requests{%s, url!="__other__"}))' % s,
        '{{app}} {{url}}',
        instant=true
      ), 'short'),
      d.timeseries('Video bytes this month by app', [0, 10, 12, 8], [
        d.query(
          'sum by (account, app) (max by (account, app, url) (cdn_video_month_to_date_bytes{%s}))' % s,
          '{{account}} {{app}}'
        ),
      ], 'decbytes'),
      d.timeseries('Share of bytes outside the top N', [12, 10, 12, 8], [
        d.query(
          'sum by (account, app) (max by (account, app) (cdn_video_month_to_date_bytes{%s, url="__other__"})) / sum by (account, app) (max by (account, app, url) (cdn_video_month_to_date_bytes{%s}))' % [s, s],
          '{{account}} {{app}}'
        ),
      ], 'percentunit', 'How much of an app\'s traffic the URLs below the top video_top_n carry (url="__other__").'),
      d.table('URLs', [0, 18, 24, 10], d.query(
        'max by (account, app, url) (cdn_video_month_to_date_bytes{%s})' % s, '', instant=true
      ), 'decbytes'),
    ],
    extraVariables=[
      d.variable('app', 'App', 'label_values(cdn_video_month_to_date_bytes{%s}, app)' % d.account),
    ],
  )
