#!/usr/bin/perl

# GET orgs/{org}/keys: pages in reverse order of creation, total_count,
# search (case-insensitive substring of the name, or the start of the
# display prefix), status and environment filters, their combinations,
# keys written without the admin API, and 400 invalid_query.

use strict;
use warnings;
use utf8;

use FindBin;
use lib "$FindBin::Bin/lib";

use Test::More;

use ApiKey::Test;
use ApiKey::Admin;

my $t = ApiKey::Test->new;
$t->run_redis;

my $tok = write_tokens($t, ops => '*');

$t->run_nginx(admin_config($t));

my $a = ApiKey::Admin->new($t, $tok->{ops});

my @keys;

for my $i (1 .. 25) {
    push @keys, $a->create('acme', name => sprintf('Key %02d', $i),
                           environment => $i % 5 ? 'production' : 'preview');
}

$a->create('beta', name => 'Key 01 of beta');

sub names { [map { $_->{name} } @{$_[0]{json}{data} || []}] }
sub list { $a->get('orgs/acme/keys' . (@_ ? "?$_[0]" : '')) }

###############################################################################
# pages

my $r = list();
is($r->{status}, 200, 'list: 200');
is_deeply([sort keys %{$r->{json}}], [qw(data page per_page total_count)],
          'data, page, per_page, total_count');
is($r->{json}{total_count}, 25, 'total_count');
is($r->{json}{page}, 1, 'page 1 by default');
is($r->{json}{per_page}, 20, 'per_page 20 by default');
is_deeply(names($r), [map { sprintf('Key %02d', $_) } reverse 6 .. 25],
          'newest first');
ok(!grep({ exists $_->{key} } @{$r->{json}{data}}), 'no raw key in a list');
is_deeply([sort keys %{$r->{json}{data}[0]}],
          [sort qw(id org name description prefix environment scopes
                   rate_limit status created_at created_by updated_at
                   last_used_at expires_at revoked_at meta quota)],
          'key objects');

is_deeply(names(list('page=2')), ['Key 05', 'Key 04', 'Key 03', 'Key 02',
                                  'Key 01'], 'page 2');
is_deeply(names(list('page=3')), [], 'page 3 is empty');
is(list('page=3')->{json}{total_count}, 25, 'with the total');
is_deeply(names(list('per_page=5&page=3')),
          ['Key 15', 'Key 14', 'Key 13', 'Key 12', 'Key 11'],
          'per_page 5, page 3');
is(scalar @{list('per_page=100')->{json}{data}}, 25, 'per_page 100');
is_deeply(names(list('per_page=1')), ['Key 25'], 'per_page 1');
is_deeply(names(list('page=1000000000')), [], 'the last page allowed');
is_deeply(names(list('page=1&')), names(list()), 'an empty parameter');

###############################################################################
# search

is_deeply(names(list('search=key%201')),
          [map { sprintf('Key %02d', $_) } reverse 10 .. 19],
          'search: substring of the name');
is(list('search=KEY+1')->{json}{total_count}, 10,
   'case-insensitive; "+" is a space');
is(list('search=ey%2023')->{json}{total_count}, 1, 'anywhere in the name');
is(list('search=nothing')->{json}{total_count}, 0, 'no match');
is(list('search=')->{json}{total_count}, 25, 'an empty search: everything');

my $p = $keys[6]{prefix};
$r = list('search=' . substr($p, 0, 7));
ok((grep { $_->{id} eq $keys[6]{id} } @{$r->{json}{data}}),
   'search: the start of the display prefix');
is(list("search=$p")->{json}{data}[0]{id}, $keys[6]{id}, 'the whole prefix');
is(list('search=' . substr($p, 3))->{json}{total_count}, 0,
   'not the middle of the prefix');
is(list('search=ak_')->{json}{total_count}, 25, 'ak_ starts every prefix');

$a->create('acme', name => 'Zürich Café ☕');
is(list('search=Z%C3%BCrich')->{json}{total_count}, 1, 'a UTF-8 search');
is(list('search=' . 'caf%C3%A9')->{json}{total_count}, 1,
   'ASCII letters fold case next to non-ASCII ones');

###############################################################################
# status and environment

$a->post("orgs/acme/keys/$keys[$_]{id}/revoke", {}) for 2, 4, 6;

my $old = $t->create_key(org => 'acme', name => 'Key old',
                         expires_at => time - 10);
my $later = $t->create_key(org => 'acme', name => 'Key later',
                           expires_at => time + 3600, env => 'preview');

$r = list('status=revoked');
is($r->{json}{total_count}, 3, 'status=revoked');
is_deeply(names($r), ['Key 07', 'Key 05', 'Key 03'], 'newest first');

$r = list('status=expired');
is_deeply(names($r), ['Key old'],
          'status=expired, a key written without the admin API');
is($r->{json}{data}[0]{status}, 'expired', 'shown as expired');

is(list('status=active')->{json}{total_count}, 28 - 3 - 1,
   'status=active');
is(list()->{json}{total_count}, 28, 'all keys, also those written by hand');

is(list('environment=preview')->{json}{total_count}, 6,
   'environment=preview');
is(list('environment=production')->{json}{total_count}, 22,
   'environment=production');

$r = list('environment=preview&status=active&search=key');
is_deeply(names($r), ['Key later', 'Key 25', 'Key 20', 'Key 15', 'Key 10'],
          'environment, status and search together');

$r = list('environment=preview&status=active&search=key&per_page=2&page=2');
is_deeply(names($r), ['Key 20', 'Key 15'], 'and paged');
is($r->{json}{total_count}, 5, 'total of the filtered list');

$r = list('status=revoked&search=07');
is_deeply(names($r), ['Key 07'], 'status and search');

###############################################################################
# changes show up in filters

$a->patch("orgs/acme/keys/$keys[0]{id}", { name => 'Renamed Thing' });
is(list('search=renamed')->{json}{total_count}, 1, 'a renamed key is found');
is(list('search=key+01')->{json}{total_count}, 0, 'not by its old name');

$a->post("orgs/acme/keys/$keys[2]{id}/restore", {});
is(list('status=revoked')->{json}{total_count}, 2, 'restored: not revoked');

$a->delete("orgs/acme/keys/$keys[4]{id}");
is(list('status=revoked')->{json}{total_count}, 1, 'deleted: gone');
is(list()->{json}{total_count}, 27, 'gone from the plain list');

$r = $a->post("orgs/acme/keys/$keys[8]{id}/rotate", {});
is(list('search=' . $r->{json}{prefix})->{json}{data}[0]{id}, $keys[8]{id},
   'found by the prefix of its new key');

###############################################################################
# org isolation

is($a->get('orgs/beta/keys')->{json}{total_count}, 1, 'beta has one key');
is($a->get('orgs/beta/keys?search=key')->{json}{total_count}, 1,
   'beta search');
is($a->get('orgs/gamma/keys')->{json}{total_count}, 0, 'an empty org');
is($a->get('orgs/gamma/keys?search=x')->{json}{total_count}, 0,
   'an empty org, searched');

###############################################################################
# invalid_query

for my $q ('page=0', 'page=-1', 'page=abc', 'page=01', 'page=1.5',
           'page=1000000001', 'page=', 'per_page=0', 'per_page=101',
           'per_page=x', 'status=gone', 'status=', 'status=Active',
           'environment=staging', 'environment=', 'foo=1', 'page=1&page=2',
           'search=a&search=b', 'search=' . ('x' x 101), 'search=a%01b',
           'search=%FF', 'search=%C3', 'Page=1', 'search=%7F')
{
    is_admin_problem(list($q), 400, 'invalid_query', "invalid_query: $q");
}

is(list('search=' . ('%C3%A9' x 100))->{status}, 200,
   'a search of 100 characters');

$t->error_log_clean;

done_testing;
