-- Deletes a key for good: its record, index entries, every secret and its
-- usage (UNLINK: Redis frees up to 90 days of counts in the background).
--
-- KEYS[1] NS key:<id>            KEYS[2] NS org:<org>:keys
-- KEYS[3] NS org:<org>:idx       KEYS[4] NS org:<org>:active
-- KEYS[5] NS org:<org>:events    KEYS[6] NS org:<org>:rebuild
-- KEYS[7] NS org:<org>:idx:new   KEYS[8] NS org:<org>:active:new
-- ARGV    ns, org, actor
--         and last, as in every change script (once() in the library):
--         the fingerprint and the sealed new key ("" without an
--         Idempotency-Key); KEYS last: NS idem:<id> with one
--
-- Returns {"ok", "", now, nil, 0, gates} or {"key_not_found", detail}.
--
-- The script Redis runs is this file after the shared helpers:
--   cat admin/ngx_http_apikey_admin_lib.lua.in \
--       admin/ngx_http_apikey_admin_delete.lua

local ns = ARGV[1]

local function change(v)
    local now = clock()

    for i = 16, 17 do
        if v[i] then
            redis.call('UNLINK', secret(ns, v[i]))
        end
    end

    redis.call('UNLINK', KEYS[1])
    redis.call('UNLINK', unpack(usagekeys(ns, v[1], now)))
    unindex(v)
    redis.call('ZREM', ns .. 'notices', noticekey(v))
    changed(ns, v[16], v[17])
    event(now, ARGV[3], 'deleted', v[1], v[3])

    return ok(ns, now)
end

return once(ns, keyed(change))
