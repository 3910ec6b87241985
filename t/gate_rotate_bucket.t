#!/usr/bin/perl

# A key is one token bucket across rotations: the new secret and the
# previous one in grace draw from it together, so that rotating, with or
# without grace and however often, never adds tokens.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use Test::More;
use Time::HiRes qw(time);

use ApiKey::Test;
use ApiKey::Admin;

my $t = ApiKey::Test->new;
$t->run_redis;

my $tok = write_tokens($t, ops => '*');

$t->run_nginx(admin_config($t));

my $a = ApiKey::Admin->new($t, $tok->{ops});
my $port = $t->port(1);

my @raw;    # every raw key made, for the log check

sub slow_key {
    my ($name) = @_;
    my $k = $a->create('acme', name => $name,
                       rate_limit => { rate => '1r/m', burst => 5 });
    push @raw, $k->{key};
    return $k;
}

sub rotate {
    my ($k, $grace) = @_;

    my $r = $a->post("orgs/acme/keys/$k->{id}/rotate",
                     defined $grace ? { grace_seconds => $grace } : undef);
    die "rotate: $r->{status} $r->{body}\n" unless $r->{status} == 200;

    push @raw, $r->{json}{key};
    return $r->{json}{key};
}

sub st { (gate($port, $_[0]))[0] }

###############################################################################
# four rotations with grace, each previous key used while in grace

my $k = slow_key('rotated four times');
my $start = time;
my $current = $k->{key};
my (%passed, @seen);

for my $round (1 .. 4) {
    my $previous = $current;
    $current = rotate($k, 600);

    # the previous key in grace, until it is refused

    for (1 .. 6) {
        my $s = st($previous);
        $passed{$s}++;
        push @seen, "r$round:prev:$s";
        last if $s != 200;
    }
}

# then the current and the previous key in turn

my $previous_in_grace = $raw[-2];

for (1 .. 6) {
    for my $key ($current, $previous_in_grace) {
        my $s = st($key);
        $passed{$s}++;
        push @seen, "cur/prev:$s";
    }
}

my $took = time - $start;
note(sprintf('%d requests in %.2f s', scalar @seen, $took));

is($passed{200}, 5,
   '1r/m burst-5 key, 4 rotations with grace: 5 requests pass in all')
    or diag("@seen");
is_deeply([grep { $_ ne '200' && $_ ne '429' } keys %passed], [],
          'the others are 429') or diag(explain \%passed);
ok($took < 50, 'all well within a minute (no token refilled)')
    or diag("took $took s");

###############################################################################
# the previous key in grace passes while the key has tokens

$k = slow_key('grace shares');
my @h;

push @h, [gate($port, $k->{key})] for 1 .. 2;
my $new = rotate($k, 600);
my $old = $k->{key};

push @h, [gate($port, $old)], [gate($port, $new)], [gate($port, $old)];

is_deeply([map { $_->[0] } @h], [200, 200, 200, 200, 200],
          'grace: 2 with the key, then the previous and the new key in turn '
          . 'pass while tokens remain');
is_deeply([map { $_->[1]{'ratelimit-remaining'} // '' } @h], [4, 3, 2, 1, 0],
          'grace: one count of remaining tokens, whichever secret is sent');
is_deeply([map { $_->[1]{'x-apikey-id'} // '' } @h], [($k->{id}) x 5],
          'grace: both secrets are the same key');

is(st($old), 429, 'grace: the bucket empty, the previous key is limited');
is(st($new), 429, 'grace: and the new key too');

###############################################################################
# without grace the new key goes on from the old one's bucket

$k = slow_key('no grace');

is_deeply([map { st($k->{key}) } 1 .. 2], [200, 200],
          'no grace: 2 of 5 tokens taken');

$new = rotate($k);
is(st($k->{key}), 401, 'no grace: the old key is refused');

my @st = map { st($new) } 1 .. 4;
is_deeply(\@st, [200, 200, 200, 429],
          'no grace: the new key has the 3 tokens left, not a new bucket');

$t->log_contains_no($_, 'rotated keys') for @raw;
$t->error_log_clean;

done_testing;
