#!/usr/bin/perl

# The admin API when Redis fails: 503 store_unavailable when Redis is down
# (at once), too slow (after max(apikey_redis_timeout, 1s)) or answers an
# error; clients that go away while a script runs; and working again
# once Redis is back, without a reload.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use Test::More;
use IO::Socket::INET;
use Time::HiRes qw(time sleep);

use ApiKey::Test;
use ApiKey::Admin;

my $t = ApiKey::Test->new;
$t->run_redis;

my $tok = write_tokens($t, ops => '*');

$t->run_nginx(admin_config($t, workers => 1));

my $a = ApiKey::Admin->new($t, $tok->{ops});

my $k = $a->create('acme', name => 'before');

###############################################################################
# too slow

$t->freeze_redis;

my $start = time;
my $r = $a->get("orgs/acme/keys/$k->{id}");
my $took = time - $start;

is_admin_problem($r, 503, 'store_unavailable', 'frozen Redis');
ok($took >= 0.9, 'after the 1 s admin timeout') or diag($took);
ok($took < 5, 'not much later') or diag($took);

# a client that goes away while its script waits

for (1 .. 3) {
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1:' . $t->port(1))
        or die;
    print $s "GET /admin/orgs/acme/keys HTTP/1.0\r\n"
             . "Authorization: Bearer $tok->{ops}\r\n\r\n";
    close $s;
}

sleep 0.2;
$t->thaw_redis;

ok(wait_for(10, sub { $a->get("orgs/acme/keys/$k->{id}")->{status} == 200 }),
   'works again after Redis thaws');

###############################################################################
# an error reply

$t->redis('CONFIG', 'SET', 'maxmemory', 1);
is_admin_problem($a->post('orgs/acme/keys', { name => 'oom' }), 503,
                 'store_unavailable', 'Redis answers an error');
$t->redis('CONFIG', 'SET', 'maxmemory', 0);
like($t->error_log, qr/\[error\].*apikey admin: redis error/,
     'the error is logged');

###############################################################################
# down

$t->stop_redis;

ok(wait_for(10, sub {
       $a->get('orgs/acme/keys')->{status} == 503 }), 'Redis down: 503');

$start = time;
$r = $a->post('orgs/acme/keys', { name => 'while down' });
$took = time - $start;
is_admin_problem($r, 503, 'store_unavailable', 'Redis down');
ok($took < 0.9, 'at once, not after the 1 s timeout') or diag($took);

$t->restart_redis;

ok(wait_for(10, sub {
       $a->post('orgs/acme/keys', { name => 'after' })->{status} == 201 }),
   'creates again once Redis is back, without a reload');

$t->error_log_clean;

done_testing;
