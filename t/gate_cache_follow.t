#!/usr/bin/perl

# apikey_cache's follower: the reader waits in Redis on the change log
# (XREAD BLOCK on a connection of its own) rather than polling it.  Two
# instances, A and B: a change made through A's admin API is seen at B
# within a few milliseconds (measured over 50 changes); idle, B's reader
# costs Redis a few commands a second, all on its own connection; a
# change its wait cannot see (the log deleted) is found by the read it
# makes once a second anyway; a connection killed under the wait loses no
# change.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use Test::More;
use Time::HiRes qw(sleep time);

use ApiKey::Test;
use ApiKey::Admin;

my $t = ApiKey::Test->new;
$t->run_redis;

my $tok = write_tokens($t, ops => '*');

my $conf_a = admin_config($t,
                          http => 'apikey_cache zone=keys:4m;',
                          server => 'location = /metrics { apikey_metrics; }');
(my $conf_b = $conf_a) =~ s/%%PORT_1%%/%%PORT_2%%/g;

$t->run_nginx($conf_a);
$t->run_nginx($conf_b, name => 'b');

my $pb = $t->port(2);
my $adm = ApiKey::Admin->new($t, $tok->{ops});

for my $name (qw(nginx b)) {
    ok(wait_for(10, sub { $t->error_log($name) =~ /keys loaded/ }),
       "$name loaded its replica");
}

sub metrics {
    my (undef, undef, $body) = http_get($pb, '/metrics');
    return { ($body // '') =~ /^(apikey_\w+(?:\{[^}]*\})?) (\S+)$/mg };
}

###############################################################################
# change to seen: a key without a limit, revoked and restored through A,
# 50 changes; each time B is asked back to back until it answers the
# change, from A's reply on

my $k = $adm->create('acme', name => 'followed', rate_limit => undef);

ok(wait_for(2, sub { (gate($pb, $k->{key}))[0] == 200 }),
   'a key created through A passes at B');

# back to back: wait_for() would sleep between the questions

sub seen {
    my ($want) = @_;
    my $until = time + 1;

    while (time < $until) {
        return 1 if (gate($pb, $k->{key}))[0] == $want;
    }

    return 0;
}

my (@lag, $late);

for my $i (1 .. 50) {
    my ($op, $want) = $i % 2 ? ('revoke', 401) : ('restore', 200);

    my $r = $adm->post("orgs/acme/keys/$k->{id}/$op", undef);
    my $t0 = time;

    $late++ unless $r->{status} == 200 && seen($want);

    push @lag, time - $t0;
    sleep 0.05 + rand(0.05);
}

@lag = sort { $a <=> $b } @lag;

ok(!$late, 'each of 50 changes is seen at B within 1 s');
ok($lag[24] <= 0.005, 'change to seen at B: p50 within 5 ms')
    or diag(sprintf 'p50 %.1f ms', $lag[24] * 1000);
note(sprintf 'change to seen at B over 50 changes: p50 %.1f ms, '
             . 'p90 %.1f ms, max %.1f ms',
             map { $_ * 1000 } @lag[24, 44, 49]);

###############################################################################
# idle: what Redis runs for the two readers over 3 s, nothing else asked

sleep 1.5;

my $m0 = metrics();
my $s0 = $t->redis_commandstats;
my $i0 = time;

sleep 3;

my $s1 = $t->redis_commandstats;
my $elapsed = time - $i0;
my $m1 = metrics();

my %did = map { $_ => ($s1->{$_} // 0) - ($s0->{$_} // 0) } keys %$s1;
$did{info}--;       # our own INFO commandstats

my $sent = ($did{xread} // 0) + ($did{evalsha} // 0) + ($did{eval} // 0);
my $all = 0;
$all += $_ for values %did;

my $figures = sprintf '%d XREAD, %d EVALSHA (%.1f a second per instance); '
                      . 'commands run in all, scripts\' own included: %d '
                      . '(%.1f a second per instance)',
                      $did{xread} // 0, $did{evalsha} // 0,
                      $sent / 2 / $elapsed, $all, $all / 2 / $elapsed;

ok($sent / 2 / $elapsed <= 5, 'idle: a reader sends at most 5 commands a second')
    or diag($figures);
ok($did{xread} && $did{evalsha}, 'waits and reads of the log, both')
    or diag($figures);
note("idle over 3 s: $figures");

my %calls = map {
    $_ => ($m1->{"apikey_redis_calls_total{connection=\"$_\"}"} // 0)
          - ($m0->{"apikey_redis_calls_total{connection=\"$_\"}"} // 0)
} qw(gate replica);

is($calls{gate}, 0, 'idle: nothing on the gatekeeper\'s connection');
ok($calls{replica} > 0 && $calls{replica} / $elapsed <= 5,
   'the reader\'s calls counted on its own connection')
    or diag("replica calls: $calls{replica} in 3 s");

my $lag = metrics()->{apikey_replica_lag_seconds} // -1;
ok($lag >= 0 && $lag < 1, 'the replica is current while it waits')
    or diag("lag $lag");

###############################################################################
# a connection killed under the wait: the change made meanwhile is seen

my @ids = map { /\bid=(\d+)\b/ ? $1 : () }
          grep { /\bcmd=xread\b/ } $t->redis_clients;

is(scalar @ids, 2, 'a waiting connection per instance');

$t->redis('CLIENT', 'KILL', 'ID', $_) for @ids;
$adm->post("orgs/acme/keys/$k->{id}/revoke", undef);

ok(wait_for(1, sub { (gate($pb, $k->{key}))[0] == 401 }),
   'the wait killed: a change is still seen at B within 1 s');

###############################################################################
# the log deleted: no entry wakes the wait, the read once a second finds
# the gap and B reloads

my $before = () = $t->error_log('b') =~ /keys loaded/g;
my $d0 = time;

$t->redis('DEL', 'apikey:changes');

ok(wait_for(5, sub {
       (() = $t->error_log('b') =~ /keys loaded/g) > $before
   }), 'the change log deleted: B reloads');
ok(time - $d0 < 2, 'within about a second')
    or diag(sprintf '%.2f s', time - $d0);

$t->error_log_clean;

done_testing;
