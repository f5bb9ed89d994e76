-- uses: sweep_expired
-- KEYS: the reservations zset. ARGV: now. Give back what expired (before reading a counter).
sweep(KEYS[1], ARGV[1])
return 1
