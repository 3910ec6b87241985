#!/usr/bin/perl

# Routing of the admin location: paths relative to the location, 404
# not_found for anything that is no route (including org or id outside
# ^[A-Za-z0-9._-]{1,64}$), 405 method_not_allowed with Allow, and the
# admin API in a location without a trailing slash and in a regex
# location.

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

$t->run_nginx(admin_config($t, server => <<'EOF'));

        location /noslash {
            apikey_admin;
        }

        location ~ ^/v(\d+)/admin/ {
            apikey_admin;
        }
EOF

my $a = ApiKey::Admin->new($t, $tok->{ops});
my $k = $a->create('acme', name => 'route test');
my $id = $k->{id};

###############################################################################
# 404 not_found

my @nf = ('', 'orgs', 'orgs/', 'orgs/acme/', 'orgs/acme/x', 'orgs/acme/keys/',
          'orgs/acme/key', 'orgs/acme/Keys', "orgs/acme/keys/$id/",
          "orgs/acme/keys/$id/revokee", "orgs/acme/keys/$id/revoke/x",
          "orgs/acme/keys/$id/x", 'orgs/acme/events/x', 'orgs/acme/eventsx',
          'acme/keys', 'xorgs/acme/keys', 'orgs/acme/keys/a/b/c/d',
          'orgs/ac%20me/keys', 'orgs/ac!me/keys', 'orgs/ac%2Fme/keys',
          'orgs/' . ('a' x 65) . '/keys', "orgs/acme/keys/k_\%C3\%A9",
          'orgs/acme/keys/' . ('a' x 65));

for my $p (@nf) {
    is_admin_problem($a->get($p), 404, 'not_found', "GET /admin/$p");
}

is($a->get('orgs/' . ('a' x 64) . '/keys')->{status}, 200,
   'an org of 64 characters');
is($a->get('orgs/A.b_c-9/keys')->{status}, 200, 'an org of every class');

is_admin_problem($a->get('orgs/acme/keys/' . ('a' x 64)), 404,
                 'key_not_found', 'an id of 64 characters is a key route');
is_admin_problem($a->get('orgs/acme/keys/k_nope'), 404, 'key_not_found',
                 'an unknown id is key_not_found');

###############################################################################
# 405 with Allow

my @allow = (
    ['orgs/acme/keys', 'GET, POST', [qw(PUT PATCH DELETE HEAD OPTIONS)]],
    ["orgs/acme/keys/$id", 'GET, PATCH, DELETE', [qw(POST PUT OPTIONS)]],
    ["orgs/acme/keys/$id/revoke", 'POST', [qw(GET PUT DELETE PATCH)]],
    ["orgs/acme/keys/$id/restore", 'POST', [qw(GET DELETE)]],
    ["orgs/acme/keys/$id/rotate", 'POST', [qw(GET PATCH)]],
    ['orgs/acme/events', 'GET', [qw(POST DELETE PATCH)]],
);

for my $c (@allow) {
    for my $m (@{$c->[2]}) {
        my $r = $a->request($m, $c->[0]);

        if ($m eq 'HEAD') {
            is($r->{status}, 405, "HEAD /admin/$c->[0]: 405");
            is($r->{headers}{allow}, $c->[1], 'with Allow');
            next;
        }

        is_admin_problem($r, 405, 'method_not_allowed', "$m /admin/$c->[0]");
        is($r->{headers}{allow}, $c->[1], "Allow: $c->[1]");
    }
}

is($a->get("orgs/acme/keys/$id")->{json}{status}, 'active',
   'nothing was changed by refused methods');

###############################################################################
# other locations

my $n = ApiKey::Admin->new($t, $tok->{ops}, base => '/noslash/');
is($n->get("orgs/acme/keys/$id")->{status}, 200,
   'location without a trailing slash');

my $rx = ApiKey::Admin->new($t, $tok->{ops}, base => '/v1/admin/');
is($rx->get("orgs/acme/keys/$id")->{status}, 200, 'regex location');
is_admin_problem($rx->get('orgs/acme/x'), 404, 'not_found',
                 'regex location: no route');

# in a regex location the route may follow other path segments: an encoded
# CR LF among them must not reach the Location header

my $crlf = ApiKey::Admin->new($t, $tok->{ops},
                              base => '/v1/admin/x%0d%0aX-Injected:%20yes/');
my $r = $crlf->post('orgs/acme/keys', { name => 'crlf' });
is($r->{status}, 201, 'regex location: created under an odd path');
is($r->{headers}{'x-injected'}, undef, 'no header injected via Location');
like($r->{headers}{location} // '', qr{^/v1/admin/x%0d%0aX-Injected:%20yes/orgs/acme/keys/k_\w{22}$}i,
     'Location: the path of the regex location, escaped');

$t->error_log_clean;

done_testing;
