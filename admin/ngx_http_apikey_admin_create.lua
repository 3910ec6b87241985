-- Creates a key: its record, the organization's indexes, the secret hash
-- the gatekeeper reads and the event, in one step.  The apikey_max_keys
-- check and the insert are in the same script, so parallel creates
-- cannot overshoot.
--
-- KEYS[1] NS key:<id>            KEYS[2] NS org:<org>:keys
-- KEYS[3] NS org:<org>:idx       KEYS[4] NS org:<org>:active
-- KEYS[5] NS org:<org>:events    KEYS[6] NS org:<org>:rebuild
-- KEYS[7] NS org:<org>:idx:new   KEYS[8] NS org:<org>:active:new
-- KEYS[9] NS{<hash>}
-- ARGV    ns, org, id, name, description, display prefix, environment,
--         scopes (JSON array), rate (0: unlimited), per, burst,
--         expires_at (0: none), expires_in (0: none), max_ttl (0: none),
--         max_keys (0: no limit), actor, hash, meta (compact JSON, "": none),
--         quota ("<limit> <d|m>", "": none)
--         and last, as in every change script (once() in the library):
--         the fingerprint and the sealed new key ("" without an
--         Idempotency-Key); KEYS last: NS idem:<id> with one
--
-- Returns {"ok", "", now, key, 0, gates} or {code, detail}.
--
-- The script Redis runs is this file after the shared helpers:
--   cat admin/ngx_http_apikey_admin_lib.lua.in \
--       admin/ngx_http_apikey_admin_create.lua

local ns, org, id = ARGV[1], ARGV[2], ARGV[3]

local function change()
    local now, ms = clockms()

    if redis.call('EXISTS', KEYS[1], KEYS[9]) > 0 then
        return {'conflict', 'key id or secret already in use'}
    end

    local exp = 0
    local at, ttl, maxttl = tonumber(ARGV[12]), tonumber(ARGV[13]),
                            tonumber(ARGV[14])

    if at > 0 then
        if at < now + 60 then
            return TOO_SOON
        end
        if maxttl > 0 and at > now + maxttl then
            return {'invalid_field', 'expires_at is past apikey_max_ttl'}
        end
        exp = at
    elseif ttl > 0 then
        exp = now + ttl
    end

    local limit = full(tonumber(ARGV[15]), now)

    if limit then
        return limit
    end

    local rec = {'id', id, 'org', org, 'name', ARGV[4], 'description', ARGV[5],
                 'prefix', ARGV[6], 'env', ARGV[7], 'scopes', ARGV[8],
                 'created_at', now, 'created_by', ARGV[16], 'updated_at', now,
                 'secret', ARGV[17]}

    if tonumber(ARGV[9]) > 0 then
        push(rec, 'rate', ARGV[9], 'per', ARGV[10], 'burst', ARGV[11])
    end

    if exp > 0 then
        push(rec, 'expires_at', exp)
    end

    if ARGV[18] ~= '' and ARGV[18] ~= '{}' then
        push(rec, 'meta', ARGV[18])
    end

    if ARGV[19] ~= '' then
        push(rec, 'quota', ARGV[19])
    end

    -- creation order is the score: keep it strict within a millisecond

    local top = redis.call('ZREVRANGE', KEYS[2], 0, 0, 'WITHSCORES')

    if top[2] and tonumber(top[2]) >= ms then
        ms = tonumber(top[2]) + 1
    end

    redis.call('HSET', KEYS[1], unpack(rec))

    local v = record(KEYS[1])

    redis.call('HSET', KEYS[9], 'g', gate(v, 0, v[5]))
    redis.call('ZADD', KEYS[2], ms, id)
    reindex(v, '', now)
    notices(ns, v, now)
    changed(ns, ARGV[17])
    event(now, ARGV[16], 'created', id, ARGV[4])

    return ok(ns, now, v)
end

return once(ns, change)
