--[[
  Persist one snapshot of one region atomically: the dedup claim and every mutation of the
  region's keys happen in this one call, or none of them do.

  Input:
    KEYS[1] timestamp key  string: the payload (or the id, ARGV[9]), expiring at ARGV[4]
    KEYS[2] by-id key      string: the payload, expiring at ARGV[4]
    KEYS[3] latest key     string: bare id of the region's newest snapshot, expiring with it
    KEYS[4] index key      sorted set: member id, score timestamp; expires with its newest member
    KEYS[5] live key       string: deleted whenever latest moves
    KEYS[6] dedup key      string, only when ARGV[6] > 0: id of the snapshot holding this
                           trigger's time bucket
    KEYS[#KEYS] staging key  string, only when ARGV[8] is "staged": the payload, SET by the
                           caller in the same MULTI; renamed into place, or deleted
    Read but not declared (their ids are read here): the by-id keys of the snapshot latest names
    and of the dedup claim's holder, ARGV[10] .. id .. ARGV[11]; under the cluster key schema
    they carry the region's hash tag, so they live in the same slot.

    ARGV[1] payload        JSON text, stored verbatim ("" when staged)
    ARGV[2] id
    ARGV[3] timestamp      ms since the epoch (integer)
    ARGV[4] expire at      timestamp + retention, ms (integer)
    ARGV[5] retention      ms (integer)
    ARGV[6] dedup ttl      ms (integer); 0: no dedup claim, no KEYS[6]
    ARGV[7] latest policy  "monotonic" (latest moves only to a newer (timestamp, id)) | "always"
    ARGV[8] transfer       "inline" (payload in ARGV[1]) | "staged" (payload in the staging key,
                           so large payloads are never copied through Lua)
    ARGV[9] timestamp key holds  "payload" (legacy layout, two copies) | "id" (one copy)
    ARGV[10] by-id key prefix, ARGV[11] by-id key suffix

  Time is the server's (TIME): it is the clock Redis expires keys by. "Now" below is it.

  Output: { status, latestAdvanced (0 | 1), pruned (members removed from the index) }.
  Integers only, so a client that JSON-parses string replies decodes it unchanged.
    status 1 persisted  every key is written and exists when the call returns
           2 replayed   this id is already persisted with this timestamp; nothing written
           3 duplicate  another snapshot holds the dedup bucket: a readable snapshot inside the
                        window, or a claim young enough to belong to a legacy write still in
                        flight (below); nothing written
           4 expired    timestamp + retention <= now; nothing written, not even the claim

  Errors, all raised before the first write (Redis does not undo a script's earlier writes):
    SNAPSHOT_ARGS <argument>   an argument is malformed
    SNAPSHOT_WRONGTYPE <key>   an existing key has the wrong type (key is its role, e.g. "index")
    SNAPSHOT_CONFLICT index    this id is already indexed with another timestamp
    SNAPSHOT_CONFLICT by-id    the by-id key holds another payload (the same id in another
                               region, or with another timestamp)
    SNAPSHOT_NOPERM <COMMAND>  the user may not run a write this call needs (ACLs are checked
                               per command: all of them are checked before the first write)
    A read the user may not run (a key pattern) fails with the server's own NOPERM error, also
    before the first write: every read comes before it.
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

-- The legacy writer claims with SET NX EX 900, then sends its pipeline in a second request;
-- the two time out after 5 s and 15 s. A claim whose holder is not indexed and that is younger
-- than IN_FLIGHT_MS may be such a write still in flight: it is not taken over.
local LEGACY_CLAIM_MS, IN_FLIGHT_MS = 900000, 30000

if #ARGV ~= 11 then return fail('ARGS', 'argv') end
local payload, id, ts, expireAt, retention, dedupTtl, policy, transfer, tsHolds, byIdPrefix, byIdSuffix = unpack(ARGV)
if id == '' then return fail('ARGS', 'id') end
local INTEGER = '^%-?%d+$'
if not (string.match(ts, INTEGER) and string.match(expireAt, INTEGER) and string.match(retention, INTEGER) and string.match(dedupTtl, INTEGER)) then
  return fail('ARGS', 'integers')
end
local t = tonumber(ts)
if tonumber(expireAt) ~= t + tonumber(retention) then return fail('ARGS', 'expireAt') end
if policy ~= 'monotonic' and policy ~= 'always' then return fail('ARGS', 'policy') end
if transfer ~= 'inline' and transfer ~= 'staged' then return fail('ARGS', 'transfer') end
if tsHolds ~= 'payload' and tsHolds ~= 'id' then return fail('ARGS', 'tsHolds') end

local tsKey, byIdKey, latestKey, indexKey, liveKey = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local dedupKey = tonumber(dedupTtl) > 0 and KEYS[6] or nil
local stagingKey = transfer == 'staged' and KEYS[#KEYS] or nil
if #KEYS ~= 5 + (dedupKey and 1 or 0) + (stagingKey and 1 or 0) then return fail('ARGS', 'keys') end
if stagingKey and redis.call('TYPE', stagingKey).ok ~= 'string' then return fail('ARGS', 'staging') end

-- Every outcome but persisted leaves the keyspace as the caller found it: drop the staged payload.
-- pcall: a user denied DEL leaves it to expire on its own (the caller SETs it with a short PX).
local function unchanged(status)
  if stagingKey then redis.pcall('DEL', stagingKey) end
  return { status, 0, 0 }
end
local function refuse(code, detail)
  if stagingKey then redis.pcall('DEL', stagingKey) end
  return fail(code, detail)
end
-- Any other error of a read through redis.pcall (NOPERM: a key the user may not read) is passed on.
local function passOn(reply)
  if stagingKey then redis.pcall('DEL', stagingKey) end
  return reply
end

-- Every string key in one MGET: a value is a string key, false is a missing key or one of
-- another type. EXISTS counts both kinds, so a count above the values found means a key of
-- another type, named by TYPE (the error path only). Expiry does not change keys within a call.
local values = dedupKey and redis.pcall('MGET', tsKey, byIdKey, latestKey, liveKey, dedupKey) or redis.pcall('MGET', tsKey, byIdKey, latestKey, liveKey)
if values.err then return passOn(values) end
local existing = dedupKey and redis.call('EXISTS', tsKey, byIdKey, latestKey, liveKey, dedupKey) or redis.call('EXISTS', tsKey, byIdKey, latestKey, liveKey)
local found = 0
for i = 1, #values do if values[i] then found = found + 1 end end
if existing ~= found then
  local roles = { { tsKey, 'timestamp' }, { byIdKey, 'by-id' }, { latestKey, 'latest' }, { liveKey, 'live' }, { dedupKey, 'dedup' } }
  for i = 1, #values do
    if not values[i] and redis.call('TYPE', roles[i][1]).ok ~= 'none' then return refuse('WRONGTYPE', roles[i][2]) end
  end
end
local tsExists, byIdValue, liveExists = values[1], values[2], values[4]
local current = policy == 'monotonic' and values[3] or nil
local holder = dedupKey and values[5] or nil
if holder == id then holder = nil end

-- The index scores of this id, of the snapshot latest names and of the dedup claim's holder, in
-- one ZMSCORE, which also refuses an index of another type.
local members = { id }
if current then members[#members + 1] = current end
if holder then members[#members + 1] = holder end
local scores = redis.pcall('ZMSCORE', indexKey, unpack(members))
if scores.err then
  if string.sub(scores.err, 1, 10) == 'WRONGTYPE ' then return refuse('WRONGTYPE', 'index') end
  return passOn(scores)
end
local indexed, currentScore, holderScore = scores[1], current and scores[2], holder and scores[#members]

local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
-- SET ... PXAT with a time already past stores nothing: decide by the clock Redis expires by.
if tonumber(expireAt) <= now then return unchanged(4) end
local cutoff = now - tonumber(retention)
local byIdOf = function(other) return byIdPrefix .. other .. byIdSuffix end

if indexed then
  if tonumber(indexed) ~= t then return refuse('CONFLICT', 'index') end
  if byIdValue then return unchanged(2) end
  -- Indexed but its payload is gone (legacy drift): write it again below.
elseif byIdValue then
  -- A payload under this id that this region does not index: this very snapshot left by a legacy
  -- write cut part-way (same bytes), or another snapshot, which must not be overwritten.
  local mine = stagingKey and redis.call('GET', stagingKey) or payload
  if byIdValue ~= mine then return refuse('CONFLICT', 'by-id') end
end

if holder then
  if holderScore then
    -- An indexed holder blocks the bucket while it is a readable snapshot inside the window.
    if tonumber(holderScore) > cutoff and redis.call('EXISTS', byIdOf(holder)) == 1 then return unchanged(3) end
  else
    -- Never indexed: a legacy write that failed part-way, or one still in flight.
    local pttl = redis.call('PTTL', dedupKey)
    if pttl > LEGACY_CLAIM_MS - IN_FLIGHT_MS and pttl <= LEGACY_CLAIM_MS then return unchanged(3) end
  end
end

-- The age of the snapshot latest names: its index score, else (legacy drift: not indexed) its
-- payload's generated_at. Unknown (no payload, or none there): latest is dangling, it moves.
local advance = true
if current then
  local currentTs = currentScore and tonumber(currentScore)
  local text = not currentScore and redis.call('GET', byIdOf(current))
  if text then
    local ok, doc = pcall(cjson.decode, text)
    if ok and type(doc) == 'table' and type(doc.generated_at) == 'number' then currentTs = doc.generated_at end
  end
  if currentTs then
    advance = t > currentTs or (t == currentTs and (current == id or id_after(id, current)))
  end
end

-- The timestamp key holds the greatest id at this timestamp, whatever the order of arrival.
-- Members of equal score are ordered by bytes, as id_after orders ids: one lookup, however
-- many snapshots share the timestamp.
local ownsTsKey = true
if tsExists then
  local greatest = redis.call('ZREVRANGEBYSCORE', indexKey, ts, ts, 'LIMIT', '0', '1')[1]
  if greatest and id_after(greatest, id) then ownsTsKey = false end
end

-- The index lives as long as its newest member: this snapshot unless a member scores above it
-- (pruning below removes only members older than this one). Read before the first write.
local indexExpireAt = expireAt
if redis.call('ZCOUNT', indexKey, '(' .. ts, '+inf') > 0 then
  -- Integer doubles below 2^53 format exactly.
  indexExpireAt = string.format('%.0f', tonumber(redis.call('ZREVRANGE', indexKey, '0', '0', 'WITHSCORES')[2]) + tonumber(retention))
end
-- DEL of a missing key changes nothing: sent (and so checked) only when live exists.
local dropLive = advance and liveExists

-- ACLs are checked per command as it runs, and a script's earlier writes are not undone: check
-- every write below first, by command and keys, with placeholder values of the right arity
-- (Redis 8 checks the arity; an ACL does not look at values). Servers without
-- redis.acl_check_cmd (before Redis 7) skip this.
if redis.acl_check_cmd then
  local function denied(command, ...) return not redis.acl_check_cmd(command, ...) and command end
  local copies = tsHolds == 'payload' and stagingKey
  local refusal = denied('ZADD', indexKey, '0', id) or denied('ZREMRANGEBYSCORE', indexKey, '0', '0') or denied('PEXPIREAT', indexKey, '0')
    or (dedupKey and denied('SET', dedupKey, ''))
    or (stagingKey and (denied('RENAME', stagingKey, byIdKey) or denied('PEXPIREAT', byIdKey, '0')))
    or (not stagingKey and denied('SET', byIdKey, ''))
    or (ownsTsKey and copies and denied('COPY', byIdKey, tsKey)) or (ownsTsKey and not copies and denied('SET', tsKey, ''))
    or (advance and denied('SET', latestKey, ''))
    or (dropLive and denied('DEL', liveKey))
  if refusal then return refuse('NOPERM', refusal) end
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
local pruned = redis.call('ZREMRANGEBYSCORE', indexKey, '-inf', string.format('%.0f', cutoff))
redis.call('PEXPIREAT', indexKey, indexExpireAt)
if advance then redis.call('SET', latestKey, id, 'PXAT', expireAt) end
if dropLive then redis.call('DEL', liveKey) end

return { 1, advance and 1 or 0, pruned }
