#!/bin/bash
# make run / make stop: Redis (with AOF) and nginx on loopback, with the
# module, an example configuration and an admin token, all in run/.
#
#   RUN_HTTP_PORT   nginx port (default 8080, or a free one if taken)
#   RUN_REDIS_PORT  Redis port (default 6390, or a free one if taken)
#   RUN_BACKEND_PORT  the stand-in content API (default 8081, or a free one)

set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
dir=$top/run

. "$top/t/lib/servers.sh"

stop() {
    stop_pidfiles "$dir/nginx.pid" "$dir/redis.pid"
}

if [ "${1:-}" = stop ]; then
    stop
    echo "stopped"
    exit 0
fi

port_free() {
    ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

pick_port() {
    if port_free "$1"; then
        echo "$1"
    else
        free_port
    fi
}

stop
mkdir -p "$dir"

hport=$(pick_port "${RUN_HTTP_PORT:-8080}")
rport=$(pick_port "${RUN_REDIS_PORT:-6390}")
bport=$(pick_port "${RUN_BACKEND_PORT:-8081}")

start_redis "$dir" "$rport" --appendonly yes --save ''

# a fresh admin token every run: only its hash goes to disk

{ read -r token; read -r line; } < <("$top/admin/apikey-token" demo '*')
echo "$line" > "$dir/apikey-admin-tokens"
rm -f "$dir/admin-token" "$dir/admin-tokens"    # of earlier versions

cat > "$dir/nginx.conf" <<CONF
load_module $top/build/ngx_http_apikey_module.so;

worker_processes 2;
pid $dir/nginx.pid;
error_log $dir/error.log info;

events {
}

http {
    access_log $dir/access.log;
    client_body_temp_path $dir/client_body_temp;
    proxy_temp_path $dir/proxy_temp;

    apikey_redis 127.0.0.1:$rport;

    server {
        listen 127.0.0.1:$hport;

        # the content API: every request needs a key of organization acme's
        location /api/ {
            apikey on;
            proxy_set_header X-Apikey-Org \$apikey_org;
            proxy_set_header X-Apikey-Id \$apikey_id;
            proxy_pass http://127.0.0.1:$bport/;
        }

        # the admin API: bearer tokens from run/apikey-admin-tokens; the web
        # console at /admin/ itself
        location /admin/ {
            apikey_admin;
            apikey_admin_console on;
            apikey_admin_tokens $dir/apikey-admin-tokens;
        }
    }

    # stands in for the content API behind nginx
    server {
        listen 127.0.0.1:$bport;

        location / {
            default_type application/json;
            return 200 '{"hello":"\$http_x_apikey_org","key_id":"\$http_x_apikey_id","api_key_seen":"\$http_x_api_key"}\n';
        }
    }
}
CONF

mkdir -p "$dir/client_body_temp" "$dir/proxy_temp"
/usr/sbin/nginx -p "$dir" -c "$dir/nginx.conf" -e "$dir/error.log"
wait_for curl -s -o /dev/null "http://127.0.0.1:$hport/api/"

base=http://127.0.0.1:$hport

cat <<TXT

Redis on 127.0.0.1:$rport (AOF in run/), nginx on $base.
Admin token (printed once; its hash is in run/apikey-admin-tokens): $token

Web console: $base/admin/  (paste the token, organization acme)

A session to paste:

  T=$token
  # create a key (1 request/s, burst 2); the raw key is shown once
  curl -s -X POST $base/admin/orgs/acme/keys -H "Authorization: Bearer \$T" \\
       -H 'Content-Type: application/json' \\
       -d '{"name":"demo","scopes":["content:read"],"rate_limit":{"rate":"1r/s","burst":2}}' | tee $dir/key.json
  K=\$(perl -MJSON::PP -0ne 'print decode_json(\$_)->{key}' $dir/key.json)
  ID=\$(perl -MJSON::PP -0ne 'print decode_json(\$_)->{id}' $dir/key.json)

  curl -i $base/api/hello -H "X-API-Key: \$K"        # 200, RateLimit headers, no key upstream
  curl -i $base/api/hello                             # 401 missing_api_key
  for i in 1 2 3; do curl -s -o /dev/null -w '%{http_code}\\n' $base/api/hello -H "X-API-Key: \$K"; done   # ... 429

  curl -s "$base/admin/orgs/acme/keys?search=demo" -H "Authorization: Bearer \$T"
  curl -s -X POST $base/admin/orgs/acme/keys/\$ID/rotate -H "Authorization: Bearer \$T" \\
       -H 'Content-Type: application/json' -d '{"grace_seconds":60}'
  curl -s -X POST $base/admin/orgs/acme/keys/\$ID/revoke -H "Authorization: Bearer \$T"
  curl -i $base/api/hello -H "X-API-Key: \$K"        # 401 revoked_api_key

make stop stops both.
TXT
