#!/usr/bin/perl

# admin/apikey-import: keys made elsewhere, as JSON lines, written as the
# admin API's create script writes them (compared in Redis).  The imported keys pass the gatekeeper
# (given raw or as their hash, with any prefix), with their rate limits,
# through the replica of apikey_cache too; the admin API lists them, with
# their fields and a "created" event by the import's actor; the raw keys
# are nowhere in Redis.  A bad line stops the import before anything is
# written, with its number; a key already in the store stops it, or is
# passed over with --skip-existing.

use strict;
use warnings;
use utf8;

use FindBin;
use lib "$FindBin::Bin/lib";

use Test::More;
use JSON::PP;

use ApiKey::Test;
use ApiKey::Admin;

my $t = ApiKey::Test->new;
$t->run_redis;

my $tok = write_tokens($t, ops => '*');

$t->run_nginx(admin_config($t, http => 'apikey_cache zone=keys:4m;'));

my $a = ApiKey::Admin->new($t, $tok->{ops});
my $port = $t->port(1);
my $tool = "$FindBin::Bin/../admin/apikey-import";
my $json = JSON::PP->new->utf8->canonical;

# runs the tool on these lines (text or hashes): (exit status, stdout,
# stderr)

sub import_lines {
    my ($lines, @args) = @_;

    my $in = $t->dir . '/import.jsonl';
    open my $fh, '>', $in or die "$in: $!";
    print $fh ref $_ ? $json->encode($_) . "\n" : $_ for @$lines;
    close $fh;

    my ($out, $err) = map { $t->dir . "/import.$_" } qw(out err);
    system("'$tool' --redis 127.0.0.1:" . $t->redis_port
           . join('', map { " '$_'" } @args)
           . " < '$in' > '$out' 2> '$err'");

    return ($? >> 8, map { local $/; open my $f, '<', $_; <$f> // '' }
                         $out, $err);
}

###############################################################################
# 120 keys in three organizations: raw keys of three prefixes, and hashes

my (@lines, @raw, %hashed);

for my $i (1 .. 120) {
    my $key = $t->raw_key((qw(ak zz legacy2))[$i % 3]);
    my %l = (org => "org" . ($i % 3), name => "imported $i");

    if ($i % 4 == 0) {
        $l{hash} = $t->key_hash($key);
        $l{prefix} = substr($key, 0, 8);
        $hashed{$key} = 1;
    } else {
        $l{key} = $key;
    }

    push @lines, \%l;
    push @raw, $key;
}

# some with the create body's other fields

my %special = (
    1 => { description => "from the old system\nline two",
           environment => 'preview', scopes => ['content:read', 'a.b'],
           rate_limit => { rate => '1r/m', burst => 1 },
           expires_in => 86400 },
    2 => { rate_limit => undef },
    3 => { name => "Ünïcödé ключ", expires_at => '2099-01-31T12:00:00Z' },
    4 => { name => 'Über' },
);

@{$lines[$_ - 1]}{keys %{$special{$_}}} = values %{$special{$_}}
    for keys %special;

my ($rc, $out, $err) = import_lines(\@lines, '--actor', 'migration');

is($rc, 0, 'the import succeeds') or diag($err);
like($out, qr/^apikey-import: 120 keys imported into 3 organizations in [\d.]+ s \(\d+ keys\/s\)$/,
     'one summary line');

for my $org (qw(org0 org1 org2)) {
    is($a->get("orgs/$org/keys")->{json}{total_count}, 40,
       "$org lists its 40 keys");
}

# the replica learns of them from the change log within a poll: a key
# it does not know yet is refused without taking a token

my %passed;
ok(wait_for(10, sub {
       for (grep { !$passed{$_} } @raw) {
           $passed{$_} = 1 if (gate($port, $_))[0] == 200;
       }
       keys %passed == 120;
   }), 'every key passes the gatekeeper, raw or hashed when imported')
    or diag(scalar(keys %passed) . ' of 120 passed');

# the first line's key: every field as the admin API would have made it

my $first = $a->get('orgs/org1/keys?search=imported%201&per_page=100')
              ->{json}{data};
my ($k1) = grep { $_->{name} eq 'imported 1' } @$first;

is($k1->{prefix}, substr($raw[0], 0, 8), 'the display prefix');
is($k1->{environment}, 'preview', 'the environment');
is_deeply($k1->{scopes}, ['content:read', 'a.b'], 'the scopes');
is_deeply($k1->{rate_limit}, { rate => '1r/m', burst => 1 },
          'the rate limit');
is($k1->{description}, "from the old system\nline two", 'the description');
is($k1->{created_by}, 'migration', 'created by the import\'s actor');
ok($k1->{expires_at}, 'an expiry from expires_in');
like($k1->{id}, qr/^k_[0-9A-Za-z]{22}$/, 'a key id as the admin API makes');

is((gate($port, $raw[0]))[0], 429, 'its rate limit holds: 1r/m');

my ($k3) = grep { $_->{name} eq 'Ünïcödé ключ' }
               @{$a->get('orgs/org0/keys?per_page=100')->{json}{data}};
is($k3 && $k3->{expires_at}, '2099-01-31T12:00:00Z',
   'a Unicode name and an expires_at');
ok((grep { $_->{name} eq 'Über' }
    @{$a->get('orgs/org1/keys?per_page=100')->{json}{data}}),
   'a name of Latin-1 characters only, in UTF-8');
my ($k2) = grep { $_->{name} eq 'imported 2' }
               @{$a->get('orgs/org2/keys?per_page=100')->{json}{data}};
ok($k2 && exists $k2->{rate_limit} && !defined $k2->{rate_limit},
   'an unlimited key');

my $ev = $a->get('orgs/org1/events?per_page=100')->{json};
is(scalar(grep { $_->{action} eq 'created' } @{$ev->{data}}), 40,
   'a created event per key');
is(scalar(grep { $_->{action} eq 'created' && $_->{actor} eq 'migration' }
          @{$ev->{data}}), 40, 'by the actor');

my $dump = $t->redis_dump(streams => 1);
is(scalar(grep { index($dump, $_) >= 0 } @raw), 0,
   'no raw key anywhere in Redis');

###############################################################################
# what the import writes is what the admin API's create writes: the same
# keys made both ways (three per organization, so that the import writes
# them in one call), compared in Redis with ids, hashes, prefixes and times
# put aside

my %body = (name => 'same', description => 'both ways', environment => 'preview',
            scopes => ['a:b'], rate_limit => { rate => '7r/m', burst => 3 },
            expires_in => 30 * 86400, meta => { plan => 'pro' },
            quota => { limit => 1000, period => 'month' });
my (%made, @same);

for my $i (1 .. 3) {
    my $r = $a->post('orgs/byapi/keys', { %body, name => "same $i" });
    push @{$made{byapi}}, [$r->{json}{id}, $t->key_hash($r->{json}{key}),
                           $r->{json}{prefix}];
    my $key = $t->raw_key('ak');
    push @same, { %body, name => "same $i", org => 'byimport', key => $key };
    $made{key}{$key} = 1;
}

($rc, $out, $err) = import_lines(\@same, '--actor', 'ops');
is($rc, 0, 'the same keys imported') or diag($err);

for my $k (@{$a->get('orgs/byimport/keys?per_page=10')->{json}{data}}) {
    my ($key) = grep { substr($_, 0, 8) eq $k->{prefix} } keys %{$made{key}};
    push @{$made{byimport}}, [$k->{id}, $t->key_hash($key), $k->{prefix},
                              $k->{name}];
}

# in the order the API made its own: by name

my %named = map { $_->[3] => $_ } @{$made{byimport}};
$made{byimport} = [@named{map { "same $_" } 1 .. 3}];

# an organization's keys in Redis, as text with what differs put aside

sub stored {
    my ($org) = @_;
    my @keys = @{$made{$org}};
    my $ns = 'apikey:';
    my @out;

    for my $k (@keys) {
        my ($id, $hash) = @$k;
        my %rec = @{$t->redis('HGETALL', "${ns}key:$id")};
        my %sec = @{$t->redis('HGETALL', "$ns\{$hash\}")};
        push @out, map { "$_=$rec{$_}" } sort keys %rec;
        push @out, map { "g.$_=$sec{$_}" } sort keys %sec;
        push @out, 'notice=' . $t->redis('ZSCORE', "${ns}notices",
                                         "$org\t$id");
        push @out, 'changes=' . scalar(grep { $_ eq $hash }
            map { @{$_->[1]} } @{$t->redis('XRANGE', "${ns}changes", '-',
                                           '+')});
    }

    for my $i ('idx', 'idx:names', 'active', 'keys', 'events') {
        my $v = $i eq 'events'
            ? $t->redis('LRANGE', "${ns}org:$org:events", 0, -1)
            : $t->redis('ZRANGE', "${ns}org:$org:$i", 0, -1, 'WITHSCORES');
        push @out, "$i=" . join(' | ', sort map { aside($_, $org, @keys) }
                                            @$v);
    }

    return aside(join("\n", @out), $org, @keys);
}

sub aside {
    my ($text, $org, @keys) = @_;

    for my $n (0 .. $#keys) {
        $text =~ s/\Q$keys[$n][0]\E/ID$n/g;
        $text =~ s/\Q$keys[$n][1]\E/HASH$n/g;
        $text =~ s/\Q$keys[$n][2]\E/PREFIX$n/g;
    }

    $text =~ s/\Q$org\E/ORG/g;
    $text =~ s/\b1\d{12}(\.\d+)?\b/MS/g;
    $text =~ s/\b1\d{9}\b/TIME/g;

    return $text;
}

my ($api, $imp) = (stored('byapi'), stored('byimport'));
like($api, qr/g\.g=0 TIME 0 7 60 3 preview a:b\nID0\nORG\nPREFIX0\nsame 1\n\{"plan":"pro"\}/,
     'the API\'s create wrote the gate record');
is($imp, $api, 'the import wrote the same records, secrets, change log,'
               . ' indexes, expiry notices and events');

###############################################################################
# bad input: nothing written, the line named

my $before = $a->get('orgs/org0/keys')->{json}{total_count};
my $good = { org => 'org0', name => 'fine', key => $t->raw_key };
(my $typo = $t->raw_key) =~ s/(.)$/$1 eq 'a' ? 'b' : 'a'/e;

for ([ [ $good, { org => 'org0', name => 'x', key => $typo } ],
       qr/^apikey-import: line 2: key is not a key of this format/,
       'a mistyped key' ],
     [ [ $good, "\n", "{\"org\":\"org0\"\n" ],
       qr/^apikey-import: line 3: invalid JSON/, 'bad JSON (a blank line'
                                                 . ' counts)' ],
     [ [ $good, { %$good, key => undef, hash => 'ab', name => 'y' } ],
       qr/^apikey-import: line 2: hash must be 64 lowercase hex digits/,
       'a bad hash' ],
     [ [ { %$good, colour => 'red' } ],
       qr/^apikey-import: line 1: unknown field colour/, 'an unknown field' ],
     [ [ { %$good, name => '' } ],
       qr/^apikey-import: line 1: name must be a string of 1 to 100/,
       'an empty name' ],
     [ [ { %$good, rate_limit => { rate => '5r/h' } } ],
       qr/^apikey-import: line 1: rate_limit.rate must be/, 'a bad rate' ],
     [ [ { %$good, expires_in => 10 } ],
       qr/^apikey-import: line 1: expires_in must be/, 'too short a life' ],
     [ [ { %$good, environment => 'staging' } ],
       qr/^apikey-import: line 1: environment must be one of/,
       'an unknown environment' ],
     [ [ { %$good, meta => { Plan => 1 } } ],
       qr/^apikey-import: line 1: meta must be a JSON object/,
       'a meta name out of [a-z0-9_]' ],
     [ [ { %$good, quota => { limit => 0, period => 'day' } } ],
       qr/^apikey-import: line 1: quota must be null or an object/,
       'a quota of 0' ],
     [ [ { %$good, quota => { limit => 5, period => 'week' } } ],
       qr/^apikey-import: line 1: quota must be null or an object/,
       'a quota per week' ],
     [ [ { %$good, meta => { plan => "a\r\nb" } } ],
       qr/^apikey-import: line 1: meta must be a JSON object/,
       'a control character in meta' ],
     [ [ { %$good, meta => { map { ("f$_" => 'x' x 40) } 1 .. 30 } } ],
       qr/^apikey-import: line 1: meta must be a JSON object/,
       'meta over 1 KiB' ],
     [ [ $good, $good ],
       qr/^apikey-import: line 2: the same key as line 1/, 'a key twice' ])
{
    my ($lines, $re, $name) = @$_;
    my ($rc, $out, $err) = import_lines($lines);

    is($rc, 1, "$name: exit status 1");
    like($err, $re, "$name: the line and the reason");
}

is($a->get('orgs/org0/keys')->{json}{total_count}, $before,
   'nothing was written');

###############################################################################
# keys already in the store

($rc, $out, $err) = import_lines(\@lines);
is($rc, 1, 'a second import of the same keys stops');
like($err, qr/^apikey-import: line 1: conflict: /, 'at the first line');

($rc, $out, $err) = import_lines([@lines, $good], '--skip-existing');
is($rc, 0, '--skip-existing: it goes on') or diag($err);
like($out, qr/^apikey-import: 1 keys imported into 3 organizations, 120 already there/,
     'and says what it passed over');
# the replica learns of it from the change log within a poll
ok(wait_for(5, sub { (gate($port, $good->{key}))[0] == 200 }),
   'the new key passes');

# in the middle of one call's keys: those before it are written, it and
# those after it are not, and the calls sent after it are; a second run
# with --skip-existing writes what is left

my @mid = map { { org => 'mid', name => "mid $_", key => $t->raw_key } }
              1 .. 5;
push @mid, { org => 'mid2', name => 'after', key => $t->raw_key };
($rc) = import_lines([$mid[1]]);
is($rc, 0, 'one key of a run imported');

($rc, $out, $err) = import_lines(\@mid);
is($rc, 1, 'a run with a key already there stops');
like($err, qr/^apikey-import: line 2: conflict: .*\(the lines before it are imported, and 1 after it;/,
     'at its line, saying what was written');
like($out, qr/^apikey-import: 2 keys imported into 2 organizations in /,
     'the summary counts what was written');
is_deeply([sort map { $_->{name} }
           @{$a->get('orgs/mid/keys')->{json}{data}}], ['mid 1', 'mid 2'],
          'the key before it is written, those after it in its call not');
is($a->get('orgs/mid2/keys')->{json}{total_count}, 1,
   'the next call is written');

($rc, $out, $err) = import_lines(\@mid, '--skip-existing');
like($out, qr/^apikey-import: 3 keys imported into 2 organizations, 3 already there/,
     '--skip-existing writes the rest');
is($a->get('orgs/mid/keys')->{json}{total_count}, 5, 'all five are there');

###############################################################################
# a store in another data layout is not written to

$t->redis('SET', 'apikey:layout', '2');
($rc, $out, $err) = import_lines([{ %$good, key => $t->raw_key }]);
$t->redis('DEL', 'apikey:layout');

is($rc, 3, 'another data layout: exit status 3');
like($err, qr/^apikey-import: Redis holds its keys in data layout "2", not 1/,
     'saying so');

###############################################################################
# usage errors

($rc, $out, $err) = import_lines([$good], '--cluster');
is($rc, 2, '--cluster is refused');
like($err, qr/one Redis or a Sentinel set/, 'saying what this version keeps');

$t->error_log_clean;

done_testing;
