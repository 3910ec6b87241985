-- Deletes a key for good: its record, index entries and every secret.
--
-- KEYS[1] NS key:<id>            KEYS[2] NS org:<org>:keys
-- KEYS[3] NS org:<org>:idx       KEYS[4] NS org:<org>:active
-- KEYS[5] NS org:<org>:events
-- ARGV    ns, org, actor
--
-- Returns {"ok", ""} or {"key_not_found", detail}.

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

local function event(now, actor, action, id)
    redis.call('LPUSH', KEYS[5], cjson.encode({at = now, actor = actor,
                                               action = action, key_id = id}))
    redis.call('LTRIM', KEYS[5], 0, 9999)
end

local ns = ARGV[1]
local v = redis.call('HMGET', KEYS[1], unpack(F))

if not v[1] or v[2] ~= ARGV[2] then
    return {'key_not_found', 'no such key in this organization'}
end

local now = tonumber(redis.call('TIME')[1])

for i = 16, 17 do
    if v[i] then
        redis.call('DEL', ns .. '{' .. v[i] .. '}')
    end
end

redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], v[1])
redis.call('ZREM', KEYS[3], summary(v))
redis.call('ZREM', KEYS[4], v[1])
event(now, ARGV[3], 'deleted', v[1])

return {'ok', ''}
