"""The Lua scripts of the Redis hub: presence, rooms with history and leases.

Each runs atomically in Redis. Their KEYS and ARGV are written above each one;
``redis.py`` calls them (see its module docstring for what they are for).
"""

from __future__ import annotations

__all__ = [
    "ANNOUNCE",
    "APPEND",
    "APPEND_SHARDED",
    "BROADCAST",
    "BROADCAST_SHARDED",
    "EPOCH",
    "JOIN",
    "LEAVE",
    "MEMBERS",
    "NOW",
    "PRESENCE",
    "READ",
    "REFRESH",
    "REGISTER",
    "RELEASE",
    "RENEW",
    "UNREGISTER",
]

# Milliseconds since the epoch, by Redis's clock.
NOW = "local t = redis.call('TIME') local now = t[1] * 1000 + math.floor(t[2] / 1000)"

# KEYS: room, tombstone, info. ARGV: ttl ms, id, info.
JOIN = f"""{NOW}
redis.call('DEL', KEYS[2])
redis.call('ZADD', KEYS[1], now + ARGV[1], ARGV[2])
redis.call('HSET', KEYS[3], ARGV[2], ARGV[3])
redis.call('PEXPIRE', KEYS[1], 2 * ARGV[1])
redis.call('PEXPIRE', KEYS[3], 2 * ARGV[1])
"""

# KEYS: room, tombstone, info. ARGV: ttl ms, id.
LEAVE = """
redis.call('ZREM', KEYS[1], ARGV[2])
redis.call('HDEL', KEYS[3], ARGV[2])
redis.call('SET', KEYS[2], '1', 'PX', ARGV[1])
"""

# KEYS: room, info. ARGV: ttl ms, tombstone prefix, then id and info for each member.
# Returns the members that expired (their process stopped refreshing them).
REFRESH = f"""{NOW}
local expired = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now)
for _, gone in ipairs(expired) do
  redis.call('ZREM', KEYS[1], gone)
  redis.call('HDEL', KEYS[2], gone)
end
for i = 3, #ARGV, 2 do
  if redis.call('EXISTS', ARGV[2] .. ARGV[i]) == 0 then
    redis.call('ZADD', KEYS[1], now + ARGV[1], ARGV[i])
    redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 1])
  end
end
for _, key in ipairs(KEYS) do
  if redis.call('EXISTS', key) == 1 then
    redis.call('PEXPIRE', key, 2 * ARGV[1])
  end
end
return expired
"""

# KEYS: room.
MEMBERS = f"""{NOW}
return redis.call('ZRANGEBYSCORE', KEYS[1], now, '+inf')
"""

# KEYS: room, info. Returns id, info, id, info...
PRESENCE = f"""{NOW}
local found = {{}}
for _, id in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], now, '+inf')) do
  found[#found + 1] = id
  found[#found + 1] = redis.call('HGET', KEYS[2], id) or '{{}}'
end
return found
"""

# A room with history keeps its epoch and last offset in a hash, and its last
# messages in a stream whose entry ids are 0-<offset>. Whoever first finds the
# hash missing (Redis restarted, was flushed, or the room was quiet past the
# hash's expiry) starts a new epoch with the token it brought, and drops any
# stream left from before.
EPOCH = """
local epoch = redis.call('HGET', KEYS[1], 'epoch')
if not epoch then
  epoch = ARGV[{new}]
  redis.call('DEL', KEYS[2])
  redis.call('HSET', KEYS[1], 'epoch', epoch, 'top', 0)
  redis.call('PEXPIRE', KEYS[1], ARGV[{meta_ttl}])
end
"""

# Which hubs (one per app and process) hold members of a room, for targeted
# delivery: a sorted set of hub tokens whose scores are expiry times (renewed
# by each hub's presence refresh, so a crashed process's hub drops out within
# the ttl), and a hash of the generation of each hub's last change to it with
# that entry's expiry ("<generation> <expiry ms>"). A hub numbers its
# registrations and unregistrations in the order its rooms filled and
# emptied; a call that reaches Redis after a later one of the same hub
# changes nothing, so a join racing the last leave cannot be undone by it.
FORGET_EXPIRED = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local known = redis.call('HGETALL', KEYS[2])
for i = 1, #known, 2 do
  if tonumber(string.match(known[i + 1], '%d+$')) < now then
    redis.call('HDEL', KEYS[2], known[i])
  end
end
local seen = redis.call('HGET', KEYS[2], ARGV[1])
if seen and tonumber(string.match(seen, '^%d+')) > tonumber(ARGV[2]) then return 0 end
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2] .. ' ' .. (now + ARGV[3]))
redis.call('PEXPIRE', KEYS[2], 2 * ARGV[3])
"""

# KEYS: hubs, generations. ARGV: hub, generation, ttl ms.
# Returns 1, or 0 when a later change of the same hub came first.
REGISTER = f"""{NOW}
{FORGET_EXPIRED}
redis.call('ZADD', KEYS[1], now + ARGV[3], ARGV[1])
redis.call('PEXPIRE', KEYS[1], 2 * ARGV[3])
return 1
"""

# KEYS: the app's hubs. ARGV: hub, ttl ms ('0': the hub stopped).
# Every started hub is in it, renewed by its presence refresh.
ANNOUNCE = f"""{NOW}
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if ARGV[2] == '0' then
  redis.call('ZREM', KEYS[1], ARGV[1])
else
  redis.call('ZADD', KEYS[1], now + ARGV[2], ARGV[1])
  redis.call('PEXPIRE', KEYS[1], 2 * ARGV[2])
end
"""

# KEYS: hubs, generations. ARGV: hub, generation, ttl ms.
UNREGISTER = f"""{NOW}
{FORGET_EXPIRED}
redis.call('ZREM', KEYS[1], ARGV[1])
return 1
"""

# Publishes `message` to every hub that holds members of the room (KEYS[1],
# the room's hubs), on its own channel (prefix `hub_prefix`); or, when the room
# has members on every live hub (KEYS[2], the app's hubs), once on the app's
# channel, which every hub listens to. Sets `sent` to how many hubs hold it.
DELIVER = """
local sent = redis.call('ZCOUNT', KEYS[{hubs}], now, '+inf')
if sent > 0 then
  if sent >= redis.call('ZCOUNT', KEYS[{everyone}], now, '+inf') then
    redis.call('PUBLISH', {app_channel}, {message})
  else
    for _, hub in ipairs(redis.call('ZRANGEBYSCORE', KEYS[{hubs}], now, '+inf')) do
      redis.call('PUBLISH', {hub_prefix} .. hub, {message})
    end
  end
end
"""

# KEYS: the room's hubs, the app's hubs. ARGV: the prefix of the hubs'
# channels, message, the app's channel. Returns how many hubs hold members.
BROADCAST = f"""{NOW}
{DELIVER.format(hubs=1, everyone=2, app_channel="ARGV[3]", hub_prefix="ARGV[1]", message="ARGV[2]")}
return sent
"""
# In a Redis Cluster, by sharded pub/sub: the hubs' channels share the hash
# slot of the room's hubs key (see RedisHub._hubs_keys).
BROADCAST_SHARDED = BROADCAST.replace("redis.call('PUBLISH'", "redis.call('SPUBLISH'")

# KEYS: meta, stream, the room's hubs, the app's hubs. ARGV: the prefix of the hubs' channels,
# room as JSON, the frame's data part, size, ttl ms, meta ttl ms, new epoch,
# header rest (JSON [room, exclude]), the app's channel.
# Numbering, keeping and publishing in one script: no reader of the stream
# sees a message before its offset is final, and the publication of offset
# n+1 follows that of n, on every hub's channel.
APPEND = f"""{NOW}
{EPOCH.format(new=7, meta_ttl=6)}
local top = redis.call('HINCRBY', KEYS[1], 'top', 1)
local frame = '{{"duplex":"message","room":' .. ARGV[2] .. ',"epoch":"' .. epoch
  .. '","offset":' .. top .. ',' .. ARGV[3] .. '}}'
redis.call('XADD', KEYS[2], 'MAXLEN', ARGV[4], '0-' .. top, 'f', frame, 't', now)
redis.call('PEXPIRE', KEYS[2], ARGV[5])
redis.call('PEXPIRE', KEYS[1], ARGV[6])
local message = 'H' .. epoch .. ' ' .. top .. ' ' .. ARGV[8] .. '\\n' .. frame
{DELIVER.format(hubs=3, everyone=4, app_channel="ARGV[9]", hub_prefix="ARGV[1]", message="message")}
return top
"""
# In a Redis Cluster the same, by sharded pub/sub: the room's history keys share
# the channels' hash slot (see RedisHub._history_keys), so one node runs it all.
APPEND_SHARDED = APPEND.replace("redis.call('PUBLISH'", "redis.call('SPUBLISH'")

# KEYS: meta, stream. ARGV: epoch asked ('' for none), offset asked, ttl ms,
# new epoch, meta ttl ms. Returns epoch, top, reason ('' for none), then the
# frames after the offset asked, oldest first.
READ = f"""{NOW}
{EPOCH.format(new=4, meta_ttl=5)}
local top = tonumber(redis.call('HGET', KEYS[1], 'top'))
if ARGV[1] == '' then return {{epoch, top, ''}} end
if ARGV[1] ~= epoch then return {{epoch, top, 'epoch_changed'}} end
local since = tonumber(ARGV[2])
if since > top then return {{epoch, top, 'invalid_position'}} end
if since == top then return {{epoch, top, ''}} end
local entries = redis.call('XRANGE', KEYS[2], '0-' .. (since + 1), '+')
if #entries == 0 or entries[1][1] ~= '0-' .. (since + 1) then
  return {{epoch, top, 'too_old'}}
end
if now - tonumber(entries[1][2][4]) > tonumber(ARGV[3]) then return {{epoch, top, 'too_old'}} end
local found = {{epoch, top, ''}}
for _, entry in ipairs(entries) do found[#found + 1] = entry[2][2] end
return found
"""

# KEYS: lease. ARGV: token, ttl ms.
RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""

# KEYS: lease. ARGV: token.
RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
end
"""
