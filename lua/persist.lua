--[[
  Persist one snapshot of one region atomically: the dedup claim and every mutation of the
  region's keys happen in this one call, or none of them do.

  Input:
    KEYS[1] timestamp key  string: the payload (or the id, ARGV[10]), expiring at ARGV[4]
    KEYS[2] by-id key      string: the payload, expiring at ARGV[4]
    KEYS[3] latest key     string: bare id of the region's newest snapshot, expiring with it
    KEYS[4] index key      sorted set: member id, score timestamp; expires with its newest member
    KEYS[5] live key       string: deleted whenever latest moves
    KEYS[6] dedup key      string, only when ARGV[7] > 0: id of the snapshot holding this
                           trigger's time bucket
    KEYS[#KEYS] staging key  string, only when ARGV[9] is "staged": the payload, SET by the
                           caller in the same MULTI; renamed into place, or deleted

    ARGV[1] payload        JSON text, stored verbatim ("" when staged)
    ARGV[2] id
    ARGV[3] timestamp      ms since the epoch (integer)
    ARGV[4] expire at      timestamp + retention, ms (integer)
    ARGV[5] cutoff         now - retention, ms (integer): scores <= cutoff are outside the window
    ARGV[6] retention      ms (integer)
    ARGV[7] dedup ttl      ms (integer); 0: no dedup claim, no KEYS[6]
    ARGV[8] latest policy  "monotonic" (latest moves only to a newer (timestamp, id)) | "always"
    ARGV[9] transfer       "inline" (payload in ARGV[1]) | "staged" (payload in the staging key,
                           so large payloads are never copied through Lua)
    ARGV[10] timestamp key holds  "payload" (legacy layout, two copies) | "id" (one copy)

  Output: { status, latestAdvanced (0 | 1), pruned (members removed from the index) }.
  Integers only, so a client that JSON-parses string replies decodes it unchanged.
    status 1 persisted
           2 replayed   this id is already persisted with this timestamp; nothing written
           3 duplicate  another persisted snapshot holds the dedup bucket; nothing written
           4 expired    timestamp + retention <= now; nothing written

  Errors, all raised before the first write (Redis does not undo a script's earlier writes):
    SNAPSHOT_ARGS <argument>   an argument is malformed
    SNAPSHOT_WRONGTYPE <key>   an existing key has the wrong type (key is its role, e.g. "index")
    SNAPSHOT_CONFLICT index    this id is already indexed with another timestamp
  Whatever the outcome other than persisted, the staging key is deleted, so the MULTI as a
  whole leaves the keyspace as it found it.

  Scores and expiry times go to redis.call as the caller's strings: Lua numbers are doubles and
  are formatted with 14 significant digits.
]]

local function fail(code, detail)
  return redis.error_reply('SNAPSHOT_' .. code .. ' ' .. detail)
end

-- Lua orders strings with strcoll, i.e. by the server's locale; ids are ordered by bytes.
local function id_after(a, b)
  for i = 1, math.min(#a, #b) do
    local x, y = string.byte(a, i), string.byte(b, i)
    if x ~= y then return x > y end
  end
  return #a > #b
end

if #ARGV ~= 10 then return fail('ARGS', 'argv') end
local payload, id, ts, expireAt, cutoff, retention, dedupTtl, policy, transfer, tsHolds = unpack(ARGV)
if id == '' then return fail('ARGS', 'id') end
local function integer(value) return string.match(value, '^%-?%d+$') end
if not (integer(ts) and integer(expireAt) and integer(cutoff) and integer(retention) and integer(dedupTtl)) then
  return fail('ARGS', 'integers')
end
if tonumber(expireAt) ~= tonumber(ts) + tonumber(retention) then return fail('ARGS', 'expireAt') end
if policy ~= 'monotonic' and policy ~= 'always' then return fail('ARGS', 'policy') end
if transfer ~= 'inline' and transfer ~= 'staged' then return fail('ARGS', 'transfer') end
if tsHolds ~= 'payload' and tsHolds ~= 'id' then return fail('ARGS', 'tsHolds') end

local tsKey, byIdKey, latestKey, indexKey, liveKey = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local dedupKey = tonumber(dedupTtl) > 0 and KEYS[6] or nil
local stagingKey = transfer == 'staged' and KEYS[#KEYS] or nil
if #KEYS ~= 5 + (dedupKey and 1 or 0) + (stagingKey and 1 or 0) then return fail('ARGS', 'keys') end
if stagingKey and redis.call('TYPE', stagingKey).ok ~= 'string' then return fail('ARGS', 'staging') end

-- Every outcome but persisted leaves the keyspace as the caller found it: drop the staged payload.
local function unchanged(status)
  if stagingKey then redis.call('DEL', stagingKey) end
  return { status, 0, 0 }
end
local function refuse(code, detail)
  if stagingKey then redis.call('DEL', stagingKey) end
  return fail(code, detail)
end

local checks = { { tsKey, 'timestamp', 'string' }, { byIdKey, 'by-id', 'string' }, { latestKey, 'latest', 'string' },
  { indexKey, 'index', 'zset' }, { liveKey, 'live', 'string' } }
if dedupKey then checks[6] = { dedupKey, 'dedup', 'string' } end
local tsKeyExists = false
for i, check in ipairs(checks) do
  local t = redis.call('TYPE', check[1]).ok
  if t ~= 'none' and t ~= check[3] then return refuse('WRONGTYPE', check[2]) end
  if i == 1 then tsKeyExists = t ~= 'none' end
end

local t = tonumber(ts)

if t <= tonumber(cutoff) then return unchanged(4) end

local indexed = redis.call('ZSCORE', indexKey, id)
if indexed then
  if tonumber(indexed) ~= t then return refuse('CONFLICT', 'index') end
  if redis.call('EXISTS', byIdKey) == 1 then return unchanged(2) end
  -- Indexed but its payload is gone (legacy drift): write it again below.
end

if dedupKey then
  local holder = redis.call('GET', dedupKey)
  -- A claim whose snapshot was never indexed is a legacy write that failed part-way: take it over.
  if holder and holder ~= id and redis.call('ZSCORE', indexKey, holder) then return unchanged(3) end
end

local advance = true
if policy == 'monotonic' then
  local current = redis.call('GET', latestKey)
  local currentTs = current and redis.call('ZSCORE', indexKey, current)
  if currentTs then
    currentTs = tonumber(currentTs)
    advance = t > currentTs or (t == currentTs and id_after(id, current))
  end
end

-- The timestamp key holds the greatest id at this timestamp, whatever the order of arrival.
local ownsTsKey = true
if tsKeyExists then
  for _, other in ipairs(redis.call('ZRANGEBYSCORE', indexKey, ts, ts)) do
    if id_after(other, id) then ownsTsKey = false end
  end
end

-- Validation is over; from here on every command is a write that cannot fail on these types.
if dedupKey then redis.call('SET', dedupKey, id, 'PX', dedupTtl) end
if stagingKey then
  redis.call('RENAME', stagingKey, byIdKey) -- O(1): the payload is not copied
  redis.call('PEXPIREAT', byIdKey, expireAt)
else
  redis.call('SET', byIdKey, payload, 'PXAT', expireAt)
end
if ownsTsKey then
  if tsHolds == 'id' then
    redis.call('SET', tsKey, id, 'PXAT', expireAt)
  elseif stagingKey then
    redis.call('COPY', byIdKey, tsKey, 'REPLACE') -- with its expiry
  else
    redis.call('SET', tsKey, payload, 'PXAT', expireAt)
  end
end
redis.call('ZADD', indexKey, ts, id)
local pruned = redis.call('ZREMRANGEBYSCORE', indexKey, '-inf', cutoff)
-- The index lives as long as its newest member. Integer doubles below 2^53 format exactly.
local newest = redis.call('ZREVRANGE', indexKey, 0, 0, 'WITHSCORES')[2]
redis.call('PEXPIREAT', indexKey, string.format('%.0f', tonumber(newest) + tonumber(retention)))
if advance then
  redis.call('SET', latestKey, id, 'PXAT', expireAt)
  redis.call('DEL', liveKey)
end

return { 1, advance and 1 or 0, pruned }
