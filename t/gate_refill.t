#!/usr/bin/perl

# Tokens given back are usable by every instance at once: an instance
# that answers 429 itself (apikey_cache), because the bucket was empty
# when Redis last told it, asks Redis again when a give-back returns
# tokens to that bucket (the gate script writes a "b" entry to the change
# log), instead of refusing until its own due time.  And while the bucket
# shows one token at most, one check of the instance asks Redis for it.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use Test::More;
use Time::HiRes qw(sleep time);

use ApiKey::Test;

my $t = ApiKey::Test->new;
$t->run_redis;
$t->run_nginx(<<'EOF');

%%TEST_GLOBALS%%
load_module %%MODULE%%;
error_log error.log info;
worker_processes 2;

events {
}

http {
    %%TEST_GLOBALS_HTTP%%

    apikey_redis %%REDIS%%;
    apikey_cache zone=keys:1m;

    server {
        listen 127.0.0.1:%%PORT_1%%;
        server_name localhost;

        location / {
            apikey on;
            proxy_pass http://127.0.0.1:%%PORT_1%%/echo;
        }

        location /echo {
            return 200 "ok\n";
        }

        location = /metrics {
            apikey_metrics;
        }
    }
}

EOF

my $port = $t->port(1);

ok(wait_for(10, sub { $t->error_log =~ /keys loaded/ }), 'replica loaded');

my $k = $t->create_key(rate => '1r/m', burst => 1);

sub gate { (http_get($port, '/', { 'X-API-Key' => $k->{key} }))[0] }

# the gate script's calls, as the module counts them (the replica's
# polls are other scripts), the workers' tallies among them

sub gate_calls {
    my (undef, undef, $body) = http_get($port, '/metrics');
    return $body =~ /^apikey_batch_checks_count (\d+)$/m ? $1 : 0;
}

ok(wait_for(5, sub { gate() == 200 }), 'the token of the minute');
is(gate(), 429, 'then 429, from Redis');

my $before = gate_calls();
my %n;
$n{gate()}++ for 1 .. 10;
is_deeply(\%n, { 429 => 10 }, '429 ten times more');

# the worker's tally of those 429s goes once a second, and may come now

ok(gate_calls() - $before <= 1,
   'answered by the instance, no Redis call but the tally')
    or diag(gate_calls() - $before . ' calls');

# a give-back of the token, as a worker's tally sends it: taken just now

my $script = do {
    local $/;
    open my $fh, '<', "$FindBin::Bin/../ngx_http_apikey_module/"
                      . 'ngx_http_apikey_gate.lua' or die "gate.lua: $!";
    <$fh>;
};

my $now = $t->redis('TIME');
my $us = $now->[0] * 1e6 + $now->[1];

$t->redis('EVAL', $script, 1, "apikey:\{$k->{hash}\}", 'feedfeedfeedfeed 1',
          "\1", '0 0 0', "0 1 $us 1/60/1");

my $start = time;
ok(wait_for(1, sub { gate() == 200 }), 'the token given back passes')
    or diag('still ' . gate());
my $took = time - $start;
ok($took < 1, sprintf('within a second (%.3f s), not after the minute',
                      $took));

is(gate(), 429, 'and it was the only one');

###############################################################################
# one token due: one check asks Redis for it

my $fast = $t->create_key(rate => '5r/s', burst => 1);
ok(wait_for(5, sub {
       (http_get($port, '/', { 'X-API-Key' => $fast->{key} }))[0] == 200
   }), 'a 5 r/s burst 1 key passes');

$before = gate_calls();

my $m = $t->hammer(ports => [($port) x 8], path => '/',
                   key => $fast->{key}, seconds => 2);

my $calls = gate_calls() - $before;

ok($m->{200} >= 8 && $m->{200} <= 13,
   "2 s of requests from 8 clients: $m->{200} passed");
ok($calls <= 1.5 * $m->{200} + 4,
   "Redis asked about once per token due, not per request: $calls checks "
   . "for $m->{200} passed of " . ($m->{200} + ($m->{429} // 0)));

$t->stop_nginx;
$t->error_log_clean;

done_testing;
