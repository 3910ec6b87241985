-- Writes the expiry notices that are due (docs/data-model.md, "Expiry
-- notices"): each "expiring" or "expired" event goes into its
-- organization's event log in the same atomic step as its entry leaves
-- NS notices (or moves on to expires_at), so that of any number of nginx
-- instances that run this each second, one writes it, once.  A slice a
-- call: at most "most" notices, and "scan" keys of the backfill.
--
-- A revoked key gets no notice: one that falls due while it is revoked
-- is passed over, not put off.  A notice that comes late (Redis was
-- down) is written late; an "expiring" whose expiry has already passed
-- gives way to the "expired".
--
-- The backfill gives the keys made before notices existed theirs, once
-- per Redis: it walks NS key:* with SCAN, its cursor in NS
-- notices:backfill, until SCAN is back at 0 ("done" then stays).
--
-- KEYS[1] NS notices             KEYS[2] NS notices:backfill
-- ARGV    ns, most notices per call, keys scanned per call
--
-- Returns {events written, 1 if more were due or the backfill goes on,
-- else 0}.
--
-- The script Redis runs is this file after the shared helpers:
--   cat admin/ngx_http_apikey_admin_lib.lua.in \
--       admin/ngx_http_apikey_admin_notices.lua

local ns, most = ARGV[1], tonumber(ARGV[2])
local now = clock()
local written = 0

local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'WITHSCORES',
                       'LIMIT', 0, most)

for i = 1, #due, 2 do
    local m, at = due[i], tonumber(due[i + 1])
    local org, id = string.match(m, '^([^\t]+)\t(.+)$')

    -- of the record only what a notice needs: org, name, expiry, revoked

    local f = org and redis.call('HMGET', ns .. 'key:' .. id, 'org', 'name',
                                 'expires_at', 'revoked_at')
    local exp = f and tonumber(f[3]) or 0

    if not f or f[1] ~= org or exp == 0 then
        redis.call('ZREM', KEYS[1], m)

    else
        local action = 'expiring'

        if at >= exp or now >= exp then
            action = 'expired'
            redis.call('ZREM', KEYS[1], m)
        else
            redis.call('ZADD', KEYS[1], exp, m)
        end

        if not f[4] or f[4] == '0' then
            logevent(ns .. 'org:' .. org .. ':events', now, 'system', action,
                     id, f[2])
            written = written + 1
        end
    end
end

local done = redis.call('HEXISTS', KEYS[2], 'done') == 1

if not done then
    local pattern = string.gsub(ns, '[%*%?%[%]\\]', '\\%0') .. 'key:*'
    local r = redis.call('SCAN', redis.call('HGET', KEYS[2], 'cursor') or '0',
                         'MATCH', pattern, 'COUNT', ARGV[3])

    for _, k in ipairs(r[2]) do
        local f = redis.pcall('HMGET', k, 'id', 'org', 'expires_at')

        if type(f) == 'table' and not f.err and f[1] and f[2] then
            local v = {f[1], f[2]}
            v[14] = f[3]
            addnotices(ns, v, now)
        end
    end

    if r[1] == '0' then
        done = true
        redis.call('HSET', KEYS[2], 'done', now)
        redis.call('HDEL', KEYS[2], 'cursor')
    else
        redis.call('HSET', KEYS[2], 'cursor', r[1])
    end
end

return {written, (#due == 2 * most or not done) and 1 or 0}
