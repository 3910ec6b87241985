#!/usr/bin/perl

# GET orgs/{org}/keys?name_prefix=: the keys whose name starts with a text
# (ASCII letters case-folded, as search), from the organization's name
# index, in the order of their names: the same keys as a walk of every
# key finds, in pages; kept by renames, revocations and deletes; rebuilt
# for an organization that has no name index (made before it); and 400
# invalid_query for a bad text or a combination with another filter.

use strict;
use warnings;
use utf8;

use FindBin;
use lib "$FindBin::Bin/lib";

use Test::More;
use Encode qw(encode_utf8);

use ApiKey::Test;
use ApiKey::Admin;

my $t = ApiKey::Test->new;
$t->run_redis;

my $tok = write_tokens($t, ops => '*');

$t->run_nginx(admin_config($t));

my $adm = ApiKey::Admin->new($t, $tok->{ops});

# names that share starts, in several cases, with non-ASCII letters

my @words = ('WordPress', 'wordpress', 'Word', 'work', 'Über', 'über app',
             'CI deploy', 'ci', 'Ci Nightly', 'a', 'ab', 'abc', 'abc d',
             'ключ', 'Ключ 2', 'x' x 100);
my %name;

for my $i (0 .. 47) {
    my $n = $words[$i % @words] . ($i < @words ? '' : " $i");
    $n = substr($n, 0, 100);
    my $k = $adm->create('acme', name => $n);
    $name{$k->{id}} = $n;
}

$adm->create('other', name => 'WordPress elsewhere');

# what a walk of every key finds: names starting with the prefix, ASCII
# letters folded, ordered by folded name, then id

sub escape { join '', map { sprintf '%%%02X', ord } split //, encode_utf8($_[0]) }

sub fold { my $s = encode_utf8($_[0]); $s =~ tr/A-Z/a-z/; $s }

sub expected {
    my ($prefix) = @_;
    my $p = fold($prefix);

    return [map { $_->[1] }
            sort { $a->[0] cmp $b->[0] }
            map { [fold($name{$_}) . "\t" . $_, $_] }
            grep { index(fold($name{$_}), $p) == 0 } keys %name];
}

# every page of a name_prefix list: (ids, totals seen)

sub listed {
    my ($prefix, $per) = @_;
    my (@ids, %totals);

    for my $page (1 .. 100) {
        my $r = $adm->get('orgs/acme/keys?name_prefix='
                          . escape($prefix)
                          . "&per_page=$per&page=$page");
        return (undef, $r->{body}) unless $r->{status} == 200;
        $totals{$r->{json}{total_count}} = 1;
        last unless @{$r->{json}{data}};
        push @ids, map { $_->{id} } @{$r->{json}{data}};
    }

    return (\@ids, join(',', sort keys %totals));
}

sub same {
    my ($prefix, $per, $what) = @_;
    my $want = expected($prefix);
    my ($ids, $totals) = listed($prefix, $per);

    is_deeply($ids, $want, "$what: the keys, in name order")
        or diag(explain([map { $name{$_} } @{$ids || []}]), $totals);
    is($totals, scalar(@$want), "$what: total_count " . scalar(@$want));
}

# the name index as the changes left it, before a list could rebuild it

sub indexed {
    my ($what) = @_;
    is_deeply([sort @{$t->redis('ZRANGE', 'apikey:org:acme:idx:names', 0,
                                -1)}],
              [sort map { fold($name{$_}) . "\t$_" } keys %name],
              "$what: the name index holds each key's name once");
}

indexed('created');

same('word', 5, 'word');
same('WORD', 3, 'WORD, folded');
same('WordP', 100, 'WordP');
same('Über', 2, 'Über, as written');
same('über', 2, 'über, as written');
same('ci', 4, 'ci');
same('a', 1, 'a');
same('abc ', 1, 'abc and a space');
same('ключ', 1, 'Cyrillic, as written');
same('x' x 100, 1, 'a prefix of 100 characters');
same('zzz', 5, 'no key');

ok(!grep({ $name{$_} =~ /elsewhere/ } @{(listed('word', 100))[0]}),
   'another organization\'s keys are not listed');

my $r = $adm->get('orgs/acme/keys?name_prefix=word&per_page=2&page=1000');
is_deeply([$r->{status}, $r->{json}{total_count}, $r->{json}{data}],
          [200, scalar(@{expected('word')}), []], 'a page past the end');

is($r->{json}{per_page}, 2, 'per_page') if $r->{json};

# renamed, revoked, deleted

my ($renamed) = grep { $name{$_} eq 'work' } keys %name;
$r = $adm->patch("orgs/acme/keys/$renamed", { name => 'Zebra work' });
is($r->{status}, 200, 'a key renamed');
$name{$renamed} = 'Zebra work';
indexed('renamed');
same('work', 5, 'the old name');
same('zebra', 5, 'the new name');

my ($revoked) = grep { $name{$_} eq 'ci' } keys %name;
is($adm->post("orgs/acme/keys/$revoked/revoke", {})->{status}, 200,
   'a key revoked');
indexed('revoked');
same('ci', 5, 'a revoked key is still listed');

my ($deleted) = grep { $name{$_} eq 'CI deploy' } keys %name;
is($adm->request('DELETE', "orgs/acme/keys/$deleted")->{status}, 204,
   'a key deleted');
delete $name{$deleted};
indexed('deleted');
same('ci', 5, 'a deleted key is not');

# an organization without a name index, as made by a release before it:
# the first name_prefix list rebuilds the indexes

$t->redis('DEL', 'apikey:org:acme:idx:names');
same('word', 4, 'the name index rebuilt');
is($t->redis('ZCARD', 'apikey:org:acme:idx:names'), scalar(keys %name),
   'with every key');

# bad queries

for ([name_prefix => "a\x01", qr/^name_prefix must be UTF-8 text/],
     [name_prefix => "\xff", qr/^name_prefix must be UTF-8 text/],
     [name_prefix => 'x' x 101, qr/^name_prefix is longer than 100/],
     ['name_prefix=a&search' => 'b', qr/^name_prefix cannot be combined/],
     ['name_prefix=a&status' => 'active', qr/^name_prefix cannot be combined/],
     ['name_prefix=a&environment' => 'preview',
      qr/^name_prefix cannot be combined/],
     ['name_prefix=a&name_prefix' => 'b', qr/given twice/])
{
    my ($q, $v, $re) = @$_;
    my $ev = join '', map { sprintf '%%%02X', ord } split //, $v;  # bytes
    $r = $adm->get("orgs/acme/keys?$q=$ev");
    is_admin_problem($r, 400, 'invalid_query', "$q=...: 400");
    like($r->{json}{detail} // '', $re, "$q=...: the reason");
}

$r = $adm->get('orgs/acme/keys?name_prefix=&search=Word');
is($r->{status}, 200, 'an empty name_prefix is no filter');

done_testing;
