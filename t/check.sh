#!/bin/bash
# make check: the memory and undefined-behaviour checks.
#
#   1. Debian's full nginx source (apt-get source, through a deb-src list
#      of its own: the system's apt configuration is not touched), built
#      with clang's AddressSanitizer and UndefinedBehaviorSanitizer and
#      Debian's configure flags, with this module as a dynamic module;
#   2. the whole prove suite against that nginx and module: the harness
#      fails a test file on any sanitizer line in nginx's logs;
#      t/check/ubsan.ignore (at compile time) and t/check/lsan.supp leave
#      out nginx core's own reports, never the module's;
#   3. each libFuzzer target of t/fuzz/ for CHECK_FUZZ_SECONDS (default 30)
#      from its seed corpus, failing on any crash or sanitizer report.
#
#   CHECK_PROVE          what prove runs (default: -j2 and every file but
#                        the two timing ones below)
#   CHECK_FUZZ_SECONDS   seconds per fuzz target
#
# Everything is built under build/check/.

set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
check=$top/build/check
tree=$check/nginx
src=${NGX_SRC:-/usr/share/nginx/src}
san="-fsanitize=address,undefined"
cflags="-g -O1 -fno-omit-frame-pointer $san"
cflags+=" -fsanitize-ignorelist=$top/t/check/ubsan.ignore"

die() {
    echo "check: $*" >&2
    exit 1
}


# Debian's source of the installed nginx (or of the same upstream release
# when the archive serves a newer Debian revision only)

fetch_source() {
    local apt=$check/apt want ver f
    local -a opts

    [ -d "$tree" ] && return

    want=$(dpkg-query -W -f='${Version}' nginx) || die "nginx is not installed"

    mkdir -p "$apt/lists/partial" "$apt/cache/archives/partial" "$apt/parts"

    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list \
             /etc/apt/sources.list.d/*.sources
    do
        [ -f "$f" ] || continue

        case $f in
        *.sources) sed -E 's/^Types:.*/Types: deb-src/' "$f" ;;
        *)         sed -nE 's/^deb([[:space:]])/deb-src\1/p' "$f" ;;
        esac > "$apt/parts/$(basename "$f")"
    done

    opts=(-o Dir::Etc::SourceList=/dev/null -o Dir::Etc::SourceParts="$apt/parts"
          -o Dir::State::Lists="$apt/lists" -o Dir::Cache="$apt/cache")

    apt-get -qq "${opts[@]}" update > "$check/apt.log" 2>&1 \
        || { tail -5 "$check/apt.log"; die "apt-get update of deb-src failed"; }

    rm -rf "$check/src"
    mkdir -p "$check/src"

    for ver in "$want" $(apt-cache "${opts[@]}" showsrc nginx 2>/dev/null \
                         | sed -n 's/^Version: //p' | sort -rVu)
    do
        [ "${ver%%-*}" = "${want%%-*}" ] || continue

        if (cd "$check/src" && apt-get -qq "${opts[@]}" --download-only \
                source "nginx=$ver" && dpkg-source -x --no-check *.dsc nginx) \
           >> "$check/apt.log" 2>&1
        then
            [ "$ver" = "$want" ] || echo "check: using the source of nginx" \
                                         "$ver for the installed $want" >&2
            mv "$check/src/nginx" "$tree"
            return
        fi

        rm -rf "$check/src"/*
    done

    tail -5 "$check/apt.log"
    die "no source of nginx $want"
}


build() {
    local stamp=$check/configured f

    for f in "$top/config" "$top"/ngx_http_apikey_module/*.lua \
             "$top"/ngx_http_apikey_module/*.lua.in "$top"/admin/*.lua \
             "$top"/admin/*.lua.in "$top"/admin/console/* \
             "$top"/t/check/ubsan.ignore "$0"
    do
        [ -f "$stamp" ] && [ "$f" -nt "$stamp" ] && rm -f "$stamp"
    done

    if [ ! -f "$stamp" ]; then
        (
            . "$src/conf_flags"
            cd "$tree"
            ./configure "${NGX_CONF_FLAGS[@]}" --with-cc=clang \
                --with-cc-opt="$cflags" --with-ld-opt="$san" \
                --add-dynamic-module="$top" > "$check/configure.log" 2>&1
        ) || { tail -20 "$check/configure.log"; die "configure failed"; }

        touch "$stamp"
    fi

    make -C "$tree" -f objs/Makefile -j"$(nproc)" > "$check/build.log" 2>&1 \
        || { tail -30 "$check/build.log"; die "the nginx build failed"; }
}


suite() {
    export TEST_NGINX_BINARY=$tree/objs/nginx
    export TEST_NGINX_MODULE=$tree/objs/ngx_http_apikey_module.so

    # detect_odr_violation and report_globals: the module's own
    # ngx_modules array (every dynamic module has one) shadows nginx's,
    # which ASan would take for an overflow of nginx's at every reload;
    # max_allocation_size_mb: no allocation of a gigabyte, which a
    # worker's VmPeak cannot tell under ASan's shadow (gate_hostile.t)

    export ASAN_OPTIONS=detect_odr_violation=0:report_globals=0:detect_leaks=0
    ASAN_OPTIONS+=:max_allocation_size_mb=1024
    export LSAN_OPTIONS=suppressions=$top/t/check/lsan.supp:print_suppressions=0
    export UBSAN_OPTIONS=print_stacktrace=1

    # Four files assert timing the sanitizers change: gate_batch.t that
    # the requests a stopped worker finds ready land in one pass of its
    # event loop (ASan makes a pass several times slower, so they spread
    # over passes), gate_reload.t that five reloads under traffic each
    # replace every worker within 20 s, gate_rate_limit.t that a hammer
    # keeps a bucket empty through a wall-clock window, gate_worker_start.t
    # that no command takes 80 ms (with ASan one sometimes does).  They run
    # in make test.

    if [ -z "${CHECK_PROVE:-}" ]; then
        prove -j2 $(ls t/*.t | grep -v -e '/gate_batch\.t$' \
                                      -e '/gate_reload\.t$' \
                                      -e '/gate_rate_limit\.t$' \
                                      -e '/gate_worker_start\.t$')
        return
    fi

    # shellcheck disable=SC2086
    prove $CHECK_PROVE
}


fuzz() {
    local seconds=${CHECK_FUZZ_SECONDS:-30} t corpus failed=0
    local targets="key redis_reader gate_reply lease_reply replica_record
                   sentinel admin_json admin_result"

    "$top/t/fuzz/build.sh" "$tree" "$check/fuzz" > "$check/fuzz-build.log" 2>&1 \
        || { tail -20 "$check/fuzz-build.log"; die "building the fuzzers failed"; }

    # UndefinedBehaviorSanitizer stops at its first report, as a crash;
    # LeakSanitizer checks every input (the suite turned it off)

    export ASAN_OPTIONS=detect_leaks=1
    export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1

    for t in $targets; do
        corpus=$check/fuzz/corpus-$t
        rm -rf "$corpus"
        cp -r "$top/t/fuzz/corpus/$t" "$corpus"

        if "$check/fuzz/fuzz_$t" -max_total_time="$seconds" \
               -print_final_stats=1 -artifact_prefix="$check/fuzz/$t-" \
               "$corpus" > "$check/fuzz/$t.log" 2>&1
        then
            echo "fuzz_$t: $(grep -m1 -o 'stat::number_of_executed_units: [0-9]*' \
                             "$check/fuzz/$t.log" | sed 's/.*: //') runs," \
                 "no crash"
        else
            echo "fuzz_$t: FAILED, see $check/fuzz/$t.log" >&2
            grep -m5 'ERROR\|runtime error\|deadly' "$check/fuzz/$t.log" >&2 || :
            failed=1
        fi
    done

    return $failed
}


cd "$top"
mkdir -p "$check"

case ${1:-all} in
all)
    fetch_source
    build

    # what each half takes, for CI's budget

    SECONDS=0
    suite_rc=0
    suite || suite_rc=$?
    echo "check: the suite took ${SECONDS}s"

    SECONDS=0
    fuzz_rc=0
    fuzz || fuzz_rc=$?
    echo "check: the fuzzers took ${SECONDS}s"

    [ "$suite_rc" = 0 ] && [ "$fuzz_rc" = 0 ]
    ;;
suite)
    fetch_source
    build
    suite
    ;;
fuzz)
    fetch_source
    build
    fuzz
    ;;
*)
    die "usage: t/check.sh [all|suite|fuzz]"
    ;;
esac
