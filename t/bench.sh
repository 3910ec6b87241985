#!/bin/bash
# make bench: requests/s of a gatekept location against the same location
# without the gatekeeper, in one run, on loopback.
#
# Both locations serve empty_gif (`return` would answer before the access
# phase and skip the gatekeeper).  wrk sends a random key per request out of
# 1000 seeded keys whose limit never triggers.  Bare and gatekept runs
# alternate for several rounds, since a shared machine's speed drifts;
# each round gives a ratio and the last line is their median.
#
# A second nginx, the same but with apikey_metrics, runs the gatekept
# location in the same rounds: its ratio to the first is what counting
# costs the request path.
#
#   BENCH_SECONDS   duration of each measured run (default 3)
#   BENCH_ROUNDS    rounds of one bare and one gatekept run (default 9)
#   BENCH_CONNS     wrk connections (default 64)

set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
seconds=${BENCH_SECONDS:-3}
rounds=${BENCH_ROUNDS:-9}
conns=${BENCH_CONNS:-64}
keys=1000
dir=$top/build/bench
keytool=$top/build/apikey-key

. "$top/t/lib/servers.sh"

stop() {
    stop_pidfiles "$dir/nginx.pid" "$dir/m/nginx.pid" "$dir/redis.pid"
}

trap stop EXIT
trap 'exit 1' INT TERM HUP

rm -rf "$dir"
mkdir -p "$dir"

rport=$(free_port)
hport=$(free_port)
mport=$(free_port)

start_redis "$dir" "$rport" --save '' --appendonly no

# seed: the secret hashes of docs/data-model.md, with a limit far above
# what the run can reach

echo "seeding $keys keys"
for i in $(seq 1 $keys); do
    k=$($keytool gen ak)
    h=$($keytool hash "$k")
    printf 'HSET apikey:{%s} g "0 0 0 1000000 1 1000000 production\\nk_bench%04d\\nbench\\n%s\\nbench %d"\n' \
        "$h" "$i" "${k:0:8}" "$i" >> "$dir/seed.redis"
    echo "$k" >> "$dir/keys.txt"
done
wrk_script "$dir/keys.txt" "$dir/keys.lua"

redis-cli -p "$rport" < "$dir/seed.redis" > /dev/null

cat > "$dir/nginx.conf" <<CONF
load_module $top/build/ngx_http_apikey_module.so;
worker_processes 2;
pid $dir/nginx.pid;
error_log $dir/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    apikey_redis 127.0.0.1:$rport;
    apikey_redis_timeout 1s;
    server {
        listen 127.0.0.1:$hport reuseport backlog=4096;
        location /bare { empty_gif; }
        location /gated { apikey on; empty_gif; }
    }
}
CONF

/usr/sbin/nginx -p "$dir" -c "$dir/nginx.conf" -e "$dir/error.log"

mkdir -p "$dir/m"
sed -e "s|$dir/nginx.pid|$dir/m/nginx.pid|" \
    -e "s|127.0.0.1:$hport |127.0.0.1:$mport |" \
    -e "s|location /bare { empty_gif; }|location = /metrics { apikey_metrics; }|" \
    "$dir/nginx.conf" > "$dir/m/nginx.conf"
/usr/sbin/nginx -p "$dir/m" -c "$dir/m/nginx.conf" -e "$dir/m/error.log"

wait_for curl -sf -o /dev/null "http://127.0.0.1:$hport/bare"
wait_for curl -sf -o /dev/null "http://127.0.0.1:$mport/metrics"
wait_for test -s "$dir/nginx.pid"

evalsha() {
    redis-cli -p "$rport" info commandstats \
        | sed -n 's/^cmdstat_evalsha:calls=\([0-9]*\),.*/\1/p' | tr -d '\r'
}

commands() {
    redis-cli -p "$rport" info stats \
        | sed -n 's/^total_commands_processed:\([0-9]*\).*/\1/p' | tr -d '\r'
}

# prints "requests/s p50 p99 requests non2xx"; a third argument: the port
run() {
    local out
    out=$(wrk -t2 -c"$conns" -d"${1}s" --latency -s "$dir/keys.lua" \
              "http://127.0.0.1:${3:-$hport}/$2")
    echo "$out" > "$dir/wrk-$2.txt"
    awk '
        /Requests\/sec/ { rps = $2 }
        /^ +50%/ { p50 = $2 }
        /^ +99%/ { p99 = $2 }
        /requests in/ { n = $1 }
        /Non-2xx/ { bad = $NF }
        END { printf "%s %s %s %s %s\n", rps, p50, p99, n, bad + 0 }
    ' <<< "$out"
}

echo "warming up"
run 2 bare > /dev/null
run 2 gated > /dev/null

echo "$rounds rounds of ${seconds}s bare + ${seconds}s gatekept," \
     "$conns connections, 2 nginx workers"

printf '%-8s %-6s %12s %10s %10s\n' round "" "requests/s" "p50" "p99"

ratios=
mratios=
e_sum=0
c_sum=0
n_sum=0

for round in $(seq 1 "$rounds"); do
    read -r b_rps b_p50 b_p99 b_n b_bad <<< "$(run "$seconds" bare)"

    e0=$(evalsha)
    c0=$(commands)
    read -r g_rps g_p50 g_p99 g_n g_bad <<< "$(run "$seconds" gated)"
    e1=$(evalsha)
    c1=$(commands)

    read -r m_rps m_p50 m_p99 m_n m_bad <<< "$(run "$seconds" gated "$mport")"

    if [ "$g_bad" != 0 ] || [ "$b_bad" != 0 ] || [ "$m_bad" != 0 ]; then
        echo "non-2xx responses: bare $b_bad, gated $g_bad," \
             "with metrics $m_bad" >&2
        exit 1
    fi

    printf '%-8s %-6s %12s %10s %10s\n' "$round" bare "$b_rps" "$b_p50" "$b_p99"
    printf '%-8s %-6s %12s %10s %10s\n' "$round" gated "$g_rps" "$g_p50" "$g_p99"
    printf '%-8s %-6s %12s %10s %10s\n' "$round" metric "$m_rps" "$m_p50" \
                                                   "$m_p99"

    ratios="$ratios $(awk -v g="$g_rps" -v b="$b_rps" 'BEGIN { print g / b }')"
    mratios="$mratios $(awk -v m="$m_rps" -v g="$g_rps" \
                            'BEGIN { print m / g }')"
    e_sum=$((e_sum + e1 - e0))
    c_sum=$((c_sum + c1 - c0))
    n_sum=$((n_sum + g_n))
done

awk -v e="$e_sum" -v c="$c_sum" -v n="$n_sum" 'BEGIN {
    printf "redis round trips (script calls) per gatekept request: %.3f\n", e / n
    printf "checks per script call: %.1f\n", n / e
    printf "redis commands per gatekept request (with the script'"'"'s own): %.3f\n", c / n
}'

echo "round ratios:$ratios"
echo "metrics round ratios (gatekept with apikey_metrics / without):$mratios"
echo "metrics ratio: $(median <<< "$mratios")"
printf 'ratio: %.2f\n' "$(median <<< "$ratios")"
