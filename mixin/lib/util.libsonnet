// Small helpers shared by the rules and the dashboards.
{
  // A number as PromQL or text writes it: 0.8, 10, 1000000000 (not 0.80000000000000004).
  num(x):: std.format('%.15g', x),

  // '30m' -> '30 minutes', '1h' -> '1 hour': durations as alert texts say them.
  humanDuration(d)::
    local units = { s: 'second', m: 'minute', h: 'hour', d: 'day', w: 'week' };
    local unit = std.substr(d, std.length(d) - 1, 1);
    local digits = std.substr(d, 0, std.length(d) - 1);
    local valid = std.length(digits) > 0 && std.objectHas(units, unit)
                  && std.length([c for c in std.stringChars(digits) if !std.member('0123456789', c)]) == 0;
    assert valid : "duration '%s' in _config: write one number and one unit of s, m, h, d or w, e.g. '30m'" % d;
    local n = std.parseInt(digits);
    '%d %s%s' % [n, units[unit], if n == 1 then '' else 's'],

  // The share of the current UTC month that has passed, from 0 to 1: the recording rule
  // cdn:month_elapsed:ratio, and inline in the dashboards so they need no rules.
  monthElapsed:: '((day_of_month() - 1) * 86400 + hour() * 3600 + minute() * 60) / (days_in_month() * 86400)',
}
