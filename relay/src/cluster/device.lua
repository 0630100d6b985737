-- KEYS: a device tag's entry. ARGV: node, lease ms, `claim` or `release`. A claim takes the
-- tag for this node (the latest claim holds it, as on one node); a release gives it up only
-- while this node holds it.
if ARGV[3] == 'claim' then redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
elseif redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
return 1
