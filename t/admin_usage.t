#!/usr/bin/perl

# GET orgs/{org}/keys/{id}/usage: the gatekeeper counts each check of a
# known key, per UTC hour, as allowed, rate_limited or refused, inside its
# one script call; the admin API sums the hours into hourly or daily
# buckets over [from, to); a day's counts expire 90 days after it began,
# and go with the key when it is deleted.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use IO::Socket::INET;
use POSIX qw(strftime);
use Test::More;

use ApiKey::Test;
use ApiKey::Admin;

my $t = ApiKey::Test->new;
$t->run_redis;

my $tok = write_tokens($t, ops => '*', ci => 'acme');
my $tokens = $t->dir . '/tokens';

$t->run_nginx(<<"EOF");

%%TEST_GLOBALS%%
load_module %%MODULE%%;
error_log error.log info;
worker_processes 1;

events {
    multi_accept on;
}

http {
    %%TEST_GLOBALS_HTTP%%

    access_log access.log;

    apikey_redis %%REDIS%%;
    apikey_admin_tokens $tokens;

    server {
        listen 127.0.0.1:%%PORT_1%%;
        server_name localhost;

        location /admin/ {
            apikey_admin;
        }

        location = /metrics {
            apikey_metrics;
        }

        location /api/ {
            apikey on;
            empty_gif;
        }

        location /staging/ {
            apikey on;
            apikey_environment staging;
            empty_gif;
        }

        location /write/ {
            apikey on;
            apikey_scope content:write;
            empty_gif;
        }
    }
}

EOF

my $port = $t->port(1);
my $ops = ApiKey::Admin->new($t, $tok->{ops});
my $ci = ApiKey::Admin->new($t, $tok->{ci});

sub req {
    my ($path, $key) = @_;
    return (http_get($port, $path, { 'X-API-Key' => $key }))[0] // 0;
}

sub now { $t->redis('TIME')->[0] }

sub rfc3339 { strftime('%Y-%m-%dT%H:%M:%SZ', gmtime $_[0]) }

sub usage {
    my ($id, $q, $who) = @_;
    return ($who // $ops)->get("orgs/acme/keys/$id/usage"
                               . (defined $q ? "?$q" : ''));
}

sub counts {
    my ($b) = @_;
    return [map { $b->{$_} } qw(allowed rate_limited refused)];
}

###############################################################################
# known numbers of each kind, counted in the current hour

my $k = $ops->create('acme', name => 'counted',
                     rate_limit => { rate => '1r/m', burst => 3 });
my $path = "orgs/acme/keys/$k->{id}";

my $t0 = now();

is(req('/api/', $k->{key}), 200, "allowed $_") for 1 .. 3;
is(req('/api/', $k->{key}), 429, "rate limited $_") for 1 .. 2;
is(req('/staging/', $k->{key}), 403, "environment mismatch $_") for 1 .. 2;
is(req('/write/', $k->{key}), 403, 'insufficient scope');

$ops->post("$path/revoke", undef);
is(req('/api/', $k->{key}), 401, 'revoked');
$ops->post("$path/restore", undef);

is(req('/api/', $t->raw_key), 401, 'an unknown key counts for no key');

my $t1 = now();

my $r = usage($k->{id});
is($r->{status}, 200, 'usage: 200');
is($r->{headers}{'cache-control'}, 'no-store', 'Cache-Control: no-store');
like($r->{headers}{'content-type'}, qr{^application/json}, 'JSON');

my $u = $r->{json};
is_deeply([sort keys %$u], [qw(data from granularity key_id to total)],
          'key_id, granularity, from, to, data, total');
is($u->{key_id}, $k->{id}, 'key_id');
is($u->{granularity}, 'hour', 'hourly by default');
is(scalar @{$u->{data}}, 24, 'the last 24 hours by default');
is_deeply([sort keys %{$u->{data}[0]}],
          [qw(allowed rate_limited refused start)], 'a bucket');
is($u->{data}[-1]{start}, rfc3339(int($t1 / 3600) * 3600),
   'the last bucket is the current hour');
is($u->{from}, $u->{data}[0]{start}, 'from: the first bucket');
is($u->{to}, rfc3339(int($t1 / 3600) * 3600 + 3600),
   'to: the end of the last bucket');
is_deeply(counts($u->{total}), [3, 2, 4], 'total: 3 allowed, 2 limited, '
          . '4 refused');

SKIP: {
    skip 'the requests straddled an hour', 2
        if int($t0 / 3600) != int($t1 / 3600);

    is_deeply(counts($u->{data}[-1]), [3, 2, 4], 'all in the current hour');
    is_deeply([map { @{counts($_)} } @{$u->{data}}[0 .. 22]], [(0) x 69],
              'none in the others');
}

$u = usage($k->{id}, 'granularity=day')->{json};
is($u->{granularity}, 'day', 'granularity=day');
is(scalar @{$u->{data}}, 30, 'the last 30 days by default');
is($u->{data}[-1]{start}, rfc3339(int($t1 / 86400) * 86400),
   'the last bucket is today');
is_deeply(counts($u->{total}), [3, 2, 4], 'the same total by day');

SKIP: {
    skip 'the requests straddled a day', 1
        if int($t0 / 86400) != int($t1 / 86400);

    is_deeply(counts($u->{data}[-1]), [3, 2, 4], 'all today');
}

# a key written without the admin API, expired

my $exp = $t->create_key(org => 'acme', expires_at => time - 60);
is(req('/api/', $exp->{key}), 401, 'expired');
is_deeply(counts(usage($exp->{id})->{json}{total}), [0, 0, 1],
          'an expired key\'s request is refused');

###############################################################################
# in Redis: the hour's counts wait in the secret that holds the key's
# bucket; the first count of a later hour moves them to the key's usage
# hash of their day, which expires 90 days after the day began

my $day = int(now() / 86400);
my $h = int(now() / 3600);

sub secret_of { 'apikey:{' . $t->key_hash($_[0]{key}) . '}' }

is_deeply($t->redis('HMGET', secret_of($k), qw(h a l r)), [$h, 3, 2, 4],
          'the current hour\'s counts in the secret: h, a, l, r')
    if $h == int($t1 / 3600);

is_deeply($t->redis('KEYS', 'apikey:usage:*'), [],
          'no usage hash before an hour is over');

my $fl = $ops->create('acme', name => 'flushed', rate_limit => undef);
my $fls = secret_of($fl);
my $yday = $day - 1;
my $yh = $yday * 24 + 10;

$t->redis('HSET', $fls, h => $yh, a => 5, l => 1, r => 2);

$u = usage($fl->{id}, 'granularity=day')->{json};
is_deeply([@{counts($u->{data}[-2])}, @{counts($u->{total})}],
          [5, 1, 2, 5, 1, 2], 'counts pending from yesterday are read');

is(req('/api/', $fl->{key}), 200, 'a request in a later hour');

my $uk = "apikey:usage:\{$fl->{id}\}:$yday";

is_deeply({ @{$t->redis('HGETALL', $uk)} }, { '10a' => 5, '10l' => 1,
                                              '10r' => 2, a => 5, l => 1,
                                              r => 2 },
          'moves them to NS usage:{<id>}:<day>, fields <hour><kind> and '
          . 'the day\'s <kind>');
is_deeply($t->redis('HMGET', $fls, qw(h a l r)), [$h, 1, 0, 0],
          'and starts the hour\'s anew');

my $ttl = $t->redis('TTL', $uk);
ok($ttl > 0 && $ttl <= 90 * 86400, "the usage hash's TTL $ttl: at most 90 "
   . 'days');
is($t->redis('EXPIRETIME', $uk), ($yday + 90) * 86400,
   'it expires 90 days after its day began');

$u = usage($fl->{id}, 'granularity=day')->{json};
is_deeply([@{counts($u->{data}[-2])}, @{counts($u->{data}[-1])}],
          [5, 1, 2, 1, 0, 0], 'yesterday and today, by day');
$u = usage($fl->{id}, 'from=' . rfc3339($yh * 3600) . '&to='
           . rfc3339($yh * 3600 + 3600))->{json};
is_deeply(counts($u->{data}[0]), [5, 1, 2], 'and at 10:00 yesterday');

# counts older than 90 days are dropped

my $stale = $ops->create('acme', name => 'stale', rate_limit => undef);
$t->redis('HSET', secret_of($stale), h => ($day - 95) * 24, a => 7);

is(req('/api/', $stale->{key}), 200, 'a key last used 95 days ago');
is_deeply($t->redis('KEYS', "apikey:usage:\{$stale->{id}\}:*"), [],
          'keeps no counts of then');
is_deeply(counts(usage($stale->{id}, 'granularity=day')->{json}{total}),
          [1, 0, 0], 'only the new one');

my $dump = $t->redis_dump;
unlike(join("\n", grep { /usage/ } split /\n/, $dump),
       qr/ak_[0-9A-Za-z]{20}|[0-9a-f]{64}/, 'no raw key or hash in usage');

###############################################################################
# a call of many checks of one key: allowed ones cost no command more,
# refused ones one HINCRBY for the call

my ($worker) = $t->worker_pids;
my $many = $ops->create('acme', name => 'batched', rate_limit => undef);

sub together {
    my @socks;

    kill 'STOP', $worker;

    for my $p (@_) {
        my $s = IO::Socket::INET->new(PeerAddr => "127.0.0.1:$port")
            or do { kill 'CONT', $worker; die "connect: $!\n" };
        syswrite($s, "GET $p HTTP/1.0\r\nHost: localhost\r\n"
                     . "X-API-Key: $many->{key}\r\n\r\n");
        push @socks, $s;
    }

    kill 'CONT', $worker;

    return map { (http_request($port, '', socket => $_))[0] } @socks;
}

sub did {
    my ($before, $after) = @_;
    my %d = map { $_ => ($after->{$_} // 0) - ($before->{$_} // 0) }
            grep { ($after->{$_} // 0) != ($before->{$_} // 0)
                   && $_ ne 'info' } keys %$after;
    return \%d;
}

# under a sanitizer a worker's pass is slow enough that the requests may
# spread over passes, and so over calls: then only the counts are checked

my $stats = $t->redis_commandstats;
my @pass = together(('/api/') x 6, ('/write/') x 2);
my $after = $t->redis_commandstats;
my $did = did($stats, $after);

is(scalar(grep { $_ == 200 } @pass), 6, '6 allowed in one pass');
is(scalar(grep { $_ == 403 } @pass), 2, '2 refused in it');

my $sent = 1;

SKIP: {
    skip "the checks took $did->{evalsha} calls", 2 if $did->{evalsha} != 1;

    # and per call, the read and write of its record (docs/data-model.md),
    # whose expiry is set once in 256 calls, and one read of the
    # organization's limits (none here) for the checks that reach the
    # buckets

    delete $did->{expire};

    is_deeply($did, { evalsha => 1, time => 1, hmget => 10, hset => 8,
                      hincrby => 1 },
              'one call: a read per check, a write per allowed check, one '
              . 'to start the hour\'s counts, one HINCRBY for the refused');

    $stats = $after;
    @pass = together(('/api/') x 6, ('/write/') x 2);
    $did = did($stats, $t->redis_commandstats);
    $sent++;

    skip "the checks took $did->{evalsha} calls", 1 if $did->{evalsha} != 1;

    delete $did->{expire};

    is_deeply($did, { evalsha => 1, time => 1, hmget => 10, hset => 7,
                      hincrby => 1 },
              'then: the allowed checks write what they wrote without '
              . 'counting');
}

is_deeply(counts(usage($many->{id})->{json}{total}),
          [6 * $sent, 0, 2 * $sent],
          'all counted');


###############################################################################
# from, to and the buckets, on counts of past days

my $old = $ops->create('acme', name => 'old');
my $base = "apikey:usage:\{$old->{id}\}:";
my ($d2, $d1, $d89) = ($day - 2, $day - 1, $day - 89);

$t->redis('HSET', "$base$d2", '05a', 7, '05l', 1, '23r', 2, a => 7, l => 1,
          r => 2);
$t->redis('HSET', "$base$d1", '00a', 4, '13l', 3, a => 4, l => 3);
$t->redis('HSET', "$base$d89", '12a', 5, a => 5);

sub at { rfc3339($_[0] * 86400 + ($_[1] // 0) * 3600 + ($_[2] // 0) * 60) }

$u = usage($old->{id}, 'granularity=day&from=' . at($d2) . '&to=' . at($day))
     ->{json};
is_deeply([map { [$_->{start}, @{counts($_)}] } @{$u->{data}}],
          [[at($d2), 7, 1, 2], [at($d1), 4, 3, 0]],
          'two days: the hours summed per day');
is($u->{from}, at($d2), 'from');
is($u->{to}, at($day), 'to');

$u = usage($old->{id}, 'from=' . at($d2, 5) . '&to=' . at($d2, 6))->{json};
is_deeply([map { [$_->{start}, @{counts($_)}] } @{$u->{data}}],
          [[at($d2, 5), 7, 1, 0]], 'one hour');

$u = usage($old->{id}, 'from=' . at($d2, 4) . '&to=' . at($d2, 5))->{json};
is_deeply([map { [$_->{start}, @{counts($_)}] } @{$u->{data}}],
          [[at($d2, 4), 0, 0, 0]], 'to is exclusive');

$u = usage($old->{id}, 'from=' . at($d2, 23, 30) . '&to=' . at($d1, 0, 30))
     ->{json};
is_deeply([map { [$_->{start}, @{counts($_)}] } @{$u->{data}}],
          [[at($d2, 23), 0, 0, 2], [at($d1, 0), 4, 0, 0]],
          'the buckets that overlap [from, to), across midnight');

$u = usage($old->{id}, 'granularity=day&to=' . at($d1, 12))->{json};
is(scalar @{$u->{data}}, 30, 'to alone: 30 days');
is($u->{data}[-1]{start}, at($d1), 'ending with the day of to');
is_deeply(counts($u->{total}), [11, 4, 2], 'with their counts');

$u = usage($old->{id}, 'granularity=day&from=' . at($d89))->{json};
is(scalar @{$u->{data}}, 90, 'from alone: up to today, 90 days');
is_deeply([@{counts($u->{data}[0])}, @{counts($u->{total})}],
          [5, 0, 0, 16, 4, 2], 'from the oldest day kept');

$u = usage($old->{id}, 'granularity=hour&from=' . at($d2, 5)
           . '&to=' . at($d2 + 31, 5))->{json};
is(scalar @{$u->{data}}, 744, '31 days of hours');
is_deeply(counts($u->{total}), [11, 4, 2], 'hours summed');

$r = usage($old->{id}, 'from=' . strftime('%Y-%m-%dT05:30:00.5', gmtime($d2
           * 86400)) . '%2B01:00&to=' . at($d2, 6));
is($r->{status}, 200, 'a fraction and an offset');
is($r->{json}{from}, at($d2, 4), 'from 05:30:00.5+01:00 is in the 04:00 hour');
is_deeply(counts($r->{json}{total}), [7, 1, 0], 'of two hours');

###############################################################################
# invalid queries

my $y = at($day);
my $bad = qr/RFC 3339/;

for my $c (['granularity=week', qr/granularity/], ['granularity=', qr/gran/],
           ['granularity=Hour', qr/granularity must be hour or day/],
           ['from=yesterday', qr/^from must be an $bad/], ['from=', $bad],
           ['from', $bad], ['to', qr/^to must be an $bad/],
           ['granularity', qr/granularity/],
           ['from=2026-02-30T00:00:00Z', $bad], ['to=2026-11-22', qr/^to /],
           ['from=2026-11-22T10:00:00', $bad],
           ["from=$y&to=$y", qr/before/],
           ['from=' . at($day, 2) . '&to=' . at($day, 1), qr/before/],
           ['from=' . at($day + 2), qr/from must be before to/],
           ['from=' . at($day - 40) . '&to=' . at($day - 5),
            qr/more than 744 hourly/],
           ['granularity=hour&from=' . at($d2, 5) . '&to=' . at($d2 + 31, 6),
            qr/more than 744 hourly buckets/],
           ['granularity=day&from=' . at($d89) . '&to=' . at($day + 2),
            qr/more than 90 daily buckets/],
           ['granularity=day&from=' . at($day - 90, 23), qr/90 days/],
           ['granularity=day&to=' . at($day - 70), qr/before the 90 days/],
           ['page=1', qr/unknown query parameter page/], ['per_page=5', qr//],
           ['search=x', qr//], ['environment=production', qr//],
           ['from=' . at($d2) . '&from=' . at($d2), qr/from given twice/],
           ['granularity=day&granularity=day', qr/twice/])
{
    my ($q, $detail) = @$c;
    my $r = usage($old->{id}, $q);

    is_admin_problem($r, 400, 'invalid_query', "invalid_query: $q");
    like($r->{json}{detail} // '', $detail, "detail: $q");
}

###############################################################################
# not found, authentication, methods

my $ghost = 'k_' . ('A' x 22);

is_admin_problem(usage($ghost), 404, 'key_not_found', 'an unknown key');
is_admin_problem($ops->get('orgs/acme/keys/nope/usage'), 404,
                 'key_not_found', 'not an id');
is_admin_problem($ops->get("orgs/beta/keys/$k->{id}/usage"), 404,
                 'key_not_found', 'a key of another organization');
is_admin_problem(usage($ghost, 'granularity=week'), 400, 'invalid_query',
                 'the query is checked first');

is(usage($k->{id}, undef, $ci)->{status}, 200,
   'a token of the organization reads it');
is_admin_problem($ci->get("orgs/beta/keys/$k->{id}/usage"), 403,
                 'forbidden_org', 'a token of another organization');
is_admin_problem($ops->get("$path/usage", token => undef), 401,
                 'unauthorized', 'no token');
is_admin_problem($ops->get("$path/usage", token => 'nope'), 401,
                 'unauthorized', 'a wrong token');

$r = $ops->post("$path/usage", undef);
is($r->{status}, 405, 'POST: 405');
is($r->{headers}{allow}, 'GET', 'Allow: GET');

###############################################################################
# rotation keeps the key's usage; delete takes it

# the bucket refills one token a minute: usually still empty

my $n = $ops->post("$path/rotate", { grace_seconds => 600 })->{json};
my @st = (req('/api/', $n->{key}), req('/api/', $k->{key}));

ok(!grep({ $_ != 429 && $_ != 200 } @st), 'the new key and the one in grace '
   . 'work');
is_deeply(counts(usage($k->{id})->{json}{total}),
          [3 + grep({ $_ == 200 } @st), 2 + grep({ $_ == 429 } @st), 4],
          'and count for the same key');

is_deeply($t->redis('HMGET', secret_of($k), qw(h a l r)), [(undef) x 4],
          'the counts left the secret in grace');
is($t->redis('HGET', secret_of($n), 'r'), 4, 'for the new one');
$t->redis('HSET', "apikey:usage:\{$k->{id}\}:$yday", '03a', 1, a => 1);
is($ops->delete($path)->{status}, 204, 'delete');
is_deeply($t->redis('KEYS', "apikey:usage:\{$k->{id}\}:*"), [],
          'its usage is gone');
is_admin_problem(usage($k->{id}), 404, 'key_not_found', 'usage after delete');
is(req('/api/', $n->{key}), 401, 'a request with its key');
is(req('/api/', $k->{key}), 401, 'or with the one that was in grace');
is_deeply($t->redis('KEYS', "apikey:usage:\{$k->{id}\}:*"), [],
          'counts nothing');

is($ops->delete("orgs/acme/keys/$old->{id}")->{status}, 204,
   'delete a key with 90 days of usage');
is_deeply($t->redis('KEYS', "apikey:usage:\{$old->{id}\}:*"), [],
          'all of it is gone');
ok($t->redis('EXISTS', $uk), 'other keys keep theirs');

###############################################################################

my (undef, undef, $body) = http_get($port, '/metrics');
my $m = qr/apikey_admin_requests_total\{route="usage",status=/m;
like($body, qr/^$m"200"\} [1-9]\d*$/m, 'metrics: the usage route');
like($body, qr/^$m"400"\} [1-9]\d*$/m, 'with its refusals');

$t->error_log_clean;

done_testing;
