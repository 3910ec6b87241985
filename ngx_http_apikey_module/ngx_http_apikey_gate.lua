-- The gatekeeper's Redis call (docs/data-model.md): the checks a worker
-- started in one pass of its event loop, each a request's only round trip,
-- go to Redis together as one call of this script.
--
-- KEYS[i]       NS{<sha256 of the key>}: the secret hash of check i
-- ARGV[2i - 1]  environment the location of check i requires, "" for any
-- ARGV[2i]      scopes it requires, space-separated, "" for none
--
-- Returns one reply per check, in order: {1} for an unknown key,
-- {code, g} when no bucket was consulted, else {code, g, ahead}: g is the
-- secret's gate field, for nginx to read the key's identity and limit
-- from, and ahead how far (microseconds) the bucket's theoretical arrival
-- time is past now, from which nginx works out the rate headers.
-- Codes, in the order the checks run: 0 ok, 1 invalid, 2 revoked,
-- 3 expired, 4 environment mismatch, 5 insufficient scope, 6 limited.
--
-- Each check of a known key (every code but 1) is counted in the key's
-- usage for the current UTC hour (docs/data-model.md): allowed (0),
-- limited (6) or refused (2 to 5).  The counts of a call are added up
-- as it goes and written at its end, one HINCRBY per key and kind, so
-- that a key hammered within one call costs one.  A count Redis refuses
-- to write is lost, never the check's answer.
--
-- Only an allowed request takes a token.  Checks run one after the other,
-- so two of one key in a call take from the bucket as two calls would.
-- A write Redis refuses (OOM, READONLY, NOREPLICAS, MISCONF) is that
-- check's own error reply: it must not end the call and answer for the
-- checks that write nothing, such as a revoked key's.
-- Every redis.call costs more than the Lua around it: a check makes two
-- (read the secret, write the bucket) and the call one TIME for all and
-- one HINCRBY per key and kind counted (and an EXPIREAT when that makes
-- a new field); a previous secret in rotation grace makes two more, for
-- the key's bucket.
-- Numbers never become strings through Lua's own float formatting (costly
-- in Redis 7.0): the times written are TIME's own string and an integer
-- formatted with %d.

local t = redis.call('TIME')
local now = tonumber(t[1])
local us = now * 1000000 + t[2]

-- usage keys NS usage:{<id>}:<day>, fields <hour><kind>: the namespace is
-- that of the secrets, NS{<64 hex>}; a day's hash expires 90 days after
-- the day began

local day = math.floor(now / 86400)
local hour = string.format('%02d', math.floor((now - day * 86400) / 3600))
local uns = string.sub(KEYS[1] or '', 1, -67) .. 'usage:{'
local uday = '}:' .. string.format('%d', day)
local uend = string.format('%d', (day + 90) * 86400)
local letters = {'a', 'l', 'r'}
local kinds = {[0] = 1, 3, 3, 3, 3, 3, 2}
local counts = {}
local ukeys = {}

-- writes fields of a secret and answers with reply (nil: nothing to
-- answer yet), or with the error of a write Redis refused

local function write(key, reply, ...)
    local e = redis.pcall('HSET', key, ...)

    if type(e) == 'table' then
        return e
    end

    return reply
end

local function check(key, want_env, want_scopes)
    local f = redis.call('HMGET', key, 'g', 'b', 'c')

    if not f[1] then
        return {1}
    end

    local rev, exp, grace, rate, per, burst, env, scopes =
        string.match(f[1], '^(%d) (%d+) (%d+) (%d+) (%d+) (%d+) (%S+) ?([^\n]*)')

    if not rev or (grace ~= '0' and now >= tonumber(grace)) then
        return {1}
    end

    if rev == '1' then
        return {2, f[1]}
    end

    if exp ~= '0' and now >= tonumber(exp) then
        return {3, f[1]}
    end

    if want_env ~= '' and want_env ~= env then
        return {4, f[1]}
    end

    if want_scopes ~= '' then
        scopes = ' ' .. scopes .. ' '
        for s in string.gmatch(want_scopes, '%S+') do
            if not string.find(scopes, ' ' .. s .. ' ', 1, true) then
                return {5, f[1]}
            end
        end
    end

    if rate == '0' then
        return write(key, {0, f[1]}, 'u', t[1])
    end

    -- GCRA, the token bucket kept as one number: b is the theoretical
    -- arrival time in microseconds; the bucket holds
    -- burst - (b - now) / step tokens, one more every step microseconds

    -- a key is one bucket: a previous secret in rotation grace draws from
    -- the one kept with the current secret, c

    if f[3] then
        f[2] = redis.call('HGET', f[3], 'b')
    end

    local step = per * 1000000 / rate
    local tat = tonumber(f[2]) or us

    if tat < us then
        tat = us
    end

    if tat - us > (burst - 1) * step + 1 then
        return {6, f[1], tat - us}
    end

    tat = math.ceil(tat + step)

    local b = string.format('%d', tat)

    if f[3] then
        local e = write(f[3], nil, 'b', b)
        if e then
            return e
        end

        return write(key, {0, f[1], tat - us}, 'u', t[1])
    end

    return write(key, {0, f[1], tat - us}, 'b', b, 'u', t[1])
end

-- counts a check of the key whose gate field is g, answered with code

local function count(g, code)
    local id = string.match(g, '\n([^\n]+)')

    if not id then
        return
    end

    local k = uns .. id .. uday
    local c = counts[k]

    if not c then
        c = {0, 0, 0}
        counts[k] = c
        ukeys[#ukeys + 1] = k
    end

    c[kinds[code]] = c[kinds[code]] + 1
end

local out = {}

for i = 1, #KEYS do
    local r = check(KEYS[i], ARGV[2 * i - 1], ARGV[2 * i])

    out[i] = r

    if r[2] then
        count(r[2], r[1])
    end
end

-- a field just made (its count is this call's) may be the day's first:
-- the hash gets its expiry then

for _, k in ipairs(ukeys) do
    for i = 1, 3 do
        local n = counts[k][i]

        if n > 0 and redis.pcall('HINCRBY', k, hour .. letters[i],
                                 string.format('%d', n)) == n
        then
            redis.pcall('EXPIREAT', k, uend)
        end
    end
end

return out
