#!/usr/bin/perl

# A node of a Redis Cluster given to apikey_redis as a plain server: the
# module finds out in its handshake (INFO cluster), logs one [error] per
# worker that says so and what to give instead, and answers the fail mode.
# With apikey_cache the replica is never loaded from such a node (it holds
# a part of the keys only, so the others would look unknown): no key is
# refused as invalid because of the deployment.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use Test::More;

use ApiKey::Test;

my $t = ApiKey::Test->new;

$t->run_redis(args => ['--cluster-enabled', 'yes',
                       '--cluster-config-file', $t->dir . '/nodes.conf']);

# one node serving every slot: a Cluster that works, for what it is
$t->redis('CLUSTER', 'ADDSLOTSRANGE', 0, 16383);
ok(wait_for(10, sub {
       ($t->redis('CLUSTER', 'INFO') // '') =~ /cluster_state:ok/
   }), 'a one-node Redis Cluster serves every slot');

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
            add_header X-Status $apikey_status always;
            empty_gif;
        }
    }
}

EOF

my $port = $t->port(1);

my %st;
for (1 .. 40) {
    my ($s, $h) = http_get($port, '/', { 'X-API-Key' => $t->raw_key });
    $st{($s // 0) . ' ' . ($h->{'x-status'} // '')}++;
    Time::HiRes::sleep(0.02);
}

is_deeply([keys %st], ['503 unavailable'],
          'a well-formed key gets the fail mode, never invalid')
    or diag(explain \%st);

my @err = grep { /\[error\].*is a node of a Redis Cluster/ }
          split /\n/, $t->error_log;

ok(@err >= 1 && @err <= 2, 'one [error] a worker, however many attempts ('
                           . @err . ')')
    or diag($t->error_log);
like($err[0] // '', qr/redis at 127\.0\.0\.1:\d+ is a node of a Redis Cluster, which "apikey_redis" does not support: give it a standalone Redis, or the Sentinels of a primary/,
     'it names the address and the fix');

unlike($t->error_log, qr/keys loaded/, 'the replica was never loaded');

$t->error_log_clean;

done_testing;
