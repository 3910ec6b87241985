#!/usr/bin/perl

# A key's quota (SPEC 4 and 5): so many allowed requests per UTC day or
# month, counted in Redis with the key's bucket, all or none with it.
#
#   admin:        quota on create and update, shown with used and
#                 resets_at; bad quotas are 400s;
#   wire:         a quota of 3 a day lets 3 through, then 429
#                 quota_exceeded with Retry-After until UTC midnight;
#                 $apikey_quota_remaining and the rate headers (a policy
#                 per limit, RateLimit the one closest to refusing);
#   all or none:  a request the quota refuses takes no token from the
#                 bucket, one the bucket refuses no unit of the quota;
#   periods:      a count of another day or month is not this one's; a
#                 month's quota resets on the 1st;
#   rotation:     the count stays with the key;
#   exact:        a quota of 100 hammered 10 s from two instances of two
#                 workers lets exactly 100 through, without apikey_cache
#                 and with apikey_cache and apikey_rate_lease.
#
# A period's end is not waited for: the count Redis keeps is tagged with
# its period, and the test writes one of an earlier period.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use POSIX qw(floor);
use Test::More;
use Time::Local qw(timegm);

use ApiKey::Test;
use ApiKey::Admin;

my $t = ApiKey::Test->new;
$t->run_redis;

my $tok = write_tokens($t, ops => '*');

my $api = 'add_header X-Quota-Left "[$apikey_quota_remaining]" always;';

my $plain = admin_config($t, api => $api);
my $cached = admin_config($t, api => $api,
                          http => "apikey_cache zone=keys:4m;\n"
                                  . "    apikey_rate_lease 100ms;");

$t->run_nginx($plain);
$t->run_nginx($plain =~ s/%%PORT_1%%/%%PORT_2%%/gr, name => 'a2');
$t->run_nginx($cached =~ s/%%PORT_1%%/%%PORT_3%%/gr, name => 'b');
$t->run_nginx($cached =~ s/%%PORT_1%%/%%PORT_4%%/gr, name => 'b2');

for my $name (qw(b b2)) {
    ok(wait_for(10, sub { $t->error_log($name) =~ /keys loaded/ }),
       "$name loaded its replica");
}

my $adm = ApiKey::Admin->new($t, $tok->{ops});
my $port = $t->port(1);

sub gate_a { ApiKey::Admin::gate($port, @_) }

sub midnight { (floor(time / 86400) + 1) * 86400 }

sub iso {
    my @g = gmtime($_[0]);
    return sprintf('%04d-%02d-%02dT%02d:%02d:%02dZ', $g[5] + 1900, $g[4] + 1,
                   @g[3, 2, 1, 0]);
}

###############################################################################
# admin

for my $bad ([ 'a number', 5 ],
             [ 'limit 0', { limit => 0, period => 'day' } ],
             [ 'limit above 10^12', { limit => 1e12 + 1, period => 'day' } ],
             [ 'a fractional limit', { limit => 1.5, period => 'day' } ],
             [ 'period week', { limit => 5, period => 'week' } ],
             [ 'no period', { limit => 5 } ],
             [ 'used given', { limit => 5, period => 'day', used => 0 } ])
{
    my $r = $adm->post('orgs/acme/keys', { name => 'q', quota => $bad->[1] });
    is($r->{status}, 400, "admin: quota $bad->[0] is 400");
    is($r->{json}{code}, 'invalid_field', "admin: quota $bad->[0] is "
                                          . 'invalid_field');
}

my $r = $adm->post('orgs/acme/keys',
                   { name => 'q', quota => { limit => 5, period => 'day',
                                             every => 1 } });
is($r->{json}{code}, 'unknown_field', 'admin: quota.every is unknown_field');

my $k1 = $adm->create('acme', name => 'daily three', rate_limit => undef,
                      quota => { limit => 3, period => 'day' });

is_deeply($k1->{quota}, { limit => 3, period => 'day', used => 0,
                          resets_at => iso(midnight()) },
          'admin: the created key shows its quota, none used, reset at '
          . 'midnight UTC');

my $plain_key = $adm->create('acme', name => 'no quota');
is($plain_key->{quota}, undef, 'admin: a key without a quota shows null');

###############################################################################
# wire

for my $i (1 .. 3) {
    my ($st, $h) = gate_a($k1->{key});
    is($st, 200, "wire: request $i of a quota of 3 passes");
    is($h->{'x-quota-left'}, '[' . (3 - $i) . ']',
       "wire: \$apikey_quota_remaining is " . (3 - $i));

    if ($i == 1) {
        is($h->{'ratelimit-policy'}, '"day";q=3;w=86400',
           'wire: RateLimit-Policy names the day quota alone');
        my $left = midnight() - time;
        like($h->{ratelimit} // '', qr/^"day";r=2;t=(\d+)$/,
             'wire: RateLimit tells the units left');
        my ($tt) = ($h->{ratelimit} // '') =~ /t=(\d+)/;
        ok(defined $tt && abs($tt - $left) <= 3,
           'wire: t is the seconds until midnight UTC')
            or diag("t $tt, expected about $left");
        is($h->{'ratelimit-limit'}, 3, 'wire: RateLimit-Limit is the quota');
        is($h->{'ratelimit-remaining'}, 2, 'wire: RateLimit-Remaining');
    }
}

{
    my ($st, $h, $body) = http_get($port, '/api/', { 'X-API-Key' => $k1->{key} });
    is($st, 429, 'wire: the 4th request is 429');
    like($body, qr/"code":"quota_exceeded"/, 'wire: its code is quota_exceeded');
    is($h->{'x-apikey-status'}, 'limited', 'wire: $apikey_status is limited');
    my $left = midnight() - time;
    ok(abs(($h->{'retry-after'} // 0) - $left) <= 3,
       'wire: Retry-After is the seconds until midnight UTC')
        or diag("Retry-After $h->{'retry-after'}, expected about $left");
    is($h->{'x-quota-left'}, '[0]', 'wire: no unit left');
}

is($adm->get("orgs/acme/keys/$k1->{id}")->{json}{quota}{used}, 3,
   'admin: used counts the 3 allowed requests, not the refused one');

{
    my ($st, $h) = gate_a($plain_key->{key});
    is($h->{'x-quota-left'}, '[]',
       'wire: $apikey_quota_remaining is empty without a quota');
    is($h->{'ratelimit-policy'}, '"default";q=5;w=1',
       'wire: a key without a quota keeps the one "default" policy');
}

###############################################################################
# all or none

my $k2 = $adm->create('acme', name => 'bucket of 3',
                      rate_limit => { rate => '1r/m', burst => 3 },
                      quota => { limit => 1, period => 'day' });
{
    my ($st, $h) = gate_a($k2->{key});
    is($st, 200, 'all or none: the first request passes');
    is($h->{'ratelimit-policy'}, '"key";q=3;w=180, "day";q=1;w=86400',
       'all or none: RateLimit-Policy lists the bucket and the quota');
    like($h->{ratelimit} // '', qr/^"day";r=0;t=\d+$/,
         'all or none: RateLimit describes the quota, closest to refusing');
    is($h->{'ratelimit-remaining'}, 0,
       'all or none: the legacy headers describe that same policy');

    ($st, $h) = gate_a($k2->{key});
    is($st, 429, 'all or none: the quota refuses the second');
}

is($adm->patch("orgs/acme/keys/$k2->{id}",
               { quota => { limit => 3, period => 'day' } })->{status}, 200,
   'all or none: the quota is raised to 3');

is_deeply([ map { (gate_a($k2->{key}))[0] } 1 .. 2 ], [ 200, 200 ],
          'all or none: two more pass: the refused one took no token');

{
    my ($st, $h, $body) = http_get($port, '/api/', { 'X-API-Key' => $k2->{key} });
    is($st, 429, 'all or none: the bucket is empty now');
    like($body, qr/"code":"rate_limited"/,
         'all or none: an empty bucket is rate_limited, first in the table');
}

is($adm->get("orgs/acme/keys/$k2->{id}")->{json}{quota}{used}, 3,
   'all or none: the bucket\'s refusal took no unit of the quota');

###############################################################################
# periods

sub secret_key { 'apikey:{' . $t->key_hash($_[0]) . '}' }

{
    my $day = floor(time / 86400);

    $t->redis('HSET', secret_key($k1->{key}), 'q', 'd' . ($day - 1) . ' 3');

    my ($st, $h) = gate_a($k1->{key});
    is($st, 200, 'periods: a count of yesterday leaves today\'s quota whole');
    is($h->{'x-quota-left'}, '[2]', 'periods: today\'s count starts at 1');
    like($t->redis('HGET', secret_key($k1->{key}), 'q'), qr/^d$day 1$/,
         'periods: the count is tagged with today');
}

{
    my $km = $adm->create('acme', name => 'monthly', rate_limit => undef,
                          quota => { limit => 2, period => 'month' });
    my @g = gmtime(time);
    my ($y, $m) = ($g[5] + 1900, $g[4] + 1);
    my $first = timegm(0, 0, 0, 1, $m == 12 ? 0 : $m, $m == 12 ? $y + 1 : $y);

    is($km->{quota}{resets_at}, iso($first),
       'periods: a month\'s quota resets on the 1st of the next month');

    my $id = $y * 12 + $m - 1;

    $t->redis('HSET', secret_key($km->{key}), 'q', 'm' . ($id - 1) . ' 2');

    my ($st, $h) = gate_a($km->{key});
    is($st, 200, 'periods: a count of last month leaves this month whole');
    is($h->{'ratelimit-policy'}, sprintf('"month";q=2;w=%d',
                                         $first - timegm(0, 0, 0, 1, $m - 1,
                                                         $y)),
       'periods: w is the length of this month');
    is((gate_a($km->{key}))[0], 200, 'periods: the second of 2 passes');
    is((gate_a($km->{key}))[0], 429, 'periods: the third is refused');
}

###############################################################################
# rotation

{
    my $rot = $adm->post("orgs/acme/keys/$k1->{id}/rotate", {});
    is($rot->{status}, 200, 'rotation: the key is rotated');

    my $new = $rot->{json}{key};

    is_deeply([ map { (gate_a($new))[0] } 1 .. 3 ], [ 200, 200, 429 ],
              'rotation: the new secret goes on from the count: 2 of 3 left');

    is($adm->patch("orgs/acme/keys/$k1->{id}", { quota => undef })->{status},
       200, 'rotation: the quota is removed');

    my ($st, $h) = gate_a($new);
    is($st, 200, 'rotation: without its quota the key passes again');
    is($h->{'x-quota-left'}, '[]', 'rotation: and has no quota to tell');
    is($adm->get("orgs/acme/keys/$k1->{id}")->{json}{quota}, undef,
       'rotation: the key object shows quota null');
}

###############################################################################
# exact: 100 a day, hammered 10 s from two instances of two workers each

# (without the cache a key with a rate limit; with it, one without, which
# the replica would otherwise let through on its own)

for my $case ([ 'without apikey_cache', { rate => '1000r/s', burst => 100 },
                1, 2 ],
              [ 'with apikey_cache and apikey_rate_lease', undef, 3, 4 ])
{
    my ($label, $limit, @ports) = @$case;

    my $k = $adm->create('acme', name => "exact $label",
                         rate_limit => $limit,
                         quota => { limit => 100, period => 'day' });

    # the replicas know the key before the hammer starts

    ok(wait_for(5, sub { !grep { (ApiKey::Admin::gate($t->port($_),
                                                      $k->{key}))[0] == 401 }
                         @ports }),
       "exact $label: every instance knows the key");

    my $n = $t->hammer(ports => [ map { ($t->port($_)) x 2 } @ports ],
                       path => '/api/', key => $k->{key}, seconds => 10);

    # the requests that checked the key's knowledge passed too

    my $used = $adm->get("orgs/acme/keys/$k->{id}")->{json}{quota}{used};

    is($used, 100, "exact $label: the quota counted 100");
    cmp_ok($n->{200} // 0, '<=', 100, "exact $label: at most 100 passed");
    cmp_ok($n->{429} // 0, '>', 100, "exact $label: the rest were 429")
        or diag(explain($n));
    is(scalar(grep { $_ ne '200' && $_ ne '429' } keys %$n), 0,
       "exact $label: nothing but 200 and 429") or diag(explain($n));
}

# leases: a key whose rate would be leased takes its request's token
# alone while it has a quota, so no instance spends units Redis did not
# count

{
    my $k = $adm->create('acme', name => 'leased',
                         rate_limit => { rate => '1000r/s', burst => 100 },
                         quota => { limit => 10, period => 'day' });
    my $p = $t->port(3);

    ok(wait_for(5, sub { (ApiKey::Admin::gate($p, $k->{key}))[0] != 401 }),
       'leases: the instance knows the key');

    my @st = map { (ApiKey::Admin::gate($p, $k->{key}))[0] } 1 .. 20;

    is(scalar(grep { $_ == 200 } @st), 9,
       'leases: 9 more of 20 pass a quota of 10 with apikey_rate_lease');
}

$t->error_log_clean;

done_testing;
