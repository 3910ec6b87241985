#!/usr/bin/perl

# apikey_admin_console: the console's files at the admin location's own
# path, without a token: Content-Type, Content-Security-Policy, nosniff,
# caching (ETag and 304, no-cache for the page, immutable for a file asked
# for with the current version), HEAD, 405 for other methods; the admin API
# beside it unchanged; a location without the directive as before; where
# the directive is refused.  t/console.t drives the console in a browser.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use Test::More;

use ApiKey::Test;
use ApiKey::Admin;

my $CSP = "default-src 'none'; script-src 'self'; style-src 'self'; "
          . "connect-src 'self'; img-src 'self' data:; "
          . "frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

my $t = ApiKey::Test->new;
$t->run_redis;

my $tok = write_tokens($t, ops => '*');

$t->run_nginx(admin_config($t, admin => 'apikey_admin_console on;',
                           server => <<'EOF'));

        location /plain/ {
            apikey_admin;
        }

        location /noslash {
            apikey_admin;
            apikey_admin_console on;
        }
EOF

my $port = $t->port(1);
my $a = ApiKey::Admin->new($t, $tok->{ops});

sub get {
    my ($path, $headers) = @_;
    return http_get($port, $path, $headers);
}

sub req {
    my ($method, $path, $body) = @_;
    my $r = "$method $path HTTP/1.0\r\nHost: localhost\r\n";
    $r .= 'Content-Length: ' . length($body) . "\r\n"
          . "Content-Type: application/json\r\n" if defined $body;
    return http_request($port, "$r\r\n" . ($body // ''));
}

###############################################################################
# the page

my ($st, $h, $body) = get('/admin/');

is($st, 200, 'GET /admin/ without a token: 200');
is($h->{'content-type'}, 'text/html; charset=utf-8', 'the page is HTML');
is($h->{'content-security-policy'}, $CSP, 'the strict CSP');
is($h->{'x-content-type-options'}, 'nosniff', 'nosniff');
is($h->{'referrer-policy'}, 'no-referrer', 'no referrer');
is($h->{'cache-control'}, 'no-cache', 'the page is revalidated every time');
like($h->{etag} // '', qr/^"\d+-\d+"$/, 'the page has an ETag');
is($h->{'content-length'}, length $body, 'Content-Length');
like($body, qr/^<!doctype html>/i, 'an HTML document');
ok(!exists $h->{'www-authenticate'}, 'no token asked for');

my ($version) = $body =~ m{<script src="console\.js\?v=(\d+)" defer>};
ok(defined $version, 'the page names console.js with the version');
like($body, qr{<link rel="stylesheet" href="console\.css\?v=$version">},
     'and console.css with the same version');

# no inline script or style: what the CSP would refuse anyway

my @scripts = $body =~ /(<script\b[^>]*>)/gi;
is(scalar(grep { !/\bsrc=/ } @scripts), 0, 'no inline <script>');
unlike($body, qr/<style\b/i, 'no <style> element');
unlike($body, qr/\sstyle=/i, 'no style attribute');
unlike($body, qr/\son[a-z]+=/i, 'no event handler attribute');
unlike($body, qr{https?://}, 'nothing from another host');

my $etag = $h->{etag};

($st, $h, $body) = get('/admin/', { 'If-None-Match' => $etag });
is($st, 304, 'If-None-Match with the ETag: 304');
is($body, '', '304 has no body');

($st, $h, $body) = get('/admin/', { 'If-None-Match' => '"0-0"' });
is($st, 200, 'another ETag: 200');

($st, $h, $body) = req('HEAD', '/admin/');
is($st, 200, 'HEAD /admin/: 200');
is($body, '', 'HEAD has no body');
is($h->{'content-security-policy'}, $CSP, 'HEAD has the CSP');

###############################################################################
# the script and the style sheet

my %type = ('console.js' => 'text/javascript; charset=utf-8',
            'console.css' => 'text/css; charset=utf-8');

for my $f (sort keys %type) {
    ($st, $h, $body) = get("/admin/$f");
    is($st, 200, "GET /admin/$f: 200");
    is($h->{'content-type'}, $type{$f}, "$f: Content-Type");
    is($h->{'content-security-policy'}, $CSP, "$f: CSP");
    is($h->{'x-content-type-options'}, 'nosniff', "$f: nosniff");
    is($h->{'cache-control'}, 'no-cache',
       "$f without the version: revalidated");
    like($h->{etag} // '', qr/^"\d+-\d+"$/, "$f: ETag");
    ok(length $body > 1000, "$f: its content");

    my $e = $h->{etag};

    ($st, $h) = get("/admin/$f?v=$version");
    is($st, 200, "$f?v=version: 200");
    is($h->{'cache-control'}, 'public, max-age=31536000, immutable',
       "$f with the current version: cached for good");
    is($h->{etag}, $e, "$f: the same ETag");

    ($st, $h) = get("/admin/$f?v=1");
    is($h->{'cache-control'}, 'no-cache', "$f with another version: "
       . 'revalidated');

    ($st, $h, $body) = get("/admin/$f", { 'If-None-Match' => $e });
    is($st, 304, "$f: 304 for its ETag");

    for my $m (qw(POST PUT PATCH DELETE OPTIONS)) {
        my $r = $a->request($m, $f, token => undef,
                            $m eq 'POST' ? (body => {}) : ());
        is_admin_problem($r, 405, 'method_not_allowed', "$m /admin/$f");
        is($r->{headers}{allow}, 'GET, HEAD', "$m /admin/$f: Allow");
    }
}

($st, $h, $body) = get('/admin/console.js');

# the script builds the page with textContent; storage is this tab's only
# (its comments may name what it does not do)

$body =~ s{/\*.*?\*/}{}gs;

unlike($body, qr/\.innerHTML|\.outerHTML\s*=|insertAdjacentHTML|document\.write
                 |\beval\(|new\s+Function/x,
       'console.js: no HTML from strings, no eval');
unlike($body, qr/localStorage|document\.cookie/,
       'console.js: no localStorage, no cookie');
like($body, qr/sessionStorage/, 'console.js: the token in sessionStorage');

my $r = $a->request('POST', '', token => undef, body => {});
is_admin_problem($r, 405, 'method_not_allowed', 'POST /admin/');

###############################################################################
# what is not the console is the admin API, as before

is_admin_problem($a->get('index.html', token => undef), 401, 'unauthorized',
                 '/admin/index.html is no file of the console');
is_admin_problem($a->get('index.html'), 404, 'not_found',
                 '/admin/index.html with a token: no route');
is_admin_problem($a->get('console.jsx', token => undef), 401,
                 'unauthorized', '/admin/console.jsx: the admin API');
is_admin_problem($a->get('console.js/x', token => undef), 401,
                 'unauthorized', '/admin/console.js/x: the admin API');
is_admin_problem($a->get('orgs/acme/keys', token => undef), 401,
                 'unauthorized', 'the API without a token: 401');

$r = $a->get('orgs/acme/keys');
is($r->{status}, 200, 'the API with a token: 200');
ok(!exists $r->{headers}{'content-security-policy'},
   'API answers are not the console\'s');
is($r->{headers}{'cache-control'}, 'no-store', 'API answers: no-store');

# apikey_admin without apikey_admin_console: as before

my $plain = ApiKey::Admin->new($t, $tok->{ops}, base => '/plain/');

is_admin_problem($plain->get('', token => undef), 401, 'unauthorized',
                 'console off: GET /plain/ wants a token');
is_admin_problem($plain->get(''), 404, 'not_found',
                 'console off: GET /plain/ with a token is no route');
is_admin_problem($plain->get('console.js', token => undef), 401,
                 'unauthorized', 'console off: /plain/console.js: 401');
is($plain->get('orgs/acme/keys')->{status}, 200,
   'console off: the API works');

# a location without a trailing slash: its path gets one

($st, $h) = get('/noslash');
is($st, 301, 'GET /noslash: 301');
like($h->{location} // '', qr{^http://[^/]+/noslash/$},
     'to /noslash/');

($st, $h, $body) = get('/noslash/');
is($st, 200, 'GET /noslash/: the page');
like($body, qr/^<!doctype html>/i, 'the page');

($st, $h) = get('/noslash/console.css');
is($h->{'content-type'}, 'text/css; charset=utf-8',
   '/noslash/console.css');

is_admin_problem(ApiKey::Admin->new($t, undef, base => '/noslash')
                     ->request('POST', '', body => {}),
                 401, 'unauthorized', 'POST /noslash: the admin API');

###############################################################################
# where the directive is refused

my %bad = (
    'a location without apikey_admin' => [<<'EOF',
        location /c/ {
            apikey_admin_console on;
        }
EOF
        qr/"apikey_admin_console" requires "apikey_admin"/],
    'a regex location' => [<<'EOF',
        location ~ ^/r/ {
            apikey_admin;
            apikey_admin_console on;
        }
EOF
        qr/"apikey_admin_console" directive needs a prefix location/],
    'an exact location' => [<<'EOF',
        location = /e/ {
            apikey_admin;
            apikey_admin_console on;
        }
EOF
        qr/"apikey_admin_console" directive needs a prefix location/],
    'the server level' => [<<'EOF',
        apikey_admin_console on;
EOF
        qr/"apikey_admin_console" directive is not allowed here/],
);

for my $name (sort keys %bad) {
    my ($rc, $out) = $t->nginx_test(admin_config($t,
                                                 server => $bad{$name}[0]));
    isnt($rc, 0, "nginx -t refuses apikey_admin_console in $name");
    like($out, $bad{$name}[1], "$name: the reason");
}

my ($rc, $out) = $t->nginx_test(admin_config($t, admin =>
                                             'apikey_admin_console off;'));
is($rc, 0, 'apikey_admin_console off is accepted') or diag($out);

# a location inside the admin location inherits neither

($rc, $out) = $t->nginx_test(admin_config($t, admin => <<'EOF'));
            apikey_admin_console on;

            location /admin/inner/ {
                return 204;
            }
EOF
is($rc, 0, 'a nested location under the console is accepted') or diag($out);

$t->error_log_clean;

done_testing;
