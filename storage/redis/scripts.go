package redis

import goredis "github.com/redis/go-redis/v9"

// Data model, for a storage with prefix P (P cannot contain ':', '{' or '}'),
// where T is the hash tag "{P}":
//
//	T:v:<key>    hash {v: value, m: modified, Unix nanoseconds}
//	T:d:<dir>    set of the names of dir's children (files or directories);
//	             the root directory is "T:d:"
//	T:l:<name>   lock: "<token>:<fence>", with a PX expiry
//	T:r:<token>  marker that the lock with this token was released (short expiry)
//	T:fence      fencing counter, shared by every lock name (expires when unused)
//	T:changes    pub/sub channel carrying the key of every stored or deleted
//	             value; in Cluster a sharded channel (SPUBLISH), which lives on
//	             the shard that holds the storage's slot
//
// Keys and names are used raw: Redis keys are binary-safe, and each Redis key
// is a fixed prefix followed by exactly one certmagic key, so no two certmagic
// keys map to the same Redis key whatever bytes they contain. Set members are
// single path components, which cannot contain '/'.
//
// Invariant kept by every script: a name is in its parent's index exactly
// when the child holds a value or has children of its own, and then so is
// every ancestor. Scripts compute the keys they touch from T (ARGV[1]); in
// Cluster they all hash to the slot of T, like KEYS[1], which each script is
// given so that the client sends it to the node serving that slot.

// storeScript writes a value and indexes it in each ancestor directory, then
// announces the key.
//
// KEYS: the value key. ARGV: T, key, value, modified, publish command.
var storeScript = goredis.NewScript(`
local p, key = ARGV[1], ARGV[2]
redis.call('HSET', p .. ':v:' .. key, 'v', ARGV[3], 'm', ARGV[4])
local path = key
while true do
  local dir, name = string.match(path, '^(.*)/([^/]*)$')
  if not dir then dir, name = '', path end
  if redis.call('SADD', p .. ':d:' .. dir, name) == 0 or dir == '' then break end
  path = dir
end
redis.call(ARGV[5], p .. ':changes', key)
return 1
`)

// deleteScript deletes key's value and its whole subtree, then unindexes the
// ancestors left empty. Each deleted value is announced.
//
// KEYS: the value key. ARGV: T, key (never the root), publish command.
var deleteScript = goredis.NewScript(`
local p, key, pub = ARGV[1], ARGV[2], ARGV[3]
local ch = p .. ':changes'
local n = 0
if redis.call('DEL', p .. ':v:' .. key) == 1 then
  redis.call(pub, ch, key)
  n = n + 1
end
local queue, i = {key}, 1
while i <= #queue do
  local dir = queue[i]
  i = i + 1
  local dk = p .. ':d:' .. dir
  for _, name in ipairs(redis.call('SMEMBERS', dk)) do
    local child = dir .. '/' .. name
    if redis.call('DEL', p .. ':v:' .. child) == 1 then
      redis.call(pub, ch, child)
      n = n + 1
    end
    queue[#queue + 1] = child
  end
  redis.call('DEL', dk)
end
local path = key
while true do
  if redis.call('EXISTS', p .. ':v:' .. path, p .. ':d:' .. path) > 0 then break end
  local dir, name = string.match(path, '^(.*)/([^/]*)$')
  if not dir then dir, name = '', path end
  redis.call('SREM', p .. ':d:' .. dir, name)
  if dir == '' then break end
  path = dir
end
return n
`)

// statScript returns {1, size, modified} for a value, {0} for a directory,
// nil when key is neither.
//
// KEYS: the value key. ARGV: T, key.
var statScript = goredis.NewScript(`
local p, key = ARGV[1], ARGV[2]
local vk = p .. ':v:' .. key
local m = redis.call('HGET', vk, 'm')
if m then return {1, redis.call('HSTRLEN', vk, 'v'), m} end
if redis.call('EXISTS', p .. ':d:' .. key) == 1 then return {0} end
return false
`)

// listScript returns the keys below dir: its children, or all descendants
// (directories included) when ARGV[3] is "1". It returns an empty list when
// dir is only a value, nil when it does not exist. One script, so the
// listing is a consistent snapshot.
//
// KEYS: the directory key. ARGV: T, dir ("" for the root), recursive.
var listScript = goredis.NewScript(`
local p, base, rec = ARGV[1], ARGV[2], ARGV[3] == '1'
if redis.call('EXISTS', p .. ':d:' .. base) == 0 then
  if base ~= '' and redis.call('EXISTS', p .. ':v:' .. base) == 1 then return {} end
  return false
end
local out, queue, i = {}, {base}, 1
while i <= #queue do
  local dir = queue[i]
  i = i + 1
  for _, name in ipairs(redis.call('SMEMBERS', p .. ':d:' .. dir)) do
    local child = name
    if dir ~= '' then child = dir .. '/' .. name end
    out[#out + 1] = child
    if rec then queue[#queue + 1] = child end
  end
end
return out
`)

// acquireScript takes a free lock for token with a fresh fencing number and
// returns the lock's value. It is idempotent: when the lock already holds
// token (an earlier attempt whose reply was lost), it returns that value. When
// another token holds the lock it returns the lock's remaining milliseconds.
//
// The fencing number is the counter plus one, but at least the server's
// clock in microseconds. So numbers keep growing even if the counter is lost
// (a Redis restart without persistence) or expires: it is refreshed on every
// acquisition and dropped after ARGV[3] ms of disuse, so a namespace that is
// no longer used leaves no counter behind. (Microseconds stay below 2^53, the
// largest integer a Lua number holds exactly, until the year 2255.)
//
// KEYS: lock, fence counter. ARGV: token, ttl in ms, counter ttl in ms.
var acquireScript = goredis.NewScript(`
redis.replicate_commands()
local cur = redis.call('GET', KEYS[1])
if cur then
  if string.sub(cur, 1, #ARGV[1] + 1) == ARGV[1] .. ':' then return cur end
  return redis.call('PTTL', KEYS[1])
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local f = redis.call('INCR', KEYS[2])
if f < now then f = now end
local fs = string.format('%.0f', f)
redis.call('SET', KEYS[2], fs, 'PX', ARGV[3])
local v = ARGV[1] .. ':' .. fs
redis.call('SET', KEYS[1], v, 'NX', 'PX', ARGV[2])
return v
`)

// refreshScript extends a lock held with value to at least ms milliseconds
// from now; it never shortens it. Returns 1, or 0 when value no longer holds
// the lock.
//
// KEYS: lock. ARGV: value, ms.
var refreshScript = goredis.NewScript(`
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
local ms = tonumber(ARGV[2])
if redis.call('PTTL', KEYS[1]) < ms then redis.call('PEXPIRE', KEYS[1], ms) end
return 1
`)

// releaseScript frees a lock held with value and leaves a marker, so that a
// retry after a lost reply still learns that the release succeeded. Returns
// 1 when released (now or by an earlier attempt), 0 when value did not hold
// the lock.
//
// KEYS: lock, release marker. ARGV: value, marker ttl in ms.
var releaseScript = goredis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  redis.call('SET', KEYS[2], '1', 'PX', ARGV[2])
  return 1
end
return redis.call('EXISTS', KEYS[2])
`)
