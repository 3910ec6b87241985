#!/bin/bash
# The admin API with one large organization: time of a first page, a deep
# page and searches, against the goals (first page and name_prefix < 50 ms,
# deep page and name search < 200 ms, medians), the longest single Redis script a search
# runs, and the gatekeeper's latency while searches run.
#
# Self-contained: starts its own redis-server and nginx on free loopback
# ports in build/bench-admin (removed at the start of the next run),
# loads the keys with admin/apikey-import (what the admin create script
# writes; its rate and its Redis time a key are printed), and stops both
# by pid at exit.  Needs build/ (make), curl,
# redis-cli, perl, wrk.
#
#   BENCH_ADMIN_KEYS      keys in the organization (default 100000)
#   BENCH_ADMIN_RUNS      requests per measured query (default 20)
#   BENCH_ADMIN_SECONDS   duration of the gatekeeper run (default 5)
#
# Exits 1 if a median misses its goal.  The queries, the import and the
# gatekeeper's rounds are t/lib/bench_admin.sh's, which t/bench_scale.sh
# runs at a million keys.

set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
nkeys=${BENCH_ADMIN_KEYS:-100000}
runs=${BENCH_ADMIN_RUNS:-20}
seconds=${BENCH_ADMIN_SECONDS:-5}
dir=$top/build/bench-admin
org=big

. "$top/t/lib/servers.sh"
. "$top/t/lib/bench_admin.sh"

stop() {
    # shellcheck disable=SC2086
    [ -n "${loops:-}" ] && kill $loops 2>/dev/null || true
    stop_pidfiles "$dir/nginx.pid" "$dir/redis.pid"
}

trap stop EXIT
trap 'exit 1' INT TERM HUP

rm -rf "$dir"
mkdir -p "$dir"

rport=$(free_port)
hport=$(free_port)

start_redis "$dir" "$rport" --save '' --appendonly no

{ read -r token; read -r line; } < <("$top/admin/apikey-token" bench '*')
echo "$line" > "$dir/tokens"

cat > "$dir/nginx.conf" <<CONF
load_module $top/build/ngx_http_apikey_module.so;
worker_processes 2;
pid $dir/nginx.pid;
error_log $dir/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    apikey_redis 127.0.0.1:$rport;
    apikey_admin_tokens $dir/tokens;
    server {
        listen 127.0.0.1:$hport reuseport backlog=4096;
        location /admin/ { apikey_admin; }
        location /gated { apikey on; empty_gif; }
    }
}
CONF

/usr/sbin/nginx -p "$dir" -c "$dir/nginx.conf" -e "$dir/error.log"

base=http://127.0.0.1:$hport/admin/orgs/$org

wait_for curl -sf -o /dev/null -H "Authorization: Bearer $token" "$base/keys"

# keys through admin/apikey-import (what the admin create script writes):
# names of three words and a number, given as hashes; the import's rate,
# and its cost to Redis from INFO commandstats

echo "loading $nkeys keys into organization $org"

admin_keys "$nkeys" "$org" > "$dir/keys.jsonl"

import_keys "$rport" "$nkeys" < "$dir/keys.jsonl"
rm -f "$dir/keys.jsonl"

# a few real keys for the gatekeeper run

gate_keys=()
for i in $(seq 1 20); do
    gate_keys+=("$(curl -s -H "Authorization: Bearer $token" \
                    -H 'Content-Type: application/json' \
                    -d '{"name":"gate '"$i"'","rate_limit":null}' \
                    "$base/keys" | perl -MJSON::PP -e \
                    'print decode_json(join "", <STDIN>)->{key}')")
done

last=$(( (nkeys + 20 + 19) / 20 ))

echo "$nkeys keys, 2 nginx workers"
admin_rows "$last"

# the longest single script of a search: what holds Redis up at once

read -r scripts longest <<< "$(longest_search "$rport")"

echo "a search walks in $scripts script calls; the longest held Redis" \
     "${longest} ms"

# the rebuild of the organization's admin indexes after an import: the
# indexes deleted, one search rebuilds them first, 25 records a call

redis-cli -p "$rport" DEL "apikey:org:$org:idx" "apikey:org:$org:active" \
    "apikey:org:$org:idx:names" > /dev/null
redis-cli -p "$rport" CONFIG SET slowlog-log-slower-than 0 > /dev/null
redis-cli -p "$rport" CONFIG SET slowlog-max-len 100000 > /dev/null
redis-cli -p "$rport" SLOWLOG RESET > /dev/null
start=$(date +%s%N)
curl -s -o /dev/null -H "Authorization: Bearer $token" \
    "$base/keys?search=nothing+here"
rebuild_ms=$(( ($(date +%s%N) - start) / 1000000 ))
rlongest=$(slowlog_longest "$rport" 100000)
rcalls=$(redis-cli -p "$rport" SLOWLOG LEN)
redis-cli -p "$rport" CONFIG SET slowlog-log-slower-than 10000 > /dev/null

echo "index rebuild after an import, then the search: ${rebuild_ms} ms," \
     "$rcalls Redis commands; the longest held Redis ${rlongest} ms (goal 2)"

for v in "$longest" "$rlongest"; do
    if awk -v m="$v" 'BEGIN { exit !(m > 2) }'; then
        fails=$((fails + 1))
    fi
done

# the gatekeeper while searches run back to back

printf '%s\n' "${gate_keys[@]}" > "$dir/gate-keys.txt"
wrk_script "$dir/gate-keys.txt" "$dir/keys.lua"

gate_while_searching 8 "http://127.0.0.1:$hport/gated" "$dir/keys.lua"

if [ "$fails" != 0 ]; then
    echo "$fails median(s) over the goal" >&2
    exit 1
fi
