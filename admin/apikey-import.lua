-- apikey-import: creates a run of keys of one organization in one step,
-- writing for each what the admin API's create script
-- (ngx_http_apikey_admin_create.lua) writes: its record, the secret the
-- gatekeeper reads, its entries in the organization's indexes and
-- expiry notices, a "created" event and the change log's record of its
-- secret.  What the keys share is written once for all of them: one
-- ZADD per index, one LPUSH of the events, a change log entry per 50
-- secrets.  No apikey_max_keys check and no Idempotency-Key: the
-- importer makes the key ids, and a second run passes over what the
-- first one wrote.
--
-- KEYS[1]  NS key:<id> of the first key, as in the library's layout
-- KEYS[2]  NS org:<org>:keys         KEYS[3] NS org:<org>:idx
-- KEYS[4]  NS org:<org>:active       KEYS[5] NS org:<org>:events
-- KEYS[6]  NS org:<org>:rebuild      KEYS[7] NS org:<org>:idx:new
-- KEYS[8]  NS org:<org>:active:new
-- then per key  NS key:<id>, NS{<hash>}
-- ARGV     ns, org, actor, max_ttl (0: none), skip ("1": pass over a key
--          whose id or secret is in use), then per key id, name,
--          description, display prefix, environment, scopes (JSON array),
--          rate (0: unlimited), per, burst, expires_at (0: none),
--          expires_in (0: none), hash, meta (compact JSON, "" for none),
--          quota ("<limit> <d|m>", "" for none)
--
-- Returns {made, skipped, n, code, detail}: n is 0 when every key was
-- written or passed over; else the n-th key was refused (code, detail as
-- the create script's) and neither it nor any after it was written.
--
-- The script Redis runs is this file after the shared helpers:
--   cat admin/ngx_http_apikey_admin_lib.lua.in admin/apikey-import.lua

local ns, org, actor = ARGV[1], ARGV[2], ARGV[3]
local maxttl, skip = tonumber(ARGV[4]), ARGV[5] == '1'
local ARGS = 14

-- a command of one key and many arguments, in calls of at most 1000 of
-- them (unpack's limit)

local function many(cmd, key, args, extra)
    local out
    for i = 1, #args, 1000 do
        out = redis.call(cmd, key, unpack(args, i, math.min(i + 999, #args)))
    end
    if extra then
        redis.call(unpack(extra))
    end
    return out
end

local t = redis.call('TIME')
local now = tonumber(t[1])
local ms = now * 1000 + math.floor(tonumber(t[2]) / 1000)

-- creation order is the score: after every key made before, strictly

local top = redis.call('ZREVRANGE', KEYS[2], 0, 0, 'WITHSCORES')

if top[2] and tonumber(top[2]) >= ms then
    ms = tonumber(top[2]) + 1
end

local made, skipped, stop, refusal = 0, 0, 0, nil

-- the "created" event, as event() in the library writes it, made once:
-- only the key id (k_ and base62, nothing to escape) and name (escaped
-- as cjson escapes it) differ, in the template's holes \0 and \1

local e = cjson.encode({at = now, actor = actor, action = 'created',
                        key_id = '\0', key_name = '\1'})
local holes = {(string.find(e, '\\u0000', 1, true)),
               (string.find(e, '\\u0001', 1, true))}
local first = holes[1] < holes[2] and 1 or 2
local parts = {string.sub(e, 1, holes[first] - 1),
               string.sub(e, holes[first] + 6, holes[3 - first] - 1),
               string.sub(e, holes[3 - first] + 6)}

local function created(id, name)
    local v = {id, string.sub(cjson.encode(name), 2, -2)}
    return parts[1] .. v[first] .. parts[2] .. v[3 - first] .. parts[3]
end

-- a key whose id or secret is in use is looked for one by one only if
-- one of them is

local clash = redis.call('EXISTS', unpack(KEYS, 9)) > 0
local order, summaries, named, live, events, hashes = {}, {}, {}, {}, {}, {}
local notes = {}

for n = 1, (#ARGV - 5) / ARGS do
    local a = 5 + (n - 1) * ARGS
    local kk, sk = KEYS[7 + 2 * n], KEYS[8 + 2 * n]
    local id, hash = ARGV[a + 1], ARGV[a + 12]
    local exp = 0
    local at, ttl = tonumber(ARGV[a + 10]), tonumber(ARGV[a + 11])

    if at > 0 then
        if at < now + 60 then
            refusal = TOO_SOON
        elseif maxttl > 0 and at > now + maxttl then
            refusal = {'invalid_field', 'expires_at is past apikey_max_ttl'}
        end
        exp = at
    elseif ttl > 0 then
        exp = now + ttl
    end

    if not refusal and clash and redis.call('EXISTS', kk, sk) > 0 then
        if skip then
            skipped = skipped + 1
        else
            refusal = {'conflict', 'key id or secret already in use'}
        end

    elseif not refusal then

        -- the record as HMGET would read it back: the array "v" of F

        local rate = tonumber(ARGV[a + 7])
        local meta, quota = ARGV[a + 13], ARGV[a + 14]
        local v = {id, org, ARGV[a + 2], ARGV[a + 3], ARGV[a + 4],
                   ARGV[a + 5], ARGV[a + 6], false, false, false,
                   tostring(now), actor, tostring(now), false, false, hash,
                   false, false, false, false, false}

        local rec = {'id', id, 'org', org, 'name', v[3], 'description', v[4],
                     'prefix', v[5], 'env', v[6], 'scopes', v[7],
                     'created_at', now, 'created_by', actor,
                     'updated_at', now, 'secret', hash}

        if rate > 0 then
            v[8], v[9], v[10] = ARGV[a + 7], ARGV[a + 8], ARGV[a + 9]
            push(rec, 'rate', v[8], 'per', v[9], 'burst', v[10])
        end

        if exp > 0 then
            v[14] = tostring(exp)
            push(rec, 'expires_at', exp)
        end

        if meta ~= '' and meta ~= '{}' then
            v[20] = meta
            push(rec, 'meta', meta)
        end

        if quota ~= '' then
            v[21] = quota
            push(rec, 'quota', quota)
        end

        redis.call('HSET', kk, unpack(rec))
        redis.call('HSET', sk, 'g', gate(v, 0, v[5]))

        push(order, ms, id)
        local s = summary(v)
        push(summaries, ms, s)
        push(named, 0, nameentry(s))
        if active(v, now) then
            push(live, exp > 0 and exp or 'inf', id)
        end
        if exp > 0 then
            push(notes, noticeat(exp, now), noticekey(v))
        end
        events[#events + 1] = created(id, v[3])
        hashes[#hashes + 1] = hash

        ms = ms + 1
        made = made + 1
    end

    if refusal then
        stop = n
        break
    end
end

if made > 0 then
    many('ZADD', KEYS[2], order)

    for _, k in ipairs(indexes()) do
        many('ZADD', k[1], summaries)
        many('ZADD', names(k[1]), named)
        if #live > 0 then
            many('ZADD', k[2], live)
        end
    end

    if #notes > 0 then
        many('ZADD', ns .. 'notices', notes)
    end

    many('LPUSH', KEYS[5], events, {'LTRIM', KEYS[5], 0, 9999})

    for i = 1, #hashes, 50 do
        local e = {}
        for j = i, math.min(i + 49, #hashes) do
            push(e, 'h', hashes[j])
        end
        redis.call('XADD', ns .. 'changes', 'MAXLEN', '~', 100000, '*',
                   unpack(e))
    end
end

return {made, skipped, stop, refusal and refusal[1] or '',
        refusal and refusal[2] or ''}
