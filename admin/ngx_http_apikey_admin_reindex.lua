-- Rebuilds an organization's admin indexes (docs/data-model.md, "Admin
-- indexes") from its key records, a slice at a time, when they are out
-- of step with its creation index: keys written behind the admin API (an
-- import, the test helper).  nginx runs it before a filtered list and
-- before a change that counts keys against apikey_max_keys, and calls
-- again from the cursor it returns, so that no call holds Redis for long.
--
-- KEYS[1] NS org:<org>:keys      KEYS[2] NS org:<org>:idx
-- KEYS[3] NS org:<org>:active
-- ARGV    ns, cursor ("": check whether a rebuild is needed), records per
--         call
--
-- Returns {"done"} or {"more", cursor}.
--
-- The script Redis runs is this file after the shared helpers:
--   cat admin/ngx_http_apikey_admin_lib.lua.in \
--       admin/ngx_http_apikey_admin_reindex.lua

local ns, cursor, budget = ARGV[1], ARGV[2], tonumber(ARGV[3])
local now = clock()

if cursor == '' then
    if redis.call('ZCARD', KEYS[1]) == redis.call('ZCARD', KEYS[2]) then
        return {'done'}
    end

    redis.call('DEL', KEYS[2], KEYS[3])
    cursor = '0'
end

local from = tonumber(cursor) or 0
local ids = redis.call('ZRANGE', KEYS[1], from, from + budget - 1,
                       'WITHSCORES')
local gone = 0

for i = 1, #ids, 2 do
    local v = record(ns .. 'key:' .. ids[i])

    if v[1] then
        redis.call('ZADD', KEYS[2], ids[i + 1], summary(v))

        if active(v, now) then
            local exp = tonumber(v[14]) or 0
            redis.call('ZADD', KEYS[3], exp > 0 and exp or 'inf', ids[i])
        end

    else
        -- a record gone: out of the creation index too, which moves the
        -- ranks after it down by one

        redis.call('ZREM', KEYS[1], ids[i])
        gone = gone + 1
    end
end

if #ids < 2 * budget then
    return {'done'}
end

return {'more', string.format('%d', from + budget - gone)}
