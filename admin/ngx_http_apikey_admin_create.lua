-- Creates a key: its record, the organization's indexes, the secret hash
-- the gatekeeper reads and the event, in one step.  The apikey_max_keys
-- check and the insert are in the same script, so parallel creates
-- cannot overshoot.
--
-- KEYS[1] NS key:<id>            KEYS[2] NS org:<org>:keys
-- KEYS[3] NS org:<org>:idx       KEYS[4] NS org:<org>:active
-- KEYS[5] NS org:<org>:events    KEYS[6] NS{<hash>}
-- ARGV    ns, org, id, name, description, display prefix, environment,
--         scopes (JSON array), rate (0: unlimited), per, burst,
--         expires_at (0: none), expires_in (0: none), max_ttl (0: none),
--         max_keys (0: no limit), actor, hash
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

local ns, org, id = ARGV[1], ARGV[2], ARGV[3]
local t = redis.call('TIME')
local now = tonumber(t[1])
local ms = now * 1000 + math.floor(tonumber(t[2]) / 1000)

if redis.call('EXISTS', KEYS[1], KEYS[6]) > 0 then
    return {'conflict', 'key id or secret already in use'}
end

local exp = 0
local at, ttl, maxttl = tonumber(ARGV[12]), tonumber(ARGV[13]),
                        tonumber(ARGV[14])

if at > 0 then
    if at < now + 60 then
        return {'invalid_field',
                'expires_at must be at least 60 seconds ahead'}
    end
    if maxttl > 0 and at > now + maxttl then
        return {'invalid_field', 'expires_at is past apikey_max_ttl'}
    end
    exp = at
elseif ttl > 0 then
    exp = now + ttl
end

local maxkeys = tonumber(ARGV[15])

if maxkeys > 0 then
    sync(ns, KEYS[2], KEYS[3], KEYS[4], now)
    redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', now)
    if redis.call('ZCARD', KEYS[4]) >= maxkeys then
        return {'key_limit_reached',
                'the organization has apikey_max_keys active keys'}
    end
end

local rec = {'id', id, 'org', org, 'name', ARGV[4], 'description', ARGV[5],
             'prefix', ARGV[6], 'env', ARGV[7], 'scopes', ARGV[8],
             'created_at', now, 'created_by', ARGV[16], 'updated_at', now,
             'secret', ARGV[17]}

if tonumber(ARGV[9]) > 0 then
    for _, x in ipairs({'rate', ARGV[9], 'per', ARGV[10],
                        'burst', ARGV[11]}) do
        rec[#rec + 1] = x
    end
end

if exp > 0 then
    rec[#rec + 1] = 'expires_at'
    rec[#rec + 1] = exp
end

-- creation order is the score: keep it strict within a millisecond

local top = redis.call('ZREVRANGE', KEYS[2], 0, 0, 'WITHSCORES')

if top[2] and tonumber(top[2]) >= ms then
    ms = tonumber(top[2]) + 1
end

redis.call('HSET', KEYS[1], unpack(rec))

local v = redis.call('HMGET', KEYS[1], unpack(F))

redis.call('HSET', KEYS[6], 'g', gate(v, 0, v[5]))
redis.call('ZADD', KEYS[2], ms, id)
redis.call('ZADD', KEYS[3], ms, summary(v))
redis.call('ZADD', KEYS[4], exp > 0 and exp or 'inf', id)
event(now, ARGV[16], 'created', id)

return {'ok', '', now, reply(ns, v)}
