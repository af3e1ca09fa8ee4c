// CdnPrepaidBalanceLow: a prepaid balance (bunny.net) that, at this month's pace of spend, runs
// out before the month ends or within _config.prepaidBalanceDays, whichever is later. When the
// balance runs out the provider disables the account's zones, so this pages before that.
// Self-contained: its own group and _config defaults; wired in with
//   (import 'alerts.libsonnet') + (import 'alerts/balance.libsonnet')
// The month's elapsed time is computed inline, not read from cdn:month_elapsed:ratio: that rule
// lives in another group, and a rule of this group would race it.
local u = import '../lib/util.libsonnet';

{
  _config+:: {
    // Warn when the balance will not last this many days at this month's pace, even when the
    // month ends sooner (the next month spends too).
    prepaidBalanceDays: 7,
    // Hours into the month before the pace is trusted (a few hours say little about a month).
    prepaidBalanceMinElapsedHours: 6,
    prepaidBalanceFor: '1h',
  },

  prometheusAlerts+:: {
    local c = $._config,
    local runbook(alert) = c.runbookUrlPattern % std.asciiLower(alert),
    local elapsed = '((day_of_month() - 1) * 86400 + hour() * 3600 + minute() * 60)',
    local left = '(days_in_month() * 86400 - %s)' % elapsed,
    groups+: [
      {
        name: 'cdn-prepaid-balance',
        rules: [
          {
            alert: 'CdnPrepaidBalanceLow',
            expr: |||
              max by (provider, account) (cdn_billing_prepaid_balance_usd)
              < max by (provider, account) (cdn_billing_month_to_date_spend_usd) / scalar(%(elapsed)s)
                * scalar(clamp_min(%(left)s, %(horizon)s))
              and on () (%(elapsed)s > %(min)s)
              or max by (provider, account) (cdn_billing_prepaid_balance_usd) <= 0
            ||| % {
              elapsed: elapsed,
              left: left,
              horizon: u.num(c.prepaidBalanceDays * 86400),
              min: u.num(c.prepaidBalanceMinElapsedHours * 3600),
            },
            'for': c.prepaidBalanceFor,
            labels: { severity: 'critical' },
            annotations: {
              summary: 'The prepaid balance of {{ $labels.account }} ({{ $labels.provider }}) runs out soon',
              description: "At this month's pace of spend, the prepaid balance of {{ $labels.provider }} account {{ $labels.account }} (${{ $value | printf \"%.2f\" }}) runs out before the month ends or within " + u.humanDuration('%dd' % c.prepaidBalanceDays) + ': then the provider disables its zones. Add funds or turn on automatic recharge.',
              runbook: runbook('CdnPrepaidBalanceLow'),
            },
          },
        ],
      },
    ],
  },
}
