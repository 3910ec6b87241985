-- A key's usage: the hashes of the UTC days from "first" to "last".
--
-- KEYS[1] NS key:<id>
-- ARGV    ns, org, first day, last day (Unix time / 86400), "hour" or
--         "day"
--
-- Returns {"ok", "", {fields and counts of each day, in order}} or
-- {"key_not_found", detail}.  A day's hash (docs/data-model.md) has a
-- field <hour><kind> per hour, 00a to 23r, and the day's totals a, l and
-- r: by hour, its HGETALL; by day, only the totals, so that 90 days stay
-- far below a millisecond.  nginx adds the counts up into the buckets
-- asked for, so the counts of the hour still with the key's secrets
-- (fields h, a, l, r) are added to their day as more such fields.
--
-- The script Redis runs is this file after the shared helpers:
--   cat admin/ngx_http_apikey_admin_lib.lua.in \
--       admin/ngx_http_apikey_admin_usage.lua

local v = owned(KEYS[1], ARGV[2])

if not v then
    return NOT_FOUND
end

local first = tonumber(ARGV[3])
local hourly = ARGV[5] == 'hour'
local days = {}

for i, k in ipairs(usagekeys(ARGV[1], v[1], 0, first, tonumber(ARGV[4])))
do
    if hourly then
        days[i] = redis.call('HGETALL', k)
    else
        local c = redis.call('HMGET', k, 'a', 'l', 'r')
        days[i] = {'a', c[1] or '0', 'l', c[2] or '0', 'r', c[3] or '0'}
    end
end

for i = 16, 17 do
    local c = v[i] and redis.call('HMGET', secret(ARGV[1], v[i]),
                                  'h', 'a', 'l', 'r')
    local h = c and tonumber(c[1])

    if h then
        local day = days[math.floor(h / 24) - first + 1]
        local f = hourly and string.format('%02d', h % 24) or ''

        if day then
            push(day, f .. 'a', c[2] or '0', f .. 'l', c[3] or '0',
                 f .. 'r', c[4] or '0')
        end
    end
end

return {'ok', '', days}
