#!/usr/bin/perl

# After a full load, the reader removes what the load did not see a slice
# at a time; in a large zone (here 2,097,152 index buckets, over a second
# of slices) it reads the change log between the slices, so a change made
# meanwhile is seen as fast as at any other time, not after the sweep.
# Two instances: A makes the changes; B's log is deleted, so that B
# reloads and sweeps, and each change through A is timed until B answers
# it.

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

my $conf_a = admin_config($t, http => 'apikey_cache zone=keys:4m;');
(my $conf_b = admin_config($t, http => 'apikey_cache zone=keys:512m;'))
    =~ s/%%PORT_1%%/%%PORT_2%%/g;

$t->run_nginx($conf_a);
$t->run_nginx($conf_b, name => 'b');

my $pb = $t->port(2);
my $adm = ApiKey::Admin->new($t, $tok->{ops});

ok(wait_for(10, sub { $t->error_log('b') =~ /keys loaded/ }),
   'B loaded its replica');

my $k = $adm->create('acme', name => 'swept', rate_limit => undef);
ok(wait_for(2, sub { (gate($pb, $k->{key}))[0] == 200 }), 'the key passes at B');

# B answers $want within a second: how long it took, or undef

sub seen {
    my ($want, $t0) = @_;

    while (time < $t0 + 1.5) {
        return time - $t0 if (gate($pb, $k->{key}))[0] == $want;
    }

    return undef;
}

# the log deleted: B reloads (A too), and B's sweep of its large index
# begins when its load ends

my $loads = () = $t->error_log('b') =~ /keys loaded/g;
$t->redis('DEL', 'apikey:changes');

ok(wait_for(10, sub { (() = $t->error_log('b') =~ /keys loaded/g) > $loads }),
   'B reloaded');

# changes during the sweep: revoke and restore, each timed from A's reply

my @lag;

for my $i (1 .. 6) {
    my ($op, $want) = $i % 2 ? ('revoke', 401) : ('restore', 200);
    my $r = $adm->post("orgs/acme/keys/$k->{id}/$op", undef);
    my $t0 = time;

    is($r->{status}, 200, "$op through A");
    push @lag, seen($want, $t0);
}

my @late = grep { !defined || $_ > 0.5 } @lag;

is(scalar(@late), 0, 'each change seen at B within 0.5 s while it sweeps')
    or diag(join ' ', map { defined ? sprintf('%.3f', $_) : 'never' } @lag);

$t->error_log_clean;

done_testing;
