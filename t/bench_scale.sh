#!/bin/bash
# make bench-scale: the module at a million keys, in one run, each figure
# printed next to its target (issue 17's "Done when"), met or missed.
#
# Two Redis servers: "big" gets BENCH_SCALE_KEYS keys of one organization
# (big) through admin/apikey-import, and the bench's own keys (organization
# bench: 1000 valid keys whose limit never triggers, one far over its
# limit); "small" gets the bench's keys alone.  Three nginx instances:
#
#   plain   on big, no cache: /bare, the gatekept location checked in
#           Redis, the admin API
#   big     on big, apikey_cache: the replica of every key
#   small   on small, apikey_cache: a replica of a thousand keys
#
# In order: the import (its keys/s, and Redis's CPU time a key); Redis's
# bytes a key, idle (INFO memory's used_memory before and after, over the
# keys imported, the change log's entries included); the cold start of
# big (from nginx's start to the "keys loaded" [notice], while one client
# asks for valid keys back to back: any 503 is counted); the zone's bytes a
# key (apikey_replica_bytes over apikey_replica_keys); the rounds of
# t/bench_cache.sh (t/lib/bench_cache.sh) over valid, limited and unknown
# keys, bare against each instance; the follower: a key revoked and
# restored through plain's admin API, asked back to back at big until its
# answer changes (p50 and p99 over the changes); idle Redis commands a
# second of each cache instance (INFO commandstats over 5 s, the bench's
# own INFO left out); the admin API's list queries over the organization
# of BENCH_SCALE_KEYS keys (t/lib/bench_admin.sh), p99s held against the
# goals, and the gatekeeper's p99 while four clients search, against its
# p99 alone (t/bench_admin.sh's three rounds); the same queries in one of
# BENCH_SCALE_ORGS organizations.  The exit status is 0 whatever the
# figures: the last line says how many targets were met; 1 only for a
# broken run (nginx alerts, a server that does not start).  Everything is in build/bench-scale: the
# servers' logs, stats/ and runs.tsv of the rounds, figures.txt.
#
# Self-contained: its own redis-server and nginx instances on free
# loopback ports, stopped by pid at exit.  Needs build/ (make), curl,
# redis-cli, perl, python3, wrk.  About 10.5 minutes at a million keys
# on a 2-core machine (a minute and a half of it the 1,000 organizations),
# 4 GB of memory free; about three at BENCH_SCALE_KEYS=20000.
#
#   BENCH_SCALE_KEYS     keys of the large organization (default 1000000)
#   BENCH_SCALE_ROUNDS   rounds of the gatekeeping runs (default 3)
#   BENCH_SECONDS        duration of each gatekeeping run (default 3)
#   BENCH_CONNS          wrk connections (default 64)
#   BENCH_SCALE_CHANGES  changes the follower is timed over (default 50)
#   BENCH_ADMIN_RUNS     requests per admin query (default 10)
#   BENCH_SCALE_ORGS     organizations the last admin queries run among
#                        (default 1000, 0 for none): BENCH_SCALE_KEYS keys
#                        more, in that many organizations
#   BENCH_MODULE         the module to measure (default build's)

set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
nkeys=${BENCH_SCALE_KEYS:-1000000}
rounds=${BENCH_SCALE_ROUNDS:-3}
seconds=${BENCH_SECONDS:-3}
conns=${BENCH_CONNS:-64}
changes=${BENCH_SCALE_CHANGES:-50}
orgs=${BENCH_SCALE_ORGS:-1000}
runs=${BENCH_ADMIN_RUNS:-10}
module=${BENCH_MODULE:-$top/build/ngx_http_apikey_module.so}
dir=$top/build/bench-scale
keytool=$top/build/apikey-key
bench=1000
kinds="valid limited unknown"
modes="plain big small"
target_mode=big
began=$(date +%s)

. "$top/t/lib/servers.sh"
. "$top/t/lib/bench_cache.sh"
. "$top/t/lib/bench_admin.sh"

stop() {
    # shellcheck disable=SC2086
    [ -n "${loops:-}" ] && kill $loops 2>/dev/null || true
    stop_pidfiles "$dir/plain/nginx.pid" "$dir/big/nginx.pid" \
                  "$dir/small/nginx.pid" "$dir/big/redis.pid" \
                  "$dir/small/redis.pid"
}

trap stop EXIT
trap 'exit 1' INT TERM HUP

rm -rf "$dir"
mkdir -p "$dir/plain" "$dir/big" "$dir/small" "$dir/stats"

declare -A port
for m in $modes big-redis small-redis; do
    port[$m]=$(free_port)
done
port[bare]=${port[plain]}
redis[plain]=${port[big-redis]}
redis[bare]=${port[big-redis]}
redis[big]=${port[big-redis]}
redis[small]=${port[small-redis]}
rport=${port[big-redis]}
label[plain]="no cache"
label[big]="cache $nkeys"
label[small]="cache $bench"

for r in big small; do
    start_redis "$dir/$r" "${port[$r-redis]}" --save '' --appendonly no
done

# figure NAME VALUE UNIT OP TARGET: one line of the summary, kept in
# figures.txt; OP is <=, <, >= or - (no target)
: > "$dir/figures.txt"
figure() {
    local verdict=-
    if [ "$4" != - ]; then
        if awk -v v="$2" -v t="$5" -v op="$4" 'BEGIN {
                   exit !(op == "<=" ? v <= t : op == "<" ? v < t : v >= t) }'
        then
            verdict=met
        else
            verdict=MISSED
        fi
    fi
    printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" "$5" "$verdict" \
        >> "$dir/figures.txt"
    printf '  %-46s %10s %-6s %s\n' "$1" "$2" "$3" \
        "$([ "$4" = - ] || echo "target $4 $5: $verdict")"
}

used_memory() {
    redis-cli -p "$1" INFO memory | tr -d '\r' \
        | sed -n 's/^used_memory:\([0-9]*\)$/\1/p'
}

# the keys: the bench's, as raw keys (their limits in the body), the large
# organization's as hashes

echo "== keys: $bench of organization bench, $nkeys of organization big"

bench_keys "$bench"

perl -MJSON::PP -e '
    my ($valid, $limited) = @ARGV;
    sub key { print encode_json({ org => "bench", environment => "production",
                                  name => $_[0], key => $_[1],
                                  rate_limit => $_[2] }), "\n" }
    open my $v, "<", $valid or die;
    while (<$v>) { chomp; key("bench $.", $_,
                              { rate => "1000000r/s", burst => 1000000 }) }
    open my $l, "<", $limited or die;
    chomp(my $k = <$l>);
    key("limited", $k, { rate => "1r/m", burst => 1 });
' "$dir/valid.txt" "$dir/limited.txt" > "$dir/bench.jsonl"

admin_keys "$nkeys" big > "$dir/big.jsonl"

echo "== import"

m0=$(used_memory "${port[big-redis]}")
import_keys "${port[small-redis]}" $((bench + 1)) < "$dir/bench.jsonl" \
    > /dev/null
import_keys "${port[big-redis]}" $((nkeys + bench + 1)) \
    < <(cat "$dir/bench.jsonl" "$dir/big.jsonl") | tee "$dir/import.txt"
rm -f "$dir/big.jsonl"
m1=$(used_memory "${port[big-redis]}")
# the change log's share (capped at about 100,000 entries)
log_bytes=$(redis-cli -p "${port[big-redis]}" MEMORY USAGE apikey:changes \
                SAMPLES 0)

# the nginx instances

{ read -r token; read -r line; } < <("$top/admin/apikey-token" bench '*')
echo "$line" > "$dir/tokens"

total=$((nkeys + bench + 1))
# 512 bytes a key, 16m at least
zone=$(( total > 32768 ? total / 2048 + 1 : 16 ))m

admin="location /admin/ { apikey_admin; }"
gate_conf "$dir/plain" "${port[plain]}" "${port[big-redis]}" \
          "apikey_admin_tokens $dir/tokens;" "$admin" > "$dir/plain/nginx.conf"
gate_conf "$dir/big" "${port[big]}" "${port[big-redis]}" \
          "apikey_cache zone=big:$zone;" > "$dir/big/nginx.conf"
gate_conf "$dir/small" "${port[small]}" "${port[small-redis]}" \
          "apikey_cache zone=small:16m;" > "$dir/small/nginx.conf"

start_nginx() {
    /usr/sbin/nginx -p "$dir/$1" -c "$dir/$1/nginx.conf" \
        -e "$dir/$1/error.log"
}

for m in plain small; do
    start_nginx "$m"
    wait_for curl -sf -o /dev/null "http://127.0.0.1:${port[$m]}/bare"
done
wait_loaded "$bench" "${port[small]}"

# cold start of big: one client asks for valid keys back to back from
# nginx's start on, until the error log says the keys are loaded; prints
# "seconds requests 503s others" (others: answers neither 200 nor 503,
# refused connections before nginx listens left out)

echo "== cold start of the replica of $total keys, one client asking meanwhile"

cold() {
    perl -MHTTP::Tiny -MTime::HiRes=time -e '
        my ($t0, $url, $log, $keys) = @ARGV;
        open my $f, "<", $keys or die;
        chomp(my @k = <$f>);
        my $http = HTTP::Tiny->new(timeout => 5);
        my ($n, $e503, $other) = (0, 0, 0);
        my $i = 0;
        while (time - $t0 < 600) {
            if ($i++ % 10 == 0) {
                open my $l, "<", $log or die;
                last if grep { /keys loaded/ } <$l>;
            }
            my $r = $http->get($url, { headers =>
                                       { "X-API-Key" => $k[rand @k] } });
            next if $r->{status} == 599 && $r->{content} =~ /refused/i;
            $n++;
            $e503++ if $r->{status} == 503;
            $other++ if $r->{status} != 200 && $r->{status} != 503;
        }
        printf "%.2f %d %d %d\n", time - $t0, $n, $e503, $other;
    ' "$1" "http://127.0.0.1:${port[big]}/gated" "$dir/big/error.log" \
        "$dir/valid.txt"
}

t0=$(date +%s.%N)
start_nginx big
read -r cold_s cold_n cold_503 cold_other <<< "$(cold "$t0")"
wait_loaded "$total" "${port[big]}"
echo "from nginx's start to the notice: $cold_s s; $cold_n requests" \
     "meanwhile: $cold_503 answered 503, $cold_other neither 200 nor 503"
grep -h 'apikey_cache zone.*\(loaded\|too small\)' "$dir"/*/error.log || true

metric() {
    curl -sf "http://127.0.0.1:$1/metrics" \
        | sed -n "s/^$2 \([0-9.]*\)\$/\1/p"
}

zone_bytes() {
    awk -v b="$(metric "$1" apikey_replica_bytes)" \
        -v k="$(metric "$1" apikey_replica_keys)" \
        'BEGIN { printf "%.0f\n", k ? b / k : 0 }'
}

zone_big=$(zone_bytes "${port[big]}")
zone_small=$(zone_bytes "${port[small]}")

# the gatekeeping rounds

echo "== gatekeeping: bare against each instance, $rounds rounds of" \
     "${seconds}s per run, $conns connections, 2 nginx workers each"

bench_rounds
bench_report

# the follower: a key without a limit, revoked and restored through
# plain's admin API; big asked back to back until it answers the change;
# prints "p50 p99 max late" in ms

echo
echo "== follower: $changes changes through plain, seen at big"

follow() {
    perl -MHTTP::Tiny -MJSON::PP -MTime::HiRes=time,sleep -e '
        my ($admin, $gate, $token, $n) = @ARGV;
        my $http = HTTP::Tiny->new(timeout => 5, keep_alive => 1);
        my %auth = (Authorization => "Bearer $token",
                    "Content-Type" => "application/json");
        my $r = $http->post("$admin/keys", { headers => \%auth,
            content => encode_json({ name => "followed",
                                     rate_limit => undef }) });
        die "create: $r->{status} $r->{content}\n" unless $r->{success};
        my $k = decode_json($r->{content});
        my $ask = sub {
            $http->get($gate, { headers => { "X-API-Key" => $k->{key} } })
                ->{status} };
        my $until = time + 5;
        sleep 0.01 until $ask->() == 200 || time > $until;
        my (@lag, $late);
        for my $i (1 .. $n) {
            my ($op, $want) = $i % 2 ? ("revoke", 401) : ("restore", 200);
            $r = $http->post("$admin/keys/$k->{id}/$op", { headers => \%auth });
            die "$op: $r->{status}\n" unless $r->{success};
            my $t0 = time;
            my $seen;
            while (time - $t0 < 1) {
                $seen = $ask->() == $want and last;
            }
            $late++ unless $seen;
            push @lag, (time - $t0) * 1000;
            sleep 0.05 + rand 0.05;
        }
        @lag = sort { $a <=> $b } @lag;
        printf "%.2f %.2f %.2f %d\n", $lag[int($#lag / 2)],
               $lag[int(@lag * 0.99 + 0.5) - 1], $lag[-1], $late // 0;
    ' "http://127.0.0.1:${port[plain]}/admin/orgs/bench" \
        "http://127.0.0.1:${port[big]}/gated" "$token" "$changes"
}

read -r f_p50 f_p99 f_max f_late <<< "$(follow)"
echo "change to seen: p50 $f_p50 ms, p99 $f_p99 ms, max $f_max ms," \
     "$f_late later than 1 s"

# idle: the commands each Redis runs over 5 s with nothing asked, its
# followers' alone (INFO's and CONFIG's left out): those they send (XREAD,
# EVAL, EVALSHA, as t/gate_cache_follow.t counts them), and all, the
# scripts' own included; prints "sent all" a second

idle() {
    redis-cli -p "$1" INFO commandstats | tr -d '\r' \
        | tee "$dir/stats/idle-$2" | awk -F'[:,=]' -v t="$3" '
            /^cmdstat_/ && $1 !~ /^cmdstat_(info|config)/ { all += $3 }
            /^cmdstat_(xread|eval|evalsha|eval_ro|evalsha_ro|fcall):/ {
                sent += $3 }
            END { printf "%.1f %.1f\n", sent / t, all / t }'
}

echo
echo "== idle: Redis commands a second over 5 s"
sleep 1
i0=$(date +%s.%N)
for r in big small; do
    redis-cli -p "${port[$r-redis]}" CONFIG RESETSTAT > /dev/null
done
sleep 5
t=$(awk -v t0="$i0" -v t1="$(date +%s.%N)" 'BEGIN { print t1 - t0 }')
read -r idle_big idle_big_all <<< "$(idle "${port[big-redis]}" big "$t")"
read -r idle_small idle_small_all \
    <<< "$(idle "${port[small-redis]}" small "$t")"
echo "small's Redis (instance small alone): $idle_small sent a second," \
     "$idle_small_all in all; big's (instances plain and big):" \
     "$idle_big sent, $idle_big_all in all"

# the admin API over the large organization

echo
echo "== admin API: organization big, $nkeys keys"
base=http://127.0.0.1:${port[plain]}/admin/orgs/big
admin_goal_stat=p99
admin_rows $(( (nkeys + 19) / 20 )) | tee "$dir/admin.txt"
read -r scripts longest <<< "$(longest_search "${port[big-redis]}")"
echo "a search that matches nothing walks in $scripts script calls;" \
     "the longest held Redis $longest ms"

echo
echo "== the gatekeeper of plain (valid keys, checked in Redis) while 4" \
     "clients search big"
gate_while_searching 4 "http://127.0.0.1:${port[plain]}/gated" \
    "$dir/valid.lua"

# the same among many organizations: the big and small instances are
# done, and stopped, so that their replicas do not follow the import

if [ "$orgs" -gt 0 ]; then
    per=$((nkeys / orgs))
    stop_pidfiles "$dir/big/nginx.pid" "$dir/small/nginx.pid"
    echo
    echo "== admin API: organization org$((orgs / 2)) of $orgs of $per keys" \
         "(and big)"
    admin_keys "$per" org "$orgs" > "$dir/orgs.jsonl"
    import_keys "${port[big-redis]}" $((per * orgs)) < "$dir/orgs.jsonl"
    rm -f "$dir/orgs.jsonl"
    base=http://127.0.0.1:${port[plain]}/admin/orgs/org$((orgs / 2))
    admin_rows $(( (per + 19) / 20 )) | tee "$dir/admin-orgs.txt"
fi

# admin_p99 FILE NAME: p99 of the admin rows of FILE whose name starts
# with NAME, the largest
admin_p99() {
    awk -v p="$2" 'index($0, p) == 1 { v = $(NF - 3) + 0; if (v > m) m = v }
                   END { print m + 0 }' "$dir/$1"
}

# the summary

echo
echo "== figures and targets (issue 17, Done when)"
import_rate=$(sed -n 's/^apikey-import: .*(\([0-9]*\) keys\/s)$/\1/p' \
                  "$dir/import.txt")
import_us=$(sed -n 's/^import: \([0-9.]*\) us.*/\1/p' "$dir/import.txt")
import_core=$(sed -n 's/.*a key, \([0-9]*\) keys\/s per Redis core$/\1/p' \
                  "$dir/import.txt")

figure "import, keys/s" "$import_rate" "keys/s" - -
figure "import, Redis CPU a key" "$import_us" "us" - -
figure "import, keys/s per Redis core (SPEC 8)" "$import_core" keys/s ">=" 20000
for kind in unknown limited; do
    figure "cache at $nkeys keys / bare, $kind" \
           "$(med "$kind,big,ratio" %.3f)" "" ">=" 0.9
done
figure "cache at $bench keys / bare, unknown" \
       "$(med "unknown,small,ratio" %.3f)" "" - -
figure "cache at $bench keys / bare, limited" \
       "$(med "limited,small,ratio" %.3f)" "" - -
figure "valid keys: cache at $nkeys / no cache" \
       "$(awk -v c="$(med "valid,big,rps" %.2f)" \
              -v p="$(med "valid,plain,rps" %.2f)" \
              'BEGIN { printf "%.3f", p ? c / p : 0 }')" "" ">=" 1
figure "cold load of $total keys" "$cold_s" s "<=" 15
figure "503s during the cold load" "$cold_503" "" "<=" 0
figure "follower change to seen, p50" "$f_p50" ms "<=" 5
figure "follower change to seen, p99" "$f_p99" ms - -
figure "idle commands sent/s, instance small" "$idle_small" "/s" "<=" 5
figure "idle commands/s, scripts' own included" "$idle_small_all" "/s" - -
figure "idle commands sent/s, instance big" "$idle_big" "/s" - -
figure "name_prefix p99, $nkeys keys" \
       "$(admin_p99 admin.txt name_prefix)" ms "<" 50
figure "search p99, $nkeys keys" "$(admin_p99 admin.txt "name search")" \
       ms "<" 200
figure "display prefix search p99" \
       "$(admin_p99 admin.txt 'prefix search')" ms "<" 200
figure "first page p99" "$(admin_p99 admin.txt 'first page')" ms - -
figure "deep page p99" "$(admin_p99 admin.txt 'deep page')" ms - -
figure "status-filtered list p99" "$(admin_p99 admin.txt 'status=')" ms - -
figure "environment-filtered list p99" \
       "$(admin_p99 admin.txt 'environment=')" ms - -
figure "longest Redis slice of a search" "$longest" ms "<=" 2
figure "gate p99 while 4 clients search, - alone" "$search_p99_diff" ms \
       "<=" 2
if [ "$orgs" -gt 0 ]; then
    of="$orgs orgs x $per keys"
    figure "name_prefix p99, $of" "$(admin_p99 admin-orgs.txt name_prefix)" \
           ms "<" 50
    figure "search p99, $of" "$(admin_p99 admin-orgs.txt 'name search')" \
           ms "<" 200
    figure "first page p99, $of" "$(admin_p99 admin-orgs.txt 'first page')" \
           ms - -
    figure "environment filter p99, $of" \
           "$(admin_p99 admin-orgs.txt 'environment=')" ms - -
fi
figure "Redis bytes a key, idle" \
       "$(awk -v a="$m0" -v b="$m1" -v n="$total" \
              'BEGIN { printf "%.0f", (b - a) / n }')" B "<=" 600
figure "Redis bytes a key, idle, the change log aside" \
       "$(awk -v a="$m0" -v b="$m1" -v l="${log_bytes:-0}" -v n="$total" \
              'BEGIN { printf "%.0f", (b - a - l) / n }')" B - -
figure "zone bytes a key, $total keys" "$zone_big" B "<=" 200
figure "zone bytes a key, $((bench + 1)) keys" "$zone_small" B - -

met=$(awk -F'\t' '$6 == "met"' "$dir/figures.txt" | wc -l)
all=$(awk -F'\t' '$6 != "-"' "$dir/figures.txt" | wc -l)
missed=$(awk -F'\t' '$6 == "MISSED" { printf "%s%s", s, $1; s = "; " }' \
             "$dir/figures.txt")

if grep -q '\[\(alert\|crit\|emerg\)\]' "$dir"/*/error.log; then
    echo "alerts in the error logs:" >&2
    grep '\[\(alert\|crit\|emerg\)\]' "$dir"/*/error.log >&2
    exit 1
fi

echo
echo "bench-scale: $met of $all targets met at $nkeys keys" \
     "in $(( $(date +%s) - began )) s${missed:+; missed: $missed}"
