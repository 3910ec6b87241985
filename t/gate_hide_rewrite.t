#!/usr/bin/perl

# apikey_hide_header takes the key out of the request before any
# rewrite-phase directive runs: "set $k $http_x_api_key" at the server or
# the location level copies nothing, so "proxy_set_header X-Leak $k"
# sends nothing upstream; a bearer key likewise.  Locations that do not
# check keys, or that turn hiding off, keep the header.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use Test::More;

use ApiKey::Test;

my $t = ApiKey::Test->new;
$t->run_redis;
$t->run_nginx(<<'EOF');

%%TEST_GLOBALS%%
load_module %%MODULE%%;
worker_processes 1;

events {
}

http {
    %%TEST_GLOBALS_HTTP%%

    apikey_redis %%REDIS%%;

    server {
        listen 127.0.0.1:%%PORT_1%%;
        server_name localhost;

        apikey on;
        apikey_bearer on;

        set $srv $http_x_api_key;

        location / {
            set $loc $http_x_api_key;
            set $auth $http_authorization;
            proxy_set_header X-Srv $srv;
            proxy_set_header X-Loc $loc;
            proxy_set_header X-Auth $auth;
            proxy_pass http://127.0.0.1:%%PORT_2%%;
        }

        location /shown/ {
            apikey_hide_header off;
            set $loc $http_x_api_key;
            proxy_set_header X-Loc $loc;
            proxy_pass http://127.0.0.1:%%PORT_2%%;
        }

        location /open/ {
            apikey off;
            set $loc $http_x_api_key;
            proxy_set_header X-Loc $loc;
            proxy_pass http://127.0.0.1:%%PORT_2%%;
        }
    }

    server {
        listen 127.0.0.1:%%PORT_2%%;
        server_name upstream;

        location / {
            apikey off;
            return 200 "srv=[$http_x_srv] loc=[$http_x_loc] auth=[$http_x_auth] key=[$http_x_api_key] bearer=[$http_authorization]\n";
        }
    }
}

EOF

my $port = $t->port(1);
my $k = $t->create_key(rate => undef);

sub get {
    my ($path, %h) = @_;
    my ($st, undef, $body) = http_get($port, $path, \%h);
    return ($st, $body // '');
}

my ($st, $body) = get('/', 'X-API-Key' => $k->{key});
is($st, 200, 'a valid key passes');
is($body, "srv=[] loc=[] auth=[] key=[] bearer=[]\n",
   'set at the server and the location level copied nothing of the key');

($st, $body) = get('/', Authorization => "Bearer $k->{key}");
is($st, 200, 'a valid bearer key passes');
is($body, "srv=[] loc=[] auth=[] key=[] bearer=[]\n",
   'nor of a bearer key');

($st, $body) = get('/shown/', 'X-API-Key' => $k->{key});
is($st, 200, 'apikey_hide_header off: the key passes');
is($body, "srv=[] loc=[$k->{key}] auth=[] key=[$k->{key}] bearer=[]\n",
   'and the location sees it and sends it on');

($st, $body) = get('/open/', 'X-API-Key' => 'not-a-key');
is($st, 200, 'apikey off: no check');
is($body, "srv=[] loc=[not-a-key] auth=[] key=[not-a-key] bearer=[]\n",
   'the header stays for a location that does not check keys');

($st) = get('/', 'X-API-Key' => 'ak_notakeyatall');
is($st, 401, 'a bad key is still refused');

($st) = get('/', 'X-API-Key' => $k->{key}, 'X-Api-Key' => $k->{key});
is($st, 401, 'a key given twice is still refused');

$t->stop_nginx;
$t->log_contains_no($k->{key});
$t->error_log_clean;

done_testing;
