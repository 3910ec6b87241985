#!/usr/bin/perl

# POST orgs/{org}/keys: the 201 answer, defaults from the apikey_*
# directives, every validation rule of SPEC section 5, and the new key at
# the gatekeeper on the very next request.

use strict;
use warnings;
use utf8;

use FindBin;
use lib "$FindBin::Bin/lib";

use Test::More;

use ApiKey::Test;
use ApiKey::Admin;

my $t = ApiKey::Test->new;
$t->run_redis;

my $tok = write_tokens($t, ops => '*');

$t->run_nginx(admin_config($t, server => <<'EOF'));

        location /custom/ {
            apikey_admin;
            apikey_key_prefix acme;
            apikey_environments staging live;
            apikey_default_rate 120r/m burst=7;
            apikey_default_ttl 1h;
        }

        location /limited/ {
            apikey_admin;
            apikey_max_ttl 1d;
        }
EOF

my $a = ApiKey::Admin->new($t, $tok->{ops});
my $port = $t->port(1);

###############################################################################
# a key with defaults

my $r = $a->post('orgs/acme/keys', { name => 'WordPress purge plugin' });

is($r->{status}, 201, 'created: 201');
like($r->{headers}{'content-type'}, qr{^application/json}, 'JSON');
is($r->{headers}{'cache-control'}, 'no-store', 'Cache-Control: no-store');

my $k = $r->{json};

like($k->{id}, qr/^k_[0-9A-Za-z]{22}$/, 'id is k_ and 22 base62');
is($r->{headers}{location}, "/admin/orgs/acme/keys/$k->{id}", 'Location');
is($k->{org}, 'acme', 'org');
is($k->{name}, 'WordPress purge plugin', 'name');
is($k->{description}, '', 'description defaults to ""');
is($k->{environment}, 'production', 'environment: the first of the list');
is_deeply($k->{scopes}, [], 'scopes default to []');
is_deeply($k->{rate_limit}, { rate => '5r/s', burst => 5 },
          'rate limit 5r/s burst 5 by default');
is($k->{status}, 'active', 'active');
is($k->{created_by}, 'ops', 'created_by is the token name');
like($k->{created_at}, qr/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/,
     'created_at in RFC 3339 UTC');
is($k->{updated_at}, $k->{created_at}, 'updated_at = created_at');
is($k->{last_used_at}, undef, 'never used');
is($k->{expires_at}, undef, 'no expiry by default');
is($k->{revoked_at}, undef, 'not revoked');

like($k->{key}, qr/^ak_[0-9A-Za-z]{49}$/, 'raw key: ak_ and 49 characters');
is(substr($k->{key}, 0, 8), $k->{prefix}, 'prefix: its first 8 characters');

system($ApiKey::Test::KEYTOOL, 'check', $k->{key});
is($?, 0, 'the raw key has a valid checksum');

is(join(',', sort keys %$k),
   join(',', sort qw(id org name description prefix environment scopes
                     rate_limit status created_at created_by updated_at
                     last_used_at expires_at revoked_at meta quota key)),
   'exactly the key object and "key"');

my ($st, $h) = gate($port, $k->{key});
is($st, 200, 'the new key passes the gatekeeper at once')
    or diag(explain $h);
is($h->{'x-apikey-id'}, $k->{id}, '$apikey_id');
is($h->{'ratelimit-limit'}, 5, 'with the default rate limit');

###############################################################################
# every field

$r = $a->post('orgs/acme/keys', {
    name => "Ünïcødé ключ 🔑", description => "line one\nline two",
    environment => 'preview', scopes => ['content:read', 'a.b_c-d:9'],
    rate_limit => { rate => '90r/m' }, expires_in => 3600 });

is($r->{status}, 201, 'all fields: 201') or diag($r->{body});
$k = $r->{json};
is($k->{name}, "Ünïcødé ключ 🔑", 'a Unicode name');
is($k->{description}, "line one\nline two", 'description with a newline');
is($k->{environment}, 'preview', 'environment');
is_deeply($k->{scopes}, ['content:read', 'a.b_c-d:9'], 'scopes');
is_deeply($k->{rate_limit}, { rate => '90r/m', burst => 2 },
          'burst defaults to the per-second rate rounded up');
ok(defined $k->{expires_at}, 'expires_in gives expires_at');

$r = $a->post('orgs/acme/keys', { name => 'n', rate_limit => undef });
is($r->{json}{rate_limit}, undef, 'rate_limit null: unlimited');
($st, $h) = gate($port, $r->{json}{key});
is($st, 200, 'unlimited key passes');
ok(!exists $h->{'ratelimit-limit'}, 'no rate headers for it');

$r = $a->post('orgs/acme/keys',
              { name => 'n', rate_limit => { rate => '1r/s', burst => 3 } });
is_deeply($r->{json}{rate_limit}, { rate => '1r/s', burst => 3 },
          'explicit burst');

$r = $a->post('orgs/acme/keys', { name => 'x' x 100 });
is($r->{status}, 201, 'a name of 100 characters');

$r = $a->post('orgs/acme/keys', { name => "\x{e9}" x 100 });
is($r->{status}, 201, 'a name of 100 two-byte characters');

$r = $a->post('orgs/acme/keys',
              { name => 'max', scopes => [map { "s$_" } 1 .. 32],
                description => 'd' x 500,
                rate_limit => { rate => '1000000r/s', burst => 1000000 } });
is($r->{status}, 201, '32 scopes, 500 characters, largest rate and burst');

my $at = time + 7200;
my @g = gmtime($at);
my $rfc = sprintf('%04d-%02d-%02dT%02d:%02d:%02dZ',
                  $g[5] + 1900, $g[4] + 1, @g[3, 2, 1, 0]);

$r = $a->post('orgs/acme/keys', { name => 'n', expires_at => $rfc });
is($r->{json}{expires_at}, $rfc, 'expires_at as given');

# the same instant written two hours east of UTC

$r = $a->post('orgs/acme/keys',
              { name => 'n',
                expires_at => substr(iso($at + 7200), 0, 19) . '.5+02:00' });
is($r->{json}{expires_at}, $rfc,
   'expires_at with a fraction and an offset, shown in UTC')
    or diag($r->{body});

###############################################################################
# validation: 400 invalid_field

my @bad = (
    [{}, 'no name'],
    [{ name => '' }, 'empty name'],
    [{ name => 'x' x 101 }, 'name of 101 characters'],
    [{ name => "a\tb" }, 'name with a tab'],
    [{ name => "a\x{85}b" }, 'name with a C1 control'],
    [{ name => "a\x{7f}b" }, 'name with DEL'],
    [{ name => 5 }, 'name not a string'],
    [{ name => undef }, 'name null'],
    [{ name => 'n', description => 'd' x 501 }, 'description of 501'],
    [{ name => 'n', description => "a\x{1}" }, 'description with a control'],
    [{ name => 'n', environment => 'staging' }, 'unknown environment'],
    [{ name => 'n', environment => ['production'] }, 'environment array'],
    [{ name => 'n', scopes => 'content:read' }, 'scopes not an array'],
    [{ name => 'n', scopes => ['Content'] }, 'scope with a capital'],
    [{ name => 'n', scopes => [''] }, 'empty scope'],
    [{ name => 'n', scopes => ['a' x 65] }, 'scope of 65'],
    [{ name => 'n', scopes => [1] }, 'scope not a string'],
    [{ name => 'n', scopes => ['a b'] }, 'scope with a space'],
    [{ name => 'n', scopes => [map { "s$_" } 1 .. 33] }, '33 scopes'],
    [{ name => 'n', scopes => ['a', 'a'] }, 'a repeated scope'],
    [{ name => 'n', rate_limit => '5r/s' }, 'rate_limit a string'],
    [{ name => 'n', rate_limit => {} }, 'rate_limit without rate'],
    [{ name => 'n', rate_limit => { rate => '5r/h' } }, 'rate 5r/h'],
    [{ name => 'n', rate_limit => { rate => '0r/s' } }, 'rate 0r/s'],
    [{ name => 'n', rate_limit => { rate => '1000001r/s' } }, 'rate too high'],
    [{ name => 'n', rate_limit => { rate => '-1r/s' } }, 'negative rate'],
    [{ name => 'n', rate_limit => { rate => 5 } }, 'rate a number'],
    [{ name => 'n', rate_limit => { rate => '5r/s', burst => 0 } }, 'burst 0'],
    [{ name => 'n', rate_limit => { rate => '5r/s', burst => 1000001 } },
     'burst too high'],
    [{ name => 'n', rate_limit => { rate => '5r/s', burst => '5' } },
     'burst a string'],
    [{ name => 'n', rate_limit => { rate => '5r/s', burst => 2.5 } },
     'burst a fraction'],
    [{ name => 'n', expires_in => 59 }, 'expires_in 59'],
    [{ name => 'n', expires_in => '3600' }, 'expires_in a string'],
    [{ name => 'n', expires_in => 3600.5 }, 'expires_in a fraction'],
    [{ name => 'n', expires_at => 'tomorrow' }, 'expires_at not a time'],
    [{ name => 'n', expires_at => '2030-02-30T00:00:00Z' }, 'February 30'],
    [{ name => 'n', expires_at => '2030-01-01T00:00:00' }, 'no time zone'],
    [{ name => 'n', expires_at => 1893456000 }, 'expires_at a number'],
    [{ name => 'n', expires_at => '2001-01-01T00:00:00Z' }, 'in the past'],
    [{ name => 'n', expires_at => iso(time + 30) }, '30 s ahead'],
    [{ name => 'n', expires_in => 3600, expires_at => iso(time + 7200) },
     'both expires_in and expires_at'],
    [{ name => 'n', id => 'k_mine' }, 'id cannot be set'],
    [{ name => 'n', status => 'revoked' }, 'status cannot be set'],
    [{ name => 'n', key => 'ak_x' }, 'key cannot be set'],
    [{ name => 'n', grace_seconds => 5 }, 'grace_seconds belongs to rotate'],
);

for my $case (@bad) {
    is_admin_problem($a->post('orgs/acme/keys', $case->[0]), 400,
                     'invalid_field', "invalid_field: $case->[1]");
}

is_admin_problem($a->post('orgs/acme/keys', { name => 'n', colour => 1 }),
                 400, 'unknown_field', 'unknown_field: an unknown field');
is_admin_problem($a->post('orgs/acme/keys',
                          { name => 'n',
                            rate_limit => { rate => '5r/s', per => 1 } }),
                 400, 'unknown_field', 'unknown_field: inside rate_limit');

###############################################################################
# location settings: prefix, environments, default rate, default ttl

my $c = ApiKey::Admin->new($t, $tok->{ops}, base => '/custom/');

$r = $c->post('orgs/acme/keys', { name => 'custom' });
is($r->{status}, 201, 'custom location: 201') or diag($r->{body});
$k = $r->{json};

like($k->{key}, qr/^acme_[0-9A-Za-z]{49}$/, 'apikey_key_prefix');
is($k->{prefix}, substr($k->{key}, 0, 8), 'display prefix');
is($k->{environment}, 'staging', 'the first of apikey_environments');
is_deeply($k->{rate_limit}, { rate => '120r/m', burst => 7 },
          'apikey_default_rate with burst');
ok(defined $k->{expires_at}, 'apikey_default_ttl gives an expiry');
is(epoch($k->{expires_at}) - epoch($k->{created_at}), 3600,
   'of one hour');

$r = $c->post('orgs/acme/keys', { name => 'forever', expires_at => undef });
is($r->{json}{expires_at}, undef, 'expires_at null: no expiry');

is_admin_problem($c->post('orgs/acme/keys',
                          { name => 'n', environment => 'production' }),
                 400, 'invalid_field', 'environment of another location');

($st) = gate($port, $k->{key});
is($st, 200, 'a key with another prefix passes the gatekeeper');

###############################################################################
# apikey_max_ttl

my $l = ApiKey::Admin->new($t, $tok->{ops}, base => '/limited/');

$r = $l->post('orgs/acme/keys', { name => 'n' });
is(epoch($r->{json}{expires_at}) - epoch($r->{json}{created_at}), 86400,
   'apikey_max_ttl alone is the default lifetime');

is($l->post('orgs/acme/keys', { name => 'n', expires_in => 86400 })
     ->{status}, 201, 'expires_in = apikey_max_ttl');
is_admin_problem($l->post('orgs/acme/keys',
                          { name => 'n', expires_in => 86401 }),
                 400, 'invalid_field', 'expires_in past apikey_max_ttl');
is_admin_problem($l->post('orgs/acme/keys',
                          { name => 'n', expires_at => iso(time + 2 * 86400) }),
                 400, 'invalid_field', 'expires_at past apikey_max_ttl');
is_admin_problem($l->post('orgs/acme/keys',
                          { name => 'n', expires_at => undef }),
                 400, 'invalid_field', 'no expiry under apikey_max_ttl');

###############################################################################

is_admin_problem($a->post('orgs/acme/keys', undef), 400, 'invalid_field',
                 'an empty body has no name');

$t->log_contains_no($k->{key}, 'created key');
$t->error_log_clean;

done_testing;

###############################################################################

sub iso {
    my @g = gmtime($_[0]);
    return sprintf('%04d-%02d-%02dT%02d:%02d:%02dZ',
                   $g[5] + 1900, $g[4] + 1, @g[3, 2, 1, 0]);
}

sub epoch {
    my ($s) = @_;
    my ($y, $mo, $d, $h, $mi, $se) =
        $s =~ /^(\d+)-(\d+)-(\d+)T(\d+):(\d+):(\d+)Z$/ or return 0;
    require Time::Local;
    return Time::Local::timegm($se, $mi, $h, $d, $mo - 1, $y);
}
