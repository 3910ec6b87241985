#!/usr/bin/perl

# Filtered lists of a large organization: the walk of the index goes in
# slices of 10000 entries, one script call each, so Redis is never held up
# by one long script.  Counts and pages must come out as if it were one
# pass: pages that straddle slices, deep pages, and keys of equal creation
# score cut by a slice boundary (each listed exactly once).

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

$t->run_nginx(admin_config($t, workers => 1));

my $a = ApiKey::Admin->new($t, $tok->{ops});

my $n = 25000;
my $keys = load_keys($t, 'big', $n,
                     env => sub { $_[0] % 3 ? 'production' : 'preview' });

# newest first, as the API lists them

my @newest = reverse @$keys;

sub names { [map { $_->{name} } @{$_[0]{json}{data} || []}] }

sub expect {
    my ($filter, $page, $per) = @_;
    my @m = grep { $filter->($_) } @newest;
    return (scalar @m,
            [map { $_->{name} } grep { defined }
             @m[($page - 1) * $per .. $page * $per - 1]]);
}

my $r = $a->get('orgs/big/keys?per_page=5');
is($r->{json}{total_count}, $n, "$n keys");

# environment: matches in every slice

for my $c ([1, 100], [2, 100], [84, 100], [41, 200 / 2], [1, 1]) {
    my ($page, $per) = @$c;
    my ($total, $names) = expect(sub { $_[0]{env} eq 'preview' }, $page,
                                 $per);
    $r = $a->get("orgs/big/keys?environment=preview&page=$page"
                 . "&per_page=$per");
    is($r->{json}{total_count}, $total, "preview: total $total");
    is_deeply(names($r), $names, "preview: page $page of $per");
}

# a search whose matches straddle the first slice boundary

my ($total, $names) = expect(sub { $_[0]{name} =~ /key 0150/ }, 2, 30);
is($total, 100, '100 names match "key 0150"');

$r = $a->get('orgs/big/keys?search=KEY+0150&per_page=30&page=2');
is($r->{json}{total_count}, 100, 'search: total over two slices');
is_deeply(names($r), $names, 'search: a page straddling two slices');

($total, $names) = expect(sub { $_[0]{name} =~ /key 0000/ }, 1, 100);
is_deeply(names($a->get('orgs/big/keys?search=key+0000&per_page=100')),
          $names, 'search: the oldest keys, in the last slice');

# status: a few keys, one per slice

my @rev = @newest[5, 12000, 24990];
$a->post("orgs/big/keys/$_->{id}/revoke", undef) for @rev;

$r = $a->get('orgs/big/keys?status=revoked');
is_deeply([map { $_->{id} } @{$r->{json}{data}}], [map { $_->{id} } @rev],
          'status=revoked: one from each slice, newest first');
is($a->get('orgs/big/keys?status=active')->{json}{total_count}, $n - 3,
   'status=active: the rest');

is_deeply(names($a->get('orgs/big/keys?search=nothing')), [],
          'no match in any slice');

###############################################################################
# equal creation scores cut by a slice boundary

my $m = 10050;
my (@ties, $resp);

for my $i (1 .. $m) {
    my $id = sprintf('k_tie%019d', $i);
    push @ties, $id;

    for my $cmd (['HSET', "apikey:key:$id", id => $id, org => 'ties',
                  name => "tie $i", env => 'production', scopes => '[]',
                  created_at => 1700000000, updated_at => 1700000000,
                  created_by => 'test', secret => '0' x 64],
                 ['ZADD', 'apikey:org:ties:keys', 1700000000000, $id])
    {
        $resp .= '*' . @$cmd . "\r\n";
        $resp .= '$' . length($_) . "\r\n$_\r\n" for @$cmd;
    }
}

my $file = $t->dir . '/ties.resp';
open my $fh, '>', $file or die;
print $fh $resp;
close $fh;

my $port = $t->redis_port;
like(`redis-cli -p $port --pipe < $file 2>&1`, qr/errors: 0/,
     "$m keys of one creation score");

my %seen;
my $dups = 0;

for my $page (1 .. int(($m + 99) / 100)) {
    $r = $a->get("orgs/ties/keys?status=active&per_page=100&page=$page");
    $dups += $seen{$_->{id}}++ ? 1 : 0 for @{$r->{json}{data}};
}

is(scalar keys %seen, $m, 'every tied key is listed');
is($dups, 0, 'none twice');
is($r->{json}{total_count}, $m, 'total of the tied keys');

$t->error_log_clean;

done_testing;
