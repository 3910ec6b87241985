#!/usr/bin/perl

# PATCH orgs/{org}/keys/{id}: name, description, scopes, rate_limit and
# expires_at change, and the gatekeeper applies them on the very next
# request; fields that cannot change are 400 invalid_field.

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

$t->run_nginx(admin_config($t, server => <<'EOF2'));

        location /scoped/ {
            apikey on;
            apikey_scope content:write;
            add_header X-Apikey-Name $apikey_name always;
            empty_gif;
        }

        location /limited/ {
            apikey_admin;
            apikey_max_ttl 1d;
        }
EOF2

my $a = ApiKey::Admin->new($t, $tok->{ops});
my $ci = ApiKey::Admin->new($t, $tok->{ci});
my $port = $t->port(1);

my $k = $a->create('acme', name => 'before', scopes => ['content:read'],
                   rate_limit => { rate => '100r/s' });
my $path = "orgs/acme/keys/$k->{id}";

sub scoped {
    my ($st, $h) = http_get($port, '/scoped/', { 'X-API-Key' => $k->{key} });
    return ($st // 0, $h);
}

my ($st, $h) = scoped();
is($st, 403, 'without content:write: 403');

###############################################################################

sleep 1;

my $r = $ci->patch($path, { name => 'after', description => 'new',
                            scopes => ['content:read', 'content:write'] });
is($r->{status}, 200, 'patch: 200') or diag($r->{body});
is($r->{json}{name}, 'after', 'name');
is($r->{json}{description}, 'new', 'description');
is_deeply($r->{json}{scopes}, ['content:read', 'content:write'], 'scopes');
isnt($r->{json}{updated_at}, $k->{updated_at}, 'updated_at moves');
is($r->{json}{created_at}, $k->{created_at}, 'created_at stays');
is($r->{json}{prefix}, $k->{prefix}, 'prefix stays');
ok(!exists $r->{json}{key}, 'no raw key');

($st, $h) = scoped();
is($st, 200, 'the new scope works on the next request');
is($h->{'x-apikey-name'}, 'after', 'and the new name is $apikey_name');

$r = $a->patch($path, { scopes => [] });
is_deeply($r->{json}{scopes}, [], 'scopes emptied');
($st) = scoped();
is($st, 403, 'the scope is gone on the next request');

# rate limit

$r = $a->patch($path, { rate_limit => { rate => '1r/m', burst => 2 } });
is_deeply($r->{json}{rate_limit}, { rate => '1r/m', burst => 2 },
          'rate_limit changed');

my @st = map { (gate($port, $k->{key}))[0] } 1 .. 4;
is_deeply(\@st, [200, 200, 429, 429], 'the new limit holds at once')
    or diag("@st");

$r = $a->patch($path, { rate_limit => undef });
is($r->{json}{rate_limit}, undef, 'rate_limit null: unlimited');
@st = map { (gate($port, $k->{key}))[0] } 1 .. 5;
is_deeply(\@st, [(200) x 5], 'unlimited at once');
($st, $h) = gate($port, $k->{key});
ok(!exists $h->{'ratelimit-limit'}, 'without rate headers');

$r = $a->patch($path, { rate_limit => { rate => '5r/s' } });
is_deeply($r->{json}{rate_limit}, { rate => '5r/s', burst => 5 },
          'limited again, default burst');
($st, $h) = gate($port, $k->{key});
is($h->{'ratelimit-limit'}, 5, 'starting from a full bucket');

# expiry

my $soon = iso(time + 120);
$r = $a->patch($path, { expires_at => $soon });
is($r->{json}{expires_at}, $soon, 'expires_at set');
is($r->{json}{status}, 'active', 'still active');
($st) = gate($port, $k->{key});
is($st, 200, 'still works');

$r = $a->patch($path, { expires_at => undef });
is($r->{json}{expires_at}, undef, 'expires_at null clears it');

$r = $a->patch($path, {});
is($r->{status}, 200, 'an empty patch');
is($r->{json}{updated_at}, $a->get($path)->{json}{updated_at},
   'changes nothing');

###############################################################################
# refused

my %events = map { $_ => 1 }
             @{$a->get('orgs/acme/events?per_page=100')->{json}{data}};

for my $c ([{ environment => 'preview' }, 'environment'],
           [{ id => 'k_x' }, 'id'], [{ org => 'beta' }, 'org'],
           [{ prefix => 'ak_x' }, 'prefix'],
           [{ status => 'revoked' }, 'status'],
           [{ created_at => iso(time) }, 'created_at'],
           [{ created_by => 'me' }, 'created_by'],
           [{ updated_at => iso(time) }, 'updated_at'],
           [{ last_used_at => undef }, 'last_used_at'],
           [{ revoked_at => undef }, 'revoked_at'], [{ key => 'x' }, 'key'],
           [{ expires_in => 3600 }, 'expires_in'],
           [{ grace_seconds => 1 }, 'grace_seconds'],
           [{ name => '' }, 'an empty name'],
           [{ name => 'ok', scopes => ['BAD'] }, 'a bad scope'],
           [{ rate_limit => { rate => '0r/s' } }, 'a bad rate'],
           [{ expires_at => iso(time + 10) }, 'expires_at 10 s ahead'],
           [{ expires_at => iso(time - 3600) }, 'expires_at in the past'],
           [{ description => 'x' x 501 }, 'a long description'])
{
    is_admin_problem($a->patch($path, $c->[0]), 400, 'invalid_field',
                     "invalid_field: $c->[1]");
}

is_admin_problem($a->patch($path, { nickname => 'x' }), 400, 'unknown_field',
                 'unknown_field');

is($a->get($path)->{json}{name}, 'after',
   'a refused patch changes nothing, not even valid fields before it');
is(scalar @{$a->get('orgs/acme/events?per_page=100')->{json}{data}},
   scalar keys %events, 'and writes no event');

is_admin_problem($a->patch('orgs/acme/keys/k_nope', { name => 'x' }), 404,
                 'key_not_found', 'unknown id');
is_admin_problem($a->patch("orgs/beta/keys/$k->{id}", { name => 'x' }), 404,
                 'key_not_found', 'another org');

# apikey_max_ttl counts from the creation

my $l = ApiKey::Admin->new($t, $tok->{ops}, base => '/limited/');
my $m = $l->create('acme', name => 'short');

is($l->patch("orgs/acme/keys/$m->{id}", { expires_at => iso(time + 3600) })
     ->{status}, 200, 'max_ttl: an earlier expiry');
is_admin_problem($l->patch("orgs/acme/keys/$m->{id}",
                           { expires_at => iso(time + 86400 + 120) }),
                 400, 'invalid_field', 'max_ttl: past the maximal lifetime');
is_admin_problem($l->patch("orgs/acme/keys/$m->{id}", { expires_at => undef }),
                 400, 'invalid_field', 'max_ttl: no expiry');

$t->error_log_clean;

done_testing;

sub iso {
    my @g = gmtime($_[0]);
    return sprintf('%04d-%02d-%02dT%02d:%02d:%02dZ',
                   $g[5] + 1900, $g[4] + 1, @g[3, 2, 1, 0]);
}
