-- Deletes a key for good: its record, index entries, every secret and its
-- usage.
--
-- KEYS[1] NS key:<id>            KEYS[2] NS org:<org>:keys
-- KEYS[3] NS org:<org>:idx       KEYS[4] NS org:<org>:active
-- KEYS[5] NS org:<org>:events
-- ARGV    ns, org, actor
--
-- Returns {"ok", ""} or {"key_not_found", detail}.
--
-- The script Redis runs is this file after the shared helpers:
--   cat admin/ngx_http_apikey_admin_lib.lua.in \
--       admin/ngx_http_apikey_admin_delete.lua

local ns = ARGV[1]
local v = owned(KEYS[1], ARGV[2])

if not v then
    return NOT_FOUND
end

local now = clock()

for i = 16, 17 do
    if v[i] then
        redis.call('DEL', secret(ns, v[i]))
    end
end

redis.call('DEL', KEYS[1])
redis.call('DEL', unpack(usagekeys(ns, v[1], now)))
redis.call('ZREM', KEYS[2], v[1])
redis.call('ZREM', KEYS[3], summary(v))
redis.call('ZREM', KEYS[4], v[1])
changed(ns, v[16], v[17])
event(now, ARGV[3], 'deleted', v[1])

return {'ok', ''}
