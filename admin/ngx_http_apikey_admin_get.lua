-- Reads one key of an organization.
--
-- KEYS[1] NS key:<id>
-- ARGV    ns, org
--
-- Returns {"ok", "", now, key} or {"key_not_found", detail}.

local F = {'id', 'org', 'name', 'description', 'prefix', 'env', 'scopes',
           'rate', 'per', 'burst', 'created_at', 'created_by', 'updated_at',
           'expires_at', 'revoked_at', 'secret', 'prev_secret', 'used',
           'prev_expires_at'}

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

local v = redis.call('HMGET', KEYS[1], unpack(F))

if not v[1] or v[2] ~= ARGV[2] then
    return {'key_not_found', 'no such key in this organization'}
end

return {'ok', '', tonumber(redis.call('TIME')[1]), reply(ARGV[1], v)}
