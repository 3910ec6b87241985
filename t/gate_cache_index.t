#!/usr/bin/perl

# apikey_cache's index: many keys, each found by its hash in the replica
# (its hits counted); unknown keys refused there too; deletes
# through the change log; a full reload (the log trimmed) that removes,
# a slice at a time, the keys Redis no longer has, leaving none behind and
# every other key answered; a zone too small, whose warning names a size
# that then holds every key; and churn in a small zone that leaves no
# room unreturned.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use Compress::Zlib qw(crc32);
use Digest::SHA qw(sha256_hex);
use Test::More;

use ApiKey::Test;

my $t = ApiKey::Test->new;
$t->run_redis;

my $n = 20000;

# keys as the key tool makes them (ak_, 43 base62, the CRC-32 of those in
# 6), written straight in the layout of docs/data-model.md, no log entry

my @b62 = ('0' .. '9', 'A' .. 'Z', 'a' .. 'z');

sub b62 {
    my ($v, $w) = @_;
    my $s = '';

    while ($v) {
        $s = $b62[$v % 62] . $s;
        $v = int($v / 62);
    }

    return '0' x ($w - length $s) . $s;
}

sub new_key {
    my $body = '0' . join '', map { $b62[int rand 62] } 1 .. 42;
    my $raw = 'ak_' . $body . b62(crc32($body), 6);

    return { key => $raw, hash => sha256_hex($raw) };
}

# names of the length given, or 9 characters

sub write_keys {
    my ($len, @keys) = ref $_[0] ? (9, @_) : @_;

    for my $k (@keys) {
        my $id = 'k_' . substr($k->{hash}, 0, 22);
        $t->redis('HSET', "apikey:\{$k->{hash}\}", 'g',
                  "0 0 0 0 1 0 production\n$id\nacme\n"
                  . substr($k->{key}, 0, 8) . "\n" . 'n' x $len);
    }
}

my @keys = map { new_key() } 1 .. $n;
write_keys(@keys);

is($t->key_hash($keys[0]{key}), $keys[0]{hash}, 'keys as the key tool has them');

my $conf = <<'EOF';

%%TEST_GLOBALS%%
load_module %%MODULE%%;
error_log error.log info;
worker_processes 2;

events {
}

http {
    %%TEST_GLOBALS_HTTP%%

    apikey_redis %%REDIS%%;
    apikey_cache zone=keys:%%ZONE%%;

    server {
        listen 127.0.0.1:%%PORT_1%%;
        server_name localhost;

        location / {
            apikey on;
            empty_gif;
        }

        location = /metrics {
            apikey_metrics;
            allow 127.0.0.1;
            deny all;
        }
    }
}

EOF

sub run {
    my ($zone, $name) = @_;
    (my $c = $conf) =~ s/%%ZONE%%/$zone/;
    $t->run_nginx($c, $name ? (name => $name) : ());
}

my $port = $t->port(1);

sub metric {
    my ($name) = @_;
    my (undef, undef, $body) = http_get($port, '/metrics');
    return $body =~ /^$name (\d+)$/m ? $1 : undef;
}

sub hits { metric('apikey_replica_hits_total') // 0 }

# statuses of the keys given, and how many of them the replica answered

sub ask {
    my (%st, $before);

    $before = hits();
    $st{(http_get($port, '/', { 'X-API-Key' => $_->{key} }))[0] // 'none'}++
        for @_;

    return (\%st, hits() - $before);
}

# 8m: a bucket per 256 bytes of it, 32768, for 20000 keys

run('8m');

ok(wait_for(60, sub { $t->error_log =~ /keys loaded/ }), 'replica loaded');
is(metric('apikey_replica_keys'), $n, "the replica holds $n keys");
is(metric('apikey_replica_missing_keys'), 0, 'none missing');

my @some = @keys[map { int rand $n } 1 .. 2000];
my ($st, $hits) = ask(@some);
is_deeply($st, { 200 => 2000 }, '2000 keys picked at random pass');
is($hits, 2000, 'answered by the replica');

($st, $hits) = ask(map { new_key() } 1 .. 500);
is_deeply($st, { 401 => 500 }, "500 unknown keys are refused") or diag(explain $st);
is($hits, 500, 'by the replica');

# deletes through the change log

my @gone = splice @keys, 0, 1000;

for my $k (@gone) {
    $t->redis('DEL', "apikey:\{$k->{hash}\}");
    $t->redis('XADD', 'apikey:changes', '*', 'h', $k->{hash});
}

ok(wait_for(10, sub { metric('apikey_replica_keys') == $n - 1000 }),
   'deletes leave the replica');

($st, $hits) = ask(@gone[0 .. 499], @keys[0 .. 499]);
is_deeply($st, { 401 => 500, 200 => 500 },
          'deleted keys are refused, their neighbours pass');
is($hits, 1000, 'by the replica');

# keys deleted behind the log's back, new ones written so, and the log
# trimmed: a full reload, whose sweep removes what it did not see

my @stale = splice @keys, 0, 3000;
$t->redis('DEL', "apikey:\{$_->{hash}\}") for @stale;

my @new = map { new_key() } 1 .. 1000;
write_keys(@new);
push @keys, @new;

$t->redis('XTRIM', 'apikey:changes', 'MAXLEN', 0);
$t->redis('XADD', 'apikey:changes', '*', 'h', $new[0]{hash});

ok(wait_for(30, sub { $t->error_log =~ /gap.*reloading/s
                      && metric('apikey_replica_reloads_total') }),
   'a trimmed log makes the replica reload');
ok(wait_for(30, sub { metric('apikey_replica_keys') == @keys }),
   'the sweep leaves exactly the keys Redis holds: ' . scalar @keys);

($st, $hits) = ask(@stale[0 .. 999]);
is_deeply($st, { 401 => 1000 }, 'no stale key passes');
is($hits, 1000, 'refused by the replica');

($st, $hits) = ask(@new, @keys[map { int rand @keys } 1 .. 1000]);
is_deeply($st, { 200 => 2000 }, 'keys of the reload and of before pass');
is($hits, 2000, 'answered by the replica');

$t->stop_nginx;

# a zone too small: the keys that do not fit go to Redis; the warning's
# size holds them all

run('1m', 'small');

ok(wait_for(60, sub { $t->error_log('small') =~ /keys loaded/ }),
   'the small zone loaded');

my ($warn) = $t->error_log('small')
             =~ /\[warn\].*zone "keys" is too small: (.*)/;
like($warn // '', qr/^\d+ of ${\ scalar @keys} keys did not fit .* about \d+k is needed, \d+ bytes a key/,
     'a warning with the size needed and the cost of a key');

my ($need, $cost) = ($warn // '') =~ /about (\d+)k is needed, (\d+) bytes/;
my $held = metric('apikey_replica_keys');

# what a key takes in fact: the zone over the keys it held (the index and
# the zone's own upkeep included)

my $real = int(1024 * 1024 / $held);
diag("1m holds $held keys: $real bytes a key; the warning says $cost");
ok($cost >= $real * 0.9 && $cost <= $real * 1.1,
   'the warning\'s cost of a key is within 10% of what a key takes');

($st, $hits) = ask(@keys[map { int rand @keys } 1 .. 500]);
is_deeply($st, { 200 => 500 }, 'keys held or not, all pass');

$t->stop_nginx('small');

run("${need}k", 'fits');

ok(wait_for(60, sub { $t->error_log('fits') =~ /keys loaded/ }),
   "the size the warning named (${need}k) loaded");
is(metric('apikey_replica_missing_keys'), 0, 'and holds every key');
unlike($t->error_log('fits'), qr/too small/, 'without a warning');

$t->stop_nginx('fits');

# churn in a zone that holds some 5,000 keys: 1,000 keys replaced by 1,000
# others of other sizes, 20 times over; a slot that a deleted record did
# not give back would soon leave keys out

$t->redis('FLUSHALL');

my @live = map { new_key() } 1 .. 1000;
write_keys(20, @live);

run('1m', 'churn');

ok(wait_for(60, sub { $t->error_log('churn') =~ /keys loaded/ }),
   'the churned zone loaded');

my (@dead, $steady);

for my $round (1 .. 20) {
    my @next = map { new_key() } 1 .. 1000;
    write_keys(10 + int rand 60, @next);
    $t->redis('DEL', "apikey:\{$_->{hash}\}") for @live;
    $t->redis('XADD', 'apikey:changes', '*', 'h', $_->{hash}) for @next, @live;

    push @dead, @live;
    @live = @next;

    $steady = wait_for(10, sub {
        metric('apikey_replica_keys') == 1000
        && metric('apikey_replica_missing_keys') == 0
    }) or last;
}

ok($steady, '20 rounds of churn: the zone holds the 1000 keys, none missing')
    or diag(metric('apikey_replica_keys') . ' held, '
            . metric('apikey_replica_missing_keys') . ' missing');

($st, $hits) = ask(@live, @dead[map { int rand @dead } 1 .. 500]);
is_deeply($st, { 200 => 1000, 401 => 500 },
          'the keys of the last round pass, the deleted ones are refused');
is($hits, 1500, 'by the replica');

$t->stop_nginx('churn');
$t->error_log_clean;

done_testing;
