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

# the keys, generated a few at a time (a process each); their secret
# hashes (SHA-256, hex) in one python3, checked against the key tool's

seq 1 $((2 * keys + 1)) | xargs -P4 -I{} "$keytool" gen ak > "$dir/keys.txt"
head -n "$keys" "$dir/keys.txt" > "$dir/valid.txt"
sed -n "$((keys + 1)),$((2 * keys))p" "$dir/keys.txt" > "$dir/unknown.txt"
tail -n 1 "$dir/keys.txt" > "$dir/limited.txt"

sha256() {
    python3 -c 'import hashlib, sys
for k in sys.stdin:
    print(hashlib.sha256(k.strip().encode()).hexdigest())'
}

k=$(head -n 1 "$dir/valid.txt")
if [ "$(sha256 <<< "$k")" != "$($keytool hash "$k")" ]; then
    echo "the key tool's hash is not SHA-256 of the key" >&2
    exit 1
fi

sha256 < "$dir/valid.txt" | paste -d ' ' - "$dir/valid.txt" \
    | awk '{ printf "HSET apikey:{%s} g \"0 0 0 1000000 1 1000000 production\\nk_bench%04d\\nbench\\n%s\\nbench %d\"\n", $1, NR, substr($2, 1, 8), NR }' \
    > "$dir/seed.redis"

k=$(cat "$dir/limited.txt")
printf 'HSET apikey:{%s} g "0 0 0 1 60 1 production\\nk_limited\\nbench\\n%s\\nlimited"\n' \
    "$(sha256 <<< "$k")" "${k:0:8}" >> "$dir/seed.redis"

# the right length and alphabet, a wrong checksum
echo "ak_${k:3:-1}$([ "${k: -1}" = A ] && echo B || echo A)" \
    > "$dir/malformed.txt"

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

for kind in $kinds; do
    wrk_script "$dir/$kind.txt" "$dir/$kind.lua"
done

conf() {
    cat <<CONF
load_module $module;
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

if [ "$lease" = off ]; then
    lease_conf=
else
    lease_conf="apikey_rate_lease $lease;"
fi

conf "$dir/plain" "${port[plain]}" "" > "$dir/plain/nginx.conf"
# 16m, or 512 bytes a key
zone=$(( total > 32768 ? total / 2048 + 1 : 16 ))m

conf "$dir/cache" "${port[cache]}" "apikey_cache zone=bench:$zone;" \
    > "$dir/cache/nginx.conf"
conf "$dir/lease" "${port[lease]}" \
     "apikey_cache zone=bench:$zone; $lease_conf" > "$dir/lease/nginx.conf"

for m in $modes; do
    /usr/sbin/nginx -p "$dir/$m" -c "$dir/$m/nginx.conf" -e "$dir/$m/error.log"
done

for m in $modes; do
    wait_for curl -sf -o /dev/null "http://127.0.0.1:${port[$m]}/bare"
done

# the replica is loaded when its lag is no longer -1
loaded() {
    curl -sf "http://127.0.0.1:$1/metrics" \
        | grep -q '^apikey_replica_lag_seconds [0-9]'
}
# a second per 10,000 keys at least
for ((i = 0; i < total / 1000 + 100; i++)); do
    loaded "${port[cache]}" && loaded "${port[lease]}" && break
    sleep 0.1
done
wait_for loaded "${port[cache]}"
wait_for loaded "${port[lease]}"
grep -h 'apikey_cache zone.*\(loaded\|too small\)' "$dir"/*/error.log || true

# the instance at port $1's checks by status, "status count" lines
checks() {
    curl -sf "http://127.0.0.1:$1/metrics" \
        | sed -n 's/^apikey_checks_total{status="\([a-z]*\)"} \([0-9]*\)$/\1 \2/p'
}

# run SECONDS KIND PORT LOCATION NAME: one wrk run, Redis's commandstats of
# it kept in $dir/stats/NAME, the checks it made by status (as
# "ok=N,limited=N") in $dir/stats/NAME.checks; prints "requests/s p50 p99
# requests non2xx errors calls trips redis_us", the latencies in ms,
# redis_us the CPU time (user and system) Redis spent during the run
run() {
    local out cpu0 cpu1
    checks "$3" > "$dir/stats/$5.before"
    redis-cli -p "$rport" config resetstat > /dev/null
    cpu0=$(redis_cpu)
    out=$(wrk -t2 -c"$conns" -d"${1}s" --latency -s "$dir/$2.lua" \
              "http://127.0.0.1:$3/$4")
    cpu1=$(redis_cpu)
    redis-cli -p "$rport" info commandstats | tr -d '\r' \
        | grep '^cmdstat_' | grep -v '^cmdstat_\(info\|config\)' \
        > "$dir/stats/$5" || true
    checks "$3" | awk 'NR == FNR { b[$1] = $2; next }
                       $2 > b[$1] { printf "%s%s=%d", s, $1, $2 - b[$1]; s = "," }
                       END { print "" }' "$dir/stats/$5.before" - \
        > "$dir/stats/$5.checks"
    echo "$out" > "$dir/stats/$5.wrk"
    {
        echo "$out"
        echo "--- commandstats"
        cat "$dir/stats/$5"
    } | awk -F'[:,=]' '
        function ms(v,  n) {
            n = v + 0
            if (v ~ /us$/) return n / 1000
            if (v ~ /ms$/) return n
            if (v ~ /s$/)  return n * 1000
            if (v ~ /m$/)  return n * 60000
            if (v ~ /h$/)  return n * 3600000
            return n
        }
        /^--- commandstats/ { stats = 1; next }
        stats {
            calls += $3
            if ($1 ~ /^cmdstat_(eval|evalsha|fcall)(_ro)?$/) trips += $3
            next
        }
        { split($0, w, " ") }
        /Requests\/sec/   { rps = w[2] }
        /^ +50%/          { p50 = ms(w[2]) }
        /^ +99%/          { p99 = ms(w[2]) }
        /requests in/     { n = w[1] }
        /Non-2xx/         { bad = w[5] }
        /Socket errors/   { err = w[4] + w[6] + w[8] + w[10] }
        END {
            printf "%.2f %.3f %.3f %d %d %d %d %d %.0f\n", rps, p50, p99, n,
                   bad, err, calls, trips, (cpu1 - cpu0) * 1e6
        }' cpu0="$cpu0" cpu1="$cpu1"
}

# Redis's CPU seconds so far, user and system (INFO cpu)
redis_cpu() {
    redis-cli -p "$rport" info cpu | tr -d '\r' | awk -F: '
        /^used_cpu_(sys|user):/ { t += $2 } END { printf "%.6f\n", t }'
}

echo "warming up"
for m in $modes; do
    run 1 valid "${port[$m]}" gated "warmup-$m" > /dev/null
done

if [ "$lease" = off ]; then
    lease_label="lease off"
else
    lease_label="lease $lease"
fi

echo "$rounds rounds of ${seconds}s per run, $conns connections," \
     "2 nginx workers per instance, apikey_rate_lease $lease"
printf '%-6s %-10s %12s %14s %14s %14s\n' round kind "bare r/s" "gated r/s" \
       "cached r/s" "leased r/s"

printf 'round\tkind\tmode\trps\tp50_ms\tp99_ms\trequests\tnon2xx\terrors\tcalls\ttrips\tredis_us\tchecks\n' \
    > "$dir/runs.tsv"

# figures[KIND,MODE,METRIC]: the rounds' values, space separated
declare -A figures
warnings=

add() {
    figures[$1,$2,$3]="${figures[$1,$2,$3]:-} $4"
}

for round in $(seq 1 "$rounds"); do
    for kind in $kinds; do
        declare -A rps=()
        for m in bare $modes; do
            if [ "$m" = bare ]; then
                p=${port[plain]} loc=bare
            else
                p=${port[$m]} loc=gated
            fi
            read -r r p50 p99 n bad err calls trips rus \
                <<< "$(run "$seconds" "$kind" "$p" "$loc" \
                           "$round-$kind-$m")"
            printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' \
                "$round" "$kind" "$m" "$r" "$p50" "$p99" "$n" "$bad" \
                "$err" "$calls" "$trips" "$rus" \
                "$(cat "$dir/stats/$round-$kind-$m.checks")" >> "$dir/runs.tsv"
            rps[$m]=$r

            # what each run should answer: 2xx, but 4xx for gatekept
            # requests of other keys than valid ones (the limited key
            # may get a token a minute)
            if [ "$m" = bare ] || [ "$kind" = valid ]; then
                want=0 least=0
            elif [ "$kind" = limited ]; then
                want=$n least=$((n - 1))
            else
                want=$n least=$n
            fi
            if [ "$bad" -gt "$want" ] || [ "$bad" -lt "$least" ] \
               || [ "$err" != 0 ] || [ "$n" = 0 ]; then
                warnings="$warnings
  round $round, $kind, $m: $n requests, $bad not 2xx (expected $want), $err socket errors; checks: $(cat "$dir/stats/$round-$kind-$m.checks")"
            fi

            add "$kind" "$m" rps "$r"
            add "$kind" "$m" p50 "$p50"
            add "$kind" "$m" p99 "$p99"
            add "$kind" "$m" calls \
                "$(awk -v c="$calls" -v n="$n" 'BEGIN { print n ? c / n : 0 }')"
            add "$kind" "$m" trips \
                "$(awk -v c="$trips" -v n="$n" 'BEGIN { print n ? c / n : 0 }')"
            add "$kind" "$m" rus \
                "$(awk -v c="$rus" -v n="$n" 'BEGIN { print n ? c / n : 0 }')"
            add "$kind" "$m" rcore \
                "$(awk -v c="$rus" -v n="$n" \
                       'BEGIN { print (c > 0 ? n * 1e6 / c : 0) }')"
            if [ "$m" != bare ]; then
                add "$kind" "$m" ratio \
                    "$(awk -v g="$r" -v b="${rps[bare]}" \
                           'BEGIN { print b ? g / b : 0 }')"
            fi
        done

        printf '%-6s %-10s %12s %14s %14s %14s\n' "$round" "$kind" \
               "${rps[bare]}" "${rps[plain]}" "${rps[cache]}" "${rps[lease]}"
    done
done

# the report

med() {
    median "$2" <<< "${figures[$1]}"
}

# row KIND LABEL METRIC FORMAT [TARGET_TEXT OP LIMIT]
row() {
    local kind=$1 label=$2 metric=$3 f=$4 m line v word
    line=$(printf '  %-14s' "$label")
    for m in bare $modes; do
        if [ -n "${figures[$kind,$m,$metric]:-}" ]; then
            v=$(med "$kind,$m,$metric" "$f")
        else
            v=-
        fi
        line="$line$(printf ' %11s' "$v")"
    done
    if [ $# -gt 4 ]; then
        v=$(med "$kind,lease,$metric" %.6f)
        if awk -v v="$v" -v l="$7" -v op="$6" \
               'BEGIN { exit !(op == ">=" ? v >= l : v <= l) }'; then
            word=PASS
        else
            word=MISS
        fi
        line="$line$(printf '   %-13s %s' "$5" "$word")"
    fi
    echo "$line"
}

echo
echo "medians of $rounds rounds, apikey_rate_lease $lease"
echo "(calls/req: Redis commands per request, the scripts' own included;"
echo " trips/req: script calls per request, what nginx sends; bare: background;"
echo " Redis us/req: Redis's CPU time per request, and the requests/s one Redis"
echo " core would take at that cost, 'per core')"
printf '  %-14s %11s %11s %11s %11s   %s\n' "" bare "no cache" cache \
       "$lease_label" "lease target"

for kind in $kinds; do
    echo "$kind"
    row "$kind" "requests/s" rps %.0f
    row "$kind" "p50 ms" p50 %.3f
    row "$kind" "p99 ms" p99 %.3f
    if [ "$kind" = valid ]; then
        row "$kind" "calls/req" calls %.4f "calls <= 0.02" "<=" 0.02
    else
        row "$kind" "calls/req" calls %.4f
    fi
    row "$kind" "trips/req" trips %.4f
    row "$kind" "Redis us/req" rus %.2f
    row "$kind" "per core r/s" rcore %.0f
    row "$kind" "ratio to bare" ratio %.3f "ratio >= 0.9" ">=" 0.9
done

# which commands make the calls: per request, over all rounds

echo
echo "Redis commands per request by name (all rounds, top 5):"
for kind in $kinds; do
    for m in $modes; do
        n=$(awk -F'\t' -v k="$kind" -v m="$m" \
                '$2 == k && $3 == m { n += $7 } END { print n + 0 }' \
                "$dir/runs.tsv")
        top5=$(for round in $(seq 1 "$rounds"); do
                   cat "$dir/stats/$round-$kind-$m"
               done | awk -F'[:,=]' -v n="$n" '
                   { c[substr($1, 9)] += $3 }
                   END { for (k in c) printf "%s %.4f\n", k, n ? c[k] / n : 0 }' \
               | sort -k2 -g -r | head -5 | tr '\n' ' ')
        case $m in
            plain) label="no cache" ;;
            cache) label=cache ;;
            lease) label=$lease_label ;;
        esac
        printf '  %-10s %-11s %s\n' "$kind" "$label" "${top5:--}"
    done
done

for m in $modes; do
    curl -sf "http://127.0.0.1:${port[$m]}/metrics" > "$dir/$m/metrics.txt" \
        || true
done

if [ -n "$warnings" ]; then
    echo
    echo "unexpected answers (figures of these runs are suspect):$warnings"
fi

if grep -q '\[\(alert\|crit\|emerg\)\]' "$dir"/*/error.log; then
    echo "alerts in the error logs:" >&2
    grep '\[\(alert\|crit\|emerg\)\]' "$dir"/*/error.log >&2
    exit 1
fi
