-- A key's usage: the hashes of the UTC days from "first" to "last".
--
-- KEYS[1] NS key:<id>
-- ARGV    ns, org, first day, last day (Unix time / 86400)
--
-- Returns {"ok", "", {HGETALL of each day, in order}} or
-- {"key_not_found", detail}.  A day's fields are <hour><kind>, 00a to 23r
-- (docs/data-model.md); nginx adds them up into the buckets asked for, so
-- the counts of the hour still with the key's secrets (fields h, a, l, r)
-- are added to their day as more such fields.
--
-- The script Redis runs is this file after the shared helpers:
--   cat admin/ngx_http_apikey_admin_lib.lua.in \
--       admin/ngx_http_apikey_admin_usage.lua

local v = owned(KEYS[1], ARGV[2])

if not v then
    return NOT_FOUND
end

local first = tonumber(ARGV[3])
local days = {}

for i, k in ipairs(usagekeys(ARGV[1], v[1], 0, first, tonumber(ARGV[4])))
do
    days[i] = redis.call('HGETALL', k)
end

for i = 16, 17 do
    local c = v[i] and redis.call('HMGET', secret(ARGV[1], v[i]),
                                  'h', 'a', 'l', 'r')
    local h = c and tonumber(c[1])

    if h then
        local day = days[math.floor(h / 24) - first + 1]
        local f = string.format('%02d', h % 24)

        if day then
            push(day, f .. 'a', c[2] or '0', f .. 'l', c[3] or '0',
                 f .. 'r', c[4] or '0')
        end
    end
end

return {'ok', '', days}
