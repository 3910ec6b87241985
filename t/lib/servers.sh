# Shell helpers for make run and make bench: free loopback ports, a private
# Redis, bounded waits, stopping what was started by pid, wrk's script of
# random keys, and the median of a benchmark's rounds.  Sourced by t/run.sh
# and the t/bench*.sh scripts.

# a port nobody listens on now
free_port() {
    perl -MIO::Socket::INET -e \
        'print IO::Socket::INET->new(LocalAddr => "127.0.0.1",
                                     LocalPort => 0, Listen => 1)->sockport'
}

# wait_for COMMAND...: run it until it succeeds, for at most 10 s
wait_for() {
    local i
    for i in $(seq 1 100); do
        "$@" >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    echo "timed out waiting for: $*" >&2
    exit 1
}

# start_redis DIR PORT [redis-server options]: a daemon on 127.0.0.1 whose
# pid file is DIR/redis.pid, ready when this returns
start_redis() {
    local dir=$1 port=$2
    shift 2
    redis-server --port "$port" --bind 127.0.0.1 --dir "$dir" \
        --daemonize yes --pidfile "$dir/redis.pid" \
        --logfile "$dir/redis.log" "$@"
    wait_for redis-cli -p "$port" ping
    wait_for test -s "$dir/redis.pid"
}

# stop_pidfiles FILE...: TERM each process, then wait for it (10 s at most)
stop_pidfiles() {
    local f pid
    for f in "$@"; do
        [ -s "$f" ] || continue
        pid=$(cat "$f")
        kill "$pid" 2>/dev/null || true
        for _ in $(seq 1 100); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        rm -f "$f"
    done
}

# wrk_script KEYS LUA: a wrk script sending one of the keys of the file
# KEYS (one a line), at random

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

# median [FORMAT]: the median of the numbers on stdin (space or newline
# separated), printed with FORMAT (default %.3f)
median() {
    tr ' ' '\n' | grep . | sort -g \
        | awk -v f="${1:-%.3f}" '{ r[NR] = $1 } END {
                   m = (NR % 2) ? r[(NR + 1) / 2] \
                                : (r[NR / 2] + r[NR / 2 + 1]) / 2
                   printf f "\n", m
               }'
}
