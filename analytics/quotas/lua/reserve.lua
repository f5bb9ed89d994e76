-- uses: sweep_expired
-- KEYS: the reservations zset, then the counters. ARGV: now, reservation key ('' = only check),
-- reservation expiry, then amount, cap (-1 = none) and ttl of each counter.
sweep(KEYS[1], ARGV[1])
local n = #KEYS - 1
local missing = {}
for i = 1, n do
  if redis.call('EXISTS', KEYS[i + 1]) == 0 then table.insert(missing, i) end
end
if #missing > 0 then return {'missing', missing} end
for i = 1, n do
  local amount = tonumber(ARGV[3 + 3 * (i - 1) + 1])
  local cap = tonumber(ARGV[3 + 3 * (i - 1) + 2])
  local used = tonumber(redis.call('GET', KEYS[i + 1]))
  if cap >= 0 and used + amount > cap then return {'exceeded', i, used} end
end
if ARGV[2] ~= '' then
  for i = 1, n do
    local amount = tonumber(ARGV[3 + 3 * (i - 1) + 1])
    redis.call('INCRBY', KEYS[i + 1], amount)
    redis.call('EXPIRE', KEYS[i + 1], tonumber(ARGV[3 + 3 * (i - 1) + 3]))
    redis.call('HSET', ARGV[2], KEYS[i + 1], amount)
  end
  redis.call('ZADD', KEYS[1], tonumber(ARGV[3]), ARGV[2])
  redis.call('EXPIREAT', ARGV[2], math.ceil(tonumber(ARGV[3])) + 86400)
end
return {'ok'}
