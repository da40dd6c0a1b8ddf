--[[
  Persist one snapshot of one region atomically: the dedup claim and every mutation of the
  region's keys happen in this one call, or none of them do.

  Input:
    KEYS[1] timestamp key  string: the payload, expiring at ARGV[4]
    KEYS[2] by-id key      string: the payload, expiring at ARGV[4]
    KEYS[3] latest key     string: bare id of the region's newest snapshot, expiring with it
    KEYS[4] index key      sorted set: member id, score timestamp; expires with its newest member
    KEYS[5] live key       string: deleted whenever latest moves
    KEYS[6] dedup key      string, optional: id of the snapshot that claimed this trigger's bucket

    ARGV[1] payload        JSON text, stored verbatim
    ARGV[2] id
    ARGV[3] timestamp      ms since the epoch (integer)
    ARGV[4] expire at      timestamp + retention, ms (integer)
    ARGV[5] cutoff         now - retention, ms (integer): scores <= cutoff are outside the window
    ARGV[6] retention      ms (integer)
    ARGV[7] dedup ttl      ms (integer), used only with KEYS[6]
    ARGV[8] latest policy  "monotonic" (latest moves only to a newer (timestamp, id)) | "always"

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

if #KEYS ~= 5 and #KEYS ~= 6 then return fail('ARGS', 'keys') end
if #ARGV ~= 8 then return fail('ARGS', 'argv') end

local payload, id, ts, expireAt, cutoff, retention, dedupTtl, policy = unpack(ARGV)
if id == '' then return fail('ARGS', 'id') end
for name, value in pairs({ timestamp = ts, expireAt = expireAt, retention = retention, dedupTtl = dedupTtl }) do
  if not string.match(value, '^%d+$') then return fail('ARGS', name) end
end
if not string.match(cutoff, '^%-?%d+$') then return fail('ARGS', 'cutoff') end
if tonumber(expireAt) ~= tonumber(ts) + tonumber(retention) then return fail('ARGS', 'expireAt') end
if #KEYS == 6 and tonumber(dedupTtl) < 1 then return fail('ARGS', 'dedupTtl') end
if policy ~= 'monotonic' and policy ~= 'always' then return fail('ARGS', 'policy') end

local roles = { 'timestamp', 'by-id', 'latest', 'index', 'live', 'dedup' }
for i, key in ipairs(KEYS) do
  local t = redis.call('TYPE', key).ok
  local want = (i == 4) and 'zset' or 'string'
  if t ~= 'none' and t ~= want then return fail('WRONGTYPE', roles[i]) end
end

local tsKey, byIdKey, latestKey, indexKey, liveKey, dedupKey = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]
local t = tonumber(ts)

if t <= tonumber(cutoff) then return { 4, 0, 0 } end

local indexed = redis.call('ZSCORE', indexKey, id)
if indexed then
  if tonumber(indexed) ~= t then return fail('CONFLICT', 'index') end
  if redis.call('EXISTS', byIdKey) == 1 then return { 2, 0, 0 } end
  -- Indexed but its payload is gone (legacy drift): write it again below.
end

if dedupKey then
  local holder = redis.call('GET', dedupKey)
  -- A claim whose snapshot was never indexed is a legacy write that failed part-way: take it over.
  if holder and holder ~= id and redis.call('ZSCORE', indexKey, holder) then return { 3, 0, 0 } end
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
for _, other in ipairs(redis.call('ZRANGEBYSCORE', indexKey, ts, ts)) do
  if id_after(other, id) then ownsTsKey = false end
end

-- Validation is over; from here on every command is a write that cannot fail on these types.
if dedupKey then redis.call('SET', dedupKey, id, 'PX', dedupTtl) end
redis.call('SET', byIdKey, payload, 'PXAT', expireAt)
if ownsTsKey then redis.call('SET', tsKey, payload, 'PXAT', expireAt) end
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
