#!/usr/bin/perl

# Raw keys never leave nginx: malformed keys cost no Redis command, a good
# one costs one, and no raw key shows up in the logs (even at debug level),
# in Redis, or in what Redis was sent.

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
error_log error.log debug;
worker_processes 1;

events {
}

http {
    %%TEST_GLOBALS_HTTP%%

    apikey_redis %%REDIS%%;

    log_format vars '$remote_addr "$request" $status $apikey_status '
                    '$apikey_id $apikey_prefix';

    server {
        listen 127.0.0.1:%%PORT_1%%;
        server_name localhost;

        access_log access.log vars;

        location / {
            apikey on;
            apikey_bearer on;
            proxy_pass http://127.0.0.1:%%PORT_1%%/echo;
        }

        location /echo {
            return 200 "ok\n";
        }
    }
}

EOF

my $port = $t->port(1);

sub get {
    my ($key, $header) = @_;
    return (http_get($port, '/', { $header // 'X-API-Key' => $key }))[0];
}

sub evals {
    my $s = $t->redis_commandstats;
    return ($s->{evalsha} // 0) + ($s->{eval} // 0);
}

my $good = $t->create_key(rate => undef);
my $revoked = $t->create_key(revoked => 1);
my $unknown = $t->raw_key;

(my $bad_check = $good->{key}) =~ s/(.)$/$1 eq 'A' ? 'B' : 'A'/e;
my @malformed = (
    $bad_check,
    'ak_' . 'x' x 49,
    $good->{key} . 'x',
    substr($good->{key}, 0, -1),
    'AK' . substr($good->{key}, 2),
    'not a key at all',
);

is(get($good->{key}), 200, 'good key passes (the script is loaded)');

###############################################################################

$t->monitor_start;

my $before = evals();

for my $key (@malformed) {
    is(get($key), 401, "malformed key refused: " . substr($key, 0, 12));
}
is(get(undef, 'X-Other'), 401, 'missing key refused');

is(evals(), $before, 'malformed and missing keys: no Redis script call');

$before = evals();
is(get($good->{key}), 200, "good key passes ($_)") for 1 .. 3;
is(get("$good->{key}", 'Authorization'), 401, 'bearer needs the scheme');
is(get("Bearer $good->{key}", 'Authorization'), 200, 'bearer key passes');
is(get($revoked->{key}), 401, 'revoked key refused');
is(get($unknown), 401, 'unknown key refused');
is(evals(), $before + 6, 'one script call per well-formed key');

my $sent = $t->monitor_stop;

like($sent, qr/\Q$good->{hash}\E/, 'Redis was sent the key hash');

###############################################################################

my $dump = $t->redis_dump;
like($dump, qr/\Q$good->{hash}\E/, 'Redis holds the key hash');

for my $key ($good->{key}, $revoked->{key}, $unknown, @malformed) {
    my $what = substr($key, 0, 12);
    ok(index($sent, $key) < 0, "Redis was not sent the raw key $what");
    ok(index($dump, $key) < 0, "Redis does not hold the raw key $what");
    $t->log_contains_no($key, $what);
}

my $log = $t->error_log;
like($log, qr/http header: "X-API-Key: \Q$good->{key}\E"/,
     'error.log is at debug level: nginx itself dumps request headers there');
ok(index($log, $good->{hash}) < 0, 'no key hash in error.log');
like($t->read_file('access.log'), qr/"GET \/ HTTP\/1.0" 200 ok $good->{id}/,
     'access.log has the key id');

$t->error_log_clean;

done_testing;
