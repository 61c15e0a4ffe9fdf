"""The Redis scripts that change runs: each is one step on the server, so a deletion,
another projector or an API replica never slips in between its checks and its writes."""

from __future__ import annotations

__all__ = ["ASK_CANCEL", "CLAIM", "CREATE", "RELEASE", "RENEW", "WRITE"]

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
# An exclusive write (a retry) is also refused while a discard or a publish has the run.
# KEYS: run, runs index, old status index, new status index, the run's claim, then
#       h reference sets, h tombstones, r reference sets, s keys, o keys, z keys, and
#       run ids by name.
# ARGV: expected ('' when none), new JSON, run id, score, finished (0/1), channel,
#       h, r, s, o, z, exclusive (0/1), then s values, o values, z (member, score) pairs.
WRITE = """
if (redis.call('GET', KEYS[1]) or '') ~= ARGV[1] then return 'moved' end
if ARGV[12] == '1' then
  local held = redis.call('GET', KEYS[5])
  if held then return 'claimed:' .. held end
end
local h, r, s, o, z = tonumber(ARGV[7]), tonumber(ARGV[8]), tonumber(ARGV[9]),
  tonumber(ARGV[10]), tonumber(ARGV[11])
for i = 1, h do
  if redis.call('EXISTS', KEYS[5 + h + i]) == 1 then return 'deleting:' .. i end
end
local k, a = 5, 12
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

# Give a run to one action (a discard, a publish) if the stored record is still the one
# the action was checked against and no other action has it; the claim expires unless
# its holder renews it, so one that died lets go.
# KEYS: run, the run's claim.  ARGV: expected record, claim (action and token), ms.
CLAIM = """
if (redis.call('GET', KEYS[1]) or '') ~= ARGV[1] then return {'moved'} end
local held = redis.call('GET', KEYS[2])
if held then return {'held', held} end
redis.call('SET', KEYS[2], ARGV[2], 'PX', ARGV[3])
return {'claimed'}
"""

# Record that a cancel of this generation of the run was asked for, once, if the stored
# record is still the one the cancel was checked against.
# KEYS: run, the run's cancel request.  ARGV: expected record, generation, ms.
ASK_CANCEL = """
if (redis.call('GET', KEYS[1]) or '') ~= ARGV[1] then return 'moved' end
if redis.call('GET', KEYS[2]) == ARGV[2] then return 'asked' end
redis.call('SET', KEYS[2], ARGV[2], 'PX', ARGV[3])
return 'recorded'
"""

# KEYS: a claim.  ARGV: its value, ms.  Only the claim's holder extends it.
RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
"""

# KEYS: a claim.  ARGV: its value.  Only the claim's holder lifts it.
RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""
