// CDN usage and spend: spend to date against budget, estimates and forecast, bandwidth,
// requests, storage and CPU by provider and account.
local d = import '../lib/dashboard.libsonnet';
local u = import '../lib/util.libsonnet';

function(c)
  local s = d.account;
  local byAccount(metric) = 'max by (provider, account) (%s{%s})' % [metric, s];
  // A series of the forecast's recording rules (by provider and account, so without job and
  // instance), kept to the accounts the selected job and instance export.
  local recorded(name) = '%s{provider=~"$provider", account=~"$account"} and on (provider, account) %s'
                         % [name, byAccount('cdn_billing_month_to_date_spend_usd')];
  local forecast = recorded('cdn:billing_spend_usd:forecast');
  local low = recorded('cdn:billing_spend_usd:forecast_low');
  local high = recorded('cdn:billing_spend_usd:forecast_high');
  d.dashboard(
    c,
    'overview',
    'CDN usage and spend',
    'Spend to date against budget, estimates and forecast, bandwidth, requests, storage and CPU by provider and account.',
    [
      d.stat(
        'Spend to date',
        [0, 0, 6, 4],
        'sum(%s)' % byAccount('cdn_billing_month_to_date_spend_usd'),
        'to date',
        'currencyUSD',
        "Charges accrued since the start of the month (provider's totals row)."
      ),
      d.stat(
        "Provider's month-end estimate",
        [6, 0, 6, 4],
        'sum(%s)' % byAccount('cdn_billing_estimated_month_spend_usd'),
        'estimate',
        'currencyUSD',
        "The provider's estimate of the whole month's charges."
      ),
      d.stat(
        'Our month-end forecast',
        [12, 0, 6, 4],
        'sum(%s)' % forecast,
        'forecast',
        'currencyUSD',
        "Our expected month-end spend (the recording rule cdn:billing_spend_usd:forecast): last month's shape at this month's pace, or the recent pace where there is no last month (docs/alerts.md, \"The forecast\")."
      ),
      d.stat(
        'Budget',
        [18, 0, 6, 4],
        'sum(%s)' % byAccount('cdn_billing_budget_usd'),
        'budget',
        'currencyUSD',
        'Sum of the configured budget_usd of the selected accounts.'
      ),
      d.bargauge(
        'Estimated spend against budget',
        [0, 4, 12, 8],
        d.query(
          '%s / %s' % [byAccount('cdn_billing_estimated_month_spend_usd'), byAccount('cdn_billing_budget_usd')],
          '{{provider}} / {{account}}',
          instant=true
        ),
        'percentunit',
        displayMode='gradient',
        description="The provider's month-end estimate as a share of budget_usd: orange from %s %%, red over budget." % u.num(100 * c.budgetWarningRatio),
      ) + d.thresholds([['green', null], ['orange', c.budgetWarningRatio], ['red', 1]])
      + { fieldConfig+: { defaults+: { min: 0, max: 1.2 } } },
      d.timeseries('Spend to date, estimate, forecast and budget', [12, 4, 12, 8], [
        d.query(byAccount('cdn_billing_month_to_date_spend_usd'), '{{account}} to date'),
        d.query(byAccount('cdn_billing_estimated_month_spend_usd'), '{{account}} estimate'),
        d.query(forecast, '{{account}} forecast'),
        d.query(low, '{{account}} forecast, 80 % low'),
        d.query(high, '{{account}} forecast, 80 % high'),
        d.query(byAccount('cdn_billing_budget_usd'), '{{account}} budget'),
      ], 'currencyUSD', 'Our forecast comes with an 80 % interval (low and high) that narrows as the month passes; the forecast alert fires when even its low end is over the budget.'),
      d.timeseries('Estimated month cost by item', [0, 12, 12, 8], [
        d.query('sum by (item) (cdn_billing_estimated_month_cost_usd{%s})' % s, '{{item}}'),
      ], 'currencyUSD', "The provider's estimate per billing item."),
      d.timeseries('Cost to date by item', [12, 12, 12, 8], [
        d.query('sum by (item) (cdn_billing_month_to_date_cost_usd{%s})' % s, '{{item}}'),
      ], 'currencyUSD'),
      d.timeseries('Bandwidth this month by product', [0, 20, 12, 8], [
        d.query(
          'sum by (product) (max by (provider, account, product) (cdn_month_to_date_bandwidth_bytes{%s, product!=""}))' % s,
          '{{product}}'
        ),
      ], 'decbytes'),
      d.timeseries('Bandwidth rate by product', [12, 20, 12, 8], [
        d.query('sum by (product) (rate(cdn_month_to_date_bandwidth_bytes{%s, product!=""}[1h]))' % s, '{{product}}'),
      ], 'Bps', 'Bytes per second, from the month-to-date totals over the last hour (rate() treats the monthly reset as a counter reset).'),
      d.timeseries('Requests this month by product', [0, 28, 12, 8], [
        d.query(
          'sum by (product) (max by (provider, account, product) (cdn_month_to_date_requests{%s, product!=""}))' % s, '{{product}}'
        ),
      ], 'short'),
      d.timeseries('Storage', [12, 28, 12, 8], [
        d.query(
          'max by (provider, account, user, domain) (cdn_storage_bytes{%s})' % s,
          '{{provider}} {{account}} {{user}}{{domain}}'
        ),
      ], 'decbytes', 'Bytes stored at the newest complete point per user (ScaleEngine) or domain (CDNetworks).'),
      d.timeseries('CPU this month by product', [0, 36, 12, 8], [
        d.query(
          'sum by (product) (max by (provider, account, product) (cdn_month_to_date_cpu_seconds{%s})) / 3600' % s,
          '{{product}}'
        ),
      ], 'h', 'CPU hours used this month (the exporter stores seconds).'),
      d.timeseries('SQL queries this month', [12, 36, 12, 8], [
        d.query(
          'sum by (kind) (max by (provider, account, kind) (cdn_month_to_date_sql_queries{%s}))' % s, '{{kind}}'
        ),
      ], 'short'),
      // CDNetworks traffic-request: per domain, and the account's billable bandwidth.
      d.timeseries('CDNetworks traffic this month by domain', [0, 44, 12, 8], [
        d.query(
          'max by (provider, account, domain) (cdn_month_to_date_bandwidth_bytes{%s, domain!=""})' % s,
          '{{account}} {{domain}}'
        ),
      ], 'decbytes', "Bytes served per domain since the start of the month in the account's time zone (MB taken as 10^6 bytes)."),
      d.timeseries('CDNetworks requests this month by domain', [12, 44, 12, 8], [
        d.query(
          'max by (provider, account, domain) (cdn_month_to_date_requests{%s, domain!=""})' % s,
          '{{account}} {{domain}}'
        ),
      ], 'short'),
      d.timeseries('Billable bandwidth: 95th percentile and peak against commitment', [0, 52, 12, 8], [
        d.query(
          '8 * max by (provider, account) (cdn_month_to_date_account_p95_bandwidth_bytes_per_second{%s})' % s,
          '{{account}} 95th percentile'
        ),
        d.query(
          '8 * max by (provider, account) (cdn_month_to_date_account_peak_bandwidth_bytes_per_second{%s})' % s,
          '{{account}} peak'
        ),
        d.query(
          '8 * max by (provider, account) (cdn_bandwidth_commit_bytes_per_second{%s})' % s,
          '{{account}} commitment'
        ),
      ], 'bps', "The month's 5-minute bandwidth so far over the sum of the account's domains, in bits per second: the 95th percentile (top 5 % of slices dropped), the peak, and the configured bandwidth_commit_mbps."),
      d.timeseries('95th percentile bandwidth by domain', [12, 52, 12, 8], [
        d.query(
          '8 * max by (provider, account, domain) (cdn_month_to_date_p95_bandwidth_bytes_per_second{%s})' % s,
          '{{account}} {{domain}}'
        ),
      ], 'bps', "Each domain's 95th percentile of the month's 5-minute bandwidth so far, in bits per second."),
      // Every provider's spend in the same families: one view across providers and accounts.
      d.panel('bargauge', 'Spend by provider and account: this month against last month', [0, 60, 24, 10], [
        d.query(byAccount('cdn_billing_month_to_date_spend_usd'), '{{provider}} / {{account}} to date', instant=true),
        d.query(byAccount('cdn_billing_estimated_month_spend_usd'), '{{provider}} / {{account}} month-end estimate', instant=true),
        d.query(low, '{{provider}} / {{account}} our forecast, 80 % low', instant=true),
        d.query(forecast, '{{provider}} / {{account}} our forecast', instant=true),
        d.query(high, '{{provider}} / {{account}} our forecast, 80 % high', instant=true),
        d.query(byAccount('cdn_billing_last_month_spend_usd'), '{{provider}} / {{account}} last month', instant=true),
      ], 'currencyUSD', "Per account: spend to date, the month-end estimate (the provider's, or priced from the account's contract where cdn_billing_spend_source_info says source=\"contract\"), our forecast with its 80 % interval, and last month's final bill, to reconcile with the invoice.")
      + { options: { orientation: 'horizontal', displayMode: 'basic', reduceOptions: { calcs: ['lastNotNull'], fields: '', values: false } } },
      // Usage across providers: whatever breaks a family down (product, domain, service_id and
      // area, pull_zone), summed per account.
      d.timeseries('Bandwidth this month by provider and account', [0, 70, 12, 8], [
        d.query('sum by (provider, account) (cdn_month_to_date_bandwidth_bytes{%s})' % s, '{{provider}} / {{account}}'),
      ], 'decbytes', "Bytes transferred since the start of the provider's month, all of the account's products, domains, services or zones together."),
      d.timeseries('Requests this month by provider and account', [12, 70, 12, 8], [
        d.query('sum by (provider, account) (cdn_month_to_date_requests{%s})' % s, '{{provider}} / {{account}}'),
      ], 'short', "Requests served since the start of the provider's month, all of the account's products, domains, services or zones together."),
      d.timeseries('Prepaid balance', [0, 78, 12, 8], [
        d.query(byAccount('cdn_billing_prepaid_balance_usd'), '{{provider}} / {{account}} balance'),
        d.query(byAccount('cdn_billing_month_to_date_spend_usd'), '{{provider}} / {{account}} spent this month'),
      ], 'currencyUSD', "The prepaid balance (bunny.net) beside this month's spend: when the balance runs out, the provider disables the zones (alert CdnPrepaidBalanceLow)."),
      d.timeseries('Cost to date by pull zone', [12, 78, 12, 8], [
        d.query(
          'max by (provider, account, pull_zone) (cdn_billing_month_to_date_pull_zone_cost_usd{%s})' % s,
          '{{account}} {{pull_zone}}'
        ),
      ], 'currencyUSD', "Charges accrued this month per pull zone (bunny.net's billing summary)."),
      d.timeseries('Requests this month: delivery and Compute', [0, 86, 12, 8], [
        d.query('sum by (provider, account, kind) (cdn_month_to_date_requests{kind!="", %s})' % s, '{{provider}} / {{account}} {{kind}}'),
      ], 'short', 'Requests where the provider tells delivery from edge compute apart (Fastly: kind="delivery" for VCL services\' requests, kind="compute" for Compute services\', which Fastly counts only as compute requests). The two never overlap.'),
    ],
  )
