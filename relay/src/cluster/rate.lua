-- KEYS: bucket. ARGV: interval, tolerance. Returns 0 or the milliseconds to wait.
return math.ceil(gcra(KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2]), clock()))
