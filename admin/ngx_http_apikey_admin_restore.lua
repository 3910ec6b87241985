-- Restores a revoked key, if the organization has a free slot for it
-- (apikey_max_keys); its secrets work again from the next request on.
--
-- KEYS[1] NS key:<id>            KEYS[2] NS org:<org>:keys
-- KEYS[3] NS org:<org>:idx       KEYS[4] NS org:<org>:active
-- KEYS[5] NS org:<org>:events
-- ARGV    ns, org, actor, max_keys
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

-- keys written without the admin API (tests, older versions) are not in
-- the admin indexes yet: rebuild them from the records

local function sync(ns, kk, ik, ak, now)
    if redis.call('ZCARD', kk) == redis.call('ZCARD', ik) then
        return
    end
    redis.call('DEL', ik, ak)
    local ids = redis.call('ZRANGE', kk, 0, -1, 'WITHSCORES')
    for i = 1, #ids, 2 do
        local v = redis.call('HMGET', ns .. 'key:' .. ids[i], unpack(F))
        if v[1] then
            redis.call('ZADD', ik, ids[i + 1], summary(v))
            if active(v, now) then
                local exp = tonumber(v[14]) or 0
                redis.call('ZADD', ak, exp > 0 and exp or 'inf', ids[i])
            end
        else
            redis.call('ZREM', kk, ids[i])
        end
    end
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

if not (v[15] and v[15] ~= '0') then
    return {'not_revoked', 'the key is not revoked'}
end

local now = tonumber(redis.call('TIME')[1])
local old = summary(v)
local maxkeys = tonumber(ARGV[4])

v[15] = false

if maxkeys > 0 and active(v, now) then
    sync(ns, KEYS[2], KEYS[3], KEYS[4], now)
    redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', now)
    if redis.call('ZCARD', KEYS[4]) >= maxkeys then
        return {'key_limit_reached',
                'the organization has apikey_max_keys active keys'}
    end
end

redis.call('HDEL', KEYS[1], 'revoked_at')
redis.call('HSET', KEYS[1], 'updated_at', now)

v = redis.call('HMGET', KEYS[1], unpack(F))
regate(ns, v)
reindex(v, old, now)
event(now, ARGV[3], 'restored', v[1])

return {'ok', '', now, reply(ns, v)}
