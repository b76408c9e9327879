package redisstore

import "github.com/redis/go-redis/v9"

// Error replies the scripts raise; mapped to the state errors in Go.
const (
	errStale    = "DIRSYNC_STALE_FENCE"
	errLockHeld = "DIRSYNC_LOCK_HELD"
)

// fenceLua checks a fence against the newest tokens hash (KEYS[1]) for lock
// ARGV[1] with token ARGV[2]; it raises errStale when the write must be
// refused. It is the shared rule documented in state/statetest.
const fenceLua = `
local name = ARGV[1]
local token = tonumber(ARGV[2])
if token == 0 then
  if name == '' then
    if redis.call('HLEN', KEYS[1]) > 0 then
      return redis.error_reply('` + errStale + ` unfenced write refused: a leader lock has been taken on this store')
    end
  elseif redis.call('HEXISTS', KEYS[1], name) == 1 then
    return redis.error_reply('` + errStale + ` unfenced write refused: lock ' .. name .. ' has been taken on this store')
  end
elseif name == '' then
  return redis.error_reply('` + errStale + ` fence token without a lock name')
else
  local cur = tonumber(redis.call('HGET', KEYS[1], name) or '0')
  if cur ~= token then
    return redis.error_reply('` + errStale + ` lock ' .. name .. ': token ' .. ARGV[2] .. ', newest is ' .. cur)
  end
end
`

// fencedHSet: KEYS tokens, hash; ARGV lock, token, then field/value pairs.
var fencedHSet = redis.NewScript(`local function check()` + fenceLua + ` return nil end
local e = check()
if e then return e end
for i = 3, #ARGV, 2 do
  redis.call('HSET', KEYS[2], ARGV[i], ARGV[i+1])
end
return #ARGV / 2 - 1
`)

// fencedHDel: KEYS tokens, hash; ARGV lock, token, field.
var fencedHDel = redis.NewScript(`local function check()` + fenceLua + ` return nil end
local e = check()
if e then return e end
return redis.call('HDEL', KEYS[2], ARGV[3])
`)

// acquireLua: KEYS lock, tokens; ARGV name, owner, ttl ms. Returns the token,
// or raises errLockHeld. A new token is the larger of the newest one + 1 and
// the server's clock in milliseconds, so tokens keep increasing even if
// Redis loses its data (restart without persistence, failover to a lagging
// replica) and an old leader's token can never become current again.
var acquireLua = redis.NewScript(`
local cur = redis.call('GET', KEYS[1])
if cur then
  local sp = string.find(cur, ' ', 1, true)
  if string.sub(cur, sp + 1) ~= ARGV[2] then
    return redis.error_reply('` + errLockHeld + `')
  end
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
  return tonumber(string.sub(cur, 1, sp - 1))
end
local t = redis.call('TIME')
local ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local newest = tonumber(redis.call('HGET', KEYS[2], ARGV[1]) or '0')
local tok = string.format('%d', math.max(newest + 1, ms))
redis.call('HSET', KEYS[2], ARGV[1], tok)
redis.call('SET', KEYS[1], tok .. ' ' .. ARGV[2], 'PX', ARGV[3])
return tonumber(tok)
`)

// renewLua: KEYS lock, tokens; ARGV name, owner, token, ttl ms. Returns 1,
// or 0 when a newer lease was issued.
var renewLua = redis.NewScript(`
local newest = redis.call('HGET', KEYS[2], ARGV[1])
if newest ~= ARGV[3] then return 0 end
local want = ARGV[3] .. ' ' .. ARGV[2]
local cur = redis.call('GET', KEYS[1])
if cur and cur ~= want then return 0 end
redis.call('SET', KEYS[1], want, 'PX', ARGV[4])
return 1
`)

// releaseLua: KEYS lock; ARGV token, owner. Deletes only its own lease.
var releaseLua = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] .. ' ' .. ARGV[2] then
  return redis.call('DEL', KEYS[1])
end
return 0
`)

// kvPutLua: KEYS bucket hash; ARGV key, value, ifVersion. Values are stored
// as "<version> <data>". Returns {1, newVersion} or {0, current, exists}.
var kvPutLua = redis.NewScript(`
local cur = redis.call('HGET', KEYS[1], ARGV[1])
local ver = 0
if cur then ver = tonumber(string.sub(cur, 1, string.find(cur, ' ', 1, true) - 1)) end
local want = tonumber(ARGV[3])
local ok = want == -1 or (want == 0 and not cur) or (want > 0 and cur and ver == want)
if not ok then
  if cur then return {0, ver, 1} end
  return {0, 0, 0}
end
ver = ver + 1
redis.call('HSET', KEYS[1], ARGV[1], ver .. ' ' .. ARGV[2])
return {1, ver}
`)

// kvDelLua: KEYS bucket hash; ARGV key, ifVersion. Returns {1} or
// {0, current, exists}.
var kvDelLua = redis.NewScript(`
local cur = redis.call('HGET', KEYS[1], ARGV[1])
local ver = 0
if cur then ver = tonumber(string.sub(cur, 1, string.find(cur, ' ', 1, true) - 1)) end
local want = tonumber(ARGV[2])
local ok = want == -1 or (want == 0 and not cur) or (want > 0 and cur and ver == want)
if not ok then
  if cur then return {0, ver, 1} end
  return {0, 0, 0}
end
if cur then redis.call('HDEL', KEYS[1], ARGV[1]) end
return {1}
`)

// appendLua: KEYS seq counter, stream; ARGV max length, then records.
// Each record gets the next seq as its stream id "<seq>-0"; the stream is
// trimmed to the newest max length entries. Returns the last seq.
var appendLua = redis.NewScript(`
local n = #ARGV - 1
local seq = redis.call('INCRBY', KEYS[1], n) - n
for i = 2, #ARGV do
  seq = seq + 1
  redis.call('XADD', KEYS[2], seq .. '-0', 'd', ARGV[i])
end
redis.call('XTRIM', KEYS[2], 'MAXLEN', ARGV[1])
return seq
`)

// kvCheckLua is the version check shared by the indexed KV scripts: KEYS[1]
// is the bucket hash, ARGV[1] the key, ARGV[3] the expected version (>= 0).
const kvCheckLua = `
local cur = redis.call('HGET', KEYS[1], ARGV[1])
local ver = 0
if cur then ver = tonumber(string.sub(cur, 1, string.find(cur, ' ', 1, true) - 1)) end
local want = tonumber(ARGV[3])
local ok = (want == 0 and not cur) or (want > 0 and cur and ver == want)
if not ok then
  if cur then return {0, ver, 1} end
  return {0, 0, 0}
end
`

// ixEditLua removes, then adds, index entries: from ARGV[first] on, ARGV
// holds the number of removals, then (KEYS position, entry) pairs.
const ixEditLua = `
local function ixedit(first)
  local nd = tonumber(ARGV[first])
  local i = first + 1
  for _ = 1, nd do
    redis.call('ZREM', KEYS[tonumber(ARGV[i])], ARGV[i + 1])
    i = i + 2
  end
  while i <= #ARGV do
    redis.call('ZADD', KEYS[tonumber(ARGV[i])], 0, ARGV[i + 1])
    i = i + 2
  end
end
`

// kvPutIndexedLua: KEYS bucket hash, then index sorted sets; ARGV key,
// value, ifVersion, then the entry edits (see ixEditLua). Returns {1, new
// version} or {0, current, exists}.
var kvPutIndexedLua = redis.NewScript(ixEditLua + kvCheckLua + `
ver = ver + 1
redis.call('HSET', KEYS[1], ARGV[1], ver .. ' ' .. ARGV[2])
ixedit(4)
return {1, ver}
`)

// kvDelIndexedLua: KEYS bucket hash, then index sorted sets; ARGV key,
// unused, ifVersion, then the entry edits. Returns {1} or {0, current, exists}.
var kvDelIndexedLua = redis.NewScript(ixEditLua + kvCheckLua + `
redis.call('HDEL', KEYS[1], ARGV[1])
ixedit(4)
return {1}
`)

// kvIndexAddLua: KEYS bucket hash, then index sorted sets; ARGV key,
// unused, version, then the entry edits (no removals). Adds only while the
// key is at that version; returns {1} or {0, ...}.
var kvIndexAddLua = redis.NewScript(ixEditLua + kvCheckLua + `
ixedit(4)
return {1}
`)

// kvRangeLua: KEYS index sorted set, bucket hash; ARGV lo, hi, offset,
// limit, keysOnly. Entries all have score 0, so the set is in lexical
// order and a rank is found in O(log n): the entries below lo are counted
// with ZLEXCOUNT and the page read by rank with ZRANGE. Returns {total,
// key1, value1, key2, value2, ...}; keysOnly returns each value's version
// only (the value itself stays in Redis).
var kvRangeLua = redis.NewScript(`
local lo, hi = ARGV[1], ARGV[2]
local min, max = '-', '+'
if lo ~= '' then min = '[' .. lo end
if hi ~= '' then max = '(' .. hi end
local total
if lo == '' and hi == '' then
  total = redis.call('ZCARD', KEYS[1])
else
  total = redis.call('ZLEXCOUNT', KEYS[1], min, max)
end
local off, lim = tonumber(ARGV[3]), tonumber(ARGV[4])
if lim <= 0 or off >= total then return {total} end
local below = 0
if lo ~= '' then below = redis.call('ZLEXCOUNT', KEYS[1], '-', '(' .. lo) end
local last = math.min(off + lim, total) - 1
local ms = redis.call('ZRANGE', KEYS[1], below + off, below + last)
local out = {total}
for _, m in ipairs(ms) do
  local k = string.sub(m, string.find(m, '\0', 1, true) + 1)
  local v = redis.call('HGET', KEYS[2], k)
  if v and ARGV[5] == '1' then v = string.sub(v, 1, string.find(v, ' ', 1, true) - 1) end
  out[#out + 1] = k
  out[#out + 1] = v
end
return out
`)
