-- One page of an organization's keys, newest first, and how many match;
-- or, by name_prefix, in the order of their names from the name index.
-- Without filters the page comes straight from the creation index.  With
-- filters the script walks the compact summaries of NS org:<org>:idx next
-- to the data, fetching only the page's records, at most "budget" of
-- them per call so that Redis is never held up for long: it returns a
-- cursor, and nginx calls again from there until the walk is done.
--
-- KEYS[1] NS org:<org>:keys      KEYS[2] NS org:<org>:idx
-- KEYS[3] NS org:<org>:active    KEYS[4] NS org:<org>:rebuild
-- ARGV    ns, offset, count, search, status, environment ("": any),
--         and for filters: cursor score and member ("": from the top),
--         matches before the cursor, budget; name_prefix ("": none,
--         else alone: the other filters are "")
--
-- Returns {"ok", "", now, total, {key, ...}} or, while walking,
-- {"ok", "", now, matches so far, {key, ...}, cursor score, cursor member}
-- with an empty cursor at the end; {"reindex", detail} when a walk would
-- start on indexes being rebuilt or out of step.
--
-- The script Redis runs is this file after the shared helpers:
--   cat admin/ngx_http_apikey_admin_lib.lua.in \
--       admin/ngx_http_apikey_admin_list.lua

local ns = ARGV[1]
local off, count = tonumber(ARGV[2]), tonumber(ARGV[3])
local search, status, env = ARGV[4], ARGV[5], ARGV[6]
local now = clock()

local function fetch(ids)
    local data = {}
    for i = 1, #ids do
        local v = record(ns .. 'key:' .. ids[i])
        if v[1] then
            data[#data + 1] = reply(ns, v)
        end
    end
    return data
end

-- the keys whose lowercase name starts with the lowercase name_prefix:
-- a range of the name index, its page found by rank, not walked

local prefix = string.lower(ARGV[11])

if prefix ~= '' then
    if not indexed(KEYS[1], KEYS[2], KEYS[4]) then
        return REINDEX
    end

    local idx = names(KEYS[2])
    local lo, hi = '[' .. prefix, '(' .. prefix .. '\255'
    local total = redis.call('ZLEXCOUNT', idx, lo, hi)
    local ids = {}

    if total > off then
        local first = redis.call('ZRANGEBYLEX', idx, lo, hi, 'LIMIT', 0, 1)
        local r = redis.call('ZRANK', idx, first[1]) + off

        for _, m in ipairs(redis.call('ZRANGE', idx, r,
                                      r + math.min(count, total - off) - 1))
        do
            ids[#ids + 1] = string.match(m, '[^\t]*$')
        end
    end

    return {'ok', '', now, total, fetch(ids)}
end

if search == '' and status == '' and env == '' then
    return {'ok', '', now, redis.call('ZCARD', KEYS[1]),
            fetch(redis.call('ZREVRANGE', KEYS[1], off, off + count - 1))}
end

local after, member = ARGV[7], ARGV[8]
local total, budget = tonumber(ARGV[9]), tonumber(ARGV[10])
local skip = 0

if after == '' then

    -- a walk starts on complete indexes only

    if not indexed(KEYS[1], KEYS[2], KEYS[4]) then
        return REINDEX
    end

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
