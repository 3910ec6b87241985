-- Restores a revoked key, if the organization has a free slot for it
-- (apikey_max_keys); its secrets work again from the next request on.
--
-- KEYS[1] NS key:<id>            KEYS[2] NS org:<org>:keys
-- KEYS[3] NS org:<org>:idx       KEYS[4] NS org:<org>:active
-- KEYS[5] NS org:<org>:events    KEYS[6] NS org:<org>:rebuild
-- KEYS[7] NS org:<org>:idx:new   KEYS[8] NS org:<org>:active:new
-- ARGV    ns, org, actor, max_keys
--         and last, as in every change script (once() in the library):
--         the fingerprint and the sealed new key ("" without an
--         Idempotency-Key); KEYS last: NS idem:<id> with one
--
-- Returns {"ok", "", now, key, 0, gates} or {code, detail}.
--
-- The script Redis runs is this file after the shared helpers:
--   cat admin/ngx_http_apikey_admin_lib.lua.in \
--       admin/ngx_http_apikey_admin_restore.lua

local ns = ARGV[1]

local function change(v)
    if not revoked(v) then
        return {'not_revoked', 'the key is not revoked'}
    end

    local now = clock()
    local old = summary(v)

    v[15] = false

    local limit = active(v, now) and full(tonumber(ARGV[4]), now)

    if limit then
        return limit
    end

    redis.call('HDEL', KEYS[1], 'revoked_at')
    redis.call('HSET', KEYS[1], 'updated_at', now)

    return commit(ns, old, now, 'restored')
end

return once(ns, keyed(change))
