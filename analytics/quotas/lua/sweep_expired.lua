-- Shared by the scripts that start with `-- uses: sweep_expired`: give back the amounts of
-- reservations that expired (at most 100 a call).
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
