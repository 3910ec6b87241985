#!/usr/bin/perl

# apikey_metrics, the operator's series of SPEC 9 besides the checks and
# calls of t/metrics.t: the time the gatekeeper adds, the admin API's
# time by route, Redis reachability per connection and node, leases and
# tallies, the build and the start time; and the calls counted by kind
# (an idle replica's reads are never the gatekeeper's).
#
# What is checked, each group's assertions named by its label:
#
#   idle replica: over 2 s of no traffic, apikey_redis_calls_total
#                 {connection="gate"} stays, {connection="replica"} grows;
#   gate time:    the histogram counts each decided request once (count =
#                 the sum of apikey_checks_total), an internal redirect
#                 decided again included; buckets cumulative;
#   admin time:   one histogram per route asked, its count that route's
#                 requests;
#   leases:       a 1000r/s burst-100 key under a 100 ms lease: asks and
#                 grants, then the unspent tokens given back; tallies
#                 flushed;
#   build, start: apikey_build_info's version is debian/changelog's, the
#                 start time the master's, kept by a reload;
#   redis_up:     1 for the gate's node; Redis stopped, 0 within seconds;
#                 back, 1 again;
#   docs:         every family on the page has a row in docs/metrics.md.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use List::Util qw(sum0);
use Test::More;
use Time::HiRes qw(sleep time);

use ApiKey::Test;
use ApiKey::Admin;

my $t = ApiKey::Test->new;
$t->run_redis;

my $tok = write_tokens($t, ops => '*');

my $before_start = int(time);

$t->run_nginx(admin_config($t,
    http => "apikey_cache zone=keys:4m;\n    apikey_rate_lease 100ms;",
    server => 'location = /metrics { apikey_metrics; allow 127.0.0.1; '
              . 'deny all; } '
              . 'location /again/ { apikey on; try_files /none /api/; }'));

my $after_start = int(time) + 1;

my $port = $t->port(1);
my $admin = ApiKey::Admin->new($t, $tok->{ops});
my $node = '127.0.0.1:' . $t->redis_port;

# name{labels} value lines into { 'name{labels}' => value }

sub scrape {
    my ($st, undef, $body) = http_get($port, '/metrics');
    die "metrics: $st\n" unless ($st // 0) == 200;

    my %s;

    for (split /\n/, $body) {
        next if /^#/ || !length;
        my ($k, $v) = /^(\S+) (\S+)$/ or die "not a sample: $_\n";
        $s{$k} = $v;
    }

    return \%s;
}

sub wait_series {
    my ($cond) = @_;
    my $s;
    ApiKey::Test::wait_for($ApiKey::Test::Util::WAIT, sub { $s = scrape(); $cond->($s) });
    return $s;
}

sub checks { my ($s) = @_; sum0(map { $s->{$_} } grep { /^apikey_checks_total\{/ } keys %$s) }

###############################################################################
# idle replica

my $s = wait_series(sub { $_[0]{apikey_replica_lag_seconds} >= 0
                          && !$_[0]{apikey_replica_loading} });
ok($s->{apikey_replica_lag_seconds} >= 0, 'idle replica: loaded');

my $start = time;
my $gate0 = $s->{'apikey_redis_calls_total{connection="gate"}'};
my $replica0 = $s->{'apikey_redis_calls_total{connection="replica"}'};

sleep 0.1 while time - $start < 2;

$s = scrape();
is($s->{'apikey_redis_calls_total{connection="gate"}'}, $gate0,
   'idle replica: no gate call in 2 s');
ok($s->{'apikey_redis_calls_total{connection="replica"}'} - $replica0 >= 2,
   'idle replica: its reads are counted as replica calls')
    or diag("replica calls $replica0 -> "
            . $s->{'apikey_redis_calls_total{connection="replica"}'});

###############################################################################
# gate time

my $leased = $t->create_key(org => 'acme-op', rate => '1000r/s',
                            burst => 100);
my $limited = $t->create_key(org => 'acme-op', rate => '1r/m', burst => 1);

# the replica has both keys when a check of each is answered from it
wait_series(sub { $_[0]{apikey_replica_keys} >= 2 });

gate($port, $leased->{key}) for 1 .. 30;
gate($port, undef) for 1 .. 3;
gate($port, $t->raw_key) for 1 .. 2;
gate($port, $limited->{key}) for 1 .. 3;

# decided, then sent on by an internal redirect to be decided again

for (1 .. 2) {
    my ($st) = http_get($port, '/again/', { 'X-API-Key' => $leased->{key} });
    is($st, 200, 'gate time: a redirected request');
}

$s = scrape();
is(checks($s), 40, 'gate time: 40 requests decided');
is($s->{apikey_gate_duration_seconds_count}, 40,
   'gate time: one observation per request, redirected or not');
is($s->{'apikey_gate_duration_seconds_bucket{le="+Inf"}'}, 40,
   'gate time: the +Inf bucket is the count');

my @le = map { $s->{"apikey_gate_duration_seconds_bucket{le=\"$_\"}"} }
         qw(0.00005 0.0001 0.00025 0.0005 0.001 0.0025 0.005 0.01 0.025
            0.05 0.1 0.25 0.5 1 +Inf);
ok(!grep({ !defined } @le) && !grep({ $le[$_] < $le[$_ - 1] } 1 .. $#le),
   'gate time: buckets from 50 us to 1 s, cumulative')
    or diag(join ' ', map { $_ // 'undef' } @le);
ok($s->{apikey_gate_duration_seconds_sum} > 0
   && $s->{apikey_gate_duration_seconds_sum} < 40,
   'gate time: the sum in seconds')
    or diag($s->{apikey_gate_duration_seconds_sum});

###############################################################################
# admin time

$admin->create('acme-op', name => 'timed');
$admin->get('orgs/acme-op/keys') for 1 .. 2;
$admin->get('orgs/acme-op/nothing');

$s = scrape();
is_deeply([map { $s->{"apikey_admin_request_duration_seconds_count{route=\"$_\"}"} }
           qw(create list none)], [1, 2, 1],
          'admin time: a histogram per route, its count the requests');
is($s->{'apikey_admin_request_duration_seconds_bucket{route="list",le="+Inf"}'},
   2, 'admin time: the +Inf bucket of a route');
is(scalar(grep { /^apikey_admin_request_duration_seconds_count/ } keys %$s),
   3, 'admin time: no route that was not asked');
ok($s->{'apikey_admin_request_duration_seconds_sum{route="create"}'} > 0,
   'admin time: a create took some time');

###############################################################################
# leases

ok($s->{apikey_lease_asks_total} >= 1, 'leases: asked')
    or diag("asks $s->{apikey_lease_asks_total}");
ok($s->{apikey_lease_grants_total} >= 1
   && $s->{apikey_lease_grants_total} <= $s->{apikey_lease_asks_total},
   'leases: granted, no more than asked')
    or diag("grants $s->{apikey_lease_grants_total}");

# a lease of 100 tokens, 32 requests: what is left goes back once it ends

$s = wait_series(sub { $_[0]{apikey_lease_giveback_tokens_total} > 0
                       && $_[0]{apikey_tally_flushes_total} > 0 });
ok($s->{apikey_lease_giveback_tokens_total} > 0
   && $s->{apikey_lease_giveback_tokens_total} < 100,
   'leases: unspent tokens given back')
    or diag("given back $s->{apikey_lease_giveback_tokens_total}");
ok($s->{apikey_tally_flushes_total} > 0, 'leases: tallies flushed');

###############################################################################
# build, start

my ($version) = ApiKey::Test::_slurp("$FindBin::Bin/../debian/changelog")
                =~ /^\S+ \(([^-)]+)/;
is($s->{"apikey_build_info{version=\"$version\"}"}, 1,
   "build: apikey_build_info{version=\"$version\"} 1");

my $started = $s->{apikey_start_time_seconds};
ok($started >= $before_start && $started <= $after_start,
   'start: the instance started then')
    or diag("$started not in $before_start .. $after_start");

$t->reload_nginx;
$s = scrape();
is($s->{apikey_start_time_seconds}, $started, 'start: a reload keeps it');

###############################################################################
# redis_up

$s = wait_series(sub { $_[0]{"apikey_redis_up{connection=\"gate\",node=\"$node\"}"} });
is($s->{"apikey_redis_up{connection=\"gate\",node=\"$node\"}"}, 1,
   'redis_up: the gate reaches its node');
my @up = grep { /^apikey_redis_up\{/ } keys %$s;
ok(@up && !grep({ !/,node="\Q$node\E"\}$/ } @up),
   'redis_up: only the configured node')
    or diag(join ' ', @up);

$t->stop_redis;
gate($port, $t->raw_key);

$s = wait_series(sub { defined $_[0]{"apikey_redis_up{connection=\"gate\",node=\"$node\"}"}
                       && $_[0]{"apikey_redis_up{connection=\"gate\",node=\"$node\"}"} == 0 });
is($s->{"apikey_redis_up{connection=\"gate\",node=\"$node\"}"}, 0,
   'redis_up: 0 once Redis is stopped');

$t->start_redis;

$s = wait_series(sub { $_[0]{"apikey_redis_up{connection=\"gate\",node=\"$node\"}"} });
is($s->{"apikey_redis_up{connection=\"gate\",node=\"$node\"}"}, 1,
   'redis_up: 1 again once it is back');

###############################################################################
# docs: every family on the page has its row in docs/metrics.md

my $doc = ApiKey::Test::_slurp("$FindBin::Bin/../docs/metrics.md");
my @families = (http_get($port, '/metrics'))[2] =~ /^# TYPE (\S+) /mg;
my @undocumented = grep { $doc !~ /^\| `\Q$_\E` \|/m } @families;
ok(@families > 20 && !@undocumented,
   'docs: every family has a row in docs/metrics.md')
    or diag("undocumented: @undocumented");

$t->error_log_clean;

done_testing;
