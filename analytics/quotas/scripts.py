"""The Redis backend's Lua scripts (each one atomic, one round trip)."""

# Shared by the Redis scripts: give back the amounts of reservations that expired.
_LUA_SWEEP = """
local function sweep(zset, now)
  local ids = redis.call('ZRANGEBYSCORE', zset, '-inf', now, 'LIMIT', 0, 100)
  for _, rid in ipairs(ids) do
    local flat = redis.call('HGETALL', rid)
    for j = 1, #flat, 2 do
      if redis.call('EXISTS', flat[j]) == 1 then redis.call('DECRBY', flat[j], flat[j + 1]) end
    end
    redis.call('DEL', rid)
    redis.call('ZREM', zset, rid)
  end
end
"""

# KEYS: the reservations zset, then the counters. ARGV: now, reservation key ('' = only check),
# reservation expiry, then amount, cap (-1 = none) and ttl of each counter.
_LUA_RESERVE = (
    _LUA_SWEEP
    + """
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
"""
)

# KEYS: the reservations zset. ARGV: now. Give back what expired (before reading a counter).
_LUA_SWEEP_ONLY = (
    _LUA_SWEEP
    + """
sweep(KEYS[1], ARGV[1])
return 1
"""
)

# KEYS: the reservations zset, the reservation. Give its amounts back (if it has not expired).
_LUA_RELEASE = """
local flat = redis.call('HGETALL', KEYS[2])
for j = 1, #flat, 2 do
  if redis.call('EXISTS', flat[j]) == 1 then redis.call('DECRBY', flat[j], flat[j + 1]) end
end
redis.call('DEL', KEYS[2])
redis.call('ZREM', KEYS[1], KEYS[2])
return #flat / 2
"""

# KEYS: the reservations zset, the reservation. ARGV: the new expiry.
_LUA_RENEW = """
if redis.call('EXISTS', KEYS[2]) == 0 then return 0 end
redis.call('ZADD', KEYS[1], 'XX', tonumber(ARGV[1]), KEYS[2])
redis.call('EXPIREAT', KEYS[2], math.ceil(tonumber(ARGV[1])) + 86400)
return 1
"""

# KEYS: counters. ARGV: the amount of each. Adds to the counters that exist and returns the
# indexes of the others (the caller seeds those: the seed includes the call being charged).
_LUA_CHARGE = """
local missing = {}
for i = 1, #KEYS do
  if redis.call('EXISTS', KEYS[i]) == 1 then
    redis.call('INCRBY', KEYS[i], ARGV[i])
  else
    table.insert(missing, i)
  end
end
return missing
"""

# KEYS: the log. ARGV: now (ms), window (ms), limit, a unique member. Returns {allowed, wait ms}.
_LUA_RATE = """
local now = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[3]) then
  local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  return {0, tonumber(oldest[2]) + window - now}
end
redis.call('ZADD', KEYS[1], now, ARGV[4])
redis.call('PEXPIRE', KEYS[1], window)
return {1, 0}
"""

# KEYS: the reservations zset, then counters. ARGV: now, then each counter's recorded usage.
# Raises each existing counter that is below its recorded usage plus its open reservations
# (expired ones given back first) to that sum; never lowers one. Returns how many it raised.
_LUA_RECONCILE = (
    _LUA_SWEEP
    + """
sweep(KEYS[1], ARGV[1])
local reserved = {}
for _, rid in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  local flat = redis.call('HGETALL', rid)
  for j = 1, #flat, 2 do
    reserved[flat[j]] = (reserved[flat[j]] or 0) + tonumber(flat[j + 1])
  end
end
local raised = 0
for i = 2, #KEYS do
  local current = redis.call('GET', KEYS[i])
  if current then
    local target = tonumber(ARGV[i]) + (reserved[KEYS[i]] or 0)
    if tonumber(current) < target then
      redis.call('SET', KEYS[i], target, 'KEEPTTL')
      raised = raised + 1
    end
  end
end
return raised
"""
)
