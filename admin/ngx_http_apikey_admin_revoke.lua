-- Revokes a key: the gatekeeper refuses its secrets (current and in
-- grace) from the next request on.  Restore undoes it.
--
-- KEYS[1] NS key:<id>            KEYS[2] NS org:<org>:keys
-- KEYS[3] NS org:<org>:idx       KEYS[4] NS org:<org>:active
-- KEYS[5] NS org:<org>:events
-- ARGV    ns, org, actor
--
-- Returns {"ok", "", now, key} or {code, detail}.

local F = {'id', 'org', 'name', 'description', 'prefix', 'env', 'scopes',
           'rate', 'per', 'burst', 'created_at', 'created_by', 'updated_at',
           'expires_at', 'revoked_at', 'secret', 'prev_secret', 'used',
           'prev_expires_at'}

-- the organization index entry: "id \t rev \t exp \t env \t prefix \t name"
-- with the name in lowercase, for searches

local function summary(v)
    local rev = '0'
    if v[15] and v[15] ~= '0' then
        rev = '1'
    end
    return v[1] .. '\t' .. rev .. '\t' .. (tonumber(v[14]) or 0) .. '\t'
           .. (v[6] or '') .. '\t' .. (v[5] or '') .. '\t'
           .. string.lower(v[3] or '')
end

local function active(v, now)
    local exp = tonumber(v[14]) or 0
    return not (v[15] and v[15] ~= '0') and (exp == 0 or exp > now)
end

local function reindex(v, old, now)
    local score = redis.call('ZSCORE', KEYS[2], v[1])
    redis.call('ZREM', KEYS[3], old)
    if score then
        redis.call('ZADD', KEYS[3], score, summary(v))
    end
    if active(v, now) then
        local exp = tonumber(v[14]) or 0
        redis.call('ZADD', KEYS[4], exp > 0 and exp or 'inf', v[1])
    else
        redis.call('ZREM', KEYS[4], v[1])
    end
end

-- the secret's packed "g" field the gatekeeper reads (docs/data-model.md)

local function gate(v, grace, prefix)
    local rate = tonumber(v[8]) or 0
    local g = {(v[15] and v[15] ~= '0') and 1 or 0, tonumber(v[14]) or 0,
               grace, rate, rate > 0 and v[9] or 1, rate > 0 and v[10] or 0,
               v[6]}
    for _, s in ipairs(cjson.decode(v[7] or '[]')) do
        g[#g + 1] = s
    end
    return table.concat(g, ' ') .. '\n' .. v[1] .. '\n' .. v[2] .. '\n'
           .. prefix .. '\n' .. v[3]
end

-- rewrites "g" of the current secret and of the one in grace, if any;
-- with "refill", a new rate limit: the bucket "b" starts full

local function regate(ns, v, refill)
    local k = ns .. '{' .. v[16] .. '}'
    if redis.call('EXISTS', k) == 1 then
        redis.call('HSET', k, 'g', gate(v, 0, v[5]))
        if refill then
            redis.call('HDEL', k, 'b')
        end
    end
    if v[17] then
        k = ns .. '{' .. v[17] .. '}'
        local g = redis.call('HGET', k, 'g')
        if g then
            local prefix = string.match(g, '^[^\n]*\n[^\n]*\n[^\n]*\n([^\n]*)')
            redis.call('HSET', k, 'g',
                       gate(v, tonumber(v[19]) or 0, prefix or ''))
            if refill then
                redis.call('HDEL', k, 'b')
            end
        end
    end
end

local function event(now, actor, action, id)
    redis.call('LPUSH', KEYS[5], cjson.encode({at = now, actor = actor,
                                               action = action, key_id = id}))
    redis.call('LTRIM', KEYS[5], 0, 9999)
end

-- last use: the record's (kept over rotations), or the latest "u" of its
-- secrets

local function lastused(ns, v)
    local used = tonumber(v[18]) or 0
    for i = 16, 17 do
        if v[i] then
            local u = tonumber(redis.call('HGET', ns .. '{' .. v[i] .. '}',
                                          'u'))
            if u and u > used then
                used = u
            end
        end
    end
    return used
end

-- the key as nginx reads it: 15 record fields and last use, no secrets

local function reply(ns, v)
    local out = {}
    for i = 1, 15 do
        out[i] = v[i]
    end
    out[16] = tostring(lastused(ns, v))
    return out
end

local ns = ARGV[1]
local v = redis.call('HMGET', KEYS[1], unpack(F))

if not v[1] or v[2] ~= ARGV[2] then
    return {'key_not_found', 'no such key in this organization'}
end

if v[15] and v[15] ~= '0' then
    return {'already_revoked', 'the key is already revoked'}
end

local now = tonumber(redis.call('TIME')[1])
local old = summary(v)

redis.call('HSET', KEYS[1], 'revoked_at', now, 'updated_at', now)

v = redis.call('HMGET', KEYS[1], unpack(F))
regate(ns, v)
reindex(v, old, now)
event(now, ARGV[3], 'revoked', v[1])

return {'ok', '', now, reply(ns, v)}
