--[[
  verify and repair of one region, in bounded steps. src/verify.ts drives the steps; every call
  does a bounded amount of work so that no call blocks the server for long: at most the members
  or keys it is given (src/verify.ts sends 32 members, 16 pairs or 64 keys) and at most ARGV[6]
  bytes of payload copied through Lua (128 KB; a larger snapshot goes alone, about 3 µs per KB).
  That is about 1 ms per call, far under Redis's 10 ms slowlog default (RELIABILITY.md measures
  it). Every decision a call makes rests only on what it reads in that same call. "verify" mode
  returns the same findings and changes as "repair" mode, and writes nothing. Needs Redis >= 7.0
  (PEXPIRETIME, ZRANGE BYSCORE).

  Concurrent persists may land between two calls of one repair. What a call may conclude:
    - a member is checked only if its score is still the one the caller paged (else skipped: it
      was re-persisted or pruned meanwhile); persist.lua writes a member and both payload keys in
      one call, so a member added between calls is consistent and needs no repair;
    - an unindexed payload key is indexed or deleted only if, in that call, no member holds its id
      or its timestamp (a persist in between makes it a member: then it is left alone);
    - latest moves only when it still names what the caller saw, and only to a snapshot that, in
      that call, is a member inside the window with its by-id key; when a writer moved it since
      the caller looked, it is left to that writer (status 3), and a repair that sees this three
      times in a row ends without checking latest (the next verify does);
    - the index expiry is set from its newest member as read in that call;
    - a dedup claim is deleted only if it still names the same id and that id is no member
      inside the window.
  What no call concludes: that the region as a whole is consistent. A repair makes the region
  consistent as of each call; a legacy (non-atomic) write landing meanwhile can add new drift,
  which the next verify reports.

  Input (every operation but digest, whose KEYS are payload keys only):
    KEYS[1] latest key   string: bare id of the region's newest snapshot
    KEYS[2] index key    sorted set: member id, score timestamp
    KEYS[3] live key     string: deleted whenever latest moves
    KEYS[4..]            per operation, below
    ARGV[1] operation    page | top | check | digest | adopt | drop | claims | unclaim | latest
    ARGV[2] mode         "verify" | "repair"
    ARGV[3] cutoff       now - retention, ms (integer): scores <= cutoff are outside the window
    ARGV[4] retention    ms (integer)
    ARGV[5] timestamp key holds  "payload" (a second copy) | "id" (the owner's id)
    ARGV[6] bound        count (page, top, drop) or payload bytes (check, digest, adopt) per
                         call; ignored by claims, unclaim and latest
    ARGV[7..]            per operation, below

  Operations (read-only unless marked):
    page     ARGV[7] after score ("" from the start), ARGV[8] after id: the next members by
             (score, id), at most ARGV[6]. data: latest ("" when absent), then id, score, ...
    top      the newest members, at most ARGV[6]. data: latest, then id, score, ...
    check    (writes) KEYS[4 + 2j], KEYS[5 + 2j]: by-id and timestamp key of member j;
             ARGV[7 + 2j], ARGV[8 + 2j]: its id and score, members sharing a score together.
             Restores, unindexes, aligns expiry; the greatest readable member at a timestamp
             owns its key.
             data: how many members were done (the rest did not fit the byte bound), then one
             verdict each: "r" readable member, "x" unindexed by this call, "o" outside the window
             and left (no payload: the next persist prunes it), "f" left, its by-id key has a
             foreign type, "s" skipped (its score changed since the caller paged it)
    digest   KEYS[1..] payload keys (no region keys); ARGV[7..]: "t" or "i" per key. data: how many were done, then per key "-" none, "f" foreign type, else
             "v" .. value (a timestamp key holding an id), "s" (a by-id key, one-copy layout: not
             read) or "d" .. length .. ":" .. sha1 of the value
    adopt    (writes) KEYS[4 + 2j], KEYS[5 + 2j]: timestamp and by-id key of a pair; ARGV[7 + 2j],
             ARGV[8 + 2j]: id, score. Indexes the pair (inside the window) or deletes it.
             data: done count, then "r" indexed, "x" deleted, "s" skipped (no longer a pair)
    drop     (writes) KEYS[4..] unpaired timestamp keys; ARGV[7..] their scores: deletes each
             that no member holds. data: done count
    claims   KEYS[4..] dedup keys. data: per key "-" none, "f" foreign, else "v" .. holder
    unclaim  (writes) KEYS[4..] dedup keys; ARGV[7..] the holder each was seen with: deletes
             each still held by that id when the id is no member inside the window. data: empty
    latest   (writes) KEYS[4..] by-id keys of the candidates, then of what latest names;
             ARGV[7] latest as the caller saw it; ARGV[8] newest score the caller plans (verify);
             ARGV[9] newest score before the repair ("" when this repair creates the index);
             ARGV[10] "1" when the repair deletes what latest names (else ""); ARGV[11..]
             candidates, newest first: id, score, ... (in verify mode: members readable once
             repaired; in repair mode: the newest members, checked here). Moves or deletes
             latest, sets the index expiry. data: empty

  Output: { status, findings, changes, data }
    status 1 done
           2 blocked: latest, index or live has a type persist.lua never writes; nothing written,
             findings name the key ("foreign-type"); nothing else in the region is checked
           3 latest changed since the caller read it (latest only): latest left as it is (the
             index expiry is still set); the caller may look again
    findings  one string per inconsistency: "<class>\n<detail>\n<key>[\n<key>…]"
    changes   one string per write, the command as sent without its values: "ZREM <key> <id>"
    data      strings, each prefixed with "#"
  No string is valid JSON text (data strings start with "#"), so a client that JSON-parses
  replies hands each over unchanged.

  Errors: SNAPSHOT_ARGS <argument>, an argument is malformed (raised before any write).

  A key of a foreign type other than the three above is a finding of its own ("foreign-type"),
  never read nor written: repair leaves it to the operator.
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
local function newer(s1, id1, s2, id2)
  local a, b = tonumber(s1), tonumber(s2)
  return a > b or (a == b and id_after(id1, id2))
end

local op, mode, cutoff, retention, tsHolds, bound = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6]
if #ARGV < 6 then return fail('ARGS', 'argv') end
if mode ~= 'verify' and mode ~= 'repair' then return fail('ARGS', 'mode') end
if tsHolds ~= 'payload' and tsHolds ~= 'id' then return fail('ARGS', 'timestampKey') end
if not string.match(cutoff, '^%-?%d+$') then return fail('ARGS', 'cutoff') end
if not string.match(retention, '^%d+$') then return fail('ARGS', 'retention') end
if not string.match(bound, '^%d+$') or tonumber(bound) < 1 then return fail('ARGS', 'bound') end
local cut, budget = tonumber(cutoff), tonumber(bound)

local findings, changes, data = {}, {}, {}
local function find(class, detail, ...) findings[#findings + 1] = table.concat({ class, detail, ... }, '\n') end
local function write(...)
  changes[#changes + 1] = table.concat({ ... }, ' ')
  if mode == 'repair' then redis.call(...) end
end
local function out(value) data[#data + 1] = '#' .. value end
local function reply(status) return { status, findings, changes, data } end

local function typeOf(key) return redis.call('TYPE', key).ok end
-- "string", "none", or "foreign" (reported once per call, then treated as untouchable).
local function kind(key, role)
  local t = typeOf(key)
  if t == 'string' or t == 'none' then return t end
  find('foreign-type', role .. ' key holds a ' .. t .. ', which persist.lua never writes; left alone', key)
  return 'foreign'
end
local function expireAt(score) return string.format('%.0f', tonumber(score) + tonumber(retention)) end
local function checkExpiry(key, at, what)
  local actual = redis.call('PEXPIRETIME', key)
  if actual == -2 or actual == tonumber(at) then return end
  if actual == -1 then find('no-ttl', what .. ' has no expiry, expected ' .. at, key)
  else find('ttl-misaligned', what .. ' expires at ' .. string.format('%.0f', actual) .. ', expected ' .. at, key) end
  write('PEXPIREAT', key, at)
end
-- The id owning the timestamp key at this score: the greatest member there.
local function ownerAt(indexKey, score)
  local owner
  for _, other in ipairs(redis.call('ZRANGE', indexKey, score, score, 'BYSCORE')) do
    if not owner or id_after(other, owner) then owner = other end
  end
  return owner
end

if op == 'digest' then
  local done = 0
  for i = 1, #KEYS do
    local key, role = KEYS[i], ARGV[6 + i]
    local k = kind(key, role == 't' and 'timestamp' or 'by-id')
    local len = k == 'string' and tsHolds == 'payload' and redis.call('STRLEN', key) or 0
    if done > 0 and len > budget then break end
    budget = budget - len
    done = done + 1
    if k == 'none' then out('-')
    elseif k == 'foreign' then out('f')
    elseif role == 't' and tsHolds == 'id' then
      -- An id is at most 128 bytes: anything longer (a legacy payload) pairs with nothing.
      out('v' .. (redis.call('STRLEN', key) <= 128 and redis.call('GET', key) or ''))
    elseif tsHolds == 'id' then out('s')
    else out('d' .. len .. ':' .. redis.sha1hex(redis.call('GET', key))) end
  end
  table.insert(data, 1, '#' .. done)
  return reply(1)
end

local latestKey, indexKey, liveKey = KEYS[1], KEYS[2], KEYS[3]
local blocked = false
for _, c in ipairs({ { latestKey, 'string', 'latest' }, { indexKey, 'zset', 'index' }, { liveKey, 'string', 'live' } }) do
  local t = typeOf(c[1])
  if t ~= 'none' and t ~= c[2] then
    find('foreign-type', c[3] .. ' key holds a ' .. t .. ', which persist.lua never writes; the region cannot be checked until it is removed', c[1])
    blocked = true
  end
end
if blocked then return { 2, findings, {}, {} } end

if op == 'page' or op == 'top' then
  out(redis.call('GET', latestKey) or '')
  local count = tonumber(bound)
  if op == 'top' then
    local flat = redis.call('ZRANGE', indexKey, '+inf', '-inf', 'BYSCORE', 'REV', 'LIMIT', 0, count, 'WITHSCORES')
    for _, v in ipairs(flat) do out(v) end
    return reply(1)
  end
  local afterScore, afterId = ARGV[7], ARGV[8]
  local from, offset, taken = afterScore == '' and '-inf' or afterScore, 0, 0
  -- Members tied at the cursor's score with ids up to the cursor's are skipped (ties are few).
  while taken < count do
    local flat = redis.call('ZRANGE', indexKey, from, '+inf', 'BYSCORE', 'LIMIT', offset, count, 'WITHSCORES')
    for i = 1, #flat, 2 do
      if taken < count and (afterScore == '' or newer(flat[i + 1], flat[i], afterScore, afterId)) then
        out(flat[i]); out(flat[i + 1])
        taken = taken + 1
      end
    end
    if #flat < 2 * count then break end
    offset = offset + count
  end
  return reply(1)
end

if op == 'check' then
  -- Members sharing a timestamp share its key: the caller sends them together, and they are
  -- checked together, so that when the key's owner (the greatest id) is unindexed the next
  -- readable one takes the key over in the same call.
  local total, j, done = (#KEYS - 3) / 2, 0, 0
  while j < total do
    local score, ts = ARGV[8 + 2 * j], KEYS[5 + 2 * j]
    local g = j + 1
    while g < total and ARGV[8 + 2 * g] == score do g = g + 1 end
    local group, inGroup = {}, {}
    for m = j, g - 1 do
      local id, current = ARGV[7 + 2 * m], redis.call('ZSCORE', indexKey, ARGV[7 + 2 * m])
      local entry = { id = id, byId = KEYS[4 + 2 * m], verdict = nil }
      if not current or tonumber(current) ~= tonumber(score) then entry.verdict = 's' end
      group[#group + 1] = entry
      inGroup[id] = entry
    end
    local owner = ownerAt(indexKey, score)
    -- A member at this timestamp the caller did not send (persisted meanwhile): leave the group.
    if owner and not inGroup[owner] then for _, e in ipairs(group) do e.verdict = 's' end end
    local tsType = typeOf(ts)
    local hasTs = tsType == 'string'
    -- Payload bytes this group costs: comparing or restoring copies them through Lua.
    local cost = hasTs and redis.call('STRLEN', ts) or 0
    local ownerEntry = owner and inGroup[owner]
    if ownerEntry and typeOf(ownerEntry.byId) == 'string' and tsHolds == 'payload' then cost = cost + redis.call('STRLEN', ownerEntry.byId) end
    if done > 0 and cost > budget then break end
    budget = budget - cost
    if tsType ~= 'string' and tsType ~= 'none' then kind(ts, 'timestamp') end
    local at, inWindow = expireAt(score), tonumber(score) > cut
    local effective -- the greatest member left in the index: owns the timestamp key once repaired
    for _, e in ipairs(group) do
      if not e.verdict then
        e.type = typeOf(e.byId)
        if e.type ~= 'string' and e.type ~= 'none' then kind(e.byId, 'by-id') end
        local owns = e.id == owner
        if not inWindow then
          -- Outside the window: harmless once its payloads are gone (the next persist prunes it),
          -- drift while they outlive it (legacy TTLs run from the write, not from the timestamp).
          local hasId, hasOwnTs = e.type == 'string', owns and hasTs
          if hasId or hasOwnTs then
            find('expired-member', 'member ' .. e.id .. ' at ' .. score .. ' is outside the retention window but its payload is not', indexKey, hasId and e.byId or ts)
            write('ZREM', indexKey, e.id)
            if hasId then write('DEL', e.byId) end
            if hasOwnTs then write('DEL', ts) end
            e.verdict = 'x'
          else
            e.verdict = 'o'
          end
        elseif e.type ~= 'string' and e.type ~= 'none' then
          -- Readers fail on it; the member stays, so that once the operator removes the key the
          -- next repair restores it from its timestamp key.
          e.verdict = 'f'
          if not effective or id_after(e.id, effective.id) then effective = e end
        else
          if e.type == 'none' then find('member-missing-payload', 'member ' .. e.id .. ' has no by-id key', e.byId, indexKey) end
          if e.type == 'string' or (owns and hasTs and tsHolds == 'payload') then
            if e.type == 'none' then
              write('COPY', ts, e.byId, 'REPLACE')
              write('PEXPIREAT', e.byId, at)
            else
              checkExpiry(e.byId, at, 'by-id key of ' .. e.id)
            end
            e.verdict = 'r'
            if not effective or id_after(e.id, effective.id) then effective = e end
          else
            write('ZREM', indexKey, e.id)
            e.verdict = 'x'
          end
        end
      end
    end
    if inWindow and tsType ~= 'string' and tsType ~= 'none' then
      -- left to the operator (reported above)
    elseif effective and effective.verdict == 'f' then
      -- its copy there is what restores it once the operator removes its by-id key: left alone
    elseif effective then
      local id = effective.id
      local stale = false
      if hasTs and effective.id == owner and effective.type == 'string' then
        stale = redis.call('GET', ts) ~= (tsHolds == 'id' and id or redis.call('GET', effective.byId))
        if stale then
          find('payload-mismatch', 'the timestamp key of ' .. id .. ' does not hold ' .. (tsHolds == 'id' and 'its id' or 'the payload of its by-id key'), effective.byId, ts)
        end
      elseif not hasTs then
        find('member-missing-payload', 'member ' .. id .. ' has no timestamp key', ts, indexKey)
      end
      -- Rewritten when missing, stale, or still the copy of an owner unindexed above.
      if not hasTs or stale or effective.id ~= owner then
        if tsHolds == 'id' then write('SET', ts, id, 'PXAT', at)
        else write('COPY', effective.byId, ts, 'REPLACE'); write('PEXPIREAT', ts, at) end
      else
        checkExpiry(ts, at, 'timestamp key of ' .. id)
      end
    elseif inWindow and hasTs and ownerEntry and ownerEntry.verdict == 'x' then
      write('DEL', ts)
    end
    for _, e in ipairs(group) do out(e.verdict) end
    done = done + (g - j)
    j = g
  end
  table.insert(data, 1, '#' .. done)
  return reply(1)
end

if op == 'adopt' then
  local latestId = redis.call('GET', latestKey)
  local done = 0
  for j = 0, (#KEYS - 3) / 2 - 1 do
    local ts, byId, id, score = KEYS[4 + 2 * j], KEYS[5 + 2 * j], ARGV[7 + 2 * j], ARGV[8 + 2 * j]
    local pair = typeOf(ts) == 'string' and typeOf(byId) == 'string'
      and not redis.call('ZSCORE', indexKey, id) and not ownerAt(indexKey, score)
    local cost = pair and redis.call('STRLEN', ts) + (tsHolds == 'payload' and redis.call('STRLEN', byId) or 0) or 0
    if done > 0 and cost > budget then break end
    budget = budget - cost
    if pair then pair = redis.call('GET', ts) == (tsHolds == 'id' and id or redis.call('GET', byId)) end
    if not pair then
      out('s')
    else
      find('orphan-payload', 'timestamp key ' .. score .. ' has no index member', ts)
      find('orphan-payload', 'by-id key of ' .. id .. ' has no index member', byId)
      if tonumber(score) <= cut then
        write('DEL', ts)
        write('DEL', byId)
        out('x')
      else
        -- One snapshot whose ZADD never ran (a legacy pipeline cut before it): index it.
        if latestId == id then find('latest-not-indexed', 'latest names ' .. id .. ', which is not in the index', latestKey, indexKey) end
        local at = expireAt(score)
        write('ZADD', indexKey, score, id)
        for _, key in ipairs({ ts, byId }) do
          if redis.call('PEXPIRETIME', key) ~= tonumber(at) then write('PEXPIREAT', key, at) end
        end
        out('r')
      end
    end
    done = done + 1
  end
  table.insert(data, 1, '#' .. done)
  return reply(1)
end

if op == 'drop' then
  local done = 0
  for i = 4, #KEYS do
    if done >= budget then break end
    local key, score = KEYS[i], ARGV[3 + i]
    if typeOf(key) == 'string' and not ownerAt(indexKey, score) then
      find('orphan-payload', 'timestamp key ' .. score .. ' has no index member and no by-id key pairs with it', key)
      write('DEL', key)
    end
    done = done + 1
  end
  out(done)
  return reply(1)
end

if op == 'claims' then
  for i = 4, #KEYS do
    local k = kind(KEYS[i], 'dedup')
    if k == 'string' then out('v' .. redis.call('GET', KEYS[i])) elseif k == 'none' then out('-') else out('f') end
  end
  return reply(1)
end

if op == 'unclaim' then
  for i = 4, #KEYS do
    local key, holder = KEYS[i], ARGV[3 + i]
    -- verify mode trusts the caller's plan (members this repair would unindex hold no claim).
    local score = mode == 'repair' and redis.call('ZSCORE', indexKey, holder)
    if typeOf(key) == 'string' and redis.call('GET', key) == holder and not (score and tonumber(score) > cut) then
      find('orphan-dedup', key .. ' claims ' .. holder .. ', which was never persisted', key)
      write('DEL', key)
    end
  end
  return reply(1)
end

if op == 'latest' then
  local seen, plannedNewest, maxBefore, doomed = ARGV[7], ARGV[8], ARGV[9], ARGV[10] == '1'
  local current = redis.call('GET', latestKey)
  -- Moved by a writer since the caller looked: its by-id key is not declared here. Leave it to
  -- the writer (persist.lua moves latest only forward, to a complete snapshot); status 3.
  local moved = (current or '') ~= seen
  local candidates, byIdOf, best = {}, {}, nil
  local n = (#ARGV - 10) / 2
  for j = 0, n - 1 do
    local id, score = ARGV[11 + 2 * j], ARGV[12 + 2 * j]
    byIdOf[id] = KEYS[4 + j]
    local indexed = redis.call('ZSCORE', indexKey, id)
    -- verify mode trusts the caller's plan: members readable once the earlier steps ran.
    if mode == 'verify' or (tonumber(score) > cut and indexed and tonumber(indexed) == tonumber(score) and typeOf(KEYS[4 + j]) == 'string') then
      candidates[id] = score
      best = best or id
    end
  end
  local currentById = current and (byIdOf[current] or KEYS[4 + n])
  if moved then
    -- nothing: see above
  elseif best then
    if current ~= best then
      local at = expireAt(candidates[best])
      local member = current and (candidates[current] or redis.call('ZSCORE', indexKey, current))
      if not current then find('latest-not-newest', 'latest is missing, the newest snapshot is ' .. best, latestKey)
      elseif doomed or (member and not candidates[current]) then find('latest-missing-payload', 'latest names ' .. current .. ', which has no readable payload', latestKey, currentById)
      elseif not member then find('latest-not-indexed', 'latest names ' .. current .. ', which is not in the index', latestKey, indexKey)
      else find('latest-not-newest', 'latest names ' .. current .. ', the newest snapshot is ' .. best, latestKey) end
      write('SET', latestKey, best, 'PXAT', at)
      if redis.call('EXISTS', liveKey) == 1 then write('DEL', liveKey) end
    else
      checkExpiry(latestKey, expireAt(candidates[best]), 'latest')
    end
  elseif current then
    -- Nothing readable to move to: latest stays while it leads readers to a payload that no
    -- member holds (its timestamp is unknown: see the unindexed-payload finding); it goes when
    -- it names an unreadable member or nothing at all.
    if doomed or redis.call('ZSCORE', indexKey, current) or typeOf(currentById) ~= 'string' then
      find('latest-missing-payload', 'latest names ' .. current .. ', which has no readable payload, and no snapshot can replace it', latestKey, currentById)
      write('DEL', latestKey)
      if redis.call('EXISTS', liveKey) == 1 then write('DEL', liveKey) end
    end
  end
  -- The index lives as long as its newest member.
  local newest = plannedNewest
  if mode == 'repair' then newest = redis.call('ZRANGE', indexKey, '+inf', '-inf', 'BYSCORE', 'REV', 'LIMIT', 0, 1, 'WITHSCORES')[2] or '' end
  if newest ~= '' then
    local at = expireAt(newest)
    local actual = redis.call('PEXPIRETIME', indexKey)
    -- Created by this repair, or aligned to a member it removed: a consequence of other findings.
    if maxBefore == '' or (newest ~= maxBefore and actual == tonumber(expireAt(maxBefore))) then
      if actual ~= tonumber(at) then write('PEXPIREAT', indexKey, at) end
    else
      checkExpiry(indexKey, at, 'index')
    end
  end
  return reply(moved and 3 or 1)
end

return fail('ARGS', 'operation')
