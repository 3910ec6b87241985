#!/usr/bin/perl

# What the gatekeeper adds to and takes from requests and responses: rate
# headers (draft and legacy), Retry-After, the bearer form, hiding the key
# from the upstream, and last_used_at.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use Test::More;

use ApiKey::Test;

my $t = ApiKey::Test->new;
$t->run_redis;
$t->run_nginx(<<'EOF');

%%TEST_GLOBALS%%
load_module %%MODULE%%;
error_log error.log info;
worker_processes 1;

events {
}

http {
    %%TEST_GLOBALS_HTTP%%

    apikey_redis %%REDIS%%;

    server {
        listen 127.0.0.1:%%PORT_1%%;
        server_name localhost;

        apikey on;

        location / {
            proxy_pass http://127.0.0.1:%%PORT_2%%/echo;
        }

        location /off {
            apikey_rate_headers off;
            proxy_pass http://127.0.0.1:%%PORT_2%%/echo;
        }

        location /draft {
            apikey_rate_headers draft;
            proxy_pass http://127.0.0.1:%%PORT_2%%/echo;
        }

        location /legacy {
            apikey_rate_headers legacy;
            proxy_pass http://127.0.0.1:%%PORT_2%%/echo;
        }

        location /bearer {
            apikey_bearer on;
            proxy_pass http://127.0.0.1:%%PORT_2%%/echo;
        }

        location /show {
            apikey_bearer on;
            apikey_hide_header off;
            proxy_pass http://127.0.0.1:%%PORT_2%%/echo;
        }

        location /write {
            apikey_scope content:write;
            proxy_pass http://127.0.0.1:%%PORT_2%%/echo;
        }

        location /custom {
            apikey_header X-Custom-Key;
            proxy_pass http://127.0.0.1:%%PORT_2%%/echo-custom;
        }
    }

    server {
        listen 127.0.0.1:%%PORT_2%%;
        server_name localhost;

        location /echo {
            return 200 "key=$http_x_api_key auth=$http_authorization\n";
        }

        location /echo-custom {
            return 200 "custom=$http_x_custom_key key=$http_x_api_key\n";
        }
    }
}

EOF

my $port = $t->port(1);

sub get {
    my ($path, %h) = @_;
    return [http_get($port, $path, \%h)];
}

my @draft = qw(ratelimit-policy ratelimit);
my @legacy = qw(ratelimit-limit ratelimit-remaining ratelimit-reset);

sub rate_headers {
    my ($r) = @_;
    return { map { exists $r->[1]{$_} ? ($_ => $r->[1]{$_}) : () }
             @draft, @legacy };
}

###############################################################################

my $k = $t->create_key;
my $r = get('/', 'X-API-Key' => $k->{key});

is($r->[0], 200, '5r/s key passes');
is_deeply(rate_headers($r), {
    'ratelimit-policy' => '"default";q=5;w=1',
    'ratelimit' => '"default";r=4;t=1',
    'ratelimit-limit' => 5,
    'ratelimit-remaining' => 4,
    'ratelimit-reset' => 1,
}, 'first request of a 5r/s burst-5 key: draft and legacy headers, once each');
ok(!exists $r->[1]{'retry-after'}, 'no Retry-After on a pass');

# 1r/m: a refill takes 60 s, so the values barely move during the test

$k = $t->create_key(rate => '1r/m', burst => 5);
$r = get('/', 'X-API-Key' => $k->{key});
is_deeply(rate_headers($r), {
    'ratelimit-policy' => '"default";q=5;w=300',
    'ratelimit' => '"default";r=4;t=60',
    'ratelimit-limit' => 5,
    'ratelimit-remaining' => 4,
    'ratelimit-reset' => 60,
}, '1r/m burst-5 key: w=300, t=60');

$r = get('/', 'X-API-Key' => $k->{key});
is($r->[1]{'ratelimit'}, '"default";r=3;t=60',
   '1r/m: second request, r=3, t is the time to one more token (60)');
is($r->[1]{'ratelimit-reset'}, 120, 'legacy reset: until full, 120');

# on a 429, t is the time until more quota: Retry-After (draft 10)

$k = $t->create_key(rate => '1r/m', burst => 3);
get('/', 'X-API-Key' => $k->{key}) for 1 .. 3;
$r = get('/', 'X-API-Key' => $k->{key});
is($r->[0], 429, '1r/m burst-3: the fourth is 429');
my ($t429) = ($r->[1]{'ratelimit'} // '') =~ /;t=(\d+)$/;
ok(defined $t429 && $t429 == $r->[1]{'retry-after'} && $t429 >= 59,
   '429: RateLimit t equals Retry-After')
    or diag("RateLimit $r->[1]{'ratelimit'}, Retry-After $r->[1]{'retry-after'}");
like($r->[1]{'ratelimit-reset'} // '', qr/^(179|180)$/,
     '429: legacy RateLimit-Reset stays until full (180)');

$k = $t->create_key(rate => '1r/m', burst => 1);
is(get('/', 'X-API-Key' => $k->{key})->[0], 200, '1r/m burst-1: one passes');
$r = get('/', 'X-API-Key' => $k->{key});
is_problem($r, 429, 'rate_limited', '1r/m burst-1: then 429');
like($r->[1]{'retry-after'} // '', qr/^(59|60)$/,
     '429: Retry-After is the time to one token (60 s)');
is($r->[1]{'ratelimit'}, '"default";r=0;t=60', '429 carries RateLimit');
is($r->[1]{'ratelimit-remaining'}, 0, '429 carries RateLimit-Remaining 0');

$r = get('/off', 'X-API-Key' => $k->{key});
is($r->[0], 429, 'apikey_rate_headers off: still 429');
ok($r->[1]{'retry-after'} && $r->[1]{'retry-after'} >= 1,
   'apikey_rate_headers off: 429 still has Retry-After');
is_deeply(rate_headers($r), {}, 'apikey_rate_headers off: no rate headers on 429');

$k = $t->create_key(rate => '5r/s');
for (1 .. 20) {
    $r = get('/', 'X-API-Key' => $k->{key});
    last if $r->[0] != 200;
}
is($r->[0], 429, '5r/s key, bucket emptied: 429');
is($r->[1]{'retry-after'}, 1, '5r/s: Retry-After rounded up to 1');

###############################################################################

$k = $t->create_key;

$r = get('/off', 'X-API-Key' => $k->{key});
is($r->[0], 200, 'apikey_rate_headers off: passes');
is_deeply(rate_headers($r), {}, 'apikey_rate_headers off: no rate headers');

$r = get('/draft', 'X-API-Key' => $k->{key});
is_deeply([sort keys %{rate_headers($r)}], [sort @draft],
          'apikey_rate_headers draft: only the draft headers');

$r = get('/legacy', 'X-API-Key' => $k->{key});
is_deeply([sort keys %{rate_headers($r)}], [sort @legacy],
          'apikey_rate_headers legacy: only the legacy headers');

$k = $t->create_key(rate => undef);
$r = get('/', 'X-API-Key' => $k->{key});
is($r->[0], 200, 'unlimited key passes');
is_deeply(rate_headers($r), {}, 'unlimited key: no rate headers');

###############################################################################

my $k1 = $t->create_key(rate => undef);
my $k2 = $t->create_key(rate => undef);
my $bad = $t->raw_key;

$r = get('/bearer', 'Authorization' => "Bearer $k1->{key}");
is($r->[0], 200, 'apikey_bearer on: Authorization: Bearer passes');
is($r->[2], "key= auth=\n", 'bearer: Authorization hidden from the upstream');

$r = get('/bearer', 'Authorization' => "bearer $k1->{key}");
is($r->[0], 200, 'bearer scheme is case-insensitive');

is_problem(get('/', 'Authorization' => "Bearer $k1->{key}"), 401,
           'missing_api_key', 'apikey_bearer off: a bearer is not looked at');

is_problem(get('/bearer', 'Authorization' => 'Basic dXNlcjpwYXNz'), 401,
           'missing_api_key', 'apikey_bearer on: Basic is no key');

# 401 challenges: ApiKey, and with apikey_bearer on also Bearer (RFC 6750)

sub challenges {
    my $w = $_[0][1]{'www-authenticate'} // [];
    return ref $w ? $w : [$w];
}

is_deeply(challenges(get('/bearer')),
          ['ApiKey header="X-API-Key"', 'Bearer'],
          'apikey_bearer on, no key: ApiKey and a plain Bearer challenge');
is_deeply(challenges(get('/bearer', 'Authorization' => "Bearer $bad")),
          ['ApiKey header="X-API-Key"', 'Bearer error="invalid_token"'],
          'refused bearer key: Bearer error="invalid_token"');
is_deeply(challenges(get('/bearer', 'X-API-Key' => $bad)),
          ['ApiKey header="X-API-Key"', 'Bearer'],
          'refused X-API-Key: the Bearer challenge has no error');
is_deeply(challenges(get('/', 'Authorization' => "Bearer $bad")),
          ['ApiKey header="X-API-Key"'],
          'apikey_bearer off: no Bearer challenge');

$r = get('/bearer', 'X-API-Key' => $k1->{key}, 'Authorization' => "Bearer $bad");
is($r->[0], 200, 'header checked before the bearer: good header wins');

$r = get('/bearer', 'X-API-Key' => $bad, 'Authorization' => "Bearer $k1->{key}");
is_problem($r, 401, 'invalid_api_key',
           'header checked before the bearer: bad header is not overridden');

$r = get('/bearer', 'X-API-Key' => $k1->{key},
         'Authorization' => 'Basic dXNlcjpwYXNz');
is($r->[2], "key= auth=Basic dXNlcjpwYXNz\n",
   'key from the header: header hidden, other Authorization kept');

$r = get('/', 'X-API-Key' => $k1->{key});
is($r->[2], "key= auth=\n", 'apikey_hide_header on (default): X-API-Key hidden');

$r = get('/custom', 'X-Custom-Key' => $k1->{key}, 'X-API-Key' => 'other');
is($r->[2], "custom= key=other\n",
   'apikey_header: the custom header is hidden, X-API-Key left alone');

$r = get('/show', 'X-API-Key' => $k2->{key});
is($r->[2], "key=$k2->{key} auth=\n",
   'apikey_hide_header off: upstream sees X-API-Key');

$r = get('/show', 'Authorization' => "Bearer $k2->{key}");
is($r->[2], "key= auth=Bearer $k2->{key}\n",
   'apikey_hide_header off: upstream sees the bearer');

###############################################################################

$k = $t->create_key(scopes => ['content:read']);

get('/write', 'X-API-Key' => $k->{key});
is($t->last_used($k), undef, 'a refused request records no last_used_at');

my $now = $t->redis('TIME')->[0];
is(get('/', 'X-API-Key' => $k->{key})->[0], 200, 'key passes');
my $used = $t->last_used($k) // 0;
ok($used >= $now && $used <= $now + 5,
   'a pass records last_used_at (Redis time)')
    or diag("used=$used now=$now");

$k = $t->create_key(rate => undef);
get('/', 'X-API-Key' => $k->{key});
ok($t->last_used($k), 'an unlimited key records last_used_at too');

$t->log_contains_no($_) for $bad, $k1->{key};
$t->error_log_clean;

done_testing;
