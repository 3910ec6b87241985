#!/usr/bin/perl

# CORS preflights at the gatekeeper, apikey_preflight pass | check: with
# pass (the default) an OPTIONS with Origin and
# Access-Control-Request-Method goes through unchecked, as
# $apikey_status "preflight", takes no token and asks nothing of Redis;
# anything short of a preflight is checked; with check a preflight is
# checked like any request.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use Test::More;

use ApiKey::Test;

my $t = ApiKey::Test->new;
$t->run_redis;

my $conf = <<'EOF';

%%TEST_GLOBALS%%
load_module %%MODULE%%;
error_log error.log info;
worker_processes 1;

events {
}

http {
    %%TEST_GLOBALS_HTTP%%

    apikey_redis %%REDIS%%;

    %%HTTP%%

    server {
        listen 127.0.0.1:%%PORT_1%%;
        server_name localhost;

        add_header X-Status $apikey_status always;

        apikey on;

        location / {
            proxy_pass http://127.0.0.1:%%PORT_3%%/echo;
        }

        location /check {
            apikey_preflight check;
            proxy_pass http://127.0.0.1:%%PORT_3%%/echo;
        }

        # authorized by a subrequest to a gatekept location

        location /protected {
            apikey off;
            auth_request /auth;
            auth_request_set $sub $apikey_status;
            add_header X-Sub $sub always;
            proxy_pass http://127.0.0.1:%%PORT_3%%/echo;
        }

        location = /auth {
            internal;
            empty_gif;
        }
    }

    server {
        listen 127.0.0.1:%%PORT_2%%;
        server_name localhost;

        add_header X-Status $apikey_status always;

        apikey on;
        apikey_preflight check;

        location / {
            proxy_pass http://127.0.0.1:%%PORT_3%%/echo;
        }

        location /pass {
            apikey_preflight pass;
            proxy_pass http://127.0.0.1:%%PORT_3%%/echo;
        }
    }

    server {
        listen 127.0.0.1:%%PORT_3%%;
        server_name localhost;

        access_log off;

        location /echo {
            return 200 "$request_method\n";
        }
    }
}

EOF

(my $main = $conf) =~ s/%%HTTP%%//;
$t->run_nginx($main);

my %cors = ('Origin' => 'https://app.example',
            'Access-Control-Request-Method' => 'GET',
            'Access-Control-Request-Headers' => 'x-api-key');

sub req {
    my ($port, $method, $path, %h) = @_;

    my $req = "$method $path HTTP/1.0\r\nHost: localhost\r\n";
    $req .= "$_: $h{$_}\r\n" for sort keys %h;

    return [http_request($t->port($port), "$req\r\n")];
}

sub status { $_[0][1]{'x-status'} // '(none)' }

###############################################################################

# pass, the default

my $r = req(1, 'OPTIONS', '/', %cors);
is($r->[0], 200, 'preflight without a key: passes');
is($r->[2], "OPTIONS\n", 'preflight: reaches the upstream');
is(status($r), 'preflight', 'preflight: $apikey_status preflight');

$r = req(1, 'OPTIONS', '/', %cors, 'X-API-Key' => 'not-a-key');
is($r->[0], 200, 'preflight with a malformed key: passes unchecked');
is(status($r), 'preflight', 'with a malformed key: $apikey_status preflight');

# no token: a burst-1 key's one token is still there after preflights

my $one = $t->create_key(rate => '1r/m', burst => 1);

$t->monitor_start;

for my $key (undef, $one->{key}) {
    $r = req(1, 'OPTIONS', '/', %cors,
             defined $key ? ('X-API-Key' => $key) : ());
    is($r->[0], 200, 'preflight ' . (defined $key ? 'with' : 'without')
                     . ' a key: passes');
}

my $monitor = $t->monitor_stop;
unlike($monitor, qr/"eval(sha)?"/i, 'preflights send nothing to Redis')
    or diag($monitor);

is(req(1, 'GET', '/', 'X-API-Key' => $one->{key})->[0], 200,
   'burst-1 key after preflights: its one token is still there');
is(req(1, 'GET', '/', 'X-API-Key' => $one->{key})->[0], 429,
   'burst-1 key: the next request is limited');

# the control for the MONITOR capture: a checked request is seen

$t->monitor_start;
req(1, 'GET', '/', 'X-API-Key' => $one->{key});
like($t->monitor_stop, qr/"evalsha"/i, 'a checked request is seen in Redis');

# not preflights: checked

my %no_origin = %cors;
delete $no_origin{Origin};
my %no_method = %cors;
delete $no_method{'Access-Control-Request-Method'};

for my $case (['OPTIONS without Origin', 'OPTIONS', \%no_origin],
              ['OPTIONS without Access-Control-Request-Method', 'OPTIONS',
               \%no_method],
              ['OPTIONS with neither', 'OPTIONS', {}],
              ['GET with both headers', 'GET', \%cors],
              ['POST with both headers', 'POST', \%cors])
{
    my ($what, $method, $h) = @$case;

    $r = req(1, $method, '/', %$h);
    is_problem($r, 401, 'missing_api_key', "$what: 401 missing_api_key");
    is(status($r), 'missing', "$what: \$apikey_status missing");
}

my $ok = $t->create_key(rate => undef);
$r = req(1, 'OPTIONS', '/', %no_origin, 'X-API-Key' => $ok->{key});
is($r->[0], 200, 'OPTIONS without Origin, valid key: checked and passes');
is(status($r), 'ok', 'OPTIONS without Origin: $apikey_status ok');

# a preflight authorized through auth_request: the subrequest nginx makes
# is a GET, but the request it stands for is the preflight

is(req(1, 'GET', '/protected')->[0], 401,
   'auth_request to a gatekept location: a GET without a key is 401');

# auth_request makes its subrequest a GET: the client's method counts

$r = req(1, 'OPTIONS', '/protected', %cors);
is($r->[0], 200, 'preflight through auth_request: passes');
is($r->[1]{'x-sub'}, 'preflight',
   'preflight through auth_request: $apikey_status preflight');

###############################################################################

# check

$r = req(1, 'OPTIONS', '/check', %cors);
is_problem($r, 401, 'missing_api_key',
           'apikey_preflight check: preflight without a key is 401');
is(status($r), 'missing', 'check: $apikey_status missing');

$r = req(1, 'OPTIONS', '/check', %cors, 'X-API-Key' => $ok->{key});
is($r->[0], 200, 'check: preflight with a valid key passes');
is(status($r), 'ok', 'check: $apikey_status ok');

# server level, and a location that sets pass again

is_problem(req(2, 'OPTIONS', '/', %cors), 401, 'missing_api_key',
           'check at server level: preflight is 401');
$r = req(2, 'OPTIONS', '/pass', %cors);
is($r->[0], 200, 'pass in a location under check: preflight passes');
is(status($r), 'preflight', 'pass under check: $apikey_status preflight');

###############################################################################

# a preflight needs no Redis

$t->stop_redis;

$r = req(1, 'OPTIONS', '/', %cors);
is($r->[0], 200, 'Redis stopped: preflight passes');
is(status($r), 'preflight', 'Redis stopped: $apikey_status preflight');
is(req(1, 'OPTIONS', '/check', %cors, 'X-API-Key' => $ok->{key})->[0], 503,
   'Redis stopped: a checked preflight is 503');

$t->stop_nginx;
$t->start_redis;

# apikey_preflight check at http level

(my $http = $conf) =~ s/%%HTTP%%/apikey_preflight check;/;
$t->run_nginx($http, name => 'http');
is_problem(req(1, 'OPTIONS', '/', %cors), 401, 'missing_api_key',
           'check at http level: preflight is 401');
$t->stop_nginx('http');

###############################################################################

# the directive's syntax

(my $bad = $conf) =~ s/%%HTTP%%/apikey_preflight maybe;/;
my ($rc, $out) = $t->nginx_test($bad);
isnt($rc, 0, 'nginx -t rejects apikey_preflight maybe');
like($out, qr/\[emerg\] .*invalid value "maybe": give "pass" or "check" in \S*nginx\.conf:\d+/,
     'with a message naming the value and the line')
    or diag($out);

(my $two = $conf) =~ s/%%HTTP%%/apikey_preflight pass check;/;
($rc, $out) = $t->nginx_test($two);
isnt($rc, 0, 'nginx -t rejects apikey_preflight with two values');
like($out, qr/invalid number of arguments in "apikey_preflight"/,
     'with a message saying so')
    or diag($out);

$t->log_contains_no($_->{key}, 'preflight keys') for $one, $ok;
$t->error_log_clean;

done_testing;
