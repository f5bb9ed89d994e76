-- KEYS: the reservations zset, the reservation. ARGV: the new expiry.
if redis.call('EXISTS', KEYS[2]) == 0 then return 0 end
redis.call('ZADD', KEYS[1], 'XX', tonumber(ARGV[1]), KEYS[2])
redis.call('EXPIREAT', KEYS[2], math.ceil(tonumber(ARGV[1])) + 86400)
return 1
