-- Rotates a key: a new secret with the key's settings and bucket; the old
-- one deleted or, with a grace period, working until then (never past
-- the key's expiry) and removed by Redis a minute later.  Only the newest
-- previous secret can be in grace: an earlier one is deleted.
--
-- KEYS[1] NS key:<id>            KEYS[2] NS org:<org>:keys
-- KEYS[3] NS org:<org>:idx       KEYS[4] NS org:<org>:active
-- KEYS[5] NS org:<org>:events    KEYS[6] NS org:<org>:rebuild
-- KEYS[7] NS org:<org>:idx:new   KEYS[8] NS org:<org>:active:new
-- KEYS[9] NS{<new hash>}
-- ARGV    ns, org, actor, new display prefix, grace seconds, new hash
--         and last, as in every change script (once() in the library):
--         the fingerprint and the sealed new key ("" without an
--         Idempotency-Key); KEYS last: NS idem:<id> with one
--
-- Returns {"ok", "", now, key, end of grace or 0, gates} or {code, detail}.
--
-- The script Redis runs is this file after the shared helpers:
--   cat admin/ngx_http_apikey_admin_lib.lua.in \
--       admin/ngx_http_apikey_admin_rotate.lua

local ns = ARGV[1]

local function change(v)
    if revoked(v) then
        return {'key_revoked', 'a revoked key cannot be rotated'}
    end

    if redis.call('EXISTS', KEYS[9]) == 1 then
        return {'conflict', 'secret already in use'}
    end

    local now = clock()
    local old = summary(v)
    local cur = secret(ns, v[16])
    local oldprefix = v[5]
    local oldcur, oldprev = v[16], v[17]
    local used = lastused(ns, v)
    local bucket = redis.call('HMGET', cur, 'b', 'u', 'h', 'a', 'l', 'r',
                              'q')
    local exp = tonumber(v[14]) or 0
    local grace = tonumber(ARGV[5])
    local ends = 0

    if v[17] then
        redis.call('DEL', secret(ns, v[17]))
    end

    if grace > 0 and redis.call('EXISTS', cur) == 1 then
        ends = now + grace
        if exp > 0 and exp < ends then
            ends = exp
        end
        if ends <= now then
            ends = 0
        end
    end

    if ends > 0 then
        redis.call('HSET', KEYS[1], 'prev_secret', v[16],
                   'prev_expires_at', ends)
    else
        redis.call('DEL', cur)
        redis.call('HDEL', KEYS[1], 'prev_secret', 'prev_expires_at')
    end

    redis.call('HSET', KEYS[1], 'secret', ARGV[6], 'prefix', ARGV[4],
               'updated_at', now, 'used', used)

    v = record(KEYS[1])

    redis.call('HSET', KEYS[9], 'g', gate(v, 0, v[5]))

    -- the new secret goes on from the old one's bucket, last use, usage
    -- counts of the hour and quota count

    for i, f in ipairs({'b', 'u', 'h', 'a', 'l', 'r', 'q'}) do
        if bucket[i] then
            redis.call('HSET', KEYS[9], f, bucket[i])
        end
    end

    -- the secret in grace draws from the new one's bucket ("c"): rotating
    -- never adds tokens

    if ends > 0 then
        redis.call('HSET', cur, 'g', gate(v, ends, oldprefix), 'c', KEYS[9])
        redis.call('HDEL', cur, 'b', 'h', 'a', 'l', 'r', 'q')
        redis.call('PEXPIREAT', cur, (ends + 60) * 1000)
    end

    reindex(v, old, now)
    changed(ns, v[16], oldcur, oldprev)
    event(now, ARGV[3], 'rotated', v[1], v[3])

    return ok(ns, now, v, ends)
end

return once(ns, keyed(change))
