#!/usr/bin/perl

# Fail modes across internal redirects: a request that passed as
# "unverified" in a fail-open location (Redis down) gets 503 once an
# X-Accel-Redirect, error_page or try_files takes it into a fail-closed
# location; with Redis up the same redirects hold the key to the target's
# scope.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use File::Path qw(make_path);
use Test::More;

use ApiKey::Test;

my $t = ApiKey::Test->new;
$t->run_redis;

# an empty document root: every static file is a 404

make_path($t->dir . '/nginx/html');
chmod 0755, $t->dir . '/nginx', $t->dir . '/nginx/html';

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

        root %%PREFIX%%/html;

        add_header X-Status $apikey_status always;

        apikey on;

        # fail-open locations that redirect

        location /open-accel {
            apikey_fail_mode open;
            proxy_pass http://127.0.0.1:%%PORT_2%%/accel;
        }

        location /open-404 {
            apikey_fail_mode open;
            error_page 404 = /closed;
        }

        location /open-404-plain {
            apikey_fail_mode open;
            error_page 404 = /closed-plain;
        }

        location /open-try {
            apikey_fail_mode open;
            try_files /nothing-here /closed;
        }

        location /open-named {
            apikey_fail_mode open;
            try_files /nothing-here @closed;
        }

        # the targets

        location /closed {
            apikey_fail_mode closed;
            apikey_scope content:read;
            proxy_pass http://127.0.0.1:%%PORT_2%%/content;
        }

        location /closed-plain {
            apikey_fail_mode closed;
            proxy_pass http://127.0.0.1:%%PORT_2%%/content;
        }

        location @closed {
            apikey_fail_mode closed;
            apikey_scope content:read;
            proxy_pass http://127.0.0.1:%%PORT_2%%;
        }

        location /open-scoped {
            apikey_fail_mode open;
            apikey_scope content:read;
            proxy_pass http://127.0.0.1:%%PORT_2%%/content;
        }
    }

    server {
        listen 127.0.0.1:%%PORT_2%%;
        server_name localhost;

        access_log off;

        location /accel {
            add_header X-Accel-Redirect $arg_to;
            return 200 "not redirected\n";
        }

        location / {
            return 200 "content\n";
        }
    }
}

EOF

my $port = $t->port(1);

sub get {
    my ($path, $key) = @_;
    return [http_get($port, $path, defined $key ? { 'X-API-Key' => $key }
                                                : {})];
}

sub status { $_[0][1]{'x-status'} // '(none)' }

my $reader = $t->create_key(rate => undef, scopes => ['content:read']);
my $other = $t->create_key(rate => undef, scopes => ['content:write']);

my @redirects = (
    ['X-Accel-Redirect', '/open-accel?to=/closed'],
    ['error_page', '/open-404'],
    ['try_files', '/open-try'],
    ['try_files to a named location', '/open-named'],
);

###############################################################################
# Redis up: the target's scope applies

for my $case (@redirects) {
    my ($how, $path) = @$case;

    my $r = get($path, $reader->{key});
    is($r->[0], 200, "Redis up, $how into a scoped location, key with it: 200");
    is($r->[2], "content\n", "Redis up, $how: the target's content");
    is(status($r), 'ok', "Redis up, $how: \$apikey_status ok");

    is_problem(get($path, $other->{key}), 403, 'insufficient_scope',
               "Redis up, $how, key lacking the scope: 403");
}

###############################################################################
# Redis down: unverified in the fail-open location, 503 in the target

$t->stop_redis;

my $r = get('/open-scoped', $reader->{key});
is($r->[0], 200, 'Redis down, fail-open location: passes');
is(status($r), 'unverified', 'Redis down, fail-open: status unverified');

for my $case (@redirects, ['error_page, target without a scope',
                           '/open-404-plain'])
{
    my ($how, $path) = @$case;

    $r = get($path, $reader->{key});
    is_problem($r, 503, 'auth_unavailable',
               "Redis down, $how into a fail-closed location: 503");
    is(status($r), 'unavailable', "Redis down, $how: \$apikey_status "
                                  . 'unavailable');
    is($r->[1]{'retry-after'}, 1, "Redis down, $how: Retry-After: 1");
}

# into a fail-open target the request stays unverified

$r = get('/open-accel?to=/open-scoped', $reader->{key});
is($r->[0], 200, 'Redis down, X-Accel-Redirect into a fail-open location: 200');
is(status($r), 'unverified', 'and stays unverified');

is_problem(get('/open-accel?to=/closed'), 401, 'missing_api_key',
           'Redis down, no key: still 401 before any redirect');

$t->log_contains_no($_->{key}, 'redirected keys') for $reader, $other;
$t->error_log_clean;

done_testing;
