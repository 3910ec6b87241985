#!/usr/bin/perl

# POST .../revoke and .../restore: reversible, refused twice
# (already_revoked, not_revoked), restore limited by apikey_max_keys, and
# the gatekeeper answers 401 revoked_api_key from the very next request.

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

$t->run_nginx(admin_config($t, server => <<'EOF2'));

        location /two/ {
            apikey_admin;
            apikey_max_keys 2;
        }
EOF2

my $a = ApiKey::Admin->new($t, $tok->{ops});
my $port = $t->port(1);

my $k = $a->create('acme', name => 'revoke me');
my $path = "orgs/acme/keys/$k->{id}";

my ($st, $h) = gate($port, $k->{key});
is($st, 200, 'works before');

my $r = $a->post("$path/revoke", undef);
is($r->{status}, 200, 'revoke: 200');
is($r->{json}{status}, 'revoked', 'status revoked');
like($r->{json}{revoked_at}, qr/Z$/, 'revoked_at set');
ok(!exists $r->{json}{key}, 'no raw key');

($st, $h) = gate($port, $k->{key});
is($st, 401, 'refused on the next request');
is($h->{'x-apikey-status'}, 'revoked', '$apikey_status revoked');

is_admin_problem($a->post("$path/revoke", undef), 400, 'already_revoked',
                 'revoke twice');

$r = $a->post("$path/restore", {});
is($r->{status}, 200, 'restore: 200');
is($r->{json}{status}, 'active', 'active again');
is($r->{json}{revoked_at}, undef, 'revoked_at cleared');

($st) = gate($port, $k->{key});
is($st, 200, 'works on the next request');

is_admin_problem($a->post("$path/restore", undef), 400, 'not_revoked',
                 'restore an active key');

is_admin_problem($a->post('orgs/acme/keys/k_nope/revoke', undef), 404,
                 'key_not_found', 'revoke an unknown id');
is_admin_problem($a->post('orgs/acme/keys/k_nope/restore', undef), 404,
                 'key_not_found', 'restore an unknown id');
is_admin_problem($a->post("orgs/beta/keys/$k->{id}/revoke", undef), 404,
                 'key_not_found', 'revoke from another org');

###############################################################################
# a revoked key frees its slot; restore needs one

my $two = ApiKey::Admin->new($t, $tok->{ops}, base => '/two/');

my $x = $two->create('lim', name => 'x');
my $y = $two->create('lim', name => 'y');

is_admin_problem($two->post('orgs/lim/keys', { name => 'z' }), 400,
                 'key_limit_reached', 'third key over a limit of 2');

$two->post("orgs/lim/keys/$x->{id}/revoke", undef);
my $z = $two->create('lim', name => 'z');
ok($z->{id}, 'a revoked key frees its slot');

is_admin_problem($two->post("orgs/lim/keys/$x->{id}/restore", undef), 400,
                 'key_limit_reached', 'restore needs a free slot');
($st) = gate($port, $x->{key});
is($st, 401, 'and the key stays revoked');

$two->delete("orgs/lim/keys/$z->{id}");
is($two->post("orgs/lim/keys/$x->{id}/restore", undef)->{status}, 200,
   'restore once a slot is free');

$t->error_log_clean;

done_testing;
