#!/bin/bash
# Builds the libFuzzer targets of t/fuzz/ with clang, AddressSanitizer and
# UndefinedBehaviorSanitizer, into OUT:
#
#   t/fuzz/build.sh NGINX_TREE OUT
#
# NGINX_TREE is an nginx source tree configured and built with the same
# sanitizers and this module (t/check.sh makes one): the targets that need
# nginx link its core objects, with nginx.c's main() renamed, so that the
# module's code runs on nginx's own pools, strings and logs.

set -euo pipefail

tree=$1
out=$2
top=$(cd "$(dirname "$0")/../.." && pwd)
san="-g -O1 -fno-omit-frame-pointer -fsanitize=fuzzer,address,undefined"
mod=$top/ngx_http_apikey_module
adm=$top/admin

mkdir -p "$out"

clang $san -I"$mod" -o "$out/fuzz_key" "$top/t/fuzz/fuzz_key.c" \
    "$mod/ngx_http_apikey_key.c" -lcrypto

incs=(-I"$tree/src/core" -I"$tree/src/event" -I"$tree/src/event/modules"
      -I"$tree/src/os/unix" -I"$tree/objs" -I"$tree/src/http"
      -I"$tree/src/http/modules" -I"$tree/src/http/v2" -I"$mod" -I"$adm")

# nginx's objects, and its main() under another name

mapfile -t core < <(find "$tree/objs/src" -name '*.o' ! -name nginx.o | sort)

clang -g -O1 -fno-omit-frame-pointer -fsanitize=address,undefined \
    "${incs[@]}" -Dmain=ngx_http_apikey_fuzz_nginx_main \
    -c "$tree/src/core/nginx.c" -o "$out/nginx_main.o"

libs=(-lpthread -lpcre2-8 -lssl -lcrypto -lz -lhiredis -ljansson)

mapfile -t module < <(ls "$mod"/*.c | grep -v '_gate\.c$')
mapfile -t admin < <(ls "$adm"/*.c)

clang $san "${incs[@]}" -o "$out/fuzz_gate_reply" \
    "$top/t/fuzz/fuzz_gate_reply.c" "${module[@]}" \
    "${core[@]}" "$out/nginx_main.o" "$tree/objs/ngx_modules.o" "${libs[@]}"

clang $san "${incs[@]}" -o "$out/fuzz_admin_json" \
    "$top/t/fuzz/fuzz_admin_json.c" "$mod"/*.c "${admin[@]}" \
    "${core[@]}" "$out/nginx_main.o" "$tree/objs/ngx_modules.o" "${libs[@]}"
