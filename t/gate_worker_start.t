#!/usr/bin/perl

# A new worker, at start or after a reload, serves its first requests even
# when reading the configuration took longer than apikey_redis_timeout:
# the Redis connect timer must not be armed from the time nginx cached
# before it read the configuration.  A big geo include makes the load
# slow.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use Test::More;
use Time::HiRes qw(time);

use ApiKey::Test;

my $t = ApiKey::Test->new;
$t->run_redis;

# 500,000 geo entries: about 0.3 s to load on a small machine, over three
# times the timeout below

my $entries = 500000;
my $timeout_ms = 80;

my $geo = $t->dir . '/geo.conf';
open my $fh, '>', $geo or die "$geo: $!";

for my $i (0 .. $entries - 1) {
    printf $fh "10.%d.%d.%d/32 1;\n", ($i >> 16) & 255, ($i >> 8) & 255,
           $i & 255;
}

close $fh;
chmod 0644, $geo;

my $conf = <<"EOF";

%%TEST_GLOBALS%%
load_module %%MODULE%%;
error_log error.log info;
worker_processes 2;

events {
}

http {
    %%TEST_GLOBALS_HTTP%%

    apikey_redis %%REDIS%%;
    apikey_redis_timeout ${timeout_ms}ms;

    geo \$listed {
        default 0;
        include $geo;
    }

    server {
        listen 127.0.0.1:%%PORT_1%%;
        server_name localhost;

        location / {
            apikey on;
            add_header X-Status \$apikey_status always;
            empty_gif;
        }
    }
}

EOF

# how long this machine takes to load the configuration

my $start = time;
my ($rc, $out) = $t->nginx_test($conf);
my $load = time - $start;

is($rc, 0, 'the configuration is valid') or diag($out);
note(sprintf('nginx -t with %d geo entries: %.3f s, timeout %d ms',
             $entries, $load, $timeout_ms));

SKIP: {
    skip "loading took only ${load} s", 1 if $load * 1000 < 2 * $timeout_ms;
    pass('loading the configuration takes twice the timeout or more');
}

my $k = $t->create_key(rate => undef);
my $port = $t->port(1);

# requests, one after the other, for a while: their statuses counted

sub hammer {
    my ($seconds) = @_;
    my (%n, $first);

    my $end = time + $seconds;

    while (time < $end) {
        my ($st, $h) = http_get($port, '/', { 'X-API-Key' => $k->{key} },
                                timeout => 5);
        $st //= 'none';
        $first //= $st;
        $n{$st}++;
        $n{'status ' . ($h->{'x-status'} // '')}++ if $st ne '200';
    }

    return ($first, \%n);
}

sub timed_out { scalar(() = $t->error_log =~ /timed out/g) }

###############################################################################

$t->run_nginx($conf);

my ($first, $n) = hammer(1);
is($first, 200, 'new workers: the first request passes');
is_deeply([grep { $_ ne '200' } sort keys %$n], [],
          'new workers: every request of the first second passes')
    or diag(explain $n);
is(timed_out(), 0, 'new workers: no "timed out" in the error log')
    or diag(join "\n", grep { /timed out/ } split /\n/, $t->error_log);

###############################################################################

# a reload: the master reads the configuration again, then starts workers

my @old = $t->worker_pids;
kill 'HUP', $t->nginx_pid;

# the new workers' first requests: hammer until they run, and a bit more

my %all;
my $until = time + 10;

while (time < $until) {
    my (undef, $m) = hammer(0.2);
    $all{$_} += $m->{$_} for keys %$m;

    my %old = map { $_ => 1 } @old;
    my @now = $t->worker_pids;
    last if @now && !grep { $old{$_} } @now;
}

($first, $n) = hammer(0.5);
$all{$_} += $n->{$_} for keys %$n;

ok($all{200} && $all{200} > 10, 'reload: requests were served');
is_deeply([grep { $_ ne '200' } sort keys %all], [],
          'reload: every request passes, the new workers\' first ones too')
    or diag(explain \%all);
is(timed_out(), 0, 'reload: no "timed out" in the error log')
    or diag(join "\n", grep { /timed out/ } split /\n/, $t->error_log);

$t->log_contains_no($k->{key});
$t->error_log_clean;

done_testing;
