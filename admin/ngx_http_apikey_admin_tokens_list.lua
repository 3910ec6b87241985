-- Lists the management tokens whose organizations are all within the
-- caller's, newest first, a page of them.  A caller limited to some
-- organizations has every record read (management tokens are few).
--
-- KEYS[1] NS tokens
-- ARGV    ns, offset, count, the caller's organizations ("*", or a JSON
--         array)
--
-- Returns {"ok", "", now, total, {token, ...}}.
--
-- The script Redis runs is this file after the shared helpers:
--   cat admin/ngx_http_apikey_admin_lib.lua.in \
--       admin/ngx_http_apikey_admin_tokens_list.lua

local ns, offset, count = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local total, page = 0, {}

-- a caller of every organization sees every token: only the page is read

if ARGV[4] == '*' then
    for _, id in ipairs(redis.call('ZREVRANGE', KEYS[1], offset,
                                   offset + count - 1)) do
        page[#page + 1] = tokenrecord(ns .. 'tok:' .. id)
    end
    return {'ok', '', clock(), redis.call('ZCARD', KEYS[1]), page}
end

for _, id in ipairs(redis.call('ZREVRANGE', KEYS[1], 0, -1)) do
    local v = tokenrecord(ns .. 'tok:' .. id)
    if v and within(v[3], ARGV[4]) then
        total = total + 1
        if total > offset and #page < count then
            page[#page + 1] = v
        end
    end
end

return {'ok', '', clock(), total, page}
