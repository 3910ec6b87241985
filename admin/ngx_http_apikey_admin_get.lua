-- Reads one key of an organization.
--
-- KEYS[1] NS key:<id>
-- ARGV    ns, org
--
-- Returns {"ok", "", now, key} or {"key_not_found", detail}.
--
-- The script Redis runs is this file after the shared helpers:
--   cat admin/ngx_http_apikey_admin_lib.lua.in \
--       admin/ngx_http_apikey_admin_get.lua

local v = owned(KEYS[1], ARGV[2])

if not v then
    return NOT_FOUND
end

return {'ok', '', clock(), reply(ARGV[1], v)}
