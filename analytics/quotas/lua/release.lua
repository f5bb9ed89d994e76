-- KEYS: the reservations zset, the reservation. Give its amounts back (if it has not expired).
local flat = redis.call('HGETALL', KEYS[2])
for j = 1, #flat, 2 do
  if redis.call('EXISTS', flat[j]) == 1 then redis.call('DECRBY', flat[j], flat[j + 1]) end
end
redis.call('DEL', KEYS[2])
redis.call('ZREM', KEYS[1], KEYS[2])
return #flat / 2
