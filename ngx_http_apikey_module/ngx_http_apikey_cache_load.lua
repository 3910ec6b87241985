-- apikey_cache: one slice of the load of every secret's gate record into
-- an nginx replica (docs/data-model.md, "The change log").
--
-- KEYS[1]  NS changes: the change log
-- ARGV     ns, SCAN cursor ("0" to begin), most keys to look at
--
-- Returns {cursor, position, time, hash, g, c, hash, g, c, ...}: the
-- cursor of the next slice ("0": done); on the first slice the id of the
-- change log's newest entry, from which the replica follows it
-- once loaded (a change during the load is applied again then); Redis's
-- clock in milliseconds; per secret its hash, its "g" and the hash its
-- "c" names ("" for none).  The first slice also names each organization
-- with limits (NS orgs:limited) as the change log's reader gives it:
-- the organization, "1" and "o".
-- A slice looks at a few hundred keys, so it holds Redis for about a
-- millisecond.

local ns = ARGV[1]
local now = redis.call('TIME')
local out = {'0', '',
             now[1] .. string.format('%03d', math.floor(now[2] / 1000))}

-- the position is an entry that exists: an empty log gets one, which
-- the followers skip, so that a trim or a new log past it shows

if ARGV[2] == '0' then
    local e = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)
    out[2] = e[1] and e[1][1]
             or redis.call('XADD', KEYS[1], 'MAXLEN', '~', 100000, '*',
                           'load', '1')

    for _, org in ipairs(redis.call('SMEMBERS', ns .. 'orgs:limited')) do
        out[#out + 1] = org
        out[#out + 1] = '1'
        out[#out + 1] = 'o'
    end
end

local r = redis.call('SCAN', ARGV[2], 'MATCH',
                     string.gsub(ns, '[%*%?%[%]\\]', '\\%0') .. '{*}',
                     'COUNT', ARGV[3])
out[1] = r[1]

-- a key of the pattern's length is a secret; its hash is checked by
-- nginx, which takes 64 hex digits only

local len, from = #ns + 66, #ns + 2

for _, k in ipairs(r[2]) do
    if #k == len then
        record(out, ns, string.sub(k, from, -2), false, k)
    end
end

return out
