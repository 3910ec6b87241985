-- The gatekeeper's Redis call (docs/data-model.md): the checks a worker
-- started in one pass of its event loop, each a request's only round trip,
-- go to Redis together as one call of this script.
--
-- KEYS[i]       NS{<sha256 of the key>}: the secret hash of check i
-- ARGV[1]       the call's id, "<worker> <number>": the worker's random id
--               and the number of the call, rising
-- ARGV[3i - 1]  environment the location of check i requires, "" for any
-- ARGV[3i]      scopes it requires, space-separated, "" for none
-- ARGV[3i + 1]  the lease (apikey_rate_lease), "" for none: "want back
--               taken rate/per/burst", tokens asked for (this request's
--               among them; 0 for a check sent while another asks for the
--               key's lease), tokens of an ended lease given back, the
--               Redis time (us) they were taken at, and the limit they
--               were taken under
--
-- Returns one reply per check, in order: {1} for an unknown key,
-- {code, g} when no bucket was consulted, else {code, g, ahead}, and
-- {0, g, ahead, n, at} when a lease was asked for and n tokens were
-- taken at Redis time at (us): g is the secret's gate field, for nginx
-- to read the key's identity and limit from, and ahead how far
-- (microseconds) the bucket's theoretical arrival time is past now, from
-- which nginx works out the rate headers.  A key with a quota is
-- answered {code, g, ahead, n, at, used, ends} once it passed the checks
-- before the bucket: the units of the period used (this request's
-- among them) and the seconds until the period ends (n and at 0 without
-- a lease, ahead 0 without a limit; used -1 for a key without a quota).
-- A key of an organization with limits (NS org:<org>:limits, set by the
-- admin API) gets, as an eighth element, the organization's bucket and
-- quota as a string, "rate per burst ahead quota period used ends"
-- (docs/data-model.md); they are taken from with the key's, all or
-- none.  Codes, in the order the checks
-- run: 0 ok, 1 invalid, 2 revoked, 3 expired, 4 environment mismatch,
-- 5 insufficient scope, 6 limited, 7 quota used up.  A refused request
-- takes nothing: neither a token nor a unit of the quota.
--
-- A call is applied once, however often it comes (nginx sends a call
-- again when its connection drops before the reply; a proxy may send one
-- twice): its reply is kept in the worker's hash NS d:<worker>, field
-- number % 64, and a call found there is answered from it; a call more
-- than 64 behind the worker's newest (a copy held up in the network
-- while nginx went on) is refused.  nginx has at most 32 calls in flight
-- on a connection, so a call it still waits for is never that far behind.
--
-- Each check of a known key (every code but 1) is counted for the key's
-- usage (docs/data-model.md): allowed (0), limited (6) or refused (2 to
-- 5).  The counts of the current hour wait in the fields h, a, l and r of
-- the secret that holds the key's bucket: an allowed check writes a with
-- the fields it writes anyway, so it costs no command more; the limited
-- and refused ones of a call cost one HINCRBY per secret and kind.  The
-- first count of a new hour moves the last hour's counts to the key's
-- usage hash of that day.  A count Redis refuses to write is lost, never
-- the check's answer.
--
-- Only an allowed request takes a token, or, asking for a lease, up to as
-- many as it wants of those the bucket holds.  Tokens given back return
-- to the bucket only as far as they could not have overflowed it since
-- they were taken: k tokens taken at time t0 move the bucket back by
-- max(0, k * step - (now - t0)) (docs/data-model.md proves the bound),
-- and not at all when the limit changed since (Redis then
-- refilled the bucket); a give-back that returns tokens says so in the
-- change log ("b"), so that every instance asks again.  Checks run one
-- after the other, so two of one key in a call take from the bucket as
-- two calls would.  A write Redis refuses (OOM, READONLY, NOREPLICAS,
-- MISCONF) is that check's own error reply: it must not end the call and
-- answer for the checks that write nothing, such as a revoked key's.
-- Every redis.call costs more than the Lua around it: a check makes two
-- (read the secret, write the bucket) and the call three for all (TIME,
-- and the read and write of its record); a previous secret in rotation
-- grace makes two more, for the key's bucket.  Counting adds a HINCRBY
-- per secret and kind of limited and refused checks in a call, and once
-- an hour per secret a few commands to move the counts; Lua's pattern
-- matching and tables, which cost about as much as a command, are kept
-- out of the allowed check.  Numbers never become strings through Lua's
-- own float formatting (costly in Redis 7.0): the times written are
-- TIME's own string and an integer formatted with %d.

local t = redis.call('TIME')
local now = tonumber(t[1])
local us = now * 1000000 + t[2]

-- usage: the hour (Unix time / 3600) this call counts in; the prefix of
-- the usage hashes, NS usage:{, with the namespace of the secrets,
-- NS{<64 hex>}; per secret, the limited ([2]) and refused ([3]) checks
-- counted, to be added at the end, in the order of "homes"

local hour = string.format('%d', math.floor(now / 3600))
local ns = string.sub(KEYS[1] or '', 1, -67)
local uns = ns .. 'usage:{'
local later = {}
local homes = {}

-- the call's id: a call already applied is answered as it was

local worker, number = string.match(ARGV[1] or '', '^(%x+) (%d+)$')

if not worker then
    return redis.error_reply('ERR the call has no id')
end

number = tonumber(number)

local dkey = ns .. 'd:' .. worker
local slot = string.format('%d', number % 64)
local seen = redis.call('HMGET', dkey, slot, 'n', 'x')

if seen[1] then
    local n, kept = cmsgpack.unpack(seen[1])

    if n == number then

        -- the reply as it was, with each key's identity as it is now

        for i, r in ipairs(kept) do
            if r[2] then
                r[2] = redis.call('HGET', KEYS[i], 'g')

                if not r[2] then
                    kept[i] = {1}
                end
            end
        end

        return kept
    end
end

if seen[2] and number + 64 <= tonumber(seen[2]) then
    return redis.error_reply('STALE a call of this worker newer by 64 '
                             .. 'was applied')
end

-- writes fields of a secret and answers with reply (nil: nothing to
-- answer yet), or with the error of a write Redis refused

local function write(key, reply, ...)
    local e = redis.pcall('HSET', key, ...)

    if type(e) == 'table' then
        return e
    end

    return reply
end

-- an allowed check's writes to the secret it used (f, as read): the last
-- use, u, only when its second changed, so the checks of a busy key do
-- not all write it

local function allow(key, f, reply, ...)
    if f[6] ~= t[1] then
        return write(key, reply, 'u', t[1], ...)
    end

    if select('#', ...) == 0 then
        return reply
    end

    return write(key, reply, ...)
end

-- the secret home, whose counts are of hour h (nil: none yet), starts
-- this hour's: those of hour h go to the usage hash of its day, which
-- expires 90 days after the day began (counts older than that are
-- dropped); if Redis refuses the move, they stay for the next check

local function rollover(home, g, h)
    local id = string.match(g, '\n([^\n]+)')
    local day = math.floor((tonumber(h) or 0) / 24)
    local ends = (day + 90) * 86400

    if id and ends > now then
        local c = redis.call('HMGET', home, 'a', 'l', 'r')
        local k = uns .. id .. '}:' .. string.format('%d', day)
        local f = string.format('%02d', tonumber(h) - day * 24)

        -- the hour's field, and the day's total, which a daily answer
        -- reads alone

        for i, kind in ipairs({'a', 'l', 'r'}) do
            if c[i] and c[i] ~= '0'
               and (type(redis.pcall('HINCRBY', k, f .. kind, c[i]))
                    == 'table'
                    or type(redis.pcall('HINCRBY', k, kind, c[i]))
                       == 'table')
            then
                return
            end
        end

        redis.pcall('EXPIREAT', k, string.format('%d', ends))
    end

    redis.pcall('HSET', home, 'h', hour, 'a', '0', 'l', '0', 'r', '0')
end

-- counts a limited (i = 2) or refused (i = 3) check, and answers with
-- reply: the counts, like the key's bucket, are with the current secret
-- c when this one is in rotation grace

local function count(key, f, reply, i)
    local home, h = key, f[4]

    if f[3] then
        home = f[3]
        -- f.home: f[4] and f[5] were read from c already
        h = f.home and f[4] or redis.call('HGET', home, 'h')
    end

    if h ~= hour then
        rollover(home, f[1], h)
    end

    local c = later[home]

    if not c then
        c = {0, 0, 0}
        later[home] = c
        homes[#homes + 1] = home
    end

    c[i] = c[i] + 1

    return reply
end

-- tokens of an ended lease go back to b, the bucket of home (limit lim,
-- as "rate/per/burst"), as far as they could not have overflowed it since
-- they were taken at taken (us): b moves back by their worth less the
-- time since; none when the limit they were taken under is no longer the
-- key's (g's); returns b as it is then

local function give_back(home, g, b, back, taken, lim)
    local rate, per, burst = string.match(g, '^%d %d+ %d+ (%d+) (%d+) (%d+)')

    if not tonumber(b) or back == '0' or not rate or rate == '0'
       or lim ~= rate .. '/' .. per .. '/' .. burst
    then
        return b
    end

    local d = tonumber(back) * per * 1000000 / rate
              - math.max(us - (tonumber(taken) or 0), 0)

    if d <= 0 then
        return b
    end

    b = string.format('%d', math.ceil(math.max(tonumber(b) - d, us)))

    redis.pcall('HSET', home, 'b', b)
    redis.pcall('XADD', ns .. 'changes', 'MAXLEN', '~', 100000, '*',
                'b', string.sub(home, #ns + 2, -2))

    return b
end

-- the calendar period of a quota, p "d" (the UTC day) or "m" (the UTC
-- month), that now is in: its id ("d<days since 1970>", "m<12 * year +
-- month - 1>") and the seconds until it ends; days and civil dates
-- convert as in the proleptic Gregorian calendar

local periods = {}

local function days_from_civil(y, m, d)
    if m <= 2 then
        y = y - 1
    end
    local era = math.floor(y / 400)
    local yoe = y - era * 400
    local doy = math.floor((153 * (m > 2 and m - 3 or m + 9) + 2) / 5) + d - 1
    return era * 146097 + yoe * 365 + math.floor(yoe / 4)
           - math.floor(yoe / 100) + doy - 719468
end

local function period(p)
    if periods[p] then
        return periods[p][1], periods[p][2]
    end

    local day = math.floor(now / 86400)
    local id, ends

    if p == 'd' then
        id, ends = 'd' .. string.format('%d', day), (day + 1) * 86400
    else
        local z = day + 719468
        local era = math.floor(z / 146097)
        local doe = z - era * 146097
        local yoe = math.floor((doe - math.floor(doe / 1460)
                                + math.floor(doe / 36524)
                                - math.floor(doe / 146096)) / 365)
        local doy = doe - (365 * yoe + math.floor(yoe / 4)
                           - math.floor(yoe / 100))
        local mp = math.floor((5 * doy + 2) / 153)
        local m = mp < 10 and mp + 3 or mp - 9
        local y = yoe + era * 400 + (m <= 2 and 1 or 0)

        id = 'm' .. string.format('%d', y * 12 + m - 1)
        ends = days_from_civil(m == 12 and y + 1 or y, m % 12 + 1, 1) * 86400
    end

    periods[p] = {id, ends - now}

    return id, ends - now
end

-- a key's quota from its gate field g (the line "<limit> <d|m>" after
-- its meta, docs/data-model.md) and the count field q of its bucket's
-- secret ("<period id> <used>"): nil for a key without one, else the
-- limit, the units of this period used, the seconds until it ends, and
-- the HSET arguments that count one more

local function quota_of(g, q)
    local last = string.byte(g, -1)

    if last ~= 100 and last ~= 109 then
        return nil
    end

    local limit, p = string.match(g, '}\n(%d+) ([dm])$')

    if not limit then
        return nil
    end

    local id, ends = period(p)
    local qid, used = string.match(q or '', '^(%S+) (%d+)$')

    used = (qid == id) and tonumber(used) or 0

    return tonumber(limit), used, ends,
           {'q', id .. ' ' .. string.format('%d', used + 1)}
end

-- appends its arguments to the list t

local function push(t, ...)
    for _, x in ipairs({...}) do
        t[#t + 1] = x
    end
end

-- the organization of a key's gate field g (its third line) and its
-- limits (NS org:<org>:limits, written by the admin API): nil for an
-- organization without any, else its bucket (step, burst and b as tat,
-- at least now) and quota (limit, period id, units used, seconds until
-- the period ends), read once a call and kept current through its
-- checks

local orgs = {}

local function org_of(g)
    local name = string.match(g, '^[^\n]*\n[^\n]*\n([^\n]*)')

    if not name then
        return nil
    end

    local o = orgs[name]

    if o == nil then
        local k = ns .. 'org:' .. name .. ':limits'
        local v = redis.call('HMGET', k, 'rate', 'per', 'burst', 'quota',
                             'b', 'q')

        o = {key = k}

        if tonumber(v[1]) and tonumber(v[1]) > 0 then
            o.rate, o.per, o.burst = tonumber(v[1]), tonumber(v[2]),
                                     tonumber(v[3])
            o.step = o.per * 1000000 / o.rate
            o.tat = math.max(tonumber(v[5]) or us, us)
        end

        local limit, p = string.match(v[4] or '', '^(%d+) ([dm])$')

        if limit then
            local id, ends = period(p)
            local qid, used = string.match(v[6] or '', '^(%S+) (%d+)$')

            o.quota, o.p, o.qid, o.ends = tonumber(limit), p, id, ends
            o.used = (qid == id) and tonumber(used) or 0
        end

        if not o.step and not o.quota then
            o = false
        end

        orgs[name] = o
    end

    return o or nil
end

-- an allowed check takes a token of its organization's bucket and a unit
-- of its quota, or answers the error of the write Redis refused

local function org_take(o)
    local set = {}

    if o.step then
        push(set, 'b', string.format('%d', math.ceil(o.tat + o.step)))
    end

    if o.quota then
        push(set, 'q', o.qid .. ' ' .. string.format('%d', o.used + 1))
    end

    local e = redis.pcall('HSET', o.key, unpack(set))

    if type(e) == 'table' then
        return e
    end

    if o.step then
        o.tat = math.ceil(o.tat + o.step)
    end

    if o.quota then
        o.used = o.used + 1
    end

    return nil
end

-- a check's reply (see the top): {code, g} when no bucket, quota or
-- limit of its organization was consulted, {code, g, ahead} or, with a
-- lease, {code, g, ahead, n, at}; with a quota (used, else -1) or an
-- organization's limits, {code, g, ahead, n, at, used, ends} and, for
-- the organization, "rate per burst ahead quota period used ends" (0 and
-- "-" for what it has not)

local function answer(code, g, ahead, n, at, used, ends, o)
    if not used and not o then
        if not ahead then
            return {code, g}
        end

        if n then
            return {code, g, ahead, n, at}
        end

        return {code, g, ahead}
    end

    local r = {code, g, ahead or 0, n or 0, at or 0, used or -1,
               used and ends or 0}

    if o then
        r[8] = string.format('%d %d %d %d %d %s %d %d', o.rate or 0,
                             o.per or 0, o.burst or 0,
                             o.step and o.tat - us or 0, o.quota or 0,
                             o.p or '-', o.used or 0, o.ends or 0)
    end

    return r
end

-- the tally of checks Redis did not count itself (ngx_http_apikey_tally.c),
-- sent with the checks: environment "\1", scopes "allowed limited
-- refused" (a count below 0 takes back what a check counted that nginx
-- answered without its reply), lease "0 back taken rate/per/burst" or "".
-- The counts go where the checks' would have, the tokens given back to
-- the key's bucket; an allowed one records the last use, written at most
-- once a second.

local function tally(key, counts, lease)
    local n = {string.match(counts, '^(-?%d+) (-?%d+) (-?%d+)$')}
    local f = redis.call('HMGET', key, 'g', 'c', 'h', 'u')
    local home = key

    if not n[1] or not f[1] then
        return {1}
    end

    if f[2] then
        home = f[2]
        f[3] = redis.call('HGET', home, 'h')

        if redis.call('EXISTS', home) == 0 then
            return {1}
        end
    end

    local back, taken, lim = string.match(lease, '^%d+ (%d+) (-?%d+) (%S+)$')

    if back then
        give_back(home, f[1], redis.call('HGET', home, 'b'), back, taken, lim)
    end

    if n[1] == '0' and n[2] == '0' and n[3] == '0' then
        return {1}
    end

    if f[3] ~= hour then
        rollover(home, f[1], f[3])
    end

    for i, kind in ipairs({'a', 'l', 'r'}) do
        if n[i] ~= '0' then
            redis.pcall('HINCRBY', home, kind, n[i])
        end
    end

    -- checks the replica allowed while Redis was unreachable use the
    -- quota too (and those taken back give it back)

    if n[1] ~= '0' then
        local quota, used, _, q = quota_of(f[1],
                                           redis.call('HGET', home, 'q'))
        if quota then
            q[2] = string.match(q[2], '^%S+ ') .. string.format('%d',
                       math.max(used + tonumber(n[1]), 0))
            redis.pcall('HSET', home, unpack(q))
        end

        local o = org_of(f[1])

        if o and o.quota then
            o.used = math.max(o.used + tonumber(n[1]), 0)
            redis.pcall('HSET', o.key, 'q', o.qid .. ' '
                                            .. string.format('%d', o.used))
        end
    end

    if tonumber(n[1]) > 0 and f[4] ~= t[1] then
        return write(key, {1}, 'u', t[1])
    end

    return {1}
end

local function check(key, want_env, want_scopes, lease)
    if want_env == '\1' then
        return tally(key, want_scopes, lease)
    end

    local f = redis.call('HMGET', key, 'g', 'b', 'c', 'h', 'a', 'u', 'q')

    if not f[1] then
        return {1}
    end

    local rev, exp, grace, rate, per, burst, env, scopes =
        string.match(f[1], '^(%d) (%d+) (%d+) (%d+) (%d+) (%d+) (%S+) ?([^\n]*)')

    if not rev or (grace ~= '0' and now >= tonumber(grace)) then
        return {1}
    end

    if rev == '1' then
        return count(key, f, {2, f[1]}, 3)
    end

    if exp ~= '0' and now >= tonumber(exp) then
        return count(key, f, {3, f[1]}, 3)
    end

    if want_env ~= '' and want_env ~= env then
        return count(key, f, {4, f[1]}, 3)
    end

    if want_scopes ~= '' then
        scopes = ' ' .. scopes .. ' '
        for s in string.gmatch(want_scopes, '%S+') do
            if not string.find(scopes, ' ' .. s .. ' ', 1, true) then
                return count(key, f, {5, f[1]}, 3)
            end
        end
    end

    -- a key is one bucket: a previous secret in rotation grace draws from
    -- the one kept with the current secret, c, and counts there

    local home = key

    if f[3] then
        home = f[3]
        f[2], f[4], f[5], f[7] =
            unpack(redis.call('HMGET', home, 'b', 'h', 'a', 'q'))
        f.home = true
    end

    -- the key's quota, if it has one (the units of this period used so
    -- far, and the field q that takes this request's), and its
    -- organization's limits, if it has any

    local quota, used, ends, q = quota_of(f[1], f[7])
    local o = org_of(f[1])

    -- an allowed check counts with the write it makes anyway: a, read
    -- with the secret, is this hour's count once h is this hour

    if f[4] ~= hour then
        rollover(home, f[1], f[4])
        f[4] = hour
        f[5] = '0'
    end

    local a = string.format('%d', (tonumber(f[5]) or 0) + 1)

    -- GCRA, the token bucket kept as one number: b is the theoretical
    -- arrival time in microseconds; the bucket holds
    -- burst - (b - now) / step tokens, one more every step microseconds

    local want, back, taken, lim, step, tat, ahead

    if rate ~= '0' then
        if lease ~= '' then
            want, back, taken, lim =
                string.match(lease, '^(%d+) (%d+) (-?%d+) (%S+)$')
            want = tonumber(want)

            if back then
                f[2] = give_back(home, f[1], f[2], back, taken, lim)
            end
        end

        step = per * 1000000 / rate
        tat = tonumber(f[2]) or us

        if tat < us then
            tat = us
        end

        ahead = tat - us

        if ahead > (burst - 1) * step + 1 then

            -- a check sent while its instance asks for a lease (want 0)
            -- may find the bucket emptied by that lease: nginx gives it a
            -- leased token if it can, and counts it as what it answers

            if want == 0 and not o then
                return {6, f[1], ahead}
            end

            return count(key, f, answer(6, f[1], ahead, nil, nil,
                                        quota and used, ends, o), 2)
        end
    end

    -- the organization's bucket, then the quotas: whichever refuses, the
    -- request takes nothing anywhere

    if o and o.step and o.tat - us > (o.burst - 1) * o.step + 1 then
        return count(key, f, answer(6, f[1], ahead, nil, nil,
                                    quota and used, ends, o), 2)
    end

    if (quota and used >= quota) or (o and o.quota and o.used >= o.quota)
    then
        return count(key, f, answer(7, f[1], ahead, nil, nil,
                                    quota and used, ends, o), 2)
    end

    -- a lease: as many of the tokens the bucket holds as asked for; a key
    -- with a quota or in an organization with limits takes its request's
    -- token alone

    local n = 1
    local leased = want and want > 1

    if rate ~= '0' then
        if leased and not quota and not o then
            n = math.floor((burst * step - ahead + 1) / step)

            if n > want then
                n = want
            elseif n < 1 then
                n = 1
            end
        end

        tat = math.ceil(tat + n * step)
        ahead = tat - us
    end

    if o then
        local e = org_take(o)
        if e then
            return e
        end
    end

    local reply = answer(0, f[1], ahead, leased and n, leased and us,
                         quota and used + 1, ends, o)
    local set = {'a', a}

    if rate ~= '0' then
        push(set, 'b', string.format('%d', tat))
    end

    if q then
        push(set, q[1], q[2])
    end

    if f[3] then
        local e = write(f[3], nil, unpack(set))
        if e then
            return e
        end

        return allow(key, f, reply)
    end

    return allow(key, f, reply, unpack(set))
end

local out = {}

for i = 1, #KEYS do
    out[i] = check(KEYS[i], ARGV[3 * i - 1], ARGV[3 * i], ARGV[3 * i + 1])
end

for _, home in ipairs(homes) do
    local c = later[home]

    if c[2] > 0 then
        redis.pcall('HINCRBY', home, 'l', string.format('%d', c[2]))
    end

    if c[3] > 0 then
        redis.pcall('HINCRBY', home, 'r', string.format('%d', c[3]))
    end
end

-- the call is applied: its reply is kept for a copy of it, for an hour
-- after the worker's last call (the expiry is set again every ten
-- minutes, x), without the keys' identities (g is read again then), so
-- that nothing of a deleted key stays behind

local kept = {}

for i, r in ipairs(out) do
    kept[i] = r[2] and {r[1], true, r[3], r[4], r[5], r[6], r[7], r[8]}
              or r
end

if not seen[3] or now - tonumber(seen[3]) >= 600 then
    redis.pcall('EXPIRE', dkey, 3600)
    seen[3] = t[1]
end

redis.pcall('HSET', dkey, slot, cmsgpack.pack(number, kept), 'n',
            string.format('%d', math.max(number, tonumber(seen[2]) or 0)),
            'x', seen[3])

return out
