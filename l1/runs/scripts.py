"""The Redis scripts that change runs: each is one step on the server, so a deletion,
another projector or an API replica never slips in between its checks and its writes."""

from __future__ import annotations

__all__ = ["CREATE", "WRITE"]

# Record a new run unless it exists, holding its inputs, and say what its steps made
# before (so the API plans the run without another round trip).
# KEYS: run, runs index, status index, n reference sets, n tombstones, m step keys,
#       run ids by name.
# ARGV: run JSON, run id, score, n, m.
CREATE = """
local n, m = tonumber(ARGV[4]), tonumber(ARGV[5])
local existing = redis.call('GET', KEYS[1])
if existing then return {'exists', existing} end
for i = 1, n do
  if redis.call('EXISTS', KEYS[3 + n + i]) == 1 then return {'deleting', tostring(i)} end
end
redis.call('SET', KEYS[1], ARGV[1])
for i = 1, n do redis.call('SADD', KEYS[3 + i], ARGV[2]) end
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[2])
redis.call('ZADD', KEYS[3], ARGV[3], ARGV[2])
redis.call('ZADD', KEYS[#KEYS], 0, ARGV[2])
local reply = {'created'}
for i = 1, m do reply[i + 1] = redis.call('GET', KEYS[3 + 2 * n + i]) or '' end
return reply
"""

# Write a run's new record if the stored one is still the one it was made from, and
# with it what must change in the same step: items the run now holds (refused while one
# is being deleted) or lets go, values to set, values to set once, sorted-set members.
# KEYS: run, runs index, old status index, new status index, then h reference sets,
#       h tombstones, r reference sets, s keys, o keys, z keys, and run ids by name.
# ARGV: expected ('' when none), new JSON, run id, score, finished (0/1), channel,
#       h, r, s, o, z, then s values, o values, z (member, score) pairs.
WRITE = """
if (redis.call('GET', KEYS[1]) or '') ~= ARGV[1] then return 'moved' end
local h, r, s, o, z = tonumber(ARGV[7]), tonumber(ARGV[8]), tonumber(ARGV[9]),
  tonumber(ARGV[10]), tonumber(ARGV[11])
for i = 1, h do
  if redis.call('EXISTS', KEYS[4 + h + i]) == 1 then return 'deleting:' .. i end
end
local k, a = 4, 11
for i = 1, h do redis.call('SADD', KEYS[k + i], ARGV[3]) end
k = k + 2 * h
for i = 1, r do redis.call('SREM', KEYS[k + i], ARGV[3]) end
k = k + r
for i = 1, s do redis.call('SET', KEYS[k + i], ARGV[a + i]) end
k, a = k + s, a + s
for i = 1, o do redis.call('SET', KEYS[k + i], ARGV[a + i], 'NX') end
k, a = k + o, a + o
for i = 1, z do redis.call('ZADD', KEYS[k + i], ARGV[a + 2 * i], ARGV[a + 2 * i - 1]) end
redis.call('SET', KEYS[1], ARGV[2])
redis.call('ZADD', KEYS[2], ARGV[4], ARGV[3])
redis.call('ZADD', KEYS[#KEYS], 0, ARGV[3])
if KEYS[3] ~= KEYS[4] then redis.call('ZREM', KEYS[3], ARGV[3]) end
redis.call('ZADD', KEYS[4], ARGV[4], ARGV[3])
if ARGV[5] == '1' then redis.call('PUBLISH', ARGV[6], ARGV[3]) end
return 'written'
"""
