#!/usr/bin/perl

# apikey_cache: two nginx instances, A and B, each with its replica of the
# keys, in front of one real Redis.  A change made through A's admin API
# is seen by B within the second (and measured); unknown keys and an
# empty bucket are answered without Redis; with Redis gone the replica
# answers for max_stale, then the fail mode; a trimmed change log and a
# Redis restarted empty make the replica reload; a zone too small warns
# and still answers right; a reload of nginx keeps answering.

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

my $cache = 'apikey_cache zone=keys:4m max_stale=3s;';
my $conf_a = admin_config($t, http => $cache,
                          server => 'location = /metrics { apikey_metrics; }');
(my $conf_b = $conf_a) =~ s/%%PORT_1%%/%%PORT_2%%/g;

###############################################################################
# configuration

for ([ 'apikey_cache max_stale=1s;', qr/must have "zone" parameter/ ],
     [ 'apikey_cache zone=keys;', qr/invalid zone size/ ],
     [ 'apikey_cache zone=keys:1k;', qr/is too small/ ],
     [ 'apikey_cache zone=keys:1m max_stale=x;', qr/invalid max_stale/ ],
     [ 'apikey_cache zone=keys:1m size=1;', qr/invalid parameter "size=1"/ ],
     [ "$cache $cache", qr/"apikey_cache" directive is duplicate/ ])
{
    (my $bad = $conf_a) =~ s/\Q$cache\E/$_->[0]/;
    my ($rc, $out) = $t->nginx_test($bad);
    like($out, $_->[1], "refused: $_->[0]") and isnt($rc, 0, 'exit status');
}

###############################################################################

my $old = $t->create_key(name => 'made before nginx', rate => '1r/m',
                         burst => 2);

$t->run_nginx($conf_a);
$t->run_nginx($conf_b, name => 'b');

my $pa = $t->port(1);
my $pb = $t->port(2);
my $adm = ApiKey::Admin->new($t, $tok->{ops});

for my $name (qw(nginx b)) {
    ok(wait_for(10, sub { $t->error_log($name) =~ /keys loaded/ }),
       "$name loaded its replica");
}

like($t->error_log('b'), qr/apikey_cache zone "keys": 1 keys loaded/,
     'with the key written before it started');

# the same answer, variables and headers with and without the replica

my $k = $adm->create('acme', name => 'plain', rate_limit => undef);
# a new key is unknown at B until B's replica has it (the same bound)

my ($s, $h);
ok(wait_for(1, sub { ($s, $h) = gate($pb, $k->{key}); $s == 200 }),
   'a key created through A passes at B within 1 s');
is($h->{'x-apikey-id'}, $k->{id}, 'with its id');
is($h->{'x-apikey-name'}, 'plain', 'and name');

###############################################################################
# an unknown key costs Redis nothing once loaded

$t->monitor_start;

my %flood = map { $_ => 1 } map { $t->raw_key } 1 .. 200;
my %st;
$st{(gate($pb, $_))[0]}++ for keys %flood;

my $seen = $t->monitor_stop;
my %hash = map { $t->key_hash($_) => 1 } keys %flood;
my @asked = grep { my $l = $_; grep { index($l, $_) >= 0 } keys %hash }
            split /\n/, $seen;

is_deeply(\%st, { 401 => 200 }, '200 unknown keys: 401 each');
is(scalar @asked, 0, 'and not one Redis command names them')
    or diag($asked[0]);
ok($seen =~ /xread/i, 'while the replica kept following the change log');

# the replica's metrics

my (undef, undef, $metrics) = http_get($pb, '/metrics');
my %m = $metrics =~ /^(apikey_replica_\w+) (\S+)$/mg;

ok(($m{apikey_replica_hits_total} // 0) >= 200, 'replica hits counted')
    or diag($metrics);
ok(($m{apikey_replica_keys} // 0) >= 2, 'replica keys');
ok(($m{apikey_replica_bytes} // 0) > 100 * $m{apikey_replica_keys},
   'replica bytes');
is($m{apikey_replica_missing_keys}, 0, 'none missing');
ok(defined $m{apikey_replica_lag_seconds}
   && $m{apikey_replica_lag_seconds} >= 0
   && $m{apikey_replica_lag_seconds} < 1, 'lag under a second');

SKIP: {
    my $promtool = ApiKey::Test::which('promtool')
        or skip('promtool (Debian package prometheus) is not installed', 1);

    my $file = $t->dir . '/metrics.txt';
    open my $fh, '>', $file or die $!;
    print $fh $metrics;
    close $fh;

    my $out = `$promtool check metrics < $file 2>&1`;
    is($?, 0, 'promtool check metrics passes with the replica') or diag($out);
}

###############################################################################
# a key over its limit: 429 from the replica until the next token

my ($first, $local);
my @r = map { [gate($pb, $old->{key})] } 1 .. 3;
is_deeply([map { $_->[0] } @r], [200, 200, 429], 'burst 2: 200, 200, 429');

$t->monitor_start;
my @again = map { [gate($pb, $old->{key})] } 1 .. 20;
$seen = $t->monitor_stop;

is_deeply([map { $_->[0] } @again], [(429) x 20], '20 more: 429 each');
unlike($seen, qr/\Q$old->{hash}\E/, 'answered without Redis');

for my $f (qw(ratelimit-limit ratelimit-policy retry-after
              x-apikey-id x-apikey-status content-type))
{
    is($again[-1][1]{$f}, $r[2][1]{$f}, "$f as Redis's own 429 had it");
}
ok(abs(($again[-1][1]{'ratelimit-reset'} // -9)
       - ($r[2][1]{'ratelimit-reset'} // 9)) <= 1,
   'RateLimit-Reset within a second of it');

###############################################################################
# what the replica answers is counted as Redis would have: usage and the
# last use, sent with the checks once a second

my $u1 = $adm->create('acme', name => 'unlimited counted', rate_limit => undef);
my $u2 = $adm->create('acme', name => 'limited counted',
                      rate_limit => { rate => '1r/m', burst => 2 });
my $u3 = $adm->create('acme', name => 'revoked counted', rate_limit => undef);
$adm->post("orgs/acme/keys/$u3->{id}/revoke", undef);

ok(wait_for(5, sub { (gate($pb, $u3->{key}))[0] == 401
                     && (gate($pb, $u1->{key}))[0] == 200 }),
   'B knows the keys to count');

# what the wait above sent, once its tally is in: the totals no longer
# change over more than the tally's second

sub totals {
    my ($id) = @_;
    my $tot = $adm->get("orgs/acme/keys/$id/usage")->{json}{total};
    return join ' ', map { $tot->{$_} // '-' } qw(allowed rate_limited refused);
}

my ($seen_u1, $seen_u3);
ok(wait_for(10, sub {
       my ($a1, $a3) = (totals($u1->{id}), totals($u3->{id}));
       sleep 1.2;
       ($seen_u1, $seen_u3) = (totals($u1->{id}), totals($u3->{id}));
       $a1 eq $seen_u1 && $a3 eq $seen_u3;
   }), 'the counts of the wait are in');
my @seen_u1 = split ' ', $seen_u1;
my @seen_u3 = split ' ', $seen_u3;

$t->monitor_start;
my @codes = map { (gate($pb, $u1->{key}))[0] } 1 .. 5;
push @codes, map { (gate($pb, $u2->{key}))[0] } 1 .. 10;
push @codes, map { (gate($pb, $u3->{key}))[0] } 1 .. 3;
my $mon = $t->monitor_stop;

is_deeply(\@codes, [(200) x 5, 200, 200, (429) x 8, (401) x 3],
          'answers: 5 unlimited, 2 + 8 limited, 3 revoked');
unlike($mon, qr/\Q$u1->{key}\E|"\Q@{[ $t->key_hash($u1->{key}) ]}\E"/,
       'the unlimited key was answered without a check in Redis');

my %want = (
    $u1->{id} => [$seen_u1[0] + 5, 0, 0],
    $u2->{id} => [2, 8, 0],
    # before B's replica had the revocation, u3 may have passed there
    $u3->{id} => [$seen_u3[0], 0, $seen_u3[2] + 3],
);
my %got;

ok(wait_for(5, sub {
       for my $id (keys %want) {
           my $tot = $adm->get("orgs/acme/keys/$id/usage")->{json}{total};
           $got{$id} = [map { $tot->{$_} } qw(allowed rate_limited refused)];
       }
       !grep { "@{$got{$_}}" ne "@{$want{$_}}" } keys %want;
   }), 'usage counts every check, answered by the replica or by Redis')
    or diag(join "\n", map { "$_: want @{$want{$_}}, got @{$got{$_}}" }
                          keys %want);

ok($adm->get("orgs/acme/keys/$u1->{id}")->{json}{last_used_at},
   'the unlimited key has a last use');

###############################################################################
# revoke through A, then B refuses: p99 over 100 revocations.  These keys
# have no limit, so B answers them from its replica: a revocation and a
# restore show once B's replica has followed the change log, the
# replica's lag

my (@revoke, @restore, $late);

sub lag {
    my ($key, $want) = @_;
    my $t0 = time;
    my $done = wait_for(5, sub { (gate($pb, $key))[0] == $want });
    return $done ? time - $t0 : 5;
}

for my $i (1 .. 100) {
    my $key = $adm->create('acme', name => "lag $i", rate_limit => undef);

    wait_for(5, sub { (gate($pb, $key->{key}))[0] == 200 }) or $late++;

    $adm->post("orgs/acme/keys/$key->{id}/revoke", undef);
    push @revoke, lag($key->{key}, 401);

    sleep 0.1;

    $adm->post("orgs/acme/keys/$key->{id}/restore", undef);
    push @restore, lag($key->{key}, 200);
}

@revoke = sort { $a <=> $b } @revoke;
@restore = sort { $a <=> $b } @restore;

ok(!$late, 'each new key passed at B');
ok($revoke[98] <= 0.1, 'revocations refused at B within 100 ms at p99')
    or diag("p99 $revoke[98] s");
ok($restore[-1] < 1, 'every restore seen at B within 1 s')
    or diag("worst $restore[-1] s");
note(sprintf 'revocation at B: p50 %.1f ms, p99 %.1f ms; replica lag '
             . '(restore): p50 %.1f ms, p99 %.1f ms, max %.1f ms',
             map { $_ * 1000 } $revoke[49], $revoke[98], $restore[49],
                               $restore[98], $restore[-1]);

###############################################################################
# the change log trimmed past the reader: B reloads

my $before = () = $t->error_log('b') =~ /keys loaded/g;

$t->redis('XTRIM', 'apikey:changes', 'MAXLEN', 0);
my $k2 = $adm->create('acme', name => 'after the trim', rate_limit => undef);

ok(wait_for(10, sub {
       (() = $t->error_log('b') =~ /keys loaded/g) > $before
   }), 'a trimmed change log makes B reload');
like($t->error_log('b'), qr/the change log has a gap/, 'and says why');
# the key's change may come after the load began: the log then brings it
ok(wait_for(1, sub { (gate($pb, $k2->{key}))[0] == 200 }),
   'the key made after the trim passes within 1 s');
is((gate($pb, $k->{key}))[0], 200, 'an older one too');

###############################################################################
# a reload of nginx under traffic: every answer right, none 503

my (%during, $reloaded);
my $pid = fork // die "fork: $!";

if ($pid == 0) {
    my %c;
    my $until = time + 4;
    while (time < $until) {
        $c{(gate($pb, $k->{key}))[0]}++;
        $c{'bad-unknown'}++ if (gate($pb, $t->raw_key))[0] != 401;
    }
    open my $fh, '>', $t->dir . '/during.txt' or die $!;
    print $fh join(' ', map { "$_=$c{$_}" } sort keys %c);
    exit 0;
}

sleep 0.5;
$reloaded = $t->reload_nginx('b');
waitpid($pid, 0);

ok($reloaded, 'B reloaded under traffic');
like(ApiKey::Test::_slurp($t->dir . '/during.txt'), qr/^200=\d+$/,
     'only 200s for the valid key, only 401s for unknown ones');

###############################################################################
# Redis gone: the replica answers for max_stale, then the fail mode

my $lim = $adm->create('acme', name => 'limited offline',
                     rate_limit => { rate => '1r/m', burst => 3 });
my $rev = $adm->create('acme', name => 'revoked offline', rate_limit => undef);
$adm->post("orgs/acme/keys/$rev->{id}/revoke", undef);

ok(wait_for(5, sub { (gate($pb, $rev->{key}))[0] == 401
                     && (gate($pb, $lim->{key}))[0] == 200 }),
   'B knows both keys');

$t->stop_redis;
my $gone = time;

is((gate($pb, $k->{key}))[0], 200, 'Redis gone: a valid key passes');
is((gate($pb, $rev->{key}))[0], 401, 'a revoked key stays refused');
is((gate($pb, $t->raw_key))[0], 401, 'an unknown key is refused');

my @lim = map { (gate($pb, $lim->{key}))[0] } 1 .. 4;
is_deeply(\@lim, [200, 200, 429, 429],
          'a limit of burst 3 holds on the instance (one token went before)');
my @lim_a = map { (gate($pa, $lim->{key}))[0] } 1 .. 4;
is_deeply(\@lim_a, [200, 200, 200, 429],
          'and on A, with its own bucket');

ok(wait_for(10, sub { (gate($pb, $k->{key}))[0] == 503 }),
   'past max_stale: the fail mode, 503');
ok(time - $gone >= 2.9, 'not before max_stale (3 s)')
    or diag(sprintf '%.2f s', time - $gone);

###############################################################################
# Redis back, empty: the replica reloads, the old keys are gone

$t->start_redis;

ok(wait_for(10, sub { (gate($pb, $k->{key}))[0] == 401 }),
   'Redis restarted empty: the keys it lost are refused');
like($t->error_log('b'), qr/gap.*\n(?:.*\n)*.*keys loaded/,
     'after a reload of the replica');

# A's admin connection retries every 200 ms: 503 until it is back

my $k3;
ok(wait_for(5, sub {
    my $r = $adm->post('orgs/acme/keys',
                       { name => 'new world', rate_limit => undef });
    $k3 = $r->{json} if $r->{status} == 201;
    $k3;
}), 'an admin create works again within 5 s') or die "no create\n";
ok(wait_for(5, sub { (gate($pb, $k3->{key}))[0] == 200 }),
   'a key created then passes at B');

###############################################################################
# a zone too small: one warning, and the right answers from Redis

$t->stop_nginx('b');

my @many = map { $t->create_key(name => "many $_", rate => undef) } 1 .. 400;
(my $small = $conf_b) =~ s/zone=keys:4m/zone=small:32k/;
$t->run_nginx($small, name => 'small');

ok(wait_for(10, sub { $t->error_log('small') =~ /keys loaded/ }),
   'the small zone loaded what fitted');

my @warn = $t->error_log('small') =~ /\[warn\].*(apikey_cache zone "small" is too small.*)/g;
is(scalar @warn, 1, 'one warning') or diag(join "\n", @warn);
like($warn[0] // '', qr/did not fit and are checked in Redis; about \d+k is needed/,
     'with the size needed');

my %many;
$many{(gate($pb, $_->{key}))[0]}++ for @many;
is_deeply(\%many, { 200 => 400 }, 'all 400 keys pass, fitted or not');
is((gate($pb, $t->raw_key))[0], 401, 'an unknown key is refused');

$t->error_log_clean;

done_testing;
