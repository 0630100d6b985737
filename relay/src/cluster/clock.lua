-- Milliseconds by the Redis server's clock, so that every node agrees on expiry.
local function clock()
    local t = redis.call('TIME')
    return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
