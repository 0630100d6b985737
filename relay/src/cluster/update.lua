-- KEYS: session, waiting set. ARGV: node, new value, px, op on the waiting set (0 none,
-- 1 remove, 2 add), id, pairing ttl ms. Changes the session's entry only while this node
-- owns it.
local now = clock()
local v = redis.call('GET', KEYS[1])
if v ~= ARGV[1] and v ~= ARGV[1] .. '!' then return 0 end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
if ARGV[4] == '1' then redis.call('ZREM', KEYS[2], ARGV[5]) end
if ARGV[4] == '2' then
    redis.call('ZADD', KEYS[2], now + tonumber(ARGV[6]), ARGV[5])
    redis.call('PEXPIRE', KEYS[2], tonumber(ARGV[6]) + 1000)
end
return 1
