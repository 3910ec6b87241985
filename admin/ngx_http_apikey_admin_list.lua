-- One page of an organization's keys, newest first, and how many match.
-- Without filters the page comes straight from the creation index.  With
-- filters the script walks the compact summaries of NS org:<org>:idx next
-- to the data, fetching only the page's records, at most "budget" of
-- them per call so that Redis is never held up for long: it returns a
-- cursor, and nginx calls again from there until the walk is done.
--
-- KEYS[1] NS org:<org>:keys      KEYS[2] NS org:<org>:idx
-- KEYS[3] NS org:<org>:active
-- ARGV    ns, offset, count, search, status, environment ("": any),
--         and for filters: cursor score and member ("": from the top),
--         matches before the cursor, budget
--
-- Returns {"ok", "", now, total, {key, ...}} or, while walking,
-- {"ok", "", now, matches so far, {key, ...}, cursor score, cursor member}
-- with an empty cursor at the end.

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
local off, count = tonumber(ARGV[2]), tonumber(ARGV[3])
local search, status, env = ARGV[4], ARGV[5], ARGV[6]
local now = tonumber(redis.call('TIME')[1])

local function fetch(ids)
    local data = {}
    for i = 1, #ids do
        local v = redis.call('HMGET', ns .. 'key:' .. ids[i], unpack(F))
        if v[1] then
            data[#data + 1] = reply(ns, v)
        end
    end
    return data
end

if search == '' and status == '' and env == '' then
    return {'ok', '', now, redis.call('ZCARD', KEYS[1]),
            fetch(redis.call('ZREVRANGE', KEYS[1], off, off + count - 1))}
end

local after, member = ARGV[7], ARGV[8]
local total, budget = tonumber(ARGV[9]), tonumber(ARGV[10])
local skip = 0

if after == '' then
    sync(ns, KEYS[1], KEYS[2], KEYS[3], now)
    after = '+inf'

else
    -- entries of the cursor's score that sort before it were walked

    for _, m in ipairs(redis.call('ZREVRANGEBYSCORE', KEYS[2], after, after)) do
        if m >= member then
            skip = skip + 1
        end
    end
end

local chunk = redis.call('ZREVRANGEBYSCORE', KEYS[2], after, '-inf',
                         'LIMIT', skip, budget)

local find, sub, byte = string.find, string.sub, string.byte
local lower = string.lower(search)
local slen, elen = #search, #env
local want = ({active = 1, revoked = 2, expired = 3})[status]
local last = off + count
local ids = {}

-- a summary is "id \t rev \t exp \t env \t prefix \t lowercase name";
-- each check reads only what it needs, cheapest first

for i = 1, #chunk do
    local m = chunk[i]
    local a = byte(m, 25) == 9 and 25 or find(m, '\t', 1, true)
    local ok = true
    local b

    if want then
        local st = 1
        if byte(m, a + 1) == 49 then
            st = 2
        elseif byte(m, a + 3) ~= 48 then
            b = find(m, '\t', a + 3, true)
            if tonumber(sub(m, a + 3, b - 1)) <= now then
                st = 3
            end
        end
        ok = st == want
    end

    if ok and elen > 0 then
        b = b or find(m, '\t', a + 3, true)
        ok = byte(m, b + elen + 1) == 9 and sub(m, b + 1, b + elen) == env
    end

    -- the name, or the start of the display prefix

    if ok and slen > 0 then
        ok = find(m, lower, a, true) or find(m, search, a, true)

        if ok then
            b = b or find(m, '\t', a + 3, true)
            local c = find(m, '\t', b + 1, true)
            local d = find(m, '\t', c + 1, true)
            ok = find(m, lower, d + 1, true)
                 or sub(m, c + 1, c + slen) == search
        end
    end

    if ok then
        total = total + 1
        if total > off and total <= last then
            ids[#ids + 1] = sub(m, 1, a - 1)
        end
    end
end

if #chunk < budget then
    return {'ok', '', now, total, fetch(ids), '', ''}
end

member = chunk[#chunk]

return {'ok', '', now, total, fetch(ids),
        redis.call('ZSCORE', KEYS[2], member), member}
