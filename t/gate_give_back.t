#!/usr/bin/perl

# The gate script's give-back of a lease's unspent tokens, called as nginx
# calls it: tokens come back only as far as they could not have
# overflowed the bucket since they were taken (their worth, k * step, less
# the time since),
# so that a give-back after the bucket refilled and was drained again adds
# nothing (it used to add every token back: 20 allowed in 0.2 s against a
# limit of 12); a give-back that returns tokens says so in the change log.
# And the script applies a call once: the same call sent again gets the
# first reply and changes nothing.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use Test::More;
use Time::HiRes qw(sleep time);

use ApiKey::Test;

my $t = ApiKey::Test->new;
$t->run_redis;

my $script = do {
    local $/;
    open my $fh, '<', "$FindBin::Bin/../ngx_http_apikey_module/"
                      . 'ngx_http_apikey_gate.lua' or die "gate.lua: $!";
    <$fh>;
};

my $number = 0;

# one call of the script, as nginx makes it: the id, then per check its
# environment, scopes and lease

sub call {
    my (@checks) = @_;
    my $id = ref $checks[0] ? 'c0ffee00c0ffee00 ' . ++$number : shift @checks;

    return $t->redis('EVAL', $script, scalar @checks,
                     (map { "apikey:\{$_->{hash}\}" } @checks),
                     $id, map { ('', '', $_->{lease} // '') } @checks);
}

sub codes { [map { $_->[0] } @{$_[0]}] }

# 10 r/s, burst 10: a step of 100 ms

my $k = $t->create_key(rate => '10r/s', burst => 10);
my $lim = '10/1/10';

###############################################################################
# a lease given back at once comes back whole

my $r = call({ %$k, lease => "10 0 0 $lim" });
is($r->[0][0], 0, 'a lease: allowed');
is($r->[0][3], 10, 'of 10 tokens');
my $at = $r->[0][4];
ok($at > 1e15, 'taken at a Redis time in microseconds');

my @left = @{codes(call(map { $k } 1 .. 3))};
is_deeply(\@left, [6, 6, 6], 'the bucket is empty');

$r = call({ %$k, lease => "1 9 $at $lim" }, $k);
is_deeply(codes($r), [0, 0], 'the 9 unspent tokens came back at once');

$t->redis('XTRIM', 'apikey:changes', 'MAXLEN', 0);

###############################################################################
# a lease given back after the bucket refilled and was drained: nothing

my $k2 = $t->create_key(rate => '10r/s', burst => 10);

$r = call({ %$k2, lease => "10 0 0 $lim" });
is($r->[0][3], 10, 'a lease of 10 tokens');
$at = $r->[0][4];

sleep 1.1;      # the bucket refills whole: the lease's tokens overflowed

my $allowed = 0;
for (1 .. 12) {
    $allowed++ if call($k2)->[0][0] == 0;
}
ok($allowed >= 10 && $allowed <= 11, "drained again: $allowed allowed");

$r = call({ %$k2, lease => "1 9 $at $lim" }, $k2);
is_deeply(codes($r), [6, 6],
          'the 9 tokens given back after 1.1 s add nothing');

sub gave_back {
    my $e = $t->redis('XRANGE', 'apikey:changes', '-', '+');
    return [map { $_->[1][1] } grep { $_->[1][0] eq 'b' } @$e];
}

is_deeply(gave_back(), [], 'nothing came back: no b entry in the change log');

###############################################################################
# partly: taken 500 ms ago, 9 given back: 9 - 5 = 4

my $k3 = $t->create_key(rate => '10r/s', burst => 10);

call({ %$k3, lease => "10 0 0 $lim" });
my $now = $t->redis('TIME');
my $us = $now->[0] * 1e6 + $now->[1];

# as taken 450 ms ago (and a few more by the call): what refilled since
# would have pushed 5 out

$r = call({ %$k3, lease => "1 9 " . int($us - 450000) . " $lim" },
          map { $k3 } 1 .. 5);
is_deeply(codes($r), [0, 0, 0, 0, 6, 6],
          '9 given back 450 ms after they were taken: 4 came back');

is_deeply(gave_back(), [$k3->{hash}],
          'a b entry in the change log, naming the bucket given to');

###############################################################################
# tokens taken under another limit are dropped

my $k4 = $t->create_key(rate => '10r/s', burst => 10);
call({ %$k4, lease => "10 0 0 $lim" });
$now = $t->redis('TIME');
$us = $now->[0] * 1e6 + $now->[1];
$r = call({ %$k4, lease => "1 9 $us 5/1/5" }, $k4);
is_deeply(codes($r), [6, 6], 'another limit: nothing comes back');

###############################################################################
# a call applied once

my $k5 = $t->create_key(rate => '1r/m', burst => 2);
my $id = 'c0ffee00c0ffee00 ' . ++$number;

$r = call($id, $k5, $k5, $k5);
is_deeply(codes($r), [0, 0, 6], 'two tokens, then limited');

my $again = call($id, $k5, $k5, $k5);
is_deeply(codes($again), [0, 0, 6], 'the same call again: the same answer');
is($again->[0][1], $r->[0][1], 'with the key\'s gate record');

my $usage = $t->redis('HMGET', "apikey:\{$k5->{hash}\}", 'a', 'l');
is_deeply($usage, [2, 1], 'nor counted twice');

is_deeply(codes(call($k5)), [6], 'and took no token twice');

call('c0ffee00c0ffee00 1000', $k5);

my $stale = eval { call('c0ffee00c0ffee00 900', $k5); 1 } ? '' : $@;
like($stale, qr/STALE/, 'a call 64 behind the newest is refused');

done_testing;
