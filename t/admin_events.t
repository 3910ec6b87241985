#!/usr/bin/perl

# GET orgs/{org}/events: every change (created, updated, revoked, restored,
# rotated, deleted) with its actor and the key's name then, newest first,
# paged, per organization, the last 10000 kept; reads and refused changes
# write no event; events stored before names were kept show null.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use Test::More;

use ApiKey::Test;
use ApiKey::Admin;

my $t = ApiKey::Test->new;
$t->run_redis;

my $tok = write_tokens($t, ops => '*', ci => 'acme');

$t->run_nginx(admin_config($t));

my $ops = ApiKey::Admin->new($t, $tok->{ops});
my $ci = ApiKey::Admin->new($t, $tok->{ci});

my $k = $ops->create('acme', name => 'events');
my $path = "orgs/acme/keys/$k->{id}";

$ci->patch($path, { name => 'renamed' });
$ops->post("$path/revoke", undef);
$ci->post("$path/restore", undef);
$ops->post("$path/rotate", { grace_seconds => 60 });
$ci->delete($path);

# not changes

$ops->get($path);
$ops->get('orgs/acme/keys');
$ops->post("$path/revoke", undef);
$ops->post('orgs/acme/keys', { name => '' });
$ops->create('beta', name => 'beta key');

my $r = $ops->get('orgs/acme/events');
is($r->{status}, 200, 'events: 200');
is($r->{headers}{'cache-control'}, 'no-store', 'Cache-Control: no-store');

my $e = $r->{json};
is_deeply([sort keys %$e], [qw(data page per_page total_count)],
          'data, page, per_page, total_count');
is($e->{total_count}, 6, 'six changes');
is($e->{page}, 1, 'page 1');
is($e->{per_page}, 20, 'per_page 20');

is_deeply([map { [$_->{action}, $_->{actor}, $_->{key_id}] } @{$e->{data}}],
          [['deleted', 'ci', $k->{id}], ['rotated', 'ops', $k->{id}],
           ['restored', 'ci', $k->{id}], ['revoked', 'ops', $k->{id}],
           ['updated', 'ci', $k->{id}], ['created', 'ops', $k->{id}]],
          'every change with its actor, newest first');

is_deeply([sort keys %{$e->{data}[0]}],
          [qw(action actor at key_id key_name)],
          'at, actor, action, key_id, key_name');

is_deeply([map { $_->{key_name} } @{$e->{data}}],
          ['renamed', 'renamed', 'renamed', 'renamed', 'renamed', 'events'],
          'each event names the key as it was named then');
like($e->{data}[0]{at}, qr/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/,
     'at in RFC 3339 UTC');
is($e->{data}[-1]{at}, $k->{created_at}, 'at of created = created_at');

is_deeply([map { $_->{action} } @{$ops->get('orgs/acme/events?per_page=2'
                                            . '&page=2')->{json}{data}}],
          ['restored', 'revoked'], 'page 2 of 2 per page');
is_deeply($ops->get('orgs/acme/events?page=4&per_page=2')->{json}{data},
          [], 'past the end');

$r = $ops->get('orgs/beta/events');
is($r->{json}{total_count}, 1, 'beta has its own log');
is($r->{json}{data}[0]{action}, 'created', 'with its creation');

is($ops->get('orgs/empty/events')->{json}{total_count}, 0,
   'an org without events');

is_admin_problem($ci->get('orgs/beta/events'), 403, 'forbidden_org',
                 'events of another org');

for my $q ('page=0', 'per_page=101', 'per_page=0', 'search=x', 'status=active',
           'page=1&page=1', 'page=x')
{
    is_admin_problem($ops->get("orgs/acme/events?$q"), 400, 'invalid_query',
                     "invalid_query: $q");
}

unlike($r->{body} . $ops->get('orgs/acme/events')->{body},
       qr/ak_[0-9A-Za-z]{20}|[0-9a-f]{64}/, 'no raw key or hash in events');

###############################################################################
# the last 10000

my @old = map { qq({"at":1,"actor":"old","action":"updated","key_id":"k_$_"}) }
          1 .. 10010;

while (my @chunk = splice(@old, 0, 1000)) {
    $t->redis('LPUSH', 'apikey:org:trim:events', @chunk);
}

my $n = $ops->create('trim', name => 'trimmed');

$r = $ops->get('orgs/trim/events?per_page=1');
is($r->{json}{total_count}, 10000, 'trimmed to 10000');
is($r->{json}{data}[0]{key_id}, $n->{id}, 'the newest is kept');
is($ops->get('orgs/trim/events?per_page=1&page=10000')
       ->{json}{data}[0]{key_name}, undef,
   'an event stored without a name shows key_name null');
is($t->redis('LLEN', 'apikey:org:trim:events'), 10000, 'in Redis too');

$r = $ops->get('orgs/trim/events?per_page=100&page=100');
is(scalar @{$r->{json}{data}}, 100, 'the last page');
is($r->{json}{data}[-1]{at}, '1970-01-01T00:00:01Z', 'of the oldest kept');

$t->error_log_clean;

done_testing;
