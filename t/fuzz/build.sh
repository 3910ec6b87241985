#!/bin/bash
# Builds the libFuzzer targets of t/fuzz/ with clang, AddressSanitizer and
# UndefinedBehaviorSanitizer, into OUT:
#
#   t/fuzz/build.sh NGINX_TREE OUT [TARGET ...]
#
# (all of them unless TARGETs, such as redis_reader, are named).
# NGINX_TREE is an nginx source tree configured and built with the same
# sanitizers and this module (t/check.sh makes one): the targets that need
# nginx link its core objects, with nginx.c's main() renamed, so that the
# module's code runs on nginx's own pools, strings, logs and slab pools.
# The module's and the admin API's sources are compiled once, with the
# fuzzer's coverage; a target that includes one of them, to reach its
# static functions, links the others.

set -euo pipefail

tree=$1
out=$2
shift 2
want=" ${*:-all} "
top=$(cd "$(dirname "$0")/../.." && pwd)
fuzz=$top/t/fuzz
mod=$top/ngx_http_apikey_module
adm=$top/admin
cflags="-g -O1 -fno-omit-frame-pointer"
san="-fsanitize=address,undefined"

mkdir -p "$out/obj"

wanted() {
    [[ $want == *" all "* || $want == *" $1 "* ]]
}

wanted key &&
clang $cflags -fsanitize=fuzzer,address,undefined -I"$mod" \
    -o "$out/fuzz_key" "$fuzz/fuzz_key.c" "$mod/ngx_http_apikey_key.c" -lcrypto

incs=(-I"$tree/src/core" -I"$tree/src/event" -I"$tree/src/event/modules"
      -I"$tree/src/os/unix" -I"$tree/objs" -I"$tree/src/http"
      -I"$tree/src/http/modules" -I"$tree/src/http/v2" -I"$mod" -I"$adm"
      -I"$fuzz")

# the reader alone: hiredis's parser and the module's object functions

wanted redis_reader &&
clang $cflags -fsanitize=fuzzer,address,undefined "${incs[@]}" \
    -o "$out/fuzz_redis_reader" "$fuzz/fuzz_redis_reader.c" \
    "$mod/ngx_http_apikey_redis_reader.c" -lhiredis

# nginx's objects, and its main() under another name

mapfile -t core < <(find "$tree/objs/src" -name '*.o' ! -name nginx.o | sort)

clang $cflags $san "${incs[@]}" -Dmain=ngx_http_apikey_fuzz_nginx_main \
    -c "$tree/src/core/nginx.c" -o "$out/obj/nginx_main.o"

core+=("$out/obj/nginx_main.o" "$tree/objs/ngx_modules.o")

for f in "$mod"/*.c "$adm"/*.c "$fuzz/fuzz_nginx.c"; do
    clang $cflags -fsanitize=fuzzer-no-link,address,undefined "${incs[@]}" \
        -c "$f" -o "$out/obj/$(basename "${f%.c}").o"
done

libs=(-lpthread -lpcre2-8 -lssl -lcrypto -lz -lhiredis -ljansson)

# target NAME [SOURCE the target includes ...]

target() {
    local name=$1 f
    local -a objs=("$out/obj/fuzz_nginx.o")

    wanted "$name" || return 0
    shift

    for f in "$mod"/*.c; do
        [[ " $* " == *" $(basename "$f") "* ]] && continue
        objs+=("$out/obj/$(basename "${f%.c}").o")
    done

    if [[ $name == admin_* ]]; then
        for f in "$adm"/*.c; do
            objs+=("$out/obj/$(basename "${f%.c}").o")
        done
    fi

    clang $cflags -fsanitize=fuzzer,address,undefined "${incs[@]}" \
        -o "$out/fuzz_$name" "$fuzz/fuzz_$name.c" "${objs[@]}" \
        "${core[@]}" "${libs[@]}"
}

target gate_reply
target replica_record ngx_http_apikey_cache_sync.c
target lease_reply
target sentinel ngx_http_apikey_redis_sentinel.c ngx_http_apikey_redis_link.c
target admin_json
target admin_result
