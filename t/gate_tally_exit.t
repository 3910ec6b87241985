#!/usr/bin/perl

# What a worker counted and has not sent yet goes to Redis when nginx
# shuts down or reloads gracefully: the checks the replica answered
# (apikey_cache) and the uses of a lease (apikey_rate_lease) are in the
# key's usage, and the lease's unspent tokens go back.  Before, the tally
# waited for its one-second timer, which a quitting worker never saw.
# The same when the reload turns leases off: the new workers never sweep
# the old ones' leases, so the old ones give theirs back as they go.

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
    apikey_cache zone=keys:1m;
    apikey_rate_lease 10s;

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
    }
}

EOF

my $port = $t->port(1);

sub gate { (http_get($port, '/', { 'X-API-Key' => $_[0]{key} }))[0] }

sub counted {
    my ($k) = @_;
    return $t->redis('HGET', "apikey:\{$k->{hash}\}", 'a') // 0;
}

sub loads { scalar(() = $t->error_log =~ /keys loaded/g) }

# the configuration a reload to "leases off" loads
(my $no_lease = $conf) =~ s/^\s*apikey_rate_lease .*\n//m or die;

for my $how (qw(QUIT HUP leases-off)) {
    # the zone, and the replica in it, outlive a reload: only a start
    # loads anew

    my $loaded = $t->nginx_pid ? 0 : loads();

    $t->run_nginx($conf) unless $t->nginx_pid;

    ok(wait_for(10, sub { loads() > $loaded }), "$how: the replica is loaded");

    my $free = $t->create_key(rate => undef);
    my $leased = $t->create_key(rate => '1r/s', burst => 10);

    # a new key may be unknown to the replica for a poll of the change
    # log: 401s are not counted

    my $passed = 0;
    ok(wait_for(5, sub { gate($free) == 200 && ++$passed }),
       "$how: the replica has the unlimited key");

    my $limit = $t->create_key(rate => '1r/m', burst => 1, revoked => 1);
    ok(wait_for(5, sub {
           (http_get($port, '/', { 'X-API-Key' => $limit->{key} }))[2]
               =~ /revoked_api_key/
       }),
       "$how: and the limited one, made before a revoked one it has too");


    # an unlimited key: answered by the replica, counted by the tally;
    # a limited one: the first asks Redis for a lease, the rest spend it

    my %n;
    $n{gate($free)}++ for 1 .. 7;

    $n{gate($leased)}++ for 1 .. 6;
    is_deeply(\%n, { 200 => 13 }, "$how: 13 requests passed");

    my $b0 = $t->redis('HGET', "apikey:\{$leased->{hash}\}", 'b');

    if ($how eq 'QUIT') {
        ok($t->stop_nginx('nginx', 'QUIT'), 'graceful quit');

    } elsif ($how eq 'HUP') {
        ok($t->reload_nginx, 'graceful reload');

    } else {
        $t->write_config($no_lease);
        ok($t->reload_nginx, 'graceful reload to a configuration without '
                             . 'apikey_rate_lease');
    }

    ok(wait_for(5, sub { counted($free) == $passed + 7 }),
       "$how: the checks of the replica are counted")
        or diag(counted($free) . " of $passed + 7");

    ok(wait_for(5, sub { counted($leased) == 6 }),
       "$how: the 6 uses of the lease are counted")
        or diag(counted($leased));

    my $b1 = $t->redis('HGET', "apikey:\{$leased->{hash}\}", 'b');
    ok($b1 < $b0, "$how: the lease's unspent tokens went back")
        or diag("b $b0 -> $b1");
}

$t->stop_nginx;
$t->error_log_clean;

done_testing;
