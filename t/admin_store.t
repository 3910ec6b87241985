#!/usr/bin/perl

# The admin API when Redis fails: 503 store_unavailable when Redis is down
# (at once), too slow (after apikey_admin_timeout) or answers an error,
# and 503 outcome_unknown for a change sent to a Redis that did not answer
# in time (it may still make it); clients that go away while a script
# runs; and working again once Redis is back, without a reload.  A stall
# shorter than apikey_admin_timeout (default 5 s) costs no admin call,
# whatever apikey_redis_timeout (the gatekeeper's, 100 ms) says.

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

$t->run_nginx(admin_config($t, workers => 1,
                            admin => 'apikey_max_keys 100;'));

my $a = ApiKey::Admin->new($t, $tok->{ops});

my $k = $a->create('acme', name => 'before');

###############################################################################
# a stall within apikey_admin_timeout: the calls wait for Redis, including
# the index check and rebuild that apikey_max_keys brings

sub stall {
    my ($seconds) = @_;

    $t->freeze_redis;
    return $t->spawn(sub { sleep $seconds; $t->thaw_redis });
}

my $thaw = stall(1.5);
my $start = time;
my $r = $a->post('orgs/acme/keys', { name => 'through a stall' });
my $took = time - $start;
$t->wait_children($thaw);

is($r->{status}, 201, 'a create waits out a 1.5 s stall') or diag($r->{body});
ok($took >= 1.4, 'for the stall') or diag($took);

$thaw = stall(1.5);
$r = $a->post("orgs/acme/keys/$k->{id}/rotate", { grace_seconds => 0 });
$t->wait_children($thaw);

is($r->{status}, 200, 'and so does a rotation') or diag($r->{body});

is($a->get('orgs/acme/keys')->{json}{total_count}, 2, 'two keys made');

###############################################################################
# too slow: apikey_admin_timeout 1s

$t->write_config(admin_config($t, workers => 1,
                              http => 'apikey_admin_timeout 1s;'));
$t->reload_nginx or die 'reload failed';

# the new worker's admin connection, made on first use, is made now: its
# handshake is held to apikey_redis_timeout

is($a->get("orgs/acme/keys/$k->{id}")->{status}, 200, 'after the reload');

# a change sent to a frozen Redis: it may yet run

$t->freeze_redis;

$start = time;
$r = $a->post('orgs/acme/keys', { name => 'sent to a frozen Redis' });
$took = time - $start;

is_admin_problem($r, 503, 'outcome_unknown', 'frozen Redis, a change');
ok($took >= 0.9 && $took < 2.5, 'after the 1 s admin timeout')
    or diag($took);
like($r->{json}{detail} // '', qr/Idempotency-Key/,
     'the detail says how to learn the outcome');

$t->thaw_redis;

ok(wait_for(10, sub {
       my $l = $a->get('orgs/acme/keys')->{json};
       grep { $_->{name} eq 'sent to a frozen Redis' } @{$l->{data} || []}
   }), 'the change answered outcome_unknown was made after all');
like($t->error_log, qr/\[error\].*outcome of create acme\/k_\w+ is unknown/,
     'the unknown outcome is logged');

# a read: no outcome to know

$t->freeze_redis;

$start = time;
$r = $a->get("orgs/acme/keys/$k->{id}");
$took = time - $start;

is_admin_problem($r, 503, 'store_unavailable', 'frozen Redis, a read');
ok($took >= 0.9, 'after the 1 s admin timeout') or diag($took);
ok($took < 2.5, 'not much later') or diag($took);

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
is_admin_problem($r, 503, 'store_unavailable',
                 'Redis down: a change not sent is no unknown outcome');
ok($took < 0.9, 'at once, not after the 1 s timeout') or diag($took);

$t->restart_redis;

ok(wait_for(10, sub {
       $a->post('orgs/acme/keys', { name => 'after' })->{status} == 201 }),
   'creates again once Redis is back, without a reload');

$t->error_log_clean;

done_testing;
