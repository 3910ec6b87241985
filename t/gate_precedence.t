#!/usr/bin/perl

# The gatekeeper's checks apply in the order of SPEC section 4's table, and
# only a request that passes every other check takes a token.

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

        location /preview {
            apikey_environment preview;
            proxy_pass http://127.0.0.1:%%PORT_2%%/echo;
        }

        location /write {
            apikey_scope content:write;
            proxy_pass http://127.0.0.1:%%PORT_2%%/echo;
        }

        location /preview-write {
            apikey_environment preview;
            apikey_scope content:write;
            proxy_pass http://127.0.0.1:%%PORT_2%%/echo;
        }

        location /try {
            try_files /nonexistent /target;
        }

        location /intercept {
            error_page 404 = /target;
            proxy_intercept_errors on;
            proxy_pass http://127.0.0.1:%%PORT_2%%/missing;
        }

        location /target {
            proxy_pass http://127.0.0.1:%%PORT_2%%/echo;
        }

        location /try-write {
            try_files /nonexistent /write;
        }

        location /try-preview {
            try_files /nonexistent /preview;
        }
    }

    server {
        listen 127.0.0.1:%%PORT_2%%;
        server_name localhost;

        location /echo {
            return 200 "ok\n";
        }

        location /missing {
            return 404;
        }
    }
}

EOF

my $port = $t->port(1);

sub get {
    my ($path, $key) = @_;
    return [http_get($port, $path, { 'X-API-Key' => $key->{key} })];
}

###############################################################################

my $k = $t->create_key(revoked => 1);
is_problem(get('/preview-write', $k), 401, 'revoked_api_key',
           'revoked key in the wrong env, lacking a scope: 401 revoked');

$k = $t->create_key(revoked => 1, expires_at => time - 60);
is_problem(get('/', $k), 401, 'revoked_api_key',
           'revoked and expired key: 401 revoked (revoked first)');

$k = $t->create_key(expires_at => time - 60);
is_problem(get('/write', $k), 401, 'expired_api_key',
           'expired key lacking a scope: 401 expired');
is_problem(get('/preview', $k), 401, 'expired_api_key',
           'expired key in the wrong env: 401 expired');

$k = $t->create_key(scopes => ['content:read']);
is_problem(get('/preview-write', $k), 403, 'environment_mismatch',
           'wrong env and a missing scope: 403 environment_mismatch');

###############################################################################

# 1r/m, burst 3: no refill to speak of during the test

$k = $t->create_key(rate => '1r/m', burst => 3, scopes => ['content:read']);

is_problem(get('/write', $k), 403, 'insufficient_scope',
           "limited key lacking a scope: 403 insufficient_scope ($_)")
    for 1 .. 5;
is_problem(get('/preview', $k), 403, 'environment_mismatch',
           "limited key in the wrong env: 403 ($_)")
    for 1 .. 3;

is(get('/', $k)->[0], 200, "refusals took no token: request $_ passes")
    for 1 .. 3;

is_problem(get('/', $k), 429, 'rate_limited', 'the 4th allowed request: 429');

is_problem(get('/write', $k), 403, 'insufficient_scope',
           'empty bucket, missing scope: 403, not 429');
is_problem(get('/preview', $k), 403, 'environment_mismatch',
           'empty bucket, wrong env: 403, not 429');

$t->update_key($k, exp => time - 1);
is_problem(get('/', $k), 401, 'expired_api_key',
           'empty bucket, expired: 401 expired, not 429');

$t->update_key($k, rev => 1);
is_problem(get('/', $k), 401, 'revoked_api_key',
           'empty bucket, revoked: 401 revoked, not 429');

###############################################################################

# an internal redirect to another gated location is still one request

$k = $t->create_key(rate => '1r/m', burst => 5);

my $remaining = 5;

for my $path ('/target', '/try', '/intercept') {
    my $calls = $t->redis_commandstats->{evalsha} // 0;
    my $r = get($path, $k);

    is($r->[0], 200, "$path passes");
    is($r->[1]{'ratelimit-remaining'}, --$remaining, "$path takes one token");
    is($t->redis_commandstats->{evalsha}, $calls + 1,
       "$path costs one Redis call");
}

###############################################################################

# a redirect into a stricter location holds the key to it, without a second
# Redis call

$k = $t->create_key(rate => '1r/m', burst => 5, scopes => ['content:read']);

for my $case (['/try-write', 403, 'insufficient_scope'],
              ['/try-preview', 403, 'environment_mismatch'])
{
    my ($path, $status, $code) = @$case;
    my $calls = $t->redis_commandstats->{evalsha} // 0;

    is_problem(get($path, $k), $status, $code,
               "$path: the redirect target's requirement applies");
    is($t->redis_commandstats->{evalsha}, $calls + 1,
       "$path: checked with one Redis call");
}

my $w = $t->create_key(scopes => ['content:write']);
is(get('/try-write', $w)->[0], 200,
   'a key holding the target\'s scope passes the redirect');

$t->log_contains_no($k->{key});
$t->error_log_clean;

done_testing;
