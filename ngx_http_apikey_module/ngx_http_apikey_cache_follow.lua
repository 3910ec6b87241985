#!lua flags=no-writes
-- apikey_cache: the changes since an nginx replica's position in the
-- change log (docs/data-model.md, "The change log").
--
-- KEYS[1]  NS changes
-- ARGV     ns, the id of the last entry applied, most entries to read
--
-- Returns {"gap"} when the log cannot be followed from there: the entry
-- is no longer in it (trimmed away, or a new log after Redis restarted
-- empty or a failover lost it).
-- It writes nothing (flags=no-writes): Redis runs it on a server paused
-- for writes, as during a graceful failover, so the replicas of every
-- instance go on learning of changes then.
--
-- Else {time, position, hash, g, c, ...}: Redis's clock in milliseconds
-- (the replica judges expiry and grace by it), the new position, and the
-- current gate record of every secret the entries name ("" for a secret
-- that is gone), as the load gives them; for an entry that says tokens
-- went back to a secret's bucket ("b", ngx_http_apikey_gate.lua), its
-- hash, "" and "b"; for one that says an organization's limits changed
-- ("o", PATCH orgs/{org}), the organization, "1" if it has limits now
-- (else "0") and "o".

local ns, last = ARGV[1], ARGV[2]

if #redis.call('XRANGE', KEYS[1], last, last) == 0 then
    return {'gap'}
end

local now = redis.call('TIME')
local out = {now[1] .. string.format('%03d', math.floor(now[2] / 1000)),
             last}
local seen = {}

for _, e in ipairs(redis.call('XRANGE', KEYS[1], '(' .. last, '+',
                              'COUNT', ARGV[3])) do
    out[2] = e[1]

    for i = 1, #e[2], 2 do
        local h = e[2][i + 1]

        if e[2][i] == 'b' then
            out[#out + 1] = h
            out[#out + 1] = ''
            out[#out + 1] = 'b'

        elseif e[2][i] == 'o' then
            local v = redis.call('HMGET', ns .. 'org:' .. h .. ':limits',
                                 'rate', 'quota')
            out[#out + 1] = h
            out[#out + 1] = ((tonumber(v[1]) or 0) > 0 or v[2]) and '1'
                            or '0'
            out[#out + 1] = 'o'

        elseif e[2][i] == 'h' and not seen[h] then
            seen[h] = true
            record(out, ns, h, true)
        end
    end
end

return out
