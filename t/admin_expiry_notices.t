#!/usr/bin/perl

# Expiry notices (SPEC sections 5 and 11): "expiring" 7 days before a
# key's expires_at, 1 day before when the expiry was set with less than 7
# days to go, at once with less than 1 day; "expired" at expires_at.  Each
# is written once into the organization's event log, by actor "system"
# with the key's name, by whichever of two nginx instances on one Redis
# gets there first.  An update of expires_at schedules them anew, null
# and delete take them away, a revoked key gets none; Redis down while a
# notice falls due, it is written once when Redis is back; keys made
# before notices existed (no entry) get theirs from the backfill,
# imported keys from apikey-import.
#
# The scripts take the time from Redis (TIME).  Days do not pass in a
# test: age() moves one key's expires_at and its notice time back by the
# same amount in Redis, which is what that much time passing does to the
# notices of that key.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use Test::More;
use JSON::PP;
use Time::Local qw(timegm);

use ApiKey::Test;
use ApiKey::Admin;

my $t = ApiKey::Test->new;
my $DAY = 86400;

sub redis_now { $t->redis('TIME')->[0] }

# kept on disk: a Redis restarted later holds the same keys
$t->run_redis(args => ['--appendonly', 'yes', '--appendfsync', 'always']);

my $tok = write_tokens($t, ops => '*');
my $conf = admin_config($t, http => 'apikey_admin_timeout 1s;');
(my $conf_b = $conf) =~ s/%%PORT_1%%/%%PORT_2%%/g;

$t->run_nginx($conf);
$t->run_nginx($conf_b, name => 'b');

my $a = ApiKey::Admin->new($t, $tok->{ops});
my $b = ApiKey::Admin->new($t, $tok->{ops}, port => $t->port(2));

# the org's events of a key: ["action actor key_name", ...], oldest first
sub events {
    my ($org, $id) = @_;
    my $d = $a->get("orgs/$org/events?per_page=100")->{json}{data} || [];
    return [map { join ' ', $_->{action}, $_->{actor}, $_->{key_name} // '-' }
            reverse grep { $_->{key_id} eq $id } @$d];
}

# the notices of a key: its events of those actions
sub notices {
    return [grep { /^expir/ } @{events(@_)}];
}

sub entry { $t->redis('ZSCORE', 'apikey:notices', "$_[0]\t$_[1]") }

# $d seconds pass for the key: its expires_at and notice time move back
sub age {
    my ($org, $id, $d) = @_;
    my $exp = $t->redis('HGET', "apikey:key:$id", 'expires_at');
    my $at = entry($org, $id);
    $t->redis('MULTI');
    $t->redis('HSET', "apikey:key:$id", 'expires_at', $exp - $d);
    $t->redis('ZADD', 'apikey:notices', 'XX', $at - $d, "$org\t$id")
        if defined $at;
    $t->redis('EXEC');
}

# a few seconds of wall time: every instance's timer ran again meanwhile
sub a_few_seconds {
    my $until = redis_now() + 3;
    wait_for(10, sub { redis_now() >= $until });
}

###############################################################################
# one connection of each instance (its worker 0) runs the script, about
# once a second

$t->monitor_start;
a_few_seconds();
my $mon = $t->monitor_stop;
my %calls;
$calls{$_}++
    for $mon =~ /\[\d+ ([\d.:]+)\] "EVALSHA" "\w+" "2" "apikey:notices"/g;
is(scalar keys %calls, 2, 'two connections run the notices script')
    or diag(join "\n", grep { /notices/ } split /\n/, $mon);
ok(!grep({ $_ < 2 || $_ > 6 } values %calls), 'each about once a second')
    or diag(join ' ', %calls);

###############################################################################
# when the notices fall

my $now = redis_now();
my $soon = $a->create('acme', name => 'short one', expires_in => 120);
my $week = $b->create('acme', name => 'eight days', expires_in => 8 * $DAY);
my $days = $a->create('acme', name => 'three days', expires_in => 3 * $DAY);
my $never = $b->create('acme', name => 'forever');
my $nulled = $a->create('acme', name => 'nulled', expires_in => 3 * $DAY);
my $gone = $a->create('acme', name => 'deleted', expires_in => 8 * $DAY);
my $revoked = $b->create('acme', name => 'revoked', expires_in => 3 * $DAY);

ok(wait_for(10, sub { @{notices('acme', $soon->{id})} }),
   'expiring: a key made with less than a day gets it at once');
is_deeply(notices('acme', $soon->{id}), ['expiring system short one'],
          'by "system", with the key name');

my ($ev) = grep { $_->{action} eq 'expiring' }
            @{$a->get('orgs/acme/events?per_page=100')->{json}{data}};
is_deeply([sort keys %$ev], [qw(action actor at key_id key_name)],
          'at, actor, action, key_id, key_name');
is(entry('acme', $soon->{id}), unix($soon->{expires_at}),
   'the next notice of the key is at its expires_at');

my $at = entry('acme', $week->{id});
ok($at >= $now + $DAY && $at <= $now + $DAY + 10,
   'eight days to live: the notice falls 7 days before') or diag($at);
$at = entry('acme', $days->{id});
ok($at >= $now + 2 * $DAY && $at <= $now + 2 * $DAY + 10,
   'three days to live: 1 day before') or diag($at);
ok(!defined entry('acme', $never->{id}), 'no expiry: no notice');

is($a->patch("orgs/acme/keys/$nulled->{id}", { expires_at => undef })
     ->{status}, 200, 'expires_at set to null');
ok(!defined entry('acme', $nulled->{id}), 'takes its notices away');

is($a->delete("orgs/acme/keys/$gone->{id}")->{status}, 204, 'a key deleted');
ok(!defined entry('acme', $gone->{id}), 'takes its notices away');

is($b->post("orgs/acme/keys/$revoked->{id}/revoke", undef)->{status}, 200,
   'a key revoked');

###############################################################################
# time passes: the short key expires, two days pass for the others

age('acme', $soon->{id}, 200);
age('acme', $_->{id}, 2 * $DAY + 60) for $week, $days, $revoked;

ok(wait_for(10, sub {
       @{notices('acme', $days->{id})} && @{notices('acme', $week->{id})}
       && @{notices('acme', $soon->{id})} == 2
   }), 'the notices due are written');

my $count = $a->get('orgs/acme/events')->{json}{total_count};
a_few_seconds();
is($a->get('orgs/acme/events')->{json}{total_count}, $count,
   'nothing more in the next seconds');

is_deeply(notices('acme', $soon->{id}),
          ['expiring system short one', 'expired system short one'],
          'the short key: expiring, then expired, once each');
is_deeply(notices('acme', $days->{id}), ['expiring system three days'],
          'three days: expiring once');
is_deeply(notices('acme', $week->{id}), ['expiring system eight days'],
          'eight days: expiring once');
is_deeply(notices('acme', $revoked->{id}), [], 'a revoked key gets none');
is_deeply(notices('acme', $nulled->{id}), [], 'nor one without expiry');
ok(!defined entry('acme', $soon->{id}), 'an expired key leaves the index');
is(entry('acme', $days->{id}),
   $t->redis('HGET', "apikey:key:$days->{id}", 'expires_at'),
   'an expiring key waits for its expires_at');

###############################################################################
# an update of expires_at schedules the notices anew

$now = redis_now();
my $moved = $a->create('acme', name => 'moved', expires_in => 30 * $DAY);
ok(entry('acme', $moved->{id}) >= $now + 23 * $DAY, 'thirty days: 23 to go');

my $r = $a->patch("orgs/acme/keys/$moved->{id}",
                  { expires_at => iso($now + 2 * $DAY) });
is($r->{status}, 200, 'expires_at moved to two days on');
is(entry('acme', $moved->{id}), $now + $DAY,
   'the notice is now 1 day before the new expiry');

$r = $a->patch("orgs/acme/keys/$moved->{id}", { name => 'renamed' });
is(entry('acme', $moved->{id}), $now + $DAY,
   'a patch without expires_at leaves it');

age('acme', $moved->{id}, $DAY + 60);
ok(wait_for(10, sub { @{notices('acme', $moved->{id})} }),
   'the moved key gets its notice a day on');
is_deeply(notices('acme', $moved->{id}), ['expiring system renamed'],
          'with its name at that time');

###############################################################################
# Redis down while a notice falls due: written once when it is back

my $down = $a->create('beta', name => 'through an outage', expires_in => 120);
ok(wait_for(10, sub { @{notices('beta', $down->{id})} }),
   'expiring at once');

# it expires in 3 s, while Redis is down
age('beta', $down->{id}, unix($down->{expires_at}) - redis_now() - 3);
my $due = redis_now() + 3;

$t->stop_redis;

ok(wait_for(10, sub { $a->get('orgs/beta/events')->{status} == 503 }),
   'Redis is down');
ok(wait_for(10, sub { time > $due + 2 }), 'the notice falls due meanwhile');

$t->start_redis;

ok(wait_for(15, sub { @{notices('beta', $down->{id})} == 2 }),
   'Redis back: the expired notice is written');
$count = $a->get('orgs/beta/events')->{json}{total_count};
a_few_seconds();
is_deeply(notices('beta', $down->{id}),
          ['expiring system through an outage',
           'expired system through an outage'], 'once');
is($a->get('orgs/beta/events')->{json}{total_count}, $count,
   'and nothing more');

###############################################################################
# keys without an entry (made before notices existed): the backfill

$now = redis_now();
my $old = $a->create('gamma', name => 'made before', expires_in => 10 * $DAY);
$t->redis('ZREM', 'apikey:notices', "gamma\t$old->{id}");
$t->redis('DEL', 'apikey:notices:backfill');

ok(wait_for(10, sub { defined entry('gamma', $old->{id}) }),
   'the backfill gives an old key its notice');
cmp_ok(entry('gamma', $old->{id}), '>=', $now + 3 * $DAY - 5,
       '7 days before its expiry');
ok(wait_for(10, sub {
       defined $t->redis('HGET', 'apikey:notices:backfill', 'done')
   }), 'and is done');

###############################################################################
# a key written behind the admin API: the index rebuild a filtered list
# runs gives it its notice, in the same call

my $hand = $t->create_key(org => 'epsilon', name => 'by hand',
                          expires_at => redis_now() + 2 * $DAY);
ok(!defined entry('epsilon', $hand->{id}), 'a key written by hand has none');
is($a->get('orgs/epsilon/keys?status=active')->{json}{total_count}, 1,
   'a filtered list rebuilds the indexes');
is(entry('epsilon', $hand->{id}),
   $t->redis('HGET', "apikey:key:$hand->{id}", 'expires_at') - $DAY,
   'and gives the key its notice, 1 day before');

###############################################################################
# the timer holds up neither a reload nor a graceful stop; after them the
# one instance left, reloaded, writes the notices alone

ok($t->reload_nginx('b'), 'b reloaded: its old workers exit');
ok($t->stop_nginx, 'a stops gracefully');

###############################################################################
# apikey-import: imported keys with an expiry get their notices

my $in = $t->dir . '/import.jsonl';
open my $fh, '>', $in or die "$in: $!";
print $fh JSON::PP->new->encode({ org => 'delta', name => 'imported',
                                  key => $t->raw_key('ak'),
                                  expires_in => 120 }), "\n";
close $fh;

system("'$FindBin::Bin/../admin/apikey-import' --redis 127.0.0.1:"
       . $t->redis_port . " < '$in' > /dev/null");
is($?, 0, 'a key imported');

# a is gone: b answers from here on
$a = $b;

my ($imp) = @{$a->get('orgs/delta/keys')->{json}{data}};
ok(wait_for(10, sub { @{notices('delta', $imp->{id})} }),
   'an imported key gets its notice');
is_deeply(notices('delta', $imp->{id}), ['expiring system imported'],
          'expiring at once');

$t->error_log_clean;

done_testing;


sub unix {
    my ($y, $mo, $d, $h, $mi, $s) = $_[0] =~ /^(\d+)-(\d+)-(\d+)T(\d+):(\d+):(\d+)Z$/
        or return undef;
    return timegm($s, $mi, $h, $d, $mo - 1, $y);
}


sub iso {
    my @t = gmtime $_[0];
    return sprintf '%04d-%02d-%02dT%02d:%02d:%02dZ', $t[5] + 1900, $t[4] + 1,
                   @t[3, 2, 1, 0];
}
