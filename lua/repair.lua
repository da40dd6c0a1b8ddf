--[[
  Check one region's keys against the invariants of persist.lua and, in "repair" mode, bring them
  back in line, in one call. The plan is computed from reads only; writes start after it is
  complete (validate, then write). "verify" mode returns the same findings and plan, writes nothing.
  Needs Redis >= 7.0 (PEXPIRETIME).

  Input:
    KEYS[1] latest key   string: bare id of the region's newest snapshot
    KEYS[2] index key    sorted set: member id, score timestamp
    KEYS[3] live key     string: deleted whenever latest moves
    KEYS[4..] every other key of the region the caller found or derived, existing or not, each
              described by the ARGV entry of the same position:
                "t<timestamp>"  timestamp key of that timestamp (decimal, no leading zero)
                "i<id>"         by-id key of that id
                "d"             dedup key

    ARGV[1] mode       "verify" | "repair"
    ARGV[2] cutoff     now - retention, ms (integer): scores <= cutoff are outside the window
    ARGV[3] retention  ms (integer)
    ARGV[4..] descriptors of KEYS[4..], as above
    ARGV[#KEYS + 1] what a timestamp key holds: "payload" (a second copy) | "id" (the owner's id)

  Output: { status, findings, changes }
    status 1 done
           0 stale: a key this call needs was not declared (the keyspace changed since the
             caller scanned it); nothing written, findings and changes empty
    findings  one string per inconsistency: "<class>\n<detail>\n<key>[\n<key>…]"
    changes   one string per write, the command as sent without its values: "ZREM <key> <id>"
  Strings that never read as JSON, so a client that JSON-parses replies decodes them unchanged.

  Errors, raised before the first write:
    SNAPSHOT_ARGS <argument>   an argument is malformed
    SNAPSHOT_WRONGTYPE <key>   a key has a type persist.lua never writes (key is its role)

  What repair does, and what it never does:
    - a member without its by-id key gets it back from the timestamp key's copy when there is
      one, else it is unreadable and leaves the index;
    - a member outside the window whose payload outlived it (legacy TTLs) leaves the index and
      its payload keys are deleted; one whose payloads are gone is no drift (the next persist
      prunes it) and is left alone;
    - a timestamp key and a by-id key with no member that belong together (the same payload, or
      the timestamp key holds that id: a legacy pipeline cut between its SETs and its ZADD) are
      indexed together if inside the window;
    - other payload keys with no member are deleted, but never the one `latest` names while no
      readable snapshot can replace it: readers reach it through `latest`;
    - the by-id copy wins when the two copies differ (readers read it); a timestamp key is
      rewritten from its owner;
    - expiry times are set to timestamp + retention (payloads, latest) and newest + retention (index);
    - latest moves to the newest readable member by (timestamp, id), deleting live;
    - dedup claims naming no member are deleted.
]]

local function fail(code, detail)
  return redis.error_reply('SNAPSHOT_' .. code .. ' ' .. detail)
end

-- Ids are ordered by bytes, as persist.lua orders them (Lua's < follows the server's locale).
local function id_after(a, b)
  for i = 1, math.min(#a, #b) do
    local x, y = string.byte(a, i), string.byte(b, i)
    if x ~= y then return x > y end
  end
  return #a > #b
end

if #KEYS < 3 or #ARGV ~= #KEYS + 1 then return fail('ARGS', 'keys') end
local mode, cutoff, retention, tsHolds = ARGV[1], ARGV[2], ARGV[3], ARGV[#ARGV]
if tsHolds ~= 'payload' and tsHolds ~= 'id' then return fail('ARGS', 'timestampKey') end
if mode ~= 'verify' and mode ~= 'repair' then return fail('ARGS', 'mode') end
if not string.match(cutoff, '^%-?%d+$') then return fail('ARGS', 'cutoff') end
if not string.match(retention, '^%d+$') then return fail('ARGS', 'retention') end
cutoff, retention = tonumber(cutoff), tonumber(retention)

local latestKey, indexKey, liveKey = KEYS[1], KEYS[2], KEYS[3]
local tsKeys, idKeys, dedupKeys = {}, {}, {}
for i = 4, #KEYS do
  local role, param = string.sub(ARGV[i], 1, 1), string.sub(ARGV[i], 2)
  if role == 't' and string.match(param, '^%d+$') then tsKeys[param] = KEYS[i]
  elseif role == 'i' and param ~= '' then idKeys[param] = KEYS[i]
  elseif role == 'd' and param == '' then dedupKeys[#dedupKeys + 1] = KEYS[i]
  else return fail('ARGS', 'descriptor') end
end

local function typeOf(key) return redis.call('TYPE', key).ok end
local function check(key, want, role)
  local t = typeOf(key)
  return t == 'none' or t == want or fail('WRONGTYPE', role)
end
for _, c in ipairs({ { latestKey, 'string', 'latest' }, { indexKey, 'zset', 'index' }, { liveKey, 'string', 'live' } }) do
  local ok = check(c[1], c[2], c[3])
  if ok ~= true then return ok end
end
for i = 4, #KEYS do
  local ok = check(KEYS[i], 'string', 'payload')
  if ok ~= true then return ok end
end

local function expireAt(score) return string.format('%.0f', tonumber(score) + retention) end
local function exists(key) return key ~= nil and redis.call('EXISTS', key) == 1 end

local findings, plan = {}, {}
local function find(class, detail, ...) findings[#findings + 1] = table.concat({ class, detail, ... }, '\n') end
local function write(...) plan[#plan + 1] = { ... } end
-- A payload key whose expiry is not `at`: no TTL at all (legacy index) or another one (legacy EX).
local function checkExpiry(key, at, what)
  local actual = redis.call('PEXPIRETIME', key)
  if actual == -2 or actual == tonumber(at) then return end
  if actual == -1 then find('no-ttl', what .. ' has no expiry, expected ' .. at, key)
  else find('ttl-misaligned', what .. ' expires at ' .. string.format('%.0f', actual) .. ', expected ' .. at, key) end
  write('PEXPIREAT', key, at)
end

-- Members, and which member owns each timestamp key: the greatest id at that timestamp.
local members, inIndex, scoreOf, owner = {}, {}, {}, {}
local flat = redis.call('ZRANGE', indexKey, 0, -1, 'WITHSCORES')
for i = 1, #flat, 2 do
  local id, score = flat[i], flat[i + 1]
  if not idKeys[id] or not tsKeys[score] then return { 0, {}, {} } end
  members[#members + 1] = id
  inIndex[id] = true
  scoreOf[id] = score
  if not owner[score] or id_after(id, owner[score]) then owner[score] = id end
end
local latestId = redis.call('GET', latestKey)
if latestId and not idKeys[latestId] then return { 0, {}, {} } end

-- Readable members inside the window, after the restores planned here.
local readable, gone = {}, {}
for _, id in ipairs(members) do
  local score = scoreOf[id]
  local byId, ts = idKeys[id], tsKeys[score]
  if tonumber(score) <= cutoff then
    -- Out of the window: harmless once its payloads are gone (the next persist prunes it), drift
    -- while they outlive it (legacy TTLs run from the write, not from the timestamp).
    local ts = owner[score] == id and tsKeys[score] or nil
    if exists(byId) or exists(ts) then
      find('expired-member', 'member ' .. id .. ' at ' .. score .. ' is outside the retention window but its payload is not', indexKey, byId, ts)
      gone[#gone + 1] = id
    end
  else
    local hasId, hasTs, owns = exists(byId), exists(ts), owner[score] == id
    if not hasId then find('member-missing-payload', 'member ' .. id .. ' has no by-id key', byId, indexKey) end
    if owns and not hasTs then find('member-missing-payload', 'member ' .. id .. ' has no timestamp key', ts, indexKey) end
    if not hasId and not (owns and hasTs and tsHolds == 'payload') then
      gone[#gone + 1] = id
    else
      local at = expireAt(score)
      if not hasId then write('COPY', ts, byId, 'REPLACE'); write('PEXPIREAT', byId, at)
      else checkExpiry(byId, at, 'by-id key of ' .. id) end
      if owns then
        local stale = hasTs and hasId and redis.call('GET', ts) ~= (tsHolds == 'id' and id or redis.call('GET', byId))
        if stale then
          local wanted = tsHolds == 'id' and 'its id' or 'the payload of its by-id key'
          find('payload-mismatch', 'the timestamp key of ' .. id .. ' does not hold ' .. wanted, byId, ts)
        end
        if not hasTs or stale then
          if tsHolds == 'id' then write('SET', ts, id, 'PXAT', at)
          else write('COPY', byId, ts, 'REPLACE'); write('PEXPIREAT', ts, at) end
        else
          checkExpiry(ts, at, 'timestamp key of ' .. id)
        end
      end
      readable[#readable + 1] = id
    end
  end
end

-- Payload keys with no member. A timestamp key and a by-id key holding the same payload are one
-- snapshot whose ZADD never ran: index it (inside the window) rather than lose it.
local orphanIds, adopted = {}, {}
for id, key in pairs(idKeys) do
  if not scoreOf[id] and exists(key) then
    find('orphan-payload', 'by-id key of ' .. id .. ' has no index member', key)
    orphanIds[id] = tsHolds == 'payload' and redis.call('GET', key) or true
  end
end
local doomed = {}
for score, key in pairs(tsKeys) do
  if not owner[score] and exists(key) then
    find('orphan-payload', 'timestamp key ' .. score .. ' has no index member', key)
    local held, match = redis.call('GET', key), nil
    for id, payload in pairs(orphanIds) do
      local pairsWith = tsHolds == 'id' and held == id or tsHolds == 'payload' and held == payload
      if pairsWith and (not match or id_after(id, match)) then match = id end
    end
    if match and tonumber(score) > cutoff then
      orphanIds[match] = nil
      adopted[#adopted + 1] = match
      scoreOf[match] = score
      readable[#readable + 1] = match
      write('ZADD', indexKey, score, match)
      write('PEXPIREAT', key, expireAt(score))
      write('PEXPIREAT', idKeys[match], expireAt(score))
    else
      doomed[#doomed + 1] = key
    end
  end
end

-- Latest: the newest readable member by (timestamp, id).
local newest
for _, id in ipairs(readable) do
  local s, n = tonumber(scoreOf[id]), newest and tonumber(scoreOf[newest])
  if not newest or s > n or (s == n and id_after(id, newest)) then newest = id end
end
local readableSet = {}
for _, id in ipairs(readable) do readableSet[id] = true end
if latestId then
  local member = inIndex[latestId]
  if not member then find('latest-not-indexed', 'latest names ' .. latestId .. ', which is not in the index', latestKey, indexKey) end
  if not exists(idKeys[latestId]) then find('latest-missing-payload', 'latest names ' .. latestId .. ', which has no by-id key', latestKey, idKeys[latestId]) end
  if member and readableSet[latestId] and newest ~= latestId then
    find('latest-not-newest', 'latest names ' .. latestId .. ', the newest snapshot is ' .. newest, latestKey)
  end
elseif newest then
  find('latest-not-newest', 'latest is missing, the newest snapshot is ' .. newest, latestKey)
end
-- With nothing readable to move to, latest and the snapshot it names stay: readers reach it.
local kept = (not newest) and latestId or nil
if newest and newest ~= latestId then
  write('SET', latestKey, newest, 'PXAT', expireAt(scoreOf[newest]))
  if exists(liveKey) then write('DEL', liveKey) end
elseif newest then
  checkExpiry(latestKey, expireAt(scoreOf[newest]), 'latest')
end

for _, id in ipairs(gone) do
  if id ~= kept then
    write('ZREM', indexKey, id)
    for _, key in ipairs({ idKeys[id], owner[scoreOf[id]] == id and tsKeys[scoreOf[id]] or nil }) do
      if exists(key) then write('DEL', key) end
    end
  end
end
for id in pairs(orphanIds) do
  if id ~= kept then write('DEL', idKeys[id]) end
end
for _, key in ipairs(doomed) do write('DEL', key) end

-- The index lives as long as its newest remaining member.
local leaving, newestScore = {}, nil
for _, id in ipairs(gone) do leaving[id] = id ~= kept end
for id, score in pairs(scoreOf) do
  if not leaving[id] and (not newestScore or tonumber(score) > tonumber(newestScore)) then newestScore = score end
end
local maxScore
for _, score in pairs(scoreOf) do
  if not maxScore or tonumber(score) > tonumber(maxScore) then maxScore = score end
end
if newestScore then
  local at = expireAt(newestScore)
  -- Aligned to a member this repair removes: a consequence of another finding, not one itself.
  if newestScore ~= maxScore and redis.call('PEXPIRETIME', indexKey) == tonumber(expireAt(maxScore)) then write('PEXPIREAT', indexKey, at)
  else checkExpiry(indexKey, at, 'index') end
end

local persisted = { [kept or ''] = true }
for _, id in ipairs(readable) do persisted[id] = true end

for _, key in ipairs(dedupKeys) do
  local holder = redis.call('GET', key)
  if holder and not persisted[holder] then
    find('orphan-dedup', key .. ' claims ' .. holder .. ', which was never persisted', key)
    write('DEL', key)
  end
end

-- Every read is done; from here on only writes.
local changes = {}
for i, command in ipairs(plan) do
  if mode == 'repair' then redis.call(unpack(command)) end
  changes[i] = table.concat(command, ' ')
end
return { 1, findings, changes }
