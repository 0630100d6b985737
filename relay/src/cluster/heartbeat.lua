-- KEYS: node entry, node set. ARGV: name, addr, waiting, paired, draining, lease ms,
-- certificate (DER).
redis.call('HSET', KEYS[1], 'addr', ARGV[2], 'waiting', ARGV[3], 'paired', ARGV[4],
    'draining', ARGV[5], 'seen', clock(), 'cert', ARGV[7])
redis.call('PEXPIRE', KEYS[1], ARGV[6])
redis.call('SADD', KEYS[2], ARGV[1])
return 1
