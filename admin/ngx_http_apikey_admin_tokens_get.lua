-- Reads one management token, if its organizations are all within the
-- caller's.
--
-- KEYS[1] NS tok:<id>
-- ARGV    ns, the caller's organizations ("*", or a JSON array)
--
-- Returns {"ok", "", now, token} or {"token_not_found", detail}.
--
-- The script Redis runs is this file after the shared helpers:
--   cat admin/ngx_http_apikey_admin_lib.lua.in \
--       admin/ngx_http_apikey_admin_tokens_get.lua

local v = tokenrecord(KEYS[1])

if not v or not within(v[3], ARGV[2]) then
    return TOKEN_NOT_FOUND
end

return {'ok', '', clock(), v}
