-- The gatekeeper's one Redis call per request (docs/data-model.md).
--
-- KEYS[1]  NS{<sha256 of the key>}: the secret hash
-- ARGV[1]  environment the location requires, "" for any
-- ARGV[2]  scopes the location requires, space-separated, "" for none
--
-- Returns {1} for an unknown key, {code, g} when no bucket was consulted,
-- else {code, g, ahead}: g is the secret's gate field, for nginx to read
-- the key's identity and limit from, and ahead how far (microseconds) the
-- bucket's theoretical arrival time is past now, from which nginx works
-- out the rate headers.
-- Codes, in the order the checks run: 0 ok, 1 invalid, 2 revoked,
-- 3 expired, 4 environment mismatch, 5 insufficient scope, 6 limited.
-- Only an allowed request takes a token.  Every redis.call costs more than
-- the Lua around it: the script makes three.  Numbers never become strings
-- through Lua's own float formatting (costly in Redis 7.0): the times
-- written are TIME's own string and an integer formatted with %d.

local f = redis.call('HMGET', KEYS[1], 'g', 'b')

if not f[1] then
    return {1}
end

local t = redis.call('TIME')
local now = tonumber(t[1])

local rev, exp, grace, rate, per, burst, env, scopes =
    string.match(f[1], '^(%d) (%d+) (%d+) (%d+) (%d+) (%d+) (%S+) ?([^\n]*)')

if not rev or (grace ~= '0' and now >= tonumber(grace)) then
    return {1}
end

local code = 0

if rev == '1' then
    code = 2
elseif exp ~= '0' and now >= tonumber(exp) then
    code = 3
elseif ARGV[1] ~= '' and ARGV[1] ~= env then
    code = 4
elseif ARGV[2] ~= '' then
    scopes = ' ' .. scopes .. ' '
    for s in string.gmatch(ARGV[2], '%S+') do
        if not string.find(scopes, ' ' .. s .. ' ', 1, true) then
            code = 5
            break
        end
    end
end

if code ~= 0 then
    return {code, f[1]}
end

if rate == '0' then
    redis.call('HSET', KEYS[1], 'u', t[1])
    return {0, f[1]}
end

-- GCRA, the token bucket kept as one number: b is the theoretical arrival
-- time in microseconds; the bucket holds burst - (b - now) / step tokens,
-- one more every step microseconds

local us = now * 1000000 + t[2]
local step = per * 1000000 / rate
local tat = tonumber(f[2]) or us

if tat < us then
    tat = us
end

if tat - us > (burst - 1) * step + 1 then
    return {6, f[1], tat - us}
end

tat = math.ceil(tat + step)

redis.call('HSET', KEYS[1], 'b', string.format('%d', tat), 'u', t[1])

return {0, f[1], tat - us}
