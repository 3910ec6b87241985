#!/usr/bin/perl

# An organization's limits (SPEC 4 and 5, GET and PATCH orgs/{org}): a
# rate limit and a quota shared by all its keys on top of each key's own,
# and its own max_keys.
#
#   admin:        GET shows the limits, max_keys, active keys and what the
#                 admin location's configuration says; PATCH changes them
#                 (bad values are 400s), writes an org_updated event, and
#                 needs orgs:write;
#   max_keys:     the organization's own overrides apikey_max_keys, null
#                 falls back;
#   all or none:  a request the organization's bucket refuses takes no
#                 token from the key's bucket and no unit of its quota;
#   headers:      "key", "org" and "org-day" policies;
#   org quota:    shared by the organization's keys;
#   exact:        three keys of an organization with a 5r/s burst-5 limit,
#                 hammered together 10 s from two instances of two
#                 workers, pass 55 +- 1 in all, without apikey_cache and
#                 with apikey_cache and apikey_rate_lease;
#   replica:      a new limit holds at once at the instance that set it,
#                 within a second at the other (the change log), and from
#                 the first request at one started later (its load).

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use POSIX qw(floor);
use Test::More;
use Time::HiRes qw(sleep time);

use ApiKey::Test;
use ApiKey::Admin;
use ApiKey::HTTP;
use ApiKey::SF qw(sf_list);

my $t = ApiKey::Test->new;
$t->run_redis;

my $tok = write_tokens($t, ops => '*');

my $plain = admin_config($t, http => 'apikey_max_keys 100;');
my $cached = admin_config($t, http => "apikey_max_keys 100;\n"
                                      . "    apikey_cache zone=keys:4m;\n"
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

sub status_at { (ApiKey::Admin::gate($_[0], $_[1]))[0] }

###############################################################################
# admin

{
    my $r = $adm->get('orgs/acme');
    is($r->{status}, 200, 'admin: GET orgs/acme');
    is_deeply($r->{json}, { org => 'acme', rate_limit => undef,
                            quota => undef, max_keys => 100,
                            active_keys => 0,
                            environments => ['production', 'preview'],
                            key_prefix => 'ak' },
              'admin: no limits, the location\'s max_keys, environments '
              . 'and prefix') or diag($r->{body});
}

for my $bad ([ 'rate_limit 0r/s', { rate_limit => { rate => '0r/s' } },
               'invalid_field' ],
             [ 'quota per week', { quota => { limit => 5, period => 'week' } },
               'invalid_field' ],
             [ 'max_keys -1', { max_keys => -1 }, 'invalid_field' ],
             [ 'max_keys "5"', { max_keys => '5' }, 'invalid_field' ],
             [ 'a key\'s name', { name => 'x' }, 'invalid_field' ],
             [ 'an unknown field', { color => 'red' }, 'unknown_field' ])
{
    my $r = $adm->patch('orgs/acme', $bad->[1]);
    is($r->{status}, 400, "admin: PATCH $bad->[0] is 400");
    is($r->{json}{code}, $bad->[2], "admin: PATCH $bad->[0] is $bad->[2]");
}

{
    my $r = $adm->post('tokens', { name => 'reader', orgs => ['acme'],
                                   permissions => ['keys:read'] });
    my $reader = ApiKey::Admin->new($t, $r->{json}{token});

    is($reader->get('orgs/acme')->{status}, 200,
       'admin: a keys:read token reads the organization');
    my $p = $reader->patch('orgs/acme', { max_keys => 1 });
    is($p->{status}, 403, 'admin: but cannot change it');
    is($p->{json}{code}, 'insufficient_permission',
       'admin: 403 insufficient_permission');
}

###############################################################################
# max_keys

{
    my $r = $adm->patch('orgs/acme', { max_keys => 2 });
    is($r->{json}{max_keys}, 2, 'max_keys: the organization\'s own is 2');

    $adm->create('acme') for 1 .. 2;

    my $c = $adm->post('orgs/acme/keys', { name => 'third' });
    is($c->{status}, 400, 'max_keys: a third active key is refused');
    is($c->{json}{code}, 'key_limit_reached', 'max_keys: key_limit_reached');
    is($adm->get('orgs/acme')->{json}{active_keys}, 2,
       'max_keys: GET counts 2 active keys');

    is($adm->patch('orgs/acme', { max_keys => undef })->{json}{max_keys}, 100,
       'max_keys: null falls back to apikey_max_keys');
    is($adm->post('orgs/acme/keys', { name => 'third' })->{status}, 201,
       'max_keys: the third key is made then');

    my @ev = @{$adm->get('orgs/acme/events')->{json}{data}};
    my ($upd) = grep { $_->{action} eq 'org_updated' } @ev;
    ok($upd && $upd->{actor} eq 'ops' && !defined $upd->{key_id},
       'max_keys: org_updated is in the event log, with no key')
        or diag(explain(\@ev));
}

###############################################################################
# all or none, headers

{
    my $k = $adm->create('solo', rate_limit => { rate => '1r/m', burst => 3 },
                         quota => { limit => 10, period => 'day' });

    is($adm->patch('orgs/solo', { rate_limit => { rate => '1r/m',
                                                  burst => 1 } })
           ->{json}{rate_limit}{rate}, '1r/m',
       'all or none: the organization gets a 1r/m burst-1 limit');

    my ($st, $h) = ApiKey::Admin::gate($port, $k->{key});
    is($st, 200, 'all or none: the first request passes');
    # read as RFC 8941 lists, as a client would

    my $pol = eval { sf_list($h->{'ratelimit-policy'}) };
    is_deeply($pol, [ [ 'key', { q => 3, w => 180 } ],
                      [ 'org', { q => 1, w => 60 } ],
                      [ 'day', { q => 10, w => 86400 } ] ],
              'headers: a policy for the key, the organization and the quota')
        or diag($@ || $h->{'ratelimit-policy'});
    is_deeply(eval { sf_list($h->{ratelimit}) },
              [ [ 'org', { r => 0, t => 60 } ] ],
              'headers: RateLimit describes the organization\'s, closest')
        or diag($@ || $h->{ratelimit});

    my ($st2, $h2, $body) = http_get($port, '/api/',
                                     { 'X-API-Key' => $k->{key} });
    is($st2, 429, 'all or none: the organization\'s bucket refuses the next');
    like($body, qr/"code":"rate_limited"/, 'all or none: rate_limited');
    ok(($h2->{'retry-after'} // 0) >= 59,
       'all or none: Retry-After waits for the organization\'s token')
        or diag("Retry-After $h2->{'retry-after'}");

    is($adm->patch('orgs/solo', { rate_limit => undef })->{json}{rate_limit},
       undef, 'all or none: the organization\'s limit is removed');

    is_deeply([ map { status_at($port, $k->{key}) } 1 .. 3 ],
              [ 200, 200, 429 ],
              'all or none: the key\'s bucket still had 2: the refusal took '
              . 'none');
    is($adm->get("orgs/solo/keys/$k->{id}")->{json}{quota}{used}, 3,
       'all or none: nor a unit of the key\'s quota');
}

###############################################################################
# the organization's quota

{
    my @k = map { $adm->create('quota', rate_limit => undef) } 1 .. 2;

    $adm->patch('orgs/quota', { quota => { limit => 2, period => 'day' } });

    my ($st, $h) = ApiKey::Admin::gate($port, $k[0]{key});
    is($st, 200, 'org quota: the first key passes');
    is($h->{'ratelimit-policy'}, '"org-day";q=2;w=86400',
       'org quota: its policy is "org-day"');
    is(status_at($port, $k[1]{key}), 200, 'org quota: the second key passes');

    my (undef, undef, $body) = http_get($port, '/api/',
                                        { 'X-API-Key' => $k[0]{key} });
    like($body, qr/"code":"quota_exceeded"/,
         'org quota: the third request of either is quota_exceeded');

    my $q = $adm->get('orgs/quota')->{json}{quota};
    is($q->{used}, 2, 'org quota: GET shows 2 used');
    is($q->{limit}, 2, 'org quota: of 2');
}

###############################################################################
# exact: three keys of a 5r/s burst-5 organization, 10 s, two instances of
# two workers each

for my $case ([ 'without apikey_cache', 'shop', 1, 2 ],
              [ 'with apikey_cache and apikey_rate_lease', 'shop2', 3, 4 ])
{
    my ($label, $org, @i) = @$case;
    my @ports = map { $t->port($_) } @i;
    my @keys = map { $adm->create($org, rate_limit =>
                                  { rate => '100r/s', burst => 100 })->{key} }
               1 .. 3;

    $adm->patch("orgs/$org", { rate_limit => { rate => '5r/s', burst => 5 } });

    ok(wait_for(5, sub { !grep { my $p = $_; grep { status_at($p, $_) == 401 }
                                                 @keys } @ports }),
       "exact $label: every instance knows the keys");

    # the checks above took tokens: wait for a full bucket again

    sleep(1.2);

    my $n = $t->hammer(ports => \@ports, keys => \@keys, path => '/api/',
                       seconds => 10, start => time + 0.5);

    cmp_ok(abs(($n->{200} // 0) - 55), '<=', 1,
           "exact $label: 55 +- 1 of the three keys together passed")
        or diag(explain($n));
    is(scalar(grep { $_ ne '200' && $_ ne '429' } keys %$n), 0,
       "exact $label: nothing but 200 and 429") or diag(explain($n));
}

###############################################################################
# replica: a limit set at b holds there at once, and at b2 within a second

{
    my $k = $adm->create('live', rate_limit => undef);
    my ($pb, $pb2) = ($t->port(3), $t->port(4));

    ok(wait_for(5, sub { status_at($pb, $k->{key}) == 200
                         && status_at($pb2, $k->{key}) == 200 }),
       'replica: both instances let the unlimited key through');

    my $adm_b = ApiKey::Admin->new($t, $tok->{ops}, port => $pb);

    is($adm_b->patch('orgs/live', { rate_limit => { rate => '1r/m',
                                                    burst => 1 } })->{status},
       200, 'replica: b sets the organization a 1r/m burst-1 limit');

    is_deeply([ map { status_at($pb, $k->{key}) } 1 .. 3 ], [ 200, 429, 429 ],
              'replica: b obeys it on its very next request');

    my $t0 = time;
    ok(wait_for(2, sub { status_at($pb2, $k->{key}) == 429 }),
       'replica: b2 refuses the key within a second')
        or diag(sprintf('%.3f s', time - $t0));
    cmp_ok(time - $t0, '<', 1.5, 'replica: within about a second');

    # an instance started now learns the limit with its load

    $t->run_nginx($cached =~ s/%%PORT_1%%/%%PORT_5%%/gr, name => 'b3');

    ok(wait_for(10, sub { $t->error_log('b3') =~ /keys loaded/ }),
       'replica: b3 loaded its replica');
    is(status_at($t->port(5), $k->{key}), 429,
       'replica: b3 refuses the key from its first request');
}

$t->error_log_clean;

done_testing;
