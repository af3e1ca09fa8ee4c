// JSON text like std.manifestJsonEx(v, '  '), except that numbers read as written: the C++
// jsonnet prints 0.8 as 0.80000000000000004 (17 significant digits), this prints 0.8.
{
  manifest(v)::
    local number(n) = if n == std.floor(n) && std.abs(n) < 1e15 then '%d' % n else std.format('%.15g', n);
    local go(v, pad) =
      local inner = pad + '  ';
      if std.isObject(v) then
        if std.length(std.objectFields(v)) == 0 then '{}'
        else '{\n' + std.join(',\n', [
          inner + std.escapeStringJson(k) + ': ' + go(v[k], inner)
          for k in std.objectFields(v)
        ]) + '\n' + pad + '}'
      else if std.isArray(v) then
        if std.length(v) == 0 then '[]'
        else '[\n' + std.join(',\n', [inner + go(x, inner) for x in v]) + '\n' + pad + ']'
      else if std.isString(v) then std.escapeStringJson(v)
      else if std.isNumber(v) then number(v)
      else if std.isBoolean(v) then (if v then 'true' else 'false')
      else if v == null then 'null'
      else error 'cannot write %s as JSON' % std.type(v);
    go(v, ''),
}
