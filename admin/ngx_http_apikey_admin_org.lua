-- An organization's settings (docs/admin-api.md, "orgs/{org}"): GET reads
-- them, PATCH changes them.  They live in NS org:<org>:limits (the
-- library's layout names NS org:<org>:keys; the settings are beside it):
-- rate, per and burst (a bucket shared by the organization's keys, on
-- top of each key's own), quota ("<limit> <d|m>"), max_keys (overrides
-- apikey_max_keys), and what the gatekeeper keeps of them, b and q (as a
-- key's, docs/data-model.md).
--
-- KEYS    as the library's layout; KEYS[1] is not used
-- ARGV    ns, org, actor, fields given ("" to read; "r" rate limit, "q"
--         quota, "k" max_keys), rate (0: none), per, burst, quota
--         ("<limit> <d|m>", "": none), max_keys ("": fall back)
--
-- Returns {"ok", "", now, {rate, per, burst, quota, q, max_keys, active
-- keys}} (false for what is not set), or REINDEX when the active keys
-- cannot be counted.  A change is written to the organization's event
-- log as "org_updated" and to the change log ("o <org>"), and keeps the
-- set NS orgs:limited of the organizations with limits; a new rate limit
-- starts with a full bucket, a new quota keeps the period's count.
--
-- The script Redis runs is this file after the shared helpers:
--   cat admin/ngx_http_apikey_admin_lib.lua.in \
--       admin/ngx_http_apikey_admin_org.lua

local given = ARGV[4]
local lk = (string.gsub(KEYS[2], ':keys$', ':limits'))
local now = clock()

if not indexed(KEYS[2], KEYS[3], KEYS[6]) then
    return REINDEX
end

if given ~= '' then
    local set, del = {}, {}

    local function has(c)
        return string.find(given, c, 1, true) ~= nil
    end

    if has('r') then
        if tonumber(ARGV[5]) > 0 then
            push(set, 'rate', ARGV[5], 'per', ARGV[6], 'burst', ARGV[7])
        else
            push(del, 'rate', 'per', 'burst')
        end
        push(del, 'b')
    end

    if has('q') then
        if ARGV[8] ~= '' then
            push(set, 'quota', ARGV[8])
        else
            push(del, 'quota', 'q')
        end
    end

    if has('k') then
        if ARGV[9] ~= '' then
            push(set, 'max_keys', ARGV[9])
        else
            push(del, 'max_keys')
        end
    end

    if #del > 0 then
        redis.call('HDEL', lk, unpack(del))
    end

    if #set > 0 then
        redis.call('HSET', lk, unpack(set))
    end

    event(now, ARGV[3], 'org_updated', nil)

    -- the replicas of apikey_cache learn it from the change log, and a
    -- load from the list of organizations with limits

    local v = redis.call('HMGET', lk, 'rate', 'quota')

    if (tonumber(v[1]) or 0) > 0 or v[2] then
        redis.call('SADD', ARGV[1] .. 'orgs:limited', ARGV[2])
    else
        redis.call('SREM', ARGV[1] .. 'orgs:limited', ARGV[2])
    end

    redis.call('XADD', ARGV[1] .. 'changes', 'MAXLEN', '~', 100000, '*',
               'o', ARGV[2])
end

local v = redis.call('HMGET', lk, 'rate', 'per', 'burst', 'quota', 'q',
                     'max_keys')

v[7] = redis.call('ZCOUNT', KEYS[4], '(' .. now, '+inf')

for i = 1, 6 do
    v[i] = v[i] or false
end

return {'ok', '', now, v}
