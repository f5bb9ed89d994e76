-- KEYS: counters. ARGV: the amount of each. Adds to the counters that exist and returns the
-- indexes of the others (the caller seeds those: the seed includes the call being charged).
local missing = {}
for i = 1, #KEYS do
  if redis.call('EXISTS', KEYS[i]) == 1 then
    redis.call('INCRBY', KEYS[i], ARGV[i])
  else
    table.insert(missing, i)
  end
end
return missing
