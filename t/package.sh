#!/bin/bash
# make package-test: the Debian package on this very system, as root.
#
# Installs build/deb/libnginx-mod-http-apikey_<version>_<arch>.deb with
# apt-get, checks where its files went and what it depends on, runs
# Debian's nginx -t on the system configuration and on a private one that
# loads the module through /etc/nginx/modules-enabled, serves gatekept
# requests through the installed module with a private Redis and nginx,
# then removes and purges the package and checks that nothing of it is
# left.  Prints one "ok"/"not ok" line per check and "N passed, M failed"
# last; exits 1 if anything failed.  Cleans up on any exit.
#
# Not run by make test (prove -r t/ runs only .t files): it changes the
# system's packages.

set -uo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)

. "$top/t/lib/servers.sh"

pkg=libnginx-mod-http-apikey
version=$(dpkg-parsechangelog -l "$top/debian/changelog" -SVersion)
arch=$(dpkg --print-architecture)
deb=build/deb/${pkg}_${version}_${arch}.deb

so=/usr/lib/nginx/modules/ngx_http_apikey_module.so
avail=/usr/share/nginx/modules-available/mod-http-apikey.conf
enabled=/etc/nginx/modules-enabled/50-mod-http-apikey.conf
doc=/usr/share/doc/$pkg
nginx=/usr/sbin/nginx

apt() {
    DEBIAN_FRONTEND=noninteractive apt-get -y -q \
        -o DPkg::Lock::Timeout=300 "$@"
}

installed() {
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null \
        | grep -q 'install ok installed'
}

# dpkg knows it, in any state (installed, or only its conffiles left)
known() {
    dpkg-query -W "$pkg" > /dev/null 2>&1
}

tmp=$(mktemp -d)
chmod 755 "$tmp"
must_purge=0

cleanup() {
    stop_pidfiles "$tmp/nginx.pid" "$tmp/redis.pid"
    # whatever state a failed step left it in (even only its conffiles
    # and the .removed link after a remove)
    if [ "$must_purge" = 1 ] && known; then
        apt purge "$pkg" > /dev/null 2>&1
    fi
    rm -rf "$tmp"
}

trap cleanup EXIT
trap 'exit 1' INT TERM HUP

passed=0
failed=0

# check DESCRIPTION COMMAND...: one test line; the command's output is
# shown only when it fails
check() {
    local desc=$1 out
    shift
    if out=$("$@" 2>&1); then
        echo "ok - $desc"
        passed=$((passed + 1))
    else
        echo "not ok - $desc"
        [ -z "$out" ] || printf '%s\n' "$out" | sed 's/^/#   /'
        failed=$((failed + 1))
    fi
}

finish() {
    echo "$passed passed, $failed failed"
    [ $failed = 0 ]
    exit
}

# same STRING EXPECTED: for checks of a value
same() {
    [ "$1" = "$2" ] || { echo "got '$1', expected '$2'"; return 1; }
}

has() {
    case "$1" in
        *"$2"*) return 0 ;;
    esac
    echo "'$2' not in '$1'"
    return 1
}

absent() {
    local f
    for f in "$@"; do
        if [ -e "$f" ] || [ -L "$f" ]; then
            echo "still there: $f"
            return 1
        fi
    done
}

status_of() {
    curl -s -o /dev/null -w '%{http_code}' "$@"
}


if [ "$(id -u)" != 0 ]; then
    echo "package-test installs packages: run it as root" >&2
    exit 2
fi

check "the package was built: $deb" test -f "$top/$deb"
[ -f "$top/$deb" ] || finish

# a copy left over from an earlier run would hide what this install does
if known; then
    echo "# purging the $pkg installed before this test"
    apt purge "$pkg" > /dev/null 2>&1
fi

must_purge=1
check "apt-get install ./$deb" apt install "$top/$deb"
check "dpkg knows it installed" installed
installed || finish


# what goes where

dpkg -L "$pkg" > "$tmp/files"
while read -r f; do
    [ -d "$f" ] || echo "$f"
done < "$tmp/files" > "$tmp/plain-files"

for f in "$so" "$avail" /usr/bin/apikey-token \
         /usr/share/man/man1/apikey-token.1.gz \
         "$doc/copyright" "$doc/README.md.gz" "$doc/directives.md.gz" \
         "$doc/admin-api.md.gz" "$doc/data-model.md.gz" \
         "$doc/openapi.yaml.gz" "$doc/examples/example-nginx.conf"
do
    check "ships $f" grep -qx "$f" "$tmp/files"
    check "$f is on disk" test -f "$f"
done

check "the snippet loads the module" \
    same "$(cat "$avail")" "load_module modules/ngx_http_apikey_module.so;"
check "the package scripts enabled it: $enabled -> $avail" \
    same "$(readlink "$enabled")" "$avail"

abi=$(dpkg-query -W -f='${Provides}' nginx | grep -o 'nginx-abi-[^ ,]*')
depends=$(dpkg-query -W -f='${Depends}' "$pkg")

check "depends on the ABI of the installed nginx ($abi)" \
    has "$depends" "$abi"
for lib in libhiredis libjansson libssl; do
    check "depends on $lib" has "$depends" "$lib"
done
check "recommends redis-server" \
    same "$(dpkg-query -W -f='${Recommends}' "$pkg")" redis-server

{ read -r token; read -r line; } < <(apikey-token pkgtest '*')
check "apikey-token (from PATH) prints a token and a tokens line" \
    grep -qE '^pkgtest:[0-9a-f]{64}:\*$' <<< "$line"
echo "$line" > "$tmp/apikey-admin-tokens"


# Debian's nginx -t: the system's own configuration with the module
# enabled, the shipped example, and a private configuration

check "nginx -t of /etc/nginx/nginx.conf with the module enabled" \
    "$nginx" -t -q

rport=$(free_port)
hport=$(free_port)

mkdir -p "$tmp"/{client_body,proxy,fastcgi,uwsgi,scgi}_temp

# the snippet's load_module path is relative to the prefix: give the
# private prefix the modules link Debian's prefix (/usr/share/nginx) has
ln -s /usr/share/nginx/modules "$tmp/modules"

temps="client_body_temp_path $tmp/client_body_temp;
    proxy_temp_path $tmp/proxy_temp;
    fastcgi_temp_path $tmp/fastcgi_temp;
    uwsgi_temp_path $tmp/uwsgi_temp;
    scgi_temp_path $tmp/scgi_temp;"

sed "s|/var/log/nginx/|$tmp/|" "$doc/examples/example-nginx.conf" \
    > "$tmp/example.conf"

cat > "$tmp/example-test.conf" <<CONF
include /etc/nginx/modules-enabled/*.conf;
pid $tmp/example.pid;
error_log $tmp/error.log;
events {
}
http {
    $temps
    include $tmp/example.conf;
}
CONF

check "nginx -t of the shipped example (in an http block)" \
    "$nginx" -t -q -p "$tmp" -c "$tmp/example-test.conf" -e "$tmp/error.log"

cat > "$tmp/nginx.conf" <<CONF
include /etc/nginx/modules-enabled/*.conf;
pid $tmp/nginx.pid;
error_log $tmp/error.log info;
events {
}
http {
    access_log $tmp/access.log;
    $temps

    apikey_redis 127.0.0.1:$rport;
    apikey_admin_tokens apikey-admin-tokens;

    server {
        listen 127.0.0.1:$hport;

        location /api/ {
            apikey on;
            empty_gif;
        }

        location /admin/ {
            apikey_admin;
        }
    }
}
CONF

nginx_test() {
    "$nginx" -t -p "$tmp" -c "$tmp/nginx.conf" -e "$tmp/error.log"
}

check "nginx -t of a configuration with an apikey location" nginx_test
nginx_test > /dev/null 2>&1 || finish


# one gatekept request through the installed module

start_redis "$tmp" "$rport" --save '' --appendonly no
"$nginx" -p "$tmp" -c "$tmp/nginx.conf" -e "$tmp/error.log"
check "nginx starts" \
    bash -c ". '$top/t/lib/servers.sh';
             wait_for curl -s -o /dev/null http://127.0.0.1:$hport/api/"

base=http://127.0.0.1:$hport

code=$(curl -s -o "$tmp/key.json" -w '%{http_code}' -X POST \
            -H "Authorization: Bearer $token" \
            -H 'Content-Type: application/json' \
            -d '{"name":"package test"}' "$base/admin/orgs/acme/keys")
check "the admin API creates a key (201)" same "$code" 201
key=$(perl -MJSON::PP -0ne 'print decode_json($_)->{key} // ""' \
           "$tmp/key.json" 2>/dev/null)

check "a request with the key gets 200" \
    same "$(status_of -H "X-API-Key: $key" "$base/api/")" 200
check "a request without a key gets 401" \
    same "$(status_of "$base/api/")" 401
case "$key" in
    *x) wrong=${key%?}y ;;
    *) wrong=${key%?}x ;;
esac
check "a request with a wrong key gets 401" \
    same "$(status_of -H "X-API-Key: $wrong" "$base/api/")" 401

nginx_pid=$(cat "$tmp/nginx.pid" 2>/dev/null)
redis_pid=$(cat "$tmp/redis.pid" 2>/dev/null)
stop_pidfiles "$tmp/nginx.pid" "$tmp/redis.pid"
check "nginx and Redis stopped" \
    bash -c "! kill -0 ${nginx_pid:-0} && ! kill -0 ${redis_pid:-0}"


# remove keeps nginx working, purge leaves nothing

check "apt-get remove $pkg" apt remove "$pkg"
check "remove disables the module ($enabled.removed)" \
    bash -c "[ ! -e '$enabled' ] && [ -L '$enabled.removed' ]"
check "nginx -t of /etc/nginx/nginx.conf after remove" "$nginx" -t -q

check "apt-get purge $pkg" apt purge "$pkg"

check "dpkg -L knows nothing of it" \
    bash -c "! dpkg -L '$pkg' 2>/dev/null | grep -q ."
mapfile -t plain < "$tmp/plain-files"
check "none of its files is left" absent "${plain[@]}"
check "no modules-enabled link is left" \
    absent "$enabled" "$enabled.removed"
check "no $so, /usr/bin/apikey-token, $doc" \
    absent "$so" /usr/bin/apikey-token "$doc"
check "nginx -t of /etc/nginx/nginx.conf after purge" "$nginx" -t -q

finish
