-- Changes a key's settings in its record and in the "g" field of its
-- secrets (current and in grace), so that the gatekeeper applies them on
-- the next request.
--
-- KEYS[1] NS key:<id>            KEYS[2] NS org:<org>:keys
-- KEYS[3] NS org:<org>:idx       KEYS[4] NS org:<org>:active
-- KEYS[5] NS org:<org>:events    KEYS[6] NS org:<org>:rebuild
-- KEYS[7] NS org:<org>:idx:new   KEYS[8] NS org:<org>:active:new
-- ARGV    ns, org, actor, max_keys, max_ttl, fields given ("n" name,
--         "d" description, "s" scopes, "r" rate limit, "e" expiry, "m"
--         meta, "q" quota), name, description, scopes (JSON array), rate
--         (0: unlimited), per, burst, expires_at (0: never), meta (compact
--         JSON), quota ("<limit> <d|m>", "": none)
--         and last, as in every change script (once() in the library):
--         the fingerprint and the sealed new key ("" without an
--         Idempotency-Key); KEYS last: NS idem:<id> with one
--
-- Returns {"ok", "", now, key, 0, gates} or {code, detail}.
--
-- The script Redis runs is this file after the shared helpers:
--   cat admin/ngx_http_apikey_admin_lib.lua.in \
--       admin/ngx_http_apikey_admin_update.lua

local ns, given = ARGV[1], ARGV[6]

local function change(v)
    local now = clock()

    if given == '' then
        return ok(ns, now, v)
    end

    local old = summary(v)
    local was = active(v, now)
    local set, del = {'updated_at', now}, {}

    local function has(c)
        return string.find(given, c, 1, true) ~= nil
    end

    if has('n') then
        push(set, 'name', ARGV[7])
    end

    if has('d') then
        push(set, 'description', ARGV[8])
    end

    if has('s') then
        push(set, 'scopes', ARGV[9])
    end

    if has('m') then
        if ARGV[14] == '{}' then
            push(del, 'meta')
        else
            push(set, 'meta', ARGV[14])
        end
    end

    -- a new quota keeps the period's count: a raised limit lets more
    -- through at once, a lowered one refuses once it is reached

    if has('q') then
        if ARGV[15] == '' then
            push(del, 'quota')
        else
            push(set, 'quota', ARGV[15])
        end
    end

    if has('r') then
        if tonumber(ARGV[10]) > 0 then
            push(set, 'rate', ARGV[10], 'per', ARGV[11], 'burst', ARGV[12])
        else
            push(del, 'rate', 'per', 'burst')
        end
    end

    if has('e') then
        local exp = tonumber(ARGV[13])
        local maxttl = tonumber(ARGV[5])

        if exp > 0 then
            if exp < now + 60 then
                return TOO_SOON
            end
            if maxttl > 0 and exp > (tonumber(v[11]) or now) + maxttl then
                return {'invalid_field',
                        'expires_at is past apikey_max_ttl from the creation'}
            end
            push(set, 'expires_at', exp)
        else
            push(del, 'expires_at')
        end

        -- a key that comes back to life needs a free slot; a new expiry
        -- gets its notices anew

        local moved = exp ~= (tonumber(v[14]) or 0)

        v[14] = exp

        local limit = not was and active(v, now)
                      and full(tonumber(ARGV[4]), now)

        if limit then
            return limit
        end

        if moved then
            notices(ns, v, now)
        end
    end

    redis.call('HSET', KEYS[1], unpack(set))

    if #del > 0 then
        redis.call('HDEL', KEYS[1], unpack(del))
    end

    return commit(ns, old, now, 'updated', has('r'))
end

return once(ns, keyed(change))
