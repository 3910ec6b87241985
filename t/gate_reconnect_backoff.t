#!/usr/bin/perl

# Reconnecting does not hammer a failing Redis: after a failed attempt the
# next waits, longer and longer (25 ms, doubling, up to half a second, with
# jitter), where every worker used to try every 200 ms; and a connection
# loads no scripts (13 SCRIPT LOADs per worker per reconnect before): a
# call that meets NOSCRIPT sends its script once.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use Test::More;
use Time::HiRes qw(sleep time);

use ApiKey::Test;
use ApiKey::FakeRedis;

my $t = ApiKey::Test->new;
$t->run_redis;

# a server that closes every connection at its first command

my $fake = ApiKey::FakeRedis->start($t, sub { undef });

my $conf = <<'EOF2';

%%TEST_GLOBALS%%
load_module %%MODULE%%;
error_log error.log info;
worker_processes 1;

events {
}

http {
    %%TEST_GLOBALS_HTTP%%

    apikey_redis %%ADDRESS%%;

    server {
        listen 127.0.0.1:%%PORT_1%%;
        server_name localhost;

        location / {
            apikey on;
            proxy_pass http://127.0.0.1:%%PORT_1%%/echo;
        }

        location /echo {
            return 200 "ok\\n";
        }
    }
}

EOF2

(my $bad = $conf) =~ s/%%ADDRESS%%/127.0.0.1:${\ $fake->port }/;
$t->run_nginx($bad);

my $start = time;
sleep 3;
my $n = $fake->accepts;
my $took = time - $start;

ok($n >= 3 && $n <= 12,
   sprintf('%d connection attempts in %.1f s, backing off', $n, $took));

$t->stop_nginx;

# a working Redis: no script is loaded ahead

(my $good = $conf) =~ s/%%ADDRESS%%/%%REDIS%%/;
$t->redis('SCRIPT', 'FLUSH');
$t->redis('CONFIG', 'RESETSTAT');
$t->run_nginx($good);

my $k = $t->create_key(rate => undef);
is((http_get($t->port(1), '/', { 'X-API-Key' => $k->{key} }))[0], 200,
   'a key passes');
is((http_get($t->port(1), '/', { 'X-API-Key' => $k->{key} }))[0], 200,
   'and again');

my $s = $t->redis_commandstats;
is($s->{'script|load'} // 0, 0, 'no SCRIPT LOAD');
is($s->{eval} // 0, 1, 'the script was sent once, after NOSCRIPT');

$t->stop_nginx;
$t->error_log_clean;

done_testing;
