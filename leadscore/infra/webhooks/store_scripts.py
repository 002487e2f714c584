"""The Lua scripts of the webhook store (:mod:`leadscore.infra.webhooks.store`).

Each changes a delivery queue, its place in the schedule and a delivery's record in one
step, so a crash between two steps cannot lose or reorder a delivery. The keys are those
of the store's module docstring.
"""

# KEYS: record, queue, due, log, stats, lead index. ARGV: record JSON, delivery id, due
# member, now ms, lead index TTL ms (the log's: the index outlives every record it names).
ENQUEUE = """
if redis.call('SET', KEYS[1], ARGV[1], 'NX') then
  redis.call('SADD', KEYS[6], ARGV[2])
  redis.call('PEXPIRE', KEYS[6], ARGV[5])
  redis.call('RPUSH', KEYS[2], ARGV[2])
  redis.call('ZADD', KEYS[3], 'NX', ARGV[4], ARGV[3])
  redis.call('ZADD', KEYS[4], ARGV[4], ARGV[2])
  redis.call('HINCRBY', KEYS[5], 'webhook_deliveries_queued', 1)
  return 1
end
return 0
"""

# KEYS: due. ARGV: now ms, lease-until ms, limit. Returns the claimed members.
CLAIM = """
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[3]))
for _, member in ipairs(due) do
  redis.call('ZADD', KEYS[1], 'XX', ARGV[2], member)
end
return due
"""

# KEYS: subscriptions, queue, due; record key built from ARGV[3] .. id.
# ARGV: subscription id, due member, record key prefix. Returns {subscription, record} JSON.
HEAD = """
local sub = redis.call('HGET', KEYS[1], ARGV[1])
local head = redis.call('LINDEX', KEYS[2], 0)
if not sub then
  redis.call('DEL', KEYS[2])
  redis.call('ZREM', KEYS[3], ARGV[2])
  return {false, false}
end
if not head then
  redis.call('ZREM', KEYS[3], ARGV[2])
  return {sub, false}
end
local record = redis.call('GET', ARGV[3] .. head)
if not record then
  redis.call('LPOP', KEYS[2])
  redis.call('ZADD', KEYS[3], ARGV[4], ARGV[2])
end
return {sub, record}
"""

# KEYS: subscriptions, record, due, stats. ARGV: subscription id, record JSON, member, due ms,
# counter to add 1 to (or '').
RETRY = """
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0 then return 0 end
redis.call('SET', KEYS[2], ARGV[2])
redis.call('ZADD', KEYS[3], ARGV[4], ARGV[3])
if ARGV[5] ~= '' then redis.call('HINCRBY', KEYS[4], ARGV[5], 1) end
return 1
"""

# KEYS: subscriptions, record, queue, due, dead, log, stats, lead index.
# ARGV: subscription id, record JSON, delivery id, member, now ms, ttl ms (0: keep),
# dead ('1'/'0'), log entries older than this go (ms), counter name. The lead index names
# the record as long as it lives (a dead one: for ever), so erasing the lead finds it.
FINISH = """
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0 then return 0 end
if redis.call('LINDEX', KEYS[3], 0) == ARGV[3] then redis.call('LPOP', KEYS[3]) end
redis.call('SET', KEYS[2], ARGV[2])
if tonumber(ARGV[6]) > 0 then redis.call('PEXPIRE', KEYS[2], ARGV[6]) end
redis.call('SADD', KEYS[8], ARGV[3])
if ARGV[7] == '1' then
  redis.call('PERSIST', KEYS[8])
else
  local left = redis.call('PTTL', KEYS[8])
  if left >= 0 and left < tonumber(ARGV[6]) then redis.call('PEXPIRE', KEYS[8], ARGV[6]) end
end
if ARGV[7] == '1' then redis.call('ZADD', KEYS[5], ARGV[5], ARGV[3]) end
if redis.call('LLEN', KEYS[3]) > 0 then
  redis.call('ZADD', KEYS[4], ARGV[5], ARGV[4])
else
  redis.call('ZREM', KEYS[4], ARGV[4])
end
redis.call('ZREMRANGEBYSCORE', KEYS[6], '-inf', '(' .. ARGV[8])
redis.call('HINCRBY', KEYS[7], ARGV[9], 1)
return 1
"""

# KEYS: record, queue, due, dead, log, lead index. ARGV: new record JSON, delivery id,
# member, now ms. Returns 1 (queued again), 0 (still pending: nothing to do), -1 (no such
# delivery).
REPLAY = """
local current = redis.call('GET', KEYS[1])
if not current then return -1 end
if cjson.decode(current)['status'] == 'pending' then return 0 end
redis.call('SET', KEYS[1], ARGV[1])
redis.call('SADD', KEYS[6], ARGV[2])
redis.call('PERSIST', KEYS[6])
redis.call('RPUSH', KEYS[2], ARGV[2])
redis.call('ZADD', KEYS[3], 'NX', ARGV[4], ARGV[3])
redis.call('ZREM', KEYS[4], ARGV[2])
redis.call('ZADD', KEYS[5], ARGV[4], ARGV[2])
return 1
"""

# KEYS: queue, due, log, dead, lead index; record keys are ARGV[2] .. id. ARGV: due member,
# record key prefix. Forgets every delivery of one (subscription, lead): queued, dead and
# logged. Returns how many delivery records were deleted.
FORGET_LEAD = """
local ids = redis.call('SMEMBERS', KEYS[5])
for _, id in ipairs(redis.call('LRANGE', KEYS[1], 0, -1)) do table.insert(ids, id) end
local n = 0
for _, id in ipairs(ids) do
  n = n + redis.call('DEL', ARGV[2] .. id)
  redis.call('ZREM', KEYS[3], id)
  redis.call('ZREM', KEYS[4], id)
end
redis.call('DEL', KEYS[1], KEYS[5])
redis.call('ZREM', KEYS[2], ARGV[1])
return n
"""
