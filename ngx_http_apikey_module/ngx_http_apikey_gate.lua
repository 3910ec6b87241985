-- The gatekeeper's one Redis call per request.
--
-- KEYS[1]  NS{<sha256 of the key>}: the secret hash (docs/data-model.md)
-- ARGV[1]  environment the location requires, "" for any
-- ARGV[2]  scopes the location requires, each followed by a space, after a
--          leading space (" a b "), "" for none
--
-- Returns {1} for an unknown key, else {code, id, org, name, env, prefix,
-- burst, remaining, reset, retry_after, window}; burst is -1 for an
-- unlimited key.  Codes: 0 ok, 1 invalid, 2 revoked, 3 expired,
-- 4 environment mismatch, 5 insufficient scope, 6 rate limited.
-- Checks run in that order; only an allowed request takes a token.

local f = redis.call('HMGET', KEYS[1], 'id', 'org', 'name', 'env', 'prefix',
                     'scopes', 'rev', 'exp', 'grace', 'rate', 'per', 'burst',
                     'tk', 'ts')

if not f[1] then
    return {1}
end

local t = redis.call('TIME')
local now = tonumber(t[1])
local ms = now * 1000 + math.floor(tonumber(t[2]) / 1000)

if f[9] and now >= tonumber(f[9]) then
    return {1}
end

local code = 0
local exp = tonumber(f[8] or 0)

if f[7] == '1' then
    code = 2
elseif exp > 0 and now >= exp then
    code = 3
elseif ARGV[1] ~= '' and ARGV[1] ~= f[4] then
    code = 4
elseif ARGV[2] ~= '' then
    local have = f[6] or ''
    for s in string.gmatch(ARGV[2], '%S+') do
        if not string.find(have, ' ' .. s .. ' ', 1, true) then
            code = 5
            break
        end
    end
end

local rate = tonumber(f[10] or 0)

if code ~= 0 or rate <= 0 then
    if code == 0 then
        redis.call('HSET', KEYS[1], 'used', now)
    end
    return {code, f[1], f[2], f[3], f[4], f[5], -1, 0, 0, 0, 0}
end

-- token bucket: burst tokens, refilled at rate per (per * 1000) ms

local per = tonumber(f[11]) * 1000 / rate
local burst = tonumber(f[12])
local tk = burst

if f[13] then
    tk = tonumber(f[13]) + (ms - tonumber(f[14])) / per
    if tk > burst then
        tk = burst
    end
end

local retry = 0

if tk < 1 then
    code = 6
    retry = math.max(1, math.ceil((1 - tk) * per / 1000))
else
    tk = tk - 1
    redis.call('HSET', KEYS[1], 'tk', tk, 'ts', ms, 'used', now)
end

return {code, f[1], f[2], f[3], f[4], f[5], burst, math.floor(tk),
        math.ceil((burst - tk) * per / 1000), retry,
        math.ceil(burst * per / 1000)}
