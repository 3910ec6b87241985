#!/usr/bin/perl

# Expiry at the gatekeeper: a key created under apikey_default_ttl 2s
# works, then is refused with 401 expired_api_key, and the admin API shows
# it as expired.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use Test::More;
use JSON::PP;

use ApiKey::Test;
use ApiKey::Admin;

my $t = ApiKey::Test->new;
$t->run_redis;

my $tok = write_tokens($t, ops => '*');

$t->run_nginx(admin_config($t, admin => 'apikey_default_ttl 2s;'));

my $a = ApiKey::Admin->new($t, $tok->{ops});
my $port = $t->port(1);

my $k = $a->create('acme', name => 'two seconds', rate_limit => undef);
my $forever = $a->create('acme', name => 'forever', expires_at => undef);

ok(defined $k->{expires_at}, 'expires_at from apikey_default_ttl');
is($forever->{expires_at}, undef, 'expires_at null: no expiry');

my ($st, $h) = gate($port, $k->{key});
is($st, 200, 'works at first');

my $expired = wait_for(10, sub { (gate($port, $k->{key}))[0] == 401 });
ok($expired, 'refused within the bounded wait');

my ($s, $hd, $body) = http_get($port, '/api/', { 'X-API-Key' => $k->{key} });
is($s, 401, 'status 401');
is(eval { decode_json($body)->{code} }, 'expired_api_key', 'expired_api_key');
is($hd->{'x-apikey-status'}, 'expired', '$apikey_status expired');

my $r = $a->get("orgs/acme/keys/$k->{id}");
is($r->{json}{status}, 'expired', 'get: status expired');

$r = $a->get('orgs/acme/keys?status=expired');
is_deeply([map { $_->{id} } @{$r->{json}{data}}], [$k->{id}],
          'list: status=expired');
is($a->get('orgs/acme/keys?status=active')->{json}{data}[0]{id},
   $forever->{id}, 'the other key is active');

is((gate($port, $forever->{key}))[0], 200, 'and works');

# a new expiry brings it back on the next request

$r = $a->patch("orgs/acme/keys/$k->{id}", { expires_at => undef });
is($r->{json}{status}, 'active', 'expiry cleared: active');
is((gate($port, $k->{key}))[0], 200, 'works again on the next request');

$t->error_log_clean;

done_testing;
