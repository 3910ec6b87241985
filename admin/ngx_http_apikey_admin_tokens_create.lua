-- Creates a management token: its record, the hash the admin API looks it
-- up by, and its place in the list of tokens, in one step.  nginx has
-- checked that the caller may make it (no escalation).
--
-- KEYS[1] NS tok:<id>            KEYS[2] NS toksec:<hash>
-- KEYS[3] NS tokens
-- ARGV    ns, id, name, orgs (JSON array), permissions (JSON array),
--         display prefix, expires_at (0: none), expires_in (0: none),
--         longest life in seconds, actor
--         and last, as in every change script (once() in the library):
--         the fingerprint and the sealed new token ("" without an
--         Idempotency-Key); KEYS last: NS idem:<id> with one
--
-- Returns {"ok", "", now, token, 0, {}, ""} or {code, detail}.
--
-- The script Redis runs is this file after the shared helpers:
--   cat admin/ngx_http_apikey_admin_lib.lua.in \
--       admin/ngx_http_apikey_admin_tokens_create.lua

local ns, id = ARGV[1], ARGV[2]

local function change()
    local now, ms = clockms()

    if redis.call('EXISTS', KEYS[1], KEYS[2]) > 0 then
        return {'conflict', 'token id or secret already in use'}
    end

    local at, ttl, maxttl = tonumber(ARGV[7]), tonumber(ARGV[8]),
                            tonumber(ARGV[9])
    local exp = now + ttl

    if at > 0 then
        if at < now + 60 then
            return TOO_SOON
        end
        if at > now + maxttl then
            return {'invalid_field',
                    'expires_at is more than 2 years ahead'}
        end
        exp = at
    end

    local top = redis.call('ZREVRANGE', KEYS[3], 0, 0, 'WITHSCORES')

    if top[2] and tonumber(top[2]) >= ms then
        ms = tonumber(top[2]) + 1
    end

    redis.call('HSET', KEYS[1], 'id', id, 'name', ARGV[3], 'orgs', ARGV[4],
               'permissions', ARGV[5], 'prefix', ARGV[6], 'created_at', now,
               'created_by', ARGV[10], 'expires_at', exp, 'secret',
               string.match(KEYS[2], '(%x+)$'))
    redis.call('SET', KEYS[2], id)
    redis.call('ZADD', KEYS[3], ms, id)

    return {'ok', '', now, tokenrecord(KEYS[1]), 0, {}, ''}
end

return once(ns, change)
