-- Rebuilds an organization's admin indexes (docs/data-model.md, "Admin
-- indexes") from its key records when they are out of step with its
-- creation index: keys written behind the admin API (an import, the test
-- helper).  nginx runs it when a script answers "reindex" (a filtered
-- list, a change counted against apikey_max_keys), a slice per call so
-- that no call holds Redis for long, until it answers "done".
--
-- The new indexes are built aside and renamed in place at the end, so
-- that nothing reads them half-built.  The rebuild's cursor is kept in
-- Redis: calls from any number of requests and instances go on with the
-- same rebuild, one slice each, and none starts it over.  The changes
-- made meanwhile go into the new indexes too (indexes() in the library).
-- Old indexes are dropped with UNLINK: Redis frees them in the
-- background.
--
-- KEYS[1] NS org:<org>:keys      KEYS[2] NS org:<org>:idx
-- KEYS[3] NS org:<org>:active    KEYS[4] NS org:<org>:rebuild
-- KEYS[5] NS org:<org>:idx:new   KEYS[6] NS org:<org>:active:new
-- and the name indexes of KEYS[2] and KEYS[5] (names() in the library)
-- ARGV    ns, records per call
--
-- Returns {"done"} or {"more"}.
--
-- The script Redis runs is this file after the shared helpers:
--   cat admin/ngx_http_apikey_admin_lib.lua.in \
--       admin/ngx_http_apikey_admin_reindex.lua

local ns, budget = ARGV[1], tonumber(ARGV[2])
local now = clock()
local from = tonumber(redis.call('HGET', KEYS[4], 'cursor'))

if not from then
    local n = redis.call('ZCARD', KEYS[1])

    if redis.call('ZCARD', KEYS[2]) == n
       and redis.call('ZCARD', names(KEYS[2])) == n
    then
        return {'done'}
    end

    redis.call('UNLINK', KEYS[5], KEYS[6], names(KEYS[5]))
    from = 0
end

local ids = redis.call('ZRANGE', KEYS[1], from, from + budget - 1,
                       'WITHSCORES')
local gone = 0

for i = 1, #ids, 2 do
    local v = record(ns .. 'key:' .. ids[i])

    if v[1] then
        local s = summary(v)
        redis.call('ZADD', KEYS[5], ids[i + 1], s)
        redis.call('ZADD', names(KEYS[5]), 0, nameentry(s))

        addnotices(ns, v, now)

        if active(v, now) then
            local exp = tonumber(v[14]) or 0
            redis.call('ZADD', KEYS[6], exp > 0 and exp or 'inf', ids[i])
        end

    else
        -- a record gone: out of the creation index too, which moves the
        -- ranks after it down by one

        redis.call('ZREM', KEYS[1], ids[i])
        gone = gone + 1
    end
end

if #ids == 2 * budget then
    redis.call('HSET', KEYS[4], 'cursor', from + budget - gone)
    return {'more'}
end

-- done: the new indexes take the place of the old ones

redis.call('UNLINK', KEYS[2], KEYS[3], names(KEYS[2]))

for _, k in ipairs({{KEYS[5], KEYS[2]}, {KEYS[6], KEYS[3]},
                    {names(KEYS[5]), names(KEYS[2])}}) do
    if redis.call('EXISTS', k[1]) == 1 then
        redis.call('RENAME', k[1], k[2])
    end
end

redis.call('UNLINK', KEYS[4])

return {'done'}
