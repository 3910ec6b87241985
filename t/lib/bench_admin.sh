# The admin API's timings of t/bench_admin.sh, shared with
# t/bench_scale.sh: keys for one large organization, their import with its
# cost to Redis, and the list queries timed against their goals.  Sourced
# after t/lib/servers.sh, with these set:
#
#   dir      the bench's directory
#   top      the source tree
#   runs     requests per measured query
#   base     the organization's admin URL (http://.../admin/orgs/ORG)
#   token    an admin token for it
#   admin_goal_stat  what a goal is held against: median (the default)
#                    or p99
#
# admin_row counts the misses in fails.

fails=0

# admin_keys N ORG [ORGS]: N keys of organization ORG as apikey-import's
# JSON lines: names of three words and a number, given as hashes, a
# quarter of them in the preview environment; with ORGS, N keys in each
# of ORGS organizations ORG1, ORG2 ..., one after the other

admin_keys() {
    perl - "$1" "$2" "${3:-0}" <<'PERL'
my ($n, $org, $orgs) = @ARGV;
if ($orgs) {
    $n *= $orgs;
    my $per = $n / $orgs;
    *org = sub { $org . (int(($_[0] - 1) / $per) + 1) };
} else {
    *org = sub { $org };
}
my @a = ('0' .. '9', 'A' .. 'Z', 'a' .. 'z');
my @w = qw(WordPress purge plugin mobile app backend billing sync export
           import CI deploy staging analytics webhook crm);
sub r62 { join '', map { $a[int rand 62] } 1 .. $_[0] }
for my $i (1 .. $n) {
    my $hash = join '', map { sprintf '%02x', int rand 256 } 1 .. 32;
    my $name = join(' ', map { $w[int rand @w] } 1 .. 3)
               . sprintf(' %06d', $i);
    print qq({"org":") . org($i) . qq(","name":"$name","hash":"$hash",)
        . qq("prefix":"ak_) . r62(5) . qq(","environment":")
        . ($i % 4 ? 'production' : 'preview')
        . qq(","scopes":["content:read"]}\n);
}
PERL
}

# import_keys REDIS_PORT N < FILE: the N keys of FILE through
# admin/apikey-import (its summary line gives its rate), then Redis's CPU
# time of the import's scripts a key, from INFO commandstats

import_keys() {
    redis-cli -p "$1" CONFIG RESETSTAT > /dev/null
    "$top/admin/apikey-import" --redis "127.0.0.1:$1" --actor bench
    redis-cli -p "$1" INFO commandstats | tr -d '\r' \
        | awk -F'[=,]' -v keys="$2" '
        /^cmdstat_evalsha:/ && $4 > 0 {
            printf "import: %.1f us of Redis a key, %d keys/s per Redis core\n",
                   $4 / keys, 1e6 * keys / $4 }'
}

# measure QUERY: prints "median p95 p99 max" in ms of $runs requests

measure() {
    local i out
    for i in $(seq 1 "$runs"); do
        out=$(curl -s -o "$dir/body" -w '%{http_code} %{time_total}' \
                   -H "Authorization: Bearer $token" "$base/$1")
        [ "${out% *}" = 200 ] || { echo "$1: ${out% *}" >&2; exit 1; }
        echo "${out#* }"
    done | sort -n | awk '{ t[NR] = $1 * 1000 }
        END { m = t[int((NR + 1) / 2)]; p = t[int(NR * 0.95 + 0.5)];
              q = t[int(NR * 0.99 + 0.5)]
              printf "%.1f %.1f %.1f %.1f\n", m, p, q, t[NR] }'
}

total() {
    perl -MJSON::PP -e 'local $/; print decode_json(<STDIN>)->{total_count}' \
        < "$dir/body"
}

# admin_row NAME QUERY GOAL: QUERY's times, ok or MISS against GOAL (ms,
# or - for none)

admin_row() {
    local name=$1 query=$2 goal=$3 med p95 p99 max v verdict=ok
    read -r med p95 p99 max <<< "$(measure "$query")"
    if [ "${admin_goal_stat:-median}" = p99 ]; then
        v=$p99
    else
        v=$med
    fi
    if [ "$goal" != - ] && awk -v m="$v" -v g="$goal" 'BEGIN{exit !(m>=g)}'
    then
        verdict=MISS
        fails=$((fails + 1))
    fi
    printf '%-36s %8s %8s %8s %8s %8s %6s %s\n' "$name" "$(total)" \
        "$med" "$p95" "$p99" "$max" "$goal" "$verdict"
}

# admin_rows LAST_PAGE: the list queries, first and deep page, searches,
# name_prefix, filters, against their goals

admin_rows() {
    echo "timing $runs requests each (ms), goals held against" \
         "the ${admin_goal_stat:-median}"
    printf '%-36s %8s %8s %8s %8s %8s %6s\n' query matches median p95 p99 \
           max goal
    admin_row 'first page' 'keys' 50
    admin_row 'deep page (the last)' "keys?page=$1" 200
    admin_row 'name search "billing sync"' 'keys?search=billing+sync' 200
    admin_row 'name search, page 20' 'keys?search=billing&page=20' 200
    admin_row 'name search, no match' 'keys?search=nothing+here' 200
    admin_row 'prefix search "ak_Ab"' 'keys?search=ak_Ab' 200
    admin_row 'name_prefix "billing s"' 'keys?name_prefix=billing+s' 50
    admin_row 'name_prefix "b", page 20' 'keys?name_prefix=b&page=20' 50
    admin_row 'status=active, deep page' 'keys?status=active&page=2000' 200
    admin_row 'environment=preview' 'keys?environment=preview' 200
    admin_row 'events' 'events' 50
}

# slowlog_longest REDIS_PORT N: the longest script call of Redis's last N
# slow log entries, in ms

slowlog_longest() {
    redis-cli -p "$1" SLOWLOG GET "$2" \
        | awk '$0 == "EVALSHA" && prev ~ /^[0-9]+$/ && prev + 0 > m {
                   m = prev + 0 }
               { prev = $0 } END { printf "%.1f", m / 1000 }'
}

# longest_search REDIS_PORT: prints "calls longest_ms" of one search that
# matches nothing (a walk of the whole organization): its script calls,
# and the longest of them, what holds Redis up at once

longest_search() {
    local longest scripts
    redis-cli -p "$1" CONFIG SET slowlog-log-slower-than 0 > /dev/null
    redis-cli -p "$1" CONFIG SET slowlog-max-len 1000 > /dev/null
    redis-cli -p "$1" SLOWLOG RESET > /dev/null
    curl -s -o /dev/null -H "Authorization: Bearer $token" \
        "$base/keys?search=nothing+here"
    longest=$(slowlog_longest "$1" 1000)
    scripts=$(redis-cli -p "$1" SLOWLOG GET 1000 | grep -c '^EVALSHA$')
    redis-cli -p "$1" CONFIG SET slowlog-log-slower-than 10000 > /dev/null
    echo "$scripts $longest"
}

# p99 in ms of a wrk run's output
p99_ms() {
    awk '/^ +99%/ { v = $2 + 0; u = $2; sub(/[0-9.]+/, "", u)
                    if (u == "us") v /= 1000; if (u == "s") v *= 1000
                    printf "%.2f\n", v }' <<< "$1"
}

# gate_while_searching CLIENTS URL LUA: wrk (16 connections, LUA's keys)
# at the gatekept URL alone, then with CLIENTS clients searching the
# organization back to back; three rounds of $seconds s; sets
# search_p99_diff, the median of the rounds' p99 differences (ms), and
# counts a round with non-2xx answers in fails

gate_while_searching() {
    local diffs round alone out
    diffs=
    for round in 1 2 3; do
        alone=$(wrk -t2 -c16 -d"${seconds}s" --latency -s "$3" "$2")

        loops=
        for _ in $(seq 1 "$1"); do
            ( while :; do
                  curl -s -o /dev/null -H "Authorization: Bearer $token" \
                      "$base/keys?search=nothing+here"
              done ) &
            loops="$loops $!"
        done

        out=$(wrk -t2 -c16 -d"${seconds}s" --latency -s "$3" "$2")
        # shellcheck disable=SC2086
        kill $loops 2>/dev/null || true
        wait $loops 2>/dev/null || true

        echo "$out" > "$dir/wrk-gated-$round.txt"
        awk -v a="$(p99_ms "$alone")" \
            '/^ +50%/ { p50 = $2 } /^ +99%/ { p99 = $2 } /Requests\/sec/ { r = $2 }
             /Non-2xx/ { bad = $NF }
             END { print "gatekeeper during searches: " r " requests/s, p50 " \
                         p50 ", p99 " p99 " (alone " a "ms), non-2xx " bad + 0 }' \
            <<< "$out"

        if grep -q Non-2xx <<< "$out$alone"; then
            echo "non-2xx gatekept responses" >&2
            fails=$((fails + 1))
        fi

        diffs="$diffs $(awk -v b="$(p99_ms "$out")" -v a="$(p99_ms "$alone")" \
                            'BEGIN { printf "%.2f", b - a }')"
    done

    search_p99_diff=$(tr ' ' '\n' <<< "$diffs" | grep . | sort -g | sed -n 2p)
    echo "gatekeeper p99 with searches minus without, per round:$diffs;" \
         "median $search_p99_diff ms (goal <= 2 ms)"
    if awk -v m="$search_p99_diff" 'BEGIN { exit !(m > 2) }'; then
        fails=$((fails + 1))
    fi
}
