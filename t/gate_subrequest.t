#!/usr/bin/perl

# apikey on holds in subrequests, which nginx runs without the access
# phase: auth_request to a gatekept location authorizes another one; SSI
# includes and mirrors of a gatekept location are checked; a subrequest of
# a main request that passed the same check reuses its verdict and takes
# no second token.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use File::Path qw(make_path);
use Test::More;

use ApiKey::Test;

my $t = ApiKey::Test->new;
$t->run_redis;

# the SSI pages, in the prefix's html directory

make_path($t->dir . '/nginx/html');
chmod 0755, $t->dir . '/nginx', $t->dir . '/nginx/html';

for (['ssi.html', '/sub'], ['ssi-admin.html', '/sub-admin']) {
    my ($file, $uri) = @$_;
    open my $fh, '>', $t->dir . "/nginx/html/$file" or die "$file: $!";
    print $fh "<!--# include virtual=\"$uri\" -->|"
              . "<!--# include virtual=\"$uri\" -->\n";
    close $fh;
    chmod 0644, $t->dir . "/nginx/html/$file";
}

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

    log_format uri '$request_uri';

    server {
        listen 127.0.0.1:%%PORT_1%%;
        server_name localhost;

        root %%PREFIX%%/html;

        # auth_request: the location itself is not gatekept

        location /protected {
            auth_request /auth;
            auth_request_set $sub $apikey_status;
            add_header X-Sub $sub always;
            proxy_pass http://127.0.0.1:%%PORT_2%%/echo;
        }

        location /protected-key {
            auth_request /auth;
            proxy_pass http://127.0.0.1:%%PORT_2%%/key;
        }

        location /admin-only {
            auth_request /auth-admin;
            auth_request_set $sub $apikey_status;
            add_header X-Sub $sub always;
            proxy_pass http://127.0.0.1:%%PORT_2%%/echo;
        }

        location /open-auth {
            auth_request /auth-open;
            auth_request_set $sub $apikey_status;
            add_header X-Sub $sub always;
            proxy_pass http://127.0.0.1:%%PORT_2%%/echo;
        }

        location = /auth {
            internal;
            apikey on;
            empty_gif;
        }

        location = /auth-admin {
            internal;
            apikey on;
            apikey_scope admin;
            empty_gif;
        }

        location = /auth-open {
            internal;
            apikey on;
            apikey_fail_mode open;
            empty_gif;
        }

        # the main request gatekept, and its auth_request too

        location /both {
            apikey on;
            auth_request /auth;
            proxy_pass http://127.0.0.1:%%PORT_2%%/echo;
        }

        # SSI

        location /ssi {
            apikey on;
            ssi on;
            try_files /ssi.html =404;
        }

        location /ssi-admin {
            apikey on;
            ssi on;
            try_files /ssi-admin.html =404;
        }

        location /ssi-open {
            ssi on;
            try_files /ssi.html =404;
        }

        location /sub {
            apikey on;
            proxy_pass http://127.0.0.1:%%PORT_2%%/part;
        }

        location /sub-admin {
            apikey on;
            apikey_scope admin;
            proxy_pass http://127.0.0.1:%%PORT_2%%/part;
        }

        # mirror

        location /mirrored {
            mirror /m;
            proxy_pass http://127.0.0.1:%%PORT_2%%/echo;
        }

        location = /m {
            internal;
            apikey on;
            proxy_pass http://127.0.0.1:%%PORT_2%%/hit;
        }
    }

    server {
        listen 127.0.0.1:%%PORT_2%%;
        server_name localhost;

        access_log off;

        location /echo {
            return 200 "echo\n";
        }

        location /part {
            return 200 "part";
        }

        location /key {
            return 200 "key=$http_x_api_key\n";
        }

        location /hit {
            access_log hits.log uri;
            return 204;
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

sub sub_status { $_[0][1]{'x-sub'} // '(none)' }

my $ok = $t->create_key(rate => undef, scopes => ['content:read']);
my $admin = $t->create_key(rate => undef, scopes => ['admin']);
my $revoked = $t->create_key(revoked => 1);

###############################################################################
# auth_request

my $r = get('/protected', $ok->{key});
is($r->[0], 200, 'auth_request, valid key: 200');
is($r->[2], "echo\n", 'auth_request, valid key: the content');
is(sub_status($r), 'ok', 'auth_request, valid key: subrequest status ok');

$r = get('/protected-key', $ok->{key});
is_deeply([$r->[0], $r->[2]], [200, "key=\n"],
          'auth_request: the key is hidden from the protected upstream too');

$r = get('/protected');
is($r->[0], 401, 'auth_request, no key: 401');
is($r->[1]{'www-authenticate'}, 'ApiKey header="X-API-Key"',
   'auth_request, no key: the challenge is passed on');
is(sub_status($r), 'missing', 'auth_request, no key: status missing');

$r = get('/protected', $t->raw_key);
is($r->[0], 401, 'auth_request, unknown key: 401');
is(sub_status($r), 'invalid', 'auth_request, unknown key: status invalid');

$r = get('/protected', 'not-a-key');
is($r->[0], 401, 'auth_request, malformed key: 401');

$r = get('/protected', $revoked->{key});
is($r->[0], 401, 'auth_request, revoked key: 401');
is(sub_status($r), 'revoked', 'auth_request, revoked key: status revoked');

$r = get('/admin-only', $ok->{key});
is($r->[0], 403, 'auth_request to a scoped location, key lacking it: 403');
is(sub_status($r), 'forbidden', 'lacking the scope: status forbidden');

is(get('/admin-only', $admin->{key})->[0], 200,
   'auth_request to a scoped location, key holding it: 200');

# one token per request through auth_request

my $three = $t->create_key(rate => '1r/m', burst => 3);
my @st = map { get('/protected', $three->{key})->[0] } 1 .. 3;
is_deeply(\@st, [200, 200, 200], 'auth_request, burst-3 key: 3 pass');

$r = get('/protected', $three->{key});
isnt($r->[0], 200, 'auth_request, burst-3 key: the 4th is refused');
is(sub_status($r), 'limited', 'the 4th: subrequest status limited');

# main request and its auth_request gatekept: one token

my $two = $t->create_key(rate => '1r/m', burst => 2);
@st = map { get('/both', $two->{key})->[0] } 1 .. 3;
is_deeply(\@st, [200, 200, 429],
          'gatekept location with auth_request to a gatekept one: '
          . 'one token per request');
is(get('/both')->[0], 401, 'gatekept with auth_request, no key: 401');

###############################################################################
# SSI

$two = $t->create_key(rate => '1r/m', burst => 2);

$r = get('/ssi', $two->{key});
is($r->[0], 200, 'SSI, burst-2 key: 200');
is($r->[2], "part|part\n", 'SSI: both includes render');

$r = get('/ssi', $two->{key});
is($r->[0], 200, 'SSI, burst-2 key: the second page passes too');
is($r->[2], "part|part\n", 'SSI: and renders');

is_problem(get('/ssi', $two->{key}), 429, 'rate_limited',
           'SSI, burst-2 key: the third page is limited (one token a page)');

is_problem(get('/ssi'), 401, 'missing_api_key', 'SSI page, no key: 401');

# held to the included location's settings

$r = get('/ssi-admin', $ok->{key});
is($r->[0], 200, 'SSI page including a scoped location: the page passes');
unlike($r->[2], qr/part/, 'the included part lacking the scope: not served');
like($r->[2], qr/"insufficient_scope"/, 'but refused');

like(get('/ssi-admin', $admin->{key})->[2], qr/^part\|part$/m,
     'the included part, key holding the scope: served');

# an ungated page including a gatekept location

$r = get('/ssi-open');
is($r->[0], 200, 'ungated SSI page, no key: the page is served');
unlike($r->[2], qr/part/, 'ungated SSI page, no key: includes not served');
like($r->[2], qr/"missing_api_key"/, 'but refused');

$r = get('/ssi-open', $t->raw_key);
unlike($r->[2], qr/part/, 'ungated SSI page, unknown key: includes refused');

is(get('/ssi-open', $ok->{key})->[2], "part|part\n",
   'ungated SSI page, valid key: includes served');

###############################################################################
# mirror

sub hits { [split /\n/, $t->read_file('hits.log')] }

for my $case (['none', undef], ['malformed', 'not-a-key'],
              ['unknown', $t->raw_key], ['revoked', $revoked->{key}])
{
    my ($what, $key) = @$case;
    is(get("/mirrored?case=$what", $key)->[0], 200,
       "mirror, $what key: the ungated request is served");
}

is(get('/mirrored?case=valid', $ok->{key})->[0], 200,
   'mirror, valid key: served');

ok(wait_for(5, sub { grep { /case=valid/ } @{hits()} }),
   'mirror, valid key: the mirror target is reached');
is_deeply(hits(), ['/hit?case=valid'],
          'mirror, refused keys: the mirror target is never reached')
    or diag(explain hits());

###############################################################################
# Redis stopped: fail mode closed refuses, open passes unverified

$t->stop_redis;

$r = get('/protected', $ok->{key});
isnt($r->[0], 200, 'Redis stopped, auth_request, fail mode closed: refused');
is(sub_status($r), 'unavailable', 'subrequest status unavailable');

$r = get('/open-auth', $ok->{key});
is($r->[0], 200, 'Redis stopped, auth_request, fail mode open: 200');
is(sub_status($r), 'unverified', 'subrequest status unverified');

is(get('/open-auth')->[0], 401,
   'Redis stopped, fail mode open: no key is still 401');

$t->log_contains_no($_->{key}, 'subrequest keys')
    for $ok, $admin, $revoked, $three, $two;
$t->error_log_clean;

done_testing;
