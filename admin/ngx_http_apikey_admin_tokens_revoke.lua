-- Revokes a management token whose organizations are all within the
-- caller's: the admin API refuses it from the next request on, on every
-- instance (each request looks the token up).  A revocation is final.
--
-- KEYS[1] NS tok:<id>
-- ARGV    ns, the caller's organizations ("*", or a JSON array)
--         and last, as in every change script (once() in the library):
--         the fingerprint and "" ("" "" without an Idempotency-Key);
--         KEYS last: NS idem:<id> with one
--
-- Returns {"ok", "", now, token, 0, {}, ""} or {code, detail}.
--
-- The script Redis runs is this file after the shared helpers:
--   cat admin/ngx_http_apikey_admin_lib.lua.in \
--       admin/ngx_http_apikey_admin_tokens_revoke.lua

local function change()
    local v = tokenrecord(KEYS[1])

    if not v or not within(v[3], ARGV[2]) then
        return TOKEN_NOT_FOUND
    end

    if v[9] and v[9] ~= '0' then
        return {'already_revoked', 'the token is already revoked'}
    end

    redis.call('HSET', KEYS[1], 'revoked_at', clock())

    return {'ok', '', clock(), tokenrecord(KEYS[1]), 0, {}, ''}
end

return once(ARGV[1], change)
