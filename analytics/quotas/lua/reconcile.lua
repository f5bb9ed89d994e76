-- uses: sweep_expired
-- KEYS: the reservations zset, then counters. ARGV: now, then each counter's recorded usage.
-- Raises each existing counter that is below its recorded usage plus its open reservations
-- (expired ones given back first) to that sum; never lowers one. Returns how many it raised.
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
