-- One page of an organization's event log, newest first.
--
-- KEYS[1] NS org:<org>:events
-- ARGV    offset, count
--
-- Returns {"ok", "", total, {event JSON, ...}}.

local off = tonumber(ARGV[1])

return {'ok', '', redis.call('LLEN', KEYS[1]),
        redis.call('LRANGE', KEYS[1], off, off + tonumber(ARGV[2]) - 1)}
