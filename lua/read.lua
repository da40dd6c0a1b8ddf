--[[
  Read one snapshot of one region consistently, in one call: its id, timestamp and payload.
  Read-only.

  Input:
    KEYS[1] latest key   string: bare id of the region's newest snapshot
    KEYS[2] index key    sorted set: member id, score timestamp

    ARGV[1] by-id key prefix  the by-id key of snapshot X is ARGV[1] .. X .. ARGV[2]
    ARGV[2] by-id key suffix
    ARGV[3] cutoff            now - retention, ms (integer): scores <= cutoff are outside the window
    ARGV[4] id                the snapshot to read, or "" for the latest

  The by-id key is derived here from an id read here, so it cannot be declared in KEYS; under
  the cluster key schema it carries the region's hash tag and so lives in the same slot. While
  that slot is being migrated (Redis Cluster resharding) the by-id key may not be on the node
  this runs on yet, where a GET would read it as missing and this script answer an older snapshot
  or none: payloadOf checks it together with a key this call already found, so that Redis refuses
  the script instead (an error reply; the caller retries) until the key is there.

  Output: nil when there is no such snapshot inside the window, else
    { id, timestamp (integer), payload (JSON text) }
  For the latest: what the application's readers get (latest, then its by-id key) whenever that
  is a snapshot inside the window, also when it is not indexed (a legacy write cut before its
  ZADD, or an index that expired while legacy writes went on): its timestamp is then its
  payload's generated_at. When latest is missing or names a snapshot that is gone, the newest
  indexed snapshot that still has its payload.
]]

local latestKey, indexKey = KEYS[1], KEYS[2]
local prefix, suffix, cutoff, wanted = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4]

-- EXISTS with `present`, a key this call found: on a slot being migrated Redis refuses a
-- multi-key command that misses a key; on a settled slot it is one more lookup.
local function payloadOf(id, present)
  local key = prefix .. id .. suffix
  redis.call('EXISTS', key, present)
  return redis.call('GET', key)
end

local function read(id)
  local score = redis.call('ZSCORE', indexKey, id)
  if not score or tonumber(score) <= cutoff then return nil end
  local payload = payloadOf(id, indexKey)
  if not payload then return nil end
  return { id, tonumber(score), payload }
end

if wanted ~= '' then return read(wanted) end

-- Not indexed: its age from its payload (decoded only on this drift path).
local function readUnindexed(id)
  if redis.call('ZSCORE', indexKey, id) then return nil end
  local payload = payloadOf(id, latestKey)
  if not payload then return nil end
  local ok, doc = pcall(cjson.decode, payload)
  if not (ok and type(doc) == 'table' and type(doc.generated_at) == 'number' and doc.generated_at > cutoff) then return nil end
  return { id, doc.generated_at, payload }
end

local latest = redis.call('GET', latestKey)
local found = latest and (read(latest) or readUnindexed(latest))
if found then return found end
for _, id in ipairs(redis.call('ZREVRANGEBYSCORE', indexKey, '+inf', '(' .. ARGV[3])) do
  found = read(id)
  if found then return found end
end
return nil
