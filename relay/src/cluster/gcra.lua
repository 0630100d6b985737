-- GCRA on `key` with `interval` and `tolerance` (ms): returns 0 when a token was taken, else
-- the milliseconds to wait.
local function gcra(key, interval, tolerance, now)
    local tat = tonumber(redis.call('GET', key) or now)
    if tat < now then tat = now end
    if tat + interval - now > tolerance then return tat + interval - now - tolerance end
    redis.call('SET', key, tat + interval, 'PX', math.ceil(tat + interval - now + 1000))
    return 0
end
