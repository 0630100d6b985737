-- KEYS: this node's connection counts, node set. ARGV: name, lease ms, then source and count
-- pairs. Replaces this node's counts, then returns the other nodes' counts summed per source,
-- flattened (a dead node's counts expire with its lease).
redis.call('DEL', KEYS[1])
for i = 3, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
if #ARGV > 2 then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
-- The other nodes' keys are named like this node's, which ends with this node's name.
local prefix = string.sub(KEYS[1], 1, #KEYS[1] - #ARGV[1])
local sum = {}
for _, n in ipairs(redis.call('SMEMBERS', KEYS[2])) do
    if n ~= ARGV[1] then
        local kv = redis.call('HGETALL', prefix .. n)
        for i = 1, #kv, 2 do sum[kv[i]] = (sum[kv[i]] or 0) + tonumber(kv[i + 1]) end
    end
end
local out = {}
for k, v in pairs(sum) do out[#out + 1] = k out[#out + 1] = v end
return out
