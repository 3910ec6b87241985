#!/usr/bin/perl

# Reloads under traffic and a graceful quit: no failed requests, no leaked
# Redis connections, no alerts (such as "open socket left").

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use Test::More;
use Time::HiRes qw(time);

use ApiKey::Test;

my $t = ApiKey::Test->new;
$t->run_redis;

my $conf = <<'EOF';

%%TEST_GLOBALS%%
load_module %%MODULE%%;
worker_processes 2;

events {
}

http {
    %%TEST_GLOBALS_HTTP%%

    apikey_redis %%REDIS%%;

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

$t->run_nginx($conf);

my $port = $t->port(1);
my $k = $t->create_key(rate => undef);
my $stop = $t->dir . '/stop-traffic';

sub clients { scalar $t->redis_clients }

ok(wait_for(10, sub { clients() == 2 }), 'one Redis connection per worker')
    or diag(clients() . ' connections');

# traffic until told to stop, statuses counted through a pipe

pipe(my $rd, my $wr) or die "pipe: $!";

my $pid = $t->spawn(sub {
    close $rd;
    my %n;
    until (-e $stop) {
        my ($st) = http_get($port, '/', { 'X-API-Key' => $k->{key} },
                            timeout => 5);
        $n{$st // 'none'}++;
    }
    print $wr join(' ', %n);
    close $wr;
});

close $wr;

ok(wait_for(10, sub {
    $t->redis_commandstats->{evalsha}
}), 'traffic is running');

my $reloaded = 0;

for (1 .. 5) {
    $reloaded++ if $t->reload_nginx;
}

is($reloaded, 5, '5 reloads, each replacing every worker');

open my $fh, '>', $stop or die "$stop: $!";
close $fh;

my %n = split ' ', join '', <$rd>;
$t->wait_children($pid);

ok($n{200} && $n{200} > 10, 'requests passed during the reloads')
    or diag(explain \%n);
is_deeply([grep { $_ ne 200 } keys %n], [], 'and none failed')
    or diag(explain \%n);

ok(wait_for(10, sub { clients() == 2 }),
   'after the reloads: one Redis connection per worker again')
    or diag(clients() . " connections:\n" . join "\n", $t->redis_clients);

###############################################################################

my $start = time;
ok($t->stop_nginx('nginx', 'QUIT'), 'graceful quit ends nginx');
ok(time - $start < 5, 'without being held up by reconnect timers');

ok(wait_for(10, sub { clients() == 0 }), 'quit closes the Redis connections');

unlike($t->error_log, qr/open socket .* left/, 'no "open socket left"');

# quit while the workers wait to reconnect to a Redis that is gone

$t->run_nginx($conf);
$t->stop_redis;
is((http_get($port, '/', { 'X-API-Key' => $k->{key} }))[0], 503,
   'Redis stopped: 503');

$start = time;
ok($t->stop_nginx('nginx', 'QUIT'), 'Redis down: graceful quit ends nginx');
ok(time - $start < 5, 'Redis down: quit is not held up by reconnects');
$t->log_contains_no($k->{key});
$t->error_log_clean;

done_testing;
