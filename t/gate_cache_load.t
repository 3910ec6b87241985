#!/usr/bin/perl

# apikey_cache's load resumes: 40,000 keys, loaded by one instance as
# they are (the SCAN calls an undisturbed load makes), then by another
# whose reader's connection is stalled past the Redis timeout mid-load,
# and later reset after a slice reached Redis.  Each time the load goes
# on from its cursor on the same server rather than from the first key:
# Redis runs a few SCANs more than the undisturbed load, not a second
# load's worth.  Requests meanwhile are checked in Redis, and none gets a
# 503.  The load ends with one notice that gives its figures, and the
# metrics showed it under way.  A load interrupted by a Redis restart
# begins again: a cursor means nothing on another server.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use Test::More;
use Time::HiRes qw(sleep time);

use ApiKey::Test;
use ApiKey::Admin;
use ApiKey::Chaos::Proxy;

my $t = ApiKey::Test->new;
$t->run_redis;

write_tokens($t, ops => '*');

my $n = 40000;

load_keys($t, 'bulk', $n);
my $k = $t->create_key(name => 'checked meanwhile', rate => undef);

my ($pport, $cport) = ($t->port('proxy'), $t->port('control'));

$t->spawn(sub {
    ApiKey::Chaos::Proxy->new(upstream => '127.0.0.1:' . $t->redis_port,
                              listeners => { b => $pport },
                              control => $cport,
                              log => $t->dir . '/proxy.log')->run;
});

ok(wait_for(10, sub {
       eval { ApiKey::Chaos::Proxy::control($cport, 'pairs') } }),
   'the proxy runs');

sub proxy { ApiKey::Chaos::Proxy::control($cport, $_[0]) }

# one worker: its gatekeeper's connection is made first, the reader's
# next, so the proxy's newest pair of B is the reader's; no admin
# location, whose expiry notices would open the admin connection after
# them.  A timeout of 500 ms: a busy machine does not time a check out

my $conf_a = admin_config($t, workers => 1,
                          http => 'apikey_cache zone=keys:64m; '
                                  . 'apikey_redis_timeout 500ms;',
                          server => 'location = /metrics { apikey_metrics; '
                                    . 'allow 127.0.0.1; deny all; }');
$conf_a =~ s/apikey_admin;/return 404;/;
(my $conf_b = $conf_a) =~ s/%%PORT_1%%/%%PORT_2%%/g;
$conf_b =~ s/%%REDIS%%/127.0.0.1:$pport/;

sub scans { $t->redis_commandstats->{scan} // 0 }

sub loaded {
    my ($name) = @_;
    return $t->error_log($name) =~ /\[notice\].*?: (\d+ keys loaded in .*)/
           ? $1 : undef;
}

###############################################################################
# undisturbed

my $s0 = scans();
$t->run_nginx($conf_a);

ok(wait_for(30, sub { loaded('nginx') }), 'A loaded its replica');
my $plain = scans() - $s0;
note('A: ' . loaded('nginx') . ", $plain SCANs");

$t->stop_nginx('nginx');

###############################################################################
# B's reader stalled mid-load past the timeout, then reset: each
# slice held up 5 ms each way, so that the load lasts a few seconds

proxy('delay 5 b');

my $s1 = scans();
$t->run_nginx($conf_b, name => 'b');

my $pb = $t->port(2);
my $stop = $t->dir . '/stop';

pipe(my $rd, my $wr) or die "pipe: $!";

my $client = $t->spawn(sub {
    close $rd;
    my %st;
    until (-e $stop) {
        $st{(gate($pb, $k->{key}))[0]}++;
    }
    print $wr join ' ', %st;
    close $wr;
});

close $wr;

sub metric {
    my (undef, undef, $body) = http_get($pb, '/metrics');
    return (($body // '') =~ /^\Q$_[0]\E (\S+)$/m)[0];
}

my ($at_stall, $at_reset, $loading);

ok(wait_for(30, sub {
       $at_stall = metric('apikey_replica_load_keys') // 0;
       $loading = metric('apikey_replica_loading');
       $at_stall >= $n / 4;
   }), 'B loads: a quarter of the keys read');
is($loading, 1, 'apikey_replica_loading says so');

like(proxy('stall 1000 last:b'), qr/pairs=1/, 'the reader stalled for 1 s');

ok(wait_for(30, sub {
       $at_reset = metric('apikey_replica_load_keys') // 0;
       $at_reset >= $n / 2;
   }), 'B goes on loading: half of the keys read');

like(proxy('reset_after_request last:b'), qr/pairs=1/,
     'then the reader\'s connection reset after a slice reached Redis');

ok(wait_for(30, sub { loaded('b') }), 'B loaded its replica');

my $resumed = scans() - $s1;

open my $fh, '>', $stop or die "$stop: $!";
close $fh;

my %st = split ' ', join '', <$rd>;
$t->wait_children($client);

note('B: ' . (loaded('b') // '') . ", $resumed SCANs; at the stall "
     . "$at_stall keys read, at the reset $at_reset; requests meanwhile: "
     . join ' ', map { "$_=$st{$_}" } sort keys %st);

like(loaded('b'), qr/^\Q@{[ $n + 1 ]}\E keys loaded in [\d.]+ s \(\d+ slices, [2-9]\d* resumed after a failed one\)/,
     'one notice: every key, the time, and two failed slices resumed');
ok($resumed <= $plain + 10,
   'the load went on from its cursor: a few SCANs more than undisturbed')
    or diag("$resumed SCANs, undisturbed $plain");
ok($st{200} && $st{200} > 10, 'requests were answered meanwhile')
    or diag(explain \%st);
is_deeply([grep { $_ ne '200' } keys %st], [], 'every one 200, none 503')
    or diag(explain \%st);

like($t->error_log('b'), qr/redis replica connection to .* lost/,
     'the reader\'s connection was lost once');
unlike($t->error_log('b'), qr/begins again/, 'and found the same server');
is(metric('apikey_replica_loading'), 0, 'apikey_replica_loading back to 0');
is(metric('apikey_replica_load_keys'), $n + 1, 'apikey_replica_load_keys');
ok((metric('apikey_replica_load_resumes_total') // 0) >= 2,
   'apikey_replica_load_resumes_total counts the slices asked again');

###############################################################################
# another server mid-load (Redis restarted, empty): a cursor means nothing
# there, and the load begins again

my $loads = () = $t->error_log('b') =~ /keys loaded/g;

$t->redis('XTRIM', 'apikey:changes', 'MAXLEN', 0);

ok(wait_for(10, sub {
       (metric('apikey_replica_loading') // 0) == 1
       && (metric('apikey_replica_load_keys') // 0) >= $n / 10
   }), 'the change log trimmed: B reloads');

$t->restart_redis;

ok(wait_for(20, sub { (() = $t->error_log('b') =~ /keys loaded/g) > $loads }),
   'Redis restarted mid-load: B loaded');
like($t->error_log('b'),
     qr/another Redis server answers, the load begins again/,
     'the load began again on the new server');
like(($t->error_log('b') =~ /.*: (\d+ keys loaded)/s)[0] // '',
     qr/^0 keys loaded/, 'which holds no key');

proxy('heal');

$t->error_log_clean;

done_testing;
