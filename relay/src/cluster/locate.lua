-- KEYS: a session's or device tag's entry, the node set. ARGV: node-key prefix, node lease
-- ms. Nil when nobody can join it (unknown, tombstoned, not joinable); else the name of the
-- node that holds it, the address and certificate that node published, and 1 if the node is
-- live — in the node set, with a heartbeat within its lease by Redis's clock — or 0.
local n = redis.call('GET', KEYS[1])
if (not n) or n == '-' or string.sub(n, -1) == '!' then return false end
local now = clock()
local e = redis.call('HMGET', ARGV[1] .. n, 'addr', 'cert', 'seen')
local seen = tonumber(e[3] or '')
local live = 0
if seen and now - seen <= tonumber(ARGV[2])
    and redis.call('SISMEMBER', KEYS[2], n) == 1 then live = 1 end
return {n, e[1] or '', e[2] or '', live}
