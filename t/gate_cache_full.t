#!/usr/bin/perl

# A zone too small for every key: the keys that do not fit are checked in
# Redis, counted exactly (apikey_replica_missing_keys, which changes and
# deletes keep right), and a change of a key that fits keeps it in the
# replica (the old record is freed first), where it used to drop out
# silently and go to Redis until the next full load.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use Test::More;

use ApiKey::Test;

my $t = ApiKey::Test->new;
$t->run_redis;

my $n = 200;
my @keys = map { $t->create_key(rate => undef, name => "k$_") } 1 .. $n;

$t->run_nginx(<<'EOF2');

%%TEST_GLOBALS%%
load_module %%MODULE%%;
error_log error.log info;
worker_processes 1;

events {
}

http {
    %%TEST_GLOBALS_HTTP%%

    apikey_redis %%REDIS%%;
    apikey_cache zone=keys:32k;

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
            allow 127.0.0.1;
            deny all;
        }
    }
}

EOF2

my $port = $t->port(1);

ok(wait_for(10, sub { $t->error_log =~ /keys loaded/ }), 'replica loaded');
like($t->error_log, qr/zone "keys" is too small: \d+ of $n keys did not fit/,
     'a warning says how many keys did not fit');

sub metric {
    my ($name) = @_;
    my (undef, undef, $body) = http_get($port, '/metrics');
    return $body =~ /^$name (\d+)$/m ? $1 : undef;
}

# the gate script's calls, as the module counts them (the replica's polls
# are other scripts)

sub gate_calls { metric('apikey_batch_checks_count') // 0 }

# a key the replica answers costs no gate call (asked twice: a worker's
# tally of the second's answers may go out in between)

sub local_answer {
    my ($k) = @_;
    my $before = gate_calls();
    my ($st) = http_get($port, '/', { 'X-API-Key' => $k->{key} });
    return $st == 200 && gate_calls() == $before;
}

my $held = metric('apikey_replica_keys');
my $missing = metric('apikey_replica_missing_keys');

ok($held > 10 && $held < $n, "the zone holds $held keys");
is($held + $missing, $n, "and $missing are counted missing, every one");

my @in = grep { local_answer($_) || local_answer($_) } @keys;
is(scalar @in, $held, 'the keys held are answered by the replica');

my %all = map { (http_get($port, '/', { 'X-API-Key' => $_->{key} }))[0] => 1 }
          @keys;
is_deeply([keys %all], [200], 'every key passes, held or not');

# changes of keys held, in a full zone

my @changed = @in[0 .. 4];
$t->update_key($_, env => 'preview') for @changed;
$t->update_key($_, env => 'production') for @changed;

ok(wait_for(5, sub { !grep { !local_answer($_) } @changed }),
   'keys held, changed twice in a full zone, are still answered by the '
   . 'replica');

is(metric('apikey_replica_keys'), $held, 'the zone holds as many');
is(metric('apikey_replica_missing_keys'), $missing, 'as many are missing');

# deletes: of a missing key, and of a held one

my %in = map { $_->{hash} => 1 } @in;
my ($gone_missing) = grep { !$in{$_->{hash}} } @keys;
my $gone_held = $in[-1];

for my $k ($gone_missing, $gone_held) {
    $t->redis('DEL', "apikey:\{$k->{hash}\}");
    $t->redis('XADD', 'apikey:changes', '*', 'h', $k->{hash});
}

ok(wait_for(5, sub {
       (http_get($port, '/', { 'X-API-Key' => $gone_held->{key} }))[0] == 401
   }), 'a deleted key is refused');

is(metric('apikey_replica_keys') + metric('apikey_replica_missing_keys'),
   $n - 2, 'deletes count out of the replica and of the missing keys');

$t->stop_nginx;
$t->error_log_clean;

done_testing;
