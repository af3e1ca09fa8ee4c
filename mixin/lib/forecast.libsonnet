// The month-end spend forecast, as recording rules that Prometheus computes from the history it
// holds, so that an exporter restart loses nothing and every provider is covered. The method,
// its evidence and its limits: docs/alerts.md, "The forecast". One method: the status page's
// "Our forecast" (src/forecast.rs) computes the same formulas from what the exporter has seen.
//
// With S the spend to date, L last month's final spend, S' last month's spend to date at the
// same day and hour, p / p' the typical (median) day's spend over the last 7 whole days now and
// at that point of last month, and n / n' the days left in this month and, from that point, in
// last month:
//   shape:  S + p * n * g, g = clamp((L - S') / (n' * p'), 0.67, 1.5), or the same recorded at
//           this point of last month (the month before's shape) when that is flatter
//           the recent pace for the days left, shaped as last month's days still to come were
//           against its pace at the same point (tiers, a fee billed at once, the week)
//   pace:   S + p * n                              no last month to lean on
//   linear: S / elapsed share of the month         not a single whole day of history
// The first that can be computed is the forecast. The interval is the spend still to come,
// widened by a relative spread w per method: low = S + (F - S) * (1 - w), high = S + (F - S) * (1 + w),
// with w = 0.2 + 0.35 * |shape - 1| for the shape, 0.3 for the pace, 1 for the linear.
local u = import 'util.libsonnet';

local spend = 'cdn_billing_month_to_date_spend_usd';
local S = 'max by (provider, account) (%s)' % spend;
// The days of the previous UTC month, as a one-element vector: the day before this month's 1st.
local prevDays = 'days_in_month(vector(time()) - 86400 * day_of_month())';
// Days of this month gone and left (fractional), and left from the same point of last month.
local elapsedDays = '(day_of_month() - 1 + hour() / 24 + minute() / 1440)';
local daysLeft = '(days_in_month() - %s)' % elapsedDays;
local daysLeftThen = '(%s - %s)' % [prevDays, elapsedDays];
// `expr(offset)` at the same day and hour of the previous month: one offset per month length,
// each kept only when it is last month's length; nothing past last month's last day (the 31st
// after a 30-day month).
local lastMonth(expr) =
  '(\n' + std.join('\n  or\n', [
    '  (%s and on () (%s == %d))' % [expr('%dd' % n), prevDays, n]
    for n in [28, 29, 30, 31]
  ]) + '\n)\nand on () (day_of_month() <= %s)' % prevDays;
// The median day's spend over the last 7 whole UTC days, `offset` back. increase() reads the
// month's reset as a counter reset, so a day across it still counts what was spent in it; the
// median leaves out a one-day spike and a charge billed at once.
local pace(offset) =
  'quantile_over_time(0.5, (max by (provider, account) (increase(%s[1d])))[7d:1d]%s)'
  % [spend, if offset == '' then '' else ' offset ' + offset];

{
  // The relative spread of the spend still to come, per method (tuned on the evaluation in
  // docs/benchmarks.md, "Forecast evaluation").
  // The linear method's 1 puts the low end at the spend to date: with not one whole day seen,
  // the forecast claims nothing about the rest of the month.
  spread:: { shape: 0.2, shapePerDeviation: 0.35, pace: 0.3, linear: 1 },

  // The bounds of last month's shape (see above).
  shapeBounds:: [0.67, 1.5],

  local spread = self.spread,
  local shapeBounds = self.shapeBounds,
  local elapsed = u.monthElapsed,

  rules:: [
    {
      // The median day's spend over the last 7 whole UTC days.
      record: 'cdn:billing_spend_usd:pace1d',
      expr: pace(''),
    },
    {
      // The same, at this day and hour of last month.
      record: 'cdn:billing_spend_usd:pace1d_last_month',
      expr: lastMonth(function(o) pace(o)),
    },
    {
      // Last month's spend to date at this day and hour.
      record: 'cdn:billing_spend_usd:same_point_last_month',
      expr: lastMonth(function(o) 'max by (provider, account) (last_over_time(%s[1h] offset %s))' % [spend, o]),
    },
    {
      // Last month's final spend: the provider's bill, or, in the first days before it is
      // posted, the highest spend to date of the last 3 days (last month's end).
      record: 'cdn:billing_spend_usd:last_month',
      expr: |||
        max by (provider, account) (cdn_billing_last_month_spend_usd)
        or
        (max by (provider, account) (max_over_time(%s[3d])) and on () (day_of_month() <= 3))
      ||| % spend,
    },
    {
      // Last month's shape: what its days still to come from this day and hour averaged,
      // against its pace at that point; bounded, so that a month whose pace changed does not
      // carry that change into this one twice.
      record: 'cdn:billing_spend_usd:shape_last_month',
      expr: |||
        clamp(
          clamp_min(cdn:billing_spend_usd:last_month - cdn:billing_spend_usd:same_point_last_month, 0)
          / (cdn:billing_spend_usd:pace1d_last_month > 0) / scalar(%(leftThen)s > 0),
          %(min)s, %(max)s
        )
      ||| % { leftThen: daysLeftThen, min: u.num(shapeBounds[0]), max: u.num(shapeBounds[1]) },
    },
    {
      // The month before last's shape: last month's own, as it was recorded at this day and
      // hour of last month (the newest record within that hour, as a restart may leave gaps).
      record: 'cdn:billing_spend_usd:shape_month_before',
      expr: lastMonth(function(o) 'last_over_time(cdn:billing_spend_usd:shape_last_month[1h] offset %s)' % o),
    },
    {
      // The shape the forecast uses: of the last two months', the one closer to flat, so that a
      // month whose pace changed (its shape far from 1) does not shape the next one when the
      // month before it says otherwise; last month's alone when there is no month before.
      // (One series whichever branch answers: the aggregation drops the branches' names.)
      record: 'cdn:billing_spend_usd:forecast_shape',
      expr: |||
        max by (provider, account) (
        (
          cdn:billing_spend_usd:shape_last_month
          and on (provider, account)
          (
            abs(cdn:billing_spend_usd:shape_last_month - 1)
            <= on (provider, account)
            abs(cdn:billing_spend_usd:shape_month_before - 1)
          )
        )
        or on (provider, account)
        (cdn:billing_spend_usd:shape_month_before and on (provider, account) cdn:billing_spend_usd:shape_last_month)
        or on (provider, account)
        cdn:billing_spend_usd:shape_last_month
        )
      |||,
    },
    {
      // How far the account's billing month began from the UTC month's first minute, in
      // seconds, for accounts billed on another month (CDNetworks: the account's time_zone;
      // cdn_billing_month_start_timestamp_seconds). Hours apart for most of the month; about a
      // month apart in the hours between the two months' turns.
      record: 'cdn:billing_month_start:offset_seconds',
      expr: 'max by (provider, account) (cdn_billing_month_start_timestamp_seconds) - scalar(vector(time()) - 86400 * %s)' % elapsedDays,
    },
    {
      // The expected month-end spend. None while the account's billing month is not the UTC
      // month these rules count days in (its month has turned and the UTC one not yet, or the
      // other way round): its spend to date then belongs to another month than the days left.
      record: 'cdn:billing_spend_usd:forecast',
      expr: |||
        (
          (%(S)s + cdn:billing_spend_usd:pace1d * scalar(%(left)s) * cdn:billing_spend_usd:forecast_shape)
          or
          (%(S)s + cdn:billing_spend_usd:pace1d * scalar(%(left)s))
          or
          ((%(S)s / scalar(%(elapsed)s)) and on () (%(elapsed)s > 0))
        )
        unless on (provider, account)
        (abs(cdn:billing_month_start:offset_seconds) > 86400)
      ||| % { S: S, elapsed: elapsed, left: daysLeft },
    },
    {
      // The relative spread of the spend still to come, by the method the forecast used: with
      // last month's shape, wider the further that shape is from flat.
      record: 'cdn:billing_spend_usd:forecast_spread',
      expr: |||
        (%(shape)s + %(perDeviation)s * abs(cdn:billing_spend_usd:forecast_shape - 1) + cdn:billing_spend_usd:pace1d * 0)
        or (cdn:billing_spend_usd:pace1d * 0 + %(pace)s)
        or (%(S)s * 0 + %(linear)s)
      ||| % {
        S: S,
        shape: u.num(spread.shape),
        perDeviation: u.num(spread.shapePerDeviation),
        pace: u.num(spread.pace),
        linear: u.num(spread.linear),
      },
    },
    {
      // The low end of the 80 % interval: never below the spend to date.
      record: 'cdn:billing_spend_usd:forecast_low',
      expr: '%(S)s + (cdn:billing_spend_usd:forecast - %(S)s) * (1 - cdn:billing_spend_usd:forecast_spread)' % { S: S },
    },
    {
      // The high end of the 80 % interval.
      record: 'cdn:billing_spend_usd:forecast_high',
      expr: '%(S)s + (cdn:billing_spend_usd:forecast - %(S)s) * (1 + cdn:billing_spend_usd:forecast_spread)' % { S: S },
    },
  ],
}
