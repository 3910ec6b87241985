#!/usr/bin/perl

# Admin authentication (SPEC section 6): bearer tokens checked against the
# hashes of apikey_admin_tokens before anything else, 401 unauthorized with
# WWW-Authenticate: Bearer, 403 forbidden_org for a token of other
# organizations, the token name as actor; the token file's syntax at
# nginx -t; and no token or hash in any log.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use Test::More;

use ApiKey::Test;
use ApiKey::Admin;

my $t = ApiKey::Test->new;
$t->run_redis;

my $tok = write_tokens($t, ops => '*', 'acme-ci' => 'acme',
                       'two.orgs' => 'acme,beta');

$t->run_nginx(admin_config($t));

my $port = $t->port(1);
my $ops = ApiKey::Admin->new($t, $tok->{ops});
my $acme = ApiKey::Admin->new($t, $tok->{'acme-ci'});
my $two = ApiKey::Admin->new($t, $tok->{'two.orgs'});
my $none = ApiKey::Admin->new($t, undef);

###############################################################################
# 401 first, on every path and method

my @paths = ('orgs/acme/keys', 'orgs/acme/keys/k_x',
             'orgs/acme/keys/k_x/revoke', 'orgs/acme/events', 'nope', '',
             'orgs/ac%20me/keys');

for my $path (@paths) {
    for my $m (qw(GET POST PATCH DELETE PUT)) {
        my $r = $none->request($m, $path, body => {});
        is($r->{status}, 401, "no token: $m /admin/$path is 401");
    }
}

my $r = $none->get('orgs/acme/keys');
is_admin_problem($r, 401, 'unauthorized', 'no token');
is($r->{headers}{'www-authenticate'}, 'Bearer', 'WWW-Authenticate: Bearer');

is_admin_problem($none->get('orgs/acme/keys',
                            headers => { Authorization => 'Bearer nope' }),
                 401, 'unauthorized', 'an unknown token');
is_admin_problem($none->get('orgs/acme/keys',
                            headers => { Authorization =>
                                             "Basic $tok->{ops}" }),
                 401, 'unauthorized', 'another scheme');
is_admin_problem($none->get('orgs/acme/keys',
                            headers => { Authorization => 'Bearer ' }),
                 401, 'unauthorized', 'an empty token');
is_admin_problem($none->get('orgs/acme/keys',
                            headers => { Authorization => 'Bearer'
                                                          . $tok->{ops} }),
                 401, 'unauthorized', 'no space after Bearer');
is_admin_problem($none->get('orgs/acme/keys',
                            headers => { Authorization => 'Bearer '
                                         . substr($tok->{ops}, 0, -1) }),
                 401, 'unauthorized', 'a token one character short');
is_admin_problem($none->get('orgs/acme/keys',
                            headers => { Authorization => 'Bearer '
                                         . $tok->{ops} . 'x' }),
                 401, 'unauthorized', 'a token one character long');
is_admin_problem($none->get('orgs/acme/keys',
                            headers => { Authorization => 'Bearer '
                                         . ('x' x 5000) }),
                 401, 'unauthorized', 'a very long token');

# an unknown token does not get to see which routes exist

is_admin_problem($none->request('PUT', 'orgs/acme/keys',
                                headers => { Authorization => 'Bearer x' }),
                 401, 'unauthorized', 'wrong token before 405');

for my $scheme ('bearer', 'BEARER', 'BeArEr') {
    is($none->get('orgs/acme/keys',
                  headers => { Authorization => "$scheme $tok->{ops}" })
         ->{status}, 200, "scheme \"$scheme\" is case-insensitive");
}

is($none->get('orgs/acme/keys',
              headers => { Authorization => "Bearer   $tok->{ops}  " })
     ->{status}, 200, 'spaces around the token');

###############################################################################
# organizations

is($ops->get('orgs/beta/keys')->{status}, 200, '"*" token: any org');
is($acme->get('orgs/acme/keys')->{status}, 200, 'acme token on acme');
is($two->get('orgs/beta/keys')->{status}, 200, 'two-org token on beta');

my $beta_key = $ops->create('beta', name => 'beta key');

for my $req (['GET', 'orgs/beta/keys'], ['POST', 'orgs/beta/keys'],
             ['GET', "orgs/beta/keys/$beta_key->{id}"],
             ['PATCH', "orgs/beta/keys/$beta_key->{id}"],
             ['DELETE', "orgs/beta/keys/$beta_key->{id}"],
             ['POST', "orgs/beta/keys/$beta_key->{id}/revoke"],
             ['POST', "orgs/beta/keys/$beta_key->{id}/restore"],
             ['POST', "orgs/beta/keys/$beta_key->{id}/rotate"],
             ['GET', 'orgs/beta/events'])
{
    is_admin_problem($acme->request(@$req, body => { name => 'x' }), 403,
                     'forbidden_org', "acme token: $req->[0] $req->[1]");
}

is_admin_problem($acme->get('orgs/acmex/keys'), 403, 'forbidden_org',
                 'org names match exactly');

is($ops->get("orgs/beta/keys/$beta_key->{id}")->{json}{status}, 'active',
   'the beta key was not touched');

is_admin_problem($acme->get("orgs/acme/keys/$beta_key->{id}"), 404,
                 'key_not_found', 'a beta key id under acme is not found');
is_admin_problem($ops->get("orgs/acme/keys/$beta_key->{id}"), 404,
                 'key_not_found', 'also for a "*" token');
is_admin_problem($ops->post("orgs/acme/keys/$beta_key->{id}/revoke", {}),
                 404, 'key_not_found', 'revoke across orgs');
is_admin_problem($ops->delete("orgs/acme/keys/$beta_key->{id}"), 404,
                 'key_not_found', 'delete across orgs');

my ($st) = gate($port, $beta_key->{key});
is($st, 200, 'the beta key still works');

###############################################################################
# the token's name is the actor

my $k = $acme->create('acme', name => 'by ci');
is($k->{created_by}, 'acme-ci', 'created_by: the token name');

$acme->post("orgs/acme/keys/$k->{id}/revoke", {});
my $ev = $ops->get('orgs/acme/events')->{json}{data};
is($ev->[0]{actor}, 'acme-ci', 'event actor: the token name');

###############################################################################
# the token file at nginx -t

my $base = admin_config($t);

my @cases = (
    ["ops:" . ('a' x 64) . ":*\n# comment\n\n  \r\n", 0, 'comments, blanks'],
    ["ops:" . ('A' x 64) . ":acme\r\n", 0, 'CRLF and uppercase hex'],
    ["ops:" . ('a' x 63) . ":*\n", 1, 'a short hash'],
    ["ops:" . ('g' x 64) . ":*\n", 1, 'a hash that is not hex'],
    ["ops:" . ('a' x 64) . "\n", 1, 'no orgs'],
    ["o ps:" . ('a' x 64) . ":*\n", 1, 'a space in the name'],
    [":" . ('a' x 64) . ":*\n", 1, 'an empty name'],
    ["ops:" . ('a' x 64) . ":acme,,beta\n", 1, 'an empty org'],
    ["ops:" . ('a' x 64) . ":acme beta\n", 1, 'orgs with a space'],
    ["ops:" . ('a' x 64) . ":*\nops:" . ('b' x 64) . ":*\n", 1,
     'a repeated name'],
    ["a:" . ('a' x 64) . ":*\nb:" . ('a' x 64) . ":*\n", 1,
     'a repeated hash'],
    ["# nothing\n", 1, 'no token'],
);

for my $c (@cases) {
    my $f = $t->dir . '/tokens-case';
    open my $fh, '>', $f or die;
    print $fh $c->[0];
    close $fh;

    (my $conf = $base) =~ s{apikey_admin_tokens \S+;}{apikey_admin_tokens $f;};
    my ($rc, $out) = $t->nginx_test($conf);

    if ($c->[1]) {
        isnt($rc, 0, "nginx -t fails: $c->[2]");
        like($out, qr/token/, 'and says why') or diag($out);
        unlike($out, qr/[0-9a-fA-F]{40}/, 'without printing a hash');

    } else {
        is($rc, 0, "nginx -t passes: $c->[2]") or diag($out);
    }
}

(my $conf = $base) =~ s{apikey_admin_tokens \S+;}
                       {apikey_admin_tokens /nonexistent/tokens;};
my ($rc, $out) = $t->nginx_test($conf);
isnt($rc, 0, 'a missing token file fails nginx -t');
like($out, qr{/nonexistent/tokens}, 'naming the file');

($conf = $base) =~ s{apikey_admin_tokens \S+;}{};
($rc, $out) = $t->nginx_test($conf);
isnt($rc, 0, 'apikey_admin without apikey_admin_tokens fails');
like($out, qr/apikey_admin_tokens/, 'naming the directive');

($conf = $base) =~ s{apikey_redis \S+;}{};
$conf =~ s{\s+apikey on;}{};
($rc, $out) = $t->nginx_test($conf);
isnt($rc, 0, 'apikey_admin without apikey_redis fails');
like($out, qr/apikey_redis/, 'naming apikey_redis');

###############################################################################
# no secret in the logs

for my $name (sort keys %$tok) {
    $t->log_contains_no($tok->{$name}, "token $name");
}

$t->log_contains_no($beta_key->{key}, 'a created key');
$t->error_log_clean;

done_testing;
