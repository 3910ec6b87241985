#!/usr/bin/perl

# Keys written behind the admin API (an import) are not in the admin
# indexes: a filtered list and a change counted against apikey_max_keys
# first rebuild them from the records, in slices of 25 records chained by
# nginx, so that no script call holds Redis (and the gatekeeper) for long,
# whatever the size of the organization: the calls are counted here, and
# timed by make bench (t/bench_admin.sh).
#
# The new indexes are built aside and renamed in place, the old ones
# dropped with UNLINK (never a large DEL inside a script); concurrent
# rebuilds go on with one another instead of starting over; and the
# apikey_max_keys check never counts a half-built set.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use Test::More;
use Time::HiRes ();

use ApiKey::Test;
use ApiKey::Admin;

my $t = ApiKey::Test->new;
$t->run_redis;

my $tok = write_tokens($t, ops => '*');

# 20,000 keys, then their admin indexes removed: as after an import that
# wrote only the records and the creation index

my $n = 20_000;
load_keys($t, 'imp', $n);
$t->redis('DEL', 'apikey:org:imp:idx', 'apikey:org:imp:active');

$t->run_nginx(admin_config($t, admin => 'apikey_max_keys 20001;',
                            server => <<'EOF'));

        location /full/ {
            apikey_admin;
            apikey_max_keys 300;
        }

        location /par/ {
            apikey_admin;
            apikey_max_keys 3000;
        }
EOF

my $adm = ApiKey::Admin->new($t, $tok->{ops});

$t->redis('CONFIG', 'SET', 'slowlog-max-len', 100000);
$t->redis('CONFIG', 'SET', 'slowlog-log-slower-than', 0);
$t->redis('SLOWLOG', 'RESET');

my $r = $adm->get('orgs/imp/keys?search=bulk+key&per_page=5');

my $slow = $t->redis('SLOWLOG', 'GET', 100000);
$t->redis('CONFIG', 'SET', 'slowlog-log-slower-than', 10000);

is($r->{status}, 200, 'a search of the imported organization answers');
is($r->{json}{total_count}, $n, "and finds all $n keys") or diag($r->{body});
is($t->redis('ZCARD', 'apikey:org:imp:idx'), $n, 'the index is rebuilt');
is($t->redis('ZCARD', 'apikey:org:imp:active'), $n, 'and the active set');

my @us = sort { $a <=> $b }
         map { $_->[2] } grep { $_->[3][0] eq 'EVALSHA' } @$slow;

ok(@us >= $n / 25, "the rebuild took at least " . $n / 25 . " calls")
    or diag(scalar @us);

# how long each call holds Redis is a benchmark figure (make bench:
# t/bench_admin.sh, goal 2 ms); here it is only shown

note(sprintf 'rebuild and search: %d calls, median %d us, p99 %d us, '
             . 'longest %d us', scalar @us, $us[int(@us / 2)],
             $us[int(@us * 0.99)], $us[-1]);

# apikey_max_keys counts the imported keys too, once rebuilt: a fresh
# import, then one create fits and the next does not

$t->redis('DEL', 'apikey:org:imp:idx', 'apikey:org:imp:active');

is($adm->post('orgs/imp/keys', { name => 'the last that fits' })->{status},
   201, 'apikey_max_keys 20001: one more key fits');
is_admin_problem($adm->post('orgs/imp/keys', { name => 'one too many' }), 400,
                 'key_limit_reached', 'the next does not');

# a record removed behind the API leaves the creation index at the rebuild

my $ids = $t->redis('ZRANGE', 'apikey:org:imp:keys', 0, 2);
$t->redis('DEL', "apikey:key:$_") for @$ids;
$t->redis('DEL', 'apikey:org:imp:idx');

$r = $adm->get('orgs/imp/keys?status=active&per_page=1');
is($r->{json}{total_count}, $n + 1 - 3, 'three records removed: not counted');
is($t->redis('ZCARD', 'apikey:org:imp:keys'), $n + 1 - 3,
   'and gone from the creation index');

###############################################################################
# no large DEL: an index out of step by one key (its summary lost) is
# rebuilt aside, and the old one, of 20,000 entries, goes with UNLINK

$t->redis('ZPOPMIN', 'apikey:org:imp:idx');

my $before = $t->redis_commandstats;
$r = $adm->get('orgs/imp/keys?status=active&per_page=1');
my $after = $t->redis_commandstats;

is($r->{json}{total_count}, $n + 1 - 3, 'every key found')
    or diag($r->{body});

my $del = ($after->{del} // 0) - ($before->{del} // 0);
my $unlink = ($after->{unlink} // 0) - ($before->{unlink} // 0);
my $rename = ($after->{rename} // 0) - ($before->{rename} // 0);

is($del, 0, 'the rebuild ran no DEL');
ok($unlink >= 1, 'the old indexes went with UNLINK') or diag($unlink);
is($rename, 3, 'the new index, active set and name index were renamed in place');
is($t->redis('EXISTS', 'apikey:org:imp:rebuild', 'apikey:org:imp:idx:new',
             'apikey:org:imp:active:new'), 0, 'nothing left aside');

###############################################################################
# concurrent rebuilds go on with each other instead of starting over, and
# no apikey_max_keys check counts a set another rebuild is making: in a
# full organization whose indexes are gone, overlapping lists and creates
# (each of which needs the indexes) all count every key

my $m = 3000;
load_keys($t, 'par', $m);
$t->redis('DEL', 'apikey:org:par:idx', 'apikey:org:par:active');

my $par = ApiKey::Admin->new($t, $tok->{ops}, base => '/par/');

my @got = parallel($t, 12, sub {
    my ($i) = @_;
    my $l = $i % 2
        ? $par->post('orgs/par/keys', { name => "overlap $i" })
        : $par->get('orgs/par/keys?search=bulk&per_page=1');
    return $i % 2 ? "$l->{status} " . ($l->{json}{code} // '')
                  : "$l->{status} " . ($l->{json}{total_count} // -1);
}, stagger => 0.01);

is_deeply([@got[grep { $_ % 2 } 0 .. 11]], [("200 $m") x 6],
          "six lists during overlapping rebuilds find all $m keys")
    or diag("@got");
is_deeply([@got[grep { !($_ % 2) } 0 .. 11]], [('400 key_limit_reached') x 6],
          'six creates in the full organization are all refused')
    or diag("@got");
is($t->redis('ZCARD', 'apikey:org:par:keys'), $m, 'no key was made');
is($t->redis('ZCARD', 'apikey:org:par:idx'), $m, 'the index is whole');

###############################################################################
# the apikey_max_keys check never reads a half-built set: a rebuild left
# half done (a slice run by hand), then a create in a full organization

my $full = 300;
load_keys($t, 'full', $full);
$t->redis('DEL', 'apikey:org:full:idx', 'apikey:org:full:active');

my $sha = $t->redis('SCRIPT', 'LOAD', admin_script('reindex'));
my @rk = map { "apikey:org:full:$_" }
         qw(keys idx active rebuild idx:new active:new);

is($t->redis('EVALSHA', $sha, 6, @rk, 'apikey:', 25)->[0], 'more',
   'a rebuild begun by hand');
is($t->redis('ZCARD', 'apikey:org:full:active:new'), 25, 'one slice aside');

my $lim = ApiKey::Admin->new($t, $tok->{ops}, base => '/full/');

is_admin_problem($lim->post('orgs/full/keys', { name => 'one too many' }),
                 400, 'key_limit_reached',
                 "a create in an organization of $full keys");
is($t->redis('ZCARD', 'apikey:org:full:keys'), $full, 'no key was made');
is($t->redis('ZCARD', 'apikey:org:full:active'), $full,
   'the rebuild was finished first');

$t->error_log_clean;

done_testing;

###############################################################################

# the script Redis runs for an admin operation: the library, then its own

sub admin_script {
    my ($name) = @_;
    my $text = '';

    for my $f ('ngx_http_apikey_admin_lib.lua.in',
               "ngx_http_apikey_admin_$name.lua")
    {
        open my $fh, '<', "$ApiKey::Test::ROOT/admin/$f" or die "$f: $!";
        local $/;
        $text .= <$fh>;
    }

    return $text;
}
