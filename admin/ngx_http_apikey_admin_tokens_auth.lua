-- Looks up the management token a request to the admin API carries, by
-- the hash of the bearer token: refused (revoked, expired, unknown) or its
-- name, organizations and permissions.  Its last use is written once a
-- second at most.
--
-- KEYS[1] NS toksec:<hash>
-- ARGV    ns
--
-- Returns {"ok", id, name, orgs (JSON array), permissions (JSON array)}
-- or {"unauthorized"}.
--
-- The script Redis runs is this file after the shared helpers:
--   cat admin/ngx_http_apikey_admin_lib.lua.in \
--       admin/ngx_http_apikey_admin_tokens_auth.lua

local id = redis.call('GET', KEYS[1])

if not id then
    return {'unauthorized'}
end

local k = ARGV[1] .. 'tok:' .. id
local v = tokenrecord(k)
local now = clock()

if not v or (v[9] and v[9] ~= '0') or (tonumber(v[7]) or 0) <= now then
    return {'unauthorized'}
end

if tonumber(v[8]) ~= now then
    redis.call('HSET', k, 'used', now)
end

return {'ok', v[1], v[2], v[3], v[4]}
