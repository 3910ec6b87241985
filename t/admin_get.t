#!/usr/bin/perl

# GET orgs/{org}/keys/{id}: the key object, last_used_at from the
# gatekeeper, 404 key_not_found for unknown ids and for ids of another
# organization.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use Test::More;

use ApiKey::Test;
use ApiKey::Admin;

my $t = ApiKey::Test->new;
$t->run_redis;

my $tok = write_tokens($t, ops => '*');

$t->run_nginx(admin_config($t));

my $a = ApiKey::Admin->new($t, $tok->{ops});
my $port = $t->port(1);

my $k = $a->create('acme', name => 'get me', scopes => ['x:y']);

my $r = $a->get("orgs/acme/keys/$k->{id}");
is($r->{status}, 200, 'get: 200');
is($r->{headers}{'cache-control'}, 'no-store', 'Cache-Control: no-store');

my %want = %$k;
delete $want{key};
is_deeply($r->{json}, \%want, 'the key object of the create, without "key"');

is($r->{json}{last_used_at}, undef, 'not used yet');

my ($st) = gate($port, $k->{key});
is($st, 200, 'used at the gatekeeper');

$r = $a->get("orgs/acme/keys/$k->{id}");
like($r->{json}{last_used_at}, qr/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/,
     'last_used_at is set');
is($r->{json}{updated_at}, $k->{updated_at}, 'use is not an update');

my $h = $t->create_key(org => 'acme', scopes => ['content:read'],
                       rate => '10r/m');
$r = $a->get("orgs/acme/keys/$h->{id}");
is($r->{status}, 200, 'a key written without the admin API');
is_deeply($r->{json}{rate_limit}, { rate => '10r/m', burst => 1 },
          'its rate limit');
is_deeply($r->{json}{scopes}, ['content:read'], 'its scopes');
is($r->{json}{prefix}, $h->{prefix}, 'its prefix');

is_admin_problem($a->get('orgs/acme/keys/k_0000000000000000000000'), 404,
                 'key_not_found', 'an unknown id');
is_admin_problem($a->get("orgs/beta/keys/$k->{id}"), 404, 'key_not_found',
                 'an acme key under beta');

unlike($r->{body} . $a->get("orgs/acme/keys/$k->{id}")->{body},
       qr/\Q$k->{key}\E|\Q$h->{key}\E|[0-9a-f]{64}/,
       'no raw key and no hash in get responses');

$t->log_contains_no($k->{key});
$t->error_log_clean;

done_testing;
