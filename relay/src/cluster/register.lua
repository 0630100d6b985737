-- KEYS: session, register bucket, waiting set. ARGV: node, lease ms, interval, tolerance,
-- waiting cap, pairing ttl ms, id, `paid` (the token was taken already) or `take`. Returns
-- {0} ID taken, {1, wait} rate limited, {2} waiting cap reached, {3} registered.
local now = clock()
if redis.call('EXISTS', KEYS[1]) == 1 then return {0, 0} end
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now)
if redis.call('ZCARD', KEYS[3]) >= tonumber(ARGV[5]) then return {2, 0} end
if ARGV[8] ~= 'paid' then
    local wait = gcra(KEYS[2], tonumber(ARGV[3]), tonumber(ARGV[4]), now)
    if wait > 0 then return {1, math.ceil(wait)} end
end
redis.call('ZADD', KEYS[3], now + tonumber(ARGV[6]), ARGV[7])
redis.call('PEXPIRE', KEYS[3], tonumber(ARGV[6]) + 1000)
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return {3, 0}
