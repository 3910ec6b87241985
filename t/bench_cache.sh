#!/bin/bash
# make bench, part 2: apikey_cache and apikey_rate_lease.  Requests/s,
# latency and Redis calls of a gatekept location against a bare one, in
# the same rounds, for four kinds of traffic, in three modes:
#
#   valid       a random one of 1000 keys whose limit never triggers
#               (1000000 r/s, burst 1000000)
#   limited     one key far over its limit (1r/m): 429s
#   malformed   a key that fails the checksum: 401s
#   unknown     a random one of 1000 well-formed keys Redis does not hold
#
#   no cache    a check in Redis per request (calls batched per worker)
#   cache       apikey_cache: the replica answers what it can
#   lease       apikey_cache and apikey_rate_lease BENCH_LEASE
#
# Three nginx instances share one Redis, one per mode; each serves /bare
# and /gated (and /metrics, to see the replica loaded; all count, so the
# ratios between them are the modes' alone).  Each round runs, per kind,
# the bare location (on the first instance), then the gatekept one on each
# instance.  Every run starts with CONFIG RESETSTAT and ends with INFO
# commandstats: calls/req is the sum of all commands' calls over the
# requests completed (the scripts' own commands included, the bench's
# CONFIG and INFO not), trips/req the script calls alone (what nginx sends).
# The bare column's calls are background: the replicas' reads, and tokens
# of the lease run before given back.  The report at the end gives the
# medians over the rounds, with the targets of the lease mode (issue 9):
# ratio to bare >= 0.9 for every kind, calls/req <= 0.02 for valid keys.
# A miss is reported, not an error; so are runs whose answers are not
# what their kind should get (with the instance's checks by status, from
# apikey_metrics, to tell which); the exit status is 1 only for nginx
# alerts.  Every run's figures are in build/bench-cache/runs.tsv, its
# commandstats and wrk output in build/bench-cache/stats/.
#
#   BENCH_SECONDS       duration of each measured run (default 3)
#   BENCH_CACHE_ROUNDS  rounds (default 5)
#   BENCH_CONNS         wrk connections (default 64)
#   BENCH_LEASE         the lease mode's apikey_rate_lease TIME (default
#                       2s); off leaves the directive out, the third
#                       instance then being a second cache one
#   BENCH_CACHE_KEYS    keys Redis holds (default 1000): the ones past the
#                       first 1000 are written in the same layout by a
#                       script in Redis, never asked for, and make the
#                       replicas (and their zones) as large
#   BENCH_MODULE        the module to measure (default build's)
#
# The rounds and the report are t/lib/bench_cache.sh's, which
# t/bench_scale.sh runs over its own instances.

set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
seconds=${BENCH_SECONDS:-3}
rounds=${BENCH_CACHE_ROUNDS:-5}
conns=${BENCH_CONNS:-64}
lease=${BENCH_LEASE:-2s}
keys=1000
total=${BENCH_CACHE_KEYS:-$keys}
module=${BENCH_MODULE:-$top/build/ngx_http_apikey_module.so}
dir=$top/build/bench-cache
keytool=$top/build/apikey-key
kinds="valid limited malformed unknown"
modes="plain cache lease"

. "$top/t/lib/servers.sh"
. "$top/t/lib/bench_cache.sh"

stop() {
    stop_pidfiles "$dir/plain/nginx.pid" "$dir/cache/nginx.pid" \
                  "$dir/lease/nginx.pid" "$dir/redis.pid"
}

trap stop EXIT
trap 'exit 1' INT TERM HUP

rm -rf "$dir"
mkdir -p "$dir/plain" "$dir/cache" "$dir/lease" "$dir/stats"

rport=$(free_port)
declare -A port
for m in $modes; do
    port[$m]=$(free_port)
done
port[bare]=${port[plain]}

start_redis "$dir" "$rport" --save '' --appendonly no

echo "seeding $keys keys"

bench_keys "$keys"

sha256 < "$dir/valid.txt" | paste -d ' ' - "$dir/valid.txt" \
    | awk '{ printf "HSET apikey:{%s} g \"0 0 0 1000000 1 1000000 production\\nk_bench%04d\\nbench\\n%s\\nbench %d\"\n", $1, NR, substr($2, 1, 8), NR }' \
    > "$dir/seed.redis"

k=$(cat "$dir/limited.txt")
printf 'HSET apikey:{%s} g "0 0 0 1 60 1 production\\nk_limited\\nbench\\n%s\\nlimited"\n' \
    "$(sha256 <<< "$k")" "${k:0:8}" >> "$dir/seed.redis"

redis-cli -p "$rport" < "$dir/seed.redis" > /dev/null

# the other keys: the layout above, hashes that no key has, 100,000 a
# script call

if [ "$total" -gt "$keys" ]; then
    echo "seeding $((total - keys)) more keys in Redis"
fi

for ((from = 1; from <= total - keys; from += 100000)); do
    redis-cli -p "$rport" eval '
        local to = math.min(tonumber(ARGV[1]) + 99999, tonumber(ARGV[2]))
        for i = tonumber(ARGV[1]), to do
            local h = redis.sha1hex(i .. "") .. redis.sha1hex(i .. "x")
            local id = string.sub(redis.sha1hex(i .. "k"), 1, 22)
            redis.call("HSET", "apikey:{" .. string.sub(h, 1, 64) .. "}",
                       "g", "0 0 0 1000000 1 1000000 production\nk_" .. id
                            .. "\nbench\nak_" .. string.sub(id, 1, 5)
                            .. "\nfill " .. i)
        end
        return to' 0 "$from" "$((total - keys))" > /dev/null
done

if [ "$lease" = off ]; then
    lease_conf=
else
    lease_conf="apikey_rate_lease $lease;"
fi

gate_conf "$dir/plain" "${port[plain]}" "$rport" > "$dir/plain/nginx.conf"
# 16m, or 512 bytes a key
zone=$(( total > 32768 ? total / 2048 + 1 : 16 ))m

gate_conf "$dir/cache" "${port[cache]}" "$rport" \
          "apikey_cache zone=bench:$zone;" \
    > "$dir/cache/nginx.conf"
gate_conf "$dir/lease" "${port[lease]}" "$rport" \
          "apikey_cache zone=bench:$zone; $lease_conf" > "$dir/lease/nginx.conf"

for m in $modes; do
    /usr/sbin/nginx -p "$dir/$m" -c "$dir/$m/nginx.conf" -e "$dir/$m/error.log"
done

for m in $modes; do
    wait_for curl -sf -o /dev/null "http://127.0.0.1:${port[$m]}/bare"
done

wait_loaded "$total" "${port[cache]}" "${port[lease]}"
grep -h 'apikey_cache zone.*\(loaded\|too small\)' "$dir"/*/error.log || true

if [ "$lease" = off ]; then
    lease_label="lease off"
else
    lease_label="lease $lease"
fi
label[plain]="no cache"
label[lease]=$lease_label
target_mode=lease

echo "$rounds rounds of ${seconds}s per run, $conns connections," \
     "2 nginx workers per instance, apikey_rate_lease $lease"

bench_rounds
bench_report

for m in $modes; do
    curl -sf "http://127.0.0.1:${port[$m]}/metrics" > "$dir/$m/metrics.txt" \
        || true
done

if grep -q '\[\(alert\|crit\|emerg\)\]' "$dir"/*/error.log; then
    echo "alerts in the error logs:" >&2
    grep '\[\(alert\|crit\|emerg\)\]' "$dir"/*/error.log >&2
    exit 1
fi
