-- KEYS: session claims. ARGV: node, lease ms, then each key's value. Renews (or, after Redis
-- lost them, re-creates) this node's claims, never taking over another node's.
for i, k in ipairs(KEYS) do
    local v = redis.call('GET', k)
    if (not v) or v == ARGV[1] or v == ARGV[1] .. '!' then
        redis.call('SET', k, ARGV[i + 2], 'PX', ARGV[2])
    end
end
return #KEYS
