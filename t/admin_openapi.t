#!/usr/bin/perl

# docs/openapi.yaml and the handler agree: every route of the handler's
# table is a path and method there, every path and method there is served
# (not 404/405), and each path's 405 Allow lists exactly its methods; the
# documented key object is the one served.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use Test::More;

use ApiKey::Test;
use ApiKey::Admin;

my $root = $ApiKey::Test::ROOT;

###############################################################################
# the document

open my $fh, '<', "$root/docs/openapi.yaml" or die "openapi.yaml: $!";
my $doc = do { local $/; <$fh> };
close $fh;

like($doc, qr/^openapi: 3\.1\.\d+$/m, 'OpenAPI 3.1');

my (%spec, $path, $in_paths);

for (split /\n/, $doc) {
    if (/^(\w+):/) {
        $in_paths = $1 eq 'paths';
        next;
    }

    next unless $in_paths;

    if (/^  (\/\S*):\s*$/) {
        $path = $1;
        $spec{$path} = {};

    } elsif ($path && /^    (get|put|post|patch|delete|head|options):\s*$/) {
        $spec{$path}{uc $1} = 1;
    }
}

ok(scalar keys %spec, 'paths found in openapi.yaml');

###############################################################################
# the handler's route table

open $fh, '<', "$root/admin/ngx_http_apikey_admin.c" or die "admin.c: $!";
my $src = do { local $/; <$fh> };
close $fh;

my %served;

while ($src =~ /\{\s*ngx_string\("(\/[^"]*)"\),\s*NGX_HTTP_(\w+),/g) {
    $served{$1}{$2} = 1;
}

ok(scalar keys %served, 'routes found in the handler');

is_deeply([sort map { my $p = $_; map { "$_ $p" } keys %{$served{$p}} }
           keys %served],
          [sort map { my $p = $_; map { "$_ $p" } keys %{$spec{$p}} }
           keys %spec],
          'the same methods and paths in the handler and in openapi.yaml');

###############################################################################
# what a running nginx serves

my $t = ApiKey::Test->new;
$t->run_redis;

my $tok = write_tokens($t, ops => '*');

$t->run_nginx(admin_config($t));

my $adm = ApiKey::Admin->new($t, $tok->{ops});

my %new_token = (name => 'x', orgs => ['acme'], permissions => ['keys:read']);

for my $p (sort keys %spec) {
    my $k = $p =~ m{^/tokens}
            ? $adm->post('tokens', { %new_token, name => "for $p" })->{json}
            : $adm->create('acme', name => "for $p");
    (my $url = $p) =~ s/\{org\}/acme/;
    $url =~ s/\{id\}/$k->{id}/;
    $url =~ s{^/}{};

    my $r = $adm->request('PUT', $url);
    is($r->{status}, 405, "PUT $p: 405");
    is(join(', ', sort split /,\s*/, $r->{headers}{allow} // ''),
       join(', ', sort keys %{$spec{$p}}),
       "Allow lists exactly the documented methods of $p");

    # served: the request reached its operation (which may still refuse
    # it, as restore does an active key)

    for my $m (sort { ($a eq 'DELETE') <=> ($b eq 'DELETE') || $a cmp $b }
               keys %{$spec{$p}})
    {
        my $body = ($m eq 'POST' && $p =~ /keys$/) ? { name => 'x' }
                 : ($m eq 'POST' && $p eq '/tokens') ? \%new_token
                 : undef;
        $r = $adm->request($m, $url, body => $body);
        ok($r->{status} != 405 && $r->{status} != 404,
           "$m $p is served") or diag("$r->{status} $r->{body}");
        is($r->{status}, $m eq 'POST' && $p =~ /restore$/ ? 400
                       : $m eq 'POST' && $p eq '/tokens' ? 201 : 200,
           "$m $p answers") unless $m eq 'DELETE' || $p =~ /keys$/;
    }
}

# every other shape is no route

for my $p ('orgs/acme/x', 'orgs/acme/keys/k_x/events', 'orgs/acme/events/k_x',
           'orgs/acme/keys/k_x/revoke/k_y', 'orgs/acme/keys/k_x/delete',
           'orgs/acme/keys/k_x/update', 'orgs/acme/keys/k_x/keys',
           'orgs/acme/key/k_x', 'org/acme/keys', 'keys', 'events',
           'orgs/acme/orgs/acme/keys')
{
    is($adm->get($p)->{status}, 404, "GET /admin/$p: no route");
}

###############################################################################
# the key object

my ($required) = $doc =~ /^    Key:\n.*?required: \[([^\]]*)\]/ms;
my @required = sort grep { length } split /[\s,]+/, $required // '';

my $k = $adm->create('acme', name => 'shape');
delete $k->{key};

is_deeply(\@required, [sort keys %$k],
          'the documented key object is the one served');

# the token object

($required) = $doc =~ /^    Token:\n.*?required: \[([^\]]*)\]/ms;
@required = sort grep { length } split /[\s,]+/, $required // '';

my $tk = $adm->post('tokens', { %new_token, name => 'shape' })->{json};
delete $tk->{token};

is_deeply(\@required, [sort keys %$tk],
          'the documented token object is the one served');

$t->error_log_clean;

done_testing;
