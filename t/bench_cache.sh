#!/bin/bash
# make bench, part 2: apikey_cache.  Requests/s of a gatekept location
# against a bare one, in the same rounds, for four kinds of traffic, with
# and without the replica:
#
#   valid       a random one of 1000 keys whose limit never triggers
#   limited     one key far over its limit (1r/m): 429s
#   malformed   a key that fails the checksum: 401s
#   unknown     a random one of 1000 well-formed keys Redis does not hold
#
# Two nginx instances share one Redis: one without apikey_cache, one with
# it; each serves /bare and /gated (and /metrics, to see the replica
# loaded; both count, so the ratio between them is the replica's alone).  Each round runs, per kind, the bare
# location, the gatekept one without the cache and with it; the ratios
# printed at the end are medians over the rounds.
#
#   BENCH_SECONDS   duration of each measured run (default 3)
#   BENCH_CACHE_ROUNDS  rounds (default 3)
#   BENCH_CONNS     wrk connections (default 64)

set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
seconds=${BENCH_SECONDS:-3}
rounds=${BENCH_CACHE_ROUNDS:-3}
conns=${BENCH_CONNS:-64}
keys=1000
dir=$top/build/bench-cache
keytool=$top/build/apikey-key

. "$top/t/lib/servers.sh"

stop() {
    stop_pidfiles "$dir/plain/nginx.pid" "$dir/cache/nginx.pid" \
                  "$dir/redis.pid"
}

trap stop EXIT
trap 'exit 1' INT TERM HUP

rm -rf "$dir"
mkdir -p "$dir/plain" "$dir/cache"

rport=$(free_port)
pport=$(free_port)
cport=$(free_port)

start_redis "$dir" "$rport" --save '' --appendonly no

# a wrk script sending one of the keys in the file given, at random

wrk_script() {
    {
        echo "local keys = {"
        sed 's/.*/"&",/' "$1"
        echo "}"
        cat <<'LUA'
math.randomseed(os.time())
request = function()
    local h = { ["X-API-Key"] = keys[math.random(#keys)] }
    return wrk.format("GET", wrk.path, h)
end
LUA
    } > "$2"
}

echo "seeding $keys keys"

: > "$dir/seed.redis"
: > "$dir/valid.txt"
: > "$dir/unknown.txt"

for i in $(seq 1 $keys); do
    k=$($keytool gen ak)
    h=$($keytool hash "$k")
    printf 'HSET apikey:{%s} g "0 0 0 1000000 1 1000000 production\\nk_bench%04d\\nbench\\n%s\\nbench %d"\n' \
        "$h" "$i" "${k:0:8}" "$i" >> "$dir/seed.redis"
    echo "$k" >> "$dir/valid.txt"
    $keytool gen ak >> "$dir/unknown.txt"
done

k=$($keytool gen ak)
h=$($keytool hash "$k")
printf 'HSET apikey:{%s} g "0 0 0 1 60 1 production\\nk_limited\\nbench\\n%s\\nlimited"\n' \
    "$h" "${k:0:8}" >> "$dir/seed.redis"
echo "$k" > "$dir/limited.txt"

# the right length and alphabet, a wrong checksum
echo "ak_${k:3:-1}$([ "${k: -1}" = A ] && echo B || echo A)" \
    > "$dir/malformed.txt"

redis-cli -p "$rport" < "$dir/seed.redis" > /dev/null

for kind in valid limited malformed unknown; do
    wrk_script "$dir/$kind.txt" "$dir/$kind.lua"
done

conf() {
    cat <<CONF
load_module $top/build/ngx_http_apikey_module.so;
worker_processes 2;
pid $1/nginx.pid;
error_log $1/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    apikey_redis 127.0.0.1:$rport;
    apikey_redis_timeout 1s;
    $3
    server {
        listen 127.0.0.1:$2 reuseport backlog=4096;
        location /bare { empty_gif; }
        location /gated { apikey on; empty_gif; }
        location = /metrics { apikey_metrics; }
    }
}
CONF
}

conf "$dir/plain" "$pport" "" > "$dir/plain/nginx.conf"
conf "$dir/cache" "$cport" "apikey_cache zone=bench:16m;" \
    > "$dir/cache/nginx.conf"

for i in plain cache; do
    /usr/sbin/nginx -p "$dir/$i" -c "$dir/$i/nginx.conf" \
                    -e "$dir/$i/error.log"
done

wait_for curl -sf -o /dev/null "http://127.0.0.1:$pport/bare"
wait_for curl -sf -o /dev/null "http://127.0.0.1:$cport/bare"

# the replica is loaded when its lag is no longer -1
loaded() {
    curl -sf "http://127.0.0.1:$cport/metrics" \
        | grep -q '^apikey_replica_lag_seconds [0-9]'
}
wait_for loaded

# requests/s of a kind at a port and location
run() {
    wrk -t2 -c"$conns" -d"${1}s" -s "$dir/$2.lua" \
        "http://127.0.0.1:$3/$4" \
        | awk '/Requests\/sec/ { print $2 }'
}

echo "warming up"
for kind in valid limited malformed unknown; do
    run 1 "$kind" "$pport" gated > /dev/null
    run 1 "$kind" "$cport" gated > /dev/null
done

echo "$rounds rounds of ${seconds}s per run, $conns connections," \
     "2 nginx workers per instance"
printf '%-6s %-10s %12s %14s %14s\n' round kind "bare r/s" "gated r/s" \
       "cached r/s"

declare -A plain cached

for round in $(seq 1 "$rounds"); do
    for kind in valid limited malformed unknown; do
        b=$(run "$seconds" "$kind" "$pport" bare)
        g=$(run "$seconds" "$kind" "$pport" gated)
        c=$(run "$seconds" "$kind" "$cport" gated)

        printf '%-6s %-10s %12s %14s %14s\n' "$round" "$kind" "$b" "$g" "$c"

        plain[$kind]="${plain[$kind]:-} $(awk -v g="$g" -v b="$b" \
                                              'BEGIN { print g / b }')"
        cached[$kind]="${cached[$kind]:-} $(awk -v g="$c" -v b="$b" \
                                                'BEGIN { print g / b }')"
    done
done

echo "ratio to bare (median), without and with apikey_cache:"

for kind in valid limited malformed unknown; do
    printf '  %-10s %s  %s\n' "$kind" "$(median %.2f <<< "${plain[$kind]}")" \
           "$(median %.2f <<< "${cached[$kind]}")"
done

if grep -q '\[\(alert\|crit\|emerg\)\]' "$dir"/*/error.log; then
    echo "alerts in the error logs:" >&2
    grep '\[\(alert\|crit\|emerg\)\]' "$dir"/*/error.log >&2
    exit 1
fi
