#!/usr/bin/perl

# A step of the nginx host's wall clock changes nothing the replica
# decides (SPEC section 8: clock steps on the nginx host).  nginx runs
# with a wall clock of its own (libfaketime, its monotonic clock left
# alone): an hour back, a rotated key's grace still ends when Redis's
# clock says, not an hour later; a day forward, a key that expires in an
# hour still passes, and a key's bucket stays exact.  The replica judges
# expiry and grace by Redis's clock, learnt with each read of the change
# log and run on by the monotonic clock.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use Test::More;
use Time::HiRes qw(time sleep);

use ApiKey::Test;
use ApiKey::Admin;
use ApiKey::Chaos::Nginx;

my $lib = ApiKey::Chaos::Nginx::faketime_lib()
    or plan skip_all => 'libfaketime is not installed';

my $t = ApiKey::Test->new;
$t->run_redis;

my $tok = write_tokens($t, ops => '*');
my $clock = $t->dir . '/clock';

sub step {
    my ($offset) = @_;
    open my $fh, '>', "$clock.new" or die $!;
    printf $fh "%+d\n", $offset;
    close $fh;
    rename "$clock.new", $clock or die $!;
}

step(0);

{
    local $ENV{LD_PRELOAD} = $lib;
    local $ENV{FAKETIME_TIMESTAMP_FILE} = $clock;
    local $ENV{FAKETIME_CACHE_DURATION} = 1;
    local $ENV{FAKETIME_DONT_FAKE_MONOTONIC} = 1;

    my $conf = admin_config($t,
        http => 'apikey_cache zone=keys:4m max_stale=10s;',
        server => <<'EOF2');

        location = /time {
            return 200 "$msec\n";
        }
EOF2

    $conf =~ s/^(worker_processes \d+;)$/$1\nenv FAKETIME_TIMESTAMP_FILE;\n/m
        or die 'no worker_processes line';
    $conf =~ s/^(env FAKETIME_TIMESTAMP_FILE;)$/$1\nenv FAKETIME_CACHE_DURATION;\nenv FAKETIME_DONT_FAKE_MONOTONIC;/m;

    $t->run_nginx($conf);
}

my $port = $t->port(1);
my $adm = ApiKey::Admin->new($t, $tok->{ops});

sub status { (gate($port, $_[0]))[0] // 0 }

# nginx's wall clock, as its workers see it, minus ours
sub skew {
    my ($st, undef, $body) = http_get($port, '/time');
    return ($st // 0) == 200 && $body =~ /^(\d+\.\d+)/ ? $1 - time : undef;
}

# the clock moves in every worker within a second or so: wait until a
# few answers in a row say so
sub stepped {
    my ($offset) = @_;
    step($offset);
    my $in_a_row = 0;
    return wait_for(10, sub {
        my $s = skew();
        $in_a_row = (defined $s && abs($s - $offset) < 5) ? $in_a_row + 1 : 0;
        $in_a_row >= 6;
    });
}

ok(abs(skew() // 99) < 5, 'nginx\'s clock is the host\'s to begin with');

my $warm = $adm->create('acme', name => 'warm-up', rate_limit => undef);
ok(wait_for(10, sub { status($warm->{key}) == 200 }), 'the replica is loaded');

###############################################################################
# an hour back: a grace ends on time

ok(stepped(-3600), 'nginx\'s clock went an hour back')
    or diag('skew ' . (skew() // 'none'));

# unlimited: the replica alone answers for it
my $k = $adm->create('acme', name => 'rotated', rate_limit => undef);
ok(wait_for(10, sub { status($k->{key}) == 200 }), 'the key passes');

my $r = $adm->post("orgs/acme/keys/$k->{id}/rotate", { grace_seconds => 2 });
is($r->{status}, 200, 'rotated with a 2 s grace');
my $rotated = time;
my $new = $r->{json}{key};

is(status($k->{key}), 200, 'the old key passes in its grace');
is(status($new), 200, 'the new key passes');

# past the grace (and the second of rounding of Redis's seconds), the
# old key is refused
sleep(3.2 - (time - $rotated)) if time - $rotated < 3.2;

my %after;
$after{status($k->{key})}++ for 1 .. 20;
is_deeply(\%after, { 401 => 20 },
          'after the grace the old key is refused, 20 of 20')
    or diag(explain \%after);
is(status($new), 200, 'the new key passes');

###############################################################################
# a day forward: a key that expires in an hour has not expired

ok(stepped(86400), 'nginx\'s clock went a day forward')
    or diag('skew ' . (skew() // 'none'));

my $e = $adm->create('acme', name => 'expires', rate_limit => undef,
                     expires_in => 3600);
is($e->{expires_at} ? 1 : 0, 1, 'a key that expires in an hour');

my %exp;
ok(wait_for(10, sub { status($e->{key}) != 401 }), 'the replica has it');
$exp{status($e->{key})}++ for 1 .. 20;
is_deeply(\%exp, { 200 => 20 }, 'it passes, 20 of 20')
    or diag(explain \%exp);

###############################################################################
# a bucket stays exact across a step back

my $l = $adm->create('acme', name => 'limited',
                     rate_limit => { rate => '2r/s', burst => 2 });
ok(wait_for(10, sub { status($l->{key}) == 200 }), 'the limited key passes');

# drain it, then count what passes over 3 s with a step in the middle
1 while status($l->{key}) == 200;

my $from = time;
my $allowed = 0;
my $stepped_back;

while (time - $from < 3) {
    $allowed++ if status($l->{key}) == 200;

    if (!$stepped_back && time - $from > 1) {
        step(-3600);
        $stepped_back = 1;
    }

    sleep 0.02;
}

my $span = time - $from;
ok($allowed <= int(2 * $span) + 1,
   sprintf('a step back gives no tokens: %d allowed in %.1f s at 2r/s',
           $allowed, $span));
ok($allowed >= 3, "and the bucket still refills ($allowed)");

is_deeply([grep { /\[(alert|crit|emerg)\]/ } split /\n/, $t->error_log], [],
          'no alert');

done_testing;
