#!/usr/bin/perl

# The gatekeeper's answers: every row of SPEC section 4's table, the
# problem+json body, WWW-Authenticate, and the $apikey_* variables on
# passes and refusals.

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

    log_format vars '$uri|$apikey_status|$apikey_id|$apikey_org|'
                    '$apikey_name|$apikey_environment|$apikey_prefix|'
                    '$apikey_rate_remaining';

    server {
        listen 127.0.0.1:%%PORT_1%%;
        server_name localhost;

        access_log access.log vars;

        add_header X-Vars "$apikey_status|$apikey_id|$apikey_org|$apikey_name|$apikey_environment|$apikey_prefix|$apikey_rate_remaining|$apikey_scopes" always;

        apikey on;

        location / {
            proxy_pass http://127.0.0.1:%%PORT_2%%/echo;
            proxy_set_header X-Id $apikey_id;
        }

        location /preview {
            apikey_environment preview;
            proxy_pass http://127.0.0.1:%%PORT_2%%/echo;
        }

        location /write {
            apikey_scope content:read content:write;
            proxy_pass http://127.0.0.1:%%PORT_2%%/echo;
        }

        location /custom {
            apikey_header X-Custom-Key;
            proxy_pass http://127.0.0.1:%%PORT_2%%/echo;
        }

        location /open {
            apikey off;
            proxy_pass http://127.0.0.1:%%PORT_2%%/echo;
        }
    }

    server {
        listen 127.0.0.1:%%PORT_2%%;
        server_name localhost;

        access_log off;

        location /echo {
            return 200 "id=$http_x_id\n";
        }
    }
}

EOF

my $port = $t->port(1);

sub get {
    my ($path, %h) = @_;
    return [http_get($port, $path, \%h)];
}

sub vars { [split /\|/, ($_[0][1]{'x-vars'} // ''), -1] }

sub www_auth { $_[0][1]{'www-authenticate'} // '(none)' }

my $ok = $t->create_key(org => 'acme', name => 'status test',
                        scopes => ['content:read', 'content:write']);

###############################################################################

my $r = get('/', 'X-API-Key' => $ok->{key});
is($r->[0], 200, 'valid key passes');
is($r->[2], "id=$ok->{id}\n", 'upstream sees $apikey_id');
is_deeply(vars($r), ['ok', $ok->{id}, 'acme', 'status test', 'production',
                     $ok->{prefix}, 4, 'content:read content:write'],
          'variables on a pass: status, id, org, name, env, prefix, '
          . 'remaining, scopes');

$r = get('/', 'x-api-key' => $ok->{key});
is($r->[0], 200, 'header name is case-insensitive');

$r = get('/open');
is($r->[0], 200, 'apikey off: no key needed');
is(vars($r)->[0], '', 'apikey off: $apikey_status empty');

my $unlimited = $t->create_key(rate => undef);
$r = get('/', 'X-API-Key' => $unlimited->{key});
is($r->[0], 200, 'unlimited key passes');
is_deeply([@{vars($r)}[0, 6]], ['ok', ''],
          'unlimited key: $apikey_rate_remaining empty');

###############################################################################

$r = get('/');
is_problem($r, 401, 'missing_api_key', 'no header: 401 missing_api_key');
is(www_auth($r), 'ApiKey header="X-API-Key"', 'missing: WWW-Authenticate');
is_deeply(vars($r), ['missing', '', '', '', '', '', '', ''],
          'missing: $apikey_status missing, others empty');

$r = get('/', 'X-API-Key' => '');
is_problem($r, 401, 'missing_api_key', 'empty header: 401 missing_api_key');
is(vars($r)->[0], 'missing', 'empty header: $apikey_status missing');

my @invalid = (
    ['malformed key', 'not-a-key'],
    ['bad checksum', substr($ok->{key}, 0, -1)
                     . (substr($ok->{key}, -1) eq '0' ? '1' : '0')],
    ['unknown key', $t->raw_key],
    ['key of another prefix, unknown', 'zz' . substr($ok->{key}, 2)],
);

for my $case (@invalid) {
    my ($what, $key) = @$case;

    $r = get('/', 'X-API-Key' => $key);
    is_problem($r, 401, 'invalid_api_key', "$what: 401 invalid_api_key");
    is(www_auth($r), 'ApiKey header="X-API-Key"', "$what: WWW-Authenticate");
    is_deeply(vars($r), ['invalid', '', '', '', '', '', '', ''],
              "$what: \$apikey_status invalid, others empty");
    $t->log_contains_no($key, $what) if length $key > 20;
}

my $deleted = $t->create_key;
is(get('/', 'X-API-Key' => $deleted->{key})->[0], 200, 'key passes before delete');
$t->redis('DEL', "apikey:{$deleted->{hash}}", "apikey:key:$deleted->{id}");
$t->redis('ZREM', 'apikey:org:acme:keys', $deleted->{id});
is_problem(get('/', 'X-API-Key' => $deleted->{key}), 401, 'invalid_api_key',
           'deleted key: 401 invalid_api_key on the next request');

$r = [http_get($port, '/', { 'X-API-Key' => [$ok->{key}, $ok->{key}] })];
is_problem($r, 401, 'invalid_api_key', 'key given twice: 401 invalid_api_key');
is(vars($r)->[0], 'invalid', 'key given twice: $apikey_status invalid');

my $revoked = $t->create_key(revoked => 1, name => 'revoked one');
$r = get('/', 'X-API-Key' => $revoked->{key});
is_problem($r, 401, 'revoked_api_key', 'revoked key: 401 revoked_api_key');
is(www_auth($r), 'ApiKey header="X-API-Key"', 'revoked: WWW-Authenticate');
is_deeply([@{vars($r)}[0 .. 5]], ['revoked', $revoked->{id}, 'acme',
                                   'revoked one', 'production',
                                   $revoked->{prefix}],
          'revoked: $apikey_status revoked, the key is identified');

my $expired = $t->create_key(expires_at => time - 10);
$r = get('/', 'X-API-Key' => $expired->{key});
is_problem($r, 401, 'expired_api_key', 'expired key: 401 expired_api_key');
is(vars($r)->[0], 'expired', 'expired: $apikey_status expired');
is(vars($r)->[1], $expired->{id}, 'expired: $apikey_id set');

my $future = $t->create_key(expires_at => time + 3600);
is(get('/', 'X-API-Key' => $future->{key})->[0], 200,
   'key expiring in an hour passes');

$r = get('/preview', 'X-API-Key' => $ok->{key});
is_problem($r, 403, 'environment_mismatch',
           'production key at a preview location: 403 environment_mismatch');
is_deeply([@{vars($r)}[0, 1, 4]], ['forbidden', $ok->{id}, 'production'],
          'environment mismatch: $apikey_status forbidden, key identified');
ok(!exists $r->[1]{'www-authenticate'}, '403: no WWW-Authenticate');

my $preview = $t->create_key(env => 'preview');
is(get('/preview', 'X-API-Key' => $preview->{key})->[0], 200,
   'preview key at the preview location passes');
is(get('/', 'X-API-Key' => $preview->{key})->[0], 200,
   'preview key passes where any environment is allowed');

my $reader = $t->create_key(scopes => ['content:read']);
$r = get('/write', 'X-API-Key' => $reader->{key});
is_problem($r, 403, 'insufficient_scope',
           'key lacking one scope: 403 insufficient_scope');
is(vars($r)->[0], 'forbidden', 'insufficient scope: $apikey_status forbidden');
is(get('/write', 'X-API-Key' => $ok->{key})->[0], 200,
   'key holding every scope passes');

my $prefixed = $t->create_key(scopes => ['content:readx', 'xcontent:write']);
is(get('/write', 'X-API-Key' => $prefixed->{key})->[0], 403,
   'scopes match whole words only');

my $slow = $t->create_key(rate => '1r/m');
is(get('/', 'X-API-Key' => $slow->{key})->[0], 200, '1r/m key: first passes');
$r = get('/', 'X-API-Key' => $slow->{key});
is_problem($r, 429, 'rate_limited', '1r/m key: second is 429 rate_limited');
is_deeply([@{vars($r)}[0, 1, 6]], ['limited', $slow->{id}, 0],
          'rate limited: $apikey_status limited, remaining 0');

# a refusal reads and drops the request body, so that the next request on
# the same connection is read right

my $any = $t->create_key(rate => undef);
my $pipelined = '';

for my $key ('not-a-key', $revoked->{key}, $any->{key}) {
    $pipelined .= "POST / HTTP/1.1\r\nHost: localhost\r\nX-API-Key: $key\r\n"
                . "Content-Length: 5\r\n\r\nhello";
}

$pipelined .= "GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n"
            . "X-API-Key: $any->{key}\r\n\r\n";

my ($st, undef, $rest) = http_request($port, $pipelined);
is_deeply([$st, $rest =~ m{HTTP/1\.1 (\d{3}) }g], [401, 401, 200, 200],
          'keep-alive: refused requests with a body, then good ones');

###############################################################################

$r = get('/custom', 'X-Custom-Key' => $any->{key});
is($r->[0], 200, 'apikey_header: key in the custom header passes');

$r = get('/custom', 'X-API-Key' => $any->{key});
is_problem($r, 401, 'missing_api_key',
           'apikey_header: X-API-Key is not looked at');
is(www_auth($r), 'ApiKey header="X-Custom-Key"',
   'apikey_header: WWW-Authenticate names the custom header');

###############################################################################

my @log = split /\n/, $t->read_file('access.log');
ok((grep { $_ eq "/|ok|$ok->{id}|acme|status test|production|$ok->{prefix}|4" }
    @log), 'log_format sees the variables of a pass');
ok((grep { m{^/\|missing\|\|\|\|\|\|-?$} } @log),
   'log_format sees $apikey_status missing');

$t->stop_redis;
$r = get('/', 'X-API-Key' => $ok->{key});
is_problem($r, 503, 'auth_unavailable', 'Redis down: 503 auth_unavailable');
is(vars($r)->[0], 'unavailable', 'Redis down: $apikey_status unavailable');

$t->log_contains_no($_->{key}, 'refused keys')
    for $revoked, $expired, $reader, $slow, $ok;
$t->error_log_clean;

done_testing;
