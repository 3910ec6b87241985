-- A key's usage: the hashes of the UTC days from "first" to "last".
--
-- KEYS[1] NS key:<id>
-- ARGV    ns, org, first day, last day (Unix time / 86400)
--
-- Returns {"ok", "", {HGETALL of each day, in order}} or
-- {"key_not_found", detail}.  A day's fields are <hour><kind>, 00a to 23r
-- (docs/data-model.md); nginx adds them up into the buckets asked for.
--
-- The script Redis runs is this file after the shared helpers:
--   cat admin/ngx_http_apikey_admin_lib.lua.in \
--       admin/ngx_http_apikey_admin_usage.lua

local v = owned(KEYS[1], ARGV[2])

if not v then
    return NOT_FOUND
end

local days = {}

for i, k in ipairs(usagekeys(ARGV[1], v[1], 0, tonumber(ARGV[3]),
                             tonumber(ARGV[4])))
do
    days[i] = redis.call('HGETALL', k)
end

return {'ok', '', days}
