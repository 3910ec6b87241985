# The rounds of t/bench_cache.sh, shared with t/bench_scale.sh: the bench's
# keys, wrk runs with Redis's commandstats and CPU time of each, the
# rounds over kinds of traffic and gatekeeping modes, and their report.
# Sourced after t/lib/servers.sh, with these set:
#
#   dir        the bench's directory (keys, wrk scripts, stats/, runs.tsv)
#   keytool    build/apikey-key
#   seconds rounds conns
#   kinds      the kinds of traffic: valid limited malformed unknown
#   modes      the gatekeeping modes, each an nginx instance serving /gated
#   port       (associative) port[MODE]; port[bare]: the instance whose
#              /bare the bare runs ask
#   rport      the Redis port, or, per mode, redis[MODE] (associative,
#              optional; redis[bare] for the bare runs)
#   label      (associative, optional) label[MODE]: the report's column
#   target_mode  the mode the report's targets are read from
#   module     the module nginx loads

sha256() {
    python3 -c 'import hashlib, sys
for k in sys.stdin:
    print(hashlib.sha256(k.strip().encode()).hexdigest())'
}

# bench_keys N: N valid keys, N unknown ones (well formed, never stored),
# one for the limited kind and a malformed one, one a line in
# $dir/KIND.txt, with their wrk scripts $dir/KIND.lua; the keys are
# generated a few at a time (a process each), their secret hashes
# (SHA-256, hex) made in one python3, checked against the key tool's

bench_keys() {
    local n=$1 k kind
    seq 1 $((2 * n + 1)) | xargs -P4 -I{} "$keytool" gen ak > "$dir/keys.txt"
    head -n "$n" "$dir/keys.txt" > "$dir/valid.txt"
    sed -n "$((n + 1)),$((2 * n))p" "$dir/keys.txt" > "$dir/unknown.txt"
    tail -n 1 "$dir/keys.txt" > "$dir/limited.txt"

    k=$(head -n 1 "$dir/valid.txt")
    if [ "$(sha256 <<< "$k")" != "$($keytool hash "$k")" ]; then
        echo "the key tool's hash is not SHA-256 of the key" >&2
        exit 1
    fi

    # the right length and alphabet, a wrong checksum
    k=$(cat "$dir/limited.txt")
    echo "ak_${k:3:-1}$([ "${k: -1}" = A ] && echo B || echo A)" \
        > "$dir/malformed.txt"

    for kind in valid limited malformed unknown; do
        wrk_script "$dir/$kind.txt" "$dir/$kind.lua"
    done
}

# the replica of the instance at port $1 is loaded when its lag is no
# longer -1
loaded() {
    curl -sf "http://127.0.0.1:$1/metrics" \
        | grep -q '^apikey_replica_lag_seconds [0-9]'
}

# wait_loaded KEYS PORT...: until each replica is loaded, a second per
# 10,000 keys at least
wait_loaded() {
    local n=$1 i p ok
    shift
    for ((i = 0; i < n / 1000 + 100; i++)); do
        ok=1
        for p in "$@"; do
            loaded "$p" || ok=
        done
        [ -n "$ok" ] && break
        sleep 0.1
    done
    for p in "$@"; do
        wait_for loaded "$p"
    done
}

# the instance at port $1's checks by status, "status count" lines
checks() {
    curl -sf "http://127.0.0.1:$1/metrics" \
        | sed -n 's/^apikey_checks_total{status="\([a-z]*\)"} \([0-9]*\)$/\1 \2/p'
}

# Redis's CPU seconds so far, user and system (INFO cpu), of the Redis at
# port $1 (default $rport)
redis_cpu() {
    redis-cli -p "${1:-$rport}" info cpu | tr -d '\r' | awk -F: '
        /^used_cpu_(sys|user):/ { t += $2 } END { printf "%.6f\n", t }'
}

# run SECONDS KIND PORT LOCATION NAME [REDIS_PORT]: one wrk run, Redis's
# commandstats of it kept in $dir/stats/NAME, the checks it made by status
# (as "ok=N,limited=N") in $dir/stats/NAME.checks; prints "requests/s p50
# p99 requests non2xx errors calls trips redis_us", the latencies in ms,
# redis_us the CPU time (user and system) Redis spent during the run
run() {
    local out cpu0 cpu1 rp=${6:-$rport}
    checks "$3" > "$dir/stats/$5.before"
    redis-cli -p "$rp" config resetstat > /dev/null
    cpu0=$(redis_cpu "$rp")
    out=$(wrk -t2 -c"$conns" -d"${1}s" --latency -s "$dir/$2.lua" \
              "http://127.0.0.1:$3/$4")
    cpu1=$(redis_cpu "$rp")
    redis-cli -p "$rp" info commandstats | tr -d '\r' \
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

# gate_conf DIR PORT REDIS_PORT [DIRECTIVES [LOCATIONS]]: an instance's
# nginx.conf: /bare, /gated and /metrics (and LOCATIONS), DIRECTIVES in
# its http block, $module loaded
gate_conf() {
    cat <<CONF
load_module $module;
worker_processes 2;
pid $1/nginx.pid;
error_log $1/error.log notice;
events { worker_connections 4096; }
http {
    access_log off;
    apikey_redis 127.0.0.1:$3;
    apikey_redis_timeout 1s;
    ${4:-}
    server {
        listen 127.0.0.1:$2 reuseport backlog=4096;
        location /bare { empty_gif; }
        location /gated { apikey on; empty_gif; }
        location = /metrics { apikey_metrics; }
        ${5:-}
    }
}
CONF
}

mode_label() {
    echo "${label[$1]:-$1}"
}

# the Redis port of mode $1
mode_redis() {
    echo "${redis[$1]:-$rport}"
}

# figures[KIND,MODE,METRIC]: the rounds' values, space separated
declare -A figures
declare -A label
declare -A redis
warnings=

add() {
    figures[$1,$2,$3]="${figures[$1,$2,$3]:-} $4"
}

# bench_rounds: warm-up, then $rounds rounds of every kind: the bare
# location, then the gatekept one of each mode; each run's figures in
# $dir/runs.tsv and figures[]
bench_rounds() {
    local m round kind p loc r p50 p99 n bad err calls trips rus want least
    local line

    echo "warming up"
    for m in $modes; do
        run 1 valid "${port[$m]}" gated "warmup-$m" "$(mode_redis "$m")" \
            > /dev/null
    done

    line=$(printf '%-6s %-10s %12s' round kind "bare r/s")
    for m in $modes; do
        line="$line$(printf ' %14s' "$(mode_label "$m") r/s")"
    done
    echo "$line"

    printf 'round\tkind\tmode\trps\tp50_ms\tp99_ms\trequests\tnon2xx\terrors\tcalls\ttrips\tredis_us\tchecks\n' \
        > "$dir/runs.tsv"

    for round in $(seq 1 "$rounds"); do
        for kind in $kinds; do
            declare -A rps=()
            for m in bare $modes; do
                if [ "$m" = bare ]; then
                    loc=bare
                else
                    loc=gated
                fi
                p=${port[$m]}
                read -r r p50 p99 n bad err calls trips rus \
                    <<< "$(run "$seconds" "$kind" "$p" "$loc" \
                               "$round-$kind-$m" "$(mode_redis "$m")")"
                printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' \
                    "$round" "$kind" "$m" "$r" "$p50" "$p99" "$n" "$bad" \
                    "$err" "$calls" "$trips" "$rus" \
                    "$(cat "$dir/stats/$round-$kind-$m.checks")" \
                    >> "$dir/runs.tsv"
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

            line=$(printf '%-6s %-10s %12s' "$round" "$kind" "${rps[bare]}")
            for m in $modes; do
                line="$line$(printf ' %14s' "${rps[$m]}")"
            done
            echo "$line"
        done
    done
}

# the median of the rounds' figures[$1], with format $2
med() {
    median "$2" <<< "${figures[$1]}"
}

# cache_row KIND LABEL METRIC FORMAT [TARGET_TEXT OP LIMIT]: the medians
# of every mode, and the target's PASS or MISS in $target_mode
cache_row() {
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
        v=$(med "$kind,$target_mode,$metric" %.6f)
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

# bench_report: the medians per kind and mode, then the commands that
# make Redis's calls, then any runs whose answers were not their kind's
bench_report() {
    local kind m n top5 line

    echo
    echo "medians of $rounds rounds"
    echo "(calls/req: Redis commands per request, the scripts' own included;"
    echo " trips/req: script calls per request, what nginx sends; bare: background;"
    echo " Redis us/req: Redis's CPU time per request, and the requests/s one Redis"
    echo " core would take at that cost, 'per core')"
    line=$(printf '  %-14s %11s' "" bare)
    for m in $modes; do
        line="$line$(printf ' %11s' "$(mode_label "$m")")"
    done
    echo "$line   $(mode_label "$target_mode") target"

    for kind in $kinds; do
        echo "$kind"
        cache_row "$kind" "requests/s" rps %.0f
        cache_row "$kind" "p50 ms" p50 %.3f
        cache_row "$kind" "p99 ms" p99 %.3f
        if [ "$kind" = valid ]; then
            cache_row "$kind" "calls/req" calls %.4f "calls <= 0.02" "<=" 0.02
        else
            cache_row "$kind" "calls/req" calls %.4f
        fi
        cache_row "$kind" "trips/req" trips %.4f
        cache_row "$kind" "Redis us/req" rus %.2f
        cache_row "$kind" "per core r/s" rcore %.0f
        cache_row "$kind" "ratio to bare" ratio %.3f "ratio >= 0.9" ">=" 0.9
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
            printf '  %-10s %-11s %s\n' "$kind" "$(mode_label "$m")" \
                   "${top5:--}"
        done
    done

    if [ -n "$warnings" ]; then
        echo
        echo "unexpected answers (figures of these runs are suspect):$warnings"
    fi
}
