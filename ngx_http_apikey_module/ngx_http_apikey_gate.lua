-- The gatekeeper's one Redis call per request (docs/data-model.md).
--
-- KEYS[1]  NS{<sha256 of the key>}: the secret hash
-- ARGV[1]  environment the location requires, "" for any
-- ARGV[2]  scopes the location requires, space-separated, "" for none
--
-- Returns {1} for an unknown key, else {code, g, burst, remaining, reset,
-- retry_after, window}: g is the secret's gate field for nginx to read the
-- key's identity from; burst is -1 when no bucket was consulted.
-- Codes, in the order the checks run: 0 ok, 1 invalid, 2 revoked,
-- 3 expired, 4 environment mismatch, 5 insufficient scope, 6 limited.
-- Only an allowed request takes a token.  Every redis.call costs more than
-- the Lua around it: the script makes three.

local f = redis.call('HMGET', KEYS[1], 'g', 'b')

if not f[1] then
    return {1}
end

local t = redis.call('TIME')
local now = tonumber(t[1])
local ms = now * 1000 + math.floor(tonumber(t[2]) / 1000)

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
    return {code, f[1], -1, 0, 0, 0, 0}
end

if rate == '0' then
    redis.call('HSET', KEYS[1], 'b', '- ' .. ms)
    return {0, f[1], -1, 0, 0, 0, 0}
end

-- token bucket: burst tokens, one more every `per` ms

per = tonumber(per) * 1000 / tonumber(rate)
burst = tonumber(burst)

local tk = burst

-- b is "<tokens> <ms of the last allowed request>"; tokens "-": no bucket
-- state yet (an unlimited key, or one whose limit was just set)

if f[2] then
    local sp = string.find(f[2], ' ', 1, true)
    local last = tonumber(string.sub(f[2], sp + 1))
    local left = tonumber(string.sub(f[2], 1, sp - 1))

    if left then
        tk = left
        if ms > last then
            tk = tk + (ms - last) / per
            if tk > burst then
                tk = burst
            end
        end
    end
end

local window = math.ceil(burst * per / 1000)

if tk < 1 then
    return {6, f[1], burst, 0, math.ceil((burst - tk) * per / 1000),
            math.max(1, math.ceil((1 - tk) * per / 1000)), window}
end

tk = tk - 1

redis.call('HSET', KEYS[1], 'b', tk .. ' ' .. ms)

return {0, f[1], burst, math.floor(tk), math.ceil((burst - tk) * per / 1000),
        0, window}
